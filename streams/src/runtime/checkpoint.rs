//! A job's checkpoint directory: `<checkpoint_dir>/checkpoint.json` holding the job
//! name, the last committed batch id, the next offset of every assigned partition and
//! the executor's state snapshot (`Executor::snapshot`).
//!
//! Written once per committed batch, atomically: to `checkpoint.json.tmp`, fsynced,
//! renamed over the old file, then the directory fsynced (the rename is durable), so a
//! kill -9 at any moment leaves the previous or the new checkpoint, never a torn one.
//! A checkpoint names its job and [`load`] refuses another job's (issue 12: "a
//! checkpoint belongs to one job").
//!
//! Written after every sink committed the batch. A PostgreSQL exactly-once sink holds
//! the same state (offsets, batch id, snapshot) in its database, which wins when it is
//! ahead of this file; which state a restart uses is decided in [`super::recovery`].

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::RuntimeError;
use super::offsets::Offsets;

pub const FILE_NAME: &str = "checkpoint.json";
#[cfg(test)]
const TMP_NAME: &str = "checkpoint.json.tmp";
/// Format version of the file, for the day it changes.
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub job: String,
    /// The last committed batch (0: none yet).
    pub batch_id: u64,
    /// topic → partition → next offset to read.
    pub offsets: Offsets,
    pub snapshot: Value,
}

impl Checkpoint {
    pub fn new(job: &str, batch_id: u64, offsets: Offsets, snapshot: Value) -> Checkpoint {
        Checkpoint {
            version: VERSION,
            job: job.to_string(),
            batch_id,
            offsets,
            snapshot,
        }
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
    move |source| RuntimeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The checkpoint of `job` in `dir`, `None` if there is none yet.
pub fn load(dir: &Path, job: &str) -> Result<Option<Checkpoint>, RuntimeError> {
    let path = dir.join(FILE_NAME);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let cp: Checkpoint = serde_json::from_slice(&text).map_err(|e| RuntimeError::Checkpoint {
        path: path.clone(),
        reason: format!("not a checkpoint file: {e}"),
    })?;
    if cp.version != VERSION {
        return Err(RuntimeError::Checkpoint {
            path,
            reason: format!("format version {} (this build reads {VERSION})", cp.version),
        });
    }
    if cp.job != job {
        return Err(RuntimeError::ForeignCheckpoint {
            path,
            found: cp.job,
            expected: job.to_string(),
        });
    }
    Ok(Some(cp))
}

/// Write `cp` into `dir` (created if absent) atomically and durably.
pub fn store(dir: &Path, cp: &Checkpoint) -> Result<(), RuntimeError> {
    let started = std::time::Instant::now();
    let bytes = serde_json::to_vec(cp).map_err(|e| RuntimeError::Checkpoint {
        path: dir.join(FILE_NAME),
        reason: format!("cannot encode: {e}"),
    })?;
    let encoded = started.elapsed();
    write_atomically(dir, FILE_NAME, &bytes)?;
    tracing::debug!(
        bytes = bytes.len(),
        encode_ms = encoded.as_secs_f64() * 1e3,
        write_ms = (started.elapsed() - encoded).as_secs_f64() * 1e3,
        "checkpoint stored"
    );
    Ok(())
}

/// Write `bytes` to `dir/name` (`dir` created if absent) so that a kill -9 at any
/// moment leaves the old or the new content: a temporary file, fsynced, renamed over
/// `name`, then the directory fsynced so the rename itself is durable.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), RuntimeError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp: PathBuf = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn sample(job: &str, batch: u64) -> Checkpoint {
        let mut offsets = Offsets::new();
        offsets.insert("events".into(), BTreeMap::from([(0, 10), (1, 7)]));
        Checkpoint::new(job, batch, offsets, json!({"job": job, "state": [1, 2]}))
    }

    #[test]
    fn stores_and_loads_back_replacing_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("jobs/lab1");
        assert_eq!(load(&sub, "lab1").unwrap(), None);
        store(&sub, &sample("lab1", 1)).unwrap();
        store(&sub, &sample("lab1", 2)).unwrap();
        let cp = load(&sub, "lab1").unwrap().unwrap();
        assert_eq!(cp, sample("lab1", 2));
        assert!(!sub.join(TMP_NAME).exists(), "temp file left behind");
    }

    #[test]
    fn refuses_another_jobs_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), &sample("lab1", 3)).unwrap();
        match load(dir.path(), "medallion") {
            Err(RuntimeError::ForeignCheckpoint {
                found, expected, ..
            }) => assert_eq!((found.as_str(), expected.as_str()), ("lab1", "medallion")),
            other => panic!("expected a foreign checkpoint error, got {other:?}"),
        }
    }

    #[test]
    fn a_stale_temp_file_does_not_shadow_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), &sample("lab1", 4)).unwrap();
        // A kill -9 between write and rename leaves a torn temp file.
        fs::write(dir.path().join(TMP_NAME), b"{\"trunc").unwrap();
        assert_eq!(load(dir.path(), "lab1").unwrap().unwrap().batch_id, 4);
        store(dir.path(), &sample("lab1", 5)).unwrap();
        assert_eq!(load(dir.path(), "lab1").unwrap().unwrap().batch_id, 5);
    }

    #[test]
    fn a_corrupt_checkpoint_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"garbage").unwrap();
        assert!(matches!(
            load(dir.path(), "lab1"),
            Err(RuntimeError::Checkpoint { .. })
        ));
    }
}
