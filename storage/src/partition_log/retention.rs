//! Retention and DeleteRecords for [`PartitionLog`]: moving the log start
//! and deleting the segments wholly below it, by time and size, never past
//! the high watermark.

use super::{PartitionLog, RetentionResult};
use crate::error::{Result, StorageError};

impl PartitionLog {
    /// DeleteRecords: move the log start to `offset` (≤ the high watermark)
    /// and delete segments wholly below it. Returns the new log start.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64> {
        if offset > self.high_watermark || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.high_watermark,
            });
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            self.epoch_cache.truncate_from_start(offset)?;
            self.delete_segments_below_start()?;
        }
        Ok(self.log_start_offset)
    }

    fn delete_segments_below_start(&mut self) -> Result<RetentionResult> {
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let count = bases
            .windows(2)
            .take_while(|w| w[1] <= self.log_start_offset)
            .count();
        self.delete_oldest(count)
    }

    fn delete_oldest(&mut self, count: usize) -> Result<RetentionResult> {
        let mut result = RetentionResult::default();
        for _ in 0..count.min(self.segments.len().saturating_sub(1)) {
            if let Some((_, seg)) = self.segments.pop_first() {
                result.segments += 1;
                result.bytes += seg.size();
                seg.delete()?;
            }
        }
        if let Some(first) = self.segments.keys().next() {
            if *first > self.log_start_offset {
                self.log_start_offset = *first;
                self.epoch_cache.truncate_from_start(*first)?;
            }
        }
        self.high_watermark = self.high_watermark.max(self.log_start_offset);
        self.txns.on_high_watermark(self.high_watermark);
        if result.segments > 0 {
            tracing::info!(
                partition = %self.tp, segments = result.segments, bytes = result.bytes,
                log_start_offset = self.log_start_offset,
                "deleted old segments (retention or DeleteRecords)"
            );
            // The state itself is kept (KIP-360: producers outlive their
            // data); only snapshots no open could start from go.
            self.delete_snapshots_below_first_segment()?;
        }
        Ok(result)
    }

    /// Apply retention: segments below the log start always go; with
    /// `cleanup.policy` including `delete`, the oldest segments older than
    /// `retention.ms` or beyond `retention.bytes` go too, if they are wholly
    /// below the high watermark. If the active segment itself has expired
    /// (and is committed) it is rolled first, as Kafka does.
    pub fn delete_old_segments(&mut self) -> Result<RetentionResult> {
        let mut total = self.delete_segments_below_start()?;
        if !self.config.cleanup_policy.delete {
            return Ok(total);
        }
        let now = self.clock.now_ms();
        let retention_ms = self.config.retention_ms;
        let mut by_time = 0;
        if retention_ms >= 0 {
            by_time = self
                .segments
                .values()
                .take_while(|s| now - s.largest_timestamp() > retention_ms)
                .count();
        }
        let mut by_size = 0;
        if self.config.retention_bytes >= 0 {
            let mut excess = self.size_in_bytes() as i64 - self.config.retention_bytes;
            for s in self.segments.values() {
                if excess - (s.size() as i64) < 0 {
                    break;
                }
                excess -= s.size() as i64;
                by_size += 1;
            }
        }
        // As Kafka, only segments wholly below the high watermark: retention
        // must not remove records followers may not have replicated yet.
        let committed = self
            .segments
            .keys()
            .skip(1)
            .copied()
            .chain(std::iter::once(self.log_end_offset))
            .take_while(|upper| *upper <= self.high_watermark)
            .count();
        let count = by_time.max(by_size).min(committed);
        if count == 0 {
            return Ok(total);
        }
        if count >= self.segments.len() {
            // Every segment, the active one included, is due: roll so it can go.
            self.roll()?;
        }
        let r = self.delete_oldest(count)?;
        if self.log_start_offset < self.first_base() {
            self.log_start_offset = self.first_base();
        }
        total.segments += r.segments;
        total.bytes += r.bytes;
        Ok(total)
    }

    fn first_base(&self) -> i64 {
        self.segments
            .keys()
            .next()
            .copied()
            .unwrap_or(self.log_end_offset)
    }
}
