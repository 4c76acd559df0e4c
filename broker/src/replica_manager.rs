//! `ReplicaManager`: the partitions this node hosts, kept in step with the
//! metadata image, and the executor of their replication decisions.
//!
//! Each [`Partition`] owns its log (behind its own mutex: one writer per
//! partition, no lock shared across partitions), its [`PartitionReplica`] —
//! the sans-IO state machine that decides the high watermark, the ISR
//! changes to ask for, the answers to parked `acks=all` produces and a
//! follower's truncations (rules in [`crate::replication`]) — and a
//! notifier that wakes long-polling fetches after every append. The
//! idempotent-producer state is the log's own
//! ([`PartitionLog::producer_state`]): the log records every batch it
//! appends, as leader or follower, and reloads it from snapshots on open
//! and truncation. This module feeds the state machine its
//! events and carries out its [`Action`]s: on the log, on the notifier, on
//! the parked produces' channels; fsyncs for `acks=all` run on the blocking
//! pool, never on the async workers.
//!
//! Events and actions of a partition are handled under its log lock, so
//! the state machine always reads the log it decided on, and a fetcher
//! never appends to a log this node now leads. Lock order: the log, then
//! the replica state machine, then the parked produces.
//!
//! - this file: partitions and the image ([`ReplicaManager::apply_image`]);
//! - `append.rs`: produce appends and `acks=all` waiting;
//! - `fetch.rs`: both sides of a follower fetch;
//! - `isr.rs`: ISR changes through the controller.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use rivulet_controller::{MetadataImage, PartitionRegistration};
use rivulet_storage::config::LOG_CONFIG_KEYS;
use rivulet_storage::log_manager::SharedLog;
use rivulet_storage::{LogConfig, LogManager, PartitionLog, StorageError, TopicPartition};
use tokio::sync::oneshot;
use tracing::{info, warn};
use uuid::Uuid;

use crate::replication::{
    AckError, AckId, Action, AlterPartition, LogView, PartitionReplica, PendingIsr,
};

mod append;
mod fetch;
mod isr;
#[cfg(test)]
mod tests;

pub use crate::replication::{AlterPartitionAnswer, ReplicaState};
pub use append::{AppendOrigin, AppendResult, AppendWait, Appended};
pub use fetch::FollowerDurable;

#[derive(Debug)]
pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: Uuid,
    pub log: SharedLog,
    /// The replication state machine; locked under the log.
    replica: Mutex<PartitionReplica>,
    /// Woken after every append and high watermark move, for long-polling
    /// fetches.
    pub appended: tokio::sync::Notify,
    /// Parked `acks=all` produces, answered by [`Action::CompleteAck`].
    acks: Mutex<HashMap<AckId, oneshot::Sender<Result<(), AckError>>>>,
    next_ack: AtomicU64,
    /// KIP-890 verification guards: producers whose first transactional
    /// batch here the coordinator confirmed (id → epoch). A marker for the
    /// producer clears its guard, so a batch verified before its
    /// transaction ended cannot open a new one that nobody ends (Kafka's
    /// `VerificationStateEntry`).
    verified: Mutex<HashMap<i64, i16>>,
}

/// What carrying out a batch of actions left for the caller.
#[derive(Debug, Default)]
struct Effects {
    /// ISR changes to send to the controller.
    alter: Vec<AlterPartition>,
    /// The log was truncated (it reloaded its producer state).
    truncated: bool,
    /// Fetched records were appended.
    appended: bool,
}

impl Partition {
    fn new(tp: TopicPartition, topic_id: Uuid, log: SharedLog, node_id: i32) -> Self {
        Partition {
            tp,
            topic_id,
            log,
            replica: Mutex::new(PartitionReplica::new(node_id)),
            appended: tokio::sync::Notify::new(),
            acks: Mutex::new(HashMap::new()),
            next_ack: AtomicU64::new(0),
            verified: Mutex::new(HashMap::new()),
        }
    }

    pub fn state(&self) -> ReplicaState {
        self.replica.lock().state().clone()
    }

    pub fn is_leader(&self, node_id: i32) -> bool {
        self.replica.lock().state().leader == node_id
    }

    /// The leader this node replicates the partition from, if it follows.
    pub fn following(&self) -> Option<i32> {
        self.replica.lock().following()
    }

    /// The ISR change this leader awaits, if any.
    pub fn pending_isr(&self) -> Option<PendingIsr> {
        self.replica.lock().pending_isr().cloned()
    }

    /// Carry out `actions` on the locked `log`, in order. `fetched`: the
    /// records of the fetch response the actions answer.
    fn execute(
        &self,
        log: &mut PartitionLog,
        actions: Vec<Action>,
        fetched: Option<&[u8]>,
    ) -> Result<Effects, StorageError> {
        let mut effects = Effects::default();
        let mut queue = std::collections::VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::AssignEpochStart {
                    leader_epoch,
                    start_offset,
                } => log.assign_epoch_start_offset(leader_epoch, start_offset)?,
                Action::HighWatermark(hw) => {
                    log.set_high_watermark(hw);
                    // Consumers see up to the high watermark: wake their
                    // long polls.
                    self.appended.notify_waiters();
                }
                Action::CompleteAck { id, result } => {
                    if let Some(tx) = self.acks.lock().remove(&id) {
                        let _ = tx.send(result);
                    }
                }
                Action::SendAlterPartition(request) => effects.alter.push(request),
                Action::TruncateTo(to) => {
                    info!(
                        partition = %self.tp, from = log.log_end_offset(), to,
                        "truncating divergent log suffix"
                    );
                    log.truncate_to(to)?;
                    effects.truncated = true;
                }
                Action::TruncateFullyAndStartAt(offset) => {
                    log.truncate_fully_and_start_at(offset)?;
                    effects.truncated = true;
                }
                Action::AppendFetched => {
                    let records = fetched.unwrap_or_default();
                    if !records.is_empty() {
                        log.append_as_follower(records)?;
                        effects.appended = true;
                    }
                    let more = self.replica.lock().on_append(&*log);
                    queue.extend(more);
                }
            }
        }
        Ok(effects)
    }

    /// The transaction coordinator confirmed that `producer_id`'s
    /// transaction at `epoch` includes this partition (KIP-890): its next
    /// transactional batch may start the transaction here.
    pub fn mark_verified(&self, producer_id: i64, epoch: i16) {
        self.verified.lock().insert(producer_id, epoch);
    }

    /// Produces parked until the high watermark passes them (acks=all).
    pub fn parked_acks(&self) -> usize {
        self.acks.lock().len()
    }

    /// The producers this partition remembers (DescribeProducers).
    pub fn producer_summaries(&self) -> Vec<crate::producer_state::ProducerSummary> {
        self.log.lock().producer_state().summaries()
    }
}

/// The partition log as the replication state machine reads it.
impl LogView for PartitionLog {
    fn log_start_offset(&self) -> i64 {
        PartitionLog::log_start_offset(self)
    }

    fn log_end_offset(&self) -> i64 {
        PartitionLog::log_end_offset(self)
    }

    fn high_watermark(&self) -> i64 {
        PartitionLog::high_watermark(self)
    }

    fn latest_epoch(&self) -> Option<i32> {
        self.leader_epoch_cache().latest_epoch()
    }

    fn latest_epoch_start_offset(&self) -> i64 {
        self.leader_epoch_cache()
            .entries()
            .last()
            .map_or(0, |e| e.start_offset)
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        PartitionLog::end_offset_for_epoch(self, epoch)
    }
}

#[derive(Debug)]
pub struct ReplicaManager {
    node_id: i32,
    logs: Arc<LogManager>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    default_min_isr: i32,
    /// Origin of the monotonic milliseconds used for follower lag.
    started: Instant,
    /// Replaces `started` in tests, so lag is measured without sleeping.
    lag_clock: Option<Arc<dyn rivulet_storage::Clock>>,
    /// ISR shrinks and expansions the controller committed for partitions
    /// this node leads (metrics).
    pub isr_shrinks: AtomicU64,
    pub isr_expands: AtomicU64,
    /// Partitions this node could not host, with the error last reported:
    /// reported once, not on every image.
    failed: Mutex<HashMap<TopicPartition, String>>,
    /// The replication throttles of reassignments, as leader and as
    /// follower; their rates follow the image.
    pub quotas: crate::replication_quota::ReplicationQuotas,
}

/// A replica of the image this node should host.
struct Hosting<'a> {
    tp: TopicPartition,
    topic_id: Uuid,
    reg: &'a PartitionRegistration,
    cfg: Arc<LogConfig>,
    min_isr: i32,
}

/// Most threads creating new partition logs at once: creating is mostly
/// waiting for fsyncs (the leader epoch checkpoint), which the filesystem
/// commits together.
const CREATE_THREADS: usize = 16;

/// A topic's log config: broker defaults with the topic's log keys applied
/// (other topic keys, such as `min.insync.replicas`, are not log settings).
pub fn topic_log_config(defaults: &LogConfig, configs: &BTreeMap<String, String>) -> LogConfig {
    let log_keys: BTreeMap<String, String> = configs
        .iter()
        .filter(|(k, _)| LOG_CONFIG_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    defaults.with_overrides(&log_keys).unwrap_or_else(|e| {
        warn!(error = %e, "ignoring invalid topic config");
        defaults.clone()
    })
}

impl ReplicaManager {
    pub fn new(node_id: i32, logs: Arc<LogManager>, default_min_isr: i32) -> Self {
        ReplicaManager {
            node_id,
            logs,
            partitions: RwLock::new(HashMap::new()),
            default_min_isr,
            started: Instant::now(),
            lag_clock: None,
            isr_shrinks: AtomicU64::new(0),
            isr_expands: AtomicU64::new(0),
            failed: Mutex::new(HashMap::new()),
            quotas: Default::default(),
        }
    }

    /// The replication throttle rates of the config file (bytes/s, as
    /// leader and as follower), until the image's dynamic configs override
    /// them.
    pub fn with_replication_rates(mut self, leader: i64, follower: i64) -> Self {
        self.quotas = crate::replication_quota::ReplicationQuotas::new(leader, follower);
        self
    }

    /// Measure follower lag on `clock` instead of the monotonic clock.
    pub fn with_lag_clock(mut self, clock: Arc<dyn rivulet_storage::Clock>) -> Self {
        self.lag_clock = Some(clock);
        self
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Milliseconds since this replica manager started (monotonic).
    pub fn now_ms(&self) -> u64 {
        match &self.lag_clock {
            Some(c) => c.now_ms().max(0) as u64,
            None => self.started.elapsed().as_millis() as u64,
        }
    }

    pub fn log_manager(&self) -> &Arc<LogManager> {
        &self.logs
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().get(tp).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Bring local partitions in line with `image`: create logs for new
    /// replicas here, update replica state and configs, delete logs of
    /// partitions that left.
    pub fn apply_image(&self, image: &MetadataImage) {
        self.quotas.apply_image(image, self.node_id);
        let topic_defaults = crate::dynamic_config::TopicDefaults::resolve(
            &self.logs.config().log_defaults,
            self.default_min_isr,
            image,
            self.node_id,
        );
        let defaults = topic_defaults.log;
        let mut wanted: HashSet<TopicPartition> = HashSet::new();
        let mut work: Vec<Hosting<'_>> = Vec::new();
        for topic in image.topics.values() {
            let cfg = Arc::new(topic_log_config(&defaults, &topic.configs));
            let min_isr = topic
                .configs
                .get("min.insync.replicas")
                .and_then(|v| v.parse().ok())
                .unwrap_or(topic_defaults.min_insync_replicas);
            for (pid, reg) in &topic.partitions {
                if !reg.replicas.contains(&self.node_id) {
                    continue;
                }
                let tp = TopicPartition::new(topic.name.clone(), *pid);
                wanted.insert(tp.clone());
                work.push(Hosting {
                    tp,
                    topic_id: topic.id,
                    reg,
                    cfg: cfg.clone(),
                    min_isr,
                });
            }
        }
        self.ensure_partitions(&work);
        self.failed.lock().retain(|tp, _| wanted.contains(tp));
        let gone: Vec<TopicPartition> = self
            .partitions
            .read()
            .keys()
            .filter(|tp| !wanted.contains(*tp))
            .cloned()
            .collect();
        for tp in gone {
            if let Some(p) = self.partitions.write().remove(&tp) {
                let mut log = p.log.lock();
                let actions = p.replica.lock().on_removed();
                if let Err(e) = p.execute(&mut log, actions, None) {
                    warn!(partition = %tp, error = %e, "removing partition");
                }
                drop(log);
                p.appended.notify_waiters();
            }
            match self.logs.delete_log(&tp) {
                Ok(()) => info!(partition = %tp, "deleted partition log"),
                Err(e) => warn!(partition = %tp, error = %e, "could not delete partition log"),
            }
        }
    }

    /// Log a leader change of a partition this node has, and count the
    /// ISR shrinks and expansions of those it leads (whether the leader
    /// asked for them or the controller made them, fencing a broker).
    fn note_change(&self, tp: &TopicPartition, old: &ReplicaState, new: &ReplicaState) {
        if old.leader != new.leader {
            info!(
                partition = %tp, from = old.leader, to = new.leader,
                leader_epoch = new.leader_epoch, isr = ?new.isr,
                "leader changed"
            );
        }
        if old.leader == self.node_id && new.leader == self.node_id {
            let counter = match new.isr.len().cmp(&old.isr.len()) {
                std::cmp::Ordering::Less => &self.isr_shrinks,
                std::cmp::Ordering::Greater => &self.isr_expands,
                std::cmp::Ordering::Equal => return,
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// [`ensure_partition`](Self::ensure_partition) for each of `work`, on
    /// up to [`CREATE_THREADS`] threads when there are many (a new log's
    /// or a new leader's epoch checkpoint is an fsync: thousands of them
    /// one after the other took minutes), then one fsync of the data dir
    /// if logs were created. A partition that cannot be hosted is reported
    /// once (again only if the error changes).
    fn ensure_partitions(&self, work: &[Hosting<'_>]) {
        let logs_before = self.logs.len();
        let run = |h: &Hosting<'_>| {
            let result = self.ensure_partition(&h.tp, h.topic_id, h.reg, &h.cfg, h.min_isr);
            let mut failed = self.failed.lock();
            match result {
                Ok(()) => {
                    failed.remove(&h.tp);
                }
                Err(e) => {
                    let why = e.to_string();
                    if failed.get(&h.tp) != Some(&why) {
                        warn!(partition = %h.tp, error = %why, "cannot host partition");
                        failed.insert(h.tp.clone(), why);
                    }
                }
            }
        };
        let threads = work.len().div_ceil(64).clamp(1, CREATE_THREADS);
        if threads == 1 {
            work.iter().for_each(run);
        } else {
            let next = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        while let Some(h) =
                            work.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                        {
                            run(h);
                        }
                    });
                }
            });
        }
        if self.logs.len() > logs_before {
            if let Err(e) = self.logs.sync_data_dir() {
                warn!(error = %e, "cannot fsync the data dir after creating partition logs");
            }
        }
    }

    /// Whether this node could not host `tp` at the last image (the error).
    pub fn hosting_error(&self, tp: &TopicPartition) -> Option<String> {
        self.failed.lock().get(tp).cloned()
    }

    fn ensure_partition(
        &self,
        tp: &TopicPartition,
        topic_id: Uuid,
        reg: &PartitionRegistration,
        cfg: &LogConfig,
        min_isr: i32,
    ) -> Result<(), StorageError> {
        let state = ReplicaState {
            leader: reg.leader,
            leader_epoch: reg.leader_epoch,
            partition_epoch: reg.partition_epoch,
            replicas: reg.replicas.clone(),
            isr: reg.isr.clone(),
            min_insync_replicas: min_isr,
        };
        let existing = self.get(tp).filter(|p| p.topic_id == topic_id);
        let partition = match existing {
            Some(p) => {
                self.note_change(tp, &p.state(), &state);
                p
            }
            None => {
                let log = self.logs.get_or_create(tp, cfg.clone())?;
                let p = Arc::new(Partition::new(tp.clone(), topic_id, log, self.node_id));
                self.partitions.write().insert(tp.clone(), p.clone());
                p
            }
        };
        let mut log = partition.log.lock();
        if log.config() != cfg {
            log.update_config(cfg.clone());
        }
        // Under the log lock: a fetcher checks the state before it
        // appends, so it never writes to a log this node now leads.
        let actions = partition
            .replica
            .lock()
            .on_image(state, &*log, self.now_ms());
        partition.execute(&mut log, actions, None)?;
        Ok(())
    }
}
