//! FindCoordinator: the node coordinating a group (key type 0), from the
//! leader of the group's `__consumer_offsets` partition, which is created on
//! first use, or a transactional id (key type 1), from the leader of its
//! `__transaction_state` partition, likewise created on first use.
//! v4+ asks for many keys at once.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::sb;
use crate::context::BrokerContext;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The coordinator of one key: `(error, node, host, port)`.
async fn coordinator(
    b: &BrokerContext,
    key: &str,
    key_type: i8,
    listener: &str,
) -> (i16, i32, String, i32) {
    let node = match key_type {
        KEY_TYPE_GROUP => b.groups.coordinator_for(key).await,
        KEY_TYPE_TRANSACTION => b.txns.coordinator_for(key).await,
        _ => Err(E::InvalidRequest.code()),
    };
    let node = match node {
        Ok(node) => node,
        Err(code) => return (code, -1, String::new(), -1),
    };
    let image = b.image();
    match image.brokers.get(&node).and_then(|r| r.listener(listener)) {
        Some(l) => (0, node, l.host.clone(), l.port as i32),
        None => (E::CoordinatorNotAvailable.code(), -1, String::new(), -1),
    }
}

pub async fn handle(
    b: &BrokerContext,
    req: FindCoordinatorRequest,
    version: i16,
    listener: &str,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let mut coordinators = Vec::new();
        for key in &req.coordinator_keys {
            let (code, node, host, port) = coordinator(b, key, req.key_type, listener).await;
            coordinators.push(
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(sb(host))
                    .with_port(port)
                    .with_error_code(code),
            );
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (code, node, host, port) = coordinator(b, &req.key, req.key_type, listener).await;
    FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id(BrokerId(node))
        .with_host(sb(host))
        .with_port(port)
}
