//! Producer ids handed out by this node: blocks reserved through the
//! controller (Kafka's `ProducerIdManager`), shared by InitProducerId for
//! idempotent producers and the transaction coordinator.

use rivulet_controller::{ControllerRequest, ControllerResponse};

use crate::local_node::LocalNode;

#[derive(Debug, Default)]
pub struct ProducerIds {
    /// `[next, end)` of the block in hand.
    block: tokio::sync::Mutex<(i64, i64)>,
}

impl ProducerIds {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh producer id, reserving a new block when this one is used up.
    pub async fn next(&self, node: &LocalNode) -> Result<i64, ControllerResponse> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            match node
                .controller_request(ControllerRequest::AllocateProducerIds {
                    broker_id: node.node_id(),
                })
                .await
            {
                ControllerResponse::ProducerIds { first, count } => *block = (first, first + count),
                other => return Err(other),
            }
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}
