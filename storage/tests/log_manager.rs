//! `LogManager`: the logs of one data directory across clean and unclean
//! restarts, Kafka-format checkpoints, creation and deletion, the
//! `max.open.logs` limit, parallel recovery, and the background passes
//! (retention, cleaning, interval flushes).

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rivulet_storage::log_manager::{
    CLEANER_OFFSET_CHECKPOINT, CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT, REPLICATION_OFFSET_CHECKPOINT,
};
use rivulet_storage::{
    CleanupPolicy, FlushPolicy, LogConfig, LogManager, ManualClock, PartitionLog, StorageConfig,
    StorageError, TopicPartition,
};
use rivulet_testkit::poll::poll_until;

fn storage_cfg() -> StorageConfig {
    StorageConfig {
        log_defaults: small_segments(),
        ..StorageConfig::default()
    }
}

fn defaults(_topic: &str) -> Option<LogConfig> {
    None
}

fn open_mgr(dir: &Path, cfg: StorageConfig, c: &Arc<ManualClock>) -> LogManager {
    LogManager::open(dir, cfg, c.clone(), &defaults).unwrap()
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// Append `batches` batches of 3 records tagged with the partition name.
fn fill(log: &mut PartitionLog, batches: usize) {
    let tag = log.topic_partition().to_string();
    for i in 0..batches {
        log.append_as_leader(&mut batch(&format!("{tag}/{i}"), 3, T0 + i as i64), 0)
            .unwrap();
    }
}

/// Every log's `(partition, records, log end, high watermark, log start)`.
type LogState = (TopicPartition, Vec<Rec>, i64, i64, i64);

fn state(m: &LogManager) -> Vec<LogState> {
    m.all_logs()
        .into_iter()
        .map(|(tp, log)| {
            let log = log.lock();
            (
                tp,
                read_all_from(&log, log.log_start_offset()),
                log.log_end_offset(),
                log.high_watermark(),
                log.log_start_offset(),
            )
        })
        .collect()
}

fn read_text(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

#[test]
fn clean_shutdown_keeps_every_log_and_writes_kafka_format_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let m = open_mgr(dir.path(), storage_cfg(), &c);
    assert!(!m.opened_after_clean_shutdown());
    let tps = [tp("orders", 0), tp("orders", 1), tp("payments-eu", 3)];
    for (i, tp) in tps.iter().enumerate() {
        let log = m.create_log(tp, small_segments()).unwrap();
        let mut log = log.lock();
        fill(&mut log, 10 * (i + 1));
        let hw = log.log_end_offset() - 1;
        log.set_high_watermark(hw);
    }
    let before = state(&m);
    assert_eq!(
        before.iter().map(|s| (s.2, s.3)).collect::<Vec<_>>(),
        vec![(30, 29), (60, 59), (90, 89)]
    );
    m.shutdown().unwrap();
    drop(m);

    let d = dir.path();
    assert!(d.join(CLEAN_SHUTDOWN_FILE).exists());
    assert_eq!(
        read_text(&d.join(RECOVERY_POINT_CHECKPOINT)),
        "0\n3\norders 0 30\norders 1 60\npayments-eu 3 90\n"
    );
    assert_eq!(
        read_text(&d.join(REPLICATION_OFFSET_CHECKPOINT)),
        "0\n3\norders 0 29\norders 1 59\npayments-eu 3 89\n"
    );
    assert_eq!(
        read_text(&d.join(LOG_START_OFFSET_CHECKPOINT)),
        "0\n3\norders 0 0\norders 1 0\npayments-eu 3 0\n"
    );
    assert_eq!(read_text(&d.join(CLEANER_OFFSET_CHECKPOINT)), "0\n0\n");
    assert!(d.join("orders-1").join("00000000000000000000.log").exists());

    let m = open_mgr(d, storage_cfg(), &c);
    assert!(m.opened_after_clean_shutdown());
    assert!(
        !d.join(CLEAN_SHUTDOWN_FILE).exists(),
        "the marker is consumed at open"
    );
    assert_eq!(state(&m), before);
    // Appends continue where they stopped.
    let log = m.get(&tps[0]).unwrap();
    let info = log
        .lock()
        .append_as_leader(&mut batch("more", 1, T0), 0)
        .unwrap();
    assert_eq!(info.first_offset, 30);
}

#[test]
fn unclean_restart_recovers_every_log_without_the_clean_marker() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let m = open_mgr(dir.path(), storage_cfg(), &c);
    for p in 0..3 {
        let log = m.create_log(&tp("t", p), small_segments()).unwrap();
        let mut log = log.lock();
        fill(&mut log, 20 + p as usize);
        log.flush().unwrap();
    }
    let before = state(&m);
    drop(m);

    // A torn write at the end of one log.
    let active = segment_bases_on_disk(&dir.path().join("t-1"))
        .pop()
        .unwrap();
    let path = dir.path().join("t-1").join(format!("{active:020}.log"));
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 99, 0, 0, 1, 0, 7]);
    fs::write(&path, &bytes).unwrap();

    let m = open_mgr(dir.path(), storage_cfg(), &c);
    assert!(!m.opened_after_clean_shutdown());
    let after = state(&m);
    // No checkpoint was written: high watermarks restart at the log start.
    let strip_hw = |s: &[LogState]| -> Vec<(TopicPartition, Vec<Rec>, i64)> {
        s.iter().map(|s| (s.0.clone(), s.1.clone(), s.2)).collect()
    };
    assert_eq!(strip_hw(&after), strip_hw(&before));
    assert_eq!(
        after.iter().map(|s| s.2).collect::<Vec<_>>(),
        vec![60, 63, 66]
    );
    m.shutdown().unwrap();
    drop(m);
    let m = open_mgr(dir.path(), storage_cfg(), &c);
    assert!(m.opened_after_clean_shutdown());
    assert_eq!(strip_hw(&state(&m)), strip_hw(&before));
}

#[test]
fn delete_log_removes_the_directory_and_forgets_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let m = open_mgr(dir.path(), storage_cfg(), &c);
    let doomed = tp("doomed", 0);
    let kept = tp("kept", 0);
    for t in [&doomed, &kept] {
        fill(&mut m.create_log(t, small_segments()).unwrap().lock(), 30);
    }
    let held = m.get(&doomed).unwrap();
    let plan = held
        .lock()
        .plan_read(0, 1 << 20, None, true)
        .unwrap()
        .unwrap();
    let expected = held.lock().read(0, 1 << 20, None, true).unwrap();

    m.delete_log(&doomed).unwrap();
    assert!(!dir.path().join("doomed-0").exists());
    assert!(
        file_names(dir.path()).iter().all(|n| !n.contains("doomed")),
        "{:?}",
        file_names(dir.path())
    );
    assert!(m.get(&doomed).is_none());
    assert_eq!(
        m.all_logs().into_iter().map(|l| l.0).collect::<Vec<_>>(),
        vec![kept.clone()]
    );
    assert!(matches!(
        m.delete_log(&doomed),
        Err(StorageError::UnknownPartition(p)) if p == "doomed-0"
    ));
    assert_eq!(
        plan.execute().unwrap(),
        expected,
        "a read planned before the delete still completes"
    );

    m.shutdown().unwrap();
    assert!(!read_text(&dir.path().join(RECOVERY_POINT_CHECKPOINT)).contains("doomed"));
    drop(m);
    let m = open_mgr(dir.path(), storage_cfg(), &c);
    assert_eq!(
        m.all_logs().into_iter().map(|l| l.0).collect::<Vec<_>>(),
        vec![kept]
    );
}

#[test]
fn open_finishes_interrupted_deletes_and_leaves_foreign_directories_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = clock();
    let m = open_mgr(d, storage_cfg(), &c);
    fill(
        &mut m.create_log(&tp("t", 1), small_segments()).unwrap().lock(),
        5,
    );
    // A user topic that merely shares the metadata log's prefix.
    fill(
        &mut m
            .create_log(&tp("__cluster_metadata_mirror", 0), small_segments())
            .unwrap()
            .lock(),
        5,
    );
    m.shutdown().unwrap();
    drop(m);

    let pending = d.join("t-0.1700000000000-delete");
    fs::create_dir(&pending).unwrap();
    fs::write(pending.join("00000000000000000000.log"), b"old").unwrap();
    let raft = d.join("__cluster_metadata-0");
    fs::create_dir(&raft).unwrap();
    fs::write(raft.join("00000000000000000000.log"), b"raft log bytes").unwrap();
    for foreign in ["lost+found", "notes", "t-x"] {
        fs::create_dir(d.join(foreign)).unwrap();
    }
    fs::write(d.join("notes").join("readme.txt"), b"hello").unwrap();
    fs::write(d.join("meta.properties"), b"node.id=1\n").unwrap();

    let m = open_mgr(d, storage_cfg(), &c);
    assert!(!pending.exists(), "a leftover -delete dir is removed");
    assert_eq!(
        m.all_logs().into_iter().map(|l| l.0).collect::<Vec<_>>(),
        vec![tp("__cluster_metadata_mirror", 0), tp("t", 1)]
    );
    assert_eq!(m.get(&tp("t", 1)).unwrap().lock().log_end_offset(), 15);
    assert_eq!(
        m.get(&tp("__cluster_metadata_mirror", 0))
            .unwrap()
            .lock()
            .log_end_offset(),
        15
    );
    assert_eq!(file_names(&raft), vec!["00000000000000000000.log"]);
    assert_eq!(
        fs::read(raft.join("00000000000000000000.log")).unwrap(),
        b"raft log bytes"
    );
    assert!(d.join("lost+found").is_dir());
    assert!(file_names(&d.join("t-x")).is_empty());
    assert_eq!(
        fs::read(d.join("notes").join("readme.txt")).unwrap(),
        b"hello"
    );
    assert_eq!(fs::read(d.join("meta.properties")).unwrap(), b"node.id=1\n");
}

#[test]
fn max_open_logs_is_enforced_on_create_and_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let limited = |n| StorageConfig {
        max_open_logs: n,
        ..storage_cfg()
    };
    let m = open_mgr(dir.path(), limited(2), &c);
    m.create_log(&tp("a", 0), small_segments()).unwrap();
    m.create_log(&tp("a", 1), small_segments()).unwrap();
    assert!(matches!(
        m.create_log(&tp("a", 2), small_segments()),
        Err(StorageError::TooManyLogs { limit: 2 })
    ));
    assert!(matches!(
        m.get_or_create(&tp("a", 2), small_segments()),
        Err(StorageError::TooManyLogs { limit: 2 })
    ));
    assert!(!dir.path().join("a-2").exists());
    assert!(m.get_or_create(&tp("a", 0), small_segments()).is_ok());
    // Deleting a log frees its slot.
    m.delete_log(&tp("a", 1)).unwrap();
    m.create_log(&tp("a", 2), small_segments()).unwrap();
    m.shutdown().unwrap();
    drop(m);

    let m = open_mgr(dir.path(), limited(2), &c);
    assert_eq!(m.all_logs().len(), 2);
    drop(m);
    let m = open_mgr(dir.path(), limited(3), &c);
    m.create_log(&tp("a", 3), small_segments()).unwrap();
    m.shutdown().unwrap();
    drop(m);

    assert!(matches!(
        LogManager::open(dir.path(), limited(2), c.clone(), &defaults),
        Err(StorageError::TooManyLogs { limit: 2 })
    ));
    let m = open_mgr(dir.path(), limited(3), &c);
    assert!(
        m.opened_after_clean_shutdown(),
        "a refused open leaves the clean-shutdown marker"
    );
    assert_eq!(m.all_logs().len(), 3);
}

#[test]
fn create_log_rejects_bad_names_and_duplicates_and_get_or_create_reuses() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let m = open_mgr(dir.path(), storage_cfg(), &c);
    let long = "x".repeat(250);
    for bad in ["", ".", "..", "a/b", "sp ace", "ü", long.as_str()] {
        assert!(
            matches!(
                m.create_log(&tp(bad, 0), small_segments()),
                Err(StorageError::InvalidTopicName { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(
        m.create_log(&tp("t", -1), small_segments()).is_err(),
        "a negative partition has no valid directory name"
    );
    assert!(
        m.create_log(&tp("__cluster_metadata", 0), small_segments())
            .is_err(),
        "the metadata log's directory is not a partition log"
    );
    assert!(file_names(dir.path())
        .iter()
        .all(|n| !dir.path().join(n).is_dir()));
    assert!(m.all_logs().is_empty());

    let first = m.create_log(&tp("t", 0), small_segments()).unwrap();
    fill(&mut first.lock(), 4);
    assert!(matches!(
        m.create_log(&tp("t", 0), small_segments()),
        Err(StorageError::LogExists(p)) if p == "t-0"
    ));
    let again = m.get_or_create(&tp("t", 0), LogConfig::default()).unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(again.lock().log_end_offset(), 12);
    assert_eq!(again.lock().config(), &small_segments());
    let other = m.get_or_create(&tp("t", 1), small_segments()).unwrap();
    assert!(!Arc::ptr_eq(&first, &other));
    assert_eq!(m.all_logs().len(), 2);
    assert!(dir.path().join("t-1").is_dir());

    // A name at the length limit is fine.
    let longest = "y".repeat(249);
    m.create_log(&tp(&longest, 0), small_segments()).unwrap();
}

#[test]
fn retention_and_cleaner_passes_cover_every_log_by_its_policy() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let m = open_mgr(dir.path(), storage_cfg(), &c);
    let delete_cfg = LogConfig {
        retention_ms: 60_000,
        ..LogConfig::default()
    };
    let compact_cfg = LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        ..delete_cfg.clone()
    };
    let logs = [
        (tp("events", 0), delete_cfg.clone()),
        (tp("events", 1), delete_cfg),
        (tp("state", 0), compact_cfg),
    ];
    for (tp, cfg) in &logs {
        let log = m.create_log(tp, cfg.clone()).unwrap();
        let mut log = log.lock();
        // Three old segments of the same keys, then a young active segment.
        for s in 0..3 {
            log.append_as_leader(&mut batch(&format!("old{s}"), 4, T0 + s), 0)
                .unwrap();
            log.roll().unwrap();
        }
        log.append_as_leader(&mut batch("new", 2, T0 + 100_000), 0)
            .unwrap();
        let end = log.log_end_offset();
        log.set_high_watermark(end);
    }
    c.set(T0 + 100_000);

    let r = m.run_retention().unwrap();
    assert_eq!(r.segments, 6, "three old segments of each delete log");
    for p in 0..2 {
        let log = m.get(&tp("events", p)).unwrap();
        let log = log.lock();
        assert_eq!(log.log_start_offset(), 12);
        assert_eq!(
            okv(&read_all_from(&log, 12)),
            vec![
                (12, "k0".to_string(), Some("new-0".to_string())),
                (13, "k1".to_string(), Some("new-1".to_string()))
            ]
        );
        assert_eq!(
            segment_bases_on_disk(&dir.path().join(format!("events-{p}"))),
            vec![12]
        );
    }
    let state_log = m.get(&tp("state", 0)).unwrap();
    assert_eq!(read_all_from(&state_log.lock(), 0).len(), 14);

    let stats = m.run_cleaner(true).unwrap();
    assert_eq!(stats.segments_cleaned, 3);
    assert_eq!(stats.records_removed, 8);
    assert_eq!(
        okv(&read_all_from(&state_log.lock(), 0)),
        vec![
            (8, "k0".to_string(), Some("old2-0".to_string())),
            (9, "k1".to_string(), Some("old2-1".to_string())),
            (10, "k2".to_string(), Some("old2-2".to_string())),
            (11, "k3".to_string(), Some("old2-3".to_string())),
            (12, "k0".to_string(), Some("new-0".to_string())),
            (13, "k1".to_string(), Some("new-1".to_string())),
        ]
    );
    for p in 0..2 {
        let log = m.get(&tp("events", p)).unwrap();
        assert_eq!(read_all_from(&log.lock(), 12).len(), 2, "not compacted");
    }
    assert_eq!(
        m.run_cleaner(false).unwrap().segments_cleaned,
        0,
        "nothing dirty"
    );
}

#[test]
fn high_watermark_log_start_and_cleaner_offset_survive_restarts_via_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let m = open_mgr(dir.path(), storage_cfg(), &c);
    let plain = tp("plain", 0);
    let compacted = tp("compacted", 0);
    {
        let log = m.create_log(&plain, small_segments()).unwrap();
        let mut log = log.lock();
        fill(&mut log, 40);
        log.set_high_watermark(80);
        assert_eq!(log.delete_records_before(30).unwrap(), 30);
    }
    let cleaned_to = {
        let cfg = LogConfig {
            cleanup_policy: CleanupPolicy::COMPACT,
            ..small_segments()
        };
        let log = m.create_log(&compacted, cfg).unwrap();
        let mut log = log.lock();
        fill(&mut log, 40);
        log.roll().unwrap();
        fill(&mut log, 1);
        let end = log.log_end_offset();
        log.set_high_watermark(end);
        end - 3
    };
    c.set(T0 + 10_000);
    m.run_cleaner(true).unwrap();
    assert_eq!(
        m.get(&compacted).unwrap().lock().cleaned_up_to(),
        cleaned_to
    );
    m.shutdown().unwrap();
    drop(m);

    assert_eq!(
        read_text(&dir.path().join(LOG_START_OFFSET_CHECKPOINT)),
        "0\n2\ncompacted 0 0\nplain 0 30\n"
    );
    assert_eq!(
        read_text(&dir.path().join(REPLICATION_OFFSET_CHECKPOINT)),
        "0\n2\ncompacted 0 123\nplain 0 80\n"
    );
    assert_eq!(
        read_text(&dir.path().join(CLEANER_OFFSET_CHECKPOINT)),
        format!("0\n1\ncompacted 0 {cleaned_to}\n")
    );

    let m = open_mgr(dir.path(), storage_cfg(), &c);
    {
        let log = m.get(&plain).unwrap();
        let mut log = log.lock();
        assert_eq!(
            (
                log.log_start_offset(),
                log.high_watermark(),
                log.log_end_offset()
            ),
            (30, 80, 120)
        );
        assert!(matches!(
            log.read(29, 100, None, true),
            Err(StorageError::OffsetOutOfRange { log_start: 30, .. })
        ));
        assert_eq!(read_all_from(&log, 30)[0].0, 30);
        log.set_high_watermark(90);
        assert_eq!(log.delete_records_before(45).unwrap(), 45);
    }
    let log = m.get(&compacted).unwrap();
    assert_eq!(log.lock().cleaned_up_to(), cleaned_to);
    assert_eq!(log.lock().high_watermark(), 123);

    // An explicit checkpoint, then a crash: the checkpointed values return.
    m.checkpoint().unwrap();
    drop(log);
    drop(m);
    let m = open_mgr(dir.path(), storage_cfg(), &c);
    assert!(!m.opened_after_clean_shutdown());
    let log = m.get(&plain).unwrap();
    let log = log.lock();
    assert_eq!((log.log_start_offset(), log.high_watermark()), (45, 90));
    assert_eq!(read_all_from(&log, 45).len(), 120 - 45);
}

#[test]
fn fifty_partitions_open_in_parallel_with_their_log_ends() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let cfg = StorageConfig {
        recovery_threads: 4,
        ..storage_cfg()
    };
    let m = open_mgr(dir.path(), cfg.clone(), &c);
    let tps: Vec<TopicPartition> = (0..50)
        .map(|i| tp(&format!("topic{}", i % 5), i / 5))
        .collect();
    for (i, tp) in tps.iter().enumerate() {
        let log = m.create_log(tp, small_segments()).unwrap();
        let mut log = log.lock();
        fill(&mut log, i % 17 + 1);
        log.flush().unwrap();
    }
    let before = state(&m);
    drop(m);

    let check = |m: &LogManager| {
        let after = state(m);
        assert_eq!(after.len(), 50);
        for (b, a) in before.iter().zip(&after) {
            assert_eq!((&a.0, &a.1, a.2), (&b.0, &b.1, b.2));
        }
        for (i, tp) in tps.iter().enumerate() {
            let log = m.get(tp).unwrap();
            let log = log.lock();
            assert_eq!(log.log_end_offset(), 3 * (i % 17 + 1) as i64, "{tp}");
            let last = read_all_from(&log, 0).pop().unwrap();
            assert_eq!(
                last.3.unwrap(),
                format!("{tp}/{}-2", i % 17).into_bytes(),
                "{tp}"
            );
        }
    };
    let m = open_mgr(dir.path(), cfg.clone(), &c);
    assert!(!m.opened_after_clean_shutdown());
    check(&m);
    m.shutdown().unwrap();
    drop(m);
    let m = open_mgr(dir.path(), cfg, &c);
    assert!(m.opened_after_clean_shutdown());
    check(&m);
}

#[test]
fn background_thread_applies_retention_and_shutdown_joins_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let cfg = StorageConfig {
        retention_check_interval_ms: 10,
        cleaner_backoff_ms: 10,
        checkpoint_interval_ms: 10,
        ..storage_cfg()
    };
    let m = Arc::new(open_mgr(dir.path(), cfg, &c));
    let t = tp("aging", 0);
    let log = m
        .create_log(
            &t,
            LogConfig {
                retention_ms: 60_000,
                ..LogConfig::default()
            },
        )
        .unwrap();
    {
        let mut log = log.lock();
        for s in 0..3 {
            log.append_as_leader(&mut batch("old", 2, T0 + s), 0)
                .unwrap();
            log.roll().unwrap();
        }
        log.append_as_leader(&mut batch("new", 2, T0 + 100_000), 0)
            .unwrap();
        log.set_high_watermark(8);
    }
    c.set(T0 + 100_000);
    m.start_background();
    let applied = poll_until(Duration::from_secs(5), || {
        log.lock().log_start_offset() == 6
    });
    assert!(applied, "retention never ran in the background");
    assert_eq!(segment_bases_on_disk(&dir.path().join("aging-0")), vec![6]);
    assert_eq!(
        okv(&read_all_from(&log.lock(), 6)),
        vec![
            (6, "k0".to_string(), Some("new-0".to_string())),
            (7, "k1".to_string(), Some("new-1".to_string()))
        ]
    );

    m.shutdown().unwrap();
    assert_eq!(
        Arc::weak_count(&m),
        0,
        "the background thread has exited and let go of the manager"
    );
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
}

#[test]
fn interval_flush_advances_the_recovery_point_once_flush_ms_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let m = open_mgr(dir.path(), storage_cfg(), &c);
    let interval = m
        .create_log(
            &tp("interval", 0),
            LogConfig {
                flush_policy: FlushPolicy::Interval,
                flush_ms: 1_000,
                ..LogConfig::default()
            },
        )
        .unwrap();
    let on_ack = m.create_log(&tp("onack", 0), LogConfig::default()).unwrap();
    fill(&mut interval.lock(), 3);
    fill(&mut on_ack.lock(), 3);
    let rp = |l: &rivulet_storage::log_manager::SharedLog| l.lock().recovery_point();
    assert_eq!((rp(&interval), rp(&on_ack)), (0, 0));

    m.flush_due_logs();
    assert_eq!(rp(&interval), 0, "flush.ms counts from the first pass");
    c.advance(999);
    m.flush_due_logs();
    assert_eq!(rp(&interval), 0);
    c.advance(1);
    m.flush_due_logs();
    assert_eq!(rp(&interval), 9);
    assert_eq!(
        rp(&on_ack),
        0,
        "on-ack logs are flushed by acks, not by time"
    );

    fill(&mut interval.lock(), 2);
    c.advance(500);
    m.flush_due_logs();
    assert_eq!(rp(&interval), 9);
    c.advance(500);
    m.flush_due_logs();
    assert_eq!(rp(&interval), 15);
}
