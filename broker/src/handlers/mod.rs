//! One handler per Kafka API: a function from a typed request to a typed
//! response, over the shared [`crate::broker::Broker`].

pub mod alter_configs;
pub mod api_versions;
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

/// Kafka's "authorized operations not requested" marker (INT32_MIN): setting
/// other bits crashes kafka-python's parser.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Topic operations a client may perform while there are no ACLs: READ,
/// WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS
/// (bits 3..=8, 10, 11 of Kafka's `AclOperation` codes).
pub const TOPIC_OPERATIONS_ALL: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

/// Cluster operations allowed without ACLs: CREATE, ALTER, DESCRIBE,
/// CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
pub const CLUSTER_OPERATIONS_ALL: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
