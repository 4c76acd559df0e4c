//! This node as the broker's components see it: its id, the partitions it
//! hosts ([`ReplicaManager`]) and the metadata quorum
//! ([`ControllerClient`]). The group coordinator, the replica fetchers and
//! the request handlers (through [`crate::context::BrokerContext`]) take
//! this, not the whole broker.

use std::sync::Arc;
use std::time::Duration;

use rivulet_controller::{ControllerRequest, ControllerResponse, MetadataImage};
use rivulet_storage::TopicPartition;

use crate::controller_client::ControllerClient;
use crate::replica_manager::ReplicaManager;

/// How long admin requests wait for the controller.
pub const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct LocalNode {
    pub replicas: Arc<ReplicaManager>,
    pub controller: Arc<dyn ControllerClient>,
}

impl LocalNode {
    pub fn new(replicas: Arc<ReplicaManager>, controller: Arc<dyn ControllerClient>) -> Self {
        LocalNode {
            replicas,
            controller,
        }
    }

    pub fn node_id(&self) -> i32 {
        self.replicas.node_id()
    }

    /// The latest metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.controller.image()
    }

    /// Send a request to the active controller; a quorum without a leader
    /// answers `NotController`.
    pub async fn controller_request(&self, req: ControllerRequest) -> ControllerResponse {
        self.controller
            .request(req, CONTROLLER_TIMEOUT)
            .await
            .unwrap_or(ControllerResponse::NotController { leader: None })
    }

    /// Wait until `topic` is in the image and every partition this node
    /// leads in it is loaded locally.
    pub async fn wait_for_topic(&self, topic: &str, timeout: Duration) -> bool {
        let me = self.node_id();
        self.wait_until(timeout, |image| {
            image.topic(topic).is_some_and(|t| {
                t.partitions.iter().all(|(p, reg)| {
                    reg.leader != me
                        || self
                            .replicas
                            .get(&TopicPartition::new(topic, *p))
                            .is_some_and(|part| part.state().leader_epoch == reg.leader_epoch)
                })
            })
        })
        .await
    }

    /// Wait until `ready` holds for the latest image; `ready` may also look
    /// at local state (partitions, logs), which follows the image
    /// asynchronously and so is polled as well. False when `timeout` passes
    /// first.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        ready: impl Fn(&MetadataImage) -> bool,
    ) -> bool {
        let mut rx = self.controller.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let image = rx.borrow_and_update().clone();
            if ready(&image) {
                return true;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            // Local partitions follow the image asynchronously: poll briefly too.
            let step = left.min(Duration::from_millis(20));
            if let Ok(Err(_)) = tokio::time::timeout(step, rx.changed()).await {
                // The controller is gone: no more images, only local state
                // can still change.
                tokio::time::sleep(step).await;
            }
        }
    }
}
