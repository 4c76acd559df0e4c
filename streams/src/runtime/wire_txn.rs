//! The native producer's transactions and the coordinator requests around them
//! (KIP-98, KIP-447), as Kafka's producer sends them: FindCoordinator, InitProducerId,
//! AddPartitionsToTxn before a partition's first batch in a transaction,
//! AddOffsetsToTxn and TxnOffsetCommit for the consumed offsets, EndTxn; and
//! OffsetFetch (`require_stable`) for what a sink's group last committed.
//!
//! Coordinator errors Kafka's producer retries are retried until the timeout
//! (NOT_COORDINATOR and COORDINATOR_NOT_AVAILABLE after finding the coordinator again;
//! COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS, UNSTABLE_OFFSET_COMMIT,
//! REQUEST_TIMED_OUT after a backoff); anything else — fenced by a newer instance
//! (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH), not authorized — is the caller's error.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, FindCoordinatorRequest,
    GroupId, InitProducerIdRequest, OffsetFetchRequest, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;

use super::wire_meta;
use super::wire_produce::{Backoff, NativeProducer, Tp};

const FIND_COORDINATOR_VERSION: i16 = 3;
const INIT_PRODUCER_ID_VERSION: i16 = 3;
const ADD_PARTITIONS_VERSION: i16 = 3;
const ADD_OFFSETS_VERSION: i16 = 3;
const TXN_OFFSET_COMMIT_VERSION: i16 = 3;
const END_TXN_VERSION: i16 = 3;
const OFFSET_FETCH_VERSION: i16 = 7;
/// The transaction timeout asked for (librdkafka's and Kafka's default).
const TRANSACTION_TIMEOUT_MS: i32 = 60_000;

/// FindCoordinator's key types.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum KeyType {
    Group = 0,
    Transaction = 1,
}

/// A transactional producer's transaction.
pub(super) struct Txn {
    pub id: String,
    open: bool,
    /// Partitions added to the open transaction.
    partitions: BTreeSet<Tp>,
    /// Whether the open transaction has anything to end (partitions or offsets).
    started: bool,
    /// Coordinator addresses found, by key type and key.
    coordinators: BTreeMap<(KeyType, String), String>,
}

impl Txn {
    pub fn new(id: String) -> Txn {
        Txn {
            id,
            open: false,
            partitions: BTreeSet::new(),
            started: false,
            coordinators: BTreeMap::new(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.open
    }
}

/// What one coordinator request's answer says.
enum Answer<T> {
    Done(T),
    Retry(ResponseError),
    Fatal(String),
}

/// An answer from its error code: none is `Done`, the coordinator errors Kafka's
/// producer retries are `Retry`.
fn answer<T>(code: i16, done: T, what: &str) -> Answer<T> {
    match ResponseError::try_from_code(code) {
        None => Answer::Done(done),
        Some(
            e @ (ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::ConcurrentTransactions
            | ResponseError::UnstableOffsetCommit
            | ResponseError::RequestTimedOut
            | ResponseError::UnknownTopicOrPartition),
        ) => Answer::Retry(e),
        Some(e @ (ResponseError::ProducerFenced | ResponseError::InvalidProducerEpoch)) => {
            Answer::Fatal(format!(
                "{what}: {e} (a newer instance of this job took over its transactional id)"
            ))
        }
        Some(e) => Answer::Fatal(format!("{what}: {e}")),
    }
}

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl NativeProducer {
    /// InitProducerId: from the transaction coordinator with the transactional id
    /// (fencing an older instance, aborting its open transaction), else from any broker.
    /// Sequence numbers start again at 0.
    pub(super) async fn init_producer_id(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + self.spec.timeout;
        let id = self.txn.as_ref().map(|t| t.id.clone());
        let request = InitProducerIdRequest::default()
            .with_transactional_id(id.as_deref().map(|id| TransactionalId(str(id))))
            .with_transaction_timeout_ms(TRANSACTION_TIMEOUT_MS)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let key = id.map(|id| (KeyType::Transaction, id));
        let (pid, epoch) = self
            .call(key, INIT_PRODUCER_ID_VERSION, &request, deadline, |r| {
                answer(
                    r.error_code,
                    (r.producer_id.0, r.producer_epoch),
                    "InitProducerId",
                )
            })
            .await?;
        self.producer = (pid, epoch);
        self.sequences.clear();
        Ok(())
    }

    /// Begin a transaction (nothing is sent until its first partition or offsets).
    pub fn begin(&mut self) -> Result<(), String> {
        let txn = self.txn.as_mut().ok_or("not a transactional producer")?;
        if txn.open {
            return Err("a transaction is already open".into());
        }
        txn.open = true;
        txn.started = false;
        txn.partitions.clear();
        Ok(())
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.txn.as_ref().is_some_and(Txn::is_open)
    }

    /// AddPartitionsToTxn for those of `parts` the open transaction lacks.
    pub(super) async fn add_partitions(
        &mut self,
        parts: &BTreeSet<Tp>,
        deadline: Instant,
    ) -> Result<(), String> {
        let txn = self.open_txn()?;
        let new: BTreeSet<&Tp> = parts.difference(&txn.partitions).collect();
        if new.is_empty() {
            return Ok(());
        }
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &new {
            topics.entry(t.as_str()).or_default().push(*p);
        }
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(str(&txn.id)))
            .with_v3_and_below_producer_id(ProducerId(self.producer.0))
            .with_v3_and_below_producer_epoch(self.producer.1)
            .with_v3_and_below_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(str(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let key = Some((KeyType::Transaction, txn.id.clone()));
        let added: Vec<Tp> = new.into_iter().cloned().collect();
        self.call(key, ADD_PARTITIONS_VERSION, &request, deadline, |r| {
            let code = r
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| &t.results_by_partition)
                .map(|p| p.partition_error_code)
                // OPERATION_NOT_ATTEMPTED marks the partitions beside a failed one.
                .find(|c| *c != 0 && *c != ResponseError::OperationNotAttempted.code())
                .unwrap_or(0);
            answer(code, (), "AddPartitionsToTxn")
        })
        .await?;
        if let Some(txn) = self.txn.as_mut() {
            txn.partitions.extend(added);
            txn.started = true;
        }
        Ok(())
    }

    /// Send the consumed `offsets` (each with `metadata`) to the open transaction for
    /// `group`: AddOffsetsToTxn to the transaction coordinator, then TxnOffsetCommit to
    /// the group's coordinator (generation -1: a producer outside the group, KIP-447).
    pub async fn send_offsets(
        &mut self,
        group: &str,
        offsets: &BTreeMap<Tp, i64>,
        metadata: &str,
    ) -> Result<(), String> {
        let deadline = Instant::now() + self.spec.timeout;
        let id = self.open_txn()?.id.clone();
        let (pid, epoch) = self.producer;
        let add = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(str(&id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(str(group)));
        let key = Some((KeyType::Transaction, id.clone()));
        self.call(key, ADD_OFFSETS_VERSION, &add, deadline, |r| {
            answer(r.error_code, (), "AddOffsetsToTxn")
        })
        .await?;
        if let Some(txn) = self.txn.as_mut() {
            txn.started = true;
        }
        let mut topics: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
        for ((t, p), offset) in offsets {
            topics.entry(t.as_str()).or_default().push(
                TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(str(metadata))),
            );
        }
        let commit = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(str(&id)))
            .with_group_id(GroupId(str(group)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_member_id(str(""))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        TxnOffsetCommitRequestTopic::default()
                            .with_name(TopicName(str(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let key = Some((KeyType::Group, group.to_string()));
        self.call(key, TXN_OFFSET_COMMIT_VERSION, &commit, deadline, |r| {
            let code = r
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.error_code)
                .find(|c| *c != 0)
                .unwrap_or(0);
            answer(code, (), "TxnOffsetCommit")
        })
        .await
    }

    /// End the open transaction: commit or abort (EndTxn), or nothing to send when it
    /// holds nothing.
    pub async fn end(&mut self, commit: bool) -> Result<(), String> {
        let deadline = Instant::now() + self.spec.timeout;
        let txn = self.open_txn()?;
        let (id, started) = (txn.id.clone(), txn.started);
        if let Some(txn) = self.txn.as_mut() {
            txn.open = false;
        }
        if !started {
            return Ok(());
        }
        let request = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(str(&id)))
            .with_producer_id(ProducerId(self.producer.0))
            .with_producer_epoch(self.producer.1)
            .with_committed(commit);
        let key = Some((KeyType::Transaction, id));
        self.call(key, END_TXN_VERSION, &request, deadline, |r| {
            answer(r.error_code, (), if commit { "commit" } else { "abort" })
        })
        .await
    }

    /// The metadata of `group`'s committed offsets for every partition of `topics`
    /// (OffsetFetch with `require_stable`: offsets of a transaction still being
    /// completed are waited for).
    pub async fn committed_metadata(
        &mut self,
        group: &str,
        topics: &[String],
    ) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + self.spec.timeout;
        let mut backoff = Backoff::default();
        let meta = loop {
            match wire_meta::metadata(
                &self.spec,
                &self.brokers,
                topics.iter().map(String::as_str),
                false,
            )
            .await
            {
                Ok(m) => break m,
                Err(e) if Instant::now() >= deadline => return Err(format!("metadata: {e}")),
                Err(_) => backoff.wait().await,
            }
        };
        let request_topics: Vec<OffsetFetchRequestTopic> = meta
            .topics
            .iter()
            .filter(|(_, t)| t.partition_count > 0)
            .map(|(name, t)| {
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(str(name)))
                    .with_partition_indexes((0..t.partition_count as i32).collect())
            })
            .collect();
        if request_topics.is_empty() {
            return Ok(Vec::new());
        }
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(str(group)))
            .with_topics(Some(request_topics))
            .with_require_stable(true);
        let key = Some((KeyType::Group, group.to_string()));
        self.call(key, OFFSET_FETCH_VERSION, &request, deadline, |r| {
            let code = std::iter::once(r.error_code)
                .chain(
                    r.topics
                        .iter()
                        .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
                )
                .find(|c| *c != 0)
                .unwrap_or(0);
            let metadata = r
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .filter_map(|p| p.metadata.as_ref().map(|m| m.to_string()))
                .collect();
            answer(code, metadata, "OffsetFetch")
        })
        .await
    }

    fn open_txn(&self) -> Result<&Txn, String> {
        match &self.txn {
            Some(t) if t.open => Ok(t),
            Some(_) => Err("no transaction is open".into()),
            None => Err("not a transactional producer".into()),
        }
    }

    /// Send `request` to the coordinator of `key` (any bootstrap broker without one)
    /// and read its answer with `read`, retrying what it says to retry until
    /// `deadline`.
    async fn call<R: Request, T>(
        &mut self,
        key: Option<(KeyType, String)>,
        version: i16,
        request: &R,
        deadline: Instant,
        read: impl Fn(&R::Response) -> Answer<T>,
    ) -> Result<T, String> {
        let mut last = String::new();
        let mut attempt = 0usize;
        let mut backoff = Backoff::default();
        loop {
            if !last.is_empty() {
                if Instant::now() >= deadline {
                    return Err(format!("not done within {:?}: {last}", self.spec.timeout));
                }
                backoff.wait().await;
            }
            let addr = match &key {
                Some(k) => match self.coordinator(k).await {
                    Ok(a) => a,
                    Err(e) => {
                        last = e;
                        continue;
                    }
                },
                // Any broker: the bootstrap servers and the brokers known, in turn.
                None => {
                    let mut any = self.any_brokers();
                    if any.is_empty() {
                        return Err("no bootstrap server".into());
                    }
                    attempt += 1;
                    any.swap_remove(attempt % any.len())
                }
            };
            let client = match self.conns.remove(&addr) {
                Some(c) => Ok(c),
                None => self.spec.connect(&addr).await,
            };
            let mut client = match client {
                Ok(c) => c,
                Err(e) => {
                    self.forget(&key);
                    last = e;
                    continue;
                }
            };
            let response = match client.round_trip(version, request).await {
                Ok(r) => r,
                Err(e) => {
                    self.forget(&key);
                    last = format!("{addr}: {e}");
                    continue;
                }
            };
            self.conns.insert(addr, client);
            match read(&response) {
                Answer::Done(v) => return Ok(v),
                Answer::Fatal(reason) => return Err(reason),
                Answer::Retry(e) => {
                    if matches!(
                        e,
                        ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable
                    ) {
                        self.forget(&key);
                    }
                    last = e.to_string();
                }
            }
        }
    }

    /// The bootstrap servers, then the brokers Metadata named.
    fn any_brokers(&self) -> Vec<String> {
        let known = self.brokers.values().cloned();
        self.spec.bootstrap_servers().chain(known).collect()
    }

    fn forget(&mut self, key: &Option<(KeyType, String)>) {
        if let (Some(k), Some(txn)) = (key, self.txn.as_mut()) {
            txn.coordinators.remove(k);
        }
    }

    /// The address of `key`'s coordinator (FindCoordinator, remembered).
    async fn coordinator(&mut self, key: &(KeyType, String)) -> Result<String, String> {
        if let Some(addr) = self.txn.as_ref().and_then(|t| t.coordinators.get(key)) {
            return Ok(addr.clone());
        }
        let request = FindCoordinatorRequest::default()
            .with_key(str(&key.1))
            .with_key_type(key.0 as i8);
        let mut last = "no bootstrap server".to_string();
        for addr in self.any_brokers() {
            let mut client = match self.conns.remove(&addr) {
                Some(c) => c,
                None => match self.spec.connect(&addr).await {
                    Ok(c) => c,
                    Err(e) => {
                        last = e;
                        continue;
                    }
                },
            };
            let response = match client.round_trip(FIND_COORDINATOR_VERSION, &request).await {
                Ok(r) => r,
                Err(e) => {
                    last = format!("FindCoordinator at {addr}: {e}");
                    continue;
                }
            };
            self.conns.insert(addr, client);
            if let Some(e) = ResponseError::try_from_code(response.error_code) {
                return Err(format!("FindCoordinator for {}: {e}", key.1));
            }
            let found = format!("{}:{}", response.host.as_str(), response.port);
            if let Some(txn) = self.txn.as_mut() {
                txn.coordinators.insert(key.clone(), found.clone());
            }
            return Ok(found);
        }
        Err(last)
    }
}
