//! `TimeIndex`: a sparse map from timestamp to offset within one segment, as
//! Kafka's `.timeindex` file.
//!
//! Entries are 12 bytes: a timestamp (i64) and an offset relative to the
//! segment base (i32). An entry `(t, o)` says: the largest timestamp among all
//! batches before the one at offset `o` is below `t`, and the batch at `o`
//! reaches `t`. Timestamps strictly increase, so a binary search finds where a
//! scan for "first record with timestamp ≥ target" may start.

use std::path::Path;

use crate::error::Result;
use crate::index_file::{be_i32, be_i64, IndexFile};

pub const TIME_ENTRY_SIZE: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
}

#[derive(Debug)]
pub struct TimeIndex {
    file: IndexFile,
    base_offset: i64,
}

impl TimeIndex {
    pub fn open(path: &Path, base_offset: i64, max_entries: usize, writable: bool) -> Result<Self> {
        Ok(TimeIndex {
            file: IndexFile::open(path, TIME_ENTRY_SIZE, max_entries, writable)?,
            base_offset,
        })
    }

    pub fn entries(&self) -> usize {
        self.file.entries()
    }

    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    pub(crate) fn file_mut(&mut self) -> &mut IndexFile {
        &mut self.file
    }

    /// Write the map back to the file.
    pub fn flush(&self) -> Result<()> {
        self.file.flush()
    }

    fn decode(&self, e: &[u8]) -> TimestampOffset {
        TimestampOffset {
            timestamp: be_i64(e, 0),
            offset: self.base_offset + be_i32(e, 8) as i64,
        }
    }

    pub fn entry(&self, n: usize) -> Option<TimestampOffset> {
        self.file.entry(n).map(|e| self.decode(e))
    }

    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.file
            .entries()
            .checked_sub(1)
            .and_then(|n| self.entry(n))
    }

    /// The entry with the largest timestamp ≤ `target`, or `None` when the
    /// scan must start at the beginning of the segment.
    pub fn lookup(&self, target: i64) -> Option<TimestampOffset> {
        self.file
            .last_matching(|e| be_i64(e, 0) <= target)
            .and_then(|n| self.entry(n))
    }

    /// Add `(timestamp, offset)` when the timestamp exceeds the last entry's
    /// (and the offset does not go backwards). Returns false when full.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> Result<bool> {
        if let Some(last) = self.last_entry() {
            if timestamp <= last.timestamp || offset < last.offset {
                return Ok(true);
            }
        }
        let rel = offset - self.base_offset;
        if rel < 0 || rel > i32::MAX as i64 {
            return Ok(false);
        }
        let mut buf = [0u8; TIME_ENTRY_SIZE];
        buf[..8].copy_from_slice(&timestamp.to_be_bytes());
        buf[8..].copy_from_slice(&(rel as i32).to_be_bytes());
        self.file.push(&buf)
    }

    /// Remove entries for offsets ≥ `offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        let rel = offset - self.base_offset;
        let mut keep = self.file.entries();
        while keep > 0 {
            match self.file.entry(keep - 1) {
                Some(e) if (be_i32(e, 8) as i64) >= rel => keep -= 1,
                _ => break,
            }
        }
        self.file.truncate_entries(keep);
    }

    /// Increasing timestamps and offsets, offsets inside `[base, next_offset)`.
    pub fn sanity_check(&self, next_offset: i64) -> bool {
        let n = self.entries();
        if self.file.was_torn() {
            return false;
        }
        let mut prev: Option<TimestampOffset> = None;
        let step = (n / 64).max(1);
        let mut i = 0;
        while i < n {
            let Some(e) = self.entry(i) else { return false };
            if e.offset < self.base_offset || e.offset >= next_offset.max(self.base_offset + 1) {
                return false;
            }
            if let Some(p) = prev {
                if e.timestamp <= p.timestamp || e.offset < p.offset {
                    return false;
                }
            }
            prev = Some(e);
            i = if i + 1 == n { n } else { (i + step).min(n - 1) };
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn lookup_agrees_with_linear_scan(
            steps in proptest::collection::vec((1i64..100, 1i64..20), 0..200),
            targets in proptest::collection::vec(0i64..30_000, 1..50),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut idx = TimeIndex::open(&dir.path().join("x.timeindex"), 0, 1000, true).unwrap();
            let mut entries = Vec::new();
            let (mut ts, mut off) = (1_000i64, 0i64);
            for (dt, doff) in steps {
                ts += dt;
                off += doff;
                idx.maybe_append(ts, off).unwrap();
                entries.push(TimestampOffset { timestamp: ts, offset: off });
            }
            for t in targets {
                let expected = entries.iter().rev().find(|e| e.timestamp <= t).copied();
                prop_assert_eq!(idx.lookup(t), expected);
            }
        }
    }

    #[test]
    fn ignores_non_increasing_timestamps_and_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TimeIndex::open(&dir.path().join("t.timeindex"), 10, 100, true).unwrap();
        idx.maybe_append(100, 10).unwrap();
        idx.maybe_append(100, 12).unwrap();
        idx.maybe_append(90, 13).unwrap();
        idx.maybe_append(150, 20).unwrap();
        assert_eq!(idx.entries(), 2);
        assert_eq!(
            idx.lookup(120),
            Some(TimestampOffset {
                timestamp: 100,
                offset: 10
            })
        );
        assert_eq!(idx.lookup(99), None);
        assert!(idx.sanity_check(21));
        assert!(!idx.sanity_check(15));
        idx.truncate_to(20);
        assert_eq!(idx.entries(), 1);
    }
}
