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

/// A record read back: `(offset, timestamp, key, value)`.
pub type Rec = (i64, i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Every record in a byte range of whole batches: `(offset, timestamp, key, value)`.
pub fn decode_all(bytes: &[u8]) -> Vec<Rec> {
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
pub fn read_all_from(log: &PartitionLog, from: i64) -> Vec<Rec> {
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

/// A fresh log in `dir` with default settings and [`clock`].
pub fn open_fresh(dir: &Path) -> PartitionLog {
    open(
        dir,
        LogConfig::default(),
        clock(),
        LogOpenOptions::default(),
    )
}

pub fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        ..LogConfig::default()
    }
}

/// [`keyed_batch`] compressed with `codec`.
pub fn keyed_batch_with(codec: Compression, records: &[(&str, Option<&str>, i64)]) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(codec);
    for (k, v, ts) in records {
        b.push(*ts, Some(k.as_bytes()), v.map(str::as_bytes), &[]);
    }
    b.build().unwrap()
}

/// `(offset, key, value)` of decoded records, for compact assertions.
pub fn okv(recs: &[Rec]) -> Vec<(i64, String, Option<String>)> {
    recs.iter()
        .map(|(o, _, k, v)| {
            (
                *o,
                String::from_utf8(k.clone().unwrap_or_default()).unwrap(),
                v.as_ref().map(|v| String::from_utf8(v.clone()).unwrap()),
            )
        })
        .collect()
}

/// Every batch of the log from its start, as `(header, bytes)` read back
/// through [`PartitionLog::read`].
pub fn raw_batches(
    log: &PartitionLog,
) -> Vec<(rivulet_protocol::record_batch::BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let bytes = log.read(next, 64 * 1024, None, true).unwrap();
        if bytes.is_empty() {
            break;
        }
        for item in rivulet_protocol::record_batch::BatchIter::new(&bytes) {
            let (range, h) = item.unwrap();
            next = h.next_offset();
            out.push((h, bytes[range].to_vec()));
        }
    }
    out
}

/// Names of the files in `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Base offsets of the `.log` files in `dir`, ascending.
pub fn segment_bases_on_disk(dir: &Path) -> Vec<i64> {
    file_names(dir)
        .iter()
        .filter_map(|n| n.strip_suffix(".log").and_then(|s| s.parse().ok()))
        .collect()
}

/// Base offsets of the log's segments, ascending.
pub fn segment_bases(log: &PartitionLog) -> Vec<i64> {
    log.segments().map(|s| s.base_offset()).collect()
}

/// Whether any of a segment's three files is still on disk.
pub fn segment_files_exist(dir: &Path, base: i64) -> [bool; 3] {
    [".log", ".index", ".timeindex"].map(|s| dir.join(format!("{base:020}{s}")).exists())
}
