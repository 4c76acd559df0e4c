//! This node as the broker's components see it: its id, the partitions it
//! hosts ([`ReplicaManager`]) and the metadata quorum
//! ([`ControllerClient`]). The group coordinator, the replica fetchers and
//! the request handlers (through [`crate::context::BrokerContext`]) take
//! this, not the whole broker. It also knows how to reach the other
//! brokers ([`InterBroker`]: the inter-broker listener's name and a plain
//! or TLS connector).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError as E;
use rivulet_storage::log_manager::SharedLog;
use tracing::info;

use rivulet_controller::{ControllerRequest, ControllerResponse, MetadataImage};
use rivulet_protocol::tls::Connector;
use rivulet_storage::TopicPartition;

use crate::controller_client::ControllerClient;
use crate::replica_manager::ReplicaManager;
use crate::suspects::SuspectBrokers;

/// How long admin requests wait for the controller.
pub const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct LocalNode {
    pub replicas: Arc<ReplicaManager>,
    pub controller: Arc<dyn ControllerClient>,
    pub inter_broker: InterBroker,
    /// Brokers whose port refused this node's replica fetchers lately.
    pub suspects: Arc<SuspectBrokers>,
}

/// How this node reaches other brokers (replica fetchers, transaction
/// links): `inter.broker.listener.name` and a connector for its protocol.
#[derive(Debug, Clone, Default)]
pub struct InterBroker {
    /// The listener name to dial; `None`: each broker's first listener.
    pub listener: Option<String>,
    pub connector: Connector,
}

impl LocalNode {
    pub fn new(replicas: Arc<ReplicaManager>, controller: Arc<dyn ControllerClient>) -> Self {
        LocalNode {
            replicas,
            controller,
            inter_broker: InterBroker::default(),
            suspects: Arc::default(),
        }
    }

    pub fn with_inter_broker(mut self, inter_broker: InterBroker) -> Self {
        self.inter_broker = inter_broker;
        self
    }

    /// Broker `id`'s `host:port` on the inter-broker listener, from the
    /// latest image.
    pub fn broker_addr(&self, id: i32) -> Option<String> {
        let image = self.image();
        let reg = image.brokers.get(&id)?;
        let l = match &self.inter_broker.listener {
            Some(name) => reg.listener(name)?,
            None => reg.listeners.first()?,
        };
        Some(format!("{}:{}", l.host, l.port))
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
    /// leads in it is loaded locally or failed to load (see
    /// [`ReplicaManager::hosting_error`]: a client is told, not kept
    /// waiting for the timeout).
    pub async fn wait_for_topic(&self, topic: &str, timeout: Duration) -> bool {
        let me = self.node_id();
        self.wait_until(timeout, |image| {
            image.topic(topic).is_some_and(|t| {
                t.partitions.iter().all(|(p, reg)| {
                    let tp = TopicPartition::new(topic, *p);
                    reg.leader != me
                        || self
                            .replicas
                            .get(&tp)
                            .is_some_and(|part| part.state().leader_epoch == reg.leader_epoch)
                        || self.replicas.hosting_error(&tp).is_some()
                })
            })
        })
        .await
    }

    /// The first partition of `topic` this node failed to host, with why.
    pub fn topic_hosting_error(&self, topic: &str) -> Option<(i32, String)> {
        let image = self.image();
        let t = image.topic(topic)?;
        t.partitions.keys().find_map(|p| {
            self.replicas
                .hosting_error(&TopicPartition::new(topic, *p))
                .map(|e| (*p, e))
        })
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

/// How long a coordinator waits for its internal topic to come up.
const INTERNAL_TOPIC_WAIT: Duration = Duration::from_secs(10);

impl LocalNode {
    /// Create an internal topic (`__consumer_offsets`,
    /// `__transaction_state`) unless it exists, with the replication factor
    /// capped by the live brokers, and wait until this node sees it.
    /// COORDINATOR_NOT_AVAILABLE if the controller refuses.
    pub async fn ensure_internal_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<(), i16> {
        if self.image().topic(name).is_some() {
            return Ok(());
        }
        let live = self.image().live_brokers().count().max(1) as i32;
        let resp = self
            .controller_request(ControllerRequest::CreateTopic {
                name: name.to_string(),
                partitions,
                replication_factor: replication_factor.min(live).max(1),
                configs,
                validate_only: false,
            })
            .await;
        match resp {
            ControllerResponse::Ok { .. } => info!("created {name}"),
            ControllerResponse::Error(
                rivulet_controller::logic::ControllerError::TopicAlreadyExists(_),
            ) => {}
            _ => return Err(E::CoordinatorNotAvailable.code()),
        }
        self.wait_for_topic(name, INTERNAL_TOPIC_WAIT).await;
        Ok(())
    }
}

/// Every whole batch of `log` from its start to its log end, in chunks of
/// about `chunk_bytes` (a coordinator replaying its partition; blocking:
/// run it on the blocking pool). To the log end, not the high watermark,
/// as Kafka's coordinators: a new leader's high watermark may still lag
/// what the old one acknowledged (followers learn it one fetch late),
/// while everything in its log stays in this epoch.
pub fn read_to_log_end(log: &SharedLog, chunk_bytes: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let (mut next, end) = {
        let l = log.lock();
        (l.log_start_offset(), l.log_end_offset())
    };
    while next < end {
        let plan = log.lock().plan_read(next, chunk_bytes, Some(end), true);
        let Ok(Some(plan)) = plan else { break };
        let Ok(bytes) = plan.execute() else { break };
        let mut last = next;
        for item in rivulet_protocol::record_batch::BatchIter::new(&bytes) {
            match item {
                Ok((_, h)) => last = h.next_offset(),
                Err(_) => break,
            }
        }
        out.push(bytes);
        if last <= next {
            break;
        }
        next = last;
    }
    out
}
