//! Broker configuration of KIP-848 consumer groups: the
//! `group.consumer.*` keys with Kafka's defaults (except the group size,
//! bounded here because a group's state is one record).

use super::assignor;

/// Broker configuration of consumer groups.
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: i64,
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.max.size` (Kafka: unlimited; 1000 here, as
    /// `group.max.size`, since the group's state is one record).
    pub max_size: usize,
    /// `group.consumer.assignors`: offered assignors, the first the default.
    pub assignors: Vec<String>,
    /// How long a computed subscription (regexes resolved, partition
    /// counts) is reused before the topics are looked at again
    /// (Kafka's metadata refresh of the group).
    pub metadata_refresh_ms: i64,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: 1000,
            assignors: assignor::ASSIGNORS.iter().map(|s| s.to_string()).collect(),
            metadata_refresh_ms: 1_000,
        }
    }
}

impl ConsumerGroupConfig {
    /// The `group.consumer.*` broker keys (`get` answers a key's value,
    /// its default included).
    pub fn from_keys(get: &dyn Fn(&str) -> String) -> Result<Self, crate::config::ConfigError> {
        fn num<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
            key: &str,
            value: &str,
            min: T,
            max: T,
        ) -> Result<T, crate::config::ConfigError> {
            match value.trim().parse::<T>() {
                Ok(v) if v >= min && v <= max => Ok(v),
                _ => Err(crate::config::ConfigError::Invalid {
                    key: key.into(),
                    value: value.into(),
                    expected: format!("an integer between {min} and {max}"),
                }),
            }
        }
        let k = "group.consumer.session.timeout.ms";
        let session_timeout_ms = num::<i64>(k, &get(k), 1, i64::from(i32::MAX))?;
        let k = "group.consumer.heartbeat.interval.ms";
        let heartbeat_interval_ms = num::<i32>(k, &get(k), 1, i32::MAX)?;
        let k = "group.consumer.max.size";
        let max_size = num::<usize>(k, &get(k), 1, i32::MAX as usize)?;
        let k = "group.consumer.assignors";
        let value = get(k);
        let assignors: Vec<String> = value
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if assignors.is_empty()
            || assignors
                .iter()
                .any(|a| !assignor::ASSIGNORS.contains(&a.as_str()))
        {
            return Err(crate::config::ConfigError::Invalid {
                key: k.into(),
                value,
                expected: format!("a list of {}", assignor::ASSIGNORS.join(", ")),
            });
        }
        if i64::from(heartbeat_interval_ms) >= session_timeout_ms {
            return Err(crate::config::ConfigError::Invalid {
                key: "group.consumer.heartbeat.interval.ms".into(),
                value: heartbeat_interval_ms.to_string(),
                expected: "less than group.consumer.session.timeout.ms".into(),
            });
        }
        Ok(ConsumerGroupConfig {
            session_timeout_ms,
            heartbeat_interval_ms,
            max_size,
            assignors,
            metadata_refresh_ms: i64::from(heartbeat_interval_ms).min(1_000),
        })
    }
}
