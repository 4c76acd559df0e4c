//! A full disk, on a real (tmpfs) filesystem the test mounts: appends fail
//! with KAFKA_STORAGE_ERROR and leave the log a valid prefix, reads of what
//! is on disk keep working, appends work again once there is room, and
//! nothing acknowledged is lost across a restart.
//!
//! Needs root to mount; `RIVULET_SKIP_TMPFS_TESTS=1` skips (see
//! `common::tmpfs`).

mod common;

use std::io::ErrorKind;
use std::sync::Arc;

use common::tmpfs::Tmpfs;
use rivulet_protocol::record_batch::{BatchIter, Compression};
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_storage::{
    LogConfig, LogOpenOptions, PartitionLog, StorageError, SystemClock, TopicPartition,
};

/// A batch of `n` records of `size` bytes each, values tagged with `tag`.
fn batch(tag: u64, n: usize, size: usize) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(Compression::None);
    for i in 0..n {
        let mut value = format!("{tag}-{i}-").into_bytes();
        value.resize(size, b'v');
        b.push(0, None, Some(&value), &[]);
    }
    b.build().unwrap()
}

fn open_log(dir: &std::path::Path, cfg: &LogConfig, clean: bool) -> PartitionLog {
    let opts = LogOpenOptions {
        clean_shutdown: clean,
        ..LogOpenOptions::default()
    };
    PartitionLog::open(
        dir,
        TopicPartition::new("t", 0),
        cfg.clone(),
        Arc::new(SystemClock),
        opts,
    )
    .unwrap()
    .0
}

fn is_out_of_space(e: &StorageError) -> bool {
    matches!(e, StorageError::Io { source, .. } if source.kind() == ErrorKind::StorageFull)
}

/// Every segment file holds exactly the bytes the log counts: nothing of a
/// failed append is left behind.
fn assert_no_partial_bytes(log: &PartitionLog) {
    for seg in log.segments() {
        let on_disk = std::fs::metadata(seg.log_path()).unwrap().len();
        assert_eq!(on_disk, seg.size(), "{}", seg.log_path().display());
    }
}

/// The base offsets of every batch in the log, read back from disk.
fn batch_bases(log: &PartitionLog) -> Vec<i64> {
    let mut bases = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let bytes = log.read(next, 1 << 20, None, true).unwrap();
        assert!(!bytes.is_empty(), "nothing readable at {next}");
        for item in BatchIter::new(&bytes) {
            let (_, h) = item.unwrap();
            bases.push(h.base_offset);
            next = h.next_offset();
        }
    }
    bases
}

#[test]
fn a_failed_append_leaves_a_valid_prefix_and_offsets_stay_contiguous() {
    let Some(fs) = Tmpfs::mount(4 << 20) else {
        return;
    };
    let filler = fs.filler("filler", 256 << 10);
    let dir = fs.path().join("t-0");
    // Small segments and a dense index: rolls and index pages that must be
    // allocated while the disk fills.
    let mut cfg = LogConfig::default();
    cfg.set("segment.bytes", "262144").unwrap();
    cfg.set("index.interval.bytes", "128").unwrap();
    cfg.set("segment.index.bytes", "65536").unwrap();
    let mut log = open_log(&dir, &cfg, true);

    let mut appended = Vec::new();
    let full = loop {
        let mut b = batch(appended.len() as u64, 10, 300);
        match log.append_as_leader(&mut b, 0) {
            Ok(info) => appended.push(info.first_offset),
            Err(e) => break e,
        }
        assert!(appended.len() < 10_000, "the disk never filled");
    };
    assert!(is_out_of_space(&full), "{full}");
    let end = log.log_end_offset();
    assert_eq!(end, appended.len() as i64 * 10);
    assert_no_partial_bytes(&log);
    for _ in 0..3 {
        let e = log.append_as_leader(&mut batch(0, 10, 300), 0).unwrap_err();
        assert!(is_out_of_space(&e), "{e}");
        assert_eq!(log.log_end_offset(), end);
    }
    assert_eq!(batch_bases(&log), appended, "every batch reads back");

    // Room for a small batch but not a large one: a request carrying both
    // appends neither.
    std::fs::remove_file(&filler).unwrap();
    let _filler = fs.filler("filler-2", 192 << 10);
    let mut two = batch(1_000, 1, 10);
    two.extend(batch(1_001, 1, 200 << 10));
    let e = log.append_as_leader(&mut two, 0).unwrap_err();
    assert!(is_out_of_space(&e), "{e}");
    assert_eq!(log.log_end_offset(), end, "the first batch was taken back");
    assert_no_partial_bytes(&log);

    // With room, the next append gets the next offset.
    let info = log.append_as_leader(&mut batch(2_000, 10, 300), 0).unwrap();
    assert_eq!(info.first_offset, end);
    appended.push(end);

    // A crash now (no clean shutdown) recovers every batch, cutting nothing.
    drop(log);
    let log = open_log(&dir, &cfg, false);
    assert_eq!(log.log_end_offset(), end + 10);
    assert_eq!(batch_bases(&log), appended);
}
