//! OffsetDelete: remove a group's committed offsets for some partitions.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::*;

use crate::context::BrokerContext;

pub async fn handle(
    b: &BrokerContext,
    req: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    match b.groups.delete_offsets(&req.group_id, &partitions).await {
        Err(code) => OffsetDeleteResponse::default().with_error_code(code),
        Ok(()) => OffsetDeleteResponse::default().with_topics(
            req.topics
                .iter()
                .map(|t| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}
