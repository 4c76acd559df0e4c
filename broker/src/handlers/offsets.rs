//! Committed offsets — OffsetCommit, OffsetFetch (including the multi-group
//! form of v8) and OffsetDelete — through the group coordinator, which
//! stores them in `__consumer_offsets`.
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
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::{sb, tn};
use crate::broker::Broker;
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

pub async fn offset_commit(
    b: &Broker,
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
                b,
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

/// One topic's partitions with their committed offsets (if any).
type TopicOffsets = (String, Vec<(i32, Option<CommittedOffset>)>);

/// Offsets of one group, grouped by topic.
async fn fetch_group(
    b: &Broker,
    group: &str,
    wanted: Option<Vec<(String, i32)>>,
) -> Result<Vec<TopicOffsets>, i16> {
    let rows = b.groups.fetch(b, group, wanted).await?;
    let mut by_topic: Vec<TopicOffsets> = Vec::new();
    for (t, p, v) in rows {
        match by_topic.iter_mut().find(|(name, _)| *name == t) {
            Some((_, parts)) => parts.push((p, v)),
            None => by_topic.push((t, vec![(p, v)])),
        }
    }
    Ok(by_topic)
}

pub async fn offset_fetch(
    b: &Broker,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::new();
        for g in &req.groups {
            let wanted = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .flat_map(|t| {
                        t.partition_indexes
                            .iter()
                            .map(move |p| (t.name.to_string(), *p))
                    })
                    .collect()
            });
            let entry = match fetch_group(b, &g.group_id, wanted).await {
                Err(code) => OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_error_code(code),
                Ok(topics) => OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(t, parts)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(tn(t))
                                    .with_partitions(
                                        parts
                                            .into_iter()
                                            .map(|(p, v)| {
                                                let (offset, epoch, md) = split(v);
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(epoch)
                                                    .with_metadata(md)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
            };
            groups.push(entry);
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = req.topics.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(move |p| (t.name.to_string(), *p))
            })
            .collect()
    });
    match fetch_group(b, &req.group_id, wanted).await {
        Err(code) => OffsetFetchResponse::default().with_error_code(code),
        Ok(topics) => OffsetFetchResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(t, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(tn(t))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, v)| {
                                    let (offset, epoch, md) = split(v);
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(md)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}

/// `(offset, leader epoch, metadata)`, or Kafka's "no offset" (-1, -1, "").
fn split(v: Option<CommittedOffset>) -> (i64, i32, Option<kafka_protocol::protocol::StrBytes>) {
    match v {
        Some(c) => (
            c.offset,
            c.leader_epoch,
            Some(sb(c.metadata.unwrap_or_default())),
        ),
        None => (-1, -1, Some(sb(""))),
    }
}

pub async fn offset_delete(
    b: &Broker,
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
    match b.groups.delete_offsets(b, &req.group_id, &partitions).await {
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
