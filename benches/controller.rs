//! Controller measurements (a plain harness, not criterion: each figure is a
//! whole-cluster scenario, not a micro-benchmark). Three `ControllerNode`s
//! run in this process on 127.0.0.1 with the default quorum timings
//! (heartbeat 100 ms, election timeout 500-1000 ms) and the metadata log
//! fsynced under `$RIVULET_BENCH_DIR` (default: the system temp dir):
//!
//! - (a) failover: kill the active controller, time until a survivor is
//!   leader and until a write through a survivor commits (fresh cluster per
//!   trial; min / median / max);
//! - (b) create-topic commit latency (1 partition, RF 3, sequential) sent to
//!   the leader, and to a follower that forwards it (p50 / p99);
//! - (c) 10,000 partitions (100 topics x 100 partitions, RF 3): image JSON
//!   size and (de)serialization time, create-topic latency at that size,
//!   snapshot build time, and catch-up of a restarted node — one that was
//!   down during the load, and one restarting from its own snapshot.
//!
//! Run: `cargo bench --bench controller` (a small run: `-- --quick` or
//! `RIVULET_BENCH_QUICK=1`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rivulet_controller::{
    ControllerNode, ControllerRequest, ControllerResponse, Listener, MetadataImage, QuorumConfig,
    Voter,
};
use rivulet_testkit::dirs::bench_dir;
use rivulet_testkit::poll::Poll;
use rivulet_testkit::ports::free_ports;
use rivulet_testkit::stats::percentile;
use uuid::Uuid;

/// Upper bound on any single wait; a bench that exceeds it is broken.
const T: Duration = Duration::from_secs(120);

struct Plan {
    failover_trials: usize,
    latency_requests: usize,
    warmup_requests: usize,
    scale_topics: usize,
    scale_partitions: i32,
    scale_probe_requests: usize,
    serde_reps: usize,
}

impl Plan {
    fn full() -> Self {
        Plan {
            failover_trials: 10,
            latency_requests: 500,
            warmup_requests: 20,
            scale_topics: 100,
            scale_partitions: 100,
            scale_probe_requests: 50,
            serde_reps: 5,
        }
    }

    fn quick() -> Self {
        Plan {
            failover_trials: 3,
            latency_requests: 50,
            warmup_requests: 5,
            scale_topics: 10,
            scale_partitions: 100,
            scale_probe_requests: 10,
            serde_reps: 3,
        }
    }
}

fn config(id: u64, voters: &[Voter], dir: &Path) -> QuorumConfig {
    let mut c = QuorumConfig::new(id, voters.to_vec(), dir.join(format!("node-{id}")));
    // The brokers here are simulated and stop heartbeating once registered:
    // keep their sessions alive for the whole run so none gets fenced.
    c.session_timeout_ms = 3_600_000;
    c
}

async fn wait_for(what: &str, f: impl FnMut() -> bool) {
    Poll::new(T)
        .every(Duration::from_millis(1))
        .wait_async(what, f)
        .await
}

struct Cluster {
    dir: tempfile::TempDir,
    voters: Vec<Voter>,
    nodes: Vec<Option<ControllerNode>>,
}

impl Cluster {
    async fn start(n: usize) -> Self {
        let dir = bench_dir();
        let voters: Vec<Voter> = free_ports(n)
            .iter()
            .enumerate()
            .map(|(i, p)| Voter {
                id: i as u64 + 1,
                addr: format!("127.0.0.1:{p}"),
            })
            .collect();
        let mut nodes = Vec::new();
        for v in &voters {
            let node = ControllerNode::start(config(v.id, &voters, dir.path()))
                .await
                .expect("start controller");
            nodes.push(Some(node));
        }
        Cluster { dir, voters, nodes }
    }

    fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .flatten()
            .find(|n| n.is_leader())
            .map(|n| n.node_id())
    }

    async fn wait_leader(&self) -> u64 {
        wait_for("a leader", || self.leader().is_some()).await;
        self.leader().expect("leader")
    }

    fn node(&self, id: u64) -> &ControllerNode {
        self.nodes[(id - 1) as usize]
            .as_ref()
            .expect("node is running")
    }

    fn follower(&self, leader: u64) -> u64 {
        self.nodes
            .iter()
            .flatten()
            .map(|n| n.node_id())
            .find(|&id| id != leader)
            .expect("a follower")
    }

    fn config(&self, id: u64) -> QuorumConfig {
        config(id, &self.voters, self.dir.path())
    }

    async fn shutdown(self) {
        for n in self.nodes.into_iter().flatten() {
            n.shutdown().await;
        }
    }
}

async fn ok(node: &ControllerNode, req: ControllerRequest) {
    let r = node.request(req, T).await.expect("controller request");
    assert!(matches!(r, ControllerResponse::Ok { .. }), "{r:?}");
}

fn register(node_id: i32) -> ControllerRequest {
    ControllerRequest::RegisterBroker {
        node_id,
        incarnation: Uuid::new_v4(),
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9000 + node_id as u16,
        }],
        rack: None,
        max_partitions: None,
    }
}

/// Register brokers `ids` and unfence them with one heartbeat each.
async fn register_brokers(node: &ControllerNode, ids: &[i32]) {
    for &id in ids {
        let req = register(id);
        let ControllerRequest::RegisterBroker { incarnation, .. } = &req else {
            unreachable!()
        };
        let incarnation = *incarnation;
        ok(node, req).await;
        ok(
            node,
            ControllerRequest::BrokerHeartbeat {
                node_id: id,
                incarnation,
            },
        )
        .await;
    }
}

fn create_topic(name: String, partitions: i32, replication_factor: i32) -> ControllerRequest {
    ControllerRequest::CreateTopic {
        name,
        partitions,
        replication_factor,
        configs: BTreeMap::new(),
        validate_only: false,
    }
}

/// Latencies of `n` sequential single-partition RF 3 creates through `node`.
async fn create_latencies(node: &ControllerNode, prefix: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        ok(node, create_topic(format!("{prefix}-{i}"), 1, 3)).await;
        out.push(t0.elapsed());
    }
    out
}

// ---- statistics and printing ----

/// Nearest-rank percentile of a sorted slice.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    percentile(sorted, p).expect("at least one sample")
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / v.len() as u32
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn median_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(reps);
    let mut last = None;
    for _ in 0..reps {
        let t0 = Instant::now();
        let out = std::hint::black_box(f());
        times.push(t0.elapsed());
        last = Some(out);
    }
    (
        pct(&sorted(times), 50.0),
        last.expect("at least one repetition"),
    )
}

fn row(label: &str, cells: &[String]) {
    let mut line = format!("  {label:<44}");
    for c in cells {
        line.push_str(&format!("{c:>13}"));
    }
    println!("{line}");
}

fn header(label: &str, cols: &[&str]) {
    row(
        label,
        &cols.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
    );
}

// ---- (a) failover ----

struct FailoverTrial {
    shutdown: Duration,
    elected: Duration,
    writable: Duration,
    terms: (u64, u64),
}

async fn failover_trial() -> FailoverTrial {
    let mut c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    // One committed write and a few heartbeats: a cluster in steady state.
    ok(c.node(leader), register(1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old_term = c.node(leader).term();
    let killed = c.nodes[(leader - 1) as usize].take().expect("leader node");
    let t0 = Instant::now();
    killed.shutdown().await;
    let shutdown = t0.elapsed();
    wait_for("a new leader", || c.leader().is_some()).await;
    let elected = t0.elapsed();
    let new_leader = c.leader().expect("new leader");
    let new_term = c.node(new_leader).term();
    let survivor = c.follower(leader);
    ok(c.node(survivor), register(2)).await;
    let writable = t0.elapsed();
    c.shutdown().await;
    FailoverTrial {
        shutdown,
        elected,
        writable,
        terms: (old_term, new_term),
    }
}

async fn failover(plan: &Plan) {
    println!(
        "(a) failover: kill the active controller of 3 ({} trials, fresh cluster each)",
        plan.failover_trials
    );
    let mut trials = Vec::new();
    for _ in 0..plan.failover_trials {
        trials.push(failover_trial().await);
    }
    let per_trial: Vec<String> = trials.iter().map(|t| ms(t.elected)).collect();
    header("", &["min", "median", "max"]);
    let stats = |f: &dyn Fn(&FailoverTrial) -> Duration| {
        let v = sorted(trials.iter().map(f).collect());
        vec![ms(v[0]), ms(pct(&v, 50.0)), ms(v[v.len() - 1])]
    };
    row("old leader shutdown() returned", &stats(&|t| t.shutdown));
    row("survivor is leader (from kill)", &stats(&|t| t.elected));
    row(
        "write via survivor committed (from kill)",
        &stats(&|t| t.writable),
    );
    let bumps: Vec<u64> = trials.iter().map(|t| t.terms.1 - t.terms.0).collect();
    println!("  per trial, elected after: {}", per_trial.join(", "));
    println!("  term increase per failover: {bumps:?}");
    println!();
}

// ---- (b) commit latency ----

async fn commit_latency(plan: &Plan) {
    println!(
        "(b) create-topic commit latency: {} sequential CreateTopic (1 partition, RF 3), \
         {} warm-up not counted, fresh 3-node cluster per target",
        plan.latency_requests, plan.warmup_requests
    );
    header("sent to", &["p50", "p99", "mean", "max"]);
    for via_follower in [false, true] {
        let c = Cluster::start(3).await;
        let leader = c.wait_leader().await;
        register_brokers(c.node(leader), &[1, 2, 3]).await;
        let target = if via_follower {
            c.follower(leader)
        } else {
            leader
        };
        let node = c.node(target);
        create_latencies(node, "warm", plan.warmup_requests).await;
        let v = sorted(create_latencies(node, "lat", plan.latency_requests).await);
        let label = if via_follower {
            "follower (forwarded to leader)"
        } else {
            "leader"
        };
        row(
            label,
            &[
                ms(pct(&v, 50.0)),
                ms(pct(&v, 99.0)),
                ms(mean(&v)),
                ms(v[v.len() - 1]),
            ],
        );
        assert_eq!(c.leader(), Some(leader), "leadership changed mid-run");
        c.shutdown().await;
    }
    println!();
}

// ---- (c) 10,000 partitions ----

fn snapshot_file(c: &Cluster, id: u64) -> PathBuf {
    c.config(id)
        .data_dir
        .join(rivulet_controller::node::METADATA_DIR)
        .join("snapshot.json")
}

async fn wait_caught_up(node: &ControllerNode, offset: u64) {
    wait_for("catch-up", || node.image().offset >= offset).await;
}

async fn snapshot_now(node: &ControllerNode) -> Duration {
    let target = node.image().offset;
    let t0 = Instant::now();
    node.trigger_snapshot().await.expect("trigger snapshot");
    wait_for("snapshot", || {
        node.snapshot_index().is_some_and(|i| i >= target)
    })
    .await;
    t0.elapsed()
}

async fn scale(plan: &Plan) {
    let total = plan.scale_topics * plan.scale_partitions as usize;
    println!(
        "(c) {} topics x {} partitions, RF 3 = {total} partitions on 3 voters",
        plan.scale_topics, plan.scale_partitions
    );
    let mut c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    // One voter stays down through the load, to catch up afterwards.
    let down = c.follower(leader);
    c.nodes[(down - 1) as usize]
        .take()
        .expect("follower")
        .shutdown()
        .await;
    let node = c.node(leader);
    register_brokers(node, &[1, 2, 3]).await;
    let t_load = Instant::now();
    let mut load = Vec::new();
    for t in 0..plan.scale_topics {
        let t0 = Instant::now();
        ok(
            node,
            create_topic(format!("scale-{t}"), plan.scale_partitions, 3),
        )
        .await;
        load.push(t0.elapsed());
    }
    let load_total = t_load.elapsed();
    let load = sorted(load);
    row(
        &format!(
            "load: CreateTopic of {} partitions p50 / p99",
            plan.scale_partitions
        ),
        &[ms(pct(&load, 50.0)), ms(pct(&load, 99.0))],
    );
    row("load: total", &[ms(load_total)]);

    let image: Arc<MetadataImage> = node.image();
    let partitions: usize = image.topics.values().map(|t| t.partitions.len()).sum();
    assert_eq!(partitions, total);
    let (ser, bytes) = median_of(plan.serde_reps, || {
        serde_json::to_vec(&*image).expect("serialize image")
    });
    let (de, back) = median_of(plan.serde_reps, || {
        serde_json::from_slice::<MetadataImage>(&bytes).expect("deserialize image")
    });
    assert_eq!(&back, &*image);
    let (clone, _) = median_of(plan.serde_reps, || (*image).clone());
    row(
        "image JSON size",
        &[
            format!("{} B", bytes.len()),
            format!("{} B/part", bytes.len() / total),
        ],
    );
    row(
        &format!("serde_json::to_vec(image), median of {}", plan.serde_reps),
        &[ms(ser)],
    );
    row(
        &format!("serde_json::from_slice, median of {}", plan.serde_reps),
        &[ms(de)],
    );
    row(
        &format!("MetadataImage::clone, median of {}", plan.serde_reps),
        &[ms(clone)],
    );
    drop(back);

    let probe = sorted(create_latencies(node, "probe", plan.scale_probe_requests).await);
    row(
        &format!(
            "create-topic (1 part) at this size, p50 / p99 (n={})",
            plan.scale_probe_requests
        ),
        &[ms(pct(&probe, 50.0)), ms(pct(&probe, 99.0))],
    );

    let build = snapshot_now(node).await;
    let file_len = std::fs::metadata(snapshot_file(&c, leader))
        .map(|m| m.len())
        .unwrap_or(0);
    row("leader snapshot: trigger -> snapshot_index()", &[ms(build)]);
    row("leader snapshot.json on disk", &[format!("{file_len} B")]);

    // The voter that was down through the load restarts; the leader's log
    // before its snapshot may be purged, so it may get the snapshot.
    let target = node.image();
    let t0 = Instant::now();
    let restarted = ControllerNode::start(c.config(down))
        .await
        .expect("restart");
    let started = t0.elapsed();
    wait_caught_up(&restarted, target.offset).await;
    let caught_up = t0.elapsed();
    assert_eq!(restarted.image().topics, target.topics);
    let installed = restarted.snapshot_index().is_some();
    row(
        "voter down during load: start() / caught up",
        &[ms(started), ms(caught_up)],
    );
    println!(
        "  (it {} a snapshot from the leader)",
        if installed {
            "installed"
        } else {
            "did NOT install"
        }
    );

    // The same voter restarts from its own snapshot on disk.
    snapshot_now(&restarted).await;
    restarted.shutdown().await;
    let target = node.image();
    let t0 = Instant::now();
    let again = ControllerNode::start(c.config(down))
        .await
        .expect("restart");
    let started = t0.elapsed();
    wait_caught_up(&again, target.offset).await;
    let caught_up = t0.elapsed();
    assert_eq!(again.image().topics, target.topics);
    row(
        "restart from own snapshot: start() / caught up",
        &[ms(started), ms(caught_up)],
    );
    c.nodes[(down - 1) as usize] = Some(again);
    c.shutdown().await;
    println!();
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var_os("RIVULET_BENCH_QUICK").is_some_and(|v| v != "0" && !v.is_empty());
    let plan = if quick { Plan::quick() } else { Plan::full() };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = std::env::var("RIVULET_BENCH_DIR")
        .unwrap_or_else(|_| std::env::temp_dir().to_string_lossy().into_owned());
    println!(
        "controller bench{}: 3 voters on 127.0.0.1, heartbeat 100 ms, election timeout \
         500-1000 ms, metadata log fsynced under {dir}",
        if quick { " (--quick)" } else { "" }
    );
    println!();
    rt.block_on(async {
        failover(&plan).await;
        commit_latency(&plan).await;
        scale(&plan).await;
    });
}
