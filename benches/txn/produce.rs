//! The measured producer: one rdkafka `ThreadedProducer` (acks=all,
//! idempotent) sending `n` records of one value size to partition 0, either
//! outside transactions or in transactions ended by a record count and/or
//! an age, every `abort_every`th of them aborted instead of committed.
//! Records of a transaction that is aborted carry values starting with
//! [`ABORTED`], all others [`COMMITTED`], so readers can tell them apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rivulet_testkit::kafka::bench_client_config;

use super::common::clients::{wait_delivered, CpuMeter};
use super::T;

/// First byte of every value written in a transaction that is aborted.
pub(crate) const ABORTED: u8 = b'A';
/// First byte of every other value.
pub(crate) const COMMITTED: u8 = b'C';

/// When a transaction ends. `None` for a plain idempotent producer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Txn {
    /// End the transaction once it holds this many records.
    pub(crate) max_records: Option<usize>,
    /// End the transaction once this long has passed since it began (checked
    /// after each record; the commit itself is synchronous, as in Kafka's
    /// `ProducerPerformance --transaction-duration-ms`).
    pub(crate) max_age: Option<Duration>,
    /// Abort (once its records are acknowledged, so they are in the log) the
    /// transactions whose index `i` has `i % k == k / 2`, i.e. one in `k`.
    pub(crate) abort_every: Option<usize>,
}

pub(crate) struct ProduceSpec<'a> {
    pub(crate) bootstrap: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) records: usize,
    /// Records sent (in one transaction, if transactional) and acknowledged
    /// before the clock starts.
    pub(crate) warmup: usize,
    pub(crate) size: usize,
    pub(crate) linger_ms: u64,
    pub(crate) txn: Option<Txn>,
    pub(crate) transactional_id: &'a str,
    pub(crate) broker_pid: Option<u32>,
}

#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
    client_errors: AtomicU64,
}

struct Ctx(Arc<Deliveries>);

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        if self.0.client_errors.fetch_add(1, Ordering::Relaxed) < 5 {
            eprintln!("txn bench: producer error: {error}: {reason}");
        }
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.0.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.0.first_failure.lock().expect("failure lock");
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

pub(crate) struct ProduceStats {
    /// From the first measured record to the last commit (or the last
    /// acknowledgement).
    pub(crate) elapsed: Duration,
    pub(crate) records: usize,
    /// Records written in transactions that were aborted.
    pub(crate) aborted_records: usize,
    pub(crate) commits: usize,
    pub(crate) aborts: usize,
    /// Duration of each commit (waiting for the transaction's records to
    /// be acknowledged, then `commit_transaction`), sorted, in ms.
    pub(crate) commit_ms: Vec<f64>,
    /// The `commit_transaction` part of each (the flush is done by then:
    /// EndTxn, i.e. the broker's commit), sorted, in ms.
    pub(crate) end_txn_ms: Vec<f64>,
    pub(crate) cpu: (f64, Option<f64>),
    /// Failed deliveries, client errors, records never acknowledged.
    pub(crate) problems: Vec<String>,
}

/// The transactional state of one run: how many records the open
/// transaction holds, since when, and whether it will be aborted.
struct Open {
    index: usize,
    records: usize,
    since: Instant,
    abort: bool,
}

/// Send `spec.records` records (after `spec.warmup` unmeasured ones); an
/// error of the transactional API stops the run and is returned.
pub(crate) fn produce(spec: &ProduceSpec<'_>) -> Result<ProduceStats, String> {
    let d = Arc::new(Deliveries::default());
    let mut config = bench_client_config(spec.bootstrap);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", spec.linger_ms.to_string())
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", "10000")
        .set("message.timeout.ms", T.as_millis().to_string());
    if spec.txn.is_some() {
        // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
        config
            .set("transactional.id", spec.transactional_id)
            .set("transaction.timeout.ms", T.as_millis().to_string());
    }
    let producer: ThreadedProducer<Ctx> = config
        .create_with_context(Ctx(d.clone()))
        .map_err(|e| format!("create the producer: {e}"))?;
    let txn_err = |what: &str, e: &dyn std::fmt::Display| format!("{what} on {}: {e}", spec.topic);
    if spec.txn.is_some() {
        producer
            .init_transactions(T)
            .map_err(|e| txn_err("init_transactions", &e))?;
    }
    let mut committed: Vec<u8> = (0..spec.size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut aborted = committed.clone();
    if let (Some(c), Some(a)) = (committed.first_mut(), aborted.first_mut()) {
        (*c, *a) = (COMMITTED, ABORTED);
    }
    let send = |value: &[u8]| loop {
        match producer.send(
            BaseRecord::<(), [u8]>::to(spec.topic)
                .partition(0)
                .payload(value),
        ) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => return Err(format!("produce to {}: {e}", spec.topic)),
        }
    };

    // Warm-up: connections, producer id, the first transaction's partition
    // registration; acknowledged before the clock starts.
    if spec.warmup > 0 {
        if spec.txn.is_some() {
            producer
                .begin_transaction()
                .map_err(|e| txn_err("begin_transaction", &e))?;
        }
        for _ in 0..spec.warmup {
            send(&committed)?;
        }
        wait_delivered(&producer, T).map_err(|e| format!("warm-up: {e}"))?;
        if spec.txn.is_some() {
            producer
                .commit_transaction(T)
                .map_err(|e| txn_err("commit", &e))?;
        }
    }
    let warm_ok = d.ok.load(Ordering::Relaxed);

    let cpu = CpuMeter::start(spec.broker_pid);
    let t0 = Instant::now();
    let mut tally = Tally::default();
    let mut open: Option<Open> = None;
    let mut next_index = 0;
    for _ in 0..spec.records {
        let Some(txn) = spec.txn else {
            send(&committed)?;
            continue;
        };
        let mut t = match open.take() {
            Some(t) => t,
            None => {
                producer
                    .begin_transaction()
                    .map_err(|e| txn_err("begin_transaction", &e))?;
                let abort = txn.abort_every.is_some_and(|k| next_index % k == k / 2);
                next_index += 1;
                Open {
                    index: next_index - 1,
                    records: 0,
                    since: Instant::now(),
                    abort,
                }
            }
        };
        send(if t.abort { &aborted } else { &committed })?;
        t.records += 1;
        let full = txn.max_records.is_some_and(|m| t.records >= m)
            || txn.max_age.is_some_and(|age| t.since.elapsed() >= age);
        if full {
            tally
                .end(&producer, &t)
                .map_err(|e| txn_err(&t.what(), &e))?;
        } else {
            open = Some(t);
        }
    }
    if let Some(t) = open.take() {
        tally
            .end(&producer, &t)
            .map_err(|e| txn_err(&t.what(), &e))?;
    }
    if spec.txn.is_none() {
        wait_delivered(&producer, T)?;
    }
    let elapsed = t0.elapsed();
    let cpu = cpu.stop();
    tally.commit_ms.sort_by(f64::total_cmp);
    tally.end_txn_ms.sort_by(f64::total_cmp);

    let ok = d.ok.load(Ordering::Relaxed) - warm_ok;
    let failed = d.failed.load(Ordering::Relaxed);
    let client_errors = d.client_errors.load(Ordering::Relaxed);
    let first_failure = d.first_failure.lock().expect("failure lock").clone();
    let problems = [
        (failed > 0).then(|| {
            format!(
                "{failed} deliveries FAILED (first: {})",
                first_failure.as_deref().unwrap_or("?")
            )
        }),
        (client_errors > 0).then(|| format!("{client_errors} producer client errors")),
        (ok != spec.records as u64)
            .then(|| format!("{ok} of {} records acknowledged", spec.records)),
    ];
    Ok(ProduceStats {
        elapsed,
        records: spec.records,
        aborted_records: tally.aborted_records,
        commits: tally.commits,
        aborts: tally.aborts,
        commit_ms: tally.commit_ms,
        end_txn_ms: tally.end_txn_ms,
        cpu,
        problems: problems.into_iter().flatten().collect(),
    })
}

impl Open {
    fn what(&self) -> String {
        let verb = if self.abort { "aborting" } else { "committing" };
        format!(
            "{verb} transaction {} ({} records)",
            self.index, self.records
        )
    }
}

/// How the transactions of a run ended.
#[derive(Default)]
struct Tally {
    commits: usize,
    aborts: usize,
    aborted_records: usize,
    commit_ms: Vec<f64>,
    end_txn_ms: Vec<f64>,
}

impl Tally {
    /// Commit the open transaction `t` (timing its flush and the commit),
    /// or wait for its records and abort it.
    fn end(&mut self, producer: &ThreadedProducer<Ctx>, t: &Open) -> Result<(), String> {
        if t.abort {
            // Without waiting for the records, abort_transaction would purge
            // those still queued in the client, and fewer aborted records
            // would reach the log than the readers are told to expect.
            wait_delivered(producer, T)?;
            producer
                .abort_transaction(T)
                .map_err(|e| format!("abort_transaction: {e}"))?;
            self.aborts += 1;
            self.aborted_records += t.records;
        } else {
            // The commit flushes the transaction's records first: part of
            // its cost, so inside the timing.
            let t0 = Instant::now();
            wait_delivered(producer, T)?;
            let t1 = Instant::now();
            producer
                .commit_transaction(T)
                .map_err(|e| format!("commit_transaction: {e}"))?;
            self.end_txn_ms.push(t1.elapsed().as_secs_f64() * 1e3);
            self.commit_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            self.commits += 1;
        }
        Ok(())
    }
}
