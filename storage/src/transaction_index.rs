//! `TransactionIndex`: a segment's `.txnindex`, the aborted transactions whose
//! ABORT marker lies in that segment (Kafka's `TransactionIndex`, KIP-98).
//!
//! File format, Kafka's: a sequence of 34-byte big-endian entries
//! `version i16 (0), producer_id i64, first_offset i64, last_offset i64,
//! last_stable_offset i64`, in the order the markers were appended, so
//! `last_offset` (the marker's offset) strictly increases.
//!
//! Invariants: the entries are also held in memory (a read_committed fetch
//! asks for them on every request and must not do file I/O); the file exists
//! only once an entry was appended — segments without aborts have none; the
//! file holds exactly the in-memory entries. A file that fails the sanity
//! check on open (torn length, bad version, unordered offsets) is reported
//! by [`TransactionIndex::is_valid`] and the owning log rebuilds it from the
//! segment's batches. The index is derived data: the log verifies it against
//! the batches whenever it opens, so it is fsynced with the segment but never
//! trusted over the log. No descriptor is kept between appends (a segment
//! holds one, its `.log`): the rare append, truncation or flush opens it.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{IoContext, Result};
use crate::log_segment::remove_if_exists;

pub const TXN_INDEX_SUFFIX: &str = ".txnindex";
/// Bytes per entry, as Kafka's `TransactionIndex`.
pub const TXN_ENTRY_SIZE: usize = 34;
const ENTRY_VERSION: i16 = 0;

/// An aborted transaction, as a fetch response lists it and a `.txnindex`
/// entry stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of its ABORT marker.
    pub last_offset: i64,
    /// Kafka's `ProducerStateManager.lastStableOffset(completedTxn)` when the
    /// marker was appended: the first offset of the oldest other ongoing
    /// transaction, else `last_offset + 1`.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// The 34-byte entry.
    pub fn encode(&self) -> [u8; TXN_ENTRY_SIZE] {
        let mut b = [0u8; TXN_ENTRY_SIZE];
        b[0..2].copy_from_slice(&ENTRY_VERSION.to_be_bytes());
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }

    /// Decode one entry; `None` for an unknown version.
    pub fn decode(b: &[u8; TXN_ENTRY_SIZE]) -> Option<Self> {
        let i64_at = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(x)
        };
        if i16::from_be_bytes([b[0], b[1]]) != ENTRY_VERSION {
            return None;
        }
        Some(AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

#[derive(Debug)]
pub struct TransactionIndex {
    path: PathBuf,
    base_offset: i64,
    /// Whether the file exists.
    exists: bool,
    /// Written since the last flush.
    dirty: AtomicBool,
    entries: Vec<AbortedTxn>,
    valid: bool,
}

impl TransactionIndex {
    /// Load the index at `path` if the file exists. A file failing the sanity
    /// check loads as empty with [`is_valid`](Self::is_valid) false.
    pub fn open(path: &Path, base_offset: i64) -> Result<Self> {
        let mut index = TransactionIndex {
            path: path.to_path_buf(),
            base_offset,
            exists: false,
            dirty: AtomicBool::new(false),
            entries: Vec::new(),
            valid: true,
        };
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(index),
            Err(e) => return Err(e).at(path),
        };
        index.exists = true;
        match parse_entries(&bytes, base_offset) {
            Some(entries) => index.entries = entries,
            None => index.valid = false,
        }
        Ok(index)
    }

    /// Whether the file on disk passed the sanity check when opened.
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Append an entry, creating the file on the first one. The marker's
    /// offset must follow the last entry's; on an I/O error nothing changed.
    pub fn append(&mut self, txn: AbortedTxn) -> Result<()> {
        debug_assert!(self
            .entries
            .last()
            .is_none_or(|l| l.last_offset < txn.last_offset));
        let position = (self.entries.len() * TXN_ENTRY_SIZE) as u64;
        let file = open_rw(&self.path)?;
        self.exists = true;
        if !self.valid {
            // Nothing of a file that failed its check is kept (its entries
            // were not loaded): start it over.
            file.set_len(0).at(&self.path)?;
            self.valid = true;
        }
        let written = file.write_all_at(&txn.encode(), position).at(&self.path);
        if written.is_err() {
            let _ = file.set_len(position);
        }
        written?;
        self.dirty.store(true, Ordering::Release);
        self.entries.push(txn);
        Ok(())
    }

    /// Drop every entry whose marker is at or after `offset` (Kafka's
    /// `TransactionIndex.truncateTo`); the file goes when none is left.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        if keep == 0 {
            return self.remove_file();
        }
        if self.exists {
            open_rw(&self.path)?
                .set_len((keep * TXN_ENTRY_SIZE) as u64)
                .at(&self.path)?;
            self.dirty.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Replace the index by `entries` (rebuilt from the segment's batches),
    /// rewriting the file, or removing it when `entries` is empty.
    pub fn reset_to(&mut self, entries: Vec<AbortedTxn>) -> Result<()> {
        self.remove_file()?;
        self.entries.clear();
        self.valid = true;
        for e in entries {
            self.append(e)?;
        }
        Ok(())
    }

    /// Every entry with `last_offset ≥ start_offset` and
    /// `first_offset < upper_bound_offset`, appended to `out` (Kafka's
    /// `TransactionIndex.collectAbortedTxns`).
    pub fn collect(&self, start_offset: i64, upper_bound_offset: i64, out: &mut Vec<AbortedTxn>) {
        let from = self
            .entries
            .partition_point(|e| e.last_offset < start_offset);
        out.extend(
            self.entries
                .get(from..)
                .unwrap_or_default()
                .iter()
                .filter(|e| e.first_offset < upper_bound_offset),
        );
    }

    /// fsync the file, if there is one and it changed since the last flush.
    pub fn flush(&self) -> Result<()> {
        if !self.exists || !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let synced = open_rw(&self.path).and_then(|f| f.sync_data().at(&self.path));
        if synced.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        synced
    }

    /// Rename the file (if any) to `to`.
    pub fn rename(&mut self, to: PathBuf) -> Result<()> {
        if self.exists {
            fs::rename(&self.path, &to).at(&self.path)?;
        }
        self.path = to;
        Ok(())
    }

    /// Remove the file (the segment is being deleted, or has no aborts left).
    pub fn remove_file(&mut self) -> Result<()> {
        self.exists = false;
        self.dirty.store(false, Ordering::Release);
        remove_if_exists(&self.path)
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
}

/// Open a file for reading and writing, created if missing.
pub(crate) fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at(path)
}

/// The entries of a file, or `None` if it fails the sanity check: length a
/// multiple of 34, known version, every marker at or after the segment's base
/// offset (Kafka's check), `first ≤ last` and markers strictly increasing. A
/// transaction may start in an earlier segment, so `first` may lie below the
/// base offset.
fn parse_entries(bytes: &[u8], base_offset: i64) -> Option<Vec<AbortedTxn>> {
    if !bytes.len().is_multiple_of(TXN_ENTRY_SIZE) {
        return None;
    }
    let mut out: Vec<AbortedTxn> = Vec::with_capacity(bytes.len() / TXN_ENTRY_SIZE);
    for chunk in bytes.chunks_exact(TXN_ENTRY_SIZE) {
        let arr: &[u8; TXN_ENTRY_SIZE] = chunk.try_into().ok()?;
        let e = AbortedTxn::decode(arr)?;
        let ordered = out.last().is_none_or(|l| l.last_offset < e.last_offset);
        if !ordered || e.first_offset > e.last_offset || e.last_offset < base_offset {
            return None;
        }
        out.push(e);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    fn path(dir: &Path) -> PathBuf {
        dir.join(format!("{:020}{TXN_INDEX_SUFFIX}", 100))
    }

    #[test]
    fn entries_round_trip_through_the_file_in_kafkas_layout() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path());
        let mut idx = TransactionIndex::open(&p, 100).unwrap();
        assert!(!p.exists(), "no file before the first abort");
        idx.append(txn(7, 90, 105)).unwrap();
        idx.append(txn(8, 101, 110)).unwrap();
        let bytes = fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 2 * TXN_ENTRY_SIZE);
        assert_eq!(&bytes[0..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes());
        assert_eq!(&bytes[10..18], &90i64.to_be_bytes());
        assert_eq!(&bytes[18..26], &105i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &106i64.to_be_bytes());
        let again = TransactionIndex::open(&p, 100).unwrap();
        assert!(again.is_valid());
        assert_eq!(again.entries(), &[txn(7, 90, 105), txn(8, 101, 110)]);
    }

    #[test]
    fn truncate_drops_markers_at_or_after_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path());
        let mut idx = TransactionIndex::open(&p, 100).unwrap();
        for (pid, first, last) in [(1, 100, 102), (2, 101, 105), (3, 106, 109)] {
            idx.append(txn(pid, first, last)).unwrap();
        }
        idx.truncate_to(105).unwrap();
        assert_eq!(idx.entries(), &[txn(1, 100, 102)]);
        assert_eq!(fs::metadata(&p).unwrap().len(), TXN_ENTRY_SIZE as u64);
        idx.append(txn(4, 103, 104)).unwrap();
        let again = TransactionIndex::open(&p, 100).unwrap();
        assert_eq!(again.entries(), &[txn(1, 100, 102), txn(4, 103, 104)]);
        idx.truncate_to(0).unwrap();
        assert!(!p.exists(), "an index with no entries has no file");
    }

    #[test]
    fn torn_or_unordered_file_fails_the_sanity_check() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path());
        let mut idx = TransactionIndex::open(&p, 100).unwrap();
        idx.append(txn(1, 100, 102)).unwrap();
        idx.append(txn(2, 100, 104)).unwrap();
        let good = fs::read(&p).unwrap();
        fs::write(&p, &good[..good.len() - 5]).unwrap();
        let torn = TransactionIndex::open(&p, 100).unwrap();
        assert!(!torn.is_valid());
        assert!(torn.entries().is_empty());
        let mut swapped = good[TXN_ENTRY_SIZE..].to_vec();
        swapped.extend_from_slice(&good[..TXN_ENTRY_SIZE]);
        fs::write(&p, &swapped).unwrap();
        assert!(!TransactionIndex::open(&p, 100).unwrap().is_valid());
        let mut bad_version = good.clone();
        bad_version[1] = 1;
        fs::write(&p, &bad_version).unwrap();
        assert!(!TransactionIndex::open(&p, 100).unwrap().is_valid());
        // Rebuilding makes it whole again.
        let mut idx = TransactionIndex::open(&p, 100).unwrap();
        idx.reset_to(vec![txn(1, 100, 102)]).unwrap();
        assert_eq!(fs::read(&p).unwrap(), good[..TXN_ENTRY_SIZE].to_vec());
    }

    #[test]
    fn collect_follows_kafkas_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TransactionIndex::open(&path(dir.path()), 100).unwrap();
        for (pid, first, last) in [(1, 50, 102), (2, 101, 105), (3, 106, 109)] {
            idx.append(txn(pid, first, last)).unwrap();
        }
        let got = |start, upper| {
            let mut out = Vec::new();
            idx.collect(start, upper, &mut out);
            out.iter().map(|t| t.producer_id).collect::<Vec<_>>()
        };
        assert_eq!(got(0, 200), vec![1, 2, 3]);
        assert_eq!(got(103, 200), vec![2, 3]);
        assert_eq!(got(103, 106), vec![2]);
        assert_eq!(got(0, 51), vec![1]);
        assert_eq!(got(0, 50), Vec::<i64>::new());
        assert_eq!(got(110, 200), Vec::<i64>::new());
    }
}
