use super::*;
use crate::record_batch::{encode_batch, set_base_offset, set_log_append_time, update_crc};
use crate::record_batch::{validate_produced_batch, Compression as C};
use proptest::prelude::*;

const ALL: [Compression; 5] = [C::None, C::Gzip, C::Snappy, C::Lz4, C::Zstd];
const LIMIT: usize = 1 << 20;

fn malformed<T>(result: Result<T, RecordError>) -> bool {
    matches!(result, Err(Malformed(_)))
}

fn record(offset_delta: i32, key: Option<&'static [u8]>, value: Option<&'static [u8]>) -> Record {
    let (key, value) = (key.map(Bytes::from_static), value.map(Bytes::from_static));
    Record {
        offset_delta,
        timestamp_delta: 0,
        key,
        value,
        headers: Vec::new(),
    }
}

fn template(compression: Compression, last_offset_delta: i32) -> BatchHeader {
    let mut b = RecordBatchBuilder::new(compression);
    b.push(1_000, None, None, &[]);
    let header = BatchHeader::parse(&b.build().unwrap()).unwrap();
    BatchHeader {
        last_offset_delta,
        partition_leader_epoch: 5,
        ..header
    }
}

fn three_records() -> Vec<Record> {
    let (a, b) = (
        record(0, Some(b"k0"), Some(b"v0")),
        record(1, None, Some(b"v1")),
    );
    vec![a, b, record(2, Some(b"k2"), None)]
}

fn cursor(bytes: &[u8]) -> Cursor {
    Cursor {
        buf: Bytes::copy_from_slice(bytes),
    }
}

#[test]
fn varint_edge_values_round_trip() {
    let mut out = Vec::new();
    let ints = [0, 1, -1, 63, -64, 64, -65, i32::MIN, i32::MAX];
    let longs = [0, 1, -1, i64::from(i32::MIN) - 1, i64::MIN, i64::MAX];
    ints.iter().for_each(|&v| write_varint(&mut out, v));
    longs.iter().for_each(|&v| write_varlong(&mut out, v));
    let mut c = Cursor {
        buf: Bytes::from(out),
    };
    for v in ints {
        assert_eq!(c.read_varint().unwrap(), v);
    }
    for v in longs {
        assert_eq!(c.read_varlong().unwrap(), v);
    }
    assert!(c.buf.is_empty());
}

#[test]
fn overlong_or_overflowing_varints_are_malformed() {
    assert!(malformed(
        cursor(&[0x80, 0x80, 0x80, 0x80, 0x80, 0]).read_varint()
    ));
    assert!(malformed(
        cursor(&[0xff, 0xff, 0xff, 0xff, 0x1f]).read_varint()
    ));
    assert!(malformed(cursor(&[0x80]).read_varint()));
    assert!(malformed(cursor(&[0xff; 10]).read_varlong()));
    assert!(malformed(cursor(&[0x80; 11]).read_varlong()));
}

#[test]
fn record_wire_format_matches_kafka_layout() {
    let header = Header {
        key: Bytes::from_static(b"h"),
        value: Some(Bytes::from_static(b"v")),
    };
    let mut r = record(1, Some(b"k"), None);
    (r.timestamp_delta, r.headers) = (300, vec![header]);
    let mut out = Vec::new();
    encode_record(&r, &mut out);
    // length 12, attributes, timestamp 300, offset 1, key "k", null value, "h" = "v"
    assert_eq!(out, [24, 0, 0xd8, 0x04, 2, 2, b'k', 1, 2, 2, b'h', 2, b'v']);
    assert_eq!(decode_record(&mut cursor(&out)).unwrap(), r);
    // A length other than that of the fields, or a negative key length, is malformed.
    let longer = [&[26], &out[1..], &[0]].concat();
    assert!(malformed(decode_record(&mut cursor(&longer))));
    assert!(malformed(decode_record(&mut cursor(
        &[&[22], &out[1..12]].concat()
    ))));
    assert!(malformed(decode_record(&mut cursor(&[8, 0, 0, 0, 3]))));
}

#[test]
fn built_batch_passes_validate_produced_batch_for_every_codec() {
    for codec in ALL {
        let mut b = RecordBatchBuilder::new(codec)
            .producer(7, 1, 40)
            .transactional(true);
        b.push(
            1_000,
            Some(b"a"),
            Some(b"1"),
            &[("k", Some(b"x")), ("k", None)],
        );
        b.push(1_005, None, Some(b"2"), &[]);
        b.push(999, Some(b"c"), None, &[]);
        let bytes = b.build().unwrap();
        let h = validate_produced_batch(&bytes).unwrap();
        assert_eq!(h.compression().unwrap(), codec);
        assert_eq!(
            (
                h.record_count,
                h.last_offset_delta,
                h.partition_leader_epoch
            ),
            (3, 2, -1)
        );
        assert_eq!((h.base_timestamp, h.max_timestamp), (1_000, 1_005));
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 1, 40)
        );
        assert!(h.is_transactional() && !h.is_control());
        let batch = decode_batch(&bytes, LIMIT).unwrap();
        let times: Vec<i64> = batch
            .records
            .iter()
            .map(|r| batch.timestamp_of(r))
            .collect();
        assert_eq!(times, [1_000, 1_005, 999]);
        let header_keys: Vec<&[u8]> = batch.records[0]
            .headers
            .iter()
            .map(|h| &h.key[..])
            .collect();
        assert_eq!(header_keys, [b"k", b"k"]);
    }
}

#[test]
fn preallocation_is_bounded_by_the_bytes_and_a_cap() {
    assert_eq!(preallocate(3, 100, 7), 3);
    assert_eq!(preallocate(i32::MAX as usize, 70, 7), 10);
    assert_eq!(preallocate(usize::MAX, 64 << 20, 7), PREALLOCATE_MAX);
    assert_eq!(preallocate(5, 1, 2), 0);
    assert_eq!(preallocate(5, 10, 0), 5);
}

#[test]
fn claimed_counts_far_above_the_records_present_are_malformed() {
    // A compressed payload is not bounded by `validate_batch`: the
    // count may claim the whole offset range over a few records.
    for codec in [C::Gzip, C::Zstd] {
        let mut payload = Vec::new();
        three_records()
            .iter()
            .for_each(|r| encode_record(r, &mut payload));
        let h = BatchHeader {
            record_count: i32::MAX,
            attributes: record_batch::attributes(codec, TimestampType::CreateTime, false, false),
            ..template(codec, i32::MAX - 1)
        };
        let bytes = encode_batch(&h, &compression::compress(codec, &payload).unwrap());
        validate_batch(&bytes).unwrap();
        assert!(malformed(decode_batch(&bytes, LIMIT)), "{codec:?}");
    }
}

#[test]
fn empty_builder_is_an_error() {
    let b = RecordBatchBuilder::new(Compression::None);
    assert!(b.is_empty());
    assert_eq!(b.len(), 0);
    assert!(malformed(b.build()));
}

#[test]
fn build_batch_keeps_template_fields_and_compaction_gaps() {
    let t = BatchHeader {
        base_offset: 500,
        producer_id: 3,
        ..template(C::Lz4, 9)
    };
    let records = vec![
        record(0, Some(b"a"), None),
        record(9, Some(b"b"), Some(b"v")),
    ];
    let batch = decode_batch(&build_batch(&t, &records).unwrap(), LIMIT).unwrap();
    let h = batch.header;
    assert_eq!(
        (h.base_offset, h.last_offset_delta, h.partition_leader_epoch),
        (500, 9, 5)
    );
    assert_eq!(
        (h.producer_id, h.attributes, h.record_count),
        (3, t.attributes, 2)
    );
    let offsets: Vec<i64> = batch.records.iter().map(|r| batch.offset_of(r)).collect();
    assert_eq!(offsets, [500, 509]);
    assert_eq!(batch.records, records);
    // Empty batches (kept by the cleaner) build; out-of-range deltas do not.
    let empty = decode_batch(&build_batch(&t, &[]).unwrap(), LIMIT).unwrap();
    assert!(empty.records.is_empty());
    assert!(malformed(build_batch(&t, &[record(10, None, None)])));
}

#[test]
fn offsets_and_log_append_time_apply_to_decoded_records() {
    let mut b = RecordBatchBuilder::new(Compression::Zstd);
    b.push(10, None, Some(b"a"), &[]);
    b.push(20, None, Some(b"b"), &[]);
    let mut bytes = b.build().unwrap();
    set_base_offset(&mut bytes, 100).unwrap();
    let batch = decode_batch(&bytes, LIMIT).unwrap();
    assert_eq!(batch.offset_of(&batch.records[1]), 101);
    assert_eq!(batch.timestamp_of(&batch.records[1]), 20);
    set_log_append_time(&mut bytes, 77).unwrap();
    let batch = decode_batch(&bytes, LIMIT).unwrap();
    assert!(batch.records.iter().all(|r| batch.timestamp_of(r) == 77));
}

#[test]
fn record_count_disagreeing_with_records_is_malformed() {
    let mut payload = Vec::new();
    three_records()
        .iter()
        .for_each(|r| encode_record(r, &mut payload));
    let trailing = [&payload[..], &[0; 8]].concat();
    for (count, last_offset_delta, payload) in
        [(2, 2, &payload), (4, 5, &payload), (3, 2, &trailing)]
    {
        let h = BatchHeader {
            record_count: count,
            ..template(C::None, last_offset_delta)
        };
        let bytes = encode_batch(&h, payload);
        validate_batch(&bytes).unwrap();
        assert!(malformed(decode_batch(&bytes, LIMIT)), "count {count}");
    }
}

#[test]
fn records_over_the_limit_are_too_large() {
    let mut b = RecordBatchBuilder::new(Compression::Gzip);
    b.push(0, None, Some(&[0u8; 100_000]), &[]);
    let result = decode_batch(&b.build().unwrap(), 10_000);
    assert!(matches!(
        result,
        Err(RecordError::TooLarge { limit: 10_000 })
    ));
}

fn bytes_strategy(max: usize) -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from))
}

fn records_strategy() -> impl Strategy<Value = Vec<Record>> {
    // A two-letter header-key alphabet makes repeated keys common.
    let header = ("[ab]{0,2}", bytes_strategy(16)).prop_map(|(k, value)| Header {
        key: Bytes::from(k),
        value,
    });
    let headers = proptest::collection::vec(header, 0..4);
    let record = (
        any::<i64>(),
        bytes_strategy(64),
        bytes_strategy(256),
        headers,
    );
    proptest::collection::vec(record, 1..12).prop_map(|rs| {
        let each = rs.into_iter().zip(0..);
        each.map(
            |((timestamp_delta, key, value, headers), offset_delta)| Record {
                offset_delta,
                timestamp_delta,
                key,
                value,
                headers,
            },
        )
        .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_records_round_trip_through_every_codec(
        records in records_strategy(),
        codec in proptest::sample::select(ALL.to_vec()),
    ) {
        let bytes = build_batch(&template(codec, records.len() as i32 - 1), &records).unwrap();
        let header = validate_produced_batch(&bytes).unwrap();
        let batch = decode_batch(&bytes, LIMIT).unwrap();
        prop_assert_eq!(batch.header, header);
        prop_assert_eq!(batch.records, records);
    }

    #[test]
    fn varints_round_trip(v32 in any::<i32>(), v64 in any::<i64>()) {
        let mut out = Vec::new();
        write_varint(&mut out, v32);
        write_varlong(&mut out, v64);
        let mut c = Cursor { buf: Bytes::from(out) };
        prop_assert_eq!((c.read_varint().unwrap(), c.read_varlong().unwrap()), (v32, v64));
    }

    #[test]
    fn decode_batch_on_arbitrary_bytes_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let _ = decode_batch(&bytes, 4096);
    }

    #[test]
    fn decode_batch_on_corrupted_records_with_valid_crc_never_panics(
        codec in proptest::sample::select(ALL.to_vec()),
        pos in any::<proptest::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut bytes = build_batch(&template(codec, 2), &three_records()).unwrap();
        let at = HEADER_SIZE + pos.index(bytes.len() - HEADER_SIZE);
        bytes[at] ^= flip;
        update_crc(&mut bytes);
        let _ = decode_batch(&bytes, 4096);
    }
}

#[test]
fn scan_batch_reads_every_record_in_place() {
    for codec in ALL {
        let mut b = RecordBatchBuilder::new(codec);
        for (ts, key) in [(2_000, Some(&b"k"[..])), (5_000, None), (1_000, Some(b"k"))] {
            b.push(ts, key, Some(b"v"), &[("h", Some(b"x")), ("n", None)]);
        }
        let mut bytes = b.build().unwrap();
        // A header max below the records' does not change what is read.
        crate::record_batch::set_max_timestamp(&mut bytes, 1_000).unwrap();
        let header = BatchHeader::parse(&bytes).unwrap();
        let mut seen = Vec::new();
        let summary = scan_batch(&bytes, LIMIT, |r| seen.push(r)).unwrap();
        assert_eq!(summary.max_timestamp(&header), Some(5_000), "{codec:?}");
        assert_eq!(summary.min_timestamp(&header), Some(1_000), "{codec:?}");
        assert_eq!(summary.keyless, 1);
        let keys: Vec<_> = seen.iter().map(|r| (r.index, r.has_key)).collect();
        assert_eq!(keys, [(0, true), (1, false), (2, true)]);
    }
}

#[test]
fn scan_batch_refuses_what_decode_batch_refuses() {
    let good = build_batch(&template(C::None, 2), &three_records()).unwrap();
    assert!(scan_batch(&good, LIMIT, |_| {}).is_ok());
    // Truncated records.
    let mut cut = good[..good.len() - 3].to_vec();
    let len = (cut.len() - LOG_OVERHEAD) as i32;
    cut[8..12].copy_from_slice(&len.to_be_bytes());
    update_crc(&mut cut);
    assert!(malformed(scan_batch(&cut, LIMIT, |_| {})));
    // A count that does not match the records, either way.
    for count in [2i32, 4] {
        let mut bad = good.clone();
        bad[57..61].copy_from_slice(&count.to_be_bytes());
        update_crc(&mut bad);
        assert!(malformed(scan_batch(&bad, LIMIT, |_| {})), "count {count}");
    }
    // An offset delta past the batch's last.
    let mut far = three_records();
    far[2].offset_delta = 7;
    let mut bytes = build_batch(&template(C::None, 7), &far).unwrap();
    bytes[23..27].copy_from_slice(&2i32.to_be_bytes());
    update_crc(&mut bytes);
    assert!(malformed(scan_batch(&bytes, LIMIT, |_| {})));
    // Every single flipped byte of the records either still scans as
    // decode_batch decodes it, or fails both; compressed batches too (the
    // scan reads them as they inflate, decode_batch all at once).
    for codec in ALL {
        let good = build_batch(&template(codec, 2), &three_records()).unwrap();
        for at in HEADER_SIZE..good.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] ^= flip;
                update_crc(&mut bad);
                assert_eq!(
                    scan_batch(&bad, LIMIT, |_| {}).is_ok(),
                    decode_batch(&bad, LIMIT).is_ok(),
                    "{codec:?}: byte {at} ^ {flip:#x}"
                );
            }
        }
    }
}

#[test]
fn scan_batch_reads_a_compressed_batch_as_it_inflates_within_the_limit() {
    let value = vec![b'z'; 100_000];
    for codec in [C::Gzip, C::Snappy, C::Lz4, C::Zstd] {
        let mut b = RecordBatchBuilder::new(codec);
        for i in 0..40 {
            b.push(1_000 + i, Some(b"k"), Some(&value), &[]);
        }
        let bytes = b.build().unwrap();
        let summary = scan_batch(&bytes, 8 << 20, |_| {}).unwrap();
        assert_eq!(summary.timestamp_deltas, Some((0, 39)), "{codec:?}");
        // 4 MB of records do not fit a 1 MiB limit.
        assert!(
            matches!(
                scan_batch(&bytes, 1 << 20, |_| {}),
                Err(RecordError::TooLarge { .. })
            ),
            "{codec:?}"
        );
    }
}

#[test]
fn batch_writer_writes_what_decode_batch_reads_back() {
    let mut w = BatchWriter::with_capacity(64);
    let big = vec![7u8; 300];
    w.push(0, Some(b"k1"), Some(b"v1"));
    w.push(5, None, Some(&big));
    w.push(-3, Some(b""), None);
    assert_eq!(w.count(), 3);
    let attributes =
        record_batch::attributes(Compression::None, TimestampType::CreateTime, true, false);
    let template = BatchHeader {
        max_timestamp: 1_005,
        ..BatchHeader::template(attributes, 1_000, 9, 2, 40)
    };
    let size = w.size();
    let batch = w.finish(&template);
    assert_eq!(batch.len(), size);
    let header = validate_batch(&batch).expect("a valid batch");
    assert_eq!((header.record_count, header.last_offset_delta), (3, 2));
    assert_eq!(
        (
            header.producer_id,
            header.producer_epoch,
            header.base_sequence
        ),
        (9, 2, 40)
    );
    assert!(header.is_transactional());
    let decoded = decode_batch(&batch, 1 << 20).expect("decodes");
    type Row<'a> = (i64, i64, Option<&'a [u8]>, Option<&'a [u8]>);
    let got: Vec<Row> = decoded
        .records
        .iter()
        .map(|r| {
            (
                decoded.offset_of(r),
                decoded.timestamp_of(r),
                r.key.as_deref(),
                r.value.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 1_000, Some(&b"k1"[..]), Some(&b"v1"[..])),
            (1, 1_005, None, Some(&big[..])),
            (2, 997, Some(&b""[..]), None),
        ]
    );
}

#[test]
fn batch_writer_compresses_in_the_templates_codec() {
    let values: Vec<Vec<u8>> = (0..200u32)
        .map(|i| format!("{{\"id\":{i},\"pad\":\"{}\"}}", "x".repeat(100)).into_bytes())
        .collect();
    for codec in [C::None, C::Gzip, C::Snappy, C::Lz4, C::Zstd] {
        let mut w = BatchWriter::with_capacity(64);
        for (i, v) in values.iter().enumerate() {
            w.push(i as i64, Some(b"k"), Some(v));
        }
        let plain_size = w.size();
        let attributes = record_batch::attributes(codec, TimestampType::CreateTime, false, false);
        let template = BatchHeader::template(attributes, 5_000, 3, 1, 7);
        let batch = w.finish_compressed(&template).expect("compresses");
        let header = validate_batch(&batch).expect("a valid batch");
        assert_eq!(header.compression().unwrap(), codec);
        assert_eq!((header.record_count, header.last_offset_delta), (200, 199));
        if codec == C::None {
            assert_eq!(batch.len(), plain_size);
        } else {
            assert!(batch.len() < plain_size / 4, "{codec:?}: {}", batch.len());
        }
        let decoded = decode_batch(&batch, 1 << 20).expect("decodes");
        let got: Vec<&[u8]> = decoded
            .records
            .iter()
            .map(|r| r.value.as_deref().unwrap())
            .collect();
        let want: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        assert_eq!(got, want, "{codec:?}");
        assert_eq!(decoded.timestamp_of(&decoded.records[199]), 5_199);
    }
}

#[test]
fn producer_codec_names_are_kafkas() {
    use crate::compression::producer_codec;
    assert_eq!(producer_codec("zstd"), Some(C::Zstd));
    assert_eq!(producer_codec("LZ4"), Some(C::Lz4));
    assert_eq!(producer_codec("none"), Some(C::None));
    assert_eq!(producer_codec("uncompressed"), None);
    assert_eq!(producer_codec("brotli"), None);
}
