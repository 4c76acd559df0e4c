//! `OffsetIndex`: a sparse map from offset to file position within one
//! segment, as Kafka's `.index` file.
//!
//! Entries are 8 bytes: the offset relative to the segment's base offset
//! (i32) and the byte position of the batch in the `.log` file (i32), both
//! big-endian and both strictly increasing. An entry is added every
//! `index.interval.bytes` of appended log, pointing at the first offset of a
//! batch, so a lookup lands at or before the batch holding any offset.

use std::path::Path;

use crate::error::Result;
use crate::index_file::{be_i32, IndexFile};

pub const OFFSET_ENTRY_SIZE: usize = 8;

/// One index entry: an absolute offset and the position of its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub offset: i64,
    pub position: u32,
}

#[derive(Debug)]
pub struct OffsetIndex {
    file: IndexFile,
    base_offset: i64,
}

impl OffsetIndex {
    pub fn open(path: &Path, base_offset: i64, max_entries: usize, writable: bool) -> Result<Self> {
        Ok(OffsetIndex {
            file: IndexFile::open(path, OFFSET_ENTRY_SIZE, max_entries, writable)?,
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

    fn decode(&self, e: &[u8]) -> OffsetPosition {
        OffsetPosition {
            offset: self.base_offset + be_i32(e, 0) as i64,
            position: be_i32(e, 4) as u32,
        }
    }

    pub fn entry(&self, n: usize) -> Option<OffsetPosition> {
        self.file.entry(n).map(|e| self.decode(e))
    }

    pub fn last_entry(&self) -> Option<OffsetPosition> {
        self.file
            .entries()
            .checked_sub(1)
            .and_then(|n| self.entry(n))
    }

    /// The entry with the largest offset ≤ `target`, or the segment start.
    pub fn lookup(&self, target: i64) -> OffsetPosition {
        let rel = target - self.base_offset;
        self.file
            .last_matching(|e| (be_i32(e, 0) as i64) <= rel)
            .and_then(|n| self.entry(n))
            .unwrap_or(OffsetPosition {
                offset: self.base_offset,
                position: 0,
            })
    }

    /// The position of the last entry at or before byte `position` (a batch
    /// start), if there is one.
    pub fn floor_position(&self, position: u64) -> Option<u64> {
        self.file
            .last_matching(|e| (be_i32(e, 4) as u32 as u64) <= position)
            .and_then(|n| self.entry(n))
            .map(|e| e.position as u64)
    }

    /// Add an entry; ignored unless both offset and position exceed the last
    /// entry's. Returns false when the index is full.
    pub fn append(&mut self, offset: i64, position: u32) -> Result<bool> {
        if let Some(last) = self.last_entry() {
            if offset <= last.offset || position <= last.position {
                return Ok(true);
            }
        }
        let rel = offset - self.base_offset;
        if rel < 0 || rel > i32::MAX as i64 {
            return Ok(false);
        }
        let mut buf = [0u8; OFFSET_ENTRY_SIZE];
        buf[..4].copy_from_slice(&(rel as i32).to_be_bytes());
        buf[4..].copy_from_slice(&(position as i32).to_be_bytes());
        self.file.push(&buf)
    }

    /// Remove entries for offsets ≥ `offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        let rel = offset - self.base_offset;
        let keep = self
            .file
            .last_matching(|e| (be_i32(e, 0) as i64) < rel)
            .map_or(0, |n| n + 1);
        self.file.truncate_entries(keep);
    }

    /// Whether the entries are plausible for a log of `log_size` bytes:
    /// increasing offsets and positions, all inside the log. Checks the ends
    /// and a sample, which catches torn or zero-filled files cheaply.
    pub fn sanity_check(&self, log_size: u64) -> bool {
        let n = self.entries();
        if self.file.was_torn() {
            return false;
        }
        if n == 0 {
            return true;
        }
        let mut prev: Option<OffsetPosition> = None;
        let step = (n / 64).max(1);
        let mut i = 0;
        while i < n {
            let Some(e) = self.entry(i) else { return false };
            if e.offset < self.base_offset || e.position as u64 >= log_size {
                return false;
            }
            if let Some(p) = prev {
                if e.offset <= p.offset || e.position <= p.position {
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
            gaps in proptest::collection::vec((1i64..50, 1u32..5000), 0..200),
            targets in proptest::collection::vec(0i64..12_000, 1..50),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let base = 100;
            let mut idx = OffsetIndex::open(&dir.path().join("x.index"), base, 1000, true).unwrap();
            let mut entries = Vec::new();
            let (mut off, mut pos) = (base, 0u32);
            for (g, p) in gaps {
                off += g;
                pos += p;
                prop_assert!(idx.append(off, pos).unwrap());
                entries.push(OffsetPosition { offset: off, position: pos });
            }
            for t in targets {
                let t = t + base - 10;
                let expected = entries.iter().rev().find(|e| e.offset <= t).copied()
                    .unwrap_or(OffsetPosition { offset: base, position: 0 });
                prop_assert_eq!(idx.lookup(t), expected);
            }
        }
    }

    #[test]
    fn trimmed_index_reopens_with_same_entries_and_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000050.index");
        {
            let mut idx = OffsetIndex::open(&path, 50, 100, true).unwrap();
            for i in 1..=10 {
                idx.append(50 + i * 10, (i * 1000) as u32).unwrap();
            }
            idx.file_mut().trim().unwrap();
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 80);
        let mut idx = OffsetIndex::open(&path, 50, 100, false).unwrap();
        assert_eq!(idx.entries(), 10);
        assert_eq!(
            idx.lookup(75),
            OffsetPosition {
                offset: 70,
                position: 2000
            }
        );
        assert!(idx.sanity_check(1_000_000));
        assert!(
            !idx.sanity_check(5_000),
            "positions beyond the log are insane"
        );
        idx.truncate_to(80);
        assert_eq!(idx.last_entry().unwrap().offset, 70);
    }

    #[test]
    fn full_index_refuses_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::open(&dir.path().join("a.index"), 0, 2, true).unwrap();
        assert!(idx.append(1, 10).unwrap());
        assert!(idx.append(2, 20).unwrap());
        assert!(idx.is_full());
        assert!(!idx.append(3, 30).unwrap());
    }
}
