//! What the broker's components need of the metadata quorum, as a trait:
//! the latest [`MetadataImage`], a subscription to new ones, and requests
//! to the active controller. [`ControllerNode`] (this node's voter, which
//! forwards to the active controller) implements it; a component that takes
//! `Arc<dyn ControllerClient>` can be driven by anything else that does.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use rivulet_controller::{
    ControllerNode, ControllerRequest, ControllerResponse, MetadataImage, QuorumError,
};
use tokio::sync::watch;

pub trait ControllerClient: Send + Sync + std::fmt::Debug {
    /// The latest metadata image this node has applied.
    fn image(&self) -> Arc<MetadataImage>;

    /// Every image from now on (the current one marked seen or not, as
    /// `watch` does).
    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>>;

    /// The node id of the active controller, if this node knows one.
    fn active_controller(&self) -> Option<i32>;

    /// Send `req` to the active controller and wait at most `timeout` for
    /// its answer; an error when there is no quorum to answer.
    fn request(
        &self,
        req: ControllerRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<ControllerResponse, QuorumError>>;
}

impl ControllerClient for ControllerNode {
    fn image(&self) -> Arc<MetadataImage> {
        ControllerNode::image(self)
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        ControllerNode::subscribe(self)
    }

    fn active_controller(&self) -> Option<i32> {
        self.leader().and_then(|id| i32::try_from(id).ok())
    }

    fn request(
        &self,
        req: ControllerRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<ControllerResponse, QuorumError>> {
        Box::pin(ControllerNode::request(self, req, timeout))
    }
}
