//! The group coordinator's side of transactions (KIP-98, KIP-447):
//! TxnOffsetCommit writes offsets as a transactional batch of the producer
//! and keeps them pending; [`GroupCoordinator::complete_txn`] applies or
//! drops them once the transaction's marker is in the offsets partition;
//! OffsetFetch sees committed offsets only, and with `require_stable`
//! (KIP-447) answers UNSTABLE_OFFSET_COMMIT where one is pending.
//!
//! Ordering: a TxnOffsetCommit holds its group's lock from the check to
//! the pending update, and `complete_txn` takes the same lock, so a marker
//! reported while the commit's write waits for its ISR is applied after
//! the commit is recorded.

use std::sync::Arc;

use kafka_protocol::ResponseError as E;
use tracing::{debug, warn};

use super::{now_ms, GroupCoordinator, GroupEntry};
use crate::group::offsets::{self, CommittedOffset, OffsetsRecord, OFFSETS_TOPIC};
use crate::replica_manager::AppendOrigin;

/// Who commits offsets in a transaction: the producer (whose epoch the
/// offsets partition checks) and, from TxnOffsetCommit v3 (KIP-447), the
/// consumer's group credentials (-1 / "" / `None` when not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnCommit {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// One partition of an OffsetFetch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    /// The committed offset; `None` when there is none (or it is unstable).
    pub offset: Option<CommittedOffset>,
    /// 0, or UNSTABLE_OFFSET_COMMIT when `require_stable` was asked and a
    /// transaction has a pending offset for the partition.
    pub error_code: i16,
}

impl GroupCoordinator {
    /// TxnOffsetCommit: store `commits` as pending offsets of the
    /// producer's transaction; a group-level error for all partitions
    /// otherwise. A group that does not exist is created when the request
    /// has no generation (offsets-only transactions, simple consumers);
    /// with a generation it is ILLEGAL_GENERATION, as Kafka's
    /// `validateTransactionalOffsetCommit`. A producer epoch older than one
    /// the offsets partition has seen is INVALID_PRODUCER_EPOCH.
    pub async fn txn_commit(
        &self,
        group_id: &str,
        txn: &TxnCommit,
        commits: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), i16> {
        if txn.producer_id < 0 {
            return Err(E::InvalidProducerIdMapping.code());
        }
        if txn.producer_epoch < 0 {
            return Err(E::InvalidProducerEpoch.code());
        }
        let entry = match self.entry(group_id, txn.generation_id < 0).await {
            Ok(Some(e)) => e,
            Ok(None) => return Err(E::IllegalGeneration.code()),
            Err(code) => return Err(code),
        };
        let mut inner = entry.inner.lock().await;
        // A consumer group (KIP-848) checks the member epoch the producer
        // sends as its generation.
        let code = match &inner.consumer {
            Some(g) => g.validate_offset_commit(&txn.member_id, txn.generation_id),
            None => inner.group.validate_txn_offset_commit(
                &txn.member_id,
                txn.group_instance_id.as_deref(),
                txn.generation_id,
            ),
        };
        if code != 0 {
            return Err(code);
        }
        if commits.is_empty() {
            return Ok(());
        }
        let records: Vec<OffsetsRecord> = commits
            .iter()
            .map(|(t, p, v)| OffsetsRecord::Offset {
                group: group_id.to_string(),
                topic: t.clone(),
                partition: *p,
                value: Some(v.clone()),
            })
            .collect();
        let Some(batch) =
            offsets::encode_txn_batch(&records, txn.producer_id, txn.producer_epoch, now_ms())
        else {
            return Err(E::UnknownServerError.code());
        };
        let base = self
            .append_batch(entry.partition, batch, AppendOrigin::Coordinator)
            .await?;
        for (at, (t, p, v)) in (base..).zip(commits) {
            inner.offsets.prepare_txn(txn.producer_id, (t, p), v, at);
        }
        debug!(
            group = group_id,
            producer_id = txn.producer_id,
            "transactional offsets pending"
        );
        Ok(())
    }

    /// The transaction of `producer_id` ended: its COMMIT (`commit`) or
    /// ABORT marker has been appended to `__consumer_offsets` partition
    /// `offsets_partition`. Moves the producer's pending offsets of every
    /// group in that partition into the committed ones (where their record
    /// is newer than the committed one's) or drops them (Kafka's
    /// `GroupMetadataManager.handleTxnCompletion`).
    ///
    /// Idempotent; does nothing when this node does not lead the partition
    /// (the new leader replays the marker). A partition not loaded yet is
    /// loaded, which replays the marker.
    pub async fn complete_txn(&self, offsets_partition: i32, producer_id: i64, commit: bool) {
        if self.node.image().topic(OFFSETS_TOPIC).is_none() {
            return;
        }
        if !self.leads(offsets_partition) {
            self.unload(offsets_partition);
            return;
        }
        if !self.loaded.lock().contains(&offsets_partition) {
            if let Err(code) = self.load(offsets_partition).await {
                warn!(
                    partition = offsets_partition,
                    code, "could not load offsets partition to complete a transaction"
                );
                return;
            }
        }
        // A load that read the log before the marker leaves the offsets
        // pending: apply the marker to what is in memory either way.
        let entries: Vec<(String, Arc<GroupEntry>)> = self
            .groups
            .lock()
            .iter()
            .filter(|(_, e)| e.partition == offsets_partition)
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        for (group, e) in entries {
            let mut inner = e.inner.lock().await;
            if inner.offsets.has_producer(producer_id) {
                let applied = inner.offsets.complete_txn(producer_id, commit);
                debug!(
                    group,
                    producer_id, commit, applied, "transactional offsets completed"
                );
            }
        }
    }

    /// OffsetFetch: the committed offsets of the given partitions (all
    /// committed ones when `None`). With `require_stable` (OffsetFetch v7+,
    /// KIP-447) a partition with a pending transactional offset answers
    /// UNSTABLE_OFFSET_COMMIT instead, so a consumer starting after a
    /// transactional producer does not read an offset about to change.
    pub async fn fetch(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
        require_stable: bool,
    ) -> Result<Vec<FetchedOffset>, i16> {
        let Some(entry) = self.entry(group_id, false).await? else {
            return Ok(partitions
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, partition)| FetchedOffset {
                    topic,
                    partition,
                    offset: None,
                    error_code: 0,
                })
                .collect());
        };
        let inner = entry.inner.lock().await;
        let row = |topic: String, partition: i32| {
            let key = (topic, partition);
            let (offset, error_code) = if require_stable && inner.offsets.has_pending(&key) {
                (None, E::UnstableOffsetCommit.code())
            } else {
                (inner.offsets.committed(&key).cloned(), 0)
            };
            let (topic, partition) = key;
            FetchedOffset {
                topic,
                partition,
                offset,
                error_code,
            }
        };
        Ok(match partitions {
            Some(list) => list.into_iter().map(|(t, p)| row(t, p)).collect(),
            None => {
                let keys: Vec<(String, i32)> = inner
                    .offsets
                    .all_committed()
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.into_iter().map(|(t, p)| row(t, p)).collect()
            }
        })
    }
}
