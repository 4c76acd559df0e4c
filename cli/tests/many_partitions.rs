//! Many partitions on one `rivulet` process with a low open-files limit
//! (started through `prlimit`), through a real Kafka client (rdkafka):
//! partitions beyond what the limit allows are refused per topic with
//! POLICY_VIOLATION and the request is answered at once; the node holds
//! about one descriptor per partition (index files are mapped, not kept
//! open); after a clean stop it reopens without recovery and serves
//! produce and fetch on the partitions it kept; after a SIGKILL it recovers
//! and every acknowledged record reads back.

use std::fs;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::{block_on, client_config, consume_n, consumer, produce_all, producer};
use rivulet_testkit::process::{BrokerProcess, NodeSpec};

const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");
const TIMEOUT: Duration = Duration::from_secs(60);
/// Allows (3000 − 1024) × 2/3 = 1,317 partitions (rivulet_controller::capacity).
const NOFILE: u64 = 3000;
const TOPICS: usize = 4;
const PER_TOPIC: usize = 500;

fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the node's /proc fd dir")
        .count()
}

#[test]
fn partitions_beyond_the_open_files_limit_are_refused_and_the_rest_reopen() {
    let dir = temp_dir();
    let spec = NodeSpec::new(
        RIVULET,
        dir.path().join("data"),
        dir.path().join("rivulet.log"),
    )
    .env("NO_COLOR", "1")
    .nofile(NOFILE);
    let mut node = BrokerProcess::spawn(spec);
    node.wait_serving(TIMEOUT);
    let log = fs::read_to_string(node.log_path()).expect("the node log");
    assert!(
        log.lines()
            .any(|l| l.contains("open-files limit") && l.contains("max_partitions=1317")),
        "the node logs its open-files limit and the partitions it allows:\n{}",
        node.log_tail(20)
    );

    // 2,000 partitions in one CreateTopics: two topics fit, two are refused.
    let admin: AdminClient<DefaultClientContext> = client_config(&node.bootstrap())
        .set("socket.timeout.ms", "120000")
        .create()
        .expect("an admin client");
    let names: Vec<String> = (0..TOPICS).map(|i| format!("many-{i}")).collect();
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, PER_TOPIC as i32, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(TIMEOUT))
        .request_timeout(Some(Duration::from_secs(120)));
    let started = Instant::now();
    let results = block_on(admin.create_topics(&topics, &opts)).expect("CreateTopics answered");
    let took = started.elapsed();
    let created: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let refused: Vec<(String, RDKafkaErrorCode)> = results
        .iter()
        .filter_map(|r| r.as_ref().err().cloned())
        .collect();
    assert_eq!(created.len(), 2, "created {created:?}, refused {refused:?}");
    assert!(
        refused
            .iter()
            .all(|(_, code)| *code == RDKafkaErrorCode::PolicyViolation),
        "refused with POLICY_VIOLATION: {refused:?}"
    );
    assert!(
        took < Duration::from_secs(50),
        "answered, not timed out: {took:?}"
    );
    node.check_alive();

    // One descriptor per segment (each partition has one) plus the rest.
    let hosted = created.len() * PER_TOPIC;
    let fds = open_fds(node.pid());
    assert!(
        fds >= hosted && fds < hosted + 200,
        "{fds} descriptors open for {hosted} partitions"
    );
    let log = fs::read_to_string(node.log_path()).expect("the node log");
    assert!(
        !log.contains("Too many open files") && !log.contains("cannot host partition"),
        "{}",
        node.log_tail(20)
    );

    // A clean stop and a start: no recovery, and the partitions serve.
    assert!(
        node.terminate(TIMEOUT).is_some_and(|s| s.success()),
        "a clean stop"
    );
    node.start();
    node.wait_serving(TIMEOUT);
    let (log, reopened) = last_open(&node);
    assert!(
        reopened.contains(&format!("logs={hosted}")) && reopened.contains("clean_shutdown=true"),
        "{reopened}"
    );
    assert!(!log.contains("recovered log"), "{}", node.log_tail(20));
    let topic = created[0].as_str();
    let p = producer(&node.bootstrap(), &[]);
    let c = consumer(&node.bootstrap(), &[]);
    for partition in [0, 250, 499] {
        let value = format!("v{partition}");
        let records = [(None, Some(value.as_bytes()))];
        let offsets = block_on(produce_all(&p, topic, partition, &records));
        assert_eq!(offsets, vec![0]);
        let got = consume_n(&c, topic, partition, Offset::Beginning, 1);
        assert_eq!(got[0].value.as_deref(), Some(value.as_bytes()));
    }
    let fds = open_fds(node.pid());
    assert!(fds < hosted + 200, "{fds} descriptors after the restart");

    // An unclean stop still recovers.
    node.kill();
    node.start();
    node.wait_serving(TIMEOUT);
    let (_, reopened) = last_open(&node);
    assert!(reopened.contains("clean_shutdown=false"), "{reopened}");
    let c = consumer(&node.bootstrap(), &[]);
    for partition in [0, 250, 499] {
        let got = consume_n(&c, topic, partition, Offset::Beginning, 1);
        assert_eq!(got[0].value, Some(format!("v{partition}").into_bytes()));
    }
}

/// The node's log and its last "opened logs" line (written at each start).
fn last_open(node: &BrokerProcess) -> (String, String) {
    let log = fs::read_to_string(node.log_path()).expect("the node log");
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("opened logs"))
        .expect("an 'opened logs' line")
        .to_string();
    (log, line)
}
