//! Transactions benchmark (issue 11): what transactions cost a producer
//! and a read_committed reader, as ratios measured in the same run against
//! the same client without them. A plain harness, not criterion.
//!
//! - The broker under test is the release `rivulet` binary as its own
//!   process (`$RIVULET_BIN`, or `target/release/rivulet` built when
//!   missing or stale, as for `loadgen`), on free loopback ports with a
//!   temp data dir (under `$RIVULET_BENCH_DIR` if set) and the default
//!   config: acks=all fsyncs before acknowledging (`flush.policy =
//!   on-ack`). Its output goes to `target/txn-bench-broker.log`.
//! - The client is rdkafka 0.39 (librdkafka): a `ThreadedProducer` with
//!   `enable.idempotence=true`, acks=all, `linger.ms` 5, compression none,
//!   `queue.buffering.max.messages` 10,000; values of 1 KiB with no key, to
//!   one partition; MB = 10^6 bytes of values.
//! 1. Produce: the idempotent producer against a transactional one that
//!    commits every 1,000 records and one that commits every 100 ms (the
//!    commit is synchronous: the producer waits for `EndTxn`, as Kafka's
//!    `ProducerPerformance --transaction-duration-ms` does). Each run sends
//!    N records to a fresh topic after an unmeasured warm-up of 1% (at most
//!    1,000, in one transaction when transactional); the clock stops at the
//!    last commit (or flush). Runs alternate between the three producers;
//!    the fastest of each is reported, with the duration of its commits
//!    (waiting for the transaction's records to be acknowledged, then
//!    `commit_transaction`, whose own part is shown as EndTxn) and the
//!    ratio of its records/s to the idempotent producer's.
//! 2. Consume, no transactions: N records written by the idempotent
//!    producer, read from the start by a `BaseConsumer` with
//!    `isolation.level` read_uncommitted and read_committed, alternating
//!    (and alternating which goes first), 5 runs each; the clock runs from the
//!    assignment to the Nth record. Ratio read_committed / read_uncommitted
//!    records/s, target ≥ 0.95.
//! 3. Consume, 10% aborted: N records in transactions of 1,000, the 6th of
//!    every 10 aborted (after a flush, so its records are in the log); the
//!    log ends with committed records. Both readers traverse the same log
//!    to its last data record, so the ratio is of the times
//!    (read_uncommitted secs / read_committed secs), i.e. of "log rec/s";
//!    read_committed delivers 10% fewer records.
//!
//! Every reader also checks what it got: after its last expected record it
//! keeps polling (untimed) until 1 s passes without a record; it must have
//! got exactly the expected count (read_committed: only committed records;
//! read_uncommitted: all of them), and values written in aborted
//! transactions (first byte `A`) must reach read_uncommitted only. Any
//! miscount, failed delivery, client or transactional error makes the bench
//! exit non-zero after printing the tables.
//!
//! Knobs (environment): `TXN_BENCH_RECORDS` (N, default 200,000),
//! `TXN_BENCH_QUICK=1` (or `-- --quick`: a tenth of N), `TXN_BENCH_REPEAT`
//! (runs per producer, default 2), `TXN_BENCH_READ_REPEAT` (runs per reader
//! and topic, default 5: a read lasts a fraction of a second),
//! `TXN_BENCH_SIZE` (value bytes, default 1,024), `TXN_BENCH_FLUSH_POLICY`
//! (the broker's `log.flush.policy`, default `on-ack`; `interval` shows
//! what the fsync before each acknowledgement costs a commit).
//!
//! Layout: `main.rs` the plan and the run; `produce.rs` the measured
//! producer; `report.rs` the tables. Run: `cargo bench --bench txn`.

use std::time::Duration;

use rivulet_testkit::dirs::bench_dir;
use rivulet_testkit::process::BrokerProcess;
use rivulet_testkit::procfs;

#[path = "../common/mod.rs"]
mod common;
use common::broker::{create_topic, stop_and_report};
use common::clients::{consume, ConsumeStats, ReadSpec};
use common::{env_usize, rivulet_bin, target_dir};

mod produce;
mod report;

use produce::{produce, ProduceSpec, ProduceStats, Txn, ABORTED};
use report::{consume_header, consume_row, fastest, produce_header, produce_rate, produce_row};

/// Upper bound on any single wait; a run that exceeds it is broken.
const T: Duration = Duration::from_secs(120);
const MB: f64 = 1e6;
/// Records per transaction, for the count-bounded producer and the
/// aborted-transactions log.
const TXN_RECORDS: usize = 1_000;
const TXN_AGE: Duration = Duration::from_millis(100);
/// One transaction in this many is aborted in scenario 3.
const ABORT_EVERY: usize = 10;
const LINGER_MS: u64 = 5;
/// Untimed polling after a reader's last expected record, to catch extras.
const SETTLE: Duration = Duration::from_secs(1);

struct Plan {
    records: usize,
    size: usize,
    repeat: usize,
    /// Runs per reader: a read takes a fraction of a second, so more runs.
    read_repeat: usize,
    quick: bool,
}

impl Plan {
    fn from_env() -> Plan {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var("TXN_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let records = env_usize("TXN_BENCH_RECORDS", 200_000);
        let records = if quick { records / 10 } else { records };
        let plan = Plan {
            records,
            size: env_usize("TXN_BENCH_SIZE", 1024),
            repeat: env_usize("TXN_BENCH_REPEAT", 2),
            read_repeat: env_usize("TXN_BENCH_READ_REPEAT", 5),
            quick,
        };
        assert!(plan.records > 0, "TXN_BENCH_RECORDS must be > 0");
        assert!(plan.size > 0, "TXN_BENCH_SIZE must be > 0");
        assert!(plan.repeat > 0, "TXN_BENCH_REPEAT must be > 0");
        assert!(plan.read_repeat > 0, "TXN_BENCH_READ_REPEAT must be > 0");
        plan
    }
}

/// The broker, the runtime its admin calls use, and every problem seen.
struct Bench {
    plan: Plan,
    rt: tokio::runtime::Runtime,
    broker: BrokerProcess,
    problems: Vec<String>,
}

impl Bench {
    fn spec<'a>(&self, topic: &'a str, txn: Option<Txn>, id: &'a str) -> ProduceSpec<'a> {
        ProduceSpec {
            bootstrap: "",
            topic,
            records: self.plan.records,
            warmup: (self.plan.records / 100).clamp(1, 1000),
            size: self.plan.size,
            linger_ms: LINGER_MS,
            txn,
            transactional_id: id,
            broker_pid: Some(self.broker.pid()),
        }
    }

    /// One producer run on a fresh topic; `None` (and a problem) if the
    /// transactional API failed.
    fn produce(&mut self, label: &str, spec: ProduceSpec<'_>) -> Option<ProduceStats> {
        create_topic(&self.rt, &mut self.broker, spec.topic, T);
        let bootstrap = self.broker.bootstrap();
        let result = produce(&ProduceSpec {
            bootstrap: &bootstrap,
            ..spec
        });
        self.broker.check_alive();
        match result {
            Ok(stats) => {
                let topic = spec.topic;
                self.problems.extend(
                    stats
                        .problems
                        .iter()
                        .map(|p| format!("{label} ({topic}): {p}")),
                );
                Some(stats)
            }
            Err(e) => {
                self.problems.push(format!("{label}: {e}"));
                None
            }
        }
    }

    /// Read `topic` from its start with `isolation`, expecting `records`
    /// records of which `aborted` written in aborted transactions.
    fn read(
        &mut self,
        topic: &str,
        isolation: &str,
        records: usize,
        aborted: usize,
    ) -> ConsumeStats {
        let bootstrap = self.broker.bootstrap();
        let mut marked = 0usize;
        let stats = consume(
            &ReadSpec {
                bootstrap: &bootstrap,
                topic,
                offset: 0,
                n: records,
                config: &[("isolation.level", isolation)],
                settle: SETTLE,
                timeout: T,
                broker_pid: Some(self.broker.pid()),
            },
            |v| marked += usize::from(v.first() == Some(&ABORTED)),
        );
        self.broker.check_alive();
        let got = stats.records + stats.extra;
        if got != records {
            self.problems.push(format!(
                "{isolation} read {got} records of {topic}, expected exactly {records}"
            ));
        }
        if marked != aborted {
            self.problems.push(format!(
                "{isolation} read {marked} records of aborted transactions from {topic}, \
                 expected {aborted}"
            ));
        }
        if stats.errors > 0 {
            self.problems.push(format!(
                "{isolation} on {topic}: {} consumer errors",
                stats.errors
            ));
        }
        stats
    }

    /// Alternating read_uncommitted and read_committed runs over `topic`
    /// (`records` data records, `aborted` of them in aborted transactions);
    /// the fastest of each, `(uncommitted, committed)`.
    fn read_both(
        &mut self,
        topic: &str,
        records: usize,
        aborted: usize,
    ) -> (ConsumeStats, ConsumeStats) {
        let (mut ru, mut rc) = (Vec::new(), Vec::new());
        for rep in 0..self.plan.read_repeat {
            if rep % 2 == 0 {
                ru.push(self.read(topic, "read_uncommitted", records, aborted));
                rc.push(self.read(topic, "read_committed", records - aborted, 0));
            } else {
                rc.push(self.read(topic, "read_committed", records - aborted, 0));
                ru.push(self.read(topic, "read_uncommitted", records, aborted));
            }
        }
        let secs = |c: &ConsumeStats| c.elapsed.as_secs_f64();
        let pick = |runs: Vec<ConsumeStats>| {
            let i = runs
                .iter()
                .enumerate()
                .min_by(|a, b| secs(a.1).total_cmp(&secs(b.1)))
                .map_or(0, |(i, _)| i);
            runs.into_iter().nth(i).expect("at least one run")
        };
        (pick(ru), pick(rc))
    }
}

fn main() {
    let plan = Plan::from_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let bin = rivulet_bin();
    let log = target_dir().join("txn-bench-broker.log");
    // The commit waits for its records' acknowledgements, so the flush
    // policy (an fsync per acks=all produce by default) shows in it.
    let flush = std::env::var("TXN_BENCH_FLUSH_POLICY").unwrap_or_else(|_| "on-ack".into());
    let settings = [("log.flush.policy", flush.as_str())];
    let broker = BrokerProcess::start_in(
        &bin,
        bench_dir(),
        log.clone(),
        &settings,
        &[("NO_COLOR", "1")],
        T,
    );
    // Let start-up settle (registration, first heartbeats) before measuring.
    std::thread::sleep(Duration::from_secs(1));
    let (_, v) = rdkafka::util::get_rdkafka_version();
    println!(
        "txn bench{}: N = {} records of {} B, 1 partition, acks=all, linger.ms {LINGER_MS}, \
         broker log.flush.policy {flush}; \
         rdkafka 0.39 (librdkafka {v}); {} (pid {}), data dir {}; {} cores, load average {}",
        if plan.quick { " (--quick)" } else { "" },
        plan.records,
        plan.size,
        bin.display(),
        broker.pid(),
        broker.data_dir().display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        procfs::loadavg(),
    );
    println!(
        "best of {} alternating runs per producer, {} per reader; MB = 10^6 B of values; CPU = % of one core, \
         client/broker; commit = acknowledgement of the transaction's records + commit_transaction; \
         EndTxn = the commit_transaction part",
        plan.repeat, plan.read_repeat
    );
    let mut b = Bench {
        plan,
        rt,
        broker,
        problems: Vec::new(),
    };
    let (n, size) = (b.plan.records, b.plan.size);

    // 1. Produce.
    let producers = [
        ("idempotent", None),
        (
            "txn / 1000 records",
            Some(Txn {
                max_records: Some(TXN_RECORDS),
                max_age: None,
                abort_every: None,
            }),
        ),
        (
            "txn / 100 ms",
            Some(Txn {
                max_records: None,
                max_age: Some(TXN_AGE),
                abort_every: None,
            }),
        ),
    ];
    let mut runs: Vec<Vec<ProduceStats>> = producers.iter().map(|_| Vec::new()).collect();
    for rep in 0..b.plan.repeat {
        for (i, (label, txn)) in producers.iter().enumerate() {
            let (topic, id) = (
                format!("txn-bench-p{i}-r{rep}"),
                format!("txn-bench-p{i}-r{rep}"),
            );
            let spec = b.spec(&topic, *txn, &id);
            if let Some(s) = b.produce(label, spec) {
                runs[i].push(s);
            }
        }
    }
    println!();
    println!("1. produce {n} records of {size} B (ratio: rec/s over the idempotent producer's)");
    produce_header();
    let secs = |p: &ProduceStats| p.elapsed.as_secs_f64();
    let idempotent_rate = fastest(&runs[0], secs).map(produce_rate);
    let mut produce_ratios = Vec::new();
    for (i, ((label, _), r)) in producers.iter().zip(&runs).enumerate() {
        match fastest(r, secs) {
            Some(best) => {
                let ratio = idempotent_rate.map(|i| produce_rate(best) / i);
                produce_row(label, best, size, ratio);
                if i > 0 {
                    produce_ratios.extend(ratio.map(|r| (label, r)));
                }
            }
            None => println!("{label:<20}no successful run"),
        }
    }

    // 2. read_committed vs read_uncommitted, no transactions.
    let plain = "txn-bench-plain";
    let spec = ProduceSpec {
        warmup: 0,
        ..b.spec(plain, None, "")
    };
    // Nothing to read (the write's problem is reported) if the write failed.
    let plain_ratio = b.produce("writing the plain topic", spec).map(|_| {
        let (ru, rc) = b.read_both(plain, n, 0);
        let ratio = ru.elapsed.as_secs_f64() / rc.elapsed.as_secs_f64();
        println!();
        println!(
            "2. consume {n} records written without transactions (ratio: rec/s over \
             read_uncommitted's)"
        );
        consume_header();
        consume_row("read_uncommitted", &ru, n, None);
        consume_row("read_committed", &rc, n, Some(ratio));
        ratio
    });

    // 3. The same over a log with 10% of its transactions aborted.
    let aborts = "txn-bench-aborts";
    let spec = ProduceSpec {
        warmup: 0,
        ..b.spec(
            aborts,
            Some(Txn {
                max_records: Some(TXN_RECORDS),
                max_age: None,
                abort_every: Some(ABORT_EVERY),
            }),
            "txn-bench-aborts",
        )
    };
    let written = b.produce("writing the aborts topic", spec);
    let abort_ratio = match written {
        Some(w) if w.aborts > 0 => {
            let (ru, rc) = b.read_both(aborts, n, w.aborted_records);
            let ratio = ru.elapsed.as_secs_f64() / rc.elapsed.as_secs_f64();
            println!();
            println!(
                "3. consume {n} records in {} transactions of {TXN_RECORDS}, {} aborted \
                 ({} records); read_committed must get exactly {} (ratio: log rec/s over \
                 read_uncommitted's)",
                w.commits + w.aborts,
                w.aborts,
                w.aborted_records,
                n - w.aborted_records
            );
            consume_header();
            consume_row("read_uncommitted", &ru, n, None);
            consume_row("read_committed", &rc, n, Some(ratio));
            Some(ratio)
        }
        Some(_) => {
            b.problems.push(format!(
                "no transaction was aborted: N = {n} is too small (the first aborted \
                 transaction starts at record {})",
                TXN_RECORDS * (ABORT_EVERY / 2)
            ));
            None
        }
        None => None,
    };

    println!();
    for (label, r) in &produce_ratios {
        println!("ratio produce {label} / idempotent: {r:.2}");
    }
    if let Some(r) = plain_ratio {
        let met = if r >= 0.95 { "met" } else { "NOT met" };
        println!("ratio read_committed / read_uncommitted, no transactions: {r:.2} (target >= 0.95: {met})");
    }
    if let Some(r) = abort_ratio {
        println!("ratio read_committed / read_uncommitted, 10% aborted: {r:.2}");
    }
    println!("load average at the end: {}", procfs::loadavg());
    stop_and_report(&mut b.broker, &log);
    if !b.problems.is_empty() {
        println!();
        println!("FAILED: {} problem(s)", b.problems.len());
        for p in &b.problems {
            println!("  !! {p}");
        }
        std::process::exit(1);
    }
}
