//! [`BrokerContext`]: what request handlers see — the configuration and
//! identity of this node, this node's partitions and metadata
//! ([`LocalNode`]: the replica manager and the controller client), and the
//! group coordinator. Starting and stopping a node, its listener and its
//! background tasks are [`crate::server`]'s, not the handlers'.

use std::sync::Arc;
use std::time::Duration;

use rivulet_controller::{ControllerRequest, ControllerResponse, MetadataImage};
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::group::coordinator::GroupCoordinator;
use crate::local_node::LocalNode;
use crate::producer_ids::ProducerIds;
use crate::replica_manager::ReplicaManager;
use crate::txn::TransactionCoordinator;

#[derive(Debug)]
pub struct BrokerContext {
    pub config: BrokerConfig,
    pub cluster_id: String,
    /// This process's registration with the controller (a restart is a new
    /// incarnation).
    pub incarnation: Uuid,
    pub node: LocalNode,
    /// The same replica manager as `node.replicas`, for brevity.
    pub replicas: Arc<ReplicaManager>,
    pub groups: Arc<GroupCoordinator>,
    pub producer_ids: Arc<ProducerIds>,
    pub txns: Arc<TransactionCoordinator>,
    /// Counters and histograms of the request path ([`crate::metrics`]).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Client quota measurements ([`crate::client_quotas`]).
    pub client_quotas: crate::client_quotas::ClientQuotas,
}

impl BrokerContext {
    pub fn new(
        config: BrokerConfig,
        cluster_id: String,
        incarnation: Uuid,
        node: LocalNode,
        groups: Arc<GroupCoordinator>,
        producer_ids: Arc<ProducerIds>,
        txns: Arc<TransactionCoordinator>,
    ) -> Self {
        BrokerContext {
            client_quotas: crate::client_quotas::ClientQuotas::new(config.quota_windows),
            config,
            cluster_id,
            incarnation,
            replicas: node.replicas.clone(),
            node,
            groups,
            producer_ids,
            txns,
            metrics: Arc::default(),
        }
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The latest metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.node.image()
    }

    /// The topic defaults this node runs with in `image`: its config file
    /// with the dynamic broker configs applied.
    pub fn topic_defaults(&self, image: &MetadataImage) -> crate::dynamic_config::TopicDefaults {
        crate::dynamic_config::TopicDefaults::resolve(
            &self.config.storage.log_defaults,
            self.config.min_insync_replicas,
            image,
            self.node_id(),
        )
    }

    /// Send a request to the active controller; a quorum without a leader
    /// answers `NotController`.
    pub async fn controller_request(&self, req: ControllerRequest) -> ControllerResponse {
        self.node.controller_request(req).await
    }

    /// A fresh producer id, from a block reserved through the controller.
    pub async fn next_producer_id(&self) -> Result<i64, ControllerResponse> {
        self.producer_ids.next(&self.node).await
    }

    /// See [`LocalNode::wait_for_topic`].
    pub async fn wait_for_topic(&self, topic: &str, timeout: Duration) -> bool {
        self.node.wait_for_topic(topic, timeout).await
    }

    /// See [`LocalNode::wait_until`].
    pub async fn wait_until(
        &self,
        timeout: Duration,
        ready: impl Fn(&MetadataImage) -> bool,
    ) -> bool {
        self.node.wait_until(timeout, ready).await
    }
}
