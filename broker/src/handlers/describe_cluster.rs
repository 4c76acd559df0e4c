//! DescribeCluster (KIP-700): the live brokers with their advertised
//! host/port and rack, the active controller's id (-1 while there is none)
//! and the cluster id. Only the broker endpoint is described: a request for
//! controllers (endpoint type 2, KIP-919) is MISMATCHED_ENDPOINT_TYPE and
//! any other type UNSUPPORTED_ENDPOINT_TYPE, as a Kafka broker answers.
//!
//! Authorized operations are INT32_MIN unless asked for; when asked, those
//! of [`super::authorized_operations`] for the cluster.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::ResponseError as E;

use super::authorized_operations::{self, Resource};
use super::sb;
use crate::context::BrokerContext;

/// `EndpointType` codes of KIP-919.
pub const ENDPOINT_BROKER: i8 = 1;
pub const ENDPOINT_CONTROLLER: i8 = 2;

/// Every operation on the cluster resource, as returned when asked.
pub use super::authorized_operations::CLUSTER_OPERATIONS;

pub fn handle(
    b: &BrokerContext,
    req: DescribeClusterRequest,
    _version: i16,
    listener: &str,
) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(sb(b.cluster_id.clone()));
    match req.endpoint_type {
        ENDPOINT_BROKER => {}
        ENDPOINT_CONTROLLER => {
            return response
                .with_error_code(E::MismatchedEndpointType.code())
                .with_error_message(Some(sb(
                    "this is a broker endpoint: controllers are not described here",
                )))
        }
        other => {
            return response
                .with_error_code(E::UnsupportedEndpointType.code())
                .with_error_message(Some(sb(format!("unknown endpoint type {other}"))))
        }
    }
    let image = b.image();
    let mut brokers: Vec<DescribeClusterBroker> = image
        .live_brokers()
        .filter_map(|reg| {
            let l = reg.listener(listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(reg.node_id))
                    .with_host(sb(l.host.clone()))
                    .with_port(i32::from(l.port))
                    .with_rack(reg.rack.clone().map(sb)),
            )
        })
        .collect();
    if !brokers.iter().any(|x| x.broker_id.0 == b.node_id()) {
        // Not registered (or fenced) yet: the client still reached this one.
        let (host, port) = b.config.advertised_for(listener);
        brokers.push(
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.node_id()))
                .with_host(sb(host))
                .with_port(port),
        );
    }
    response
        .with_controller_id(BrokerId(
            b.node.controller.active_controller().unwrap_or(-1),
        ))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(authorized_operations::if_asked(
            req.include_cluster_authorized_operations,
            Resource::Cluster,
        ))
}
