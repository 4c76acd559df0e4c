//! Lookups by timestamp in [`PartitionLog`] (ListOffsets by timestamp and
//! KIP-734's max timestamp): find the batch through the segments' time
//! indexes, then the record inside it; and the max timestamp a produced
//! batch is indexed under.

use rivulet_protocol::record_batch::{self, BatchHeader};
use rivulet_protocol::records;

use super::PartitionLog;
use crate::error::Result;
use crate::time_index::TimestampOffset;

impl PartitionLog {
    /// The first record with timestamp ≥ `timestamp` at or after the log
    /// start: its offset and timestamp, or `None` if there is none (Kafka
    /// ListOffsets semantics).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        for seg in self.segments.values() {
            if seg.max_timestamp() < timestamp {
                continue;
            }
            let Some((pos, header)) =
                seg.find_batch_by_timestamp(timestamp, self.log_start_offset)?
            else {
                continue;
            };
            let batch = seg.read_batch(pos, &header)?;
            let start = self.log_start_offset;
            let found = self.first_record(&batch, |off, ts| off >= start && ts >= timestamp);
            return Ok(Some(found.unwrap_or(TimestampOffset {
                timestamp: header.max_timestamp,
                offset: header.base_offset.max(start),
            })));
        }
        Ok(None)
    }

    /// The record with the largest timestamp (ListOffsets -3, KIP-734).
    pub fn max_timestamp_offset(&self) -> Result<Option<TimestampOffset>> {
        let Some(seg) = self
            .segments
            .values()
            .filter(|s| s.max_timestamp() >= 0)
            .max_by_key(|s| (s.max_timestamp(), std::cmp::Reverse(s.base_offset())))
        else {
            return Ok(None);
        };
        let ts = seg.max_timestamp();
        match seg.find_batch_by_timestamp(ts, self.log_start_offset)? {
            Some((pos, header)) => {
                let batch = seg.read_batch(pos, &header)?;
                let found = self.first_record(&batch, |_, t| t >= ts);
                Ok(Some(found.unwrap_or(TimestampOffset {
                    timestamp: ts,
                    offset: header.base_offset,
                })))
            }
            None => Ok(None),
        }
    }

    /// Give a produced CreateTime batch its records' largest timestamp as
    /// its max timestamp (header rewritten, CRC recomputed), as Kafka's
    /// `LogValidator` does (`setMaxTimestamp`) instead of trusting the
    /// client: the time index and the lookups above trust the header.
    /// kafkajs 2.2.4 fills it from the explicitly given timestamps only
    /// (a send mixing records with and without one carries a max below its
    /// records'); Sarama 1.22 never sets it (-1).
    ///
    /// Uncompressed batches are read in place (each record's length and
    /// timestamp delta, nothing allocated). A compressed batch is opened
    /// only when its max lies below its base timestamp (certainly wrong):
    /// the produce path does not decompress otherwise, so a compressed
    /// batch with a plausible but low max keeps it. A batch whose records
    /// do not parse keeps its header (left to the consumer, as before).
    pub(super) fn fix_max_timestamp(
        &self,
        batch: &mut [u8],
        header: &mut BatchHeader,
    ) -> Result<()> {
        let max = match records::max_record_timestamp(batch) {
            Ok(Some(max)) => Some(max),
            Ok(None) if header.max_timestamp < header.base_timestamp => {
                records::decode_batch(batch, self.max_decompressed)
                    .ok()
                    .and_then(|decoded| {
                        decoded
                            .records
                            .iter()
                            .map(|r| decoded.timestamp_of(r))
                            .max()
                    })
                    .filter(|&m| m >= header.base_timestamp)
            }
            _ => None,
        };
        if let Some(max) = max.filter(|&m| m != header.max_timestamp) {
            record_batch::set_max_timestamp(batch, max)?;
            header.max_timestamp = max;
        }
        Ok(())
    }

    fn first_record(
        &self,
        batch: &[u8],
        pred: impl Fn(i64, i64) -> bool,
    ) -> Option<TimestampOffset> {
        let decoded = records::decode_batch(batch, self.max_decompressed).ok()?;
        decoded.records.iter().find_map(|r| {
            let (off, ts) = (decoded.offset_of(r), decoded.timestamp_of(r));
            pred(off, ts).then_some(TimestampOffset {
                timestamp: ts,
                offset: off,
            })
        })
    }
}
