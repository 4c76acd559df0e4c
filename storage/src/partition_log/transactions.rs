//! Transactions in [`PartitionLog`] (KIP-98): tracking ongoing and decided
//! transactions on every append, the last stable offset, the aborted
//! transactions a read_committed fetch needs, and rebuilding all of it from
//! the log on open and after a deep truncation.
//!
//! Invariants: the [`TxnTracker`] reflects every batch in the log, in order;
//! each segment's [`TransactionIndex`] holds exactly the aborted transactions
//! whose ABORT marker lies in it (the cleaner may leave entries whose data it
//! removed; the next open drops them). Without producer-state snapshots,
//! opening a log scans the headers of all its batches (data is skipped, only
//! control batches are read whole).

use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::FileExt;

use rivulet_protocol::control::{parse_control_marker, ControlType};
use rivulet_protocol::record_batch::{BatchHeader, HEADER_SIZE};
use tracing::info;

use super::PartitionLog;
use crate::error::{IoContext, Result};
use crate::log_segment::LogSegment;
use crate::transaction_index::AbortedTxn;
use crate::txn_tracker::{CompletedTxn, TxnTracker};

/// Bytes read at a time when scanning headers.
const SCAN_BUFFER: usize = 64 * 1024;

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

    /// Note a batch just written to the active segment: start or complete
    /// its producer's transaction, and index an aborted one.
    pub(super) fn track_txn(&mut self, header: &BatchHeader, bytes: &[u8]) -> Result<()> {
        if !header.is_transactional() || header.producer_id < 0 {
            return Ok(());
        }
        let marker = marker_of(header, bytes);
        if let Some(done) = self.txns.on_batch(header, marker) {
            if done.aborted {
                self.active_mut()?.txn_index_mut().append(entry(&done))?;
            }
        }
        Ok(())
    }

    /// Bring the transaction state in line with a truncation to `offset`
    /// (indexes are already truncated with their segments): exactly when
    /// nothing below the applied high watermark went, else by rescanning the
    /// log.
    pub(super) fn txns_truncated(&mut self, offset: i64) -> Result<()> {
        if self.txns.truncate_to(offset) {
            self.txns.on_high_watermark(self.high_watermark);
            return Ok(());
        }
        info!(partition = %self.tp, offset, "rescanning the log for transactions after truncation");
        self.load_txn_state()
    }

    /// Rebuild the transaction state by scanning every batch header of the
    /// log, and make each segment's transaction index match what the scan
    /// found (rewriting any that is missing, torn or stale).
    pub(super) fn load_txn_state(&mut self) -> Result<()> {
        let mut tracker = TxnTracker::new();
        let mut rewritten = 0usize;
        for seg in self.segments.values_mut() {
            let mut aborted = Vec::new();
            scan_segment(seg, |h, marker| {
                if let Some(done) = tracker.on_batch(h, marker) {
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
        tracker.on_high_watermark(self.high_watermark);
        self.txns = tracker;
        if rewritten > 0 {
            info!(partition = %self.tp, segments = rewritten, "rebuilt transaction indexes");
        }
        Ok(())
    }
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
/// types and (logged by the caller's validation, never fatal here) control
/// batches that do not parse.
pub(crate) fn marker_of(header: &BatchHeader, bytes: &[u8]) -> Option<ControlType> {
    if !header.is_control() {
        return None;
    }
    parse_control_marker(bytes)
        .ok()
        .flatten()
        .map(|(kind, _)| kind)
}

/// Visit every batch of a segment in order with its marker, reading only the
/// headers of data batches (their records are skipped, not read) and control
/// batches whole. Stops at the first batch that does not parse: the segment
/// was validated when it was written or recovered.
fn scan_segment(
    seg: &LogSegment,
    mut f: impl FnMut(&BatchHeader, Option<ControlType>),
) -> Result<()> {
    let file = seg.file();
    let size = seg.size();
    let path = seg.log_path().to_path_buf();
    let mut buf = vec![0u8; SCAN_BUFFER];
    let (mut buf_start, mut buf_len) = (0u64, 0usize);
    let mut pos = 0u64;
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
