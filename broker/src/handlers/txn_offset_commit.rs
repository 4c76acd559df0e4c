//! TxnOffsetCommit (KIP-98; v3 adds the consumer's generation, member id
//! and instance id, KIP-447): offsets sent with a transaction, stored by the
//! group coordinator as pending until the transaction's marker.
//!
//! Partitions are checked as OffsetCommit checks them (unknown topic or
//! partition, metadata size) before the coordinator sees them. As Kafka's
//! `KafkaApis.handleTxnOffsetCommitRequest`, v0–v1 answer
//! COORDINATOR_LOAD_IN_PROGRESS as COORDINATOR_NOT_AVAILABLE: producers
//! before 2.0 could not handle it (KAFKA-7296).

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::offset_commit::{check_all, partition_code, CheckedCommits, PartitionCommit};
use crate::context::BrokerContext;
use crate::group::coordinator::TxnCommit;

pub async fn handle(
    b: &BrokerContext,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
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
        // Fields of v3+; older requests decode to their defaults (-1, "",
        // null), which skip the member checks.
        let txn = TxnCommit {
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
            generation_id: req.generation_id,
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        };
        b.groups.txn_commit(&req.group_id, &txn, commits).await
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
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(downgrade(partition_code(checked, result), version))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// An error code as a client of `version` understands it.
fn downgrade(code: i16, version: i16) -> i16 {
    if version < 2 && code == E::CoordinatorLoadInProgress.code() {
        E::CoordinatorNotAvailable.code()
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_in_progress_is_not_available_before_v2() {
        let loading = E::CoordinatorLoadInProgress.code();
        assert_eq!(downgrade(loading, 0), E::CoordinatorNotAvailable.code());
        assert_eq!(downgrade(loading, 1), E::CoordinatorNotAvailable.code());
        assert_eq!(downgrade(loading, 2), loading);
        assert_eq!(downgrade(0, 0), 0);
    }
}
