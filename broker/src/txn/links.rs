//! Connections from this node to the other brokers' Kafka listeners, for
//! the transaction requests brokers send each other: WriteTxnMarkers (the
//! coordinator to partition leaders) and AddPartitionsToTxn `verify_only`
//! (partition leaders to the coordinator, KIP-890). One connection per
//! broker, one request at a time on it; a failed round trip drops the
//! connection so the next one reconnects (to wherever the image says the
//! broker now listens), on the inter-broker listener, plain or TLS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::protocol::Request;
use rivulet_protocol::tls::Stream;
use rivulet_protocol::wire::{self, Client};
use tracing::debug;

use crate::local_node::LocalNode;

/// Timeout of one connect and of one round trip.
const LINK_TIMEOUT: Duration = Duration::from_secs(15);

/// One broker's connection, if open; its lock is held across a round trip.
type Link = Arc<tokio::sync::Mutex<Option<Client<Stream>>>>;

pub struct BrokerLinks {
    node: LocalNode,
    /// Per broker, so requests to different brokers run side by side.
    links: parking_lot::Mutex<HashMap<i32, Link>>,
}

impl BrokerLinks {
    pub fn new(node: LocalNode) -> Self {
        BrokerLinks {
            node,
            links: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Send `req` at `version` to broker `to`; `None` if it cannot be
    /// reached or answered.
    pub async fn round_trip<R: Request>(
        &self,
        to: i32,
        version: i16,
        req: &R,
    ) -> Option<R::Response> {
        let link = self.links.lock().entry(to).or_default().clone();
        let mut conn = link.lock().await;
        if conn.is_none() {
            let addr = self.node.broker_addr(to)?;
            let connector = &self.node.inter_broker.connector;
            let c = tokio::time::timeout(LINK_TIMEOUT, wire::connect_with(connector, &addr))
                .await
                .ok()?
                .ok()?;
            let id = format!("rivulet-broker-{}", self.node.node_id());
            *conn = Some(c.with_client_id(Some(id)).with_timeout(LINK_TIMEOUT));
        }
        let client = conn.as_mut()?;
        match client.round_trip(version, req).await {
            Ok(resp) => Some(resp),
            Err(e) => {
                debug!(to, error = %e, "broker link failed; reconnecting next time");
                *conn = None;
                None
            }
        }
    }
}
