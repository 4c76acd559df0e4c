//! `TransactionCoordinator`: the async shell around the pure transaction
//! state machine ([`super::metadata`]).
//!
//! The coordinator of a transactional id is the leader of its
//! `__transaction_state` partition (created on first use, compacted,
//! written with acks=all). A node that takes the lead of a partition
//! replays it, then finishes every transaction it finds decided but not
//! completed (PrepareCommit/PrepareAbort: the markers are sent again,
//! which is idempotent for the partitions that already have them). A node
//! that no longer leads a partition forgets its ids and answers
//! NOT_COORDINATOR.
//!
//! Each id's metadata sits behind its own async mutex, held across the
//! write of a transition: requests for one id are serialised; the state
//! machine's pending transition still guards the marker phase, when the
//! lock is released while the markers are written
//! (CONCURRENT_TRANSACTIONS until the transaction completes).
//!
//! The coordinator epoch written into markers is the leader epoch of the
//! `__transaction_state` partition when this node loaded it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use rivulet_storage::TopicPartition;
use tokio::sync::watch;
use tracing::{info, warn};

use super::links::BrokerLinks;
use super::log::{self, TxnRecord, TXN_TOPIC};
use super::markers::MarkerSender;
use super::metadata::{InitStep, Refusal, TxnMetadata, TxnResult, TxnState, TxnTransit};
use crate::group::coordinator::GroupCoordinator;
use crate::local_node::{read_to_log_end, LocalNode};
use crate::producer_ids::ProducerIds;

/// How long a write to `__transaction_state` waits for its ISR.
const TXN_APPEND_TIMEOUT_MS: i32 = 5_000;
/// Most bytes one read returns while a partition is replayed.
const LOAD_READ_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct TxnCoordinatorConfig {
    /// `transaction.state.log.num.partitions` (Kafka: 50; 10 here, as for
    /// `__consumer_offsets`, which suits the small clusters Rivulet runs).
    pub partitions: i32,
    /// `transaction.state.log.replication.factor` (capped by live brokers).
    pub replication_factor: i32,
    /// `transaction.state.log.min.isr` (capped by the replication factor).
    pub min_isr: i32,
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_check_interval_ms: u64,
}

impl Default for TxnCoordinatorConfig {
    fn default() -> Self {
        TxnCoordinatorConfig {
            partitions: 10,
            replication_factor: 3,
            min_isr: 2,
            max_timeout_ms: 900_000,
            id_expiration_ms: 7 * 24 * 3_600_000,
            abort_check_interval_ms: 10_000,
        }
    }
}

#[derive(Debug)]
pub struct TxnEntry {
    pub partition: i32,
    pub meta: tokio::sync::Mutex<TxnMetadata>,
}

/// What DescribeTransactions and ListTransactions report of one id.
#[derive(Debug, Clone)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub state: TxnState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub partitions: Vec<(String, i32)>,
}

pub struct TransactionCoordinator {
    config: TxnCoordinatorConfig,
    node: LocalNode,
    producer_ids: Arc<ProducerIds>,
    markers: MarkerSender,
    links: Arc<BrokerLinks>,
    txns: parking_lot::Mutex<HashMap<String, Arc<TxnEntry>>>,
    /// Loaded partitions and their coordinator epochs.
    loaded: parking_lot::Mutex<HashMap<i32, i32>>,
    loading: tokio::sync::Mutex<()>,
    /// This coordinator, for the marker tasks it spawns.
    me: std::sync::Weak<TransactionCoordinator>,
}

impl std::fmt::Debug for TransactionCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionCoordinator")
            .field("txns", &self.txns.lock().len())
            .finish()
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The error code of a refusal that cannot be "already done".
fn code_of(r: Refusal) -> i16 {
    match r {
        Refusal::AlreadyDone => E::UnknownServerError.code(),
        Refusal::Error(code) => code,
    }
}

fn refusal_code(r: Refusal) -> Result<(), i16> {
    match r {
        Refusal::AlreadyDone => Ok(()),
        Refusal::Error(code) => Err(code),
    }
}

impl TransactionCoordinator {
    pub fn new(
        config: TxnCoordinatorConfig,
        node: LocalNode,
        producer_ids: Arc<ProducerIds>,
        groups: Arc<GroupCoordinator>,
    ) -> Arc<Self> {
        let links = Arc::new(BrokerLinks::new(node.clone()));
        Arc::new_cyclic(|me| TransactionCoordinator {
            markers: MarkerSender::new(node.clone(), groups, links.clone()),
            links,
            config,
            node,
            producer_ids,
            txns: parking_lot::Mutex::new(HashMap::new()),
            loaded: parking_lot::Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
            me: me.clone(),
        })
    }

    pub fn config(&self) -> &TxnCoordinatorConfig {
        &self.config
    }

    pub fn partition_of(&self, transactional_id: &str) -> i32 {
        log::partition_for(transactional_id, self.config.partitions)
    }

    fn tp(&self, partition: i32) -> TopicPartition {
        TopicPartition::new(TXN_TOPIC, partition)
    }

    /// Make sure `__transaction_state` exists; create it compacted if not.
    async fn ensure_topic(&self) -> Result<(), i16> {
        let live = self.node.image().live_brokers().count().max(1) as i32;
        let rf = self.config.replication_factor.min(live).max(1);
        let min_isr = self.config.min_isr.min(rf).max(1);
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert("segment.bytes".to_string(), "104857600".to_string());
        configs.insert("min.insync.replicas".to_string(), min_isr.to_string());
        self.node
            .ensure_internal_topic(TXN_TOPIC, self.config.partitions, rf, configs)
            .await
    }

    /// The node coordinating `transactional_id` (FindCoordinator key type
    /// 1), creating the topic if needed.
    pub async fn coordinator_for(&self, transactional_id: &str) -> Result<i32, i16> {
        self.ensure_topic().await?;
        let image = self.node.image();
        match image.partition(TXN_TOPIC, self.partition_of(transactional_id)) {
            Some(reg) if reg.leader >= 0 && image.is_live(reg.leader) => Ok(reg.leader),
            _ => Err(E::CoordinatorNotAvailable.code()),
        }
    }

    /// The leader epoch of `partition` if this node leads it.
    fn leader_epoch(&self, partition: i32) -> Option<i32> {
        let p = self.node.replicas.get(&self.tp(partition))?;
        let state = p.state();
        (state.leader == self.node.node_id()).then_some(state.leader_epoch)
    }

    /// The coordinator epoch of a loaded partition this node still leads.
    fn coordinator_epoch(&self, partition: i32) -> Option<i32> {
        let loaded = *self.loaded.lock().get(&partition)?;
        (self.leader_epoch(partition) == Some(loaded)).then_some(loaded)
    }

    fn unload(&self, partition: i32) {
        if self.loaded.lock().remove(&partition).is_some() {
            self.txns.lock().retain(|_, e| e.partition != partition);
            info!(partition, "unloaded transactions of {TXN_TOPIC} partition");
        }
    }

    /// The entry of `transactional_id` (`None` when unknown), loading its
    /// partition first; NOT_COORDINATOR when another node coordinates it.
    async fn entry(
        &self,
        transactional_id: &str,
        create: bool,
    ) -> Result<Option<Arc<TxnEntry>>, i16> {
        let partition = self.partition_of(transactional_id);
        if self.node.image().topic(TXN_TOPIC).is_none() {
            if !create {
                return Err(E::NotCoordinator.code());
            }
            self.ensure_topic().await?;
        }
        let Some(epoch) = self.leader_epoch(partition) else {
            self.unload(partition);
            return Err(E::NotCoordinator.code());
        };
        let loaded = self.loaded.lock().get(&partition).copied();
        if loaded != Some(epoch) {
            if loaded.is_some() {
                self.unload(partition);
            }
            self.load(partition, epoch).await?;
        }
        Ok(self.txns.lock().get(transactional_id).cloned())
    }

    /// Replay a `__transaction_state` partition, then finish the
    /// transactions it left decided.
    async fn load(&self, partition: i32, epoch: i32) -> Result<(), i16> {
        let _guard = self.loading.lock().await;
        if self.loaded.lock().get(&partition) == Some(&epoch) {
            return Ok(());
        }
        let Some(p) = self.node.replicas.get(&self.tp(partition)) else {
            return Err(E::NotCoordinator.code());
        };
        let log = p.log.clone();
        let records = tokio::task::spawn_blocking(move || {
            read_to_log_end(&log, LOAD_READ_BYTES)
                .iter()
                .flat_map(|b| log::decode_batches(b))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| E::CoordinatorLoadInProgress.code())?;
        let mut latest: HashMap<String, Option<TxnTransit>> = HashMap::new();
        for r in records {
            latest.insert(r.transactional_id, r.value);
        }
        let mut unfinished = Vec::new();
        {
            let mut txns = self.txns.lock();
            for (id, value) in latest {
                let Some(t) = value else { continue };
                if t.state == TxnState::Dead {
                    continue;
                }
                let meta = TxnMetadata::from_transit(id.clone(), t);
                let preparing = meta.state.is_preparing();
                let entry = Arc::new(TxnEntry {
                    partition,
                    meta: tokio::sync::Mutex::new(meta),
                });
                if preparing {
                    unfinished.push(entry.clone());
                }
                txns.insert(id, entry);
            }
        }
        self.loaded.lock().insert(partition, epoch);
        info!(
            partition,
            coordinator_epoch = epoch,
            unfinished = unfinished.len(),
            "loaded transactions of {TXN_TOPIC} partition"
        );
        for entry in unfinished {
            let meta = entry.meta.lock().await;
            let result = if meta.state == TxnState::PrepareCommit {
                TxnResult::Commit
            } else {
                TxnResult::Abort
            };
            self.spawn_markers(entry.clone(), epoch, result, meta.current());
        }
        Ok(())
    }

    /// Write a transition of `id` to its partition (acks=all).
    async fn append(&self, partition: i32, id: &str, value: Option<TxnTransit>) -> Result<(), i16> {
        let rec = TxnRecord {
            transactional_id: id.to_string(),
            value,
        };
        let Some(batch) = log::encode_batch(&[rec], now_ms()) else {
            return Err(E::UnknownServerError.code());
        };
        let r = self
            .node
            .replicas
            .append(&self.tp(partition), Some(batch), -1, TXN_APPEND_TIMEOUT_MS)
            .await;
        match crate::errors::coordinator_append(r.error_code) {
            Ok(()) => Ok(()),
            Err(c) if c == E::NotCoordinator.code() || c == E::CoordinatorNotAvailable.code() => {
                Err(c)
            }
            Err(_) => Err(E::UnknownServerError.code()),
        }
    }

    /// Persist `transit` for the locked `meta`; apply it when durable.
    async fn write(
        &self,
        entry: &TxnEntry,
        meta: &mut TxnMetadata,
        transit: TxnTransit,
    ) -> Result<(), i16> {
        let id = meta.transactional_id.clone();
        match self
            .append(entry.partition, &id, Some(transit.clone()))
            .await
        {
            Ok(()) => {
                meta.complete(transit);
                Ok(())
            }
            Err(code) => {
                meta.abandon();
                Err(code)
            }
        }
    }

    /// InitProducerId with a transactional id: `(producer id, epoch)`.
    pub async fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), i16> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(E::InvalidTransactionTimeout.code());
        }
        let entry = match self.entry(transactional_id, true).await? {
            Some(e) => e,
            None => {
                let pid = self.fresh_producer_id().await?;
                let partition = self.partition_of(transactional_id);
                let meta =
                    TxnMetadata::new(transactional_id.to_string(), pid, timeout_ms, now_ms());
                let e = Arc::new(TxnEntry {
                    partition,
                    meta: tokio::sync::Mutex::new(meta),
                });
                self.txns
                    .lock()
                    .entry(transactional_id.to_string())
                    .or_insert(e)
                    .clone()
            }
        };
        let mut meta = entry.meta.lock().await;
        let mut step = meta
            .prepare_init_producer_id(timeout_ms, expected, None, now_ms())
            .map_err(code_of)?;
        if step == InitStep::NeedProducerId {
            let pid = self.fresh_producer_id().await?;
            step = meta
                .prepare_init_producer_id(timeout_ms, expected, Some(pid), now_ms())
                .map_err(code_of)?;
        }
        match step {
            InitStep::Write(t) => {
                self.write(&entry, &mut meta, t).await?;
                Ok((meta.producer_id, meta.producer_epoch))
            }
            InitStep::FenceAndAbort(t) => {
                let epoch = self
                    .coordinator_epoch(entry.partition)
                    .ok_or(E::NotCoordinator.code())?;
                self.write(&entry, &mut meta, t.clone()).await?;
                info!(
                    transactional_id,
                    producer_id = t.producer_id,
                    epoch = t.producer_epoch,
                    "fenced the producer of an ongoing transaction; aborting it"
                );
                self.spawn_markers(entry.clone(), epoch, TxnResult::Abort, t);
                // The client retries once the abort completed.
                Err(E::ConcurrentTransactions.code())
            }
            InitStep::NeedProducerId => Err(E::UnknownServerError.code()),
        }
    }

    async fn fresh_producer_id(&self) -> Result<i64, i16> {
        self.producer_ids
            .next(&self.node)
            .await
            .map_err(|resp| crate::errors::producer_id_allocation(&resp))
    }

    /// The locked entry of an existing id, or INVALID_PRODUCER_ID_MAPPING.
    async fn existing(&self, transactional_id: &str) -> Result<Arc<TxnEntry>, i16> {
        self.entry(transactional_id, false)
            .await?
            .ok_or(E::InvalidProducerIdMapping.code())
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn with the offsets partition).
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), i16> {
        let entry = self.existing(transactional_id).await?;
        let mut meta = entry.meta.lock().await;
        match meta.prepare_add_partitions(producer_id, epoch, partitions, now_ms()) {
            Ok(t) => self.write(&entry, &mut meta, t).await,
            Err(r) => refusal_code(r),
        }
    }

    /// AddPartitionsToTxn v4+ `verify_only` (KIP-890): whether every
    /// partition is in the ongoing transaction of this producer.
    pub async fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<bool>, i16> {
        let entry = self.existing(transactional_id).await?;
        let meta = entry.meta.lock().await;
        if meta.producer_id != producer_id {
            return Err(E::InvalidProducerIdMapping.code());
        }
        if meta.producer_epoch != epoch {
            return Err(E::ProducerFenced.code());
        }
        let ongoing = meta.state == TxnState::Ongoing;
        Ok(partitions
            .iter()
            .map(|p| ongoing && meta.partitions.contains(p))
            .collect())
    }

    /// KIP-890 part 1, on a partition leader: whether `partitions` are in
    /// the ongoing transaction of this producer, asked of the id's
    /// coordinator (AddPartitionsToTxn v4 `verify_only` when that is another
    /// node). Errors are the coordinator's (NOT_COORDINATOR,
    /// COORDINATOR_NOT_AVAILABLE, PRODUCER_FENCED, ...).
    pub async fn verify_for_produce(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<bool>, i16> {
        let image = self.node.image();
        let coordinator = image
            .partition(TXN_TOPIC, self.partition_of(transactional_id))
            .map(|r| r.leader)
            .filter(|l| *l >= 0)
            .ok_or(E::CoordinatorNotAvailable.code())?;
        if coordinator == self.node.node_id() {
            return self
                .verify_partitions(transactional_id, producer_id, epoch, partitions)
                .await;
        }
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            topics.entry(t.as_str()).or_default().push(*p);
        }
        let txn = AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            )))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_verify_only(true)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let req = AddPartitionsToTxnRequest::default().with_transactions(vec![txn]);
        let resp = self
            .links
            .round_trip(coordinator, 4, &req)
            .await
            .ok_or(E::CoordinatorNotAvailable.code())?;
        if resp.error_code != 0 {
            return Err(resp.error_code);
        }
        let mut codes: HashMap<(String, i32), i16> = HashMap::new();
        for r in &resp.results_by_transaction {
            for t in &r.topic_results {
                for p in &t.results_by_partition {
                    codes.insert(
                        (t.name.0.to_string(), p.partition_index),
                        p.partition_error_code,
                    );
                }
            }
        }
        let mut out = Vec::with_capacity(partitions.len());
        for p in partitions {
            match codes.get(p).copied() {
                Some(0) => out.push(true),
                Some(c)
                    if c == E::InvalidTxnState.code() || c == E::TransactionAbortable.code() =>
                {
                    out.push(false)
                }
                Some(c) => return Err(c),
                None => return Err(E::UnknownServerError.code()),
            }
        }
        Ok(out)
    }

    /// EndTxn: answered once the decision is durable; the markers follow.
    pub async fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        result: TxnResult,
    ) -> Result<(), i16> {
        let entry = self.existing(transactional_id).await?;
        let mut meta = entry.meta.lock().await;
        let t = match meta.prepare_end(producer_id, epoch, result, now_ms()) {
            Ok(t) => t,
            Err(r) => return refusal_code(r),
        };
        let Some(coordinator_epoch) = self.coordinator_epoch(entry.partition) else {
            meta.abandon();
            return Err(E::NotCoordinator.code());
        };
        self.write(&entry, &mut meta, t.clone()).await?;
        self.spawn_markers(entry.clone(), coordinator_epoch, result, t);
        Ok(())
    }

    /// Write the markers of a decided transaction, then complete it.
    fn spawn_markers(
        &self,
        entry: Arc<TxnEntry>,
        coordinator_epoch: i32,
        result: TxnResult,
        t: TxnTransit,
    ) {
        let Some(this) = self.self_arc() else { return };
        tokio::spawn(async move {
            let id = entry.meta.lock().await.transactional_id.clone();
            let done = this
                .markers
                .write_all(
                    t.producer_id,
                    t.producer_epoch,
                    coordinator_epoch,
                    result,
                    &t.partitions,
                    || this.coordinator_epoch(entry.partition) == Some(coordinator_epoch),
                )
                .await;
            if !done {
                // No longer the coordinator: the next one finishes it.
                return;
            }
            let mut meta = entry.meta.lock().await;
            if let Some(t) = meta.prepare_complete(now_ms()) {
                if let Err(code) = this.write(&entry, &mut meta, t).await {
                    warn!(transactional_id = %id, code, "could not complete transaction");
                }
            }
        });
    }

    fn self_arc(&self) -> Option<Arc<TransactionCoordinator>> {
        self.me.upgrade()
    }

    /// DescribeTransactions: each id's state, or its error.
    pub async fn describe(&self, transactional_id: &str) -> Result<TxnDescription, i16> {
        let entry = self
            .entry(transactional_id, false)
            .await?
            .ok_or(E::TransactionalIdNotFound.code())?;
        let meta = entry.meta.lock().await;
        Ok(describe(&meta))
    }

    /// ListTransactions: the ids this node coordinates.
    pub async fn list(&self) -> Vec<TxnDescription> {
        let entries: Vec<Arc<TxnEntry>> = self.txns.lock().values().cloned().collect();
        let mut out = Vec::new();
        for e in entries {
            if self.coordinator_epoch(e.partition).is_none() {
                continue;
            }
            out.push(describe(&*e.meta.lock().await));
        }
        out
    }

    /// Abort timed-out transactions and expire idle ids, every
    /// `abort_check_interval_ms`; load partitions this node came to lead so
    /// their decided transactions finish without waiting for a client.
    pub async fn run_timers(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let period = Duration::from_millis(self.config.abort_check_interval_ms.max(10));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.changed() => return,
            }
            self.tick().await;
        }
    }

    async fn tick(&self) {
        if self.node.image().topic(TXN_TOPIC).is_some() {
            for partition in 0..self.config.partitions {
                match self.leader_epoch(partition) {
                    Some(epoch) if self.loaded.lock().get(&partition) != Some(&epoch) => {
                        self.unload(partition);
                        if let Err(code) = self.load(partition, epoch).await {
                            warn!(partition, code, "could not load {TXN_TOPIC} partition");
                        }
                    }
                    Some(_) => {}
                    None => self.unload(partition),
                }
            }
        }
        let now = now_ms();
        let entries: Vec<Arc<TxnEntry>> = self.txns.lock().values().cloned().collect();
        let mut expired = HashSet::new();
        for entry in entries {
            let Some(coordinator_epoch) = self.coordinator_epoch(entry.partition) else {
                continue;
            };
            let mut meta = entry.meta.lock().await;
            if let Some(t) = meta.prepare_timeout_abort(now) {
                let id = meta.transactional_id.clone();
                match self.write(&entry, &mut meta, t.clone()).await {
                    Ok(()) => {
                        info!(transactional_id = %id, producer_id = t.producer_id,
                            "aborting transaction that exceeded its timeout");
                        self.spawn_markers(entry.clone(), coordinator_epoch, TxnResult::Abort, t);
                    }
                    Err(code) => {
                        warn!(transactional_id = %id, code, "could not abort timed-out transaction")
                    }
                }
            } else if meta.prepare_expire(now, self.config.id_expiration_ms) {
                let id = meta.transactional_id.clone();
                match self.append(entry.partition, &id, None).await {
                    Ok(()) => {
                        info!(transactional_id = %id, "transactional id expired");
                        expired.insert(id);
                    }
                    Err(_) => meta.abandon(),
                }
            }
        }
        if !expired.is_empty() {
            self.txns.lock().retain(|id, _| !expired.contains(id));
        }
    }
}

fn describe(meta: &TxnMetadata) -> TxnDescription {
    TxnDescription {
        transactional_id: meta.transactional_id.clone(),
        state: meta.state,
        producer_id: meta.producer_id,
        producer_epoch: meta.producer_epoch,
        timeout_ms: meta.timeout_ms,
        start_ms: meta.start_ms,
        partitions: meta.partitions.iter().cloned().collect(),
    }
}
