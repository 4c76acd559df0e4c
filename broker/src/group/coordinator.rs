//! `GroupCoordinator`: the async shell around the pure group state machine.
//!
//! The coordinator of a group is the leader of its `__consumer_offsets`
//! partition (created on first use, compacted). When this node first needs
//! a partition's groups it replays the partition to rebuild them; when it
//! no longer leads the partition it forgets them and answers
//! NOT_COORDINATOR. Group metadata and committed offsets are written through
//! the normal log path with acks=all before the request is answered.
//!
//! JoinGroup and SyncGroup requests are parked on a oneshot channel keyed by
//! a token; the state machine decides when each is answered, and a timer
//! loop drives session expiry and rebalance completion.
//!
//! Offsets committed inside a transaction are handled in [`txn`]: pending
//! per producer (in each group's [`GroupOffsets`]) until the transaction
//! coordinator reports its marker through [`GroupCoordinator::complete_txn`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError as E;
use rivulet_storage::TopicPartition;
use tokio::sync::{oneshot, watch};
use tracing::{debug, info, warn};

use super::consumer::{ConsumerGroup, ConsumerGroupConfig};
use super::offset_store::{self, GroupOffsets};
use super::offsets::{self, CommittedOffset, OffsetsRecord, OFFSETS_TOPIC};
use super::state::{Group, GroupConfig};
use super::types::{
    GroupSnapshot, GroupState, JoinRequest, JoinResult, Output, RequestToken, SyncRequest,
    SyncResult,
};
use crate::local_node::{read_to_log_end, LocalNode};
use crate::replica_manager::AppendOrigin;

mod committed;
mod consumer;
#[cfg(test)]
mod tests;
mod txn;

pub use consumer::{ConsumerGroupView, HeartbeatFailure};
pub use txn::{FetchedOffset, TxnCommit};

/// Most partitions one offsets-topic read returns at a time during load.
const LOAD_READ_BYTES: usize = 4 * 1024 * 1024;
/// How long a write to `__consumer_offsets` waits for its ISR (acks=all).
const OFFSETS_APPEND_TIMEOUT_MS: i32 = 5_000;
/// [`CoordinatorConfig::timer_tick`] unless set otherwise.
pub const DEFAULT_TIMER_TICK: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// `offsets.topic.num.partitions` (Kafka: 50; 10 suits small clusters).
    pub offsets_partitions: i32,
    /// `offsets.topic.replication.factor` (capped by live brokers).
    pub offsets_replication_factor: i32,
    /// `offsets.retention.minutes` in ms: offsets of a group empty for longer go.
    pub offsets_retention_ms: i64,
    pub group: GroupConfig,
    /// How often the timer loop ([`GroupCoordinator::run_timers`]) looks for
    /// session expiries and rebalance deadlines: the latest a deadline is
    /// acted on. Not a broker property (Kafka's coordinator runs a 1 ms timer
    /// wheel and has none); 50 ms keeps the loop cheap with many groups, and
    /// the request fuzz target lowers it so that a fuzzed JoinGroup is
    /// answered within a few milliseconds instead of parking for ticks.
    pub timer_tick: Duration,
    /// KIP-848 consumer groups (`group.consumer.*`).
    pub consumer: ConsumerGroupConfig,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            offsets_partitions: 10,
            offsets_replication_factor: 3,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            group: GroupConfig::default(),
            timer_tick: DEFAULT_TIMER_TICK,
            consumer: ConsumerGroupConfig::default(),
        }
    }
}

enum Waiter {
    Join(oneshot::Sender<JoinResult>),
    Sync(oneshot::Sender<SyncResult>),
}

pub struct GroupInner {
    pub group: Group,
    /// Set when the group is a KIP-848 consumer group (then `group` is an
    /// empty classic group).
    pub consumer: Option<ConsumerGroup>,
    pub offsets: GroupOffsets,
    waiters: HashMap<RequestToken, Waiter>,
}

/// One group as ListGroups shows it.
#[derive(Debug, Clone)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    /// `classic` or `consumer`.
    pub group_type: &'static str,
    /// The classic group's state (`None` for a consumer group).
    pub classic_state: Option<GroupState>,
}

pub struct GroupEntry {
    pub partition: i32,
    pub inner: tokio::sync::Mutex<GroupInner>,
}

pub struct GroupCoordinator {
    config: CoordinatorConfig,
    node: LocalNode,
    groups: parking_lot::Mutex<HashMap<String, Arc<GroupEntry>>>,
    loaded: parking_lot::Mutex<HashSet<i32>>,
    loading: tokio::sync::Mutex<()>,
    next_token: AtomicU64,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("groups", &self.groups.lock().len())
            .finish()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl GroupCoordinator {
    pub fn new(config: CoordinatorConfig, node: LocalNode) -> Self {
        GroupCoordinator {
            config,
            node,
            groups: parking_lot::Mutex::new(HashMap::new()),
            loaded: parking_lot::Mutex::new(HashSet::new()),
            loading: tokio::sync::Mutex::new(()),
            next_token: AtomicU64::new(1),
        }
    }

    pub fn partition_of(&self, group: &str) -> i32 {
        offsets::partition_for(group, self.config.offsets_partitions)
    }

    fn tp(&self, partition: i32) -> TopicPartition {
        TopicPartition::new(OFFSETS_TOPIC, partition)
    }

    /// Make sure `__consumer_offsets` exists; create it compacted if not.
    async fn ensure_offsets_topic(&self) -> Result<(), i16> {
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert("segment.bytes".to_string(), "104857600".to_string());
        // Group metadata records carry every member's metadata and
        // assignment (bounded by group.max.size and
        // group.max.member.metadata.bytes): allow larger records than the
        // client-facing default.
        configs.insert("max.message.bytes".to_string(), "16777216".to_string());
        self.node
            .ensure_internal_topic(
                OFFSETS_TOPIC,
                self.config.offsets_partitions,
                self.config.offsets_replication_factor,
                configs,
            )
            .await
    }

    /// The node coordinating `group`, creating the offsets topic if needed.
    pub async fn coordinator_for(&self, group: &str) -> Result<i32, i16> {
        self.ensure_offsets_topic().await?;
        let image = self.node.image();
        let p = self.partition_of(group);
        match image.partition(OFFSETS_TOPIC, p) {
            Some(reg) if reg.leader >= 0 && image.is_live(reg.leader) => Ok(reg.leader),
            _ => Err(E::CoordinatorNotAvailable.code()),
        }
    }

    fn leads(&self, partition: i32) -> bool {
        self.node
            .replicas
            .get(&self.tp(partition))
            .is_some_and(|p| p.is_leader(self.node.node_id()))
    }

    /// Forget every group of a partition this node no longer leads.
    fn unload(&self, partition: i32) {
        if self.loaded.lock().remove(&partition) {
            self.groups.lock().retain(|_, e| e.partition != partition);
            info!(partition, "unloaded groups of {OFFSETS_TOPIC} partition");
        }
    }

    /// The entry of `group` on this coordinator (`None` when it does not
    /// exist and `create` is false); NOT_COORDINATOR when another node
    /// coordinates it.
    pub async fn entry(&self, group: &str, create: bool) -> Result<Option<Arc<GroupEntry>>, i16> {
        let partition = self.partition_of(group);
        if self.node.image().topic(OFFSETS_TOPIC).is_none() {
            if !create {
                return Ok(None);
            }
            self.ensure_offsets_topic().await?;
        }
        if !self.leads(partition) {
            self.unload(partition);
            return Err(E::NotCoordinator.code());
        }
        if !self.loaded.lock().contains(&partition) {
            self.load(partition).await?;
        }
        let mut groups = self.groups.lock();
        if let Some(e) = groups.get(group) {
            return Ok(Some(e.clone()));
        }
        if !create {
            return Ok(None);
        }
        let e = Arc::new(GroupEntry {
            partition,
            inner: tokio::sync::Mutex::new(GroupInner {
                group: Group::new(group.to_string(), self.config.group.clone(), now_ms()),
                consumer: None,
                offsets: GroupOffsets::default(),
                waiters: HashMap::new(),
            }),
        });
        groups.insert(group.to_string(), e.clone());
        Ok(Some(e))
    }

    /// Replay an offsets partition into groups.
    async fn load(&self, partition: i32) -> Result<(), i16> {
        let _guard = self.loading.lock().await;
        if self.loaded.lock().contains(&partition) {
            return Ok(());
        }
        let Some(p) = self.node.replicas.get(&self.tp(partition)) else {
            return Err(E::NotCoordinator.code());
        };
        let log = p.log.clone();
        let records = tokio::task::spawn_blocking(move || {
            read_to_log_end(&log, LOAD_READ_BYTES)
                .iter()
                .flat_map(|b| offsets::decode_batches(b))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| E::CoordinatorLoadInProgress.code())?;
        let mut replayed = offset_store::replay(records);
        let now = now_ms();
        let names = replayed.group_names();
        let mut consumer_groups = consumer::loaded_consumer_groups(
            &mut replayed.consumer_groups,
            &self.config.consumer,
            now,
        );
        let mut groups = self.groups.lock();
        for name in names {
            let group = match replayed.snapshots.remove(&name).flatten() {
                Some(s) => Group::from_snapshot(s, self.config.group.clone(), now),
                None => Group::new(name.clone(), self.config.group.clone(), now),
            };
            let entry = Arc::new(GroupEntry {
                partition,
                inner: tokio::sync::Mutex::new(GroupInner {
                    group,
                    consumer: consumer_groups.remove(&name),
                    offsets: replayed.offsets.remove(&name).unwrap_or_default(),
                    waiters: HashMap::new(),
                }),
            });
            groups.insert(name, entry);
        }
        self.loaded.lock().insert(partition);
        info!(partition, "loaded groups of {OFFSETS_TOPIC} partition");
        Ok(())
    }

    /// Write records to the group's offsets partition (acks=all); the log
    /// offset of the first.
    async fn append(&self, partition: i32, records: &[OffsetsRecord]) -> Result<i64, i16> {
        let Some(batch) = offsets::encode_batch(records, now_ms()) else {
            return Err(E::UnknownServerError.code());
        };
        self.append_batch(partition, batch, AppendOrigin::Client)
            .await
    }

    /// Write a batch to an offsets partition (acks=all), with the errors
    /// Kafka's `GroupMetadataManager` answers for a failed write; the log
    /// offset of its first record.
    async fn append_batch(
        &self,
        partition: i32,
        batch: bytes::Bytes,
        origin: AppendOrigin,
    ) -> Result<i64, i16> {
        let r = self
            .node
            .replicas
            .append_with_origin(
                &self.tp(partition),
                Some(batch),
                -1,
                OFFSETS_APPEND_TIMEOUT_MS,
                origin,
            )
            .await;
        crate::errors::coordinator_append(r.error_code).map(|()| r.base_offset)
    }

    /// Carry out the state machine's outputs: persist first, then answer.
    async fn process(&self, partition: i32, inner: &mut GroupInner, outputs: Vec<Output>) {
        if outputs.iter().any(|o| matches!(o, Output::Persist)) {
            let snapshot = inner.group.snapshot();
            let rec = OffsetsRecord::Group {
                group: snapshot.group_id.clone(),
                value: Some(snapshot),
            };
            match self.append(partition, &[rec]).await {
                Err(code) => warn!(
                    group = inner.group.group_id(),
                    code, "could not persist group metadata"
                ),
                // A classic group persists once per rebalance (and when it
                // empties): one line per generation.
                Ok(_) => info!(
                    group = inner.group.group_id(),
                    generation = inner.group.generation_id(),
                    state = ?inner.group.state(),
                    "group rebalanced"
                ),
            }
        }
        for o in outputs {
            match o {
                Output::Join { token, result } => {
                    if let Some(Waiter::Join(tx)) = inner.waiters.remove(&token) {
                        let _ = tx.send(result);
                    }
                }
                Output::Sync { token, result } => {
                    if let Some(Waiter::Sync(tx)) = inner.waiters.remove(&token) {
                        let _ = tx.send(result);
                    }
                }
                Output::Persist => {}
            }
        }
    }

    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinResult {
        let fail = |code: i16, member_id: String| JoinResult {
            error_code: code,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id,
            members: Vec::new(),
            skip_assignment: false,
        };
        // Kafka's order: coordinator checks, then the checks that need no
        // group, then `getOrMaybeCreateGroup`: only a member without an id
        // creates the group, a member id for a group that does not exist is
        // UNKNOWN_MEMBER_ID. A refused join leaves no group behind.
        let existing = match self.entry(group_id, false).await {
            Ok(e) => e,
            Err(code) => return fail(code, req.member_id),
        };
        if let Err(e) = self.config.group.validate_join(&req) {
            if e == E::InvalidRequest {
                warn!(
                    group = group_id,
                    member = %req.member_id,
                    client = %req.client_id,
                    metadata_bytes = super::state::member_metadata_bytes(&req),
                    limit = self.config.group.max_member_metadata_bytes,
                    "JoinGroup refused: member metadata over group.max.member.metadata.bytes"
                );
            }
            return fail(e.code(), req.member_id);
        }
        let entry = match existing {
            Some(e) => e,
            None if !req.member_id.is_empty() => {
                return fail(E::UnknownMemberId.code(), req.member_id)
            }
            None => match self.entry(group_id, true).await {
                Ok(Some(e)) => e,
                Ok(None) => return fail(E::CoordinatorNotAvailable.code(), req.member_id),
                Err(code) => return fail(code, req.member_id),
            },
        };
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let member_id = req.member_id.clone();
        {
            let mut inner = entry.inner.lock().await;
            if inner.consumer.as_ref().is_some_and(|g| !g.is_empty()) {
                return self
                    .classic_join_consumer_group(entry.partition, &mut inner, req)
                    .await;
            }
            if let Err(code) = self.take_for_classic(entry.partition, &mut inner).await {
                return fail(code, member_id);
            }
            inner.waiters.insert(token, Waiter::Join(tx));
            let outputs = inner.group.join(token, req, now_ms());
            self.process(entry.partition, &mut inner, outputs).await;
        }
        let r = rx
            .await
            .unwrap_or_else(|_| fail(E::NotCoordinator.code(), member_id));
        debug!(group = group_id, member = %r.member_id, error = r.error_code, generation = r.generation_id, leader = %r.leader, members = r.members.len(), "join answered");
        r
    }

    pub async fn sync(&self, group_id: &str, req: SyncRequest) -> SyncResult {
        let fail = |code: i16| SyncResult {
            error_code: code,
            protocol_type: None,
            protocol_name: None,
            assignment: bytes::Bytes::new(),
        };
        let entry = match self.entry(group_id, false).await {
            Ok(Some(e)) => e,
            Ok(None) => return fail(E::UnknownMemberId.code()),
            Err(code) => return fail(code),
        };
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = entry.inner.lock().await;
            if let Some(g) = inner.consumer.as_ref().filter(|g| !g.is_empty()) {
                return match g.classic_sync(&req.member_id, req.generation_id) {
                    Ok((protocol, assignment)) => SyncResult {
                        error_code: 0,
                        protocol_type: Some("consumer".to_string()),
                        protocol_name: Some(protocol),
                        assignment,
                    },
                    Err(code) => fail(code),
                };
            }
            inner.waiters.insert(token, Waiter::Sync(tx));
            let outputs = inner.group.sync(token, req, now_ms());
            self.process(entry.partition, &mut inner, outputs).await;
        }
        let r = rx.await.unwrap_or_else(|_| fail(E::NotCoordinator.code()));
        debug!(
            group = group_id,
            error = r.error_code,
            assignment_bytes = r.assignment.len(),
            "sync answered"
        );
        r
    }

    pub async fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> i16 {
        match self.entry(group_id, false).await {
            Ok(Some(e)) => {
                let mut inner = e.inner.lock().await;
                if inner.consumer.as_ref().is_some_and(|g| !g.is_empty()) {
                    return self
                        .classic_heartbeat_consumer_group(
                            e.partition,
                            &mut inner,
                            member_id,
                            generation,
                        )
                        .await;
                }
                inner
                    .group
                    .heartbeat(member_id, instance, generation, now_ms())
            }
            Ok(None) => E::UnknownMemberId.code(),
            Err(code) => code,
        }
    }

    /// LeaveGroup: a top-level error, or one code per member.
    pub async fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        let entry = match self.entry(group_id, false).await {
            Ok(Some(e)) => e,
            Ok(None) => return Ok(vec![E::UnknownMemberId.code(); members.len()]),
            Err(code) => return Err(code),
        };
        let mut inner = entry.inner.lock().await;
        if inner.consumer.as_ref().is_some_and(|g| !g.is_empty()) {
            return Ok(self
                .classic_leave_consumer_group(entry.partition, &mut inner, members)
                .await);
        }
        let (codes, outputs) = inner.group.leave(members, now_ms());
        self.process(entry.partition, &mut inner, outputs).await;
        Ok(codes)
    }

    /// OffsetCommit: one code per partition, or a group-level error for all.
    pub async fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        commits: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), i16> {
        // Only a commit without a generation (a simple consumer or the admin
        // client) creates the group. One with a generation for a group that
        // does not exist comes from a stale generation: Kafka answers
        // ILLEGAL_GENERATION (GROUP_ID_NOT_FOUND only from OffsetCommit v9,
        // which is not advertised).
        let entry = match self.entry(group_id, generation < 0).await {
            Ok(Some(e)) => e,
            Ok(None) => return Err(E::IllegalGeneration.code()),
            Err(code) => return Err(code),
        };
        let mut inner = entry.inner.lock().await;
        // A consumer group checks member epochs (the field is the member
        // epoch from OffsetCommit v9; older versions carry it too).
        let code = match &inner.consumer {
            Some(g) => g.validate_offset_commit(member_id, generation),
            None => inner
                .group
                .validate_offset_commit(member_id, instance, generation),
        };
        if code != 0 {
            return Err(code);
        }
        let records: Vec<OffsetsRecord> = commits
            .iter()
            .map(|(t, p, v)| OffsetsRecord::Offset {
                group: group_id.to_string(),
                topic: t.clone(),
                partition: *p,
                value: Some(v.clone()),
            })
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        let base = self.append(entry.partition, &records).await?;
        for (at, (t, p, v)) in (base..).zip(commits) {
            inner.offsets.commit((t, p), v, at);
        }
        Ok(())
    }

    /// Every group this node coordinates: `(id, protocol type, state)`.
    pub async fn list(&self) -> Vec<(String, String, GroupState)> {
        self.list_typed()
            .await
            .into_iter()
            .filter_map(|g| g.classic_state.map(|s| (g.group_id, g.protocol_type, s)))
            .collect()
    }

    /// Every group this node coordinates, classic and consumer (KIP-848)
    /// groups, as ListGroups v5 shows them.
    pub async fn list_typed(&self) -> Vec<ListedGroup> {
        // Load every partition this node leads so no group is missed.
        if self.node.image().topic(OFFSETS_TOPIC).is_some() {
            for p in 0..self.config.offsets_partitions {
                if self.leads(p) && !self.loaded.lock().contains(&p) {
                    let _ = self.load(p).await;
                }
            }
        }
        let mut out = Vec::new();
        for (name, e) in self.led_entries() {
            let inner = e.inner.lock().await;
            out.push(match &inner.consumer {
                Some(c) => ListedGroup {
                    group_id: name,
                    protocol_type: "consumer".to_string(),
                    state: c.state().as_str().to_string(),
                    group_type: "consumer",
                    classic_state: None,
                },
                None => ListedGroup {
                    group_id: name,
                    protocol_type: inner.group.protocol_type().unwrap_or_default().to_string(),
                    state: inner.group.state().as_str().to_string(),
                    group_type: "classic",
                    classic_state: Some(inner.group.state()),
                },
            });
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DescribeGroups: the group's snapshot (`Dead` with no members when unknown).
    pub async fn describe(&self, group_id: &str) -> Result<GroupSnapshot, i16> {
        let found = match self.entry(group_id, false).await? {
            Some(e) => {
                let inner = e.inner.lock().await;
                // A consumer group is not a classic group: Kafka's
                // DescribeGroups (v0-5) answers it as Dead.
                inner.consumer.is_none().then(|| inner.group.snapshot())
            }
            None => None,
        };
        match found {
            Some(s) => Ok(s),
            None => Ok(GroupSnapshot {
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                generation_id: -1,
                protocol_type: None,
                protocol_name: None,
                leader: None,
                members: Vec::new(),
                state_timestamp: 0,
            }),
        }
    }

    /// DeleteGroups: only an empty group; its offsets go too.
    pub async fn delete(&self, group_id: &str) -> i16 {
        let entry = match self.entry(group_id, false).await {
            Ok(Some(e)) => e,
            Ok(None) => return E::GroupIdNotFound.code(),
            Err(code) => return code,
        };
        let mut inner = entry.inner.lock().await;
        if !inner.group.is_empty() || inner.consumer.as_ref().is_some_and(|g| !g.is_empty()) {
            return E::NonEmptyGroup.code();
        }
        // Pending transactional offsets get tombstones too (Kafka's
        // `deleteAllOffsets`), so a later COMMIT marker restores nothing.
        let mut records: Vec<OffsetsRecord> = inner
            .offsets
            .all_keys()
            .into_iter()
            .map(|(t, p)| OffsetsRecord::Offset {
                group: group_id.to_string(),
                topic: t,
                partition: p,
                value: None,
            })
            .collect();
        records.push(OffsetsRecord::Group {
            group: group_id.to_string(),
            value: None,
        });
        if inner.consumer.is_some() {
            records.push(OffsetsRecord::ConsumerGroup {
                group: group_id.to_string(),
                value: None,
            });
        }
        if let Err(code) = self.append(entry.partition, &records).await {
            return code;
        }
        inner.offsets.clear();
        let outputs = inner.group.mark_dead();
        self.process(entry.partition, &mut inner, outputs).await;
        drop(inner);
        self.groups.lock().remove(group_id);
        0
    }

    /// OffsetDelete: remove committed offsets of partitions (only while the
    /// group has no members; a live group may be consuming them).
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), i16> {
        let entry = match self.entry(group_id, false).await? {
            Some(e) => e,
            None => return Err(E::GroupIdNotFound.code()),
        };
        let mut inner = entry.inner.lock().await;
        if !inner.group.is_empty() || inner.consumer.as_ref().is_some_and(|g| !g.is_empty()) {
            return Err(E::GroupSubscribedToTopic.code());
        }
        let records: Vec<OffsetsRecord> = partitions
            .iter()
            .filter(|k| inner.offsets.committed(k).is_some() || inner.offsets.has_pending(k))
            .map(|(t, p)| OffsetsRecord::Offset {
                group: group_id.to_string(),
                topic: t.clone(),
                partition: *p,
                value: None,
            })
            .collect();
        if !records.is_empty() {
            self.append(entry.partition, &records).await?;
        }
        for k in partitions {
            inner.offsets.remove(k);
        }
        Ok(())
    }

    /// Drive timers (session expiry, rebalance completion) and expire the
    /// offsets of groups empty for longer than `offsets.retention`.
    pub async fn run_timers(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        // interval() panics on a zero period; the knob is not input-driven,
        // but keep it at 1 ms at least.
        let period = self.config.timer_tick.max(Duration::from_millis(1));
        let mut tick = tokio::time::interval(period);
        let mut last_retention = 0i64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let now = now_ms();
            let entries: Vec<Arc<GroupEntry>> = self.groups.lock().values().cloned().collect();
            for e in &entries {
                let mut inner = e.inner.lock().await;
                if inner.group.next_deadline().is_some_and(|d| d <= now) {
                    let outputs = inner.group.tick(now);
                    self.process(e.partition, &mut inner, outputs).await;
                }
            }
            self.tick_consumer_groups(&entries, now).await;
            if now - last_retention >= 60_000 {
                last_retention = now;
                self.expire_offsets(&entries, now).await;
            }
        }
    }

    async fn expire_offsets(&self, entries: &[Arc<GroupEntry>], now: i64) {
        for e in entries {
            let mut inner = e.inner.lock().await;
            let snap = inner.group.snapshot();
            // Offsets with a pending transactional commit are kept
            // (Kafka's `cleanupExpiredOffsets`).
            let expired = inner.offsets.expirable_keys();
            // Empty since: a consumer group's own clock (its classic
            // shell's state timestamp is from before it had members).
            let empty_since = match &inner.consumer {
                Some(g) => g.empty_since(),
                None => (snap.state == GroupState::Empty).then_some(snap.state_timestamp),
            };
            let Some(empty_since) = empty_since else {
                continue;
            };
            if now - empty_since < self.config.offsets_retention_ms || expired.is_empty() {
                continue;
            }
            let records: Vec<OffsetsRecord> = expired
                .iter()
                .map(|(t, p)| OffsetsRecord::Offset {
                    group: snap.group_id.clone(),
                    topic: t.clone(),
                    partition: *p,
                    value: None,
                })
                .collect();
            if self.append(e.partition, &records).await.is_ok() {
                for k in &expired {
                    inner.offsets.remove(k);
                }
                info!(group = %snap.group_id, "expired offsets of a long-empty group");
            }
        }
    }
}
