//! Produce: append each partition's record batches through the replica
//! manager — validated, offsets assigned, bytes otherwise untouched — and
//! answer per partition. All partitions are appended before any waits for
//! durability, so one request's fsyncs overlap (and group-commit with other
//! requests').

use futures_util::future::join_all;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError as E;
use rivulet_storage::TopicPartition;

use super::sb;
use crate::context::BrokerContext;

pub async fn handle(b: &BrokerContext, req: ProduceRequest, _version: i16) -> ProduceResponse {
    let acks = req.acks;
    let timeout_ms = req.timeout_ms;
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = topic.name.to_string();
        let futures = topic.partition_data.into_iter().map(|p| {
            let tp = TopicPartition::new(name.clone(), p.index);
            async move {
                if !matches!(acks, -1..=1) {
                    return PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(E::InvalidRequiredAcks.code())
                        .with_base_offset(-1);
                }
                let r = b.replicas.append(&tp, p.records, acks, timeout_ms).await;
                PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_error_code(r.error_code)
                    .with_error_message(r.error_message.map(sb))
                    .with_base_offset(r.base_offset)
                    .with_log_append_time_ms(r.log_append_time)
                    .with_log_start_offset(r.log_start_offset)
            }
        });
        let partitions = join_all(futures).await;
        topics.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    ProduceResponse::default().with_responses(topics)
}
