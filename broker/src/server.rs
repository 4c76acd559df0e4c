//! [`BrokerNode`]: a broker's life — it builds the [`BrokerContext`] handlers
//! see, runs the background tasks around it, serves the listener and stops
//! it all.
//!
//! Start-up: `meta.properties` (node and cluster id) is checked or written,
//! partition logs are opened (recovering after an unclean stop), the
//! controller voter joins the quorum, the broker registers and heartbeats in
//! the background, local partitions follow every metadata image, and the
//! Kafka listeners accept connections (at most `max.connections` across
//! them).
//!
//! Each listener has a security protocol: PLAINTEXT connections are served
//! as they are; SSL ones after a TLS handshake (bounded by
//! `request.body.timeout.ms`; a failed one closes that connection only),
//! with the client certificate's subject as the principal. TLS files are
//! loaded before anything binds, so a bad certificate or key fails the
//! start. SASL_PLAINTEXT and SASL_SSL connections authenticate first
//! ([`crate::sasl`]); SASL on the controller listener is refused at start
//! (the quorum transport is not the Kafka protocol). An SSL controller
//! listener always requires client certificates from the CA: the quorum
//! has no other authentication. When the inter-broker listener uses SASL,
//! replica fetchers and broker links authenticate with
//! `inter.broker.sasl.username`/`password`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rivulet_controller::{
    parse_voters, ControllerNode, ControllerRequest, ControllerResponse, Listener, QuorumConfig,
    QuorumHealth,
};
use rivulet_protocol::tls::{self, Connector, ServerConfig, TlsError};
use rivulet_storage::{LogManager, SystemClock};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::context::BrokerContext;
use crate::group::coordinator::GroupCoordinator;
use crate::listeners::{ListenerConfig, SecurityProtocol};
use crate::local_node::{InterBroker, LocalNode};
use crate::producer_ids::ProducerIds;
use crate::replica_fetcher::{self, FetcherConfig};
use crate::replica_manager::ReplicaManager;
use crate::request_memory::RequestMemory;
use crate::session;
use crate::txn::TransactionCoordinator;

pub const META_PROPERTIES: &str = "meta.properties";
/// How long a controlled shutdown waits for this node's partitions to
/// follow the leadership moves before it stops serving.
pub const LEADERSHIP_MOVE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum StartError {
    #[error("data dir {path}: {message}")]
    DataDir { path: String, message: String },
    #[error("{0}")]
    Storage(#[from] rivulet_storage::StorageError),
    #[error("{0}")]
    Quorum(#[from] rivulet_controller::QuorumError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("listener {listener}: security protocol {protocol} is not supported on the controller quorum (its transport is not the Kafka protocol and has no SASL); use SSL there: voters always authenticate each other with client certificates")]
    Unsupported { listener: String, protocol: String },
    #[error("inter.broker.listener.name {listener} uses {protocol}: set inter.broker.sasl.username and inter.broker.sasl.password (the credentials brokers authenticate to each other with, mechanism sasl.mechanism.inter.broker.protocol)")]
    InterBrokerSasl { listener: String, protocol: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl StartError {
    /// Whether the start failed on a port already in use (EADDRINUSE), the client
    /// listener's ([`StartError::Bind`]) or the controller's (wrapped in
    /// [`StartError::Quorum`]): a caller that chose the port as free can try another.
    pub fn port_taken(&self) -> bool {
        let mut error: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = error {
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
            {
                return true;
            }
            error = e.source();
        }
        false
    }
}

/// A running broker.
pub struct BrokerNode {
    /// What handlers see; the running node's state.
    pub broker: Arc<BrokerContext>,
    /// `queued.max.request.bytes`: memory for requests in flight.
    pub request_memory: Arc<RequestMemory>,
    controller: Arc<ControllerNode>,
    logs: Arc<LogManager>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The first listener's bound address.
    pub local_addr: std::net::SocketAddr,
    /// Every listener's name and bound address, in `listeners` order.
    pub listener_addrs: Vec<(String, std::net::SocketAddr)>,
    /// The metrics and health endpoint's bound address (`metrics.listener`).
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// A bound Kafka listener and, for TLS, its server configuration.
struct Bound {
    config: ListenerConfig,
    socket: TcpListener,
    tls: Option<Arc<ServerConfig>>,
}

fn refuse_sasl(name: &str, protocol: SecurityProtocol) -> Result<(), StartError> {
    if protocol.uses_sasl() {
        return Err(StartError::Unsupported {
            listener: name.to_string(),
            protocol: protocol.name().to_string(),
        });
    }
    Ok(())
}

/// Read `meta.properties` or write it: the node id must match and the
/// cluster id stays the same for the data dir's life.
fn meta_properties(
    dir: &Path,
    node_id: i32,
    configured: Option<&str>,
) -> Result<String, StartError> {
    let path = dir.join(META_PROPERTIES);
    let err = |message: String| StartError::DataDir {
        path: dir.display().to_string(),
        message,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let props: BTreeMap<&str, &str> = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect();
            let stored: i32 = props
                .get("node.id")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| err(format!("{} has no valid node.id", path.display())))?;
            if stored != node_id {
                return Err(err(format!(
                    "belongs to node {stored}, but this is node {node_id} (meta.properties)"
                )));
            }
            let cluster = props
                .get("cluster.id")
                .map(|s| s.to_string())
                .ok_or_else(|| err(format!("{} has no cluster.id", path.display())))?;
            if let Some(c) = configured {
                if c != cluster {
                    return Err(err(format!(
                        "holds cluster {cluster}, but cluster.id is {c}"
                    )));
                }
            }
            Ok(cluster)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster = configured.map(str::to_string).unwrap_or_else(|| {
                // Kafka cluster ids are 22 characters of URL-safe base64.
                let u = Uuid::new_v4().simple().to_string();
                u[..22].to_string()
            });
            let text = format!("version=1\nnode.id={node_id}\ncluster.id={cluster}\n");
            rivulet_storage::checkpoint::write_atomically(&path, text.as_bytes())?;
            Ok(cluster)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

impl BrokerNode {
    pub async fn start(mut config: BrokerConfig) -> Result<BrokerNode, StartError> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| StartError::DataDir {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let cluster_id = meta_properties(&dir, config.node_id, config.cluster_id.as_deref())?;
        refuse_sasl("controller.listener", config.controller_protocol)?;
        let inter_broker_sasl = config
            .listeners
            .iter()
            .find(|l| l.name == config.inter_broker_listener && l.protocol.uses_sasl());
        if let Some(l) = inter_broker_sasl {
            if config.sasl.inter_broker.username.is_empty() {
                return Err(StartError::InterBrokerSasl {
                    listener: l.name.clone(),
                    protocol: l.protocol.name().to_string(),
                });
            }
        }
        let inter_broker_sasl = inter_broker_sasl.is_some();
        // TLS files are read before anything binds: a bad one fails here.
        // Per listener: its ssl.client.auth may differ (Kafka's
        // listener.name.<name>.ssl.client.auth).
        let mut listener_tls = Vec::new();
        for l in &config.listeners {
            listener_tls.push(if l.protocol.uses_tls() {
                Some(config.ssl.server_config(config.client_auth_for(&l.name))?)
            } else {
                None
            });
        }
        let inter_broker_tls = config
            .listeners
            .iter()
            .any(|l| l.name == config.inter_broker_listener && l.protocol.uses_tls());
        let client_tls = if inter_broker_tls || config.controller_protocol.uses_tls() {
            Some(Connector::tls(config.ssl.client_config()?))
        } else {
            None
        };
        // Bound first, so a taken port fails the start before any recovery
        // work; connections wait in the backlog until `accept` is ready.
        let mut bound = Vec::new();
        let mut listener_addrs = Vec::new();
        for (l, tls) in config.listeners.iter().zip(listener_tls) {
            let addr = l.bind_addr();
            let bind_err = |source| StartError::Bind {
                addr: addr.clone(),
                source,
            };
            let socket = TcpListener::bind(&addr).await.map_err(bind_err)?;
            listener_addrs.push((l.name.clone(), socket.local_addr().map_err(bind_err)?));
            bound.push(Bound {
                config: l.clone(),
                socket,
                tls,
            });
        }
        // A listener bound to port 0 advertises the port it got.
        for (l, (_, addr)) in config.listeners.iter_mut().zip(&listener_addrs) {
            if l.advertised_port == 0 {
                l.advertised_port = addr.port();
            }
        }
        let local_addr = match listener_addrs.first() {
            Some((_, a)) => *a,
            None => {
                return Err(StartError::Bind {
                    addr: config.listener.clone(),
                    source: std::io::Error::other("no listeners configured"),
                })
            }
        };
        let metrics_socket = crate::metrics::http::bind(&config.metrics).await?;
        let metrics_addr = metrics_socket.as_ref().and_then(|s| s.local_addr().ok());
        let fds = crate::rlimit::raise_nofile_limit();
        let partition_limit = crate::rlimit::partition_limit(config.max_partitions_per_node, fds);
        let storage = config.storage.clone();
        let logs_dir = dir.clone();
        let logs = tokio::task::spawn_blocking(move || {
            LogManager::open(&logs_dir, storage, Arc::new(SystemClock), &|_| None)
        })
        .await
        .map_err(|e| StartError::DataDir {
            path: dir.display().to_string(),
            message: e.to_string(),
        })??;
        let logs = Arc::new(logs);
        logs.start_background();

        let voters = parse_voters(&config.quorum_voters)?;
        let mut qc = QuorumConfig::new(config.node_id as u64, voters, dir.clone());
        qc.session_timeout_ms = config.session_timeout_ms;
        qc.fence_on_refused_connection = config.fence_on_refused_connection;
        qc.election_timeout_min_ms = config.election_timeout_ms;
        qc.election_timeout_max_ms = 2 * config.election_timeout_ms;
        qc.auto_leader_rebalance = config.auto_leader_rebalance;
        qc.leader_imbalance_percentage = config.leader_imbalance_percentage;
        qc.leader_rebalance_interval_ms = config.leader_imbalance_check_interval_s * 1000;
        qc.log_defaults = config.storage.log_defaults.clone();
        qc.max_partitions_per_node = partition_limit;
        if config.controller_protocol.uses_tls() {
            if let Some(client) = &client_tls {
                // The quorum has no other authentication: its listener
                // always requires a certificate signed by ssl.ca.location
                // (every voter presents its node certificate).
                qc.tls = Some(rivulet_controller::QuorumTls {
                    server: config.ssl.server_config(tls::ClientAuth::Required)?,
                    client: client.clone(),
                });
            }
        }
        let controller = Arc::new(ControllerNode::start(qc).await?);

        let replicas = Arc::new(
            ReplicaManager::new(config.node_id, logs.clone(), config.min_insync_replicas)
                .with_replication_rates(
                    config.leader_replication_throttled_rate,
                    config.follower_replication_throttled_rate,
                ),
        );
        let node = LocalNode::new(replicas, controller.clone()).with_inter_broker(InterBroker {
            listener: Some(config.inter_broker_listener.clone()),
            connector: {
                let c = if inter_broker_tls {
                    client_tls.clone().unwrap_or_default()
                } else {
                    Connector::plaintext()
                };
                if inter_broker_sasl {
                    c.with_sasl(config.sasl.inter_broker.clone())
                } else {
                    c
                }
            },
        });
        let groups = Arc::new(GroupCoordinator::new(
            config.coordinator.clone(),
            node.clone(),
        ));
        let producer_ids = Arc::new(ProducerIds::new());
        let txns = TransactionCoordinator::new(
            config.transactions.clone(),
            node.clone(),
            producer_ids.clone(),
            groups.clone(),
        );
        let request_memory = Arc::new(RequestMemory::new(config.queued_max_request_bytes));
        let broker = Arc::new(BrokerContext::new(
            config,
            cluster_id,
            Uuid::new_v4(),
            node,
            groups,
            producer_ids,
            txns,
        ));
        let (shutdown, stop_rx) = watch::channel(false);
        // Set once the metadata has caught up (see `follow_image`): client
        // connections wait for it.
        let (ready_tx, ready_rx) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(broker.config.max_connections));
        let mut tasks = vec![
            tokio::spawn(follow_image(broker.clone(), stop_rx.clone(), ready_tx)),
            tokio::spawn(register_and_heartbeat(
                broker.clone(),
                partition_limit,
                stop_rx.clone(),
            )),
            tokio::spawn(bootstrap_scram_users(broker.clone(), stop_rx.clone())),
            tokio::spawn(broker.groups.clone().run_timers(stop_rx.clone())),
            tokio::spawn(broker.txns.clone().run_timers(stop_rx.clone())),
            tokio::spawn(replica_fetcher::run_fetchers(
                broker.node.clone(),
                FetcherConfig {
                    max_response_bytes: broker.config.socket_request_max_bytes,
                },
                stop_rx.clone(),
            )),
            tokio::spawn(replica_fetcher::maintain_isr(
                broker.node.clone(),
                broker.config.replica_lag_time_max_ms,
                stop_rx.clone(),
            )),
        ];
        if let Some(socket) = metrics_socket {
            let endpoint = crate::metrics::http::Endpoint {
                broker: broker.clone(),
                controller: controller.clone(),
                client_slots: slots.clone(),
                ready: ready_rx.clone(),
            };
            tasks.push(tokio::spawn(crate::metrics::http::serve(
                socket,
                endpoint,
                stop_rx.clone(),
            )));
        }
        for listener in bound {
            tasks.push(tokio::spawn(accept(
                listener,
                broker.clone(),
                request_memory.clone(),
                slots.clone(),
                stop_rx.clone(),
                ready_rx.clone(),
            )));
        }
        info!(
            node_id = broker.node_id(),
            listener = %local_addr,
            cluster_id = %broker.cluster_id,
            data_dir = %broker.config.data_dir.display(),
            metrics = %metrics_addr.map_or_else(|| "off".to_string(), |a| format!("http://{a}/metrics")),
            "Rivulet broker listening on {}",
            broker
                .config
                .listeners
                .iter()
                .zip(&listener_addrs)
                .map(|(l, (_, a))| format!("{}://{a} ({})", l.name, l.protocol.name()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(BrokerNode {
            broker,
            request_memory,
            controller,
            logs,
            shutdown,
            tasks,
            local_addr,
            listener_addrs,
            metrics_addr,
        })
    }

    /// This node's metadata quorum member (its health, direct requests).
    pub fn controller(&self) -> &Arc<ControllerNode> {
        &self.controller
    }

    /// Resolves when this node can no longer run and must shut down: its
    /// metadata quorum member stopped on a storage failure other than a
    /// full disk (after a full disk it restarts by itself). The reason.
    pub async fn failed(&self) -> String {
        let mut health = self.controller.health();
        loop {
            if let QuorumHealth::Failed { reason } = &*health.borrow_and_update() {
                return format!("the metadata quorum failed: {reason}");
            }
            if health.changed().await.is_err() {
                return "the metadata quorum is gone".to_string();
            }
        }
    }

    /// Controlled shutdown: leave the cluster, stop serving, flush and
    /// checkpoint every log.
    ///
    /// Leaving comes first: the controller fences this broker, which moves
    /// the leadership of every partition it leads to another ISR member;
    /// then this node waits (at most [`LEADERSHIP_MOVE_WAIT`]) until its
    /// own partitions have followed, so requests still arriving are
    /// answered NOT_LEADER_OR_FOLLOWER with the new leader (KIP-951) and
    /// parked acks=all produces are released, rather than cut off by a
    /// closed connection.
    pub async fn shutdown(self) -> Result<(), rivulet_storage::StorageError> {
        let b = &self.broker;
        let left = tokio::time::timeout(
            Duration::from_secs(5),
            self.controller.request(
                ControllerRequest::BrokerShutdown {
                    node_id: b.node_id(),
                    incarnation: b.incarnation,
                },
                Duration::from_secs(5),
            ),
        )
        .await;
        if matches!(left, Ok(Ok(ControllerResponse::Ok { .. }))) {
            let me = b.node_id();
            let moved = b
                .wait_until(LEADERSHIP_MOVE_WAIT, |image| {
                    let led = image
                        .topics
                        .values()
                        .flat_map(|t| t.partitions.values())
                        .any(|p| p.leader == me);
                    !led && !b.replicas.all().iter().any(|p| p.is_leader(me))
                })
                .await;
            info!(
                node_id = me,
                moved, "controlled shutdown: leadership moved off this broker"
            );
        }
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        let broker = self.broker;
        // Connection tasks drop their reference as they see the stop signal.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while Arc::strong_count(&broker) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let logs = self.logs;
        // Handlers still holding the broker finish on their own; the
        // controller stops with the last reference.
        tokio::task::spawn_blocking(move || logs.shutdown())
            .await
            .map_err(|e| rivulet_storage::StorageError::LogOffline(e.to_string()))??;
        drop(broker);
        if let Ok(controller) = Arc::try_unwrap(self.controller) {
            controller.shutdown().await;
        }
        info!("broker shut down cleanly");
        Ok(())
    }
}

/// Keep local partitions in line with each new metadata image.
async fn follow_image(
    broker: Arc<BrokerContext>,
    mut stop: watch::Receiver<bool>,
    ready: watch::Sender<bool>,
) {
    let mut rx = broker.node.controller.subscribe();
    let mut caught_up = false;
    loop {
        let image = rx.borrow_and_update().clone();
        // A restarted node's image is the one it had when it stopped: it
        // may still name this node leader in an epoch the cluster has long
        // left. As Kafka's initial metadata catch-up, act on images only
        // once they hold this incarnation's registration, which the
        // controller commits after fencing the previous incarnation (and
        // moving its leaderships).
        caught_up = caught_up
            || image
                .brokers
                .get(&broker.node_id())
                .is_some_and(|b| b.incarnation == broker.incarnation);
        // Clients of a SASL-only cluster need the bootstrap users: serve
        // once the image holds them (bootstrap_scram_users writes them).
        let users_ready = broker.config.sasl.bootstrap_users.iter().all(|u| {
            image
                .scram_credential(u.mechanism.name(), &u.name)
                .is_some()
        });
        if caught_up && users_ready {
            let b = broker.clone();
            let _ = tokio::task::spawn_blocking(move || b.replicas.apply_image(&image)).await;
            ready.send_if_modified(|r| !std::mem::replace(r, true));
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// Write `sasl.scram.bootstrap.users` that do not exist yet (Kafka's
/// `kafka-storage format --add-scram`), retrying until the quorum answers;
/// every node asks, the first write wins, existing credentials stay.
async fn bootstrap_scram_users(broker: Arc<BrokerContext>, mut stop: watch::Receiver<bool>) {
    let users = broker.config.sasl.bootstrap_users.clone();
    if users.is_empty() {
        return;
    }
    loop {
        let missing: Vec<_> = {
            let image = broker.image();
            users
                .iter()
                .filter(|u| {
                    image
                        .scram_credential(u.mechanism.name(), &u.name)
                        .is_none()
                })
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            return;
        }
        // One request per credential: Kafka refuses a user altered twice
        // in one request.
        for user in &missing {
            let req = crate::sasl::bootstrap_request(std::slice::from_ref(user));
            if let Ok(ControllerResponse::ScramResults { results, .. }) = broker
                .node
                .controller
                .request(req, Duration::from_secs(5))
                .await
            {
                for r in &results {
                    if r.error_code == 0 {
                        info!(user = %r.user, mechanism = user.mechanism.name(), "bootstrap SCRAM user written");
                    } else {
                        warn!(user = %r.user, error = ?r.error_message, "cannot create bootstrap SCRAM user");
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Register with the active controller, then heartbeat; re-register when the
/// controller no longer knows this incarnation.
/// `partition_limit`: what this node can host, told to the controller.
async fn register_and_heartbeat(
    broker: Arc<BrokerContext>,
    partition_limit: Option<usize>,
    mut stop: watch::Receiver<bool>,
) {
    // Every listener with its advertised address: peers pick theirs by
    // name (inter.broker.listener.name; Metadata the client's listener).
    let listeners: Vec<Listener> = broker
        .config
        .listeners
        .iter()
        .map(|l| Listener {
            name: l.name.clone(),
            host: l.advertised_host.clone(),
            port: l.advertised_port,
        })
        .collect();
    let interval = Duration::from_millis(broker.config.heartbeat_interval_ms);
    let mut registered = false;
    // While the quorum is down every heartbeat fails: say so every 10 s.
    let mut warned: Option<std::time::Instant> = None;
    loop {
        let req = if registered {
            ControllerRequest::BrokerHeartbeat {
                node_id: broker.node_id(),
                incarnation: broker.incarnation,
            }
        } else {
            ControllerRequest::RegisterBroker {
                node_id: broker.node_id(),
                incarnation: broker.incarnation,
                listeners: listeners.clone(),
                rack: None,
                max_partitions: partition_limit.map(|n| n as u64),
            }
        };
        match broker
            .node
            .controller
            .request(req, interval.max(Duration::from_secs(1)))
            .await
        {
            Ok(ControllerResponse::Ok { .. }) => {
                if !registered {
                    info!(node_id = broker.node_id(), "registered with the controller");
                    registered = true;
                    // Unfence at once rather than a heartbeat later.
                    continue;
                }
            }
            Ok(ControllerResponse::StaleBrokerEpoch) => registered = false,
            Ok(other) => warn!(response = ?other, "controller refused heartbeat"),
            Err(e) => {
                if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                    warned = Some(std::time::Instant::now());
                    warn!(error = %e, "no active controller");
                }
            }
        }
        let wait = if registered {
            interval
        } else {
            Duration::from_millis(100)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Serve a listener's connections once `ready`: until the metadata has
/// caught up a restarted node would answer from its old image (Metadata
/// naming it leader with its old ISR), so, as Kafka enables request
/// processing only after the initial catch-up, connections wait in the
/// listen backlog. `slots` bounds connections across all listeners.
async fn accept(
    listener: Bound,
    broker: Arc<BrokerContext>,
    memory: Arc<RequestMemory>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    mut ready: watch::Receiver<bool>,
) {
    let waiting_since = std::time::Instant::now();
    loop {
        tokio::select! {
            r = ready.wait_for(|r| *r) => match r {
                Ok(_) => break,
                Err(_) => return,
            },
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(10)) => warn!(
                node_id = broker.node_id(),
                waited_s = waiting_since.elapsed().as_secs(),
                voters = %broker.config.quorum_voters,
                "not serving clients yet: waiting to register with the metadata quorum and see sasl.scram.bootstrap.users \
                 (are a majority of controller.quorum.voters up?)"
            ),
        }
    }
    info!(
        node_id = broker.node_id(),
        listener = %listener.config.name,
        "metadata caught up: serving clients"
    );
    let name = listener.config.name.clone();
    let protocol = listener.config.protocol;
    let handshake_timeout = Duration::from_millis(broker.config.request_body_timeout_ms);
    loop {
        tokio::select! {
            accepted = listener.socket.accept() => match accepted {
                Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let b = broker.clone();
                        let memory = memory.clone();
                        let mut conn_stop = stop.clone();
                        let tls = listener.tls.clone();
                        let name = name.clone();
                        // Connections end with the broker (peers' replica
                        // fetchers would otherwise keep it alive).
                        tokio::spawn(async move {
                            let opened = tokio::select! {
                                opened = session::open(
                                    stream, peer, tls.as_ref(), handshake_timeout, &name, protocol,
                                ) => opened,
                                _ = conn_stop.changed() => return,
                            };
                            match opened {
                                Ok((stream, session)) => {
                                    crate::connection::serve(stream, session, b, memory, conn_stop)
                                        .await
                                }
                                // A plaintext client on a TLS port, an
                                // untrusted or missing certificate.
                                Err(e) => info!(%peer, error = %e, "closing connection"),
                            }
                            drop(permit);
                        });
                    }
                    Err(_) => warn!(%peer, limit = broker.config.max_connections, "refusing connection: max.connections reached"),
                },
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}
