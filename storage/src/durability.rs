//! Group commit: making appended offsets durable with as few fsyncs as
//! possible, without holding the log's lock while the disk works.
//!
//! Appenders publish the log end offset after their bytes are written. A
//! caller that needs offset `o` durable calls [`FlushTracker::wait_durable`]:
//! if no fsync is running it becomes the flusher, snapshots the log end
//! offset, fsyncs the files that hold unflushed data and publishes the new
//! flushed offset; otherwise it waits for the running fsync and re-checks. So
//! while one fsync runs, every append that arrives queues behind it and the
//! next fsync covers them all.
//!
//! After an fsync, a file's bytes older than the last `page_cache_window`
//! are dropped from the page cache (`POSIX_FADV_DONTNEED`; they are clean,
//! so this only forgets them): a partition keeps its recent tail cached for
//! followers and tailing consumers, older reads go to the disk, and the page
//! cache does not grow by everything written. Pages freed that way are
//! reused by the next appends; a page the kernel has never handed out costs
//! far more to write into on a VM whose host takes free memory back (virtio
//! free page reporting: 1.6 against 0.3 CPU s/GB for an 8 GB write here).
//!
//! A log that is not fsynced often (`flush.policy` never or interval, or
//! on-ack with only acks=0/1 producers) ages its window out without an
//! fsync: [`FlushTracker::age_out`], called every 100 ms by the log
//! manager, starts the writeback of the bytes older than the window
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)`: no wait, no metadata, no
//! device flush, so no durability is claimed) and, on its next call, drops
//! what the previous call started. Old bytes then leave the page cache at
//! the rate they are written, in small steps, instead of piling up dirty
//! until the kernel's own writeback (dirty for 30 s, or 10 % of memory)
//! writes them in bursts that stall the appends behind them (with
//! `flush.policy` never, 4 producers on 8 partitions of a 3-node cluster at
//! 122,000 records/s: p99 7.8 against 558 ms over 25 s, and half the CPU).

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::checkpoint::sync_dir;
use crate::error::{IoContext, Result, StorageError};

#[derive(Debug)]
struct State {
    /// Every offset below this is on disk.
    flushed: i64,
    in_progress: bool,
    /// Set after an fsync failed: the log must not acknowledge anything more.
    failed: bool,
    /// Truncations so far: an fsync that spans one vouches for nothing.
    truncations: u64,
}

/// A segment file and how much of it was dropped from the page cache.
#[derive(Debug, Clone)]
struct Tracked {
    file: Arc<File>,
    dropped: u64,
    /// Writeback was started (or an fsync done) for every byte below this.
    written_out: u64,
}

impl Tracked {
    fn new(file: Arc<File>) -> Self {
        Tracked {
            file,
            dropped: 0,
            written_out: 0,
        }
    }
}

#[derive(Debug)]
struct Files {
    active: Tracked,
    /// Rolled since the last fsync.
    rolled: Vec<Tracked>,
}

#[derive(Debug)]
pub struct FlushTracker {
    name: String,
    dir: PathBuf,
    state: Mutex<State>,
    done: Condvar,
    /// Log end offset published by the appender after its write completed.
    log_end: AtomicI64,
    /// The active segment's file and those rolled since the last fsync.
    files: Mutex<Files>,
    /// Bytes at the end of each file kept in the page cache after an fsync
    /// (0: everything is kept).
    page_cache_window: u64,
    dir_dirty: AtomicBool,
    fsyncs: AtomicI64,
    /// The log end offset [`FlushTracker::age_out`] last looked at (it has
    /// nothing to do while the log does not grow).
    aged_at: AtomicI64,
}

impl FlushTracker {
    /// `page_cache_window`: bytes at the end of each file kept in the page
    /// cache after an fsync (0: keep everything).
    pub fn new(
        name: String,
        dir: PathBuf,
        active: Arc<File>,
        flushed: i64,
        page_cache_window: u64,
    ) -> Self {
        FlushTracker {
            name,
            dir,
            state: Mutex::new(State {
                flushed,
                in_progress: false,
                failed: false,
                truncations: 0,
            }),
            done: Condvar::new(),
            log_end: AtomicI64::new(flushed),
            files: Mutex::new(Files {
                active: Tracked::new(active),
                rolled: Vec::new(),
            }),
            page_cache_window,
            dir_dirty: AtomicBool::new(false),
            fsyncs: AtomicI64::new(0),
            aged_at: AtomicI64::new(flushed),
        }
    }

    /// Publish a new log end offset; its bytes must already be written.
    pub fn published(&self, log_end: i64) {
        self.log_end.store(log_end, Ordering::Release);
    }

    /// A new active segment: the old one still needs an fsync.
    pub fn rolled(&self, new_active: Arc<File>) {
        let mut files = self.files.lock();
        let old = std::mem::replace(&mut files.active, Tracked::new(new_active));
        files.rolled.push(old);
        self.dir_dirty.store(true, Ordering::Release);
    }

    /// The log was truncated below what was flushed.
    pub fn truncated(&self, log_end: i64) {
        let mut st = self.state.lock();
        st.flushed = st.flushed.min(log_end);
        st.truncations += 1;
        // Appends now land below what was dropped: start over.
        {
            let mut files = self.files.lock();
            files.active.dropped = 0;
            files.active.written_out = 0;
        }
        self.aged_at.store(i64::MIN, Ordering::Release);
        self.log_end.store(log_end, Ordering::Release);
    }

    /// Offsets below this are durable.
    pub fn flushed_offset(&self) -> i64 {
        self.state.lock().flushed
    }

    /// Number of fsync rounds performed (for tests and metrics).
    pub fn fsync_count(&self) -> i64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Block until every offset below `offset` is on disk, fsyncing if no one
    /// else is.
    pub fn wait_durable(&self, offset: i64) -> Result<()> {
        let mut st = self.state.lock();
        loop {
            if st.failed {
                return Err(StorageError::LogOffline(self.name.clone()));
            }
            if st.flushed >= offset {
                return Ok(());
            }
            if st.in_progress {
                self.done.wait(&mut st);
                continue;
            }
            st.in_progress = true;
            let truncations = st.truncations;
            drop(st);
            let result = self.flush_once();
            st = self.state.lock();
            st.in_progress = false;
            match result {
                Ok(upto) => Self::flush_done(&mut st, upto, truncations),
                Err(e) => {
                    st.failed = true;
                    self.done.notify_all();
                    return Err(e);
                }
            }
            self.done.notify_all();
        }
    }

    /// An fsync that started after `truncations` truncations made everything
    /// below `upto` durable — unless the log was truncated meanwhile: what
    /// it synced below `upto` may be gone, and offsets appended again since
    /// are not on disk (a follower would report them durable). Then it
    /// counts for nothing and the waiter fsyncs again.
    fn flush_done(st: &mut State, upto: i64, truncations: u64) {
        if st.truncations == truncations {
            st.flushed = st.flushed.max(upto);
        }
    }

    /// fsync everything written so far; returns the offset now durable.
    fn flush_once(&self) -> Result<i64> {
        // Read the end first: every byte below it is in one of the files
        // taken next (a roll moves the old file into the pending list before
        // the end can pass it).
        let upto = self.log_end.load(Ordering::Acquire);
        let (active, rolled) = {
            let mut files = self.files.lock();
            (files.active.clone(), std::mem::take(&mut files.rolled))
        };
        let started = std::time::Instant::now();
        for t in rolled.iter().chain(std::iter::once(&active)) {
            t.file.sync_data().at(&self.dir)?;
        }
        if self.dir_dirty.swap(false, Ordering::AcqRel) {
            sync_dir(&self.dir)?;
        }
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        crate::histogram::FSYNC_SECONDS.observe(started.elapsed());
        if self.page_cache_window > 0 {
            for t in &rolled {
                self.drop_cold(t);
            }
            let dropped = self.drop_cold(&active);
            let mut files = self.files.lock();
            // Still the same file (no roll, no truncation meanwhile).
            if Arc::ptr_eq(&files.active.file, &active.file)
                && files.active.dropped == active.dropped
            {
                files.active.dropped = dropped;
                // Everything below was fsynced: nothing to write out there.
                files.active.written_out = files.active.written_out.max(dropped);
            }
        }
        Ok(upto)
    }

    /// Drop what `t`'s file holds before its last `page_cache_window` bytes
    /// from the page cache, from where the last drop ended; returns the new
    /// end of the dropped part. Only worth a call once a few MiB have aged
    /// out; a failure (not on Linux, say) keeps the pages, nothing else.
    fn drop_cold(&self, t: &Tracked) -> u64 {
        let Ok(len) = t.file.metadata().map(|m| m.len()) else {
            return t.dropped;
        };
        let upto = len.saturating_sub(self.page_cache_window);
        if upto < t.dropped.saturating_add(DROP_STEP) {
            return t.dropped;
        }
        if dont_need(&t.file, t.dropped, upto) {
            upto
        } else {
            t.dropped
        }
    }

    /// Age the active file's bytes older than the page-cache window out of
    /// the page cache without an fsync (see the module comment): drop what
    /// the last call started writing back (waiting for that writeback if it
    /// is still under way), then start the writeback of what
    /// aged out since, at least [`DROP_STEP`] at a time. Nothing happens
    /// while the log does not grow. Failures only leave pages cached.
    pub fn age_out(&self) {
        if self.page_cache_window == 0 {
            return;
        }
        let end = self.log_end.load(Ordering::Acquire);
        if self.aged_at.swap(end, Ordering::AcqRel) == end {
            return;
        }
        let active = self.files.lock().active.clone();
        let Ok(len) = active.file.metadata().map(|m| m.len()) else {
            return;
        };
        let mut dropped = active.dropped;
        if active.written_out > dropped {
            // Started on the last call, so normally done; pages still being
            // written would stay cached.
            writeback(&active.file, dropped, active.written_out, true);
            if dont_need(&active.file, dropped, active.written_out) {
                dropped = active.written_out;
            }
        }
        let mut written_out = active.written_out;
        let upto = len.saturating_sub(self.page_cache_window);
        if upto >= written_out.saturating_add(DROP_STEP)
            && writeback(&active.file, written_out, upto, false)
        {
            written_out = upto;
        }
        if written_out > dropped {
            // Come back next time even if the log does not grow meanwhile:
            // what was started now is dropped then.
            self.aged_at.store(i64::MIN, Ordering::Release);
        }
        let mut files = self.files.lock();
        if Arc::ptr_eq(&files.active.file, &active.file)
            && files.active.dropped == active.dropped
            && files.active.written_out == active.written_out
        {
            files.active.dropped = dropped;
            files.active.written_out = written_out;
        }
    }

    /// Flush whatever has been appended (background flusher, shutdown).
    pub fn flush_all(&self) -> Result<()> {
        self.wait_durable(self.log_end.load(Ordering::Acquire))
    }
}

/// Least amount of aged-out bytes dropped at once (one `fadvise` per this
/// much written, not per fsync).
const DROP_STEP: u64 = 4 << 20;

/// Drop the clean pages of `from..to` of `file` from the page cache; false
/// if that failed (not on Linux, say), which only leaves them cached.
fn dont_need(file: &File, from: u64, to: u64) -> bool {
    rustix::fs::fadvise(
        file,
        from,
        std::num::NonZeroU64::new(to.saturating_sub(from)),
        rustix::fs::Advice::DontNeed,
    )
    .is_ok()
}

/// Write `from..to` of `file` back to the disk: only start it, or (`wait`)
/// also wait for it and for writeback already under way there. Data pages
/// only: no metadata, no device flush, nothing made durable. False if it
/// could not be done (or is not possible here).
#[cfg(target_os = "linux")]
fn writeback(file: &File, from: u64, to: u64, wait: bool) -> bool {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (i64::try_from(from), i64::try_from(to.saturating_sub(from))) else {
        return false;
    };
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    // SAFETY: a plain syscall on a file descriptor `file` keeps open for
    // the call's duration; it touches no memory of ours.
    let r = unsafe { libc::sync_file_range(file.as_raw_fd(), off, len, flags) };
    r == 0
}

#[cfg(not(target_os = "linux"))]
fn writeback(_file: &File, _from: u64, _to: u64, _wait: bool) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn concurrent_waiters_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = Arc::new(File::create(&path).unwrap());
        let tracker = Arc::new(FlushTracker::new(
            "t-0".into(),
            dir.path().into(),
            file.clone(),
            0,
            0,
        ));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let t = tracker.clone();
                let f = file.clone();
                std::thread::spawn(move || {
                    for j in 0..50 {
                        (&*f).write_all(b"x").unwrap();
                        let end = i * 1000 + j + 1;
                        t.published(end.max(t.log_end.load(Ordering::Acquire)));
                        t.wait_durable(end.min(t.log_end.load(Ordering::Acquire)))
                            .unwrap();
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert!(tracker.fsync_count() > 0);
        assert!(tracker.fsync_count() <= 400, "never more fsyncs than waits");
    }

    #[test]
    fn flushed_offset_advances_and_truncation_lowers_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(File::create(dir.path().join("f")).unwrap());
        let t = FlushTracker::new("t-0".into(), dir.path().into(), file, 0, 0);
        t.published(10);
        t.wait_durable(10).unwrap();
        assert_eq!(t.flushed_offset(), 10);
        t.truncated(4);
        assert_eq!(t.flushed_offset(), 4);
        t.wait_durable(3).unwrap();
        assert_eq!(t.fsync_count(), 1, "already-durable offsets need no fsync");
    }

    #[test]
    fn a_flush_spanning_a_truncation_covers_nothing_appended_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(File::create(dir.path().join("f")).unwrap());
        let t = FlushTracker::new("t-0".into(), dir.path().into(), file, 0, 0);
        t.published(10);
        // `wait_durable`'s steps, with the log truncated to 4 (a leader
        // turned follower) and regrown to 10 while the fsync runs.
        let truncations = t.state.lock().truncations;
        let upto = t.flush_once().unwrap();
        t.truncated(4);
        t.published(10);
        FlushTracker::flush_done(&mut t.state.lock(), upto, truncations);
        assert!(t.flushed_offset() <= 4, "offsets 4..10 were never synced");
        t.wait_durable(10).unwrap();
        assert_eq!(t.flushed_offset(), 10);
        assert_eq!(t.fsync_count(), 2, "the second fsync covers them");
    }
}
