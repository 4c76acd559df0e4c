//! Replication figures on a local 3-node cluster (a plain harness, not
//! criterion), with a real client (rdkafka 0.39, i.e. librdkafka) against
//! the release `rivulet` binary (`$RIVULET_BIN`, or built as for `loadgen`).
//! Every node runs with its defaults except ports, ids and data dirs, so
//! the figures are what `rivulet cluster up` gives.
//!
//! 1. Throughput, latency, CPU and memory, all in one run as ratios
//!    (`cluster/throughput.rs`): 1 KiB records, `linger.ms` 5 and
//!    librdkafka's defaults otherwise, each load to a fresh topic on a
//!    single node (RF 1) and on the 3-node cluster (RF 3,
//!    `min.insync.replicas` 2), both with their default flush policy (fsync
//!    before an acks=all answer). Loads: one producer on one partition
//!    acks=all; 4 producers on 8 partitions acks=all; one connection acks=all
//!    with `max.in.flight` 5; and the client ceiling, one producer acks=0 on
//!    the single node. Runs alternate between loads and targets
//!    (`CLUSTER_BENCH_REPEAT`, default 2) and the best of each is reported;
//!    then the two acks=all loads run on the cluster paced at half their
//!    best rate for the p99 latency. Reported: 3-node / single-node
//!    throughput per load, the one-connection runs over the ceiling, p99 at
//!    half load, broker CPU seconds per GiB (the sum of the three nodes'),
//!    and every node's RSS idle (before any topic) and peak (VmHWM) after
//!    the runs. A run: `CLUSTER_BENCH_RECORDS` records (default 300,000)
//!    sent as fast as 10,000-record producer queues take them; latency from
//!    enqueue to delivery report (queue time included).
//! 2. Unavailability window: a probe producer (acks=all, idempotent) sends
//!    a record every 5 ms to a partition led by node L; L is SIGKILLed; the
//!    window is from the kill to the first acknowledgement of a record sent
//!    after it. L is restarted and back in the ISR before the next of
//!    `CLUSTER_BENCH_KILLS` (default 3) kills. The controller fences the
//!    dead node as soon as its port refuses connections (README,
//!    "Failover"); `CLUSTER_BENCH_SET=broker.fence.on.refused.connection=false`
//!    measures the old wait for `broker.session.timeout.ms` (9 s).
//! 3. Catch-up: a follower is SIGKILLed, `CLUSTER_BENCH_LAG_MB` (default
//!    1024) MiB of 1 KiB records are written with acks=all to the other two,
//!    the follower is restarted, and the time from its restart to its return
//!    to the ISR is measured (and the time to start serving, for scale).
//!
//! `CLUSTER_BENCH_HALF=R1,R2` skips the full-speed runs and paces the two
//! acks=all loads on the cluster at R1 and R2 records/s (latency only; each
//! phase's p50, p99, p99.9 and largest bucket). `CLUSTER_BENCH_TIMELINE=1`
//! also prints every paced run's librdkafka round-trip p99/max per 1 s
//! window, in order (a steady tail or a few stalls).
//! `CLUSTER_BENCH_SET=k=v;k=v` adds settings to every node (e.g.
//! `log.flush.policy=never` to see what the on-ack fsyncs cost).
//! `CLUSTER_BENCH_PARTS` picks parts by name (`throughput,kill,lag`; all by
//! default).
//!
//! Run: `cargo bench --bench cluster`.

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rivulet_testkit::cluster::{ClusterSpec, ProcessCluster};
use rivulet_testkit::dirs::bench_dir;
use rivulet_testkit::kafka::{
    bench_client_config, block_on, try_create_topic, wait_for_partitions, Admin,
};
use rivulet_testkit::poll::Poll;
use rivulet_testkit::stats::percentile;

#[path = "common/mod.rs"]
mod common;
#[path = "cluster/throughput.rs"]
mod throughput;
use common::{env_usize, rivulet_bin, target_dir};

/// Upper bound on any single wait; a run that exceeds it is broken.
const T: Duration = Duration::from_secs(180);
const MIB: usize = 1 << 20;

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = bench_client_config(bootstrap);
    c.set("topic.metadata.refresh.interval.ms", "1000");
    c
}

// ---- nodes ----

/// One or three `rivulet` processes on free loopback ports, with their
/// defaults but for `CLUSTER_BENCH_SET`; logs in
/// `target/cluster-bench-<label>-node-<id>.log`.
fn start_nodes(bin: &Path, n: usize, label: &str) -> ProcessCluster {
    let spec = ClusterSpec::new(bin, n)
        .root(bench_dir())
        .logs(target_dir(), format!("cluster-bench-{label}-"))
        .cluster_id("cluster-bench")
        .env("NO_COLOR", "1")
        .timeout(T)
        .set_from_env("CLUSTER_BENCH_SET");
    ProcessCluster::start(spec)
}

fn create_topic(bootstrap: &str, topic: &str, rf: i32) {
    let admin: Admin = client_config(bootstrap).create().expect("admin");
    let configs: &[(&str, &str)] = if rf > 1 {
        &[("min.insync.replicas", "2")]
    } else {
        &[]
    };
    if let Err(e) = block_on(try_create_topic(&admin, topic, 1, rf, configs)) {
        panic!("create {topic}: {e:?}");
    }
    wait_partition(bootstrap, topic, |_, isr| isr.len() == rf as usize);
}

/// `(leader, isr)` of `topic`/0 once `f` holds.
fn wait_partition(
    bootstrap: &str,
    topic: &str,
    f: impl Fn(i32, &[i32]) -> bool,
) -> (i32, Vec<i32>) {
    let client: BaseConsumer = client_config(bootstrap).create().expect("client");
    let ps = wait_for_partitions(&client, topic, "the condition", Poll::new(T), |ps| {
        ps.get(&0)
            .is_some_and(|p| p.leader > 0 && f(p.leader, &p.isr))
    });
    let p = &ps[&0];
    (p.leader, p.isr.clone())
}

// ---- producing ----

/// Delivery reports: (enqueued, delivered) per acknowledged record, in
/// nanoseconds since `base`, plus failures.
struct Reports {
    base: Instant,
    acked: Mutex<Vec<(u64, u64)>>,
    failed: Mutex<Vec<String>>,
    /// librdkafka's request round-trip windows (`statistics.interval.ms`),
    /// per broker connection with requests in the window: (p99, max) in
    /// microseconds.
    rtt: Mutex<Vec<(i64, i64)>>,
}

impl Reports {
    fn new() -> Arc<Reports> {
        Arc::new(Reports {
            base: Instant::now(),
            acked: Mutex::new(Vec::new()),
            failed: Mutex::new(Vec::new()),
            rtt: Mutex::new(Vec::new()),
        })
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

struct Ctx(Arc<Reports>);

impl ClientContext for Ctx {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut rtt = self.0.rtt.lock().expect("lock");
        for b in statistics.brokers.values() {
            if let Some(w) = b.rtt.as_ref().filter(|w| w.cnt > 0 && b.nodeid >= 0) {
                rtt.push((w.p99, w.max));
            }
        }
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: usize) {
        match result {
            Ok(_) => {
                let now = self.0.now();
                self.0.acked.lock().expect("lock").push((sent as u64, now));
            }
            Err((e, _)) => self.0.failed.lock().expect("lock").push(e.to_string()),
        }
    }
}

fn producer(
    bootstrap: &str,
    acks: &str,
    r: &Arc<Reports>,
    extra: &[(&str, &str)],
) -> ThreadedProducer<Ctx> {
    let mut c = client_config(bootstrap);
    c.set("acks", acks)
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", "10000")
        .set("message.timeout.ms", T.as_millis().to_string());
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create_with_context(Ctx(r.clone())).expect("producer")
}

/// Enqueue one record, waiting while the producer's queue is full.
fn send_one(p: &ThreadedProducer<Ctx>, r: &Reports, topic: &str, partition: i32, value: &[u8]) {
    let mut rec = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, r.now() as usize)
        .partition(partition)
        .payload(value);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                std::thread::sleep(Duration::from_micros(200));
                rec = back.delivery_opaque(r.now() as usize);
            }
            Err((e, _)) => panic!("produce to {topic}: {e}"),
        }
    }
}

/// Send `n` records of `value` to `topic`/0 as fast as the queue takes them.
fn send_all(p: &ThreadedProducer<Ctx>, r: &Reports, topic: &str, value: &[u8], n: usize) {
    for _ in 0..n {
        send_one(p, r, topic, 0, value);
    }
    p.flush(T).expect("flush");
}

/// Nearest-rank percentile of sorted nanoseconds, in ms.
fn pct_ms(sorted: &[u64], p: f64) -> f64 {
    percentile(sorted, p).map_or(f64::NAN, |ns| ns as f64 / 1e6)
}

// ---- the three parts ----

fn part_unavailability(bin: &Path, kills: usize) {
    let mut cluster = start_nodes(bin, 3, "kill");
    let bootstrap = cluster.bootstrap();
    let topic = "probe";
    create_topic(&bootstrap, topic, 3);
    let r = Reports::new();
    let p = producer(
        &bootstrap,
        "all",
        &r,
        &[("enable.idempotence", "true"), ("linger.ms", "0")],
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (p, r, stop) = (p.clone(), r.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let rec = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, r.now() as usize)
                    .partition(0)
                    .payload(b"probe".as_slice());
                let _ = p.send(rec);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let mut windows = Vec::new();
    for k in 0..kills {
        let (leader, _) = wait_partition(&bootstrap, topic, |_, isr| isr.len() == 3);
        std::thread::sleep(Duration::from_secs(1));
        let killed_at = r.now();
        cluster.kill(leader);
        let first = Poll::new(T)
            .every(Duration::from_millis(5))
            .value(|| {
                r.acked
                    .lock()
                    .expect("lock")
                    .iter()
                    .filter(|(sent, _)| *sent > killed_at)
                    .map(|(_, done)| *done)
                    .min()
            })
            .expect("a write succeeded after the kill");
        let window = (first - killed_at) as f64 / 1e9;
        let (new_leader, _) = wait_partition(&bootstrap, topic, |l, _| l != leader);
        println!("  kill {k}: node {leader} (leader) killed; first acks=all write acknowledged after {window:.2} s, by node {new_leader}");
        windows.push(window);
        cluster.restart(leader);
        wait_partition(&bootstrap, topic, |_, isr| isr.len() == 3);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.join().expect("sender");
    p.flush(T).expect("flush");
    windows.sort_by(f64::total_cmp);
    println!(
        "unavailability window after SIGKILL of the leader: \
         median {:.2} s, min {:.2} s, max {:.2} s over {kills} kills; {} probe records failed",
        windows[windows.len() / 2],
        windows[0],
        windows[windows.len() - 1],
        r.failed.lock().expect("lock").len()
    );
}

fn part_catch_up(bin: &Path, lag_mib: usize) {
    let mut cluster = start_nodes(bin, 3, "lag");
    let bootstrap = cluster.bootstrap();
    let topic = "lagging";
    create_topic(&bootstrap, topic, 3);
    let (leader, isr) = wait_partition(&bootstrap, topic, |_, isr| isr.len() == 3);
    let follower = *isr.iter().find(|id| **id != leader).expect("a follower");
    cluster.kill(follower);
    // Writes stall until the controller fences the follower (session
    // timeout) and it leaves the ISR; the producer simply waits.
    let records = lag_mib * MIB / 1024;
    let r = Reports::new();
    let p = producer(&bootstrap, "all", &r, &[("linger.ms", "5")]);
    let t0 = Instant::now();
    send_all(&p, &r, topic, &vec![b'l'; 1024], records);
    let wrote = t0.elapsed();
    assert!(r.failed.lock().expect("lock").is_empty());
    let (_, isr) = wait_partition(&bootstrap, topic, |_, _| true);
    assert!(
        !isr.contains(&follower),
        "the dead follower is still in the ISR"
    );
    let data: u64 = dir_size(&cluster.data_dir(leader).join(format!("{topic}-0")));
    println!(
        "  wrote {lag_mib} MiB ({records} records) with node {follower} down in {:.1} s; \
         leader's partition dir holds {:.0} MiB",
        wrote.as_secs_f64(),
        data as f64 / MIB as f64
    );
    let t1 = Instant::now();
    cluster.restart(follower);
    let pid = cluster.node(follower).pid();
    let serving = {
        let c: BaseConsumer = client_config(&cluster.addr(follower))
            .create()
            .expect("client");
        // The 500 ms Metadata timeout is the wait.
        let served = Poll::new(T)
            .every(Duration::ZERO)
            .until(|| c.fetch_metadata(None, Duration::from_millis(500)).is_ok());
        assert!(served, "the follower never served");
        t1.elapsed()
    };
    wait_partition(&bootstrap, topic, |_, isr| isr.contains(&follower));
    let rejoined = t1.elapsed();
    println!(
        "restarted follower (pid {pid}) with {lag_mib} MiB of lag: serving after {:.2} s, \
         back in the ISR after {:.2} s ({:.0} MiB/s caught up)",
        serving.as_secs_f64(),
        rejoined.as_secs_f64(),
        lag_mib as f64 / rejoined.as_secs_f64()
    );
}

fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from argv.
    let records = env_usize("CLUSTER_BENCH_RECORDS", 300_000);
    let repeat = env_usize("CLUSTER_BENCH_REPEAT", 2).max(1);
    let kills = env_usize("CLUSTER_BENCH_KILLS", 3).max(1);
    let lag_mib = env_usize("CLUSTER_BENCH_LAG_MB", 1024);
    let bin = rivulet_bin();
    let (_, v) = rdkafka::util::get_rdkafka_version();
    println!(
        "cluster bench: {} with default settings, rdkafka 0.39 (librdkafka {v}), 1 KiB records, \
         {} cores, load average {}",
        bin.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let parts = std::env::var("CLUSTER_BENCH_PARTS").unwrap_or_default();
    let run = |part: &str| parts.is_empty() || parts.split(',').any(|p| p.trim() == part);
    if run("throughput") {
        println!("-- throughput: {records} records per run");
        throughput::part(&bin, records, repeat);
    }
    if run("kill") {
        println!("-- unavailability after killing the leader");
        part_unavailability(&bin, kills);
    }
    if run("lag") {
        println!("-- catch-up after {lag_mib} MiB of lag");
        part_catch_up(&bin, lag_mib);
    }
}
