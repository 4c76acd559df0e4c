//! Produce: append each partition's record batches through the replica
//! manager — validated, offsets assigned, bytes otherwise untouched — and
//! answer per partition. All partitions are appended before any waits for
//! durability, so one request's fsyncs overlap (and group-commit with other
//! requests').
//!
//! Transactional batches (KIP-890 part 1): the first batch a producer
//! sends to a partition in a transaction is appended only if the
//! transaction coordinator confirms the partition is in the producer's
//! ongoing transaction; otherwise INVALID_TXN_STATE (TRANSACTION_ABORTABLE
//! from v11). This closes the "hanging transaction" hole: a late retry of a
//! batch from a transaction that already ended cannot open a new one that
//! nobody will ever end. Coordinator unavailability is answered
//! NOT_ENOUGH_REPLICAS, which producers retry, as Kafka.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::ResponseError as E;
use rivulet_protocol::record_batch::BatchHeader;
use rivulet_storage::TopicPartition;
use uuid::Uuid;

use super::{sb, topic_ids};
use crate::context::BrokerContext;
use crate::replica_manager::{AppendOrigin, AppendResult, AppendWait, Appended};

/// The first version whose clients know TRANSACTION_ABORTABLE.
const ABORTABLE_FROM: i16 = 11;

/// A transactional batch's producer, if the records start with one.
fn transactional_producer(records: &Option<bytes::Bytes>) -> Option<(i64, i16)> {
    let h = BatchHeader::parse(records.as_deref()?).ok()?;
    (h.is_transactional() && !h.is_control()).then_some((h.producer_id, h.producer_epoch))
}

/// KIP-890 verification of the partitions whose transactional batches
/// would start a transaction there: the refusal code per partition.
async fn verify(
    b: &BrokerContext,
    req: &ProduceRequest,
    version: i16,
) -> HashMap<(String, i32), i16> {
    let mut refused = HashMap::new();
    let mut by_producer: HashMap<(i64, i16), Vec<(String, i32)>> = HashMap::new();
    for topic in &req.topic_data {
        if topic_ids::unresolved(topic_ids::by_id(false, version), &topic.name) {
            continue;
        }
        for p in &topic.partition_data {
            let Some(producer) = transactional_producer(&p.records) else {
                continue;
            };
            let tp = (topic.name.to_string(), p.index);
            let ongoing = b
                .replicas
                .get(&TopicPartition::new(tp.0.clone(), tp.1))
                .is_some_and(|part| part.log.lock().has_ongoing_transaction(producer.0));
            if !ongoing {
                by_producer.entry(producer).or_default().push(tp);
            }
        }
    }
    if by_producer.is_empty() {
        return refused;
    }
    let Some(txn_id) = req
        .transactional_id
        .as_ref()
        .map(|t| t.0.to_string())
        .filter(|t| !t.is_empty())
    else {
        for tps in by_producer.into_values() {
            for tp in tps {
                refused.insert(tp, E::InvalidRecord.code());
            }
        }
        return refused;
    };
    let not_in_txn = if version >= ABORTABLE_FROM {
        E::TransactionAbortable.code()
    } else {
        E::InvalidTxnState.code()
    };
    for ((pid, epoch), tps) in by_producer {
        match b.txns.verify_for_produce(&txn_id, pid, epoch, &tps).await {
            Ok(ok) => {
                for (tp, ok) in tps.into_iter().zip(ok) {
                    if !ok {
                        refused.insert(tp, not_in_txn);
                    } else if let Some(p) = b.replicas.get(&TopicPartition::new(tp.0.clone(), tp.1))
                    {
                        p.mark_verified(pid, epoch);
                    }
                }
            }
            Err(code) => {
                let code = produce_code(code);
                for tp in tps {
                    refused.insert(tp, code);
                }
            }
        }
    }
    refused
}

/// A coordinator's verification error as a producer should see it.
fn produce_code(code: i16) -> i16 {
    if code == E::NotCoordinator.code()
        || code == E::CoordinatorNotAvailable.code()
        || code == E::CoordinatorLoadInProgress.code()
        || code == E::ConcurrentTransactions.code()
    {
        E::NotEnoughReplicas.code()
    } else if code == E::ProducerFenced.code() {
        E::InvalidProducerEpoch.code()
    } else {
        code
    }
}

/// `listener`: the listener the client connected to (KIP-951 endpoints are
/// its addresses there).
pub async fn handle(
    b: &BrokerContext,
    req: ProduceRequest,
    version: i16,
    listener: &str,
) -> ProduceResponse {
    stage(b, req, version).await.finish(b, listener).await
}

/// A produce whose partitions are appended (or refused), with what is left
/// to wait for (fsync, replication for `acks=all`).
#[derive(Debug)]
pub struct StagedProduce {
    version: i16,
    topics: Vec<(TopicName, Uuid, Vec<Part>)>,
}

#[derive(Debug)]
enum Part {
    Done(PartitionProduceResponse),
    Waiting {
        index: i32,
        topic: String,
        sent: Option<Bytes>,
        wait: AppendWait,
    },
}

/// The append phase of a produce: verification (KIP-890) and every
/// partition's checks and append, in order, without waiting for
/// durability or replication. A connection runs this for its requests one
/// after another ([`crate::connection`]), so a producer's batches are
/// appended in the order it sent them.
pub async fn stage(b: &BrokerContext, req: ProduceRequest, version: i16) -> StagedProduce {
    let acks = req.acks;
    let timeout_ms = req.timeout_ms;
    let refused = verify(b, &req, version).await;
    let by_id = topic_ids::by_id(false, version);
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = topic.name.to_string();
        let topic_id = topic.topic_id;
        let parts = topic
            .partition_data
            .into_iter()
            .map(|p| {
                let tp = TopicPartition::new(name.clone(), p.index);
                let refusal =
                    if let Some(code) = topic_ids::partition_error(b, &tp, &topic_id, by_id) {
                        Some(code)
                    } else if !matches!(acks, -1..=1) {
                        Some(E::InvalidRequiredAcks.code())
                    } else {
                        refused.get(&(name.clone(), p.index)).copied()
                    };
                if let Some(code) = refusal {
                    return Part::Done(
                        PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_error_code(code)
                            .with_base_offset(-1),
                    );
                }
                let sent = p.records.clone();
                match b.replicas.append_staged(
                    &tp,
                    p.records,
                    acks,
                    timeout_ms,
                    AppendOrigin::Client,
                ) {
                    Appended::Done(r) => Part::Done(answer(b, &name, p.index, &sent, r, version)),
                    Appended::Waiting(wait) => Part::Waiting {
                        index: p.index,
                        topic: name.clone(),
                        sent,
                        wait,
                    },
                }
            })
            .collect();
        topics.push((topic.name, topic_id, parts));
    }
    StagedProduce { version, topics }
}

impl StagedProduce {
    /// Whether any partition still waits (else [`Self::finish`] is
    /// immediate).
    pub fn is_waiting(&self) -> bool {
        self.topics
            .iter()
            .any(|(_, _, parts)| parts.iter().any(|p| matches!(p, Part::Waiting { .. })))
    }

    /// The wait phase: every partition's waits run concurrently; the
    /// response once all are answered.
    pub async fn finish(self, b: &BrokerContext, listener: &str) -> ProduceResponse {
        let version = self.version;
        let mut topics = Vec::with_capacity(self.topics.len());
        for (name, topic_id, parts) in self.topics {
            let futures = parts.into_iter().map(|part| async move {
                match part {
                    Part::Done(r) => r,
                    Part::Waiting {
                        index,
                        topic,
                        sent,
                        wait,
                    } => {
                        let r = wait.wait().await;
                        answer(b, &topic, index, &sent, r, version)
                    }
                }
            });
            let partitions = join_all(futures).await;
            topics.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_topic_id(topic_id)
                    .with_partition_responses(partitions),
            );
        }
        let mut resp = ProduceResponse::default().with_responses(topics);
        super::leader_hint::fill_produce(&mut resp, &b.image(), listener, version);
        resp
    }
}

/// One partition's answer, counting the records on success.
fn answer(
    b: &BrokerContext,
    topic: &str,
    index: i32,
    sent: &Option<Bytes>,
    r: AppendResult,
    version: i16,
) -> PartitionProduceResponse {
    if r.error_code == 0 {
        b.metrics
            .produced(topic, sent.as_deref().unwrap_or_default());
    }
    // The verification guard was cleared by a marker meanwhile.
    let code = if r.error_code == E::InvalidTxnState.code() && version >= ABORTABLE_FROM {
        E::TransactionAbortable.code()
    } else {
        r.error_code
    };
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_error_message(r.error_message.map(sb))
        .with_record_errors(
            r.record_errors
                .into_iter()
                .map(|(index, message)| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(index)
                        .with_batch_index_error_message(Some(sb(message)))
                })
                .collect(),
        )
        .with_base_offset(r.base_offset)
        .with_log_append_time_ms(r.log_append_time)
        .with_log_start_offset(r.log_start_offset)
}
