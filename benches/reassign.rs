//! Partition reassignment under client load (issue 14), a plain harness on
//! a local 3-node cluster of the release `rivulet` binary (`$RIVULET_BIN`,
//! or built as for `loadgen`), with a real client (rdkafka).
//!
//! A partition `moved` on node 1 holds `REASSIGN_BENCH_MB` (default 256)
//! MiB of 1 KiB records; a client producer writes 1 KiB records with
//! acks=all as fast as it can to `clients` ([1, 2], led by node 1, the
//! moving partition's leader). After a 5 s baseline window, `moved` is
//! reassigned to [1, 2, 3] and the client throughput is measured until the
//! reassignment completes. Two runs, one cluster each, alternate settings:
//! without a replication quota, and with `leader.replication.throttled.rate`
//! = `REASSIGN_BENCH_RATE` (default 32 MB/s, shared by the two new
//! replicas). Reported: client records/s in the baseline and during the
//! move, their ratio, the move's duration and copy rate.
//!
//! Run: `cargo bench --bench reassign`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rivulet_testkit::cluster::{ClusterSpec, ProcessCluster};
use rivulet_testkit::dirs::bench_dir;
use rivulet_testkit::kafka::{bench_client_config, block_on, wait_for_leaders, Admin};
use rivulet_testkit::raw::raw_request;

#[path = "common/mod.rs"]
mod common;
use common::{env_usize, rivulet_bin, target_dir};

const T: Duration = Duration::from_secs(600);
const MIB: usize = 1 << 20;

struct Counter(Arc<AtomicU64>);

impl ClientContext for Counter {}

impl ProducerContext for Counter {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if r.is_ok() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn producer(bootstrap: &str, acked: Arc<AtomicU64>) -> ThreadedProducer<Counter> {
    let mut c = bench_client_config(bootstrap);
    c.set("acks", "all")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "20000");
    c.create_with_context(Counter(acked)).expect("producer")
}

/// Send 1 KiB records to `topic`/0 until `stop` (or `count` are sent).
fn fill(p: &ThreadedProducer<Counter>, topic: &str, stop: &AtomicBool, count: Option<usize>) {
    let value = vec![b'r'; 1024];
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) && count.is_none_or(|c| sent < c) {
        let rec: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).partition(0).payload(&value);
        match p.send(rec) {
            Ok(()) => sent += 1,
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

fn create_assigned(bootstrap: &str, name: &str, replicas: &[i32]) {
    let admin: Admin = bench_client_config(bootstrap).create().expect("admin");
    let a: &[&[i32]] = &[replicas];
    let t = NewTopic::new(name, 1, TopicReplication::Variable(a));
    let res = block_on(admin.create_topics(&[t], &AdminOptions::new())).expect("create");
    assert!(res[0].is_ok(), "{res:?}");
    wait_for_leaders(bootstrap, name, T);
}

fn reassign(addr: &str, topic: &str, replicas: &[i32]) {
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(
                    replicas.iter().map(|b| BrokerId(*b)).collect(),
                ))])]);
    let r = block_on(raw_request(addr, 0, &req));
    assert_eq!(r.error_code, 0);
    assert!(r
        .responses
        .iter()
        .all(|t| t.partitions.iter().all(|p| p.error_code == 0)));
}

fn ongoing(addr: &str) -> usize {
    let r = block_on(raw_request(
        addr,
        0,
        &ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000),
    ));
    r.topics.iter().map(|t| t.partitions.len()).sum()
}

struct Figures {
    baseline: f64,
    during: f64,
    move_secs: f64,
}

fn run(bin: &std::path::Path, label: &str, rate: Option<usize>, mb: usize) -> Figures {
    let mut spec = ClusterSpec::new(bin, 3)
        .root(bench_dir())
        .logs(target_dir(), format!("reassign-bench-{label}-"))
        .env("NO_COLOR", "1")
        .set("auto.leader.rebalance.enable", "false")
        .timeout(T);
    if let Some(r) = rate {
        spec = spec.set("leader.replication.throttled.rate", r);
    }
    let cluster = ProcessCluster::start(spec);
    let bs = cluster.bootstrap();
    create_assigned(&bs, "moved", &[1]);
    create_assigned(&bs, "clients", &[1, 2]);
    let fill_acked = Arc::new(AtomicU64::new(0));
    let p = producer(&bs, fill_acked.clone());
    fill(&p, "moved", &AtomicBool::new(false), Some(mb * MIB / 1024));
    p.flush(T).expect("flush");

    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (bs, acked, stop) = (bs.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let p = producer(&bs, acked);
            fill(&p, "clients", &stop, None);
            let _ = p.flush(Duration::from_secs(30));
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let a0 = acked.load(Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let baseline = (acked.load(Ordering::Relaxed) - a0) as f64 / t0.elapsed().as_secs_f64();

    let addr = cluster.addr(1);
    let a1 = acked.load(Ordering::Relaxed);
    let t1 = Instant::now();
    reassign(&addr, "moved", &[1, 2, 3]);
    while ongoing(&addr) > 0 {
        assert!(t1.elapsed() < T, "the move did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    let move_secs = t1.elapsed().as_secs_f64();
    let during = (acked.load(Ordering::Relaxed) - a1) as f64 / move_secs;
    stop.store(true, Ordering::Relaxed);
    client.join().expect("client thread");
    Figures {
        baseline,
        during,
        move_secs,
    }
}

fn main() {
    let mb = env_usize("REASSIGN_BENCH_MB", 256);
    let rate = env_usize("REASSIGN_BENCH_RATE", 32_000_000);
    let bin = rivulet_bin();
    let free = run(&bin, "unthrottled", None, mb);
    let throttled = run(&bin, "throttled", Some(rate), mb);
    for (name, f) in [("no quota", &free), ("quota", &throttled)] {
        println!(
            "{name:>9}: clients {:.0} rec/s before, {:.0} rec/s during the move (ratio {:.2}); \
             {mb} MiB to 2 new replicas in {:.1} s ({:.1} MiB/s per replica)",
            f.baseline,
            f.during,
            f.during / f.baseline,
            f.move_secs,
            mb as f64 / f.move_secs
        );
    }
    println!(
        "client throughput during the move, quota vs none: {:.2}x; quota {} B/s",
        throttled.during / free.during,
        rate
    );
}
