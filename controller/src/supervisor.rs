//! The Raft instance of one voter: opened, watched, and restarted after a
//! full disk stopped it.
//!
//! openraft stops its core for good on any storage error. Most are fatal to
//! the node (a failed fsync, corruption): as Kafka shuts a node down when
//! its metadata log directory fails, [`QuorumHealth::Failed`] tells the
//! broker to shut down cleanly, and in a cluster the other voters carry on.
//!
//! A full disk is different: the write that failed was cut back before
//! anything was reported durable ([`LogStore`] and the snapshot writer say
//! so), exactly as if the process had crashed before it. So the node waits
//! ([`QuorumHealth::WaitingForSpace`]) until the metadata directory has
//! [`RESTART_FREE_BYTES`] free, then reopens the log (recovery as at start)
//! and starts a new Raft instance on it, with the same state machine, so
//! the metadata image and its subscribers carry on. Meanwhile requests to
//! this node's controller fail at once instead of waiting for a quorum that
//! is not there (a Kafka request waiting on it would hold its whole
//! connection), and the broker keeps serving reads from its image.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::errors::Fatal;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::node::QuorumError;
use crate::raft::log_store::LogStore;
use crate::raft::network::{NetworkFactory, Raft, RaftSlot};
use crate::raft::state_machine::StateMachine;

/// Free bytes the metadata directory needs before Raft restarts.
pub const RESTART_FREE_BYTES: u64 = 1 << 20;
/// How often free space is checked while waiting for it.
const SPACE_POLL: Duration = Duration::from_secs(1);
/// How often the wait is logged again.
const WAITING_LOG: Duration = Duration::from_secs(30);

/// Whether this voter's Raft instance is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumHealth {
    Running,
    /// Stopped by a full disk; restarts by itself once there is room.
    WaitingForSpace {
        reason: String,
    },
    /// Stopped for good: the node must shut down.
    Failed {
        reason: String,
    },
}

/// What a Raft instance is started from.
pub(crate) struct RaftFactory {
    pub node_id: u64,
    pub dir: PathBuf,
    pub config: Arc<openraft::Config>,
    pub sm: StateMachine,
    pub network: NetworkFactory,
}

/// Why opening a Raft instance failed, and whether waiting for space helps.
pub(crate) struct OpenError {
    pub error: QuorumError,
    pub out_of_space: bool,
}

impl RaftFactory {
    /// Open the log in `dir` (recovering it) and start Raft on it.
    pub async fn open(&self) -> Result<(Raft, LogStore), OpenError> {
        let log = LogStore::open(&self.dir).map_err(|e| OpenError {
            out_of_space: e.is_out_of_space(),
            error: QuorumError::Storage(e.to_string()),
        })?;
        let raft = Raft::new(
            self.node_id,
            self.config.clone(),
            self.network.clone(),
            log.clone(),
            self.sm.clone(),
        )
        .await
        .map_err(|e| OpenError {
            out_of_space: false,
            error: QuorumError::Raft(e.to_string()),
        })?;
        Ok((raft, log))
    }
}

/// Watch the Raft instance in `slot` (opened on `log`) until `stop`;
/// restart it after a full disk, report any other stop as fatal.
pub(crate) async fn supervise(
    factory: RaftFactory,
    slot: RaftSlot,
    mut log: LogStore,
    health: watch::Sender<QuorumHealth>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let raft = slot.get();
        let Some(reason) = wait_until_stopped(&raft, &mut stop).await else {
            return;
        };
        let out_of_space = log.failure().is_some_and(|f| f.out_of_space)
            || factory.sm.persist_failed_out_of_space();
        if !out_of_space {
            error!(
                reason = %reason,
                "the metadata quorum stopped on a storage error it cannot recover from: \
                 this node must shut down"
            );
            health.send_replace(QuorumHealth::Failed { reason });
            return;
        }
        error!(
            dir = %factory.dir.display(),
            reason = %reason,
            "the metadata log's disk is full: the metadata quorum stopped on this node; \
             it restarts by itself once {RESTART_FREE_BYTES} bytes are free"
        );
        health.send_replace(QuorumHealth::WaitingForSpace {
            reason: reason.clone(),
        });
        // Join what is left of the stopped instance.
        let _ = raft.shutdown().await;
        match restart_when_there_is_room(&factory, &mut stop).await {
            Restart::Started(raft, store) => {
                slot.replace(raft);
                log = store;
                health.send_replace(QuorumHealth::Running);
                info!(dir = %factory.dir.display(), "the metadata quorum restarted: its disk has room again");
            }
            Restart::Stopped => return,
            Restart::Failed(reason) => {
                error!(reason = %reason, "cannot restart the metadata quorum: this node must shut down");
                health.send_replace(QuorumHealth::Failed { reason });
                return;
            }
        }
    }
}

/// Wait until the Raft core stops on an error: its reason. `None` when the
/// node is shutting down (or Raft stopped because it was told to).
async fn wait_until_stopped(raft: &Raft, stop: &mut watch::Receiver<bool>) -> Option<String> {
    let mut metrics = raft.metrics();
    loop {
        if *stop.borrow() {
            return None;
        }
        match &metrics.borrow_watched().running_state {
            Ok(()) => {}
            Err(Fatal::Stopped) => return None,
            Err(e) => return Some(e.to_string()),
        }
        tokio::select! {
            r = metrics.changed() => if r.is_err() {
                return Some("the Raft core is gone".to_string());
            },
            _ = stop.changed() => return None,
        }
    }
}

enum Restart {
    Started(Raft, LogStore),
    Stopped,
    Failed(String),
}

async fn restart_when_there_is_room(
    factory: &RaftFactory,
    stop: &mut watch::Receiver<bool>,
) -> Restart {
    let mut logged = Instant::now();
    let waiting_since = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SPACE_POLL) => {}
            _ = stop.changed() => return Restart::Stopped,
        }
        if *stop.borrow() {
            return Restart::Stopped;
        }
        let free = rivulet_storage::disk::space(&factory.dir).map_or(0, |s| s.available);
        if free >= RESTART_FREE_BYTES {
            match factory.open().await {
                Ok((raft, log)) => return Restart::Started(raft, log),
                Err(e) if e.out_of_space => {
                    warn!(error = %e.error, "restarting the metadata quorum ran out of space again; waiting");
                }
                Err(e) => return Restart::Failed(e.error.to_string()),
            }
        }
        if logged.elapsed() >= WAITING_LOG {
            logged = Instant::now();
            warn!(
                dir = %factory.dir.display(),
                free_bytes = free,
                needed_bytes = RESTART_FREE_BYTES,
                waited_s = waiting_since.elapsed().as_secs(),
                "the metadata quorum is still stopped: waiting for free space"
            );
        }
    }
}
