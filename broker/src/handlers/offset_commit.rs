//! OffsetCommit, through the group coordinator, which stores committed
//! offsets in `__consumer_offsets`.
//!
//! OffsetCommit checks each partition against the metadata image before
//! the coordinator sees it, as Kafka's `handleOffsetCommitRequest` does: a
//! partition of an unknown topic, or beyond its topic's partition count, is
//! UNKNOWN_TOPIC_OR_PARTITION and never stored. When no partition is known
//! the coordinator is not asked at all (no group is created, no group-level
//! error is returned).

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use crate::context::BrokerContext;
use crate::group::offsets::CommittedOffset;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Longest commit metadata string accepted (`offset.metadata.max.bytes`).
const MAX_METADATA_BYTES: usize = 4096;

/// What OffsetCommit decided about one partition before the coordinator.
#[derive(Clone, Copy)]
enum Checked {
    /// Known and within limits: handed to the coordinator.
    Commit,
    /// Not in the metadata image: never stored.
    UnknownPartition,
    /// Commit metadata over `offset.metadata.max.bytes`: not stored.
    MetadataTooLarge,
}

pub async fn handle(
    b: &BrokerContext,
    req: OffsetCommitRequest,
    _version: i16,
) -> OffsetCommitResponse {
    let now = now_ms();
    let image = b.image();
    let mut commits = Vec::new();
    // Per topic and partition, in request order.
    let mut checked: Vec<Vec<Checked>> = Vec::with_capacity(req.topics.len());
    let mut any_known = false;
    for t in &req.topics {
        let mut row = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            if image.partition(&t.name, p.partition_index).is_none() {
                row.push(Checked::UnknownPartition);
                continue;
            }
            any_known = true;
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string());
            if metadata
                .as_ref()
                .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
            {
                row.push(Checked::MetadataTooLarge);
                continue;
            }
            row.push(Checked::Commit);
            commits.push((
                t.name.to_string(),
                p.partition_index,
                CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata,
                    commit_timestamp: now,
                },
            ));
        }
        checked.push(row);
    }
    let result = if any_known {
        b.groups
            .commit(
                &req.group_id,
                &req.member_id,
                req.group_instance_id.as_deref(),
                req.generation_id_or_member_epoch,
                commits,
            )
            .await
    } else {
        Ok(())
    };
    let topics = req
        .topics
        .iter()
        .zip(checked)
        .map(|(t, row)| {
            let partitions = t
                .partitions
                .iter()
                .zip(row)
                .map(|(p, checked)| {
                    // An unknown partition never reaches the coordinator. A
                    // group-level error (stale generation, unknown member,
                    // …) applies to every other partition, as in Kafka,
                    // where the metadata size is checked only once the
                    // commit is allowed.
                    let code = match (checked, result) {
                        (Checked::UnknownPartition, _) => E::UnknownTopicOrPartition.code(),
                        (_, Err(code)) => code,
                        (Checked::MetadataTooLarge, Ok(())) => E::OffsetMetadataTooLarge.code(),
                        (Checked::Commit, Ok(())) => 0,
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
