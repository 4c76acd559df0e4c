//! The metadata quorum as its leader sees it, for DescribeQuorum (KIP-595,
//! KIP-836: what `kafka-metadata-quorum.sh describe --status|--replication`
//! shows): the leader and its epoch, the high watermark, and per voter how
//! far its log goes and when it last fetched. Offsets are the Raft log's
//! (one entry per controller decision); Kafka's high watermark and log end
//! offsets are exclusive, so each is the last index plus one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::{Instant as _, RaftMetrics};
use serde::{Deserialize, Serialize};

use crate::raft::types::TypeConfig;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumDescription {
    pub leader_id: i32,
    /// The Raft term (Kafka's leader epoch of the metadata partition).
    pub leader_epoch: i32,
    /// Offset after the last committed entry.
    pub high_watermark: i64,
    pub voters: Vec<ReplicaProgress>,
    /// Non-voting members (learners).
    pub observers: Vec<ReplicaProgress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaProgress {
    pub replica_id: i32,
    /// Offset after the last entry it holds, as the leader last heard (-1:
    /// not heard from).
    pub log_end_offset: i64,
    /// Wall-clock milliseconds of its last acknowledged fetch (-1: never).
    pub last_fetch_timestamp: i64,
    /// Wall-clock milliseconds of the last acknowledgement that had every
    /// entry the leader had then (-1: unknown). The leader keeps only the
    /// last acknowledgement, so this is that one's time when the replica
    /// is caught up now, else unknown.
    pub last_caught_up_timestamp: i64,
}

fn wall_ms_ago(ago: Duration) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.saturating_sub(ago).as_millis() as i64
}

/// The description from the leader's Raft metrics; `None` when these are
/// not a leader's (no replication progress).
pub(crate) fn describe(m: &RaftMetrics<TypeConfig>) -> Option<QuorumDescription> {
    let replication = m.replication.as_ref()?;
    let heartbeat = m.heartbeat.as_ref();
    let end = |index: Option<u64>| index.map_or(0, |i| i as i64 + 1);
    let leader_end = end(m.last_log_index);
    let progress = |id: u64| {
        if id == m.id {
            let now = wall_ms_ago(Duration::ZERO);
            return ReplicaProgress {
                replica_id: id as i32,
                log_end_offset: leader_end,
                last_fetch_timestamp: now,
                last_caught_up_timestamp: now,
            };
        }
        let log_end_offset = match replication.get(&id) {
            Some(matched) => end(matched.as_ref().map(|l| l.index)),
            None => -1,
        };
        let last_fetch_timestamp = heartbeat
            .and_then(|h| h.get(&id))
            .and_then(|t| t.as_ref())
            .map_or(-1, |t| wall_ms_ago(t.elapsed()));
        let caught_up = log_end_offset >= leader_end && last_fetch_timestamp >= 0;
        ReplicaProgress {
            replica_id: id as i32,
            log_end_offset,
            last_fetch_timestamp,
            last_caught_up_timestamp: if caught_up { last_fetch_timestamp } else { -1 },
        }
    };
    let membership = m.membership_config.membership();
    Some(QuorumDescription {
        leader_id: m.id as i32,
        leader_epoch: m.current_term as i32,
        high_watermark: end(m.cluster_committed.as_ref().map(|l| l.index)),
        voters: membership.voter_ids().map(&progress).collect(),
        observers: membership.learner_ids().map(&progress).collect(),
    })
}
