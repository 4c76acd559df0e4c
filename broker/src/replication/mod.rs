//! Replication as pure logic: what a node decides for a partition it leads
//! or follows, apart from the locks, timers, fsyncs and sockets that carry
//! the decisions out.
//!
//! - [`rules`]: the rules as functions over plain state — the leader's view
//!   of its followers ([`Followers`]), the high watermark, ISR shrink and
//!   expand, the KIP-595 divergence check and the follower's truncation
//!   point.
//! - [`PartitionReplica`]: one partition on one node as a sans-IO state
//!   machine (in the manner of raft-rs's `RawNode`/`Ready`): it takes
//!   events — the partition's metadata image, a local append, a follower's
//!   fetch on the leader, a fetch response on a follower, the controller's
//!   answer to an AlterPartition, `tick(now)` — reads the log through
//!   [`LogView`], and returns [`Action`]s for its executor to carry out.
//!
//! `ReplicaManager` and the replica fetcher are the executors in the
//! broker; the seeded simulation in `broker/tests/replication_sim` is
//! another, over an in-memory log and network.

mod partition_replica;
pub mod rules;

pub use partition_replica::{
    AckError, AckId, Action, AlterPartition, AlterPartitionAnswer, FetchedPartition,
    FollowerFetchAnswer, LogView, Mutation, PartitionReplica, PendingIsr, PendingIsrStatus,
    ProduceRefusal, ReplicaFetch, ReplicaState,
};
pub use rules::{
    diverging_epoch, high_watermark, isr_update, truncation_offset, FollowerProgress, Followers,
    LeaderView,
};
