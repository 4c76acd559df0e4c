//! Seeded, deterministic simulation of one partition's replication across
//! node crashes, restarts and network partitions, driven through the
//! project's own decision code:
//!
//! - the leader's rules from `rivulet_broker::replication` (`Followers`,
//!   `high_watermark`, `isr_update`, `diverging_epoch`, `truncation_offset`);
//! - the controller's `rivulet_controller::logic` (register, heartbeat and
//!   unfence, session expiry and `fence_broker`, `alter_partition`,
//!   preferred leader election), its records applied to `MetadataImage`s as
//!   the quorum applies them;
//! - one `rivulet_storage::LeaderEpochCache` per replica, persisted in its
//!   own temp dir (in `/dev/shm` when there is one, so the checkpoint
//!   fsyncs stay cheap) and reloaded from disk on restart.
//!
//! Around them the driver mirrors the async shell step for step:
//! `ReplicaManager::ensure_partition` (a new leader assigns its epoch start
//! and restarts follower tracking; a sole ISR member's HW jumps to its log
//! end), the produce path and `wait_for_high_watermark` (durable first —
//! `FlushTracker::wait_durable`, whose fsync may take many steps — then
//! leadership in the epoch of the append, then the HW), the leader side of
//! a follower fetch in `handlers/fetch.rs`, the fetcher's
//! `build_request`/`apply_response` (one fetcher per leader, responses
//! checked against the leader epoch they were asked under, HW = min(leader
//! HW, local log end), on-ack fsync before the next fetch),
//! `PartitionLog::truncate_to`/`open`, `maintain_isr` (one AlterPartition in
//! flight per leader) and `register_and_heartbeat`. Each replica's log is a
//! `Vec` of `(leader epoch, value)` (offset = index), with what its
//! `FlushTracker` believes durable and what is. Messages (fetch requests
//! and responses, AlterPartition) sit in a network bag and are delivered in
//! random order, dropped on a cut link, so a deposed leader can go on
//! serving followers that have not heard of its successor. Where the flow
//! has a known, unfixed bug the driver departs from it as Kafka does, and
//! says so ([`AsIs`]).
//!
//! Each node is a broker with its own metadata image (its controller
//! voter's state machine: it survives a restart and lags the controller
//! until the node syncs). The controller itself is always available; a node
//! cut off from it misses heartbeats and is fenced after the session
//! timeout. Steps, chosen by a splitmix64 stream: produce (acks=all with
//! `min.insync.replicas=2`, or acks=1) to any node that believes it leads,
//! follower fetch, message delivery, metadata sync, ISR check, time jumps,
//! preferred leader election, HW checkpoint, crash (process: the log and
//! epoch cache survive; in the power-loss configurations also a loss of
//! what is not on disk), restart, controlled shutdown, partitions (node
//! from everyone, from the controller only, from the other nodes only, one
//! link) and heal.
//!
//! Checked after every step:
//! 1. every acknowledged record is at its offset, with its value, on the
//!    leader and on every ISR member (controller's view); records below any
//!    leader's high watermark (committed) never change, and every ISR member
//!    holds all of them (process crashes only: under power loss only
//!    acknowledged records are promised);
//! 2. a leader's HW never moves back within one epoch of one process, and
//!    never exceeds the log end of any member of the ISR it computes with
//!    (process crashes only: a power loss can take committed records that
//!    were never fsynced, and the HW that covered them, with it);
//! 3. one leader per leader epoch (controller, every node's image and every
//!    append agree); leader epochs never go back;
//! 4. every replica's epoch cache describes its log.
//!
//! At the end everything heals and restarts and the cluster runs to
//! quiescence: every replica must be back in the ISR with a log identical
//! to the leader's, holding every acknowledged record.
//!
//! Configurations (chosen by `seed % 4`): 3 replicas, 5 replicas, 3
//! replicas with power loss, and 3 with more power losses and slow fsyncs.
//! Environment:
//! - `REPL_SIM_SEEDS=N` runs seeds `0..N` (default 1000, a few seconds);
//! - `REPL_SIM_SEED=N` runs seed N alone (replay a failure);
//! - `REPL_SIM_STEPS=N` sets the steps per seed (default 400).
//!
//! A failure names the seed, configuration and step, and prints the last
//! events and every replica's state.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use rivulet_broker::replication::{self, Followers, LeaderView};
use rivulet_controller::logic::{self, BrokerHeartbeats};
use rivulet_controller::{
    Listener, MetadataImage, MetadataRecord, PartitionRegistration, NO_LEADER,
};
use rivulet_storage::{LeaderEpochCache, LogConfig};
use tempfile::TempDir;
use uuid::Uuid;

const TOPIC: &str = "sim";
const MIN_INSYNC_REPLICAS: &str = "2";
/// `replica.lag.time.max.ms`.
const LAG_MAX_MS: u64 = 4_000;
/// The controller's broker session timeout.
const SESSION_TIMEOUT_MS: i64 = 3_000;
const HEARTBEAT_INTERVAL_MS: u64 = 500;
/// How long an acks=all produce waits for the high watermark.
const ACK_TIMEOUT_MS: u64 = 10_000;
/// Most records one follower fetch returns.
const MAX_FETCH_RECORDS: u64 = 4;
/// The controller's end of a network link.
const CONTROLLER: i32 = 0;
/// Rounds the final phase may take to reach quiescence.
const SETTLE_ROUNDS: usize = 400;

/// Two bugs this simulation found in the broker's shell, since fixed there
/// (`ReplicaManager`'s pending ISR, `follow_image`'s initial catch-up); the
/// driver follows the fixed flow by default, and each switch brings the old
/// flow back for a test that proves the invariants still catch it.
#[derive(Debug, Default, Clone, Copy)]
struct AsIs {
    /// [`KNOWN_BUG_LAST_SEEN_ISR`]: compute the leader's HW over the ISR of
    /// its last image only.
    last_seen_isr: bool,
    /// [`KNOWN_BUG_STALE_IMAGE_ON_RESTART`]: a restarted broker acts on its
    /// persisted image before it has registered and caught up.
    serve_stale_image: bool,
}

/// `ReplicaManager` computed a leader's HW over the ISR of the last image it
/// applied. Between its AlterPartition being committed and the new image
/// reaching it, a follower it asked to add is in the ISR but does not hold
/// the HW back, so the leader acknowledges records that ISR member lacks;
/// if the leader dies then, that member can be elected and the records are
/// lost. Kafka computes the HW over the "maximal ISR" (current ∪ requested,
/// KIP-497) while an ISR change is pending, and proposes no other change
/// meanwhile; so does this driver, also in the two places that set the HW
/// to the log end when the leader is alone in the ISR (`append`,
/// `ensure_partition`: with an expansion pending it is not alone); so does
/// `ReplicaManager` now (`PendingIsr`).
const KNOWN_BUG_LAST_SEEN_ISR: u64 = 108;

/// A restarted broker followed its persisted metadata image at once
/// (`follow_image` starts before `register_and_heartbeat` has registered),
/// so a leader leads again, in its old epoch, until it registers and learns
/// otherwise — which may be long when it cannot reach the controller.
/// - After a crash before it saw its own ISR expansion, its HW can pass a
///   real ISR member's log end: consumers read records the elected leader
///   lacks (seed 88 with process crashes only).
/// - After a power loss took its unflushed suffix, it appends other records
///   at the same offsets in the same epoch. A follower still holding the
///   old ones passes the divergence check (same epoch), so acks=all
///   acknowledges records no ISR member has, and replicas fork for good
///   (this seed: an acknowledged record lost).
///
/// Kafka's broker serves nothing until it has caught up with the metadata
/// log after registering (`BrokerLifecycleManager.initialCatchUpFuture`),
/// and registering fences the old incarnation into a new leader epoch; so
/// do this driver and now `follow_image` (it acts on no image before the
/// one holding its own registration).
const KNOWN_BUG_STALE_IMAGE_ON_RESTART: u64 = 106;

#[derive(Clone, Copy, Debug)]
struct Config {
    replicas: i32,
    power_loss: bool,
    /// More power losses and slow fsyncs.
    storm: bool,
}

const CONFIGS: [Config; 4] = [
    Config {
        replicas: 3,
        power_loss: false,
        storm: false,
    },
    Config {
        replicas: 5,
        power_loss: false,
        storm: false,
    },
    Config {
        replicas: 3,
        power_loss: true,
        storm: false,
    },
    Config {
        replicas: 3,
        power_loss: true,
        storm: true,
    },
];

fn config_for(seed: u64) -> Config {
    CONFIGS[(seed % CONFIGS.len() as u64) as usize]
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Produce,
    Fetch,
    Deliver,
    MetaSync,
    IsrCheck,
    TimeJump,
    PreferredElection,
    HwCheckpoint,
    Crash,
    Restart,
    PowerLoss,
    Shutdown,
    Partition,
    Heal,
}

/// How often each step is picked, in parts per thousand.
fn weights(cfg: Config) -> [(Action, u64); 14] {
    let (power_loss, partition) = match (cfg.power_loss, cfg.storm) {
        (false, _) => (0, 9),
        (true, false) => (8, 9),
        (true, true) => (15, 5),
    };
    [
        (Action::Produce, 150),
        (Action::Fetch, 230),
        (Action::Deliver, 300),
        (Action::MetaSync, 120),
        (Action::IsrCheck, 80),
        (Action::TimeJump, 15),
        (Action::PreferredElection, 8),
        (Action::HwCheckpoint, 15),
        (Action::Crash, 6),
        (Action::Restart, 30),
        (Action::PowerLoss, power_loss),
        (Action::Shutdown, 2),
        (Action::Partition, partition),
        (Action::Heal, 23),
    ]
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len() as u64) as usize])
    }

    fn uuid(&mut self) -> Uuid {
        Uuid::from_u128((u128::from(self.next()) << 64) | u128::from(self.next()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    epoch: i32,
    value: u64,
}

/// What `ReplicaManager::ensure_partition` keeps from the image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReplicaState {
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    min_isr: usize,
}

/// A parked acks=all produce.
#[derive(Debug)]
struct Waiter {
    offset: i64,
    value: u64,
    /// The leader epoch it was appended in.
    leader_epoch: i32,
    /// The fsync `wait_durable` is waiting for: `(done at tick, log end it
    /// started at, truncations then)`.
    fsync: Option<(u64, i64, u64)>,
    /// Past `wait_durable`; then the HW wait runs until the deadline.
    deadline_ms: Option<u64>,
}

#[derive(Debug)]
struct Fetcher {
    generation: u64,
    in_flight: bool,
}

struct Node {
    id: i32,
    dir: TempDir,
    alive: bool,
    incarnation: Uuid,
    // What survives a process crash.
    log: Vec<Entry>,
    /// What the log's `FlushTracker` believes is durable.
    flushed: i64,
    /// What is durable: all a power loss leaves.
    disk: i64,
    /// Truncations so far (an fsync that spans one covers none of what was
    /// appended after it).
    truncations: u64,
    hw_checkpoint: i64,
    image: MetadataImage,
    cache: LeaderEpochCache,
    // Process memory.
    state: Option<ReplicaState>,
    hw: i64,
    followers: Followers,
    registered: bool,
    last_heartbeat_ms: u64,
    fetchers: BTreeMap<i32, Fetcher>,
    isr_in_flight: bool,
    /// The AlterPartition in flight, as `(leader epoch, partition epoch,
    /// new ISR)`, while the HW is computed over the maximal ISR.
    pending_isr: Option<(i32, i32, Vec<i32>)>,
    waiters: Vec<Waiter>,
}

impl Node {
    fn leo(&self) -> i64 {
        self.log.len() as i64
    }

    fn leads(&self) -> bool {
        self.alive && self.state.as_ref().is_some_and(|s| s.leader == self.id)
    }

    /// The ISR the leader computes its HW over: the one in its image, and
    /// while it waits for its AlterPartition also every member of the ISR
    /// it asked for (see [`KNOWN_BUG_LAST_SEEN_ISR`]).
    fn hw_isr(&self) -> Vec<i32> {
        let Some(s) = &self.state else {
            return Vec::new();
        };
        let mut isr = s.isr.clone();
        if let Some((le, pe, new_isr)) = &self.pending_isr {
            if (*le, *pe) == (s.leader_epoch, s.partition_epoch) {
                isr.extend(new_isr.iter().filter(|r| !s.isr.contains(r)));
            }
        }
        isr
    }

    /// `Partition::advance_high_watermark`: raise, never lower.
    fn advance_hw(&mut self) {
        if self.state.as_ref().is_none_or(|s| s.leader != self.id) {
            return;
        }
        let hw = replication::high_watermark(self.id, self.leo(), &self.hw_isr(), &self.followers);
        if hw > self.hw {
            self.hw = hw.clamp(0, self.leo());
        }
    }

    /// `PartitionLog::truncate_to` (log start is always 0 here).
    fn truncate_to(&mut self, offset: i64) {
        if offset >= self.leo() {
            let leo = self.leo();
            self.cache.truncate_from_end(leo).expect("epoch cache");
            return;
        }
        self.log.truncate(offset as usize);
        self.hw = self.hw.min(offset);
        self.flushed = self.flushed.min(offset);
        self.disk = self.disk.min(offset);
        self.truncations += 1;
        self.cache.truncate_from_end(offset).expect("epoch cache");
    }

    fn summary(&self) -> String {
        let mut runs: Vec<(i32, usize)> = Vec::new();
        for e in &self.log {
            match runs.last_mut() {
                Some((epoch, n)) if *epoch == e.epoch => *n += 1,
                _ => runs.push((e.epoch, 1)),
            }
        }
        let runs: Vec<String> = runs.iter().map(|(e, n)| format!("e{e}x{n}")).collect();
        let cache: Vec<String> = self
            .cache
            .entries()
            .iter()
            .map(|e| format!("{}@{}", e.epoch, e.start_offset))
            .collect();
        let state = self.state.as_ref().map_or("-".to_string(), |s| {
            format!(
                "leader {} epoch {} pe {} isr {:?}",
                s.leader, s.leader_epoch, s.partition_epoch, s.isr
            )
        });
        format!(
            "node {} {} | {state} | leo {} hw {} flushed {} disk {} | log [{}] | cache [{}] | progress {:?}",
            self.id,
            if self.alive { "up" } else { "DOWN" },
            self.leo(),
            self.hw,
            self.flushed,
            self.disk,
            runs.join(" "),
            cache.join(" "),
            self.followers.progress,
        )
    }
}

#[derive(Debug, Clone)]
enum FetchBody {
    Error,
    Diverging {
        epoch: i32,
        end_offset: i64,
    },
    Records {
        base: i64,
        entries: Vec<Entry>,
        hw: i64,
    },
}

#[derive(Debug, Clone)]
enum Msg {
    FetchRequest {
        follower: i32,
        leader: i32,
        incarnation: Uuid,
        generation: u64,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        leader_epoch: i32,
    },
    FetchResponse {
        follower: i32,
        leader: i32,
        incarnation: Uuid,
        generation: u64,
        leader_epoch: i32,
        body: FetchBody,
    },
    AlterPartition {
        leader: i32,
        incarnation: Uuid,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    },
}

impl Msg {
    fn route(&self) -> (i32, i32) {
        match self {
            Msg::FetchRequest {
                follower, leader, ..
            } => (*follower, *leader),
            Msg::FetchResponse {
                follower, leader, ..
            } => (*leader, *follower),
            Msg::AlterPartition { leader, .. } => (*leader, CONTROLLER),
        }
    }
}

struct Controller {
    image: MetadataImage,
    log: Vec<MetadataRecord>,
    heartbeats: BrokerHeartbeats,
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    acked: u64,
    produce_rejected: u64,
    leader_epochs: u64,
    truncations: u64,
    isr_changes: u64,
    stale_alter_rejected: u64,
    crashes: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.acked += o.acked;
        self.produce_rejected += o.produce_rejected;
        self.leader_epochs += o.leader_epochs;
        self.truncations += o.truncations;
        self.isr_changes += o.isr_changes;
        self.stale_alter_rejected += o.stale_alter_rejected;
        self.crashes += o.crashes;
    }
}

struct Sim {
    seed: u64,
    cfg: Config,
    step: usize,
    /// Steps and settling rounds so far (fsync latency is counted in them).
    tick: u64,
    rng: Rng,
    now_ms: u64,
    nodes: Vec<Node>,
    ctl: Controller,
    network: Vec<Msg>,
    /// Cut links, as (smaller endpoint, larger endpoint); 0 is the controller.
    cuts: BTreeSet<(i32, i32)>,
    /// No random message loss while settling at the end.
    settling: bool,
    /// Mirror the flow as it is where it has known bugs.
    as_is: AsIs,
    next_value: u64,
    next_generation: u64,
    // What the invariants compare against.
    leader_of_epoch: BTreeMap<i32, i32>,
    controller_epoch: i32,
    committed: Vec<u64>,
    acked: BTreeMap<i64, u64>,
    /// Per node, while it leads: (incarnation, epoch, HW).
    hw_floor: BTreeMap<i32, (Uuid, i32, i64)>,
    stats: Stats,
    trace: VecDeque<String>,
}

fn partition(image: &MetadataImage) -> Option<&PartitionRegistration> {
    image.partition(TOPIC, 0)
}

fn temp_dir() -> TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("repl-sim").tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().expect("temp dir")
}

impl Sim {
    fn new(seed: u64, cfg: Config) -> Sim {
        let mut rng = Rng(seed);
        let nodes = (1..=cfg.replicas)
            .map(|id| {
                let dir = temp_dir();
                let cache = LeaderEpochCache::load(dir.path()).expect("epoch cache");
                Node {
                    id,
                    dir,
                    alive: true,
                    incarnation: rng.uuid(),
                    log: Vec::new(),
                    flushed: 0,
                    disk: 0,
                    truncations: 0,
                    hw_checkpoint: 0,
                    image: MetadataImage::default(),
                    cache,
                    state: None,
                    hw: 0,
                    followers: Followers::default(),
                    registered: false,
                    last_heartbeat_ms: 0,
                    fetchers: BTreeMap::new(),
                    isr_in_flight: false,
                    pending_isr: None,
                    waiters: Vec::new(),
                }
            })
            .collect();
        let mut sim = Sim {
            seed,
            cfg,
            step: 0,
            tick: 0,
            rng,
            now_ms: 0,
            nodes,
            ctl: Controller {
                image: MetadataImage::default(),
                log: Vec::new(),
                heartbeats: BrokerHeartbeats::new(SESSION_TIMEOUT_MS),
            },
            network: Vec::new(),
            cuts: BTreeSet::new(),
            settling: false,
            as_is: AsIs::default(),
            next_value: 1,
            next_generation: 1,
            leader_of_epoch: BTreeMap::new(),
            controller_epoch: -1,
            committed: Vec::new(),
            acked: BTreeMap::new(),
            hw_floor: BTreeMap::new(),
            stats: Stats::default(),
            trace: VecDeque::new(),
        };
        for id in 1..=cfg.replicas {
            sim.heartbeat(id);
        }
        let configs = BTreeMap::from([(
            "min.insync.replicas".to_string(),
            MIN_INSYNC_REPLICAS.to_string(),
        )]);
        let topic_id = sim.rng.uuid();
        let records = logic::create_topic(
            &sim.ctl.image,
            &LogConfig::default(),
            TOPIC,
            1,
            cfg.replicas,
            &configs,
            topic_id,
        )
        .expect("create topic");
        sim.commit(records);
        for id in 1..=cfg.replicas {
            sim.meta_sync(id, true);
        }
        sim
    }

    fn fail(&self, msg: impl std::fmt::Display) -> ! {
        let mut out = format!(
            "replication sim: seed {} ({:?}) step {} at {} ms: {msg}\n\
             replay: REPL_SIM_SEED={} cargo test -p rivulet-broker --test replication_sim\n",
            self.seed, self.cfg, self.step, self.now_ms, self.seed
        );
        let _ = writeln!(out, "controller: {:?}", partition(&self.ctl.image));
        let _ = writeln!(out, "cut links: {:?}", self.cuts);
        for n in &self.nodes {
            let _ = writeln!(out, "  {}", n.summary());
        }
        let _ = writeln!(
            out,
            "acked {} committed {} | last events:",
            self.acked.len(),
            self.committed.len()
        );
        for t in &self.trace {
            let _ = writeln!(out, "  {t}");
        }
        panic!("{out}");
    }

    fn note(&mut self, event: impl std::fmt::Display) {
        if self.trace.len() == 60 {
            self.trace.pop_front();
        }
        self.trace
            .push_back(format!("#{} {}ms {event}", self.step, self.now_ms));
    }

    fn node(&self, id: i32) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn ids(&self) -> Vec<i32> {
        (1..=self.cfg.replicas).collect()
    }

    fn up(&self, a: i32, b: i32) -> bool {
        !self.cuts.contains(&(a.min(b), a.max(b)))
    }

    // ------------------------------------------------------------ controller

    /// Commit records to the metadata log and apply them to the
    /// controller's image, as the quorum's state machine does.
    fn commit(&mut self, records: Vec<MetadataRecord>) {
        for r in records {
            let offset = self.ctl.log.len() as u64 + 1;
            if let Err(e) = self.ctl.image.apply(offset, &r) {
                self.fail(format!("controller cannot apply {r:?}: {e}"));
            }
            self.note(format!("commit {r:?}"));
            self.ctl.log.push(r);
        }
        let Some(p) = partition(&self.ctl.image).cloned() else {
            return;
        };
        if p.leader_epoch < self.controller_epoch {
            self.fail(format!(
                "controller leader epoch went back from {} to {}",
                self.controller_epoch, p.leader_epoch
            ));
        }
        if p.leader_epoch > self.controller_epoch {
            self.stats.leader_epochs += 1;
        }
        self.controller_epoch = p.leader_epoch;
        self.observe_leader(p.leader_epoch, p.leader, "controller image");
    }

    fn observe_leader(&mut self, epoch: i32, leader: i32, who: &str) {
        if leader == NO_LEADER {
            return;
        }
        match self.leader_of_epoch.get(&epoch) {
            Some(l) if *l != leader => self.fail(format!(
                "two leaders in epoch {epoch}: {l} and {leader} (seen by {who})"
            )),
            Some(_) => {}
            None => {
                self.leader_of_epoch.insert(epoch, leader);
            }
        }
    }

    /// `register_and_heartbeat` on the node and `ControllerService::process`
    /// on the controller: register (fencing the old incarnation first),
    /// then heartbeat at once, which unfences.
    fn heartbeat(&mut self, id: i32) {
        let now = self.now_ms;
        let (alive, registered, last, incarnation) = {
            let n = self.node(id);
            (n.alive, n.registered, n.last_heartbeat_ms, n.incarnation)
        };
        if !alive || !self.up(id, CONTROLLER) {
            return;
        }
        if !registered {
            self.ctl.heartbeats.touch(id, now as i64);
            let mut records = Vec::new();
            if self.ctl.image.brokers.contains_key(&id) {
                records.extend(logic::fence_broker(&self.ctl.image, id).unwrap_or_default());
            }
            let listeners = vec![Listener {
                name: "PLAINTEXT".into(),
                host: "sim".into(),
                port: 9000 + id as u16,
            }];
            records.extend(logic::register_broker(id, incarnation, listeners, None));
            self.note(format!("node {id} registers"));
            self.commit(records);
            self.node_mut(id).registered = true;
            if !self.as_is.serve_stale_image {
                // Kafka's initial catch-up: serve only the image that
                // already fences the previous incarnation.
                self.meta_sync(id, true);
                self.apply_local_image(id);
            }
        } else if now < last + HEARTBEAT_INTERVAL_MS {
            return;
        }
        self.node_mut(id).last_heartbeat_ms = now;
        match self.ctl.image.brokers.get(&id) {
            Some(b) if b.incarnation == incarnation => {
                self.ctl.heartbeats.touch(id, now as i64);
                let records = logic::unfence_broker(&self.ctl.image, id).expect("unfence");
                self.commit(records);
            }
            _ => self.node_mut(id).registered = false,
        }
    }

    /// `ControllerService::expire_sessions`.
    fn expire_sessions(&mut self) {
        let expired = self
            .ctl
            .heartbeats
            .expired(&self.ctl.image, self.now_ms as i64);
        for id in expired {
            if let Ok(records) = logic::fence_broker(&self.ctl.image, id) {
                self.note(format!("session of node {id} expired"));
                self.commit(records);
            }
        }
    }

    fn alter_partition(
        &mut self,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) -> bool {
        let p = partition(&self.ctl.image).cloned().expect("partition");
        let stale = p.leader != leader
            || p.leader_epoch != leader_epoch
            || p.partition_epoch != partition_epoch;
        match logic::alter_partition(
            &self.ctl.image,
            TOPIC,
            0,
            leader,
            leader_epoch,
            partition_epoch,
            new_isr.clone(),
        ) {
            Ok(records) => {
                if stale {
                    self.fail(format!(
                        "stale AlterPartition from {leader} (epoch {leader_epoch}, partition epoch \
                         {partition_epoch}) accepted against {p:?}"
                    ));
                }
                self.note(format!("AlterPartition from {leader}: isr {new_isr:?}"));
                self.stats.isr_changes += 1;
                self.commit(records);
                true
            }
            Err(e) => {
                if stale {
                    self.stats.stale_alter_rejected += 1;
                }
                self.note(format!(
                    "AlterPartition from {leader} {new_isr:?} refused: {e}"
                ));
                false
            }
        }
    }

    // ------------------------------------------------------------ nodes

    /// The node's controller voter catches up on the metadata log (all of
    /// it, or a prefix), then the broker follows the new image.
    fn meta_sync(&mut self, id: i32, all: bool) {
        if !self.node(id).alive || !self.up(id, CONTROLLER) {
            return;
        }
        let from = self.node(id).image.offset as usize;
        let to = self.ctl.log.len();
        if from >= to {
            return;
        }
        let target = if all {
            to
        } else {
            from + 1 + self.rng.below((to - from) as u64) as usize
        };
        for i in from..target {
            let r = self.ctl.log[i].clone();
            if let Err(e) = self.node_mut(id).image.apply(i as u64 + 1, &r) {
                self.fail(format!("node {id} cannot apply {r:?}: {e}"));
            }
        }
        self.apply_local_image(id);
    }

    /// `ReplicaManager::apply_image` / `ensure_partition` for our partition.
    fn apply_local_image(&mut self, id: i32) {
        let now = self.now_ms;
        let state = {
            let n = self.node(id);
            let Some(t) = n.image.topic(TOPIC) else {
                return;
            };
            let min_isr = t
                .configs
                .get("min.insync.replicas")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let Some(reg) = t.partitions.get(&0) else {
                return;
            };
            if !reg.replicas.contains(&id) {
                return;
            }
            ReplicaState {
                leader: reg.leader,
                leader_epoch: reg.leader_epoch,
                partition_epoch: reg.partition_epoch,
                replicas: reg.replicas.clone(),
                isr: reg.isr.clone(),
                min_isr,
            }
        };
        if let Some(old) = &self.node(id).state {
            if state.leader_epoch < old.leader_epoch {
                self.fail(format!(
                    "node {id}'s leader epoch went back from {} to {}",
                    old.leader_epoch, state.leader_epoch
                ));
            }
        }
        self.observe_leader(state.leader_epoch, state.leader, "a node's image");
        let n = self.node_mut(id);
        if state.leader == id {
            let leo = n.leo();
            n.cache
                .assign(state.leader_epoch, leo)
                .expect("epoch cache");
            if n.followers.leader_epoch != state.leader_epoch || n.followers.progress.is_empty() {
                let others = state.replicas.iter().copied().filter(|r| *r != id);
                n.followers = Followers::new(state.leader_epoch, others, now);
            }
        }
        if n.pending_isr
            .as_ref()
            .is_some_and(|(le, pe, _)| (*le, *pe) != (state.leader_epoch, state.partition_epoch))
        {
            n.pending_isr = None;
        }
        let changed = n.state.as_ref() != Some(&state);
        n.state = Some(state);
        if n.hw_isr() == [id] {
            n.hw = n.leo();
        }
        n.advance_hw();
        if changed {
            let s = n.state.clone();
            self.note(format!("node {id} follows image: {s:?}"));
        }
    }

    /// A client produces (acks=all or acks=1) to a node that believes it
    /// leads.
    fn produce(&mut self) {
        let leaders: Vec<i32> = self
            .ids()
            .into_iter()
            .filter(|id| self.node(*id).leads())
            .collect();
        let Some(id) = self.rng.pick(&leaders) else {
            return;
        };
        let state = self.node(id).state.clone().expect("leader state");
        // acks=1 promises nothing past the leader's log, but its records
        // are committed like any others once the HW passes them.
        let acks_all = self.rng.chance(70);
        if acks_all && state.isr.len() < state.min_isr {
            self.stats.produce_rejected += 1;
            return;
        }
        let value = self.next_value;
        self.next_value += 1;
        self.observe_leader(state.leader_epoch, id, "an append");
        let n = self.node_mut(id);
        let offset = n.leo();
        n.log.push(Entry {
            epoch: state.leader_epoch,
            value,
        });
        n.cache
            .assign(state.leader_epoch, offset)
            .expect("epoch cache");
        if n.hw_isr() == [id] {
            n.hw = offset + 1;
        } else {
            n.advance_hw();
        }
        if acks_all {
            n.waiters.push(Waiter {
                offset,
                value,
                leader_epoch: state.leader_epoch,
                fsync: None,
                deadline_ms: None,
            });
        }
        self.note(format!(
            "node {id} appends {value} at {offset} in epoch {} (acks={})",
            state.leader_epoch,
            if acks_all { "all" } else { "1" }
        ));
    }

    /// `ReplicaManager::append` after the append: `wait_durable`, then
    /// `wait_for_high_watermark`, each re-checked whenever the parked task
    /// happens to run.
    fn run_waiters(&mut self, all: bool) {
        let now = self.now_ms;
        for id in self.ids() {
            if !self.node(id).alive {
                continue;
            }
            let waiters = std::mem::take(&mut self.node_mut(id).waiters);
            let mut keep = Vec::new();
            for mut w in waiters {
                if !all && !self.rng.chance(70) {
                    keep.push(w);
                    continue;
                }
                let tick = self.tick;
                let fsync_time = self.fsync_time();
                let n = self.node_mut(id);
                let upto = w.offset + 1;
                if w.deadline_ms.is_none() {
                    // `FlushTracker::wait_durable`: fsync (taking its time)
                    // until the tracker's flushed offset covers ours.
                    match w.fsync {
                        Some((done, _, _)) if tick < done => {
                            keep.push(w);
                            continue;
                        }
                        Some((_, covers, truncations)) => {
                            // `FlushTracker::flush_done`: a flush that spans
                            // a truncation vouches for nothing.
                            if truncations == n.truncations {
                                n.flushed = n.flushed.max(covers);
                                n.disk = n.disk.max(covers);
                            }
                            w.fsync = None;
                        }
                        None => {}
                    }
                    if n.flushed < upto {
                        w.fsync = Some((tick + fsync_time, n.leo(), n.truncations));
                        keep.push(w);
                        continue;
                    }
                    w.deadline_ms = Some(now + ACK_TIMEOUT_MS);
                }
                let state = n.state.clone().expect("state");
                if state.leader != id || state.leader_epoch != w.leader_epoch {
                    self.note(format!("node {id}: {} NOT_LEADER_OR_FOLLOWER", w.value));
                } else if n.hw >= upto {
                    if state.isr.len() < state.min_isr {
                        self.note(format!(
                            "node {id}: {} NOT_ENOUGH_REPLICAS_AFTER_APPEND",
                            w.value
                        ));
                    } else {
                        self.ack(id, w.offset, w.value);
                    }
                } else if w.deadline_ms.is_some_and(|d| now >= d) {
                    self.note(format!("node {id}: {} timed out", w.value));
                } else {
                    keep.push(w);
                }
            }
            self.node_mut(id).waiters = keep;
        }
    }

    /// Ticks one leader fsync takes: mostly none, sometimes a slow disk.
    fn fsync_time(&mut self) -> u64 {
        let (instant, short) = if self.cfg.storm { (50, 70) } else { (75, 94) };
        match self.rng.below(100) {
            r if r < instant => 0,
            r if r < short => 1 + self.rng.below(5),
            _ => 10 + self.rng.below(70),
        }
    }

    fn ack(&mut self, id: i32, offset: i64, value: u64) {
        self.note(format!("node {id} acks {value} at {offset}"));
        if let Some(v) = self.acked.insert(offset, value) {
            self.fail(format!(
                "offset {offset} acknowledged twice: {v} and then {value}"
            ));
        }
        self.stats.acked += 1;
    }

    /// The fetcher of `id` (`run_fetchers` + `fetch_from` + `build_request`):
    /// one fetcher per leader, one request in flight each.
    fn fetch(&mut self, id: i32) {
        let n = self.node(id);
        if !n.alive {
            return;
        }
        let Some(state) = n.state.clone() else { return };
        let leader = state.leader;
        let follows = leader >= 0 && leader != id && state.replicas.contains(&id);
        let up = self.up(id, leader);
        // A fetcher started now gets a new generation: responses to an
        // earlier fetcher of the same leader are dropped.
        let generation = self.next_generation;
        self.next_generation += 1;
        let n = self.node_mut(id);
        n.fetchers.retain(|l, _| follows && *l == leader);
        if !follows {
            return;
        }
        let fetcher = n.fetchers.entry(leader).or_insert(Fetcher {
            generation,
            in_flight: false,
        });
        if fetcher.in_flight || !up {
            return;
        }
        fetcher.in_flight = true;
        let msg = Msg::FetchRequest {
            follower: id,
            leader,
            incarnation: n.incarnation,
            generation: fetcher.generation,
            fetch_offset: n.leo(),
            last_fetched_epoch: n.cache.latest_epoch().unwrap_or(-1),
            leader_epoch: state.leader_epoch,
        };
        self.network.push(msg);
    }

    /// The leader's side of a follower fetch (`handlers/fetch.rs`
    /// `read_partition` with `record_follower_fetch`).
    fn serve_fetch(
        &mut self,
        leader: i32,
        follower: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        leader_epoch: i32,
    ) -> FetchBody {
        let now = self.now_ms;
        let max = 1 + self.rng.below(MAX_FETCH_RECORDS);
        let n = self.node_mut(leader);
        let Some(state) = n.state.clone() else {
            return FetchBody::Error;
        };
        if state.leader != leader {
            return FetchBody::Error;
        }
        if leader_epoch >= 0 && leader_epoch != state.leader_epoch {
            return FetchBody::Error;
        }
        if !state.replicas.contains(&follower) || follower == leader {
            return FetchBody::Error;
        }
        let leo = n.leo();
        let end = n.cache.end_offset_for(last_fetched_epoch, leo);
        if let Some((epoch, end_offset)) =
            replication::diverging_epoch(last_fetched_epoch, fetch_offset, end)
        {
            let end_offset = if end_offset < 0 { 0 } else { end_offset };
            return FetchBody::Diverging { epoch, end_offset };
        }
        n.followers.record_fetch(follower, fetch_offset, leo, now);
        n.advance_hw();
        if fetch_offset > leo {
            return FetchBody::Error;
        }
        let upto = (fetch_offset + max as i64).min(leo);
        FetchBody::Records {
            base: fetch_offset,
            entries: n.log[fetch_offset as usize..upto as usize].to_vec(),
            hw: n.hw,
        }
    }

    /// The follower's `apply_response`.
    fn apply_fetch(&mut self, id: i32, leader: i32, leader_epoch: i32, body: FetchBody) {
        let n = self.node_mut(id);
        let following = n.state.as_ref().is_some_and(|s| {
            s.leader == leader && s.leader_epoch == leader_epoch && s.leader != id
        });
        if !following {
            return;
        }
        match body {
            FetchBody::Error => {}
            FetchBody::Diverging { epoch, end_offset } => {
                let leo = n.leo();
                let own = n.cache.end_offset_for(epoch, leo);
                let to = replication::truncation_offset((epoch, end_offset), own, 0, leo);
                n.truncate_to(to);
                self.stats.truncations += 1;
                self.note(format!(
                    "node {id} diverges from {leader} (epoch {epoch} ends at {end_offset}): \
                     log end {leo} truncated to {to}"
                ));
            }
            FetchBody::Records { base, entries, hw } => {
                if !entries.is_empty() {
                    if base < n.leo() {
                        // NonMonotonicOffset: the append fails.
                        return;
                    }
                    if base > n.leo() {
                        let leo = n.leo();
                        self.fail(format!(
                            "node {id} would append at {base} past its log end {leo}"
                        ));
                    }
                    for e in entries {
                        let offset = n.leo();
                        n.log.push(e);
                        n.cache.assign(e.epoch, offset).expect("epoch cache");
                    }
                    // flush.policy on-ack: `wait_durable(log end)` before
                    // the next fetch; it fsyncs only if the tracker is behind.
                    if n.flushed < n.leo() {
                        n.flushed = n.leo();
                        n.disk = n.leo();
                    }
                }
                if hw >= 0 {
                    let hw = hw.min(n.leo());
                    if hw > n.hw {
                        n.hw = hw;
                    }
                }
            }
        }
    }

    /// `maintain_isr` with `ReplicaManager::isr_changes`.
    fn isr_check(&mut self, id: i32) {
        let now = self.now_ms;
        let up = self.up(id, CONTROLLER);
        let maximal = !self.as_is.last_seen_isr;
        let n = self.node_mut(id);
        if !n.leads() || n.isr_in_flight || (maximal && n.pending_isr.is_some()) {
            return;
        }
        let state = n.state.clone().expect("state");
        if state.replicas.len() < 2 || n.followers.leader_epoch != state.leader_epoch {
            return;
        }
        let epoch_start = n.cache.entries().last().map_or(0, |e| e.start_offset);
        let view = LeaderView {
            leader: id,
            replicas: &state.replicas,
            isr: &state.isr,
            high_watermark: n.hw,
            epoch_start_offset: epoch_start,
        };
        let Some(new_isr) = replication::isr_update(&view, &n.followers, LAG_MAX_MS, now) else {
            return;
        };
        if !up {
            return;
        }
        n.isr_in_flight = true;
        if maximal {
            n.pending_isr = Some((state.leader_epoch, state.partition_epoch, new_isr.clone()));
        }
        let msg = Msg::AlterPartition {
            leader: id,
            incarnation: n.incarnation,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            new_isr,
        };
        self.network.push(msg);
    }

    /// A message that never arrives: the sender's request times out.
    fn lost(&mut self, msg: Msg) {
        match msg {
            Msg::FetchRequest {
                follower,
                incarnation,
                generation,
                ..
            }
            | Msg::FetchResponse {
                follower,
                incarnation,
                generation,
                ..
            } => {
                let n = self.node_mut(follower);
                if n.incarnation == incarnation {
                    for f in n.fetchers.values_mut() {
                        if f.generation == generation {
                            f.in_flight = false;
                        }
                    }
                }
            }
            Msg::AlterPartition {
                leader,
                incarnation,
                ..
            } => {
                let n = self.node_mut(leader);
                if n.incarnation == incarnation {
                    n.isr_in_flight = false;
                    n.pending_isr = None;
                }
            }
        }
    }

    fn deliver(&mut self, index: usize) {
        let msg = self.network.remove(index);
        let (from, to) = msg.route();
        let dropped = !self.up(from, to) || (!self.settling && self.rng.chance(2));
        let dest_down = to != CONTROLLER && !self.node(to).alive;
        if dropped || dest_down {
            self.lost(msg);
            return;
        }
        match msg {
            Msg::FetchRequest {
                follower,
                leader,
                incarnation,
                generation,
                fetch_offset,
                last_fetched_epoch,
                leader_epoch,
            } => {
                let body = self.serve_fetch(
                    leader,
                    follower,
                    fetch_offset,
                    last_fetched_epoch,
                    leader_epoch,
                );
                self.network.push(Msg::FetchResponse {
                    follower,
                    leader,
                    incarnation,
                    generation,
                    leader_epoch,
                    body,
                });
            }
            Msg::FetchResponse {
                follower,
                leader,
                incarnation,
                generation,
                leader_epoch,
                body,
            } => {
                let n = self.node_mut(follower);
                if n.incarnation != incarnation {
                    return;
                }
                let Some(f) = n
                    .fetchers
                    .get_mut(&leader)
                    .filter(|f| f.generation == generation)
                else {
                    return;
                };
                f.in_flight = false;
                self.apply_fetch(follower, leader, leader_epoch, body);
            }
            Msg::AlterPartition {
                leader,
                incarnation,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => {
                let n = self.node_mut(leader);
                let ours = n.incarnation == incarnation;
                if ours {
                    n.isr_in_flight = false;
                }
                let accepted = self.alter_partition(leader, leader_epoch, partition_epoch, new_isr);
                if ours && !accepted {
                    self.node_mut(leader).pending_isr = None;
                }
            }
        }
    }

    fn crash(&mut self, id: i32, power_loss: bool) {
        let n = self.node_mut(id);
        n.alive = false;
        n.state = None;
        n.hw = 0;
        n.followers = Followers::default();
        n.registered = false;
        n.fetchers.clear();
        n.isr_in_flight = false;
        n.pending_isr = None;
        n.waiters.clear();
        if power_loss {
            let keep = n.disk as usize;
            n.log.truncate(keep);
        }
        self.stats.crashes += 1;
        self.note(format!(
            "node {id} {}",
            if power_loss { "loses power" } else { "crashes" }
        ));
    }

    /// A new process: `PartitionLog::open` (epoch cache reloaded from disk
    /// and cut at the log end, HW from the checkpoint), then the broker
    /// follows its persisted image at once.
    fn restart(&mut self, id: i32) {
        let incarnation = self.rng.uuid();
        let n = self.node_mut(id);
        n.alive = true;
        n.incarnation = incarnation;
        n.cache = LeaderEpochCache::load(n.dir.path()).expect("epoch cache");
        let leo = n.leo();
        n.cache.truncate_from_end(leo).expect("epoch cache");
        n.flushed = leo;
        n.disk = leo;
        n.hw = n.hw_checkpoint.clamp(0, leo);
        self.note(format!("node {id} restarts"));
        if self.as_is.serve_stale_image {
            self.apply_local_image(id);
        }
    }

    /// `BrokerNode::shutdown`: BrokerShutdown to the controller, then a
    /// clean stop (everything flushed and checkpointed).
    fn shutdown(&mut self, id: i32) {
        let incarnation = self.node(id).incarnation;
        if self.up(id, CONTROLLER)
            && self
                .ctl
                .image
                .brokers
                .get(&id)
                .is_some_and(|b| b.incarnation == incarnation)
        {
            self.ctl.heartbeats.forget(id);
            let records = logic::fence_broker(&self.ctl.image, id).expect("fence");
            self.commit(records);
        }
        let n = self.node_mut(id);
        n.flushed = n.leo();
        n.disk = n.leo();
        n.hw_checkpoint = n.hw;
        self.note(format!("node {id} shuts down"));
        self.crash(id, false);
    }

    fn partition_network(&mut self) {
        let ids = self.ids();
        let Some(id) = self.rng.pick(&ids) else {
            return;
        };
        let others: Vec<i32> = ids.iter().copied().filter(|o| *o != id).collect();
        let kind = self.rng.below(4);
        let cut = |a: i32, b: i32, cuts: &mut BTreeSet<(i32, i32)>| {
            cuts.insert((a.min(b), a.max(b)));
        };
        match kind {
            0 => {
                cut(id, CONTROLLER, &mut self.cuts);
                for o in &others {
                    cut(id, *o, &mut self.cuts);
                }
                self.note(format!("node {id} isolated"));
            }
            1 => {
                cut(id, CONTROLLER, &mut self.cuts);
                self.note(format!("node {id} cut from the controller"));
            }
            2 => {
                for o in &others {
                    cut(id, *o, &mut self.cuts);
                }
                self.note(format!("node {id} cut from the other nodes"));
            }
            _ => {
                let o = self.rng.pick(&others).expect("other node");
                cut(id, o, &mut self.cuts);
                self.note(format!("link {id}-{o} cut"));
            }
        }
    }

    // ------------------------------------------------------------ driver

    fn run(&mut self, steps: usize) {
        for step in 0..steps {
            self.step = step;
            self.tick += 1;
            self.now_ms += self.rng.below(60);
            self.random_step();
            for id in self.ids() {
                self.heartbeat(id);
            }
            self.expire_sessions();
            self.run_waiters(false);
            self.check();
        }
        self.settle();
    }

    fn random_step(&mut self) {
        let ids = self.ids();
        let any = self.rng.pick(&ids).expect("nodes");
        let table = weights(self.cfg);
        let mut roll = self.rng.below(table.iter().map(|(_, w)| w).sum());
        let action = table
            .iter()
            .find(|(_, w)| {
                let hit = roll < *w;
                roll = roll.saturating_sub(*w);
                hit
            })
            .map_or(Action::Deliver, |(a, _)| *a);
        match action {
            Action::Produce => self.produce(),
            Action::Fetch => {
                let followers: Vec<i32> = ids
                    .iter()
                    .copied()
                    .filter(|i| self.node(*i).alive && !self.node(*i).leads())
                    .collect();
                if let Some(id) = self.rng.pick(&followers) {
                    self.fetch(id);
                }
            }
            Action::Deliver => {
                for _ in 0..1 + self.rng.below(3) {
                    if !self.network.is_empty() {
                        let i = self.rng.below(self.network.len() as u64) as usize;
                        self.deliver(i);
                    }
                }
            }
            Action::MetaSync => {
                let all = self.rng.chance(80);
                self.meta_sync(any, all);
            }
            Action::IsrCheck => {
                let leaders: Vec<i32> = ids
                    .iter()
                    .copied()
                    .filter(|i| self.node(*i).leads())
                    .collect();
                if let Some(id) = self.rng.pick(&leaders) {
                    self.isr_check(id);
                }
            }
            Action::TimeJump => {
                // Mostly within replica.lag.time.max.ms, sometimes past it.
                let jump = if self.rng.chance(75) {
                    200 + self.rng.below(2_300)
                } else {
                    2_500 + self.rng.below(6_000)
                };
                self.now_ms += jump;
                self.note(format!("time +{jump} ms"));
            }
            Action::PreferredElection => {
                let records = logic::preferred_leader_elections(&self.ctl.image);
                self.commit(records);
            }
            Action::HwCheckpoint => {
                let n = self.node_mut(any);
                if n.alive {
                    n.hw_checkpoint = n.hw;
                }
            }
            Action::Crash => {
                if self.node(any).alive {
                    self.crash(any, false);
                }
            }
            Action::Restart => {
                let down: Vec<i32> = ids.into_iter().filter(|i| !self.node(*i).alive).collect();
                if let Some(id) = self.rng.pick(&down) {
                    self.restart(id);
                }
            }
            Action::PowerLoss => {
                if self.node(any).alive {
                    self.crash(any, true);
                }
            }
            Action::Shutdown => {
                if self.node(any).alive {
                    self.shutdown(any);
                }
            }
            Action::Partition => self.partition_network(),
            Action::Heal => {
                let cuts: Vec<(i32, i32)> = self.cuts.iter().copied().collect();
                if self.rng.chance(60) {
                    self.cuts.clear();
                    self.note("network healed");
                } else if let Some(c) = self.rng.pick(&cuts) {
                    self.cuts.remove(&c);
                    self.note(format!("link {}-{} healed", c.0, c.1));
                }
            }
        }
    }

    /// Heal everything, restart every node and run to quiescence; then
    /// every replica is in the ISR with the leader's log, which holds every
    /// acknowledged record.
    fn settle(&mut self) {
        self.step = usize::MAX;
        self.settling = true;
        self.cuts.clear();
        self.note("settling: network healed, every node restarted");
        for id in self.ids() {
            if !self.node(id).alive {
                self.restart(id);
            }
        }
        for _ in 0..SETTLE_ROUNDS {
            self.tick += 1;
            self.now_ms += 100;
            for id in self.ids() {
                self.heartbeat(id);
            }
            self.expire_sessions();
            for id in self.ids() {
                self.meta_sync(id, true);
            }
            for id in self.ids() {
                self.fetch(id);
                self.isr_check(id);
            }
            while !self.network.is_empty() {
                self.deliver(0);
            }
            self.run_waiters(true);
            self.check();
            if self.unsettled().is_none() {
                break;
            }
        }
        if let Some(why) = self.unsettled() {
            self.fail(format!("no quiescence after healing everything: {why}"));
        }
        let leader = partition(&self.ctl.image).expect("partition").leader;
        let log = &self.node(leader).log;
        for (offset, value) in &self.acked {
            if log.get(*offset as usize).map(|e| e.value) != Some(*value) {
                self.fail(format!("acked {value} at {offset} missing after settling"));
            }
        }
    }

    /// What keeps the cluster from being settled, if anything.
    fn unsettled(&self) -> Option<String> {
        let p = partition(&self.ctl.image)?;
        if p.leader == NO_LEADER {
            return Some("no leader".into());
        }
        if !self.network.is_empty() {
            return Some(format!("{} message(s) in flight", self.network.len()));
        }
        let mut isr = p.isr.clone();
        isr.sort_unstable();
        if isr != self.ids() {
            return Some(format!("ISR {:?}", p.isr));
        }
        let leader = self.node(p.leader);
        if leader.hw != leader.leo() {
            return Some(format!(
                "leader HW {} below its log end {}",
                leader.hw,
                leader.leo()
            ));
        }
        self.nodes.iter().find_map(|n| {
            if !n.alive {
                Some(format!("node {} down", n.id))
            } else if n.image.offset as usize != self.ctl.log.len() {
                Some(format!(
                    "node {} has metadata up to {} of {}",
                    n.id,
                    n.image.offset,
                    self.ctl.log.len()
                ))
            } else if n.log != leader.log {
                Some(format!("node {}'s log differs from the leader's", n.id))
            } else {
                None
            }
        })
    }

    // ------------------------------------------------------------ invariants

    fn check(&mut self) {
        let Some(p) = partition(&self.ctl.image).cloned() else {
            return;
        };
        let mut holders: Vec<i32> = p.isr.clone();
        if p.leader != NO_LEADER && !holders.contains(&p.leader) {
            holders.push(p.leader);
        }
        for id in self.ids() {
            self.check_node(id);
        }
        // 1. Acknowledged records stay on the leader and the ISR.
        for (offset, value) in &self.acked {
            for m in &holders {
                let got = self.node(*m).log.get(*offset as usize).copied();
                if got.map(|e| e.value) != Some(*value) {
                    self.fail(format!(
                        "acked {value} at {offset} is {got:?} on node {m} (leader {}, isr {:?})",
                        p.leader, p.isr
                    ));
                }
            }
            if !self.cfg.power_loss && self.committed.get(*offset as usize) != Some(value) {
                self.fail(format!(
                    "acked {value} at {offset} is not what was committed there ({:?})",
                    self.committed.get(*offset as usize)
                ));
            }
        }
        // Committed records are on every ISR member.
        if !self.cfg.power_loss {
            for m in &p.isr {
                let log = &self.node(*m).log;
                let upto = self.committed.len().min(log.len());
                if upto < self.committed.len()
                    || log[..upto]
                        .iter()
                        .zip(&self.committed)
                        .any(|(e, c)| e.value != *c)
                {
                    self.fail(format!(
                        "ISR member {m} lacks committed records (committed up to {}, its log end {})",
                        self.committed.len(),
                        log.len()
                    ));
                }
            }
        }
    }

    fn check_node(&mut self, id: i32) {
        let n = self.node(id);
        // 4. The epoch cache describes the log.
        let entries = n.cache.entries();
        if !n.log.is_empty() && entries.first().map(|e| e.start_offset) != Some(0) {
            self.fail(format!("node {id}: epoch cache does not start at 0"));
        }
        for (k, e) in entries.iter().enumerate() {
            let end = entries
                .get(k + 1)
                .map_or(n.leo(), |next| next.start_offset)
                .min(n.leo());
            for o in e.start_offset..end {
                if n.log[o as usize].epoch != e.epoch {
                    self.fail(format!(
                        "node {id}: epoch cache puts offset {o} in epoch {}, the log has {}",
                        e.epoch, n.log[o as usize].epoch
                    ));
                }
            }
        }
        if !n.alive {
            return;
        }
        let Some(state) = n.state.clone() else { return };
        let (hw, leo, incarnation) = (n.hw, n.leo(), n.incarnation);
        if hw > leo {
            self.fail(format!("node {id}: HW {hw} past its log end {leo}"));
        }
        // 1. Records below any HW are the committed ones.
        if !self.cfg.power_loss {
            let upto = (hw as usize).min(self.committed.len());
            if let Some(o) = (0..upto).find(|o| n.log[*o].value != self.committed[*o]) {
                self.fail(format!(
                    "node {id} holds {:?} at committed offset {o} (HW {hw}), committed was {}",
                    n.log[o], self.committed[o]
                ));
            }
            if state.leader == id {
                for o in self.committed.len()..hw as usize {
                    let v = self.node(id).log[o].value;
                    self.committed.push(v);
                }
            }
        }
        if state.leader != id {
            return;
        }
        // 2. The HW of a leader.
        if let Some((inc, epoch, floor)) = self.hw_floor.get(&id).copied() {
            if inc == incarnation && epoch == state.leader_epoch && hw < floor {
                self.fail(format!(
                    "leader {id}'s HW moved back from {floor} to {hw} in epoch {epoch}"
                ));
            }
        }
        self.hw_floor
            .insert(id, (incarnation, state.leader_epoch, hw));
        let isr = self.node(id).hw_isr();
        for m in &isr {
            let m_leo = self.node(*m).leo();
            if hw > m_leo && !self.cfg.power_loss {
                self.fail(format!(
                    "leader {id}'s HW {hw} is past ISR member {m}'s log end {m_leo} (isr {isr:?})"
                ));
            }
        }
    }
}

fn run_as_is(seed: u64, as_is: AsIs) {
    let mut sim = Sim::new(seed, config_for(seed));
    sim.as_is = as_is;
    sim.run(400);
}

#[test]
#[should_panic(expected = "seed")]
fn old_bug_hw_over_last_seen_isr_is_caught() {
    run_as_is(
        KNOWN_BUG_LAST_SEEN_ISR,
        AsIs {
            last_seen_isr: true,
            ..AsIs::default()
        },
    );
}

#[test]
#[should_panic(expected = "seed")]
fn old_bug_stale_image_on_restart_is_caught() {
    run_as_is(
        KNOWN_BUG_STALE_IMAGE_ON_RESTART,
        AsIs {
            serve_stale_image: true,
            ..AsIs::default()
        },
    );
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn replication_keeps_acknowledged_records_through_crashes_and_partitions() {
    let steps = env_u64("REPL_SIM_STEPS").unwrap_or(400) as usize;
    let seeds: Vec<u64> = match env_u64("REPL_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_u64("REPL_SIM_SEEDS").unwrap_or(1000)).collect(),
    };
    let mut total = Stats::default();
    for seed in &seeds {
        let mut sim = Sim::new(*seed, config_for(*seed));
        sim.run(steps);
        total.add(&sim.stats);
    }
    eprintln!(
        "replication sim: {} seed(s) x {steps} steps: {total:?}",
        seeds.len()
    );
    if seeds.len() >= 30 {
        // The schedules must actually exercise what the invariants guard.
        assert!(total.acked > 0, "nothing was acknowledged: {total:?}");
        assert!(
            total.truncations > 0,
            "no follower ever truncated: {total:?}"
        );
        assert!(total.isr_changes > 0, "the ISR never changed: {total:?}");
        assert!(
            total.stale_alter_rejected > 0,
            "no stale AlterPartition was refused: {total:?}"
        );
        assert!(
            total.leader_epochs > seeds.len() as u64,
            "too few leader changes: {total:?}"
        );
    }
}
