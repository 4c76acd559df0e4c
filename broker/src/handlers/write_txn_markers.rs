//! WriteTxnMarkers (v1, between brokers): a transaction coordinator asks
//! this node, the leader of the partitions, to append COMMIT/ABORT control
//! batches for a producer (acks=all), and for `__consumer_offsets`
//! partitions to settle the transaction's pending offsets. One code per
//! partition: NOT_LEADER_OR_FOLLOWER / UNKNOWN_TOPIC_OR_PARTITION make the
//! coordinator retry against the new leader.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;
use rivulet_storage::TopicPartition;

use crate::context::BrokerContext;
use crate::txn::markers;
use crate::txn::metadata::TxnResult;

pub async fn handle(
    b: &BrokerContext,
    req: WriteTxnMarkersRequest,
    _version: i16,
) -> WriteTxnMarkersResponse {
    let mut out = Vec::new();
    for m in &req.markers {
        let result = if m.transaction_result {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        };
        let mut topics = Vec::new();
        for t in &m.topics {
            let mut partitions = Vec::new();
            for p in &t.partition_indexes {
                let tp = TopicPartition::new(t.name.0.to_string(), *p);
                let code = markers::write_local(
                    &b.node,
                    &b.groups,
                    &tp,
                    m.producer_id.0,
                    m.producer_epoch,
                    m.coordinator_epoch,
                    result,
                )
                .await;
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(*p)
                        .with_error_code(code),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
        out.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(out)
}
