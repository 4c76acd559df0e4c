//! Where a job resumes and which batches it replays, as pure functions over what the
//! checkpoint file, the exactly-once sinks and the batch log hold (tested without a
//! broker or a database).
//!
//! The protocol they rely on (Spark Structured Streaming's, with our sinks): batch N is
//! planned in the batch log ([`super::batch_log`]) before any sink sees it; every
//! exactly-once sink commits its rows atomically with the id of the last batch it holds
//! (PostgreSQL: its state table; Kafka: the offset metadata of the transaction, KIP-98;
//! files: their commit log); the checkpoint file (batch id, end offsets, snapshot) is
//! written after all sinks, and batch N+1 is planned only after it. So at any crash,
//! every exactly-once sink holds batch C or C+1, where C is the last checkpoint.
//!
//! Rules:
//! - The base — the state a restart runs from — is the freshest full state (offsets and
//!   snapshot: the checkpoint file, or a PostgreSQL sink's database) at or below the
//!   last batch *every* exactly-once sink has (`floor`). A database ahead of a lost or
//!   stale checkpoint file wins; a checkpoint ahead of a sink (a wiped database) does
//!   not count. Without exactly-once sinks the checkpoint file is the base.
//! - Then every batch of the log from base+1 on, without gaps, is replayed, in order:
//!   read exactly its planned offsets, run from the previous batch's snapshot, and
//!   write it to the sinks that lack it ([`writes_batch`]). That covers both a batch
//!   some sinks committed and others not, and a batch planned but written nowhere.
//! - A batch some sink committed (up to the highest sink's `ceil`) that cannot be
//!   replayed — not in the log — is an error: resuming without it would lose or repeat
//!   rows in some sink.
//! - Log entries after the last replayed batch belong to no live history (a log beyond
//!   a gap): they are discarded so new batches take their ids afresh.

use std::collections::BTreeSet;

use super::offsets::{Offsets, ResumePoint};

/// What a restart does before running new batches.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// The state to start from (`None`: the job starts where its sources' `start` says).
    pub base: Option<ResumePoint>,
    /// Batch log entries to replay, in order (consecutive, from base+1).
    pub replay: Vec<u64>,
    /// Batch log entries to remove (after the last replayed batch).
    pub discard: Vec<u64>,
}

/// The last batch an exactly-once sink committed (0: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkProgress {
    pub sink: String,
    pub last_batch: u64,
}

/// Decide the [`Recovery`]. `stores` are the full states held by exactly-once sinks
/// (PostgreSQL's offsets and snapshot); `sinks` every exactly-once sink's last batch;
/// `logged` the batch ids in the batch log.
pub fn plan_recovery(
    checkpoint: Option<ResumePoint>,
    stores: Vec<ResumePoint>,
    sinks: &[SinkProgress],
    logged: &BTreeSet<u64>,
) -> Result<Recovery, String> {
    let checkpointed = checkpoint.as_ref().map_or(0, |c| c.batch_id);
    let floor = sinks
        .iter()
        .map(|s| s.last_batch)
        .min()
        .unwrap_or(checkpointed);
    let ceil = sinks.iter().map(|s| s.last_batch).max();
    // Stores first: at an equal batch id the database is the source of truth.
    let base = stores
        .into_iter()
        .chain(checkpoint)
        .filter(|p| p.batch_id <= floor)
        .fold(None::<ResumePoint>, |best, p| match best {
            Some(b) if b.batch_id >= p.batch_id => Some(b),
            _ => Some(p),
        });
    let base_id = base.as_ref().map_or(0, |b| b.batch_id);
    let replay: Vec<u64> = (base_id.saturating_add(1)..)
        .take_while(|b| logged.contains(b))
        .collect();
    let last = replay.last().copied().unwrap_or(base_id);
    if let Some(ceil) = ceil.filter(|c| *c > last) {
        let holder = sinks
            .iter()
            .find(|s| s.last_batch == ceil)
            .map_or("", |s| s.sink.as_str());
        let missing = last.saturating_add(1);
        return Err(format!(
            "sink {holder} committed batch {ceil}, but the job can rebuild only up to batch \
             {last} (resuming from batch {base_id}; batch {missing} is not in the batch log): \
             the checkpoint directory does not belong to these sinks' data"
        ));
    }
    let discard = logged.range(last.saturating_add(1)..).copied().collect();
    Ok(Recovery {
        base,
        replay,
        discard,
    })
}

/// Whether a sink whose last committed batch is `sink_last` must be written batch
/// `batch_id` (exactly-once: only batches it lacks).
pub fn writes_batch(sink_last: u64, batch_id: u64) -> bool {
    sink_last < batch_id
}

/// Check that a replayed batch starts where the base ends: every partition the base
/// records starts the batch at the base's offset (partitions the batch adds started at
/// their earliest offset when it was planned).
pub fn check_continuity(base: &Offsets, start: &Offsets, batch_id: u64) -> Result<(), String> {
    for (topic, parts) in base {
        for (p, o) in parts {
            let s = start.get(topic).and_then(|m| m.get(p));
            if s != Some(o) {
                return Err(format!(
                    "batch {batch_id} in the batch log starts {topic}/{p} at {s:?}, but the \
                     resumed state ends it at {o}: the log does not continue this state"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn point(batch: u64) -> ResumePoint {
        let mut offsets = Offsets::new();
        offsets
            .entry("e".into())
            .or_default()
            .insert(0, batch as i64 * 10);
        ResumePoint {
            batch_id: batch,
            offsets,
            snapshot: Some(json!({ "b": batch })),
        }
    }

    fn sinks(lasts: &[(&str, u64)]) -> Vec<SinkProgress> {
        lasts
            .iter()
            .map(|(s, b)| SinkProgress {
                sink: s.to_string(),
                last_batch: *b,
            })
            .collect()
    }

    fn logged(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_planned_batch_no_sink_has_is_replayed_from_the_checkpoint() {
        let r = plan_recovery(
            Some(point(7)),
            vec![],
            &sinks(&[("topic", 7), ("files", 7)]),
            &logged(&[6, 7, 8]),
        )
        .unwrap();
        assert_eq!(r.base, Some(point(7)));
        assert_eq!(r.replay, vec![8]);
        assert!(r.discard.is_empty());
    }

    #[test]
    fn a_batch_one_sink_committed_is_replayed_for_the_others_only() {
        // Killed after the Kafka sink committed batch 8, before PostgreSQL did.
        let r = plan_recovery(
            Some(point(7)),
            vec![point(7)],
            &sinks(&[("topic", 8), ("table", 7)]),
            &logged(&[7, 8]),
        )
        .unwrap();
        assert_eq!(
            (r.base.map(|b| b.batch_id), r.replay.clone()),
            (Some(7), vec![8])
        );
        assert!(!writes_batch(8, 8), "the Kafka sink has batch 8 already");
        assert!(writes_batch(7, 8), "PostgreSQL lacks batch 8");
    }

    #[test]
    fn a_database_ahead_of_a_lost_or_stale_checkpoint_wins() {
        for checkpoint in [None, Some(point(3)), Some(point(11))] {
            let r = plan_recovery(
                checkpoint,
                vec![point(11)],
                &sinks(&[("table", 11)]),
                &logged(&[]),
            )
            .unwrap();
            assert_eq!(r.base, Some(point(11)));
            assert!(r.replay.is_empty());
        }
    }

    #[test]
    fn a_checkpoint_ahead_of_every_sink_does_not_count() {
        // A wiped database: the rows of batches 1..=5 are not there, start afresh.
        let r = plan_recovery(
            Some(point(5)),
            vec![],
            &sinks(&[("table", 0)]),
            &logged(&[]),
        )
        .unwrap();
        assert_eq!(r.base, None);
    }

    #[test]
    fn without_exactly_once_sinks_the_checkpoint_is_the_base() {
        let r = plan_recovery(Some(point(4)), vec![], &[], &logged(&[4, 5])).unwrap();
        assert_eq!((r.base, r.replay), (Some(point(4)), vec![5]));
        let r = plan_recovery(None, vec![], &[], &logged(&[])).unwrap();
        assert_eq!((r.base, r.replay), (None, vec![]));
    }

    #[test]
    fn entries_beyond_a_gap_are_discarded() {
        let r = plan_recovery(Some(point(4)), vec![], &[], &logged(&[2, 5, 7, 8])).unwrap();
        assert_eq!(r.replay, vec![5]);
        assert_eq!(r.discard, vec![7, 8]);
    }

    #[test]
    fn a_committed_batch_that_cannot_be_rebuilt_is_an_error() {
        // The checkpoint is lost and the Kafka sink holds batch 9: neither its state nor
        // batches 1..=9 are available.
        let e =
            plan_recovery(None, vec![], &sinks(&[("topic", 9)]), &logged(&[9, 10])).unwrap_err();
        assert!(e.contains("sink topic committed batch 9"), "{e}");
        // A stale checkpoint with the batches after it still in the log is rebuilt.
        let r = plan_recovery(
            Some(point(6)),
            vec![],
            &sinks(&[("topic", 9)]),
            &logged(&[7, 8, 9, 10]),
        )
        .unwrap();
        assert_eq!(
            (r.base.map(|b| b.batch_id), r.replay),
            (Some(6), vec![7, 8, 9, 10])
        );
    }

    #[test]
    fn a_replayed_batch_must_start_where_the_base_ends() {
        let base = point(2).offsets;
        let mut start = base.clone();
        start.entry("new".into()).or_default().insert(0, 0);
        assert!(check_continuity(&base, &start, 3).is_ok());
        start.entry("e".into()).or_default().insert(0, 21);
        assert!(check_continuity(&base, &start, 3).is_err());
    }
}
