//! Committed offsets — OffsetCommit, OffsetFetch (including the multi-group
//! form of v8) and OffsetDelete — through the group coordinator, which
//! stores them in `__consumer_offsets`.

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

pub async fn offset_commit(
    b: &Broker,
    req: OffsetCommitRequest,
    _version: i16,
) -> OffsetCommitResponse {
    let now = now_ms();
    let mut commits = Vec::new();
    let mut too_large = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string());
            if metadata
                .as_ref()
                .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
            {
                too_large.push((t.name.to_string(), p.partition_index));
                continue;
            }
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
    }
    let result = b
        .groups
        .commit(
            b,
            &req.group_id,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id_or_member_epoch,
            commits,
        )
        .await;
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    // A group-level error (stale generation, unknown
                    // member, …) applies to every partition, as in Kafka,
                    // where the metadata size is checked only once the
                    // commit is allowed.
                    let code = match result {
                        Err(code) => code,
                        Ok(()) if too_large.contains(&(t.name.to_string(), p.partition_index)) => {
                            kafka_protocol::ResponseError::OffsetMetadataTooLarge.code()
                        }
                        Ok(()) => 0,
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
