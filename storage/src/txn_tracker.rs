//! `TxnTracker`: the transactional half of Kafka's `ProducerStateManager`,
//! what a partition needs for read_committed — the ongoing transactions, the
//! decided ones whose marker the high watermark has not passed yet, and from
//! them the first unstable offset that bounds the last stable offset (LSO).
//!
//! Pure: driven by batch headers (and the marker each control batch holds)
//! in offset order and by high-watermark updates; no I/O.
//!
//! Invariants: a producer has at most one ongoing transaction; first offsets
//! are unique (each is a distinct batch's base offset), so the by-offset maps
//! mirror the by-producer ones exactly; every completed transaction whose
//! marker is at or above `hw_applied` is in `unreplicated`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rivulet_protocol::control::ControlType;
use rivulet_protocol::record_batch::BatchHeader;

/// A transaction the marker just ended (Kafka's `CompletedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
    /// Kafka's `lastStableOffset(completedTxn)`: the first offset of the
    /// oldest other ongoing transaction, else `last_offset + 1`.
    pub last_stable_offset: i64,
}

/// What a producer-state snapshot keeps of a [`TxnTracker`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TxnSnapshot {
    /// `(producer id, first offset)` of each ongoing transaction, oldest first.
    pub ongoing: Vec<(i64, i64)>,
    /// `(producer id, first offset, marker offset)` of each decided
    /// transaction whose marker is at or above `hw_applied`, by marker.
    pub unreplicated: Vec<(i64, i64, i64)>,
    /// The high watermark last applied when the snapshot was taken.
    pub hw_applied: i64,
}

#[derive(Debug, Default, Clone)]
pub struct TxnTracker {
    /// Producer id → first offset of its ongoing transaction.
    ongoing: HashMap<i64, i64>,
    /// First offset → producer id, for the oldest ongoing transaction.
    ongoing_by_first: BTreeMap<i64, i64>,
    /// Completed transactions whose marker is at or above the high
    /// watermark: marker offset → (producer id, first offset).
    unreplicated: BTreeMap<i64, (i64, i64)>,
    /// `(first offset, marker offset)` of the same, for the oldest.
    unreplicated_by_first: BTreeSet<(i64, i64)>,
    /// The high watermark last applied (unreplicated markers below it gone).
    hw_applied: i64,
}

impl TxnTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Note a batch just written at its offsets; `marker` is the marker of a
    /// control batch (`None` for data, and for control batches that are not
    /// transaction markers). Returns the transaction a marker completed.
    ///
    /// A transactional data batch with records starts a transaction when its
    /// producer has none (an empty one — left by the cleaner — holds nothing
    /// to hide). A marker completes the producer's ongoing transaction, if
    /// any: as Kafka's `ProducerAppendInfo.appendEndTxnMarker`, a marker
    /// without data in this partition completes nothing.
    pub fn on_batch(
        &mut self,
        header: &BatchHeader,
        marker: Option<ControlType>,
    ) -> Option<CompletedTxn> {
        let pid = header.producer_id;
        if pid < 0 || !header.is_transactional() {
            return None;
        }
        if !header.is_control() {
            if header.record_count > 0 && !self.ongoing.contains_key(&pid) {
                self.ongoing.insert(pid, header.base_offset);
                self.ongoing_by_first.insert(header.base_offset, pid);
            }
            return None;
        }
        let kind = marker?;
        let first = self.ongoing.remove(&pid)?;
        self.ongoing_by_first.remove(&first);
        let last = header.base_offset;
        let last_stable_offset = self
            .ongoing_by_first
            .keys()
            .next()
            .copied()
            .unwrap_or(last.saturating_add(1));
        if last >= self.hw_applied {
            self.unreplicated.insert(last, (pid, first));
            self.unreplicated_by_first.insert((first, last));
        }
        Some(CompletedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            aborted: kind == ControlType::Abort,
            last_stable_offset,
        })
    }

    /// The high watermark moved to `hw`: decided transactions whose marker
    /// lies below it are replicated and no longer hold the LSO back (Kafka's
    /// `onHighWatermarkUpdated`).
    pub fn on_high_watermark(&mut self, hw: i64) {
        while let Some((&marker, &(_, first))) = self.unreplicated.first_key_value() {
            if marker >= hw {
                break;
            }
            self.unreplicated.remove(&marker);
            self.unreplicated_by_first.remove(&(first, marker));
        }
        self.hw_applied = hw;
    }

    /// The first offset of the oldest ongoing or not-yet-replicated
    /// transaction. O(log n).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        let ongoing = self.ongoing_by_first.keys().next().copied();
        let unreplicated = self.unreplicated_by_first.iter().next().map(|(f, _)| *f);
        match (ongoing, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `(producer id, first offset)` of every ongoing transaction, oldest first.
    /// The first offset of `producer_id`'s ongoing transaction, if any.
    pub fn ongoing_first_offset(&self, producer_id: i64) -> Option<i64> {
        self.ongoing.get(&producer_id).copied()
    }

    pub fn ongoing(&self) -> Vec<(i64, i64)> {
        self.ongoing_by_first
            .iter()
            .map(|(first, pid)| (*pid, *first))
            .collect()
    }

    /// The log lost every offset from `offset` on. Returns false when the
    /// state cannot be rolled back exactly (a marker below the last applied
    /// high watermark may be gone) and must be rebuilt from the log.
    ///
    /// Otherwise: transactions begun at or after `offset` go; those whose
    /// marker went but whose data (partly) stays are ongoing again.
    pub fn truncate_to(&mut self, offset: i64) -> bool {
        if offset < self.hw_applied {
            return false;
        }
        let gone: Vec<i64> = self
            .ongoing_by_first
            .range(offset..)
            .map(|(f, _)| *f)
            .collect();
        for first in gone {
            if let Some(pid) = self.ongoing_by_first.remove(&first) {
                self.ongoing.remove(&pid);
            }
        }
        let reopened: Vec<(i64, i64, i64)> = self
            .unreplicated
            .range(offset..)
            .map(|(m, (p, f))| (*m, *p, *f))
            .collect();
        for (marker, pid, first) in reopened {
            self.unreplicated.remove(&marker);
            self.unreplicated_by_first.remove(&(first, marker));
            if first < offset {
                // The producer's later transactions began after this marker,
                // so after `offset`: they are gone, and its slot is free.
                self.ongoing.insert(pid, first);
                self.ongoing_by_first.insert(first, pid);
            }
        }
        true
    }

    /// The state to put in a snapshot.
    pub fn to_snapshot(&self) -> TxnSnapshot {
        TxnSnapshot {
            ongoing: self.ongoing(),
            unreplicated: self
                .unreplicated
                .iter()
                .map(|(m, (p, f))| (*p, *f, *m))
                .collect(),
            hw_applied: self.hw_applied,
        }
    }

    /// The tracker a snapshot describes. Input that breaks the invariants
    /// (a producer with two ongoing transactions, two transactions with one
    /// first offset) keeps the later entry, so the maps stay mirrors.
    pub fn from_snapshot(s: &TxnSnapshot) -> Self {
        let mut t = TxnTracker {
            hw_applied: s.hw_applied,
            ..TxnTracker::default()
        };
        for &(pid, first) in &s.ongoing {
            if let Some(old) = t.ongoing.insert(pid, first) {
                t.ongoing_by_first.remove(&old);
            }
            if let Some(other) = t.ongoing_by_first.insert(first, pid) {
                if other != pid {
                    t.ongoing.remove(&other);
                }
            }
        }
        for &(pid, first, marker) in &s.unreplicated {
            if let Some((_, old_first)) = t.unreplicated.insert(marker, (pid, first)) {
                t.unreplicated_by_first.remove(&(old_first, marker));
            }
            t.unreplicated_by_first.insert((first, marker));
        }
        t
    }

    /// Forget everything (the log restarts empty, or is about to be rescanned).
    pub fn clear(&mut self) {
        *self = TxnTracker::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_protocol::control::build_control_batch;
    use rivulet_protocol::record_batch::validate_batch;
    use rivulet_protocol::records::RecordBatchBuilder;
    use rivulet_protocol::Compression;

    fn data(pid: i64, base: i64, n: usize, txn: bool) -> BatchHeader {
        let mut b = RecordBatchBuilder::new(Compression::None)
            .producer(pid, 0, 0)
            .transactional(txn);
        for _ in 0..n {
            b.push(0, Some(b"k"), Some(b"v"), &[]);
        }
        let mut h = validate_batch(&b.build().unwrap()).unwrap();
        h.base_offset = base;
        h
    }

    fn marker(pid: i64, at: i64) -> BatchHeader {
        let b = build_control_batch(pid, 0, ControlType::Commit, 0, 0);
        let mut h = validate_batch(&b).unwrap();
        h.base_offset = at;
        h
    }

    #[test]
    fn lso_follows_open_and_unreplicated_transactions() {
        let mut t = TxnTracker::new();
        assert_eq!(t.first_unstable_offset(), None);
        t.on_batch(&data(1, 0, 2, false), None);
        assert_eq!(t.first_unstable_offset(), None, "non-transactional data");
        t.on_batch(&data(7, 2, 2, true), None);
        t.on_batch(&data(8, 4, 1, true), None);
        t.on_batch(&data(7, 5, 1, true), None);
        assert_eq!(t.ongoing(), vec![(7, 2), (8, 4)]);
        assert_eq!(t.first_unstable_offset(), Some(2));
        let done = t.on_batch(&marker(7, 6), Some(ControlType::Abort)).unwrap();
        assert_eq!(
            done,
            CompletedTxn {
                producer_id: 7,
                first_offset: 2,
                last_offset: 6,
                aborted: true,
                last_stable_offset: 4,
            }
        );
        // Decided but unreplicated: still holds the LSO.
        assert_eq!(t.first_unstable_offset(), Some(2));
        t.on_high_watermark(6);
        assert_eq!(t.first_unstable_offset(), Some(2));
        t.on_high_watermark(7);
        assert_eq!(t.first_unstable_offset(), Some(4));
        let done = t
            .on_batch(&marker(8, 7), Some(ControlType::Commit))
            .unwrap();
        assert_eq!((done.aborted, done.last_stable_offset), (false, 8));
        t.on_high_watermark(8);
        assert_eq!(t.first_unstable_offset(), None);
    }

    #[test]
    fn markers_without_data_and_empty_batches_start_nothing() {
        let mut t = TxnTracker::new();
        assert_eq!(t.on_batch(&marker(3, 0), Some(ControlType::Abort)), None);
        let mut emptied = data(3, 1, 1, true);
        emptied.record_count = 0;
        t.on_batch(&emptied, None);
        assert_eq!(t.first_unstable_offset(), None);
        t.on_batch(&data(3, 2, 1, true), None);
        assert_eq!(t.on_batch(&marker(3, 3), None), None, "not a txn marker");
        assert_eq!(t.first_unstable_offset(), Some(2));
    }

    #[test]
    fn snapshot_round_trips_ongoing_and_unreplicated_transactions() {
        let mut t = TxnTracker::new();
        t.on_batch(&data(1, 0, 1, true), None);
        t.on_batch(&data(2, 1, 1, true), None);
        t.on_batch(&marker(1, 2), Some(ControlType::Abort));
        t.on_high_watermark(1);
        let s = t.to_snapshot();
        assert_eq!(s.ongoing, vec![(2, 1)]);
        assert_eq!(s.unreplicated, vec![(1, 0, 2)]);
        let back = TxnTracker::from_snapshot(&s);
        assert_eq!(back.to_snapshot(), s);
        assert_eq!(back.first_unstable_offset(), Some(0));
        assert_eq!(back.ongoing_first_offset(2), Some(1));
    }

    #[test]
    fn truncation_reopens_transactions_whose_marker_went() {
        let mut t = TxnTracker::new();
        t.on_batch(&data(1, 0, 1, true), None);
        t.on_batch(&marker(1, 1), Some(ControlType::Commit));
        t.on_batch(&data(1, 2, 1, true), None);
        t.on_batch(&data(2, 3, 1, true), None);
        assert!(t.truncate_to(3));
        assert_eq!(t.ongoing(), vec![(1, 2)]);
        assert!(t.truncate_to(1));
        assert_eq!(t.ongoing(), vec![(1, 0)]);
        t.on_batch(&marker(1, 1), Some(ControlType::Commit));
        t.on_high_watermark(2);
        assert!(!t.truncate_to(1), "below the applied high watermark");
    }
}
