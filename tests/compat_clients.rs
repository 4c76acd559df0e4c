//! Other clients than librdkafka-via-Rust: a scripted kcat check, three
//! kafka-python checks (the second a consumer group, the third its admin
//! client describing and deleting a group), and the transaction flows of
//! issue 11 through each Python client that has a transactional producer
//! (kafka-python, confluent-kafka, aiokafka): commit/abort across two
//! partitions seen by read_committed and read_uncommitted consumers, an
//! open transaction holding read_committed readers at the last stable
//! offset, and read-process-write with `send_offsets_to_transaction`; and
//! the day one of a Node (kafkajs) and an asyncio (aiokafka) user: admin,
//! idempotent producer, a two-member group, resume at commits, offsets by
//! time; and two Go programs built from Debian's Sarama and kafka-go
//! sources. All tools are installed by `scripts/ci-setup.sh`, which
//! `.ci/run` calls.
//!
//! A missing tool FAILS its test: a skipped check hides a gap. Only a user
//! who opts out with `RIVULET_SKIP_MISSING_CLIENTS=1` gets a warning and a
//! skip instead.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rivulet_testkit::prelude::*;
use rivulet_testkit::process;

/// The opt-out of [`tool_available`]: missing clients skip instead of fail.
const SKIP_MISSING: &str = "RIVULET_SKIP_MISSING_CLIENTS";

/// Whether the environment opted out of failing on missing clients.
fn skip_missing_opted_in(value: Option<std::ffi::OsString>) -> bool {
    value.is_some_and(|v| v == "1")
}

/// `true` if `path` runs or exists. A missing tool panics (fails the
/// test) unless `RIVULET_SKIP_MISSING_CLIENTS=1`, which returns `false` so
/// the caller skips with a warning.
fn tool_available(path: &str) -> bool {
    let found = Command::new(path).arg("--version").output().is_ok() || Path::new(path).exists();
    if !found {
        assert!(
            skip_missing_opted_in(std::env::var_os(SKIP_MISSING)),
            "{path} is missing: run scripts/ci-setup.sh (or set {SKIP_MISSING}=1 to skip)"
        );
        eprintln!("warning: {path} not found, skipping because {SKIP_MISSING}=1");
    }
    found
}

/// Run `program args…` (at most 5 minutes); its stdout, or a failure with
/// its output.
fn run(program: &str, args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = process::run(Path::new(program), &args, "", Duration::from_secs(300));
    assert!(
        out.success,
        "{program} {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    out.stdout
}

/// Start a broker, run `program script BOOTSTRAP args...` against it and
/// return its stdout (the program's failure fails the test).
async fn run_against_broker(program: &'static str, script: &str, args: &[&str]) -> String {
    run_with_broker(program.to_string(), &[script], args).await
}

/// Start a broker, run `program leading... BOOTSTRAP args...` against it and
/// return its stdout (the program's failure fails the test).
async fn run_with_broker(program: String, leading: &[&str], args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let mut argv: Vec<String> = leading.iter().map(|a| a.to_string()).collect();
    argv.push(broker.bootstrap());
    argv.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || run(&program, &argv))
        .await
        .unwrap()
}

const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/py/bin/python");

/// Run `tests/compat/SCRIPT BOOTSTRAP args...` with target/py's Python
/// against a new broker: its stdout, or `None` when Python is missing and
/// the user opted out (see [`tool_available`]).
async fn python_check(script: &str, args: &[&str]) -> Option<String> {
    if !tool_available(PYTHON) {
        return None;
    }
    let path = format!("{}/tests/compat/{script}", env!("CARGO_MANIFEST_DIR"));
    Some(run_against_broker(PYTHON, &path, args).await)
}

/// Node and kafkajs (installed under target/js by scripts/ci-setup.sh), as
/// [`tool_available`].
fn kafkajs_available() -> bool {
    let kafkajs = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/js/node_modules/kafkajs/package.json"
    );
    tool_available("node") && tool_available(kafkajs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_produces_and_consumes() {
    if !tool_available("kcat") {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/kcat_check.sh");
    let out = run_against_broker("bash", script, &["kcat-topic"]).await;
    assert!(out.contains("kcat ok: 3 records"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_admin_produce_consume_and_offsets() {
    if !tool_available(PYTHON) {
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/kafka_python_check.py"
    );
    let out = run_against_broker(PYTHON, script, &["py-topic"]).await;
    assert!(out.contains("kafka-python ok: 20 records"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_group_splits_partitions_and_resumes_at_commits() {
    if !tool_available(PYTHON) {
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/kafka_python_group_check.py"
    );
    let out = run_against_broker(PYTHON, script, &["py-group-topic", "py-group"]).await;
    assert!(
        out.contains("kafka-python group ok: 40 records split 2/2"),
        "{out}"
    );
    assert!(out.contains("resumed with exactly 10 new"), "{out}");
}

/// kafka-python sees Kafka's LogValidator refusals as Kafka's errors
/// (InvalidRecordError for a keyless record on a compacted topic,
/// InvalidTimestampError two hours ahead) and sets the cluster-wide
/// dynamic defaults (BROKER "") that a topic then reports with their
/// source and synonyms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_record_refusals_and_dynamic_broker_configs() {
    let Some(out) = python_check("kafka_python_configs_check.py", &["py-configs"]).await else {
        return;
    };
    assert!(
        out.contains("kafka-python configs ok: retention.ms=3600000 source=3"),
        "{out}"
    );
}

/// kafka-python's admin client always asks DescribeGroups v3 and Metadata
/// v8 for authorized operations and raises on INT32_MIN there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_admin_describes_and_deletes_groups() {
    if !tool_available(PYTHON) {
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/kafka_python_admin_groups_check.py"
    );
    let out = run_against_broker(PYTHON, script, &["py-admin-topic", "py-admin-group"]).await;
    assert!(
        out.contains("kafka-python admin groups ok: described ['DELETE', 'DESCRIBE', 'READ']"),
        "{out}"
    );
}

/// Issue 11: the commit/abort/read_committed and read-process-write flows
/// through a Python client's transactional producer (see the script).
async fn python_txn_check(script: &'static str, tag: &'static str, client: &str) {
    if !tool_available(PYTHON) {
        return;
    }
    let topics = [
        format!("{tag}-txn"),
        format!("{tag}-in"),
        format!("{tag}-out"),
    ];
    let group = format!("{tag}-rpw-group");
    let args: Vec<&str> = topics
        .iter()
        .map(String::as_str)
        .chain([group.as_str()])
        .collect();
    let out = run_against_broker(PYTHON, script, &args).await;
    assert!(out.contains(&format!("{client} txn ok: ")), "{out}");
    assert!(
        out.contains("read_committed 6 of 9, read_uncommitted 9"),
        "{out}"
    );
    assert!(
        out.contains("open transaction held read_committed at LSO 8 below end 10"),
        "{out}"
    );
    assert!(
        out.contains("group offset 3 after commit, still 3 after abort"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_transactions_commit_abort_and_send_offsets() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/kafka_python_txn_check.py"
    );
    python_txn_check(script, "kpy", "kafka-python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_transactions_commit_abort_and_send_offsets() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/confluent_kafka_txn_check.py"
    );
    python_txn_check(script, "ck", "confluent-kafka").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiokafka_transactions_commit_abort_and_send_offsets() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/aiokafka_txn_check.py"
    );
    python_txn_check(script, "aio", "aiokafka").await;
}

/// kafkajs (installed under target/js by scripts/ci-setup.sh): the client
/// the issue saw fail with "Failed to find group coordinator".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_transactions_commit_abort_and_send_offsets() {
    if !kafkajs_available() {
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/kafkajs_txn_check.js"
    );
    let out = run_against_broker(
        "node",
        script,
        &["js-txn", "js-in", "js-out", "js-rpw-group"],
    )
    .await;
    assert!(
        out.contains("kafkajs txn ok: read_committed 5 of 7; read-process-write group offset 3"),
        "{out}"
    );
}

/// A Node user's day one with kafkajs: admin topics and configs, an
/// idempotent gzip producer with keys and repeated headers, a two-member
/// group (eachMessage + eachBatch) reading every record once, resume at the
/// commits, the group offset admin calls, seek, pause/resume and
/// fromBeginning:false (see the script).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_admin_producer_and_group_day_one() {
    if !kafkajs_available() {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/kafkajs_check.js");
    let out = run_against_broker("node", script, &["js-day-one", "js-day-one-group"]).await;
    assert!(out.contains("kafkajs ok: 40 records split "), "{out}");
    assert!(
        out.contains("over 4 partitions, resumed with exactly 8 new"),
        "{out}"
    );
    assert!(out.contains("seek/pause 12 side reads"), "{out}");
    // A send mixing explicit and implicit timestamps is found by time.
    assert!(
        out.contains("mixed timestamps found at 0; topics deleted"),
        "{out}"
    );
}

/// An asyncio user's day one with aiokafka: idempotent gzip producer with
/// keys and repeated headers, a two-member group over 3 partitions reading
/// every record once, resume at the commits, end_offsets, offsets_for_times
/// and seek_to_beginning (see the script).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiokafka_producer_group_and_offsets_day_one() {
    let Some(out) = python_check("aiokafka_check.py", &["aio-day-one", "aio-day-one-group"]).await
    else {
        return;
    };
    assert!(out.contains("aiokafka ok: 30 records split "), "{out}");
    assert!(out.contains("resumed with exactly 6 new"), "{out}");
    assert!(out.contains("seek_to_beginning over 36 records"), "{out}");
}

#[test]
fn a_missing_tool_fails_unless_opted_out() {
    // Runs this test binary again (one test, in a child process) so the
    // environment variable is set for it alone.
    let exe = std::env::current_exe().unwrap();
    let probe = |opt_out: Option<&str>| {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--exact",
            "missing_tool_probe",
            "--include-ignored",
            "--nocapture",
        ])
        .env_remove(SKIP_MISSING);
        if let Some(v) = opt_out {
            cmd.env(SKIP_MISSING, v);
        }
        cmd.output().unwrap()
    };
    let output = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let failed = probe(None);
    assert!(
        !failed.status.success(),
        "a missing tool must fail the test"
    );
    assert!(
        output(&failed).contains("is missing: run scripts/ci-setup.sh"),
        "{}",
        output(&failed)
    );
    let not_one = probe(Some("true"));
    assert!(!not_one.status.success(), "only `1` opts out");
    let skipped = probe(Some("1"));
    assert!(skipped.status.success(), "{}", output(&skipped));
    assert!(
        output(&skipped).contains("skipping because"),
        "{}",
        output(&skipped)
    );
    assert!(
        output(&skipped).contains("1 passed"),
        "{}",
        output(&skipped)
    );
}

/// Only run by [`a_missing_tool_fails_unless_opted_out`].
#[test]
#[ignore = "probe run by a_missing_tool_fails_unless_opted_out"]
fn missing_tool_probe() {
    assert!(!tool_available("/nonexistent/rivulet-no-such-client"));
}

/// Issue 14 (KIP-848): confluent-kafka with `group.protocol=consumer`, the
/// basic split and resume at the committed offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_consumer_protocol_splits_and_resumes() {
    if !tool_available(PYTHON) {
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/confluent_kafka_kip848_check.py"
    );
    let out = run_against_broker(PYTHON, script, &["py-848-topic", "py-848-group"]).await;
    assert!(
        out.contains("confluent-kafka kip848 ok: 40 records split 2/2"),
        "{out}"
    );
    assert!(out.contains("resumed with exactly 12 new"), "{out}");
}

/// Issue 14: manual replica assignment through confluent-kafka's admin
/// client (create_topics and create_partitions with replica_assignment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_creates_topics_with_a_replica_assignment() {
    if !tool_available(PYTHON) {
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/confluent_kafka_assignment_check.py"
    );
    let out = run_against_broker(PYTHON, script, &["py-assigned"]).await;
    assert!(
        out.contains("confluent-kafka assignment ok: 3 partitions on broker 1"),
        "{out}"
    );
}

/// Where Debian's golang-*-dev packages put Go sources (GOPATH mode: the
/// Debian clients have no go.mod and the machine no module proxy).
const DEBIAN_GOPATH: &str = "/usr/share/gocode";

/// Build `tests/compat/<name>.go` with Debian's Go in GOPATH mode into a
/// temp dir; the build cache lives under target/go-cache so only the first
/// build is slow (about a minute for Sarama and its cgo compressors).
fn build_go_check(name: &str) -> (tempfile::TempDir, String) {
    let src = format!("{}/tests/compat/{name}.go", env!("CARGO_MANIFEST_DIR"));
    let cache = concat!(env!("CARGO_MANIFEST_DIR"), "/target/go-cache");
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join(name).display().to_string();
    let out = Command::new("go")
        .args(["build", "-o", &bin, &src])
        .env("GO111MODULE", "off")
        .env("GOPATH", DEBIAN_GOPATH)
        .env("GOCACHE", cache)
        .env("GOFLAGS", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go build {src} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, bin)
}

/// Go, Sarama and kafka-go as Debian packages them (`scripts/ci-setup.sh`).
fn go_client_available(package_dir: &str) -> bool {
    tool_available("go") && tool_available(&format!("{DEBIAN_GOPATH}/src/{package_dir}"))
}

/// Build `tests/compat/<check>.go` against the Debian client in
/// `package_dir` and run it with a broker's bootstrap and `args`; its
/// stdout, or `None` when Go or the client is missing and the opt-out is set.
async fn run_go_check(check: &'static str, package_dir: &str, args: &[&str]) -> Option<String> {
    if !go_client_available(package_dir) {
        return None;
    }
    let (_dir, bin) = tokio::task::spawn_blocking(move || build_go_check(check))
        .await
        .unwrap();
    Some(run_with_broker(bin, &[], args).await)
}

/// Sarama 1.22 (Debian): admin, idempotent and plain acks=all producers with keys,
/// headers and timestamps, partition consumer, a two-member consumer group
/// that commits and resumes, offsets by time, group admin, topic deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sarama_admin_idempotent_produce_groups_and_offsets() {
    let args = ["go-sarama-topic", "go-sarama-group"];
    let Some(out) = run_go_check("sarama_check", "github.com/Shopify/sarama", &args).await else {
        return;
    };
    assert!(
        out.contains(
            "sarama ok: 30 records via idempotent producer, group split 1/2, \
             resumed with exactly 9 new, topic deleted"
        ),
        "{out}"
    );
}

/// kafka-go 0.2.1 (Debian) speaks only protocol versions Kafka 4.0 removed
/// for produce, fetch and topic creation: the check covers what works
/// against Kafka 4.x and that the removed versions fail at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_go_metadata_offsets_group_and_removed_versions() {
    let args = ["go-kafka-go-topic", "go-kafka-go-group"];
    let Some(out) = run_go_check("kafka_go_check", "github.com/segmentio/kafka-go", &args).await
    else {
        return;
    };
    assert!(
        out.contains("kafka-go ok: metadata (1 partition, leader 127.0.0.1:"),
        "{out}"
    );
    assert!(
        out.contains(
            "offsets 0..0, group joined and committed; \
             CreateTopics v0, Produce v2, Fetch v2 refused as by Kafka 4.x"
        ),
        "{out}"
    );
}
