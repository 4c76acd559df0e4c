//! The read-process-write loop of the exactly-once failover test
//! (`exactly_once.rs`): a thread that consumes topic A read_committed in a
//! consumer group and writes one record to topic B per record of A, in
//! transactions that carry the consumed offsets
//! (`send_offsets_to_transaction`, KIP-98/KIP-447), paced and held open by
//! the main thread through [`Loop`].
//!
//! The loop follows librdkafka's documented error handling for
//! transactions (`rd_kafka_error_is_retriable` → call again,
//! `rd_kafka_error_txn_requires_abort` → abort and rewind the consumer to
//! the committed offsets, `rd_kafka_error_is_fatal` → a new producer and
//! consumer with the same transactional id). It also refuses to put into
//! a transaction a record that does not follow the last one it took from
//! that partition: A has no gaps, so a record out of line means the
//! consumer was moved under the loop (a rebalance, a seek) and the
//! transaction is aborted and the consumer rewound instead. A call that
//! librdkafka never returns from (a client bug, see [`watched`]) makes the
//! loop abandon its producer and start over with a new one.
//!
//! Debugging: `RIVULET_EOS_DEBUG` / `RIVULET_EOS_PRODUCER_DEBUG` set
//! librdkafka's `debug` contexts of the loop's consumer / producer;
//! `RIVULET_EOS_GDB=1` writes every thread's stack to a file when the loop
//! stalls; `RIVULET_KEEP_FAILED=1` keeps the nodes' data and logs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_testkit::kafka::cluster_client_config;
use rivulet_testkit::poll::Poll;

use crate::harness::TIMEOUT;

pub const SOURCE: &str = "eos-a";
pub const SINK: &str = "eos-b";
pub const PARTITIONS: i32 = 3;
pub const GROUP: &str = "eos-loop";
pub const TRANSACTIONAL_ID: &str = "eos-loop-txn";
/// Records the loop may commit per kill: a third before the kill, the rest
/// while the node is down.
pub const CHUNK: i64 = 150;
/// At most this many records per transaction.
const BATCH: usize = 25;
/// Every this many transactions, the loop aborts one on purpose after its
/// records are written, so read_committed readers of B have aborted
/// records to skip whatever the kills do.
const ABORT_EVERY: u64 = 5;
/// How long one transactional call (commit, abort, send offsets) may take
/// before librdkafka reports a retriable timeout.
const TXN_CALL: Duration = Duration::from_secs(10);

/// What the loop has done, shared with the main thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// The consumed offsets of the last committed transaction, per A
    /// partition (the next offset to process).
    committed: BTreeMap<i32, i64>,
    commits: u64,
    aborts: u64,
    /// New producer and consumer after a fatal error.
    recreations: u64,
    /// Records polled out of line (not the next offset of their partition).
    out_of_line: u64,
    /// Transactions aborted on purpose, and the records written in them.
    deliberate_aborts: u64,
    pub deliberately_aborted_records: u64,
    /// The consumer's assignment and positions when a poll last found
    /// nothing (for the report when the loop stalls).
    idle: String,
    /// Producers given up on with a transactional call blocked for good.
    abandoned: u64,
    /// Errors seen, by call and error.
    errors: BTreeMap<String, u64>,
}

impl Progress {
    fn total(&self) -> i64 {
        self.committed.values().sum()
    }

    fn note(&mut self, what: &str, e: &dyn std::fmt::Display) {
        eprintln!("loop: {what}: {e}");
        *self.errors.entry(format!("{what}: {e}")).or_default() += 1;
    }
}

/// The read-process-write thread and the knobs the main thread holds.
pub struct Loop {
    stop: Arc<AtomicBool>,
    /// The loop takes no record that would bring the records it committed
    /// beyond this number: the main thread paces it around the kills.
    allowed: Arc<AtomicI64>,
    progress: Arc<Mutex<Progress>>,
    gate: Arc<Gate>,
    handle: JoinHandle<()>,
    bootstrap: String,
}

/// Holds the loop inside a transaction: once `hold` is set, the next
/// transaction stops after its records are written (flushed, acknowledged
/// by every in-sync replica) and before its offsets and commit, sets
/// `held`, and waits until `hold` is cleared. The main thread kills a node
/// in between, so every kill hits an open transaction.
#[derive(Default)]
struct Gate {
    hold: AtomicBool,
    held: AtomicBool,
}

/// How to go on after a transactional call failed, per librdkafka's
/// error model (`rd_kafka_error_t` flags on `KafkaError::Transaction`).
enum Step {
    Retry,
    Abort,
    Fatal,
}

fn step(e: &KafkaError) -> Step {
    match e {
        KafkaError::Transaction(t) if t.is_fatal() => Step::Fatal,
        KafkaError::Transaction(t) if t.txn_requires_abort() => Step::Abort,
        KafkaError::Transaction(t) if t.is_retriable() => Step::Retry,
        _ => Step::Abort,
    }
}

/// Why a transaction did not commit.
enum Failed {
    /// Abort it and rewind the consumer.
    Abort,
    /// Start over with a new producer and consumer.
    Fatal,
}

/// Run one transactional call of `producer` on a thread of its own and
/// give up on it (`None`) when it overruns its timeout by far.
///
/// librdkafka 2.9–2.14 can block `send_offsets_to_transaction` forever,
/// whatever its timeout, once the group coordinator's node has dropped out
/// of Metadata (a fenced broker does, in Kafka as here): the cached
/// coordinator's broker thread is decommissioned and nothing re-runs the
/// coordinator lookup (confluentinc/librdkafka#5511 and #5456, fixed after
/// 2.14.2; rdkafka 0.39 bundles 2.12.1). Seen here as a loop stuck for good
/// after the group coordinator's node was killed. The loop then abandons
/// the producer (the stuck thread keeps it) and starts over with a new one
/// with the same transactional id, whose InitProducerId fences the old
/// epoch and aborts its open transaction.
fn watched(
    producer: &Arc<BaseProducer<Logs>>,
    call: impl FnOnce(&BaseProducer<Logs>) -> Result<(), KafkaError> + Send + 'static,
) -> Option<Result<(), KafkaError>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = producer.clone();
    std::thread::spawn(move || {
        let _ = tx.send(call(&p));
    });
    rx.recv_timeout(TXN_CALL * 2).ok()
}

/// Call `f` again while it fails retriably (librdkafka: "the call may be
/// retried"), for at most a minute; a call that never returns (`None`,
/// see [`watched`]) is fatal.
fn retried(
    progress: &Mutex<Progress>,
    what: &str,
    mut f: impl FnMut() -> Option<Result<(), KafkaError>>,
) -> Result<(), Failed> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let t0 = Instant::now();
        let Some(r) = f() else {
            let mut g = progress.lock().unwrap();
            g.note(what, &"stuck past twice its timeout (librdkafka#5511)");
            g.abandoned += 1;
            return Err(Failed::Fatal);
        };
        if r.is_err() || t0.elapsed() > Duration::from_secs(1) {
            eprintln!("loop: {what} took {:?}: {r:?}", t0.elapsed());
        }
        let Err(e) = r else { return Ok(()) };
        progress.lock().unwrap().note(what, &e);
        match step(&e) {
            Step::Retry if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Step::Retry | Step::Abort => return Err(Failed::Abort),
            Step::Fatal => return Err(Failed::Fatal),
        }
    }
}

/// B's record for A's record at `partition`/`offset` with `value`.
fn processed(partition: i32, offset: i64, value: &str) -> String {
    format!("{partition}:{offset}|{value}")
}

/// (A partition, A offset, A value) of a record of B.
pub fn unprocessed(payload: &[u8]) -> (i32, i64, String) {
    let s = std::str::from_utf8(payload).expect("utf-8 value");
    let (at, value) = s.split_once('|').expect("a processed record");
    let (p, o) = at.split_once(':').expect("partition:offset");
    (p.parse().unwrap(), o.parse().unwrap(), value.to_string())
}

/// The loop consumer's context: librdkafka's log lines to stderr (with
/// `RIVULET_EOS_DEBUG=consumer,fetch,…` its debug contexts too).
struct Logs;

impl ClientContext for Logs {
    fn log(&self, _: RDKafkaLogLevel, fac: &str, message: &str) {
        eprintln!("loop client: {fac} {message}");
    }
}

impl ConsumerContext for Logs {}

impl ProducerContext for Logs {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

struct Clients {
    producer: Arc<BaseProducer<Logs>>,
    consumer: BaseConsumer<Logs>,
}

impl Clients {
    /// A consumer in the group and a transactional producer whose
    /// `init_transactions` fenced any older one with the same id.
    fn new(bootstrap: &str, progress: &Mutex<Progress>) -> Clients {
        let mut config = cluster_client_config(bootstrap);
        config
            .set("group.id", GROUP)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000");
        if let Ok(debug) = std::env::var("RIVULET_EOS_DEBUG") {
            config
                .set("debug", debug)
                .set_log_level(RDKafkaLogLevel::Debug);
        }
        let consumer: BaseConsumer<Logs> = config.create_with_context(Logs).unwrap();
        consumer.subscribe(&[SOURCE]).unwrap();
        let mut config = cluster_client_config(bootstrap);
        config
            .set("transactional.id", TRANSACTIONAL_ID)
            .set("transaction.timeout.ms", "30000")
            .set("message.timeout.ms", "30000")
            .set("linger.ms", "2")
            .set("retry.backoff.ms", "50")
            .set("retry.backoff.max.ms", "500");
        if let Ok(debug) = std::env::var("RIVULET_EOS_PRODUCER_DEBUG") {
            config
                .set("debug", debug)
                .set_log_level(RDKafkaLogLevel::Debug);
        }
        let producer: BaseProducer<Logs> = config.create_with_context(Logs).unwrap();
        Poll::new(TIMEOUT)
            .every(Duration::from_millis(200))
            .retry("init_transactions", || {
                producer.init_transactions(TXN_CALL).inspect_err(|e| {
                    progress.lock().unwrap().note("init_transactions", e);
                })
            });
        Clients {
            producer: Arc::new(producer),
            consumer,
        }
    }

    /// Seek the consumer to the group's committed offsets (librdkafka's
    /// "rewind" after an abort) and return them, for every A partition
    /// (0 where none is committed: `auto.offset.reset=earliest`).
    fn rewind(&self, progress: &Mutex<Progress>) -> BTreeMap<i32, i64> {
        let mut all = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            all.add_partition(SOURCE, p);
        }
        let got = Poll::new(TIMEOUT).every(Duration::from_millis(200)).retry(
            "the committed offsets",
            || {
                self.consumer
                    .committed_offsets(all.clone(), Duration::from_secs(10))
                    .inspect_err(|e| progress.lock().unwrap().note("committed", e))
            },
        );
        let committed: BTreeMap<i32, i64> = (0..PARTITIONS)
            .map(
                |p| match got.find_partition(SOURCE, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => (p, o),
                    _ => (p, 0),
                },
            )
            .collect();
        if let Ok(assigned) = self.consumer.assignment() {
            let mut to = TopicPartitionList::new();
            for e in assigned.elements() {
                let at = committed.get(&e.partition()).copied().unwrap_or(0);
                to.add_partition_offset(SOURCE, e.partition(), Offset::Offset(at))
                    .unwrap();
            }
            if to.count() > 0 {
                // A failed seek is caught later: the next record polled is
                // then out of line and the loop rewinds again.
                match self.consumer.seek_partitions(to, Duration::from_secs(10)) {
                    Err(e) => progress.lock().unwrap().note("seek", &e),
                    Ok(done) => {
                        for e in done.elements() {
                            if let Err(err) = e.error() {
                                progress.lock().unwrap().note("seek", &err);
                            }
                        }
                    }
                }
            }
        }
        eprintln!("loop: rewound to {committed:?}");
        committed
    }

    /// Poll up to `limit` records (for at most ~300 ms): (partition,
    /// offset, value).
    fn batch(&self, limit: usize, progress: &Mutex<Progress>) -> Vec<(i32, i64, String)> {
        let mut out = Vec::new();
        let until = Instant::now() + Duration::from_millis(300);
        while out.len() < limit && Instant::now() < until {
            match self.consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => {
                    let value = std::str::from_utf8(m.payload().unwrap_or_default())
                        .unwrap()
                        .to_string();
                    out.push((m.partition(), m.offset(), value));
                }
                Some(Err(e)) => progress.lock().unwrap().note("poll", &e),
                None => {}
            }
        }
        out
    }

    /// One transaction: B's records for `batch` and the consumer's
    /// position (which must be `next`) as the group's offsets.
    fn transact(
        &self,
        batch: &[(i32, i64, String)],
        next: &BTreeMap<i32, i64>,
        commit: bool,
        gate: &Gate,
        progress: &Mutex<Progress>,
    ) -> Result<(), Failed> {
        if let Err(e) = self.producer.begin_transaction() {
            progress.lock().unwrap().note("begin_transaction", &e);
            return Err(match step(&e) {
                Step::Fatal => Failed::Fatal,
                _ => Failed::Abort,
            });
        }
        for (p, o, v) in batch {
            let out = processed(*p, *o, v);
            loop {
                let record = BaseRecord::<(), _>::to(SINK).partition(*p).payload(&out);
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        progress.lock().unwrap().note("send", &e);
                        return Err(Failed::Abort);
                    }
                }
            }
            self.producer.poll(Duration::ZERO);
        }
        if !commit || gate.hold.load(Ordering::SeqCst) {
            // Written to B before the abort or the kill: a failed delivery
            // fails the transaction (librdkafka: abortable).
            if let Err(e) = self.producer.flush(TXN_CALL) {
                progress.lock().unwrap().note("flush", &e);
                return Err(Failed::Abort);
            }
        }
        if !commit {
            let mut g = progress.lock().unwrap();
            g.deliberate_aborts += 1;
            g.deliberately_aborted_records += batch.len() as u64;
            return Err(Failed::Abort);
        }
        if gate.hold.load(Ordering::SeqCst) {
            eprintln!("loop: holding the transaction open");
            gate.held.store(true, Ordering::SeqCst);
            while gate.hold.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            gate.held.store(false, Ordering::SeqCst);
        }
        // The position of every partition in the batch, as the consumer
        // holds it; it must be one past the batch's last record there.
        let position = self.consumer.position().map_err(|e| {
            progress.lock().unwrap().note("position", &e);
            Failed::Abort
        })?;
        let mut offsets = TopicPartitionList::new();
        for (p, want) in next {
            if !batch.iter().any(|(bp, _, _)| bp == p) {
                continue;
            }
            let at = position.find_partition(SOURCE, *p).map(|e| e.offset());
            if at != Some(Offset::Offset(*want)) {
                let mut g = progress.lock().unwrap();
                g.note("position", &format!("partition {p} at {at:?}, not {want}"));
                return Err(Failed::Abort);
            }
            offsets
                .add_partition_offset(SOURCE, *p, Offset::Offset(*want))
                .unwrap();
        }
        let Some(group) = self.consumer.group_metadata() else {
            progress.lock().unwrap().note("group_metadata", &"none");
            return Err(Failed::Abort);
        };
        let (offsets, group) = (Arc::new(offsets), Arc::new(group));
        retried(progress, "send_offsets_to_transaction", || {
            let (offsets, group) = (offsets.clone(), group.clone());
            watched(&self.producer, move |p| {
                p.send_offsets_to_transaction(&offsets, &group, TXN_CALL)
            })
        })?;
        retried(progress, "commit_transaction", || {
            watched(&self.producer, |p| p.commit_transaction(TXN_CALL))
        })
    }

    /// Abort the open transaction: `Err` if only new clients can go on.
    fn abort(&self, progress: &Mutex<Progress>) -> Result<(), Failed> {
        let r = retried(progress, "abort_transaction", || {
            watched(&self.producer, |p| p.abort_transaction(TXN_CALL))
        });
        // An abort that fails for any other reason than a retriable one
        // leaves the producer in a state no call documents a way out of.
        r.map_err(|_| Failed::Fatal)
    }
}

impl Loop {
    pub fn start(bootstrap: &str) -> Loop {
        let stop = Arc::new(AtomicBool::new(false));
        let allowed = Arc::new(AtomicI64::new(0));
        let progress = Arc::new(Mutex::new(Progress::default()));
        let gate = Arc::new(Gate::default());
        let (stop2, allowed2, progress2, gate2) = (
            stop.clone(),
            allowed.clone(),
            progress.clone(),
            gate.clone(),
        );
        let bootstrap2 = bootstrap.to_string();
        let handle = std::thread::spawn(move || {
            run(&bootstrap2, &stop2, &allowed2, &gate2, &progress2);
        });
        Loop {
            stop,
            allowed,
            progress,
            gate,
            handle,
            bootstrap: bootstrap.to_string(),
        }
    }

    /// Stop the loop inside its next transaction, after its records are
    /// written.
    pub fn hold_next(&self) {
        self.gate.hold.store(true, Ordering::SeqCst);
    }

    /// Wait until the loop holds a transaction open.
    pub fn wait_held(&self) {
        Poll::new(TIMEOUT).retry("the loop to hold a transaction open", || {
            if self.gate.held.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err(format!("{:?}", self.progress.lock().unwrap()))
            }
        });
    }

    /// Let the held transaction go on to its commit.
    pub fn release(&self) {
        self.gate.hold.store(false, Ordering::SeqCst);
    }

    pub fn committed(&self) -> i64 {
        self.progress.lock().unwrap().total()
    }

    /// Let the loop commit `more` records beyond what it is allowed now.
    pub fn allow(&self, more: i64) -> i64 {
        self.allowed.fetch_add(more, Ordering::SeqCst) + more
    }

    /// Wait until the loop has committed `n` records in all.
    pub fn wait_committed(&self, n: i64) {
        let done = Poll::new(TIMEOUT)
            .every(Duration::from_millis(50))
            .until(|| self.committed() >= n || self.handle.is_finished());
        if !done || self.handle.is_finished() {
            if std::env::var_os("RIVULET_EOS_GDB").is_some() {
                // Where the loop thread is stuck, for the report.
                // gdb writes to a file: this thread is stopped while it
                // runs, so it could not drain a pipe.
                let pid = std::process::id().to_string();
                let out = std::env::temp_dir().join(format!("eos-stall-{pid}.txt"));
                if let Ok(file) = std::fs::File::create(&out) {
                    let _ = std::process::Command::new("gdb")
                        .args(["-p", &pid, "-batch", "-ex", "thread apply all bt"])
                        .stdout(file)
                        .stderr(std::process::Stdio::null())
                        .status();
                    eprintln!("threads' stacks in {}", out.display());
                }
            }
            panic!(
                "the loop did not commit {n} records (thread ended: {}): {:?}\n{}",
                self.handle.is_finished(),
                self.progress.lock().unwrap(),
                watermarks(&self.bootstrap)
            );
        }
    }

    pub fn finish(self) -> Progress {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("the loop thread");
        std::mem::take(&mut *self.progress.lock().unwrap())
    }
}

/// The read-process-write loop, until `stop`.
fn run(
    bootstrap: &str,
    stop: &AtomicBool,
    allowed: &AtomicI64,
    gate: &Gate,
    progress: &Mutex<Progress>,
) {
    let mut transactions = 0u64;
    'clients: while !stop.load(Ordering::SeqCst) {
        let clients = Clients::new(bootstrap, progress);
        let mut expected = clients.rewind(progress);
        progress.lock().unwrap().committed = expected.clone();
        while !stop.load(Ordering::SeqCst) {
            let done = progress.lock().unwrap().total();
            let budget = usize::try_from(allowed.load(Ordering::SeqCst) - done).unwrap_or(0);
            if budget == 0 {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            let batch = clients.batch(budget.min(BATCH), progress);
            if batch.is_empty() {
                let (assigned, position) =
                    (clients.consumer.assignment(), clients.consumer.position());
                progress.lock().unwrap().idle = format!(
                    "assigned {:?}; position {:?}",
                    assigned.map(|t| t.to_topic_map()),
                    position.map(|t| t.to_topic_map())
                );
                continue;
            }
            let mut next = expected.clone();
            let in_line = batch.iter().all(|(p, o, _)| {
                let at = next.entry(*p).or_insert(0);
                let ok = *o == *at;
                *at += 1;
                ok
            });
            if !in_line {
                progress.lock().unwrap().out_of_line += 1;
                expected = clients.rewind(progress);
                continue;
            }
            transactions += 1;
            let commit = !transactions.is_multiple_of(ABORT_EVERY);
            eprintln!(
                "loop: transaction {transactions} (commit: {commit}): {} records from {:?}",
                batch.len(),
                batch.first().map(|(p, o, _)| (p, o))
            );
            let failed = match clients.transact(&batch, &next, commit, gate, progress) {
                Ok(()) => {
                    expected = next;
                    let mut g = progress.lock().unwrap();
                    g.committed = expected.clone();
                    g.commits += 1;
                    continue;
                }
                Err(f) => f,
            };
            if let Failed::Abort = failed {
                progress.lock().unwrap().aborts += 1;
                if clients.abort(progress).is_ok() {
                    expected = clients.rewind(progress);
                    progress.lock().unwrap().committed = expected.clone();
                    continue;
                }
            }
            progress.lock().unwrap().recreations += 1;
            drop(clients);
            continue 'clients;
        }
    }
}

/// A's and B's offsets as fresh clients see them (for a stall report):
/// per partition, the high watermark and the read_committed end (LSO).
fn watermarks(bootstrap: &str) -> String {
    let mut out = String::new();
    for isolation in ["read_uncommitted", "read_committed"] {
        let c: BaseConsumer = cluster_client_config(bootstrap)
            .set("isolation.level", isolation)
            .create()
            .unwrap();
        for topic in [SOURCE, SINK] {
            let ends: Vec<_> = (0..PARTITIONS)
                .map(|p| c.fetch_watermarks(topic, p, Duration::from_secs(5)))
                .collect();
            out += &format!("{topic} {isolation}: {ends:?}\n");
        }
    }
    out
}
