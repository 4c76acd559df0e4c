//! Lookups by timestamp in [`PartitionLog`] (ListOffsets by timestamp and
//! KIP-734's max timestamp): find the batch through the segments' time
//! indexes, then the record inside it. A produced batch's header max
//! timestamp, which the time index trusts, is set from its records in
//! `validation.rs`.

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
