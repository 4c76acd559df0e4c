//! The failover tests' harness: three `rivulet` processes on loopback
//! that can be SIGKILLed and restarted, metadata polling through rdkafka, a
//! producer thread that writes numbered records and keeps its delivery
//! reports, and a reader of whole partitions.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use rustix::process::{Pid, Signal};

pub const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");
pub const NODES: usize = 3;
/// How long any one condition may take to become true.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Whether the six ports of a cluster at `base` can be bound now.
pub fn ports_free(base: u16) -> bool {
    (0..NODES as u16)
        .flat_map(|i| [base + i, base + 100 + i])
        .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

/// A base port in 10000..20000: below Linux's ephemeral range, so a port
/// freed by a killed node is not handed to some other test's socket before
/// the node comes back; and apart from `cluster_cli`'s 20000..30000.
pub fn free_base_port() -> u16 {
    for _ in 0..100 {
        let r = std::collections::hash_map::RandomState::new().hash_one(0u8);
        let base = 10_000 + (r % 9_800) as u16;
        if ports_free(base) {
            return base;
        }
    }
    panic!("no free base port found");
}

/// Three `rivulet` node processes, each a voter of the metadata quorum and a
/// broker. Dropping the cluster kills every node; if the test is failing,
/// the tail of each node's log is printed first.
pub struct Cluster {
    pub root: tempfile::TempDir,
    pub base: u16,
    pub children: Vec<Option<Child>>,
}

impl Cluster {
    pub fn start() -> Cluster {
        let mut c = Cluster {
            root: tempfile::tempdir().unwrap(),
            base: free_base_port(),
            children: (0..NODES).map(|_| None).collect(),
        };
        for id in 1..=NODES as i32 {
            c.spawn(id);
        }
        // Ready once every node is registered (and unfenced): Metadata
        // lists live brokers only.
        let meta: BaseConsumer = client_config(&c.bootstrap()).create().unwrap();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let live = meta
                .fetch_metadata(None, Duration::from_secs(3))
                .map_or(0, |md| md.brokers().len());
            if live == NODES {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "{live} of {NODES} brokers came up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn port(&self, id: i32) -> u16 {
        self.base + id as u16 - 1
    }

    pub fn addr(&self, id: i32) -> String {
        format!("127.0.0.1:{}", self.port(id))
    }

    pub fn bootstrap(&self) -> String {
        (1..=NODES as i32)
            .map(|id| self.addr(id))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn log_path(&self, id: i32) -> PathBuf {
        self.root.path().join(format!("node-{id}.log"))
    }

    pub fn spawn(&mut self, id: i32) {
        let voters: Vec<String> = (1..=NODES as i32)
            .map(|n| format!("{n}@127.0.0.1:{}", self.port(n) + 100))
            .collect();
        let settings = [
            format!("node.id={id}"),
            format!("listeners={}", self.addr(id)),
            format!("controller.listener=127.0.0.1:{}", self.port(id) + 100),
            format!("controller.quorum.voters={}", voters.join(",")),
            "cluster.id=failover-test".to_string(),
            format!(
                "data.dir={}",
                self.root.path().join(format!("node-{id}")).display()
            ),
            "default.replication.factor=3".to_string(),
            "min.insync.replicas=2".to_string(),
            // Shorter than the defaults (9 s / 2 s / 30 s) so a killed
            // node is fenced, and a slow one dropped from the ISR, quickly.
            "broker.session.timeout.ms=3000".to_string(),
            "broker.heartbeat.interval.ms=300".to_string(),
            "replica.lag.time.max.ms=5000".to_string(),
        ];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .unwrap();
        let mut cmd = Command::new(RIVULET);
        for s in &settings {
            cmd.arg("--set").arg(s);
        }
        let child = cmd
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[id as usize - 1] = Some(child);
    }

    pub fn running(&self, id: i32) -> bool {
        self.children[id as usize - 1].is_some()
    }

    pub fn live(&self) -> Vec<i32> {
        (1..=NODES as i32).filter(|id| self.running(*id)).collect()
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill(&mut self, id: i32) {
        let mut child = self.children[id as usize - 1].take().expect("node runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM node `id` (a controlled shutdown) and wait for it to exit.
    pub fn terminate(&mut self, id: i32) {
        let mut child = self.children[id as usize - 1].take().expect("node runs");
        rustix::process::kill_process(Pid::from_child(&child), Signal::TERM).unwrap();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "node {id} exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "node {id} ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn tail(&self, id: i32, lines: usize) -> String {
        let Ok(f) = File::open(self.log_path(id)) else {
            return String::new();
        };
        let all: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for id in 1..=NODES as i32 {
                eprintln!("---- node {id} log tail ----\n{}", self.tail(id, 40));
            }
            if std::env::var_os("RIVULET_KEEP_FAILED").is_some() {
                self.root.disable_cleanup(true);
                eprintln!("kept {}", self.root.path().display());
            }
        }
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("allow.auto.create.topics", "false")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("reconnect.backoff.max.ms", "500");
    c
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

pub fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create().unwrap();
    let topic =
        NewTopic::new(name, partitions, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let res = block_on(admin.create_topics([&topic], &opts)).unwrap();
    assert!(res.iter().all(Result::is_ok), "create {name}: {res:?}");
}

/// One partition as a Metadata response shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// Metadata of `topic` through `meta`: partition → view; None on error.
pub fn partitions(meta: &BaseConsumer, topic: &str) -> Option<BTreeMap<i32, PartitionView>> {
    let md = meta
        .fetch_metadata(Some(topic), Duration::from_secs(3))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() {
        return None;
    }
    Some(
        t.partitions()
            .iter()
            .map(|p| {
                let mut isr = p.isr().to_vec();
                isr.sort_unstable();
                let mut replicas = p.replicas().to_vec();
                replicas.sort_unstable();
                (
                    p.id(),
                    PartitionView {
                        leader: p.leader(),
                        replicas,
                        isr,
                    },
                )
            })
            .collect(),
    )
}

/// Poll metadata until `f` holds for `topic`'s partitions; returns them.
pub fn wait_for(
    meta: &BaseConsumer,
    topic: &str,
    what: &str,
    f: impl Fn(&BTreeMap<i32, PartitionView>) -> bool,
) -> BTreeMap<i32, PartitionView> {
    let deadline = Instant::now() + TIMEOUT;
    let mut last = None;
    loop {
        if let Some(ps) = partitions(meta, topic) {
            if f(&ps) {
                return ps;
            }
            last = Some(ps);
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: never {what}; last seen {last:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the producer thread learned from its delivery reports.
#[derive(Debug, Default)]
pub struct Tally {
    /// (partition, sequence number) → offset, for every acknowledged record.
    pub acked: BTreeMap<(i32, u64), i64>,
    /// Failed deliveries, by error.
    pub failed: BTreeMap<String, u64>,
    /// Delivery reports so far.
    pub reports: u64,
}

pub struct Reports(pub Arc<Mutex<Tally>>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut t = self.0.lock().unwrap();
        t.reports += 1;
        match result {
            Ok(m) => {
                let (p, seq) = parse(m.payload().unwrap());
                assert_eq!(p, m.partition(), "record landed in another partition");
                let old = t.acked.insert((p, seq), m.offset());
                assert!(old.is_none(), "record {p}:{seq} acknowledged twice");
            }
            Err((e, _)) => *t.failed.entry(e.to_string()).or_default() += 1,
        }
    }
}

pub fn value(partition: i32, seq: u64) -> String {
    format!("{partition}:{seq:010}")
}

pub fn parse(payload: &[u8]) -> (i32, u64) {
    let s = std::str::from_utf8(payload).unwrap();
    let (p, seq) = s.split_once(':').unwrap();
    (p.parse().unwrap(), seq.parse().unwrap())
}

/// A producer thread writing `partition:seq` records round-robin over
/// `partitions` until told to stop; it returns how many it sent to each.
pub struct Writer {
    pub stop: Arc<AtomicBool>,
    pub tally: Arc<Mutex<Tally>>,
    pub handle: std::thread::JoinHandle<Vec<u64>>,
}

impl Writer {
    pub fn start(bootstrap: &str, topic: &str, partitions: i32, idempotent: bool) -> Writer {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let mut config = client_config(bootstrap);
        config
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "120000")
            .set("request.timeout.ms", "10000")
            .set("retry.backoff.ms", "50")
            .set("retry.backoff.max.ms", "500");
        if idempotent {
            config.set("enable.idempotence", "true");
        } else {
            // No retries: a record is written at most once, so even without
            // idempotence each partition must read back strictly increasing.
            config
                .set("enable.idempotence", "false")
                .set("message.send.max.retries", "0")
                .set("max.in.flight.requests.per.connection", "1");
        }
        let producer: BaseProducer<Reports> =
            config.create_with_context(Reports(tally.clone())).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, tally2, topic) = (stop.clone(), tally.clone(), topic.to_string());
        let handle = std::thread::spawn(move || {
            let mut sent = vec![0u64; partitions as usize];
            let mut n = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let p = (n % partitions as u64) as i32;
                let v = value(p, sent[p as usize]);
                // Keep at most ~2000 records outstanding.
                while n - tally2.lock().unwrap().reports > 2000 {
                    producer.poll(Duration::from_millis(10));
                }
                loop {
                    match producer.send::<(), _>(BaseRecord::to(&topic).partition(p).payload(&v)) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                            producer.poll(Duration::from_millis(10));
                        }
                        Err((e, _)) => panic!("send failed: {e}"),
                    }
                }
                sent[p as usize] += 1;
                n += 1;
                producer.poll(Duration::ZERO);
                if n.is_multiple_of(20) {
                    // ~1000 records/s: enough traffic in flight at every kill.
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            producer
                .flush(Duration::from_secs(150))
                .expect("every record reported within its timeout");
            sent
        });
        Writer {
            stop,
            tally,
            handle,
        }
    }

    pub fn acked(&self) -> usize {
        self.tally.lock().unwrap().acked.len()
    }

    /// Wait until `more` records beyond `from` are acknowledged.
    pub fn wait_acked(&self, from: usize, more: usize) {
        let deadline = Instant::now() + TIMEOUT;
        while self.acked() < from + more {
            assert!(
                Instant::now() < deadline,
                "writes stalled at {} acks (failures: {:?})",
                self.acked(),
                self.tally.lock().unwrap().failed
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn finish(self) -> (Vec<u64>, Tally) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.handle.join().unwrap();
        let tally = std::mem::take(&mut *self.tally.lock().unwrap());
        (sent, tally)
    }
}

/// The high watermark of `topic`/`partition`, retried while the client's
/// metadata still names a dead leader.
pub fn high_watermark(client: &BaseConsumer, topic: &str, partition: i32) -> i64 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match client.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
            Ok((_, high)) => return high,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "{topic}/{partition}: no high watermark: {e}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Every record of `topic`/`partition` from the beginning to its high
/// watermark: (offset, sequence number).
pub fn read_partition(bootstrap: &str, topic: &str, partition: i32) -> Vec<(i64, u64)> {
    let c: BaseConsumer = client_config(bootstrap)
        .set("group.id", "failover-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let high = high_watermark(&c, topic, partition);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while out.last().map_or(0, |(o, _)| o + 1) < high {
        assert!(
            Instant::now() < deadline,
            "partition {partition}: read {} records, up to offset {:?} of {high}",
            out.len(),
            out.last()
        );
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let (p, seq) = parse(m.payload().unwrap());
                assert_eq!(p, partition, "record of partition {p} in {partition}");
                out.push((m.offset(), seq));
            }
            Some(Err(e)) => eprintln!("reader: {e} (retrying)"),
            None => {}
        }
    }
    out
}
