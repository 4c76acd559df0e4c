//! A producer's batches checked record by record before they are appended,
//! as Kafka's `LogValidator` checks them (for appends from clients only:
//! the coordinators' batches are the broker's own, a follower's were
//! checked by its leader):
//!
//! - every record parses, and the records are the batch's `record_count`
//!   ([`records::scan_batch`]; compressed batches are decompressed for
//!   it, as Kafka does) — else `INVALID_RECORD`;
//! - a compacted topic refuses records without a key — `INVALID_RECORD`
//!   with the index of each in the response's record errors;
//! - on a CreateTime topic every timestamp lies within
//!   `message.timestamp.before.max.ms` / `after.max.ms` of the broker's
//!   clock — `INVALID_TIMESTAMP`, likewise per record;
//! - a producer may not mark a batch LogAppendTime — `INVALID_TIMESTAMP`.
//!
//! A topic with a `compression.type` other than `producer` gets batches
//! sent in another codec rebuilt in its own (Kafka's LogValidator
//! recompresses too): same producer id, epoch, sequence, attributes and
//! records; only the codec and so the bytes change.
//!
//! The batch's header max timestamp is then set to its records' largest
//! (Kafka's `setMaxTimestamp`, instead of trusting the client): the time
//! index and ListOffsets by time trust the header, and kafkajs 2.2.4 fills
//! it from the explicitly given timestamps only, Sarama 1.22 never (-1).
//!
//! The common case costs one pass over the records' lengths and varints
//! (nothing copied for an uncompressed batch); a second pass that names
//! each failing record runs only when the first found one.

use rivulet_protocol::record_batch::{BatchHeader, Compression, TimestampType};
use rivulet_protocol::records::{self, BatchSummary, DecodedBatch, RecordSketch};
use rivulet_protocol::RecordError;

use super::PartitionLog;
use crate::config::{TimestampPolicy, TopicCompression};
use crate::error::{RejectReason, RejectedRecords, Result, StorageError};

/// One walk over a batch's records: each to the visitor, then the summary.
type RecordPass<'a> =
    dyn Fn(&mut dyn FnMut(RecordSketch)) -> std::result::Result<BatchSummary, RecordError> + 'a;

/// Most record errors one rejected batch reports (Kafka reports all; a
/// batch of a hundred thousand keyless records would otherwise answer
/// with megabytes of messages). The error message gives the total.
pub const MAX_RECORD_ERRORS: usize = 100;

/// A produced batch once checked: what its header should say, and its
/// bytes rebuilt when the topic stores another codec.
pub(super) struct CheckedBatch {
    /// The records' largest timestamp (for the header of a CreateTime
    /// topic's batch).
    pub max_timestamp: Option<i64>,
    pub recompressed: Option<Vec<u8>>,
}

impl CheckedBatch {
    /// A batch the broker wrote itself: taken as it is.
    pub(super) const AS_IS: CheckedBatch = CheckedBatch {
        max_timestamp: None,
        recompressed: None,
    };
}

impl PartitionLog {
    /// Check a produced batch's records (CRC and header checked already)
    /// and rebuild it in the topic's codec if that differs.
    pub(super) fn check_produced_batch(
        &self,
        batch: &[u8],
        header: &BatchHeader,
        now: i64,
    ) -> Result<CheckedBatch> {
        let rebuild_in = match self.config.compression_type {
            TopicCompression::Codec(codec) if header.compression()? != codec => Some(codec),
            _ => None,
        };
        let Some(codec) = rebuild_in else {
            // Read in place (or as it inflates), at most twice.
            let scan = |visit: &mut dyn FnMut(RecordSketch)| {
                records::scan_batch(batch, self.max_decompressed, visit)
            };
            return Ok(CheckedBatch {
                max_timestamp: self.check_produced_records(header, now, &scan)?,
                recompressed: None,
            });
        };
        // Rebuilt: decoded once (which checks what the scan checks), the
        // rules run over the decoded records.
        let decoded = records::decode_batch(batch, self.max_decompressed)?;
        let walk = |visit: &mut dyn FnMut(RecordSketch)| {
            let mut summary = BatchSummary::EMPTY;
            for r in records::sketches(&decoded) {
                summary.add(&r);
                visit(r);
            }
            Ok(summary)
        };
        let max_timestamp = self.check_produced_records(header, now, &walk)?;
        Ok(CheckedBatch {
            max_timestamp,
            recompressed: Some(self.rebuilt(header, codec, &decoded)?),
        })
    }

    /// `decoded` rebuilt in `codec`, within `max.message.bytes`.
    fn rebuilt(
        &self,
        header: &BatchHeader,
        codec: Compression,
        decoded: &DecodedBatch,
    ) -> Result<Vec<u8>> {
        let rebuilt = records::build_batch_at(
            &header.with_compression(codec),
            &decoded.records,
            self.config.compression_level(codec),
        )?;
        let limit = self.config.max_message_bytes as usize;
        if rebuilt.len() > limit {
            return Err(StorageError::RecordTooLarge {
                size: rebuilt.len(),
                limit,
            });
        }
        Ok(rebuilt)
    }

    /// The records' checks; returns the max timestamp the batch's header
    /// should carry on a CreateTime topic.
    /// `pass` walks the records once, calling its argument for each, and
    /// sums them up.
    fn check_produced_records(
        &self,
        header: &BatchHeader,
        now: i64,
        pass: &RecordPass<'_>,
    ) -> Result<Option<i64>> {
        if header.timestamp_type() == TimestampType::LogAppendTime {
            return Err(reject_all(
                header,
                RejectReason::InvalidTimestamp,
                "producers may not set the timestamp type to LogAppendTime",
            ));
        }
        let summary = pass(&mut |_| {})?;
        let rules = self.record_rules(now);
        let keyless = rules.compacted && summary.keyless > 0;
        if keyless || rules.may_refuse_time(header, &summary) {
            let mut errors = RecordErrors::default();
            pass(&mut |r| errors.note(rules.refusal(header, &r), r.index))?;
            if let Some(rejected) = errors.into_rejection() {
                return Err(StorageError::RecordsRejected(rejected));
            }
        }
        Ok(summary.max_timestamp(header))
    }

    fn record_rules(&self, now: i64) -> RecordRules {
        let cfg = &self.config;
        RecordRules {
            compacted: cfg.cleanup_policy.compact,
            window: (cfg.timestamp_type == TimestampPolicy::CreateTime).then(|| {
                (
                    now.saturating_sub(cfg.timestamp_before_max_ms),
                    now.saturating_add(cfg.timestamp_after_max_ms),
                )
            }),
        }
    }
}

/// What one topic asks of each produced record.
struct RecordRules {
    compacted: bool,
    /// The accepted timestamps, inclusive, on a CreateTime topic.
    window: Option<(i64, i64)>,
}

impl RecordRules {
    /// Whether some record's timestamp might lie outside the window (the
    /// batch's extremes do; a record without a timestamp, -1, is not
    /// checked, so the second pass decides).
    fn may_refuse_time(&self, header: &BatchHeader, summary: &BatchSummary) -> bool {
        let Some((lo, hi)) = self.window else {
            return false;
        };
        let (Some(min), Some(max)) = (summary.min_timestamp(header), summary.max_timestamp(header))
        else {
            return false;
        };
        min < lo || max > hi
    }

    /// Why this record is refused, if it is: the key first, then the
    /// timestamp (Kafka's order).
    fn refusal(&self, header: &BatchHeader, r: &RecordSketch) -> Option<Refusal> {
        if self.compacted && !r.has_key {
            return Some(Refusal::NoKey);
        }
        let (lo, hi) = self.window?;
        let ts = header.base_timestamp.saturating_add(r.timestamp_delta);
        (ts != -1 && (ts < lo || ts > hi)).then_some(Refusal::Timestamp { ts, lo, hi })
    }
}

/// Why one record is refused.
enum Refusal {
    NoKey,
    /// Its timestamp lies outside `[lo, hi]`.
    Timestamp {
        ts: i64,
        lo: i64,
        hi: i64,
    },
}

impl Refusal {
    fn reason(&self) -> RejectReason {
        match self {
            Refusal::NoKey => RejectReason::InvalidRecord,
            Refusal::Timestamp { .. } => RejectReason::InvalidTimestamp,
        }
    }

    fn message(&self, index: usize) -> String {
        match self {
            Refusal::NoKey => "compacted topic cannot accept a record without a key".to_string(),
            Refusal::Timestamp { ts, lo, hi } => format!(
                "timestamp {ts} of record {index} is out of range: it should be within \
                 [{lo}, {hi}] (message.timestamp.before.max.ms / after.max.ms)"
            ),
        }
    }
}

/// The refused records of one batch, gathered in order.
#[derive(Default)]
struct RecordErrors {
    total: usize,
    /// Any refusal was for a timestamp (the batch is then answered
    /// INVALID_TIMESTAMP, as Kafka does).
    timestamp: bool,
    first: Vec<(i32, String)>,
}

impl RecordErrors {
    fn note(&mut self, refusal: Option<Refusal>, index: usize) {
        let Some(refusal) = refusal else {
            return;
        };
        self.total += 1;
        self.timestamp |= refusal.reason() == RejectReason::InvalidTimestamp;
        // Messages only for the records reported.
        if self.first.len() < MAX_RECORD_ERRORS {
            let index_i32 = i32::try_from(index).unwrap_or(i32::MAX);
            self.first.push((index_i32, refusal.message(index)));
        }
    }

    fn into_rejection(self) -> Option<RejectedRecords> {
        (self.total > 0).then_some(RejectedRecords {
            reason: if self.timestamp {
                RejectReason::InvalidTimestamp
            } else {
                RejectReason::InvalidRecord
            },
            total: self.total,
            errors: self.first,
        })
    }
}

/// Every record of the batch refused for one reason.
fn reject_all(header: &BatchHeader, reason: RejectReason, message: &str) -> StorageError {
    let total = usize::try_from(header.record_count).unwrap_or(0).max(1);
    let errors = (0..total.min(MAX_RECORD_ERRORS))
        .map(|i| (i32::try_from(i).unwrap_or(i32::MAX), message.to_string()))
        .collect();
    StorageError::RecordsRejected(RejectedRecords {
        reason,
        total,
        errors,
    })
}
