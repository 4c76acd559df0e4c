//! Typed errors for malformed wire data. Each variant names what is wrong so
//! the broker can log it and map it to a Kafka error code (`CORRUPT_MESSAGE`,
//! `INVALID_RECORD`, ...).

use thiserror::Error;

/// Why bytes are not a valid v2 record batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    TooShort { needed: usize, available: usize },
    #[error("unsupported record batch magic {0} (only v2 is accepted)")]
    UnsupportedMagic(i8),
    #[error("invalid batch length field {0}")]
    BadBatchLength(i32),
    #[error("batch declares {declared} bytes but {actual} were given")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("invalid record count {count} for last offset delta {last_offset_delta}")]
    BadRecordCount { count: i32, last_offset_delta: i32 },
    #[error("invalid last offset delta {0}")]
    BadLastOffsetDelta(i32),
    #[error("invalid base offset {0}")]
    BadBaseOffset(i64),
    #[error("unknown compression codec id {0}")]
    UnknownCompression(i16),
    /// Kafka's `LogValidator`: "Clients are not allowed to write control
    /// records" (answered `INVALID_RECORD`).
    #[error("clients are not allowed to write control batches")]
    ControlBatchFromClient,
    /// Kafka's `LogValidator`: a batch with a producer id must carry a
    /// sequence (answered `INVALID_RECORD`).
    #[error("invalid sequence number {sequence} in a batch of producer {producer_id}")]
    MissingSequence { producer_id: i64, sequence: i32 },
    #[error("invalid control batch: {0}")]
    InvalidControlBatch(&'static str),
}

/// Why the records inside a batch could not be decoded or encoded.
#[derive(Debug, Error)]
pub enum RecordError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    #[error("records decompress to more than the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("{codec} decompression failed: {source}")]
    Decompress {
        codec: &'static str,
        source: std::io::Error,
    },
    #[error("{codec} compression failed: {source}")]
    Compress {
        codec: &'static str,
        source: std::io::Error,
    },
}
