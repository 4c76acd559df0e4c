//! DescribeProducers (KIP-664): the producers a partition leader
//! remembers — id, epoch, last sequence and timestamp — and the first
//! offset of each one's open transaction, for finding hanging
//! transactions. Answered by the leader only (NOT_LEADER_OR_FOLLOWER
//! elsewhere). The coordinator epoch is that of the last marker this
//! leader wrote for the producer (-1 when none since it loaded the
//! partition: it is not rebuilt from the log).

use std::collections::HashMap;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;
use rivulet_storage::TopicPartition;

use crate::context::BrokerContext;

fn partition(b: &BrokerContext, tp: &TopicPartition) -> PartitionResponse {
    let resp = PartitionResponse::default().with_partition_index(tp.partition);
    let Some(p) = b.replicas.get(tp) else {
        return resp.with_error_code(E::UnknownTopicOrPartition.code());
    };
    if !p.is_leader(b.node_id()) {
        return resp.with_error_code(E::NotLeaderOrFollower.code());
    }
    let ongoing: HashMap<i64, i64> = p.log.lock().ongoing_transactions().into_iter().collect();
    let producers = p
        .producer_summaries()
        .into_iter()
        .map(|s| {
            ProducerState::default()
                .with_producer_id(ProducerId(s.producer_id))
                .with_producer_epoch(i32::from(s.epoch))
                .with_last_sequence(s.last_sequence)
                .with_last_timestamp(s.last_timestamp)
                .with_coordinator_epoch(s.coordinator_epoch)
                .with_current_txn_start_offset(ongoing.get(&s.producer_id).copied().unwrap_or(-1))
        })
        .collect();
    resp.with_active_producers(producers)
}

pub async fn handle(
    b: &BrokerContext,
    req: DescribeProducersRequest,
    _version: i16,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|p| partition(b, &TopicPartition::new(t.name.0.to_string(), *p)))
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
