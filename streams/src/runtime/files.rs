//! The files sink: a data lake laid out by event time (`year={yyyy}/month={MM}/day={dd}`),
//! JSON Lines by default, with a commit log that says which files each batch committed.
//!
//! On disk, under the sink's `path`:
//! ```text
//! year=2024/month=12/day=30/part-00000000000000000007-0.jsonl   batch 7, its first file
//! _rivulet_commits/00000000000000000007.json                    batch 7's commit entry
//! ```
//! Invariants:
//! - A data file appears whole or not at all: it is written as `.tmp-<name>` in its own
//!   directory, fsynced, renamed, and the directory fsynced.
//! - A batch is committed when, and only when, its commit entry exists. The entry lists
//!   the batch's files and is written last (temp file, fsync, rename, fsync of the
//!   commit directory), so readers that trust the commit log (like Spark's
//!   `_spark_metadata`) never see a half batch.
//! - A file's name carries its batch id and a per-batch index in directory order, both
//!   derived from the rows alone, so writing batch N again with the same rows produces
//!   the same names (a replay overwrites, never adds).
//! - [`FilesSink::open`] recovers: it deletes every `.tmp-` file and every data file
//!   not listed in its batch's commit entry (batches interrupted before their entry).
//! - [`FilesSink::write_batch`] is idempotent: a batch id at or below the last committed
//!   one is skipped. Exactly-once therefore needs the runtime to replay an interrupted
//!   batch with the same rows; with different rows the skipped batch would lose or
//!   repeat rows. The runtime's batch log (`runtime/batch_log.rs`) provides that replay;
//!   the commit log is this sink's record of the last batch it holds.
//! - One job owns a sink directory: entries name their job, and [`FilesSink::open`]
//!   refuses a directory committed by another job.
//!
//! Partitioning is over the row's event time (`Row::event_time`, always set: a record
//! without one never becomes a row), in UTC. A time outside the calendar's range (not
//! representable as a date) goes to the directory `__HIVE_DEFAULT_PARTITION__`, the
//! name Hive and Spark give a partition whose value is null.
//!
//! Formats: JSON Lines (each row's JSON object on one line), or Parquet with the crate's
//! `parquet` feature ([`super::parquet_file`], one file per directory and batch, schema
//! inferred per file); without the feature a job asking for Parquet is refused at start.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::RuntimeError;
use crate::plan::layout::Layout;
use crate::plan::FileFormat;
use crate::row::Row;

/// The directory of the commit log, under the sink's path.
pub const COMMITS_DIR: &str = "_rivulet_commits";
/// Prefix of files being written; never part of a committed batch.
pub const TMP_PREFIX: &str = ".tmp-";
/// Where rows whose event time has no calendar date go (Hive's null partition).
pub const UNDATED_DIR: &str = "__HIVE_DEFAULT_PARTITION__";
/// Format version of commit entries.
const VERSION: u32 = 1;

/// One batch's commit entry, `_rivulet_commits/<batch:020>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitEntry {
    pub version: u32,
    pub job: String,
    pub batch_id: u64,
    /// The batch's data files, relative to the sink's path, `/`-separated.
    pub files: Vec<String>,
    pub rows: u64,
}

/// One data file of a batch, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFile {
    /// Relative directory (`year=2024/month=12/day=30`).
    pub dir: String,
    /// File name (`part-00000000000000000007-0.jsonl`).
    pub name: String,
    pub bytes: Vec<u8>,
    pub rows: u64,
}

impl PlannedFile {
    pub fn relative_path(&self) -> String {
        format!("{}/{}", self.dir, self.name)
    }
}

/// A batch turned into file contents (pure, no I/O): what [`FilesSink::commit`] writes.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedBatch {
    pub batch_id: u64,
    pub files: Vec<PlannedFile>,
}

/// The name of data file `index` of batch `batch_id`.
pub fn data_file_name(batch_id: u64, index: usize, format: FileFormat) -> String {
    format!("part-{batch_id:020}-{index}.{}", extension(format))
}

fn extension(format: FileFormat) -> &'static str {
    match format {
        FileFormat::Jsonl => "jsonl",
        FileFormat::Parquet => "parquet",
    }
}

/// The batch id of a data file name (`part-<20 digits>-<n>.<jsonl|parquet>`), `None`
/// for any other name (files that are not ours are left alone).
pub fn batch_of_data_file(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("part-")?;
    let (batch, rest) = rest.split_at_checked(20)?;
    let rest = rest.strip_prefix('-')?;
    let (index, ext) = rest.split_once('.')?;
    if !batch.bytes().all(|b| b.is_ascii_digit())
        || index.is_empty()
        || !index.bytes().all(|b| b.is_ascii_digit())
        || !(ext == "jsonl" || ext == "parquet")
    {
        return None;
    }
    batch.parse().ok()
}

fn commit_file_name(batch_id: u64) -> String {
    format!("{batch_id:020}.json")
}

/// Group a batch's rows by their layout directory and encode each group as one file.
/// Pure: the same rows give the same files, names and bytes.
pub fn plan_batch(
    layout: &Layout,
    format: FileFormat,
    batch_id: u64,
    rows: &[Row],
) -> Result<Vec<PlannedFile>, String> {
    let mut groups: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    // A layout's placeholders are at most hours, so one hour's rows share a directory:
    // the last hour's is reused instead of formatting a path per row.
    let mut last: Option<(i64, String)> = None;
    for row in rows {
        let hour = hour_of(row.event_time);
        match &last {
            Some((h, dir)) if hour.is_some() && hour == Some(*h) => {
                if let Some(group) = groups.get_mut(dir.as_str()) {
                    group.push(row);
                    continue;
                }
            }
            _ => {}
        }
        let dir = layout
            .path_for(row.event_time)
            .unwrap_or_else(|| UNDATED_DIR.to_string());
        if let Some(h) = hour {
            last = Some((h, dir.clone()));
        }
        groups.entry(dir).or_default().push(row);
    }
    let mut files = Vec::with_capacity(groups.len());
    for (index, (dir, rows)) in groups.into_iter().enumerate() {
        let bytes = match format {
            FileFormat::Jsonl => encode_jsonl(&rows)?,
            #[cfg(feature = "parquet")]
            FileFormat::Parquet => super::parquet_file::encode(&rows)?,
            #[cfg(not(feature = "parquet"))]
            FileFormat::Parquet => {
                return Err("the parquet format needs rivulet-streams' `parquet` feature".into())
            }
        };
        files.push(PlannedFile {
            dir,
            name: data_file_name(batch_id, index, format),
            bytes,
            rows: rows.len() as u64,
        });
    }
    Ok(files)
}

/// The hour (since the epoch) of an event time well inside the calendar's range, where
/// every hour has a date; `None` near its ends (those rows format their own path).
fn hour_of(event_time_ms: i64) -> Option<i64> {
    const DATED: i64 = 8_000_000_000_000_000; // ~253,000 years either side of 1970
    (-DATED..DATED)
        .contains(&event_time_ms)
        .then(|| event_time_ms.div_euclid(3_600_000))
}

fn encode_jsonl(rows: &[&Row]) -> Result<Vec<u8>, String> {
    // Sized for the pass-through rows up front: one allocation, not a regrown buffer.
    let guess: usize = rows
        .iter()
        .map(|r| r.source_bytes.as_deref().map_or(0, <[u8]>::len) + 1)
        .sum();
    let mut out = Vec::with_capacity(guess);
    for row in rows {
        match row.source_bytes.as_deref() {
            // A source row passed through whole: its bytes, unless they span lines.
            Some(b) if !b.iter().any(|c| matches!(c, b'\n' | b'\r')) => out.extend_from_slice(b),
            Some(_) => {
                serde_json::to_writer(&mut out, &row.full_value()).map_err(|e| e.to_string())?
            }
            None => serde_json::to_writer(&mut out, &row.value).map_err(|e| e.to_string())?,
        }
        out.push(b'\n');
    }
    Ok(out)
}

/// What recovery deletes: every temp file, and every data file of ours that is not
/// listed in its batch's commit entry.
/// `found` are paths relative to the sink's path.
pub fn recovery_deletions(committed: &BTreeMap<u64, CommitEntry>, found: &[String]) -> Vec<String> {
    let listed: BTreeSet<&str> = committed
        .values()
        .flat_map(|e| e.files.iter().map(String::as_str))
        .collect();
    found
        .iter()
        .filter(|path| {
            let name = path.rsplit('/').next().unwrap_or(path);
            name.starts_with(TMP_PREFIX)
                || (batch_of_data_file(name).is_some() && !listed.contains(path.as_str()))
        })
        .cloned()
        .collect()
}

/// A files sink: one directory tree, one job.
#[derive(Debug, Clone)]
pub struct FilesSink {
    pub name: String,
    job: String,
    root: PathBuf,
    layout: Layout,
    format: FileFormat,
    last: Option<u64>,
}

impl FilesSink {
    /// Open (creating) the sink's directory and recover it: delete temp files and the
    /// data files of batches that have no commit entry.
    pub fn open(
        sink_name: &str,
        job: &str,
        path: impl AsRef<Path>,
        layout: Layout,
        format: FileFormat,
    ) -> Result<FilesSink, RuntimeError> {
        if format == FileFormat::Parquet && !cfg!(feature = "parquet") {
            return Err(RuntimeError::config(
                job,
                format!(
                    "sink {sink_name}: format \"parquet\" needs rivulet-streams built with \
                     the `parquet` feature, which this build lacks: use \"jsonl\""
                ),
            ));
        }
        let root = path.as_ref().to_path_buf();
        let mut sink = FilesSink {
            name: sink_name.to_string(),
            job: job.to_string(),
            root,
            layout,
            format,
            last: None,
        };
        let commits = sink.root.join(COMMITS_DIR);
        fs::create_dir_all(&commits).map_err(sink.io(&commits))?;
        let entries = sink.read_commit_log()?;
        let mut found = Vec::new();
        sink.walk(&sink.root, "", &mut found)?;
        let deletions = recovery_deletions(&entries, &found);
        for rel in &deletions {
            let path = sink.root.join(rel);
            fs::remove_file(&path).map_err(sink.io(&path))?;
            // Directories only the interrupted batch had go with it; removal stops at
            // the first one that is not empty.
            let mut parent = path.parent();
            while let Some(p) = parent.filter(|p| *p != sink.root && *p != commits) {
                if fs::remove_dir(p).is_err() {
                    break;
                }
                parent = p.parent();
            }
        }
        if !deletions.is_empty() {
            tracing::info!(sink = %sink.name, deleted = deletions.len(), "files of uncommitted batches removed");
        }
        let listed: BTreeSet<String> = found.into_iter().collect();
        for e in entries.values() {
            for f in e.files.iter().filter(|f| !listed.contains(*f)) {
                tracing::warn!(sink = %sink.name, batch = e.batch_id, file = %f, "a committed file is missing");
            }
        }
        sync_dir(&sink.root).map_err(sink.io(&sink.root))?;
        sink.last = entries.keys().next_back().copied();
        Ok(sink)
    }

    /// The last batch whose commit entry exists.
    pub fn last_committed_batch(&self) -> Option<u64> {
        self.last
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Write batch `batch_id` and commit it; skipped (Ok) when the batch is already
    /// committed. On `Err` nothing of the batch is committed: the job stops, and the
    /// next [`FilesSink::open`] removes what was written.
    pub fn write_batch(&mut self, batch_id: u64, rows: &[Row]) -> Result<(), RuntimeError> {
        let prepared = self.prepare(batch_id, rows)?;
        self.commit(prepared)
    }

    /// Encode a batch into files (pure; runs on any thread).
    pub fn prepare(&self, batch_id: u64, rows: &[Row]) -> Result<PreparedBatch, RuntimeError> {
        let files = if self.already_committed(batch_id) {
            Vec::new()
        } else {
            plan_batch(&self.layout, self.format, batch_id, rows).map_err(|reason| {
                RuntimeError::Files {
                    sink: self.name.clone(),
                    reason,
                }
            })?
        };
        Ok(PreparedBatch { batch_id, files })
    }

    /// Write a prepared batch (blocking file I/O): files under temp names, fsync,
    /// rename, fsync their directories, then the commit entry. Skipped (Ok) when the
    /// batch is already committed.
    pub fn commit(&mut self, batch: PreparedBatch) -> Result<(), RuntimeError> {
        if self.already_committed(batch.batch_id) {
            tracing::debug!(sink = %self.name, batch = batch.batch_id, "already committed: skipped");
            return Ok(());
        }
        let mut dirs = BTreeSet::new();
        for f in &batch.files {
            let dir = self.root.join(&f.dir);
            if !dir.exists() {
                fs::create_dir_all(&dir).map_err(self.io(&dir))?;
                // New directories must survive a crash too: fsync each new level's
                // parent (up to the sink's root).
                let mut d = dir.as_path();
                while let Some(parent) = d.parent() {
                    dirs.insert(parent.to_path_buf());
                    if parent == self.root {
                        break;
                    }
                    d = parent;
                }
            }
            let tmp = dir.join(format!("{TMP_PREFIX}{}", f.name));
            write_synced(&tmp, &f.bytes).map_err(self.io(&tmp))?;
            let dest = dir.join(&f.name);
            fs::rename(&tmp, &dest).map_err(self.io(&dest))?;
            dirs.insert(dir);
        }
        // Deepest first: a parent's fsync then covers entries already durable below.
        for d in dirs.iter().rev() {
            sync_dir(d).map_err(self.io(d))?;
        }
        let entry = CommitEntry {
            version: VERSION,
            job: self.job.clone(),
            batch_id: batch.batch_id,
            files: batch.files.iter().map(PlannedFile::relative_path).collect(),
            rows: batch.files.iter().map(|f| f.rows).sum(),
        };
        let bytes = serde_json::to_vec(&entry).map_err(|e| RuntimeError::Files {
            sink: self.name.clone(),
            reason: format!("cannot encode the commit entry: {e}"),
        })?;
        let commits = self.root.join(COMMITS_DIR);
        let name = commit_file_name(batch.batch_id);
        let tmp = commits.join(format!("{TMP_PREFIX}{name}"));
        write_synced(&tmp, &bytes).map_err(self.io(&tmp))?;
        let dest = commits.join(&name);
        fs::rename(&tmp, &dest).map_err(self.io(&dest))?;
        sync_dir(&commits).map_err(self.io(&commits))?;
        self.last = Some(batch.batch_id);
        Ok(())
    }

    fn already_committed(&self, batch_id: u64) -> bool {
        self.last.is_some_and(|last| batch_id <= last)
    }

    /// Every commit entry by batch id; temp entries are ignored (recovery deletes them).
    fn read_commit_log(&self) -> Result<BTreeMap<u64, CommitEntry>, RuntimeError> {
        let dir = self.root.join(COMMITS_DIR);
        let mut entries = BTreeMap::new();
        for item in fs::read_dir(&dir).map_err(self.io(&dir))? {
            let item = item.map_err(self.io(&dir))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_suffix(".json")
                .filter(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let path = item.path();
            let bytes = fs::read(&path).map_err(self.io(&path))?;
            // Entries appear by rename, so a torn one is not a crash's doing: refuse to
            // guess which files are committed.
            let entry: CommitEntry =
                serde_json::from_slice(&bytes).map_err(|e| RuntimeError::Files {
                    sink: self.name.clone(),
                    reason: format!("commit entry {} is unreadable: {e}", path.display()),
                })?;
            if entry.version != VERSION || entry.batch_id != id {
                return Err(RuntimeError::Files {
                    sink: self.name.clone(),
                    reason: format!(
                        "commit entry {} has version {} and batch {} (expected {VERSION}, {id})",
                        path.display(),
                        entry.version,
                        entry.batch_id
                    ),
                });
            }
            if entry.job != self.job {
                return Err(RuntimeError::Files {
                    sink: self.name.clone(),
                    reason: format!(
                        "{} holds batches of job {}, not {}: use another path",
                        self.root.display(),
                        entry.job,
                        self.job
                    ),
                });
            }
            entries.insert(id, entry);
        }
        Ok(entries)
    }

    /// Collect every file under `dir` (relative to the root, `/`-separated), temp
    /// entries of the commit log included; symlinks are not followed.
    fn walk(&self, dir: &Path, rel: &str, found: &mut Vec<String>) -> Result<(), RuntimeError> {
        for item in fs::read_dir(dir).map_err(self.io(dir))? {
            let item = item.map_err(self.io(dir))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let kind = item.file_type().map_err(self.io(&item.path()))?;
            if kind.is_dir() {
                if rel.is_empty() && name == COMMITS_DIR {
                    // Only its temp files matter here.
                    for c in fs::read_dir(item.path()).map_err(self.io(&item.path()))? {
                        let c = c.map_err(self.io(&item.path()))?;
                        let cname = c.file_name().to_string_lossy().into_owned();
                        if cname.starts_with(TMP_PREFIX) {
                            found.push(format!("{COMMITS_DIR}/{cname}"));
                        }
                    }
                } else {
                    self.walk(&item.path(), &path, found)?;
                }
            } else if kind.is_file() {
                found.push(path);
            }
        }
        Ok(())
    }

    fn io<'a>(&'a self, path: &'a Path) -> impl FnOnce(std::io::Error) -> RuntimeError + 'a {
        move |source| RuntimeError::FilesIo {
            sink: self.name.clone(),
            path: path.to_path_buf(),
            source,
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
