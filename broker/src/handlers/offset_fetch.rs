//! OffsetFetch, including the multi-group form of v8, from the group
//! coordinator. Offsets of an open transaction are never shown; with
//! `require_stable` (v7+, KIP-447) their partitions answer
//! UNSTABLE_OFFSET_COMMIT, older versions get the last committed offset.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;

use super::{sb, tn};
use crate::context::BrokerContext;
use crate::group::coordinator::FetchedOffset;
use crate::group::offsets::CommittedOffset;

/// One topic's partitions: `(partition, committed offset, error code)`.
type TopicOffsets = (String, Vec<(i32, Option<CommittedOffset>, i16)>);

/// Offsets of one group, grouped by topic.
async fn fetch_group(
    b: &BrokerContext,
    group: &str,
    wanted: Option<Vec<(String, i32)>>,
    require_stable: bool,
) -> Result<Vec<TopicOffsets>, i16> {
    let rows = b.groups.fetch(group, wanted, require_stable).await?;
    let mut by_topic: Vec<TopicOffsets> = Vec::new();
    for FetchedOffset {
        topic,
        partition,
        offset,
        error_code,
    } in rows
    {
        let row = (partition, offset, error_code);
        match by_topic.iter_mut().find(|(name, _)| *name == topic) {
            Some((_, parts)) => parts.push(row),
            None => by_topic.push((topic, vec![row])),
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
            // v9 (KIP-848): a consumer group's member must fetch at its
            // current member epoch.
            let checked = if version >= 9 {
                match b
                    .groups
                    .validate_consumer_fetch(&g.group_id, g.member_id.as_deref(), g.member_epoch)
                    .await
                {
                    0 => Ok(()),
                    code => Err(code),
                }
            } else {
                Ok(())
            };
            let fetched = match checked {
                Ok(()) => fetch_group(b, &g.group_id, wanted, req.require_stable).await,
                Err(code) => Err(code),
            };
            let entry = match fetched {
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
                                            .map(|(p, v, code)| {
                                                let (offset, epoch, md) = split(v);
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_error_code(code)
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
    // Zero below v7, where the field does not exist.
    let require_stable = version >= 7 && req.require_stable;
    match fetch_group(b, &req.group_id, wanted, require_stable).await {
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
                                .map(|(p, v, code)| {
                                    let (offset, epoch, md) = split(v);
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(code)
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
