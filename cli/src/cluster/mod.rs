//! `rivulet cluster up|status|down`: a local 3-node cluster, one command
//! away, for development and tests.
//!
//! Every node runs in combined mode (a metadata-quorum voter and a broker),
//! as a background `rivulet broker` process of this same binary, on the
//! ports of DESIGN.md ("Ports of the local cluster") moved by
//! `--base-port P`: node k serves Kafka on P+k-1 and the controller quorum
//! on P+100+k-1, with its data in `DIR/node-k`. The nodes get their
//! settings as `--set` flags (the same settings as
//! `config/cluster/node-k.toml`), so the command works from any directory.
//!
//! `DIR` keeps what the other commands need: `node-k.pid` (the pid of a
//! node started by `up`, removed by `down`), `node-k.log` (its stdout and
//! stderr, appended to) and `cluster.properties` (the base port and cluster
//! id the cluster was created with: the quorum's log records the controller
//! addresses, so a cluster keeps its ports for life).
//!
//! A pid file counts as a running node only while that pid is alive, not a
//! zombie, and (where `/proc` exists) still runs with this node's data dir,
//! so a stale file whose pid was reused never makes `down` signal a
//! stranger. Signals go through the system `kill` command.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use rdkafka::consumer::Consumer;

use super::client;

/// Node ids of the cluster: 1, 2 and 3.
pub const NODES: [u16; 3] = [1, 2, 3];
/// `--dir` when none is given.
pub const DEFAULT_DIR: &str = "./rivulet-cluster";
/// Kafka port of node 1 when the cluster has none recorded.
pub const DEFAULT_BASE_PORT: u16 = 9092;
/// Controller ports sit this far above the Kafka ports (9092 → 9192).
pub const CONTROLLER_PORT_OFFSET: u16 = 100;
/// The cluster id every node of a local cluster shares; the same as in
/// `config/cluster/node-k.toml`, so nodes started by hand and by `up` can
/// use the same data dirs.
pub const LOCAL_CLUSTER_ID: &str = "rivulet-local-cluster";
/// Highest `--base-port`: the last controller port must fit in a u16.
const MAX_BASE_PORT: u16 = u16::MAX - CONTROLLER_PORT_OFFSET - (NODES.len() as u16 - 1);
const STATE_FILE: &str = "cluster.properties";
/// Lines of a node's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 25;
/// How long one readiness probe of a node may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two rounds of readiness probes or exit checks.
const POLL: Duration = Duration::from_millis(200);
/// How long `down` waits after SIGKILL before giving up on a node.
const KILL_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start 3 nodes (controller + broker each) in the background; print
    /// the bootstrap servers once all serve.
    Up(UpArgs),
    /// Show which nodes are running, with their pids and ports.
    Status(DirArgs),
    /// Stop the nodes: SIGTERM, then SIGKILL after --timeout.
    Down(DownArgs),
}

#[derive(Debug, Args)]
pub struct DirArgs {
    /// Directory of the nodes' data, logs and pid files.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Kafka port of node 1: node k listens on P+k-1, its controller on
    /// P+100+k-1 [default: 9092, or the port DIR's cluster was created with].
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u16).range(1..=MAX_BASE_PORT as i64))]
    pub base_port: Option<u16>,
    /// A setting for every node, applied after the generated ones, e.g.
    /// --set log.retention.ms=3600000 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = super::parse_key_value)]
    pub set: Vec<(String, String)>,
    /// Seconds to wait for all nodes to serve.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Seconds to wait for a clean shutdown before SIGKILL.
    #[arg(long, value_name = "SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub timeout: u64,
}

/// Run a cluster command. `misplaced` says broker or client flags were
/// given before `cluster`, where they mean nothing.
pub fn run(command: ClusterCommand, misplaced: bool) -> anyhow::Result<()> {
    if misplaced {
        bail!(
            "--config, --set and --bootstrap-server do not apply to `rivulet cluster`; \
             settings for the nodes go after `cluster up` (--set KEY=VALUE)"
        );
    }
    match command {
        ClusterCommand::Up(args) => up(args),
        ClusterCommand::Status(args) => status(&args.dir),
        ClusterCommand::Down(args) => down(&args.dir.dir, Duration::from_secs(args.timeout)),
    }
}

/// Where everything of one cluster lives: its directory (absolute, so the
/// nodes and the pid checks agree whatever the working directory) and its
/// ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub dir: PathBuf,
    pub base_port: u16,
}

impl Layout {
    pub fn kafka_addr(&self, node: u16) -> String {
        format!("127.0.0.1:{}", self.port(0, node))
    }

    pub fn controller_addr(&self, node: u16) -> String {
        format!("127.0.0.1:{}", self.port(CONTROLLER_PORT_OFFSET, node))
    }

    /// Port `offset` + node - 1 above the base (u32: no overflow whatever
    /// the base; clap keeps the base low enough for a valid port).
    fn port(&self, offset: u16, node: u16) -> u32 {
        u32::from(self.base_port) + u32::from(offset) + u32::from(node) - 1
    }

    /// `controller.quorum.voters`: `1@127.0.0.1:9192,2@…,3@…`.
    pub fn voters(&self) -> String {
        NODES
            .iter()
            .map(|&n| format!("{n}@{}", self.controller_addr(n)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The clients' `bootstrap.servers`: every node's Kafka listener.
    pub fn bootstrap(&self) -> String {
        NODES
            .iter()
            .map(|&n| self.kafka_addr(n))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn data_dir(&self, node: u16) -> PathBuf {
        self.dir.join(format!("node-{node}"))
    }

    pub fn pid_file(&self, node: u16) -> PathBuf {
        self.dir.join(format!("node-{node}.pid"))
    }

    pub fn log_file(&self, node: u16) -> PathBuf {
        self.dir.join(format!("node-{node}.log"))
    }

    /// The argument that marks node `node`'s process (its data dir), for
    /// telling it apart from whatever else may have its old pid.
    fn marker(&self, node: u16) -> String {
        format!("data.dir={}", self.data_dir(node).display())
    }

    /// The settings of node `node`, as `--set` values: those of
    /// `config/cluster/node-k.toml` with this layout's ports and dirs.
    pub fn settings(&self, node: u16, cluster_id: &str) -> Vec<String> {
        vec![
            format!("node.id={node}"),
            format!("listeners={}", self.kafka_addr(node)),
            format!("controller.listener={}", self.controller_addr(node)),
            format!("controller.quorum.voters={}", self.voters()),
            format!("cluster.id={cluster_id}"),
            self.marker(node),
            "default.replication.factor=3".to_string(),
            "min.insync.replicas=2".to_string(),
            "offsets.topic.replication.factor=3".to_string(),
        ]
    }

    /// Every port the cluster listens on, with what it is for.
    fn ports(&self) -> Vec<(String, String)> {
        NODES
            .iter()
            .flat_map(|&n| {
                [
                    (self.kafka_addr(n), format!("node {n}'s Kafka listener")),
                    (self.controller_addr(n), format!("node {n}'s controller")),
                ]
            })
            .collect()
    }
}

/// `cluster.properties`: what a cluster was created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub base_port: u16,
    pub cluster_id: String,
}

impl State {
    pub fn render(&self) -> String {
        format!(
            "# Written by `rivulet cluster up`: the ports and id this cluster was created with.\n\
             base.port={}\ncluster.id={}\n",
            self.base_port, self.cluster_id
        )
    }

    /// Parse the file; `None` when a key is missing or bad.
    pub fn parse(text: &str) -> Option<State> {
        let props = properties(text);
        Some(State {
            base_port: props
                .get("base.port")?
                .parse()
                .ok()
                .filter(|p| (1..=MAX_BASE_PORT).contains(p))?,
            cluster_id: props.get("cluster.id").filter(|s| !s.is_empty())?.clone(),
        })
    }
}

/// `key=value` lines, `#` comments skipped.
fn properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The base port to use: the one asked for, else the recorded one, else
/// the default. A cluster whose quorum has data (`has_quorum_data`) keeps
/// its ports: its Raft log names the controller addresses.
pub fn choose_base_port(
    asked: Option<u16>,
    recorded: Option<&State>,
    has_quorum_data: bool,
    dir: &Path,
) -> anyhow::Result<u16> {
    match (asked, recorded) {
        (Some(p), Some(s)) if p != s.base_port && has_quorum_data => bail!(
            "{} holds a cluster created with --base-port {}; its metadata quorum \
             records those ports. Use --base-port {} or another --dir",
            dir.display(),
            s.base_port,
            s.base_port
        ),
        (Some(p), _) => Ok(p),
        (None, Some(s)) => Ok(s.base_port),
        (None, None) => Ok(DEFAULT_BASE_PORT),
    }
}

fn absolute(dir: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))
}

fn read_state(dir: &Path) -> anyhow::Result<Option<State>> {
    let path = dir.join(STATE_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => State::parse(&text).map(Some).ok_or_else(|| {
            anyhow!(
                "{} is damaged: expected base.port and cluster.id",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// The layout of the cluster in `dir` as recorded (default ports if none).
fn recorded_layout(dir: &Path) -> anyhow::Result<Layout> {
    let dir = absolute(dir)?;
    let base_port = read_state(&dir)?.map_or(DEFAULT_BASE_PORT, |s| s.base_port);
    Ok(Layout { dir, base_port })
}

/// What a node's pid file says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeProcess {
    /// No pid file.
    Absent,
    /// A pid file whose process is gone (or is someone else now).
    Stale,
    Running(u32),
}

fn node_process(layout: &Layout, node: u16) -> NodeProcess {
    let Ok(text) = fs::read_to_string(layout.pid_file(node)) else {
        return NodeProcess::Absent;
    };
    match text.trim().parse::<u32>() {
        Ok(pid) if is_running(pid, &layout.marker(node)) => NodeProcess::Running(pid),
        _ => NodeProcess::Stale,
    }
}

/// Whether `pid` is a live (not zombie) process with `marker` among its
/// arguments. Without `/proc`, whether `kill -0` reaches it.
fn is_running(pid: u32, marker: &str) -> bool {
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
        kill("-0", pid)
    }
}

/// `kill SIGNAL PID` through the system command; true on success.
fn kill(signal: &str, pid: u32) -> bool {
    Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn remove_file(path: &Path) {
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

/// The cluster id for `dir`: recorded, else the one a node's data dir
/// already holds (nodes run by hand), else [`LOCAL_CLUSTER_ID`].
fn cluster_id(recorded: Option<&State>, layout: &Layout) -> String {
    if let Some(s) = recorded {
        return s.cluster_id.clone();
    }
    NODES
        .iter()
        .filter_map(|&n| {
            let text = fs::read_to_string(layout.data_dir(n).join("meta.properties")).ok()?;
            properties(&text)
                .get("cluster.id")
                .filter(|s| !s.is_empty())
                .cloned()
        })
        .next()
        .unwrap_or_else(|| LOCAL_CLUSTER_ID.to_string())
}

/// A node started by `up`.
struct Started {
    node: u16,
    child: Child,
    /// Length of its log before this start: the tail shown on failure
    /// begins here.
    log_from: u64,
}

fn up(args: UpArgs) -> anyhow::Result<()> {
    let dir = absolute(&args.dir.dir)?;
    let recorded = read_state(&dir)?;
    let has_quorum_data = NODES.iter().any(|&n| {
        dir.join(format!("node-{n}"))
            .join(rivulet_controller::node::METADATA_DIR)
            .exists()
    });
    let base_port = choose_base_port(args.base_port, recorded.as_ref(), has_quorum_data, &dir)?;
    let layout = Layout { dir, base_port };

    let running: Vec<String> = NODES
        .iter()
        .filter_map(|&n| match node_process(&layout, n) {
            NodeProcess::Running(pid) => Some(format!("node {n} (pid {pid})")),
            _ => None,
        })
        .collect();
    if !running.is_empty() {
        bail!(
            "cluster already running in {}: {}; `rivulet cluster down --dir {}` stops it",
            layout.dir.display(),
            running.join(", "),
            layout.dir.display()
        );
    }
    for n in NODES {
        remove_file(&layout.pid_file(n));
    }
    for (addr, what) in layout.ports() {
        TcpListener::bind(&addr)
            .map_err(|e| anyhow!("{addr} ({what}) is not free: {e}; choose another --base-port"))?;
    }

    let cluster_id = cluster_id(recorded.as_ref(), &layout);
    fs::create_dir_all(&layout.dir)
        .with_context(|| format!("cannot create {}", layout.dir.display()))?;
    let state = State {
        base_port,
        cluster_id: cluster_id.clone(),
    };
    fs::write(layout.dir.join(STATE_FILE), state.render())
        .with_context(|| format!("cannot write {}", layout.dir.join(STATE_FILE).display()))?;
    let exe = std::env::current_exe().context("cannot find the rivulet binary")?;

    let started_at = Instant::now();
    let mut started: Vec<Started> = Vec::new();
    for n in NODES {
        match spawn_node(&exe, &layout, n, &cluster_id, &args.set) {
            Ok(s) => {
                eprintln!(
                    "started node {n} (pid {}): kafka {}, controller {}, log {}",
                    s.child.id(),
                    layout.kafka_addr(n),
                    layout.controller_addr(n),
                    layout.log_file(n).display()
                );
                started.push(s);
            }
            Err(e) => {
                stop_started(&layout, &mut started);
                return Err(e);
            }
        }
    }

    let deadline = started_at + Duration::from_secs(args.timeout);
    if let Err(e) = wait_until_serving(&layout, &mut started, deadline) {
        stop_started(&layout, &mut started);
        return Err(e.context(format!(
            "the cluster in {} did not come up; stopped the nodes started",
            layout.dir.display()
        )));
    }
    eprintln!(
        "cluster up in {:.1}s: 3 brokers serving; `rivulet cluster down --dir {}` stops it",
        started_at.elapsed().as_secs_f64(),
        layout.dir.display()
    );
    println!("{}", layout.bootstrap());
    Ok(())
}

/// Start node `node` in its own process group (so a Ctrl-C meant for the
/// shell's foreground job does not reach it), output appended to its log,
/// and write its pid file.
fn spawn_node(
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
    let mut settings = layout.settings(node, cluster_id);
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
    let pid_file = layout.pid_file(node);
    if let Err(e) = fs::write(&pid_file, format!("{}\n", started.child.id())) {
        let _ = started.child.kill();
        let _ = started.child.wait();
        bail!("cannot write {}: {e}", pid_file.display());
    }
    Ok(started)
}

/// Wait until every node's Kafka listener answers a Metadata request that
/// lists all three brokers as live; fail early when a node exits.
fn wait_until_serving(
    layout: &Layout,
    started: &mut [Started],
    deadline: Instant,
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
            let outcome = match probe(&layout.kafka_addr(s.node), left.min(PROBE_TIMEOUT)) {
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

/// The sorted broker ids one node's Metadata response lists. A fresh
/// client each time: it knows only `addr`, so `addr` itself answers.
fn probe(addr: &str, timeout: Duration) -> anyhow::Result<Vec<i32>> {
    let consumer = client::metadata_client(addr)?;
    let md = consumer.fetch_metadata(None, timeout).map_err(|e| {
        let why = consumer.context().last_error.get();
        anyhow!("{}", why.unwrap_or_else(|| e.to_string()))
    })?;
    let mut ids: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Kill the nodes `up` started and remove their pid files.
fn stop_started(layout: &Layout, started: &mut Vec<Started>) {
    for s in started.iter_mut() {
        let _ = s.child.kill();
        let _ = s.child.wait();
        remove_file(&layout.pid_file(s.node));
    }
    started.clear();
}

fn status(dir: &Path) -> anyhow::Result<()> {
    let layout = recorded_layout(dir)?;
    let mut running = 0;
    for n in NODES {
        let state = match node_process(&layout, n) {
            NodeProcess::Running(pid) => {
                running += 1;
                format!("running (pid {pid})")
            }
            NodeProcess::Stale => "not running (stale pid file)".to_string(),
            NodeProcess::Absent => "not running".to_string(),
        };
        println!(
            "node {n}: {state}, kafka {}, controller {}",
            layout.kafka_addr(n),
            layout.controller_addr(n)
        );
    }
    print!(
        "{running} of {} nodes running in {}",
        NODES.len(),
        layout.dir.display()
    );
    if running == NODES.len() {
        print!("; bootstrap servers {}", layout.bootstrap());
    }
    println!();
    Ok(())
}

fn down(dir: &Path, timeout: Duration) -> anyhow::Result<()> {
    let layout = recorded_layout(dir)?;
    let mut stopping: Vec<(u16, u32)> = Vec::new();
    for n in NODES {
        match node_process(&layout, n) {
            NodeProcess::Running(pid) => {
                if kill("-TERM", pid) {
                    eprintln!("stopping node {n} (pid {pid})");
                }
                stopping.push((n, pid));
            }
            NodeProcess::Stale => remove_file(&layout.pid_file(n)),
            NodeProcess::Absent => {}
        }
    }
    if stopping.is_empty() {
        eprintln!("no cluster running in {}", layout.dir.display());
        return Ok(());
    }
    let started = Instant::now();
    let gone = |&(n, pid): &(u16, u32)| !is_running(pid, &layout.marker(n));
    while !stopping.iter().all(gone) && started.elapsed() < timeout {
        std::thread::sleep(POLL);
    }
    let mut killed = Vec::new();
    for &(n, pid) in stopping.iter().filter(|p| !gone(p)) {
        kill("-KILL", pid);
        killed.push(n);
    }
    let kill_deadline = Instant::now() + KILL_WAIT;
    while !stopping.iter().all(gone) && Instant::now() < kill_deadline {
        std::thread::sleep(POLL);
    }
    let mut survivors = Vec::new();
    for &(n, pid) in &stopping {
        if !gone(&(n, pid)) {
            survivors.push(format!("node {n} (pid {pid})"));
            continue;
        }
        remove_file(&layout.pid_file(n));
        if killed.contains(&n) {
            println!(
                "killed node {n} (pid {pid}): still running {}s after SIGTERM",
                timeout.as_secs()
            );
        } else {
            println!("stopped node {n} (pid {pid})");
        }
    }
    if !survivors.is_empty() {
        bail!("still running after SIGKILL: {}", survivors.join(", "));
    }
    eprintln!(
        "cluster in {} stopped in {:.1}s",
        layout.dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(base_port: u16) -> Layout {
        Layout {
            dir: PathBuf::from("/tmp/c"),
            base_port,
        }
    }

    #[test]
    fn default_layout_uses_the_design_ports() {
        let l = layout(DEFAULT_BASE_PORT);
        assert_eq!(
            l.bootstrap(),
            "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
        );
        assert_eq!(l.controller_addr(1), "127.0.0.1:9192");
        assert_eq!(l.controller_addr(3), "127.0.0.1:9194");
        assert_eq!(
            l.voters(),
            "1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194"
        );
        assert_eq!(
            l.settings(2, LOCAL_CLUSTER_ID),
            [
                "node.id=2",
                "listeners=127.0.0.1:9093",
                "controller.listener=127.0.0.1:9193",
                "controller.quorum.voters=1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194",
                "cluster.id=rivulet-local-cluster",
                "data.dir=/tmp/c/node-2",
                "default.replication.factor=3",
                "min.insync.replicas=2",
                "offsets.topic.replication.factor=3",
            ]
        );
        assert_eq!(l.pid_file(2), PathBuf::from("/tmp/c/node-2.pid"));
        assert_eq!(l.log_file(3), PathBuf::from("/tmp/c/node-3.log"));
    }

    #[test]
    fn base_port_moves_every_port_and_the_highest_fits() {
        let l = layout(20000);
        assert_eq!(l.kafka_addr(3), "127.0.0.1:20002");
        assert_eq!(l.controller_addr(1), "127.0.0.1:20100");
        let top = layout(MAX_BASE_PORT);
        assert_eq!(top.controller_addr(3), "127.0.0.1:65535");
        assert_eq!(top.ports().len(), 6);
    }

    #[test]
    fn a_cluster_keeps_the_base_port_it_was_created_with() {
        let s = State {
            base_port: 20000,
            cluster_id: "abc".into(),
        };
        let dir = Path::new("/tmp/c");
        assert_eq!(choose_base_port(None, None, false, dir).unwrap(), 9092);
        assert_eq!(choose_base_port(Some(1234), None, true, dir).unwrap(), 1234);
        assert_eq!(choose_base_port(None, Some(&s), true, dir).unwrap(), 20000);
        assert_eq!(
            choose_base_port(Some(20000), Some(&s), true, dir).unwrap(),
            20000
        );
        let e = choose_base_port(Some(9092), Some(&s), true, dir).unwrap_err();
        assert!(e.to_string().contains("--base-port 20000"), "{e}");
        // Nothing written by a quorum yet (its nodes never started): free
        // to move.
        assert_eq!(
            choose_base_port(Some(9092), Some(&s), false, dir).unwrap(),
            9092
        );
    }

    #[test]
    fn state_file_round_trips_and_rejects_damage() {
        let s = State {
            base_port: 9092,
            cluster_id: LOCAL_CLUSTER_ID.into(),
        };
        assert_eq!(State::parse(&s.render()), Some(s));
        assert_eq!(State::parse("base.port=x\ncluster.id=a\n"), None);
        assert_eq!(State::parse("base.port=1\ncluster.id=\n"), None);
        assert_eq!(State::parse("cluster.id=a\n"), None);
        assert_eq!(State::parse("base.port=65500\ncluster.id=a\n"), None);
    }

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
