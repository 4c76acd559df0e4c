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
//!   `client/broker`; under each Rivulet run, the broker's CPU seconds per
//!   GB of values produced and consumed.
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
//! Layout: `main.rs` the plan and the run; `clients.rs` the measured
//! producer (the same code against both targets; the measured consumer, the
//! CPU meter and topic creation are shared with other benches in
//! `benches/common/`); `sink.rs` the in-process sink; `report.rs` the
//! figures and their table.
//!
//! Run: `cargo bench --bench loadgen`.

use std::time::Duration;

use rivulet_testkit::dirs::bench_dir;
use rivulet_testkit::process::BrokerProcess;
use rivulet_testkit::procfs;

#[path = "../common/mod.rs"]
mod common;
use common::broker::{create_topic, stop_and_report};
use common::clients::{consume, ReadSpec};
use common::{rivulet_bin, target_dir};

mod clients;
mod report;
mod sink;

use clients::{produce, tcp_copy};
use report::{best, mib, print_ratio, print_run, Run, COLS};

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

fn run_one(bootstrap: &str, topic: &str, s: &Scenario, broker_pid: Option<u32>) -> Run {
    let warmup = (s.records / 100).clamp(1, 1000);
    let produce = produce(bootstrap, topic, s, warmup, broker_pid);
    let consume = consume(
        &ReadSpec {
            bootstrap,
            topic,
            offset: warmup as i64,
            n: s.records,
            config: &[],
            settle: Duration::ZERO,
            timeout: T,
            broker_pid,
        },
        |_| {},
    );
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
    let mut broker =
        BrokerProcess::start_in(&bin, bench_dir(), log.clone(), &[], &[("NO_COLOR", "1")], T);
    // Let start-up settle (registration, first heartbeats) before sampling.
    std::thread::sleep(Duration::from_secs(1));
    let (idle_rss, _) = procfs::rss(broker.pid());
    let (_, v) = rdkafka::util::get_rdkafka_version();
    println!(
        "loadgen{}: rdkafka 0.39 (librdkafka {v}), 1 partition, no key, compression none; \
         {} (pid {}) on {}, data dir {}; {} cores, load average {}",
        if plan.quick { " (--quick)" } else { "" },
        bin.display(),
        broker.pid(),
        broker.bootstrap(),
        broker.data_dir().display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        procfs::loadavg(),
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
            create_topic(&rt, &mut broker, &topic, T);
            overall_peak = overall_peak.max(procfs::rss(broker.pid()).1);
            reset &= procfs::reset_peak_rss(broker.pid());
            rivulet.push(run_one(&broker.bootstrap(), &topic, s, Some(broker.pid())));
            broker.check_alive();
            let (rss_now, hwm) = procfs::rss(broker.pid());
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
    println!("load average at the end: {}", procfs::loadavg());
    stop_and_report(&mut broker, &log);
}
