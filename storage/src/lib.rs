//! `rivulet-storage`: the log-structured store every partition lives in.
//!
//! Owns, per partition, a [`PartitionLog`] of [`LogSegment`]s — append-only
//! `.log` files of record batches kept byte-for-byte as producers sent them,
//! with sparse memory-mapped [`OffsetIndex`] and [`TimeIndex`] files and a
//! [`TransactionIndex`] of aborted transactions — plus the transaction state
//! read_committed needs (last stable offset, [`TxnTracker`]), the
//! idempotent-producer state ([`ProducerStateManager`]) and its
//! `<offset>.snapshot` files ([`producer_snapshot`]),
//! crash recovery, retention, compaction ([`LogCleaner`]), group-commit
//! durability ([`FlushTracker`]), Kafka-format checkpoint files, the
//! [`LogManager`] that holds all logs of a data directory, and the free-space
//! checks of its filesystem ([`disk`]).
//!
//! It does not know about sockets, Raft or replication: callers decide who
//! leads a partition, what the high watermark is and when to acknowledge.

pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod disk;
pub mod durability;
pub mod error;
pub mod histogram;
mod index_file;
pub mod leader_epoch_cache;
pub mod log_cleaner;
pub mod log_manager;
pub mod log_segment;
pub mod offset_index;
pub mod partition_log;
pub mod producer_snapshot;
pub mod producer_state;
pub mod time_index;
pub mod topic_partition;
pub mod transaction_index;
pub mod txn_tracker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    CleanupPolicy, ConfigError, FlushPolicy, LogConfig, StorageConfig, TimestampPolicy,
    TopicCompression,
};
pub use durability::FlushTracker;
pub use error::{RejectReason, RejectedRecords, Result, StorageError};
pub use leader_epoch_cache::LeaderEpochCache;
pub use log_cleaner::{CleanerStats, LogCleaner};
pub use log_manager::LogManager;
pub use log_segment::{LogSegment, ReadPlan};
pub use offset_index::{OffsetIndex, OffsetPosition};
pub use partition_log::{
    AppendOrigin, LogAppendInfo, LogOpenOptions, OpenReport, PartitionLog, ProducerStateLoad,
    RetentionResult,
};
pub use producer_snapshot::{ProducerSnapshot, SnapshotError};
pub use producer_state::{ProducerStateManager, SequenceCheck};
pub use time_index::{TimeIndex, TimestampOffset};
pub use topic_partition::{validate_topic_name, TopicPartition};
pub use transaction_index::{AbortedTxn, TransactionIndex};
pub use txn_tracker::{CompletedTxn, TxnTracker};
