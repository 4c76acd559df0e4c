//! PartitionLog behaviour: append/read round trips, offsets, reads capped by
//! size and high watermark, timestamp lookups, rolling, truncation and
//! DeleteRecords — all checked on data read back from disk.

mod common;

use common::*;
use proptest::prelude::*;
use rivulet_protocol::record_batch::{self, BatchIter, Compression, TimestampType};
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_storage::{LogConfig, LogOpenOptions, StorageError, TimestampPolicy};

#[test]
fn appends_assign_offsets_and_read_back_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig::default(),
        clock(),
        LogOpenOptions::default(),
    );
    let mut b1 = batch("a", 3, T0);
    let mut b2 = batch("b", 2, T0 + 10);
    let i1 = log.append_as_leader(&mut b1, 5).unwrap();
    let i2 = log.append_as_leader(&mut b2, 5).unwrap();
    assert_eq!((i1.first_offset, i1.last_offset), (0, 2));
    assert_eq!((i2.first_offset, i2.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 5);

    let all = read_all_from(&log, 0);
    let offsets: Vec<i64> = all.iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    assert_eq!(all[3].3.as_deref(), Some(&b"b-0"[..]));

    // A fetch from inside a batch returns that whole batch (clients skip).
    let bytes = log.read(1, 1 << 20, None, true).unwrap();
    let first = BatchIter::new(&bytes).next().unwrap().unwrap().1;
    assert_eq!(first.base_offset, 0);
    assert_eq!(first.partition_leader_epoch, 5);
    assert_eq!(log.leader_epoch_cache().latest_epoch(), Some(5));
}

#[test]
fn stored_bytes_are_the_clients_bytes_except_offset_and_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig::default(),
        clock(),
        LogOpenOptions::default(),
    );
    log.append_as_leader(&mut batch("x", 1, T0), 0).unwrap();
    let original = batch_with(Compression::Gzip, "zipped", 20, T0);
    let mut sent = original.clone();
    log.append_as_leader(&mut sent, 0).unwrap();
    let bytes = log.read(1, 1 << 20, None, true).unwrap();
    assert_eq!(bytes.len(), original.len());
    assert_eq!(
        &bytes[16..],
        &original[16..],
        "everything after offset and epoch is untouched"
    );
    assert_eq!(i64::from_be_bytes(bytes[..8].try_into().unwrap()), 1);
}

#[test]
fn read_respects_max_bytes_but_returns_one_oversized_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig::default(),
        clock(),
        LogOpenOptions::default(),
    );
    let mut sizes = Vec::new();
    for i in 0..5 {
        let mut b = batch(&format!("v{i}"), 10, T0);
        sizes.push(b.len());
        log.append_as_leader(&mut b, 0).unwrap();
    }
    let two = sizes[0] + sizes[1];
    let bytes = log.read(0, two + 10, None, true).unwrap();
    assert_eq!(bytes.len(), two, "only whole batches that fit");
    let bytes = log.read(0, 10, None, true).unwrap();
    assert_eq!(bytes.len(), sizes[0], "at least one whole batch");
    assert!(log.read(0, 10, None, false).unwrap().is_empty());
}

#[test]
fn read_stops_at_high_watermark_and_rejects_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig::default(),
        clock(),
        LogOpenOptions::default(),
    );
    for _ in 0..3 {
        log.append_as_leader(&mut batch("v", 2, T0), 0).unwrap();
    }
    log.set_high_watermark(4);
    let got = decode_all(
        &log.read(0, 1 << 20, Some(log.high_watermark()), true)
            .unwrap(),
    );
    assert_eq!(got.last().unwrap().0, 3);
    assert!(log.read(4, 1 << 20, Some(4), true).unwrap().is_empty());
    assert!(
        log.read(6, 1 << 20, None, true).unwrap().is_empty(),
        "log end reads nothing"
    );
    assert!(matches!(
        log.read(7, 100, None, true),
        Err(StorageError::OffsetOutOfRange {
            offset: 7,
            log_start: 0,
            log_end: 6
        })
    ));
}

#[test]
fn rejects_corrupt_oversize_and_sparse_producer_batches_without_appending() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        max_message_bytes: 200,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg, clock(), LogOpenOptions::default());
    let mut big = batch("big", 20, T0);
    assert!(matches!(
        log.append_as_leader(&mut big, 0),
        Err(StorageError::RecordTooLarge { limit: 200, .. })
    ));
    let mut bad = batch("c", 1, T0);
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    assert!(matches!(
        log.append_as_leader(&mut bad, 0),
        Err(StorageError::InvalidBatch(_))
    ));
    // A good batch followed by a corrupt one: nothing is appended.
    let mut two = batch("d", 1, T0);
    two.extend_from_slice(&bad);
    assert!(log.append_as_leader(&mut two, 0).is_err());
    assert!(log.append_as_leader(&mut [0u8; 10], 0).is_err());
    assert!(log.append_as_leader(&mut [], 0).is_err());
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_in_bytes(), 0);
}

#[test]
fn log_append_time_topics_stamp_the_broker_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        timestamp_type: TimestampPolicy::LogAppendTime,
        ..LogConfig::default()
    };
    let c = clock();
    c.set(T0 + 5_000);
    let mut log = open(dir.path(), cfg, c, LogOpenOptions::default());
    let info = log.append_as_leader(&mut batch("x", 3, 42), 0).unwrap();
    assert_eq!(info.log_append_time, T0 + 5_000);
    let bytes = log.read(0, 1 << 20, None, true).unwrap();
    let h = record_batch::validate_batch(&bytes).unwrap();
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert!(decode_all(&bytes).iter().all(|r| r.1 == T0 + 5_000));
}

#[test]
fn offset_for_timestamp_finds_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        small_segments(),
        clock(),
        LogOpenOptions::default(),
    );
    // 40 batches of 5 records, timestamps 100 apart per batch, 1 apart within.
    for i in 0..40 {
        log.append_as_leader(&mut batch("v", 5, T0 + i * 100), 0)
            .unwrap();
    }
    assert!(log.num_segments() > 3);
    let all = read_all_from(&log, 0);
    for target in [T0 - 5, T0, T0 + 2, T0 + 3, T0 + 250, T0 + 1_904, T0 + 3_904] {
        let expected = all.iter().find(|r| r.1 >= target).map(|r| (r.0, r.1));
        let got = log
            .offset_for_timestamp(target)
            .unwrap()
            .map(|t| (t.offset, t.timestamp));
        assert_eq!(got, expected, "target {target}");
    }
    assert_eq!(log.offset_for_timestamp(T0 + 3_905).unwrap(), None);
    let max = log.max_timestamp_offset().unwrap().unwrap();
    assert_eq!((max.offset, max.timestamp), (199, T0 + 3_904));
}

/// Sarama 1.22 leaves a batch's max timestamp at -1, compressed batches
/// too: the broker opens such a batch (certainly wrong: below its base
/// timestamp) and writes the largest record timestamp there (Kafka's
/// `LogValidator`), so lookups by time find it.
#[test]
fn unset_max_timestamp_is_repaired_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_fresh(dir.path());
    let mut sent = batch_with(Compression::Snappy, "v", 5, T0);
    record_batch::set_max_timestamp(&mut sent, -1).unwrap();
    log.append_as_leader(&mut sent, 0).unwrap();
    let got = log.offset_for_timestamp(T0 + 2).unwrap().unwrap();
    assert_eq!((got.offset, got.timestamp), (2, T0 + 2));
    let bytes = log.read(0, 1 << 20, None, true).unwrap();
    let stored = BatchIter::new(&bytes).next().unwrap().unwrap().1;
    assert_eq!(stored.max_timestamp, T0 + 4, "header repaired, CRC valid");
}

/// kafkajs 2.2.4 fills a batch's max timestamp from the records given an
/// explicit `timestamp` only: one such record among others stamped "now"
/// leaves the header far below them. Kafka's LogValidator rewrites the max
/// from the records; without that the time index hid them from
/// ListOffsets by timestamp.
#[test]
fn a_produced_batch_is_indexed_under_its_records_max_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_fresh(dir.path());
    let mut b = RecordBatchBuilder::new(Compression::None);
    for ts in [T0 + 10, T0 + 20, 1_000, T0 + 15] {
        b.push(ts, None, Some(b"v"), &[]);
    }
    let mut bytes = b.build().unwrap();
    record_batch::set_max_timestamp(&mut bytes, 1_000).unwrap();
    log.append_as_leader(&mut bytes, 0).unwrap();
    let header = record_batch::BatchHeader::parse(&bytes).unwrap();
    assert_eq!(header.max_timestamp, T0 + 20, "header rewritten in place");
    assert!(record_batch::validate_batch(&bytes).is_ok(), "CRC updated");
    let found = |ts| log.offset_for_timestamp(ts).unwrap().map(|t| t.offset);
    assert_eq!(found(1_001), Some(0));
    assert_eq!(found(T0 + 11), Some(1));
    assert_eq!(found(T0 + 21), None);
    let max = log.max_timestamp_offset().unwrap().unwrap();
    assert_eq!((max.offset, max.timestamp), (1, T0 + 20));
}

#[test]
fn rolls_segments_by_size_and_age() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let cfg = LogConfig {
        segment_ms: 60_000,
        ..small_segments()
    };
    let mut log = open(dir.path(), cfg, c.clone(), LogOpenOptions::default());
    for _ in 0..20 {
        log.append_as_leader(&mut batch("v", 10, T0), 0).unwrap();
    }
    let n = log.num_segments();
    assert!(n >= 3, "1 KiB segments must have rolled, got {n}");
    for s in log.segments() {
        assert!(s.size() <= 1024);
    }
    // Closed segments have trimmed index files.
    let first = log.segments().next().unwrap();
    let idx_len = std::fs::metadata(first.offset_index().path())
        .unwrap()
        .len();
    assert_eq!(idx_len as usize, first.offset_index().entries() * 8);

    let before = log.num_segments();
    c.advance(61_000);
    log.append_as_leader(&mut batch("late", 1, T0 + 61_000), 0)
        .unwrap();
    assert_eq!(
        log.num_segments(),
        before + 1,
        "segment.ms rolls the old active segment"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert!(
        names.iter().all(|n| n.len() == 24),
        "20-digit base offsets: {names:?}"
    );
}

#[test]
fn truncate_to_the_log_end_drops_an_epoch_without_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig::default(),
        clock(),
        LogOpenOptions::default(),
    );
    log.append_as_leader(&mut batch("v", 10, T0), 1).unwrap();
    // Leader of epoch 3 for a moment, without appending anything.
    log.assign_epoch_start_offset(3, 10).unwrap();
    // As a follower of a leader that never had epoch 3: told to truncate to
    // the end of epoch 1, which is our log end.
    log.truncate_to(10).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(
        log.leader_epoch_cache().latest_epoch(),
        Some(1),
        "the next fetch must not ask with epoch 3 again"
    );
    assert_eq!(log.end_offset_for_epoch(1), (1, 10));
}

#[test]
fn truncate_to_removes_suffix_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        small_segments(),
        clock(),
        LogOpenOptions::default(),
    );
    for i in 0..30 {
        log.append_as_leader(&mut batch("v", 4, T0 + i), (i / 10) as i32)
            .unwrap();
    }
    assert_eq!(log.log_end_offset(), 120);
    log.set_high_watermark(120);
    log.truncate_to(48).unwrap();
    assert_eq!(log.log_end_offset(), 48);
    assert_eq!(log.high_watermark(), 48);
    assert_eq!(
        log.leader_epoch_cache().latest_epoch(),
        Some(1),
        "epoch 2 started at 80"
    );
    let all = read_all_from(&log, 0);
    assert_eq!(all.len(), 48);
    assert_eq!(all.last().unwrap().0, 47);
    log.append_as_leader(&mut batch("new", 2, T0), 7).unwrap();
    let all = read_all_from(&log, 0);
    assert_eq!(all.len(), 50);
    assert_eq!(all[48].3.as_deref(), Some(&b"new-0"[..]));
    assert_eq!(log.end_offset_for_epoch(1), (1, 48));

    // Reopen cleanly after truncation: same content.
    log.close().unwrap();
    drop(log);
    let opts = LogOpenOptions {
        clean_shutdown: true,
        recovery_point: 50,
        ..LogOpenOptions::default()
    };
    let log = open(dir.path(), small_segments(), clock(), opts);
    assert_eq!(read_all_from(&log, 0).len(), 50);
}

#[test]
fn follower_appends_keep_offsets_and_reject_going_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = open(
        dir.path(),
        LogConfig::default(),
        clock(),
        LogOpenOptions::default(),
    );
    for _ in 0..3 {
        leader.append_as_leader(&mut batch("v", 3, T0), 2).unwrap();
    }
    let fdir = tempfile::tempdir().unwrap();
    let mut follower = open(
        fdir.path(),
        LogConfig::default(),
        clock(),
        LogOpenOptions::default(),
    );
    let bytes = leader.read(0, 1 << 20, None, true).unwrap();
    follower.append_as_follower(&bytes).unwrap();
    assert_eq!(follower.log_end_offset(), 9);
    assert_eq!(read_all_from(&follower, 0), read_all_from(&leader, 0));
    assert_eq!(follower.leader_epoch_cache().latest_epoch(), Some(2));
    assert!(matches!(
        follower.append_as_follower(&bytes),
        Err(StorageError::NonMonotonicOffset {
            base_offset: 0,
            log_end: 9
        })
    ));
}

#[test]
fn delete_records_moves_log_start_and_drops_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        small_segments(),
        clock(),
        LogOpenOptions::default(),
    );
    for _ in 0..30 {
        log.append_as_leader(&mut batch("v", 4, T0), 0).unwrap();
    }
    let segs = log.num_segments();
    assert!(
        log.delete_records_before(100).is_err(),
        "beyond the high watermark"
    );
    log.set_high_watermark(120);
    assert_eq!(log.delete_records_before(70).unwrap(), 70);
    assert_eq!(log.log_start_offset(), 70);
    assert!(log.num_segments() < segs);
    assert!(log.segments().next().unwrap().base_offset() <= 70);
    assert!(matches!(
        log.read(69, 100, None, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    let all = read_all_from(&log, 70);
    assert_eq!(all.first().unwrap().0, 70);
    assert_eq!(all.len(), 50);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any sequence of appended batches (any codec, any size) reads back
    /// exactly, from every offset, through segment rolls.
    #[test]
    fn append_read_round_trip(
        batches in proptest::collection::vec((1usize..20, 0usize..5, 0i64..1000), 1..40),
        seg in 1024u64..16384,
        interval in 0u64..2048,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig { segment_bytes: seg, index_interval_bytes: interval, ..LogConfig::default() };
        let mut log = open(dir.path(), cfg, clock(), LogOpenOptions::default());
        let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
        let mut expected = Vec::new();
        for (i, (n, codec, dt)) in batches.iter().enumerate() {
            let mut b = batch_with(codecs[*codec], &format!("b{i}"), *n, T0 + dt);
            let info = log.append_as_leader(&mut b, 0).unwrap();
            for j in 0..*n {
                expected.push((info.first_offset + j as i64, format!("b{i}-{j}").into_bytes()));
            }
        }
        let all = read_all_from(&log, 0);
        let got: Vec<(i64, Vec<u8>)> = all.iter().map(|r| (r.0, r.3.clone().unwrap())).collect();
        prop_assert_eq!(&got, &expected);
        // Reading at any offset starts with the batch that holds it.
        for (off, _) in expected.iter().step_by(3) {
            let bytes = log.read(*off, 1, None, true).unwrap();
            let h = BatchIter::new(&bytes).next().unwrap().unwrap().1;
            prop_assert!(h.base_offset <= *off && *off <= h.last_offset());
        }
    }
}

#[test]
fn old_record_timestamps_do_not_roll_a_segment_per_append() {
    // A producer replaying month-old data: segment.ms counts in record time,
    // so these appends share one segment (Kafka's rolling-based timestamp).
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    c.set(T0 + 30 * 24 * 3_600_000);
    let mut log = open(
        dir.path(),
        LogConfig::default(),
        c.clone(),
        LogOpenOptions::default(),
    );
    for i in 0..20 {
        log.append_as_leader(&mut batch("old", 2, T0 + i), 0)
            .unwrap();
    }
    assert_eq!(log.num_segments(), 1);
    // Record time moving past segment.ms does roll.
    let week = LogConfig::default().segment_ms;
    log.append_as_leader(&mut batch("new", 2, T0 + week + 1), 0)
        .unwrap();
    assert_eq!(log.num_segments(), 2);
    // And the same holds after a clean reopen (the first batch's timestamp is reloaded).
    log.close().unwrap();
    drop(log);
    let opts = LogOpenOptions {
        clean_shutdown: true,
        recovery_point: 42,
        ..LogOpenOptions::default()
    };
    let mut log = open(dir.path(), LogConfig::default(), c, opts);
    log.append_as_leader(&mut batch("more", 2, T0 + week + 5), 0)
        .unwrap();
    assert_eq!(log.num_segments(), 2);
}

/// Kafka's LogValidator reads every record of a produced batch: records
/// that do not parse (the CRC is the client's, so it matches) are refused
/// before anything is appended, compressed batches included.
#[test]
fn produced_records_that_do_not_parse_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_fresh(dir.path());
    for codec in [Compression::None, Compression::Lz4] {
        // A record count above the records present.
        let mut short = batch_with(codec, "v", 3, T0);
        short[57..61].copy_from_slice(&4i32.to_be_bytes());
        short[23..27].copy_from_slice(&3i32.to_be_bytes());
        record_batch::update_crc(&mut short);
        let err = log.append_as_leader(&mut short, 0).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::Records(rivulet_protocol::RecordError::Malformed(_))
            ),
            "{codec:?}: {err}"
        );
    }
    // A record whose length runs past the batch: the last byte of the
    // first record's length field made huge.
    let mut long = batch("v", 2, T0);
    long[record_batch::HEADER_SIZE] = 0x7e;
    record_batch::update_crc(&mut long);
    assert!(log.append_as_leader(&mut long, 0).is_err());
    // A good batch before a bad one in the same request: nothing appended.
    let mut two = batch("ok", 1, T0);
    two.extend_from_slice(&long);
    assert!(log.append_as_leader(&mut two, 0).is_err());
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_in_bytes(), 0);
    // The good batch alone goes in.
    log.append_as_leader(&mut batch("ok", 1, T0), 0).unwrap();
    assert_eq!(log.log_end_offset(), 1);
}

/// A compacted topic refuses records without a key, naming each; a
/// CreateTime topic refuses timestamps outside
/// `message.timestamp.before.max.ms` / `after.max.ms` of its clock.
#[test]
fn keyless_records_on_compacted_topics_and_far_timestamps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        cleanup_policy: rivulet_storage::CleanupPolicy::COMPACT,
        timestamp_before_max_ms: 60_000,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg, clock(), LogOpenOptions::default());
    for codec in [Compression::None, Compression::Gzip] {
        let mut b = RecordBatchBuilder::new(codec);
        b.push(T0, Some(b"k"), Some(b"v"), &[]);
        b.push(T0, None, Some(b"v"), &[]);
        b.push(T0, Some(b"k"), None, &[]);
        b.push(T0, None, None, &[]);
        let err = log
            .append_as_leader(&mut b.build().unwrap(), 0)
            .unwrap_err();
        let StorageError::RecordsRejected(r) = err else {
            panic!("{codec:?}: {err}")
        };
        assert_eq!(r.reason, rivulet_storage::RejectReason::InvalidRecord);
        assert_eq!(r.total, 2);
        let indexes: Vec<i32> = r.errors.iter().map(|e| e.0).collect();
        assert_eq!(indexes, [1, 3], "{codec:?}");
        assert!(r.errors[0].1.contains("without a key"), "{}", r.errors[0].1);
    }
    // Timestamps: an hour and a second ahead, a minute and a second behind.
    let mut b = RecordBatchBuilder::new(Compression::None);
    b.push(T0, Some(b"k"), Some(b"v"), &[]);
    b.push(T0 + 3_601_000, Some(b"k"), Some(b"v"), &[]);
    b.push(T0 - 61_000, Some(b"k"), Some(b"v"), &[]);
    let err = log
        .append_as_leader(&mut b.build().unwrap(), 0)
        .unwrap_err();
    let StorageError::RecordsRejected(r) = err else {
        panic!("{err}")
    };
    assert_eq!(r.reason, rivulet_storage::RejectReason::InvalidTimestamp);
    let indexes: Vec<i32> = r.errors.iter().map(|e| e.0).collect();
    assert_eq!(indexes, [1, 2]);
    // At the edges of the window, and without a timestamp (-1): accepted.
    let mut b = RecordBatchBuilder::new(Compression::None);
    b.push(T0 + 3_600_000, Some(b"k"), Some(b"v"), &[]);
    b.push(T0 - 60_000, Some(b"k"), Some(b"v"), &[]);
    log.append_as_leader(&mut b.build().unwrap(), 0).unwrap();
    let mut none = RecordBatchBuilder::new(Compression::None);
    none.push(-1, Some(b"k"), Some(b"v"), &[]);
    log.append_as_leader(&mut none.build().unwrap(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    // A producer may not mark its batch LogAppendTime.
    let mut lat = batch("v", 2, T0);
    let attrs = u16::from_be_bytes([lat[21], lat[22]]) | 0x08;
    lat[21..23].copy_from_slice(&attrs.to_be_bytes());
    record_batch::update_crc(&mut lat);
    let err = log.append_as_leader(&mut lat, 0).unwrap_err();
    assert!(
        matches!(&err, StorageError::RecordsRejected(r)
            if r.reason == rivulet_storage::RejectReason::InvalidTimestamp && r.total == 2),
        "{err}"
    );
    assert_eq!(log.log_end_offset(), 3);
}

/// A batch refusing many records names the first hundred and counts all.
#[test]
fn record_errors_are_capped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        cleanup_policy: rivulet_storage::CleanupPolicy::COMPACT,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg, clock(), LogOpenOptions::default());
    let mut b = RecordBatchBuilder::new(Compression::None);
    for _ in 0..1_000 {
        b.push(T0, None, Some(b"v"), &[]);
    }
    let err = log
        .append_as_leader(&mut b.build().unwrap(), 0)
        .unwrap_err();
    let StorageError::RecordsRejected(r) = err else {
        panic!("{err}")
    };
    assert_eq!((r.total, r.errors.len()), (1_000, 100));
    assert!(r.to_string().starts_with("1000 record(s)"), "{r}");
}

/// `compression.type` other than `producer`: batches sent in another codec
/// are stored rebuilt in the topic's, with the same records, producer
/// fields and offsets; batches already in it are stored as sent.
#[test]
fn a_topic_compression_type_recompresses_other_codecs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        compression_type: rivulet_storage::TopicCompression::Codec(Compression::Zstd),
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg, clock(), LogOpenOptions::default());
    let mut sent = Vec::new();
    for (i, codec) in [Compression::None, Compression::Gzip, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let mut b = RecordBatchBuilder::new(codec).producer(77, 3, 4 * i as i32);
        for j in 0..4 {
            let value = format!("value-{i}-{j}-{}", "x".repeat(200));
            b.push(
                T0 + j,
                Some(b"k"),
                Some(value.as_bytes()),
                &[("h", Some(b"v"))],
            );
        }
        let mut bytes = b.build().unwrap();
        sent.push(bytes.clone());
        let info = log.append_as_leader(&mut bytes, 0).unwrap();
        assert_eq!(info.first_offset, 4 * i as i64);
    }
    let bytes = log.read(0, 1 << 20, None, true).unwrap();
    let stored: Vec<_> = BatchIter::new(&bytes).map(|b| b.unwrap()).collect();
    assert_eq!(stored.len(), 3);
    for ((range, header), original) in stored.iter().zip(&sent) {
        assert_eq!(header.compression().unwrap(), Compression::Zstd);
        let before = rivulet_protocol::records::decode_batch(original, 1 << 20).unwrap();
        let after =
            rivulet_protocol::records::decode_batch(&bytes[range.clone()], 1 << 20).unwrap();
        assert_eq!(after.records, before.records);
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (77, 3, before.header.base_sequence)
        );
        assert_eq!(header.max_timestamp, T0 + 3);
    }
    // The zstd batch was stored byte for byte (but for offset and epoch).
    assert_eq!(bytes[stored[2].0.clone()][16..], sent[2][16..]);
    // An uncompressed topic stores a compressed batch uncompressed.
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        compression_type: rivulet_storage::TopicCompression::Codec(Compression::None),
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg, clock(), LogOpenOptions::default());
    log.append_as_leader(&mut batch_with(Compression::Lz4, "v", 3, T0), 0)
        .unwrap();
    let bytes = log.read(0, 1 << 20, None, true).unwrap();
    let (_, header) = BatchIter::new(&bytes).next().unwrap().unwrap();
    assert_eq!(header.compression().unwrap(), Compression::None);
    assert_eq!(decode_all(&bytes).len(), 3);
}

/// `compression.<codec>.level` (KIP-390) sets how hard a rebuilt batch is
/// compressed: the same records stored smaller at a higher level, and
/// read back the same.
#[test]
fn a_rebuilt_batch_is_compressed_at_the_topics_level() {
    let stored = |codec: Compression, set: (&str, &str)| {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            compression_type: rivulet_storage::TopicCompression::Codec(codec),
            ..LogConfig::default()
        };
        let cfg = cfg
            .with_overrides(&[(set.0.to_string(), set.1.to_string())].into())
            .unwrap();
        let mut log = open(dir.path(), cfg, clock(), LogOpenOptions::default());
        let mut b = RecordBatchBuilder::new(Compression::None);
        for i in 0..400u32 {
            let value = format!(
                "{{\"id\":{i},\"user\":\"u{}\",\"n\":{}}}",
                i % 37,
                i * 7 % 211
            );
            b.push(T0, Some(b"k"), Some(value.as_bytes()), &[]);
        }
        let mut bytes = b.build().unwrap();
        let sent = rivulet_protocol::records::decode_batch(&bytes, 1 << 20).unwrap();
        log.append_as_leader(&mut bytes, 0).unwrap();
        let read = log.read(0, 1 << 20, None, true).unwrap();
        let (range, header) = BatchIter::new(&read).next().unwrap().unwrap();
        assert_eq!(header.compression().unwrap(), codec);
        let back = rivulet_protocol::records::decode_batch(&read[range.clone()], 1 << 20).unwrap();
        assert_eq!(back.records, sent.records);
        range.len()
    };
    for (codec, key, low, high) in [
        (Compression::Gzip, "compression.gzip.level", "1", "9"),
        (Compression::Lz4, "compression.lz4.level", "1", "12"),
        (Compression::Zstd, "compression.zstd.level", "-5", "19"),
    ] {
        let (l, h) = (stored(codec, (key, low)), stored(codec, (key, high)));
        assert!(h < l, "{key}: {high} stored {h} bytes, {low} {l}");
    }
    // Kafka's ranges.
    for (key, bad) in [
        ("compression.gzip.level", "0"),
        ("compression.gzip.level", "10"),
        ("compression.lz4.level", "18"),
        ("compression.zstd.level", "23"),
    ] {
        let e = LogConfig::default()
            .with_overrides(&[(key.to_string(), bad.to_string())].into())
            .unwrap_err();
        assert!(e.to_string().contains(key), "{e}");
    }
}

/// A batch the topic rebuilds in its own codec is decoded once, and the
/// record checks run over what was decoded: the same refusals.
#[test]
fn a_batch_rebuilt_for_compression_type_gets_the_same_record_checks() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        cleanup_policy: rivulet_storage::CleanupPolicy::COMPACT,
        compression_type: rivulet_storage::TopicCompression::Codec(Compression::Zstd),
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg, clock(), LogOpenOptions::default());
    let mut b = RecordBatchBuilder::new(Compression::Gzip);
    b.push(T0, Some(b"k"), Some(b"v"), &[]);
    b.push(T0, None, Some(b"v"), &[]);
    b.push(T0 + 7_200_000, Some(b"k"), Some(b"v"), &[]);
    let err = log
        .append_as_leader(&mut b.build().unwrap(), 0)
        .unwrap_err();
    let StorageError::RecordsRejected(r) = err else {
        panic!("{err}")
    };
    assert_eq!(r.reason, rivulet_storage::RejectReason::InvalidTimestamp);
    let indexes: Vec<i32> = r.errors.iter().map(|e| e.0).collect();
    assert_eq!(indexes, [1, 2]);
    // A good one is rebuilt, with its header max from the records.
    let mut good = batch_with(Compression::Lz4, "v", 3, T0);
    record_batch::set_max_timestamp(&mut good, -1).unwrap();
    log.append_as_leader(&mut good, 0).unwrap();
    let bytes = log.read(0, 1 << 20, None, true).unwrap();
    let (_, header) = BatchIter::new(&bytes).next().unwrap().unwrap();
    assert_eq!(header.compression().unwrap(), Compression::Zstd);
    assert_eq!(header.max_timestamp, T0 + 2);
}
