//! `rivulet cluster restart --rolling`: restart the nodes of a running
//! local cluster one at a time, each with the settings it runs with now,
//! waiting until it is back in the ISR of every partition it replicates
//! before the next one goes down. Each stop is a SIGTERM, so the node's
//! controlled shutdown moves its leaderships to other in-sync replicas
//! first: clients see leader changes (answered with the new leader,
//! KIP-951), not failed requests. A node whose listener uses TLS or SASL
//! is probed the way `cluster up --tls` / `--sasl` probed it.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rivulet_protocol::dev_certs::CertFiles;
use rivulet_protocol::tls::Connector;
use rustix::process::Signal;

use super::layout::{read_state, recorded_layout, Layout, NODES};
use super::process::{
    is_running, kill, metadata, node_process, spawn_node, wait_until_serving, NodeProcess, POLL,
};
use super::{probe_connector, sasl};

/// How long one Metadata probe for the ISR may take.
const ISR_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The `--set` settings node process `pid` was started with, from
/// `/proc/<pid>/cmdline` (`rivulet broker --set k=v …`).
fn running_settings(pid: u32) -> anyhow::Result<Vec<(String, String)>> {
    let path = format!("/proc/{pid}/cmdline");
    let raw = fs::read(&path).with_context(|| format!("cannot read {path}"))?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Ok(parse_settings(&args))
}

/// The `k=v` after each `--set` in a command line.
fn parse_settings(args: &[String]) -> Vec<(String, String)> {
    args.windows(2)
        .filter(|w| w[0] == "--set")
        .filter_map(|w| w[1].split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// How to reach a node started with `settings`: its listener's security
/// protocol decides — TLS with the cluster's development certificates
/// (`DIR/certs`), SASL as the bootstrap admin (`DIR/admin.password`), as
/// `cluster up --tls` / `--sasl` made them.
pub(super) fn node_connector(
    dir: &Path,
    node: u16,
    settings: &[(String, String)],
) -> anyhow::Result<Connector> {
    let listener = settings
        .iter()
        .rev()
        .find(|(k, _)| k == "listeners")
        .map_or("", |(_, v)| v.as_str());
    // SSL:// and SASL_SSL://.
    let certs = if listener.contains("SSL://") {
        let certs = CertFiles::in_dir(&dir.join("certs"));
        if !certs.ca.exists() {
            bail!(
                "node {n} listens with TLS ({listener}) but {} holds no certificates from \
                 `cluster up --tls`: restart it with `cluster down` and `cluster up`",
                dir.join("certs").display(),
                n = node
            );
        }
        Some(certs)
    } else {
        None
    };
    let password = if listener.contains("SASL_") {
        Some(sasl::recorded_admin_password(dir).ok_or_else(|| {
            anyhow!(
                "node {node} listens with SASL ({listener}) but {} is missing: \
                 restart it with `cluster down` and `cluster up`",
                dir.join("admin.password").display()
            )
        })?)
    } else {
        None
    };
    probe_connector(certs.as_ref(), password.as_deref())
}

/// Whether every partition with a replica on `node` has it in its ISR, per
/// Metadata from the first node of `layout` that answers: the partitions
/// still waiting.
fn in_every_isr(layout: &Layout, node: u16, connector: &Connector) -> anyhow::Result<Vec<String>> {
    let mut last = None;
    let md = NODES.iter().find_map(|&n| {
        metadata(&layout.kafka_addr(n), connector, None, ISR_PROBE_TIMEOUT)
            .map_err(|e| last = Some(e))
            .ok()
    });
    let md = md.ok_or_else(|| last.unwrap_or_else(|| anyhow!("no node answered")))?;
    let id = i32::from(node);
    let mut waiting = Vec::new();
    for t in &md.topics {
        for p in &t.partitions {
            let has =
                |nodes: &[kafka_protocol::messages::BrokerId]| nodes.iter().any(|b| b.0 == id);
            if has(&p.replica_nodes) && !has(&p.isr_nodes) {
                let name = t.name.as_ref().map_or("?", |n| n.0.as_str());
                waiting.push(format!("{name}-{}", p.partition_index));
            }
        }
    }
    Ok(waiting)
}

pub(super) fn rolling(dir: &Path, timeout: Duration) -> anyhow::Result<()> {
    let layout = recorded_layout(dir)?;
    let cluster_id = read_state(&layout.dir)?
        .map(|s| s.cluster_id)
        .ok_or_else(|| anyhow!("no cluster recorded in {}", layout.dir.display()))?;
    let mut pids = Vec::new();
    for n in NODES {
        match node_process(&layout, n) {
            NodeProcess::Running(pid) => pids.push((n, pid)),
            _ => bail!(
                "node {n} is not running: a rolling restart needs the whole cluster up \
                 (`rivulet cluster up --dir {}`)",
                layout.dir.display()
            ),
        }
    }
    let exe = std::env::current_exe().context("cannot find the rivulet binary")?;
    let started_at = Instant::now();
    for (n, pid) in pids {
        let settings = running_settings(pid)?;
        let connector = node_connector(&layout.dir, n, &settings)?;
        let t0 = Instant::now();
        eprintln!("restarting node {n} (pid {pid}): SIGTERM (controlled shutdown)");
        kill(pid, Signal::TERM);
        let marker = layout.marker(n);
        while is_running(pid, &marker) && t0.elapsed() < timeout {
            std::thread::sleep(POLL);
        }
        if is_running(pid, &marker) {
            eprintln!(
                "node {n} still running {}s after SIGTERM: SIGKILL",
                timeout.as_secs()
            );
            kill(pid, Signal::KILL);
            while is_running(pid, &marker) {
                std::thread::sleep(POLL);
            }
        }
        let stopped = t0.elapsed();
        let mut started = vec![spawn_node(&exe, &layout, n, &cluster_id, &settings)?];
        let deadline = Instant::now() + timeout;
        wait_until_serving(&layout, &mut started, deadline, &connector)
            .with_context(|| format!("node {n} did not come back"))?;
        let mut waiting = in_every_isr(&layout, n, &connector);
        while !waiting.as_ref().is_ok_and(Vec::is_empty) {
            if Instant::now() >= deadline {
                bail!(
                    "node {n} is not back in every ISR after {}s: {waiting:?}",
                    timeout.as_secs()
                );
            }
            std::thread::sleep(POLL);
            waiting = in_every_isr(&layout, n, &connector);
        }
        println!(
            "node {n}: stopped in {:.1}s, serving and back in every ISR {:.1}s later (pid {})",
            stopped.as_secs_f64(),
            (t0.elapsed() - stopped).as_secs_f64(),
            started[0].pid()
        );
    }
    eprintln!(
        "rolling restart of {} nodes done in {:.1}s",
        NODES.len(),
        started_at.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_read_from_a_command_line() {
        let args: Vec<String> = [
            "/bin/rivulet",
            "broker",
            "--set",
            "node.id=2",
            "--set",
            "listeners=127.0.0.1:9093",
            "--set",
            "not-a-setting",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            parse_settings(&args),
            vec![
                ("node.id".to_string(), "2".to_string()),
                ("listeners".to_string(), "127.0.0.1:9093".to_string())
            ]
        );
    }
}
