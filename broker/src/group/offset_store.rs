//! A group's offsets: committed ones, and those committed inside a
//! transaction that has not ended yet (KIP-98 TxnOffsetCommit), kept
//! pending per producer id until the transaction's COMMIT or ABORT marker.
//! Also the replay of a `__consumer_offsets` partition into groups, which
//! follows the same rules. Pure: no I/O, no clock.
//!
//! Rules (Kafka's `OffsetMetadataManager`, the group coordinator of 3.7+):
//! - Every stored offset remembers the log offset of the record that wrote
//!   it. On COMMIT a pending offset replaces the committed one only if its
//!   record is newer in the log: a plain OffsetCommit written after the
//!   transactional one wins, whatever order the marker comes in.
//! - A retried TxnOffsetCommit of the same producer overwrites its pending
//!   offset (the last write wins).
//! - A tombstone (OffsetDelete, DeleteGroups, expiry) removes the committed
//!   offset and every producer's pending offset of that partition, so a
//!   later COMMIT cannot resurrect it. Expiry never removes an offset
//!   that has a pending transactional one.
//! - OffsetFetch shows committed offsets only; with `require_stable` a
//!   partition with a pending offset answers UNSTABLE_OFFSET_COMMIT.
//!
//! Invariant: no producer has an empty pending map (a producer id listed
//! in [`GroupOffsets::producers`] has at least one pending offset).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::consumer::GroupData;
use super::offsets::{CommittedOffset, LogEntry, OffsetsRecord};
use super::types::GroupSnapshot;

/// `(topic, partition)` of a committed offset.
pub type OffsetKey = (String, i32);

/// An offset with the log offset of the record that wrote it (Kafka's
/// `OffsetAndMetadata.recordOffset`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    value: CommittedOffset,
    record_offset: i64,
}

/// One group's committed and pending transactional offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupOffsets {
    committed: BTreeMap<OffsetKey, Stored>,
    /// Producer id → its pending offsets.
    pending: BTreeMap<i64, BTreeMap<OffsetKey, Stored>>,
}

impl GroupOffsets {
    /// The committed offset of a partition (pending ones are invisible).
    pub fn committed(&self, key: &OffsetKey) -> Option<&CommittedOffset> {
        self.committed.get(key).map(|s| &s.value)
    }

    /// Every committed offset, by topic and partition.
    pub fn all_committed(&self) -> impl Iterator<Item = (&OffsetKey, &CommittedOffset)> {
        self.committed.iter().map(|(k, s)| (k, &s.value))
    }

    /// Whether any producer has a pending offset for the partition.
    pub fn has_pending(&self, key: &OffsetKey) -> bool {
        self.pending.values().any(|m| m.contains_key(key))
    }

    /// Whether `producer_id` has pending offsets in this group.
    pub fn has_producer(&self, producer_id: i64) -> bool {
        self.pending.contains_key(&producer_id)
    }

    /// Producers with pending offsets in this group.
    pub fn producers(&self) -> impl Iterator<Item = i64> + '_ {
        self.pending.keys().copied()
    }

    /// No committed and no pending offsets (Kafka's `!hasOffsets`).
    pub fn is_empty(&self) -> bool {
        self.committed.is_empty() && self.pending.is_empty()
    }

    /// A plain OffsetCommit written at `record_offset`.
    pub fn commit(&mut self, key: OffsetKey, value: CommittedOffset, record_offset: i64) {
        self.committed.insert(
            key,
            Stored {
                value,
                record_offset,
            },
        );
    }

    /// A TxnOffsetCommit of `producer_id` written at `record_offset`:
    /// pending until the producer's marker; replaces the producer's earlier
    /// pending offset of the partition.
    pub fn prepare_txn(
        &mut self,
        producer_id: i64,
        key: OffsetKey,
        value: CommittedOffset,
        record_offset: i64,
    ) {
        self.pending.entry(producer_id).or_default().insert(
            key,
            Stored {
                value,
                record_offset,
            },
        );
    }

    /// The producer's transaction ended: on commit its pending offsets
    /// become committed where their record is newer than the committed
    /// one's; on abort they go. The number of offsets that became
    /// committed.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool) -> usize {
        let Some(pending) = self.pending.remove(&producer_id) else {
            return 0;
        };
        if !commit {
            return 0;
        }
        let mut applied = 0;
        for (key, stored) in pending {
            let newer = self
                .committed
                .get(&key)
                .is_none_or(|c| c.record_offset < stored.record_offset);
            if newer {
                self.committed.insert(key, stored);
                applied += 1;
            }
        }
        applied
    }

    /// A tombstone for the partition: its committed offset and every
    /// pending one go. Whether anything was there.
    pub fn remove(&mut self, key: &OffsetKey) -> bool {
        let mut removed = self.committed.remove(key).is_some();
        self.pending.retain(|_, m| {
            removed |= m.remove(key).is_some();
            !m.is_empty()
        });
        removed
    }

    /// Every partition with a committed or pending offset: what DeleteGroups
    /// writes tombstones for (Kafka's `deleteAllOffsets`).
    pub fn all_keys(&self) -> Vec<OffsetKey> {
        let mut keys: Vec<OffsetKey> = self.committed.keys().cloned().collect();
        for m in self.pending.values() {
            keys.extend(m.keys().cloned());
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Committed partitions that retention may expire: those without a
    /// pending transactional offset (Kafka's `cleanupExpiredOffsets`).
    pub fn expirable_keys(&self) -> Vec<OffsetKey> {
        self.committed
            .keys()
            .filter(|k| !self.has_pending(k))
            .cloned()
            .collect()
    }

    /// Drop everything (the group is deleted).
    pub fn clear(&mut self) {
        self.committed.clear();
        self.pending.clear();
    }
}

/// The state a replayed `__consumer_offsets` partition holds.
#[derive(Debug, Default)]
pub struct Replayed {
    /// The last group record of each group (`None`: deleted).
    pub snapshots: HashMap<String, Option<GroupSnapshot>>,
    /// The last consumer-group (KIP-848) record of each group (`None`: gone).
    pub consumer_groups: HashMap<String, Option<Box<GroupData>>>,
    /// Offsets of every group that has any, pending ones included.
    pub offsets: HashMap<String, GroupOffsets>,
}

impl Replayed {
    /// Groups that exist after the replay: with a live group record or
    /// with offsets (committed or pending; a group used only for offsets,
    /// or only by a transaction, has no group record).
    pub fn group_names(&self) -> HashSet<String> {
        let mut names: HashSet<String> = self
            .offsets
            .iter()
            .filter(|(_, o)| !o.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        names.extend(
            self.snapshots
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k.clone()),
        );
        names.extend(
            self.consumer_groups
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k.clone()),
        );
        names
    }
}

/// Replay a partition's entries, in log order (Kafka's
/// `GroupMetadataManager.doLoadGroupsAndOffsets` / `OffsetMetadataManager
/// .replay`). Transactional offsets stay pending until their producer's
/// marker; those still pending at the end of the log stay pending.
pub fn replay(entries: impl IntoIterator<Item = LogEntry>) -> Replayed {
    let mut out = Replayed::default();
    // Producer id → groups it has pending offsets in (Kafka's
    // `openTransactionsByGroup`, inverted): a marker touches only those.
    let mut open: HashMap<i64, HashSet<String>> = HashMap::new();
    for entry in entries {
        match entry {
            LogEntry::Marker {
                producer_id,
                commit,
            } => {
                for group in open.remove(&producer_id).unwrap_or_default() {
                    if let Some(o) = out.offsets.get_mut(&group) {
                        o.complete_txn(producer_id, commit);
                    }
                }
            }
            LogEntry::Record {
                record: OffsetsRecord::Group { group, value },
                ..
            } => {
                if value.is_none() {
                    // A deleted group's offsets were tombstoned before its
                    // group record; drop whatever is left with it.
                    out.offsets.remove(&group);
                }
                out.snapshots.insert(group, value);
            }
            LogEntry::Record {
                record: OffsetsRecord::ConsumerGroup { group, value },
                ..
            } => {
                out.consumer_groups.insert(group, value);
            }
            LogEntry::Record {
                offset,
                producer_id,
                record:
                    OffsetsRecord::Offset {
                        group,
                        topic,
                        partition,
                        value,
                    },
            } => {
                let key = (topic, partition);
                match (value, producer_id) {
                    (Some(v), None) => out.offsets.entry(group).or_default().commit(key, v, offset),
                    (Some(v), Some(pid)) => {
                        open.entry(pid).or_default().insert(group.clone());
                        out.offsets
                            .entry(group)
                            .or_default()
                            .prepare_txn(pid, key, v, offset);
                    }
                    // Kafka: a tombstone, transactional or not, removes the
                    // committed offset and all pending ones.
                    (None, _) => {
                        if let Some(o) = out.offsets.get_mut(&group) {
                            o.remove(&key);
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn off(offset: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp: 0,
        }
    }

    fn key(p: i32) -> OffsetKey {
        ("t".to_string(), p)
    }

    fn rec(at: i64, pid: Option<i64>, group: &str, p: i32, v: Option<i64>) -> LogEntry {
        LogEntry::Record {
            offset: at,
            producer_id: pid,
            record: OffsetsRecord::Offset {
                group: group.into(),
                topic: "t".into(),
                partition: p,
                value: v.map(off),
            },
        }
    }

    fn marker(pid: i64, commit: bool) -> LogEntry {
        LogEntry::Marker {
            producer_id: pid,
            commit,
        }
    }

    #[test]
    fn pending_offsets_are_invisible_until_commit() {
        let mut o = GroupOffsets::default();
        o.commit(key(0), off(5), 10);
        o.prepare_txn(7, key(0), off(9), 11);
        o.prepare_txn(7, key(1), off(3), 11);
        assert_eq!(o.committed(&key(0)), Some(&off(5)));
        assert_eq!(o.committed(&key(1)), None);
        assert!(o.has_pending(&key(0)) && o.has_pending(&key(1)));
        assert_eq!(o.producers().collect::<Vec<_>>(), vec![7]);
        assert_eq!(o.complete_txn(7, true), 2);
        assert_eq!(o.committed(&key(0)), Some(&off(9)));
        assert_eq!(o.committed(&key(1)), Some(&off(3)));
        assert!(!o.has_pending(&key(0)) && !o.has_producer(7));
        assert_eq!(o.complete_txn(7, true), 0, "a second marker is a no-op");
    }

    #[test]
    fn abort_drops_pending_and_keeps_committed() {
        let mut o = GroupOffsets::default();
        o.commit(key(0), off(5), 10);
        o.prepare_txn(7, key(0), off(9), 11);
        o.prepare_txn(8, key(0), off(4), 12);
        assert_eq!(o.complete_txn(7, false), 0);
        assert_eq!(o.committed(&key(0)), Some(&off(5)));
        assert!(o.has_pending(&key(0)), "producer 8 is still open");
        o.complete_txn(8, false);
        assert!(!o.has_pending(&key(0)));
        assert_eq!(o.all_committed().count(), 1);
    }

    #[test]
    fn a_newer_plain_commit_wins_over_an_older_txn_commit() {
        let mut o = GroupOffsets::default();
        o.prepare_txn(7, key(0), off(9), 11);
        o.commit(key(0), off(20), 12);
        assert_eq!(o.complete_txn(7, true), 0);
        assert_eq!(o.committed(&key(0)), Some(&off(20)));
    }

    #[test]
    fn retried_txn_commit_last_write_wins() {
        let mut o = GroupOffsets::default();
        o.prepare_txn(7, key(0), off(1), 11);
        o.prepare_txn(7, key(0), off(2), 12);
        o.complete_txn(7, true);
        assert_eq!(o.committed(&key(0)), Some(&off(2)));
    }

    #[test]
    fn tombstones_remove_pending_and_expiry_spares_them() {
        let mut o = GroupOffsets::default();
        o.commit(key(0), off(5), 10);
        o.commit(key(1), off(6), 10);
        o.prepare_txn(7, key(1), off(9), 11);
        o.prepare_txn(7, key(2), off(1), 11);
        assert_eq!(o.expirable_keys(), vec![key(0)]);
        assert_eq!(o.all_keys(), vec![key(0), key(1), key(2)]);
        assert!(o.remove(&key(1)));
        assert!(o.remove(&key(2)));
        assert!(!o.remove(&key(3)));
        o.complete_txn(7, true);
        assert_eq!(o.committed(&key(1)), None, "deleted, not resurrected");
        assert_eq!(o.committed(&key(2)), None);
        assert!(!o.is_empty());
        o.clear();
        assert!(o.is_empty());
    }

    #[test]
    fn replay_commits_aborts_and_keeps_open_transactions_pending() {
        let r = replay(vec![
            rec(0, None, "g", 0, Some(1)),
            rec(1, Some(7), "g", 0, Some(2)),
            rec(1, Some(7), "h", 0, Some(2)),
            rec(2, Some(8), "g", 1, Some(3)),
            rec(3, Some(9), "only-txn", 0, Some(4)),
            marker(7, true),
            marker(8, false),
            rec(5, Some(7), "g", 0, Some(5)),
            rec(6, Some(7), "g", 0, Some(6)),
        ]);
        let g = r.offsets.get("g").unwrap();
        assert_eq!(g.committed(&key(0)), Some(&off(2)), "7's first txn");
        assert_eq!(g.committed(&key(1)), None, "8 aborted");
        assert!(
            g.has_pending(&key(0)) && g.has_producer(7),
            "7's second txn is open"
        );
        assert_eq!(
            r.offsets.get("h").unwrap().committed(&key(0)),
            Some(&off(2))
        );
        let only = r.offsets.get("only-txn").unwrap();
        assert!(only.has_producer(9) && only.committed(&key(0)).is_none());
        let names = r.group_names();
        assert!(names.contains("g") && names.contains("h") && names.contains("only-txn"));
        // The open transaction commits later: its last write wins.
        let mut g = g.clone();
        g.complete_txn(7, true);
        assert_eq!(g.committed(&key(0)), Some(&off(6)));
    }

    #[test]
    fn replay_tombstones_and_deleted_groups_do_not_resurrect_pending() {
        let r = replay(vec![
            rec(0, Some(7), "g", 0, Some(2)),
            rec(1, None, "g", 0, None),
            rec(2, Some(7), "d", 0, Some(2)),
            LogEntry::Record {
                offset: 3,
                producer_id: None,
                record: OffsetsRecord::Group {
                    group: "d".into(),
                    value: None,
                },
            },
            marker(7, true),
            rec(5, None, "g", 1, Some(1)),
            rec(6, Some(7), "g", 1, Some(0)),
            rec(7, None, "g", 1, Some(4)),
            marker(7, true),
        ]);
        let g = r.offsets.get("g").unwrap();
        assert_eq!(g.committed(&key(0)), None);
        assert_eq!(
            g.committed(&key(1)),
            Some(&off(4)),
            "the plain commit after the transactional one wins"
        );
        assert!(!r.offsets.contains_key("d"));
        assert!(!r.group_names().contains("d"));
    }
}
