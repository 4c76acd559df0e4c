//! The page-cache window (`LogOpenOptions::page_cache_window`,
//! `log.page.cache.window.bytes`): once fsynced, a segment file's bytes older
//! than the window leave the page cache (seen with `mincore(2)` on a mapping
//! of the file), its last window stays, and every record still reads back —
//! from the disk. With a window of 0 everything stays cached. The logs live
//! under cargo's target dir (`CARGO_TARGET_TMPDIR`), not `/tmp`, which may
//! be a tmpfs (whose pages are the storage: nothing could be dropped).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_storage::{LogConfig, LogOpenOptions, PartitionLog};

const VALUE: usize = 64 << 10;
/// 24 MiB of values in 384 batches.
const BATCHES: usize = 384;
const WINDOW: u64 = 2 << 20;

/// Fraction of the pages of `path`'s byte range `from..to` in the page cache.
fn cached_share(path: &Path, from: usize, to: usize) -> f64 {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: a read-only mapping only inspected with mincore; the test
    // writes the file no more.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let page = 4096;
    let (from, to) = (from / page * page, to.min(map.len()));
    let pages = (to - from).div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: the range lies inside the mapping, `vec` has a byte per page.
    let r = unsafe {
        libc::mincore(
            map.as_ptr().add(from) as *mut libc::c_void,
            to - from,
            vec.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().filter(|b| *b & 1 == 1).count() as f64 / pages as f64
}

fn on_disk() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// A log with `window`, holding `BATCHES` batches of one `VALUE`-byte
/// record each; with `fsync_every`, an fsync after every that many batches
/// (as acknowledgements would ask) and at the end.
fn write(dir: &Path, window: u64, fsync_every: Option<usize>) -> PartitionLog {
    let opts = LogOpenOptions {
        page_cache_window: window,
        ..LogOpenOptions::default()
    };
    let mut log = open(dir, LogConfig::default(), clock(), opts);
    let value = vec![7u8; VALUE];
    for i in 0..BATCHES {
        let mut b = RecordBatchBuilder::new(Compression::None);
        let key = format!("k{i}");
        b.push(T0 + i as i64, Some(key.as_bytes()), Some(&value), &[]);
        let mut bytes = b.build().unwrap();
        log.append_as_leader(&mut bytes, 0).unwrap();
        if fsync_every.is_some_and(|n| i % n == n - 1) {
            log.wait_durable(log.log_end_offset()).unwrap();
        }
    }
    if fsync_every.is_some() {
        log.wait_durable(log.log_end_offset()).unwrap();
    }
    log
}

fn write_and_flush(dir: &Path, window: u64) -> PartitionLog {
    write(dir, window, Some(32))
}

/// Every record reads back (from the disk where its pages were dropped).
fn assert_all_read_back(log: &PartitionLog) {
    let all = read_all_from(log, 0);
    assert_eq!(all.len(), BATCHES);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.0, i as i64);
        assert_eq!(r.3.as_deref().map(<[u8]>::len), Some(VALUE));
    }
}

/// The first segment file of the log in `dir`, and its length.
fn first_segment(dir: &Path) -> (PathBuf, usize) {
    let seg = dir.join("00000000000000000000.log");
    let len = std::fs::metadata(&seg).unwrap().len() as usize;
    (seg, len)
}

/// Less than a fifth of `seg` (of length `len`) cached up to two windows
/// before its end, more than four fifths of its last half window.
fn assert_old_part_dropped_and_tail_cached(seg: &Path, len: usize) {
    let old = cached_share(seg, 0, len - 2 * WINDOW as usize);
    let tail = cached_share(seg, len - WINDOW as usize / 2, len);
    assert!(
        old < 0.2,
        "{:.0} % of the old part still cached",
        old * 100.0
    );
    assert!(tail > 0.8, "only {:.0} % of the tail cached", tail * 100.0);
}

#[test]
fn flushed_bytes_beyond_the_window_leave_the_page_cache_and_still_read_back() {
    let dir = on_disk();
    let log = write_and_flush(dir.path(), WINDOW);
    let (seg, len) = first_segment(dir.path());
    assert!(len > BATCHES * VALUE, "{len}");
    assert_old_part_dropped_and_tail_cached(&seg, len);
    // Everything reads back, from the disk where it was dropped.
    assert_all_read_back(&log);
}

#[test]
fn a_window_of_zero_keeps_everything_cached() {
    let dir = on_disk();
    let _log = write_and_flush(dir.path(), 0);
    let (seg, len) = first_segment(dir.path());
    let old = cached_share(&seg, 0, len - 2 * WINDOW as usize);
    assert!(old > 0.8, "only {:.0} % cached", old * 100.0);
}

/// A log nobody fsyncs (`flush.policy` never, or only acks=0/1 producers):
/// `FlushTracker::age_out`, which the log manager calls every 100 ms, starts
/// the writeback of the bytes older than the window and on its next call
/// drops them, without an fsync; every record still reads back.
#[test]
fn unflushed_bytes_beyond_the_window_are_aged_out_without_an_fsync() {
    let dir = on_disk();
    let log = write(dir.path(), WINDOW, None);
    let (seg, len) = first_segment(dir.path());
    let before = cached_share(&seg, 0, len - 2 * WINDOW as usize);
    assert!(before > 0.8, "only {:.0} % cached before", before * 100.0);
    let tracker = log.flush_tracker();
    tracker.age_out(); // starts the writeback
    tracker.age_out(); // drops what it started
    assert_old_part_dropped_and_tail_cached(&seg, len);
    assert_eq!(tracker.fsync_count(), 0, "aging out must not fsync");
    // A log that does not grow is left alone, and nothing was lost.
    tracker.age_out();
    assert_all_read_back(&log);
}
