//! What the security end-to-end tests share (`mod security_support;` in
//! each): system tools (Debian's kcat, with SSL and SASL) run off the async
//! workers, `rivulet` one-shot commands, a local cluster started with
//! `rivulet cluster up` on free ports and removed whatever the outcome, and
//! reading partition leaders and replication progress.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rivulet_testkit::broker::TestBroker;
use rivulet_testkit::ports::free_port_block_in;
use rivulet_testkit::process::run;

pub const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");
/// How long one tool run may take before it is killed.
pub const LIMIT: Duration = Duration::from_secs(120);

/// What a tool run printed.
pub struct Out {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Run `program args…` off the async workers, killed (and failed) after
/// [`LIMIT`]; without the test's `LD_LIBRARY_PATH` (cargo points it at the
/// workspace's build output, whose libraries Debian's kcat must not load).
pub async fn tool(program: &str, args: Vec<String>, stdin: &str) -> Out {
    let (program, stdin) = (program.to_string(), stdin.to_string());
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&program)
            .args(&args)
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} is installed (scripts/ci-setup.sh): {e}"));
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(stdin.as_bytes());
        }
        let deadline = Instant::now() + LIMIT;
        while child.try_wait().expect("wait for the tool").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("the tool's output");
        Out {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("the tool runner")
}

pub async fn kcat(args: Vec<String>, stdin: &str) -> Out {
    tool("kcat", args, stdin).await
}

/// `rivulet args…`, off the async workers.
pub async fn rivulet(args: Vec<String>) -> rivulet_testkit::process::Run {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(Path::new(RIVULET), &args, "", LIMIT)
    })
    .await
    .expect("the rivulet runner")
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

pub fn addr_of(b: &TestBroker, listener: &str) -> String {
    let (_, a) = b
        .node()
        .listener_addrs
        .iter()
        .find(|(n, _)| n == listener)
        .unwrap_or_else(|| panic!("no {listener} listener"));
    a.to_string()
}

/// Removes the cluster in the directory whatever the test's outcome.
pub struct ClusterDown(pub String);

impl Drop for ClusterDown {
    fn drop(&mut self) {
        let _ = run(
            Path::new(RIVULET),
            &["cluster", "down", "--dir", &self.0, "--timeout", "5"],
            "",
            LIMIT,
        );
    }
}

/// `rivulet cluster up --dir DIR --base-port B FLAGS…` on a free block of
/// ports (trying again when one was taken meanwhile): the base port and what
/// the command printed. Asserts it started.
pub async fn cluster_up(dir: &Path, flags: &[&str]) -> (u16, rivulet_testkit::process::Run) {
    for _ in 0..5 {
        let base = free_port_block_in(20_000..30_000, &[0, 1, 2, 100, 101, 102]);
        let mut args = strings(&["cluster", "up", "--dir", path(dir), "--base-port"]);
        args.push(base.to_string());
        args.extend(strings(flags));
        let r = rivulet(args).await;
        if r.stderr.contains("is not free") {
            continue;
        }
        assert!(r.success, "cluster up {flags:?}: {}", r.stderr);
        return (base, r);
    }
    panic!("no free base port for the cluster");
}

/// The leader of partition 0 in a `kcat -L -t TOPIC` listing.
pub fn leader_of(metadata: &str) -> Option<u16> {
    metadata
        .lines()
        .find(|l| l.trim_start().starts_with("partition 0, leader "))
        .and_then(|l| {
            l.trim_start()["partition 0, leader ".len()..]
                .split(',')
                .next()
        })
        .and_then(|n| n.trim().parse().ok())
}

/// Wait (30 s at most) until the first segment of `topic`-0 has the same,
/// non-zero size on the three nodes of the cluster in `dir`.
pub async fn wait_replicated(dir: &Path, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sizes: Vec<u64> = (1..=3)
            .map(|n| {
                let log = dir.join(format!("node-{n}/{topic}-0/00000000000000000000.log"));
                std::fs::metadata(log).map(|m| m.len()).unwrap_or(0)
            })
            .collect();
        if sizes.iter().all(|&s| s > 0 && s == sizes[0]) {
            return;
        }
        assert!(Instant::now() < deadline, "logs not replicated: {sizes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGKILL node `n` of the cluster in `dir`.
pub fn kill_node(dir: &Path, n: u16) {
    let pid =
        std::fs::read_to_string(dir.join(format!("node-{n}.pid"))).expect("the node's pid file");
    let killed = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .expect("kill");
    assert!(killed.success(), "kill -9 node {n}");
}
