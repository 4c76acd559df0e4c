//! `ReplicaManager`: the partitions this node hosts, kept in step with the
//! metadata image, and the produce/fetch machinery over their logs.
//!
//! Each [`Partition`] owns its log (behind its own mutex: one writer per
//! partition, no lock shared across partitions), its replica state from the
//! controller, its idempotent-producer state and a notifier that wakes
//! long-polling fetches after every append. fsyncs for `acks=all` run on the
//! blocking pool, never on the async workers.
//!
//! On a leader, each partition also tracks its followers' fetch positions
//! ([`Followers`]); the high watermark is the smallest log end over the ISR
//! (rules in [`crate::replication`]) and an `acks=all` produce waits for it
//! to pass its last offset. Replica state changes and follower appends take
//! the log lock, so a fetcher never appends to a log this node now leads.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use rivulet_controller::{MetadataImage, PartitionRegistration};
use rivulet_protocol::record_batch::{self, BatchHeader};
use rivulet_storage::config::{FlushPolicy, LOG_CONFIG_KEYS};
use rivulet_storage::log_manager::SharedLog;
use rivulet_storage::{LogConfig, LogManager, StorageError, TopicPartition};
use tracing::{info, warn};
use uuid::Uuid;

use crate::errors;
use crate::producer_state::{ProducerStateManager, SequenceCheck};
use crate::replication::{self, Followers};
use kafka_protocol::ResponseError as E;

/// Replica state of a partition as the controller last published it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub min_insync_replicas: i32,
}

#[derive(Debug)]
pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: Uuid,
    pub log: SharedLog,
    state: RwLock<ReplicaState>,
    producers: Mutex<ProducerStateManager>,
    /// Woken after every append, for long-polling fetches.
    pub appended: tokio::sync::Notify,
    /// On the leader: what each follower has fetched, this leader epoch.
    followers: Mutex<Followers>,
    /// Woken when the high watermark moves or the replica state changes,
    /// for `acks=all` produces.
    hw_changed: tokio::sync::Notify,
    /// On the leader: the ISR change asked of the controller and not yet
    /// seen in an image (KIP-497's pending state).
    pending_isr: Mutex<Option<PendingIsr>>,
}

/// An AlterPartition a leader sent, from the replica state it was computed
/// on, until an image with another partition or leader epoch supersedes it.
/// Meanwhile the high watermark counts the union of the current and the
/// requested ISR (Kafka's "maximal ISR"): a follower being added may already
/// be in the ISR the controller committed, so it must hold every record the
/// leader acknowledges from the moment it is proposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIsr {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
    /// The controller answered (committed or refused): wait for the image
    /// instead of sending it again.
    pub answered: bool,
}

/// What the controller said to an AlterPartition, for
/// [`ReplicaManager::isr_change_answered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrChangeOutcome {
    /// Committed: the image will bring it.
    Committed,
    /// Refused for a reason the image will bring (another leader, leader or
    /// partition epoch): wait for it.
    Superseded,
    /// Refused and nothing changed (a proposed replica is ineligible).
    Refused,
    /// No answer (no active controller, timeout): it may or may not have
    /// been committed; send it again.
    Unknown,
}

impl Partition {
    pub fn state(&self) -> ReplicaState {
        self.state.read().clone()
    }

    pub fn is_leader(&self, node_id: i32) -> bool {
        self.state.read().leader == node_id
    }

    /// The followers as the leader sees them.
    pub fn followers(&self) -> Followers {
        self.followers.lock().clone()
    }

    /// The ISR change this leader awaits, if any.
    pub fn pending_isr(&self) -> Option<PendingIsr> {
        self.pending_isr.lock().clone()
    }

    /// The ISR the high watermark must respect: the current one plus the
    /// members of a pending change ([`PendingIsr`]).
    /// Borrowed unless a change is pending (this runs on every append and
    /// follower fetch).
    fn maximal_isr<'a>(&self, state: &'a ReplicaState) -> std::borrow::Cow<'a, [i32]> {
        match self.pending_isr.lock().as_ref() {
            None => std::borrow::Cow::Borrowed(&state.isr),
            Some(p) => {
                let mut isr = state.isr.clone();
                isr.extend(p.isr.iter().filter(|r| !state.isr.contains(r)));
                std::borrow::Cow::Owned(isr)
            }
        }
    }

    /// Whether `node_id` alone makes up the (maximal) ISR, so that its own
    /// log end is the high watermark.
    fn alone_in_isr(&self, node_id: i32, state: &ReplicaState) -> bool {
        *self.maximal_isr(state) == [node_id]
    }

    /// Raise the high watermark to what the ISR allows (never lower it);
    /// wakes waiters when it moved. Call with the log locked.
    fn advance_high_watermark(
        &self,
        node_id: i32,
        log: &mut rivulet_storage::PartitionLog,
        state: &ReplicaState,
    ) {
        if state.leader != node_id {
            return;
        }
        let leo = log.log_end_offset();
        let isr = self.maximal_isr(state);
        let hw = {
            let followers = self.followers.lock();
            replication::high_watermark(node_id, leo, &isr, &followers)
        };
        if hw > log.high_watermark() {
            log.set_high_watermark(hw);
            self.hw_changed.notify_waiters();
            // Consumers see up to the high watermark: wake their long polls.
            self.appended.notify_waiters();
        }
    }

    /// Replace the producer state with one rebuilt from the log (after a
    /// follower truncated it).
    pub fn rebuild_producers(&self) {
        let rebuilt = rebuild_producer_state(&self.log);
        *self.producers.lock() = rebuilt;
    }

    /// Record the producers of batches a follower appended, so that this
    /// node deduplicates retries if it becomes leader.
    pub fn record_replicated(&self, buf: &[u8]) {
        let mut producers = self.producers.lock();
        for h in headers(buf) {
            producers.record(&h);
        }
    }
}

/// Outcome of appending one partition's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub base_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

impl AppendResult {
    fn error(code: i16, message: impl Into<Option<String>>) -> Self {
        AppendResult {
            error_code: code,
            error_message: message.into(),
            base_offset: -1,
            log_append_time: -1,
            log_start_offset: -1,
        }
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
}

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
        }
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
        let defaults = self.logs.config().log_defaults.clone();
        let mut wanted: HashSet<TopicPartition> = HashSet::new();
        for topic in image.topics.values() {
            let cfg = topic_log_config(&defaults, &topic.configs);
            let min_isr = topic
                .configs
                .get("min.insync.replicas")
                .and_then(|v| v.parse().ok())
                .unwrap_or(self.default_min_isr);
            for (pid, reg) in &topic.partitions {
                if !reg.replicas.contains(&self.node_id) {
                    continue;
                }
                let tp = TopicPartition::new(topic.name.clone(), *pid);
                wanted.insert(tp.clone());
                if let Err(e) = self.ensure_partition(&tp, topic.id, reg, &cfg, min_isr) {
                    warn!(partition = %tp, error = %e, "cannot host partition");
                }
            }
        }
        let gone: Vec<TopicPartition> = self
            .partitions
            .read()
            .keys()
            .filter(|tp| !wanted.contains(*tp))
            .cloned()
            .collect();
        for tp in gone {
            if let Some(p) = self.partitions.write().remove(&tp) {
                p.appended.notify_waiters();
                p.hw_changed.notify_waiters();
            }
            match self.logs.delete_log(&tp) {
                Ok(()) => info!(partition = %tp, "deleted partition log"),
                Err(e) => warn!(partition = %tp, error = %e, "could not delete partition log"),
            }
        }
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
            Some(p) => p,
            None => {
                let log = self.logs.get_or_create(tp, cfg.clone())?;
                let producers = rebuild_producer_state(&log);
                let p = Arc::new(Partition {
                    tp: tp.clone(),
                    topic_id,
                    log,
                    state: RwLock::new(ReplicaState::default()),
                    producers: Mutex::new(producers),
                    appended: tokio::sync::Notify::new(),
                    followers: Mutex::new(Followers::default()),
                    hw_changed: tokio::sync::Notify::new(),
                    pending_isr: Mutex::new(None),
                });
                self.partitions.write().insert(tp.clone(), p.clone());
                p
            }
        };
        {
            let mut log = partition.log.lock();
            if log.config() != cfg {
                log.update_config(cfg.clone());
            }
            if state.leader == self.node_id {
                let leo = log.log_end_offset();
                log.assign_epoch_start_offset(state.leader_epoch, leo)?;
                let mut followers = partition.followers.lock();
                if followers.leader_epoch != state.leader_epoch || followers.progress.is_empty() {
                    let others = state
                        .replicas
                        .iter()
                        .copied()
                        .filter(|r| *r != self.node_id);
                    *followers = Followers::new(state.leader_epoch, others, self.now_ms());
                }
            }
            {
                // An image with another partition or leader epoch settles a
                // pending ISR change (applied, refused or overtaken).
                let mut pending = partition.pending_isr.lock();
                if pending.as_ref().is_some_and(|p| {
                    p.leader_epoch != state.leader_epoch
                        || p.partition_epoch != state.partition_epoch
                }) {
                    *pending = None;
                }
            }
            if state.leader == self.node_id && partition.alone_in_isr(self.node_id, &state) {
                let leo = log.log_end_offset();
                log.set_high_watermark(leo);
            }
            // Under the log lock: a fetcher checks the state before it
            // appends, so it never writes to a log this node now leads.
            let changed = *partition.state.read() != state;
            *partition.state.write() = state.clone();
            partition.advance_high_watermark(self.node_id, &mut log, &state);
            if changed {
                partition.hw_changed.notify_waiters();
            }
        }
        Ok(())
    }

    /// The leader's side of a follower fetch: `follower` holds everything
    /// below `fetch_offset`. Advances the high watermark when the ISR allows.
    pub fn record_follower_fetch(&self, partition: &Partition, follower: i32, fetch_offset: i64) {
        let now = self.now_ms();
        let mut log = partition.log.lock();
        let state = partition.state();
        if state.leader != self.node_id {
            return;
        }
        partition
            .followers
            .lock()
            .record_fetch(follower, fetch_offset, log.log_end_offset(), now);
        partition.advance_high_watermark(self.node_id, &mut log, &state);
    }

    /// ISR changes this leader should ask the controller for:
    /// `(partition, state it was computed from, new ISR)`. A change is
    /// recorded as pending ([`PendingIsr`]) under the log lock, where the
    /// high watermark moves, so from here on the watermark waits for a
    /// joining follower; one still unanswered is returned again.
    pub fn isr_changes(&self, lag_max_ms: u64) -> Vec<(Arc<Partition>, ReplicaState, Vec<i32>)> {
        let now = self.now_ms();
        let mut out = Vec::new();
        for p in self.all() {
            let log = p.log.lock();
            let state = p.state();
            if state.leader != self.node_id || state.replicas.len() < 2 {
                continue;
            }
            let mut pending = p.pending_isr.lock();
            if let Some(pend) = pending.as_ref() {
                if !pend.answered {
                    out.push((p.clone(), state.clone(), pend.isr.clone()));
                }
                continue;
            }
            let followers = p.followers.lock();
            if followers.leader_epoch != state.leader_epoch {
                continue;
            }
            let epoch_start = log
                .leader_epoch_cache()
                .entries()
                .last()
                .map_or(0, |e| e.start_offset);
            let view = replication::LeaderView {
                leader: self.node_id,
                replicas: &state.replicas,
                isr: &state.isr,
                high_watermark: log.high_watermark(),
                epoch_start_offset: epoch_start,
            };
            if let Some(isr) = replication::isr_update(&view, &followers, lag_max_ms, now) {
                *pending = Some(PendingIsr {
                    leader_epoch: state.leader_epoch,
                    partition_epoch: state.partition_epoch,
                    isr: isr.clone(),
                    answered: false,
                });
                drop(followers);
                drop(pending);
                drop(log);
                out.push((p.clone(), state, isr));
            }
        }
        out
    }

    /// Record the controller's answer to the AlterPartition for `p` sent
    /// from `state`. A refusal that changed nothing drops the pending
    /// change (the high watermark no longer waits for its new members).
    pub fn isr_change_answered(
        &self,
        p: &Partition,
        state: &ReplicaState,
        outcome: IsrChangeOutcome,
    ) {
        let mut log = p.log.lock();
        let mut pending = p.pending_isr.lock();
        let ours = pending.as_ref().is_some_and(|pend| {
            pend.leader_epoch == state.leader_epoch && pend.partition_epoch == state.partition_epoch
        });
        if !ours {
            return;
        }
        match outcome {
            IsrChangeOutcome::Committed | IsrChangeOutcome::Superseded => {
                if let Some(pend) = pending.as_mut() {
                    pend.answered = true;
                }
            }
            IsrChangeOutcome::Refused => {
                *pending = None;
                drop(pending);
                // Without the refused members the watermark may move on.
                let current = p.state();
                p.advance_high_watermark(self.node_id, &mut log, &current);
            }
            IsrChangeOutcome::Unknown => {}
        }
    }

    /// Append a producer's records to a partition this node leads.
    pub async fn append(
        &self,
        tp: &TopicPartition,
        records: Option<Bytes>,
        acks: i16,
        timeout_ms: i32,
    ) -> AppendResult {
        let Some(partition) = self.get(tp) else {
            return AppendResult::error(E::UnknownTopicOrPartition.code(), None);
        };
        let state = partition.state();
        if state.leader != self.node_id {
            return AppendResult::error(E::NotLeaderOrFollower.code(), None);
        }
        if acks == -1 && (state.isr.len() as i32) < state.min_insync_replicas {
            return AppendResult::error(
                E::NotEnoughReplicas.code(),
                format!(
                    "{} in-sync replica(s), min.insync.replicas is {}",
                    state.isr.len(),
                    state.min_insync_replicas
                ),
            );
        }
        let Some(records) = records.filter(|r| !r.is_empty()) else {
            return AppendResult::error(E::CorruptMessage.code(), "no records".to_string());
        };
        // The client's bytes, with offsets and epoch rewritten in place.
        let mut buf = records.to_vec();
        let outcome = {
            let mut producers = partition.producers.lock();
            let first = match record_batch::BatchHeader::parse(&buf) {
                Ok(h) => h,
                Err(e) => return AppendResult::error(E::CorruptMessage.code(), e.to_string()),
            };
            match producers.check(&first) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate(m) => {
                    let log = partition.log.lock();
                    return AppendResult {
                        error_code: errors::NONE,
                        error_message: None,
                        base_offset: m.first_offset,
                        log_append_time: -1,
                        log_start_offset: log.log_start_offset(),
                    };
                }
                SequenceCheck::OutOfOrder { expected, got } => {
                    return AppendResult::error(
                        E::OutOfOrderSequenceNumber.code(),
                        format!("expected sequence {expected}, got {got}"),
                    )
                }
                SequenceCheck::InvalidEpoch { current, got } => {
                    return AppendResult::error(
                        E::InvalidProducerEpoch.code(),
                        format!("producer epoch {got} is older than {current}"),
                    )
                }
            }
            let mut log = partition.log.lock();
            match log.append_as_leader(&mut buf, state.leader_epoch) {
                Ok(info) => {
                    for h in headers(&buf) {
                        producers.record(&h);
                    }
                    if partition.alone_in_isr(self.node_id, &state) {
                        log.set_high_watermark(info.last_offset + 1);
                    } else {
                        partition.advance_high_watermark(self.node_id, &mut log, &state);
                    }
                    let durable = (acks == -1 && log.config().flush_policy == FlushPolicy::OnAck)
                        .then(|| log.flush_tracker());
                    Ok((info, log.log_start_offset(), durable))
                }
                Err(e) => Err(e),
            }
        };
        match outcome {
            Ok((info, log_start_offset, durable)) => {
                partition.appended.notify_waiters();
                if let Some(tracker) = durable {
                    let upto = info.last_offset + 1;
                    let synced =
                        tokio::task::spawn_blocking(move || tracker.wait_durable(upto)).await;
                    match synced {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            return AppendResult::error(errors::storage(&e), e.to_string())
                        }
                        Err(e) => {
                            return AppendResult::error(E::UnknownServerError.code(), e.to_string())
                        }
                    }
                }
                if acks == -1 {
                    let deadline = Duration::from_millis(timeout_ms.max(0) as u64);
                    if let Err(code) = self
                        .wait_for_high_watermark(
                            &partition,
                            info.last_offset + 1,
                            state.leader_epoch,
                            deadline,
                        )
                        .await
                    {
                        return AppendResult::error(code, None);
                    }
                }
                AppendResult {
                    error_code: errors::NONE,
                    error_message: None,
                    base_offset: info.first_offset,
                    log_append_time: info.log_append_time,
                    log_start_offset,
                }
            }
            Err(e) => AppendResult::error(errors::storage(&e), e.to_string()),
        }
    }
}

impl ReplicaManager {
    /// acks=all: wait until the high watermark reaches `offset` (every ISR
    /// member has the records), leadership of `leader_epoch` (the one the
    /// records were appended in) is lost, or `timeout` passes.
    /// As in Kafka, records committed by an ISR that shrank below
    /// `min.insync.replicas` meanwhile get NOT_ENOUGH_REPLICAS_AFTER_APPEND.
    async fn wait_for_high_watermark(
        &self,
        partition: &Partition,
        offset: i64,
        leader_epoch: i32,
        timeout: Duration,
    ) -> Result<(), i16> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = partition.hw_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            // Leadership first (as Kafka's DelayedProduce): once this node
            // has followed another leader, its log below the high watermark
            // may hold someone else's records where ours were truncated.
            // State changes and truncations hold the log lock: one snapshot.
            let (state, hw) = {
                let log = partition.log.lock();
                (partition.state(), log.high_watermark())
            };
            if state.leader != self.node_id || state.leader_epoch != leader_epoch {
                return Err(E::NotLeaderOrFollower.code());
            }
            if hw >= offset {
                if (state.isr.len() as i32) < state.min_insync_replicas {
                    return Err(E::NotEnoughReplicasAfterAppend.code());
                }
                return Ok(());
            }
            if self.get(&partition.tp).is_none() {
                return Err(E::UnknownTopicOrPartition.code());
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(E::RequestTimedOut.code());
                }
            }
        }
    }
}

/// Headers of the (already validated) batches in `buf`.
fn headers(buf: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(size) = buf.get(pos..).and_then(record_batch::peek_batch_size) {
        match buf.get(pos..).map(BatchHeader::parse) {
            Some(Ok(h)) => out.push(h),
            _ => break,
        }
        pos += size;
    }
    out
}

/// Producer state from the batch headers in the log.
fn rebuild_producer_state(log: &SharedLog) -> ProducerStateManager {
    let mut state = ProducerStateManager::new();
    let log = log.lock();
    if let Err(e) = log.scan_batch_headers(|h| state.record(h)) {
        warn!(partition = %log.topic_partition(), error = %e, "could not rebuild producer state");
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_controller::MetadataRecord;
    use rivulet_protocol::record_batch::Compression;
    use rivulet_protocol::records::RecordBatchBuilder;
    use rivulet_storage::{ManualClock, StorageConfig, SystemClock};

    /// A replica manager on node 1 leading `t`/0 with replicas and ISR
    /// [1, 2, 3] and min.insync.replicas 2.
    fn leader(dir: &std::path::Path, clock: Arc<ManualClock>) -> (ReplicaManager, MetadataImage) {
        let logs = LogManager::open(
            dir,
            StorageConfig::default(),
            Arc::new(SystemClock),
            &|_| None,
        )
        .unwrap();
        let rm = ReplicaManager::new(1, Arc::new(logs), 1).with_lag_clock(clock);
        let topic_id = Uuid::new_v4();
        let mut image = MetadataImage::default();
        let configs = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
        image
            .apply(
                1,
                &MetadataRecord::Topic {
                    name: "t".into(),
                    topic_id,
                    configs,
                },
            )
            .unwrap();
        image
            .apply(
                2,
                &MetadataRecord::Partition {
                    topic_id,
                    partition: 0,
                    replicas: vec![1, 2, 3],
                    isr: vec![1, 2, 3],
                    leader: 1,
                    leader_epoch: 0,
                    partition_epoch: 0,
                },
            )
            .unwrap();
        rm.apply_image(&image);
        (rm, image)
    }

    /// Apply a PartitionChange of `t`/0 at image offset `offset`.
    fn change(
        rm: &ReplicaManager,
        image: &mut MetadataImage,
        offset: u64,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
    ) {
        let topic_id = image.topic("t").unwrap().id;
        image
            .apply(
                offset,
                &MetadataRecord::PartitionChange {
                    topic_id,
                    partition: 0,
                    leader,
                    isr,
                },
            )
            .unwrap();
        rm.apply_image(image);
    }

    /// An acks=all produce of one record, parked after its append.
    async fn parked_produce(
        rm: &Arc<ReplicaManager>,
    ) -> (tokio::task::JoinHandle<AppendResult>, Arc<Partition>) {
        let producing = tokio::spawn({
            let rm = rm.clone();
            async move { rm.append(&tp(), Some(batch()), -1, 10_000).await }
        });
        let p = rm.get(&tp()).unwrap();
        while p.log.lock().log_end_offset() < 1 {
            tokio::task::yield_now().await;
        }
        (producing, p)
    }

    fn batch() -> Bytes {
        let mut b = RecordBatchBuilder::new(Compression::None);
        b.push(0, None, Some(b"v"), &[]);
        Bytes::from(b.build().unwrap())
    }

    fn tp() -> TopicPartition {
        TopicPartition::new("t", 0)
    }

    #[tokio::test]
    async fn acks_all_times_out_while_followers_lag() {
        let dir = tempfile::tempdir().unwrap();
        let (rm, _) = leader(dir.path(), Arc::new(ManualClock::new(0)));
        let r = rm.append(&tp(), Some(batch()), -1, 50).await;
        assert_eq!(r.error_code, E::RequestTimedOut.code());
        // The record is in the leader's log, but not committed.
        let p = rm.get(&tp()).unwrap();
        assert_eq!(p.log.lock().log_end_offset(), 1);
        assert_eq!(p.log.lock().high_watermark(), 0);
    }

    #[tokio::test]
    async fn acks_all_answers_once_every_isr_member_fetched_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let (rm, _) = leader(dir.path(), Arc::new(ManualClock::new(0)));
        let rm = Arc::new(rm);
        let (producing, p) = parked_produce(&rm).await;
        rm.record_follower_fetch(&p, 2, 1);
        assert_eq!(
            p.log.lock().high_watermark(),
            0,
            "follower 3 has not fetched"
        );
        rm.record_follower_fetch(&p, 3, 1);
        assert_eq!(p.log.lock().high_watermark(), 1);
        let r = producing.await.unwrap();
        assert_eq!(r.error_code, errors::NONE);
        assert_eq!(r.base_offset, 0);
    }

    #[tokio::test]
    async fn isr_shrinking_below_min_while_waiting_fails_after_append() {
        let dir = tempfile::tempdir().unwrap();
        let (rm, mut image) = leader(dir.path(), Arc::new(ManualClock::new(0)));
        let rm = Arc::new(rm);
        let (producing, _) = parked_produce(&rm).await;
        change(&rm, &mut image, 3, None, Some(vec![1]));
        let r = producing.await.unwrap();
        assert_eq!(r.error_code, E::NotEnoughReplicasAfterAppend.code());
    }

    /// KIP-497: from the moment the leader proposes a follower into the
    /// ISR, the high watermark waits for that follower, even while the
    /// leader's own image still shows it alone.
    #[tokio::test]
    async fn a_pending_isr_expansion_holds_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let (rm, mut image) = leader(dir.path(), clock.clone());
        change(&rm, &mut image, 3, None, Some(vec![1]));
        let p = rm.get(&tp()).unwrap();
        rm.record_follower_fetch(&p, 2, 0);
        let changes = rm.isr_changes(30_000);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].2, vec![1, 2]);
        assert!(p.pending_isr().is_some());

        // The controller may already have committed [1, 2]: an acks=1
        // record is not committed until follower 2 has it.
        let r = rm.append(&tp(), Some(batch()), 1, 1_000).await;
        assert_eq!(r.error_code, errors::NONE);
        assert_eq!(p.log.lock().high_watermark(), 0, "waits for follower 2");
        rm.record_follower_fetch(&p, 2, 1);
        assert_eq!(p.log.lock().high_watermark(), 1);

        // Unanswered, it is sent again; once answered, it waits for the image.
        let (state, isr) = (changes[0].1.clone(), changes[0].2.clone());
        rm.isr_change_answered(&p, &state, IsrChangeOutcome::Unknown);
        assert_eq!(rm.isr_changes(30_000)[0].2, isr);
        rm.isr_change_answered(&p, &state, IsrChangeOutcome::Committed);
        assert!(rm.isr_changes(30_000).is_empty());
        change(&rm, &mut image, 4, None, Some(vec![1, 2]));
        assert_eq!(p.pending_isr(), None, "settled by the image");
    }

    #[tokio::test]
    async fn a_refused_isr_expansion_releases_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let (rm, mut image) = leader(dir.path(), Arc::new(ManualClock::new(0)));
        change(&rm, &mut image, 3, None, Some(vec![1]));
        let p = rm.get(&tp()).unwrap();
        rm.record_follower_fetch(&p, 3, 0);
        let changes = rm.isr_changes(30_000);
        assert_eq!(changes[0].2, vec![1, 3]);
        rm.append(&tp(), Some(batch()), 1, 1_000).await;
        assert_eq!(p.log.lock().high_watermark(), 0);
        rm.isr_change_answered(&p, &changes[0].1, IsrChangeOutcome::Refused);
        assert_eq!(p.pending_isr(), None);
        assert_eq!(p.log.lock().high_watermark(), 1, "alone in the ISR again");
    }

    #[tokio::test]
    async fn acks_all_fails_once_leadership_is_lost_even_if_the_high_watermark_passes() {
        let dir = tempfile::tempdir().unwrap();
        let (rm, mut image) = leader(dir.path(), Arc::new(ManualClock::new(0)));
        let rm = Arc::new(rm);
        let (producing, p) = parked_produce(&rm).await;
        // Before the parked produce runs again: node 2 takes over, and this
        // node, now its follower, gets a high watermark past the offset
        // (from node 2's log, which need not hold our record there).
        change(&rm, &mut image, 3, Some(2), None);
        p.log.lock().set_high_watermark(1);
        let r = producing.await.unwrap();
        assert_eq!(r.error_code, E::NotLeaderOrFollower.code());
    }

    #[tokio::test]
    async fn lagging_follower_is_proposed_out_of_the_isr_and_back_in() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let (rm, mut image) = leader(dir.path(), clock.clone());
        let r = rm.append(&tp(), Some(batch()), 1, 0).await;
        assert_eq!(r.error_code, errors::NONE);
        let p = rm.get(&tp()).unwrap();
        clock.advance(1_000);
        rm.record_follower_fetch(&p, 2, 1);
        assert!(rm.isr_changes(30_000).is_empty());
        clock.advance(30_000);
        rm.record_follower_fetch(&p, 2, 1);
        let changes = rm.isr_changes(30_000);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].2, vec![1, 2]);

        // The controller applies it; follower 3 then catches up and is
        // proposed back in.
        change(&rm, &mut image, 3, None, Some(vec![1, 2]));
        assert_eq!(p.state().partition_epoch, 1);
        assert!(rm.isr_changes(30_000).is_empty());
        rm.record_follower_fetch(&p, 3, 1);
        let changes = rm.isr_changes(30_000);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].2, vec![1, 2, 3]);
    }
}
