//! Supervision of the node processes: starting a node as a background
//! `rivulet broker` process with its log and pid file, waiting until every
//! node serves, telling a live node from a stale pid file, signalling and
//! stopping nodes.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use rivulet_protocol::tls::Connector;
use rustix::process::{self, Pid, Signal};

use super::layout::{Layout, NODES};

/// Lines of a node's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 25;
/// How long one readiness probe of a node may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two rounds of readiness probes or exit checks.
pub(super) const POLL: Duration = Duration::from_millis(200);

/// What a node's pid file says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NodeProcess {
    /// No pid file.
    Absent,
    /// A pid file whose process is gone (or is someone else now).
    Stale,
    Running(u32),
}

pub(super) fn node_process(layout: &Layout, node: u16) -> NodeProcess {
    let Ok(text) = fs::read_to_string(layout.pid_file(node)) else {
        return NodeProcess::Absent;
    };
    match text.trim().parse::<u32>() {
        Ok(pid) if is_running(pid, &layout.marker(node)) => NodeProcess::Running(pid),
        _ => NodeProcess::Stale,
    }
}

/// Whether `pid` is a live (not zombie) process with `marker` among its
/// arguments. Without `/proc`, whether a null signal (`kill -0`) reaches it.
pub(super) fn is_running(pid: u32, marker: &str) -> bool {
    if pid == 0 {
        return false;
    }
    if Path::new("/proc/self/stat").exists() {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // The state letter follows the parenthesised command name.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if matches!(state, None | Some('Z' | 'X' | 'x')) {
            return false;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == marker.as_bytes())
    } else {
        to_pid(pid).is_some_and(|p| process::test_kill_process(p).is_ok())
    }
}

/// Send `signal` to `pid` (kill(2)); true when it was delivered.
pub(super) fn kill(pid: u32, signal: Signal) -> bool {
    to_pid(pid).is_some_and(|p| process::kill_process(p, signal).is_ok())
}

/// `pid` as kill(2) takes it for one process: not 0 (that would be the
/// caller's process group) and not above `i32::MAX` (negative ids name
/// process groups).
fn to_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw)
}

pub(super) fn remove_file(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("warning: cannot remove {}: {e}", path.display());
        }
    }
}

/// The last `n` lines of `path` from byte `from` on (what one run wrote).
fn log_tail(path: &Path, from: u64, n: usize) -> String {
    let mut text = String::new();
    let read = fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(from))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(())
    });
    if let Err(e) = read {
        return format!("    (cannot read {}: {e})", path.display());
    }
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return "    (the log is empty)".to_string();
    }
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A node started by `up`.
pub(super) struct Started {
    node: u16,
    child: Child,
    /// Length of its log before this start: the tail shown on failure
    /// begins here.
    log_from: u64,
}

impl Started {
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Start node `node` in its own process group (so a Ctrl-C meant for the
/// shell's foreground job does not reach it), output appended to its log,
/// and write its pid file.
pub(super) fn spawn_node(
    exe: &Path,
    layout: &Layout,
    node: u16,
    cluster_id: &str,
    extra: &[(String, String)],
) -> anyhow::Result<Started> {
    let log_path = layout.log_file(node);
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let log_from = log.seek(SeekFrom::End(0)).unwrap_or(0);
    // A generated setting that `extra` overrides is left out (the node
    // would take the last anyway), except the data dir, which marks the
    // process as this node's.
    let mut settings: Vec<String> = layout
        .settings(node, cluster_id)
        .into_iter()
        .filter(|s| {
            let key = s.split_once('=').map_or(s.as_str(), |(k, _)| k);
            key == "data.dir" || !extra.iter().any(|(k, _)| k == key)
        })
        .collect();
    settings.extend(extra.iter().map(|(k, v)| format!("{k}={v}")));
    writeln!(
        log,
        "--- rivulet cluster up: starting node {node}: {} broker --set {}",
        exe.display(),
        settings.join(" --set ")
    )
    .with_context(|| format!("cannot write {}", log_path.display()))?;
    let stderr = log
        .try_clone()
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let mut command = Command::new(exe);
    command.arg("broker");
    for s in &settings {
        command.arg("--set").arg(s);
    }
    let child = command
        // Plain text in the log file: no terminal colour codes.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start node {node} ({})", exe.display()))?;
    let mut started = Started {
        node,
        child,
        log_from,
    };
    let settings_file = layout.settings_file(node);
    let recorded = serde_json::to_vec(extra).map_err(anyhow::Error::from);
    if let Err(e) = recorded.and_then(|json| Ok(fs::write(&settings_file, json)?)) {
        let _ = started.child.kill();
        let _ = started.child.wait();
        bail!("cannot write {}: {e}", settings_file.display());
    }
    let pid_file = layout.pid_file(node);
    if let Err(e) = fs::write(&pid_file, format!("{}\n", started.child.id())) {
        let _ = started.child.kill();
        let _ = started.child.wait();
        bail!("cannot write {}: {e}", pid_file.display());
    }
    Ok(started)
}

/// The settings node `node` was last started with (what [`spawn_node`]
/// recorded), for starting it again alone.
pub(super) fn recorded_settings(
    layout: &Layout,
    node: u16,
) -> anyhow::Result<Vec<(String, String)>> {
    let path = layout.settings_file(node);
    let text = fs::read(&path).with_context(|| {
        format!(
            "cannot read node {node}'s settings ({}): stop the cluster (`rivulet cluster down --dir {}`) \
             and start it again with `cluster up`",
            path.display(),
            layout.dir.display()
        )
    })?;
    serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a settings file", path.display()))
}

/// Wait until every node's Kafka listener answers a Metadata request that
/// lists all three brokers as live (asked through `connector`: plaintext,
/// TLS and/or SASL as the listeners are); fail early when a node exits.
pub(super) fn wait_until_serving(
    layout: &Layout,
    started: &mut [Started],
    deadline: Instant,
    connector: &Connector,
) -> anyhow::Result<()> {
    let mut last: BTreeMap<u16, String> = started
        .iter()
        .map(|s| (s.node, "not asked yet".to_string()))
        .collect();
    let want: Vec<i32> = NODES.iter().map(|&n| i32::from(n)).collect();
    loop {
        for s in started.iter_mut() {
            if let Some(status) = s.child.try_wait().context("cannot check a node")? {
                bail!(
                    "node {} exited during start-up ({status}); last lines of {}:\n{}",
                    s.node,
                    layout.log_file(s.node).display(),
                    log_tail(&layout.log_file(s.node), s.log_from, LOG_TAIL_LINES)
                );
            }
        }
        for s in started.iter() {
            if last.get(&s.node).is_some_and(|l| l == "ready") {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let addr = layout.kafka_addr(s.node);
            let timeout = left.min(PROBE_TIMEOUT);
            let outcome = match probe(&addr, connector, timeout) {
                Ok(ids) if ids == want => "ready".to_string(),
                Ok(ids) => format!("lists brokers {ids:?}"),
                Err(e) => format!("no answer ({e})"),
            };
            last.insert(s.node, outcome);
        }
        if last.values().all(|l| l == "ready") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let report: Vec<String> = started
                .iter()
                .filter(|s| last.get(&s.node).is_some_and(|l| l != "ready"))
                .map(|s| {
                    format!(
                        "node {} at {}: {}; last lines of {}:\n{}",
                        s.node,
                        layout.kafka_addr(s.node),
                        last[&s.node],
                        layout.log_file(s.node).display(),
                        log_tail(&layout.log_file(s.node), s.log_from, LOG_TAIL_LINES)
                    )
                })
                .collect();
            bail!(
                "not all nodes served 3 live brokers in time\n{}",
                report.join("\n")
            );
        }
        std::thread::sleep(POLL);
    }
}

/// The sorted broker ids one node's Metadata response lists: a fresh
/// connection to `addr` each time, so `addr` itself answers.
fn probe(addr: &str, connector: &Connector, timeout: Duration) -> anyhow::Result<Vec<i32>> {
    let md = metadata(addr, connector, Some(Vec::new()), timeout)?;
    let mut ids: Vec<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// One Metadata request (v9; `topics` None asks for every topic) to
/// `addr` through the broker library's own client: the workspace's
/// librdkafka is built without TLS and SASL, the cluster's listeners may
/// use both.
pub(super) fn metadata(
    addr: &str,
    connector: &Connector,
    topics: Option<Vec<kafka_protocol::messages::metadata_request::MetadataRequestTopic>>,
    timeout: Duration,
) -> anyhow::Result<MetadataResponse> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let ask = async {
            let mut client = rivulet_protocol::wire::connect_with(connector, addr).await?;
            let md = client
                .round_trip(9, &MetadataRequest::default().with_topics(topics))
                .await?;
            anyhow::Ok(md)
        };
        tokio::time::timeout(timeout, ask)
            .await
            .map_err(|_| anyhow!("no answer within {timeout:?}"))?
    })
}

/// Kill the nodes `up` started and remove their pid files.
pub(super) fn stop_started(layout: &Layout, started: &mut Vec<Started>) {
    for s in started.iter_mut() {
        let _ = s.child.kill();
        let _ = s.child.wait();
        remove_file(&layout.pid_file(s.node));
    }
    started.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_shows_only_the_last_lines_of_this_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.log");
        fs::write(&path, "old run\n").unwrap();
        let from = fs::metadata(&path).unwrap().len();
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        for i in 0..30 {
            writeln!(f, "line {i}").unwrap();
        }
        let tail = log_tail(&path, from, 3);
        assert_eq!(tail, "    line 27\n    line 28\n    line 29");
        assert_eq!(log_tail(&path, 10_000, 3), "    (the log is empty)");
        assert!(log_tail(&dir.path().join("none"), 0, 3).contains("cannot read"));
    }

    #[test]
    fn a_pid_is_running_only_with_the_nodes_marker() {
        let me = std::process::id();
        if Path::new("/proc/self/stat").exists() {
            assert!(!is_running(me, "data.dir=/no/such/node"));
        }
        assert!(!is_running(0, "x"));
        // A pid that cannot exist (above pid_max).
        assert!(!is_running(u32::MAX - 1, "x"));
    }
}
