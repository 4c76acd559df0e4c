//! Both sides of a follower fetch. On the leader, a fetch with a replica id
//! is an event for the state machine (it records the follower's position
//! or answers a divergence). On a follower, the replica fetcher asks what
//! to fetch and hands each partition of the response here: the state
//! machine decides whether to truncate, append and move the high
//! watermark; this side does it (the log keeps its producer state through
//! appends and truncations) and fsyncs what the next fetch acknowledges.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError as E;
use rivulet_storage::config::FlushPolicy;
use rivulet_storage::FlushTracker;
use tracing::warn;

use super::{Partition, ReplicaManager};
use crate::errors;
use crate::replication::{FetchedPartition, FollowerFetchAnswer, ReplicaFetch};

impl ReplicaManager {
    /// The leader's side of a fetch from `follower` at `fetch_offset`,
    /// whose last fetched batch had `last_fetched_epoch`: either where it
    /// must truncate (KIP-595), or the follower holds everything below
    /// `fetch_offset` — which may advance the high watermark.
    pub fn follower_fetch(
        &self,
        partition: &Partition,
        follower: i32,
        fetch_offset: i64,
        durable_offset: Option<i64>,
        last_fetched_epoch: i32,
    ) -> FollowerFetchAnswer {
        let now = self.now_ms();
        let mut log = partition.log.lock();
        let (answer, actions) = partition.replica.lock().on_follower_fetch(
            follower,
            fetch_offset,
            durable_offset,
            last_fetched_epoch,
            &*log,
            now,
        );
        if let Err(e) = partition.execute(&mut log, actions, None) {
            warn!(partition = %partition.tp, error = %e, "recording a follower fetch");
        }
        answer
    }

    /// On a follower: what to fetch for `partition` from `leader`, if this
    /// node follows it from there.
    pub fn fetch_request(&self, partition: &Partition, leader: i32) -> Option<ReplicaFetch> {
        let log = partition.log.lock();
        let mut fetch = partition.replica.lock().fetch_request(&*log)?;
        // On-ack: the fetcher asks again while its fsync runs, so the leader
        // learns how far the log is on disk, not only how far it is written.
        if log.config().flush_policy == FlushPolicy::OnAck {
            fetch.durable_offset = Some(log.flush_tracker().flushed_offset());
        }
        (fetch.leader == leader).then_some(fetch)
    }

    /// On a follower: apply one partition of a fetch response (`records`
    /// are its batches, unchanged). `Ok((changed, durable))`: whether the
    /// log changed, and (flush policy on-ack) the fsync to wait for before
    /// the next fetch acknowledges these records to the leader — the
    /// fetcher applies every partition of a response first and then waits
    /// for all their fsyncs at once. `Err(code)` when the leader answered
    /// an error for it or the log could not take it.
    pub fn apply_fetched(
        &self,
        partition: &Partition,
        response: &FetchedPartition,
        records: Bytes,
    ) -> Result<(bool, Option<FollowerDurable>), i16> {
        let mut log = partition.log.lock();
        let actions = partition
            .replica
            .lock()
            .on_fetch_response(response, &*log)?;
        let effects = partition
            .execute(&mut log, actions, Some(&records))
            .map_err(|e| {
                warn!(
                    partition = %partition.tp, leader = response.leader, error = %e,
                    "cannot apply replicated batches"
                );
                errors::storage(&e)
            })?;
        let durable =
            (effects.appended && log.config().flush_policy == FlushPolicy::OnAck).then(|| {
                FollowerDurable {
                    tracker: log.flush_tracker(),
                    upto: log.log_end_offset(),
                }
            });
        Ok((effects.truncated || effects.appended, durable))
    }
}

/// Replicated records a follower must have on disk before its next fetch
/// acknowledges them (flush policy on-ack; DESIGN: Durability).
#[derive(Debug)]
pub struct FollowerDurable {
    tracker: Arc<FlushTracker>,
    upto: i64,
}

impl FollowerDurable {
    /// Fsync on the blocking pool.
    pub async fn wait(self) -> Result<(), i16> {
        let FollowerDurable { tracker, upto } = self;
        match tokio::task::spawn_blocking(move || tracker.wait_durable(upto)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(errors::storage(&e)),
            Err(_) => Err(E::UnknownServerError.code()),
        }
    }

    /// [`Self::wait`], and when it finished.
    pub async fn wait_timed(self) -> (Result<(), i16>, std::time::Instant) {
        let result = self.wait().await;
        (result, std::time::Instant::now())
    }
}
