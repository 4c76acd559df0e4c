//! The metrics endpoint (`metrics.listener`) of real `rivulet` processes,
//! scraped while real Kafka clients (librdkafka through rdkafka) produce,
//! consume and commit:
//! - counters move by exactly what was sent: records in by the records
//!   produced, bytes in by the record-batch bytes appended (equal to the
//!   segment file's length on disk for a fresh topic), and a group's lag
//!   is produced minus committed;
//! - on a 3-node cluster the leader reports an under-replicated partition
//!   while a follower is stopped and none after it rejoins; exactly one
//!   node is the active controller; `rivulet top --once` shows the nodes;
//! - `/health` and `/ready`; a broker's log file has no terminal escape
//!   codes, and with `log.format = "json"` every line is a JSON object;
//! - garbage, a huge request head and slow clients on the HTTP port leave
//!   the broker (and the endpoint) serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use rivulet_broker::metrics::scrape::{self, Samples};
use rivulet_testkit::cluster::{ClusterPorts, ClusterSpec, ProcessCluster};
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::{
    block_on, client_config, cluster_client_config, create_topic, create_topic_rf, partitions,
    produce_all, producer,
};
use rivulet_testkit::poll::Poll;
use rivulet_testkit::process::{run, BrokerProcess, NodeSpec};

const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");
const TIMEOUT: Duration = Duration::from_secs(60);

fn get(addr: &str, path: &str) -> (u16, String) {
    scrape::get(addr, path, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

fn metrics(addr: &str) -> Samples {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    Samples::parse(&body)
}

fn start_node(extra: &[(&str, &str)]) -> (BrokerProcess, tempfile::TempDir) {
    let dir = temp_dir();
    let mut spec = NodeSpec::new(
        RIVULET,
        dir.path().join("data"),
        dir.path().join("rivulet.log"),
    )
    .env("RUST_LOG", "info,openraft=warn");
    for (k, v) in extra {
        spec = spec.set(*k, *v);
    }
    let mut node = BrokerProcess::spawn(spec);
    node.wait_serving(TIMEOUT);
    (node, dir)
}

#[test]
fn counters_move_by_exactly_what_was_sent_and_lag_is_produced_minus_committed() {
    let (node, _dir) = start_node(&[]);
    let (bootstrap, addr) = (node.bootstrap(), node.metrics_addr());
    assert_eq!(get(&addr, "/health"), (200, "ok\n".to_string()));
    Poll::new(TIMEOUT).wait("/ready to answer 200", || get(&addr, "/ready").0 == 200);
    block_on(create_topic(&bootstrap, "m", 1, &[]));
    let before = metrics(&addr);
    assert_eq!(
        before.get("rivulet_topic_records_in_total{topic=\"m\"}"),
        None
    );

    // 250 records of 300 bytes in a few batches.
    const N: usize = 250;
    const M: i64 = 90;
    let value = vec![b'x'; 300];
    let records: Vec<_> = (0..N)
        .map(|i| (Some(format!("k{i}").into_bytes()), Some(value.clone())))
        .collect();
    let kv: Vec<_> = records
        .iter()
        .map(|(k, v)| (k.as_deref(), v.as_deref()))
        .collect();
    let p = producer(&bootstrap, &[("acks", "all")]);
    block_on(async {
        // Concurrently, so librdkafka batches them.
        let halves = kv.split_at(N / 2);
        futures_util::join!(
            produce_all(&p, "m", 0, halves.0),
            produce_all(&p, "m", 0, halves.1)
        )
    });

    let after = metrics(&addr);
    let series = |name: &str| format!("{name}{{topic=\"m\"}}");
    assert_eq!(
        after.value(&series("rivulet_topic_records_in_total")),
        N as f64
    );
    let bytes_in = after.value(&series("rivulet_topic_bytes_in_total"));
    // Batches are appended as received: a fresh topic's log holds exactly
    // the batch bytes that came in, on disk too.
    let part = "{topic=\"m\",partition=\"0\"}";
    assert_eq!(
        after.value(&format!("rivulet_log_size_bytes{part}")),
        bytes_in
    );
    let segment = node.data_dir().join("m-0/00000000000000000000.log");
    let on_disk = std::fs::metadata(&segment).expect("the segment").len();
    assert_eq!(on_disk as f64, bytes_in, "{}", segment.display());
    assert!(bytes_in > (N * 300) as f64, "{bytes_in}");
    assert_eq!(
        after.value(&format!("rivulet_log_end_offset{part}")),
        N as f64
    );
    assert_eq!(
        after.value(&format!("rivulet_high_watermark{part}")),
        N as f64
    );
    let produces = after.value("rivulet_requests_total{api=\"Produce\"}");
    assert!(produces >= 1.0);
    assert_eq!(
        after.value("rivulet_request_total_seconds_count{api=\"Produce\"}"),
        produces
    );
    assert!(after.value("rivulet_fsync_seconds_count") >= 1.0);
    assert_eq!(after.value("rivulet_active_controller"), 1.0);
    assert_eq!(
        after.value("rivulet_leader_count"),
        after.value("rivulet_partition_count"),
        "a single node leads every partition it has"
    );

    // A group consumes everything, then commits M.
    let mut cfg = client_config(&bootstrap);
    cfg.set("group.id", "lag-group")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    let c: BaseConsumer = cfg.create().expect("a consumer");
    c.subscribe(&["m"]).expect("subscribe");
    let mut got = 0;
    Poll::new(TIMEOUT)
        .every(Duration::ZERO)
        .wait("every record consumed", || {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                assert_eq!(m.topic(), "m");
                got += 1;
            }
            got >= N
        });
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("m", 0, Offset::Offset(M)).unwrap();
    c.commit(&tpl, CommitMode::Sync).expect("commit");

    let lag = "rivulet_consumer_group_lag{group=\"lag-group\",topic=\"m\",partition=\"0\"}";
    let scraped = metrics(&addr);
    assert_eq!(
        scraped.get(lag),
        Some(N as f64 - M as f64),
        "lag = produced - committed"
    );
    assert_eq!(
        scraped.get("rivulet_consumer_group_committed_offset{group=\"lag-group\",topic=\"m\",partition=\"0\"}"),
        Some(M as f64)
    );
    assert!(scraped.value(&series("rivulet_topic_records_out_total")) >= N as f64);
    assert!(scraped.value(&series("rivulet_topic_bytes_out_total")) >= bytes_in);
    assert!(scraped.value("rivulet_open_connections") >= 1.0);
    // Records in did not move with the consumer's reads.
    assert_eq!(
        scraped.value(&series("rivulet_topic_records_in_total")),
        N as f64
    );
    drop(c);

    // The log went to a file: no terminal escape codes in it.
    let log = std::fs::read(node.log_path()).expect("the log");
    assert!(!log.is_empty());
    assert!(
        !log.windows(2).any(|w| w == b"\x1b["),
        "escape codes in {}",
        node.log_path().display()
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (mut node, _dir) = start_node(&[("log.format", "json")]);
    block_on(create_topic(&node.bootstrap(), "j", 1, &[]));
    node.terminate(TIMEOUT);
    let log = std::fs::read_to_string(node.log_path()).expect("the log");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v.get("level").is_some() && v.get("fields").is_some(),
            "{line}"
        );
    }
    assert!(log.contains("serving clients"), "{log}");
}

/// Send `bytes` on a fresh connection and read what comes back until the
/// server closes (or 10 s).
fn raw_exchange(addr: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn bad_input_on_the_http_port_does_not_disturb_the_broker() {
    let (mut node, _dir) = start_node(&[]);
    let (bootstrap, addr) = (node.bootstrap(), node.metrics_addr());
    block_on(create_topic(&bootstrap, "b", 1, &[]));

    // Slow clients: a few bytes of a head, then nothing.
    let slow: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.write_all(b"GET /met").unwrap();
            s
        })
        .collect();
    let slow_since = Instant::now();

    assert!(raw_exchange(&addr, b"\x00\x01\x02garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    assert!(raw_exchange(&addr, b"DELETE /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(raw_exchange(&addr, b"GET /nothing HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    let answer = raw_exchange(&addr, &huge);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );

    // While the slow clients hold their connections the endpoint and the
    // Kafka listener both serve.
    assert_eq!(get(&addr, "/health").0, 200);
    let p = producer(&bootstrap, &[]);
    let offsets = block_on(produce_all(&p, "b", 0, &[(None, Some(&b"v"[..]))]));
    assert_eq!(offsets, [0]);
    assert_eq!(
        metrics(&addr).value("rivulet_topic_records_in_total{topic=\"b\"}"),
        1.0
    );

    // The slow clients are dropped within the head timeout (5 s), with
    // nothing answered.
    for mut s in slow {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "a slow client got an answer");
    }
    assert!(slow_since.elapsed() < Duration::from_secs(15));
    node.check_alive();
    assert_eq!(get(&addr, "/health").0, 200);
}

#[test]
fn under_replicated_partitions_follow_a_stopped_follower_and_one_node_is_the_controller() {
    let mut cluster = ProcessCluster::start(
        ClusterSpec::new(Path::new(RIVULET), 3)
            .ports(ClusterPorts::Block)
            .cluster_id("metrics-test")
            .set("broker.session.timeout.ms", 3000)
            .set("broker.heartbeat.interval.ms", 300)
            .set("replica.lag.time.max.ms", 3000)
            .env("RUST_LOG", "info,openraft=warn")
            .timeout(TIMEOUT),
    );
    let bootstrap = cluster.bootstrap();
    let addrs: Vec<String> = cluster
        .ids()
        .map(|id| cluster.node(id).metrics_addr())
        .collect();
    block_on(create_topic_rf(
        &bootstrap,
        "urp",
        1,
        3,
        &[("min.insync.replicas", "2")],
    ));
    let client: BaseConsumer = cluster_client_config(&bootstrap).create().unwrap();
    let view = Poll::new(TIMEOUT)
        .value(|| {
            partitions(&client, "urp")
                .and_then(|p| p.get(&0).cloned())
                .filter(|v| v.has_leader() && v.isr.len() == 3)
        })
        .expect("urp/0 with a leader and 3 in sync");
    let leader = view.leader;
    let leader_addr = &addrs[(leader - 1) as usize];
    let total = |name: &str| -> f64 { addrs.iter().map(|a| metrics(a).value(name)).sum() };

    Poll::new(TIMEOUT).wait("exactly one active controller", || {
        let actives: Vec<f64> = addrs
            .iter()
            .map(|a| metrics(a).value("rivulet_active_controller"))
            .collect();
        actives.iter().sum::<f64>() == 1.0 && actives.iter().all(|v| *v == 0.0 || *v == 1.0)
    });
    assert_eq!(total("rivulet_under_replicated_partitions"), 0.0);
    // The followers' fetch cycles are timed, phase by phase.
    for id in cluster.ids().filter(|&id| id != leader) {
        let addr = &addrs[(id - 1) as usize];
        Poll::new(TIMEOUT).wait("a follower's fetch cycles in its metrics", || {
            let m = metrics(addr);
            ["round_trip", "apply", "fsync"].iter().all(|phase| {
                m.value(&format!(
                    "rivulet_follower_fetch_seconds_count{{phase=\"{phase}\"}}"
                )) >= 1.0
            })
        });
    }
    let shrinks_before = metrics(leader_addr).value("rivulet_isr_shrinks_total");

    // Stop a follower that is not the active controller (a faster test).
    let follower = cluster
        .ids()
        .find(|&id| {
            id != leader
                && metrics(&addrs[(id - 1) as usize]).value("rivulet_active_controller") == 0.0
        })
        .expect("a follower that is not the controller");
    cluster.kill(follower);
    let urp_topic = "rivulet_under_replicated_partitions";
    Poll::new(TIMEOUT)
        .every(Duration::from_millis(200))
        .wait("the leader to report 1 under-replicated partition", || {
            metrics(leader_addr).value(urp_topic) == 1.0
        });
    assert!(metrics(leader_addr).value("rivulet_isr_shrinks_total") > shrinks_before);
    assert_eq!(
        metrics(leader_addr).value("rivulet_under_min_isr_partitions"),
        0.0
    );
    // Every partition still has a leader; the metadata is applied everywhere
    // it is committed (or nearly: a record may be in flight).
    let live: Vec<&String> = addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as i32 + 1 != follower)
        .map(|(_, a)| a)
        .collect();
    let live_total = |name: &str| -> f64 { live.iter().map(|a| metrics(a).value(name)).sum() };
    assert_eq!(live_total("rivulet_offline_partitions"), 0.0);
    assert_eq!(live_total("rivulet_active_controller"), 1.0);
    assert!(live
        .iter()
        .all(|a| metrics(a).value("rivulet_metadata_offset") > 0.0));

    // `rivulet top --once` reads the live nodes and says which is down.
    let metrics_arg = addrs.join(",");
    let top = run(
        Path::new(RIVULET),
        &[
            "top",
            "--once",
            "--interval",
            "0.2",
            "--metrics",
            &metrics_arg,
        ],
        "",
        TIMEOUT,
    );
    assert!(top.success, "{}", top.stderr);
    let lines: Vec<&str> = top.stdout.lines().collect();
    assert!(
        lines[0].starts_with("rivulet top: 3 node(s)"),
        "{}",
        top.stdout
    );
    let row = |id: i32| {
        lines
            .iter()
            .find(|l| l.contains(&addrs[(id - 1) as usize]))
            .unwrap_or_else(|| panic!("no row for node {id}: {}", top.stdout))
            .to_string()
    };
    assert!(row(follower).contains("down"), "{}", top.stdout);
    let leader_row = row(leader);
    assert!(
        leader_row.starts_with(&format!("{leader} ")),
        "{}",
        top.stdout
    );
    assert!(leader_row.contains("ready"), "{}", top.stdout);
    let cols: Vec<&str> = leader_row.split_whitespace().collect();
    // NODE METRICS STATE [CTRL] IN OUT REC REQ PARTS LEADERS URP <MINISR CONNS
    let urp_col = cols[cols.len() - 3];
    assert_eq!(urp_col, "1", "{}", top.stdout);

    cluster.restart(follower);
    Poll::new(TIMEOUT).every(Duration::from_millis(200)).wait(
        "no under-replicated partition after the follower rejoins",
        || metrics(leader_addr).value(urp_topic) == 0.0,
    );
    assert!(metrics(leader_addr).value("rivulet_isr_expands_total") >= 1.0);
    Poll::new(TIMEOUT).wait("the restarted follower to be ready", || {
        scrape::get(
            &addrs[(follower - 1) as usize],
            "/ready",
            Duration::from_secs(3),
        )
        .is_ok_and(|(s, _)| s == 200)
    });
    assert_eq!(total("rivulet_active_controller"), 1.0);
}
