//! Idempotent-producer state of one partition (Kafka's
//! `ProducerStateManager`): for every producer id, its epoch and the last
//! five batches' sequence ranges and offsets, so a retried batch is answered
//! with its original offsets instead of being written twice, and a gap in
//! sequences is refused.
//!
//! Owned by the [`PartitionLog`](crate::PartitionLog), which records every
//! batch it appends (as leader or follower) and every transaction marker's
//! coordinator epoch, so the state is the same on every replica. On open it
//! is restored from the newest usable `<offset>.snapshot`
//! ([`crate::producer_snapshot`]) plus the batches after it, or rebuilt from
//! every batch header when there is none.
//!
//! Invariants: each producer keeps at most [`BATCHES_TO_RETAIN`] batches, all
//! of its current epoch, oldest first; at most [`MAX_PRODUCERS`] producers are
//! kept, the least recently used one forgotten first. The recency order is
//! part of the state: snapshots store producers least recently used first.

use std::collections::{HashMap, VecDeque};

use rivulet_protocol::BatchHeader;

/// Batches remembered per producer (Kafka's `NUM_BATCHES_TO_RETAIN`).
pub const BATCHES_TO_RETAIN: usize = 5;
/// Producers remembered per partition before the oldest is forgotten.
pub const MAX_PRODUCERS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
    /// Largest timestamp of the producer's last batch (DescribeProducers).
    last_timestamp: i64,
    /// Coordinator epoch of the last transaction marker for the producer
    /// (`None`: no marker seen), restored from snapshots and markers in the
    /// log, so a deposed coordinator stays fenced after a restart.
    coordinator_epoch: Option<i32>,
    /// Order of last use, to forget the least recently used producer.
    touched: u64,
}

/// What DescribeProducers reports of one producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    /// -1 when the producer has no batch remembered in this epoch.
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// -1 when no marker for it is known.
    pub coordinator_epoch: i32,
}

/// Verdict on an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New data: append it.
    Append,
    /// A retry of a batch already in the log at these offsets.
    Duplicate(BatchMetadata),
    OutOfOrder {
        expected: i32,
        got: i32,
    },
    /// The producer's epoch is older than one already seen.
    InvalidEpoch {
        current: i16,
        got: i16,
    },
}

/// `base + delta` in Kafka's wrapping sequence space.
pub fn last_sequence(base: i32, last_offset_delta: i32) -> i32 {
    if base > i32::MAX - last_offset_delta {
        last_offset_delta - (i32::MAX - base) - 1
    } else {
        base + last_offset_delta
    }
}

fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

/// One producer as a snapshot holds it (Kafka's `ProducerStateEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSnapshotEntry {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_timestamp: i64,
    pub coordinator_epoch: Option<i32>,
    /// Oldest first, at most [`BATCHES_TO_RETAIN`].
    pub batches: Vec<BatchMetadata>,
}

#[derive(Debug, Default, Clone)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    clock: u64,
}

impl ProducerStateManager {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Check a batch from an idempotent producer before it is appended.
    pub fn check(&self, h: &BatchHeader) -> SequenceCheck {
        if h.producer_id < 0 {
            return SequenceCheck::Append;
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            return SequenceCheck::Append;
        };
        if h.producer_epoch < entry.epoch {
            return SequenceCheck::InvalidEpoch {
                current: entry.epoch,
                got: h.producer_epoch,
            };
        }
        if h.producer_epoch > entry.epoch {
            return if h.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder {
                    expected: 0,
                    got: h.base_sequence,
                }
            };
        }
        let last = last_sequence(h.base_sequence, h.last_offset_delta);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last)
        {
            return SequenceCheck::Duplicate(*dup);
        }
        match entry.batches.back() {
            Some(prev) if next_sequence(prev.last_seq) != h.base_sequence => {
                SequenceCheck::OutOfOrder {
                    expected: next_sequence(prev.last_seq),
                    got: h.base_sequence,
                }
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Check only the epoch of a batch written by a coordinator (Kafka's
    /// `AppendOrigin.COORDINATOR`): such batches carry no sequence, so an
    /// epoch older than the newest seen is all there is to refuse.
    pub fn check_epoch(&self, h: &BatchHeader) -> SequenceCheck {
        match self.producers.get(&h.producer_id) {
            Some(entry) if h.producer_id >= 0 && h.producer_epoch < entry.epoch => {
                SequenceCheck::InvalidEpoch {
                    current: entry.epoch,
                    got: h.producer_epoch,
                }
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Record a batch now in the log (header with its assigned offsets).
    ///
    /// A control batch (transaction marker) or a batch without a sequence
    /// (a coordinator's transactional offset commit) only moves the
    /// producer's epoch forward, as Kafka's `appendEndTxnMarker`: recording
    /// its sequence -1 would make the producer's next batch out of order.
    pub fn record(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 {
            return;
        }
        if h.is_control() || h.base_sequence < 0 {
            self.record_epoch(h.producer_id, h.producer_epoch);
            return;
        }
        self.clock += 1;
        let clock = self.clock;
        if !self.producers.contains_key(&h.producer_id) {
            self.evict_if_full();
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.batches.clear();
            entry.epoch = h.producer_epoch;
        }
        entry.touched = clock;
        entry.last_timestamp = h.max_timestamp;
        entry.batches.push_back(BatchMetadata {
            first_seq: h.base_sequence,
            last_seq: last_sequence(h.base_sequence, h.last_offset_delta),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
        while entry.batches.len() > BATCHES_TO_RETAIN {
            entry.batches.pop_front();
        }
    }

    /// Move `producer_id`'s epoch forward to `epoch` (a newer epoch starts
    /// its sequences afresh); an older epoch changes nothing.
    fn record_epoch(&mut self, producer_id: i64, epoch: i16) {
        self.clock += 1;
        let clock = self.clock;
        if !self.producers.contains_key(&producer_id) {
            self.evict_if_full();
        }
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                ..ProducerEntry::default()
            });
        if epoch > entry.epoch {
            entry.batches.clear();
            entry.epoch = epoch;
        }
        entry.touched = clock;
    }

    /// Forget the least recently used producer when the table is full.
    fn evict_if_full(&mut self) {
        if self.producers.len() < MAX_PRODUCERS {
            return;
        }
        if let Some(oldest) = self
            .producers
            .iter()
            .min_by_key(|(_, e)| e.touched)
            .map(|(id, _)| *id)
        {
            self.producers.remove(&oldest);
        }
    }

    /// The coordinator epoch of the last marker for `producer_id`, if it is
    /// newer than `epoch` (the marker then comes from a deposed
    /// coordinator).
    pub fn newer_coordinator_epoch(&self, producer_id: i64, epoch: i32) -> Option<i32> {
        self.producers
            .get(&producer_id)
            .and_then(|e| e.coordinator_epoch)
            .filter(|known| *known > epoch)
    }

    /// A marker written by the coordinator of `epoch` for `producer_id`.
    pub fn record_coordinator_epoch(&mut self, producer_id: i64, epoch: i32) {
        if let Some(e) = self.producers.get_mut(&producer_id) {
            e.coordinator_epoch = Some(e.coordinator_epoch.map_or(epoch, |k| k.max(epoch)));
        }
    }

    /// Every producer remembered, by id (DescribeProducers).
    pub fn summaries(&self) -> Vec<ProducerSummary> {
        let mut out: Vec<ProducerSummary> = self
            .producers
            .iter()
            .map(|(id, e)| ProducerSummary {
                producer_id: *id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: if e.batches.is_empty() {
                    -1
                } else {
                    e.last_timestamp
                },
                coordinator_epoch: e.coordinator_epoch.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Every producer, least recently used first (the order eviction
    /// follows), for a snapshot.
    pub fn snapshot_entries(&self) -> Vec<ProducerSnapshotEntry> {
        let mut by_use: Vec<(&i64, &ProducerEntry)> = self.producers.iter().collect();
        by_use.sort_by_key(|(_, e)| e.touched);
        by_use
            .into_iter()
            .map(|(id, e)| ProducerSnapshotEntry {
                producer_id: *id,
                epoch: e.epoch,
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                batches: e.batches.iter().copied().collect(),
            })
            .collect()
    }

    /// The state a snapshot holds: `entries` least recently used first. A
    /// producer listed twice keeps its later entry; batches beyond
    /// [`BATCHES_TO_RETAIN`] and producers beyond [`MAX_PRODUCERS`] are
    /// dropped oldest first, so any input gives a state within the limits.
    pub fn from_snapshot_entries(entries: Vec<ProducerSnapshotEntry>) -> Self {
        let mut state = ProducerStateManager::new();
        let skip = entries.len().saturating_sub(MAX_PRODUCERS);
        for e in entries.into_iter().skip(skip) {
            state.clock += 1;
            let skip_batches = e.batches.len().saturating_sub(BATCHES_TO_RETAIN);
            state.producers.insert(
                e.producer_id,
                ProducerEntry {
                    epoch: e.epoch,
                    batches: e.batches.into_iter().skip(skip_batches).collect(),
                    last_timestamp: e.last_timestamp,
                    coordinator_epoch: e.coordinator_epoch,
                    touched: state.clock,
                },
            );
        }
        state
    }

    /// The newest epoch seen for `producer_id`.
    pub fn epoch_of(&self, producer_id: i64) -> Option<i16> {
        self.producers.get(&producer_id).map(|e| e.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    #[test]
    fn duplicates_are_recognised_and_gaps_refused() {
        let mut s = ProducerStateManager::new();
        let b0 = header(7, 0, 0, 3, 10);
        assert_eq!(s.check(&b0), SequenceCheck::Append);
        s.record(&b0);
        let b1 = header(7, 0, 3, 2, 13);
        assert_eq!(s.check(&b1), SequenceCheck::Append);
        s.record(&b1);
        match s.check(&header(7, 0, 0, 3, 0)) {
            SequenceCheck::Duplicate(m) => assert_eq!((m.first_offset, m.last_offset), (10, 12)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.check(&header(7, 0, 9, 1, 0)),
            SequenceCheck::OutOfOrder {
                expected: 5,
                got: 9
            }
        );
        assert_eq!(
            s.check(&header(7, 0, 5, 1, 0)),
            SequenceCheck::Append,
            "same epoch, next sequence"
        );
    }

    #[test]
    fn epochs_fence_old_producers_and_new_epochs_restart_at_zero() {
        let mut s = ProducerStateManager::new();
        s.record(&header(1, 3, 0, 1, 0));
        assert_eq!(
            s.check(&header(1, 2, 1, 1, 0)),
            SequenceCheck::InvalidEpoch { current: 3, got: 2 }
        );
        assert!(matches!(
            s.check(&header(1, 4, 5, 1, 0)),
            SequenceCheck::OutOfOrder { .. }
        ));
        assert_eq!(s.check(&header(1, 4, 0, 1, 0)), SequenceCheck::Append);
    }

    #[test]
    fn markers_and_coordinator_writes_move_only_the_epoch() {
        let mut s = ProducerStateManager::new();
        s.record(&header(1, 0, 0, 3, 0));
        // A commit marker of the same epoch: the producer's next
        // transaction continues its sequences.
        let mut marker = header(1, 0, -1, 1, 3);
        marker.attributes = 0x30; // transactional + control
        s.record(&marker);
        assert_eq!(s.check(&header(1, 0, 3, 1, 4)), SequenceCheck::Append);
        // A coordinator's batch without sequence at a newer epoch fences
        // the old one and leaves no sequence behind.
        s.record(&header(1, 1, -1, 2, 5));
        assert_eq!(s.epoch_of(1), Some(1));
        assert_eq!(
            s.check_epoch(&header(1, 0, -1, 1, 7)),
            SequenceCheck::InvalidEpoch { current: 1, got: 0 }
        );
        assert_eq!(
            s.check_epoch(&header(1, 1, -1, 1, 7)),
            SequenceCheck::Append
        );
        assert_eq!(s.check(&header(1, 1, 0, 1, 7)), SequenceCheck::Append);
        // An older epoch changes nothing.
        s.record(&header(1, 0, -1, 1, 8));
        assert_eq!(s.epoch_of(1), Some(1));
        assert_eq!(
            s.check_epoch(&header(9, 0, -1, 1, 0)),
            SequenceCheck::Append
        );
    }

    #[test]
    fn snapshot_entries_restore_the_same_state_in_the_same_use_order() {
        let mut s = ProducerStateManager::new();
        s.record(&header(3, 0, 0, 2, 0));
        s.record(&header(1, 2, 0, 1, 2));
        let mut marker = header(3, 0, -1, 1, 3);
        marker.attributes = 0x30;
        s.record(&marker);
        s.record_coordinator_epoch(3, 7);
        let entries = s.snapshot_entries();
        assert_eq!(
            entries.iter().map(|e| e.producer_id).collect::<Vec<_>>(),
            vec![1, 3],
            "least recently used first"
        );
        let restored = ProducerStateManager::from_snapshot_entries(entries.clone());
        assert_eq!(restored.snapshot_entries(), entries);
        assert_eq!(restored.newer_coordinator_epoch(3, 6), Some(7));
        assert!(matches!(
            restored.check(&header(3, 0, 0, 2, 9)),
            SequenceCheck::Duplicate(_)
        ));
        // Over-long input is cut to the newest batches.
        let mut long = entries[0].clone();
        long.batches = (0..8)
            .map(|i| BatchMetadata {
                first_seq: i,
                last_seq: i,
                first_offset: i as i64,
                last_offset: i as i64,
            })
            .collect();
        let cut = ProducerStateManager::from_snapshot_entries(vec![long]);
        let batches = &cut.snapshot_entries()[0].batches;
        assert_eq!(batches.len(), BATCHES_TO_RETAIN);
        assert_eq!(batches[0].first_seq, 3);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut s = ProducerStateManager::new();
        for i in 0..7 {
            s.record(&header(1, 0, i, 1, i as i64));
        }
        assert!(matches!(
            s.check(&header(1, 0, 1, 1, 0)),
            SequenceCheck::OutOfOrder { .. }
        ));
        assert!(matches!(
            s.check(&header(1, 0, 6, 1, 0)),
            SequenceCheck::Duplicate(_)
        ));
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
        let mut w = ProducerStateManager::new();
        w.record(&header(2, 0, i32::MAX - 1, 2, 0));
        assert_eq!(w.check(&header(2, 0, 0, 1, 2)), SequenceCheck::Append);
    }
}
