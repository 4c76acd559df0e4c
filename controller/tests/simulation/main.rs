//! Seeded simulation of a 3-voter metadata quorum.
//!
//! Three real Raft nodes — openraft with the crate's durable `LogStore` and
//! `StateMachine`, each in its own temp dir — talk through an in-memory
//! network that routes every RPC straight to the target's `Raft` handle,
//! after a fault model has had its say: partitioned links (both ways,
//! `Unreachable`), random message and response drops, random delays. A
//! driver picks steps from a seeded PRNG — write a batch of metadata
//! records through the leader, isolate a node, isolate the leader and write
//! to it, heal, crash a node (at most one down at a time), restart it,
//! snapshot, let time pass — and checks after every step:
//!
//! - at most one leader per term, over everything any node's metrics showed;
//! - every acknowledged write is durable on a majority: in the log at the
//!   index it was acknowledged at, or in a snapshot covering it;
//! - live nodes agree on every log entry both have committed;
//! - a node's published image covers everything Raft reports applied;
//! - nothing is acknowledged while no two live nodes can talk (in
//!   particular, by a leader isolated from both followers);
//! - a write is acknowledged whenever a majority is connected (liveness,
//!   within a generous virtual deadline).
//!
//! At the end everything is healed and restarted, and all three images must
//! be equal and hold every acknowledged write (whose log entry sits at the
//! same index on every node); then all three nodes restart from disk and
//! must converge again to the same image.
//!
//! Time is tokio's paused clock on a current-thread runtime: timers are
//! virtual and the clock jumps ahead whenever every task is idle. tokio
//! keeps the clock still while a `spawn_blocking` task (the log's fsyncs)
//! runs (`runtime/blocking/schedule.rs`, current-thread only), so real disk
//! latency never fires a virtual election timeout, and a crash can wait for
//! the crashed node's last file I/O by sleeping one virtual millisecond.
//! A crash cuts the node off the network, then shuts its Raft down; what it
//! had fsynced is all a restart finds.
//!
//! Replay: every failure message starts with `seed=N`; rerun that seed alone
//! with `SIM_SEED=N cargo test -p rivulet-controller --test simulation --
//! --nocapture`. `SIM_SEEDS=N` runs seeds 1..=N (default 20), `SIM_STEPS=N`
//! sets the steps per seed (default 40), `SIM_REPEAT=N` runs each seed N
//! times.
//!
//! A seed fixes the fault parameters and the driver's random stream, not
//! the whole history, so a replay may need a few repeats (`SIM_REPEAT`):
//! openraft draws election timeouts and its tick phase from an unseeded
//! `rand::rng()` (`TokioRuntime::thread_rng`; `openraft_rt::DeterministicRng`
//! would need another `AsyncRuntime` in the production `TypeConfig`), tokio
//! seeds `select!` fairness randomly unless built with `tokio_unstable`, and
//! the log's fsyncs finish on the blocking pool in real time, which orders
//! wake-ups within one virtual instant.

#[path = "../common/sim_network.rs"]
mod sim_network;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{InitializeError, RaftError};
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::{EntryPayload, ServerState};
use parking_lot::Mutex;
use rivulet_controller::raft::log_store::LogStore;
use rivulet_controller::raft::network::Raft;
use rivulet_controller::raft::state_machine::StateMachine;
use rivulet_controller::raft::types::{Command, Entry, LogId, NodeId, VoterNode};
use rivulet_controller::{ConfigResource, MetadataImage, MetadataRecord};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};
use uuid::Uuid;

use sim_network::{Rng, Router};

const VOTERS: [NodeId; 3] = [1, 2, 3];
/// How long a write may take while a majority is connected.
const LIVENESS: Duration = Duration::from_secs(30);
/// How long a write is tried while no majority is connected.
const NO_QUORUM_TRY: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------- leaders

/// Every (term, leader) any node's metrics showed, over the whole run.
#[derive(Default)]
struct Leaders {
    /// term -> (leader, the node that first showed it)
    by_term: BTreeMap<u64, (NodeId, NodeId)>,
    conflicts: Vec<String>,
}

impl Leaders {
    fn observe(&mut self, term: u64, leader: NodeId, witness: NodeId) {
        match self.by_term.get(&term) {
            None => {
                self.by_term.insert(term, (leader, witness));
            }
            Some((first, first_witness)) if *first != leader => {
                self.conflicts.push(format!(
                    "term {term}: node {first_witness} saw leader {first}, node {witness} saw leader {leader}"
                ));
            }
            Some(_) => {}
        }
    }
}

/// Record every leader a node's metrics show: itself while it leads, and
/// the leader of every vote it holds as committed (granted by a quorum).
fn watch_leaders(raft: &Raft, leaders: Arc<Mutex<Leaders>>) -> JoinHandle<()> {
    let mut rx = raft.metrics();
    tokio::spawn(async move {
        loop {
            {
                let m = rx.borrow_watched();
                let mut l = leaders.lock();
                if m.vote.committed {
                    l.observe(m.vote.leader_id.term, m.vote.leader_id.voted_for, m.id);
                }
                if m.state == ServerState::Leader {
                    l.observe(m.current_term, m.id, m.id);
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
}

// ---------------------------------------------------------------- the simulation

struct Node {
    raft: Raft,
    sm: StateMachine,
    log: LogStore,
    watcher: JoinHandle<()>,
}

/// An acknowledged write: its records and the log index it committed at.
#[derive(Debug, Clone)]
struct Write {
    topic: String,
    topic_id: Uuid,
    cmd: Command,
    index: u64,
}

/// What one node holds durably: its log, purge point and snapshot.
struct DurableView {
    entries: BTreeMap<u64, Entry>,
    purged: Option<u64>,
    snapshot: Option<Arc<MetadataImage>>,
}

impl DurableView {
    fn entry_is(&self, index: u64, cmd: &Command) -> bool {
        matches!(self.entries.get(&index).map(|e| &e.payload), Some(EntryPayload::Normal(c)) if c == cmd)
    }

    /// The write is in the log at its index, or in a snapshot past it.
    fn holds(&self, w: &Write) -> bool {
        if self.entry_is(w.index, &w.cmd) {
            return true;
        }
        self.purged.is_some_and(|p| p >= w.index)
            && self.snapshot.as_ref().is_some_and(|s| {
                s.offset >= w.index && s.topic(&w.topic).is_some_and(|t| t.id == w.topic_id)
            })
    }
}

#[derive(Debug, Default)]
struct Stats {
    acked: usize,
    refused_without_quorum: usize,
    isolated_leader_writes: usize,
    crashes: usize,
    partitions: usize,
    snapshots: usize,
}

struct Sim {
    seed: u64,
    rng: Rng,
    root: tempfile::TempDir,
    config: Arc<openraft::Config>,
    router: Router,
    nodes: BTreeMap<NodeId, Node>,
    down: Option<NodeId>,
    isolated: Option<NodeId>,
    incarnation: u64,
    leaders: Arc<Mutex<Leaders>>,
    acked: Vec<Write>,
    next_seq: u64,
    start: Instant,
    trace: Vec<String>,
    stats: Stats,
}

impl Sim {
    async fn new(seed: u64) -> Sim {
        let mut rng = Rng::new(seed);
        // The network draws from its own stream, so the driver's schedule
        // does not depend on how many messages were sent.
        let net_rng = Rng::new(rng.next_u64());
        let drop_percent = rng.range(0, 8);
        let max_delay_ms = rng.range(0, 60);
        let config = openraft::Config {
            cluster_name: "rivulet-sim".into(),
            // `QuorumConfig`'s defaults.
            heartbeat_interval: 100,
            election_timeout_min: 500,
            election_timeout_max: 1000,
            // Snapshot and purge often, so lagging nodes catch up by snapshot.
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(rng.range(5, 20)),
            max_in_snapshot_log_to_keep: rng.range(0, 4),
            ..Default::default()
        }
        .validate()
        .expect("valid raft config");
        let mut sim = Sim {
            seed,
            rng,
            root: tempfile::tempdir().expect("temp dir"),
            config: Arc::new(config),
            router: Router::new(net_rng, drop_percent, max_delay_ms),
            nodes: BTreeMap::new(),
            down: None,
            isolated: None,
            incarnation: 0,
            leaders: Arc::default(),
            acked: Vec::new(),
            next_seq: 0,
            start: Instant::now(),
            trace: Vec::new(),
            stats: Stats::default(),
        };
        sim.note(format!(
            "drop {drop_percent}% of messages and of responses, delay 0..={max_delay_ms} ms, {:?}, keep {} log entries behind a snapshot",
            sim.config.snapshot_policy, sim.config.max_in_snapshot_log_to_keep
        ));
        for id in VOTERS {
            sim.start_node(id).await;
        }
        let members: BTreeMap<NodeId, VoterNode> = VOTERS
            .iter()
            .map(|id| {
                (
                    *id,
                    VoterNode {
                        addr: format!("sim-{id}"),
                    },
                )
            })
            .collect();
        // As `ControllerNode::start` does: every voter bootstraps with the
        // same membership. (Bootstrapping one node only would leave the
        // others unable to elect anyone until its membership reached them,
        // so an early partition of that node would stall the majority.)
        for id in VOTERS {
            let raft = sim.nodes[&id].raft.clone();
            match raft.initialize(members.clone()).await {
                // It already voted for a candidate that bootstrapped first.
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => sim.fail(format!("node {id}: initialize: {e}")),
            }
        }
        let Some(leader) = sim.wait_for_leader(Duration::from_secs(10)).await else {
            sim.fail("no leader elected within 10 s of virtual time");
        };
        let t = sim.start.elapsed();
        sim.note(format!("node {leader} elected leader after {t:?}"));
        sim
    }

    fn dir_of(&self, id: NodeId) -> PathBuf {
        self.root.path().join(format!("node-{id}"))
    }

    fn note(&mut self, what: String) {
        let t = self.start.elapsed().as_secs_f64();
        self.trace.push(format!("[{t:>8.3}s] {what}"));
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        for id in VOTERS {
            let line = match self.nodes.get(&id) {
                None => "down".to_string(),
                Some(n) => {
                    let m = n.raft.metrics().borrow_watched().clone();
                    let idx = |l: Option<LogId>| l.map_or("-".to_string(), |l| l.index.to_string());
                    format!(
                        "{:?} term={} leader={:?} last_log={:?} committed={} applied={} snapshot={} purged={}",
                        m.state,
                        m.current_term,
                        m.current_leader,
                        m.last_log_index,
                        idx(m.local_committed),
                        idx(m.last_applied),
                        idx(m.snapshot),
                        idx(m.purged)
                    )
                }
            };
            let iso = if self.isolated == Some(id) {
                " (isolated)"
            } else {
                ""
            };
            out.push_str(&format!("\n    node {id}{iso}: {line}"));
        }
        out
    }

    #[track_caller]
    fn fail(&self, msg: impl std::fmt::Display) -> ! {
        let tail = self.trace.len().saturating_sub(20);
        panic!(
            "seed={seed} {msg}\n  replay: SIM_SEED={seed} cargo test -p rivulet-controller --test simulation\n  nodes:{}\n  last steps:\n    {}",
            self.describe(),
            self.trace[tail..].join("\n    "),
            seed = self.seed,
        );
    }

    async fn start_node(&mut self, id: NodeId) {
        let dir = self.dir_of(id);
        let log = LogStore::open(&dir)
            .unwrap_or_else(|e| self.fail(format!("node {id}: cannot open its log: {e}")));
        let (sm, _) = StateMachine::open(&dir).unwrap_or_else(|e| {
            self.fail(format!("node {id}: cannot open its state machine: {e}"))
        });
        self.incarnation += 1;
        let network = self.router.network(id, self.incarnation);
        let raft = Raft::new(id, self.config.clone(), network, log.clone(), sm.clone())
            .await
            .unwrap_or_else(|e| self.fail(format!("node {id}: raft does not start: {e}")));
        self.router.connect(id, self.incarnation, raft.clone());
        let watcher = watch_leaders(&raft, self.leaders.clone());
        self.nodes.insert(
            id,
            Node {
                raft,
                sm,
                log,
                watcher,
            },
        );
    }

    /// Crash a node: it stops sending and receiving at once, then its Raft
    /// stops. What it made durable stays in its dir.
    async fn stop_node(&mut self, id: NodeId) {
        self.router.disconnect(id);
        let Some(node) = self.nodes.remove(&id) else {
            return;
        };
        let _ = node.raft.shutdown().await;
        node.watcher.abort();
        drop(node);
        // `shutdown` joins the Raft core but not the state machine worker,
        // which may still be persisting a snapshot. The paused clock cannot
        // advance while a blocking task runs, so once this virtual
        // millisecond has passed no file I/O of the old incarnation is in
        // flight, and reopening its files is safe.
        sleep(Duration::from_millis(1)).await;
    }

    fn leaders_now(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.raft.metrics().borrow_watched().state == ServerState::Leader)
            .map(|(id, _)| *id)
            .collect()
    }

    /// A leader that a majority follows: not the isolated node.
    async fn wait_for_leader(&mut self, within: Duration) -> Option<NodeId> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let isolated = self.isolated;
            if let Some(l) = self
                .leaders_now()
                .into_iter()
                .find(|l| Some(*l) != isolated)
            {
                return Some(l);
            }
            sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Whether two live nodes can talk to each other.
    fn majority_connected(&self) -> bool {
        let usable = VOTERS
            .iter()
            .filter(|id| self.nodes.contains_key(id) && self.isolated != Some(**id))
            .count();
        usable >= 2
    }

    fn next_write(&mut self) -> Write {
        let seq = self.next_seq;
        self.next_seq += 1;
        let topic = format!("sim-{seq:04}");
        let topic_id = Uuid::from_u64_pair(self.seed, seq);
        let mut records = vec![MetadataRecord::Topic {
            name: topic.clone(),
            topic_id,
            configs: BTreeMap::new(),
        }];
        if self.rng.chance(50) {
            records.push(MetadataRecord::Partition {
                topic_id,
                partition: 0,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2, 3],
                leader: self.rng.range(1, 3) as i32,
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        if self.rng.chance(50) {
            records.push(MetadataRecord::ProducerIds {
                broker_id: 1,
                next_producer_id: (seq as i64 + 1) * 1000,
            });
        }
        if self.rng.chance(50) {
            // The last writer wins: images agree only if applied in one order.
            records.push(MetadataRecord::Config {
                resource: ConfigResource::Broker(1),
                name: "sim.last.write".into(),
                value: Some(seq.to_string()),
            });
        }
        Write {
            topic,
            topic_id,
            cmd: Command { records },
            index: 0,
        }
    }

    /// Propose `cmd` through whoever claims to lead, following redirects and
    /// retrying (a fresh leader refuses writes until its lease is
    /// quorum-acked) until `budget` of virtual time is spent. Returns the
    /// node that acknowledged it and the log index.
    async fn propose(&mut self, cmd: &Command, budget: Duration) -> Option<(NodeId, u64)> {
        let deadline = Instant::now() + budget;
        let mut hint: Option<NodeId> = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let id = match hint.take().filter(|h| self.nodes.contains_key(h)) {
                Some(h) => h,
                None => {
                    let leaders = self.leaders_now();
                    let live: Vec<NodeId> = self.nodes.keys().copied().collect();
                    self.rng
                        .pick(if leaders.is_empty() { &live } else { &leaders })
                }
            };
            let raft = self.nodes[&id].raft.clone();
            let attempt = (deadline - now).min(Duration::from_secs(2));
            match timeout(attempt, raft.client_write(cmd.clone())).await {
                Ok(Ok(resp)) => return Some((id, resp.log_id.index)),
                Ok(Err(e)) => hint = e.forward_to_leader().and_then(|f| f.leader_id),
                Err(_) => {}
            }
            let backoff = if hint.is_some() { 5 } else { 50 };
            sleep(Duration::from_millis(backoff)).await;
        }
    }

    fn acknowledge(&mut self, mut w: Write, by: NodeId, index: u64) {
        if let Some(prev) = self.acked.last() {
            if index <= prev.index {
                self.fail(format!(
                    "write {} acknowledged at index {index}, not after the previous acknowledged write at {}",
                    w.topic, prev.index
                ));
            }
        }
        let visible = self.nodes[&by].sm.image().topic(&w.topic).map(|t| t.id);
        if visible != Some(w.topic_id) {
            self.fail(format!(
                "node {by} acknowledged {} at index {index} but its image does not show it",
                w.topic
            ));
        }
        w.index = index;
        self.acked.push(w);
        self.stats.acked += 1;
    }

    // ------------------------------------------------------------ steps

    async fn step(&mut self) {
        match self.rng.below(100) {
            0..=34 => self.step_write().await,
            35..=42 => self.step_isolate_leader().await,
            43..=52 => self.step_isolate_random(),
            53..=64 => self.step_heal(),
            65..=74 => self.step_crash().await,
            75..=86 => self.step_restart().await,
            87..=94 => self.step_advance().await,
            _ => self.step_snapshot().await,
        }
    }

    async fn step_write(&mut self) {
        let w = self.next_write();
        let quorum = self.majority_connected();
        let budget = if quorum { LIVENESS } else { NO_QUORUM_TRY };
        let t0 = Instant::now();
        let outcome = self.propose(&w.cmd, budget).await;
        let took = t0.elapsed();
        match (outcome, quorum) {
            (Some((by, index)), true) => {
                self.note(format!(
                    "write {} ({} records): acknowledged by {by} at index {index} after {took:?}",
                    w.topic,
                    w.cmd.records.len()
                ));
                self.acknowledge(w, by, index);
            }
            (Some((by, index)), false) => self.fail(format!(
                "write {} acknowledged by node {by} at index {index} while no two live nodes could talk",
                w.topic
            )),
            (None, true) => self.fail(format!(
                "write {} not acknowledged within {LIVENESS:?} although a majority is connected",
                w.topic
            )),
            (None, false) => {
                self.stats.refused_without_quorum += 1;
                self.note(format!("write {}: not acknowledged without a quorum (as expected)", w.topic));
            }
        }
    }

    /// Cut the leader off from both followers and write to it: it must not
    /// acknowledge anything while isolated.
    async fn step_isolate_leader(&mut self) {
        if self.isolated.is_some() || !self.majority_connected() {
            return self.step_heal();
        }
        let Some(leader) = self.wait_for_leader(Duration::from_secs(5)).await else {
            return self.note("isolate leader: no leader yet".into());
        };
        self.router.isolate(leader, &VOTERS);
        self.isolated = Some(leader);
        self.stats.partitions += 1;
        self.stats.isolated_leader_writes += 1;
        let w = self.next_write();
        let wait = Duration::from_millis(self.rng.range(100, 3000));
        let raft = self.nodes[&leader].raft.clone();
        let outcome = match timeout(wait, raft.client_write(w.cmd.clone())).await {
            Ok(Ok(resp)) => self.fail(format!(
                "leader {leader}, isolated from both followers, acknowledged {} at index {}",
                w.topic, resp.log_id.index
            )),
            Ok(Err(e)) => format!("refused: {e}"),
            Err(_) => format!("no answer within {wait:?}"),
        };
        self.note(format!(
            "isolate leader {leader}; write {} to it: {outcome}",
            w.topic
        ));
    }

    fn step_isolate_random(&mut self) {
        if self.isolated.is_some() {
            return self.step_heal();
        }
        let id = self.rng.pick(&VOTERS);
        self.router.isolate(id, &VOTERS);
        self.isolated = Some(id);
        self.stats.partitions += 1;
        self.note(format!("isolate node {id}"));
    }

    fn step_heal(&mut self) {
        self.router.heal();
        self.isolated = None;
        self.note("heal".into());
    }

    async fn step_crash(&mut self) {
        if self.down.is_some() {
            return self.step_restart().await;
        }
        let leaders = self.leaders_now();
        let id = if !leaders.is_empty() && self.rng.chance(50) {
            self.rng.pick(&leaders)
        } else {
            self.rng.pick(&VOTERS)
        };
        self.stop_node(id).await;
        self.down = Some(id);
        self.stats.crashes += 1;
        self.note(format!("crash node {id}"));
    }

    async fn step_restart(&mut self) {
        let Some(id) = self.down.take() else {
            return self.step_advance().await;
        };
        self.start_node(id).await;
        self.note(format!("restart node {id}"));
    }

    async fn step_advance(&mut self) {
        let d = Duration::from_millis(self.rng.range(10, 3000));
        sleep(d).await;
        self.note(format!("advance {d:?}"));
    }

    async fn step_snapshot(&mut self) {
        let live: Vec<NodeId> = self.nodes.keys().copied().collect();
        let id = self.rng.pick(&live);
        let _ = self.nodes[&id].raft.trigger().snapshot().await;
        self.stats.snapshots += 1;
        self.note(format!("trigger a snapshot on node {id}"));
    }

    // ------------------------------------------------------------ invariants

    /// A node's durable state: the live store's memory (which holds exactly
    /// what was fsynced) or, for a crashed node, its files reopened.
    async fn durable_view(&self, id: NodeId) -> DurableView {
        let dir = self.dir_of(id);
        let mut log = match self.nodes.get(&id) {
            Some(n) => n.log.clone(),
            None => LogStore::open(&dir).unwrap_or_else(|e| {
                self.fail(format!("crashed node {id}: log does not reopen: {e}"))
            }),
        };
        let entries = log
            .try_get_log_entries(..)
            .await
            .unwrap_or_else(|e| self.fail(format!("node {id}: cannot read its log: {e}")));
        let purged = log
            .get_log_state()
            .await
            .unwrap_or_else(|e| self.fail(format!("node {id}: cannot read its log state: {e}")))
            .last_purged_log_id
            .map(|l| l.index);
        let snapshot = purged.map(|_| read_snapshot(&dir).unwrap_or_else(|e| self.fail(e)));
        DurableView {
            entries: entries.into_iter().map(|e| (e.log_id.index, e)).collect(),
            purged,
            snapshot,
        }
    }

    async fn check_invariants(&mut self) {
        if let Some(c) = self.leaders.lock().conflicts.first() {
            self.fail(format!("two leaders in one term: {c}"));
        }
        let mut views = BTreeMap::new();
        for id in VOTERS {
            views.insert(id, self.durable_view(id).await);
        }
        for w in &self.acked {
            let holders: Vec<NodeId> = VOTERS.into_iter().filter(|id| views[id].holds(w)).collect();
            if holders.len() < 2 {
                self.fail(format!(
                    "acknowledged write {} (index {}) is durable only on {holders:?}",
                    w.topic, w.index
                ));
            }
        }
        // What a node publishes includes everything Raft reports applied
        // (the image is published before `apply` returns).
        for (id, n) in &self.nodes {
            let applied = n.raft.metrics().borrow_watched().last_applied;
            let published = n.sm.image().offset;
            if let Some(applied) = applied.filter(|a| a.index > published) {
                self.fail(format!(
                    "node {id} applied index {} but publishes an image at offset {published}",
                    applied.index
                ));
            }
        }
        // Live nodes agree on every entry both have committed.
        let committed: BTreeMap<NodeId, u64> = self
            .nodes
            .iter()
            .filter_map(|(id, n)| {
                let m = n.raft.metrics().borrow_watched().local_committed;
                m.map(|c| (*id, c.index))
            })
            .collect();
        for (a, ca) in &committed {
            for (b, cb) in committed.range(a + 1..) {
                let limit = (*ca).min(*cb);
                for (idx, ea) in views[a].entries.range(..=limit) {
                    let Some(eb) = views[b].entries.get(idx) else {
                        continue;
                    };
                    let (ja, jb) = (json(ea), json(eb));
                    if ja != jb {
                        self.fail(format!(
                            "committed entry {idx} differs: node {a} has {ja}, node {b} has {jb}"
                        ));
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------ the end

    /// Wait until every live node has applied its whole log and all logs
    /// end at the same index; then each node's published image must be at
    /// that index. Returns the index.
    async fn quiesce(&mut self, phase: &str) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        let settled = loop {
            let mut ends = BTreeSet::new();
            // A leader whose own term's first entry (its blank) is applied.
            let mut settled_leader = false;
            for n in self.nodes.values() {
                let m = n.raft.metrics().borrow_watched().clone();
                ends.insert((m.last_log_index, m.last_applied.map(|l| l.index)));
                settled_leader |= m.state == ServerState::Leader
                    && m.last_applied.map(|l| l.leader_id.term) == Some(m.current_term);
            }
            match ends.first() {
                Some((Some(log), Some(applied)))
                    if ends.len() == 1 && log == applied && settled_leader =>
                {
                    break *applied;
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                self.fail(format!(
                    "{phase}: nodes did not settle on one applied log within 60 s: (last log, applied) = {ends:?}"
                ));
            }
            sleep(Duration::from_millis(20)).await;
        };
        for (id, n) in &self.nodes {
            let published = n.sm.image().offset;
            if published != settled {
                self.fail(format!(
                    "{phase}: node {id} applied the log up to index {settled} but its published image is at offset {published}"
                ));
            }
        }
        settled
    }

    /// Heal, restart the crashed node, commit a barrier write, wait until
    /// every node has applied the same log, and compare the images.
    async fn converge(&mut self, phase: &str) -> Arc<MetadataImage> {
        self.router.heal();
        self.isolated = None;
        self.router.set_drop_percent(0);
        if let Some(id) = self.down.take() {
            self.start_node(id).await;
        }
        // Whatever the last entry is (often a new leader's blank entry),
        // every node must publish an image of everything it applied.
        self.quiesce(phase).await;
        let barrier = self.next_write();
        let Some((by, index)) = self.propose(&barrier.cmd, Duration::from_secs(60)).await else {
            self.fail(format!(
                "{phase}: barrier write not acknowledged within 60 s after healing"
            ));
        };
        self.note(format!(
            "{phase}: barrier {} acknowledged at {index}",
            barrier.topic
        ));
        self.acknowledge(barrier, by, index);
        let applied = self.quiesce(phase).await;
        if applied < index {
            self.fail(format!(
                "{phase}: nodes settled at {applied}, before the barrier at {index}"
            ));
        }

        let images: BTreeMap<NodeId, Arc<MetadataImage>> = self
            .nodes
            .iter()
            .map(|(id, n)| (*id, n.sm.image()))
            .collect();
        let first = images[&VOTERS[0]].clone();
        for (id, image) in &images {
            if **image != *first {
                self.fail(format!(
                    "{phase}: images differ: node {} {} vs node {id} {}",
                    VOTERS[0],
                    summary(&first),
                    summary(image)
                ));
            }
        }
        let views: Vec<(NodeId, DurableView)> = {
            let mut v = Vec::new();
            for id in VOTERS {
                v.push((id, self.durable_view(id).await));
            }
            v
        };
        for w in &self.acked {
            if first.topic(&w.topic).map(|t| t.id) != Some(w.topic_id) {
                self.fail(format!(
                    "{phase}: acknowledged write {} is missing from the images",
                    w.topic
                ));
            }
            for (id, view) in &views {
                let in_place = view.entry_is(w.index, &w.cmd);
                let purged = view.purged.is_some_and(|p| p >= w.index);
                if !in_place && !purged {
                    self.fail(format!(
                        "{phase}: node {id} has another entry at index {} where {} was acknowledged",
                        w.index, w.topic
                    ));
                }
            }
        }
        self.check_invariants().await;
        first
    }

    async fn finish(mut self) -> String {
        let before = self.converge("after healing").await;
        // Every node down at once, then back from its files alone.
        for id in VOTERS {
            self.stop_node(id).await;
        }
        for id in VOTERS {
            self.start_node(id).await;
        }
        self.note("restarted all nodes from disk".into());
        let after = self.converge("after restarting all").await;
        for (id, topic) in &before.topics {
            if after.topics.get(id) != Some(topic) {
                self.fail(format!(
                    "topic {} changed across a full restart",
                    topic.name
                ));
            }
        }
        for id in VOTERS {
            self.stop_node(id).await;
        }
        let leaders = self.leaders.lock().by_term.len();
        format!(
            "{:?}, {leaders} terms with a leader, {:.0} s virtual",
            self.stats,
            self.start.elapsed().as_secs_f64()
        )
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("<unserializable: {e}>"))
}

fn summary(image: &MetadataImage) -> String {
    format!(
        "(offset {}, {} topics, next producer id {}, broker configs {:?})",
        image.offset,
        image.topics.len(),
        image.next_producer_id,
        image.broker_configs
    )
}

/// The image in a node's `snapshot.json`, read without touching it.
fn read_snapshot(dir: &Path) -> Result<Arc<MetadataImage>, String> {
    StateMachine::open(dir)
        .map(|(sm, _)| sm.image())
        .map_err(|e| format!("snapshot in {} does not load: {e}", dir.display()))
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
    )
}

fn run_seed(seed: u64, steps: u64) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let mut sim = Sim::new(seed).await;
        for _ in 0..steps {
            sim.step().await;
            sim.check_invariants().await;
        }
        sim.finish().await
    })
}

#[test]
fn three_voters_keep_acknowledged_metadata_through_crashes_and_partitions() {
    let steps = env_u64("SIM_STEPS").unwrap_or(40);
    let repeat = env_u64("SIM_REPEAT").unwrap_or(1);
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(seed) => vec![seed],
        None => (1..=env_u64("SIM_SEEDS").unwrap_or(20)).collect(),
    };
    for seed in seeds {
        for _ in 0..repeat {
            let t0 = std::time::Instant::now();
            match std::panic::catch_unwind(|| run_seed(seed, steps)) {
                Ok(summary) => println!("seed={seed}: ok in {:?}; {summary}", t0.elapsed()),
                Err(panic) => {
                    eprintln!(
                        "seed={seed} FAILED; replay with SIM_SEED={seed} (and SIM_STEPS={steps}, SIM_REPEAT=20 to retry it) cargo test -p rivulet-controller --test simulation"
                    );
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
}
