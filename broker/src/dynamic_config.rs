//! Dynamic broker configs, as `kafka-configs.sh --entity-type brokers`
//! sets them: the defaults every topic inherits (`log.retention.ms`,
//! `compression.type`, `min.insync.replicas`, ...), changed on a running
//! cluster without a restart. They live in the metadata quorum as configs
//! of a BROKER resource: the one named "" holds the cluster-wide defaults,
//! one named by a node id that node's own.
//!
//! What a topic runs with, weakest first: the built-in default, the
//! broker's config file (static), the cluster-wide dynamic default, this
//! broker's dynamic config, the topic's own override — Kafka's order.
//! Every node computes the same layers from the same image, so a
//! cluster-wide change reaches every broker's logs through the image.
//!
//! Besides the topic defaults, the replication throttle rates are dynamic
//! ([`QUOTA_KEYS`], read by [`crate::replication_quota`]); every other
//! broker key (listeners, limits, timeouts) stays static and a request to
//! change it is refused with Kafka's "cannot be updated dynamically".

use std::collections::BTreeMap;

use rivulet_controller::logic::CLUSTER_DEFAULT;
use rivulet_controller::MetadataImage;
use rivulet_storage::LogConfig;
use tracing::warn;

use crate::config::LOG_KEYS;
use crate::topic_configs::ConfigResourceError;

/// Kafka's `ConfigSource` for a value from a broker's own dynamic config.
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
/// ... and from the cluster-wide dynamic default.
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;

/// Broker keys that are topic defaults but not log settings.
const TOPIC_DEFAULT_KEYS: &[&str] = &["min.insync.replicas", "unclean.leader.election.enable"];

/// Broker keys that are quotas, in bytes per second (at least 0).
/// `replica.alter.log.dirs.io.max.bytes.per.second` bounds moves of a
/// replica between the log directories of one broker; a node here has one
/// data dir, so it has nothing to bound, but `kafka-reassign-partitions.sh`
/// clears it with the other two and must not be refused.
pub const QUOTA_KEYS: &[&str] = &[
    crate::replication_quota::LEADER_RATE_KEY,
    crate::replication_quota::FOLLOWER_RATE_KEY,
    "replica.alter.log.dirs.io.max.bytes.per.second",
];

/// Whether `key` (a broker key) can be changed on a running cluster.
pub fn is_dynamic(key: &str) -> bool {
    TOPIC_DEFAULT_KEYS.contains(&key) || QUOTA_KEYS.contains(&key) || log_key(key).is_some()
}

/// The topic (log) key a broker key sets, if it is one.
pub fn log_key(broker_key: &str) -> Option<&'static str> {
    LOG_KEYS
        .iter()
        .find(|(b, _)| *b == broker_key)
        .map(|(_, l)| *l)
}

/// The broker key that sets topic `key`'s default, if there is one.
pub fn broker_key(topic_key: &str) -> Option<&'static str> {
    LOG_KEYS
        .iter()
        .find(|(_, l)| *l == topic_key)
        .map(|(b, _)| *b)
        .or_else(|| TOPIC_DEFAULT_KEYS.iter().copied().find(|k| *k == topic_key))
}

/// Check one change of a dynamic broker config (`None` deletes).
pub fn check(key: &str, value: Option<&str>) -> Result<(), ConfigResourceError> {
    if !is_dynamic(key) {
        return Err(ConfigResourceError::NotDynamic(key.to_string()));
    }
    let Some(value) = value else {
        return Ok(());
    };
    let invalid = |why: String| ConfigResourceError::InvalidValue {
        key: key.to_string(),
        why,
    };
    match (log_key(key), key) {
        (Some(log), _) => LogConfig::default()
            .set(log, value)
            .map_err(|e| invalid(e.to_string())),
        (None, "min.insync.replicas") => match value.trim().parse::<i32>() {
            Ok(n) if n >= 1 => Ok(()),
            _ => Err(invalid("expected an integer of at least 1".to_string())),
        },
        (None, k) if QUOTA_KEYS.contains(&k) => match value.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Ok(()),
            _ => Err(invalid("expected bytes per second, at least 0".to_string())),
        },
        _ => match value.trim() {
            "true" | "false" => Ok(()),
            _ => Err(invalid("expected true or false".to_string())),
        },
    }
}

/// The topic defaults this node runs with, and where each dynamic one
/// came from.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicDefaults {
    pub log: LogConfig,
    pub min_insync_replicas: i32,
    /// Topic key → `(value, ConfigSource)` for the defaults a dynamic
    /// broker config set.
    pub dynamic: BTreeMap<String, (String, i8)>,
}

impl TopicDefaults {
    /// `static_log` and `static_min_isr` (the config file's) with the
    /// image's cluster-wide and then `node_id`'s dynamic configs applied.
    /// A value the image holds that no longer parses is skipped with a
    /// warning (it was checked when it was set).
    pub fn resolve(
        static_log: &LogConfig,
        static_min_isr: i32,
        image: &MetadataImage,
        node_id: i32,
    ) -> TopicDefaults {
        let mut out = TopicDefaults {
            log: static_log.clone(),
            min_insync_replicas: static_min_isr,
            dynamic: BTreeMap::new(),
        };
        let layers = [
            (CLUSTER_DEFAULT, SOURCE_DYNAMIC_DEFAULT_BROKER),
            (node_id, SOURCE_DYNAMIC_BROKER),
        ];
        for (broker, source) in layers {
            for (key, value) in image.broker_configs.get(&broker).into_iter().flatten() {
                out.apply(key, value, source);
            }
        }
        out
    }

    fn apply(&mut self, key: &str, value: &str, source: i8) {
        let topic_key = match log_key(key) {
            Some(log) => {
                if let Err(e) = self.log.set(log, value) {
                    warn!(key, value, error = %e, "ignoring a dynamic broker config");
                    return;
                }
                log
            }
            None if key == "min.insync.replicas" => match value.trim().parse::<i32>() {
                Ok(n) if n >= 1 => {
                    self.min_insync_replicas = n;
                    key
                }
                _ => {
                    warn!(key, value, "ignoring a dynamic broker config");
                    return;
                }
            },
            None if TOPIC_DEFAULT_KEYS.contains(&key) => key,
            None => return,
        };
        self.dynamic
            .insert(topic_key.to_string(), (value.to_string(), source));
    }
}

/// The BROKER resource a request names: "" for the cluster-wide default,
/// else this node's id.
pub fn resource(name: &str, node_id: i32) -> Result<i32, ConfigResourceError> {
    if name.is_empty() {
        return Ok(CLUSTER_DEFAULT);
    }
    match name.parse::<i32>() {
        Ok(id) if id == node_id => Ok(id),
        _ => Err(ConfigResourceError::UnexpectedBrokerId {
            expected: node_id,
            got: name.to_string(),
        }),
    }
}

/// The dynamic value of broker key `key` for `node_id`: its own, else the
/// cluster-wide default.
pub fn value<'a>(image: &'a MetadataImage, node_id: i32, key: &str) -> Option<&'a String> {
    image
        .broker_config(node_id, key)
        .or_else(|| image.broker_config(CLUSTER_DEFAULT, key))
}

/// The dynamic configs of one BROKER resource in `image`.
pub fn current(image: &MetadataImage, broker: i32) -> BTreeMap<String, String> {
    image
        .broker_configs
        .get(&broker)
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_controller::records::{ConfigResource, MetadataRecord};

    fn image_with(configs: &[(i32, &str, &str)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (i, (broker, k, v)) in configs.iter().enumerate() {
            image
                .apply(
                    i as u64 + 1,
                    &MetadataRecord::Config {
                        resource: ConfigResource::Broker(*broker),
                        name: k.to_string(),
                        value: Some(v.to_string()),
                    },
                )
                .unwrap();
        }
        image
    }

    #[test]
    fn layers_apply_cluster_default_then_this_node() {
        let image = image_with(&[
            (CLUSTER_DEFAULT, "log.retention.ms", "1000"),
            (CLUSTER_DEFAULT, "compression.type", "zstd"),
            (CLUSTER_DEFAULT, "min.insync.replicas", "2"),
            (3, "log.retention.ms", "2000"),
            (4, "log.retention.ms", "4000"),
        ]);
        let d = TopicDefaults::resolve(&LogConfig::default(), 1, &image, 3);
        assert_eq!(d.log.retention_ms, 2000);
        assert_eq!(d.log.get("compression.type").as_deref(), Some("zstd"));
        assert_eq!(d.min_insync_replicas, 2);
        assert_eq!(d.dynamic["retention.ms"], ("2000".to_string(), 2));
        assert_eq!(d.dynamic["compression.type"], ("zstd".to_string(), 3));
        // Another node sees its own layer.
        let d4 = TopicDefaults::resolve(&LogConfig::default(), 1, &image, 4);
        assert_eq!(d4.log.retention_ms, 4000);
    }

    #[test]
    fn only_topic_defaults_and_quotas_are_dynamic_and_values_are_checked() {
        assert!(check("log.retention.ms", Some("60000")).is_ok());
        assert!(check("log.retention.ms", None).is_ok());
        assert!(check("compression.type", Some("zstd")).is_ok());
        assert!(check("min.insync.replicas", Some("2")).is_ok());
        assert!(check("unclean.leader.election.enable", Some("true")).is_ok());
        for key in QUOTA_KEYS {
            assert!(check(key, Some("1048576")).is_ok() && check(key, Some("0")).is_ok());
            assert!(check(key, None).is_ok(), "{key} can be cleared");
            assert!(matches!(
                check(key, Some("-1")),
                Err(ConfigResourceError::InvalidValue { .. })
            ));
        }
        assert!(matches!(
            check("log.retention.ms", Some("soon")),
            Err(ConfigResourceError::InvalidValue { .. })
        ));
        assert!(matches!(
            check("min.insync.replicas", Some("0")),
            Err(ConfigResourceError::InvalidValue { .. })
        ));
        for key in ["listeners", "num.partitions", "retention.ms", "no.such.key"] {
            assert!(
                matches!(
                    check(key, Some("1")),
                    Err(ConfigResourceError::NotDynamic(_))
                ),
                "{key}"
            );
        }
    }

    #[test]
    fn resources_are_the_cluster_default_or_this_node() {
        assert_eq!(resource("", 2).unwrap(), CLUSTER_DEFAULT);
        assert_eq!(resource("2", 2).unwrap(), 2);
        assert!(resource("3", 2).is_err());
        assert!(resource("x", 2).is_err());
    }
}
