//! AlterPartitionReassignments v0 and ListPartitionReassignments v0
//! (KIP-455): replica moves decided by the controller
//! ([`rivulet_controller::reassign`]), carried out by the replica fetchers
//! of the new replicas; listed from this node's image. An alteration is
//! answered once this node's image has it, so a List right after sees it.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use kafka_protocol::ResponseError as E;
use rivulet_controller::reassign::{self, ReassignError};
use rivulet_controller::{ControllerRequest, ControllerResponse};

use super::{sb, tn};
use crate::context::BrokerContext;
use crate::errors;

/// Longest an alteration waits for this node's image to catch up.
const IMAGE_WAIT: Duration = Duration::from_secs(5);

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().map(|b| BrokerId(*b)).collect()
}

fn code(e: &ReassignError) -> (i16, Option<String>) {
    match e {
        ReassignError::UnknownTopicOrPartition => (E::UnknownTopicOrPartition.code(), None),
        ReassignError::NoReassignmentInProgress => (E::NoReassignmentInProgress.code(), None),
        ReassignError::InvalidReplicaAssignment(m) => {
            (E::InvalidReplicaAssignment.code(), Some(m.clone()))
        }
    }
}

pub async fn alter(
    b: &BrokerContext,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let partitions: Vec<(String, i32, Option<Vec<i32>>)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                )
            })
        })
        .collect();
    let resp = b
        .controller_request(ControllerRequest::AlterReassignments {
            partitions: partitions.clone(),
        })
        .await;
    let results: Vec<(i16, Option<String>)> = match resp {
        ControllerResponse::Reassignments { offset, results } => {
            b.node
                .wait_until(IMAGE_WAIT, |image| image.offset >= offset)
                .await;
            results
                .iter()
                .map(|r| r.as_ref().map_or((errors::NONE, None), code))
                .collect()
        }
        other => {
            let (code, message) = errors::controller_response(&other);
            return AlterPartitionReassignmentsResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(sb));
        }
    };
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for ((topic, partition, _), (error, message)) in partitions.into_iter().zip(results) {
        by_topic.entry(topic).or_default().push(
            ReassignablePartitionResponse::default()
                .with_partition_index(partition)
                .with_error_code(error)
                .with_error_message(message.map(sb)),
        );
    }
    AlterPartitionReassignmentsResponse::default().with_responses(
        by_topic
            .into_iter()
            .map(|(name, partitions)| {
                ReassignableTopicResponse::default()
                    .with_name(tn(name))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}

pub fn list(
    b: &BrokerContext,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for o in reassign::ongoing(&b.image()) {
        let asked = wanted
            .as_ref()
            .is_none_or(|w| w.get(&o.topic).is_some_and(|ps| ps.contains(&o.partition)));
        if !asked {
            continue;
        }
        by_topic.entry(o.topic).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(o.partition)
                .with_replicas(ids(&o.replicas))
                .with_adding_replicas(ids(&o.adding))
                .with_removing_replicas(ids(&o.removing)),
        );
    }
    ListPartitionReassignmentsResponse::default().with_topics(
        by_topic
            .into_iter()
            .map(|(name, partitions)| {
                OngoingTopicReassignment::default()
                    .with_name(tn(name))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}
