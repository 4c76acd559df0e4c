//! Which node led in which term, as every node's metrics showed it over
//! the whole run: the record the "at most one leader per term" check reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use openraft::async_runtime::WatchReceiver;
use openraft::ServerState;
use parking_lot::Mutex;
use rivulet_controller::raft::network::Raft;
use rivulet_controller::raft::types::NodeId;
use tokio::task::JoinHandle;

/// Every (term, leader) any node's metrics showed, over the whole run.
#[derive(Default)]
pub(crate) struct Leaders {
    /// term -> (leader, the node that first showed it)
    pub(crate) by_term: BTreeMap<u64, (NodeId, NodeId)>,
    pub(crate) conflicts: Vec<String>,
}

impl Leaders {
    fn observe(&mut self, term: u64, leader: NodeId, witness: NodeId) {
        match self.by_term.get(&term) {
            None => {
                self.by_term.insert(term, (leader, witness));
            }
            Some((first, first_witness)) if *first != leader => {
                self.conflicts.push(format!(
                    "term {term}: node {first_witness} saw leader {first}, node {witness} saw leader {leader}"
                ));
            }
            Some(_) => {}
        }
    }
}

/// Record every leader a node's metrics show: itself while it leads, and
/// the leader of every vote it holds as committed (granted by a quorum).
pub(crate) fn watch_leaders(raft: &Raft, leaders: Arc<Mutex<Leaders>>) -> JoinHandle<()> {
    let mut rx = raft.metrics();
    tokio::spawn(async move {
        loop {
            {
                let m = rx.borrow_watched();
                let mut l = leaders.lock();
                if m.vote.committed {
                    l.observe(m.vote.leader_id.term, m.vote.leader_id.voted_for, m.id);
                }
                if m.state == ServerState::Leader {
                    l.observe(m.current_term, m.id, m.id);
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
}
