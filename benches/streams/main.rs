//! Stream-layer benchmark (issue 12): what a stream job costs against a
//! plain consume loop over the same data, in the same run. A plain
//! harness, not criterion.
//!
//! - The broker is the release `rivulet` binary as its own process (as for
//!   `loadgen`/`txn`); PostgreSQL is a real throwaway server
//!   (`rivulet_testkit::postgres`, Debian's binaries); the jobs run in this
//!   process through `rivulet_streams::runtime::run`, exactly what
//!   `rivulet stream run` calls.
//! - Events: 100-byte JSON objects (`id`, `user` of 1,000, `kind`
//!   click/view/buy in turn, `amount`, `ts` epoch millis), one partition.
//! - Jobs: filter (`kind <> 'view'`, keeps 2 of 3) → Kafka topic,
//!   at-least-once and exactly-once (one transaction per micro-batch);
//!   key_by user → tumbling 1-minute count/sum (update mode) → PostgreSQL
//!   upsert, exactly-once; filter → date-partitioned JSON Lines files.
//! 1. Throughput: N events are written first; the ceiling is rdkafka's
//!    `BaseConsumer` reading them from the start (issue 12's ceiling; a job's
//!    source reads with the runtime's own Fetch requests by default, and with
//!    this loop under `client = "librdkafka"`); each job runs with trigger
//!    `available_now` over the same topic, timed from start to its end
//!    (start-up included, as the ceiling's assignment is). Runs alternate (ceiling, jobs, ceiling,
//!    ...), best of `STREAMS_BENCH_REPEAT` each; ratio = job records/s ÷
//!    ceiling records/s. Beside the rate, the CPU time each run cost per
//!    record (least over the repeats): this process's (the job, or the
//!    ceiling's loop) and the broker's — a figure a loaded machine distorts
//!    far less than the wall-clock rate. Every run's sink is then read back: it must hold
//!    exactly the expected rows (for the aggregate: counts summing to N),
//!    or the bench fails. With a Kafka job in the plan, a hand-written
//!    rdkafka loop (consume, filter by a byte search, produce unchanged,
//!    wait for every ack) runs beside them as the reference for what any
//!    filter → Kafka job costs here at the least.
//! 2. Latency: a producer paces `STREAMS_BENCH_RATE` events/s for
//!    `STREAMS_BENCH_SECS` s to a fresh topic with `ts` = the send time,
//!    while the job runs as fast as possible; a watcher sees rows appear
//!    (read_committed consumer of the output topic; new files; the sum of
//!    the aggregate's counts in PostgreSQL, polled every 10 ms) and the
//!    latency of a row is when it was seen minus its `ts`; p50/p99/max.
//! 3. Memory: a windowed aggregation (the same plan) in this process fed
//!    `STREAMS_BENCH_KEYS` distinct keys in one window; RSS growth ÷ keys.
//!
//! Knobs: `STREAMS_BENCH_RECORDS` (N, default 500,000), `STREAMS_BENCH_QUICK=1`
//! (or `-- --quick`: a tenth of N and of the latency phase),
//! `STREAMS_BENCH_REPEAT` (default 2), `STREAMS_BENCH_RATE` (default 5,000),
//! `STREAMS_BENCH_SECS` (default 10), `STREAMS_BENCH_KEYS` (default 1,000,000),
//! `STREAMS_BENCH_ONLY` (comma list of kafka-alo,kafka-eos,window-pg,files),
//! `STREAMS_BENCH_SINK_CLIENT` (the Kafka sinks' `client`: native, the default, or
//! librdkafka), `STREAMS_BENCH_BATCH` (most records per batch in the throughput runs; default
//! the runtime's, 50,000), `STREAMS_BENCH_THP=1` (keep transparent huge pages, which
//! the bench turns off as `rivulet` does).
//! Run: `cargo bench --bench streams`.

/// The `rivulet` binary's allocator, so that jobs run here as `rivulet stream run` runs them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::producer::{BaseRecord, ThreadedProducer};
use rivulet_streams::runtime::{self, RunOptions};
use rivulet_streams::{Executor, JobPlan, SourceMeta, SourceRecord};
use rivulet_testkit::dirs::bench_dir;
use rivulet_testkit::kafka::bench_client_config;
use rivulet_testkit::postgres::TestPostgres;
use rivulet_testkit::process::BrokerProcess;
use rivulet_testkit::procfs::{self, Proc};

#[path = "../common/mod.rs"]
mod common;
use common::broker::{create_topic, stop_and_report};
use common::clients::{consume, wait_delivered, ReadSpec};
use common::{env_usize, rivulet_bin, target_dir};

mod jobs;
use jobs::{event, Job, Seen, Target, Watcher};

const T: Duration = Duration::from_secs(300);
const JOBS: [Job; 4] = [
    Job::FilterKafka {
        exactly_once: false,
    },
    Job::FilterKafka { exactly_once: true },
    Job::WindowPostgres,
    Job::FilterFiles,
];

struct Plan {
    records: usize,
    repeat: usize,
    rate: usize,
    secs: usize,
    keys: usize,
    /// `RunOptions::max_batch_records` of the throughput runs.
    batch: usize,
    only: Option<Vec<String>>,
    quick: bool,
}

impl Plan {
    fn from_env() -> Plan {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var("STREAMS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let div = if quick { 10 } else { 1 };
        Plan {
            records: env_usize("STREAMS_BENCH_RECORDS", 500_000) / div,
            repeat: env_usize("STREAMS_BENCH_REPEAT", 2).max(1),
            rate: env_usize("STREAMS_BENCH_RATE", 5_000).max(1),
            secs: (env_usize("STREAMS_BENCH_SECS", 10) / div).max(2),
            keys: env_usize("STREAMS_BENCH_KEYS", 1_000_000) / div,
            batch: env_usize("STREAMS_BENCH_BATCH", runtime::DEFAULT_MAX_BATCH_RECORDS),
            only: std::env::var("STREAMS_BENCH_ONLY")
                .ok()
                .map(|s| s.split(',').map(|x| x.trim().to_string()).collect()),
            quick,
        }
    }

    fn jobs(&self) -> Vec<Job> {
        JOBS.into_iter()
            .filter(|j| {
                self.only
                    .as_ref()
                    .is_none_or(|o| o.iter().any(|s| s == j.slug()))
            })
            .collect()
    }
}

/// Read `n` records of `topic` from its start, as the ceiling does.
fn whole_topic<'a>(bootstrap: &'a str, topic: &'a str, n: usize, broker: u32) -> ReadSpec<'a> {
    ReadSpec {
        bootstrap,
        topic,
        offset: 0,
        n,
        config: &[],
        settle: Duration::ZERO,
        timeout: T,
        broker_pid: Some(broker),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One measured run: wall time, CPU time of this process and of the broker.
#[derive(Debug, Clone, Copy)]
struct Cost {
    elapsed: Duration,
    cpu: Duration,
    broker_cpu: Duration,
}

impl Cost {
    /// Run `f`, measuring it.
    fn of<T>(broker: u32, f: impl FnOnce() -> T) -> (T, Cost) {
        let (cpu0, b0, t0) = (
            procfs::cpu_time(Proc::This),
            procfs::cpu_time(Proc::Pid(broker)),
            Instant::now(),
        );
        let out = f();
        let cost = Cost {
            elapsed: t0.elapsed(),
            cpu: procfs::cpu_time(Proc::This).saturating_sub(cpu0),
            broker_cpu: procfs::cpu_time(Proc::Pid(broker)).saturating_sub(b0),
        };
        (out, cost)
    }

    /// The best of two measurements of one thing: least wall time, least CPU.
    fn best(self, other: Cost) -> Cost {
        Cost {
            elapsed: self.elapsed.min(other.elapsed),
            cpu: self.cpu.min(other.cpu),
            broker_cpu: self.broker_cpu.min(other.broker_cpu),
        }
    }
}

struct Bench {
    plan: Plan,
    rt: tokio::runtime::Runtime,
    broker: BrokerProcess,
    pg: TestPostgres,
    pg_url: String,
    work: tempfile::TempDir,
    runs: usize,
    problems: Vec<String>,
}

impl Bench {
    fn producer(&self) -> ThreadedProducer<rdkafka::producer::DefaultProducerContext> {
        let mut c = bench_client_config(&self.broker.bootstrap());
        c.set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "100000");
        c.create().expect("producer")
    }

    /// Write events `0..n` to `topic`, event times 1 ms apart ending now.
    fn fill(&mut self, topic: &str, n: usize) {
        create_topic(&self.rt, &mut self.broker, topic, T);
        let p = self.producer();
        let base = now_ms() - n as i64;
        for i in 0..n {
            let v = event(i, base + i as i64);
            let mut rec: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(&v[..]);
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        rec = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        if let Err(e) = wait_delivered(&p, T) {
            panic!("filling {topic}: {e}");
        }
    }

    fn target(&mut self, job: Job, input: &str, trigger: &'static str) -> Target {
        self.runs += 1;
        Target {
            job,
            run: format!("{}-{}", job.slug(), self.runs),
            input: input.to_string(),
            trigger,
            work: self.work.path().to_path_buf(),
            pg_url: self.pg_url.clone(),
        }
    }

    /// One `available_now` run of `job` over `input`: elapsed, then checks
    /// the sink's rows.
    fn throughput(&mut self, job: Job, input: &str, n: usize) -> Option<Cost> {
        let bootstrap = self.broker.bootstrap();
        let t = self.target(job, input, "available_now");
        let toml = t.toml();
        let expected = t.expected(n);
        let plan = JobPlan::from_toml(&toml).expect("bench job plan");
        let options = RunOptions {
            bootstrap_servers: Some(bootstrap.clone()),
            max_batch_records: self.plan.batch,
            ..RunOptions::default()
        };
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let rt = &self.rt;
        let (result, cost) = Cost::of(self.broker.pid(), || {
            rt.block_on(runtime::run(plan, options, rx))
        });
        if let Err(e) = result {
            return self.problem(format!("{}: {e}", job.label()));
        }
        // Read back what the sink holds.
        let got = self.rt.block_on(async {
            let mut w = Watcher::new(&t, &bootstrap, &self.pg).await;
            let mut total = 0usize;
            let mut quiet = Instant::now();
            while quiet.elapsed() < Duration::from_secs(2) {
                match w.poll().await {
                    Seen::Rows(r) if !r.is_empty() => {
                        total += r.len();
                        quiet = Instant::now();
                    }
                    Seen::Rows(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Seen::Total(x) => return x,
                }
            }
            total
        });
        if got != expected {
            return self.problem(format!(
                "{}: the sink holds {got} rows, expected exactly {expected}",
                job.label()
            ));
        }
        Some(cost)
    }

    /// The hand-written reference for filter → Kafka: the ceiling's
    /// consume loop, a byte search for `"kind":"view"` as the filter, and
    /// every kept value produced unchanged to a fresh topic (the same
    /// producer settings as [`Bench::fill`]), timed until all are acked.
    /// What any filter → Kafka job costs on this machine at the least.
    fn pipe(&mut self, input: &str, n: usize) -> Cost {
        self.runs += 1;
        let out = format!("pipe-{}", self.runs);
        create_topic(&self.rt, &mut self.broker, &out, T);
        let bootstrap = self.broker.bootstrap();
        let broker = self.broker.pid();
        let p = self.producer();
        let view = br#""kind":"view""#;
        let mut sent = 0usize;
        let (stats, cost) = Cost::of(broker, || {
            let stats = consume(&whole_topic(&bootstrap, input, n, broker), |value| {
                if value.windows(view.len()).any(|w| w == view) {
                    return;
                }
                let mut rec: BaseRecord<'_, (), [u8]> = BaseRecord::to(&out).payload(value);
                loop {
                    match p.send(rec) {
                        Ok(()) => break,
                        Err((_, r)) => {
                            rec = r;
                            p.poll(Duration::from_millis(1));
                        }
                    }
                }
                sent += 1;
            });
            (stats, wait_delivered(&p, T))
        });
        let (stats, delivered) = stats;
        if stats.records != n || sent != jobs::kept(n) {
            self.problems.push(format!(
                "pipe read {} of {n} records and sent {sent} of {}",
                stats.records,
                jobs::kept(n)
            ));
        }
        if let Err(e) = delivered {
            self.problems.push(format!("pipe: {e}"));
        }
        cost
    }

    fn problem<T>(&mut self, p: String) -> Option<T> {
        eprintln!("bench: PROBLEM: {p}");
        self.problems.push(p);
        None
    }

    fn ceiling(&mut self, input: &str, n: usize) -> Cost {
        let bootstrap = self.broker.bootstrap();
        let broker = self.broker.pid();
        let (stats, cost) = Cost::of(broker, || {
            consume(&whole_topic(&bootstrap, input, n, broker), |_| {})
        });
        if stats.records != n {
            self.problems
                .push(format!("ceiling read {} of {n} records", stats.records));
        }
        Cost {
            elapsed: stats.elapsed,
            ..cost
        }
    }

    /// The latency phase of `job`: p50, p99, max in ms, and rows seen.
    fn latency(&mut self, job: Job) -> Option<(f64, f64, f64, usize)> {
        let input = format!("lat-{}", job.slug());
        let bootstrap = self.broker.bootstrap();
        create_topic(&self.rt, &mut self.broker, &input, T);
        if let Job::FilterKafka { .. } = job {
            // The watcher assigns the output topic before the job's first batch.
            let out = format!("out-{}-{}", job.slug(), self.runs + 1);
            create_topic(&self.rt, &mut self.broker, &out, T);
        }
        let (rate, secs) = (self.plan.rate, self.plan.secs);
        let n = rate * secs;
        let t = self.target(job, &input, "0s");
        let expected = t.expected(n);
        let plan = JobPlan::from_toml(&t.toml()).expect("bench job plan");
        let options = RunOptions {
            bootstrap_servers: Some(bootstrap.clone()),
            poll_wait: Duration::from_millis(5),
            ..RunOptions::default()
        };
        let (tx, rx) = tokio::sync::watch::channel(false);
        // The runtime's future is not Send (operators are not): the job gets
        // a thread and a runtime of its own, and `block_on`s there.
        let job_task = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(runtime::run(plan, options, rx))
                .map_err(|e| e.to_string())
        });
        // Let the job assign and take its first (empty) polls.
        std::thread::sleep(Duration::from_secs(2));

        // The producer is idempotent: librdkafka acquires its producer id on a
        // timer (500 ms when its first broker connection was replaced meanwhile),
        // which would hold the first half second of events back and count as
        // the job's latency. One record to a topic of its own first.
        let p = self.producer();
        let warm = format!("{input}-warm-up");
        create_topic(&self.rt, &mut self.broker, &warm, T);
        let _ = p.send(BaseRecord::<'_, (), [u8]>::to(&warm).payload(&b"w"[..]));
        if let Err(e) = wait_delivered(&p, T) {
            panic!("the latency producer's warm-up record: {e}");
        }

        // The watcher too starts before the first event: a consumer's first
        // fetch waits for its offset lookup and broker connection.
        let mut w = self.rt.block_on(async {
            let mut w = Watcher::new(&t, &bootstrap, &self.pg).await;
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until {
                let _ = w.poll().await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            w
        });

        let sent_at: Arc<parking_lot::Mutex<Vec<i64>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let producer = {
            let (sent_at, done, topic) = (sent_at.clone(), done.clone(), input.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                for i in 0..n {
                    let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                    if let Some(d) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(d);
                    }
                    let ts = now_ms();
                    let v = event(i, ts);
                    sent_at.lock().push(ts);
                    let _ = p.send(BaseRecord::<'_, (), [u8]>::to(&topic).payload(&v[..]));
                }
                let r = wait_delivered(&p, T);
                done.store(true, Ordering::SeqCst);
                r
            })
        };
        let lat = self.rt.block_on(async {
            let mut lat = Vec::with_capacity(expected);
            let mut accounted = 0usize;
            let deadline = Instant::now() + Duration::from_secs(secs as u64) + T;
            while lat.len() < expected && Instant::now() < deadline {
                match w.poll().await {
                    Seen::Rows(ts) => {
                        let now = now_ms();
                        lat.extend(ts.into_iter().map(|ts| (now - ts) as f64));
                    }
                    Seen::Total(total) => {
                        // Events are processed in order (one partition):
                        // the first `total` sent are visible now.
                        let now = now_ms();
                        let sent = sent_at.lock();
                        for ts in sent.iter().take(total.min(sent.len())).skip(accounted) {
                            lat.push((now - ts) as f64);
                        }
                        accounted = accounted.max(total.min(sent.len()));
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            lat
        });
        let _ = tx.send(true);
        let delivered = producer.join().expect("producer thread");
        let ran = job_task.join();
        if let Err(e) = delivered {
            return self.problem(format!("{} latency producer: {e}", job.label()));
        }
        match ran {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return self.problem(format!("{} (latency run): {e}", job.label())),
            Err(_) => return self.problem(format!("{} (latency run) panicked", job.label())),
        }
        if lat.len() != expected {
            return self.problem(format!(
                "{} latency run: saw {} of {expected} rows",
                job.label(),
                lat.len()
            ));
        }
        let mut lat = lat;
        lat.sort_by(f64::total_cmp);
        let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
        Some((q(0.5), q(0.99), q(1.0), lat.len()))
    }
}

/// RSS growth of a windowed aggregation holding `keys` live keys, in
/// bytes per key.
fn memory_per_key(keys: usize) -> (f64, usize) {
    let plan = JobPlan::from_toml(
        r#"[job]
name = "mem"
[[source]]
name = "events"
topics = ["events"]
event_time = { field = "ts", format = "epoch_millis" }
watermark_delay = "1h"
[[operator]]
name = "by_user"
type = "key_by"
by = "user"
[[operator]]
name = "per_minute"
type = "window"
window = "tumbling"
size = "1m"
max_windows = 100000000
aggregates = ["count(*) AS n", "sum(amount) AS total"]
output_mode = "append"
[[sink]]
name = "out"
type = "console"
"#,
    )
    .expect("memory plan");
    let mut ex = Executor::new(plan, BTreeMap::new()).expect("executor");
    let pid = std::process::id();
    let ts = now_ms();
    let before = procfs::rss(pid).0;
    let chunk = 100_000;
    let mut i = 0;
    while i < keys {
        let records: Vec<SourceRecord> = (i..(i + chunk).min(keys))
            .map(|k| SourceRecord {
                meta: SourceMeta {
                    key: None,
                    headers: Vec::new(),
                    topic: "events".into(),
                    partition: 0,
                    offset: k as i64,
                    timestamp_ms: ts,
                },
                value: format!(r#"{{"user":"user-{k:09}","amount":1.5,"ts":{ts}}}"#)
                    .into_bytes()
                    .into(),
            })
            .collect();
        let out = ex
            .run_batch(&BTreeMap::from([("events".to_string(), records)]), ts)
            .expect("memory batch");
        assert!(out.dead_letters.is_empty(), "memory phase: dead letters");
        i += chunk;
    }
    let after = procfs::rss(pid).0;
    // The state must really be there: a snapshot holds every key.
    let snapshot = ex.snapshot().expect("snapshot").to_string();
    let held = snapshot
        .match_indices("user-")
        .filter_map(|(i, _)| snapshot.get(i..i + 14))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let grew = after.saturating_sub(before) as f64;
    (grew / keys.max(1) as f64, held)
}

/// mimalloc's `purge_delay` option (index 15 in libmimalloc-sys 0.1.49's v3
/// `mi_option_e`), set to -1 as `rivulet stream run` does (cli/src/stream.rs).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
}

/// `PR_SET_THP_DISABLE` of prctl(2).
const PR_SET_THP_DISABLE: std::ffi::c_int = 41;

fn main() {
    // No transparent huge pages, first thing, as `rivulet` does for every command
    // (cli/src/main.rs): with them, a job's heap churn (each batch's rows) kept
    // faulting in 2 MiB pages the kernel zeroes — clear_page was a tenth to a quarter
    // of a filter job's samples in perf. `STREAMS_BENCH_THP=1` keeps them, to compare.
    if std::env::var("STREAMS_BENCH_THP").map_or(true, |v| v != "1") {
        // SAFETY: prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) only sets a flag of this process.
        let r = unsafe { prctl(PR_SET_THP_DISABLE, 1 as std::ffi::c_ulong, 0u64, 0u64, 0u64) };
        if r != 0 {
            eprintln!("bench: cannot turn transparent huge pages off");
        }
    }
    // SAFETY: only stores an option value; -1 (never purge) is a valid one.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    // RUST_LOG=rivulet_streams=debug shows each batch's phases (poll, log, run, commit).
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let plan = Plan::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let bin = rivulet_bin();
    let log = target_dir().join("streams-bench-broker.log");
    let broker =
        BrokerProcess::start_in(&bin, bench_dir(), log.clone(), &[], &[("NO_COLOR", "1")], T);
    let pg = TestPostgres::start();
    let pg_url = pg.create_database("bench");
    std::thread::sleep(Duration::from_secs(1));
    let (_, v) = rdkafka::util::get_rdkafka_version();
    println!(
        "streams bench{}: N = {} events of {} B, 1 partition; rdkafka 0.39 (librdkafka {v}); \
         broker {} (pid {}); {} cores, load average {}; transparent huge pages {}",
        if plan.quick { " (--quick)" } else { "" },
        plan.records,
        jobs::EVENT_BYTES,
        bin.display(),
        broker.pid(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        procfs::loadavg(),
        if std::env::var("STREAMS_BENCH_THP").is_ok_and(|v| v == "1") {
            "on (STREAMS_BENCH_THP=1)"
        } else {
            "off"
        },
    );
    let mut b = Bench {
        plan,
        rt,
        broker,
        pg,
        pg_url,
        work: tempfile::tempdir_in(bench_dir()).expect("work dir"),
        runs: 0,
        problems: Vec::new(),
    };
    let n = b.plan.records;
    let jobs = b.plan.jobs();

    // 1. Throughput.
    b.fill("events", n);
    let mut ceiling: Option<Cost> = None;
    let mut pipe: Option<Cost> = None;
    let mut best: BTreeMap<&'static str, Cost> = BTreeMap::new();
    for _ in 0..b.plan.repeat {
        let c = b.ceiling("events", n);
        ceiling = Some(ceiling.map_or(c, |b| b.best(c)));
        if jobs.iter().any(|j| j.slug().starts_with("kafka")) {
            let c = b.pipe("events", n);
            pipe = Some(pipe.map_or(c, |b| b.best(c)));
        }
        for &job in &jobs {
            if let Some(c) = b.throughput(job, "events", n) {
                let e = best.entry(job.slug()).or_insert(c);
                *e = e.best(c);
            }
        }
    }
    let ceiling = ceiling.unwrap_or(Cost {
        elapsed: Duration::ZERO,
        cpu: Duration::ZERO,
        broker_cpu: Duration::ZERO,
    });
    let rate = |d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let per_record = |d: Duration| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    println!();
    println!(
        "throughput (best of {}; at most {} records per batch):",
        b.plan.repeat, b.plan.batch
    );
    println!(
        "  {:<44} {:>12} {:>8} {:>12} {:>12}",
        "", "events/s", "ratio", "cpu µs/rec", "broker µs/rec"
    );
    let row = |label: &str, c: &Cost| {
        println!(
            "  {:<44} {:>12.0} {:>8.2} {:>12.2} {:>12.2}",
            label,
            rate(c.elapsed),
            rate(c.elapsed) / rate(ceiling.elapsed),
            per_record(c.cpu),
            per_record(c.broker_cpu)
        );
    };
    row("ceiling: rdkafka BaseConsumer loop", &ceiling);
    if let Some(p) = &pipe {
        row("reference: hand-written filter → Kafka loop", p);
    }
    for &job in &jobs {
        if let Some(c) = best.get(job.slug()) {
            row(job.label(), c);
        }
    }
    if let (Some(a), Some(e)) = (best.get("kafka-alo"), best.get("kafka-eos")) {
        println!(
            "  exactly-once ÷ at-least-once (kafka sink): {:.2}",
            rate(e.elapsed) / rate(a.elapsed)
        );
    }

    // 2. Latency.
    println!();
    println!(
        "end-to-end latency, {} events/s for {} s (produce → visible in the sink), ms:",
        b.plan.rate, b.plan.secs
    );
    println!(
        "  {:<44} {:>8} {:>8} {:>8} {:>8}",
        "", "p50", "p99", "max", "rows"
    );
    for &job in &jobs {
        if let Some((p50, p99, max, rows)) = b.latency(job) {
            println!(
                "  {:<44} {p50:>8.0} {p99:>8.0} {max:>8.0} {rows:>8}",
                job.label()
            );
        }
    }

    // 3. Memory.
    let (per_key, held) = memory_per_key(b.plan.keys);
    println!();
    println!(
        "memory: {} live window keys (one tumbling window, count + sum): {:.0} B of RSS per key \
         ({:.0} MiB per million keys)",
        b.plan.keys,
        per_key,
        per_key * 1e6 / (1024.0 * 1024.0)
    );
    if held != b.plan.keys {
        b.problems.push(format!(
            "memory phase: the snapshot holds {held} keys, expected {}",
            b.plan.keys
        ));
    }

    stop_and_report(&mut b.broker, &log);
    if !b.problems.is_empty() {
        eprintln!("{} problem(s):", b.problems.len());
        for p in &b.problems {
            eprintln!("  {p}");
        }
        std::process::exit(1);
    }
}
