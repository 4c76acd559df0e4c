//! ListOffsets: earliest (-2) is the log start offset, latest (-1) the high
//! watermark (the log end offset of a fully replicated log; the last stable
//! offset for read_committed readers, v2+), max timestamp
//! (-3) the record with the largest timestamp (KIP-734), and any other
//! timestamp the first offset whose record timestamp is at or after it, or
//! -1 when there is none.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError as E;
use rivulet_storage::TopicPartition;

use crate::context::BrokerContext;
use crate::errors;

pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;
pub const MAX_TIMESTAMP: i64 = -3;

pub fn handle(b: &BrokerContext, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let isolation_level = req.isolation_level;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = lookup(
                        b,
                        &TopicPartition::new(name.clone(), p.partition_index),
                        p.timestamp,
                        p.current_leader_epoch,
                        isolation_level,
                    )
                    .with_partition_index(p.partition_index);
                    // The leader epoch field exists from v4; below it must
                    // stay at its default or the response cannot be encoded.
                    if version < 4 {
                        r.with_leader_epoch(-1)
                    } else {
                        r
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn error(code: i16) -> ListOffsetsPartitionResponse {
    ListOffsetsPartitionResponse::default()
        .with_error_code(code)
        .with_timestamp(-1)
        .with_offset(-1)
        .with_leader_epoch(-1)
}

fn lookup(
    b: &BrokerContext,
    tp: &TopicPartition,
    timestamp: i64,
    current_leader_epoch: i32,
    isolation_level: i8,
) -> ListOffsetsPartitionResponse {
    let Some(partition) = b.replicas.get(tp) else {
        return error(E::UnknownTopicOrPartition.code());
    };
    let state = partition.state();
    if state.leader != b.node_id() {
        return error(E::NotLeaderOrFollower.code());
    }
    if current_leader_epoch >= 0 {
        if current_leader_epoch < state.leader_epoch {
            return error(E::FencedLeaderEpoch.code());
        }
        if current_leader_epoch > state.leader_epoch {
            return error(E::UnknownLeaderEpoch.code());
        }
    }
    let log = partition.log.lock();
    // What a reader of this isolation level may see: read_committed
    // readers stop at the last stable offset (Kafka's
    // `fetchOffsetByTimestamp` with READ_COMMITTED).
    let hw = if isolation_level == 1 {
        log.last_stable_offset()
    } else {
        log.high_watermark()
    };
    let found = match timestamp {
        EARLIEST => Ok(Some((-1, log.log_start_offset()))),
        LATEST => Ok(Some((-1, hw))),
        MAX_TIMESTAMP => log
            .max_timestamp_offset()
            .map(|r| r.filter(|t| t.offset < hw).map(|t| (t.timestamp, t.offset))),
        ts => log
            .offset_for_timestamp(ts)
            .map(|r| r.filter(|t| t.offset < hw).map(|t| (t.timestamp, t.offset))),
    };
    match found {
        Ok(Some((ts, offset))) => ListOffsetsPartitionResponse::default()
            .with_timestamp(ts)
            .with_offset(offset)
            .with_leader_epoch(state.leader_epoch),
        Ok(None) => ListOffsetsPartitionResponse::default()
            .with_timestamp(-1)
            .with_offset(-1)
            .with_leader_epoch(state.leader_epoch),
        Err(e) => error(errors::storage(&e)),
    }
}
