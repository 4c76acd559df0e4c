//! openraft's type configuration for the metadata quorum and the payload of
//! a log entry.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::records::MetadataRecord;

/// A controller node id (Kafka's `node.id`).
pub type NodeId = u64;

/// One committed entry: the records of one controller decision, applied
/// atomically, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub records: Vec<MetadataRecord>,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} metadata record(s)", self.records.len())
    }
}

/// What applying a [`Command`] reports back to the proposer: the image
/// offset (log index) it is visible at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    pub offset: u64,
}

/// Address of a controller voter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterNode {
    pub addr: String,
}

impl fmt::Display for VoterNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = VoterNode,
        // Standard Raft: at most one leader per term, as KRaft.
        LeaderId = openraft::impls::leader_id_std::LeaderId<Self::Term, Self::NodeId>,
        AsyncRuntime = openraft_rt_tokio::TokioRuntime,
);

pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>;
