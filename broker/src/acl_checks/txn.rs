//! Transaction APIs, as Kafka's `KafkaApis`: InitProducerId (WRITE on the
//! transactional id; without one IDEMPOTENT_WRITE on the cluster or WRITE
//! on some topic), AddPartitionsToTxn (WRITE on the transactional id and
//! every topic, nothing added if any is refused; the broker-to-broker
//! verify-only form v4+ needs CLUSTER_ACTION), AddOffsetsToTxn (WRITE on
//! the transactional id, READ on the group), EndTxn (WRITE on the
//! transactional id), TxnOffsetCommit (WRITE on the transactional id, READ
//! on the group and each topic), WriteTxnMarkers (CLUSTER_ACTION),
//! DescribeTransactions and ListTransactions (DESCRIBE on the id).

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListTransactionsRequest, RequestKind, ResponseKind, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use rivulet_controller::acl::AclOperation::{
    ClusterAction, Describe, IdempotentWrite, Read, Write,
};
use rivulet_controller::acl::ResourceType;

use super::{serve, split, Checked, CLUSTER_DENIED, GROUP_DENIED, TOPIC_DENIED, TXN_ID_DENIED};
use crate::authorizer::Authz;

/// `OPERATION_NOT_ATTEMPTED`: the partitions left alone because another
/// of the request was refused.
const NOT_ATTEMPTED: i16 = 55;

pub(super) fn init_producer_id(z: &Authz, r: InitProducerIdRequest) -> Checked {
    let refused = match r.transactional_id.as_ref().filter(|t| !t.is_empty()) {
        Some(id) => (!z.txn_id(Write, id.as_str())).then_some(TXN_ID_DENIED),
        None => (!z.cluster(IdempotentWrite) && !z.on_any(Write, ResourceType::Topic))
            .then_some(CLUSTER_DENIED),
    };
    match refused {
        None => serve(RequestKind::InitProducerId(r), None),
        Some(code) => Checked::Respond(Some(ResponseKind::InitProducerId(
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        ))),
    }
}

pub(super) fn add_partitions_to_txn(
    z: &Authz,
    r: AddPartitionsToTxnRequest,
    version: i16,
) -> Checked {
    if version >= 4 {
        if z.cluster(ClusterAction) {
            return serve(RequestKind::AddPartitionsToTxn(r), None);
        }
        return Checked::Respond(Some(ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default().with_error_code(CLUSTER_DENIED),
        )));
    }
    let txn_denied = !z.txn_id(Write, r.v3_and_below_transactional_id.as_str());
    let refused_topic = |name: &str| txn_denied || !z.topic(Write, name);
    if !r
        .v3_and_below_topics
        .iter()
        .any(|t| refused_topic(t.name.as_str()))
    {
        return serve(RequestKind::AddPartitionsToTxn(r), None);
    }
    // Kafka adds nothing when any partition is refused: the refused ones get
    // their code, the others OPERATION_NOT_ATTEMPTED.
    let results = r
        .v3_and_below_topics
        .iter()
        .map(|t| {
            let code = if txn_denied {
                TXN_ID_DENIED
            } else if refused_topic(t.name.as_str()) {
                TOPIC_DENIED
            } else {
                NOT_ATTEMPTED
            };
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    Checked::Respond(Some(ResponseKind::AddPartitionsToTxn(
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
    )))
}

pub(super) fn add_offsets_to_txn(z: &Authz, r: AddOffsetsToTxnRequest) -> Checked {
    let code = if !z.txn_id(Write, r.transactional_id.as_str()) {
        TXN_ID_DENIED
    } else if !z.group(Read, r.group_id.as_str()) {
        GROUP_DENIED
    } else {
        return serve(RequestKind::AddOffsetsToTxn(r), None);
    };
    Checked::Respond(Some(ResponseKind::AddOffsetsToTxn(
        AddOffsetsToTxnResponse::default().with_error_code(code),
    )))
}

pub(super) fn end_txn(z: &Authz, r: EndTxnRequest) -> Checked {
    if z.txn_id(Write, r.transactional_id.as_str()) {
        return serve(RequestKind::EndTxn(r), None);
    }
    Checked::Respond(Some(ResponseKind::EndTxn(
        EndTxnResponse::default().with_error_code(TXN_ID_DENIED),
    )))
}

fn txn_commit_refusals(
    topics: &[kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic],
    code: i16,
) -> Vec<TxnOffsetCommitResponseTopic> {
    topics
        .iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect()
}

pub(super) fn txn_offset_commit(z: &Authz, mut r: TxnOffsetCommitRequest) -> Checked {
    let whole = if !z.txn_id(Write, r.transactional_id.as_str()) {
        Some(TXN_ID_DENIED)
    } else if !z.group(Read, r.group_id.as_str()) {
        Some(GROUP_DENIED)
    } else {
        None
    };
    if let Some(code) = whole {
        return Checked::Respond(Some(ResponseKind::TxnOffsetCommit(
            TxnOffsetCommitResponse::default().with_topics(txn_commit_refusals(&r.topics, code)),
        )));
    }
    let (kept, denied) = split(std::mem::take(&mut r.topics), |t| {
        z.topic(Read, t.name.as_str())
    });
    r.topics = kept;
    if denied.is_empty() {
        return serve(RequestKind::TxnOffsetCommit(r), None);
    }
    let refused = txn_commit_refusals(&denied, TOPIC_DENIED);
    answer_refused!(
        TxnOffsetCommit,
        r,
        r.topics,
        refused,
        TxnOffsetCommitResponse.topics
    )
}

pub(super) fn write_txn_markers(z: &Authz, r: WriteTxnMarkersRequest) -> Checked {
    if z.cluster(ClusterAction) {
        return serve(RequestKind::WriteTxnMarkers(r), None);
    }
    let markers = r
        .markers
        .iter()
        .map(|m| {
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(
                    m.topics
                        .iter()
                        .map(|t| {
                            WritableTxnMarkerTopicResult::default()
                                .with_name(t.name.clone())
                                .with_partitions(
                                    t.partition_indexes
                                        .iter()
                                        .map(|p| {
                                            WritableTxnMarkerPartitionResult::default()
                                                .with_partition_index(*p)
                                                .with_error_code(CLUSTER_DENIED)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        })
        .collect();
    Checked::Respond(Some(ResponseKind::WriteTxnMarkers(
        WriteTxnMarkersResponse::default().with_markers(markers),
    )))
}

pub(super) fn describe_transactions(z: &Authz, mut r: DescribeTransactionsRequest) -> Checked {
    let (kept, denied) = split(std::mem::take(&mut r.transactional_ids), |id| {
        z.txn_id(Describe, id.as_str())
    });
    r.transactional_ids = kept;
    if denied.is_empty() {
        return serve(RequestKind::DescribeTransactions(r), None);
    }
    let refused: Vec<TransactionState> = denied
        .into_iter()
        .map(|id| {
            TransactionState::default()
                .with_transactional_id(id)
                .with_error_code(TXN_ID_DENIED)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1)
        })
        .collect();
    answer_refused!(
        DescribeTransactions,
        r,
        r.transactional_ids,
        refused,
        DescribeTransactionsResponse.transaction_states
    )
}

pub(super) fn list_transactions(z: &Authz, r: ListTransactionsRequest) -> Checked {
    let z = z.clone();
    serve(
        RequestKind::ListTransactions(r),
        Some(Box::new(move |resp| {
            if let ResponseKind::ListTransactions(l) = resp {
                l.transaction_states
                    .retain(|t| z.txn_id(Describe, t.transactional_id.as_str()));
            }
        })),
    )
}
