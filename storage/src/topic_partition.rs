//! `TopicPartition`: a topic name and partition number, and the
//! `<topic>-<partition>` directory name Kafka gives its log.

use std::fmt;

use crate::error::{Result, StorageError};

/// Longest legal topic name (Kafka: 249, so that `<topic>-<partition>` and
/// suffixes fit in a 255-byte file name).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The log directory name, `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parse a log directory name; the partition follows the last `-`.
    pub fn from_dir_name(name: &str) -> Result<Self> {
        let bad = || StorageError::InvalidPartitionDir(name.to_string());
        let (topic, partition) = name.rsplit_once('-').ok_or_else(bad)?;
        if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let partition: i32 = partition.parse().map_err(|_| bad())?;
        if partition < 0 || validate_topic_name(topic).is_err() {
            return Err(bad());
        }
        Ok(TopicPartition::new(topic, partition))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Kafka's topic name rule: 1..=249 characters of `[a-zA-Z0-9._-]`, and not
/// `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let err = |reason| StorageError::InvalidTopicName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(err("the name is empty"));
    }
    if name == "." || name == ".." {
        return Err(err("'.' and '..' are not allowed"));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(err("longer than 249 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(err(
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_name_round_trips_with_dashes_in_topic() {
        let tp = TopicPartition::new("my-topic-x", 12);
        assert_eq!(tp.dir_name(), "my-topic-x-12");
        assert_eq!(TopicPartition::from_dir_name("my-topic-x-12").unwrap(), tp);
    }

    #[test]
    fn rejects_bad_names() {
        assert!(TopicPartition::from_dir_name("nodash").is_err());
        assert!(TopicPartition::from_dir_name("t-x").is_err());
        // "t--1" is topic "t-", partition 1: a legal name.
        assert_eq!(
            TopicPartition::from_dir_name("t--1").unwrap(),
            TopicPartition::new("t-", 1)
        );
        assert!(TopicPartition::from_dir_name("t-+1").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("ok.topic_1-x").is_ok());
    }
}
