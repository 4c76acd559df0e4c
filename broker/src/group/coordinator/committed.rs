//! The groups this node coordinates, and their committed offsets for the
//! consumer-group lag metrics ([`crate::metrics`]).

use std::sync::Arc;
use std::time::Duration;

use super::{GroupCoordinator, GroupEntry};

/// One committed offset: group, topic, partition, offset.
pub type Committed = (String, String, i32, i64);

impl GroupCoordinator {
    /// The loaded groups whose `__consumer_offsets` partition this node
    /// still leads, by name (a snapshot: no lock is held).
    pub(super) fn led_entries(&self) -> Vec<(String, Arc<GroupEntry>)> {
        let entries: Vec<(String, Arc<GroupEntry>)> = self
            .groups
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        entries
            .into_iter()
            .filter(|(_, e)| self.leads(e.partition))
            .collect()
    }

    /// Every committed offset of the loaded groups whose `__consumer_offsets`
    /// partition this node still leads. A group busy for longer than a
    /// second (its lock held) is left out of this answer.
    pub async fn committed_offsets(&self) -> Vec<Committed> {
        let mut out = Vec::new();
        for (group, entry) in self.led_entries() {
            let Ok(inner) = tokio::time::timeout(Duration::from_secs(1), entry.inner.lock()).await
            else {
                continue;
            };
            for ((topic, partition), c) in inner.offsets.all_committed() {
                out.push((group.clone(), topic.clone(), *partition, c.offset));
            }
        }
        out.sort();
        out
    }
}
