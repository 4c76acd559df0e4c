//! An in-memory network for simulating the metadata quorum, and the seeded
//! PRNG that drives it.
//!
//! Every RPC is routed straight to the target node's `Raft` handle, after a
//! fault model shared by all connections has had its say:
//!
//! - partitioned links deliver nothing, in either direction: the call fails
//!   as `Unreachable` (openraft backs off), and a response is cut off if the
//!   link is cut while the request is being handled;
//! - each request and each response is lost with a seeded probability
//!   (`NetworkError`: openraft retries at once);
//! - each request is delayed by a seeded random number of milliseconds,
//!   measured on tokio's clock (virtual under a paused runtime);
//! - a node that is down receives nothing, and a crashed incarnation's
//!   leftover tasks send nothing: every connection carries its sender's
//!   incarnation and the router refuses stale ones.
//!
//! Loaded by `tests/simulation/main.rs` through `#[path]` rather than a shared
//! `tests/common/mod.rs`, so test crates that do not use it never compile it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::OptionalSend;
use parking_lot::Mutex;
use rivulet_controller::raft::network::Raft;
use rivulet_controller::raft::types::{NodeId, Snapshot, TypeConfig, Vote, VoterNode};
use tokio::time::sleep;

/// xorshift64, seeded through splitmix64 so that nearby seeds diverge.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo).saturating_add(1))
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items`, which must not be empty.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The routing table and the fault model.
struct NetState {
    rng: Rng,
    /// Nodes that are up: their incarnation and Raft handle.
    nodes: BTreeMap<NodeId, (u64, Raft)>,
    /// Directed links that deliver nothing.
    blocked: BTreeSet<(NodeId, NodeId)>,
    drop_percent: u64,
    max_delay_ms: u64,
}

impl NetState {
    /// The target's handle, if a message from `from` (incarnation `inc`)
    /// to `to` can be sent now.
    fn open(&self, from: NodeId, inc: u64, to: NodeId) -> Option<Raft> {
        let sender_current = self.nodes.get(&from).is_some_and(|(i, _)| *i == inc);
        if !sender_current || self.blocked.contains(&(from, to)) {
            return None;
        }
        self.nodes.get(&to).map(|(_, raft)| raft.clone())
    }
}

/// Shared by every node's [`SimNetwork`]; cheap to clone.
#[derive(Clone)]
pub struct Router(Arc<Mutex<NetState>>);

enum Fail {
    /// Partitioned or down.
    Unreachable(String),
    /// Lost on the wire.
    Lost(String),
}

impl From<Fail> for RPCError<TypeConfig> {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Unreachable(m) => RPCError::Unreachable(Unreachable::from_string(m)),
            Fail::Lost(m) => RPCError::Network(NetworkError::from_string(m)),
        }
    }
}

impl From<Fail> for StreamingError<TypeConfig> {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Unreachable(m) => StreamingError::Unreachable(Unreachable::from_string(m)),
            Fail::Lost(m) => StreamingError::Network(NetworkError::from_string(m)),
        }
    }
}

impl Router {
    /// `rng` decides every drop and delay; it is the router's own, so the
    /// number of messages sent does not shift anyone else's random stream.
    pub fn new(rng: Rng, drop_percent: u64, max_delay_ms: u64) -> Self {
        Router(Arc::new(Mutex::new(NetState {
            rng,
            nodes: BTreeMap::new(),
            blocked: BTreeSet::new(),
            drop_percent,
            max_delay_ms,
        })))
    }

    /// Node `id` is up as incarnation `inc`, reachable through `raft`.
    pub fn connect(&self, id: NodeId, inc: u64, raft: Raft) {
        self.0.lock().nodes.insert(id, (inc, raft));
    }

    /// Node `id` is down: it receives nothing and its connections send
    /// nothing.
    pub fn disconnect(&self, id: NodeId) {
        self.0.lock().nodes.remove(&id);
    }

    /// The network a node started as incarnation `inc` sends through.
    pub fn network(&self, id: NodeId, inc: u64) -> SimNetwork {
        SimNetwork {
            router: self.clone(),
            from: id,
            inc,
        }
    }

    /// Cut every link between `id` and `others`, both ways.
    pub fn isolate(&self, id: NodeId, others: &[NodeId]) {
        let mut g = self.0.lock();
        for other in others.iter().copied().filter(|o| *o != id) {
            g.blocked.insert((id, other));
            g.blocked.insert((other, id));
        }
    }

    pub fn heal(&self) {
        self.0.lock().blocked.clear();
    }

    pub fn set_drop_percent(&self, percent: u64) {
        self.0.lock().drop_percent = percent;
    }

    /// Deliver one request: delay it, maybe lose it or its response, and
    /// refuse it if the link is cut before it arrives or before the response
    /// gets back.
    async fn deliver<T, F, Fut>(
        &self,
        from: NodeId,
        inc: u64,
        to: NodeId,
        call: F,
    ) -> Result<T, Fail>
    where
        F: FnOnce(Raft) -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let unreachable = || Fail::Unreachable(format!("{from} -> {to}: unreachable"));
        let (delay, lose_request, lose_response) = {
            let mut g = self.0.lock();
            if g.open(from, inc, to).is_none() {
                return Err(unreachable());
            }
            let (max, drop) = (g.max_delay_ms, g.drop_percent);
            let delay = g.rng.range(0, max);
            (delay, g.rng.chance(drop), g.rng.chance(drop))
        };
        sleep(Duration::from_millis(delay)).await;
        let raft = self.0.lock().open(from, inc, to).ok_or_else(unreachable)?;
        if lose_request {
            return Err(Fail::Lost(format!("{from} -> {to}: request lost")));
        }
        // The target's own error (it is shutting down, say) looks like a
        // broken connection to the sender.
        let resp = call(raft).await.map_err(Fail::Unreachable)?;
        if self.0.lock().blocked.contains(&(to, from)) {
            return Err(Fail::Unreachable(format!(
                "{to} -> {from}: response cut off"
            )));
        }
        if lose_response {
            return Err(Fail::Lost(format!("{to} -> {from}: response lost")));
        }
        Ok(resp)
    }
}

/// One node incarnation's network.
pub struct SimNetwork {
    router: Router,
    from: NodeId,
    inc: u64,
}

pub struct SimConn {
    router: Router,
    from: NodeId,
    inc: u64,
    to: NodeId,
}

impl SimConn {
    async fn deliver<T, F, Fut>(&self, call: F) -> Result<T, Fail>
    where
        F: FnOnce(Raft) -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        self.router
            .deliver(self.from, self.inc, self.to, call)
            .await
    }
}

impl RaftNetworkFactory<TypeConfig> for SimNetwork {
    type Network = SimConn;

    async fn new_client(&mut self, target: NodeId, _node: &VoterNode) -> SimConn {
        SimConn {
            router: self.router.clone(),
            from: self.from,
            inc: self.inc,
            to: target,
        }
    }
}

impl RaftNetworkV2<TypeConfig> for SimConn {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let call = |r: Raft| async move { r.append_entries(rpc).await.map_err(|e| e.to_string()) };
        Ok(self.deliver(call).await?)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let call = |r: Raft| async move { r.vote(rpc).await.map_err(|e| e.to_string()) };
        Ok(self.deliver(call).await?)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let call = |r: Raft| async move { r.pre_vote(rpc).await.map_err(|e| e.to_string()) };
        Ok(self.deliver(call).await?)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let call = |r: Raft| async move {
            r.install_full_snapshot(vote, snapshot)
                .await
                .map_err(|e| e.to_string())
        };
        Ok(self.deliver(call).await?)
    }
}
