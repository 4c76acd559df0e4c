//! The simulated cluster: three Raft nodes on the in-memory network, the
//! writes acknowledged so far, and what the driver needs to run it —
//! starting and crashing nodes, finding the leader, building and proposing
//! writes, recording acknowledgements, and the seeded failure report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{InitializeError, RaftError};
use openraft::ServerState;
use parking_lot::Mutex;
use rivulet_controller::raft::log_store::LogStore;
use rivulet_controller::raft::network::Raft;
use rivulet_controller::raft::state_machine::StateMachine;
use rivulet_controller::raft::types::{Command, LogId, NodeId, VoterNode};
use rivulet_controller::{ConfigResource, MetadataRecord};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};
use uuid::Uuid;

use crate::leaders::{watch_leaders, Leaders};
use crate::sim_network::{Rng, Router};
use crate::VOTERS;

pub(crate) struct Node {
    pub(crate) raft: Raft,
    pub(crate) sm: StateMachine,
    pub(crate) log: LogStore,
    watcher: JoinHandle<()>,
}

/// An acknowledged write: its records and the log index it committed at.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    pub(crate) topic: String,
    pub(crate) topic_id: Uuid,
    pub(crate) cmd: Command,
    pub(crate) index: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) acked: usize,
    pub(crate) refused_without_quorum: usize,
    pub(crate) isolated_leader_writes: usize,
    pub(crate) crashes: usize,
    pub(crate) partitions: usize,
    pub(crate) snapshots: usize,
}

pub(crate) struct Sim {
    seed: u64,
    pub(crate) rng: Rng,
    root: tempfile::TempDir,
    config: Arc<openraft::Config>,
    pub(crate) router: Router,
    pub(crate) nodes: BTreeMap<NodeId, Node>,
    pub(crate) down: Option<NodeId>,
    pub(crate) isolated: Option<NodeId>,
    incarnation: u64,
    pub(crate) leaders: Arc<Mutex<Leaders>>,
    pub(crate) acked: Vec<Write>,
    next_seq: u64,
    pub(crate) start: Instant,
    trace: Vec<String>,
    pub(crate) stats: Stats,
}

impl Sim {
    pub(crate) async fn new(seed: u64) -> Sim {
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

    pub(crate) fn dir_of(&self, id: NodeId) -> PathBuf {
        self.root.path().join(format!("node-{id}"))
    }

    pub(crate) fn note(&mut self, what: String) {
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
    pub(crate) fn fail(&self, msg: impl std::fmt::Display) -> ! {
        let tail = self.trace.len().saturating_sub(20);
        panic!(
            "seed={seed} {msg}\n  replay: SIM_SEED={seed} cargo test -p rivulet-controller --test simulation\n  nodes:{}\n  last steps:\n    {}",
            self.describe(),
            self.trace[tail..].join("\n    "),
            seed = self.seed,
        );
    }

    pub(crate) async fn start_node(&mut self, id: NodeId) {
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
    pub(crate) async fn stop_node(&mut self, id: NodeId) {
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

    pub(crate) fn leaders_now(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.raft.metrics().borrow_watched().state == ServerState::Leader)
            .map(|(id, _)| *id)
            .collect()
    }

    /// A leader that a majority follows: not the isolated node.
    pub(crate) async fn wait_for_leader(&mut self, within: Duration) -> Option<NodeId> {
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
    pub(crate) fn majority_connected(&self) -> bool {
        let usable = VOTERS
            .iter()
            .filter(|id| self.nodes.contains_key(id) && self.isolated != Some(**id))
            .count();
        usable >= 2
    }

    pub(crate) fn next_write(&mut self) -> Write {
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
    pub(crate) async fn propose(
        &mut self,
        cmd: &Command,
        budget: Duration,
    ) -> Option<(NodeId, u64)> {
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

    pub(crate) fn acknowledge(&mut self, mut w: Write, by: NodeId, index: u64) {
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
}
