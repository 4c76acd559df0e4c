//! Which records a cleaning pass keeps: the latest record of each key at its
//! original offset, tombstones until `delete.retention.ms` has passed, and a
//! cleaned log that reads the same from every offset and after reopening.

use proptest::prelude::*;
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_storage::{LogConfig, LogOpenOptions, PartitionLog};

use crate::common::*;
use crate::helpers::*;

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
