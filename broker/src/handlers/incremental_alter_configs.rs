//! IncrementalAlterConfigs for topics (KIP-339): SET (0), DELETE (1),
//! APPEND (2) and SUBTRACT (3) per key. APPEND and SUBTRACT are for
//! list-valued keys — here `cleanup.policy` — and work on the
//! comma-separated list of the current value (the override, else the
//! broker default): APPEND adds the items not there yet, SUBTRACT removes
//! the given items. On a scalar key they are INVALID_CONFIG, as in Kafka.
//! Validation by the controller and the wait for local logs are
//! [`super::alter_configs`]'s.

use std::collections::BTreeMap;

use kafka_protocol::messages::*;

use super::alter_configs::{alter, current, duplicated, refused, target, Changes, Target};
use super::sb;
use crate::context::BrokerContext;
use crate::topic_configs::ConfigResourceError;

/// Kafka's `AlterConfigOp.OpType` codes.
pub const OP_SET: i8 = 0;
pub const OP_DELETE: i8 = 1;
pub const OP_APPEND: i8 = 2;
pub const OP_SUBTRACT: i8 = 3;

/// Keys whose value is a comma-separated list (`ConfigDef.Type.LIST`).
pub const LIST_KEYS: &[&str] = &[
    "cleanup.policy",
    "log.cleanup.policy",
    rivulet_controller::throttled_replicas::LEADER_KEY,
    rivulet_controller::throttled_replicas::FOLLOWER_KEY,
];

pub async fn handle(
    b: &BrokerContext,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let duplicates = duplicated(
        req.resources
            .iter()
            .map(|r| (r.resource_type, &r.resource_name)),
    );
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let ops: Vec<(String, i8, Option<String>)> = r
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.config_operation,
                    c.value.as_ref().map(|v| v.to_string()),
                )
            })
            .collect();
        let outcome = if duplicates.contains(&(r.resource_type, r.resource_name.to_string())) {
            refused(ConfigResourceError::DuplicateResource(
                r.resource_name.to_string(),
            ))
        } else {
            match target(b, r.resource_type, &r.resource_name) {
                Err(e) => refused(e),
                Ok(target) => {
                    let image = b.image();
                    let defaults = b.topic_defaults(&image).log;
                    // A list op's base without a current value: the
                    // default the key sets (a broker key names its topic
                    // key's default).
                    let default_of = |key: &str| match &target {
                        Target::Topic(_) => defaults.get(key),
                        Target::Broker(_) => {
                            crate::dynamic_config::log_key(key).and_then(|log| defaults.get(log))
                        }
                    };
                    match incremental_changes(&current(&image, &target), default_of, &ops) {
                        Err(e) => refused(e),
                        Ok(changes) => alter(b, &target, changes, req.validate_only).await,
                    }
                }
            }
        };
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(outcome.0)
                .with_error_message(outcome.1.map(sb)),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs: the changes `ops` (`(key, op, value)`) make to
/// a resource whose keys are `current`, each otherwise at `default_of`.
pub fn incremental_changes(
    current: &BTreeMap<String, String>,
    default_of: impl Fn(&str) -> Option<String>,
    ops: &[(String, i8, Option<String>)],
) -> Result<Changes, ConfigResourceError> {
    let mut changes = Changes::new();
    for (key, op, value) in ops {
        if changes.contains_key(key) {
            return Err(ConfigResourceError::DuplicateKey(key.clone()));
        }
        let list_op = match *op {
            OP_SET => {
                let v = value
                    .clone()
                    .ok_or_else(|| ConfigResourceError::NullValue(key.clone()))?;
                changes.insert(key.clone(), Some(v));
                continue;
            }
            OP_DELETE => {
                changes.insert(key.clone(), None);
                continue;
            }
            OP_APPEND => "APPEND",
            OP_SUBTRACT => "SUBTRACT",
            other => {
                return Err(ConfigResourceError::UnknownOperation {
                    key: key.clone(),
                    op: other,
                })
            }
        };
        if !LIST_KEYS.contains(&key.as_str()) {
            return Err(ConfigResourceError::NotAList {
                key: key.clone(),
                op: list_op,
            });
        }
        let items = value
            .as_deref()
            .ok_or_else(|| ConfigResourceError::NullValue(key.clone()))
            .map(list)?;
        let mut now = current
            .get(key)
            .cloned()
            .or_else(|| default_of(key))
            .as_deref()
            .map(list)
            .unwrap_or_default();
        if *op == OP_APPEND {
            for item in items {
                if !now.contains(&item) {
                    now.push(item);
                }
            }
        } else {
            now.retain(|item| !items.contains(item));
        }
        changes.insert(key.clone(), Some(now.join(",")));
    }
    Ok(changes)
}

/// The items of a comma-separated list value.
fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_storage::LogConfig;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn op(key: &str, op: i8, value: Option<&str>) -> (String, i8, Option<String>) {
        (key.to_string(), op, value.map(str::to_string))
    }

    #[test]
    fn append_and_subtract_work_on_the_effective_list() {
        let defaults = LogConfig::default();
        // No override: APPEND starts from the default "delete".
        let c = incremental_changes(
            &BTreeMap::new(),
            |k: &str| defaults.get(k),
            &[op("cleanup.policy", OP_APPEND, Some("compact"))],
        )
        .unwrap();
        assert_eq!(c["cleanup.policy"].as_deref(), Some("delete,compact"));
        // Items already there are not added twice.
        let current = map(&[("cleanup.policy", "compact,delete")]);
        let c = incremental_changes(
            &current,
            |k: &str| defaults.get(k),
            &[op("cleanup.policy", OP_APPEND, Some("delete, compact"))],
        )
        .unwrap();
        assert_eq!(c["cleanup.policy"].as_deref(), Some("compact,delete"));
        let c = incremental_changes(
            &current,
            |k: &str| defaults.get(k),
            &[op("cleanup.policy", OP_SUBTRACT, Some("delete"))],
        )
        .unwrap();
        assert_eq!(c["cleanup.policy"].as_deref(), Some("compact"));
    }

    #[test]
    fn incremental_ops_are_checked() {
        let d = LogConfig::default();
        let none = BTreeMap::new();
        let c = incremental_changes(
            &none,
            |k: &str| d.get(k),
            &[
                op("retention.ms", OP_SET, Some("5")),
                op("segment.ms", OP_DELETE, None),
            ],
        )
        .unwrap();
        assert_eq!(c["retention.ms"].as_deref(), Some("5"));
        assert_eq!(c["segment.ms"], None);
        assert_eq!(
            incremental_changes(
                &none,
                |k: &str| d.get(k),
                &[op("retention.ms", OP_APPEND, Some("5"))]
            ),
            Err(ConfigResourceError::NotAList {
                key: "retention.ms".into(),
                op: "APPEND"
            })
        );
        assert_eq!(
            incremental_changes(
                &none,
                |k: &str| d.get(k),
                &[op("retention.ms", OP_SET, None)]
            ),
            Err(ConfigResourceError::NullValue("retention.ms".into()))
        );
        assert_eq!(
            incremental_changes(
                &none,
                |k: &str| d.get(k),
                &[op("retention.ms", 9, Some("1"))]
            ),
            Err(ConfigResourceError::UnknownOperation {
                key: "retention.ms".into(),
                op: 9
            })
        );
        assert_eq!(
            incremental_changes(
                &none,
                |k: &str| d.get(k),
                &[
                    op("retention.ms", OP_SET, Some("1")),
                    op("retention.ms", OP_DELETE, None)
                ]
            ),
            Err(ConfigResourceError::DuplicateKey("retention.ms".into()))
        );
    }
}
