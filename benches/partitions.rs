//! Many partitions on one node (a plain harness, not criterion), with a real
//! client (rdkafka 0.39) against the `rivulet` binary (`$RIVULET_BIN`, or
//! the release build as for `cluster`):
//!
//! 1. Creation rate: `PARTITIONS_BENCH_TOPICS` (default 10) topics of
//!    `PARTITIONS_BENCH_PER_TOPIC` (default 1,000) partitions in one
//!    CreateTopics request; partitions created per second, from the request
//!    to the answer (which comes once every local partition is ready).
//! 2. Footprint with those partitions: open descriptors (`/proc/PID/fd`)
//!    and RSS, against the node before any topic: memory per partition.
//! 3. Reopen: the node is stopped cleanly (SIGTERM) and started again; the
//!    time from the start to the first Metadata answer naming the topics'
//!    partitions, and the broker's own "opened logs" time.
//!
//! The node keeps its defaults but for ports and data dir; the open-files
//! limit is what this process has (the node raises its soft limit to the
//! hard one). Run: `cargo bench --bench partitions`.

use std::fs;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rivulet_testkit::dirs::bench_dir;
use rivulet_testkit::kafka::{block_on, client_config};
use rivulet_testkit::poll::Poll;
use rivulet_testkit::process::{BrokerProcess, NodeSpec};
use rivulet_testkit::procfs::rss;

#[path = "common/mod.rs"]
mod common;
use common::{env_usize, rivulet_bin, target_dir};

const T: Duration = Duration::from_secs(300);
const MIB: f64 = 1024.0 * 1024.0;

fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Partitions the node's Metadata lists over all topics.
fn listed_partitions(bootstrap: &str) -> usize {
    let c: BaseConsumer = client_config(bootstrap).create().expect("a client");
    c.fetch_metadata(None, Duration::from_secs(10))
        .map_or(0, |md| {
            md.topics().iter().map(|t| t.partitions().len()).sum()
        })
}

fn main() {
    let topics = env_usize("PARTITIONS_BENCH_TOPICS", 10);
    let per_topic = env_usize("PARTITIONS_BENCH_PER_TOPIC", 1_000);
    let bin = rivulet_bin();
    let data = bench_dir();
    let log = target_dir().join("partitions-bench-node.log");
    let spec = NodeSpec::new(&bin, data.path().join("node"), &log).env("NO_COLOR", "1");
    let mut node = BrokerProcess::spawn(spec);
    node.wait_serving(T);
    let pid = node.pid();
    let (fds0, rss0) = (open_fds(pid), rss(pid).0);
    println!(
        "bench partitions: {} ({topics} topics x {per_topic} partitions); idle: {fds0} fds, \
         RSS {:.1} MiB",
        bin.display(),
        rss0 as f64 / MIB
    );

    // 1. creation rate
    let admin: rdkafka::admin::AdminClient<_> = client_config(&node.bootstrap())
        .set("socket.timeout.ms", "300000")
        .create()
        .expect("admin");
    let names: Vec<String> = (0..topics).map(|i| format!("many-{i}")).collect();
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, per_topic as i32, TopicReplication::Fixed(1)))
        .collect();
    // The broker waits up to 60 s for the partitions to be ready.
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(60)))
        .request_timeout(Some(T));
    let started = Instant::now();
    let res = block_on(admin.create_topics(&new, &opts)).expect("CreateTopics answered");
    let took = started.elapsed();
    let failed: Vec<String> = res
        .iter()
        .filter_map(|r| r.as_ref().err().map(|(t, c)| format!("{t}: {c:?}")))
        .collect();
    let created = (topics - failed.len()) * per_topic;
    println!(
        "create: {created} partitions in {:.2} s = {:.0} partitions/s{}",
        took.as_secs_f64(),
        created as f64 / took.as_secs_f64(),
        if failed.is_empty() {
            String::new()
        } else {
            format!("; refused: {}", failed.join(", "))
        }
    );

    // 2. footprint
    std::thread::sleep(Duration::from_secs(2));
    let (fds1, rss1) = (open_fds(pid), rss(pid).0);
    println!(
        "hosting {created}: {fds1} fds ({:+} over idle), RSS {:.1} MiB ({:.1} KiB per partition)",
        fds1 as i64 - fds0 as i64,
        rss1 as f64 / MIB,
        (rss1.saturating_sub(rss0)) as f64 / 1024.0 / created.max(1) as f64
    );

    // 3. clean stop and reopen
    let stop = Instant::now();
    let status = node.terminate(T);
    println!(
        "clean stop: {:.2} s ({status:?})",
        stop.elapsed().as_secs_f64()
    );
    let opened_lines = |s: &str| s.lines().filter(|l| l.contains("opened logs")).count();
    let before = opened_lines(&fs::read_to_string(&log).unwrap_or_default());
    let start = Instant::now();
    node.start();
    let pid = node.pid();
    let opened = Poll::new(T)
        .every(Duration::from_millis(10))
        .until(|| opened_lines(&fs::read_to_string(&log).unwrap_or_default()) > before);
    let logs_open = start.elapsed();
    node.wait_serving(T);
    let serving = start.elapsed();
    let all = Poll::new(T)
        .every(Duration::from_millis(100))
        .until(|| listed_partitions(&node.bootstrap()) >= created);
    let listed = start.elapsed();
    println!(
        "reopen after a clean stop: logs opened {:.2} s{}, serving {:.2} s, all {created} \
         partitions listed {:.2} s{}; {} fds, RSS {:.1} MiB",
        logs_open.as_secs_f64(),
        if opened {
            ""
        } else {
            " (no 'opened logs' line)"
        },
        serving.as_secs_f64(),
        listed.as_secs_f64(),
        if all { "" } else { " (NOT all listed)" },
        open_fds(pid),
        rss(pid).0 as f64 / MIB
    );
    node.terminate(T);
}
