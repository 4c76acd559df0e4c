//! OffsetFetch, including the multi-group form of v8, from the group
//! coordinator.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;

use super::{sb, tn};
use crate::context::BrokerContext;
use crate::group::offsets::CommittedOffset;

/// One topic's partitions with their committed offsets (if any).
type TopicOffsets = (String, Vec<(i32, Option<CommittedOffset>)>);

/// Offsets of one group, grouped by topic.
async fn fetch_group(
    b: &BrokerContext,
    group: &str,
    wanted: Option<Vec<(String, i32)>>,
) -> Result<Vec<TopicOffsets>, i16> {
    let rows = b.groups.fetch(group, wanted).await?;
    let mut by_topic: Vec<TopicOffsets> = Vec::new();
    for (t, p, v) in rows {
        match by_topic.iter_mut().find(|(name, _)| *name == t) {
            Some((_, parts)) => parts.push((p, v)),
            None => by_topic.push((t, vec![(p, v)])),
        }
    }
    Ok(by_topic)
}

pub async fn handle(
    b: &BrokerContext,
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
