//! CreateTopics: each topic is a controller request (replicas spread over
//! live brokers); `validate_only` checks without creating. A created topic
//! is answered once its local partitions are ready, so an immediate produce
//! succeeds. Manual replica assignments are not supported yet.

use std::collections::BTreeMap;
use std::time::Duration;

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
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.to_string();
        let partitions = if t.num_partitions == -1 {
            b.config.num_partitions
        } else {
            t.num_partitions
        };
        let rf = if t.replication_factor == -1 {
            b.config.default_replication_factor
        } else {
            t.replication_factor as i32
        };
        let result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if !t.assignments.is_empty() {
            results.push(
                result
                    .with_error_code(E::InvalidRequest.code())
                    .with_error_message(Some(sb("manual replica assignment is not supported"))),
            );
            continue;
        }
        let mut cfg = BTreeMap::new();
        for c in &t.configs {
            if let Some(v) = &c.value {
                cfg.insert(c.name.to_string(), v.to_string());
            }
        }
        let resp = b
            .controller_request(ControllerRequest::CreateTopic {
                name: name.clone(),
                partitions,
                replication_factor: rf,
                configs: cfg.clone(),
                validate_only: req.validate_only,
            })
            .await;
        let (code, message) = errors::controller_response(&resp);
        if code != errors::NONE {
            results.push(
                result
                    .with_error_code(code)
                    .with_error_message(message.map(sb)),
            );
            continue;
        }
        if matches!(resp, ControllerResponse::Ok { .. }) && !req.validate_only {
            b.wait_for_topic(&name, wait).await;
        }
        let topic_id = b.image().topic(&name).map(|t| t.id).unwrap_or_default();
        let entries = configs::topic_entries(
            &b.config.storage.log_defaults,
            b.config.min_insync_replicas,
            &cfg,
        )
        .into_iter()
        .map(|(k, v, source)| {
            CreatableTopicConfigs::default()
                .with_name(sb(k))
                .with_value(Some(sb(v)))
                .with_config_source(source)
        })
        .collect();
        results.push(
            result
                .with_topic_id(topic_id)
                .with_num_partitions(partitions)
                .with_replication_factor(rf as i16)
                .with_configs(Some(entries)),
        );
    }
    CreateTopicsResponse::default().with_topics(results)
}
