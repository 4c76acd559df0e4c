//! One listing of a partition directory at open, shared by the steps that
//! used to list it each on their own (interrupted cleaner swaps, segment
//! bases, producer-state snapshots): a node with 10,000 partitions read
//! every directory four times per start.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::leader_epoch_cache::LEADER_EPOCH_CHECKPOINT;
use crate::log_segment::{self, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::transaction_index::TXN_INDEX_SUFFIX;

/// The file names in a partition directory.
#[derive(Debug, Default)]
pub(super) struct DirListing {
    names: Vec<String>,
}

impl DirListing {
    /// List `dir`, creating it (empty) if it does not exist.
    pub(super) fn read_or_create(dir: &Path) -> Result<Self> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(dir).at(dir)?;
                return Ok(DirListing::default());
            }
            Err(e) => return Err(e).at(dir),
        };
        let mut names = Vec::new();
        for entry in entries {
            names.push(entry.at(dir)?.file_name().to_string_lossy().into_owned());
        }
        Ok(DirListing { names })
    }

    /// Whether every file is a segment file or the leader-epoch checkpoint:
    /// no cleaner swap to finish, no producer snapshot or temp file to look
    /// at (the common case, which then needs no other listing).
    pub(super) fn only_segments(&self) -> bool {
        self.names.iter().all(|n| {
            n == LEADER_EPOCH_CHECKPOINT
                || [
                    LOG_SUFFIX,
                    INDEX_SUFFIX,
                    TIME_INDEX_SUFFIX,
                    TXN_INDEX_SUFFIX,
                ]
                .iter()
                .any(|s| log_segment::parse_segment_name(n, s).is_some())
        })
    }

    /// The base offsets of the `.log` files, ascending; index files without
    /// their log are deleted.
    pub(super) fn segment_bases(&self, dir: &Path) -> Result<Vec<i64>> {
        let mut bases = Vec::new();
        let mut indexes = Vec::new();
        for name in &self.names {
            if let Some(b) = log_segment::parse_segment_name(name, LOG_SUFFIX) {
                bases.push(b);
            } else if let Some(b) = log_segment::parse_segment_name(name, INDEX_SUFFIX)
                .or_else(|| log_segment::parse_segment_name(name, TIME_INDEX_SUFFIX))
                .or_else(|| log_segment::parse_segment_name(name, TXN_INDEX_SUFFIX))
            {
                indexes.push((b, dir.join(name)));
            }
        }
        bases.sort_unstable();
        for (b, path) in indexes {
            if bases.binary_search(&b).is_err() {
                fs::remove_file(&path).at(&path)?;
            }
        }
        Ok(bases)
    }
}
