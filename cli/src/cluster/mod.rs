//! `rivulet cluster up|status|down`: a local 3-node cluster, one command
//! away, for development and tests.
//!
//! Every node runs in combined mode (a metadata-quorum voter and a broker),
//! as a background `rivulet broker` process of this same binary, on the
//! ports of DESIGN.md ("Ports of the local cluster") moved by
//! `--base-port P`: node k serves Kafka on P+k-1 and the controller quorum
//! on P+100+k-1 and metrics on P+200+k-1, with its data in `DIR/node-k`. The nodes get their
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
//! stranger. Signals are sent with kill(2) (`rustix::process`).
//!
//! `up` on a cluster with some nodes running starts only the others, each
//! with the settings it last ran with (`node-k.settings.json`, written at
//! every start).
//!
//! This module is the command: its arguments and what `up`, `status` and
//! `down` check and print. [`layout`] says where a cluster's nodes listen
//! and keep their files; [`process`] starts, probes and signals them.

mod layout;
mod process;
mod restart;
mod sasl;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use rivulet_protocol::dev_certs::CertFiles;
use rivulet_protocol::tls::{Connector, TlsFiles};
use rustix::process::Signal;

use layout::{
    absolute, choose_base_port, cluster_id, read_state, recorded_layout, write_state, Layout,
    State, DEFAULT_DIR, MAX_BASE_PORT, NODES,
};
use process::{
    is_running, kill, node_process, recorded_settings, remove_file, spawn_node, stop_started,
    wait_until_serving, NodeProcess, Started, POLL,
};

/// `--dir` of the cluster commands when none is given.
pub const DEFAULT_CLUSTER_DIR: &str = DEFAULT_DIR;

/// The metrics endpoints (`host:port`) of the cluster in `dir`.
pub fn metrics_addrs(dir: &Path) -> anyhow::Result<Vec<String>> {
    let layout = recorded_layout(dir)?;
    Ok(NODES.iter().map(|&n| layout.metrics_addr(n)).collect())
}

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
    /// Restart the running nodes; with --rolling one at a time, each back
    /// in every ISR before the next stops (no client request fails).
    Restart(RestartArgs),
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// One node at a time (the only mode): SIGTERM (a controlled shutdown
    /// that moves its leaderships first), start it again with the same
    /// settings, wait until it is back in every ISR.
    #[arg(long, required = true)]
    pub rolling: bool,
    /// Seconds to wait for each node to stop, and then to come back.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
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
    /// TLS on every port: the Kafka listeners (clients and replication)
    /// and the controller quorum, with development certificates from
    /// `rivulet certs generate` in DIR/certs (made if missing); prints the
    /// client settings (librdkafka property names).
    #[arg(long)]
    pub tls: bool,
    /// SASL/SCRAM on every Kafka listener (SASL_SSL with --tls, else
    /// SASL_PLAINTEXT) and for replication, with a bootstrap user `admin`
    /// (password in DIR/admin.password); prints the client settings. The
    /// controller quorum stays SSL (with --tls) or plaintext: it has no SASL.
    #[arg(long)]
    pub sasl: bool,
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
        ClusterCommand::Restart(args) => {
            restart::rolling(&args.dir.dir, Duration::from_secs(args.timeout))
        }
    }
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
    if running.len() == NODES.len() {
        bail!(
            "cluster already running in {}: {}; `rivulet cluster down --dir {}` stops it",
            layout.dir.display(),
            running.join(", "),
            layout.dir.display()
        );
    }
    if !running.is_empty() {
        // Some nodes died or were stopped: start those again as they ran.
        if args.tls || args.sasl || !args.set.is_empty() {
            bail!(
                "{} of the cluster in {} running: `rivulet cluster up --dir {}` without --tls, \
                 --sasl or --set starts the others with the settings they last ran with; to \
                 change settings, `rivulet cluster down` first",
                running.join(", "),
                layout.dir.display(),
                layout.dir.display()
            );
        }
        let cluster_id = cluster_id(recorded.as_ref(), &layout);
        return start_stopped(
            &layout,
            &cluster_id,
            &running,
            Duration::from_secs(args.timeout),
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
    write_state(&layout.dir, &state)?;
    let exe = std::env::current_exe().context("cannot find the rivulet binary")?;

    let certs = if args.tls {
        Some(rivulet_protocol::dev_certs::generate(&layout.dir.join("certs"))?.0)
    } else {
        None
    };
    let admin_password = if args.sasl {
        Some(sasl::admin_password(&layout.dir)?)
    } else {
        None
    };
    let probe = probe_connector(certs.as_ref(), admin_password.as_deref())?;

    let started_at = Instant::now();
    let mut started: Vec<Started> = Vec::new();
    for n in NODES {
        // --tls settings first, so the user's --set can still override.
        let mut settings = match &certs {
            Some(c) => layout.tls_settings(n, c),
            None => Vec::new(),
        };
        if let Some(pw) = &admin_password {
            settings.extend(sasl::node_settings(
                &layout.kafka_addr(n),
                certs.is_some(),
                pw,
            ));
        }
        settings.extend(args.set.iter().cloned());
        match spawn_node(&exe, &layout, n, &cluster_id, &settings) {
            Ok(s) => {
                eprintln!(
                    "started node {n} (pid {}): kafka {}, controller {}, metrics http://{}/metrics, log {}",
                    s.pid(),
                    layout.kafka_addr(n),
                    layout.controller_addr(n),
                    layout.metrics_addr(n),
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
    if let Err(e) = wait_until_serving(&layout, &mut started, deadline, &probe) {
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
    match (&certs, &admin_password) {
        // A properties file for librdkafka clients (kcat -F, confluent-kafka,
        // rivulet user --command-config).
        (c, Some(pw)) => print!(
            "{}",
            sasl::client_properties(&layout.bootstrap(), pw, c.as_ref().map(|c| c.ca.as_path()))
        ),
        (Some(c), None) => print!("{}", c.client_properties(&layout.bootstrap())),
        (None, None) => println!("{}", layout.bootstrap()),
    }
    Ok(())
}

/// Start the nodes of `layout` that are not running, each with the
/// settings it last ran with, while the others (`running`) keep serving;
/// done once every node serves three live brokers.
fn start_stopped(
    layout: &Layout,
    cluster_id: &str,
    running: &[String],
    timeout: Duration,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the rivulet binary")?;
    let started_at = Instant::now();
    let mut started: Vec<Started> = Vec::new();
    let mut connector = None;
    for n in NODES {
        if matches!(node_process(layout, n), NodeProcess::Running(_)) {
            continue;
        }
        remove_file(&layout.pid_file(n));
        let spawned = recorded_settings(layout, n).and_then(|settings| {
            connector = Some(restart::node_connector(&layout.dir, n, &settings)?);
            spawn_node(&exe, layout, n, cluster_id, &settings)
        });
        match spawned {
            Ok(s) => {
                eprintln!(
                    "started node {n} (pid {}) with the settings it last ran with; log {}",
                    s.pid(),
                    layout.log_file(n).display()
                );
                started.push(s);
            }
            Err(e) => {
                stop_started(layout, &mut started);
                return Err(e);
            }
        }
    }
    let Some(connector) = connector else {
        bail!("no node to start in {}", layout.dir.display());
    };
    if let Err(e) = wait_until_serving(layout, &mut started, started_at + timeout, &connector) {
        stop_started(layout, &mut started);
        return Err(e.context("the stopped nodes did not come back; stopped them again"));
    }
    eprintln!(
        "cluster complete again in {:.1}s ({} kept running)",
        started_at.elapsed().as_secs_f64(),
        running.join(", ")
    );
    println!("{}", layout.bootstrap());
    Ok(())
}

/// How the cluster's own probes reach its Kafka listeners: with the
/// development client certificate and CA of `certs` under `--tls`, as the
/// bootstrap admin under `--sasl` (SASL_SSL with both).
pub(super) fn probe_connector(
    certs: Option<&CertFiles>,
    admin_password: Option<&str>,
) -> anyhow::Result<Connector> {
    let connector = match certs {
        Some(c) => Connector::tls(
            TlsFiles {
                certificate: Some(c.client_cert.clone()),
                key: Some(c.client_key.clone()),
                ca: Some(c.ca.clone()),
            }
            .client_config()?,
        ),
        None => Connector::plaintext(),
    };
    Ok(match admin_password {
        Some(pw) => connector.with_sasl(sasl::admin_credentials(pw)),
        None => connector,
    })
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
            "node {n}: {state}, kafka {}, controller {}, metrics http://{}/metrics",
            layout.kafka_addr(n),
            layout.controller_addr(n),
            layout.metrics_addr(n)
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
                if kill(pid, Signal::TERM) {
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
        kill(pid, Signal::KILL);
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
