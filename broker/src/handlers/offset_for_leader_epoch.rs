//! OffsetForLeaderEpoch (API key 23): the end offset of a leader epoch on
//! this partition's leader. Consumers use it to validate their position
//! after a leader change (KIP-320); in Kafka followers also used it to find
//! where to truncate (ours use the fetch's diverging epoch, KIP-595).
//!
//! Per partition, as Kafka's `ReplicaManager.lastOffsetForLeaderEpoch` and
//! `Partition.lastOffsetForLeaderEpoch` answer it:
//! - not hosted here: NOT_LEADER_OR_FOLLOWER when the metadata knows the
//!   partition, else UNKNOWN_TOPIC_OR_PARTITION;
//! - `current_leader_epoch` (-1: no check) older than ours:
//!   FENCED_LEADER_EPOCH, newer: UNKNOWN_LEADER_EPOCH. This check comes
//!   before the leadership check, as in Kafka's `Partition.getLocalLog`;
//! - not the leader: NOT_LEADER_OR_FOLLOWER, whatever the `replica_id`
//!   (Kafka serves this API from the leader only since KIP-320);
//! - otherwise the largest epoch ≤ the requested one and its end offset
//!   from the leader epoch cache ([`rivulet_storage::LeaderEpochCache`]),
//!   or no error with epoch and offset -1 when there is none.
//!
//! Every field of the response exists in every version served (2–4; the
//! codec has no v0/v1, which Kafka 4.0 removed too), so nothing depends on
//! the version.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError as E;
use rivulet_controller::MetadataImage;
use rivulet_storage::leader_epoch_cache::UNDEFINED_EPOCH_OFFSET;
use rivulet_storage::TopicPartition;

use crate::context::BrokerContext;
use crate::errors;

/// Kafka's `NO_PARTITION_LEADER_EPOCH`: the client asks for no fencing.
const NO_CURRENT_LEADER_EPOCH: i32 = -1;

pub fn handle(b: &BrokerContext, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let image = b.image();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let tp = TopicPartition::new(name.clone(), p.partition);
                    end_offset(b, &image, &tp, p.current_leader_epoch, p.leader_epoch)
                        .with_partition(p.partition)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

fn error(code: i16) -> EpochEndOffset {
    EpochEndOffset::default()
        .with_error_code(code)
        .with_leader_epoch(-1)
        .with_end_offset(UNDEFINED_EPOCH_OFFSET)
}

fn end_offset(
    b: &BrokerContext,
    image: &MetadataImage,
    tp: &TopicPartition,
    current_leader_epoch: i32,
    requested_epoch: i32,
) -> EpochEndOffset {
    let Some(partition) = b.replicas.get(tp) else {
        let known = image.partition(&tp.topic, tp.partition).is_some();
        return error(if known {
            E::NotLeaderOrFollower.code()
        } else {
            E::UnknownTopicOrPartition.code()
        });
    };
    // Replica state changes are made under the log lock: holding it, the
    // state and the epoch cache read below belong together.
    let log = partition.log.lock();
    let state = partition.state();
    if let Err(code) = check_leader(
        b.node_id(),
        state.leader,
        state.leader_epoch,
        current_leader_epoch,
    ) {
        return error(code);
    }
    let (epoch, end_offset) = log.end_offset_for_epoch(requested_epoch);
    if end_offset == UNDEFINED_EPOCH_OFFSET {
        // Kafka answers "no such epoch" without an error code.
        return error(errors::NONE);
    }
    EpochEndOffset::default()
        .with_leader_epoch(epoch)
        .with_end_offset(end_offset)
}

/// Whether this node may answer for a partition led by `leader` in
/// `leader_epoch`, given the client's `current_leader_epoch`: the epoch
/// fence first, then leadership (Kafka's `Partition.getLocalLog`).
fn check_leader(
    node_id: i32,
    leader: i32,
    leader_epoch: i32,
    current_leader_epoch: i32,
) -> Result<(), i16> {
    if current_leader_epoch != NO_CURRENT_LEADER_EPOCH {
        if current_leader_epoch < leader_epoch {
            return Err(E::FencedLeaderEpoch.code());
        }
        if current_leader_epoch > leader_epoch {
            return Err(E::UnknownLeaderEpoch.code());
        }
    }
    if leader != node_id {
        return Err(E::NotLeaderOrFollower.code());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_fence_is_checked_before_leadership() {
        let fenced = E::FencedLeaderEpoch.code();
        let unknown = E::UnknownLeaderEpoch.code();
        let not_leader = E::NotLeaderOrFollower.code();
        // Leader of epoch 5 on node 1.
        assert_eq!(check_leader(1, 1, 5, 5), Ok(()));
        assert_eq!(check_leader(1, 1, 5, -1), Ok(()), "-1 skips the fence");
        assert_eq!(check_leader(1, 1, 5, 4), Err(fenced));
        assert_eq!(check_leader(1, 1, 5, 6), Err(unknown));
        // Node 2 follows: a stale or future epoch is reported as such, a
        // matching or absent one gets NOT_LEADER_OR_FOLLOWER.
        assert_eq!(check_leader(2, 1, 5, 4), Err(fenced));
        assert_eq!(check_leader(2, 1, 5, 6), Err(unknown));
        assert_eq!(check_leader(2, 1, 5, 5), Err(not_leader));
        assert_eq!(check_leader(2, 1, 5, -1), Err(not_leader));
    }
}
