//! A preallocated, memory-mapped file of fixed-size entries: the machinery
//! shared by [`crate::OffsetIndex`] and [`crate::TimeIndex`].
//!
//! While a segment is active its index file is preallocated to
//! `segment.index.bytes` (sparse) so appends only write to the map; when the
//! segment rolls or closes the file is trimmed to its entries, so the entry
//! count of a closed index is `file length / entry size`.
//!
//! No descriptor is kept: as Kafka's `AbstractIndex`, the file is opened
//! only to size and map it (and to reserve room, below) and closed again —
//! the mapping outlives the descriptor — so a segment costs one descriptor
//! (its `.log`), not three, and a node with thousands of partitions stays
//! inside its open-files limit.
//!
//! Entries are read through the map by bounds-checked slices and written
//! through it too, but only into bytes already *reserved*: a store through
//! a shared map into a page the filesystem has yet to allocate raises
//! SIGBUS when the filesystem is full (the whole broker would die). Before
//! an entry lands past the reserved bytes, the rest of its page is written
//! with zeros by `pwrite` (the file opened for that moment), which allocates
//! the block or reports ENOSPC — failing just that append. That is the space
//! a `pwrite` of the entry itself would have taken: a nearly full disk fills
//! no sooner.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::error::{IoContext, Result};
use crate::transaction_index::open_rw;

/// Bytes of the file allocated ahead of the entries at a time (a page): 512
/// offset entries, so one open, write and close per ~2 MiB of log at the
/// default `index.interval.bytes`.
const RESERVE_BYTES: usize = 4096;

#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    mmap: Option<MmapMut>,
    entry_size: usize,
    entries: usize,
    max_entries: usize,
    /// Bytes from the start of the file known to have their blocks
    /// allocated (written by this process), so stores through the map there
    /// cannot fault.
    reserved: usize,
    /// The file's length at open was not a whole number of entries.
    torn: bool,
}

impl IndexFile {
    /// Open or create the file. An existing file's entries are its length
    /// divided by the entry size (rounded down). A `writable` index may hold
    /// up to `max_entries`, but the file is grown to that size only by the
    /// first append: the index of an idle partition is never resized, and an
    /// empty one is neither kept open nor mapped until then (a node with
    /// 10,000 idle partitions reopens without 20,000 `ftruncate`s and maps).
    pub fn open(
        path: &Path,
        entry_size: usize,
        max_entries: usize,
        writable: bool,
    ) -> Result<Self> {
        if writable {
            let len = match std::fs::metadata(path) {
                Ok(m) => m.len() as usize,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // A new segment's index files exist from the start.
                    open_rw(path)?;
                    0
                }
                Err(e) => return Err(e).at(path),
            };
            if len == 0 {
                return Ok(IndexFile {
                    path: path.to_path_buf(),
                    mmap: None,
                    entry_size,
                    entries: 0,
                    max_entries,
                    reserved: 0,
                    torn: false,
                });
            }
        }
        let file = open_rw(path)?;
        let len = file.metadata().at(path)?.len() as usize;
        let entries = len / entry_size;
        let mut idx = IndexFile {
            path: path.to_path_buf(),
            mmap: None,
            entry_size,
            entries,
            max_entries: max_entries.max(entries),
            reserved: 0,
            torn: !len.is_multiple_of(entry_size),
        };
        // A writable index keeps its length (a torn tail included, for the
        // sanity check to see); `push` grows it when the map is too short.
        let target = if writable { len } else { entries * entry_size };
        idx.resize_with(&file, target)?;
        Ok(idx)
    }

    fn resize_file(&mut self, bytes: usize) -> Result<()> {
        let file = open_rw(&self.path)?;
        self.resize_with(&file, bytes)
    }

    /// Size the file to `bytes` and map it; `file` is closed by the caller.
    fn resize_with(&mut self, file: &File, bytes: usize) -> Result<()> {
        self.mmap = None;
        if file.metadata().at(&self.path)?.len() != bytes as u64 {
            file.set_len(bytes as u64).at(&self.path)?;
        }
        self.reserved = self.reserved.min(bytes);
        if bytes > 0 {
            // SAFETY: the file is owned by this process's log; no other code
            // truncates it while mapped (every resize drops the map first),
            // and stores go only to reserved bytes (see the module docs).
            let map = unsafe { MmapMut::map_mut(file) }.at(&self.path)?;
            self.mmap = Some(map);
        }
        Ok(())
    }

    /// Make sure the bytes up to `needed` have their blocks allocated:
    /// zeros from the end of the entries to the next multiple of
    /// [`RESERVE_BYTES`] (or the end of the map), written by `pwrite`.
    fn reserve(&mut self, needed: usize, map_len: usize) -> Result<()> {
        if needed <= self.reserved {
            return Ok(());
        }
        let from = self.reserved.max(self.entries * self.entry_size);
        let to = needed.next_multiple_of(RESERVE_BYTES).min(map_len);
        if to > from {
            let file = open_rw(&self.path)?;
            file.write_all_at(&vec![0u8; to - from], from as u64)
                .at(&self.path)?;
        }
        self.reserved = to;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Whether the file was not a whole number of entries when opened.
    pub fn was_torn(&self) -> bool {
        self.torn
    }

    pub fn is_full(&self) -> bool {
        self.entries >= self.max_entries
    }

    /// The raw bytes of entry `n`, if it exists.
    pub fn entry(&self, n: usize) -> Option<&[u8]> {
        if n >= self.entries {
            return None;
        }
        let start = n * self.entry_size;
        self.mmap.as_ref()?.get(start..start + self.entry_size)
    }

    /// Append one entry; false when the file is full. On an error (ENOSPC
    /// included) the index is unchanged.
    pub fn push(&mut self, bytes: &[u8]) -> Result<bool> {
        debug_assert_eq!(bytes.len(), self.entry_size);
        if self.is_full() || bytes.len() != self.entry_size {
            return Ok(false);
        }
        let start = self.entries * self.entry_size;
        let needed = start + self.entry_size;
        if self.mmap.as_ref().is_none_or(|m| m.len() < needed) {
            self.resize_file(self.max_entries * self.entry_size)?;
        }
        let map_len = self.mmap.as_ref().map_or(0, |m| m.len());
        if map_len < needed {
            return Ok(false);
        }
        self.reserve(needed, map_len)?;
        match self.mmap.as_mut().and_then(|m| m.get_mut(start..needed)) {
            Some(slot) => slot.copy_from_slice(bytes),
            None => return Ok(false),
        }
        self.entries += 1;
        Ok(true)
    }

    /// Keep only the first `n` entries.
    pub fn truncate_entries(&mut self, n: usize) {
        self.entries = self.entries.min(n);
    }

    /// Binary search: the last entry for which `le(entry)` holds, given that
    /// `le` is true for a prefix of the entries.
    pub fn last_matching(&self, le: impl Fn(&[u8]) -> bool) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid) {
                Some(e) if le(e) => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo.checked_sub(1)
    }

    /// Shrink the file to exactly its entries (segment roll or close).
    pub fn trim(&mut self) -> Result<()> {
        self.max_entries = self.entries;
        self.resize_file(self.entries * self.entry_size)
    }

    /// Make a trimmed index appendable again (a truncated segment that becomes
    /// active, or the last segment at open). The file is grown by the first
    /// [`push`](Self::push) that needs the room, not here.
    pub fn reopen_for_append(&mut self, max_entries: usize) -> Result<()> {
        self.max_entries = max_entries.max(self.entries);
        Ok(())
    }

    /// Drop every entry.
    pub fn reset(&mut self) {
        self.entries = 0;
        self.torn = false;
    }

    /// Write the entries back to the file and wait for the disk (`msync`,
    /// which needs no descriptor). An index without entries has no map and
    /// nothing to write: a file left longer than its entries by a crash
    /// fails the sanity check on open and is rebuilt.
    pub fn flush(&self) -> Result<()> {
        let bytes = self.entries * self.entry_size;
        match &self.mmap {
            Some(m) if bytes > 0 => m.flush_range(0, bytes.min(m.len())).at(&self.path),
            _ => Ok(()),
        }
    }

    /// Point at a new path after the file was renamed.
    pub fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }
}

pub(crate) fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    i32::from_be_bytes(a)
}

pub(crate) fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    i64::from_be_bytes(a)
}
