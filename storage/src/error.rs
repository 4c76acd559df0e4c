//! The storage crate's error type. Every failure names the partition or file
//! it concerns, so an operator reading a log line knows where to look.

use std::path::PathBuf;

use rivulet_protocol::BatchError;
use thiserror::Error;

use crate::config::ConfigError;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("record batch of {size} bytes exceeds max.message.bytes {limit}")]
    RecordTooLarge { size: usize, limit: usize },
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("follower batch at offset {base_offset} does not follow the log end offset {log_end}")]
    NonMonotonicOffset { base_offset: i64, log_end: i64 },
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("corrupt checkpoint file {path} line {line}: {reason}")]
    CorruptCheckpoint {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("invalid topic partition directory name {0:?}")]
    InvalidPartitionDir(String),
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("partition {0} already exists")]
    LogExists(String),
    #[error("partition {0} does not exist")]
    UnknownPartition(String),
    #[error("cannot open more than {limit} partition logs (max.open.logs)")]
    TooManyLogs { limit: usize },
    #[error("log {0} is offline after an earlier I/O error")]
    LogOffline(String),
    #[error("{0}")]
    Records(#[from] rivulet_protocol::RecordError),
    #[error("{0}")]
    RecordsRejected(RejectedRecords),
}

/// Why produced records were refused one by one (the Kafka error the
/// whole batch is answered with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// `INVALID_RECORD`.
    InvalidRecord,
    /// `INVALID_TIMESTAMP`.
    InvalidTimestamp,
}

/// A produced batch refused for some of its records, as Kafka's
/// `RecordValidationException`: the records' indexes in the batch with a
/// message each (the first of them; `total` counts all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRecords {
    pub reason: RejectReason,
    pub total: usize,
    pub errors: Vec<(i32, String)>,
}

impl std::fmt::Display for RejectedRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} record(s) of the batch rejected", self.total)?;
        if let Some((index, message)) = self.errors.first() {
            write!(f, ", the first (record {index}): {message}")?;
        }
        Ok(())
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Attach a path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| StorageError::Io {
            path: path.into(),
            source,
        })
    }
}
