//! Retention (`cleanup.policy` with `delete`): which segments
//! `delete_old_segments` removes by `retention.ms` and `retention.bytes`,
//! where the log start moves, and that the files are really gone.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use rivulet_storage::{
    CleanupPolicy, LogConfig, LogOpenOptions, ManualClock, PartitionLog, RetentionResult,
    StorageError,
};

/// Append one batch of `n` records with timestamp `ts` per segment, rolling
/// after each; the last batch stays in the active segment. Returns the
/// segments' base offsets.
fn segments_with_timestamps(log: &mut PartitionLog, timestamps: &[i64]) -> Vec<i64> {
    let mut bases = Vec::new();
    for (i, ts) in timestamps.iter().enumerate() {
        if i > 0 {
            log.roll().unwrap();
        }
        bases.push(log.log_end_offset());
        log.append_as_leader(&mut batch(&format!("s{i}"), 3, *ts), 0)
            .unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
    bases
}

fn retained_log(
    dir: &Path,
    cfg: LogConfig,
    timestamps: &[i64],
) -> (PartitionLog, Arc<ManualClock>, Vec<i64>) {
    let c = clock();
    let mut log = open(dir, cfg, c.clone(), LogOpenOptions::default());
    let bases = segments_with_timestamps(&mut log, timestamps);
    (log, c, bases)
}

fn time_cfg(retention_ms: i64) -> LogConfig {
    LogConfig {
        retention_ms,
        ..LogConfig::default()
    }
}

fn offsets(log: &PartitionLog) -> Vec<i64> {
    read_all_from(log, log.log_start_offset())
        .iter()
        .map(|r| r.0)
        .collect()
}

#[test]
fn time_retention_deletes_only_the_expired_prefix_and_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    // Segment 2 is as old as segment 0 but follows a young one.
    let (mut log, c, bases) = retained_log(
        dir.path(),
        time_cfg(60_000),
        &[T0, T0 + 10_000, T0, T0 + 50_000, T0 + 100_000],
    );
    assert_eq!(bases, vec![0, 3, 6, 9, 12]);
    // Records are 3 per batch with timestamps ts..ts+2: segment 0's newest is T0+2.
    let size0 = log.segments().next().unwrap().size();

    c.set(T0 + 2 + 60_000);
    assert_eq!(
        log.delete_old_segments().unwrap(),
        RetentionResult::default(),
        "exactly retention.ms old is kept"
    );

    c.set(T0 + 2 + 60_001);
    let r = log.delete_old_segments().unwrap();
    assert_eq!(
        r,
        RetentionResult {
            segments: 1,
            bytes: size0
        }
    );
    assert_eq!(segment_bases(&log), vec![3, 6, 9, 12]);
    assert_eq!(log.log_start_offset(), 3);
    assert_eq!(offsets(&log), (3..15).collect::<Vec<_>>());
    assert_eq!(segment_files_exist(dir.path(), 0), [false; 3]);
    assert_eq!(segment_files_exist(dir.path(), 3), [true; 3]);
    assert!(matches!(
        log.read(2, 1 << 20, None, true),
        Err(StorageError::OffsetOutOfRange { log_start: 3, .. })
    ));

    // Segment 1 expires: it and the already expired segment 2 go, the younger
    // ones and the active segment stay.
    c.set(T0 + 10_002 + 60_001);
    let r = log.delete_old_segments().unwrap();
    assert_eq!(r.segments, 2);
    assert_eq!(segment_bases(&log), vec![9, 12]);
    assert_eq!(segment_bases_on_disk(dir.path()), vec![9, 12]);
    assert_eq!(log.log_start_offset(), 9);
    assert_eq!(log.log_end_offset(), 15);
    assert_eq!(offsets(&log), (9..15).collect::<Vec<_>>());
    for b in [3, 6] {
        assert_eq!(
            segment_files_exist(dir.path(), b),
            [false; 3],
            "segment {b}"
        );
    }

    // The new log start is what a reopen finds too.
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), time_cfg(60_000), c, LogOpenOptions::default());
    assert_eq!(log.log_start_offset(), 9);
    assert_eq!(offsets(&log), (9..15).collect::<Vec<_>>());
}

#[test]
fn when_every_segment_has_expired_the_active_one_is_rolled_and_deleted_too() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, c, bases) = retained_log(dir.path(), time_cfg(60_000), &[T0, T0 + 1, T0 + 2]);
    assert_eq!(bases, vec![0, 3, 6]);
    let total = log.size_in_bytes();
    c.set(T0 + 1_000_000);
    let r = log.delete_old_segments().unwrap();
    assert_eq!(
        r,
        RetentionResult {
            segments: 3,
            bytes: total
        }
    );
    assert_eq!(segment_bases(&log), vec![9]);
    assert_eq!(log.log_start_offset(), 9);
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(log.high_watermark(), 9);
    assert_eq!(
        file_names(dir.path())
            .into_iter()
            .filter(|n| n.starts_with("000"))
            .collect::<Vec<_>>(),
        vec![
            "00000000000000000009.index",
            "00000000000000000009.log",
            // The roll's producer-state snapshot; those of the deleted
            // segments went with them.
            "00000000000000000009.snapshot",
            "00000000000000000009.timeindex",
        ]
    );
    assert!(log.read(9, 1 << 20, None, true).unwrap().is_empty());

    // The fresh active segment was just created: nothing more expires.
    assert_eq!(
        log.delete_old_segments().unwrap(),
        RetentionResult::default()
    );
    let info = log
        .append_as_leader(&mut batch("after", 2, T0 + 1_000_000), 0)
        .unwrap();
    assert_eq!((info.first_offset, info.last_offset), (9, 10));
    let recs = read_all_from(&log, 9);
    assert_eq!(okv(&recs)[0], (9, "k0".to_string(), Some("after-0".into())));
    assert_eq!(recs.len(), 2);
}

#[test]
fn negative_retention_ms_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, c, _) = retained_log(dir.path(), time_cfg(-1), &[T0, T0 + 1, T0 + 2]);
    c.set(T0 + 100 * 365 * 86_400_000);
    assert_eq!(
        log.delete_old_segments().unwrap(),
        RetentionResult::default()
    );
    assert_eq!(offsets(&log), (0..9).collect::<Vec<_>>());
}

#[test]
fn size_retention_deletes_the_oldest_segments_while_the_rest_stays_at_or_above_the_limit() {
    let timestamps = [T0; 6];
    let probe = tempfile::tempdir().unwrap();
    let (log, _, _) = retained_log(probe.path(), time_cfg(-1), &timestamps);
    let sizes: Vec<u64> = log.segments().map(|s| s.size()).collect();
    let total: u64 = sizes.iter().sum();
    drop(log);

    // (retention.bytes, segments deleted)
    let two = total - sizes[0] - sizes[1];
    for (limit, deleted) in [
        (total, 0),
        (total - 1, 0),
        (total - sizes[0], 1),
        (two + 1, 1),
        (two, 2),
        (two - 1, 2),
        (1, 5),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            retention_bytes: limit as i64,
            ..time_cfg(-1)
        };
        let (mut log, _, bases) = retained_log(dir.path(), cfg, &timestamps);
        let r = log.delete_old_segments().unwrap();
        let removed: u64 = sizes[..deleted].iter().sum();
        assert_eq!(
            r,
            RetentionResult {
                segments: deleted,
                bytes: removed
            },
            "retention.bytes {limit}"
        );
        assert_eq!(
            log.size_in_bytes(),
            total - removed,
            "retention.bytes {limit}"
        );
        assert!(log.size_in_bytes() >= limit, "retention.bytes {limit}");
        assert_eq!(segment_bases(&log), bases[deleted..].to_vec());
        assert_eq!(segment_bases_on_disk(dir.path()), bases[deleted..].to_vec());
        assert_eq!(log.log_start_offset(), bases[deleted]);
        assert_eq!(
            offsets(&log),
            (bases[deleted]..18).collect::<Vec<_>>(),
            "retention.bytes {limit}"
        );
        for b in &bases[..deleted] {
            assert_eq!(segment_files_exist(dir.path(), *b), [false; 3]);
        }
    }
}

#[test]
fn compact_only_logs_ignore_time_and_size_retention() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        retention_ms: 1_000,
        retention_bytes: 1,
        ..LogConfig::default()
    };
    let (mut log, c, bases) = retained_log(dir.path(), cfg, &[T0, T0 + 1, T0 + 2]);
    c.set(T0 + 1_000_000);
    assert_eq!(
        log.delete_old_segments().unwrap(),
        RetentionResult::default()
    );
    assert_eq!(segment_bases_on_disk(dir.path()), bases);
    assert_eq!(offsets(&log), (0..9).collect::<Vec<_>>());

    // DeleteRecords still removes whole segments below the log start.
    log.delete_records_before(4).unwrap();
    assert_eq!(segment_bases_on_disk(dir.path()), vec![3, 6]);
    assert_eq!(offsets(&log)[0], 4);
}

#[test]
fn compact_delete_logs_apply_time_and_size_retention() {
    let policy = CleanupPolicy {
        compact: true,
        delete: true,
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        cleanup_policy: policy,
        ..time_cfg(60_000)
    };
    let (mut log, c, _) = retained_log(dir.path(), cfg, &[T0, T0 + 100_000, T0 + 100_000]);
    c.set(T0 + 100_000);
    assert_eq!(log.delete_old_segments().unwrap().segments, 1);
    assert_eq!(segment_bases_on_disk(dir.path()), vec![3, 6]);
    assert_eq!(log.log_start_offset(), 3);

    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        cleanup_policy: policy,
        retention_bytes: 1,
        ..time_cfg(-1)
    };
    let (mut log, _, _) = retained_log(dir.path(), cfg, &[T0, T0, T0]);
    assert_eq!(log.delete_old_segments().unwrap().segments, 2);
    assert_eq!(segment_bases_on_disk(dir.path()), vec![6]);
    assert_eq!(offsets(&log), vec![6, 7, 8]);
}

#[test]
fn retention_never_deletes_records_above_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    // Timestamps far in the past (a replay with the original CreateTime):
    // every segment, the active one included, is expired from the start.
    let (mut log, c, bases) = retained_log(dir.path(), time_cfg(60_000), &[T0, T0, T0, T0]);
    assert_eq!(bases, vec![0, 3, 6, 9]);
    c.set(T0 + 1_000_000);

    // Committed up to inside segment 3..6: only segment 0 is wholly committed.
    log.set_high_watermark(4);
    assert_eq!(log.delete_old_segments().unwrap().segments, 1);
    assert_eq!(segment_bases_on_disk(dir.path()), vec![3, 6, 9]);
    assert_eq!(
        (log.log_start_offset(), log.high_watermark()),
        (3, 4),
        "the high watermark does not jump"
    );
    assert_eq!(offsets(&log), (3..12).collect::<Vec<_>>());

    // Committed up to the active segment's base.
    log.set_high_watermark(9);
    assert_eq!(log.delete_old_segments().unwrap().segments, 2);
    assert_eq!(segment_bases_on_disk(dir.path()), vec![9]);
    assert_eq!(offsets(&log), vec![9, 10, 11]);

    // Everything committed: the active segment is rolled and goes too.
    log.set_high_watermark(12);
    assert_eq!(log.delete_old_segments().unwrap().segments, 1);
    assert_eq!(segment_bases_on_disk(dir.path()), vec![12]);
    assert_eq!(log.log_start_offset(), 12);
}
