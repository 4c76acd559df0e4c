//! `PartitionLog` (Kafka's `UnifiedLog`): one partition's ordered
//! [`LogSegment`]s, the offsets that bound them, and the operations the broker
//! needs — append as leader or follower, read, look up by timestamp, truncate,
//! move the log start, roll, retain and flush — and keep the producer state
//! (idempotent producers, and transactions for read_committed: the last
//! stable offset, aborted transactions), snapshotted to `<offset>.snapshot`
//! files so opening does not rescan the whole log.
//!
//! Invariants: segments are keyed by base offset and hold increasing,
//! non-overlapping offsets; the last segment is the only active one;
//! `log_start_offset ≤ high_watermark ≤ log_end_offset`. Mutation needs
//! `&mut self` (one writer per partition); reads need `&self` and hand back a
//! [`ReadPlan`] whose I/O happens outside any lock the caller holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rivulet_protocol::record_batch::{self, BatchHeader, BatchIter};
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::config::{LogConfig, TimestampPolicy};
use crate::durability::FlushTracker;
use crate::error::{Result, StorageError};
use crate::leader_epoch_cache::LeaderEpochCache;
use crate::log_segment::{LogSegment, ReadPlan};
use crate::producer_state::ProducerStateManager;
use crate::topic_partition::TopicPartition;
use crate::txn_tracker::TxnTracker;

mod dir_listing;
pub(crate) mod producer_load;
mod retention;
mod timestamps;
mod transactions;
mod truncation;
mod validation;

use dir_listing::DirListing;
pub use producer_load::ProducerStateLoad;

/// Where a log left off, from the data dir's checkpoints.
#[derive(Debug, Clone)]
pub struct LogOpenOptions {
    /// Offsets below this were fsynced; batches after it are re-validated
    /// when the shutdown was not clean.
    pub recovery_point: i64,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// Whether the broker shut down cleanly (indexes trimmed and trusted).
    pub clean_shutdown: bool,
    /// Limit for decompressing a batch in timestamp lookups.
    pub max_decompressed_batch_bytes: usize,
    /// Offsets below this were compacted by an earlier cleaning pass
    /// (`cleaner-offset-checkpoint`).
    pub cleaner_checkpoint: i64,
    /// Bytes at the end of each segment file kept in the page cache after
    /// an fsync; older ones are dropped from it (0: keep everything).
    pub page_cache_window: u64,
}

impl Default for LogOpenOptions {
    fn default() -> Self {
        LogOpenOptions {
            recovery_point: 0,
            log_start_offset: 0,
            high_watermark: 0,
            clean_shutdown: false,
            max_decompressed_batch_bytes: 64 * 1024 * 1024,
            cleaner_checkpoint: 0,
            page_cache_window: 0,
        }
    }
}

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogAppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// Largest batch max timestamp appended, and the base offset of its batch.
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    /// The broker's time stamped on the batches, or -1 for CreateTime.
    pub log_append_time: i64,
    pub record_count: i64,
    pub bytes: usize,
}

/// What opening found on disk.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpenReport {
    pub segments: usize,
    pub recovered_segments: usize,
    pub truncated_bytes: u64,
    pub deleted_segments: usize,
    /// How the producer state was loaded (from which snapshot, how much
    /// log was replayed after it).
    pub producer_state: ProducerStateLoad,
}

/// What a retention pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionResult {
    pub segments: usize,
    pub bytes: u64,
}

#[derive(Debug)]
pub struct PartitionLog {
    tp: TopicPartition,
    dir: PathBuf,
    pub(crate) config: LogConfig,
    clock: Arc<dyn Clock>,
    pub(crate) segments: BTreeMap<i64, LogSegment>,
    log_start_offset: i64,
    log_end_offset: i64,
    high_watermark: i64,
    epoch_cache: LeaderEpochCache,
    flush: Arc<FlushTracker>,
    max_decompressed: usize,
    /// Offsets below this have been compacted (see [`crate::LogCleaner`]).
    pub(crate) cleaned_up_to: i64,
    /// Truncations so far: a cleaning pass that spans one is discarded.
    pub(crate) truncations: u64,
    /// Failed appends since the last warning about them, and when it was.
    append_failures: u64,
    append_failure_logged_ms: i64,
    /// Ongoing and unreplicated transactions (see `transactions`).
    txns: TxnTracker,
    /// Idempotent producers (see `producer_load`).
    producers: ProducerStateManager,
    /// How the producer state was last loaded.
    producer_load: ProducerStateLoad,
}

/// Who asks for an append as leader (Kafka's `AppendOrigin`): only the
/// broker's coordinators may write control batches (transaction markers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer: control batches are refused.
    Client,
    /// The broker itself (transaction markers, group coordinator records).
    Coordinator,
}

/// Least interval between two warnings about a partition's failing appends.
const APPEND_FAILURE_LOG_MS: i64 = 10_000;

impl PartitionLog {
    /// Open the log in `dir` (created if absent), recovering it as needed.
    pub fn open(
        dir: &Path,
        tp: TopicPartition,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        opts: LogOpenOptions,
    ) -> Result<(Self, OpenReport)> {
        let mut report = OpenReport::default();
        let mut listing = DirListing::read_or_create(dir)?;
        // Only segment files (the common case): nothing else to list.
        let only_segments = listing.only_segments();
        if !only_segments {
            crate::log_cleaner::complete_interrupted_swaps(dir, &config)?;
            listing = DirListing::read_or_create(dir)?;
        }
        let bases = listing.segment_bases(dir)?;
        let mut epoch_cache = LeaderEpochCache::load(dir)?;
        let mut segments = BTreeMap::new();
        let recovery_floor = bases
            .iter()
            .copied()
            .filter(|b| *b <= opts.recovery_point)
            .max()
            .unwrap_or(i64::MIN);
        let mut stop_after: Option<i64> = None;
        let last_base = bases.last().copied();
        let mut prev_next = i64::MIN;
        for &base in &bases {
            if stop_after.is_some() || base < prev_next {
                // Everything after a corrupt point or an overlap goes.
                stop_after.get_or_insert(base);
                LogSegment::open(dir, base, &config, false)?.delete()?;
                report.deleted_segments += 1;
                continue;
            }
            let active = Some(base) == last_base;
            let mut seg = LogSegment::open(dir, base, &config, active)?;
            let must_recover = !opts.clean_shutdown && base >= recovery_floor;
            if must_recover || !seg.load_tail()? {
                let before = seg.size();
                let r = seg.recover(
                    config.max_message_bytes as usize + record_batch::HEADER_SIZE,
                    |h| {
                        epoch_cache.assign_in_memory(h.partition_leader_epoch, h.base_offset);
                    },
                )?;
                report.recovered_segments += 1;
                report.truncated_bytes += r.truncated_bytes;
                if r.truncated_bytes > 0 {
                    warn!(partition = %tp, segment = base, before, kept = r.valid_bytes,
                        "truncated a torn or corrupt tail during recovery");
                    stop_after = Some(base);
                }
                if !active {
                    seg.on_becoming_inactive()?;
                } else {
                    seg.flush()?;
                }
            }
            prev_next = seg.next_offset();
            segments.insert(base, seg);
        }
        report.segments = segments.len();
        // A segment after which the rest was deleted is now the active one.
        if let Some((_, last)) = segments.iter_mut().next_back() {
            last.reopen_for_append()?;
        }
        if segments.is_empty() {
            let seg =
                LogSegment::create(dir, opts.log_start_offset.max(0), &config, clock.now_ms())?;
            segments.insert(seg.base_offset(), seg);
        }
        let (first_base, active_file, log_end_offset) =
            match (segments.values().next(), segments.values().next_back()) {
                (Some(f), Some(l)) => (f.base_offset(), l.file(), l.next_offset()),
                _ => return Err(StorageError::LogOffline(tp.to_string())),
            };
        let log_start_offset = opts.log_start_offset.max(first_base);
        let flush = Arc::new(FlushTracker::new(
            tp.to_string(),
            dir.to_path_buf(),
            active_file,
            log_end_offset,
            opts.page_cache_window,
        ));
        let mut log = PartitionLog {
            tp,
            dir: dir.to_path_buf(),
            config,
            clock,
            segments,
            log_start_offset,
            log_end_offset,
            high_watermark: 0,
            epoch_cache,
            flush,
            max_decompressed: opts.max_decompressed_batch_bytes,
            cleaned_up_to: opts.cleaner_checkpoint,
            truncations: 0,
            append_failures: 0,
            append_failure_logged_ms: i64::MIN / 2,
            txns: TxnTracker::new(),
            producers: ProducerStateManager::new(),
            producer_load: ProducerStateLoad::default(),
        };
        if log.log_start_offset > log.log_end_offset {
            log.truncate_fully_and_start_at(log.log_start_offset)?;
        }
        // In memory: the checkpoint is rewritten only for epochs recovery found.
        log.epoch_cache.drop_from_end(log.log_end_offset);
        log.epoch_cache.drop_from_start(log.log_start_offset);
        log.epoch_cache.flush_if_dirty()?;
        log.high_watermark = opts
            .high_watermark
            .clamp(log.log_start_offset, log.log_end_offset);
        // Snapshots above the recovered end describe batches that are gone;
        // after an unclean shutdown, only what was fsynced is trusted (as
        // Kafka loads producer state up to the recovery point).
        let limit = if opts.clean_shutdown {
            log.log_end_offset
        } else {
            log.log_end_offset.min(opts.recovery_point)
        };
        if only_segments {
            log.load_producer_state_from(limit, Vec::new())?;
        } else {
            log.delete_snapshots_above(log.log_end_offset)?;
            log.load_producer_state(limit)?;
        }
        report.producer_state = log.producer_load;
        if report.recovered_segments > 0 || report.deleted_segments > 0 {
            info!(partition = %log.tp, ?report, log_end_offset = log.log_end_offset, "recovered log");
        }
        Ok((log, report))
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replace the config; index sizes apply to segments created from now on.
    pub fn update_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Set the high watermark, clamped to `[log_start, log_end]`.
    pub fn set_high_watermark(&mut self, hw: i64) {
        self.high_watermark = hw.clamp(self.log_start_offset, self.log_end_offset);
        self.txns.on_high_watermark(self.high_watermark);
    }

    /// Offsets below this are on disk.
    pub fn recovery_point(&self) -> i64 {
        self.flush.flushed_offset()
    }

    pub fn leader_epoch_cache(&self) -> &LeaderEpochCache {
        &self.epoch_cache
    }

    /// The group-commit handle, usable without holding the log.
    pub fn flush_tracker(&self) -> Arc<FlushTracker> {
        self.flush.clone()
    }

    pub fn num_segments(&self) -> usize {
        self.segments.len()
    }

    pub fn segments(&self) -> impl Iterator<Item = &LogSegment> {
        self.segments.values()
    }

    pub fn size_in_bytes(&self) -> u64 {
        self.segments.values().map(LogSegment::size).sum()
    }

    fn active(&self) -> Result<&LogSegment> {
        self.segments
            .values()
            .next_back()
            .ok_or_else(|| StorageError::LogOffline(self.tp.to_string()))
    }

    fn active_mut(&mut self) -> Result<&mut LogSegment> {
        let name = self.tp.to_string();
        self.segments
            .values_mut()
            .next_back()
            .ok_or(StorageError::LogOffline(name))
    }

    /// Append the batches a producer sent: validate each, assign offsets from
    /// the log end, stamp the leader epoch (and the append time for
    /// `LogAppendTime` topics) in place, and write them. Either every batch
    /// is appended or none is: a failed write (a full disk) leaves the log as
    /// it was, so the next append gets the same offsets. Control batches are
    /// refused ([`BatchError::ControlBatchFromClient`]); the broker writes
    /// markers with [`append_as_leader_from`](Self::append_as_leader_from).
    /// Each batch's records are checked first (`validation.rs`), and a
    /// batch is rebuilt (not changed in place) when the topic's
    /// `compression.type` names another codec than the one it came in.
    ///
    /// [`BatchError::ControlBatchFromClient`]: rivulet_protocol::BatchError::ControlBatchFromClient
    pub fn append_as_leader(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
    ) -> Result<LogAppendInfo> {
        self.append_as_leader_from(records, leader_epoch, AppendOrigin::Client)
    }

    /// [`append_as_leader`](Self::append_as_leader) for `origin`: with
    /// [`AppendOrigin::Coordinator`] control batches are accepted if they
    /// hold a well-formed control record (e.g. from
    /// [`build_control_batch`](rivulet_protocol::control::build_control_batch)).
    pub fn append_as_leader_from(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        origin: AppendOrigin,
    ) -> Result<LogAppendInfo> {
        let batches = self.validate_all(records, Some(origin))?;
        let now = self.clock.now_ms();
        // Every batch's records are checked before any is appended.
        let checked = batches
            .iter()
            .map(|(range, header)| match origin {
                AppendOrigin::Client => {
                    let bytes = records.get(range.clone()).unwrap_or_default();
                    self.check_produced_batch(bytes, header, now)
                }
                AppendOrigin::Coordinator => Ok(validation::CheckedBatch::AS_IS),
            })
            .collect::<Result<Vec<_>>>()?;
        let log_append_time = match self.config.timestamp_type {
            TimestampPolicy::LogAppendTime => now,
            TimestampPolicy::CreateTime => -1,
        };
        let mut info = self.empty_info(log_append_time);
        let start = self.log_end_offset;
        for ((range, mut header), checked) in batches.into_iter().zip(checked) {
            let mut rebuilt = checked.recompressed;
            let bytes: &mut [u8] = match rebuilt.as_mut() {
                Some(new) => {
                    header = BatchHeader::parse(new)?;
                    new
                }
                None => &mut records[range],
            };
            let base = self.log_end_offset;
            record_batch::set_base_offset(bytes, base)?;
            record_batch::set_partition_leader_epoch(bytes, leader_epoch)?;
            if log_append_time >= 0 {
                record_batch::set_log_append_time(bytes, log_append_time)?;
                header.max_timestamp = log_append_time;
            } else if let Some(max) = checked.max_timestamp.filter(|&m| m != header.max_timestamp) {
                record_batch::set_max_timestamp(bytes, max)?;
                header.max_timestamp = max;
            }
            header.base_offset = base;
            header.partition_leader_epoch = leader_epoch;
            if let Err(e) = self.append_batch(&header, bytes, &mut info) {
                return Err(self.undo_append(start, e));
            }
        }
        self.flush.published(self.log_end_offset);
        Ok(info)
    }

    /// Append batches copied from the leader, unchanged: offsets must start
    /// at or after the log end offset. All or nothing, as
    /// [`append_as_leader`](Self::append_as_leader).
    pub fn append_as_follower(&mut self, records: &[u8]) -> Result<LogAppendInfo> {
        let batches = self.validate_all(records, None)?;
        let mut info = self.empty_info(-1);
        let start = self.log_end_offset;
        for (range, header) in batches {
            let appended = if header.base_offset < self.log_end_offset {
                Err(StorageError::NonMonotonicOffset {
                    base_offset: header.base_offset,
                    log_end: self.log_end_offset,
                })
            } else {
                self.append_batch(&header, &records[range], &mut info)
            };
            if let Err(e) = appended {
                return Err(self.undo_append(start, e));
            }
        }
        self.flush.published(self.log_end_offset);
        Ok(info)
    }

    /// An append failed after the log end moved from `start` (earlier
    /// batches of the same call were written): cut them off again, so that
    /// a producer told its records failed never finds some of them in the
    /// log. Returns `error`, the append's own error.
    fn undo_append(&mut self, start: i64, error: StorageError) -> StorageError {
        self.note_append_failure(&error);
        if self.log_end_offset > start {
            if let Err(undo) = self.truncate_to(start) {
                error!(partition = %self.tp, start, error = %undo,
                    "cannot remove the batches of a failed append");
            }
        }
        error
    }

    /// Log a failed append, at most once per [`APPEND_FAILURE_LOG_MS`] per
    /// partition: on a full disk every produce fails.
    fn note_append_failure(&mut self, error: &StorageError) {
        if !matches!(error, StorageError::Io { .. }) {
            return;
        }
        self.append_failures += 1;
        let now = self.clock.now_ms();
        if now - self.append_failure_logged_ms >= APPEND_FAILURE_LOG_MS {
            warn!(partition = %self.tp, failures = self.append_failures, %error,
                "appends are failing; producers get KAFKA_STORAGE_ERROR");
            self.append_failure_logged_ms = now;
            self.append_failures = 0;
        }
    }

    fn empty_info(&self, log_append_time: i64) -> LogAppendInfo {
        LogAppendInfo {
            first_offset: self.log_end_offset,
            last_offset: self.log_end_offset - 1,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            log_append_time,
            record_count: 0,
            bytes: 0,
        }
    }

    /// Validate every batch; `origin` is `None` for batches a follower copies.
    fn validate_all(
        &self,
        records: &[u8],
        origin: Option<AppendOrigin>,
    ) -> Result<Vec<(std::ops::Range<usize>, BatchHeader)>> {
        let limit = self.config.max_message_bytes as usize;
        let mut out = Vec::new();
        for item in BatchIter::new(records) {
            let (range, header) = item?;
            if range.len() > limit {
                return Err(StorageError::RecordTooLarge {
                    size: range.len(),
                    limit,
                });
            }
            // BatchIter validated the CRC already.
            match origin {
                Some(AppendOrigin::Client) => record_batch::check_produced(&header)?,
                Some(AppendOrigin::Coordinator) => {
                    record_batch::check_dense(&header)?;
                    if header.is_control() {
                        let bytes = records.get(range.clone()).unwrap_or_default();
                        rivulet_protocol::control::parse_control_marker(bytes)?;
                    }
                }
                None => {}
            }
            out.push((range, header));
        }
        if out.is_empty() {
            return Err(StorageError::InvalidBatch(
                rivulet_protocol::BatchError::TooShort {
                    needed: record_batch::HEADER_SIZE,
                    available: records.len(),
                },
            ));
        }
        Ok(out)
    }

    fn append_batch(
        &mut self,
        header: &BatchHeader,
        bytes: &[u8],
        info: &mut LogAppendInfo,
    ) -> Result<()> {
        self.maybe_roll(bytes.len() as u64, header)?;
        if info.record_count == 0 && info.bytes == 0 {
            info.first_offset = header.base_offset;
        }
        // The epoch first: should the write then fail, an epoch starting at
        // the log end is what a new leader records before its first append.
        if header.partition_leader_epoch >= 0 {
            self.epoch_cache
                .assign(header.partition_leader_epoch, header.base_offset)?;
        }
        self.active_mut()?.append(header, bytes)?;
        self.log_end_offset = header.next_offset();
        // After the log end moved: should indexing the transaction fail, the
        // caller's undo truncates this batch away again.
        self.note_batch(header, bytes)?;
        info.last_offset = header.last_offset();
        info.record_count += header.record_count as i64;
        info.bytes += bytes.len();
        if header.max_timestamp > info.max_timestamp {
            info.max_timestamp = header.max_timestamp;
            info.offset_of_max_timestamp = header.base_offset;
        }
        Ok(())
    }

    fn maybe_roll(&mut self, batch_size: u64, header: &BatchHeader) -> Result<()> {
        let now = self.clock.now_ms();
        let cfg = &self.config;
        let seg = self.active()?;
        let full = seg.size() > 0 && seg.size() + batch_size > cfg.segment_bytes;
        if full
            || seg.is_expired_for_roll(header.max_timestamp, now, cfg.max_segment_ms())
            || seg.indexes_full()
            || !seg.can_hold_offset(header.last_offset())
        {
            self.roll_at(header.base_offset)?;
        }
        Ok(())
    }

    /// Close the active segment and start a new one at the log end offset
    /// (no-op when the active segment is empty).
    pub fn roll(&mut self) -> Result<()> {
        self.roll_at(self.log_end_offset)
    }

    fn roll_at(&mut self, base: i64) -> Result<()> {
        let now = self.clock.now_ms();
        let active = self.active_mut()?;
        if active.is_empty() && active.base_offset() == base {
            return Ok(());
        }
        if active.is_empty() {
            // An empty active segment at a lower base is replaced.
            let base_old = active.base_offset();
            if let Some(seg) = self.segments.remove(&base_old) {
                seg.delete()?;
            }
        } else {
            active.on_becoming_inactive()?;
        }
        let seg = LogSegment::create(&self.dir, base, &self.config, now)?;
        info!(partition = %self.tp, base_offset = base, "rolled a new segment");
        self.flush.rolled(seg.file());
        self.segments.insert(base, seg);
        // Every batch below `base` is recorded, none above: the state as of
        // the new segment (Kafka's `roll` → `takeSnapshot`).
        self.snapshot_or_warn(base);
        Ok(())
    }

    /// Check an offset is readable: in `[log_start, log_end]`.
    fn check_offset(&self, offset: i64) -> Result<()> {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset,
            });
        }
        Ok(())
    }

    /// Plan a read of whole batches from the batch holding `start_offset`,
    /// up to `max_bytes` (at least one batch if `min_one_batch`), returning
    /// only batches that end before `max_offset` (e.g. the high watermark).
    /// `None` when there is nothing to return yet.
    pub fn plan_read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: Option<i64>,
        min_one_batch: bool,
    ) -> Result<Option<ReadPlan>> {
        self.check_offset(start_offset)?;
        let upper = max_offset
            .unwrap_or(self.log_end_offset)
            .min(self.log_end_offset);
        if start_offset >= upper {
            return Ok(None);
        }
        let first = self
            .segments
            .range(..=start_offset)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        for seg in self.segments.range(first..).map(|(_, s)| s) {
            if seg.base_offset() >= upper {
                break;
            }
            let max_position = if upper < seg.next_offset() {
                seg.translate_offset(upper)?.map(|(pos, _)| pos)
            } else {
                None
            };
            if let Some(plan) = seg.read(start_offset, max_bytes, max_position, min_one_batch)? {
                return Ok(Some(plan));
            }
            if max_position.is_some() {
                break;
            }
        }
        Ok(None)
    }

    /// [`plan_read`](Self::plan_read) and execute it: the batches' bytes.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: Option<i64>,
        min_one_batch: bool,
    ) -> Result<Bytes> {
        match self.plan_read(start_offset, max_bytes, max_offset, min_one_batch)? {
            Some(plan) => plan.execute(),
            None => Ok(Bytes::new()),
        }
    }

    /// fsync everything appended so far.
    pub fn flush(&self) -> Result<()> {
        self.flush.flush_all()
    }

    /// Block until offsets below `offset` are on disk (group commit).
    pub fn wait_durable(&self, offset: i64) -> Result<()> {
        self.flush.wait_durable(offset)
    }

    /// Flush, trim the active segment's indexes (no second fsync of its
    /// `.log`) and snapshot the producer state at the log end unless the log
    /// never had a record; the epoch checkpoint only if it changed (clean
    /// shutdown: an idle, never-written partition costs no fsync). The log
    /// must not be appended to afterwards.
    pub fn close(&mut self) -> Result<()> {
        self.flush()?;
        self.active_mut()?.close_indexes()?;
        if self.log_end_offset > 0 || !self.producers.is_empty() {
            self.snapshot_or_warn(self.log_end_offset);
        }
        self.epoch_cache.flush_if_dirty()
    }

    /// Offsets below this have been compacted.
    pub fn cleaned_up_to(&self) -> i64 {
        self.cleaned_up_to
    }

    /// Record that `epoch` begins at `start_offset` (a new leader before its
    /// first append).
    pub fn assign_epoch_start_offset(&mut self, epoch: i32, start_offset: i64) -> Result<()> {
        self.epoch_cache.assign(epoch, start_offset)?;
        Ok(())
    }

    /// OffsetForLeaderEpoch: `(epoch, end_offset)`.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epoch_cache.end_offset_for(epoch, self.log_end_offset)
    }
}
