//! `rivulet cluster up|status|down` run as a user runs them: three real
//! `rivulet` node processes on random loopback ports, checked through
//! rdkafka (metadata, topic creation, produce/consume through the bootstrap
//! string) and raw Metadata requests (the controller id, which rdkafka does
//! not expose). Also: `config/cluster/node-k.toml` load as the 3-node
//! layout of DESIGN.md.
//!
//! Topics with three replicas are checked for placement here; their data
//! under failures is the subject of `failover/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kafka_protocol::messages::MetadataRequest;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;
use rivulet_broker::BrokerConfig;
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::{
    block_on, cluster_client_config, create_topic_rf, wait_for_partitions,
};
use rivulet_testkit::poll::Poll;
use rivulet_testkit::ports::{free_port_block_in, ports_free};
use rivulet_testkit::process::{run, Run};
use rivulet_testkit::procfs::exited;
use rivulet_testkit::raw::raw_request;

const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");
/// Longest any one `rivulet` run may take (`cluster up` waits 30 s at most).
const RUN_LIMIT: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(20);
/// The ports of a cluster at a base port: node `k` listens on `base + k - 1`,
/// its controller on `base + 100 + k - 1`, its metrics on `base + 200 + k - 1`.
const PORT_OFFSETS: [u16; 9] = [0, 1, 2, 100, 101, 102, 200, 201, 202];

/// Run `rivulet args…` with `stdin`, killing it after [`RUN_LIMIT`].
fn rivulet(args: &[&str], stdin: &str) -> Run {
    run(Path::new(RIVULET), args, stdin, RUN_LIMIT)
}

/// A random base port in 20000..30000 (below Linux's ephemeral range, where
/// other tests' free ports come from, and apart from the test kit's port
/// blocks) whose nine ports are free now.
fn free_base_port() -> u16 {
    free_port_block_in(20_000..30_000, &PORT_OFFSETS)
}

/// A cluster directory that is always brought down at the end, so a failed
/// test leaves no node running.
struct ClusterDir {
    dir: tempfile::TempDir,
}

impl ClusterDir {
    fn new() -> ClusterDir {
        ClusterDir { dir: temp_dir() }
    }
    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    fn pid_file(&self, node: u16) -> PathBuf {
        self.dir.path().join(format!("node-{node}.pid"))
    }

    fn pids(&self) -> Vec<u32> {
        (1..=3)
            .filter_map(|n| std::fs::read_to_string(self.pid_file(n)).ok())
            .map(|s| s.trim().parse().unwrap())
            .collect()
    }

    /// `cluster up` on a random free base port (another on a lost race for
    /// a port); returns the base port and the run.
    fn up(&self, extra: &[&str]) -> (u16, Run) {
        for _ in 0..5 {
            let base = free_base_port();
            let base_arg = base.to_string();
            let mut args = vec![
                "cluster",
                "up",
                "--dir",
                self.path(),
                "--base-port",
                &base_arg,
            ];
            args.extend_from_slice(extra);
            let run = rivulet(&args, "");
            if run.stderr.contains("is not free") {
                continue;
            }
            return (base, run);
        }
        panic!("every base port tried was taken");
    }
}

impl Drop for ClusterDir {
    fn drop(&mut self) {
        if !self.pids().is_empty() {
            let _ = rivulet(
                &["cluster", "down", "--dir", self.path(), "--timeout", "5"],
                "",
            );
        }
    }
}

fn metadata(bootstrap: &str) -> Metadata {
    let c: BaseConsumer = cluster_client_config(bootstrap).create().unwrap();
    c.fetch_metadata(None, TIMEOUT).unwrap()
}

/// `(leader, replicas sorted)` per partition of `topic`, once every node
/// shows it with `partitions` led partitions.
fn placement(bootstrap: &str, topic: &str, partitions: usize) -> Vec<(i32, Vec<i32>)> {
    let c: BaseConsumer = cluster_client_config(bootstrap).create().unwrap();
    let poll = Poll::new(TIMEOUT).every(Duration::from_millis(100));
    let what = format!("{partitions} led partitions");
    wait_for_partitions(&c, topic, &what, poll, |ps| {
        ps.len() == partitions && ps.values().all(|p| p.leader >= 1)
    })
    .into_values()
    .map(|p| (p.leader, p.replicas))
    .collect()
}

/// The controller id node `addr` reports in a Metadata v12 response.
fn controller_id(addr: &str) -> i32 {
    let request = MetadataRequest::default().with_topics(Some(vec![]));
    block_on(raw_request(addr, 12, &request)).controller_id.0
}

/// Create `name` with `partitions` × `rf` through rdkafka's admin client.
fn create_topic(bootstrap: &str, name: &str, partitions: i32, rf: i32) {
    block_on(create_topic_rf(bootstrap, name, partitions, rf, &[]));
}

#[test]
fn cluster_up_serves_three_brokers_until_cluster_down() {
    let started = Instant::now();
    let dir = ClusterDir::new();
    let (base, run) = dir.up(&[]);
    assert!(run.success, "cluster up failed: {}", run.stderr);
    let bootstrap = format!(
        "127.0.0.1:{base},127.0.0.1:{},127.0.0.1:{}",
        base + 1,
        base + 2
    );
    assert_eq!(run.stdout, format!("{bootstrap}\n"));
    assert!(
        run.stderr.contains("started node 3 (pid "),
        "{}",
        run.stderr
    );
    let pids = dir.pids();
    assert_eq!(pids.len(), 3, "a pid file per node");
    eprintln!("cluster up took {:?}", run.took);

    // Three live brokers at the generated ports, one active controller.
    let md = metadata(&bootstrap);
    let brokers: BTreeMap<i32, (String, i32)> = md
        .brokers()
        .iter()
        .map(|b| (b.id(), (b.host().to_string(), b.port())))
        .collect();
    let want: BTreeMap<i32, (String, i32)> = (1..=3)
        .map(|n| (n, ("127.0.0.1".to_string(), i32::from(base) + n - 1)))
        .collect();
    assert_eq!(brokers, want);
    let mut controllers = BTreeSet::new();
    Poll::new(TIMEOUT)
        .every(Duration::from_millis(100))
        .until(|| {
            controllers = (0..3)
                .map(|i| controller_id(&format!("127.0.0.1:{}", base + i)))
                .collect();
            controllers.len() == 1
        });
    assert_eq!(controllers.len(), 1, "every node names the same controller");
    assert!(
        (1..=3).contains(controllers.first().unwrap()),
        "{controllers:?}"
    );

    // Three replicas on three distinct nodes, leaders spread (placement
    // only here: failover/ writes to such partitions under failures).
    create_topic(&bootstrap, "replicated", 3, 3);
    let placed = placement(&bootstrap, "replicated", 3);
    assert!(placed.iter().all(|(_, r)| r == &[1, 2, 3]), "{placed:?}");
    let leaders: BTreeSet<i32> = placed.iter().map(|(l, _)| *l).collect();
    assert_eq!(leaders, BTreeSet::from([1, 2, 3]), "{placed:?}");

    // One replica per partition, each partition on its own node: records
    // produced and consumed through the bootstrap string reach all three.
    create_topic(&bootstrap, "spread", 3, 1);
    let placed = placement(&bootstrap, "spread", 3);
    let leaders: BTreeSet<i32> = placed.iter().map(|(l, _)| *l).collect();
    assert_eq!(leaders, BTreeSet::from([1, 2, 3]), "{placed:?}");
    assert!(placed.iter().all(|(l, r)| r == &[*l]), "{placed:?}");
    let lines: Vec<String> = (0..60).map(|i| format!("key-{i}:value-{i}")).collect();
    // acks=1: the cluster's min.insync.replicas is 2, which one replica
    // cannot meet for acks=all.
    let produced = rivulet(
        &[
            "-b",
            &bootstrap,
            "produce",
            "spread",
            "--key-separator",
            ":",
            "--acks",
            "1",
        ],
        &(lines.join("\n") + "\n"),
    );
    assert!(produced.success, "{}", produced.stderr);
    let consumed = rivulet(
        &[
            "-b",
            &bootstrap,
            "consume",
            "spread",
            "--print-key",
            "--key-separator",
            ":",
        ],
        "",
    );
    assert!(consumed.success, "{}", consumed.stderr);
    let mut got: Vec<&str> = consumed.stdout.lines().collect();
    let mut want: Vec<&str> = lines.iter().map(String::as_str).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    let c: BaseConsumer = cluster_client_config(&bootstrap).create().unwrap();
    for (p, (leader, _)) in placed.iter().enumerate() {
        let (_, high) = c.fetch_watermarks("spread", p as i32, TIMEOUT).unwrap();
        assert!(high > 0, "partition {p} (led by node {leader}) got records");
        let on_disk = |n: i32| {
            Path::new(dir.path())
                .join(format!("node-{n}/spread-{p}"))
                .exists()
        };
        assert!(
            (1..=3).all(|n| on_disk(n) == (n == *leader)),
            "partition {p} only on node {leader}"
        );
    }

    // `rivulet top` finds the nodes' metrics endpoints through --dir: all
    // three ready, one the active controller, 60 records in.
    let top = rivulet(
        &["top", "--once", "--interval", "0.2", "--dir", dir.path()],
        "",
    );
    assert!(top.success, "{}", top.stderr);
    let metrics: Vec<String> = (0..3)
        .map(|i| format!("127.0.0.1:{}", base + 200 + i))
        .collect();
    let rows: Vec<&str> = top
        .stdout
        .lines()
        .filter(|l| metrics.iter().any(|m| l.contains(&format!(" {m} "))))
        .collect();
    assert_eq!(rows.len(), 3, "{}", top.stdout);
    assert!(rows.iter().all(|r| r.contains(" ready ")), "{}", top.stdout);
    assert_eq!(
        rows.iter().filter(|r| r.contains(" * ")).count(),
        1,
        "{}",
        top.stdout
    );
    let total_in: f64 = metrics
        .iter()
        .map(|m| {
            let (_, body) =
                rivulet_broker::metrics::scrape::get(m, "/metrics", TIMEOUT).expect("a scrape");
            rivulet_broker::metrics::scrape::Samples::parse(&body)
                .value("rivulet_topic_records_in_total{topic=\"spread\"}")
        })
        .sum();
    assert_eq!(total_in, 60.0);

    let status = rivulet(&["cluster", "status", "--dir", dir.path()], "");
    assert!(status.success, "{}", status.stderr);
    assert_eq!(
        status.stdout.matches(": running (pid ").count(),
        3,
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("3 of 3 nodes running"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains(&bootstrap), "{}", status.stdout);

    let again = rivulet(
        &[
            "cluster",
            "up",
            "--dir",
            dir.path(),
            "--base-port",
            &base.to_string(),
        ],
        "",
    );
    assert!(!again.success, "a second cluster up started");
    assert!(
        again.stderr.contains("cluster already running in "),
        "{}",
        again.stderr
    );
    assert_eq!(dir.pids(), pids, "the running cluster is untouched");

    // A node that died is started again alone by `cluster up`, with the
    // settings it ran with, while the others keep serving.
    let killed = std::process::Command::new("kill")
        .args(["-9", &pids[1].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    Poll::new(TIMEOUT)
        .every(Duration::from_millis(50))
        .wait("node 2 exited", || exited(pids[1]));
    // kafka-topics.sh --describe's filters see the loss: the partitions
    // with three replicas lose node 2 from their ISR, the one-replica
    // partition on node 2 its leader.
    let describe = |filter: &str| -> Vec<(String, String)> {
        let run = rivulet(&["-b", &bootstrap, "topic", "describe", filter], "");
        assert!(run.success, "{}", run.stderr);
        run.stdout
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[1].to_string(), f[2].to_string())
            })
            .collect()
    };
    let spread_on_2 = placed.iter().position(|(l, _)| *l == 2).unwrap();
    Poll::new(TIMEOUT).every(Duration::from_millis(100)).retry(
        "node 2's loss in the describe filters",
        || {
            let under = describe("--under-replicated-partitions");
            let unavailable = describe("--unavailable-partitions");
            let want = [(
                "Topic: spread".to_string(),
                format!("Partition: {spread_on_2}"),
            )];
            // __consumer_offsets (three replicas too) is under-replicated
            // as well.
            let replicated = under
                .iter()
                .filter(|(t, _)| t == "Topic: replicated")
                .count();
            if replicated == 3 && unavailable == want {
                Ok(())
            } else {
                Err((under, unavailable))
            }
        },
    );
    assert!(describe("--under-replicated-partitions")
        .iter()
        .all(|(t, _)| t == "Topic: replicated" || t == "Topic: __consumer_offsets"));
    let changed = rivulet(
        &[
            "cluster",
            "up",
            "--dir",
            dir.path(),
            "--set",
            "num.partitions=2",
        ],
        "",
    );
    assert!(!changed.success, "new settings for a partial cluster");
    assert!(
        changed
            .stderr
            .contains("without --tls, --sasl or --set starts the others"),
        "{}",
        changed.stderr
    );
    let partial = rivulet(&["cluster", "up", "--dir", dir.path()], "");
    assert!(partial.success, "{}", partial.stderr);
    assert_eq!(partial.stdout, format!("{bootstrap}\n"));
    assert!(
        partial.stderr.contains("started node 2 (pid ")
            && !partial.stderr.contains("started node 1")
            && !partial.stderr.contains("started node 3"),
        "{}",
        partial.stderr
    );
    let now = dir.pids();
    assert_eq!(
        (now[0], now[2]),
        (pids[0], pids[2]),
        "nodes 1 and 3 untouched"
    );
    assert_ne!(now[1], pids[1], "node 2 runs again");
    // It rejoins every ISR and leads its partition again.
    Poll::new(TIMEOUT).every(Duration::from_millis(100)).wait(
        "no partition under-replicated or unavailable",
        || {
            describe("--under-replicated-partitions").is_empty()
                && describe("--unavailable-partitions").is_empty()
        },
    );
    let pids = now;

    let down = rivulet(&["cluster", "down", "--dir", dir.path()], "");
    assert!(down.success, "{}", down.stderr);
    eprintln!("cluster down took {:?}", down.took);
    for n in 1..=3 {
        assert!(
            down.stdout.contains(&format!("stopped node {n} (pid ")),
            "{}",
            down.stdout
        );
    }
    assert!(down.took < Duration::from_secs(15), "took {:?}", down.took);
    assert!(pids.iter().all(|&p| exited(p)), "every node exited");
    assert!(dir.pids().is_empty(), "pid files removed");
    let status = rivulet(&["cluster", "status", "--dir", dir.path()], "");
    assert!(
        status.stdout.contains("0 of 3 nodes running"),
        "{}",
        status.stdout
    );
    assert!(ports_free(base, &PORT_OFFSETS), "every port released");
    eprintln!("whole test took {:?}", started.elapsed());
}

#[test]
fn cluster_up_shows_why_a_node_did_not_start_and_leaves_nothing_running() {
    let dir = ClusterDir::new();
    let (_, run) = dir.up(&["--set", "no.such.key=1"]);
    assert!(!run.success, "started with a bad setting: {}", run.stdout);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("did not come up"), "{}", run.stderr);
    assert!(
        run.stderr.contains("exited during start-up"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("unknown config key 'no.such.key'"),
        "the log tail says why: {}",
        run.stderr
    );
    assert!(
        run.took < Duration::from_secs(15),
        "failed fast: {:?}",
        run.took
    );
    assert!(dir.pids().is_empty(), "no pid file left");
    let status = rivulet(&["cluster", "status", "--dir", dir.path()], "");
    assert!(
        status.stdout.contains("0 of 3 nodes running"),
        "{}",
        status.stdout
    );
    let down = rivulet(&["cluster", "down", "--dir", dir.path()], "");
    assert!(
        down.success && down.stderr.contains("no cluster running"),
        "{}",
        down.stderr
    );

    let misplaced = rivulet(&["-b", "127.0.0.1:1", "cluster", "status"], "");
    assert!(!misplaced.success);
    assert!(
        misplaced
            .stderr
            .contains("do not apply to `rivulet cluster`"),
        "{}",
        misplaced.stderr
    );
}

fn cluster_toml(node: u16) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../config/cluster/node-{node}.toml"))
}

#[test]
fn cluster_configs_are_the_three_combined_nodes_of_the_design() {
    let voters = "1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194";
    for node in 1..=3u16 {
        let path = cluster_toml(node);
        let c = BrokerConfig::load(Some(&path), &[])
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(c.node_id, i32::from(node));
        assert_eq!(c.listener, format!("127.0.0.1:{}", 9091 + node));
        assert_eq!(c.advertised_listener, c.listener);
        assert_eq!(c.controller_listener, format!("127.0.0.1:{}", 9191 + node));
        assert_eq!(
            c.metrics.listener,
            Some(format!("127.0.0.1:{}", 9291 + node))
        );
        assert_eq!(c.quorum_voters, voters);
        assert_eq!(c.cluster_id.as_deref(), Some("rivulet-local-cluster"));
        assert_eq!(
            c.data_dir,
            PathBuf::from(format!("./rivulet-cluster/node-{node}"))
        );
        assert_eq!(c.default_replication_factor, 3);
        assert_eq!(c.min_insync_replicas, 2);
        assert_eq!(c.coordinator.offsets_replication_factor, 3);
        // Everything else is at its default.
        let defaults = BrokerConfig::from_props(&BTreeMap::new()).unwrap();
        assert_eq!(c.storage, defaults.storage);
        assert_eq!(c.num_partitions, defaults.num_partitions);
        assert_eq!(c.session_timeout_ms, defaults.session_timeout_ms);
    }
}
