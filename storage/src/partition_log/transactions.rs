//! Transactions in [`PartitionLog`] (KIP-98), as read_committed reads them:
//! the last stable offset and the aborted transactions a fetch must list.
//! Tracking them on append and loading them (from a producer-state snapshot
//! and the log after it) is in `producer_load`.
//!
//! Invariants: the [`TxnTracker`](crate::TxnTracker) reflects every batch in
//! the log, in order; each segment's [`TransactionIndex`](crate::TransactionIndex)
//! holds exactly the aborted transactions whose ABORT marker lies in it (the
//! cleaner may leave entries whose data it removed; a load that rescans the
//! segment drops them).

use super::PartitionLog;
use crate::error::Result;
use crate::transaction_index::AbortedTxn;

impl PartitionLog {
    /// The last stable offset: read_committed consumers see offsets below it.
    /// The high watermark, or the first offset of the oldest ongoing or
    /// decided-but-unreplicated transaction if lower (never below the log
    /// start, as Kafka's `maybeIncrementFirstUnstableOffset`). O(log n).
    pub fn last_stable_offset(&self) -> i64 {
        match self.txns.first_unstable_offset() {
            Some(first) => first.max(self.log_start_offset).min(self.high_watermark),
            None => self.high_watermark,
        }
    }

    /// The first offset of the oldest ongoing or decided-but-unreplicated
    /// transaction (clamped to the log start), if any.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.txns
            .first_unstable_offset()
            .map(|f| f.max(self.log_start_offset))
    }

    /// Whether `producer_id` has a transaction ongoing in this partition
    /// (O(1): the produce path asks it for every transactional batch).
    pub fn has_ongoing_transaction(&self, producer_id: i64) -> bool {
        self.txns.ongoing_first_offset(producer_id).is_some()
    }

    /// `(producer id, first offset)` of every ongoing transaction, oldest
    /// first (DescribeProducers).
    pub fn ongoing_transactions(&self) -> Vec<(i64, i64)> {
        self.txns.ongoing()
    }

    /// The aborted transactions a fetch from `start_offset` whose data ends
    /// before `upper_bound_offset` must list: every one with
    /// `last_offset ≥ start_offset` and `first_offset < upper_bound_offset`.
    ///
    /// As Kafka's `collectAbortedTransactions`: searched from the segment
    /// holding `start_offset` on (an entry sits in its marker's segment, so
    /// no earlier one can qualify), stopping at the first entry whose
    /// `last_stable_offset ≥ upper_bound_offset` (every later transaction
    /// began at or after it). In memory: no file I/O; without aborts, one
    /// empty-list check per segment from the fetch offset's on.
    pub fn aborted_transactions(
        &self,
        start_offset: i64,
        upper_bound_offset: i64,
    ) -> Result<Vec<AbortedTxn>> {
        let mut out = Vec::new();
        let floor = self
            .segments
            .range(..=start_offset)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        for seg in self.segments.range(floor..).map(|(_, s)| s) {
            for e in seg.txn_index().entries() {
                if e.last_offset >= start_offset && e.first_offset < upper_bound_offset {
                    out.push(*e);
                }
                if e.last_stable_offset >= upper_bound_offset {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }
}
