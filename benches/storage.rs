//! Storage micro-benchmarks (criterion), each measured side by side with the
//! plain-file baseline it must approach:
//!
//! - `append/*`: 16 KiB batches of 1 KiB records appended with flush off,
//!   against plain `write` of the same bytes to a file;
//! - `read/*`: sequential reads of the whole log through `PartitionLog::read`
//!   against plain `read` of the same segment file;
//! - `lookup/*`: offset and timestamp lookups on a 1 GiB log;
//! - `recovery/*`: reopening a 1 GiB active segment after an unclean stop, and
//!   opening 1,000 cleanly closed partitions;
//! - `validate/*`: the per-record check of a produced batch
//!   (`records::scan_batch`, what the leader runs on every produced batch)
//!   beside the CRC-32C check every batch already gets, for small and
//!   1 KiB records, uncompressed and lz4;
//! - `producer_state/*`: opening a cleanly closed log of 200,000 idempotent
//!   batches in 20 segments from its producer-state snapshot, against the
//!   full header scan the same log needs without one.
//!
//! Files go under `$RIVULET_BENCH_DIR` (default: the system temp dir).
//! Run: `cargo bench --bench storage` (a subset: `-- lookup`).

use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rivulet_protocol::record_batch::{self, BatchHeader, Compression};
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_storage::{
    FlushPolicy, LogConfig, LogManager, LogOpenOptions, PartitionLog, StorageConfig, SystemClock,
    TopicPartition,
};

const RECORD: usize = 1024;
const RECORDS_PER_BATCH: usize = 16;
const GIB: u64 = 1 << 30;
const T0: i64 = 1_700_000_000_000;

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("RIVULET_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(PathBuf::from(d)).expect("bench dir"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

/// A 16 KiB producer batch of 1 KiB records with timestamps from `ts`.
fn batch(ts: i64) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(Compression::None);
    let value = vec![b'x'; RECORD - 16];
    for i in 0..RECORDS_PER_BATCH {
        let key = format!("key-{i:08}");
        b.push(ts + i as i64, Some(key.as_bytes()), Some(&value), &[]);
    }
    b.build().expect("batch")
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2 * GIB - 1,
        flush_policy: FlushPolicy::Never,
        ..LogConfig::default()
    }
}

fn open_log(dir: &std::path::Path, opts: LogOpenOptions) -> PartitionLog {
    PartitionLog::open(
        dir,
        TopicPartition::new("bench", 0),
        config(),
        Arc::new(SystemClock),
        opts,
    )
    .expect("open log")
    .0
}

/// Append `bytes` of batches; record timestamps advance 1 ms per record.
fn fill(log: &mut PartitionLog, bytes: u64) {
    let mut written = 0u64;
    let mut i = 0i64;
    while written < bytes {
        let mut b = batch(T0 + i * RECORDS_PER_BATCH as i64);
        written += b.len() as u64;
        log.append_as_leader(&mut b, 0).expect("append");
        i += 1;
    }
}

fn append(c: &mut Criterion) {
    const TOTAL: u64 = 64 << 20;
    let one = batch(T0);
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Bytes(TOTAL));
    g.sample_size(20);
    let n = (TOTAL as usize) / one.len();
    g.bench_function("plain_file_write_16k", |bench| {
        bench.iter_batched(
            || {
                let d = bench_dir();
                let f = File::create(d.path().join("plain")).expect("file");
                (d, f, one.clone())
            },
            |(d, mut f, b)| {
                for _ in 0..n {
                    f.write_all(&b).expect("write");
                }
                (d, f)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("partition_log_append_16k", |bench| {
        bench.iter_batched(
            || {
                let d = bench_dir();
                let log = open_log(d.path(), LogOpenOptions::default());
                (d, log, one.clone())
            },
            |(d, mut log, mut b)| {
                for _ in 0..n {
                    log.append_as_leader(&mut b, 0).expect("append");
                }
                (d, log)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn read(c: &mut Criterion) {
    const TOTAL: u64 = 256 << 20;
    let dir = bench_dir();
    let mut log = open_log(dir.path(), LogOpenOptions::default());
    fill(&mut log, TOTAL);
    let seg_path = log
        .segments()
        .next()
        .expect("segment")
        .log_path()
        .to_path_buf();
    let size = log.size_in_bytes();
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Bytes(size));
    g.sample_size(20);
    const FETCH: usize = 1 << 20;
    g.bench_function("plain_file_read_1m", |bench| {
        let mut buf = vec![0u8; FETCH];
        bench.iter(|| {
            let mut f = File::open(&seg_path).expect("open");
            let mut total = 0usize;
            loop {
                let n = f.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                total += n;
            }
            black_box(total)
        })
    });
    g.bench_function("partition_log_read_1m", |bench| {
        bench.iter(|| {
            let mut next = 0i64;
            let mut total = 0usize;
            let end = log.log_end_offset();
            while next < end {
                let plan = log
                    .plan_read(next, FETCH, None, true)
                    .expect("plan")
                    .expect("data");
                let bytes = plan.execute().expect("read");
                total += bytes.len();
                // Next offset: after the last batch returned (headers only,
                // as a consumer walking the bytes would).
                next = last_batch_next_offset(&bytes).unwrap_or(end);
            }
            black_box(total)
        })
    });
    g.finish();
}

/// The offset after the last batch in a run of whole batches, reading only
/// the batch headers.
fn last_batch_next_offset(bytes: &[u8]) -> Option<i64> {
    let mut pos = 0;
    let mut next = None;
    while let Some(size) = bytes.get(pos..).and_then(record_batch::peek_batch_size) {
        let header = BatchHeader::parse(bytes.get(pos..)?).ok()?;
        next = Some(header.next_offset());
        pos += size;
    }
    next
}

fn lookup(c: &mut Criterion) {
    let dir = bench_dir();
    let mut log = open_log(dir.path(), LogOpenOptions::default());
    fill(&mut log, GIB);
    let end = log.log_end_offset();
    let seg = log.segments().next().expect("segment");
    let mut g = c.benchmark_group("lookup_1gib");
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next_rand = move |n: i64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as i64
    };
    g.bench_function("offset_index_lookup", |b| {
        b.iter(|| black_box(seg.offset_index().lookup(next_rand(end))))
    });
    g.bench_function("offset_to_position", |b| {
        b.iter(|| black_box(seg.translate_offset(next_rand(end)).expect("translate")))
    });
    g.bench_function("time_index_lookup", |b| {
        b.iter(|| black_box(seg.time_index().lookup(T0 + next_rand(end))))
    });
    g.bench_function("timestamp_to_batch", |b| {
        b.iter(|| {
            black_box(
                seg.find_batch_by_timestamp(T0 + next_rand(end), 0)
                    .expect("find"),
            )
        })
    });
    g.bench_function("timestamp_to_exact_record", |b| {
        b.iter(|| black_box(log.offset_for_timestamp(T0 + next_rand(end)).expect("ts")))
    });
    g.finish();
}

fn recovery(c: &mut Criterion) {
    let mut g = c.benchmark_group("recovery");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    {
        let dir = bench_dir();
        {
            let mut log = open_log(dir.path(), LogOpenOptions::default());
            fill(&mut log, GIB);
            log.flush().expect("flush");
            // Dropped without close: an unclean stop.
        }
        g.throughput(Throughput::Bytes(GIB));
        g.bench_function("unclean_open_1gib_active_segment", |b| {
            b.iter(|| black_box(open_log(dir.path(), LogOpenOptions::default()).log_end_offset()))
        });
    }
    {
        let dir = bench_dir();
        let cfg = StorageConfig {
            log_defaults: LogConfig {
                flush_policy: FlushPolicy::Never,
                ..LogConfig::default()
            },
            ..StorageConfig::default()
        };
        let clock = Arc::new(SystemClock);
        let mgr =
            LogManager::open(dir.path(), cfg.clone(), clock.clone(), &|_| None).expect("open");
        let mut b1 = batch(T0);
        for p in 0..1000 {
            let log = mgr
                .create_log(&TopicPartition::new("many", p), cfg.log_defaults.clone())
                .expect("create");
            log.lock().append_as_leader(&mut b1, 0).expect("append");
        }
        mgr.shutdown().expect("shutdown");
        drop(mgr);
        g.throughput(Throughput::Elements(1000));
        g.bench_function("clean_open_1000_partitions", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let m = LogManager::open(dir.path(), cfg.clone(), clock.clone(), &|_| None)
                        .expect("open");
                    total += start.elapsed();
                    assert_eq!(m.all_logs().len(), 1000);
                    m.shutdown().expect("shutdown");
                }
                total
            })
        });
    }
    g.finish();
}

/// Opening a log from its `<offset>.snapshot` against rebuilding producer
/// state from every batch header (issue 11).
fn producer_state(c: &mut Criterion) {
    const BATCHES: usize = 200_000;
    let dir = bench_dir();
    let cfg = LogConfig {
        segment_bytes: 1 << 20,
        ..config()
    };
    let open_with = |dir: &std::path::Path| {
        PartitionLog::open(
            dir,
            TopicPartition::new("bench", 0),
            cfg.clone(),
            Arc::new(SystemClock),
            LogOpenOptions {
                clean_shutdown: true,
                ..LogOpenOptions::default()
            },
        )
        .expect("open log")
    };
    let (mut log, _) = open_with(dir.path());
    for i in 0..BATCHES {
        let pid = (i % 100) as i64;
        let seq = (i / 100) as i32;
        let mut b = RecordBatchBuilder::new(Compression::None).producer(pid, 0, seq);
        b.push(T0 + i as i64, Some(b"key"), Some(&[b'x'; 64]), &[]);
        let mut bytes = b.build().expect("batch");
        log.append_as_leader(&mut bytes, 0).expect("append");
    }
    log.close().expect("close");
    drop(log);

    let mut g = c.benchmark_group("producer_state");
    g.sample_size(10);
    g.bench_function("open_from_snapshot", |b| {
        b.iter(|| {
            let (log, report) = open_with(dir.path());
            assert_eq!(report.producer_state.batches_scanned, 0);
            black_box(log)
        })
    });
    for entry in std::fs::read_dir(dir.path()).expect("list") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(path).expect("remove snapshot");
        }
    }
    g.bench_function("open_full_scan", |b| {
        b.iter(|| {
            let (log, report) = open_with(dir.path());
            assert_eq!(report.producer_state.batches_scanned, BATCHES as u64);
            black_box(log)
        })
    });
    g.finish();
}

/// A producer batch of `n` records of `size` bytes (key included).
fn batch_of(codec: Compression, n: usize, size: usize) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(codec);
    for i in 0..n {
        let key = format!("key-{i:08}");
        let value: Vec<u8> = (0..size.saturating_sub(key.len()))
            .map(|j| b'a' + ((i + j) % 26) as u8)
            .collect();
        b.push(T0 + i as i64, Some(key.as_bytes()), Some(&value), &[]);
    }
    b.build().expect("batch")
}

fn validate(c: &mut Criterion) {
    let cases = [
        ("160x80B", batch_of(Compression::None, 160, 80)),
        ("16x1KiB", batch_of(Compression::None, 16, RECORD)),
        ("16x1KiB_lz4", batch_of(Compression::Lz4, 16, RECORD)),
    ];
    let mut g = c.benchmark_group("validate");
    for (name, bytes) in &cases {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("crc32c_{name}"), |b| {
            b.iter(|| record_batch::validate_batch(black_box(bytes)).expect("valid"))
        });
        g.bench_function(format!("scan_records_{name}"), |b| {
            b.iter(|| {
                rivulet_protocol::records::scan_batch(black_box(bytes), 1 << 26, |_| {})
                    .expect("scans")
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    append,
    read,
    lookup,
    recovery,
    validate,
    producer_state
);
criterion_main!(benches);
