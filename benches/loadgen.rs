//! End-to-end load generator (a plain harness, not criterion): a real Kafka
//! client — rdkafka 0.39, i.e. librdkafka — producing to and consuming from
//! the `rivulet` broker, measured side by side with the same client code
//! against a minimal Kafka-protocol sink, which shows the client-side ceiling
//! on this machine. Read the figures as ratios: the machine is shared.
//!
//! - The broker under test is the release `rivulet` binary run as a separate
//!   process (so its RSS and CPU are its own): `$RIVULET_BIN`, or
//!   `target/release/rivulet`, built with `cargo build --release -p
//!   rivulet-cli --bin rivulet` when missing or older than the sources.
//!   It listens on free loopback ports with a temp data dir (under
//!   `$RIVULET_BENCH_DIR` if set), default config otherwise: acks=all
//!   therefore fsyncs before acknowledging (`flush.policy = on-ack`). Its
//!   stderr goes to `target/loadgen-broker.log`.
//! - The sink is in this process: one thread per connection on loopback,
//!   answering ApiVersions, Metadata (one broker; any topic has one
//!   partition), Produce (success at once, the batches kept in memory as
//!   they arrived) and Fetch (whole batches from that memory, base offsets
//!   patched into the copy, long-polling on a condvar), at the API versions
//!   Rivulet advertises. Its CPU counts as client CPU.
//! - Per scenario {record size} x {acks} x {linger.ms}, two runs per target
//!   alternating Rivulet and sink, the fastest produce and the fastest
//!   consume of each reported (other work only slows a run down). A run: a
//!   fresh one-partition topic, a warm-up of 1% of the records (at most
//!   1,000, not measured), then N records with no key and a value of S bytes
//!   sent as fast as the producer queue takes them (a `ThreadedProducer`,
//!   compression none, `queue.buffering.max.messages` 10,000, librdkafka
//!   defaults otherwise, e.g. batch.size 1 MB). Latency is per record, from
//!   the enqueue that succeeded to its delivery report, so under this
//!   saturating load it includes time queued in the client (as
//!   `kafka-producer-perf-test`'s does). The queue is a tenth of librdkafka's
//!   default because at 100,000 p50 is mostly queue depth / throughput
//!   (100-400 ms at 1 KiB on this machine) and says little about the broker,
//!   while throughput measured the same or lower. Then a `BaseConsumer`
//!   reads the N records back from their first offset
//!   (`fetch.queue.backoff.ms` 10: librdkafka's default pauses 1 s whenever
//!   its prefetch queue is full). MB/s counts record values only, MB = 10^6
//!   bytes. CPU is % of one core over the phase (USER_HZ = 100 assumed),
//!   `client/broker`.
//! - Broker RSS (`/proc/<pid>/status`): idle, after start and before any
//!   load; peak per scenario (VmHWM, reset through `clear_refs` before each)
//!   and overall.
//! - A raw loopback TCP copy of the largest scenario's bytes, for the
//!   transport ceiling.
//!
//! Knobs (environment): `LOADGEN_SIZES=100,1024` (bytes),
//! `LOADGEN_RECORDS=3000000,1000000` (one value, or one per size),
//! `LOADGEN_ACKS=1,all`, `LOADGEN_LINGER_MS=5` (a list: more scenarios),
//! `LOADGEN_QUEUE=10000` (the producer queue, in records), `LOADGEN_REPEAT=2`
//! (runs per target), `LOADGEN_QUICK=1` (or `-- --quick`: a tenth of N, one
//! run).
//!
//! Run: `cargo bench --bench loadgen`.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use rustix::process::{kill_process, Pid, Signal};

#[path = "common/mod.rs"]
mod common;
use common::{bench_dir, free_port, rivulet_bin, target_dir};

/// Upper bound on any single wait; a run that exceeds it is broken.
const T: Duration = Duration::from_secs(120);
const MB: f64 = 1e6;

// ---- the plan ----

struct Plan {
    sizes: Vec<usize>,
    records: Vec<usize>,
    acks: Vec<String>,
    lingers: Vec<u64>,
    /// librdkafka's `queue.buffering.max.messages`.
    queue: u64,
    /// Runs per target and scenario, alternating; the best is reported.
    repeat: usize,
    quick: bool,
}

fn env_list(name: &str) -> Option<Vec<String>> {
    let v = std::env::var(name).ok()?;
    let items: Vec<String> = v
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    (!items.is_empty()).then_some(items)
}

fn env_numbers<N: std::str::FromStr>(name: &str) -> Option<Vec<N>> {
    env_list(name).map(|items| {
        items
            .iter()
            .map(|s| {
                s.replace('_', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: '{s}' is not a non-negative integer"))
            })
            .collect()
    })
}

impl Plan {
    fn from_env() -> Plan {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var("LOADGEN_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let sizes: Vec<usize> = env_numbers("LOADGEN_SIZES").unwrap_or(vec![100, 1024]);
        assert!(
            sizes.iter().all(|&s| s > 0),
            "LOADGEN_SIZES: sizes must be > 0"
        );
        let records = match env_numbers::<usize>("LOADGEN_RECORDS") {
            Some(r) if r.len() == 1 => vec![r[0]; sizes.len()],
            Some(r) if r.len() == sizes.len() => r,
            Some(_) => panic!("LOADGEN_RECORDS: give one count, or one per LOADGEN_SIZES entry"),
            None => sizes.iter().map(|&s| default_records(s, quick)).collect(),
        };
        assert!(
            records.iter().all(|&n| n > 0),
            "LOADGEN_RECORDS must be > 0"
        );
        let acks = env_list("LOADGEN_ACKS").unwrap_or(vec!["1".into(), "all".into()]);
        for a in &acks {
            assert!(
                matches!(a.as_str(), "0" | "1" | "all" | "-1"),
                "LOADGEN_ACKS: '{a}' is not 0, 1 or all"
            );
        }
        let lingers = env_numbers("LOADGEN_LINGER_MS").unwrap_or(vec![5]);
        let queue = env_numbers("LOADGEN_QUEUE").map_or(10_000, |q: Vec<u64>| q[0]);
        let repeat =
            env_numbers("LOADGEN_REPEAT").map_or(if quick { 1 } else { 2 }, |r: Vec<usize>| r[0]);
        assert!(repeat > 0, "LOADGEN_REPEAT must be > 0");
        Plan {
            sizes,
            records,
            acks,
            lingers,
            queue,
            repeat,
            quick,
        }
    }
}

/// About 300 MB of values per scenario at 100 B, 1 GB at 1 KiB: a few
/// seconds per phase on 2 cores (librdkafka sends 100 B records at over a
/// million a second).
fn default_records(size: usize, quick: bool) -> usize {
    let n = if size <= 512 { 3_000_000 } else { 1_000_000 };
    if quick {
        n / 10
    } else {
        n
    }
}

/// `rivulet` running as a child process on free loopback ports.
struct BrokerProcess {
    child: Child,
    bootstrap: String,
    log: PathBuf,
    data: tempfile::TempDir,
}

impl BrokerProcess {
    fn start(bin: &Path, log: PathBuf) -> BrokerProcess {
        let data = bench_dir();
        let port = free_port();
        let stderr = fs::File::create(&log).expect("broker log file");
        let child = Command::new(bin)
            .arg("--set")
            .arg(format!("listeners=127.0.0.1:{port}"))
            .arg("--set")
            .arg(format!("controller.listener=127.0.0.1:{}", free_port()))
            .arg("--set")
            .arg(format!("data.dir={}", data.path().display()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("broker log file"))
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut b = BrokerProcess {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
            log,
            data,
        };
        b.wait_ready();
        b
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "the broker exited ({status}); last lines of {}:\n{}",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    /// Until a Metadata request through rdkafka lists a broker.
    fn wait_ready(&mut self) {
        let client: BaseConsumer = client_config(&self.bootstrap)
            .create()
            .expect("metadata client");
        let deadline = Instant::now() + T;
        loop {
            self.check_alive();
            match client.fetch_metadata(None, Duration::from_secs(1)) {
                Ok(md) if !md.brokers().is_empty() => return,
                _ if Instant::now() > deadline => panic!("the broker never answered Metadata"),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// `(VmRSS, VmHWM)` in bytes.
    fn rss(&self) -> (u64, u64) {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kib| kib * 1024)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Reset VmHWM to the current RSS (Linux 4.0+); false if refused.
    fn reset_peak(&self) -> bool {
        fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }

    /// Stop with SIGTERM (a clean shutdown); SIGKILL after 20 s.
    fn stop(&mut self) -> String {
        let _ = kill_process(Pid::from_child(&self.child), Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!("exited after SIGTERM: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        "did NOT exit within 20 s of SIGTERM; killed".into()
    }
}

impl Drop for BrokerProcess {
    /// A panicking run must not leave the broker behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// User + system CPU time of a process (`self` or a pid).
fn cpu_time(pid: &str) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => Duration::from_millis((u + s) * 10),
        _ => Duration::ZERO,
    }
}

/// CPU used by this process and (optionally) the broker over a phase.
struct CpuMeter {
    broker: Option<String>,
    t0: Instant,
    client0: Duration,
    broker0: Duration,
}

impl CpuMeter {
    fn start(broker: Option<u32>) -> CpuMeter {
        let broker = broker.map(|p| p.to_string());
        CpuMeter {
            t0: Instant::now(),
            client0: cpu_time("self"),
            broker0: broker.as_deref().map_or(Duration::ZERO, cpu_time),
            broker,
        }
    }

    /// `(client %, broker %)` of one core.
    fn stop(&self) -> (f64, Option<f64>) {
        let wall = self.t0.elapsed().as_secs_f64().max(1e-9);
        let pct = |d: Duration| 100.0 * d.as_secs_f64() / wall;
        (
            pct(cpu_time("self").saturating_sub(self.client0)),
            self.broker
                .as_deref()
                .map(|p| pct(cpu_time(p).saturating_sub(self.broker0))),
        )
    }
}

// ---- clients ----

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "30000");
    c
}

fn create_topic(rt: &tokio::runtime::Runtime, broker: &mut BrokerProcess, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = client_config(&broker.bootstrap)
        .create()
        .expect("admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let deadline = Instant::now() + T;
    loop {
        broker.check_alive();
        let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
        let res = rt.block_on(admin.create_topics(&[new], &opts));
        match res.as_ref().map(|r| r.first()) {
            Ok(Some(Ok(_))) => break,
            Ok(Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists)))) => break,
            _ if Instant::now() > deadline => panic!("cannot create {topic}: {res:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    wait_for_leader(&broker.bootstrap, topic);
}

fn wait_for_leader(bootstrap: &str, topic: &str) {
    let client: BaseConsumer = client_config(bootstrap).create().expect("client");
    let deadline = Instant::now() + T;
    loop {
        let ok = client
            .fetch_metadata(Some(topic), Duration::from_secs(1))
            .is_ok_and(|md| {
                md.topics().first().is_some_and(|t| {
                    t.error().is_none() && t.partitions().first().is_some_and(|p| p.leader() >= 0)
                })
            });
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{topic} never got a leader");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the producer's callbacks saw.
struct Deliveries {
    base: Instant,
    latencies_us: Mutex<Vec<u32>>,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
    client_errors: AtomicU64,
}

impl Deliveries {
    fn sent_ns(&self) -> usize {
        self.base.elapsed().as_nanos() as usize
    }
}

struct LatencyContext(Arc<Deliveries>);

impl ClientContext for LatencyContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if self.0.client_errors.fetch_add(1, Ordering::Relaxed) < 5 {
            eprintln!("loadgen: producer error: {error}: {reason}");
        }
    }
}

impl ProducerContext for LatencyContext {
    /// Nanoseconds from `Deliveries::base` to the enqueue.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let d = &self.0;
        match result {
            Ok(_) => {
                let us = (d.sent_ns().saturating_sub(sent_ns) / 1000).min(u32::MAX as usize);
                d.latencies_us
                    .lock()
                    .expect("latencies lock")
                    .push(us as u32);
            }
            Err((e, _)) => {
                d.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = d.first_failure.lock().expect("failure lock");
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

struct ProduceStats {
    elapsed: Duration,
    /// Sorted, microseconds.
    latencies_us: Vec<u32>,
    failed: u64,
    first_failure: Option<String>,
    client_errors: u64,
    cpu: (f64, Option<f64>),
}

/// Send `n` records of `size` bytes (after `warmup` unmeasured ones).
fn produce(
    bootstrap: &str,
    topic: &str,
    s: &Scenario,
    warmup: usize,
    broker_pid: Option<u32>,
) -> ProduceStats {
    let d = Arc::new(Deliveries {
        base: Instant::now(),
        latencies_us: Mutex::new(Vec::with_capacity(s.records + warmup)),
        failed: AtomicU64::new(0),
        first_failure: Mutex::new(None),
        client_errors: AtomicU64::new(0),
    });
    let producer: ThreadedProducer<LatencyContext> = client_config(bootstrap)
        .set("acks", &s.acks)
        .set("linger.ms", s.linger_ms.to_string())
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", s.queue.to_string())
        .set("message.timeout.ms", T.as_millis().to_string())
        .create_with_context(LatencyContext(d.clone()))
        .expect("producer");
    let value: Vec<u8> = (0..s.size).map(|i| b'a' + (i % 26) as u8).collect();
    let send_all = |n: usize| {
        for _ in 0..n {
            let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, d.sent_ns())
                .partition(0)
                .payload(&value[..]);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        std::thread::sleep(Duration::from_micros(200));
                        record = r.delivery_opaque(d.sent_ns());
                    }
                    Err((e, _)) => panic!("produce to {topic}: {e}"),
                }
            }
        }
        producer.flush(T).expect("flush");
    };
    send_all(warmup);
    d.latencies_us.lock().expect("latencies lock").clear();
    let failed_warmup = d.failed.load(Ordering::Relaxed);
    let cpu = CpuMeter::start(broker_pid);
    let t0 = Instant::now();
    send_all(s.records);
    let elapsed = t0.elapsed();
    let cpu = cpu.stop();
    let mut latencies_us = std::mem::take(&mut *d.latencies_us.lock().expect("latencies lock"));
    latencies_us.sort_unstable();
    let first_failure = d.first_failure.lock().expect("failure lock").clone();
    ProduceStats {
        elapsed,
        latencies_us,
        failed: d.failed.load(Ordering::Relaxed) - failed_warmup,
        first_failure,
        client_errors: d.client_errors.load(Ordering::Relaxed),
        cpu,
    }
}

struct ConsumeStats {
    elapsed: Duration,
    records: usize,
    bytes: u64,
    errors: u64,
    cpu: (f64, Option<f64>),
}

/// Read `n` records from `offset` of partition 0.
fn consume(
    bootstrap: &str,
    topic: &str,
    offset: i64,
    n: usize,
    broker_pid: Option<u32>,
) -> ConsumeStats {
    // librdkafka wants a group id even for assign(); nothing is committed.
    let consumer: BaseConsumer = client_config(bootstrap)
        .set("group.id", "rivulet-loadgen")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // The default (1 s) pause after the prefetch queue fills would be
        // most of what a fast consumer measures.
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .expect("consumer");
    // Connect before the clock starts.
    let _ = consumer.fetch_metadata(Some(topic), Duration::from_secs(10));
    let cpu = CpuMeter::start(broker_pid);
    let t0 = Instant::now();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("partition list");
    consumer.assign(&tpl).expect("assign");
    let (mut records, mut bytes, mut errors) = (0usize, 0u64, 0u64);
    let deadline = t0 + T;
    while records < n && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload().map_or(0, |p| p.len() as u64);
            }
            Some(Err(e)) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("loadgen: consumer error: {e}");
                }
            }
            None => {}
        }
    }
    ConsumeStats {
        elapsed: t0.elapsed(),
        records,
        bytes,
        errors,
        cpu: cpu.stop(),
    }
}

/// Bytes/s of moving `bytes` through one loopback TCP connection.
fn tcp_copy(bytes: u64) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let mut s = TcpStream::connect(addr).expect("connect");
    let chunk = vec![7u8; 64 << 10];
    let t0 = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        s.write_all(&chunk[..n]).expect("write");
        left -= n as u64;
    }
    drop(s);
    let got = reader.join().expect("reader");
    assert_eq!(got, bytes);
    bytes as f64 / t0.elapsed().as_secs_f64()
}

// ---- scenarios and the report ----

struct Scenario {
    size: usize,
    records: usize,
    acks: String,
    linger_ms: u64,
    queue: u64,
}

impl Scenario {
    fn label(&self) -> String {
        format!("{} B acks={} L={}", self.size, self.acks, self.linger_ms)
    }

    fn topic(&self) -> String {
        format!(
            "loadgen-{}b-acks{}-l{}",
            self.size, self.acks, self.linger_ms
        )
    }
}

struct Run {
    produce: ProduceStats,
    consume: ConsumeStats,
    /// Failed deliveries, client errors, records not read back.
    problems: Vec<String>,
}

impl Run {
    fn consume_rate(&self) -> f64 {
        self.consume.bytes as f64 / self.consume.elapsed.as_secs_f64()
    }
}

/// The fastest produce and the fastest consume of `runs` (noise from other
/// work only ever slows a run down), with every run's problems.
fn best(runs: Vec<Run>) -> Run {
    let mut runs = runs.into_iter();
    let mut best = runs.next().expect("at least one run");
    for r in runs {
        let rate = r.consume_rate();
        best.problems.extend(r.problems);
        if r.produce.elapsed < best.produce.elapsed {
            best.produce = r.produce;
        }
        if rate > best.consume_rate() {
            best.consume = r.consume;
        }
    }
    best
}

/// Nearest-rank percentile of a sorted slice, in ms.
fn pct_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e3
}

/// `[rec/s, MB/s, p50, p99, p999, max, produce s, consume MB/s]`.
fn figures(s: &Scenario, r: &Run) -> [f64; 8] {
    let secs = r.produce.elapsed.as_secs_f64();
    let l = &r.produce.latencies_us;
    [
        s.records as f64 / secs,
        (s.records * s.size) as f64 / secs / MB,
        pct_ms(l, 50.0),
        pct_ms(l, 99.0),
        pct_ms(l, 99.9),
        pct_ms(l, 100.0),
        secs,
        r.consume.bytes as f64 / r.consume.elapsed.as_secs_f64() / MB,
    ]
}

const COLS: [&str; 10] = [
    "rec/s",
    "MB/s",
    "p50 ms",
    "p99 ms",
    "p999 ms",
    "max ms",
    "prod s",
    "cons MB/s",
    "CPU prod",
    "CPU cons",
];

fn line(label: &str, target: &str, cells: &[String]) {
    let mut out = format!("{label:<22}{target:<9}");
    for c in cells {
        out.push_str(&format!("{c:>10}"));
    }
    println!("{}", out.trim_end());
}

/// `client/broker` CPU, % of one core.
fn cpu_cell(c: (f64, Option<f64>)) -> String {
    match c.1 {
        Some(b) => format!("{:.0}/{b:.0}", c.0),
        None => format!("{:.0}/-", c.0),
    }
}

fn print_run(label: &str, target: &str, s: &Scenario, r: &Run) {
    let f = figures(s, r);
    line(
        label,
        target,
        &[
            format!("{:.0}", f[0]),
            format!("{:.1}", f[1]),
            format!("{:.2}", f[2]),
            format!("{:.2}", f[3]),
            format!("{:.2}", f[4]),
            format!("{:.2}", f[5]),
            format!("{:.2}", f[6]),
            format!("{:.1}", f[7]),
            cpu_cell(r.produce.cpu),
            cpu_cell(r.consume.cpu),
        ],
    );
    for p in &r.problems {
        println!("{:31}!! {p}", "");
    }
}

fn print_ratio(label: &str, s: &Scenario, rivulet: &Run, sink: &Run) {
    let (a, b) = (figures(s, rivulet), figures(s, sink));
    let cells: Vec<String> = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| format!("{:.2}x", x / y))
        .collect();
    line(label, "ratio", &cells);
}

fn run_one(bootstrap: &str, topic: &str, s: &Scenario, broker_pid: Option<u32>) -> Run {
    let warmup = (s.records / 100).clamp(1, 1000);
    let produce = produce(bootstrap, topic, s, warmup, broker_pid);
    let consume = consume(bootstrap, topic, warmup as i64, s.records, broker_pid);
    let problems = [
        (produce.failed > 0).then(|| {
            format!(
                "{} deliveries FAILED (first: {})",
                produce.failed,
                produce.first_failure.as_deref().unwrap_or("?")
            )
        }),
        (produce.client_errors > 0)
            .then(|| format!("{} producer client errors", produce.client_errors)),
        (consume.records < s.records)
            .then(|| format!("consumed only {} of {} records", consume.records, s.records)),
        (consume.errors > 0).then(|| format!("{} consumer errors", consume.errors)),
    ];
    Run {
        produce,
        consume,
        problems: problems.into_iter().flatten().collect(),
    }
}

/// `text` without terminal colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

/// The 1/5/15-minute load averages: other work on this machine.
fn loadavg() -> String {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

fn main() {
    let plan = Plan::from_env();
    let mut scenarios = Vec::new();
    for (&size, &records) in plan.sizes.iter().zip(&plan.records) {
        for acks in &plan.acks {
            for &linger_ms in &plan.lingers {
                scenarios.push(Scenario {
                    size,
                    records,
                    acks: acks.clone(),
                    linger_ms,
                    queue: plan.queue,
                });
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let bin = rivulet_bin();
    let log = target_dir().join("loadgen-broker.log");
    let mut broker = BrokerProcess::start(&bin, log.clone());
    // Let start-up settle (registration, first heartbeats) before sampling.
    std::thread::sleep(Duration::from_secs(1));
    let (idle_rss, _) = broker.rss();
    let (_, v) = rdkafka::util::get_rdkafka_version();
    println!(
        "loadgen{}: rdkafka 0.39 (librdkafka {v}), 1 partition, no key, compression none; \
         {} (pid {}) on {}, data dir {}; {} cores, load average {}",
        if plan.quick { " (--quick)" } else { "" },
        bin.display(),
        broker.pid(),
        broker.bootstrap,
        broker.data.path().display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg(),
    );
    println!(
        "best of {} alternating runs per target (fastest produce, fastest consume); latency: \
         enqueue -> delivery report under saturating load (producer queue {} records); MB = \
         10^6 B of values; CPU = % of one core, client/broker (client = this process incl. the \
         sink); ratio = rivulet / sink",
        plan.repeat, plan.queue
    );
    println!();
    let mut header = format!("{:<22}{:<9}", "scenario", "target");
    for c in COLS {
        header.push_str(&format!("{c:>10}"));
    }
    println!("{header}");

    let mut peaks = Vec::new();
    let mut overall_peak = 0u64;
    for s in &scenarios {
        let (mut rivulet, mut sink_runs) = (Vec::new(), Vec::new());
        let (mut peak, mut rss_after, mut reset) = (0, 0, true);
        for rep in 0..plan.repeat {
            let topic = format!("{}-r{rep}", s.topic());
            create_topic(&rt, &mut broker, &topic);
            overall_peak = overall_peak.max(broker.rss().1);
            reset &= broker.reset_peak();
            rivulet.push(run_one(&broker.bootstrap, &topic, s, Some(broker.pid())));
            broker.check_alive();
            let (rss_now, hwm) = broker.rss();
            (peak, rss_after) = (peak.max(hwm), rss_now);
            overall_peak = overall_peak.max(hwm);
            let sink = sink::Sink::start(&topic);
            sink_runs.push(run_one(&sink.bootstrap(), &topic, s, None));
        }
        peaks.push((s.label(), peak, rss_after, reset));
        let (rivulet, sink_run) = (best(rivulet), best(sink_runs));
        print_run(&s.label(), "rivulet", s, &rivulet);
        print_run("", "sink", s, &sink_run);
        print_ratio("", s, &rivulet, &sink_run);
    }
    println!();

    let largest = scenarios
        .iter()
        .map(|s| (s.records * s.size) as u64)
        .max()
        .unwrap_or(0);
    if largest > 0 {
        println!(
            "loopback TCP copy of {:.0} MB (64 KiB writes): {:.0} MB/s",
            largest as f64 / MB,
            tcp_copy(largest) / MB
        );
    }
    println!(
        "broker RSS idle (after start, before load): {}",
        mib(idle_rss)
    );
    for (label, hwm, now, reset) in &peaks {
        println!(
            "broker RSS {label:<22} peak {} (VmHWM{}), after its last run {}",
            mib(*hwm),
            if *reset {
                " since scenario start"
            } else {
                " since process start"
            },
            mib(*now),
        );
    }
    println!("broker RSS peak over all runs: {}", mib(overall_peak));
    println!("load average at the end: {}", loadavg());
    let stopped = broker.stop();
    let text = strip_ansi(&fs::read_to_string(&log).unwrap_or_default());
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    println!(
        "broker {stopped}; {} WARN/ERROR lines in {}",
        warnings.len(),
        log.display()
    );
    for w in warnings.iter().take(10) {
        println!("  {w}");
    }
}

mod sink {
    //! The client-side ceiling: a minimal Kafka-protocol broker on loopback,
    //! one thread per connection, that keeps produced batches in memory as
    //! they arrived (no copy) and serves them back to Fetch. Anything it
    //! does not understand closes the connection with a message on stderr.

    use std::io::{self, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use bytes::{BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, MetadataRequest,
        MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader, RequestKind,
        ResponseHeader, ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use kafka_protocol::ResponseError as E;

    const NODE_ID: i32 = 1;
    const MAX_FRAME: usize = 100 << 20;
    /// The APIs served, at the versions Rivulet serves them.
    const APIS: [ApiKey; 4] = [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
    ];
    /// Size of a record batch header up to and including its record count.
    const BATCH_HEADER: usize = 61;

    /// One partition: each batch as the producer sent it, zero-copy slices
    /// of the request frames, with the base offset assigned to it.
    #[derive(Default)]
    struct Log {
        batches: Vec<(i64, Bytes)>,
        next_offset: i64,
    }

    impl Log {
        /// Append the batches in `records`; the first offset, or why not.
        fn append(&mut self, records: &Bytes) -> Result<i64, &'static str> {
            let first = self.next_offset;
            let mut next = first;
            let mut pos = 0;
            let mut appended = Vec::new();
            while pos < records.len() {
                let h = records
                    .get(pos..pos + BATCH_HEADER)
                    .ok_or("truncated batch header")?;
                let len = i32::from_be_bytes([h[8], h[9], h[10], h[11]]);
                let delta = i32::from_be_bytes([h[23], h[24], h[25], h[26]]);
                let size = 12 + len.max(0) as usize;
                if len < (BATCH_HEADER - 12) as i32 || delta < 0 || pos + size > records.len() {
                    return Err("malformed record batch");
                }
                appended.push((next, records.slice(pos..pos + size)));
                next += delta as i64 + 1;
                pos += size;
            }
            if appended.is_empty() {
                return Err("no record batches");
            }
            self.batches.append(&mut appended);
            self.next_offset = next;
            Ok(first)
        }

        /// Whole batches from the one holding `offset`, at least one, within
        /// `max` bytes otherwise; base offsets patched into the copy (the
        /// batch CRC does not cover them).
        fn read(&self, offset: i64, max: usize) -> Bytes {
            if offset < 0 || offset >= self.next_offset {
                return Bytes::new();
            }
            let i = self.batches.partition_point(|(b, _)| *b <= offset).max(1) - 1;
            let mut end = i;
            let mut len = 0;
            for (_, batch) in &self.batches[i..] {
                if end > i && len + batch.len() > max {
                    break;
                }
                len += batch.len();
                end += 1;
            }
            let mut out = BytesMut::with_capacity(len);
            for (base, batch) in &self.batches[i..end] {
                let at = out.len();
                out.extend_from_slice(batch);
                out[at..at + 8].copy_from_slice(&base.to_be_bytes());
            }
            out.freeze()
        }
    }

    struct Shared {
        topic: String,
        port: u16,
        log: Mutex<Log>,
        appended: Condvar,
    }

    /// A running sink; stops accepting when dropped (open connections end
    /// when their clients close them).
    pub struct Sink {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        accept: Option<JoinHandle<()>>,
    }

    impl Sink {
        /// Listen on a free loopback port; Metadata for all topics lists `topic`.
        pub fn start(topic: &str) -> Sink {
            let listener = TcpListener::bind("127.0.0.1:0").expect("sink bind");
            let addr = listener.local_addr().expect("sink addr");
            let shared = Arc::new(Shared {
                topic: topic.to_string(),
                port: addr.port(),
                log: Mutex::new(Log::default()),
                appended: Condvar::new(),
            });
            let stop = Arc::new(AtomicBool::new(false));
            let stopping = stop.clone();
            let accept = std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || {
                        if let Err(e) = serve(stream, &shared) {
                            // A client closing with unread data resets.
                            let closed = matches!(
                                e.kind(),
                                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                            );
                            if !closed {
                                eprintln!("loadgen sink: closing a connection: {e}");
                            }
                        }
                    });
                }
            });
            Sink {
                addr,
                stop,
                accept: Some(accept),
            }
        }

        pub fn bootstrap(&self) -> String {
            self.addr.to_string()
        }
    }

    impl Drop for Sink {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            let _ = TcpStream::connect(self.addr);
            if let Some(t) = self.accept.take() {
                let _ = t.join();
            }
        }
    }

    fn bad(msg: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, msg)
    }

    fn codec(what: &str, key: ApiKey, version: i16, e: impl std::fmt::Display) -> io::Error {
        bad(format!("{what} {key:?} v{version}: {e}"))
    }

    fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let mut reader = BufReader::with_capacity(1 << 20, stream.try_clone()?);
        let mut writer = stream;
        loop {
            let mut size = [0u8; 4];
            reader.read_exact(&mut size)?;
            let size = i32::from_be_bytes(size);
            if size < 8 || size as usize > MAX_FRAME {
                return Err(bad(format!("frame size {size}")));
            }
            let mut frame = BytesMut::zeroed(size as usize);
            reader.read_exact(&mut frame)?;
            if let Some(response) = handle(frame.freeze(), shared)? {
                writer.write_all(&response)?;
            }
        }
    }

    fn versions() -> Vec<ApiVersion> {
        APIS.iter()
            .filter_map(|k| {
                let r = rivulet_broker::api::supported(*k)?;
                Some(
                    ApiVersion::default()
                        .with_api_key(*k as i16)
                        .with_min_version(r.min)
                        .with_max_version(r.max),
                )
            })
            .collect()
    }

    fn handle(mut frame: Bytes, shared: &Shared) -> io::Result<Option<BytesMut>> {
        let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let key = ApiKey::try_from(raw_key).map_err(|_| bad(format!("API key {raw_key}")))?;
        let range = APIS
            .contains(&key)
            .then(|| rivulet_broker::api::supported(key))
            .flatten()
            .ok_or_else(|| bad(format!("unsupported API {key:?}")))?;
        if key == ApiKey::ApiVersions && version > range.max {
            let body = ApiVersionsResponse::default()
                .with_error_code(E::UnsupportedVersion.code())
                .with_api_keys(versions());
            return encode(key, 0, correlation_id, &ResponseKind::ApiVersions(body)).map(Some);
        }
        if version < range.min || version > range.max {
            return Err(bad(format!("{key:?} v{version}")));
        }
        RequestHeader::decode(&mut frame, key.request_header_version(version))
            .map_err(|e| codec("decode", key, version, e))?;
        let request = RequestKind::decode(key, &mut frame, version)
            .map_err(|e| codec("decode", key, version, e))?;
        let response = match request {
            RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(
                ApiVersionsResponse::default()
                    .with_api_keys(versions())
                    .with_finalized_features_epoch(-1),
            ),
            RequestKind::Metadata(r) => ResponseKind::Metadata(metadata(shared, r)),
            RequestKind::Produce(r) => {
                let acks = r.acks;
                let resp = produce(shared, r);
                if acks == 0 {
                    return Ok(None);
                }
                ResponseKind::Produce(resp)
            }
            RequestKind::Fetch(r) => ResponseKind::Fetch(fetch(shared, r)),
            _ => return Err(bad(format!("unexpected {key:?}"))),
        };
        encode(key, version, correlation_id, &response).map(Some)
    }

    fn encode(
        key: ApiKey,
        version: i16,
        correlation_id: i32,
        response: &ResponseKind,
    ) -> io::Result<BytesMut> {
        let header_version = if key == ApiKey::ApiVersions {
            0
        } else {
            key.response_header_version(version)
        };
        let mut out = BytesMut::with_capacity(256);
        out.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut out, header_version)
            .map_err(|e| codec("encode", key, version, e))?;
        response
            .encode(&mut out, version)
            .map_err(|e| codec("encode", key, version, e))?;
        let len = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        Ok(out)
    }

    fn metadata(shared: &Shared, req: MetadataRequest) -> MetadataResponse {
        let names: Vec<TopicName> = match req.topics {
            Some(t) if !t.is_empty() => t.into_iter().filter_map(|t| t.name).collect(),
            _ => vec![TopicName(StrBytes::from_string(shared.topic.clone()))],
        };
        let partition = MetadataResponsePartition::default()
            .with_leader_id(BrokerId(NODE_ID))
            .with_replica_nodes(vec![BrokerId(NODE_ID)])
            .with_isr_nodes(vec![BrokerId(NODE_ID)]);
        let topics = names
            .into_iter()
            .map(|name| {
                MetadataResponseTopic::default()
                    .with_name(Some(name))
                    .with_topic_id(uuid::Uuid::from_u128(1))
                    .with_partitions(vec![partition.clone()])
                    .with_topic_authorized_operations(i32::MIN)
            })
            .collect();
        MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(NODE_ID))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(shared.port as i32)])
            .with_cluster_id(Some(StrBytes::from_static_str("loadgen-sink")))
            .with_controller_id(BrokerId(NODE_ID))
            .with_topics(topics)
            .with_cluster_authorized_operations(i32::MIN)
    }

    fn produce(shared: &Shared, req: ProduceRequest) -> ProduceResponse {
        let mut topics = Vec::with_capacity(req.topic_data.len());
        for t in req.topic_data {
            let parts = t
                .partition_data
                .into_iter()
                .map(|p| {
                    let r = PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_log_append_time_ms(-1);
                    let appended = match (&p.records, p.index) {
                        (Some(records), 0) => shared.log.lock().expect("sink log").append(records),
                        _ => Err("no records, or not partition 0"),
                    };
                    match appended {
                        Ok(base) => r.with_base_offset(base),
                        Err(_) => r
                            .with_error_code(E::CorruptMessage.code())
                            .with_base_offset(-1),
                    }
                })
                .collect();
            topics.push(
                TopicProduceResponse::default()
                    .with_name(t.name)
                    .with_partition_responses(parts),
            );
        }
        shared.appended.notify_all();
        ProduceResponse::default().with_responses(topics)
    }

    fn fetch(shared: &Shared, req: FetchRequest) -> FetchResponse {
        let wait = Duration::from_millis(req.max_wait_ms.clamp(0, 30_000) as u64);
        let deadline = Instant::now() + wait;
        let mut log = shared.log.lock().expect("sink log");
        loop {
            let ready = req
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|p| p.fetch_offset < log.next_offset);
            let now = Instant::now();
            if ready || now >= deadline {
                break;
            }
            log = shared
                .appended
                .wait_timeout(log, deadline - now)
                .expect("sink log")
                .0;
        }
        let mut remaining = req.max_bytes.max(0) as usize;
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let parts = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let d = PartitionData::default()
                            .with_partition_index(p.partition)
                            .with_preferred_read_replica(BrokerId(-1))
                            .with_aborted_transactions((req.isolation_level == 1).then(Vec::new));
                        if p.partition != 0 {
                            return d
                                .with_error_code(E::UnknownTopicOrPartition.code())
                                .with_high_watermark(-1)
                                .with_last_stable_offset(-1)
                                .with_log_start_offset(-1)
                                .with_records(Some(Bytes::new()));
                        }
                        let limit = (p.partition_max_bytes.max(0) as usize).min(remaining);
                        let records = log.read(p.fetch_offset, limit);
                        remaining = remaining.saturating_sub(records.len());
                        d.with_high_watermark(log.next_offset)
                            .with_last_stable_offset(log.next_offset)
                            .with_records(Some(records))
                    })
                    .collect();
                FetchableTopicResponse::default()
                    .with_topic(t.topic.clone())
                    .with_topic_id(t.topic_id)
                    .with_partitions(parts)
            })
            .collect();
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics)
    }
}
