//! ISR changes of the partitions this node leads: each partition's state
//! machine is ticked with the time and proposes a shrink or an expansion
//! (or sends an unanswered one again); `replica_fetcher::maintain_isr`
//! carries them to the controller and reports the answers back here.

use std::sync::Arc;

use tracing::warn;

use super::{Partition, ReplicaManager};
use crate::replication::{AlterPartition, AlterPartitionAnswer};

impl ReplicaManager {
    /// ISR changes this leader should ask the controller for, with
    /// `lag_max_ms` as `replica.lag.time.max.ms`. From here on a change is
    /// pending: the high watermark waits for a joining follower, and no
    /// other change is proposed until it settles.
    pub fn isr_changes(&self, lag_max_ms: u64) -> Vec<(Arc<Partition>, AlterPartition)> {
        let now = self.now_ms();
        let mut out = Vec::new();
        for p in self.all() {
            let mut log = p.log.lock();
            let actions = p.replica.lock().tick(now, lag_max_ms, &*log);
            match p.execute(&mut log, actions, None) {
                Ok(effects) => out.extend(effects.alter.into_iter().map(|r| (p.clone(), r))),
                Err(e) => warn!(partition = %p.tp, error = %e, "ISR check"),
            }
        }
        out
    }

    /// Record the controller's answer to `request` for `p`.
    pub fn isr_change_answered(
        &self,
        p: &Partition,
        request: &AlterPartition,
        answer: AlterPartitionAnswer,
    ) {
        let mut log = p.log.lock();
        let actions = p
            .replica
            .lock()
            .on_alter_partition_answer(request, answer, &*log);
        if let Err(e) = p.execute(&mut log, actions, None) {
            warn!(partition = %p.tp, error = %e, "ISR change answer");
        }
    }
}
