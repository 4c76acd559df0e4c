//! AddPartitionsToTxn: a transactional producer names the partitions it is
//! about to write (v0–3, one transaction per request), or a broker checks
//! that a producer's first batch to a partition belongs to an ongoing
//! transaction (v4–5 with `verify_only`, KIP-890 part 1; v4+ batches
//! several transactions).
//!
//! As Kafka: partitions of unknown topics fail with
//! UNKNOWN_TOPIC_OR_PARTITION and the rest of the request with
//! OPERATION_NOT_ATTEMPTED; otherwise one code for every partition.
//! PRODUCER_FENCED is INVALID_PRODUCER_EPOCH below v2 (KIP-588).

use std::collections::BTreeMap;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::tn;
use crate::context::BrokerContext;
use crate::txn::metadata::downgrade_fenced;

/// The first version that knows PRODUCER_FENCED.
const FENCED_FROM: i16 = 2;

fn partitions_of(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for t in topics {
        for p in &t.partitions {
            out.push((t.name.0.to_string(), *p));
        }
    }
    out
}

fn results(codes: &[((String, i32), i16)]) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut by_topic: BTreeMap<&str, Vec<AddPartitionsToTxnPartitionResult>> = BTreeMap::new();
    for ((t, p), code) in codes {
        by_topic.entry(t.as_str()).or_default().push(
            AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(*p)
                .with_partition_error_code(*code),
        );
    }
    by_topic
        .into_iter()
        .map(|(t, rs)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(tn(t))
                .with_results_by_partition(rs)
        })
        .collect()
}

/// Codes for every partition of one transaction.
async fn one(
    b: &BrokerContext,
    txn: &AddPartitionsToTxnTransaction,
    version: i16,
) -> Vec<((String, i32), i16)> {
    let partitions = partitions_of(&txn.topics);
    let image = b.image();
    let unknown: Vec<bool> = partitions
        .iter()
        .map(|(t, p)| image.partition(t, *p).is_none())
        .collect();
    if unknown.iter().any(|u| *u) {
        return partitions
            .into_iter()
            .zip(unknown)
            .map(|(tp, u)| {
                let code = if u {
                    E::UnknownTopicOrPartition.code()
                } else {
                    E::OperationNotAttempted.code()
                };
                (tp, code)
            })
            .collect();
    }
    let id = txn.transactional_id.0.as_str();
    let (pid, epoch) = (txn.producer_id.0, txn.producer_epoch);
    if txn.verify_only {
        return match b.txns.verify_partitions(id, pid, epoch, &partitions).await {
            Ok(ok) => partitions
                .into_iter()
                .zip(ok)
                .map(|(tp, ok)| {
                    let code = if ok {
                        0
                    } else if version >= 5 {
                        E::TransactionAbortable.code()
                    } else {
                        E::InvalidTxnState.code()
                    };
                    (tp, code)
                })
                .collect(),
            Err(code) => partitions.into_iter().map(|tp| (tp, code)).collect(),
        };
    }
    let code = match b.txns.add_partitions(id, pid, epoch, &partitions).await {
        Ok(()) => 0,
        Err(code) => downgrade_fenced(code, version, FENCED_FROM),
    };
    partitions.into_iter().map(|tp| (tp, code)).collect()
}

pub async fn handle(
    b: &BrokerContext,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let txn = AddPartitionsToTxnTransaction::default()
            .with_transactional_id(req.v3_and_below_transactional_id.clone())
            .with_producer_id(req.v3_and_below_producer_id)
            .with_producer_epoch(req.v3_and_below_producer_epoch)
            .with_topics(req.v3_and_below_topics.clone());
        let codes = one(b, &txn, version).await;
        return AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(results(&codes));
    }
    let mut out = Vec::new();
    for txn in &req.transactions {
        let codes = one(b, txn, version).await;
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.transactional_id.clone())
                .with_topic_results(results(&codes)),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}
