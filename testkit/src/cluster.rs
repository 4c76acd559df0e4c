//! A cluster of `rivulet` node processes on loopback, each a voter of the
//! metadata quorum and a broker ("combined mode"), whose nodes can be
//! SIGKILLed, SIGTERMed and restarted on the same ports and data.
//!
//! Node `id` (1..=n) keeps its ports for the cluster's life. They lie below
//! Linux's ephemeral range either way (see [`crate::ports`]), so a killed
//! node's ports are not handed to some other socket before it comes back;
//! [`ClusterPorts::Block`] lays them out predictably.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tempfile::TempDir;

use crate::ports::{free_port_block, free_ports};
use crate::process::{BrokerProcess, NodeSpec};

/// How the nodes' ports are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterPorts {
    /// Any free ports ([`free_ports`]).
    Free,
    /// A block from [`free_port_block`]: node `k` listens on `base + k - 1`,
    /// its controller on `base + 100 + k - 1`, its metrics on
    /// `base + 200 + k - 1`.
    Block,
}

/// What cluster to start.
pub struct ClusterSpec {
    pub bin: PathBuf,
    pub nodes: usize,
    pub ports: ClusterPorts,
    /// `cluster.id`, set when there is more than one node.
    pub cluster_id: String,
    /// Holds `node-<id>/` data dirs (and the logs unless `log_dir` is set).
    pub root: TempDir,
    /// Where `<log_prefix>node-<id>.log` files go; `root` if `None`.
    pub log_dir: Option<PathBuf>,
    pub log_prefix: String,
    /// `--set` settings for every node, after the ones the cluster sets.
    pub settings: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    /// How long [`ProcessCluster::start`] waits for every broker.
    pub timeout: Duration,
}

impl ClusterSpec {
    /// `nodes` nodes of `bin` on free ports, data in a fresh temp dir, a
    /// 60 s start timeout.
    pub fn new(bin: impl Into<PathBuf>, nodes: usize) -> ClusterSpec {
        ClusterSpec {
            bin: bin.into(),
            nodes,
            ports: ClusterPorts::Free,
            cluster_id: "rivulet-test".to_string(),
            root: crate::dirs::temp_dir(),
            log_dir: None,
            log_prefix: String::new(),
            settings: Vec::new(),
            env: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }

    pub fn ports(mut self, ports: ClusterPorts) -> ClusterSpec {
        self.ports = ports;
        self
    }

    pub fn cluster_id(mut self, id: impl Into<String>) -> ClusterSpec {
        self.cluster_id = id.into();
        self
    }

    pub fn root(mut self, root: TempDir) -> ClusterSpec {
        self.root = root;
        self
    }

    /// Logs in `dir`, named `<prefix>node-<id>.log`.
    pub fn logs(mut self, dir: impl Into<PathBuf>, prefix: impl Into<String>) -> ClusterSpec {
        self.log_dir = Some(dir.into());
        self.log_prefix = prefix.into();
        self
    }

    /// One more `--set key=value` for every node.
    pub fn set(mut self, key: impl Into<String>, value: impl ToString) -> ClusterSpec {
        self.settings.push((key.into(), value.to_string()));
        self
    }

    /// The settings in environment variable `var`, `k=v;k=v` (none when
    /// unset); panics on an entry that is not `key=value`.
    pub fn set_from_env(mut self, var: &str) -> ClusterSpec {
        for kv in std::env::var(var)
            .unwrap_or_default()
            .split(';')
            .filter(|kv| !kv.trim().is_empty())
        {
            let (k, v) = kv
                .trim()
                .split_once('=')
                .unwrap_or_else(|| panic!("{var}: '{kv}' is not key=value"));
            self = self.set(k, v);
        }
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> ClusterSpec {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> ClusterSpec {
        self.timeout = timeout;
        self
    }
}

/// The running cluster. Dropping it kills every node; if the thread is
/// panicking (a failing test), the tail of each node's log is printed
/// first, and with `RIVULET_KEEP_FAILED` set the data and logs are kept.
pub struct ProcessCluster {
    root: TempDir,
    nodes: Vec<BrokerProcess>,
}

impl ProcessCluster {
    /// Start every node and wait until Metadata lists all of them as live
    /// brokers (registered and unfenced).
    pub fn start(spec: ClusterSpec) -> ProcessCluster {
        let timeout = spec.timeout;
        let c = ProcessCluster::spawn(spec);
        c.wait_brokers(c.nodes.len(), timeout);
        c
    }

    /// Start every node; return at once.
    pub fn spawn(spec: ClusterSpec) -> ProcessCluster {
        let n = spec.nodes;
        let ports: Vec<(u16, u16, u16)> = match spec.ports {
            ClusterPorts::Free => {
                let p = free_ports(3 * n);
                (0..n)
                    .map(|i| (p[3 * i], p[3 * i + 1], p[3 * i + 2]))
                    .collect()
            }
            ClusterPorts::Block => {
                let offsets: Vec<u16> = (0..n as u16).flat_map(|i| [i, 100 + i, 200 + i]).collect();
                let base = free_port_block(&offsets);
                (0..n as u16)
                    .map(|i| (base + i, base + 100 + i, base + 200 + i))
                    .collect()
            }
        };
        let voters: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c, _))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect();
        let log_dir = spec
            .log_dir
            .clone()
            .unwrap_or_else(|| spec.root.path().to_path_buf());
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, (port, cport, mport))| {
                let id = i + 1;
                let mut node = NodeSpec::new(
                    &spec.bin,
                    spec.root.path().join(format!("node-{id}")),
                    log_dir.join(format!("{}node-{id}.log", spec.log_prefix)),
                )
                .ports(*port, *cport)
                .metrics_port(*mport)
                .set("node.id", id);
                if n > 1 {
                    node = node
                        .set("controller.quorum.voters", voters.join(","))
                        .set("cluster.id", &spec.cluster_id);
                }
                node.settings.extend(spec.settings.iter().cloned());
                node.env.extend(spec.env.iter().cloned());
                BrokerProcess::spawn(node)
            })
            .collect();
        ProcessCluster {
            root: spec.root,
            nodes,
        }
    }

    /// Wait until Metadata (through any node) lists at least `n` brokers.
    pub fn wait_brokers(&self, n: usize, timeout: Duration) {
        crate::kafka::wait_for_brokers(&self.bootstrap(), n, timeout);
    }

    /// Node ids: 1..=n.
    pub fn ids(&self) -> std::ops::RangeInclusive<i32> {
        1..=self.nodes.len() as i32
    }

    pub fn node(&self, id: i32) -> &BrokerProcess {
        &self.nodes[id as usize - 1]
    }

    pub fn node_mut(&mut self, id: i32) -> &mut BrokerProcess {
        &mut self.nodes[id as usize - 1]
    }

    /// Where the node data dirs live.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn port(&self, id: i32) -> u16 {
        self.node(id).port()
    }

    pub fn addr(&self, id: i32) -> String {
        self.node(id).bootstrap()
    }

    /// Every node's address, running or not.
    pub fn bootstrap(&self) -> String {
        self.ids()
            .map(|id| self.addr(id))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn data_dir(&self, id: i32) -> &Path {
        self.node(id).data_dir()
    }

    pub fn log_path(&self, id: i32) -> &Path {
        self.node(id).log_path()
    }

    pub fn tail(&self, id: i32, lines: usize) -> String {
        self.node(id).log_tail(lines)
    }

    pub fn running(&self, id: i32) -> bool {
        self.node(id).running()
    }

    /// The ids of the nodes not killed or terminated.
    pub fn live(&self) -> Vec<i32> {
        self.ids().filter(|id| self.running(*id)).collect()
    }

    /// Pids of the running nodes.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter(|n| n.running())
            .map(BrokerProcess::pid)
            .collect()
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill(&mut self, id: i32) {
        assert!(self.running(id), "node {id} runs");
        self.node_mut(id).kill();
    }

    /// SIGTERM node `id` and wait up to `timeout` for it to exit; panics
    /// unless it exits, successfully, in time.
    pub fn terminate(&mut self, id: i32, timeout: Duration) {
        match self.node_mut(id).terminate(timeout) {
            Some(status) => assert!(status.success(), "node {id} exited with {status}"),
            None => panic!("node {id} ignored SIGTERM for {timeout:?}"),
        }
    }

    /// [`terminate`](Self::terminate) without judging the exit.
    pub fn terminate_status(&mut self, id: i32, timeout: Duration) -> Option<ExitStatus> {
        self.node_mut(id).terminate(timeout)
    }

    /// Start node `id` again on its ports and data.
    pub fn restart(&mut self, id: i32) {
        self.node_mut(id).start();
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for id in self.ids() {
                eprintln!("---- node {id} log tail ----\n{}", self.tail(id, 40));
            }
            if std::env::var_os("RIVULET_KEEP_FAILED").is_some() {
                self.root.disable_cleanup(true);
                eprintln!("kept {}", self.root.path().display());
            }
        }
        for n in &mut self.nodes {
            n.kill();
        }
    }
}
