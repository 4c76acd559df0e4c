//! Brokers this node has just seen die, before the controller fences them.
//!
//! When a partition's leader process dies, a client's next Metadata request
//! (librdkafka sends one at once) would still name it leader: the
//! controller has not fenced it yet. The client then waits for a periodic
//! re-query (about a second) before it looks again. The followers of that
//! leader know better at once: their replica fetchers' connections break
//! and the reconnect is *refused* — nothing listens on the leader's port
//! any more (a busy broker never refuses: the kernel accepts into the
//! backlog). Metadata answered here names no leader (LEADER_NOT_AVAILABLE)
//! for partitions led by such a broker, as Kafka does for a leader that is
//! not alive, so the client keeps querying quickly and switches as soon as
//! the controller has moved the leadership.
//!
//! A suspicion is tied to the broker's registration (incarnation): a
//! restarted broker is not suspect, nor one the fetcher reached again, nor
//! one suspected longer ago than [`SUSPECT_FOR`] (by then its session has
//! expired and it is fenced anyway).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rivulet_controller::MetadataImage;
use uuid::Uuid;

/// How long a refusal counts: more than the default session timeout.
pub const SUSPECT_FOR: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
pub struct SuspectBrokers {
    /// Broker id → its incarnation when its port refused, and when.
    refused: Mutex<HashMap<i32, (Uuid, Instant)>>,
}

impl SuspectBrokers {
    /// A connection to broker `id`'s Kafka port was refused; `image` says
    /// which incarnation that was.
    pub fn refused(&self, id: i32, image: &MetadataImage) {
        if let Some(reg) = image.brokers.get(&id) {
            self.refused
                .lock()
                .entry(id)
                .or_insert((reg.incarnation, Instant::now()));
        }
    }

    /// A connection to broker `id` succeeded.
    pub fn connected(&self, id: i32) {
        self.refused.lock().remove(&id);
    }

    /// Whether broker `id`, as registered in `image`, refused a connection
    /// lately and was not reached since.
    pub fn is_suspect(&self, image: &MetadataImage, id: i32) -> bool {
        let Some(reg) = image.brokers.get(&id) else {
            return false;
        };
        self.refused
            .lock()
            .get(&id)
            .is_some_and(|(inc, at)| *inc == reg.incarnation && at.elapsed() < SUSPECT_FOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_controller::MetadataRecord;

    fn image_with(id: i32, incarnation: Uuid) -> MetadataImage {
        let mut image = MetadataImage::default();
        image
            .apply(
                1,
                &MetadataRecord::RegisterBroker {
                    node_id: id,
                    incarnation,
                    listeners: Vec::new(),
                    rack: None,
                    max_partitions: None,
                },
            )
            .unwrap();
        image
    }

    #[test]
    fn a_refused_broker_is_suspect_until_reached_or_restarted() {
        let s = SuspectBrokers::default();
        let first = image_with(2, Uuid::new_v4());
        assert!(!s.is_suspect(&first, 2));
        s.refused(2, &first);
        assert!(s.is_suspect(&first, 2));
        assert!(!s.is_suspect(&first, 3), "only the refused one");
        // A new incarnation (a restart) is not suspect.
        let restarted = image_with(2, Uuid::new_v4());
        assert!(!s.is_suspect(&restarted, 2));
        s.connected(2);
        assert!(!s.is_suspect(&first, 2));
    }

    #[test]
    fn an_unregistered_broker_is_never_suspect() {
        let s = SuspectBrokers::default();
        let image = MetadataImage::default();
        s.refused(7, &image);
        assert!(!s.is_suspect(&image, 7));
    }
}
