//! CreateTopics: each topic is a controller request (replicas spread over
//! live brokers); `validate_only` checks without creating. A created topic
//! is answered once its local partitions are ready, so an immediate produce
//! succeeds. A manual replica assignment (`assignments`, with
//! `num_partitions` and `replication_factor` both -1, as Kafka requires)
//! is validated by the controller ([`rivulet_controller::assignment`]).
//! The topics of one request are created concurrently: their controller
//! commits and local log creation overlap instead of queueing.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError as E;
use rivulet_controller::{ControllerRequest, ControllerResponse};

use super::sb;
use crate::context::BrokerContext;
use crate::errors;
use crate::topic_configs as configs;

pub async fn handle(
    b: &BrokerContext,
    req: CreateTopicsRequest,
    _version: i16,
) -> CreateTopicsResponse {
    let wait = Duration::from_millis(req.timeout_ms.clamp(0, 60_000) as u64);
    let validate_only = req.validate_only;
    let results = futures_util::future::join_all(
        req.topics
            .into_iter()
            .map(|t| create_one(b, t, validate_only, wait)),
    )
    .await;
    CreateTopicsResponse::default().with_topics(results)
}

async fn create_one(
    b: &BrokerContext,
    t: CreatableTopic,
    validate_only: bool,
    wait: Duration,
) -> CreatableTopicResult {
    let name = t.name.to_string();
    let manual = !t.assignments.is_empty();
    let mut partitions = if t.num_partitions == -1 {
        b.config.num_partitions
    } else {
        t.num_partitions
    };
    let mut rf = if t.replication_factor == -1 {
        b.config.default_replication_factor
    } else {
        t.replication_factor as i32
    };
    let result = CreatableTopicResult::default()
        .with_name(t.name.clone())
        .with_num_partitions(-1)
        .with_replication_factor(-1);
    // Kafka's ReplicationControlManager: an assignment fixes both counts.
    let refused = if manual && t.replication_factor != -1 {
        Some("A manual partition assignment was specified, but replication factor was not set to -1.")
    } else if manual && t.num_partitions != -1 {
        Some("A manual partition assignment was specified, but numPartitions was not set to -1.")
    } else {
        None
    };
    if let Some(message) = refused {
        return result
            .with_error_code(E::InvalidRequest.code())
            .with_error_message(Some(sb(message)));
    }
    let mut cfg = BTreeMap::new();
    for c in &t.configs {
        if let Some(v) = &c.value {
            cfg.insert(c.name.to_string(), v.to_string());
        }
    }
    let request = if manual {
        let assignments: Vec<(i32, Vec<i32>)> = t
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        partitions = assignments.len() as i32;
        rf = assignments.first().map_or(0, |(_, r)| r.len() as i32);
        ControllerRequest::CreateTopicAssigned {
            name: name.clone(),
            assignments,
            configs: cfg.clone(),
            validate_only,
        }
    } else {
        ControllerRequest::CreateTopic {
            name: name.clone(),
            partitions,
            replication_factor: rf,
            configs: cfg.clone(),
            validate_only,
        }
    };
    let resp = b.controller_request(request).await;
    let (code, message) = errors::controller_response(&resp);
    if code != errors::NONE {
        return result
            .with_error_code(code)
            .with_error_message(message.map(sb));
    }
    if matches!(resp, ControllerResponse::Ok { .. }) && !validate_only {
        b.wait_for_topic(&name, wait).await;
        if let Some((p, why)) = b.node.topic_hosting_error(&name) {
            return result
                .with_error_code(E::KafkaStorageError.code())
                .with_error_message(Some(sb(format!(
                    "topic created, but this node cannot host partition {p}: {why}"
                ))));
        }
    }
    let topic_id = b.image().topic(&name).map(|t| t.id).unwrap_or_default();
    let entries = configs::topic_entries(&b.topic_defaults(&b.image()), &cfg)
        .into_iter()
        .map(|(k, v, source)| {
            CreatableTopicConfigs::default()
                .with_name(sb(k))
                .with_value(Some(sb(v)))
                .with_config_source(source)
        })
        .collect();
    result
        .with_topic_id(topic_id)
        .with_num_partitions(partitions)
        .with_replication_factor(rf as i16)
        .with_configs(Some(entries))
}
