//! ElectLeaders v0–2: preferred (v0's only kind) or unclean elections for
//! the listed partitions, or for every partition when the list is null;
//! decided by the controller ([`rivulet_controller::election`]) with
//! Kafka's per-partition errors. Answered once the new leaders are
//! committed to the metadata log.

use std::collections::BTreeMap;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use kafka_protocol::ResponseError as E;
use rivulet_controller::election::{ElectionError, ElectionType};
use rivulet_controller::{ControllerRequest, ControllerResponse};

use super::{sb, tn};
use crate::context::BrokerContext;
use crate::errors;

fn code(e: ElectionError) -> i16 {
    match e {
        ElectionError::UnknownTopicOrPartition => E::UnknownTopicOrPartition.code(),
        ElectionError::ElectionNotNeeded => E::ElectionNotNeeded.code(),
        ElectionError::PreferredLeaderNotAvailable => E::PreferredLeaderNotAvailable.code(),
        ElectionError::EligibleLeadersNotAvailable => E::EligibleLeadersNotAvailable.code(),
    }
}

/// Every asked partition answered with `error` (a refused request).
fn all_failed(
    req: &ElectLeadersRequest,
    error: i16,
    message: Option<String>,
) -> ElectLeadersResponse {
    let results = req
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| {
            ReplicaElectionResult::default()
                .with_topic(t.topic.clone())
                .with_partition_result(
                    t.partitions
                        .iter()
                        .map(|p| {
                            PartitionResult::default()
                                .with_partition_id(*p)
                                .with_error_code(error)
                                .with_error_message(message.clone().map(sb))
                        })
                        .collect(),
                )
        })
        .collect();
    ElectLeadersResponse::default()
        .with_error_code(error)
        .with_replica_election_results(results)
}

pub async fn handle(
    b: &BrokerContext,
    req: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let election = match (version, req.election_type) {
        (0, _) | (_, 0) => ElectionType::Preferred,
        (_, 1) => ElectionType::Unclean,
        (_, other) => {
            let msg = format!("unknown election type {other}");
            return all_failed(&req, E::InvalidRequest.code(), Some(msg));
        }
    };
    let partitions: Option<Vec<(String, i32)>> = req.topic_partitions.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
            .collect()
    });
    let resp = b
        .controller_request(ControllerRequest::ElectLeaders {
            election,
            partitions,
        })
        .await;
    let results = match resp {
        ControllerResponse::Elections { results, .. } => results,
        other => {
            let (code, message) = errors::controller_response(&other);
            return all_failed(&req, code, message);
        }
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for r in results {
        let (error, message) = match r.error {
            None => (errors::NONE, None),
            Some(e) => (code(e), Some(sb(format!("{e:?}")))),
        };
        by_topic.entry(r.topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(r.partition)
                .with_error_code(error)
                .with_error_message(message),
        );
    }
    ElectLeadersResponse::default().with_replica_election_results(
        by_topic
            .into_iter()
            .map(|(topic, parts)| {
                ReplicaElectionResult::default()
                    .with_topic(tn(topic))
                    .with_partition_result(parts)
            })
            .collect(),
    )
}
