//! Failover end to end: three real `rivulet` processes on loopback, killed
//! with SIGKILL while a real client (rdkafka) writes and reads.
//!
//! - `acks_all_survives_leader_kills_*`: an RF-3 topic with
//!   `min.insync.replicas=2`; a producer with `acks=all` writes a numbered
//!   sequence to every partition while the test SIGKILLs the leader of a
//!   partition, restarts it, waits for it to rejoin every ISR, and goes on
//!   with another partition's leader (a different node each round). At the
//!   end a consumer reads the whole topic: every acknowledged record is at
//!   the offset its acknowledgement named, each partition's sequence is
//!   strictly increasing (no duplicate, no reordering) and holds nothing that
//!   was not sent. With idempotence on, nothing may fail at all, so each
//!   partition is exactly the sent sequence. Then a lone surviving replica
//!   refuses acks=all with NOT_ENOUGH_REPLICAS.
//! - `consumer_group_survives_coordinator_failover`: the group coordinator's
//!   node is killed; the committed offsets survive on the new coordinator and
//!   the group member carries on to the end of the topic.
//!
//! Rounds: `RIVULET_CHAOS_ROUNDS` (default 3) kills per test; the longer
//! chaos run is `scripts/chaos.sh` (README, "Tests").

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
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");
const NODES: usize = 3;
/// How long any one condition may take to become true.
const TIMEOUT: Duration = Duration::from_secs(60);

fn rounds() -> usize {
    std::env::var("RIVULET_CHAOS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Whether the six ports of a cluster at `base` can be bound now.
fn ports_free(base: u16) -> bool {
    (0..NODES as u16)
        .flat_map(|i| [base + i, base + 100 + i])
        .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

/// A base port in 10000..20000: below Linux's ephemeral range, so a port
/// freed by a killed node is not handed to some other test's socket before
/// the node comes back; and apart from `cluster_cli`'s 20000..30000.
fn free_base_port() -> u16 {
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
struct Cluster {
    root: tempfile::TempDir,
    base: u16,
    children: Vec<Option<Child>>,
}

impl Cluster {
    fn start() -> Cluster {
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

    fn port(&self, id: i32) -> u16 {
        self.base + id as u16 - 1
    }

    fn addr(&self, id: i32) -> String {
        format!("127.0.0.1:{}", self.port(id))
    }

    fn bootstrap(&self) -> String {
        (1..=NODES as i32)
            .map(|id| self.addr(id))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn log_path(&self, id: i32) -> PathBuf {
        self.root.path().join(format!("node-{id}.log"))
    }

    fn spawn(&mut self, id: i32) {
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

    fn running(&self, id: i32) -> bool {
        self.children[id as usize - 1].is_some()
    }

    fn live(&self) -> Vec<i32> {
        (1..=NODES as i32).filter(|id| self.running(*id)).collect()
    }

    /// SIGKILL node `id` and reap it.
    fn kill(&mut self, id: i32) {
        let mut child = self.children[id as usize - 1].take().expect("node runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM node `id` (a controlled shutdown) and wait for it to exit.
    fn terminate(&mut self, id: i32) {
        let mut child = self.children[id as usize - 1].take().expect("node runs");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
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

    fn tail(&self, id: i32, lines: usize) -> String {
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

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("allow.auto.create.topics", "false")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("reconnect.backoff.max.ms", "500");
    c
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create().unwrap();
    let topic =
        NewTopic::new(name, partitions, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let res = block_on(admin.create_topics([&topic], &opts)).unwrap();
    assert!(res.iter().all(Result::is_ok), "create {name}: {res:?}");
}

/// One partition as a Metadata response shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionView {
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

/// Metadata of `topic` through `meta`: partition → view; None on error.
fn partitions(meta: &BaseConsumer, topic: &str) -> Option<BTreeMap<i32, PartitionView>> {
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
fn wait_for(
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
struct Tally {
    /// (partition, sequence number) → offset, for every acknowledged record.
    acked: BTreeMap<(i32, u64), i64>,
    /// Failed deliveries, by error.
    failed: BTreeMap<String, u64>,
    /// Delivery reports so far.
    reports: u64,
}

struct Reports(Arc<Mutex<Tally>>);

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

fn value(partition: i32, seq: u64) -> String {
    format!("{partition}:{seq:010}")
}

fn parse(payload: &[u8]) -> (i32, u64) {
    let s = std::str::from_utf8(payload).unwrap();
    let (p, seq) = s.split_once(':').unwrap();
    (p.parse().unwrap(), seq.parse().unwrap())
}

/// A producer thread writing `partition:seq` records round-robin over
/// `partitions` until told to stop; it returns how many it sent to each.
struct Writer {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    handle: std::thread::JoinHandle<Vec<u64>>,
}

impl Writer {
    fn start(bootstrap: &str, topic: &str, partitions: i32, idempotent: bool) -> Writer {
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

    fn acked(&self) -> usize {
        self.tally.lock().unwrap().acked.len()
    }

    /// Wait until `more` records beyond `from` are acknowledged.
    fn wait_acked(&self, from: usize, more: usize) {
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

    fn finish(self) -> (Vec<u64>, Tally) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.handle.join().unwrap();
        let tally = std::mem::take(&mut *self.tally.lock().unwrap());
        (sent, tally)
    }
}

/// The high watermark of `topic`/`partition`, retried while the client's
/// metadata still names a dead leader.
fn high_watermark(client: &BaseConsumer, topic: &str, partition: i32) -> i64 {
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
fn read_partition(bootstrap: &str, topic: &str, partition: i32) -> Vec<(i64, u64)> {
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

/// The invariants of one partition's log after the chaos: every
/// acknowledged record is at the offset its acknowledgement named, no record
/// is there twice (the non-idempotent writer does not retry either), nothing
/// is there that was not sent. An idempotent producer also keeps its send
/// order, so its partition must be exactly the sent sequence.
///
/// Without idempotence the order of records is the order the leader
/// received them, which need not be the send order: on a leader change
/// librdkafka may send newer records to the new leader before older ones it
/// still held for the dead one (seen here: a batch of older records landed
/// after newer ones, each at the offset its acknowledgement named).
fn check_partition(partition: i32, log: &[(i64, u64)], sent: u64, tally: &Tally, idempotent: bool) {
    let mut at: BTreeMap<u64, i64> = BTreeMap::new();
    for (o, seq) in log {
        assert!(
            *seq < sent,
            "partition {partition}: offset {o} holds {seq}, which was never sent"
        );
        if let Some(first) = at.insert(*seq, *o) {
            panic!("partition {partition}: record {seq} at offsets {first} and {o}");
        }
    }
    let mut acked = 0;
    for ((_, seq), offset) in tally.acked.range((partition, 0)..(partition + 1, 0)) {
        assert_eq!(
            at.get(seq),
            Some(offset),
            "partition {partition}: acknowledged record {seq} is not at offset {offset}"
        );
        acked += 1;
    }
    assert!(acked > 0, "partition {partition}: nothing acknowledged");
    let reordered = log.windows(2).filter(|w| w[0].1 > w[1].1).count();
    if idempotent {
        let want: Vec<u64> = (0..sent).collect();
        let got: Vec<u64> = log.iter().map(|(_, s)| *s).collect();
        assert_eq!(
            got, want,
            "partition {partition}: the idempotent producer's sequence, exactly"
        );
    } else if reordered > 0 {
        eprintln!("partition {partition}: the client reordered records {reordered} times");
    }
}

fn acks_all_survives_leader_kills(idempotent: bool) {
    let started = Instant::now();
    let mut cluster = Cluster::start();
    let bootstrap = cluster.bootstrap();
    let topic = "chaos";
    let partitions = 3;
    create_topic(&bootstrap, topic, partitions);
    let meta: BaseConsumer = client_config(&bootstrap).create().unwrap();
    let all_in_sync = |ps: &BTreeMap<i32, PartitionView>| {
        ps.len() == partitions as usize && ps.values().all(|p| p.isr.len() == 3 && p.leader > 0)
    };
    wait_for(&meta, topic, "fully in sync", all_in_sync);

    let writer = Writer::start(&bootstrap, topic, partitions, idempotent);
    writer.wait_acked(0, 300);
    let mut killed = Vec::new();
    for round in 0..rounds() {
        // Kill the leader of a partition chosen round-robin: partitions'
        // preferred leaders differ, so the victims do too.
        let ps = wait_for(&meta, topic, "fully in sync", all_in_sync);
        let victim = ps[&((round % partitions as usize) as i32)].leader;
        let before = writer.acked();
        let t0 = Instant::now();
        cluster.kill(victim);
        killed.push(victim);
        // The controller fences it: it leaves every ISR, and the partitions
        // it led get a leader from the rest of their ISR.
        let moved = wait_for(
            &meta,
            topic,
            "led and in sync without the killed node",
            |ps| {
                ps.values()
                    .all(|p| p.leader > 0 && p.leader != victim && !p.isr.contains(&victim))
            },
        );
        let moved_after = t0.elapsed();
        writer.wait_acked(before, 200);
        eprintln!(
            "round {round}: killed node {victim}; leaders moved in {moved_after:?}, \
             200 more acks after {:?}; {moved:?}",
            t0.elapsed()
        );
        cluster.spawn(victim);
        let t1 = Instant::now();
        wait_for(
            &meta,
            topic,
            "with the restarted node back in every ISR",
            |ps| ps.values().all(|p| p.isr.contains(&victim)),
        );
        eprintln!(
            "round {round}: node {victim} back in every ISR after {:?}",
            t1.elapsed()
        );
        writer.wait_acked(writer.acked(), 100);
    }
    let (sent, tally) = writer.finish();
    eprintln!(
        "sent {sent:?}, acknowledged {}, failed {:?}, killed {killed:?}",
        tally.acked.len(),
        tally.failed
    );
    if rounds() >= 2 {
        let mut distinct = killed.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() >= 2, "every kill hit node {killed:?}");
    }
    if idempotent {
        assert!(
            tally.failed.is_empty(),
            "an idempotent producer with retries lost records: {:?}",
            tally.failed
        );
    }
    for p in 0..partitions {
        let log = read_partition(&bootstrap, topic, p);
        check_partition(p, &log, sent[p as usize], &tally, idempotent);
    }

    // A lone survivor: kill one replica; once the ISR has shrunk, stop
    // another cleanly (its controlled shutdown leaves the ISR while the
    // metadata quorum still has a majority); the last one, leading alone,
    // refuses acks=all.
    let ps = wait_for(&meta, topic, "fully in sync", all_in_sync);
    let leader = ps[&0].leader;
    let others: Vec<i32> = cluster
        .live()
        .into_iter()
        .filter(|n| *n != leader)
        .collect();
    cluster.kill(others[0]);
    wait_for(&meta, topic, "shrunk to two", |ps| {
        ps[&0].isr.len() == 2 && ps[&0].leader == leader
    });
    cluster.terminate(others[1]);
    let lone = client_config(&cluster.addr(leader))
        .create::<BaseConsumer>()
        .unwrap();
    wait_for(&lone, topic, "led by the lone survivor alone", |ps| {
        ps[&0].isr == [leader] && ps[&0].leader == leader
    });
    let outcome = Arc::new(Mutex::new(Tally::default()));
    let p: BaseProducer<Reports> = client_config(&cluster.addr(leader))
        .set("acks", "all")
        .set("message.send.max.retries", "0")
        .set("message.timeout.ms", "10000")
        .create_with_context(Reports(outcome.clone()))
        .unwrap();
    p.send::<(), _>(BaseRecord::to(topic).partition(0).payload("lonely"))
        .map_err(|(e, _)| e)
        .unwrap();
    p.flush(Duration::from_secs(20)).unwrap();
    let outcome = outcome.lock().unwrap();
    assert!(
        outcome.acked.is_empty(),
        "the lone survivor acknowledged acks=all"
    );
    let errors: Vec<&String> = outcome.failed.keys().collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("NotEnoughReplicas"),
        "refused with {errors:?}"
    );
    eprintln!("whole test took {:?}", started.elapsed());
}

#[test]
fn acks_all_survives_leader_kills_without_idempotence() {
    acks_all_survives_leader_kills(false);
}

#[test]
fn acks_all_survives_leader_kills_with_idempotence() {
    acks_all_survives_leader_kills(true);
}

/// The node that coordinates `group`: the leader of its partition of
/// `__consumer_offsets`, once every replica is in sync.
fn coordinator(meta: &BaseConsumer, group: &str) -> (i32, PartitionView) {
    let ps = wait_for(meta, "__consumer_offsets", "fully in sync", |ps| {
        !ps.is_empty() && ps.values().all(|p| p.leader > 0 && p.isr.len() == 3)
    });
    let p = rivulet_broker::group::offsets::partition_for(group, ps.len() as i32);
    (p, ps[&p].clone())
}

/// A group member's progress: the committed offset of each partition.
fn committed(c: &BaseConsumer, topic: &str, partitions: i32) -> Vec<i64> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(20))
        .expect("committed offsets");
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).unwrap().offset() {
            Offset::Offset(o) => o,
            _ => -1,
        })
        .collect()
}

/// Poll `member` until `seen` holds `n` distinct records (a redelivery after
/// a rebalance counts once more in its tally, not as a new record).
fn poll_until(member: &BaseConsumer, seen: &mut BTreeMap<(i32, u64), u32>, n: usize) {
    let deadline = Instant::now() + TIMEOUT;
    while seen.len() < n {
        assert!(
            Instant::now() < deadline,
            "the group member stalled at {} of {n} records",
            seen.len()
        );
        match member.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                *seen.entry(parse(m.payload().unwrap())).or_default() += 1;
            }
            Some(Err(e)) => eprintln!("member: {e} (retrying)"),
            None => {}
        }
    }
}

#[test]
fn consumer_group_survives_coordinator_failover() {
    let mut cluster = Cluster::start();
    let bootstrap = cluster.bootstrap();
    let topic = "work";
    let partitions = 3;
    create_topic(&bootstrap, topic, partitions);
    let meta: BaseConsumer = client_config(&bootstrap).create().unwrap();
    wait_for(&meta, topic, "fully in sync", |ps| {
        ps.len() == 3 && ps.values().all(|p| p.isr.len() == 3)
    });
    let writer = Writer::start(&bootstrap, topic, partitions, true);
    writer.wait_acked(0, 1500);
    let (sent, tally) = writer.finish();
    let total: u64 = sent.iter().sum();
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);

    let group = "survivors";
    let member: BaseConsumer = client_config(&bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()
        .unwrap();
    member.subscribe(&[topic]).unwrap();
    let mut seen: BTreeMap<(i32, u64), u32> = BTreeMap::new();
    poll_until(&member, &mut seen, total as usize / 2);
    member.commit_consumer_state(CommitMode::Sync).unwrap();
    let before = committed(&member, topic, partitions);
    // The idempotent writer lost nothing, so record `seq` of a partition is
    // at offset `seq`: the commit is one past the last record seen there.
    let positions: Vec<i64> = (0..partitions)
        .map(|p| {
            seen.range((p, 0)..(p + 1, 0))
                .next_back()
                .map_or(-1, |((_, seq), _)| *seq as i64 + 1)
        })
        .collect();
    assert_eq!(before, positions, "committed offsets");

    // The offsets topic is replicated to all three nodes (min(3, brokers)).
    let (offsets_partition, view) = coordinator(&meta, group);
    assert_eq!(view.replicas, [1, 2, 3], "__consumer_offsets replicas");
    let victim = view.leader;
    cluster.kill(victim);
    let t0 = Instant::now();
    wait_for(&meta, "__consumer_offsets", "led by a live node", |ps| {
        ps[&offsets_partition].leader > 0 && ps[&offsets_partition].leader != victim
    });
    // The new coordinator answers with what was committed before the kill.
    let probe: BaseConsumer = client_config(&bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        match probe.committed_offsets(tpl, Duration::from_secs(5)) {
            Ok(got) => {
                let now: Vec<i64> = (0..partitions)
                    .map(|p| match got.find_partition(topic, p).unwrap().offset() {
                        Offset::Offset(o) => o,
                        _ => -1,
                    })
                    .collect();
                assert_eq!(now, before, "committed offsets after the coordinator died");
                break;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "no coordinator answers: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    eprintln!("new coordinator answered after {:?}", t0.elapsed());

    // The member carries on through the new coordinator to the end.
    poll_until(&member, &mut seen, total as usize);
    member.commit_consumer_state(CommitMode::Sync).unwrap();
    let after = committed(&member, topic, partitions);
    let ends: Vec<i64> = (0..partitions)
        .map(|p| high_watermark(&meta, topic, p))
        .collect();
    assert_eq!(
        after, ends,
        "the group committed the end of every partition"
    );
    for p in 0..partitions {
        for seq in 0..sent[p as usize] {
            assert!(
                seen.contains_key(&(p, seq)),
                "record {p}:{seq} never consumed"
            );
        }
    }
    drop(member);
    drop(probe);
    // The killed node comes back and rejoins the offsets topic's ISR.
    cluster.spawn(victim);
    wait_for(&meta, "__consumer_offsets", "with the node back", |ps| {
        ps[&offsets_partition].isr.contains(&victim)
    });
}
