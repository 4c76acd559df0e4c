//! The `rivulet` binary's client commands (`topic`, `produce`, `consume`)
//! run as a user would run them, against a broker started in this process;
//! what they print is checked, and what they did is checked again through
//! rdkafka; `group` commands are checked against consumer groups of real
//! rdkafka consumers. Also: `config/single.toml` documents every broker setting with
//! its default, and `rivulet --config config/single.toml` runs a broker.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, ConfigSource, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_broker::config::{DEFAULTS, LOG_KEYS};
use rivulet_broker::{BrokerConfig, BrokerNode};

const TIMEOUT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A broker on free loopback ports with its own data dir, on its own runtime
/// so tests can block on child processes.
struct TestBroker {
    runtime: tokio::runtime::Runtime,
    node: Option<BrokerNode>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    fn start() -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let props: BTreeMap<String, String> = [
            ("listeners", format!("127.0.0.1:{port}")),
            ("controller.listener", format!("127.0.0.1:{}", free_port())),
            ("data.dir", dir.path().display().to_string()),
            ("broker.heartbeat.interval.ms", "200".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let config = BrokerConfig::from_props(&props).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let node = runtime.block_on(BrokerNode::start(config)).unwrap();
        let b = node.broker.clone();
        let deadline = Instant::now() + TIMEOUT;
        while !b.image().is_live(b.node_id()) {
            assert!(Instant::now() < deadline, "broker never registered");
            std::thread::sleep(Duration::from_millis(20));
        }
        TestBroker {
            runtime,
            node: Some(node),
            port,
            _dir: dir,
        }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap())
            .set("broker.address.family", "v4");
        c
    }

    /// Partition count of `topic` per rdkafka's metadata, `None` if absent.
    fn partitions(&self, topic: &str) -> Option<usize> {
        let c: BaseConsumer = self.client_config().create().unwrap();
        let md = c.fetch_metadata(None, TIMEOUT).unwrap();
        md.topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len())
    }

    /// The topic's config overrides per rdkafka's DescribeConfigs.
    fn overrides(&self, topic: &str) -> BTreeMap<String, String> {
        let admin: AdminClient<DefaultClientContext> = self.client_config().create().unwrap();
        let res = self
            .runtime
            .block_on(
                admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new()),
            )
            .unwrap();
        let resource = res.into_iter().next().unwrap().unwrap();
        resource
            .entries
            .into_iter()
            .filter(|e| e.source == ConfigSource::DynamicTopic)
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect()
    }

    /// Produce `(timestamp, value)` records to partition 0, waiting for acks.
    fn produce_at(&self, topic: &str, records: &[(i64, String)]) {
        let p: FutureProducer = self.client_config().create().unwrap();
        self.runtime.block_on(async {
            for (ts, v) in records {
                let rec: FutureRecord<'_, (), str> = FutureRecord::to(topic)
                    .partition(0)
                    .timestamp(*ts)
                    .payload(v);
                p.send(rec, TIMEOUT).await.map_err(|(e, _)| e).unwrap();
            }
        });
    }

    /// `(key, value)` of the first `n` records of `topic`/0 (a missing key
    /// or value reads as empty).
    fn read(&self, topic: &str, n: usize) -> Vec<(String, String)> {
        let mut c = self.client_config();
        c.set("group.id", "cli-test")
            .set("enable.auto.commit", "false");
        let c: BaseConsumer = c.create().unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .unwrap();
        c.assign(&tpl).unwrap();
        let deadline = Instant::now() + TIMEOUT;
        let mut out = Vec::new();
        while out.len() < n {
            assert!(Instant::now() < deadline, "read {} of {n}", out.len());
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                let text = |b: Option<&[u8]>| String::from_utf8(b.unwrap_or_default().to_vec());
                out.push((text(m.key()).unwrap(), text(m.payload()).unwrap()));
            }
        }
        out
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            let _ = self.runtime.block_on(node.shutdown());
        }
    }
}

/// Run `rivulet args…` with `stdin`.
fn rivulet(args: &[&str], stdin: &str) -> Run {
    run_rivulet(args, stdin, TIMEOUT)
}

/// Run a client command against `b`; it must succeed. Returns stdout.
fn ok(b: &TestBroker, args: &[&str], stdin: &str) -> String {
    let bs = b.bootstrap();
    let mut all = vec!["--bootstrap-server", bs.as_str()];
    all.extend_from_slice(args);
    let run = rivulet(&all, stdin);
    assert!(run.success, "rivulet {args:?} failed: {}", run.stderr);
    run.stdout
}

/// Run a client command against `b`; it must fail. Returns stderr.
fn fails(b: &TestBroker, args: &[&str]) -> String {
    let bs = b.bootstrap();
    let mut all = vec!["--bootstrap-server", bs.as_str()];
    all.extend_from_slice(args);
    let run = rivulet(&all, "");
    assert!(!run.success, "rivulet {args:?} succeeded: {}", run.stdout);
    run.stderr
}

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn topic_create_list_describe_alter_delete_round_trip() {
    let b = TestBroker::start();
    let out = ok(
        &b,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=60000",
        ],
        "",
    );
    assert_eq!(out, "created topic orders\n");
    assert_eq!(b.partitions("orders"), Some(3));
    assert!(fails(&b, &["topic", "create", "orders"]).contains("already exists"));
    ok(&b, &["topic", "create", "orders", "--if-not-exists"], "");
    ok(&b, &["topic", "create", "audit"], "");

    let listed = ok(&b, &["topic", "list"], "");
    let names: Vec<&str> = listed.lines().collect();
    assert!(
        names.contains(&"orders") && names.contains(&"audit"),
        "{listed}"
    );

    let described = ok(&b, &["topic", "describe", "orders"], "");
    let lines: Vec<&str> = described.lines().collect();
    assert_eq!(
        lines,
        [
            "Topic: orders\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: retention.ms=60000",
            "\tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1",
            "\tTopic: orders\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1",
            "\tTopic: orders\tPartition: 2\tLeader: 1\tReplicas: 1\tIsr: 1",
        ]
    );
    let all = ok(&b, &["topic", "describe", "orders", "--all-configs"], "");
    assert!(
        all.contains("\tretention.ms=60000\t(topic override)"),
        "{all}"
    );
    assert!(all.contains("\tcleanup.policy=delete\t(default)"), "{all}");

    // Legacy AlterConfigs replaces the override set: the untouched
    // retention.ms must survive a change to other keys.
    let out = ok(
        &b,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "cleanup.policy=compact",
            "--set",
            "segment.bytes=1048576",
        ],
        "",
    );
    assert!(out.starts_with("altered configs of topic orders"), "{out}");
    assert_eq!(
        b.overrides("orders"),
        map(&[
            ("cleanup.policy", "compact"),
            ("retention.ms", "60000"),
            ("segment.bytes", "1048576"),
        ])
    );
    ok(
        &b,
        &[
            "topic",
            "alter-config",
            "orders",
            "--delete",
            "retention.ms",
        ],
        "",
    );
    assert_eq!(
        b.overrides("orders"),
        map(&[("cleanup.policy", "compact"), ("segment.bytes", "1048576")])
    );
    let described = ok(&b, &["topic", "describe", "orders"], "");
    assert!(
        described.starts_with(
            "Topic: orders\tPartitionCount: 3\tReplicationFactor: 1\t\
             Configs: cleanup.policy=compact,segment.bytes=1048576\n"
        ),
        "{described}"
    );
    assert!(fails(&b, &["topic", "alter-config", "orders"]).contains("nothing to change"));
    assert!(fails(
        &b,
        &["topic", "alter-config", "nope", "--set", "retention.ms=1"]
    )
    .contains("topic nope does not exist"));

    assert_eq!(
        ok(&b, &["topic", "delete", "orders"], ""),
        "deleted topic orders\n"
    );
    let deadline = Instant::now() + TIMEOUT;
    while b.partitions("orders").is_some() {
        assert!(Instant::now() < deadline, "orders still in metadata");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!ok(&b, &["topic", "list"], "")
        .lines()
        .any(|l| l == "orders"));
    assert!(fails(&b, &["topic", "delete", "orders"]).contains("topic orders does not exist"));
    ok(&b, &["topic", "delete", "orders", "--if-exists"], "");
    assert!(fails(&b, &["topic", "describe", "orders"]).contains("topic orders does not exist"));
    assert_eq!(b.partitions("audit"), Some(1), "other topics are untouched");
}

#[test]
fn produced_lines_are_consumed_back_exactly() {
    let b = TestBroker::start();
    ok(&b, &["topic", "create", "lines", "--partitions", "1"], "");
    let input = "k1\tv1\nk2\tv2 with\ttab\n\tno key text\nk4\t\nk5\tv5\n";
    let run = rivulet(
        &[
            "--bootstrap-server",
            &b.bootstrap(),
            "produce",
            "lines",
            "--key-separator",
            "\t",
            "--progress-every",
            "2",
        ],
        input,
    );
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stderr.contains("produced 5 records to lines"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("sent 2 records") && run.stderr.contains("sent 4 records"),
        "progress every 2 records: {}",
        run.stderr
    );
    // The split happened at the first separator only.
    assert_eq!(
        b.read("lines", 5),
        [
            ("k1", "v1"),
            ("k2", "v2 with\ttab"),
            ("", "no key text"),
            ("k4", ""),
            ("k5", "v5"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );

    let printed = ok(
        &b,
        &[
            "consume",
            "lines",
            "--from",
            "earliest",
            "--count",
            "5",
            "--print-key",
        ],
        "",
    );
    assert_eq!(printed, input);
    let two = ok(
        &b,
        &["consume", "lines", "--from", "earliest", "--count", "2"],
        "",
    );
    assert_eq!(two, "v1\nv2 with\ttab\n");
    let from_offset = ok(&b, &["consume", "lines", "--from", "3"], "");
    assert_eq!(from_offset, "\nv5\n", "offset 3 on, stopping at the end");
    let latest = ok(&b, &["consume", "lines", "--from", "latest"], "");
    assert_eq!(latest, "", "nothing after the end");

    // Many partitions: every line comes back once (order is per partition),
    // and consumption stops on its own at the end of all of them.
    ok(&b, &["topic", "create", "spread", "--partitions", "3"], "");
    let many: Vec<String> = (0..60).map(|i| format!("key-{i}:value-{i}")).collect();
    ok(
        &b,
        &["produce", "spread", "--key-separator", ":", "--acks", "1"],
        &(many.join("\n") + "\n"),
    );
    let printed = ok(
        &b,
        &["consume", "spread", "--print-key", "--key-separator", ":"],
        "",
    );
    let mut got: Vec<&str> = printed.lines().collect();
    let mut want: Vec<&str> = many.iter().map(String::as_str).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    let only_one = ok(&b, &["consume", "spread", "--partition", "1"], "");
    assert!(only_one.lines().count() < 60, "one partition of three");
    assert!(fails(&b, &["consume", "spread", "--partition", "7"]).contains("no partition 7"));
    assert!(fails(&b, &["consume", "missing"]).contains("topic missing does not exist"));
}

#[test]
fn consume_from_a_time_starts_at_the_first_record_at_or_after_it() {
    let b = TestBroker::start();
    ok(&b, &["topic", "create", "timed", "--partitions", "1"], "");
    // 2023-11-14T22:13:20Z, and a second batch a minute later.
    let t0 = 1_700_000_000_000_i64;
    let first: Vec<(i64, String)> = (0..3).map(|i| (t0 + i, format!("early-{i}"))).collect();
    let second: Vec<(i64, String)> = (0..3)
        .map(|i| (t0 + 60_000 + i, format!("late-{i}")))
        .collect();
    b.produce_at("timed", &first);
    b.produce_at("timed", &second);

    let between = ok(
        &b,
        &["consume", "timed", "--from", "2023-11-14T22:13:50Z"],
        "",
    );
    assert_eq!(between, "late-0\nlate-1\nlate-2\n");
    let with_offset = ok(
        &b,
        &[
            "consume",
            "timed",
            "--from",
            "2023-11-14T23:13:50+01:00",
            "--count",
            "1",
        ],
        "",
    );
    assert_eq!(with_offset, "late-0\n");
    let to_the_ms = ok(
        &b,
        &["consume", "timed", "--from", "2023-11-14T22:13:20.001Z"],
        "",
    );
    assert_eq!(to_the_ms, "early-1\nearly-2\nlate-0\nlate-1\nlate-2\n");
    let after_all = ok(
        &b,
        &["consume", "timed", "--from", "2023-11-14T23:00:00Z"],
        "",
    );
    assert_eq!(
        after_all, "",
        "no record at or after the time: start at the end"
    );

    let bad = rivulet(&["consume", "timed", "--from", "2023-11-14T22:13:50"], "");
    assert!(
        !bad.success && bad.stderr.contains("RFC 3339"),
        "{}",
        bad.stderr
    );
}

#[test]
fn client_commands_fail_fast_when_no_broker_answers() {
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let commands: Vec<Vec<&str>> = vec![
        vec!["topic", "list"],
        vec!["topic", "create", "t"],
        vec!["produce", "t"],
        vec!["consume", "t", "--from", "earliest"],
        vec!["group", "list"],
        vec!["group", "describe", "g"],
        vec![
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to",
            "earliest",
        ],
        vec!["group", "delete", "g"],
    ];
    let runs: Vec<_> = commands
        .into_iter()
        .map(|c| {
            let bs = bootstrap.clone();
            std::thread::spawn(move || {
                let mut args = vec!["--bootstrap-server", bs.as_str()];
                args.extend(c.iter().copied());
                (c.join(" "), rivulet(&args, "a record\n"))
            })
        })
        .collect();
    for handle in runs {
        let (command, run) = handle.join().unwrap();
        assert!(!run.success, "{command} succeeded without a broker");
        assert!(
            run.stderr
                .contains(&format!("no broker answered at {bootstrap} within 10s")),
            "{command}: {}",
            run.stderr
        );
        assert!(
            run.took < Duration::from_secs(15),
            "{command} took {:?}",
            run.took
        );
    }
}

fn single_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/single.toml")
}

#[test]
fn single_toml_documents_every_setting_at_its_default() {
    let path = single_toml();
    let from_file = BrokerConfig::load(Some(&path), &[]).unwrap();
    let defaults = BrokerConfig::from_props(&BTreeMap::new()).unwrap();
    assert_eq!(from_file.node_id, defaults.node_id);
    assert_eq!(from_file.listener, defaults.listener);
    assert_eq!(from_file.advertised_listener, defaults.advertised_listener);
    assert_eq!(from_file.quorum_voters, defaults.quorum_voters);
    assert_eq!(from_file.data_dir, defaults.data_dir);
    assert_eq!(from_file.cluster_id, defaults.cluster_id);
    assert_eq!(from_file.num_partitions, defaults.num_partitions);
    assert_eq!(
        from_file.socket_request_max_bytes,
        defaults.socket_request_max_bytes
    );
    assert_eq!(from_file.session_timeout_ms, defaults.session_timeout_ms);
    assert_eq!(from_file.storage, defaults.storage);

    // Every key is written out, with the embedded default as its value.
    let text = std::fs::read_to_string(&path).unwrap();
    let keys = rivulet_broker::config::flatten_toml(&text.parse::<toml::Table>().unwrap());
    let log_defaults = &defaults.storage.log_defaults;
    let mut expected: BTreeMap<String, String> = DEFAULTS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (broker_key, log_key) in LOG_KEYS {
        expected.insert(broker_key.to_string(), log_defaults.get(log_key).unwrap());
    }
    assert_eq!(keys, expected);
}

#[test]
fn rivulet_without_subcommand_runs_a_broker_from_single_toml() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listeners = format!("listeners=127.0.0.1:{port}");
    let controller = format!("controller.listener=127.0.0.1:{}", free_port());
    let data = format!("data.dir={}", dir.path().display());
    let config = single_toml();
    let mut broker = Command::new(RIVULET)
        .arg("--config")
        .arg(&config)
        .args(["--set", &listeners, "--set", &controller, "--set", &data])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let bootstrap = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + TIMEOUT;
    let created = loop {
        let run = rivulet(
            &["--bootstrap-server", &bootstrap, "topic", "create", "smoke"],
            "",
        );
        if run.success || Instant::now() > deadline {
            break run;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let listed = rivulet(&["-b", &bootstrap, "topic", "list"], "");
    let _ = broker.kill();
    let _ = broker.wait();
    assert!(created.success, "{}", created.stderr);
    assert_eq!(listed.stdout, "smoke\n");
}

impl TestBroker {
    /// Produce `(timestamp, value)` records to `partition`, waiting for acks.
    fn produce_to(&self, topic: &str, partition: i32, records: &[(i64, String)]) {
        let p: FutureProducer = self.client_config().create().unwrap();
        self.runtime.block_on(async {
            for (ts, v) in records {
                let rec: FutureRecord<'_, (), str> = FutureRecord::to(topic)
                    .partition(partition)
                    .timestamp(*ts)
                    .payload(v);
                p.send(rec, TIMEOUT).await.map_err(|(e, _)| e).unwrap();
            }
        });
    }

    /// The committed offsets of `group` for partitions `0..partitions` of
    /// `topic`, per rdkafka (`None`: no committed offset).
    fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
        let mut cfg = self.client_config();
        cfg.set("group.id", group)
            .set("enable.auto.commit", "false");
        let c: BaseConsumer = cfg.create().unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = c.committed_offsets(tpl, TIMEOUT).unwrap();
        (0..partitions)
            .map(|p| match got.find_partition(topic, p).unwrap().offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    /// The state of `group` per rdkafka's DescribeGroups.
    fn group_state(&self, group: &str) -> Option<String> {
        let c: BaseConsumer = self.client_config().create().unwrap();
        let list = c.fetch_group_list(Some(group), TIMEOUT).unwrap();
        list.groups()
            .iter()
            .find(|g| g.name() == group)
            .map(|g| g.state().to_string())
    }
}

/// A consumed record: partition, offset, value.
type Received = (i32, i64, String);

/// A member of a consumer group, polling on its own thread. It commits
/// (synchronously, before recording the record) every record whose offset
/// is below `commit_below`, so the group's committed offsets are exact.
struct GroupMember {
    stop: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<Received>>>,
    thread: Option<JoinHandle<()>>,
}

impl GroupMember {
    fn start(b: &TestBroker, group: &str, topic: &str, commit_below: i64) -> GroupMember {
        let mut cfg = b.client_config();
        cfg.set("group.id", group)
            .set("client.id", "cli-member")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "200")
            .set("fetch.wait.max.ms", "100");
        let consumer: BaseConsumer = cfg.create().unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (stop.clone(), received.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) else {
                    continue;
                };
                if m.offset() < commit_below {
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(
                        m.topic(),
                        m.partition(),
                        Offset::Offset(m.offset() + 1),
                    )
                    .unwrap();
                    consumer.commit(&tpl, CommitMode::Sync).unwrap();
                }
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                r.lock().unwrap().push((m.partition(), m.offset(), value));
            }
            // Leave the group (LeaveGroup) rather than wait out the session.
            consumer.unsubscribe();
            let _ = consumer.poll(Duration::from_millis(100));
        });
        GroupMember {
            stop,
            received,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Leave the group and close; what was received.
    fn stop(mut self) -> Vec<Received> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.received()
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The rows of the tables in `out` whose first cell is `first`, as cells.
fn rows<'a>(out: &'a str, first: &str) -> Vec<Vec<&'a str>> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.first() == Some(&first))
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `ms` since the epoch as an RFC 3339 UTC time, seconds precision (Howard
/// Hinnant's `civil_from_days`).
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn group_commands_describe_reset_and_delete_a_consumer_group() {
    assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(rfc3339(951_868_800_000), "2000-03-01T00:00:00Z");
    let b = TestBroker::start();
    ok(&b, &["topic", "create", "grouped", "--partitions", "2"], "");
    // Ten records per partition, a minute apart, ending minutes ago (recent:
    // time retention must not touch them).
    let t0 = (now_ms() - 30 * 60_000) / 60_000 * 60_000;
    for p in 0..2 {
        let records: Vec<(i64, String)> = (0..10)
            .map(|i| (t0 + i * 60_000, format!("p{p}-{i}")))
            .collect();
        b.produce_to("grouped", p, &records);
    }

    // An active member that read everything but committed 4 per partition.
    let member = GroupMember::start(&b, "g-cli", "grouped", 4);
    wait_until("the member read all 20 records", || {
        member.received().len() == 20
    });
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(4), Some(4)]);

    let listed = ok(&b, &["group", "list"], "");
    assert!(listed.starts_with("GROUP"), "{listed}");
    assert_eq!(rows(&listed, "g-cli"), [["g-cli", "Stable", "1"]]);

    let described = ok(&b, &["group", "describe", "g-cli"], "");
    let state = rows(&described, "g-cli");
    assert_eq!(state.len(), 1, "{described}");
    assert_eq!(
        state[0][..3],
        ["g-cli", "Stable", "consumer"],
        "{described}"
    );
    assert_eq!(state[0].last(), Some(&"1"), "{described}");
    let member_rows: Vec<Vec<&str>> = described
        .lines()
        .filter(|l| l.contains("grouped(0,1)"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(member_rows.len(), 1, "{described}");
    let member_id = member_rows[0][0];
    assert!(member_rows[0][1].contains("127.0.0.1"), "{described}");
    assert_eq!(
        member_rows[0][2..],
        ["cli-member", "2", "grouped(0,1)"],
        "{described}"
    );
    // TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
    let lag = rows(&described, "grouped");
    assert_eq!(lag.len(), 2, "{described}");
    for (p, row) in lag.iter().enumerate() {
        assert_eq!(
            row[..6],
            ["grouped", &p.to_string(), "4", "10", "6", member_id],
            "{described}"
        );
        assert_eq!(row[7], "cli-member");
    }

    // An active group keeps its offsets and its existence.
    let reset_earliest = [
        "group",
        "reset-offsets",
        "g-cli",
        "--topic",
        "grouped",
        "--to",
        "earliest",
    ];
    let refused = fails(&b, &reset_earliest);
    assert!(
        refused.contains("group g-cli is active (state Stable, 1 members)")
            && refused.contains("stop its consumers first"),
        "{refused}"
    );
    let mut dry = reset_earliest.to_vec();
    dry.push("--dry-run");
    assert!(fails(&b, &dry).contains("is active"));
    let refused = fails(&b, &["group", "delete", "g-cli"]);
    assert!(refused.contains("has active members"), "{refused}");
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(4), Some(4)]);

    member.stop();
    wait_until("the group is empty", || {
        b.group_state("g-cli").as_deref() == Some("Empty")
    });
    let described = ok(&b, &["group", "describe", "g-cli"], "");
    assert_eq!(rows(&described, "g-cli")[0][1], "Empty", "{described}");
    assert!(!described.contains("cli-member"), "{described}");
    assert_eq!(
        rows(&described, "grouped"),
        [
            ["grouped", "0", "4", "10", "6", "-", "-", "-"],
            ["grouped", "1", "4", "10", "6", "-", "-", "-"],
        ],
        "an empty group still shows its committed offsets"
    );

    // TOPIC PARTITION PREVIOUS-OFFSET NEW-OFFSET
    let dry_latest = ok(
        &b,
        &[
            "group",
            "reset-offsets",
            "g-cli",
            "--topic",
            "grouped",
            "--to",
            "latest",
            "--dry-run",
        ],
        "",
    );
    assert_eq!(
        rows(&dry_latest, "grouped"),
        [["grouped", "0", "4", "10"], ["grouped", "1", "4", "10"]]
    );
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(4), Some(4)]);

    let out = ok(&b, &reset_earliest, "");
    assert_eq!(
        rows(&out, "grouped"),
        [["grouped", "0", "4", "0"], ["grouped", "1", "4", "0"]]
    );
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(0), Some(0)]);

    // Half a minute after the sixth record of each partition: the seventh
    // (offset 6) is the first at or after it.
    let between = rfc3339(t0 + 5 * 60_000 + 30_000);
    let out = ok(
        &b,
        &[
            "group",
            "reset-offsets",
            "g-cli",
            "--topic",
            "grouped",
            "--to",
            &between,
        ],
        "",
    );
    assert_eq!(
        rows(&out, "grouped"),
        [["grouped", "0", "0", "6"], ["grouped", "1", "0", "6"]],
        "{between}"
    );
    let replay = GroupMember::start(&b, "g-cli", "grouped", 0);
    wait_until("the replay read the last 4 of each partition", || {
        replay.received().len() >= 8
    });
    let got = replay.stop();
    for p in 0..2 {
        let first = got.iter().find(|r| r.0 == p);
        assert_eq!(first, Some(&(p, 6, format!("p{p}-6"))), "{got:?}");
    }
    assert_eq!(got.len(), 8, "nothing before the time replayed: {got:?}");
    wait_until("the group is empty again", || {
        b.group_state("g-cli").as_deref() == Some("Empty")
    });

    let to = |args: &[&str]| {
        let mut all = vec!["group", "reset-offsets", "g-cli", "--topic", "grouped"];
        all.extend_from_slice(args);
        ok(&b, &all, "")
    };
    to(&["--to", "5"]);
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(5), Some(5)]);
    let clamped = to(&["--to", "99", "--partition", "1"]);
    assert_eq!(rows(&clamped, "grouped"), [["grouped", "1", "5", "10"]]);
    assert_eq!(b.committed("g-cli", "grouped", 2), [Some(5), Some(10)]);

    let reset = |args: &[&str]| {
        let mut all = vec!["group", "reset-offsets", "g-cli"];
        all.extend_from_slice(args);
        fails(&b, &all)
    };
    assert!(reset(&["--topic", "nope", "--to", "0"]).contains("topic nope does not exist"));
    assert!(
        reset(&["--topic", "grouped", "--to", "0", "--partition", "7"])
            .contains("topic grouped has no partition 7")
    );
    assert!(reset(&["--topic", "grouped", "--to", "yesterday"]).contains("RFC 3339"));

    // Offsets may be given to a group that does not exist yet.
    ok(
        &b,
        &[
            "group",
            "reset-offsets",
            "g-new",
            "--topic",
            "grouped",
            "--to",
            "3",
        ],
        "",
    );
    assert_eq!(b.committed("g-new", "grouped", 2), [Some(3), Some(3)]);

    assert_eq!(
        ok(&b, &["group", "delete", "g-cli"], ""),
        "deleted group g-cli\n"
    );
    let listed = ok(&b, &["group", "list"], "");
    assert!(rows(&listed, "g-cli").is_empty(), "{listed}");
    assert_eq!(rows(&listed, "g-new"), [["g-new", "Empty", "0"]]);
    assert_eq!(b.committed("g-cli", "grouped", 2), [None, None]);
    assert!(fails(&b, &["group", "delete", "g-cli"]).contains("group g-cli does not exist"));
    assert!(fails(&b, &["group", "describe", "g-cli"]).contains("group g-cli does not exist"));
    assert_eq!(
        b.committed("g-new", "grouped", 2),
        [Some(3), Some(3)],
        "other groups are untouched"
    );
}
