//! Criterion micro-benchmarks of the stream layer's per-record work, without
//! a broker: decoding a record into a row, a filter batch, a keyed tumbling
//! window batch, and encoding rows back to JSON as the Kafka and files sinks
//! do. Run: `cargo bench --bench streams_exec`; one iteration is one batch of
//! `BATCH` records, so the time per record is the reported time / `BATCH`.
//!
//! Times are this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time: the
//! machine is shared, and CPU time does not count the moments another process held
//! the core.

use std::collections::BTreeMap;
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rivulet_streams::{EventTimeSpec, Executor, JobPlan, Row, SourceMeta, SourceRecord};

const BATCH: usize = 10_000;
const KINDS: [&str; 3] = ["click", "view", "buy"];

/// The stream bench's 100-byte event (benches/streams/jobs.rs).
fn event(i: usize, ts_ms: i64) -> Vec<u8> {
    let kind = KINDS[i % KINDS.len()];
    let mut s = format!(
        r#"{{"id":{i},"user":"u{:04}","kind":"{kind}","amount":{}.{:02},"ts":{ts_ms},"p":""#,
        i % 1000,
        i % 500,
        i % 100
    );
    let pad = 100usize.saturating_sub(s.len() + 2);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    s.into_bytes()
}

fn records(base: usize) -> Vec<SourceRecord> {
    (base..base + BATCH)
        .map(|i| SourceRecord {
            meta: SourceMeta {
                key: Some(format!("u{:04}", i % 1000)),
                headers: Vec::new(),
                topic: "events".into(),
                partition: 0,
                offset: i as i64,
                timestamp_ms: 1_700_000_000_000,
            },
            value: event(i, 1_700_000_000_000 + i as i64).into(),
        })
        .collect()
}

const SOURCE: &str = r#"[job]
name = "bench"
[[source]]
name = "events"
topics = ["events"]
event_time = { field = "ts", format = "epoch_millis" }
watermark_delay = "5s"
"#;

fn plan(body: &str) -> JobPlan {
    JobPlan::from_toml(&format!("{SOURCE}{body}")).expect("bench plan")
}

const FILTER: &str = r#"
[[operator]]
name = "kept"
type = "filter"
where = "kind <> 'view'"
[[sink]]
name = "out"
type = "console"
"#;

const WINDOW: &str = r#"
[[operator]]
name = "by_user"
type = "key_by"
by = "user"
[[operator]]
name = "per_minute"
type = "window"
window = "tumbling"
size = "1m"
aggregates = ["count(*) AS n", "sum(amount) AS total"]
output_mode = "update"
[[sink]]
name = "out"
type = "console"
"#;

/// This thread's CPU time, as a criterion measurement (formatted like wall time).
struct ThreadCpu;

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WallTime.formatter()
    }
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("streams_exec");
    g.throughput(Throughput::Elements(BATCH as u64));
    let batch = records(0);
    let spec = EventTimeSpec::Field {
        field: "ts".into(),
        format: rivulet_streams::TimeFormat::EpochMillis,
    };
    g.bench_function("decode rows", |b| {
        b.iter(|| {
            for r in &batch {
                black_box(Row::from_record(r, &spec).expect("row"));
            }
        })
    });
    let by_source = BTreeMap::from([("events".to_string(), batch.clone())]);
    // `projected`: as the runtime runs them, decoding only the fields the plan reads
    // (a filter into Kafka passes rows through as their bytes; a window reads three).
    let filter_kafka = FILTER.replace("type = \"console\"", "type = \"kafka\"\ntopic = \"out\"");
    for (name, body, project) in [
        ("filter batch", FILTER, false),
        ("filter batch, projected", filter_kafka.as_str(), true),
        ("window batch", WINDOW, false),
        ("window batch, projected", WINDOW, true),
    ] {
        let mut ex = Executor::new(plan(body), BTreeMap::new()).expect("executor");
        if project {
            assert!(ex.project_sources(), "{name}: the plan is not projected");
        }
        g.bench_function(name, |b| {
            b.iter(|| black_box(ex.run_batch(&by_source, 1_700_000_000_000).expect("batch")))
        });
        if project {
            // As the runtime hands records over: given away, so rows take them whole.
            g.bench_function(format!("{name}, owned records"), |b| {
                b.iter_batched(
                    || by_source.clone(),
                    |records| {
                        black_box(
                            ex.run_batch_owned(records, 1_700_000_000_000)
                                .expect("batch"),
                        )
                    },
                    BatchSize::LargeInput,
                )
            });
        }
    }
    let rows: Vec<Row> = batch
        .iter()
        .map(|r| Row::from_record(r, &spec).expect("row"))
        .collect();
    g.bench_function("encode rows", |b| {
        b.iter(|| {
            for row in &rows {
                black_box(serde_json::to_string(&row.value).expect("json"));
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = bench
}
criterion_main!(benches);
