//! `LogSegment`: one `.log` file of record batches with its sparse
//! [`OffsetIndex`] and [`TimeIndex`] and its [`TransactionIndex`] of aborted
//! transactions, named by the 20-digit base offset.
//!
//! Invariants: the `.log` file holds whole, valid batches with increasing
//! offsets, all ≥ the base offset, from position 0 to `size`; every index
//! entry points at a batch start inside it. Only the owning
//! [`crate::PartitionLog`] mutates a segment; reads go through a
//! [`ReadPlan`] that holds the file open, so they do not block appends.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rivulet_protocol::record_batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};

use crate::config::LogConfig;
use crate::error::{IoContext, Result};
use crate::offset_index::{OffsetIndex, OFFSET_ENTRY_SIZE};
use crate::time_index::{TimeIndex, TimestampOffset, TIME_ENTRY_SIZE};
use crate::transaction_index::{TransactionIndex, TXN_INDEX_SUFFIX};

pub const LOG_SUFFIX: &str = ".log";

mod read_plan;
pub use read_plan::ReadPlan;
pub const INDEX_SUFFIX: &str = ".index";
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";

/// `<dir>/<20-digit base offset><suffix>`, as Kafka names segment files.
pub fn segment_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}"))
}

/// `path` with `extra` appended to its file name.
pub fn with_extra(path: PathBuf, extra: &str) -> PathBuf {
    if extra.is_empty() {
        return path;
    }
    let mut s = path.into_os_string();
    s.push(extra);
    PathBuf::from(s)
}

/// The base offset encoded in a segment file name, if it is one.
pub fn parse_segment_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A `Read` over a file by positioned reads, so that sequential scans never
/// depend on (or move) the shared file cursor.
pub(crate) struct PositionedReader<'a> {
    file: &'a File,
    pos: u64,
}

impl<'a> PositionedReader<'a> {
    pub(crate) fn new(file: &'a File, pos: u64) -> Self {
        PositionedReader { file, pos }
    }
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Visit every batch of the first `size` bytes of a segment file in order,
/// with its parsed header; stops at the first torn or invalid batch.
pub(crate) fn for_each_batch(
    file: &File,
    size: u64,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<()>,
) -> Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, PositionedReader::new(file, 0));
    let mut buf = Vec::new();
    let mut pos = 0u64;
    while pos + LOG_OVERHEAD as u64 <= size {
        buf.resize(LOG_OVERHEAD, 0);
        if reader.read_exact(&mut buf).is_err() {
            break;
        }
        let Some(len) = record_batch::peek_batch_size(&buf) else {
            break;
        };
        if len < HEADER_SIZE || pos + len as u64 > size {
            break;
        }
        buf.resize(len, 0);
        if reader.read_exact(&mut buf[LOG_OVERHEAD..]).is_err() {
            break;
        }
        let Ok(header) = BatchHeader::parse(&buf) else {
            break;
        };
        f(&header, &buf)?;
        pos += len as u64;
    }
    Ok(pos)
}

/// What a scan over a segment's batches found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryResult {
    pub valid_bytes: u64,
    pub truncated_bytes: u64,
    pub batches: u64,
}

#[derive(Debug)]
pub struct LogSegment {
    base_offset: i64,
    dir: PathBuf,
    /// Text after the file suffixes: empty, `.cleaned` or `.swap`.
    extra: String,
    log_path: Arc<PathBuf>,
    log: Arc<File>,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Aborted transactions whose marker is in this segment (maintained by
    /// the owning log, which knows the producers' state).
    txn_index: TransactionIndex,
    index_interval: u64,
    max_offset_entries: usize,
    max_time_entries: usize,
    bytes_since_last_index_entry: u64,
    max_timestamp_so_far: i64,
    offset_of_max_timestamp: i64,
    next_offset: i64,
    /// Time the segment's age is measured from for `segment.ms`: the first
    /// batch's max timestamp, else creation time.
    rolling_base_ms: Option<i64>,
    created_ms: i64,
}

impl LogSegment {
    /// Create a new, empty, active segment, replacing stale files of the same
    /// name.
    pub fn create(dir: &Path, base_offset: i64, cfg: &LogConfig, now_ms: i64) -> Result<Self> {
        Self::create_with_extra(dir, base_offset, cfg, now_ms, "")
    }

    /// [`create`](Self::create) with `extra` appended to every file name
    /// (`.cleaned` for a segment the cleaner is writing).
    pub fn create_with_extra(
        dir: &Path,
        base_offset: i64,
        cfg: &LogConfig,
        now_ms: i64,
        extra: &str,
    ) -> Result<Self> {
        for suffix in [
            LOG_SUFFIX,
            INDEX_SUFFIX,
            TIME_INDEX_SUFFIX,
            TXN_INDEX_SUFFIX,
        ] {
            let p = with_extra(segment_file(dir, base_offset, suffix), extra);
            if p.exists() {
                fs::remove_file(&p).at(&p)?;
            }
        }
        let mut seg = Self::open_with_extra(dir, base_offset, cfg, true, extra)?;
        seg.created_ms = now_ms;
        Ok(seg)
    }

    /// Open an existing segment's files (created if missing). The caller then
    /// either [`load_tail`](Self::load_tail)s it (clean shutdown) or
    /// [`recover`](Self::recover)s it.
    pub fn open(dir: &Path, base_offset: i64, cfg: &LogConfig, active: bool) -> Result<Self> {
        Self::open_with_extra(dir, base_offset, cfg, active, "")
    }

    /// [`open`](Self::open) files named with `extra` after their suffix.
    pub fn open_with_extra(
        dir: &Path,
        base_offset: i64,
        cfg: &LogConfig,
        active: bool,
        extra: &str,
    ) -> Result<Self> {
        let log_path = with_extra(segment_file(dir, base_offset, LOG_SUFFIX), extra);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)
            .at(&log_path)?;
        let meta = log.metadata().at(&log_path)?;
        let size = meta.len();
        let modified_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        let max_offset_entries = cfg.max_index_entries(OFFSET_ENTRY_SIZE as u64) as usize;
        let max_time_entries = cfg.max_index_entries(TIME_ENTRY_SIZE as u64) as usize;
        let offset_index = OffsetIndex::open(
            &with_extra(segment_file(dir, base_offset, INDEX_SUFFIX), extra),
            base_offset,
            max_offset_entries,
            active,
        )?;
        let time_index = TimeIndex::open(
            &with_extra(segment_file(dir, base_offset, TIME_INDEX_SUFFIX), extra),
            base_offset,
            max_time_entries,
            active,
        )?;
        let txn_index = TransactionIndex::open(
            &with_extra(segment_file(dir, base_offset, TXN_INDEX_SUFFIX), extra),
            base_offset,
        )?;
        Ok(LogSegment {
            base_offset,
            dir: dir.to_path_buf(),
            extra: extra.to_string(),
            log_path: Arc::new(log_path),
            log: Arc::new(log),
            size,
            offset_index,
            time_index,
            txn_index,
            index_interval: cfg.index_interval_bytes,
            max_offset_entries,
            max_time_entries,
            bytes_since_last_index_entry: 0,
            max_timestamp_so_far: -1,
            offset_of_max_timestamp: base_offset,
            next_offset: base_offset,
            rolling_base_ms: None,
            created_ms: modified_ms,
        })
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The offset after the last batch (the base offset when empty).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Largest batch timestamp seen, or -1.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp_so_far
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub(crate) fn file(&self) -> Arc<File> {
        self.log.clone()
    }

    pub fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }

    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }

    pub fn txn_index(&self) -> &TransactionIndex {
        &self.txn_index
    }

    pub(crate) fn txn_index_mut(&mut self) -> &mut TransactionIndex {
        &mut self.txn_index
    }

    /// The max timestamp of the segment's first batch (`None` without
    /// records or timestamps): when its oldest record was written, for
    /// `max.compaction.lag.ms`.
    pub fn first_batch_timestamp(&self) -> Option<i64> {
        self.rolling_base_ms.filter(|&t| t >= 0)
    }

    /// Timestamp the segment's age counts from, for `segment.ms` and
    /// retention: its newest record, else when it was created.
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp_so_far >= 0 {
            self.max_timestamp_so_far
        } else {
            self.created_ms
        }
    }

    /// Whether a batch with max timestamp `batch_ts` arriving at `now_ms`
    /// must go to a new segment by `segment.ms`. As Kafka, the age is
    /// measured in record time — the incoming timestamp minus the first
    /// batch's — when the segment's records have timestamps, else in wall
    /// time since the segment was created. (Comparing wall time with record
    /// time would roll on every append for a producer replaying old data.)
    pub fn is_expired_for_roll(&self, batch_ts: i64, now_ms: i64, segment_ms: i64) -> bool {
        if self.size == 0 {
            return false;
        }
        match self.rolling_base_ms {
            Some(base) if base >= 0 => batch_ts - base > segment_ms,
            _ => now_ms - self.created_ms > segment_ms,
        }
    }

    pub fn indexes_full(&self) -> bool {
        self.offset_index.is_full() || self.time_index.is_full()
    }

    /// Whether appending a batch of `offset` would overflow a 32-bit
    /// relative offset in the indexes.
    pub fn can_hold_offset(&self, last_offset: i64) -> bool {
        last_offset - self.base_offset <= i32::MAX as i64
    }

    /// Append one batch whose header (offsets already assigned) is `header`.
    ///
    /// All or nothing: when the write or an index entry fails (ENOSPC, EIO),
    /// whatever part of the batch reached the file is cut off again, so the
    /// file stays whole batches up to `size` and the next append starts where
    /// this one did.
    pub fn append(&mut self, header: &BatchHeader, bytes: &[u8]) -> Result<()> {
        debug_assert!(header.base_offset >= self.next_offset);
        let position = self.size;
        let result = self
            .log
            .write_all_at(bytes, position)
            .at(self.log_path.as_path())
            .and_then(|()| self.note_batch(header, position, bytes.len() as u64));
        if let Err(e) = result {
            if let Err(cut) = self.log.set_len(position) {
                // Recovery cuts it at the next start; appends overwrite it.
                tracing::error!(segment = %self.log_path.display(), position, error = %cut,
                    "cannot cut a failed append off the segment");
            }
            return Err(e);
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Update indexes and counters for a batch at `position`; on an error
    /// nothing changed.
    fn note_batch(&mut self, header: &BatchHeader, position: u64, len: u64) -> Result<()> {
        let (max_timestamp, offset_of_max) = if header.max_timestamp > self.max_timestamp_so_far {
            (header.max_timestamp, header.base_offset)
        } else {
            (self.max_timestamp_so_far, self.offset_of_max_timestamp)
        };
        let index_it = self.bytes_since_last_index_entry >= self.index_interval || position == 0;
        if index_it {
            self.offset_index
                .append(header.base_offset, position as u32)?;
            if let Err(e) = self.time_index.maybe_append(max_timestamp, offset_of_max) {
                self.offset_index.truncate_to(header.base_offset);
                return Err(e);
            }
            self.bytes_since_last_index_entry = 0;
        }
        self.max_timestamp_so_far = max_timestamp;
        self.offset_of_max_timestamp = offset_of_max;
        if self.rolling_base_ms.is_none() {
            self.rolling_base_ms = Some(header.max_timestamp);
        }
        self.bytes_since_last_index_entry += len;
        self.next_offset = header.next_offset();
        Ok(())
    }

    /// Read the batch header at `position`, if a whole header is there.
    fn header_at(&self, position: u64) -> Result<Option<BatchHeader>> {
        if position + HEADER_SIZE as u64 > self.size {
            return Ok(None);
        }
        let mut buf = [0u8; HEADER_SIZE];
        self.log
            .read_exact_at(&mut buf, position)
            .at(self.log_path.as_path())?;
        Ok(BatchHeader::parse(&buf).ok())
    }

    /// The first batch whose last offset is ≥ `offset`, scanning forward from
    /// the index entry at or before it: `(position, header)`.
    pub fn translate_offset(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        let start = self.offset_index.lookup(offset);
        let mut pos = start.position as u64;
        while let Some(h) = self.header_at(pos)? {
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.size_in_bytes() as u64;
        }
        Ok(None)
    }

    /// The first batch at or after `starting_offset` whose max timestamp is
    /// ≥ `timestamp`: `(position, header)`.
    pub fn find_batch_by_timestamp(
        &self,
        timestamp: i64,
        starting_offset: i64,
    ) -> Result<Option<(u64, BatchHeader)>> {
        let from_time = self
            .time_index
            .lookup(timestamp)
            .map_or(self.base_offset, |TimestampOffset { offset, .. }| offset);
        let from = from_time.max(starting_offset);
        let mut pos = self.offset_index.lookup(from).position as u64;
        while let Some(h) = self.header_at(pos)? {
            if h.last_offset() >= starting_offset && h.max_timestamp >= timestamp {
                return Ok(Some((pos, h)));
            }
            pos += h.size_in_bytes() as u64;
        }
        Ok(None)
    }

    /// Read the whole batch at `position`.
    pub fn read_batch(&self, position: u64, header: &BatchHeader) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; header.size_in_bytes()];
        self.log
            .read_exact_at(&mut buf, position)
            .at(self.log_path.as_path())?;
        Ok(buf)
    }

    /// After a clean shutdown: find the next offset and max timestamp by
    /// scanning the batches after the last index entry. Returns false when the
    /// tail does not parse, in which case the segment needs recovery.
    pub fn load_tail(&mut self) -> Result<bool> {
        // The first batch of a segment is always indexed, so an empty index
        // over a non-empty log was lost.
        if (self.size > 0 && self.offset_index.entries() == 0)
            || !self.offset_index.sanity_check(self.size.max(1))
            || !self.time_index.sanity_check(i64::MAX)
        {
            return Ok(false);
        }
        if self.time_index.entries() == 0 {
            // The first batch with a timestamp is always time-indexed.
            if let Some(h) = self.header_at(0)? {
                if h.max_timestamp >= 0 {
                    return Ok(false);
                }
            }
        }
        let start = self
            .offset_index
            .last_entry()
            .map_or(0, |e| e.position as u64);
        if let Some(t) = self.time_index.last_entry() {
            self.max_timestamp_so_far = t.timestamp;
            self.offset_of_max_timestamp = t.offset;
        }
        let mut pos = start;
        while pos < self.size {
            let Some(h) = self.header_at(pos)? else {
                return Ok(false);
            };
            let end = pos + h.size_in_bytes() as u64;
            if end > self.size || h.base_offset < self.next_offset {
                return Ok(false);
            }
            if h.max_timestamp > self.max_timestamp_so_far {
                self.max_timestamp_so_far = h.max_timestamp;
                self.offset_of_max_timestamp = h.base_offset;
            }
            self.next_offset = h.next_offset();
            self.bytes_since_last_index_entry += h.size_in_bytes() as u64;
            pos = end;
        }
        if self.size > 0 {
            // Kafka's rolling-based timestamp: the first batch's.
            self.rolling_base_ms = self.header_at(0)?.map(|h| h.max_timestamp);
        }
        Ok(true)
    }

    /// Rebuild both indexes by validating every batch from the start;
    /// truncate the file at the first torn or invalid batch. `on_batch` sees
    /// each valid batch in order (for the leader-epoch cache and producer
    /// state).
    pub fn recover(
        &mut self,
        max_batch_bytes: usize,
        mut on_batch: impl FnMut(&BatchHeader),
    ) -> Result<RecoveryResult> {
        // Rebuilt indexes may need more room than a trimmed file has; the
        // caller trims again if the segment is not the active one.
        self.offset_index.file_mut().reset();
        self.time_index.file_mut().reset();
        self.offset_index
            .file_mut()
            .reopen_for_append(self.max_offset_entries)?;
        self.time_index
            .file_mut()
            .reopen_for_append(self.max_time_entries)?;
        self.max_timestamp_so_far = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.next_offset = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        self.rolling_base_ms = None;

        let file_size = self.log.metadata().at(self.log_path.as_path())?.len();
        let file = self.log.clone();
        let mut reader = BufReader::with_capacity(1 << 20, PositionedReader::new(&file, 0));
        let mut buf: Vec<u8> = Vec::new();
        let mut pos = 0u64;
        let mut batches = 0u64;
        loop {
            if pos + LOG_OVERHEAD as u64 > file_size {
                break;
            }
            buf.resize(LOG_OVERHEAD, 0);
            if reader.read_exact(&mut buf).is_err() {
                break;
            }
            let Some(size) = record_batch::peek_batch_size(&buf) else {
                break;
            };
            if size < HEADER_SIZE || size > max_batch_bytes || pos + size as u64 > file_size {
                break;
            }
            buf.resize(size, 0);
            if reader.read_exact(&mut buf[LOG_OVERHEAD..]).is_err() {
                break;
            }
            let header = match record_batch::validate_batch(&buf) {
                Ok(h) if h.base_offset >= self.next_offset => h,
                _ => break,
            };
            // The file is read without positioned I/O here, so index updates
            // use the running position.
            self.note_batch(&header, pos, size as u64)?;
            on_batch(&header);
            batches += 1;
            pos += size as u64;
        }
        let truncated = file_size - pos;
        if truncated > 0 {
            self.log.set_len(pos).at(self.log_path.as_path())?;
        }
        self.size = pos;
        Ok(RecoveryResult {
            valid_bytes: pos,
            truncated_bytes: truncated,
            batches,
        })
    }

    /// Remove every batch whose offsets reach `offset` or beyond, cutting at
    /// a batch boundary (a batch straddling `offset` goes entirely, as in
    /// Kafka). Afterwards `next_offset` is `offset` unless the segment ended
    /// earlier. Returns the bytes removed.
    pub fn truncate_to(&mut self, offset: i64) -> Result<u64> {
        let Some((position, header)) = self.translate_offset(offset)? else {
            return Ok(0);
        };
        let removed = self.size - position;
        self.log.set_len(position).at(self.log_path.as_path())?;
        self.size = position;
        self.offset_index.truncate_to(header.base_offset);
        self.time_index.truncate_to(header.base_offset);
        self.txn_index.truncate_to(header.base_offset)?;
        self.max_timestamp_so_far = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.next_offset = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        self.rolling_base_ms = None;
        if !self.load_tail()? {
            self.recover(usize::MAX, |_| {})?;
        }
        self.next_offset = self.next_offset.max(offset.min(header.next_offset()));
        Ok(removed)
    }

    /// The segment is no longer active: write the final time-index entry,
    /// trim both indexes to size and fsync everything.
    pub fn on_becoming_inactive(&mut self) -> Result<()> {
        self.finish_indexes()?;
        self.flush()
    }

    /// The active segment of a log being closed whose `.log` was just
    /// fsynced: [`on_becoming_inactive`](Self::on_becoming_inactive) but for
    /// that fsync.
    pub fn close_indexes(&mut self) -> Result<()> {
        self.finish_indexes()?;
        self.offset_index.flush()?;
        self.time_index.flush()?;
        self.txn_index.flush()
    }

    /// The final time-index entry and both indexes trimmed to their entries.
    fn finish_indexes(&mut self) -> Result<()> {
        if self.max_timestamp_so_far >= 0 {
            let last = self.time_index.last_entry();
            if last.is_none_or(|l| l.timestamp < self.max_timestamp_so_far) {
                // Make room if the preallocation is exhausted; the final entry
                // must record the segment's max timestamp.
                let f = self.time_index.file_mut();
                if f.is_full() {
                    let n = f.entries() + 1;
                    f.reopen_for_append(n)?;
                }
                self.time_index
                    .maybe_append(self.max_timestamp_so_far, self.offset_of_max_timestamp)?;
            }
        }
        self.offset_index.file_mut().trim()?;
        self.time_index.file_mut().trim()
    }

    /// Make a trimmed segment the active one again (after truncation).
    pub fn reopen_for_append(&mut self) -> Result<()> {
        self.offset_index
            .file_mut()
            .reopen_for_append(self.max_offset_entries)?;
        self.time_index
            .file_mut()
            .reopen_for_append(self.max_time_entries)
    }

    /// fsync the log file and write back the index maps.
    pub fn flush(&self) -> Result<()> {
        self.log.sync_data().at(self.log_path.as_path())?;
        self.offset_index.flush()?;
        self.time_index.flush()?;
        self.txn_index.flush()
    }

    /// Rename the segment's files to carry `extra` instead of the current
    /// extra text (index files first, the `.log` last, so the log's name
    /// marks completion). Open handles stay valid.
    pub fn rename_extra(&mut self, extra: &str) -> Result<()> {
        self.txn_index.rename(with_extra(
            segment_file(&self.dir, self.base_offset, TXN_INDEX_SUFFIX),
            extra,
        ))?;
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
            let from = with_extra(
                segment_file(&self.dir, self.base_offset, suffix),
                &self.extra,
            );
            let to = with_extra(segment_file(&self.dir, self.base_offset, suffix), extra);
            fs::rename(&from, &to).at(&from)?;
        }
        self.extra = extra.to_string();
        self.log_path = Arc::new(with_extra(
            segment_file(&self.dir, self.base_offset, LOG_SUFFIX),
            extra,
        ));
        self.offset_index.file_mut().set_path(with_extra(
            segment_file(&self.dir, self.base_offset, INDEX_SUFFIX),
            extra,
        ));
        self.time_index.file_mut().set_path(with_extra(
            segment_file(&self.dir, self.base_offset, TIME_INDEX_SUFFIX),
            extra,
        ));
        Ok(())
    }

    /// Remove the segment's files.
    pub fn delete(self) -> Result<()> {
        for suffix in [
            LOG_SUFFIX,
            INDEX_SUFFIX,
            TIME_INDEX_SUFFIX,
            TXN_INDEX_SUFFIX,
        ] {
            let p = with_extra(
                segment_file(&self.dir, self.base_offset, suffix),
                &self.extra,
            );
            remove_if_exists(&p)?;
        }
        Ok(())
    }
}

/// Remove a file; a missing one is fine.
pub fn remove_if_exists(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(p),
    }
}
