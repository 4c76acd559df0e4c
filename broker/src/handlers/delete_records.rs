//! DeleteRecords: move a partition's log start offset up to the requested
//! offset (-1: the high watermark) and delete the segments wholly below it;
//! each partition answers with its new low watermark (log start offset).
//!
//! Offsets below -1 or beyond the high watermark are OFFSET_OUT_OF_RANGE; a
//! partition not hosted here is UNKNOWN_TOPIC_OR_PARTITION, one led by
//! another broker NOT_LEADER_OR_FOLLOWER; a topic whose `cleanup.policy`
//! does not include `delete` refuses with POLICY_VIOLATION (as Kafka's
//! `Partition.deleteRecordsOnLeader`). Segment files are removed on the
//! blocking pool.

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError as E;
use rivulet_storage::TopicPartition;

use crate::context::BrokerContext;
use crate::errors;
use crate::replica_manager::Partition;

/// DeleteRecords' "up to the high watermark".
pub const HIGH_WATERMARK: i64 = -1;

/// One requested partition: its topic's index in the request, the
/// partition, the offset, and the partition if this broker leads it (else
/// the error code).
struct Work {
    topic: usize,
    partition: i32,
    offset: i64,
    target: Result<Arc<Partition>, i16>,
}

pub async fn handle(
    b: &BrokerContext,
    req: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    // Resolve every partition first, then do the deletions off the async
    // workers in one blocking task.
    let mut work: Vec<Work> = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        for p in &t.partitions {
            let tp = TopicPartition::new(t.name.to_string(), p.partition_index);
            let target = match b.replicas.get(&tp) {
                None => Err(E::UnknownTopicOrPartition.code()),
                Some(part) if !part.is_leader(b.node_id()) => Err(E::NotLeaderOrFollower.code()),
                Some(part) => Ok(part),
            };
            work.push(Work {
                topic: ti,
                partition: p.partition_index,
                offset: p.offset,
                target,
            });
        }
    }
    let done = tokio::task::spawn_blocking(move || {
        work.into_iter()
            .map(|w| {
                let outcome = w.target.and_then(|p| delete_before(&p, w.offset));
                (w.topic, w.partition, outcome)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let mut topics: Vec<DeleteRecordsTopicResult> = req
        .topics
        .iter()
        .map(|t| DeleteRecordsTopicResult::default().with_name(t.name.clone()))
        .collect();
    match done {
        Ok(outcomes) => {
            for (ti, index, outcome) in outcomes {
                let result = match outcome {
                    Ok(low_watermark) => DeleteRecordsPartitionResult::default()
                        .with_partition_index(index)
                        .with_low_watermark(low_watermark),
                    Err(code) => DeleteRecordsPartitionResult::default()
                        .with_partition_index(index)
                        .with_low_watermark(-1)
                        .with_error_code(code),
                };
                if let Some(t) = topics.get_mut(ti) {
                    t.partitions.push(result);
                }
            }
        }
        Err(_) => {
            // The blocking task died: every partition failed.
            for (t, req_t) in topics.iter_mut().zip(&req.topics) {
                t.partitions = req_t
                    .partitions
                    .iter()
                    .map(|p| {
                        DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index)
                            .with_low_watermark(-1)
                            .with_error_code(E::UnknownServerError.code())
                    })
                    .collect();
            }
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Delete `partition`'s records below `offset`; the new log start offset.
fn delete_before(partition: &Partition, offset: i64) -> Result<i64, i16> {
    let mut log = partition.log.lock();
    if !log.config().cleanup_policy.delete {
        return Err(E::PolicyViolation.code());
    }
    let upto = match offset {
        HIGH_WATERMARK => log.high_watermark(),
        o if o < 0 => return Err(E::OffsetOutOfRange.code()),
        o => o,
    };
    log.delete_records_before(upto)
        .map_err(|e| errors::storage(&e))
}
