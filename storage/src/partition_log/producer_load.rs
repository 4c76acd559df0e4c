//! Producer state of a [`PartitionLog`]: keeping it on every append, taking
//! `<offset>.snapshot` files ([`crate::producer_snapshot`]) and loading it on
//! open and after truncation (Kafka's `UnifiedLog.loadProducerState` and
//! `ProducerStateManager.truncateAndReload`).
//!
//! The state is two halves with one source, the batches of the log in
//! order: the idempotent producers ([`ProducerStateManager`]: epochs, last
//! five batches, coordinator epochs of markers) and the transactions
//! ([`TxnTracker`]: ongoing and decided-but-unreplicated ones, for the LSO).
//!
//! Invariants:
//! - the state equals what replaying every batch of the log from its first
//!   segment gives (the property tests compare the two); a snapshot at `o`
//!   holds the state after every batch below `o`;
//! - a snapshot is written when a segment rolls (at the new base offset,
//!   before any batch of the new segment is recorded) and on close (at the
//!   log end), and only the newest
//!   [`SNAPSHOTS_TO_RETAIN`](crate::producer_snapshot::SNAPSHOTS_TO_RETAIN) are kept;
//! - no snapshot lies above the log end: truncation deletes those above the
//!   new end *before* cutting the log (a crash in between leaves no snapshot
//!   of a history that is gone), opening deletes those above the recovered
//!   end, and a full truncation or retention past them deletes them too;
//! - a snapshot is used only if its offset is at least the first segment's
//!   base, at most the log end (and the recovery point after an unclean
//!   shutdown), and its unreplicated transactions cover the high watermark
//!   the log opened with (`hw ≥ min(snapshot hw, offset)`); a corrupt or
//!   unknown-version file is skipped with a warning and deleted (as Kafka
//!   does), so the load falls back to an older one and at last the full scan.
//!
//! Segments below the snapshot keep their transaction index as it is (it
//! must load valid; otherwise the snapshot is passed over for the full scan,
//! which rewrites every index); the segments scanned get theirs checked and
//! rewritten as the full scan does. Trusting them is sound because every
//! index entry below a snapshot's offset was fsynced before the snapshot was
//! written: a roll flushes the segment it closes, and a close flushes the
//! active one, before the snapshot is taken (as Kafka trusts the indexes
//! below its recovery point).

use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::FileExt;

use rivulet_protocol::control::{parse_control_marker, ControlType};
use rivulet_protocol::record_batch::{BatchHeader, HEADER_SIZE};
use tracing::{info, warn};

use super::PartitionLog;
use crate::error::{IoContext, Result};
use crate::log_segment::remove_if_exists;
use crate::log_segment::LogSegment;
use crate::producer_snapshot::{self, ProducerSnapshot, SnapshotError};
use crate::producer_state::ProducerStateManager;
use crate::transaction_index::AbortedTxn;
use crate::txn_tracker::{CompletedTxn, TxnTracker};

/// Bytes read at a time when scanning headers.
const SCAN_BUFFER: usize = 64 * 1024;

/// How the producer state was last built (on open or after a truncation):
/// what an operator or a test reads to see the snapshot at work.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStateLoad {
    /// The snapshot the load started from; `None`: the whole log was scanned.
    pub snapshot_offset: Option<i64>,
    /// Batches replayed after the snapshot (their headers read).
    pub batches_scanned: u64,
    /// Bytes of log those batches span (records of data batches are skipped,
    /// not read).
    pub bytes_scanned: u64,
    /// Snapshot files passed over: unreadable, corrupt, unknown version.
    pub snapshots_rejected: u32,
}

/// A transaction marker's type and coordinator epoch.
pub(crate) type Marker = (ControlType, i32);

/// Apply one batch of the log, in order, to both halves of the state: the
/// one rule the append path and the load scan share, so they cannot drift.
fn apply_batch(
    producers: &mut ProducerStateManager,
    txns: &mut TxnTracker,
    header: &BatchHeader,
    marker: Option<Marker>,
) -> Option<CompletedTxn> {
    if header.producer_id < 0 {
        return None;
    }
    producers.record(header);
    if let Some((_, coordinator_epoch)) = marker {
        // Kafka's `ProducerAppendInfo.appendEndTxnMarker` keeps the
        // marker's coordinator epoch, on leaders and followers alike: it is
        // what fences a deposed coordinator's late markers.
        producers.record_coordinator_epoch(header.producer_id, coordinator_epoch);
    }
    if !header.is_transactional() {
        return None;
    }
    txns.on_batch(header, marker.map(|(kind, _)| kind))
}

fn entry(done: &CompletedTxn) -> AbortedTxn {
    AbortedTxn {
        producer_id: done.producer_id,
        first_offset: done.first_offset,
        last_offset: done.last_offset,
        last_stable_offset: done.last_stable_offset,
    }
}

/// The transaction marker of a control batch; `None` for data, other control
/// types and control batches that do not parse (validated when written).
pub(crate) fn marker_of(header: &BatchHeader, bytes: &[u8]) -> Option<Marker> {
    if !header.is_control() {
        return None;
    }
    parse_control_marker(bytes).ok().flatten()
}

impl PartitionLog {
    /// The idempotent-producer state (sequence and epoch checks, marker
    /// fencing, DescribeProducers).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    /// How the producer state was last loaded.
    pub fn last_producer_state_load(&self) -> ProducerStateLoad {
        self.producer_load
    }

    /// Note a batch just written to the active segment: its producer, its
    /// transaction, and the aborted-transaction index entry of an ABORT.
    pub(super) fn note_batch(&mut self, header: &BatchHeader, bytes: &[u8]) -> Result<()> {
        let marker = marker_of(header, bytes);
        let done = apply_batch(&mut self.producers, &mut self.txns, header, marker);
        if let Some(done) = done.filter(|d| d.aborted) {
            self.active_mut()?.txn_index_mut().append(entry(&done))?;
        }
        Ok(())
    }

    /// Visit the header of every batch in the log, oldest first. Reads
    /// whole batches sequentially (tools and tests; loading producer state
    /// reads headers only, from the snapshot on).
    pub fn scan_batch_headers(&self, mut f: impl FnMut(&BatchHeader)) -> Result<()> {
        for seg in self.segments.values() {
            crate::log_segment::for_each_batch(&seg.file(), seg.size(), |h, _| {
                f(h);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Write a snapshot of the state at the log end (clean shutdown; tests).
    pub fn take_producer_snapshot(&mut self) -> Result<()> {
        self.snapshot_at(self.log_end_offset)
    }

    /// Write a snapshot of the state as of `offset` (every batch below it
    /// recorded, none at or above) and keep only the newest few. A failure
    /// is returned; the caller decides whether it matters (a roll only
    /// warns: snapshots save time, they are never needed).
    pub(super) fn snapshot_at(&mut self, offset: i64) -> Result<()> {
        let snapshot = ProducerSnapshot {
            offset,
            producers: self.producers.snapshot_entries(),
            txns: self.txns.to_snapshot(),
        };
        producer_snapshot::write_snapshot(&self.dir, &snapshot)?;
        producer_snapshot::retain_newest(&self.dir)
    }

    /// [`snapshot_at`](Self::snapshot_at) for a roll or a close: warn on
    /// failure (a full disk must not fail the append or the clean shutdown
    /// that asked for it; the next open replays from an older snapshot).
    pub(super) fn snapshot_or_warn(&mut self, offset: i64) {
        if let Err(e) = self.snapshot_at(offset) {
            warn!(partition = %self.tp, offset, error = %e,
                "could not write a producer-state snapshot; the next open scans further");
        }
    }

    /// Delete snapshots above `offset` (before the log is cut there).
    pub(super) fn delete_snapshots_above(&self, offset: i64) -> Result<()> {
        producer_snapshot::delete_snapshots(&self.dir, |o| o > offset)
    }

    /// Delete snapshots below the first segment (after retention).
    pub(super) fn delete_snapshots_below_first_segment(&self) -> Result<()> {
        match self.segments.keys().next() {
            Some(&first) => producer_snapshot::delete_snapshots(&self.dir, |o| o < first),
            None => Ok(()),
        }
    }

    /// Rebuild the producer and transaction state from the newest usable
    /// snapshot at or below `limit` and the batches after it, or from every
    /// batch when none is usable; make the scanned segments' transaction
    /// indexes match what the scan found.
    pub(super) fn load_producer_state(&mut self, limit: i64) -> Result<()> {
        let offsets = producer_snapshot::list_snapshots(&self.dir)?;
        self.load_producer_state_from(limit, offsets)
    }

    /// [`load_producer_state`](Self::load_producer_state) with the
    /// snapshot offsets already listed (ascending).
    pub(super) fn load_producer_state_from(
        &mut self,
        limit: i64,
        mut offsets: Vec<i64>,
    ) -> Result<()> {
        let first_base = self.segments.keys().next().copied().unwrap_or(0);
        let mut rejected = 0u32;
        offsets.retain(|o| *o >= first_base && *o <= limit);
        for &offset in offsets.iter().rev() {
            match producer_snapshot::read_snapshot(&self.dir, offset) {
                Ok(s) if self.can_start_from(&s) => {
                    return self.load_from(Some(s), rejected);
                }
                Ok(_) => {}
                Err(e) => {
                    rejected += 1;
                    warn!(partition = %self.tp, offset, error = %e,
                        "ignoring an unusable producer-state snapshot");
                    // As Kafka's `loadFromSnapshot` on a corrupt file: gone,
                    // so it neither warns again nor counts among the newest
                    // kept. An unreadable file may be a passing I/O error.
                    if !matches!(e, SnapshotError::Io { .. }) {
                        remove_if_exists(&producer_snapshot::snapshot_path(&self.dir, offset))?;
                    }
                }
            }
        }
        self.load_from(None, rejected)
    }

    /// Whether replaying the log from `s` gives the full scan's state: the
    /// decided transactions it dropped as replicated must be replicated for
    /// this log's high watermark too, and the transaction indexes it does
    /// not rescan must have loaded.
    fn can_start_from(&self, s: &ProducerSnapshot) -> bool {
        if self.high_watermark < s.txns.hw_applied.min(s.offset) {
            return false;
        }
        self.segments
            .range(..s.offset)
            .all(|(_, seg)| seg.txn_index().is_valid())
    }

    fn load_from(&mut self, snapshot: Option<ProducerSnapshot>, rejected: u32) -> Result<()> {
        let from = snapshot.as_ref().map_or(i64::MIN, |s| s.offset);
        let (mut producers, mut txns) = match &snapshot {
            Some(s) => (
                ProducerStateManager::from_snapshot_entries(s.producers.clone()),
                TxnTracker::from_snapshot(&s.txns),
            ),
            None => (ProducerStateManager::new(), TxnTracker::new()),
        };
        let mut load = ProducerStateLoad {
            snapshot_offset: snapshot.as_ref().map(|s| s.offset),
            snapshots_rejected: rejected,
            ..ProducerStateLoad::default()
        };
        let mut rewritten = 0usize;
        for seg in self.segments.values_mut() {
            if seg.next_offset() <= from {
                continue;
            }
            // The segment holding the snapshot's offset is replayed from it;
            // its index keeps the entries of markers before it.
            let (start, mut aborted) = if seg.base_offset() >= from {
                (0, Vec::new())
            } else {
                match seg.translate_offset(from)? {
                    Some((pos, _)) => (pos, {
                        let kept = seg.txn_index().entries().iter();
                        kept.filter(|e| e.last_offset < from).copied().collect()
                    }),
                    None => continue,
                }
            };
            scan_segment(seg, start, |h, marker| {
                load.batches_scanned += 1;
                load.bytes_scanned += h.size_in_bytes() as u64;
                if let Some(done) = apply_batch(&mut producers, &mut txns, h, marker) {
                    if done.aborted {
                        aborted.push(entry(&done));
                    }
                }
            })?;
            let index = seg.txn_index_mut();
            if !index.is_valid() || index.entries() != aborted.as_slice() {
                index.reset_to(aborted)?;
                rewritten += 1;
            }
        }
        txns.on_high_watermark(self.high_watermark);
        self.producers = producers;
        self.txns = txns;
        self.producer_load = load;
        if rewritten > 0 {
            info!(partition = %self.tp, segments = rewritten, "rebuilt transaction indexes");
        }
        Ok(())
    }
}

/// Visit every batch of a segment from byte `start` in order with its
/// marker, reading only the headers of data batches (their records are
/// skipped, not read) and control batches whole. Stops at the first batch
/// that does not parse: the segment was validated when it was written or
/// recovered.
fn scan_segment(
    seg: &LogSegment,
    start: u64,
    mut f: impl FnMut(&BatchHeader, Option<Marker>),
) -> Result<()> {
    let file = seg.file();
    let size = seg.size();
    let path = seg.log_path().to_path_buf();
    let mut buf = vec![0u8; SCAN_BUFFER];
    let (mut buf_start, mut buf_len) = (0u64, 0usize);
    let mut pos = start;
    let mut last_len = 0usize;
    while pos + HEADER_SIZE as u64 <= size {
        let in_buf = pos >= buf_start && pos + HEADER_SIZE as u64 <= buf_start + buf_len as u64;
        if !in_buf {
            // After a large batch the next is likely large too: read just its
            // header rather than a buffer of records that will be skipped.
            let chunk = if last_len > SCAN_BUFFER / 4 {
                HEADER_SIZE
            } else {
                SCAN_BUFFER
            };
            let want = usize::try_from(size - pos).map_or(chunk, |r| r.min(chunk));
            read_exact_at(&file, &mut buf[..want], pos).at(&path)?;
            (buf_start, buf_len) = (pos, want);
        }
        let off = (pos - buf_start) as usize;
        let Some(Ok(header)) = buf.get(off..buf_len).map(BatchHeader::parse) else {
            break;
        };
        let len = header.size_in_bytes();
        if pos + len as u64 > size {
            break;
        }
        let marker = if header.is_control() {
            let bytes: Cow<[u8]> = match buf.get(off..off + len).filter(|_| off + len <= buf_len) {
                Some(b) => Cow::Borrowed(b),
                None => {
                    let mut whole = vec![0u8; len];
                    read_exact_at(&file, &mut whole, pos).at(&path)?;
                    Cow::Owned(whole)
                }
            };
            marker_of(&header, &bytes)
        } else {
            None
        };
        f(&header, marker);
        pos += len as u64;
        last_len = len;
    }
    Ok(())
}

fn read_exact_at(file: &File, buf: &mut [u8], pos: u64) -> std::io::Result<()> {
    file.read_exact_at(buf, pos)
}
