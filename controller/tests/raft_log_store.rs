//! The durable Raft log store of the metadata quorum: openraft's storage
//! conformance suite, durability across reopen, torn-tail recovery at every
//! crash point, and refusal to start on corruption.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{
    EntryResponder, IOFlushed, RaftLogReader, RaftLogStorage, RaftLogStorageExt,
    RaftSnapshotBuilder, RaftStateMachine,
};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::{EntryPayload, OptionalSend, StorageError};
use parking_lot::Mutex;
use rivulet_controller::raft::log_store::{
    LogStore, LogStoreError, COMMITTED_FILE, LOG_FILE, PURGED_FILE, VOTE_FILE,
};
use rivulet_controller::raft::types::{
    Command, CommandResponse, Entry, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig,
    Vote,
};
use rivulet_controller::MetadataRecord;
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

// ---------------------------------------------------------------- helpers

fn metadata_dir(tmp: &TempDir) -> PathBuf {
    tmp.path().join("__cluster_metadata-0")
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new_term_index(term, index)
}

/// A normal entry whose size varies with its index, so frames differ.
fn entry(term: u64, index: u64) -> Entry {
    let records = (0..=index % 3)
        .map(|i| MetadataRecord::FenceBroker { node_id: i as i32 })
        .collect();
    Entry::new_normal(log_id(term, index), Command { records })
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn entry_frame(e: &Entry) -> Vec<u8> {
    frame(&serde_json::to_vec(e).unwrap())
}

/// Byte offsets where frames start, plus the file length at the end.
fn frame_boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut out = vec![0];
    let mut pos = 0;
    while pos < bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 8 + len;
        out.push(pos);
    }
    assert_eq!(pos, bytes.len());
    out
}

async fn all_entries(store: &mut LogStore) -> Vec<Entry> {
    store.try_get_log_entries(..).await.unwrap()
}

/// A log of `n` entries written through the store, closed; returns its
/// entries.
async fn write_log(dir: &Path, n: u64) -> Vec<Entry> {
    let entries: Vec<Entry> = (0..n).map(|i| entry(1, i)).collect();
    let mut store = LogStore::open(dir).unwrap();
    store.blocking_append(entries.clone()).await.unwrap();
    entries
}

fn expect_corrupt(dir: &Path) -> (PathBuf, u64, String) {
    match LogStore::open(dir) {
        Err(e @ LogStoreError::Corrupt { .. }) => {
            let msg = e.to_string();
            let LogStoreError::Corrupt {
                path,
                offset,
                reason,
            } = e
            else {
                unreachable!()
            };
            assert!(msg.contains(LOG_FILE), "{msg}");
            assert!(msg.contains(&format!("byte offset {offset}")), "{msg}");
            (path, offset, reason)
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("expected Corrupt, the store opened"),
    }
}

// ---------------------------------------------------------------- a minimal in-memory state machine

#[derive(Default, Clone, Serialize, Deserialize)]
struct SmData {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
}

#[derive(Default)]
struct SmInner {
    data: SmData,
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
}

#[derive(Clone, Default)]
struct MemStateMachine(Arc<Mutex<SmInner>>);

impl RaftSnapshotBuilder<TypeConfig> for MemStateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let mut g = self.0.lock();
        let bytes = serde_json::to_vec(&g.data).map_err(io::Error::other)?;
        let meta = SnapshotMeta {
            last_log_id: g.data.last_applied,
            last_membership: g.data.last_membership.clone(),
        };
        g.snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: bytes,
        })
    }
}

impl RaftStateMachine<TypeConfig> for MemStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let g = self.0.lock();
        Ok((g.data.last_applied, g.data.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            {
                let mut g = self.0.lock();
                g.data.last_applied = Some(entry.log_id);
                if let EntryPayload::Membership(m) = &entry.payload {
                    g.data.last_membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
            }
            if let Some(r) = responder {
                r.send(CommandResponse {
                    offset: entry.log_id.index,
                });
            }
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
        let data: SmData = serde_json::from_slice(&snapshot).map_err(io::Error::other)?;
        let mut g = self.0.lock();
        g.data = data;
        g.snapshot = Some((meta.clone(), snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let g = self.0.lock();
        Ok(g.snapshot
            .clone()
            .map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}

// ---------------------------------------------------------------- conformance

/// Each store gets a fresh temp dir, kept alive by the suite as the guard.
struct Builder;

impl StoreBuilder<TypeConfig, LogStore, MemStateMachine, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, MemStateMachine), StorageError<TypeConfig>> {
        let tmp = TempDir::new().expect("temp dir");
        let store = LogStore::open(&metadata_dir(&tmp)).expect("open log store");
        Ok((tmp, store, MemStateMachine::default()))
    }
}

#[tokio::test]
async fn passes_openraft_storage_conformance_suite() {
    Suite::test_all(Builder).await.unwrap();
}

// ---------------------------------------------------------------- durability

#[tokio::test]
async fn reopen_restores_entries_vote_purge_point_and_committed() {
    let tmp = TempDir::new().unwrap();
    let dir = metadata_dir(&tmp);
    let vote = Vote::new_committed(2, 1);
    {
        let mut store = LogStore::open(&dir).unwrap();
        assert!(dir.is_dir(), "open creates the directory");
        store
            .blocking_append((0..10).map(|i| entry(1, i)))
            .await
            .unwrap();
        store.save_vote(&vote).await.unwrap();
        store.purge(log_id(1, 2)).await.unwrap();
        store.truncate_after(Some(log_id(1, 7))).await.unwrap();
        store
            .blocking_append([entry(2, 8), entry(2, 9)])
            .await
            .unwrap();
        store.save_committed(Some(log_id(2, 8))).await.unwrap();
    }

    let mut store = LogStore::open(&dir).unwrap();
    let want: Vec<Entry> = (3..=7)
        .map(|i| entry(1, i))
        .chain([entry(2, 8), entry(2, 9)])
        .collect();
    assert_eq!(all_entries(&mut store).await, want);
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)));
    assert_eq!(state.last_log_id, Some(log_id(2, 9)));
    assert_eq!(store.read_vote().await.unwrap(), Some(vote));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 8)));
    for f in [LOG_FILE, VOTE_FILE, PURGED_FILE, COMMITTED_FILE] {
        assert!(dir.join(f).is_file(), "{f}");
    }
}

#[tokio::test]
async fn purge_past_the_log_end_survives_reopen_and_sets_the_next_index() {
    let tmp = TempDir::new().unwrap();
    let dir = metadata_dir(&tmp);
    {
        let mut store = LogStore::open(&dir).unwrap();
        store
            .blocking_append((0..3).map(|i| entry(1, i)))
            .await
            .unwrap();
        store.purge(log_id(1, 5)).await.unwrap();
    }
    let mut store = LogStore::open(&dir).unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 5)));
    assert_eq!(state.last_log_id, Some(log_id(1, 5)));
    assert!(all_entries(&mut store).await.is_empty());
    assert_eq!(fs::metadata(dir.join(LOG_FILE)).unwrap().len(), 0);

    assert!(store.blocking_append([entry(1, 7)]).await.is_err());
    store.blocking_append([entry(1, 6)]).await.unwrap();
    drop(store);
    let mut store = LogStore::open(&dir).unwrap();
    assert_eq!(all_entries(&mut store).await, vec![entry(1, 6)]);
}

#[tokio::test]
async fn truncate_after_none_empties_the_log_durably() {
    let tmp = TempDir::new().unwrap();
    let dir = metadata_dir(&tmp);
    write_log(&dir, 4).await;
    {
        let mut store = LogStore::open(&dir).unwrap();
        store.truncate_after(None).await.unwrap();
        assert_eq!(store.get_log_state().await.unwrap().last_log_id, None);
    }
    let mut store = LogStore::open(&dir).unwrap();
    assert!(all_entries(&mut store).await.is_empty());
    // An empty, never-purged log accepts any first index.
    store.blocking_append([entry(3, 0)]).await.unwrap();
}

#[tokio::test]
async fn append_refuses_a_hole_and_stays_usable() {
    let tmp = TempDir::new().unwrap();
    let dir = metadata_dir(&tmp);
    let mut store = LogStore::open(&dir).unwrap();
    store
        .blocking_append((0..3).map(|i| entry(1, i)))
        .await
        .unwrap();

    let (tx, rx) = TypeConfig::oneshot();
    let err = store
        .append([entry(1, 5)], IOFlushed::signal(tx))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("expected index 3"), "{err}");
    let flushed = rx.await.unwrap();
    assert!(flushed.is_err(), "the callback reports the failure too");

    // Nothing was written: the store is not offline.
    store.blocking_append([entry(1, 3)]).await.unwrap();
    drop(store);
    let mut store = LogStore::open(&dir).unwrap();
    assert_eq!(all_entries(&mut store).await.len(), 4);
}

// ---------------------------------------------------------------- torn tails

#[tokio::test]
async fn truncates_torn_tail_at_every_cut_point() {
    let tmp = TempDir::new().unwrap();
    let src = metadata_dir(&tmp);
    let entries = write_log(&src, 5).await;
    let full = fs::read(src.join(LOG_FILE)).unwrap();
    let boundaries = frame_boundaries(&full);

    for cut in 0..full.len() {
        let case = TempDir::new().unwrap();
        let dir = metadata_dir(&case);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(LOG_FILE), &full[..cut]).unwrap();

        let mut store = LogStore::open(&dir).unwrap_or_else(|e| panic!("cut at byte {cut}: {e}"));
        let complete = boundaries.iter().filter(|b| **b <= cut).count() - 1;
        assert_eq!(
            all_entries(&mut store).await,
            entries[..complete],
            "cut at byte {cut}"
        );
        assert_eq!(
            fs::metadata(dir.join(LOG_FILE)).unwrap().len(),
            boundaries[complete] as u64,
            "cut at byte {cut}: the torn tail is cut off"
        );

        // Appends continue cleanly after the recovered prefix.
        let next = entry(1, complete as u64);
        store.blocking_append([next.clone()]).await.unwrap();
        drop(store);
        let mut store = LogStore::open(&dir).unwrap();
        let mut want = entries[..complete].to_vec();
        want.push(next);
        assert_eq!(all_entries(&mut store).await, want, "cut at byte {cut}");
    }
}

#[tokio::test]
async fn truncates_a_bad_last_frame_and_a_zero_filled_tail() {
    let tmp = TempDir::new().unwrap();
    let dir = metadata_dir(&tmp);
    let entries = write_log(&dir, 4).await;
    let path = dir.join(LOG_FILE);
    let full = fs::read(&path).unwrap();
    let boundaries = frame_boundaries(&full);

    // CRC mismatch in the last frame.
    let mut bytes = full.clone();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    let mut store = LogStore::open(&dir).unwrap();
    assert_eq!(all_entries(&mut store).await, entries[..3]);
    assert_eq!(fs::metadata(&path).unwrap().len(), boundaries[3] as u64);
    drop(store);

    // Zeros after the valid frames (the file grew before the data landed).
    let mut bytes = full[..boundaries[3]].to_vec();
    bytes.extend_from_slice(&[0; 4096]);
    fs::write(&path, &bytes).unwrap();
    let mut store = LogStore::open(&dir).unwrap();
    assert_eq!(all_entries(&mut store).await, entries[..3]);
    assert_eq!(fs::metadata(&path).unwrap().len(), boundaries[3] as u64);
}

// ---------------------------------------------------------------- corruption

#[tokio::test]
async fn refuses_to_open_on_a_bad_frame_in_the_middle_and_leaves_the_file() {
    let tmp = TempDir::new().unwrap();
    let dir = metadata_dir(&tmp);
    write_log(&dir, 5).await;
    let path = dir.join(LOG_FILE);
    let full = fs::read(&path).unwrap();
    let b = frame_boundaries(&full);

    // A flipped payload byte: CRC mismatch followed by more frames.
    let mut flipped = full.clone();
    flipped[b[2] + 12] ^= 0x01;
    // A damaged length field that points past the end of the file.
    let mut long = full.clone();
    long[b[2]..b[2] + 4].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
    // A frame zeroed out (a lost page) with valid frames after it.
    let mut zeroed = full.clone();
    zeroed[b[2]..b[3]].fill(0);

    for (case, bytes) in [("flipped", flipped), ("long", long), ("zeroed", zeroed)] {
        fs::write(&path, &bytes).unwrap();
        let (p, offset, reason) = expect_corrupt(&dir);
        assert_eq!(p, path, "{case}");
        assert_eq!(offset, b[2] as u64, "{case}: {reason}");
        assert_eq!(
            fs::read(&path).unwrap(),
            bytes,
            "{case}: file left as it was"
        );
    }
}

#[test]
fn refuses_a_crc_valid_entry_that_does_not_decode() {
    let tmp = TempDir::new().unwrap();
    let dir = metadata_dir(&tmp);
    fs::create_dir_all(&dir).unwrap();
    let mut bytes = entry_frame(&entry(1, 0));
    let at = bytes.len();
    bytes.extend(frame(b"{\"not\":\"an entry\"}"));
    fs::write(dir.join(LOG_FILE), &bytes).unwrap();

    let (_, offset, reason) = expect_corrupt(&dir);
    assert_eq!(offset, at as u64);
    assert!(reason.contains("does not decode"), "{reason}");
}

#[test]
fn refuses_non_consecutive_indexes() {
    let tmp = TempDir::new().unwrap();
    let dir = metadata_dir(&tmp);
    fs::create_dir_all(&dir).unwrap();
    let mut bytes = entry_frame(&entry(1, 1));
    let at = bytes.len();
    bytes.extend(entry_frame(&entry(1, 3)));
    fs::write(dir.join(LOG_FILE), &bytes).unwrap();

    let (_, offset, reason) = expect_corrupt(&dir);
    assert_eq!(offset, at as u64);
    assert!(reason.contains("does not follow index 1"), "{reason}");
}

#[test]
fn refuses_a_hole_after_the_purge_point() {
    let tmp = TempDir::new().unwrap();
    let dir = metadata_dir(&tmp);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join(PURGED_FILE),
        serde_json::to_vec(&log_id(1, 2)).unwrap(),
    )
    .unwrap();
    fs::write(dir.join(LOG_FILE), entry_frame(&entry(1, 5))).unwrap();

    let (_, offset, reason) = expect_corrupt(&dir);
    assert_eq!(offset, 0);
    assert!(reason.contains("hole"), "{reason}");
}

#[test]
fn refuses_garbage_vote_and_purged_files_naming_them() {
    for file in [VOTE_FILE, PURGED_FILE] {
        let tmp = TempDir::new().unwrap();
        let dir = metadata_dir(&tmp);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(file), b"{\"term\": garbage").unwrap();
        match LogStore::open(&dir) {
            Err(e @ LogStoreError::Decode { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(file) && msg.contains("corrupt"), "{msg}");
                assert_eq!(io::Error::from(e).kind(), io::ErrorKind::InvalidData);
            }
            Err(e) => panic!("{file}: expected Decode, got {e}"),
            Ok(_) => panic!("{file}: expected Decode, the store opened"),
        }
    }
}

// ---------------------------------------------------------------- crash windows of the non-fsynced / two-step writes

#[tokio::test]
async fn recovers_from_a_crash_between_purged_json_and_the_log_rewrite() {
    let tmp = TempDir::new().unwrap();
    let dir = metadata_dir(&tmp);
    let entries = write_log(&dir, 6).await;
    // purge(2) made purged.json durable, then the process died.
    fs::write(
        dir.join(PURGED_FILE),
        serde_json::to_vec(&log_id(1, 2)).unwrap(),
    )
    .unwrap();

    let mut store = LogStore::open(&dir).unwrap();
    assert_eq!(all_entries(&mut store).await, entries[3..]);
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)));
    assert_eq!(state.last_log_id, Some(log_id(1, 5)));
    // The log was rewritten without the purged entries.
    let rewritten = fs::read(dir.join(LOG_FILE)).unwrap();
    assert_eq!(frame_boundaries(&rewritten).len(), 4);
}

#[tokio::test]
async fn garbage_committed_json_reads_as_unknown() {
    let tmp = TempDir::new().unwrap();
    let dir = metadata_dir(&tmp);
    write_log(&dir, 3).await;
    fs::write(dir.join(COMMITTED_FILE), b"").unwrap();
    let mut store = LogStore::open(&dir).unwrap();
    assert_eq!(store.read_committed().await.unwrap(), None);
    assert_eq!(all_entries(&mut store).await.len(), 3);
}

#[tokio::test]
async fn committed_past_the_recovered_log_end_is_clamped_to_it() {
    let tmp = TempDir::new().unwrap();
    let dir = metadata_dir(&tmp);
    {
        write_log(&dir, 3).await;
        let mut store = LogStore::open(&dir).unwrap();
        store.save_committed(Some(log_id(1, 9))).await.unwrap();
    }
    let mut store = LogStore::open(&dir).unwrap();
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 2)));
}
