//! The native reader's decoding of a fetch response's records, on record sets built
//! here: offsets, aborted transactions, markers, compression, a batch cut off at the end.

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, PartitionData};
use kafka_protocol::messages::ProducerId;
use rivulet_protocol::control::{build_control_batch, ControlType};
use rivulet_protocol::record_batch::{set_base_offset, Compression};
use rivulet_protocol::records::RecordBatchBuilder;

use super::{decode_partition, next_offset};

/// A batch at `base` of `n` records (values `"<base+i>"`), of `producer` if any.
fn batch(base: i64, n: usize, producer: Option<i64>, codec: Compression) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(codec);
    if let Some(pid) = producer {
        b = b.producer(pid, 0, 0).transactional(true);
    }
    for i in 0..n {
        let value = format!("\"{}\"", base + i as i64);
        let key = format!("k{i}");
        b.push(
            1_000 + i as i64,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            &[("h", Some(b"v"))],
        );
    }
    let mut bytes = b.build().expect("a batch");
    set_base_offset(&mut bytes, base).expect("a header");
    bytes
}

fn marker(offset: i64, producer: i64, kind: ControlType) -> Vec<u8> {
    let mut bytes = build_control_batch(producer, 0, kind, 0, 5_000);
    set_base_offset(&mut bytes, offset).expect("a header");
    bytes
}

/// Plain 0..=2, aborted pid 7 at 3..=4, plain 5, committed pid 8 at 6..=7 (gzip), abort
/// marker of 7 at 8, commit marker of 8 at 9, a new transaction of pid 7 at 10, and
/// `tail` bytes of one more batch cut off.
fn partition(tail: usize) -> PartitionData {
    let mut set = Vec::new();
    set.extend(batch(0, 3, None, Compression::None));
    set.extend(batch(3, 2, Some(7), Compression::None));
    set.extend(batch(5, 1, None, Compression::Lz4));
    set.extend(batch(6, 2, Some(8), Compression::Gzip));
    set.extend(marker(8, 7, ControlType::Abort));
    set.extend(marker(9, 8, ControlType::Commit));
    set.extend(batch(10, 1, Some(7), Compression::Zstd));
    set.extend(batch(11, 4, None, Compression::None).into_iter().take(tail));
    PartitionData::default()
        .with_partition_index(2)
        .with_records(Some(Bytes::from(set)))
        .with_aborted_transactions(Some(vec![AbortedTransaction::default()
            .with_producer_id(ProducerId(7))
            .with_first_offset(3)]))
}

fn offsets(from: i64, p: &PartitionData) -> Vec<i64> {
    let mut out = Vec::new();
    decode_partition("t", p, from, &mut out).expect("decodes");
    for r in &out {
        assert_eq!(r.meta.topic, "t");
        assert_eq!(r.meta.partition, 2);
        assert_eq!(&*r.value, format!("\"{}\"", r.meta.offset).as_bytes());
        assert_eq!(
            r.meta.headers,
            vec![("h".to_string(), Some("v".to_string()))]
        );
        assert!(r.meta.key.as_deref().is_some_and(|k| k.starts_with('k')));
        assert!(r.meta.timestamp_ms >= 1_000);
    }
    out.iter().map(|r| r.meta.offset).collect()
}

#[test]
fn aborted_transactions_and_markers_are_left_out() {
    let p = partition(0);
    assert_eq!(offsets(0, &p), vec![0, 1, 2, 5, 6, 7, 10]);
    assert_eq!(next_offset(&p, 0), Ok(11));
}

#[test]
fn records_before_the_fetch_offset_are_left_out() {
    let p = partition(0);
    assert_eq!(offsets(1, &p), vec![1, 2, 5, 6, 7, 10]);
    assert_eq!(offsets(7, &p), vec![7, 10]);
    assert_eq!(offsets(11, &p), Vec::<i64>::new());
}

#[test]
fn without_the_aborted_list_every_data_batch_is_read() {
    let p = partition(0).with_aborted_transactions(None);
    assert_eq!(offsets(0, &p), vec![0, 1, 2, 3, 4, 5, 6, 7, 10]);
}

#[test]
fn a_batch_cut_off_at_the_end_is_fetched_again() {
    for tail in [5, 40, 80] {
        let p = partition(tail);
        assert_eq!(offsets(0, &p), vec![0, 1, 2, 5, 6, 7, 10], "tail {tail}");
        assert_eq!(next_offset(&p, 0), Ok(11), "tail {tail}");
    }
}

#[test]
fn a_response_without_one_whole_batch_is_an_error_not_a_loop() {
    let cut: Vec<u8> = batch(0, 3, None, Compression::None)
        .into_iter()
        .take(50)
        .collect();
    let p = PartitionData::default().with_records(Some(Bytes::from(cut)));
    assert!(next_offset(&p, 0).is_err());
    let empty = PartitionData::default().with_records(Some(Bytes::new()));
    assert_eq!(next_offset(&empty, 4), Ok(4));
}

#[test]
fn a_corrupt_batch_is_an_error() {
    let mut set = batch(0, 3, None, Compression::None);
    let last = set.len() - 1;
    set[last] ^= 0xff; // the CRC no longer matches
    let p = PartitionData::default().with_records(Some(Bytes::from(set)));
    let mut out = Vec::new();
    let e = decode_partition("t", &p, 0, &mut out).expect_err("a CRC mismatch");
    assert!(e.contains("offset 0"), "{e}");
}

#[test]
fn an_old_record_format_is_an_error() {
    let mut set = batch(0, 1, None, Compression::None);
    set[16] = 1; // magic
    let p = PartitionData::default().with_records(Some(Bytes::from(set)));
    let e = next_offset(&p, 0).expect_err("magic 1");
    assert!(e.contains("magic"), "{e}");
}
