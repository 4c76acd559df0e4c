//! Failover speed with default settings (issue 15, "Failover").
//!
//! - `leader_kills_fail_over_fast`: a probe producer (librdkafka defaults
//!   but `acks=all` and idempotence) sends a numbered record every 5 ms to
//!   a partition of an RF-3 topic (`min.insync.replicas=2`) on three nodes
//!   with their default settings; the partition's leader is SIGKILLed
//!   `RIVULET_FAILOVER_KILLS` times (default 5), restarted and back in the
//!   ISR before the next kill. The unavailability window of each kill —
//!   from the kill to the first acknowledgement of a record sent after it —
//!   is printed and must stay under [`WINDOW_BOUND`] (the broker session
//!   timeout alone is 9 s); nothing may fail, and the partition must read
//!   back as exactly the acknowledged sequence.
//! - `busy_nodes_are_not_fenced`: producers saturate a healthy cluster for
//!   `RIVULET_SATURATE_SECS` (default 30) s; no node may be fenced (their
//!   logs and the broker list of Metadata, sampled throughout, say so).
//!
//! `RIVULET_FAILOVER_SET=k=v;k=v` adds node settings, e.g.
//! `broker.fence.on.refused.connection=false` for the old behaviour.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message;
use rivulet_testkit::cluster::{ClusterPorts, ClusterSpec, ProcessCluster};
use rivulet_testkit::kafka::{client_config, wait_for_partitions};
use rivulet_testkit::poll::Poll;

use super::harness::{create_replicated_topic, parse, read_partition, value, METADATA, NODES};
use super::harness::{RIVULET, TIMEOUT};

/// A generous bound on each kill's unavailability window (the target
/// median is 1.5 s; the session timeout alone was 9 s).
pub const WINDOW_BOUND: Duration = Duration::from_secs(5);

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Three nodes with their default settings (but ports, ids and
/// `RIVULET_FAILOVER_SET`).
pub fn default_cluster(label: &str) -> ProcessCluster {
    let mut spec = ClusterSpec::new(RIVULET, NODES)
        .ports(ClusterPorts::Block)
        .cluster_id(label)
        .env("RUST_LOG", "info,openraft=warn")
        .env("NO_COLOR", "1")
        .timeout(TIMEOUT);
    if let Some(dir) = std::env::var_os("RIVULET_FAILOVER_LOGS") {
        spec = spec.logs(dir, format!("{label}-"));
    }
    let spec = spec.set_from_env("RIVULET_FAILOVER_SET");
    ProcessCluster::start(spec)
}

/// Delivery reports with their times: (sequence, sent, acknowledged) in ns
/// since `base`, the offsets, and failures.
pub struct Probe {
    base: Instant,
    /// (seq, sent ns, acked ns, offset)
    pub acked: Mutex<Vec<(u64, u64, u64, i64)>>,
    pub failed: Mutex<Vec<String>>,
}

impl Probe {
    pub fn new() -> Arc<Probe> {
        Arc::new(Probe {
            base: Instant::now(),
            acked: Mutex::new(Vec::new()),
            failed: Mutex::new(Vec::new()),
        })
    }

    pub fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// When the first record sent after `t` was acknowledged, if one was.
    fn first_ack_of_sent_after(&self, t: u64) -> Option<u64> {
        self.acked
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, sent, _, _)| *sent > t)
            .map(|(_, _, acked, _)| *acked)
            .min()
    }
}

pub struct ProbeCtx(pub Arc<Probe>);

impl ClientContext for ProbeCtx {
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!("{} rdkafka {fac}: {log_message}", wall_clock());
    }
}

impl ProducerContext for ProbeCtx {
    /// When the record was sent, in ns since the probe's base.
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<u64>) {
        match result {
            Ok(m) => {
                let (_, seq) = parse(m.payload().unwrap_or_default());
                let now = self.0.now();
                self.0
                    .acked
                    .lock()
                    .unwrap()
                    .push((seq, *sent, now, m.offset()));
            }
            Err((e, _)) => self.0.failed.lock().unwrap().push(e.to_string()),
        }
    }
}

/// A producer with librdkafka's defaults but `acks=all` and idempotence,
/// and a thread sending `0:seq` to `topic`/0 every `every` until `stop`;
/// the thread returns how many it sent.
pub fn start_probe(
    bootstrap: &str,
    topic: &str,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> (
    Arc<Probe>,
    ThreadedProducer<ProbeCtx>,
    std::thread::JoinHandle<u64>,
) {
    let probe = Probe::new();
    let mut config = client_config(bootstrap);
    if let Ok(debug) = std::env::var("RIVULET_PROBE_DEBUG") {
        config
            .set("debug", debug)
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    let producer: ThreadedProducer<ProbeCtx> = config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .create_with_context(ProbeCtx(probe.clone()))
        .expect("probe producer");
    let sender = {
        let (p, probe, topic) = (producer.clone(), probe.clone(), topic.to_string());
        std::thread::spawn(move || {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let v = value(0, seq);
                let rec =
                    BaseRecord::<(), str, Box<u64>>::with_opaque_to(&topic, Box::new(probe.now()))
                        .partition(0)
                        .payload(v.as_str());
                match p.send(rec) {
                    Ok(()) => seq += 1,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {}
                    Err((e, _)) => panic!("probe send: {e}"),
                }
                std::thread::sleep(every);
            }
            seq
        })
    };
    (probe, producer, sender)
}

/// The time of day (UTC) with milliseconds, to line up with node logs.
fn wall_clock() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let s = d.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

#[test]
fn leader_kills_fail_over_fast() {
    let kills = env_usize("RIVULET_FAILOVER_KILLS", 5);
    let mut cluster = default_cluster("fast-failover");
    let bootstrap = cluster.bootstrap();
    let topic = "probe";
    create_replicated_topic(&bootstrap, topic, 1);
    let meta: BaseConsumer = client_config(&bootstrap).create().unwrap();
    let in_sync = |ps: &std::collections::BTreeMap<i32, rivulet_testkit::kafka::PartitionView>| {
        ps.get(&0).is_some_and(|p| p.leader > 0 && p.isr.len() == 3)
    };
    wait_for_partitions(&meta, topic, "fully in sync", METADATA, in_sync);
    let stop = Arc::new(AtomicBool::new(false));
    let (probe, producer, sender) =
        start_probe(&bootstrap, topic, Duration::from_millis(5), stop.clone());

    let mut windows = Vec::new();
    for k in 0..kills {
        let ps = wait_for_partitions(&meta, topic, "fully in sync", METADATA, in_sync);
        let leader = ps[&0].leader;
        // Writes flow before the kill.
        let before = probe.now();
        Poll::new(TIMEOUT)
            .every(Duration::from_millis(10))
            .retry("a probe ack before the kill", || {
                probe.first_ack_of_sent_after(before).ok_or("none yet")
            });
        let killed_at = probe.now();
        eprintln!("kill {k}: SIGKILL node {leader} at {}", wall_clock());
        cluster.kill(leader);
        let first = Poll::new(TIMEOUT).every(Duration::from_millis(5)).retry(
            "an ack of a record sent after the kill",
            || {
                probe
                    .first_ack_of_sent_after(killed_at)
                    .ok_or_else(|| probe.failed.lock().unwrap().clone())
            },
        );
        let window = Duration::from_nanos(first - killed_at);
        let ps = wait_for_partitions(&meta, topic, "led by another node", METADATA, |ps| {
            ps.get(&0)
                .is_some_and(|p| p.leader > 0 && p.leader != leader)
        });
        eprintln!(
            "kill {k}: node {leader} (leader) SIGKILLed; first acks=all ack after {:.3} s, new leader node {}",
            window.as_secs_f64(),
            ps[&0].leader
        );
        windows.push(window);
        cluster.restart(leader);
    }
    wait_for_partitions(&meta, topic, "fully in sync", METADATA, in_sync);
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    producer
        .flush(TIMEOUT)
        .expect("every probe record reported");
    let mut secs: Vec<f64> = windows.iter().map(Duration::as_secs_f64).collect();
    secs.sort_by(f64::total_cmp);
    eprintln!(
        "unavailability after SIGKILL of the leader over {kills} kills: median {:.3} s, min {:.3} s, max {:.3} s ({sent} probe records)",
        median(&secs),
        secs[0],
        secs[secs.len() - 1],
    );
    let failed = probe.failed.lock().unwrap().clone();
    assert!(failed.is_empty(), "probe records failed: {failed:?}");
    for (k, w) in windows.iter().enumerate() {
        assert!(
            *w < WINDOW_BOUND,
            "kill {k}: unavailable for {w:?}, more than {WINDOW_BOUND:?} ({windows:?})"
        );
    }
    // Nothing acknowledged is lost: the partition is exactly the sequence
    // sent, each acknowledged record at the offset its ack named.
    let log = read_partition(&bootstrap, topic, 0);
    let got: Vec<u64> = log.iter().map(|(_, s)| *s).collect();
    assert_eq!(got, (0..sent).collect::<Vec<_>>(), "the probe's sequence");
    for (seq, _, _, offset) in probe.acked.lock().unwrap().iter() {
        assert_eq!(
            log.get(*offset as usize).map(|(_, s)| *s),
            Some(*seq),
            "acknowledged record {seq} is not at offset {offset}"
        );
    }
}

#[test]
fn busy_nodes_are_not_fenced() {
    let secs = env_usize("RIVULET_SATURATE_SECS", 30) as u64;
    let cluster = default_cluster("saturated");
    let bootstrap = cluster.bootstrap();
    let topic = "load";
    create_replicated_topic(&bootstrap, topic, 6);
    let meta: BaseConsumer = client_config(&bootstrap).create().unwrap();
    wait_for_partitions(&meta, topic, "fully in sync", METADATA, |ps| {
        ps.len() == 6 && ps.values().all(|p| p.leader > 0 && p.isr.len() == 3)
    });
    // Four producers, acks=all, 1 KiB records as fast as their queues take
    // them: both cores busy with three nodes' replication and fsyncs.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let producers: Vec<_> = (0..4)
        .map(|i| {
            let (stop, acked, bootstrap) = (stop.clone(), acked.clone(), bootstrap.clone());
            std::thread::spawn(move || {
                let p: rdkafka::producer::FutureProducer = client_config(&bootstrap)
                    .set("acks", "all")
                    .set("linger.ms", "5")
                    .set("message.timeout.ms", "120000")
                    .create()
                    .unwrap();
                let value = vec![b'x'; 1024];
                let mut n = 0u64;
                let mut pending = std::collections::VecDeque::new();
                while !stop.load(Ordering::Relaxed) {
                    let rec = rdkafka::producer::FutureRecord::<(), [u8]>::to(topic)
                        .partition(((n + i) % 6) as i32)
                        .payload(&value);
                    match p.send_result(rec) {
                        Ok(f) => pending.push_back(f),
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                    n += 1;
                    while pending.len() > 5000 {
                        if let Some(f) = pending.pop_front() {
                            if matches!(rivulet_testkit::kafka::block_on(f), Ok(Ok(_))) {
                                acked.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                for f in pending {
                    if matches!(rivulet_testkit::kafka::block_on(f), Ok(Ok(_))) {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Every broker stays listed (unfenced) throughout.
    let started = Instant::now();
    let mut samples = 0;
    let mut short = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        if let Ok(md) = meta.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            samples += 1;
            if md.brokers().len() != 3 {
                short.push((started.elapsed(), md.brokers().len()));
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.join().unwrap();
    }
    let acked = acked.load(Ordering::Relaxed);
    let fenced: Vec<String> = cluster
        .ids()
        .flat_map(|id| {
            std::fs::read_to_string(cluster.log_path(id))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("fencing it"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    eprintln!(
        "{secs} s of saturating acks=all load: {acked} records of 1 KiB acknowledged \
         ({:.1} MB/s), {samples} metadata samples, {} without all 3 brokers, {} fencing events",
        acked as f64 * 1024.0 / 1e6 / secs as f64,
        short.len(),
        fenced.len()
    );
    assert!(acked > 0, "the load produced nothing");
    assert!(samples > 0, "no metadata sample");
    assert!(
        fenced.is_empty(),
        "healthy nodes fenced under load: {fenced:#?}"
    );
    assert!(short.is_empty(), "brokers missing from Metadata: {short:?}");
}
