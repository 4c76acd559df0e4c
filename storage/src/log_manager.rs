//! `LogManager`: every partition log of one data directory.
//!
//! At start-up it opens all `<topic>-<partition>` directories in parallel,
//! recovering them when the last shutdown was not clean (no
//! `.kafka_cleanshutdown` marker), from the data dir's checkpoint files:
//! `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
//! `replication-offset-checkpoint` (high watermarks) and
//! `cleaner-offset-checkpoint`. It creates and deletes logs, and a
//! background thread applies retention, compaction, interval flushes and
//! checkpoints, and warns when the filesystem's free space runs low.
//! [`LogManager::shutdown`] flushes and closes every log, writes the
//! checkpoints and the clean-shutdown marker.
//!
//! Each log sits behind its own mutex: there is no lock shared by two
//! partitions on any append or read path (the map lock is held only to clone
//! an `Arc`).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use tracing::{error, info, warn};

use crate::checkpoint::{sync_dir, write_atomically, OffsetCheckpointFile};
use crate::clock::Clock;
use crate::config::{FlushPolicy, LogConfig, StorageConfig};
use crate::disk::{self, FreeSpaceVerdict, FreeSpaceWarning};
use crate::error::{IoContext, Result, StorageError};
use crate::log_cleaner::{CleanerStats, LogCleaner};
use crate::partition_log::{LogOpenOptions, PartitionLog, RetentionResult};
use crate::topic_partition::TopicPartition;

pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";
/// The topic of KRaft's metadata log: its `__cluster_metadata-0` directory
/// is not a partition log of this manager. Only this exact topic, as in
/// Kafka's `LogManager`; a user topic merely starting with it is a log.
const METADATA_TOPIC: &str = "__cluster_metadata";
const DELETE_SUFFIX: &str = "-delete";
/// Default memory budget of the cleaner's key map.
const CLEANER_MAP_BYTES: usize = 128 * 1024 * 1024;
/// While free space stays low, the warning repeats this often.
const FREE_SPACE_WARN_REPEAT_MS: i64 = 60_000;

pub type SharedLog = Arc<Mutex<PartitionLog>>;

#[derive(Debug)]
struct Background {
    stop: Mutex<bool>,
    wake: Condvar,
    handle: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
pub struct LogManager {
    data_dir: PathBuf,
    config: StorageConfig,
    clock: Arc<dyn Clock>,
    logs: RwLock<HashMap<TopicPartition, SharedLog>>,
    cleaner: LogCleaner,
    last_flush: Mutex<HashMap<TopicPartition, i64>>,
    background: Background,
    was_clean: bool,
}

impl LogManager {
    /// Open every partition log under `data_dir` (created if absent).
    /// `topic_config` gives each topic's effective config (defaults plus
    /// overrides); topics it does not know use the defaults.
    pub fn open(
        data_dir: &Path,
        config: StorageConfig,
        clock: Arc<dyn Clock>,
        topic_config: &(dyn Fn(&str) -> Option<LogConfig> + Sync),
    ) -> Result<Self> {
        fs::create_dir_all(data_dir).at(data_dir)?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let recovery =
            OffsetCheckpointFile::new(data_dir.join(RECOVERY_POINT_CHECKPOINT)).read()?;
        let starts =
            OffsetCheckpointFile::new(data_dir.join(LOG_START_OFFSET_CHECKPOINT)).read()?;
        let hws = OffsetCheckpointFile::new(data_dir.join(REPLICATION_OFFSET_CHECKPOINT)).read()?;
        let cleaned = OffsetCheckpointFile::new(data_dir.join(CLEANER_OFFSET_CHECKPOINT)).read()?;

        let mut dirs = Vec::new();
        for entry in fs::read_dir(data_dir).at(data_dir)? {
            let entry = entry.at(data_dir)?;
            if !entry.file_type().at(entry.path())?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(DELETE_SUFFIX) {
                // A deletion the last run did not finish.
                fs::remove_dir_all(entry.path()).at(entry.path())?;
                continue;
            }
            match TopicPartition::from_dir_name(&name) {
                Ok(tp) if tp.topic == METADATA_TOPIC => {}
                Ok(tp) => dirs.push((tp, entry.path())),
                Err(_) => {
                    warn!(dir = %entry.path().display(), "ignoring a directory that is not a partition log")
                }
            }
        }
        if dirs.len() > config.max_open_logs {
            return Err(StorageError::TooManyLogs {
                limit: config.max_open_logs,
            });
        }

        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Result<(TopicPartition, PartitionLog)>>> = Mutex::new(Vec::new());
        // After a clean stop nothing is recovered: opening a log is a few
        // small syscalls, mostly waiting (for the filesystem, or for a CPU
        // other processes keep busy), so 4× the threads, as `close_all`.
        let per_thread = if clean { 4 } else { 1 };
        let threads = (config.recovery_threads * per_thread)
            .clamp(1, 64)
            .min(dirs.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((tp, dir)) = dirs.get(i) else { break };
                    let opts = LogOpenOptions {
                        recovery_point: recovery.get(tp).copied().unwrap_or(0),
                        log_start_offset: starts.get(tp).copied().unwrap_or(0),
                        high_watermark: hws.get(tp).copied().unwrap_or(0),
                        clean_shutdown: clean,
                        max_decompressed_batch_bytes: config.max_decompressed_batch_bytes,
                        cleaner_checkpoint: cleaned.get(tp).copied().unwrap_or(0),
                        page_cache_window: config.page_cache_window_bytes,
                    };
                    let cfg =
                        topic_config(&tp.topic).unwrap_or_else(|| config.log_defaults.clone());
                    let r = PartitionLog::open(dir, tp.clone(), cfg, clock.clone(), opts)
                        .map(|(log, _)| (tp.clone(), log));
                    results.lock().push(r);
                });
            }
        });
        let mut logs = HashMap::new();
        for r in results.into_inner() {
            let (tp, log) = r?;
            logs.insert(tp, Arc::new(Mutex::new(log)));
        }
        if clean {
            fs::remove_file(&marker).at(&marker)?;
            sync_dir(data_dir)?;
        }
        info!(data_dir = %data_dir.display(), logs = logs.len(), clean_shutdown = clean, "opened logs");
        let cleaner = LogCleaner::new(
            clock.clone(),
            config.max_decompressed_batch_bytes,
            CLEANER_MAP_BYTES,
        );
        Ok(LogManager {
            data_dir: data_dir.to_path_buf(),
            config,
            clock,
            logs: RwLock::new(logs),
            cleaner,
            last_flush: Mutex::new(HashMap::new()),
            background: Background {
                stop: Mutex::new(false),
                wake: Condvar::new(),
                handle: Mutex::new(None),
            },
            was_clean: clean,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// Whether the previous run shut down cleanly.
    pub fn opened_after_clean_shutdown(&self) -> bool {
        self.was_clean
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<SharedLog> {
        self.logs.read().get(tp).cloned()
    }

    /// How many logs this manager holds.
    pub fn len(&self) -> usize {
        self.logs.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.logs.read().is_empty()
    }

    /// Every log, sorted by topic and partition.
    pub fn all_logs(&self) -> Vec<(TopicPartition, SharedLog)> {
        let mut v: Vec<_> = self
            .logs
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Create an empty log for `tp`; an error if the topic name is invalid,
    /// the partition negative or `tp` the metadata log, if it exists or the
    /// `max.open.logs` limit is reached.
    ///
    /// The data dir is not fsynced here: a caller creating many logs at
    /// once calls [`sync_data_dir`](Self::sync_data_dir) after the last (an
    /// empty log lost to a crash before that is created again from the
    /// metadata at the next start).
    pub fn create_log(&self, tp: &TopicPartition, config: LogConfig) -> Result<SharedLog> {
        crate::topic_partition::validate_topic_name(&tp.topic)?;
        // Neither a directory `open` would read back as another partition
        // (`t--1` parses as topic `t-`, partition 1) nor the metadata log's.
        if tp.partition < 0 || tp.topic == METADATA_TOPIC {
            return Err(StorageError::InvalidPartitionDir(tp.dir_name()));
        }
        let mut logs = self.logs.write();
        if logs.contains_key(tp) {
            return Err(StorageError::LogExists(tp.to_string()));
        }
        if logs.len() >= self.config.max_open_logs {
            return Err(StorageError::TooManyLogs {
                limit: self.config.max_open_logs,
            });
        }
        let dir = self.data_dir.join(tp.dir_name());
        let opts = LogOpenOptions {
            max_decompressed_batch_bytes: self.config.max_decompressed_batch_bytes,
            clean_shutdown: true,
            page_cache_window: self.config.page_cache_window_bytes,
            ..LogOpenOptions::default()
        };
        let (log, _) = PartitionLog::open(&dir, tp.clone(), config, self.clock.clone(), opts)?;
        let shared = Arc::new(Mutex::new(log));
        logs.insert(tp.clone(), shared.clone());
        Ok(shared)
    }

    /// fsync the data dir: the directories of logs created since are there
    /// after a crash.
    pub fn sync_data_dir(&self) -> Result<()> {
        sync_dir(&self.data_dir)
    }

    /// The log for `tp`, created with `config` if it does not exist.
    pub fn get_or_create(&self, tp: &TopicPartition, config: LogConfig) -> Result<SharedLog> {
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        match self.create_log(tp, config) {
            Err(StorageError::LogExists(_)) => self
                .get(tp)
                .ok_or_else(|| StorageError::UnknownPartition(tp.to_string())),
            other => other,
        }
    }

    /// Delete `tp`'s log: its directory is renamed to `…-delete` (so a crash
    /// finishes the job at the next start) and removed. Readers holding open
    /// segment files keep reading what they planned.
    pub fn delete_log(&self, tp: &TopicPartition) -> Result<()> {
        let removed = self.logs.write().remove(tp);
        if removed.is_none() {
            return Err(StorageError::UnknownPartition(tp.to_string()));
        }
        self.last_flush.lock().remove(tp);
        let dir = self.data_dir.join(tp.dir_name());
        let doomed = self.data_dir.join(format!(
            "{}.{}{}",
            tp.dir_name(),
            self.clock.now_ms(),
            DELETE_SUFFIX
        ));
        fs::rename(&dir, &doomed).at(&dir)?;
        sync_dir(&self.data_dir)?;
        fs::remove_dir_all(&doomed).at(&doomed)?;
        Ok(())
    }

    /// Write the four checkpoint files from the logs' current state.
    pub fn checkpoint(&self) -> Result<()> {
        let mut recovery = BTreeMap::new();
        let mut starts = BTreeMap::new();
        let mut hws = BTreeMap::new();
        let mut cleaned = BTreeMap::new();
        for (tp, log) in self.all_logs() {
            let log = log.lock();
            recovery.insert(tp.clone(), log.recovery_point());
            starts.insert(tp.clone(), log.log_start_offset());
            hws.insert(tp.clone(), log.high_watermark());
            if log.config().cleanup_policy.compact {
                cleaned.insert(tp, log.cleaned_up_to());
            }
        }
        OffsetCheckpointFile::new(self.data_dir.join(RECOVERY_POINT_CHECKPOINT))
            .write(&recovery)?;
        OffsetCheckpointFile::new(self.data_dir.join(LOG_START_OFFSET_CHECKPOINT))
            .write(&starts)?;
        OffsetCheckpointFile::new(self.data_dir.join(REPLICATION_OFFSET_CHECKPOINT)).write(&hws)?;
        OffsetCheckpointFile::new(self.data_dir.join(CLEANER_OFFSET_CHECKPOINT)).write(&cleaned)
    }

    /// One retention pass over every log.
    pub fn run_retention(&self) -> Result<RetentionResult> {
        let mut total = RetentionResult::default();
        for (tp, log) in self.all_logs() {
            match log.lock().delete_old_segments() {
                Ok(r) => {
                    total.segments += r.segments;
                    total.bytes += r.bytes;
                }
                Err(e) => error!(partition = %tp, error = %e, "retention failed"),
            }
        }
        Ok(total)
    }

    /// One cleaning pass over every compacted log; each log is locked only to
    /// snapshot and to swap, not while its segments are rewritten.
    pub fn run_cleaner(&self, force: bool) -> Result<CleanerStats> {
        let mut total = CleanerStats::default();
        for (tp, log) in self.all_logs() {
            let Some(range) = log.lock().cleanable_range(self.clock.now_ms(), force) else {
                continue;
            };
            let cleaned = match self.cleaner.compact(&range) {
                Ok(c) => c,
                Err(e) => {
                    error!(partition = %tp, error = %e, "cleaning failed");
                    continue;
                }
            };
            let s = cleaned.stats;
            log.lock().install_cleaned(cleaned)?;
            total.segments_cleaned += s.segments_cleaned;
            total.bytes_read += s.bytes_read;
            total.bytes_written += s.bytes_written;
            total.records_kept += s.records_kept;
            total.records_removed += s.records_removed;
            total.tombstones_removed += s.tombstones_removed;
        }
        Ok(total)
    }

    /// fsync logs with `flush.policy=interval` whose `flush.ms` has passed,
    /// and age every log's bytes older than its page-cache window out of the
    /// page cache, fsynced or not
    /// ([`crate::durability::FlushTracker::age_out`]; a log that did not
    /// grow costs a look at its end offset).
    pub fn flush_due_logs(&self) {
        let now = self.clock.now_ms();
        for (tp, log) in self.all_logs() {
            let (policy, every, tracker) = {
                let l = log.lock();
                (
                    l.config().flush_policy,
                    l.config().flush_ms,
                    l.flush_tracker(),
                )
            };
            tracker.age_out();
            if policy != FlushPolicy::Interval {
                continue;
            }
            let due = {
                let mut last = self.last_flush.lock();
                let t = last.entry(tp.clone()).or_insert(now);
                if now - *t >= every {
                    *t = now;
                    true
                } else {
                    false
                }
            };
            if due {
                if let Err(e) = tracker.flush_all() {
                    error!(partition = %tp, error = %e, "interval flush failed");
                }
            }
        }
    }

    /// One free-space check of the data dir's filesystem: warn when it is
    /// below `log.dir.free.space.warn.bytes` (see [`FreeSpaceWarning`]).
    fn check_free_space(&self, warning: &mut FreeSpaceWarning) {
        let space = match disk::space(&self.data_dir) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot check free space");
                return;
            }
        };
        match warning.check(self.clock.now_ms(), space) {
            Some(FreeSpaceVerdict::Low(s)) => warn!(
                data_dir = %self.data_dir.display(),
                available_bytes = s.available,
                total_bytes = s.total,
                threshold_bytes = self.config.free_space_warn_bytes,
                "free space on the data dir's filesystem is below log.dir.free.space.warn.bytes; \
                 once it runs out, produce requests fail with KAFKA_STORAGE_ERROR"
            ),
            Some(FreeSpaceVerdict::Recovered(s)) => info!(
                data_dir = %self.data_dir.display(),
                available_bytes = s.available,
                "free space on the data dir's filesystem is above log.dir.free.space.warn.bytes again"
            ),
            None => {}
        }
    }

    /// Start the background thread: interval flushes and page-cache aging
    /// every 100 ms ([`LogManager::flush_due_logs`]),
    /// retention, cleaning, checkpoints and free-space checks at their
    /// configured intervals.
    pub fn start_background(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let tick = Duration::from_millis(100);
        let mut warning =
            FreeSpaceWarning::new(self.config.free_space_warn_bytes, FREE_SPACE_WARN_REPEAT_MS);
        let handle = std::thread::Builder::new()
            .name("log-manager".into())
            .spawn(move || {
                let (mut last_retention, mut last_clean, mut last_cp) = (0i64, 0i64, 0i64);
                let mut last_space_check = i64::MIN / 2;
                loop {
                    let Some(m) = me.upgrade() else { return };
                    {
                        let mut stop = m.background.stop.lock();
                        if !*stop {
                            m.background.wake.wait_for(&mut stop, tick);
                        }
                        if *stop {
                            return;
                        }
                    }
                    m.flush_due_logs();
                    let now = m.clock.now_ms();
                    if now - last_retention >= m.config.retention_check_interval_ms {
                        last_retention = now;
                        let _ = m.run_retention();
                    }
                    if m.config.cleaner_enabled && now - last_clean >= m.config.cleaner_backoff_ms {
                        last_clean = now;
                        if let Err(e) = m.run_cleaner(false) {
                            error!(error = %e, "cleaner pass failed");
                        }
                    }
                    if now - last_space_check >= m.config.free_space_check_interval_ms {
                        last_space_check = now;
                        m.check_free_space(&mut warning);
                    }
                    if now - last_cp >= m.config.checkpoint_interval_ms {
                        last_cp = now;
                        if let Err(e) = m.checkpoint() {
                            error!(error = %e, "checkpoint failed");
                        }
                    }
                }
            });
        match handle {
            Ok(h) => *self.background.handle.lock() = Some(h),
            Err(e) => error!(error = %e, "could not start the log manager thread"),
        }
    }

    /// Close every log, `num.recovery.threads` × 4 at a time (closing is
    /// mostly waiting for fsyncs, which the filesystem commits together);
    /// the first error, after every log was tried.
    fn close_all(&self) -> Result<()> {
        let logs = self.all_logs();
        let next = AtomicUsize::new(0);
        let first_error: Mutex<Option<StorageError>> = Mutex::new(None);
        let threads = (self.config.recovery_threads * 4)
            .clamp(1, 64)
            .min(logs.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((tp, log)) = logs.get(i) else { break };
                    if let Err(e) = log.lock().close() {
                        error!(partition = %tp, error = %e, "closing the log failed");
                        first_error.lock().get_or_insert(e);
                    }
                });
            }
        });
        match first_error.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stop the background thread, flush and close every log, write the
    /// checkpoints and the clean-shutdown marker.
    pub fn shutdown(&self) -> Result<()> {
        *self.background.stop.lock() = true;
        self.background.wake.notify_all();
        if let Some(h) = self.background.handle.lock().take() {
            let _ = h.join();
        }
        self.close_all()?;
        self.checkpoint()?;
        write_atomically(&self.data_dir.join(CLEAN_SHUTDOWN_FILE), b"")?;
        info!(data_dir = %self.data_dir.display(), "log manager shut down cleanly");
        Ok(())
    }
}
