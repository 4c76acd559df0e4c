//! Topic configs as DescribeConfigs and CreateTopics report them: every
//! known key with its effective value and where it came from.

use std::collections::BTreeMap;

use rivulet_controller::throttled_replicas;
use rivulet_storage::config::LOG_CONFIG_KEYS;

use crate::dynamic_config::TopicDefaults;

/// Kafka's `ConfigSource` values.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_DEFAULT: i8 = 5;

/// Topic-level keys that are not storage settings, with their defaults.
fn broker_topic_defaults(defaults: &TopicDefaults) -> Vec<(&'static str, String)> {
    let unclean = defaults
        .dynamic
        .get("unclean.leader.election.enable")
        .map_or("false".to_string(), |(v, _)| v.clone());
    vec![
        (
            "min.insync.replicas",
            defaults.min_insync_replicas.to_string(),
        ),
        ("unclean.leader.election.enable", unclean),
    ]
}

/// `(name, value, source)` of every topic config key: the topic's
/// override, else the default it inherits (from a dynamic broker config,
/// so said, or the broker's own).
pub fn topic_entries(
    defaults: &TopicDefaults,
    overrides: &BTreeMap<String, String>,
) -> Vec<(String, String, i8)> {
    let inherited = |key: &str, value: String| {
        let source = defaults
            .dynamic
            .get(key)
            .map_or(SOURCE_DEFAULT, |(_, s)| *s);
        (key.to_string(), value, source)
    };
    let mut out = Vec::new();
    for key in LOG_CONFIG_KEYS {
        match overrides.get(*key) {
            Some(v) => out.push((key.to_string(), v.clone(), SOURCE_DYNAMIC_TOPIC)),
            None => out.push(inherited(key, defaults.log.get(key).unwrap_or_default())),
        }
    }
    for (key, default) in broker_topic_defaults(defaults) {
        match overrides.get(key) {
            Some(v) => out.push((key.to_string(), v.clone(), SOURCE_DYNAMIC_TOPIC)),
            None => out.push(inherited(key, default)),
        }
    }
    // The throttled-replica lists: per topic only, empty by default.
    for key in [
        throttled_replicas::LEADER_KEY,
        throttled_replicas::FOLLOWER_KEY,
    ] {
        match overrides.get(key) {
            Some(v) => out.push((key.to_string(), v.clone(), SOURCE_DYNAMIC_TOPIC)),
            None => out.push((key.to_string(), String::new(), SOURCE_DEFAULT)),
        }
    }
    out
}

/// Kafka's `ConfigSource` for a broker setting from its config file.
pub const SOURCE_STATIC_BROKER: i8 = 4;

/// Kafka's `ConfigResource.Type` codes this broker knows.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Why a config resource of a DescribeConfigs, AlterConfigs or
/// IncrementalAlterConfigs request was refused (error codes in
/// [`crate::errors::config_resource`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigResourceError {
    #[error("unsupported resource type {0}")]
    UnsupportedResourceType(i8),
    #[error("unexpected broker id '{got}': this is broker {expected} (or use \"\")")]
    UnexpectedBrokerId { expected: i32, got: String },
    /// Kafka's wording for a static broker key in an alter request.
    #[error("cannot update these configs dynamically: {0} (only the topic defaults, such as log.retention.ms, and the replication throttle rates are dynamic)")]
    NotDynamic(String),
    #[error("invalid value for {key}: {why}")]
    InvalidValue { key: String, why: String },
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidTopicName(String),
    #[error("resource '{0}' appears more than once in the request")]
    DuplicateResource(String),
    #[error("config '{0}' appears more than once for one resource")]
    DuplicateKey(String),
    #[error("unknown config operation {op} for '{key}'")]
    UnknownOperation { key: String, op: i8 },
    #[error("null value not supported for '{0}'")]
    NullValue(String),
    #[error("'{key}' is not a list config: {op} is only allowed for list configs such as cleanup.policy")]
    NotAList { key: String, op: &'static str },
}

/// Kafka's `ConfigType` of a topic or broker key, as DescribeConfigs v3+
/// reports it: BOOLEAN 1, STRING 2, INT 3, LONG 5, DOUBLE 6, LIST 7.
pub fn config_type(key: &str) -> i8 {
    const BOOLEAN: i8 = 1;
    const STRING: i8 = 2;
    const INT: i8 = 3;
    const LONG: i8 = 5;
    const DOUBLE: i8 = 6;
    const LIST: i8 = 7;
    match key {
        "cleanup.policy"
        | "log.cleanup.policy"
        | "controller.quorum.voters"
        | throttled_replicas::LEADER_KEY
        | throttled_replicas::FOLLOWER_KEY => LIST,
        "min.cleanable.dirty.ratio" | "log.cleaner.min.cleanable.ratio" => DOUBLE,
        "unclean.leader.election.enable" | "auto.create.topics.enable" | "log.cleaner.enable" => {
            BOOLEAN
        }
        "segment.bytes"
        | "segment.index.bytes"
        | "index.interval.bytes"
        | "max.message.bytes"
        | "min.insync.replicas"
        | "log.segment.bytes"
        | "log.index.size.max.bytes"
        | "log.index.interval.bytes"
        | "message.max.bytes"
        | "node.id"
        | "num.partitions"
        | "default.replication.factor"
        | "socket.request.max.bytes"
        | "max.connections"
        | "broker.session.timeout.ms"
        | "broker.heartbeat.interval.ms"
        | "max.open.logs"
        | "num.recovery.threads"
        | "compression.gzip.level"
        | "compression.lz4.level"
        | "compression.zstd.level" => INT,
        "segment.ms"
        | "retention.ms"
        | "retention.bytes"
        | "delete.retention.ms"
        | "min.compaction.lag.ms"
        | "flush.ms"
        | "log.roll.ms"
        | "log.retention.ms"
        | "log.retention.bytes"
        | "log.cleaner.delete.retention.ms"
        | "log.cleaner.min.compaction.lag.ms"
        | "max.compaction.lag.ms"
        | "log.cleaner.max.compaction.lag.ms"
        | "log.flush.interval.ms"
        | "message.timestamp.before.max.ms"
        | "message.timestamp.after.max.ms"
        | "log.message.timestamp.before.max.ms"
        | "log.message.timestamp.after.max.ms"
        | "connections.max.idle.ms"
        | "log.retention.check.interval.ms"
        | "leader.replication.throttled.rate"
        | "follower.replication.throttled.rate"
        | "replica.alter.log.dirs.io.max.bytes.per.second" => LONG,
        _ => STRING,
    }
}
