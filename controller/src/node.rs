//! `ControllerNode`: one voter of the metadata quorum — its Raft instance,
//! durable log and state machine, the controller listener, and the periodic
//! duties of the active controller (session expiry, leader rebalancing).
//!
//! A single node is a one-voter quorum started the same way. The Raft
//! instance is watched ([`crate::supervisor`]): after a full disk stopped
//! it, it restarts once there is room; any other storage failure makes the
//! node [`QuorumHealth::Failed`], for the broker to shut down.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use rivulet_storage::LogConfig;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::image::MetadataImage;
use crate::liveness::PeerLiveness;
pub use crate::raft::network::QuorumTls;
use crate::raft::network::{serve, NetworkFactory, PeerClient, RaftSlot, RpcRequest, RpcResponse};
use crate::raft::state_machine::StateMachine;
use crate::raft::types::VoterNode;
use crate::service::{ControllerRequest, ControllerResponse, ControllerService};
use crate::supervisor::{self, QuorumHealth, RaftFactory};

/// Directory of the metadata log under a node's data dir (Kafka's name).
pub const METADATA_DIR: &str = "__cluster_metadata-0";

#[derive(Debug, Error)]
pub enum QuorumError {
    #[error("invalid controller.quorum.voters: {0}")]
    InvalidVoters(String),
    #[error("cannot listen on controller address {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata log: {0}")]
    Storage(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("no active controller answered within {0:?}")]
    Timeout(Duration),
    #[error("the metadata quorum is not running on this node: {0}")]
    Unavailable(String),
}

fn connector(cfg: &QuorumConfig) -> rivulet_protocol::tls::Connector {
    cfg.tls
        .as_ref()
        .map_or_else(Default::default, |t| t.client.clone())
}

/// One voter: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: u64,
    pub addr: String,
}

/// Parse `controller.quorum.voters`: `1@127.0.0.1:9192,2@127.0.0.1:9193`.
pub fn parse_voters(s: &str) -> Result<Vec<Voter>, QuorumError> {
    let mut voters = Vec::new();
    let mut ids = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || QuorumError::InvalidVoters(format!("'{part}' is not id@host:port"));
        let (id, addr) = part.split_once('@').ok_or_else(bad)?;
        let id: u64 = id.trim().parse().map_err(|_| bad())?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        if !ids.insert(id) {
            return Err(QuorumError::InvalidVoters(format!(
                "node id {id} appears twice"
            )));
        }
        voters.push(Voter {
            id,
            addr: addr.to_string(),
        });
    }
    if voters.is_empty() {
        return Err(QuorumError::InvalidVoters("no voters given".into()));
    }
    Ok(voters)
}

#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: u64,
    pub voters: Vec<Voter>,
    /// The node's data dir; the metadata log lives in `__cluster_metadata-0`.
    pub data_dir: PathBuf,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// `broker.session.timeout.ms`.
    pub session_timeout_ms: i64,
    /// `broker.fence.on.refused.connection`: fence a broker at once when
    /// its controller port refuses connections ([`crate::liveness`]).
    pub fence_on_refused_connection: bool,
    /// Take a snapshot every this many log entries.
    pub snapshot_every_entries: u64,
    /// How often the active controller moves leaders back to preferred
    /// replicas (`leader.imbalance.check.interval.seconds`).
    pub leader_rebalance_interval_ms: u64,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.per.broker.percentage`.
    pub leader_imbalance_percentage: u32,
    pub log_defaults: LogConfig,
    /// Most partition replicas a broker may host; `None`: no limit (see
    /// [`crate::capacity`]).
    pub max_partitions_per_node: Option<usize>,
    /// TLS on the controller listener and to peers; `None`: plaintext.
    pub tls: Option<QuorumTls>,
}

impl QuorumConfig {
    pub fn new(node_id: u64, voters: Vec<Voter>, data_dir: PathBuf) -> Self {
        QuorumConfig {
            node_id,
            voters,
            data_dir,
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            session_timeout_ms: 9000,
            fence_on_refused_connection: true,
            snapshot_every_entries: 1000,
            leader_rebalance_interval_ms: 300_000,
            auto_leader_rebalance: true,
            leader_imbalance_percentage: 10,
            log_defaults: LogConfig::default(),
            max_partitions_per_node: None,
            tls: None,
        }
    }

    fn own_addr(&self) -> Result<String, QuorumError> {
        self.voters
            .iter()
            .find(|v| v.id == self.node_id)
            .map(|v| v.addr.clone())
            .ok_or_else(|| {
                QuorumError::InvalidVoters(format!(
                    "this node ({}) is not among the voters",
                    self.node_id
                ))
            })
    }
}

pub struct ControllerNode {
    id: u64,
    raft: RaftSlot,
    sm: StateMachine,
    service: Arc<ControllerService>,
    health: watch::Receiver<QuorumHealth>,
    shutdown: watch::Sender<bool>,
    supervisor: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
    addr: String,
    /// Dials the active controller to forward requests.
    connector: rivulet_protocol::tls::Connector,
}

impl std::fmt::Debug for ControllerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerNode")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .finish()
    }
}

impl ControllerNode {
    /// Open the metadata log, bind the controller listener and join (or
    /// bootstrap) the quorum. Returns once the node is serving; a leader may
    /// not be elected yet.
    pub async fn start(cfg: QuorumConfig) -> Result<Self, QuorumError> {
        let addr = cfg.own_addr()?;
        let dir = cfg.data_dir.join(METADATA_DIR);
        let (sm, _rx) =
            StateMachine::open(&dir).map_err(|e| QuorumError::Storage(e.to_string()))?;
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| QuorumError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let config = openraft::Config {
            cluster_name: "rivulet-metadata".into(),
            heartbeat_interval: cfg.heartbeat_interval_ms,
            election_timeout_min: cfg.election_timeout_min_ms,
            election_timeout_max: cfg.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snapshot_every_entries),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let liveness = PeerLiveness::default();
        let factory = RaftFactory {
            node_id: cfg.node_id,
            dir,
            config: Arc::new(config),
            sm: sm.clone(),
            network: NetworkFactory {
                connector: connector(&cfg),
                liveness: liveness.clone(),
            },
        };
        let (raft, log) = factory.open().await.map_err(|e| e.error)?;
        let slot = RaftSlot::new(raft.clone());
        let service = Arc::new(
            ControllerService::new(
                slot.clone(),
                sm.clone(),
                cfg.log_defaults.clone(),
                cfg.session_timeout_ms,
            )
            .with_leader_balance(cfg.auto_leader_rebalance, cfg.leader_imbalance_percentage)
            .with_partition_limit(cfg.max_partitions_per_node),
        );
        if cfg.fence_on_refused_connection {
            service.watch_refusals(liveness.clone());
        }
        let (shutdown, stop_rx) = watch::channel(false);
        let (health_tx, health) = watch::channel(QuorumHealth::Running);
        let supervisor = tokio::spawn(supervisor::supervise(
            factory,
            slot.clone(),
            log,
            health_tx,
            stop_rx.clone(),
        ));
        let mut tasks = vec![tokio::spawn(serve(
            listener,
            cfg.tls.as_ref().map(|t| t.server.clone()),
            slot.clone(),
            service.clone(),
            stop_rx.clone(),
        ))];
        tasks.push(tokio::spawn(periodic(
            service.clone(),
            liveness,
            stop_rx,
            Duration::from_millis((cfg.session_timeout_ms as u64 / 4).clamp(50, 1000)),
            Duration::from_millis(cfg.leader_rebalance_interval_ms.max(100)),
        )));
        let members: BTreeMap<u64, VoterNode> = cfg
            .voters
            .iter()
            .map(|v| {
                (
                    v.id,
                    VoterNode {
                        addr: v.addr.clone(),
                    },
                )
            })
            .collect();
        // First boot: the lowest voter id writes the initial membership at
        // once and the others learn it from its election and replication.
        // The others write it themselves only if they still have nothing
        // after a grace period (the lowest voter is down), so voters starting
        // together do not bootstrap concurrently (openraft 0.10.0-alpha.37
        // once tripped its own debug assertion when all three did). Only an
        // empty log accepts the membership: a restarted node refuses.
        if !raft.is_initialized().await.unwrap_or(true) {
            let first = cfg.voters.iter().map(|v| v.id).min();
            if first == Some(cfg.node_id) {
                let _ = raft.initialize(members).await;
            } else {
                let grace = Duration::from_millis(cfg.election_timeout_max_ms.saturating_mul(3));
                tasks.push(tokio::spawn(initialize_unless_joined(
                    slot.clone(),
                    members,
                    grace,
                    shutdown.subscribe(),
                )));
            }
        }
        info!(node_id = cfg.node_id, %addr, voters = cfg.voters.len(), "controller started");
        Ok(ControllerNode {
            id: cfg.node_id,
            raft: slot,
            sm,
            service,
            health,
            shutdown,
            supervisor,
            tasks,
            addr,
            connector: connector(&cfg),
        })
    }

    pub fn node_id(&self) -> u64 {
        self.id
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.sm.image()
    }

    /// Updates of the metadata image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.sm.subscribe()
    }

    /// The active controller, as this node knows it.
    pub fn leader(&self) -> Option<u64> {
        self.raft.get().metrics().borrow_watched().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.raft.get().is_leader()
    }

    /// Current Raft term.
    pub fn term(&self) -> u64 {
        self.raft.get().metrics().borrow_watched().current_term
    }

    /// Index of the last metadata record committed by the quorum, as this
    /// node knows it (metrics: how far its image lags behind).
    pub fn committed_index(&self) -> Option<u64> {
        self.raft
            .get()
            .metrics()
            .borrow_watched()
            .cluster_committed
            .map(|l| l.index)
    }

    /// Index of the last snapshot, if any.
    pub fn snapshot_index(&self) -> Option<u64> {
        self.raft
            .get()
            .metrics()
            .borrow_watched()
            .snapshot
            .map(|l| l.index)
    }

    /// Whether this voter's Raft instance runs; watch it to learn when the
    /// node must shut down ([`QuorumHealth::Failed`]).
    pub fn health(&self) -> watch::Receiver<QuorumHealth> {
        self.health.clone()
    }

    /// Why requests cannot be served here now, if they cannot.
    fn unavailable(&self) -> Option<String> {
        match &*self.health.borrow() {
            QuorumHealth::Running => None,
            QuorumHealth::WaitingForSpace { reason } => Some(format!(
                "stopped by a full disk, restarting once there is room ({reason})"
            )),
            QuorumHealth::Failed { reason } => Some(format!("stopped: {reason}")),
        }
    }

    /// Build a snapshot now.
    pub async fn trigger_snapshot(&self) -> Result<(), QuorumError> {
        self.raft
            .get()
            .trigger()
            .snapshot()
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))
    }

    /// Send a request to the active controller, wherever it is, retrying
    /// through elections until `timeout`. Fails at once while this node's
    /// Raft instance is stopped: it knows no leader to ask then, and a
    /// caller answering a client must not hold the client's connection.
    pub async fn request(
        &self,
        req: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerResponse, QuorumError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(reason) = self.unavailable() {
                return Err(QuorumError::Unavailable(reason));
            }
            let resp = self.service.process(req.clone()).await;
            let resp = match resp {
                ControllerResponse::NotController {
                    leader: Some((id, addr)),
                } if id != self.id => {
                    let mut peer = PeerClient::new(id, addr, self.connector.clone());
                    match peer
                        .call(&RpcRequest::Controller(req.clone()), Duration::from_secs(5))
                        .await
                    {
                        Ok(RpcResponse::Controller(r)) => r,
                        _ => ControllerResponse::NotController { leader: None },
                    }
                }
                other => other,
            };
            match resp {
                ControllerResponse::NotController { .. }
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                ControllerResponse::NotController { .. } => {
                    return Err(QuorumError::Timeout(timeout))
                }
                other => return Ok(other),
            }
        }
    }

    /// Stop serving and shut Raft down.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        // The supervisor first: it may be putting a restarted instance in
        // place, which is then the one to shut down.
        let _ = self.supervisor.await;
        let _ = self.raft.get().shutdown().await;
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

/// After `grace`, write the initial membership if this node has still not
/// received it from an elected leader (see [`ControllerNode::start`]).
async fn initialize_unless_joined(
    slot: RaftSlot,
    members: BTreeMap<u64, VoterNode>,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = tokio::time::sleep(grace) => {}
        _ = stop.changed() => return,
    }
    let raft = slot.get();
    if !raft.is_initialized().await.unwrap_or(true) {
        info!("no leader wrote the initial membership in {grace:?}: writing it");
        let _ = raft.initialize(members).await;
    }
}

async fn periodic(
    service: Arc<ControllerService>,
    liveness: PeerLiveness,
    mut stop: watch::Receiver<bool>,
    session_check: Duration,
    rebalance: Duration,
) {
    let mut session_tick = tokio::time::interval(session_check);
    let mut rebalance_tick = tokio::time::interval(rebalance);
    loop {
        tokio::select! {
            _ = session_tick.tick() => service.expire_sessions().await,
            // A voter's port refused a connection: check it now, not at
            // the next tick.
            _ = liveness.notified() => service.expire_sessions().await,
            _ = rebalance_tick.tick() => service.rebalance_leaders().await,
            _ = stop.changed() => return,
        }
    }
}
