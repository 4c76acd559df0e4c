//! Topic configs as DescribeConfigs and CreateTopics report them: every
//! known key with its effective value and where it came from.

use std::collections::BTreeMap;

use rivulet_storage::config::LOG_CONFIG_KEYS;
use rivulet_storage::LogConfig;

/// Kafka's `ConfigSource` values.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_DEFAULT: i8 = 5;

/// Topic-level keys that are not storage settings, with their defaults.
pub fn broker_topic_defaults(min_insync_replicas: i32) -> Vec<(&'static str, String)> {
    vec![
        ("min.insync.replicas", min_insync_replicas.to_string()),
        ("unclean.leader.election.enable", "false".to_string()),
        ("compression.type", "producer".to_string()),
    ]
}

/// `(name, value, source)` of every topic config key.
pub fn topic_entries(
    defaults: &LogConfig,
    min_insync_replicas: i32,
    overrides: &BTreeMap<String, String>,
) -> Vec<(String, String, i8)> {
    let mut out = Vec::new();
    for key in LOG_CONFIG_KEYS {
        match overrides.get(*key) {
            Some(v) => out.push((key.to_string(), v.clone(), SOURCE_DYNAMIC_TOPIC)),
            None => out.push((
                key.to_string(),
                defaults.get(key).unwrap_or_default(),
                SOURCE_DEFAULT,
            )),
        }
    }
    for (key, default) in broker_topic_defaults(min_insync_replicas) {
        match overrides.get(key) {
            Some(v) => out.push((key.to_string(), v.clone(), SOURCE_DYNAMIC_TOPIC)),
            None => out.push((key.to_string(), default, SOURCE_DEFAULT)),
        }
    }
    out
}
