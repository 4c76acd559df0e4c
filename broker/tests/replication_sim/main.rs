//! Seeded, deterministic simulation of one partition's replication across
//! node crashes, restarts and network partitions, driven through the
//! project's own code:
//!
//! - **real**: the replication state machine
//!   `rivulet_broker::replication::PartitionReplica`, one per simulated
//!   replica (a new one per process incarnation), fed the same events the
//!   broker feeds it — the node's metadata image for the partition, each
//!   local append, a follower's fetch on the leader, a fetch response on a
//!   follower, the controller's answer to an AlterPartition, `tick(now)` —
//!   and its actions carried out here as `ReplicaManager` carries them out
//!   on a `PartitionLog`: high watermark, epoch start, truncation, append
//!   of fetched records, parked `acks=all` answers, AlterPartition sent;
//! - **real**: the controller's `rivulet_controller::logic` (register,
//!   heartbeat and unfence, session expiry and `fence_broker`,
//!   `alter_partition`, preferred leader election), its records applied to
//!   `MetadataImage`s as the quorum applies them;
//! - **real**: one `rivulet_storage::LeaderEpochCache` per replica,
//!   persisted in its own temp dir (in `/dev/shm` when there is one, so the
//!   checkpoint fsyncs stay cheap) and reloaded from disk on restart.
//!
//! **Simulated** around them: each replica's log is a `Vec` of `(leader
//! epoch, value)` (offset = index, log start 0) with what its
//! `FlushTracker` believes durable and what is, truncated as
//! `PartitionLog::truncate_to`/`open` do; fsync (`wait_durable`, whose
//! leader fsync may take many steps, before a produce parks; a follower's
//! before its next fetch); the network: fetch requests and responses and
//! AlterPartitions sit in a bag and are delivered in random order, dropped
//! on a cut link (a lost AlterPartition is answered "unknown", as a failed
//! controller request is), so a deposed leader can go on serving followers
//! that have not heard of its successor; the tasks of the broker shell —
//! `run_fetchers` (one fetcher per leader, one request in flight),
//! `maintain_isr`, the fetch handler's checks before the state machine
//! (leadership, current leader epoch, replica id), produce timeouts,
//! `register_and_heartbeat` and `follow_image` (a restarted broker acts on
//! no image before the one holding its own registration).
//! [`AsIs`] brings back two fixed bugs to prove the invariants catch them.
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

use rivulet_broker::replication::{
    AckId, Action, AlterPartition, AlterPartitionAnswer, LogView, Mutation, PartitionReplica,
    ReplicaState,
};
use rivulet_controller::logic::{self, BrokerHeartbeats};
use rivulet_controller::{
    Listener, MetadataImage, MetadataRecord, PartitionRegistration, NO_LEADER,
};
use rivulet_storage::{LeaderEpochCache, LogConfig};
use tempfile::TempDir;
use uuid::Uuid;

mod controller;
mod data;
mod faults;
mod invariants;

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

/// Two bugs this simulation found, since fixed; each switch brings one
/// back for a test that proves the invariants still catch it.
#[derive(Debug, Default, Clone, Copy)]
struct AsIs {
    /// [`KNOWN_BUG_LAST_SEEN_ISR`], in the real state machine: every
    /// replica's `PartitionReplica` runs with
    /// `Mutation::HwOverLastSeenIsr`.
    last_seen_isr: bool,
    /// [`KNOWN_BUG_STALE_IMAGE_ON_RESTART`], in the simulated
    /// `follow_image`: a restarted broker feeds its persisted image to a
    /// fresh state machine before it has registered and caught up.
    serve_stale_image: bool,
}

/// A leader computed its HW over the ISR of the last image it applied.
/// Between its AlterPartition being committed and the new image reaching
/// it, a follower it asked to add is in the ISR but does not hold the HW
/// back, so the leader acknowledges records that ISR member lacks; if the
/// leader dies then, that member can be elected and the records are lost.
/// Kafka computes the HW over the "maximal ISR" (current ∪ requested,
/// KIP-497) while an ISR change is pending, and proposes no other change
/// meanwhile; so does `PartitionReplica` (`PendingIsr`), also where a
/// leader alone in the ISR commits at its log end (with an expansion
/// pending it is not alone). This seed: an ISR member lacks committed
/// records.
const KNOWN_BUG_LAST_SEEN_ISR: u64 = 44;

/// A restarted broker followed its persisted metadata image at once
/// (`follow_image` started before `register_and_heartbeat` had
/// registered), so a leader led again, in its old epoch, until it
/// registered and learned otherwise — which may be long when it cannot
/// reach the controller.
/// - After a crash before it saw its own ISR expansion, its HW can pass a
///   real ISR member's log end: consumers read records the elected leader
///   lacks (seed 20 with process crashes only: an ISR member lacks
///   committed records).
/// - After a power loss took its unflushed suffix, it appends other records
///   at the same offsets in the same epoch. A follower still holding the
///   old ones passes the divergence check (same epoch), so acks=all
///   acknowledges records no ISR member has, and replicas fork for good
///   (this seed: an acknowledged record lost).
///
/// Kafka's broker serves nothing until it has caught up with the metadata
/// log after registering (`BrokerLifecycleManager.initialCatchUpFuture`),
/// and registering fences the old incarnation into a new leader epoch; so
/// do this driver and `follow_image` (it acts on no image before the one
/// holding its own registration).
const KNOWN_BUG_STALE_IMAGE_ON_RESTART: u64 = 90;

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
enum Step {
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
fn weights(cfg: Config) -> [(Step, u64); 14] {
    let (power_loss, partition) = match (cfg.power_loss, cfg.storm) {
        (false, _) => (0, 9),
        (true, false) => (8, 9),
        (true, true) => (15, 5),
    };
    [
        (Step::Produce, 150),
        (Step::Fetch, 230),
        (Step::Deliver, 300),
        (Step::MetaSync, 120),
        (Step::IsrCheck, 80),
        (Step::TimeJump, 15),
        (Step::PreferredElection, 8),
        (Step::HwCheckpoint, 15),
        (Step::Crash, 6),
        (Step::Restart, 30),
        (Step::PowerLoss, power_loss),
        (Step::Shutdown, 2),
        (Step::Partition, partition),
        (Step::Heal, 23),
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

/// An acks=all produce appended and waiting for its fsync
/// (`FlushTracker::wait_durable`) before it parks in the state machine.
#[derive(Debug)]
struct Syncing {
    offset: i64,
    value: u64,
    /// The leader epoch it was appended in.
    leader_epoch: i32,
    /// The fsync `wait_durable` is waiting for: `(done at tick, log end it
    /// started at, truncations then)`.
    fsync: Option<(u64, i64, u64)>,
}

/// An acks=all produce parked in the state machine until it answers or
/// the produce times out.
#[derive(Debug)]
struct Parked {
    offset: i64,
    value: u64,
    deadline_ms: u64,
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
    /// The log's high watermark.
    hw: i64,
    /// The partition's replication state machine, from the first image
    /// this process follows.
    replica: Option<PartitionReplica>,
    registered: bool,
    last_heartbeat_ms: u64,
    fetchers: BTreeMap<i32, Fetcher>,
    syncing: Vec<Syncing>,
    parked: BTreeMap<AckId, Parked>,
    next_ack: AckId,
}

/// A node's log as the state machine reads it.
struct SimLog<'a> {
    log: &'a [Entry],
    hw: i64,
    cache: &'a LeaderEpochCache,
}

impl LogView for SimLog<'_> {
    fn log_start_offset(&self) -> i64 {
        0
    }

    fn log_end_offset(&self) -> i64 {
        self.log.len() as i64
    }

    fn high_watermark(&self) -> i64 {
        self.hw
    }

    fn latest_epoch(&self) -> Option<i32> {
        self.cache.latest_epoch()
    }

    fn latest_epoch_start_offset(&self) -> i64 {
        self.cache.entries().last().map_or(0, |e| e.start_offset)
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.cache.end_offset_for(epoch, self.log.len() as i64)
    }
}

impl Node {
    fn leo(&self) -> i64 {
        self.log.len() as i64
    }

    fn state(&self) -> Option<&ReplicaState> {
        self.replica.as_ref().map(PartitionReplica::state)
    }

    fn leads(&self) -> bool {
        self.alive
            && self
                .replica
                .as_ref()
                .is_some_and(PartitionReplica::is_leader)
    }

    /// Feed the state machine one event, with the log as it is now.
    fn event<T>(&mut self, f: impl FnOnce(&mut PartitionReplica, &SimLog<'_>) -> T) -> Option<T> {
        let view = SimLog {
            log: &self.log,
            hw: self.hw,
            cache: &self.cache,
        };
        self.replica.as_mut().map(|r| f(r, &view))
    }

    /// The ISR the leader computes its HW over: the one in its image, and
    /// while it waits for its AlterPartition also every member of the ISR
    /// it asked for (see [`KNOWN_BUG_LAST_SEEN_ISR`]).
    fn hw_isr(&self) -> Vec<i32> {
        self.replica
            .as_ref()
            .map_or(Vec::new(), |r| r.maximal_isr().into_owned())
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
        let state = self.state().map_or("-".to_string(), |s| {
            format!(
                "leader {} epoch {} pe {} isr {:?}",
                s.leader, s.leader_epoch, s.partition_epoch, s.isr
            )
        });
        let (progress, pending) = self.replica.as_ref().map_or((None, None), |r| {
            (
                Some(r.followers().progress.clone()),
                r.pending_isr().cloned(),
            )
        });
        format!(
            "node {} {} | {state} | leo {} hw {} flushed {} disk {} | log [{}] | cache [{}] | progress {:?} | pending {:?}",
            self.id,
            if self.alive { "up" } else { "DOWN" },
            self.leo(),
            self.hw,
            self.flushed,
            self.disk,
            runs.join(" "),
            cache.join(" "),
            progress,
            pending,
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
        request: AlterPartition,
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
                    hw: 0,
                    replica: None,
                    registered: false,
                    last_heartbeat_ms: 0,
                    fetchers: BTreeMap::new(),
                    syncing: Vec::new(),
                    parked: BTreeMap::new(),
                    next_ack: 0,
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
}

fn run_as_is(seed: u64, as_is: AsIs) {
    let mut sim = Sim::new(seed, config_for(seed));
    sim.as_is = as_is;
    sim.run(400);
}

#[test]
#[should_panic(expected = "lacks committed records")]
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
#[should_panic(expected = "is None on node")]
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
