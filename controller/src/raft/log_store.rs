//! The Raft log, vote and purge point of the metadata quorum, durable under
//! `<data_dir>/__cluster_metadata-0/` (KRaft's metadata log partition).
//!
//! Files in the directory:
//! - `raft.log`: append-only frames
//!   `[u32 BE payload length][u32 BE CRC-32 (IEEE, crc32fast) of payload][payload]`,
//!   the payload being the JSON of one openraft [`Entry`]. Appends are
//!   fsynced (`sync_data`) before openraft is told they are durable.
//! - `vote.json`, `purged.json`: the vote and the last purged log id, each
//!   replaced atomically and fsynced (temp file, fsync, rename, fsync dir).
//! - `committed.json`: the last committed log id, renamed into place but not
//!   fsynced (see `save_committed` below for why).
//!
//! Invariants:
//! - After [`LogStore::open`], memory holds exactly the frames of `raft.log`;
//!   reads are served from memory (the metadata log is small and snapshots
//!   bound it).
//! - Indexes are consecutive: an entry follows the last entry, or the last
//!   purged log id when the log is empty. `append` refuses anything else, so
//!   the store never writes a file it would refuse to open.
//! - Every file mutation holds the `writer` lock; memory is behind the `mem`
//!   lock. Lock order is `writer` then `mem`, and no guard is held across an
//!   `.await`.
//! - After any failed write (but of `committed.json`, which is only a hint)
//!   the store goes offline and refuses further writes: after a failed
//!   fsync the state of the page cache is unknown (PostgreSQL's
//!   "fsyncgate"), so nothing later may be reported durable. openraft
//!   treats the error as fatal; a restart re-runs recovery.
//!   [`LogStore::failure`] tells why, and whether the disk was full: the
//!   controller node then restarts its Raft instance on a freshly opened
//!   store once there is room again (see [`crate::node`]).
//!
//! Recovery of `raft.log` on open: a bad frame (incomplete, implausible
//! length, CRC mismatch) is a *torn tail* — the remains of an append that
//! never completed its fsync, so was never acknowledged — when nothing but
//! zero bytes follows it and no valid frame starts anywhere after it; it is
//! truncated away with a warning. Any other bad frame is corruption of data
//! that was acknowledged: [`LogStoreError::Corrupt`], and the file is left
//! untouched for an operator.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use parking_lot::Mutex;
use rivulet_storage::checkpoint::{sync_dir, write_atomically};
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use super::log_recovery::recover_log;
use super::types::{Entry, LogId, TypeConfig, Vote};

/// The Raft log: framed entries, appended.
pub const LOG_FILE: &str = "raft.log";
/// The last vote (term and candidate), fsynced before it is acted on.
pub const VOTE_FILE: &str = "vote.json";
/// The last purged log id.
pub const PURGED_FILE: &str = "purged.json";
/// The last committed log id (an optimisation; may lag after a crash).
pub const COMMITTED_FILE: &str = "committed.json";

/// Largest serialized entry accepted by `append` and believed on recovery.
/// An entry must also fit in one controller RPC frame
/// (`codec::MAX_FRAME_BYTES`, 256 MiB) with everything around it.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024 * 1024;

pub(crate) const FRAME_HEADER_BYTES: usize = 8;

#[derive(Debug, Error)]
pub enum LogStoreError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path} is corrupt: cannot decode its JSON: {source}")]
    Decode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("log entry {index} is {size} bytes, over the limit of {limit} bytes")]
    EntryTooLarge {
        index: u64,
        size: usize,
        limit: usize,
    },
    #[error("log entry {index} does not follow the log: expected index {expected}")]
    NonConsecutive { index: u64, expected: u64 },
    #[error("the Raft log in {dir} is offline after an earlier write failure: {reason}")]
    Offline { dir: PathBuf, reason: String },
    #[error(transparent)]
    Storage(#[from] rivulet_storage::StorageError),
    #[error("blocking Raft log I/O task failed: {0}")]
    Task(String),
}

impl LogStoreError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        LogStoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn kind(&self) -> io::ErrorKind {
        match self {
            LogStoreError::Io { source, .. } => source.kind(),
            LogStoreError::Corrupt { .. } | LogStoreError::Decode { .. } => {
                io::ErrorKind::InvalidData
            }
            LogStoreError::EntryTooLarge { .. } | LogStoreError::NonConsecutive { .. } => {
                io::ErrorKind::InvalidInput
            }
            _ => io::ErrorKind::Other,
        }
    }

    /// Whether a full filesystem (or quota) caused the error.
    pub(crate) fn is_out_of_space(&self) -> bool {
        match self {
            LogStoreError::Io { source, .. } => rivulet_storage::disk::is_out_of_space(source),
            LogStoreError::Storage(rivulet_storage::StorageError::Io { source, .. }) => {
                rivulet_storage::disk::is_out_of_space(source)
            }
            _ => false,
        }
    }

    /// Whether the error may have left a file in an unknown state (as
    /// opposed to a request refused before anything was written).
    fn is_write_failure(&self) -> bool {
        matches!(
            self,
            LogStoreError::Io { .. } | LogStoreError::Storage(_) | LogStoreError::Task(_)
        )
    }
}

impl From<LogStoreError> for io::Error {
    fn from(e: LogStoreError) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

/// openraft's log storage for the metadata quorum. Cheap to clone: clones
/// share the same files and memory, so a clone is also the log reader.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

struct Shared {
    dir: PathBuf,
    log_path: PathBuf,
    vote_path: PathBuf,
    purged_path: PathBuf,
    committed_path: PathBuf,
    mem: Mutex<MemState>,
    writer: Mutex<Writer>,
}

#[derive(Default)]
struct MemState {
    entries: BTreeMap<u64, Entry>,
    vote: Option<Vote>,
    last_purged: Option<LogId>,
    committed: Option<LogId>,
}

impl MemState {
    fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .values()
            .next_back()
            .map(|e| e.log_id())
            .or(self.last_purged)
    }

    /// The index the next appended entry must have; `None` while the log
    /// has never held an entry (openraft starts wherever it likes).
    fn next_index(&self) -> Option<u64> {
        self.last_log_id().map(|l| l.index.saturating_add(1))
    }
}

/// The append handle of `raft.log`.
struct Writer {
    file: File,
    /// Bytes of `raft.log` known to hold complete frames.
    len: u64,
    /// Why the store refuses writes, after a failed one.
    offline: Option<StoreFailure>,
    /// `committed.json` could not be written last time (warned once).
    committed_failing: bool,
}

/// Why a store went offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFailure {
    /// The operation and its error.
    pub reason: String,
    /// The filesystem (or quota) was full: the write failed before anything
    /// was reported durable and the file was cut back, so reopening the
    /// store once there is room is safe.
    pub out_of_space: bool,
}

impl LogStore {
    /// Open (creating if missing) the metadata log in `dir`, recovering
    /// `raft.log` as described in the module docs.
    ///
    /// Errors: [`LogStoreError::Corrupt`] (file untouched) when acknowledged
    /// data is damaged, [`LogStoreError::Decode`] when `vote.json` or
    /// `purged.json` does not parse, [`LogStoreError::Io`] otherwise.
    pub fn open(dir: &Path) -> Result<LogStore, LogStoreError> {
        create_dir(dir)?;
        let log_path = dir.join(LOG_FILE);
        let vote_path = dir.join(VOTE_FILE);
        let purged_path = dir.join(PURGED_FILE);
        let committed_path = dir.join(COMMITTED_FILE);

        let vote: Option<Vote> = read_json(&vote_path)?;
        let last_purged: Option<LogId> = read_json(&purged_path)?;
        let recovered = recover_log(&log_path, last_purged.as_ref())?;

        if let Some(valid_len) = recovered.truncate_to {
            let f = OpenOptions::new()
                .write(true)
                .open(&log_path)
                .map_err(|e| LogStoreError::io(&log_path, e))?;
            f.set_len(valid_len)
                .and_then(|()| f.sync_all())
                .map_err(|e| LogStoreError::io(&log_path, e))?;
        }
        let mut len = recovered.valid_len;
        if recovered.dropped_purged {
            // A crash between writing purged.json and rewriting raft.log.
            let bytes = encode_frames(recovered.entries.values())?;
            write_atomically(&log_path, &bytes)?;
            len = bytes.len() as u64;
        }

        let existed = log_path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| LogStoreError::io(&log_path, e))?;
        if !existed {
            sync_dir(dir)?;
        }

        let mut mem = MemState {
            entries: recovered.entries,
            vote,
            last_purged,
            committed: None,
        };
        mem.committed = read_committed(&committed_path, mem.last_log_id());

        Ok(LogStore {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                log_path,
                vote_path,
                purged_path,
                committed_path,
                mem: Mutex::new(mem),
                writer: Mutex::new(Writer {
                    file,
                    len,
                    offline: None,
                    committed_failing: false,
                }),
            }),
        })
    }

    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Why the store went offline, if it did.
    pub fn failure(&self) -> Option<StoreFailure> {
        self.shared.writer.lock().offline.clone()
    }
}

/// Run blocking file I/O off the async workers.
///
/// `spawn_blocking` rather than `block_in_place`: `block_in_place` panics on
/// a current-thread runtime (tests, tools) and stalls every other task queued
/// on the worker it hijacks, while the hop to the blocking pool costs
/// microseconds next to an fsync's milliseconds. Writes stay in order: openraft
/// calls the `&mut self` methods one at a time and each awaits its task, and
/// the `writer` lock serialises clones.
async fn run_blocking<T, F>(f: F) -> Result<T, LogStoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, LogStoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LogStoreError::Task(e.to_string()))?
}

impl Shared {
    /// Run a file mutation under the writer lock; a failed write takes the
    /// store offline.
    fn mutate<T>(
        &self,
        op: &str,
        f: impl FnOnce(&mut Writer) -> Result<T, LogStoreError>,
    ) -> Result<T, LogStoreError> {
        let mut w = self.writer.lock();
        if let Some(failure) = &w.offline {
            return Err(LogStoreError::Offline {
                dir: self.dir.clone(),
                reason: failure.reason.clone(),
            });
        }
        let result = f(&mut w);
        if let Err(e) = &result {
            if e.is_write_failure() {
                tracing::error!(dir = %self.dir.display(), "Raft log {op} failed, going offline: {e}");
                w.offline = Some(StoreFailure {
                    reason: format!("{op}: {e}"),
                    out_of_space: e.is_out_of_space(),
                });
            }
        }
        result
    }

    fn append(&self, entries: Vec<Entry>) -> Result<(), LogStoreError> {
        self.mutate("append", |w| {
            let mut next = self.mem.lock().next_index();
            let mut buf = Vec::new();
            for e in &entries {
                let index = e.index();
                if let Some(expected) = next {
                    if index != expected {
                        return Err(LogStoreError::NonConsecutive { index, expected });
                    }
                }
                next = Some(index.saturating_add(1));
                encode_frame(e, &mut buf)?;
            }
            let result = w.file.write_all(&buf).and_then(|()| w.file.sync_data());
            if let Err(e) = result {
                // Cut any partial frame so that a restart sees a clean tail.
                // The store goes offline either way (see `mutate`).
                if let Err(cut) = w.file.set_len(w.len) {
                    tracing::error!(path = %self.log_path.display(), "cannot cut a failed append: {cut}");
                }
                return Err(LogStoreError::io(&self.log_path, e));
            }
            w.len = w.len.saturating_add(buf.len() as u64);
            let mut mem = self.mem.lock();
            for e in entries {
                mem.entries.insert(e.index(), e);
            }
            Ok(())
        })
    }

    fn save_vote(&self, vote: Vote) -> Result<(), LogStoreError> {
        self.mutate("save_vote", |_| {
            write_atomically(&self.vote_path, &to_json("vote", &vote)?)?;
            self.mem.lock().vote = Some(vote);
            Ok(())
        })
    }

    /// A failure to write `committed.json` is not a failure of the store:
    /// the file is a hint that may lag anyway (see the trait method), so it
    /// is logged (once until a write succeeds again) and left behind. A
    /// full disk must not stop the quorum for it.
    fn save_committed(&self, committed: Option<LogId>) -> Result<(), LogStoreError> {
        self.mutate("save_committed", |w| {
            let bytes = to_json("committed log id", &committed)?;
            let mut tmp = self.committed_path.clone().into_os_string();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            let written = fs::write(&tmp, &bytes)
                .map_err(|e| LogStoreError::io(&tmp, e))
                .and_then(|()| {
                    fs::rename(&tmp, &self.committed_path)
                        .map_err(|e| LogStoreError::io(&self.committed_path, e))
                });
            match written {
                Ok(()) => w.committed_failing = false,
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    if !std::mem::replace(&mut w.committed_failing, true) {
                        tracing::warn!(
                            "cannot save the committed log id (a hint; carrying on): {e}"
                        );
                    }
                }
            }
            self.mem.lock().committed = committed;
            Ok(())
        })
    }

    fn truncate_after(&self, last: Option<LogId>) -> Result<(), LogStoreError> {
        self.mutate("truncate_after", |w| {
            let from = match last {
                None => 0,
                Some(l) => match l.index.checked_add(1) {
                    Some(from) => from,
                    None => return Ok(()),
                },
            };
            let bytes = {
                let mut mem = self.mem.lock();
                if mem.entries.range(from..).next().is_none() {
                    return Ok(());
                }
                let bytes = encode_frames(mem.entries.range(..from).map(|(_, e)| e))?;
                mem.entries.split_off(&from);
                bytes
            };
            self.rewrite_log(w, &bytes)
        })
    }

    fn purge(&self, log_id: LogId) -> Result<(), LogStoreError> {
        self.mutate("purge", |w| {
            let keep_from = log_id.index.saturating_add(1);
            let bytes = {
                let mem = self.mem.lock();
                if mem.last_purged.is_some_and(|p| p.index >= log_id.index) {
                    return Ok(());
                }
                let purges_entries = mem.entries.range(..keep_from).next().is_some();
                if purges_entries {
                    Some(encode_frames(
                        mem.entries.range(keep_from..).map(|(_, e)| e),
                    )?)
                } else {
                    None
                }
            };
            // purged.json first: if we crash before the rewrite, recovery
            // drops the purged entries (and rewrites the log) itself.
            write_atomically(&self.purged_path, &to_json("purged log id", &log_id)?)?;
            {
                let mut mem = self.mem.lock();
                mem.last_purged = Some(log_id);
                mem.entries = mem.entries.split_off(&keep_from);
            }
            match bytes {
                Some(bytes) => self.rewrite_log(w, &bytes),
                None => Ok(()),
            }
        })
    }

    /// Replace `raft.log` atomically with `bytes` (temp file, fsync, rename,
    /// fsync dir) and reopen the append handle on the new file. O(log size);
    /// only truncation and purge do this, and both are rare.
    fn rewrite_log(&self, w: &mut Writer, bytes: &[u8]) -> Result<(), LogStoreError> {
        write_atomically(&self.log_path, bytes)?;
        w.file = OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .map_err(|e| LogStoreError::io(&self.log_path, e))?;
        w.len = bytes.len() as u64;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        if !is_valid_range(&range) {
            return Ok(Vec::new());
        }
        let mem = self.shared.mem.lock();
        Ok(mem.entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.shared.mem.lock().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let mem = self.shared.mem.lock();
        Ok(LogState {
            last_purged_log_id: mem.last_purged,
            last_log_id: mem.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// Durable (fsynced, atomically replaced) before it returns: a node must
    /// never vote twice in a term, even across a crash.
    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let shared = self.shared.clone();
        let vote = *vote;
        Ok(run_blocking(move || shared.save_vote(vote)).await?)
    }

    /// Not fsynced. `committed` only lets a restarted node re-apply its log
    /// up to the last known commit before it hears from a leader; Raft's
    /// safety does not depend on it, since the commit index is re-learned
    /// from the quorum. A crash may leave the previous value (or, after a
    /// power loss, an empty file, which `open` reads as unknown), costing at
    /// most a later catch-up, while an fsync here would add a disk flush to
    /// every commit advance.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let shared = self.shared.clone();
        Ok(run_blocking(move || shared.save_committed(committed)).await?)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.shared.mem.lock().committed)
    }

    /// Writes and fsyncs the entries, then makes them readable and reports
    /// them durable. On failure both the callback and the return value carry
    /// the error, and the store goes offline.
    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            callback.io_completed(Ok(()));
            return Ok(());
        }
        let shared = self.shared.clone();
        match run_blocking(move || shared.append(entries)).await {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e.into())
            }
        }
    }

    /// Deletes entries after `last_log_id` (all of them for `None`): memory
    /// first, then `raft.log` is rewritten atomically, so a crash leaves the
    /// log either untouched or truncated, never with a hole.
    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let shared = self.shared.clone();
        Ok(run_blocking(move || shared.truncate_after(last_log_id)).await?)
    }

    /// Deletes entries up to and including `log_id`: `purged.json` is made
    /// durable first, then memory, then `raft.log` is rewritten atomically.
    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let shared = self.shared.clone();
        Ok(run_blocking(move || shared.purge(log_id)).await?)
    }
}

/// `BTreeMap::range` panics on an inverted range; openraft may ask for an
/// empty one.
fn is_valid_range<RB: RangeBounds<u64>>(range: &RB) -> bool {
    match (range.start_bound(), range.end_bound()) {
        (Bound::Excluded(s), Bound::Excluded(e)) => s < e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => {
            s <= e
        }
        _ => true,
    }
}

fn create_dir(dir: &Path) -> Result<(), LogStoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| LogStoreError::io(dir, e))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn to_json<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, LogStoreError> {
    serde_json::to_vec(value).map_err(|source| LogStoreError::Encode { what, source })
}

/// `Ok(None)` if the file does not exist.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, LogStoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogStoreError::io(path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| LogStoreError::Decode {
            path: path.to_path_buf(),
            source,
        })
}

/// `committed.json` is not fsynced, so garbage in it after a crash is
/// expected: read as unknown. A value past the recovered log end (openraft
/// may commit an entry before the local fsync of it completes) is clamped
/// to the log end, which is committed: it is a prefix of a log that matched
/// the leader's up to the saved value.
fn read_committed(path: &Path, last_log_id: Option<LogId>) -> Option<LogId> {
    let committed = match read_json::<Option<LogId>>(path) {
        Ok(c) => c.flatten(),
        Err(e) => {
            tracing::warn!("ignoring unreadable {}: {e}", path.display());
            None
        }
    };
    match (committed, last_log_id) {
        (Some(c), Some(last)) if c.index > last.index => {
            tracing::warn!(
                "{} names log id {c} past the log end {last}; using the log end",
                path.display()
            );
            Some(last)
        }
        (Some(c), None) => {
            tracing::warn!(
                "{} names log id {c} but the log is empty; ignoring it",
                path.display()
            );
            None
        }
        (c, _) => c,
    }
}

fn encode_frame(entry: &Entry, buf: &mut Vec<u8>) -> Result<(), LogStoreError> {
    let payload = to_json("log entry", entry)?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_ENTRY_BYTES)
        .ok_or(LogStoreError::EntryTooLarge {
            index: entry.index(),
            size: payload.len(),
            limit: MAX_ENTRY_BYTES,
        })?;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    buf.extend_from_slice(&payload);
    Ok(())
}

fn encode_frames<'a>(entries: impl Iterator<Item = &'a Entry>) -> Result<Vec<u8>, LogStoreError> {
    let mut buf = Vec::new();
    for e in entries {
        encode_frame(e, &mut buf)?;
    }
    Ok(buf)
}
