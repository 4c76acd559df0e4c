//! The write-ahead batch log: `<checkpoint_dir>/batches/<batch id>.json`, one file per
//! planned micro-batch (Spark's `offsets/<batch>` log in its checkpoint directory).
//!
//! Before any sink sees batch N, the runtime stores what N reads — per topic and
//! partition its start and end offsets — and the processing time it runs with. With
//! that record a batch can be re-run after a crash and produce the same output: the
//! same records (exactly `[start, end)` of each partition, sorted canonically), the
//! same executor state (the snapshot of batch N-1) and the same processing time. Which
//! batches are re-run is decided in [`super::recovery`].
//!
//! Invariants: a file appears atomically (temporary file, fsync, hard link, directory
//! fsync); a batch id is planned once and its file never replaced ([`store`] refuses),
//! except that entries after the batch a run resumes from are removed first (they
//! belonged to a history no sink kept). The log
//! keeps the last [`RETAIN`] batches behind the checkpoint and prunes older ones.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::checkpoint::io;
use super::error::RuntimeError;
use super::offsets::Offsets;

pub const DIR_NAME: &str = "batches";
/// Batches kept behind the last checkpointed one (Spark's `minBatchesToRetain`).
pub const RETAIN: u64 = 100;
const VERSION: u32 = 1;
const SUFFIX: &str = ".json";

/// What one micro-batch reads, stored before it is written anywhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedBatch {
    pub version: u32,
    pub job: String,
    pub batch_id: u64,
    /// topic → partition → first offset the batch may read.
    pub start: Offsets,
    /// topic → partition → the offset the batch reads up to (exclusive); the
    /// partitions' next offsets once it is done.
    pub end: Offsets,
    /// The processing time the executor ran the batch with (audit columns).
    pub processing_time_ms: i64,
}

impl PlannedBatch {
    pub fn new(
        job: &str,
        batch_id: u64,
        start: Offsets,
        end: Offsets,
        processing_time_ms: i64,
    ) -> PlannedBatch {
        PlannedBatch {
            version: VERSION,
            job: job.to_string(),
            batch_id,
            start,
            end,
            processing_time_ms,
        }
    }
}

fn log_dir(checkpoint_dir: &Path) -> PathBuf {
    checkpoint_dir.join(DIR_NAME)
}

fn file_name(batch_id: u64) -> String {
    // Zero-padded so a directory listing sorts by batch id.
    format!("{batch_id:020}{SUFFIX}")
}

/// Store `batch` durably; it is in the log once this returns `Ok`. An entry that
/// exists already is never replaced: planning a batch id twice means a second instance
/// of the job runs on this checkpoint directory (Spark's offset log refuses the same
/// way), and its plan must not overwrite the one the sinks may have committed.
pub fn store(checkpoint_dir: &Path, batch: &PlannedBatch) -> Result<(), RuntimeError> {
    let dir = log_dir(checkpoint_dir);
    let name = file_name(batch.batch_id);
    let path = dir.join(&name);
    let bytes = serde_json::to_vec(batch).map_err(|e| RuntimeError::Checkpoint {
        path: path.clone(),
        reason: format!("cannot encode a planned batch: {e}"),
    })?;
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    // A hard link appears atomically and, unlike rename, fails if the name exists.
    let linked = fs::hard_link(&tmp, &path);
    fs::remove_file(&tmp).map_err(io(&tmp))?;
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RuntimeError::Checkpoint {
                path,
                reason: format!(
                    "batch {} is planned already: another instance of job {} is running on \
                     this checkpoint directory",
                    batch.batch_id, batch.job
                ),
            })
        }
        Err(e) => return Err(io(&path)(e)),
    }
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io(&dir))
}

/// The batch ids in the log (temporary files of interrupted writes are not entries).
pub fn list(checkpoint_dir: &Path) -> Result<BTreeSet<u64>, RuntimeError> {
    let dir = log_dir(checkpoint_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut ids = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(io(&dir))?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        ids.insert(id);
    }
    Ok(ids)
}

/// Load batch `batch_id` of `job`; another job's entry or a torn one is an error.
pub fn load(checkpoint_dir: &Path, job: &str, batch_id: u64) -> Result<PlannedBatch, RuntimeError> {
    let path = log_dir(checkpoint_dir).join(file_name(batch_id));
    let bytes = fs::read(&path).map_err(io(&path))?;
    let batch: PlannedBatch =
        serde_json::from_slice(&bytes).map_err(|e| RuntimeError::Checkpoint {
            path: path.clone(),
            reason: format!("not a planned batch: {e}"),
        })?;
    if batch.version != VERSION || batch.batch_id != batch_id {
        return Err(RuntimeError::Checkpoint {
            path,
            reason: format!(
                "format version {} for batch {} (expected version {VERSION}, batch {batch_id})",
                batch.version, batch.batch_id
            ),
        });
    }
    if batch.job != job {
        return Err(RuntimeError::ForeignCheckpoint {
            path,
            found: batch.job,
            expected: job.to_string(),
        });
    }
    Ok(batch)
}

/// Remove the entries `ids` (absent ones are fine), then fsync the directory.
pub fn remove(checkpoint_dir: &Path, ids: &[u64]) -> Result<(), RuntimeError> {
    if ids.is_empty() {
        return Ok(());
    }
    let dir = log_dir(checkpoint_dir);
    for id in ids {
        let path = dir.join(file_name(*id));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io(&dir))
}

/// Drop entries more than [`RETAIN`] batches behind the checkpointed `batch_id`.
pub fn prune(checkpoint_dir: &Path, batch_id: u64) -> Result<(), RuntimeError> {
    let Some(keep_from) = batch_id.checked_sub(RETAIN) else {
        return Ok(());
    };
    let old: Vec<u64> = list(checkpoint_dir)?.range(..keep_from).copied().collect();
    remove(checkpoint_dir, &old)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn planned(job: &str, id: u64) -> PlannedBatch {
        let mut start = Offsets::new();
        start.insert("e".into(), BTreeMap::from([(0, 10), (1, 4)]));
        let mut end = start.clone();
        end.insert("e".into(), BTreeMap::from([(0, 15), (1, 4)]));
        PlannedBatch::new(job, id, start, end, 1_700_000_000_000 + id as i64)
    }

    #[test]
    fn stores_lists_and_loads_planned_batches() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list(dir.path()).unwrap().is_empty());
        for id in [1, 2, 10] {
            store(dir.path(), &planned("j", id)).unwrap();
        }
        // A torn temporary file of an interrupted write is no entry.
        fs::write(dir.path().join(DIR_NAME).join("x.json.tmp"), b"{").unwrap();
        assert_eq!(list(dir.path()).unwrap(), BTreeSet::from([1, 2, 10]));
        assert_eq!(load(dir.path(), "j", 10).unwrap(), planned("j", 10));
        assert!(matches!(
            load(dir.path(), "other", 10),
            Err(RuntimeError::ForeignCheckpoint { .. })
        ));
        assert!(load(dir.path(), "j", 3).is_err());
        // A second plan for batch 10 (a second instance of the job) is refused and the
        // first one stays.
        let mut other = planned("j", 10);
        other.end = Offsets::new();
        assert!(matches!(
            store(dir.path(), &other),
            Err(RuntimeError::Checkpoint { .. })
        ));
        assert_eq!(load(dir.path(), "j", 10).unwrap(), planned("j", 10));
        assert_eq!(list(dir.path()).unwrap(), BTreeSet::from([1, 2, 10]));
    }

    #[test]
    fn prune_keeps_the_last_retained_batches_and_remove_drops_entries() {
        let dir = tempfile::tempdir().unwrap();
        for id in 1..=5 {
            store(dir.path(), &planned("j", id)).unwrap();
        }
        prune(dir.path(), RETAIN + 3).unwrap();
        assert_eq!(list(dir.path()).unwrap(), BTreeSet::from([3, 4, 5]));
        remove(dir.path(), &[4, 5, 99]).unwrap();
        assert_eq!(list(dir.path()).unwrap(), BTreeSet::from([3]));
    }
}
