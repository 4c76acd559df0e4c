//! What a local cluster is, apart from running it: its node ids, ports
//! and directories ([`Layout`]), the `--set` settings each node gets, and
//! `cluster.properties` ([`State`]), the base port and cluster id a cluster
//! keeps for life. Values, and the small files that record them; nothing
//! here starts or signals a process.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

/// Node ids of the cluster: 1, 2 and 3.
pub const NODES: [u16; 3] = [1, 2, 3];
/// `--dir` when none is given.
pub const DEFAULT_DIR: &str = "./rivulet-cluster";
/// Kafka port of node 1 when the cluster has none recorded.
pub const DEFAULT_BASE_PORT: u16 = 9092;
/// Controller ports sit this far above the Kafka ports (9092 → 9192).
pub const CONTROLLER_PORT_OFFSET: u16 = 100;
/// Metrics and health HTTP ports sit this far above the Kafka ports
/// (9092 → 9292, DESIGN.md "Ports of the local cluster").
pub const METRICS_PORT_OFFSET: u16 = 200;
/// The cluster id every node of a local cluster shares; the same as in
/// `config/cluster/node-k.toml`, so nodes started by hand and by `up` can
/// use the same data dirs.
pub const LOCAL_CLUSTER_ID: &str = "rivulet-local-cluster";
/// Highest `--base-port`: the last controller port must fit in a u16.
pub(super) const MAX_BASE_PORT: u16 = u16::MAX - METRICS_PORT_OFFSET - (NODES.len() as u16 - 1);
const STATE_FILE: &str = "cluster.properties";

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

    /// Node `node`'s metrics and health endpoint (`/metrics`, `/health`,
    /// `/ready`).
    pub fn metrics_addr(&self, node: u16) -> String {
        format!("127.0.0.1:{}", self.port(METRICS_PORT_OFFSET, node))
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

    /// The settings node `node` was last started with beyond the generated
    /// ones (JSON pairs), so `up` can start it again alone.
    pub(super) fn settings_file(&self, node: u16) -> PathBuf {
        self.dir.join(format!("node-{node}.settings.json"))
    }

    /// The argument that marks node `node`'s process (its data dir), for
    /// telling it apart from whatever else may have its old pid.
    pub(super) fn marker(&self, node: u16) -> String {
        format!("data.dir={}", self.data_dir(node).display())
    }

    /// The settings of node `node`, as `--set` values: those of
    /// `config/cluster/node-k.toml` with this layout's ports and dirs.
    pub fn settings(&self, node: u16, cluster_id: &str) -> Vec<String> {
        vec![
            format!("node.id={node}"),
            format!("listeners={}", self.kafka_addr(node)),
            format!("controller.listener={}", self.controller_addr(node)),
            format!("metrics.listener={}", self.metrics_addr(node)),
            format!("controller.quorum.voters={}", self.voters()),
            format!("cluster.id={cluster_id}"),
            self.marker(node),
            "default.replication.factor=3".to_string(),
            "min.insync.replicas=2".to_string(),
            "offsets.topic.replication.factor=3".to_string(),
        ]
    }

    /// The settings `cluster up --tls` adds for node `node`: SSL on its
    /// Kafka listener (clients and replication) and its controller
    /// listener, with the node certificate and the CA of `certs`; the node
    /// certificate's principal as the super user, so that with
    /// `--set authorizer.class.name=standard` the nodes still replicate.
    pub fn tls_settings(
        &self,
        node: u16,
        certs: &rivulet_protocol::dev_certs::CertFiles,
    ) -> Vec<(String, String)> {
        let mut s = vec![
            (
                "listeners".to_string(),
                format!("SSL://{}", self.kafka_addr(node)),
            ),
            (
                "controller.listener".to_string(),
                format!("SSL://{}", self.controller_addr(node)),
            ),
        ];
        s.extend(certs.broker_settings());
        s.push((
            "super.users".to_string(),
            rivulet_protocol::dev_certs::NODE_PRINCIPAL.to_string(),
        ));
        s
    }

    /// Every port the cluster listens on, with what it is for.
    pub(super) fn ports(&self) -> Vec<(String, String)> {
        NODES
            .iter()
            .flat_map(|&n| {
                [
                    (self.kafka_addr(n), format!("node {n}'s Kafka listener")),
                    (self.controller_addr(n), format!("node {n}'s controller")),
                    (self.metrics_addr(n), format!("node {n}'s metrics endpoint")),
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

pub(super) fn absolute(dir: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))
}

pub(super) fn read_state(dir: &Path) -> anyhow::Result<Option<State>> {
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

/// Write `cluster.properties` into `dir`.
pub(super) fn write_state(dir: &Path, state: &State) -> anyhow::Result<()> {
    let path = dir.join(STATE_FILE);
    fs::write(&path, state.render()).with_context(|| format!("cannot write {}", path.display()))
}

/// The layout of the cluster in `dir` as recorded (default ports if none).
pub(super) fn recorded_layout(dir: &Path) -> anyhow::Result<Layout> {
    let dir = absolute(dir)?;
    let base_port = read_state(&dir)?.map_or(DEFAULT_BASE_PORT, |s| s.base_port);
    Ok(Layout { dir, base_port })
}

/// The cluster id for `dir`: recorded, else the one a node's data dir
/// already holds (nodes run by hand), else [`LOCAL_CLUSTER_ID`].
pub(super) fn cluster_id(recorded: Option<&State>, layout: &Layout) -> String {
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
                "metrics.listener=127.0.0.1:9293",
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
        assert_eq!(top.metrics_addr(3), "127.0.0.1:65535");
        assert_eq!(top.ports().len(), 9);
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
}
