//! AlterConfigs for topics and dynamic broker configs, and the machinery
//! it shares with [`super::incremental_alter_configs`]. A BROKER resource
//! named "" holds the cluster-wide defaults, one named by this node's id
//! its own ([`crate::dynamic_config`]); only topic defaults are dynamic.
//!
//! The legacy AlterConfigs *replaces* a topic's overrides: keys not in the
//! request go back to the broker default (what librdkafka's and the Java
//! client's `alterConfigs` promise). The replacement is computed against
//! this node's image, so two racing legacy requests resolve as last writer
//! wins per key, as in Kafka.
//!
//! IncrementalAlterConfigs applies SET (0), DELETE (1), APPEND (2) and
//! SUBTRACT (3) per key (KIP-339). APPEND and SUBTRACT are for list-valued
//! keys — here `cleanup.policy` — and work on the comma-separated list of
//! the current value (the override, else the broker default): APPEND adds
//! the items not there yet, SUBTRACT removes the given items. On a scalar
//! key they are INVALID_CONFIG, as in Kafka.
//!
//! Every change goes through the controller, which validates the resulting
//! config as a whole; `validate_only` stops there. A committed change is
//! answered once this node's image has it and the topic's local logs run
//! with it.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use kafka_protocol::messages::{alter_configs_response, AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use rivulet_controller::{ControllerRequest, ControllerResponse, MetadataImage};
use rivulet_storage::{validate_topic_name, LogConfig, TopicPartition};

use super::sb;
use crate::context::BrokerContext;
use crate::dynamic_config;
use crate::errors;
use crate::replica_manager::topic_log_config;
use crate::topic_configs::{ConfigResourceError, RESOURCE_BROKER, RESOURCE_TOPIC};

/// How long a committed change waits to reach the local logs.
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// Changes for the controller: `Some` sets a key, `None` deletes it.
pub type Changes = BTreeMap<String, Option<String>>;

/// `(error code, message)` of one resource.
pub(super) type Outcome = (i16, Option<String>);

pub async fn handle(
    b: &BrokerContext,
    req: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let duplicates = duplicated(
        req.resources
            .iter()
            .map(|r| (r.resource_type, &r.resource_name)),
    );
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let given: Vec<(String, Option<String>)> = r
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect();
        let outcome = if duplicates.contains(&(r.resource_type, r.resource_name.to_string())) {
            refused(ConfigResourceError::DuplicateResource(
                r.resource_name.to_string(),
            ))
        } else {
            match target(b, r.resource_type, &r.resource_name) {
                Err(e) => refused(e),
                Ok(target) => match replacement(current(&b.image(), &target), &given) {
                    Err(e) => refused(e),
                    Ok(changes) => alter(b, &target, changes, req.validate_only).await,
                },
            }
        };
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(outcome.0)
                .with_error_message(outcome.1.map(sb)),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub(super) fn refused(e: ConfigResourceError) -> Outcome {
    (errors::config_resource(&e), Some(e.to_string()))
}

/// Resources named more than once in one request (Kafka refuses each).
pub(super) fn duplicated<'a>(
    resources: impl Iterator<Item = (i8, &'a StrBytes)>,
) -> HashSet<(i8, String)> {
    let mut seen = HashSet::new();
    let mut twice = HashSet::new();
    for (t, name) in resources {
        let key = (t, name.to_string());
        if !seen.insert(key.clone()) {
            twice.insert(key);
        }
    }
    twice
}

/// What an alter request's resource names.
pub(super) enum Target {
    Topic(String),
    /// A broker's dynamic configs ([`crate::dynamic_config::resource`]).
    Broker(i32),
}

/// The resource an alter request names, or why it cannot be altered.
pub(super) fn target(
    b: &BrokerContext,
    resource_type: i8,
    name: &str,
) -> Result<Target, ConfigResourceError> {
    match resource_type {
        RESOURCE_TOPIC => {
            validate_topic_name(name)
                .map_err(|e| ConfigResourceError::InvalidTopicName(e.to_string()))?;
            if b.image().topic(name).is_none() {
                return Err(ConfigResourceError::UnknownTopic(name.to_string()));
            }
            Ok(Target::Topic(name.to_string()))
        }
        RESOURCE_BROKER => dynamic_config::resource(name, b.node_id()).map(Target::Broker),
        other => Err(ConfigResourceError::UnsupportedResourceType(other)),
    }
}

/// The keys `target` sets now: a topic's overrides or a broker's dynamic
/// configs.
pub(super) fn current(image: &MetadataImage, target: &Target) -> BTreeMap<String, String> {
    match target {
        Target::Topic(topic) => image
            .topic(topic)
            .map(|t| t.configs.clone())
            .unwrap_or_default(),
        Target::Broker(broker) => dynamic_config::current(image, *broker),
    }
}

/// Apply `changes` to `target`.
pub(super) async fn alter(
    b: &BrokerContext,
    target: &Target,
    changes: Changes,
    validate_only: bool,
) -> Outcome {
    match target {
        Target::Topic(topic) => alter_topic(b, topic, changes, validate_only).await,
        Target::Broker(broker) => alter_broker(b, *broker, changes, validate_only).await,
    }
}

/// Legacy AlterConfigs: the given keys (a null value deletes) become the
/// whole override set; every other current override is deleted.
pub fn replacement(
    current: BTreeMap<String, String>,
    given: &[(String, Option<String>)],
) -> Result<Changes, ConfigResourceError> {
    let mut changes = Changes::new();
    for (key, value) in given {
        if changes.insert(key.clone(), value.clone()).is_some() {
            return Err(ConfigResourceError::DuplicateKey(key.clone()));
        }
    }
    for key in current.into_keys() {
        changes.entry(key).or_insert(None);
    }
    Ok(changes)
}

/// Check dynamic broker config `changes` and send them to the controller;
/// once committed, wait (briefly) until this node's logs run with them.
async fn alter_broker(
    b: &BrokerContext,
    broker: i32,
    changes: Changes,
    validate_only: bool,
) -> Outcome {
    if let Some(e) = changes
        .iter()
        .find_map(|(k, v)| dynamic_config::check(k, v.as_deref()).err())
    {
        return refused(e);
    }
    let request = ControllerRequest::AlterBrokerConfigs {
        broker,
        changes,
        validate_only,
    };
    commit_and_apply(b, request, validate_only, |image| {
        let defaults = b.topic_defaults(image).log;
        image
            .topics
            .values()
            .all(|t| local_logs_follow(b, image, &t.name, &defaults))
    })
    .await
}

/// Send `changes` to the controller; once committed, wait (briefly) until
/// this node's image has them and the topic's local logs use them.
async fn alter_topic(
    b: &BrokerContext,
    topic: &str,
    changes: Changes,
    validate_only: bool,
) -> Outcome {
    let request = ControllerRequest::AlterTopicConfigs {
        name: topic.to_string(),
        changes,
        validate_only,
    };
    commit_and_apply(b, request, validate_only, |image| {
        local_logs_follow(b, image, topic, &b.topic_defaults(image).log)
    })
    .await
}

/// Send a config change to the controller; once committed (and unless
/// `validate_only`), wait (briefly) until this node's image has it and
/// `applied` says the local logs run with it.
async fn commit_and_apply(
    b: &BrokerContext,
    request: ControllerRequest,
    validate_only: bool,
    applied: impl Fn(&MetadataImage) -> bool,
) -> Outcome {
    let resp = b.controller_request(request).await;
    let outcome = errors::controller_response(&resp);
    if let (ControllerResponse::Ok { offset }, false) = (&resp, validate_only) {
        b.wait_until(APPLY_WAIT, |image| {
            image.offset >= *offset && applied(image)
        })
        .await;
    }
    outcome
}

/// Whether every local log of `topic` runs with the config `image` gives it.
fn local_logs_follow(
    b: &BrokerContext,
    image: &MetadataImage,
    topic: &str,
    defaults: &LogConfig,
) -> bool {
    let Some(t) = image.topic(topic) else {
        return true;
    };
    let want = topic_log_config(defaults, &t.configs);
    t.partitions.keys().all(
        |pid| match b.replicas.get(&TopicPartition::new(topic, *pid)) {
            Some(p) if p.topic_id == t.id => *p.log.lock().config() == want,
            _ => true,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn legacy_alter_replaces_the_whole_override_set() {
        let current = map(&[("retention.ms", "1000"), ("segment.bytes", "4096")]);
        let changes = replacement(
            current,
            &[
                ("retention.ms".into(), Some("2000".into())),
                ("cleanup.policy".into(), Some("compact".into())),
                ("flush.ms".into(), None),
            ],
        )
        .unwrap();
        let expected: Changes = [
            ("cleanup.policy", Some("compact")),
            ("flush.ms", None),
            ("retention.ms", Some("2000")),
            ("segment.bytes", None),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect();
        assert_eq!(changes, expected);
        assert_eq!(
            replacement(
                BTreeMap::new(),
                &[("a".into(), Some("1".into())), ("a".into(), None)]
            ),
            Err(ConfigResourceError::DuplicateKey("a".into()))
        );
    }
}
