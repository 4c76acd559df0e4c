//! The metadata state machine: committed [`Command`]s applied, in log order,
//! to the [`MetadataImage`], which is published on a watch channel so the
//! broker can react to every change.
//!
//! Snapshots are the serialized image with the Raft position it reflects,
//! persisted atomically as `snapshot.json` next to the log, so a restarted
//! node starts from its last snapshot and replays only the log after it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::warn;

use super::types::{CommandResponse, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use crate::image::MetadataImage;

pub const SNAPSHOT_FILE: &str = "snapshot.json";

/// What a snapshot holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SnapshotState {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    image: MetadataImage,
}

#[derive(Debug, Default)]
struct Inner {
    state: SnapshotState,
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
}

/// Cheap to clone: all clones share one state.
#[derive(Debug, Clone)]
pub struct StateMachine {
    dir: PathBuf,
    inner: Arc<Mutex<Inner>>,
    image_tx: Arc<watch::Sender<Arc<MetadataImage>>>,
    /// The last snapshot write failed because the disk was full.
    persist_out_of_space: Arc<AtomicBool>,
}

impl StateMachine {
    /// Open the state machine in `dir`, starting from `snapshot.json` if one
    /// exists. Returns it and a receiver of image updates.
    pub fn open(dir: &Path) -> io::Result<(Self, watch::Receiver<Arc<MetadataImage>>)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(SNAPSHOT_FILE);
        let mut inner = Inner::default();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let state: SnapshotState = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("corrupt metadata snapshot {}: {e}", path.display()),
                    )
                })?;
                let meta = SnapshotMeta {
                    last_log_id: state.last_applied,
                    last_membership: state.membership.clone(),
                };
                inner.snapshot = Some((meta, bytes));
                inner.state = state;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let (tx, rx) = watch::channel(Arc::new(inner.state.image.clone()));
        Ok((
            StateMachine {
                dir: dir.to_path_buf(),
                inner: Arc::new(Mutex::new(inner)),
                image_tx: Arc::new(tx),
                persist_out_of_space: Arc::new(AtomicBool::new(false)),
            },
            rx,
        ))
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image_tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image_tx.subscribe()
    }

    fn publish(&self, image: MetadataImage) {
        self.image_tx.send_replace(Arc::new(image));
    }

    /// Whether the last snapshot write failed because the disk was full
    /// (openraft stops on it; the node restarts Raft once there is room).
    pub fn persist_failed_out_of_space(&self) -> bool {
        self.persist_out_of_space.load(Ordering::Acquire)
    }

    async fn persist(&self, bytes: Vec<u8>) -> io::Result<()> {
        let path = self.dir.join(SNAPSHOT_FILE);
        let out_of_space = self.persist_out_of_space.clone();
        tokio::task::spawn_blocking(move || {
            let written = rivulet_storage::checkpoint::write_atomically(&path, &bytes);
            let full = matches!(&written, Err(rivulet_storage::StorageError::Io { source, .. })
                if rivulet_storage::disk::is_out_of_space(source));
            out_of_space.store(full, Ordering::Release);
            written.map_err(io::Error::other)
        })
        .await
        .map_err(io::Error::other)?
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (meta, bytes) = {
            let g = self.inner.lock();
            let bytes = serde_json::to_vec(&g.state).map_err(io::Error::other)?;
            let meta = SnapshotMeta {
                last_log_id: g.state.last_applied,
                last_membership: g.state.membership.clone(),
            };
            (meta, bytes)
        };
        self.persist(bytes.clone()).await?;
        self.inner.lock().snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: bytes,
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let g = self.inner.lock();
        Ok((g.state.last_applied, g.state.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut changed = false;
        while let Some((entry, responder)) = entries.try_next().await? {
            let index = entry.log_id.index;
            {
                let mut g = self.inner.lock();
                g.state.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(cmd) => {
                        for record in &cmd.records {
                            if let Err(e) = g.state.image.apply(index, record) {
                                // Records are validated before they are
                                // written; one that does not fit is skipped
                                // identically on every node.
                                warn!(index, error = %e, ?record, "skipping a metadata record that does not apply");
                            }
                        }
                    }
                    EntryPayload::Membership(m) => {
                        g.state.membership = StoredMembership::new(Some(entry.log_id), m);
                    }
                }
                g.state.image.offset = index;
                changed = true;
            }
            if let Some(r) = responder {
                // The proposer must see its change in the image when it
                // hears back, so publish before responding.
                if changed {
                    let image = self.inner.lock().state.image.clone();
                    self.publish(image);
                    changed = false;
                }
                r.send(CommandResponse { offset: index });
            }
        }
        if changed {
            let image = self.inner.lock().state.image.clone();
            self.publish(image);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let state: SnapshotState = serde_json::from_slice(&snapshot).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("corrupt snapshot from leader: {e}"),
            )
        })?;
        self.persist(snapshot.clone()).await?;
        let image = state.image.clone();
        {
            let mut g = self.inner.lock();
            g.state = state;
            g.snapshot = Some((meta.clone(), snapshot));
        }
        self.publish(image);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let g = self.inner.lock();
        Ok(g.snapshot
            .clone()
            .map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}
