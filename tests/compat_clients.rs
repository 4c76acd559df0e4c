//! Other clients than librdkafka-via-Rust: a scripted kcat check and three
//! kafka-python checks, the second a consumer group, the third its admin
//! client describing and deleting a group (all installed by
//! `scripts/ci-setup.sh`, which `.ci/run` calls). Outside CI a missing tool
//! skips its check with a warning; under CI (`CI` set) a missing tool fails
//! the test.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rivulet_testkit::prelude::*;
use rivulet_testkit::process;

fn tool_available(path: &str) -> bool {
    let found = Command::new(path).arg("--version").output().is_ok() || Path::new(path).exists();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{path} is missing: run scripts/ci-setup.sh"
        );
        eprintln!("warning: {path} not found, skipping (run scripts/ci-setup.sh)");
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
async fn run_against_broker(program: &'static str, script: &'static str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let mut argv = vec![script.to_string(), broker.bootstrap()];
    argv.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || run(program, &argv))
        .await
        .unwrap()
}

const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/py/bin/python");

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
