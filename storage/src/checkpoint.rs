//! Checkpoint files in Kafka's text format, written atomically.
//!
//! An offset checkpoint (`recovery-point-offset-checkpoint`,
//! `replication-offset-checkpoint`, `log-start-offset-checkpoint`) is
//! ```text
//! 0                 version
//! 2                 entry count
//! orders 0 1234     topic partition offset
//! orders 1 99
//! ```
//! and a `leader-epoch-checkpoint` is the same with `epoch start_offset` lines.
//! Every write goes to `<name>.tmp`, is fsynced, renamed over the old file and
//! the directory fsynced, so a crash leaves either the old or the new file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result, StorageError};
use crate::topic_partition::TopicPartition;

const VERSION: &str = "0";

/// Write `contents` to `path` atomically: temp file, fsync, rename, fsync dir.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .at(&tmp)?;
        f.write_all(contents).at(&tmp)?;
        f.sync_all().at(&tmp)?;
    }
    fs::rename(&tmp, path).at(path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsync a directory so that entries created, renamed or removed in it
/// survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Read the lines of a versioned checkpoint file; `Ok(None)` if it does not
/// exist. Returns the entry lines after checking version and count.
fn read_entries(path: &Path) -> Result<Option<Vec<String>>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(path),
    };
    let corrupt = |line: usize, reason: String| StorageError::CorruptCheckpoint {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut lines = text.lines();
    match lines.next() {
        Some(VERSION) => {}
        other => return Err(corrupt(1, format!("expected version 0, found {other:?}"))),
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| corrupt(2, "missing or invalid entry count".into()))?;
    let entries: Vec<String> = lines
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    if entries.len() != count {
        return Err(corrupt(
            2,
            format!("declares {count} entries but holds {}", entries.len()),
        ));
    }
    Ok(Some(entries))
}

fn render(entries: &[String]) -> Vec<u8> {
    let mut s = format!("{VERSION}\n{}\n", entries.len());
    for e in entries {
        s.push_str(e);
        s.push('\n');
    }
    s.into_bytes()
}

/// A data-dir level checkpoint of one offset per partition.
#[derive(Debug, Clone)]
pub struct OffsetCheckpointFile {
    path: PathBuf,
}

impl OffsetCheckpointFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        OffsetCheckpointFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let entries: Vec<String> = offsets
            .iter()
            .map(|(tp, off)| format!("{} {} {}", tp.topic, tp.partition, off))
            .collect();
        write_atomically(&self.path, &render(&entries))
    }

    /// The checkpointed offsets; empty if the file does not exist.
    pub fn read(&self) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut out = BTreeMap::new();
        let Some(entries) = read_entries(&self.path)? else {
            return Ok(out);
        };
        for (i, line) in entries.iter().enumerate() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let parsed = match parts.as_slice() {
                [topic, partition, offset] => partition
                    .parse::<i32>()
                    .ok()
                    .zip(offset.parse::<i64>().ok())
                    .map(|(p, o)| (TopicPartition::new(*topic, p), o)),
                _ => None,
            };
            let (tp, off) = parsed.ok_or_else(|| StorageError::CorruptCheckpoint {
                path: self.path.clone(),
                line: i + 3,
                reason: format!("expected 'topic partition offset', found {line:?}"),
            })?;
            out.insert(tp, off);
        }
        Ok(out)
    }
}

/// Per-partition `leader-epoch-checkpoint`: `(epoch, start_offset)` pairs.
pub fn write_epoch_checkpoint(path: &Path, entries: &[(i32, i64)]) -> Result<()> {
    let lines: Vec<String> = entries.iter().map(|(e, o)| format!("{e} {o}")).collect();
    write_atomically(path, &render(&lines))
}

pub fn read_epoch_checkpoint(path: &Path) -> Result<Vec<(i32, i64)>> {
    let Some(entries) = read_entries(path)? else {
        return Ok(Vec::new());
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let mut it = line.split_whitespace();
            let epoch = it.next().and_then(|s| s.parse::<i32>().ok());
            let offset = it.next().and_then(|s| s.parse::<i64>().ok());
            match (epoch, offset, it.next()) {
                (Some(e), Some(o), None) => Ok((e, o)),
                _ => Err(StorageError::CorruptCheckpoint {
                    path: path.to_path_buf(),
                    line: i + 3,
                    reason: format!("expected 'epoch start_offset', found {line:?}"),
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_checkpoint_round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let file = OffsetCheckpointFile::new(dir.path().join("recovery-point-offset-checkpoint"));
        assert!(file.read().unwrap().is_empty());
        let mut m = BTreeMap::new();
        m.insert(TopicPartition::new("a-b", 0), 10);
        m.insert(TopicPartition::new("c", 3), 7);
        file.write(&m).unwrap();
        assert_eq!(file.read().unwrap(), m);
        m.insert(TopicPartition::new("c", 3), 8);
        file.write(&m).unwrap();
        assert_eq!(file.read().unwrap(), m);
        assert!(!dir
            .path()
            .join("recovery-point-offset-checkpoint.tmp")
            .exists());
        let text = fs::read_to_string(file.path()).unwrap();
        assert_eq!(text, "0\n2\na-b 0 10\nc 3 8\n");
    }

    #[test]
    fn corrupt_checkpoint_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        fs::write(&path, "0\n2\na 0 1\nb x 2\n").unwrap();
        let err = OffsetCheckpointFile::new(&path).read().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 4"), "{msg}");
        fs::write(&path, "0\n3\na 0 1\n").unwrap();
        assert!(OffsetCheckpointFile::new(&path).read().is_err());
        fs::write(&path, "7\n0\n").unwrap();
        assert!(OffsetCheckpointFile::new(&path).read().is_err());
    }

    #[test]
    fn epoch_checkpoint_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leader-epoch-checkpoint");
        write_epoch_checkpoint(&path, &[(0, 0), (3, 120)]).unwrap();
        assert_eq!(
            read_epoch_checkpoint(&path).unwrap(),
            vec![(0, 0), (3, 120)]
        );
    }
}
