//! Truncation of a [`PartitionLog`]: a follower whose log diverged from the
//! new leader's cuts it back (`truncate_to`), or drops it whole and restarts
//! it at the leader's log start (`truncate_fully_and_start_at`); producer
//! state is reloaded and a cleaning pass under way forgets what it cleaned
//! past the cut.

use tracing::info;

use super::PartitionLog;
use crate::error::{Result, StorageError};
use crate::log_segment::LogSegment;
use crate::producer_state::ProducerStateManager;

impl PartitionLog {
    /// Remove everything at and after `offset` (a follower whose log diverged
    /// from the new leader's). When `offset ≥ log_end` no record goes, but an
    /// epoch starting at the log end does (as Kafka's `UnifiedLog.truncateTo`).
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        if offset >= self.log_end_offset {
            // A replica that became leader and lost the leadership before
            // appending has its epoch at the log end. Kept, it stays the
            // follower's last fetched epoch, which the new leader never had:
            // every fetch would diverge again, truncating nothing.
            return self.epoch_cache.truncate_from_end(self.log_end_offset);
        }
        if offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        self.note_truncation(offset);
        // Before the log is cut: a crash in between must not leave a
        // snapshot of batches that are gone.
        self.delete_snapshots_above(offset)?;
        let doomed: Vec<i64> = self.segments.range(offset..).map(|(b, _)| *b).collect();
        let floor_exists = self.segments.range(..offset).next_back().is_some();
        for b in doomed {
            if b == offset && !floor_exists {
                continue;
            }
            if let Some(seg) = self.segments.remove(&b) {
                seg.delete()?;
            }
        }
        let name = self.tp.to_string();
        let seg = self
            .segments
            .values_mut()
            .next_back()
            .ok_or(StorageError::LogOffline(name))?;
        seg.truncate_to(offset)?;
        seg.reopen_for_append()?;
        let file = seg.file();
        self.log_end_offset = offset;
        self.high_watermark = self.high_watermark.min(offset);
        self.epoch_cache.truncate_from_end(offset)?;
        self.flush.rolled(file);
        self.flush.truncated(offset);
        // Producer state cannot be rolled back exactly (an epoch bump forgot
        // the batches before it): reload it, as Kafka's `truncateAndReload`,
        // from the newest snapshot at or below the new end.
        info!(partition = %self.tp, offset, "reloading producer state after truncation");
        self.load_producer_state(offset)
    }

    /// Drop the whole log and restart it, empty, at `offset`.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<()> {
        self.note_truncation(offset);
        crate::producer_snapshot::delete_snapshots(&self.dir, |_| true)?;
        for (_, seg) in std::mem::take(&mut self.segments) {
            seg.delete()?;
        }
        let seg = LogSegment::create(&self.dir, offset, &self.config, self.clock.now_ms())?;
        self.flush.rolled(seg.file());
        self.segments.insert(offset, seg);
        self.log_start_offset = offset;
        self.log_end_offset = offset;
        self.high_watermark = offset;
        self.txns.clear();
        self.txns.on_high_watermark(offset);
        self.producers = ProducerStateManager::new();
        self.epoch_cache.clear()?;
        self.flush.truncated(offset);
        Ok(())
    }

    /// Records from `offset` on are going: a cleaning pass under way may have
    /// mapped keys to them, and what was cleaned there is no longer (as
    /// Kafka's `maybeTruncateCheckpoint`).
    fn note_truncation(&mut self, offset: i64) {
        self.truncations += 1;
        self.cleaned_up_to = self.cleaned_up_to.min(offset);
    }
}
