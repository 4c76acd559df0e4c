//! Log compaction (`cleanup.policy=compact`) through [`LogCleaner`]: which
//! records survive, which ranges are left alone, how compressed batches are
//! rebuilt, and how a swap a crash interrupted is finished or discarded — all
//! checked on records read back from disk.

#[path = "../common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_storage::{
    CleanupPolicy, LogCleaner, LogConfig, LogOpenOptions, ManualClock, PartitionLog,
};

fn compact_cfg() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        ..small_segments()
    }
}

fn cleaner(c: &Arc<ManualClock>) -> LogCleaner {
    LogCleaner::new(c.clone(), 1 << 26, 1 << 26)
}

fn append(log: &mut PartitionLog, records: &[(&str, Option<&str>, i64)]) {
    log.append_as_leader(&mut keyed_batch(records), 0).unwrap();
}

fn unclean_opts() -> LogOpenOptions {
    LogOpenOptions::default()
}

fn clean_opts(log_end: i64) -> LogOpenOptions {
    LogOpenOptions {
        clean_shutdown: true,
        recovery_point: log_end,
        ..LogOpenOptions::default()
    }
}

/// What compaction must leave of `recs`: below `end`, only the record with
/// the highest offset of each key (and no tombstone if `drop_tombstones`);
/// from `end` on, everything.
fn expected_after_compaction(recs: &[Rec], end: i64, drop_tombstones: bool) -> Vec<Rec> {
    let mut latest: HashMap<&Option<Vec<u8>>, i64> = HashMap::new();
    for r in recs.iter().filter(|r| r.0 < end) {
        latest.insert(&r.2, r.0);
    }
    recs.iter()
        .filter(|r| r.0 >= end || (latest[&r.2] == r.0 && !(drop_tombstones && r.3.is_none())))
        .cloned()
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Any history of keyed writes and tombstones, over many small segments
    /// and every codec, compacts to exactly the latest record of each key at
    /// its original offset; the active segment, the log end and the log start
    /// do not move; the result survives clean and unclean reopening; once
    /// `delete.retention.ms` has passed a second pass drops the tombstones.
    #[test]
    fn compaction_keeps_exactly_the_latest_record_of_each_key(
        batches in proptest::collection::vec(
            (proptest::collection::vec((0u8..6, proptest::bool::weighted(0.2)), 1..6), 0usize..5),
            10..60,
        ),
        tail in proptest::collection::vec((0u8..6, any::<bool>()), 1..5),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let c = clock();
        let cfg = compact_cfg();
        let mut log = open(dir.path(), cfg.clone(), c.clone(), LogOpenOptions::default());
        let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
        let mut ts = T0;
        let mut write = |log: &mut PartitionLog, recs: &[(u8, bool)], codec: Compression| {
            let mut b = RecordBatchBuilder::new(codec);
            for (k, tombstone) in recs {
                let value = format!("v{ts}");
                b.push(ts, Some(format!("k{k}").as_bytes()), (!tombstone).then_some(value.as_bytes()), &[]);
                ts += 1;
            }
            log.append_as_leader(&mut b.build().unwrap(), 0).unwrap();
        };
        for (recs, codec) in &batches {
            write(&mut log, recs, codecs[*codec]);
        }
        log.roll().unwrap();
        let active_base = log.log_end_offset();
        write(&mut log, &tail, Compression::None);
        prop_assert_eq!(segment_bases(&log).last().copied(), Some(active_base));
        prop_assert!(log.num_segments() >= 3, "{} segments", log.num_segments());
        log.set_high_watermark(log.log_end_offset());
        // Every record is older than now, but younger than delete.retention.ms.
        c.set(ts + 1_000);

        let before = read_all_from(&log, 0);
        let leo = log.log_end_offset();
        let active_before = log.read(active_base, 1 << 20, None, true).unwrap();
        let stats = cleaner(&c).clean(&mut log, true).unwrap().expect("a cleaning pass");

        let expected = expected_after_compaction(&before, active_base, false);
        let after = read_all_from(&log, log.log_start_offset());
        prop_assert_eq!(&after, &expected);
        prop_assert!(after.windows(2).all(|w| w[0].0 < w[1].0), "offsets strictly increase");
        prop_assert_eq!(log.log_end_offset(), leo);
        prop_assert_eq!(log.log_start_offset(), 0);
        prop_assert_eq!(log.read(active_base, 1 << 20, None, true).unwrap(), active_before.clone());
        prop_assert_eq!(stats.records_removed as usize, before.len() - expected.len());
        prop_assert_eq!(log.cleaned_up_to(), active_base);

        // Clean and unclean reopening read the same records.
        log.close().unwrap();
        drop(log);
        let log = open(dir.path(), cfg.clone(), c.clone(), clean_opts(leo));
        prop_assert_eq!(read_all_from(&log, 0), expected.clone());
        drop(log);
        let mut log = open(dir.path(), cfg.clone(), c.clone(), unclean_opts());
        prop_assert_eq!(read_all_from(&log, 0), expected.clone());
        prop_assert_eq!(log.log_end_offset(), leo);

        // Past delete.retention.ms the tombstones of the cleaned range go.
        c.advance(cfg.delete_retention_ms + 1);
        log.set_high_watermark(leo);
        let stats = cleaner(&c).clean(&mut log, true).unwrap().expect("a second pass");
        let without_tombstones = expected_after_compaction(&before, active_base, true);
        prop_assert_eq!(read_all_from(&log, 0), without_tombstones.clone());
        prop_assert_eq!(
            stats.tombstones_removed as usize,
            expected.len() - without_tombstones.len()
        );
        prop_assert_eq!(log.read(active_base, 1 << 20, None, true).unwrap(), active_before);
        prop_assert_eq!(log.log_end_offset(), leo);
    }
}

#[test]
fn tombstones_are_kept_until_delete_retention_ms_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let cfg = LogConfig {
        delete_retention_ms: 60_000,
        ..compact_cfg()
    };
    let mut log = open(dir.path(), cfg, c.clone(), LogOpenOptions::default());
    append(
        &mut log,
        &[
            ("a", Some("a1"), T0),
            ("b", Some("b1"), T0 + 1),
            ("a", None, T0 + 2),
            ("c", Some("c1"), T0 + 3),
        ],
    );
    append(&mut log, &[("b", None, T0 + 10)]);
    log.roll().unwrap();
    append(&mut log, &[("d", Some("d1"), T0 + 20)]);
    log.set_high_watermark(log.log_end_offset());

    let run = |log: &mut PartitionLog, now: i64| {
        c.set(now);
        let stats = cleaner(&c).clean(log, true).unwrap().unwrap();
        (okv(&read_all_from(log, 0)), stats.tombstones_removed)
    };
    let s = |v: &str| Some(v.to_string());
    let both_tombstones = vec![
        (2, "a".to_string(), None),
        (3, "c".to_string(), s("c1")),
        (4, "b".to_string(), None),
        (5, "d".to_string(), s("d1")),
    ];
    assert_eq!(run(&mut log, T0 + 1_000), (both_tombstones.clone(), 0));
    // Exactly delete.retention.ms old: still kept.
    assert_eq!(run(&mut log, T0 + 2 + 60_000), (both_tombstones, 0));
    assert_eq!(
        run(&mut log, T0 + 2 + 60_001),
        (
            vec![
                (3, "c".to_string(), s("c1")),
                (4, "b".to_string(), None),
                (5, "d".to_string(), s("d1")),
            ],
            1
        )
    );
    assert_eq!(
        run(&mut log, T0 + 10 + 60_001),
        (
            vec![(3, "c".to_string(), s("c1")), (5, "d".to_string(), s("d1"))],
            1
        )
    );
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn active_segment_and_records_above_the_high_watermark_are_never_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let mut log = open(
        dir.path(),
        compact_cfg(),
        c.clone(),
        LogOpenOptions::default(),
    );
    assert_eq!(
        cleaner(&c).clean(&mut log, true).unwrap(),
        None,
        "an empty log has nothing to clean"
    );
    for i in 0..60 {
        let v = format!("v{i}");
        append(&mut log, &[("k", Some(&v), T0 + i)]);
    }
    let bases = segment_bases(&log);
    assert!(bases.len() >= 4, "{bases:?}");
    let active_base = *bases.last().unwrap();
    c.set(T0 + 10_000);

    // Nothing is committed: nothing may be cleaned.
    log.set_high_watermark(0);
    assert_eq!(cleaner(&c).clean(&mut log, true).unwrap(), None);

    // The high watermark inside the third segment: only the first two are cleanable.
    let hw = bases[2] + 1;
    log.set_high_watermark(hw);
    let before = read_all_from(&log, 0);
    assert_eq!(before.len(), 60);
    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    assert_eq!(
        read_all_from(&log, 0),
        expected_after_compaction(&before, bases[2], false)
    );
    assert_eq!(log.cleaned_up_to(), bases[2]);

    // Committed up to the end: every closed segment, but not the active one.
    log.set_high_watermark(log.log_end_offset());
    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    let after = read_all_from(&log, 0);
    assert_eq!(
        after,
        expected_after_compaction(&before, active_base, false)
    );
    assert_eq!(after[0].0, active_base - 1, "the last closed record of k");
    assert_eq!(after.len() as i64, 1 + 60 - active_base);
    assert_eq!(log.log_end_offset(), 60);
}

#[test]
fn only_a_log_with_compact_in_its_cleanup_policy_is_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let cfg = LogConfig {
        cleanup_policy: CleanupPolicy::DELETE,
        ..small_segments()
    };
    let mut log = open(dir.path(), cfg, c.clone(), LogOpenOptions::default());
    for i in 0..40 {
        append(&mut log, &[("k", Some("v"), T0 + i)]);
    }
    log.roll().unwrap();
    log.set_high_watermark(40);
    c.set(T0 + 10_000);
    assert_eq!(cleaner(&c).clean(&mut log, true).unwrap(), None);
    assert_eq!(read_all_from(&log, 0).len(), 40);
}

#[test]
fn min_compaction_lag_keeps_recent_segments_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let cfg = LogConfig {
        min_compaction_lag_ms: 60_000,
        cleanup_policy: CleanupPolicy::COMPACT,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg, c.clone(), LogOpenOptions::default());
    append(
        &mut log,
        &[("k", Some("k1"), T0), ("j", Some("j1"), T0 + 1)],
    );
    log.roll().unwrap();
    append(&mut log, &[("k", Some("k2"), T0 + 10_000)]);
    log.roll().unwrap();
    append(
        &mut log,
        &[
            ("k", Some("k3"), T0 + 100_000),
            ("j", Some("j2"), T0 + 100_001),
        ],
    );
    log.roll().unwrap();
    append(&mut log, &[("k", Some("k4"), T0 + 100_002)]);
    log.set_high_watermark(log.log_end_offset());
    let s = |k: &str, v: &str, o: i64| (o, k.to_string(), Some(v.to_string()));

    // The third segment's newest record is younger than the lag.
    c.set(T0 + 100_001 + 59_999);
    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    let lagging = vec![
        s("j", "j1", 1),
        s("k", "k2", 2),
        s("k", "k3", 3),
        s("j", "j2", 4),
        s("k", "k4", 5),
    ];
    assert_eq!(okv(&read_all_from(&log, 0)), lagging);
    assert_eq!(log.cleaned_up_to(), 3);

    // Exactly min.compaction.lag.ms old: cleanable.
    c.set(T0 + 100_001 + 60_000);
    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    assert_eq!(
        okv(&read_all_from(&log, 0)),
        vec![s("k", "k3", 3), s("j", "j2", 4), s("k", "k4", 5)]
    );
}

/// One log per pair of codecs: a batch of `first` losing some records, one
/// of `first` keeping all, an uncompressed one keeping all and one of
/// `second` losing its first record.
fn check_compressed_batches(first: Compression, second: Compression) {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let mut log = open(
        dir.path(),
        LogConfig {
            cleanup_policy: CleanupPolicy::COMPACT,
            ..LogConfig::default()
        },
        c.clone(),
        LogOpenOptions::default(),
    );
    let batches = [
        keyed_batch_with(
            first,
            &[
                ("a", Some("a0"), T0),
                ("d", Some("d0"), T0 + 1),
                ("b", Some("b0"), T0 + 2),
                ("f", Some("f0"), T0 + 3),
                ("c", Some("c0"), T0 + 4),
            ],
        ),
        keyed_batch_with(
            first,
            &[("x", Some("x0"), T0 + 5), ("y", Some("y0"), T0 + 6)],
        ),
        keyed_batch_with(
            Compression::None,
            &[("a", Some("a1"), T0 + 7), ("c", Some("c1"), T0 + 8)],
        ),
        keyed_batch_with(
            second,
            &[
                ("e", Some("e0"), T0 + 9),
                ("b", Some("b1"), T0 + 10),
                ("e", Some("e1"), T0 + 11),
            ],
        ),
    ];
    for b in &batches {
        log.append_as_leader(&mut b.clone(), 0).unwrap();
    }
    log.roll().unwrap();
    append(&mut log, &[("z", Some("z0"), T0 + 12)]);
    log.set_high_watermark(log.log_end_offset());
    c.set(T0 + 1_000);
    let before = raw_batches(&log);
    assert_eq!(before.len(), 5);

    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    let after = raw_batches(&log);
    assert_eq!(after.len(), 5, "{first:?}/{second:?}");
    let rebuilt = |i: usize, codec: Compression, kept: Vec<(i64, i64, &str, &str)>| {
        let (h, bytes) = &after[i];
        let (old, _) = &before[i];
        assert_eq!(h.compression().unwrap(), codec, "batch {i}");
        assert_eq!(h.base_offset, old.base_offset, "batch {i}");
        assert_eq!(h.last_offset_delta, old.last_offset_delta, "batch {i}");
        assert_eq!(h.record_count as usize, kept.len(), "batch {i}");
        assert!(bytes.len() < before[i].1.len(), "batch {i} shrank");
        let got = decode_all(bytes);
        let want: Vec<Rec> = kept
            .into_iter()
            .map(|(o, ts, k, v)| (o, ts, Some(k.into()), Some(v.into())))
            .collect();
        assert_eq!(got, want, "batch {i}");
    };
    rebuilt(
        0,
        first,
        vec![(1, T0 + 1, "d", "d0"), (3, T0 + 3, "f", "f0")],
    );
    assert_eq!(
        after[1].1, before[1].1,
        "a fully kept {first:?} batch is byte-identical"
    );
    assert_eq!(
        after[2].1, before[2].1,
        "a fully kept plain batch is byte-identical"
    );
    rebuilt(
        3,
        second,
        vec![(10, T0 + 10, "b", "b1"), (11, T0 + 11, "e", "e1")],
    );
    assert_eq!(after[4].1, before[4].1, "the active segment is untouched");
}

#[test]
fn partially_cleaned_compressed_batches_keep_their_codec_and_full_ones_their_bytes() {
    check_compressed_batches(Compression::Gzip, Compression::Zstd);
    check_compressed_batches(Compression::Zstd, Compression::Gzip);
    check_compressed_batches(Compression::Snappy, Compression::Lz4);
    check_compressed_batches(Compression::Lz4, Compression::Snappy);
}

#[test]
fn unforced_cleaning_waits_for_min_cleanable_dirty_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let cfg = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        ..compact_cfg()
    };
    let mut log = open(dir.path(), cfg, c.clone(), LogOpenOptions::default());
    let mut ts = T0;
    let mut write_round = |log: &mut PartitionLog, keys: &[&str]| {
        let recs: Vec<(&str, Option<&str>, i64)> = keys
            .iter()
            .map(|k| {
                ts += 1;
                (*k, Some("v"), ts)
            })
            .collect();
        append(log, &recs);
    };
    for _ in 0..20 {
        write_round(&mut log, &["k0", "k1", "k2", "k3", "k4"]);
    }
    log.roll().unwrap();
    log.set_high_watermark(log.log_end_offset());
    c.set(T0 + 100_000);
    let cleaner = cleaner(&c);
    assert!(
        cleaner.clean(&mut log, false).unwrap().is_some(),
        "all dirty"
    );
    let cleaned = read_all_from(&log, 0);
    assert_eq!(cleaned.len(), 5);
    assert_eq!(
        cleaner.clean(&mut log, false).unwrap(),
        None,
        "nothing dirty right after a full pass"
    );

    // New closed segments, one small record each, until half the log is dirty.
    let clean_end = log.cleaned_up_to();
    let mut skipped = 0;
    loop {
        write_round(&mut log, &["k0"]);
        log.roll().unwrap();
        log.set_high_watermark(log.log_end_offset());
        let closed: Vec<(i64, u64)> = log
            .segments()
            .filter(|s| s.base_offset() < log.log_end_offset())
            .map(|s| (s.base_offset(), s.size()))
            .collect();
        let total: u64 = closed.iter().map(|s| s.1).sum();
        let dirty: u64 = closed
            .iter()
            .filter(|s| s.0 >= clean_end)
            .map(|s| s.1)
            .sum();
        let before = read_all_from(&log, 0);
        let result = cleaner.clean(&mut log, false).unwrap();
        if (dirty as f64) < 0.5 * total as f64 {
            assert_eq!(result, None, "dirty {dirty} of {total}");
            assert_eq!(read_all_from(&log, 0), before);
            skipped += 1;
        } else {
            assert!(result.is_some(), "dirty {dirty} of {total}");
            assert_eq!(
                read_all_from(&log, 0),
                expected_after_compaction(&before, log.log_end_offset(), false)
            );
            break;
        }
        assert!(skipped < 20, "the dirty ratio never reached 0.5");
    }
    assert!(skipped >= 1, "a small dirty tail must not trigger a pass");
}

#[test]
fn cleaned_log_reads_the_same_from_every_offset_after_clean_and_unclean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let mut log = open(
        dir.path(),
        compact_cfg(),
        c.clone(),
        LogOpenOptions::default(),
    );
    for i in 0..200i64 {
        let k = format!("k{}", (i * 7) % 13);
        let v = format!("v{i}");
        let value = (i % 11 != 0).then_some(v.as_str());
        append(&mut log, &[(&k, value, T0 + i)]);
    }
    log.roll().unwrap();
    append(&mut log, &[("tail", Some("t"), T0 + 500)]);
    log.set_high_watermark(log.log_end_offset());
    c.set(T0 + 10_000);
    let before = read_all_from(&log, 0);
    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    let expected = expected_after_compaction(&before, 200, false);
    assert_eq!(read_all_from(&log, 0), expected);

    // Which batch a fetch from each offset starts with.
    let starts = |log: &PartitionLog| -> Vec<(i64, i64)> {
        (0..log.log_end_offset())
            .map(|o| {
                let bytes = log.read(o, 1, None, true).unwrap();
                let h = rivulet_protocol::record_batch::BatchIter::new(&bytes)
                    .next()
                    .unwrap()
                    .unwrap()
                    .1;
                assert!(h.last_offset() >= o, "fetch from {o} got {h:?}");
                (h.base_offset, h.last_offset())
            })
            .collect()
    };
    let reads = starts(&log);
    for r in &expected {
        let (base, last) = reads[r.0 as usize];
        assert!(
            base <= r.0 && r.0 <= last,
            "offset {} in {base}..={last}",
            r.0
        );
    }
    let leo = log.log_end_offset();
    log.close().unwrap();
    drop(log);

    let log = open(dir.path(), compact_cfg(), c.clone(), clean_opts(leo));
    assert_eq!(read_all_from(&log, 0), expected);
    assert_eq!(starts(&log), reads);
    drop(log);
    let log = open(dir.path(), compact_cfg(), c.clone(), unclean_opts());
    assert_eq!(read_all_from(&log, 0), expected);
    assert_eq!(starts(&log), reads);
    assert_eq!(log.log_end_offset(), leo);
}

// ---- crash safety -------------------------------------------------------

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for name in file_names(from) {
        fs::copy(from.join(&name), to.join(&name)).unwrap();
    }
}

fn copy_segment(from: &Path, to: &Path, base: i64, extra: &str) {
    for suffix in [".log", ".index", ".timeindex"] {
        let name = format!("{base:020}{suffix}");
        fs::copy(from.join(&name), to.join(format!("{name}{extra}"))).unwrap();
    }
}

fn remove_segment(dir: &Path, base: i64) {
    for suffix in [".log", ".index", ".timeindex"] {
        fs::remove_file(dir.join(format!("{base:020}{suffix}"))).unwrap();
    }
}

const CODECS: [Compression; 5] = [
    Compression::Gzip,
    Compression::Zstd,
    Compression::None,
    Compression::Snappy,
    Compression::Lz4,
];

/// A closed compacted log in `dir` of many small segments (one round of
/// writes to keys k0..k4 each, codecs taking turns), then one of unique keys, then the active
/// segment; returns its records.
fn write_small_segments(dir: &Path) -> Vec<Rec> {
    let mut log = open(dir, compact_cfg(), clock(), LogOpenOptions::default());
    let mut ts = T0;
    for round in 0..12 {
        let values: Vec<String> = (0..5).map(|k| format!("r{round}-k{k}")).collect();
        let recs: Vec<(String, Option<&str>, i64)> = values
            .iter()
            .enumerate()
            .map(|(k, v)| {
                ts += 1;
                (format!("k{k}"), Some(v.as_str()), ts)
            })
            .collect();
        let recs: Vec<(&str, Option<&str>, i64)> =
            recs.iter().map(|(k, v, t)| (k.as_str(), *v, *t)).collect();
        let mut b = keyed_batch_with(CODECS[round % CODECS.len()], &recs);
        log.append_as_leader(&mut b, 0).unwrap();
        log.roll().unwrap();
    }
    append(
        &mut log,
        &[("u0", Some("u0"), ts + 1), ("u1", Some("u1"), ts + 2)],
    );
    log.roll().unwrap();
    append(&mut log, &[("tail", Some("t"), ts + 3)]);
    let recs = read_all_from(&log, 0);
    log.close().unwrap();
    recs
}

/// The log in `before` cleaned in one pass, in `after` (closed). Segments
/// of about 130 bytes in 1 KiB groups: several groups of several segments.
fn clean_copy(before: &Path, after: &Path) -> Vec<Rec> {
    copy_dir(before, after);
    let c = clock();
    let mut log = open(after, compact_cfg(), c.clone(), clean_opts(i64::MAX));
    log.set_high_watermark(log.log_end_offset());
    c.set(T0 + 100_000);
    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    let recs = read_all_from(&log, 0);
    log.close().unwrap();
    recs
}

#[test]
fn leftover_cleaned_files_are_discarded_on_open() {
    let root = tempfile::tempdir().unwrap();
    let (before, cleaned, crashed) = (
        root.path().join("before"),
        root.path().join("cleaned"),
        root.path().join("crashed"),
    );
    let original = write_small_segments(&before);
    let compacted = clean_copy(&before, &cleaned);
    assert_ne!(compacted, original);

    // The crash came while the cleaner wrote `.cleaned` files, or while it
    // renamed them to `.swap` (indexes first, the log last).
    copy_dir(&before, &crashed);
    let first = segment_bases_on_disk(&cleaned)[0];
    copy_segment(&cleaned, &crashed, first, ".cleaned");
    fs::rename(
        crashed.join(format!("{first:020}.log.cleaned")),
        crashed.join(format!("{first:020}.log.swap.cleaned")),
    )
    .unwrap();
    let second = segment_bases_on_disk(&cleaned)[1];
    copy_segment(&cleaned, &crashed, second, ".cleaned");
    fs::rename(
        crashed.join(format!("{second:020}.index.cleaned")),
        crashed.join(format!("{second:020}.index.swap")),
    )
    .unwrap();

    let log = open(&crashed, compact_cfg(), clock(), unclean_opts());
    assert_eq!(read_all_from(&log, 0), original);
    assert_eq!(file_names(&crashed), file_names(&before));
}

#[test]
fn a_swap_interrupted_after_the_rename_to_swap_is_completed_on_open() {
    let root = tempfile::tempdir().unwrap();
    let (before, cleaned) = (root.path().join("before"), root.path().join("cleaned"));
    let original = write_small_segments(&before);
    let compacted = clean_copy(&before, &cleaned);
    let old_bases = segment_bases_on_disk(&before);
    let new_bases = segment_bases_on_disk(&cleaned);
    // The first cleaned segment replaced several old ones.
    let (group_base, group_end) = (new_bases[0], new_bases[1]);
    let group: Vec<i64> = old_bases
        .iter()
        .copied()
        .filter(|b| *b >= group_base && *b < group_end)
        .collect();
    assert!(group.len() >= 3, "group {group:?} of {old_bases:?}");

    // What the log must read after the first group's swap: that group
    // cleaned, the rest as before.
    let expected: Vec<Rec> = compacted
        .iter()
        .filter(|r| r.0 < group_end)
        .chain(original.iter().filter(|r| r.0 >= group_end))
        .cloned()
        .collect();
    let mut expected_files: Vec<String> = file_names(&cleaned)
        .into_iter()
        .filter(|n| n.starts_with(&format!("{group_base:020}.")))
        .chain(
            file_names(&before)
                .into_iter()
                .filter(|n| n[..20].parse::<i64>().is_ok_and(|b| b >= group_end)),
        )
        .collect();
    expected_files.sort();

    // How far the swap got: how many old segments were deleted, and whether
    // the index files already carry their final names.
    for (deleted, indexes_renamed) in [
        (0, false),
        (1, false),
        (group.len() - 1, false),
        (group.len(), false),
        (group.len(), true),
    ] {
        let crashed = root
            .path()
            .join(format!("crashed-{deleted}-{indexes_renamed}"));
        copy_dir(&before, &crashed);
        for b in &group[..deleted] {
            remove_segment(&crashed, *b);
        }
        copy_segment(&cleaned, &crashed, group_base, ".swap");
        if indexes_renamed {
            for s in [".index", ".timeindex"] {
                let name = format!("{group_base:020}{s}");
                fs::rename(crashed.join(format!("{name}.swap")), crashed.join(name)).unwrap();
            }
        }

        let case = format!("{deleted} old segments deleted, indexes renamed: {indexes_renamed}");
        let log = open(&crashed, compact_cfg(), clock(), unclean_opts());
        assert_eq!(read_all_from(&log, 0), expected, "{case}");
        let segment_files: Vec<String> = file_names(&crashed)
            .into_iter()
            .filter(|n| n.starts_with("000"))
            .collect();
        assert_eq!(segment_files, expected_files, "{case}");
        assert_eq!(
            log.log_end_offset(),
            original.last().unwrap().0 + 1,
            "{case}"
        );
    }
}

#[test]
fn a_fully_swapped_cleaning_pass_reads_as_the_cleaned_log_after_reopen() {
    let root = tempfile::tempdir().unwrap();
    let (before, cleaned) = (root.path().join("before"), root.path().join("cleaned"));
    let original = write_small_segments(&before);
    let compacted = clean_copy(&before, &cleaned);
    let keyed: Vec<(i64, String, Option<String>)> = okv(&original)
        .into_iter()
        .filter(|(_, k, _)| k.starts_with('k'))
        .collect();
    let mut want = keyed[keyed.len() - 5..].to_vec();
    want.extend(
        okv(&original)
            .into_iter()
            .filter(|(_, k, _)| !k.starts_with('k')),
    );
    assert_eq!(okv(&compacted), want);
    let log = open(&cleaned, compact_cfg(), clock(), unclean_opts());
    assert_eq!(read_all_from(&log, 0), compacted);
    assert!(file_names(&cleaned)
        .iter()
        .all(|n| !n.ends_with(".swap") && !n.ends_with(".cleaned")));
}

#[test]
fn a_truncation_during_a_cleaning_pass_discards_the_pass() {
    let root = tempfile::tempdir().unwrap();
    let (dir, dry_run) = (root.path().join("log"), root.path().join("dry-run"));
    let original = write_small_segments(&dir);
    // Where the second group of a pass starts.
    clean_copy(&dir, &dry_run);
    // Cut there: every later value of k0..k4 goes, and the first group's
    // last segment becomes the active one again, unchanged.
    let cut = segment_bases_on_disk(&dry_run)[1];
    assert!(cut < 60, "the cut lies inside the rounds of k0..k4");

    let c = clock();
    let mut log = open(&dir, compact_cfg(), c.clone(), clean_opts(i64::MAX));
    log.set_high_watermark(log.log_end_offset());
    c.set(T0 + 100_000);
    // The cleaner snapshots and compacts without the log's lock ...
    let range = log.cleanable_range(T0 + 100_000, true).unwrap();
    let cleaned = cleaner(&c).compact(&range).unwrap();
    // ... while the follower's log is truncated to where it diverged from
    // the new leader; the leader's records follow.
    log.truncate_to(cut).unwrap();
    log.install_cleaned(cleaned).unwrap();
    append(&mut log, &[("z", Some("from-leader"), T0 + 5_000)]);

    // The pass's key map saw records that no longer exist: nothing of it
    // may be installed, or k0..k4 would vanish altogether.
    let mut expected: Vec<Rec> = original.iter().filter(|r| r.0 < cut).cloned().collect();
    expected.push((
        cut,
        T0 + 5_000,
        Some(b"z".to_vec()),
        Some(b"from-leader".to_vec()),
    ));
    assert_eq!(read_all_from(&log, 0), expected);
    assert!(file_names(&dir)
        .iter()
        .all(|n| !n.ends_with(".cleaned") && !n.ends_with(".swap")));
    assert!(log.cleaned_up_to() <= cut, "{}", log.cleaned_up_to());

    // A pass after the truncation cleans what is there now.
    log.roll().unwrap();
    let end = log.log_end_offset();
    log.set_high_watermark(end);
    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    assert_eq!(
        read_all_from(&log, 0),
        expected_after_compaction(&expected, end, false)
    );
    assert_eq!(log.cleaned_up_to(), end);

    // Truncating below the cleaned offset lowers it (Kafka's
    // maybeTruncateCheckpoint): the records written there are dirty.
    log.truncate_to(cut - 3).unwrap();
    assert_eq!(log.cleaned_up_to(), cut - 3);
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!(log.cleaned_up_to(), cut - 3);
}
