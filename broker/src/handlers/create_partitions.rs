//! CreatePartitions: grow a topic to `count` partitions through the
//! controller (which places the new replicas as for a new topic and refuses
//! shrinking: INVALID_PARTITIONS); `validate_only` checks without creating.
//! Grown topics are answered once the new partitions this node leads are
//! loaded (bounded by `timeout_ms`), so an immediate produce to one
//! succeeds. Manual assignments (one replica list per new partition) are
//! validated by the controller as Kafka does
//! ([`rivulet_controller::assignment`]).

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::ResponseError as E;
use rivulet_controller::ControllerRequest;

use super::sb;
use crate::context::BrokerContext;
use crate::errors;

/// Longest a request waits for new partitions to be ready.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub async fn handle(
    b: &BrokerContext,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let wait = Duration::from_millis(req.timeout_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.to_string()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    let mut grown: Vec<(String, i32)> = Vec::new();
    for t in req.topics {
        let name = t.name.to_string();
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let refused = if seen.get(&name).is_some_and(|n| *n > 1) {
            Some("the topic appears more than once in the request")
        } else {
            None
        };
        if let Some(message) = refused {
            results.push(
                result
                    .with_error_code(E::InvalidRequest.code())
                    .with_error_message(Some(sb(message))),
            );
            continue;
        }
        let resp = b
            .controller_request(ControllerRequest::CreatePartitions {
                name: name.clone(),
                total: t.count,
                validate_only: req.validate_only,
                assignments: t.assignments.as_ref().map(|a| {
                    a.iter()
                        .map(|p| p.broker_ids.iter().map(|b| b.0).collect())
                        .collect()
                }),
            })
            .await;
        let (code, message) = errors::controller_response(&resp);
        if code == errors::NONE && !req.validate_only {
            grown.push((name, t.count));
        }
        results.push(
            result
                .with_error_code(code)
                .with_error_message(message.map(sb)),
        );
    }
    for (name, count) in grown {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        // The local image may trail the controller: first see every new
        // partition, then wait for the ones led here to be loaded.
        let visible = b
            .wait_until(left, |image| {
                image
                    .topic(&name)
                    .is_some_and(|t| t.partitions.len() as i64 >= i64::from(count))
            })
            .await;
        if visible {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            b.wait_for_topic(&name, left).await;
        }
    }
    CreatePartitionsResponse::default().with_results(results)
}
