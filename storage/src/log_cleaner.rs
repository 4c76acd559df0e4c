//! `LogCleaner`: log compaction for `cleanup.policy=compact` (KIP-58 and
//! Kafka's `LogCleaner`).
//!
//! A pass works in two phases so appends and reads are never blocked for
//! long: under the log's lock [`PartitionLog::cleanable_range`] snapshots the
//! closed segments that may be cleaned (below the active segment, the last
//! stable offset — so never an undecided or unreplicated transaction — and
//! `min.compaction.lag.ms`) with the aborted transactions among them; without the lock
//! [`LogCleaner::compact`] maps every key to its latest offset and writes
//! each group of old segments into one `.cleaned` segment keeping only the
//! latest record per key (tombstones until `delete.retention.ms` has passed);
//! under the lock again [`PartitionLog::install_cleaned`] swaps the files.
//!
//! Offsets never change: a batch keeps its base offset and each kept record
//! its offset delta. A batch whose records all survive is copied byte for
//! byte; batches that cannot be decoded are kept whole. Transactions
//! (`txn_filter`): data of aborted transactions is dropped and never enters
//! the key map; control batches are never deduplicated by key, and a marker
//! goes only after its transaction's data and `delete.retention.ms` (KIP-534).
//! A group's last batch is kept, emptied if none of its records survive, so
//! a cleaned segment ends at the same offset as the segments it replaces.
//!
//! The swap is crash-safe: `.cleaned` files are fsynced and renamed to
//! `.swap` (log last), the old segments deleted, then the `.swap` files
//! renamed into place. [`complete_interrupted_swaps`] finishes or discards a
//! swap a crash interrupted.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rivulet_protocol::record_batch::BatchHeader;
use rivulet_protocol::records::{self, Record};

use crate::checkpoint::sync_dir;
use crate::clock::Clock;
use crate::config::LogConfig;
use crate::error::{IoContext, Result};
use crate::log_segment::{self, for_each_batch, remove_if_exists, LogSegment, LOG_SUFFIX};
use crate::partition_log::PartitionLog;
use crate::transaction_index::{AbortedTxn, TXN_INDEX_SUFFIX};

mod txn_filter;

use txn_filter::{MarkerFate, TxnFilter};

const CLEANED: &str = ".cleaned";
const SWAP: &str = ".swap";
/// Bookkeeping bytes charged per key in the offset map, besides the key.
const MAP_ENTRY_OVERHEAD: usize = 64;

/// What a cleaning pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanerStats {
    pub segments_cleaned: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_kept: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
}

/// A closed segment as the cleaner sees it: immutable while it is cleaned.
#[derive(Debug, Clone)]
struct SegmentRef {
    base: i64,
    size: u64,
    next_offset: i64,
    file: Arc<fs::File>,
}

/// Closed segments eligible for cleaning, snapshotted under the log's lock.
#[derive(Debug, Clone)]
pub struct CleanableRange {
    dir: PathBuf,
    config: LogConfig,
    segments: Vec<SegmentRef>,
    /// Records at or after this offset are not cleaned.
    end: i64,
    /// The log's truncation count when the range was taken.
    truncations: u64,
    /// Aborted transactions with data or marker in the range.
    aborted: Vec<AbortedTxn>,
}

impl CleanableRange {
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

/// Cleaned replacements for groups of old segments, ready to install.
#[derive(Debug)]
pub struct CleanedSegments {
    groups: Vec<(Vec<(i64, u64)>, LogSegment)>,
    end: i64,
    truncations: u64,
    pub stats: CleanerStats,
}

#[derive(Debug, Clone)]
pub struct LogCleaner {
    clock: Arc<dyn Clock>,
    /// Largest decompressed batch the cleaner expands.
    max_decompressed: usize,
    /// Memory budget of the key → offset map (`log.cleaner.dedupe.buffer.size`).
    max_map_bytes: usize,
}

impl LogCleaner {
    pub fn new(clock: Arc<dyn Clock>, max_decompressed: usize, max_map_bytes: usize) -> Self {
        LogCleaner {
            clock,
            max_decompressed,
            max_map_bytes,
        }
    }

    /// Clean `log` now if it is compacted and dirty enough (or `force`).
    /// Both phases run with `log` borrowed; callers that share the log should
    /// use the phases separately.
    pub fn clean(&self, log: &mut PartitionLog, force: bool) -> Result<Option<CleanerStats>> {
        let Some(range) = log.cleanable_range(self.clock.now_ms(), force) else {
            return Ok(None);
        };
        let cleaned = self.compact(&range)?;
        let stats = cleaned.stats;
        log.install_cleaned(cleaned)?;
        Ok(Some(stats))
    }

    /// Phase two: build the key map and write cleaned segments. Touches only
    /// files of closed segments and new `.cleaned` files.
    pub fn compact(&self, range: &CleanableRange) -> Result<CleanedSegments> {
        let now = self.clock.now_ms();
        let (map, end) = self.build_offset_map(range)?;
        let delete_horizon = now.saturating_sub(range.config.delete_retention_ms);
        let mut stats = CleanerStats::default();
        let mut groups = Vec::new();
        let mut txns = TxnFilter::new(&range.aborted);
        let eligible: Vec<&SegmentRef> = range
            .segments
            .iter()
            .filter(|s| s.next_offset <= end)
            .collect();
        for group in group_segments(&eligible, range.config.segment_bytes) {
            let Some(first) = group.first() else { continue };
            let mut out =
                LogSegment::create_with_extra(&range.dir, first.base, &range.config, now, CLEANED)?;
            let mut last_batch: Option<BatchHeader> = None;
            for seg in &group {
                stats.bytes_read += seg.size;
                for_each_batch(&seg.file, seg.size, |header, bytes| {
                    last_batch = Some(*header);
                    let (kept, aborted) = if header.is_control() {
                        self.filter_control(header, bytes, &mut txns, now, &range.config)?
                    } else if txns.on_data_batch(header) {
                        stats.records_removed += header.record_count.max(0) as u64;
                        (None, None)
                    } else {
                        let kept =
                            self.filter_batch(header, bytes, &map, delete_horizon, &mut stats)?;
                        (kept, None)
                    };
                    if let Some(kept) = kept {
                        let h = BatchHeader::parse(&kept)?;
                        out.append(&h, &kept)?;
                        if let Some(entry) = aborted {
                            out.txn_index_mut().append(entry)?;
                        }
                    }
                    Ok(())
                })?;
            }
            // Recovery from a crash after the swap deletes the old segments
            // the swapped-in segment's offsets reach
            // (`complete_interrupted_swaps`), so the cleaned segment must end
            // where the group did: a last batch that lost every record stays
            // as an empty batch (as Kafka's cleaner can retain empty batches).
            if let Some(last) = last_batch.filter(|h| h.next_offset() > out.next_offset()) {
                let empty = records::build_batch(&last, &[])?;
                out.append(&BatchHeader::parse(&empty)?, &empty)?;
            }
            out.on_becoming_inactive()?;
            stats.bytes_written += out.size();
            stats.segments_cleaned += group.len();
            groups.push((group.iter().map(|s| (s.base, s.size)).collect(), out));
        }
        Ok(CleanedSegments {
            groups,
            end,
            truncations: range.truncations,
            stats,
        })
    }

    /// A control batch: never deduplicated; `None` once its transaction's
    /// data is gone and its delete horizon passed. With a retained ABORT
    /// marker, the index entry its cleaned segment keeps.
    fn filter_control(
        &self,
        header: &BatchHeader,
        bytes: &[u8],
        txns: &mut TxnFilter,
        now: i64,
        config: &LogConfig,
    ) -> Result<(Option<Vec<u8>>, Option<AbortedTxn>)> {
        match txns.on_control_batch(header, bytes) {
            (MarkerFate::Keep, entry) => Ok((Some(bytes.to_vec()), entry)),
            (MarkerFate::Removable, _) => Ok((
                txn_filter::removable_marker(
                    header,
                    bytes,
                    now,
                    config.delete_retention_ms,
                    self.max_decompressed,
                )?,
                None,
            )),
        }
    }

    /// Latest offset of every key below `range.end`, stopping early at a
    /// segment boundary when the map would exceed its memory budget. Control
    /// batches and data of aborted transactions have no say.
    fn build_offset_map(&self, range: &CleanableRange) -> Result<(HashMap<Bytes, i64>, i64)> {
        let mut map: HashMap<Bytes, i64> = HashMap::new();
        let mut used = 0usize;
        let mut end = range.end;
        let txns = TxnFilter::new(&range.aborted);
        for seg in &range.segments {
            let mut over_budget = false;
            let mut seg_map: Vec<(Bytes, i64)> = Vec::new();
            for_each_batch(&seg.file, seg.size, |header, bytes| {
                if header.is_control() || txns.aborted_txn_of(header).is_some() {
                    return Ok(());
                }
                let Ok(decoded) = records::decode_batch(bytes, self.max_decompressed) else {
                    return Ok(());
                };
                for r in &decoded.records {
                    if let Some(key) = &r.key {
                        used += key.len() + MAP_ENTRY_OVERHEAD;
                        seg_map.push((key.clone(), decoded.offset_of(r)));
                    }
                }
                over_budget |= used > self.max_map_bytes;
                Ok(())
            })?;
            if over_budget && !map.is_empty() {
                end = seg.base;
                break;
            }
            map.extend(seg_map);
            if over_budget {
                end = seg.next_offset;
                break;
            }
        }
        Ok((map, end))
    }

    /// The bytes to keep of one batch: `None` to drop it, the original bytes
    /// when every record stays, else a rebuilt batch with the same header.
    fn filter_batch(
        &self,
        header: &BatchHeader,
        bytes: &[u8],
        map: &HashMap<Bytes, i64>,
        delete_horizon: i64,
        stats: &mut CleanerStats,
    ) -> Result<Option<Vec<u8>>> {
        let Ok(decoded) = records::decode_batch(bytes, self.max_decompressed) else {
            return Ok(Some(bytes.to_vec()));
        };
        let mut kept: Vec<Record> = Vec::with_capacity(decoded.records.len());
        for r in &decoded.records {
            let offset = decoded.offset_of(r);
            let latest = r
                .key
                .as_ref()
                .and_then(|k| map.get(k))
                .is_some_and(|o| *o == offset);
            let expired_tombstone = r.value.is_none() && decoded.timestamp_of(r) < delete_horizon;
            if latest && !expired_tombstone {
                kept.push(r.clone());
            } else {
                stats.records_removed += 1;
                if r.value.is_none() && latest {
                    stats.tombstones_removed += 1;
                }
            }
        }
        stats.records_kept += kept.len() as u64;
        if kept.is_empty() {
            return Ok(None);
        }
        if kept.len() == decoded.records.len() {
            return Ok(Some(bytes.to_vec()));
        }
        Ok(Some(records::build_batch(header, &kept)?))
    }
}

/// Split segments into runs whose total size fits one segment and whose
/// offsets fit 32-bit relative offsets.
fn group_segments<'a>(segments: &[&'a SegmentRef], max_bytes: u64) -> Vec<Vec<&'a SegmentRef>> {
    let mut groups: Vec<Vec<&SegmentRef>> = Vec::new();
    let mut current: Vec<&SegmentRef> = Vec::new();
    let mut size = 0u64;
    for seg in segments {
        let fits = current.first().is_none_or(|first| {
            size + seg.size <= max_bytes && seg.next_offset - first.base <= i32::MAX as i64
        });
        if !fits {
            groups.push(std::mem::take(&mut current));
            size = 0;
        }
        size += seg.size;
        current.push(seg);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

impl PartitionLog {
    /// Phase one of a cleaning pass: the closed segments that may be cleaned
    /// now, or `None` when the log is not compacted, nothing is cleanable or
    /// (unless `force`) less than `min.cleanable.dirty.ratio` is dirty and
    /// no dirty record is older than `max.compaction.lag.ms` (KIP-354: the
    /// first dirty segment's first batch, as Kafka measures it).
    pub fn cleanable_range(&self, now_ms: i64, force: bool) -> Option<CleanableRange> {
        if !self.config.cleanup_policy.compact {
            return None;
        }
        let lag_limit = now_ms.saturating_sub(self.config.min_compaction_lag_ms);
        let active_base = self.segments.keys().next_back().copied()?;
        // Never past the LSO (which is at most the high watermark): an open
        // or unreplicated transaction's fate is not known yet.
        let mut end = active_base.min(self.last_stable_offset());
        let mut segments = Vec::new();
        let mut first_dirty_ts = None;
        for seg in self.segments.values() {
            if seg.base_offset() >= active_base || seg.next_offset() > end {
                break;
            }
            if seg.max_timestamp() > lag_limit {
                end = seg.base_offset();
                break;
            }
            if first_dirty_ts.is_none() && seg.next_offset() > self.cleaned_up_to {
                first_dirty_ts = Some(
                    seg.first_batch_timestamp()
                        .unwrap_or_else(|| seg.largest_timestamp()),
                );
            }
            segments.push(SegmentRef {
                base: seg.base_offset(),
                size: seg.size(),
                next_offset: seg.next_offset(),
                file: seg.file(),
            });
        }
        let last = segments.last()?;
        end = end.min(last.next_offset);
        let overdue = first_dirty_ts
            .is_some_and(|ts| now_ms.saturating_sub(ts) > self.config.max_compaction_lag_ms);
        if !force && !overdue {
            let total: u64 = segments.iter().map(|s| s.size).sum();
            let dirty: u64 = segments
                .iter()
                .filter(|s| s.next_offset > self.cleaned_up_to)
                .map(|s| s.size)
                .sum();
            if total == 0 || (dirty as f64) / (total as f64) < self.config.min_cleanable_dirty_ratio
            {
                return None;
            }
        }
        let first_base = segments.first().map_or(end, |s| s.base);
        // In memory; it cannot fail, but if it did no pass must run blind.
        let aborted = self.aborted_transactions(first_base, end).ok()?;
        Some(CleanableRange {
            dir: self.dir().to_path_buf(),
            config: self.config.clone(),
            segments,
            end,
            truncations: self.truncations,
            aborted,
        })
    }

    /// Phase three: swap cleaned segments in for the ones they replace. A
    /// group whose old segments changed meanwhile (retention) is discarded;
    /// after a truncation the whole pass is, since its key map may have
    /// pointed at records that are gone (Kafka aborts cleaning on truncation).
    pub fn install_cleaned(&mut self, cleaned: CleanedSegments) -> Result<()> {
        let dir = self.dir().to_path_buf();
        let truncated = cleaned.truncations != self.truncations;
        let mut end = cleaned.end;
        for (old, mut new) in cleaned.groups {
            let unchanged = old
                .iter()
                .all(|(base, size)| self.segments.get(base).is_some_and(|s| s.size() == *size));
            if truncated || !unchanged {
                end = end.min(old.first().map_or(end, |(base, _)| *base));
                new.delete()?;
                continue;
            }
            new.rename_extra(SWAP)?;
            sync_dir(&dir)?;
            for (base, _) in &old {
                if let Some(seg) = self.segments.remove(base) {
                    seg.delete()?;
                }
            }
            new.rename_extra("")?;
            sync_dir(&dir)?;
            self.segments.insert(new.base_offset(), new);
        }
        if !truncated {
            self.cleaned_up_to = self.cleaned_up_to.max(end);
        }
        Ok(())
    }
}

/// Finish what a crash interrupted: discard `.cleaned` files; for each
/// `<base>.log.swap` delete the old segments it replaces and move the swap
/// files into place.
pub(crate) fn complete_interrupted_swaps(dir: &Path, config: &LogConfig) -> Result<()> {
    let mut swaps = Vec::new();
    let mut stray = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(CLEANED) {
            stray.push(entry.path());
        } else if let Some(stem) = name.strip_suffix(SWAP) {
            if let Some(base) = log_segment::parse_segment_name(stem, LOG_SUFFIX) {
                swaps.push(base);
            } else {
                stray.push(entry.path());
            }
        }
    }
    for p in stray {
        remove_if_exists(&p)?;
    }
    swaps.sort_unstable();
    for base in swaps {
        let mut seg = LogSegment::open_with_extra(dir, base, config, false, SWAP)?;
        seg.recover(usize::MAX, |_| {})?;
        let end = seg.next_offset();
        // Old segments inside the swapped range, and the replaced segment's
        // own files, go before the swap files take their names.
        for entry in fs::read_dir(dir).at(dir)? {
            let entry = entry.at(dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let old = log_segment::parse_segment_name(&name, LOG_SUFFIX)
                .or_else(|| log_segment::parse_segment_name(&name, log_segment::INDEX_SUFFIX))
                .or_else(|| log_segment::parse_segment_name(&name, log_segment::TIME_INDEX_SUFFIX))
                .or_else(|| log_segment::parse_segment_name(&name, TXN_INDEX_SUFFIX));
            if old.is_some_and(|b| b >= base && b < end.max(base + 1)) {
                remove_if_exists(&entry.path())?;
            }
        }
        seg.on_becoming_inactive()?;
        seg.rename_extra("")?;
        sync_dir(dir)?;
    }
    Ok(())
}
