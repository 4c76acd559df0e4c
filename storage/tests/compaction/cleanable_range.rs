//! Which part of a log a cleaning pass may touch, and when it runs at all:
//! never the active segment or records above the high watermark, only logs
//! whose policy includes `compact`, not segments younger than
//! `min.compaction.lag.ms`, and (unforced) only past
//! `min.cleanable.dirty.ratio`.

use rivulet_storage::{CleanupPolicy, LogConfig, LogOpenOptions, PartitionLog};

use crate::common::*;
use crate::helpers::*;

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

/// KIP-354: a dirty record older than `max.compaction.lag.ms` is compacted
/// whatever the dirty ratio, and the active segment of a compacted log
/// rolls by that age so that its records become cleanable.
#[test]
fn max_compaction_lag_cleans_old_dirty_records_below_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let cfg = LogConfig {
        min_cleanable_dirty_ratio: 1.0,
        max_compaction_lag_ms: 60_000,
        ..compact_cfg()
    };
    let mut log = open(dir.path(), cfg, c.clone(), LogOpenOptions::default());
    for i in 0..20 {
        append(&mut log, &[("k", Some("v"), T0 + i)]);
    }
    log.roll().unwrap();
    log.set_high_watermark(log.log_end_offset());
    let cleaner = cleaner(&c);
    // A full clean, then one new dirty record: far below a ratio of 1.
    c.set(T0 + 100);
    cleaner.clean(&mut log, true).unwrap().unwrap();
    append(&mut log, &[("k", Some("late"), T0 + 1_000)]);
    log.roll().unwrap();
    log.set_high_watermark(log.log_end_offset());
    c.set(T0 + 1_000 + 60_000);
    assert_eq!(
        cleaner.clean(&mut log, false).unwrap(),
        None,
        "not overdue yet"
    );
    c.set(T0 + 1_000 + 60_001);
    assert!(
        cleaner.clean(&mut log, false).unwrap().is_some(),
        "overdue: cleaned below the ratio"
    );
    let left = read_all_from(&log, 0);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].3.as_deref(), Some(&b"late"[..]));

    // The active segment rolls once its first record is older than the lag
    // (segment.ms alone would keep it for a week).
    let before = segment_bases(&log).len();
    append(&mut log, &[("j", Some("1"), T0 + 200_000)]);
    append(&mut log, &[("j", Some("2"), T0 + 200_000 + 60_001)]);
    assert_eq!(segment_bases(&log).len(), before + 1);
}

#[test]
fn min_compaction_lag_may_not_exceed_max_compaction_lag() {
    let cfg = LogConfig::default();
    let overrides = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert!(cfg
        .with_overrides(&overrides(&[
            ("min.compaction.lag.ms", "5000"),
            ("max.compaction.lag.ms", "4000")
        ]))
        .is_err());
    let ok = cfg
        .with_overrides(&overrides(&[
            ("min.compaction.lag.ms", "4000"),
            ("max.compaction.lag.ms", "4000"),
        ]))
        .unwrap();
    assert_eq!(ok.max_compaction_lag_ms, 4000);
}
