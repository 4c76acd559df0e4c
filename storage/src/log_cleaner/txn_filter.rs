//! What compaction does with transactions (Kafka's
//! `CleanedTransactionMetadata` and the control-batch rules of
//! `LogCleaner`/KIP-534): data of aborted transactions is dropped, control
//! batches are never deduplicated by key, and a marker goes only once no data
//! of its transaction is left in the log and `delete.retention.ms` has passed
//! since a pass first found it removable.
//!
//! A pass reads batches in offset order from the log's first segment on, so
//! "no data of the transaction is left" is learnt as Kafka does: a marker is
//! removable when this pass met no data batch of its transaction before it
//! (the data went in an earlier pass). Removable markers are first stamped
//! with a delete horizon (`now + delete.retention.ms` in the base timestamp,
//! attribute bit 6, as KIP-534) and dropped by a later pass after it.

use std::collections::{HashMap, HashSet};

use rivulet_protocol::control::ControlType;
use rivulet_protocol::record_batch::{BatchHeader, DELETE_HORIZON_BIT};
use rivulet_protocol::records;

use crate::error::Result;
use crate::partition_log::producer_load::marker_of;
use crate::transaction_index::AbortedTxn;

/// What to do with a control batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MarkerFate {
    /// Its transaction still has data here (or it is not a marker we know).
    Keep,
    /// No data of its transaction is left: stamp or honour the delete horizon.
    Removable,
}

/// Per-pass transaction state of the cleaner.
#[derive(Debug, Default)]
pub(super) struct TxnFilter {
    /// Aborted transactions by producer, ordered by marker offset.
    aborted: HashMap<i64, Vec<AbortedTxn>>,
    /// `(producer, marker offset)` of aborted transactions whose data this
    /// pass met (and dropped).
    aborted_seen: HashSet<(i64, i64)>,
    /// Producers whose current committed transaction has data this pass met.
    committed_seen: HashSet<i64>,
}

impl TxnFilter {
    /// `aborted`: the log's aborted transactions overlapping the range.
    pub(super) fn new(aborted: &[AbortedTxn]) -> Self {
        let mut by_pid: HashMap<i64, Vec<AbortedTxn>> = HashMap::new();
        for a in aborted {
            by_pid.entry(a.producer_id).or_default().push(*a);
        }
        for v in by_pid.values_mut() {
            v.sort_by_key(|a| a.last_offset);
        }
        TxnFilter {
            aborted: by_pid,
            ..TxnFilter::default()
        }
    }

    /// The aborted transaction a data batch belongs to, if any: same
    /// producer, offset within `first_offset..=last_offset`.
    pub(super) fn aborted_txn_of(&self, h: &BatchHeader) -> Option<&AbortedTxn> {
        if !h.is_transactional() || h.is_control() || h.producer_id < 0 {
            return None;
        }
        let txns = self.aborted.get(&h.producer_id)?;
        let i = txns.partition_point(|a| a.last_offset < h.base_offset);
        txns.get(i).filter(|a| a.first_offset <= h.base_offset)
    }

    /// A data batch is read: whether it must go as aborted data. Empty
    /// batches (left by an earlier pass) count as no data.
    pub(super) fn on_data_batch(&mut self, h: &BatchHeader) -> bool {
        if !h.is_transactional() || h.producer_id < 0 {
            return false;
        }
        let aborted = self.aborted_txn_of(h).map(|a| a.last_offset);
        if h.record_count > 0 {
            match aborted {
                Some(marker) => {
                    self.aborted_seen.insert((h.producer_id, marker));
                }
                None => {
                    self.committed_seen.insert(h.producer_id);
                }
            }
        }
        aborted.is_some()
    }

    /// A control batch is read: whether its transaction still has data, and
    /// the index entry to keep with it when it is a retained ABORT marker.
    pub(super) fn on_control_batch(
        &mut self,
        h: &BatchHeader,
        bytes: &[u8],
    ) -> (MarkerFate, Option<AbortedTxn>) {
        if h.producer_id < 0 || !h.is_transactional() {
            return (MarkerFate::Keep, None);
        }
        if h.record_count == 0 {
            // Emptied by an earlier pass: nothing left to mark.
            return (MarkerFate::Removable, None);
        }
        let pid = h.producer_id;
        let committed_seen = self.committed_seen.remove(&pid);
        match marker_of(h, bytes).map(|(kind, _)| kind) {
            Some(ControlType::Abort) => {
                let entry = self
                    .aborted
                    .get(&pid)
                    .and_then(|v| v.iter().find(|a| a.last_offset == h.base_offset))
                    .copied();
                if self.aborted_seen.remove(&(pid, h.base_offset)) {
                    (MarkerFate::Keep, entry)
                } else {
                    (MarkerFate::Removable, None)
                }
            }
            Some(ControlType::Commit) if committed_seen => (MarkerFate::Keep, None),
            Some(ControlType::Commit) => (MarkerFate::Removable, None),
            None => (MarkerFate::Keep, None),
        }
    }
}

/// A removable marker's bytes after this pass: `None` once its delete
/// horizon has passed; stamped with `now + delete_retention_ms` the first
/// time (record timestamps kept, as KIP-534 rebuilds the batch); unchanged
/// while the horizon is ahead.
pub(super) fn removable_marker(
    h: &BatchHeader,
    bytes: &[u8],
    now: i64,
    delete_retention_ms: i64,
    max_decompressed: usize,
) -> Result<Option<Vec<u8>>> {
    if h.has_delete_horizon() {
        return Ok((h.base_timestamp > now).then(|| bytes.to_vec()));
    }
    let horizon = now.saturating_add(delete_retention_ms.max(0));
    let Ok(decoded) = records::decode_batch(bytes, max_decompressed) else {
        return Ok(Some(bytes.to_vec()));
    };
    let mut recs = decoded.records.clone();
    for r in &mut recs {
        let Some(delta) = decoded.timestamp_of(r).checked_sub(horizon) else {
            return Ok(Some(bytes.to_vec()));
        };
        r.timestamp_delta = delta;
    }
    let template = BatchHeader {
        attributes: h.attributes | DELETE_HORIZON_BIT,
        base_timestamp: horizon,
        ..*h
    };
    Ok(Some(records::build_batch(&template, &recs)?))
}
