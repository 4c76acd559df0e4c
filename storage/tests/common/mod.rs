//! Helpers shared by the storage crate's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::{self, RecordBatchBuilder};
use rivulet_storage::{LogConfig, LogOpenOptions, ManualClock, PartitionLog, TopicPartition};

pub const T0: i64 = 1_700_000_000_000;

/// A producer-style batch of `n` records with keys `k<i>`, values
/// `<tag>-<i>` and timestamps `ts + i`.
pub fn batch(tag: &str, n: usize, ts: i64) -> Vec<u8> {
    batch_with(Compression::None, tag, n, ts)
}

pub fn batch_with(codec: Compression, tag: &str, n: usize, ts: i64) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(codec);
    for i in 0..n {
        let key = format!("k{i}");
        let value = format!("{tag}-{i}");
        b.push(
            ts + i as i64,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            &[],
        );
    }
    b.build().unwrap()
}

/// A batch of keyed records: `(key, value or tombstone, timestamp)`.
pub fn keyed_batch(records: &[(&str, Option<&str>, i64)]) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(Compression::None);
    for (k, v, ts) in records {
        b.push(*ts, Some(k.as_bytes()), v.map(str::as_bytes), &[]);
    }
    b.build().unwrap()
}

/// Every record in a byte range of whole batches: `(offset, timestamp, key, value)`.
pub fn decode_all(bytes: &[u8]) -> Vec<(i64, i64, Option<Vec<u8>>, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    for item in rivulet_protocol::record_batch::BatchIter::new(bytes) {
        let (range, _) = item.unwrap();
        let d = records::decode_batch(&bytes[range], 1 << 30).unwrap();
        for r in &d.records {
            out.push((
                d.offset_of(r),
                d.timestamp_of(r),
                r.key.as_ref().map(|k| k.to_vec()),
                r.value.as_ref().map(|v| v.to_vec()),
            ));
        }
    }
    out
}

/// Read the whole log from `from` to its end, batch by batch.
pub fn read_all_from(
    log: &PartitionLog,
    from: i64,
) -> Vec<(i64, i64, Option<Vec<u8>>, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.log_end_offset() {
        let bytes = log.read(next, 64 * 1024, None, true).unwrap();
        if bytes.is_empty() {
            break;
        }
        let recs = decode_all(&bytes);
        let last_batch_next = rivulet_protocol::record_batch::BatchIter::new(&bytes)
            .map(|r| r.unwrap().1.next_offset())
            .last()
            .unwrap();
        out.extend(recs.into_iter().filter(|r| r.0 >= next));
        next = last_batch_next;
    }
    out
}

pub fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(T0))
}

/// Open a log in `dir` with `cfg`, after a clean or unclean stop.
pub fn open(
    dir: &Path,
    cfg: LogConfig,
    clock: Arc<ManualClock>,
    opts: LogOpenOptions,
) -> PartitionLog {
    PartitionLog::open(dir, tp(), cfg, clock, opts).unwrap().0
}

pub fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        ..LogConfig::default()
    }
}
