//! One handler per Kafka API: a function from a typed request to a typed
//! response, over the shared [`crate::broker::Broker`].

pub mod alter_configs;
pub mod api_versions;
pub mod authorized_operations;
pub mod configs;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_log_dirs;
pub mod fetch;
pub mod groups;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod offsets;
pub mod produce;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

/// A `StrBytes` from a string.
pub fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A `TopicName` from a string.
pub fn tn(s: impl Into<String>) -> TopicName {
    TopicName(sb(s))
}
