//! The end of a run: heal and restart everything, wait until every node
//! has applied the same log, and check that the images are equal, hold every
//! acknowledged write, and survive a restart of all nodes from disk.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::ServerState;
use rivulet_controller::raft::types::NodeId;
use rivulet_controller::MetadataImage;
use tokio::time::{sleep, Instant};

use crate::invariants::DurableView;
use crate::sim::Sim;
use crate::VOTERS;

impl Sim {
    /// Wait until every live node has applied its whole log and all logs
    /// end at the same index; then each node's published image must be at
    /// that index. Returns the index.
    async fn quiesce(&mut self, phase: &str) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        let settled = loop {
            let mut ends = BTreeSet::new();
            // A leader whose own term's first entry (its blank) is applied.
            let mut settled_leader = false;
            for n in self.nodes.values() {
                let m = n.raft.metrics().borrow_watched().clone();
                ends.insert((m.last_log_index, m.last_applied.map(|l| l.index)));
                settled_leader |= m.state == ServerState::Leader
                    && m.last_applied.map(|l| l.leader_id.term) == Some(m.current_term);
            }
            match ends.first() {
                Some((Some(log), Some(applied)))
                    if ends.len() == 1 && log == applied && settled_leader =>
                {
                    break *applied;
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                self.fail(format!(
                    "{phase}: nodes did not settle on one applied log within 60 s: (last log, applied) = {ends:?}"
                ));
            }
            sleep(Duration::from_millis(20)).await;
        };
        for (id, n) in &self.nodes {
            let published = n.sm.image().offset;
            if published != settled {
                self.fail(format!(
                    "{phase}: node {id} applied the log up to index {settled} but its published image is at offset {published}"
                ));
            }
        }
        settled
    }

    /// Heal, restart the crashed node, commit a barrier write, wait until
    /// every node has applied the same log, and compare the images.
    async fn converge(&mut self, phase: &str) -> Arc<MetadataImage> {
        self.router.heal();
        self.isolated = None;
        self.router.set_drop_percent(0);
        if let Some(id) = self.down.take() {
            self.start_node(id).await;
        }
        // Whatever the last entry is (often a new leader's blank entry),
        // every node must publish an image of everything it applied.
        self.quiesce(phase).await;
        let barrier = self.next_write();
        let Some((by, index)) = self.propose(&barrier.cmd, Duration::from_secs(60)).await else {
            self.fail(format!(
                "{phase}: barrier write not acknowledged within 60 s after healing"
            ));
        };
        self.note(format!(
            "{phase}: barrier {} acknowledged at {index}",
            barrier.topic
        ));
        self.acknowledge(barrier, by, index);
        let applied = self.quiesce(phase).await;
        if applied < index {
            self.fail(format!(
                "{phase}: nodes settled at {applied}, before the barrier at {index}"
            ));
        }

        let images: BTreeMap<NodeId, Arc<MetadataImage>> = self
            .nodes
            .iter()
            .map(|(id, n)| (*id, n.sm.image()))
            .collect();
        let first = images[&VOTERS[0]].clone();
        for (id, image) in &images {
            if **image != *first {
                self.fail(format!(
                    "{phase}: images differ: node {} {} vs node {id} {}",
                    VOTERS[0],
                    summary(&first),
                    summary(image)
                ));
            }
        }
        let views: Vec<(NodeId, DurableView)> = {
            let mut v = Vec::new();
            for id in VOTERS {
                v.push((id, self.durable_view(id).await));
            }
            v
        };
        for w in &self.acked {
            if first.topic(&w.topic).map(|t| t.id) != Some(w.topic_id) {
                self.fail(format!(
                    "{phase}: acknowledged write {} is missing from the images",
                    w.topic
                ));
            }
            for (id, view) in &views {
                let in_place = view.entry_is(w.index, &w.cmd);
                let purged = view.purged.is_some_and(|p| p >= w.index);
                if !in_place && !purged {
                    self.fail(format!(
                        "{phase}: node {id} has another entry at index {} where {} was acknowledged",
                        w.index, w.topic
                    ));
                }
            }
        }
        self.check_invariants().await;
        first
    }

    pub(crate) async fn finish(mut self) -> String {
        let before = self.converge("after healing").await;
        // Every node down at once, then back from its files alone.
        for id in VOTERS {
            self.stop_node(id).await;
        }
        for id in VOTERS {
            self.start_node(id).await;
        }
        self.note("restarted all nodes from disk".into());
        let after = self.converge("after restarting all").await;
        for (id, topic) in &before.topics {
            if after.topics.get(id) != Some(topic) {
                self.fail(format!(
                    "topic {} changed across a full restart",
                    topic.name
                ));
            }
        }
        for id in VOTERS {
            self.stop_node(id).await;
        }
        let leaders = self.leaders.lock().by_term.len();
        format!(
            "{:?}, {leaders} terms with a leader, {:.0} s virtual",
            self.stats,
            self.start.elapsed().as_secs_f64()
        )
    }
}

fn summary(image: &MetadataImage) -> String {
    format!(
        "(offset {}, {} topics, next producer id {}, broker configs {:?})",
        image.offset,
        image.topics.len(),
        image.next_producer_id,
        image.broker_configs
    )
}
