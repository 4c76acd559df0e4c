//! Raft and controller RPCs over TCP on the controller listener.
//!
//! One request/response exchange at a time per connection, framed by
//! [`crate::codec`]. The client side ([`NetworkFactory`]) keeps one
//! connection per peer, reconnecting after any error; every call is bounded
//! by the time openraft allows it. The server side ([`serve`]) answers Raft
//! RPCs through the local `Raft` handle and controller requests through a
//! [`ControllerHandler`].
//!
//! With TLS (`controller.listener = "SSL://..."`) both sides speak it: the
//! listener accepts only TLS, and peers dial with the node's trust store and
//! certificate ([`QuorumTls`]). A failed handshake closes that connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::OptionalSend;
use rivulet_protocol::tls::{self, Connector, ServerConfig, Stream};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::state_machine::StateMachine;
use super::types::{NodeId, Snapshot, SnapshotMeta, TypeConfig, Vote, VoterNode};
use crate::codec::{read_frame, write_frame, CodecError};
use crate::liveness::PeerLiveness;
use crate::service::{ControllerRequest, ControllerResponse};

pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// The Raft instance of this voter, which the node replaces when it
/// restarts Raft (after a full disk stopped it): whoever needs it takes the
/// current one per call rather than keeping a handle.
#[derive(Debug, Clone)]
pub struct RaftSlot(Arc<parking_lot::RwLock<Raft>>);

impl RaftSlot {
    pub fn new(raft: Raft) -> Self {
        RaftSlot(Arc::new(parking_lot::RwLock::new(raft)))
    }

    /// The current instance.
    pub fn get(&self) -> Raft {
        self.0.read().clone()
    }

    /// Put `raft` in place; returns the one it replaces.
    pub fn replace(&self, raft: Raft) -> Raft {
        std::mem::replace(&mut *self.0.write(), raft)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    /// A full snapshot; `data` is the state machine's JSON.
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: String,
    },
    Controller(ControllerRequest),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcResponse {
    AppendEntries(Result<AppendEntriesResponse<TypeConfig>, String>),
    Vote(Result<VoteResponse<TypeConfig>, String>),
    Snapshot(Result<SnapshotResponse<TypeConfig>, String>),
    Controller(ControllerResponse),
}

/// Handles controller-service requests arriving over the network.
pub trait ControllerHandler: Send + Sync + 'static {
    fn handle(&self, req: ControllerRequest) -> impl Future<Output = ControllerResponse> + Send;
}

/// A connection to one peer, re-established after any error.
#[derive(Debug)]
pub struct PeerClient {
    target: NodeId,
    addr: String,
    connector: Connector,
    conn: Option<Stream>,
    /// Where refused connects are reported (Raft clients of the active
    /// controller); `None` for one-off calls.
    liveness: Option<PeerLiveness>,
}

/// TLS on the controller listener and on connections to peers' (the same
/// trust store on every voter).
#[derive(Debug, Clone)]
pub struct QuorumTls {
    pub server: Arc<ServerConfig>,
    pub client: Connector,
}

/// A TLS handshake on the controller listener must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl PeerClient {
    pub fn new(target: NodeId, addr: String, connector: Connector) -> Self {
        PeerClient {
            target,
            addr,
            connector,
            conn: None,
            liveness: None,
        }
    }

    /// Report refused and successful connects to `liveness`.
    pub fn reporting_to(mut self, liveness: PeerLiveness) -> Self {
        self.liveness = Some(liveness);
        self
    }

    /// Send one request and read its response within `ttl`.
    pub async fn call(&mut self, req: &RpcRequest, ttl: Duration) -> Result<RpcResponse, String> {
        let result = tokio::time::timeout(ttl, self.exchange(req)).await;
        match result {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                self.conn = None;
                Err(format!("node {} at {}: {e}", self.target, self.addr))
            }
            Err(_) => {
                self.conn = None;
                Err(format!(
                    "node {} at {}: timed out after {ttl:?}",
                    self.target, self.addr
                ))
            }
        }
    }

    async fn exchange(&mut self, req: &RpcRequest) -> Result<RpcResponse, CodecError> {
        if self.conn.is_none() {
            let connected = self.connector.connect(&self.addr).await;
            if let Some(liveness) = &self.liveness {
                match &connected {
                    Ok(_) => liveness.connected(self.target),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        liveness.refused(self.target)
                    }
                    Err(_) => {}
                }
            }
            self.conn = Some(connected?);
        }
        let Some(stream) = self.conn.as_mut() else {
            return Err(CodecError::Io(std::io::ErrorKind::NotConnected.into()));
        };
        write_frame(stream, req).await?;
        read_frame(stream)
            .await?
            .ok_or_else(|| CodecError::Io(std::io::ErrorKind::UnexpectedEof.into()))
    }
}

/// Creates [`PeerClient`]s from voter addresses.
#[derive(Debug, Clone, Default)]
pub struct NetworkFactory {
    pub connector: Connector,
    /// Where the Raft clients report refused connects.
    pub liveness: PeerLiveness,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &VoterNode) -> Self::Network {
        PeerClient::new(target, node.addr.clone(), self.connector.clone())
            .reporting_to(self.liveness.clone())
    }
}

fn unreachable(e: String) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::from_string(e))
}

fn remote(e: String) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(e))
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(&RpcRequest::AppendEntries(rpc), option.hard_ttl())
            .await
        {
            Ok(RpcResponse::AppendEntries(r)) => r.map_err(remote),
            Ok(other) => Err(remote(format!("unexpected response {other:?}"))),
            Err(e) => Err(unreachable(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(&RpcRequest::Vote(rpc), option.hard_ttl()).await {
            Ok(RpcResponse::Vote(r)) => r.map_err(remote),
            Ok(other) => Err(remote(format!("unexpected response {other:?}"))),
            Err(e) => Err(unreachable(e)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(&RpcRequest::PreVote(rpc), option.hard_ttl())
            .await
        {
            Ok(RpcResponse::Vote(r)) => r.map_err(remote),
            Ok(other) => Err(remote(format!("unexpected response {other:?}"))),
            Err(e) => Err(unreachable(e)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let data = String::from_utf8(snapshot.snapshot)
            .map_err(|e| StreamingError::Unreachable(Unreachable::from_string(e.to_string())))?;
        let req = RpcRequest::Snapshot {
            vote,
            meta: snapshot.meta,
            data,
        };
        // Snapshots may be large: give them more time than a heartbeat.
        let ttl = option.hard_ttl().max(Duration::from_secs(30));
        match self.call(&req, ttl).await {
            Ok(RpcResponse::Snapshot(Ok(r))) => Ok(r),
            Ok(RpcResponse::Snapshot(Err(e))) => {
                Err(StreamingError::Network(NetworkError::from_string(e)))
            }
            Ok(other) => Err(StreamingError::Network(NetworkError::from_string(format!(
                "unexpected response {other:?}"
            )))),
            Err(e) => Err(StreamingError::Unreachable(Unreachable::from_string(e))),
        }
    }
}

/// Accept connections until `shutdown` turns true; each connection is served
/// by its own task. A malformed frame closes that connection only.
pub async fn serve<H: ControllerHandler>(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    raft: RaftSlot,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let raft = raft.clone();
                    let handler = handler.clone();
                    let stop = shutdown.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let stream = match open(stream, tls).await {
                            Ok(s) => s,
                            Err(e) => {
                                debug!(%peer, error = %e, "controller connection: TLS handshake failed");
                                return;
                            }
                        };
                        if let Err(e) = serve_connection(stream, raft, handler, stop).await {
                            debug!(%peer, error = %e, "controller connection closed");
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "controller listener accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// The accepted connection as served: TLS after its handshake, or plain.
async fn open(tcp: TcpStream, tls: Option<Arc<ServerConfig>>) -> std::io::Result<Stream> {
    tcp.set_nodelay(true)?;
    match tls {
        None => Ok(Stream::Plain(tcp)),
        Some(config) => tokio::time::timeout(HANDSHAKE_TIMEOUT, tls::accept(&config, tcp))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))?,
    }
}

async fn serve_connection<H: ControllerHandler>(
    mut stream: Stream,
    slot: RaftSlot,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), CodecError> {
    loop {
        let req: RpcRequest = tokio::select! {
            r = read_frame(&mut stream) => match r? {
                Some(req) => req,
                None => return Ok(()),
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let raft = slot.get();
        let resp = match req {
            RpcRequest::AppendEntries(rpc) => RpcResponse::AppendEntries(
                raft.append_entries(rpc).await.map_err(|e| e.to_string()),
            ),
            RpcRequest::Vote(rpc) => {
                RpcResponse::Vote(raft.vote(rpc).await.map_err(|e| e.to_string()))
            }
            RpcRequest::PreVote(rpc) => {
                RpcResponse::Vote(raft.pre_vote(rpc).await.map_err(|e| e.to_string()))
            }
            RpcRequest::Snapshot { vote, meta, data } => {
                let snapshot = Snapshot {
                    meta,
                    snapshot: data.into_bytes(),
                };
                RpcResponse::Snapshot(
                    raft.install_full_snapshot(vote, snapshot)
                        .await
                        .map_err(|e| e.to_string()),
                )
            }
            RpcRequest::Controller(req) => RpcResponse::Controller(handler.handle(req).await),
        };
        write_frame(&mut stream, &resp).await?;
    }
}
