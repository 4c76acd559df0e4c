//! `MetadataRecord`: the entries of the cluster metadata log. Every change to
//! cluster metadata is one of these, committed through the quorum and then
//! applied, in log order, to the [`crate::MetadataImage`] of every node.
//!
//! Records are facts, not requests: validation happens in the controller
//! before a record is written, so applying one never needs to consult
//! anything but the image.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Kafka's "no leader" marker.
pub const NO_LEADER: i32 = -1;

/// A named endpoint a broker serves on (`PLAINTEXT://127.0.0.1:9092`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// What a config record applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker (re)registered; a new incarnation replaces the old one and
    /// starts fenced until its first heartbeat unfences it.
    RegisterBroker {
        node_id: i32,
        incarnation: Uuid,
        listeners: Vec<Listener>,
        rack: Option<String>,
        /// Partition replicas this broker can host (its
        /// `max.partitions.per.node` or what its open-files limit allows);
        /// `None`: no limit of its own (the controller's applies).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_partitions: Option<u64>,
    },
    /// The broker missed its session timeout or shut down: it leads nothing.
    FenceBroker {
        node_id: i32,
    },
    UnfenceBroker {
        node_id: i32,
    },
    /// The broker's current incarnation shut down cleanly: fenced, and its
    /// heartbeats no longer unfence it (one still in flight when it asked
    /// to leave would otherwise bring it back as live while it exits).
    /// A new registration clears it.
    ShutDownBroker {
        node_id: i32,
    },
    Topic {
        name: String,
        topic_id: Uuid,
        configs: BTreeMap<String, String>,
    },
    RemoveTopic {
        topic_id: Uuid,
    },
    /// A new partition with its full registration.
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A change to an existing partition. Every change bumps the partition
    /// epoch; a leader change also bumps the leader epoch.
    PartitionChange {
        topic_id: Uuid,
        partition: i32,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
    },
    /// A reassignment step (KIP-455): the partition's replicas with the
    /// ones being added and removed (both empty: none ongoing), and the
    /// leader and ISR when they change with it. Bumps the partition epoch,
    /// and the leader epoch when the leader changes.
    PartitionReassignment {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        adding: Vec<i32>,
        removing: Vec<i32>,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
    },
    /// Set (`Some`) or remove (`None`) one config key.
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    /// A block of producer ids handed to a broker; the next block starts at
    /// `next_producer_id`.
    ProducerIds {
        broker_id: i32,
        next_producer_id: i64,
    },
    /// An ACL was created with this id (Kafka's AccessControlEntryRecord).
    Acl {
        id: Uuid,
        acl: crate::acl::AclBinding,
    },
    /// The ACL with this id was removed.
    RemoveAcl {
        id: Uuid,
    },
    /// Set or replace user `name`'s SCRAM credential for `mechanism`
    /// (`SCRAM-SHA-256`, `SCRAM-SHA-512`): never the password, only what
    /// the server side of SCRAM needs (Kafka's UserScramCredentialRecord).
    UserScramCredential {
        name: String,
        mechanism: String,
        credential: crate::scram::ScramCredentialData,
    },
    /// Remove user `name`'s credential for `mechanism`.
    RemoveUserScramCredential {
        name: String,
        mechanism: String,
    },
    /// Set (`Some`) or remove (`None`) one client quota of an entity
    /// (Kafka's ClientQuotaRecord).
    ClientQuota {
        entity: crate::client_quotas::QuotaEntity,
        key: String,
        value: Option<crate::client_quotas::QuotaValue>,
    },
}
