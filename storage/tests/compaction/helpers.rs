//! Helpers shared by the compaction tests: a compacted log's config, a
//! cleaner, open options for clean and unclean reopening, and the model of
//! what a cleaning pass must leave.

use std::collections::HashMap;
use std::sync::Arc;

use rivulet_storage::{
    CleanupPolicy, LogCleaner, LogConfig, LogOpenOptions, ManualClock, PartitionLog,
};

use crate::common::*;

pub(crate) fn compact_cfg() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        ..small_segments()
    }
}

pub(crate) fn cleaner(c: &Arc<ManualClock>) -> LogCleaner {
    LogCleaner::new(c.clone(), 1 << 26, 1 << 26)
}

pub(crate) fn append(log: &mut PartitionLog, records: &[(&str, Option<&str>, i64)]) {
    log.append_as_leader(&mut keyed_batch(records), 0).unwrap();
}

pub(crate) fn unclean_opts() -> LogOpenOptions {
    LogOpenOptions::default()
}

pub(crate) fn clean_opts(log_end: i64) -> LogOpenOptions {
    LogOpenOptions {
        clean_shutdown: true,
        recovery_point: log_end,
        ..LogOpenOptions::default()
    }
}

/// What compaction must leave of `recs`: below `end`, only the record with
/// the highest offset of each key (and no tombstone if `drop_tombstones`);
/// from `end` on, everything.
pub(crate) fn expected_after_compaction(recs: &[Rec], end: i64, drop_tombstones: bool) -> Vec<Rec> {
    let mut latest: HashMap<&Option<Vec<u8>>, i64> = HashMap::new();
    for r in recs.iter().filter(|r| r.0 < end) {
        latest.insert(&r.2, r.0);
    }
    recs.iter()
        .filter(|r| r.0 >= end || (latest[&r.2] == r.0 && !(drop_tombstones && r.3.is_none())))
        .cloned()
        .collect()
}
