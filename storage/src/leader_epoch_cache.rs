//! `LeaderEpochCache`: which leader epoch started at which offset, persisted
//! in the partition's `leader-epoch-checkpoint` (KIP-101/KIP-279).
//!
//! Followers use it to find where their log diverges from a new leader's:
//! [`LeaderEpochCache::end_offset_for`] answers OffsetForLeaderEpoch. Entries
//! have strictly increasing epochs and non-decreasing start offsets.

use std::path::{Path, PathBuf};

use crate::checkpoint::{read_epoch_checkpoint, write_epoch_checkpoint};
use crate::error::Result;

pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// An epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
    /// Changed in memory since the checkpoint was last written.
    dirty: bool,
    /// What the checkpoint file holds: a write of the same entries is
    /// skipped (a restarted leader re-assigning its epoch writes nothing).
    persisted: Vec<EpochEntry>,
}

/// Kafka's `UNDEFINED_EPOCH` / `UNDEFINED_EPOCH_OFFSET`.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

impl LeaderEpochCache {
    /// Load the checkpoint in `dir` (empty if there is none), dropping any
    /// entry that breaks the ordering invariant.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let mut cache = LeaderEpochCache {
            path,
            entries: Vec::new(),
            dirty: false,
            persisted: Vec::new(),
        };
        for (epoch, start_offset) in read_epoch_checkpoint(&cache.path)? {
            cache.push_if_newer(epoch, start_offset);
        }
        cache.persisted = cache.entries.clone();
        Ok(cache)
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    fn push_if_newer(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        match self.entries.last() {
            Some(last) if epoch <= last.epoch || start_offset < last.start_offset => false,
            _ => {
                self.entries.push(EpochEntry {
                    epoch,
                    start_offset,
                });
                true
            }
        }
    }

    /// Record that `epoch` starts at `start_offset` if it is newer than the
    /// latest epoch; persists on change. Returns whether it changed. When
    /// the checkpoint cannot be written (a full disk) the cache is left as
    /// it was, so the next append tries again.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool> {
        if !self.push_if_newer(epoch, start_offset) {
            return Ok(false);
        }
        if let Err(e) = self.flush() {
            self.entries.pop();
            return Err(e);
        }
        Ok(true)
    }

    /// Like [`assign`](Self::assign) without persisting (recovery rebuilds in
    /// memory and flushes once).
    pub(crate) fn assign_in_memory(&mut self, epoch: i32, start_offset: i64) {
        if self.push_if_newer(epoch, start_offset) {
            self.dirty = true;
        }
    }

    /// Write the checkpoint if the cache changed in memory since it was
    /// loaded or last written: a log opened after a clean stop writes
    /// nothing.
    pub fn flush_if_dirty(&mut self) -> Result<()> {
        if self.dirty {
            self.flush()?;
        }
        Ok(())
    }

    /// `(epoch, end_offset)` for OffsetForLeaderEpoch, as Kafka's
    /// `LeaderEpochFileCache.endOffsetFor`: for the latest epoch the log end
    /// offset; for an older one the largest known epoch ≤ the requested one
    /// and the start offset of the next higher epoch; for an epoch before all
    /// entries (dropped with the start of the log) the requested epoch and
    /// the first entry's start offset (KAFKA-7415: a follower or consumer
    /// then starts from the leader's oldest data instead of resetting); for
    /// `UNDEFINED_EPOCH`, an epoch above the latest or an empty cache
    /// `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        let Some(last) = self.entries.last() else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        if requested == UNDEFINED_EPOCH || requested > last.epoch {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if requested == last.epoch {
            return (last.epoch, log_end_offset);
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        match (higher.checked_sub(1), self.entries.get(higher)) {
            (Some(floor), Some(next)) => (self.entries[floor].epoch, next.start_offset),
            (None, Some(first)) => (requested, first.start_offset),
            // Unreachable: `requested` is below the last epoch, so a higher
            // entry exists.
            (_, None) => (last.epoch, log_end_offset),
        }
    }

    /// Drop epochs that start at or after `end_offset` (log truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<()> {
        if self.drop_from_end(end_offset) {
            self.flush()?;
        }
        Ok(())
    }

    /// [`truncate_from_end`](Self::truncate_from_end) in memory only: for
    /// opening a log, whose checkpoint may keep the dropped entries — they
    /// start at or after the log end, so every open drops them again, and
    /// the next write (an assignment, a truncation) writes the whole cache.
    /// Whether anything was dropped.
    pub(crate) fn drop_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        self.entries.len() != before
    }

    /// Forget epochs wholly before `start_offset` (log start moved there);
    /// the epoch covering it now starts there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<()> {
        if self.drop_from_start(start_offset) {
            self.flush()?;
        }
        Ok(())
    }

    /// [`truncate_from_start`](Self::truncate_from_start) in memory only,
    /// for opening a log (the checkpointed log start offset cuts the file's
    /// older entries again at every open). Whether anything changed.
    pub(crate) fn drop_from_start(&mut self, start_offset: i64) -> bool {
        let covering = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if covering == 0 {
            return false;
        }
        let first_kept = covering - 1;
        let changed = first_kept > 0 || self.entries[first_kept].start_offset != start_offset;
        self.entries.drain(..first_kept);
        if let Some(first) = self.entries.first_mut() {
            first.start_offset = start_offset;
        }
        changed
    }

    pub fn clear(&mut self) -> Result<()> {
        self.entries.clear();
        self.flush()
    }

    /// Write the checkpoint (fsynced) unless it already holds these entries.
    pub fn flush(&mut self) -> Result<()> {
        if self.entries == self.persisted {
            self.dirty = false;
            return Ok(());
        }
        let pairs: Vec<(i32, i64)> = self
            .entries
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect();
        write_epoch_checkpoint(&self.path, &pairs)?;
        self.persisted = self.entries.clone();
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_follow_kafka_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(
            c.end_offset_for(0, 10),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
        c.assign(1, 0).unwrap();
        c.assign(3, 50).unwrap();
        c.assign(4, 80).unwrap();
        assert!(!c.assign(2, 90).unwrap(), "older epochs are ignored");
        assert_eq!(c.end_offset_for(4, 100), (4, 100));
        assert_eq!(c.end_offset_for(3, 100), (3, 80));
        assert_eq!(
            c.end_offset_for(2, 100),
            (1, 50),
            "unknown epoch answers with the floor"
        );
        assert_eq!(
            c.end_offset_for(5, 100),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
            "an epoch above the latest is unknown"
        );
        assert_eq!(
            c.end_offset_for(UNDEFINED_EPOCH, 100),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
        let reloaded = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(reloaded.entries(), c.entries());
    }

    #[test]
    fn epoch_before_the_first_entry_ends_where_the_first_entry_starts() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::load(dir.path()).unwrap();
        c.assign(2, 10).unwrap();
        c.assign(3, 20).unwrap();
        c.truncate_from_start(15).unwrap();
        // Kafka's answer since KAFKA-7415: the requested epoch, ending where
        // the oldest epoch still in the log starts.
        assert_eq!(c.end_offset_for(1, 30), (1, 15));
        assert_eq!(c.end_offset_for(0, 30), (0, 15));
        assert_eq!(c.end_offset_for(2, 30), (2, 20));
    }

    #[test]
    fn truncation_from_both_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::load(dir.path()).unwrap();
        c.assign(1, 0).unwrap();
        c.assign(2, 10).unwrap();
        c.assign(3, 20).unwrap();
        c.truncate_from_end(15).unwrap();
        assert_eq!(c.latest_epoch(), Some(2));
        c.truncate_from_start(12).unwrap();
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 2,
                start_offset: 12
            }]
        );
        assert_eq!(
            LeaderEpochCache::load(dir.path()).unwrap().entries(),
            c.entries()
        );
    }
}
