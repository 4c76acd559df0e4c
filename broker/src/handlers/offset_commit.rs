//! OffsetCommit, through the group coordinator, which stores committed
//! offsets in `__consumer_offsets`.
//!
//! OffsetCommit checks each partition against the metadata image before
//! the coordinator sees it, as Kafka's `handleOffsetCommitRequest` does: a
//! partition of an unknown topic, or beyond its topic's partition count, is
//! UNKNOWN_TOPIC_OR_PARTITION and never stored. When no partition is known
//! the coordinator is not asked at all (no group is created, no group-level
//! error is returned). TxnOffsetCommit shares these checks ([`check`],
//! [`partition_code`]).

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use crate::context::BrokerContext;
use crate::group::offsets::CommittedOffset;

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Longest commit metadata string accepted (`offset.metadata.max.bytes`).
const MAX_METADATA_BYTES: usize = 4096;

/// What OffsetCommit decided about one partition before the coordinator.
#[derive(Clone, Copy)]
pub(super) enum Checked {
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
    let partitions = req.topics.iter().map(|t| {
        let ps = t.partitions.iter().map(|p| PartitionCommit {
            partition: p.partition_index,
            offset: p.committed_offset,
            leader_epoch: p.committed_leader_epoch,
            metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
        });
        (t.name.to_string(), ps.collect())
    });
    let CheckedCommits {
        commits,
        checked,
        any_known,
    } = check_all(&b.image(), partitions.collect());
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
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(partition_code(checked, result))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One partition's offset as OffsetCommit and TxnOffsetCommit carry it.
pub(super) struct PartitionCommit {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// A commit request's partitions after [`check`]: the offsets to hand to
/// the coordinator, each partition's verdict (per topic, in request
/// order) and whether any partition exists at all.
pub(super) struct CheckedCommits {
    pub commits: Vec<(String, i32, CommittedOffset)>,
    pub checked: Vec<Vec<Checked>>,
    pub any_known: bool,
}

/// [`check`] every partition of a commit request, stamped now.
pub(super) fn check_all(
    image: &rivulet_controller::MetadataImage,
    topics: Vec<(String, Vec<PartitionCommit>)>,
) -> CheckedCommits {
    let now = now_ms();
    let mut out = CheckedCommits {
        commits: Vec::new(),
        checked: Vec::with_capacity(topics.len()),
        any_known: false,
    };
    for (topic, partitions) in topics {
        let mut row = Vec::with_capacity(partitions.len());
        for p in partitions {
            let c = check(image, &topic, p.partition, p.metadata.as_deref());
            row.push(c);
            out.any_known |= !matches!(c, Checked::UnknownPartition);
            if matches!(c, Checked::Commit) {
                out.commits.push((
                    topic.clone(),
                    p.partition,
                    CommittedOffset {
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        metadata: p.metadata,
                        commit_timestamp: now,
                    },
                ));
            }
        }
        out.checked.push(row);
    }
    out
}

/// Check one partition of a commit against the metadata image and the
/// metadata size limit.
pub(super) fn check(
    image: &rivulet_controller::MetadataImage,
    topic: &str,
    partition: i32,
    metadata: Option<&str>,
) -> Checked {
    if image.partition(topic, partition).is_none() {
        Checked::UnknownPartition
    } else if metadata.is_some_and(|m| m.len() > MAX_METADATA_BYTES) {
        Checked::MetadataTooLarge
    } else {
        Checked::Commit
    }
}

/// A partition's answer: an unknown partition never reaches the
/// coordinator. A group-level error (stale generation, unknown member, …)
/// applies to every other partition, as in Kafka, where the metadata size
/// is checked only once the commit is allowed.
pub(super) fn partition_code(checked: Checked, result: Result<(), i16>) -> i16 {
    match (checked, result) {
        (Checked::UnknownPartition, _) => E::UnknownTopicOrPartition.code(),
        (_, Err(code)) => code,
        (Checked::MetadataTooLarge, Ok(())) => E::OffsetMetadataTooLarge.code(),
        (Checked::Commit, Ok(())) => 0,
    }
}
