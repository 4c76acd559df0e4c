//! The checks run after every step: one leader per term, acknowledged
//! writes durable on a majority, published images covering what is
//! applied, and live nodes agreeing on committed entries.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use openraft::async_runtime::WatchReceiver;
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::EntryPayload;
use rivulet_controller::raft::log_store::LogStore;
use rivulet_controller::raft::state_machine::StateMachine;
use rivulet_controller::raft::types::{Command, Entry, NodeId};
use rivulet_controller::MetadataImage;

use crate::sim::{Sim, Write};
use crate::VOTERS;

/// What one node holds durably: its log, purge point and snapshot.
pub(crate) struct DurableView {
    entries: BTreeMap<u64, Entry>,
    pub(crate) purged: Option<u64>,
    snapshot: Option<Arc<MetadataImage>>,
}

impl DurableView {
    pub(crate) fn entry_is(&self, index: u64, cmd: &Command) -> bool {
        matches!(self.entries.get(&index).map(|e| &e.payload), Some(EntryPayload::Normal(c)) if c == cmd)
    }

    /// The write is in the log at its index, or in a snapshot past it.
    fn holds(&self, w: &Write) -> bool {
        if self.entry_is(w.index, &w.cmd) {
            return true;
        }
        self.purged.is_some_and(|p| p >= w.index)
            && self.snapshot.as_ref().is_some_and(|s| {
                s.offset >= w.index && s.topic(&w.topic).is_some_and(|t| t.id == w.topic_id)
            })
    }
}

impl Sim {
    /// A node's durable state: the live store's memory (which holds exactly
    /// what was fsynced) or, for a crashed node, its files reopened.
    pub(crate) async fn durable_view(&self, id: NodeId) -> DurableView {
        let dir = self.dir_of(id);
        let mut log = match self.nodes.get(&id) {
            Some(n) => n.log.clone(),
            None => LogStore::open(&dir).unwrap_or_else(|e| {
                self.fail(format!("crashed node {id}: log does not reopen: {e}"))
            }),
        };
        let entries = log
            .try_get_log_entries(..)
            .await
            .unwrap_or_else(|e| self.fail(format!("node {id}: cannot read its log: {e}")));
        let purged = log
            .get_log_state()
            .await
            .unwrap_or_else(|e| self.fail(format!("node {id}: cannot read its log state: {e}")))
            .last_purged_log_id
            .map(|l| l.index);
        let snapshot = purged.map(|_| read_snapshot(&dir).unwrap_or_else(|e| self.fail(e)));
        DurableView {
            entries: entries.into_iter().map(|e| (e.log_id.index, e)).collect(),
            purged,
            snapshot,
        }
    }

    pub(crate) async fn check_invariants(&mut self) {
        if let Some(c) = self.leaders.lock().conflicts.first() {
            self.fail(format!("two leaders in one term: {c}"));
        }
        let mut views = BTreeMap::new();
        for id in VOTERS {
            views.insert(id, self.durable_view(id).await);
        }
        for w in &self.acked {
            let holders: Vec<NodeId> = VOTERS.into_iter().filter(|id| views[id].holds(w)).collect();
            if holders.len() < 2 {
                self.fail(format!(
                    "acknowledged write {} (index {}) is durable only on {holders:?}",
                    w.topic, w.index
                ));
            }
        }
        // What a node publishes includes everything Raft reports applied
        // (the image is published before `apply` returns).
        for (id, n) in &self.nodes {
            let applied = n.raft.metrics().borrow_watched().last_applied;
            let published = n.sm.image().offset;
            if let Some(applied) = applied.filter(|a| a.index > published) {
                self.fail(format!(
                    "node {id} applied index {} but publishes an image at offset {published}",
                    applied.index
                ));
            }
        }
        // Live nodes agree on every entry both have committed.
        let committed: BTreeMap<NodeId, u64> = self
            .nodes
            .iter()
            .filter_map(|(id, n)| {
                let m = n.raft.metrics().borrow_watched().local_committed;
                m.map(|c| (*id, c.index))
            })
            .collect();
        for (a, ca) in &committed {
            for (b, cb) in committed.range(a + 1..) {
                let limit = (*ca).min(*cb);
                for (idx, ea) in views[a].entries.range(..=limit) {
                    let Some(eb) = views[b].entries.get(idx) else {
                        continue;
                    };
                    let (ja, jb) = (json(ea), json(eb));
                    if ja != jb {
                        self.fail(format!(
                            "committed entry {idx} differs: node {a} has {ja}, node {b} has {jb}"
                        ));
                    }
                }
            }
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("<unserializable: {e}>"))
}

/// The image in a node's `snapshot.json`, read without touching it.
fn read_snapshot(dir: &Path) -> Result<Arc<MetadataImage>, String> {
    StateMachine::open(dir)
        .map(|(sm, _)| sm.image())
        .map_err(|e| format!("snapshot in {} does not load: {e}", dir.display()))
}
