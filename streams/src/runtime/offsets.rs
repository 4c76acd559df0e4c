//! Offsets and where a job resumes, as pure functions (tested without a broker).
//!
//! Rules:
//! - A job that committed before resumes from its committed offsets (which record —
//!   the checkpoint file or an exactly-once sink's database — is decided in
//!   [`super::recovery`]); they win over `start`.
//! - Every commit records every assigned partition, so a partition missing from the
//!   committed offsets appeared after that commit: it is read from its earliest offset
//!   (what Spark's Kafka source does for new partitions), whatever `start` says.
//! - A job that never committed starts where its source's `start` says; `checkpoint`
//!   then is an error (the user asked to resume and there is nothing to resume).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::plan::StartFrom;

/// topic → partition → offset (the next offset to read, or an end offset).
pub type Offsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// Where one partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    At(i64),
    Earliest,
    Latest,
    /// The first offset with a timestamp at or after this time (ListOffsets).
    Timestamp(i64),
}

/// What a job resumes from: the last committed batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumePoint {
    pub batch_id: u64,
    pub offsets: Offsets,
    /// The executor's state snapshot, if the job had state to save.
    pub snapshot: Option<Value>,
}

/// Where `topic`/`partition` starts, given the resume point's offsets (if the job
/// committed before) and the source's `start`. `Err` for `start = "checkpoint"`
/// without a committed batch.
pub fn start_position(
    start: StartFrom,
    committed: Option<&Offsets>,
    topic: &str,
    partition: i32,
) -> Result<StartPosition, String> {
    if let Some(committed) = committed {
        return Ok(match committed.get(topic).and_then(|p| p.get(&partition)) {
            Some(&o) => StartPosition::At(o),
            None => StartPosition::Earliest,
        });
    }
    match start {
        StartFrom::Earliest => Ok(StartPosition::Earliest),
        StartFrom::Latest => Ok(StartPosition::Latest),
        StartFrom::Timestamp { ms } => Ok(StartPosition::Timestamp(ms)),
        StartFrom::Checkpoint => Err(format!(
            "{topic}/{partition}: start = \"checkpoint\" but the job has committed no batch"
        )),
    }
}

/// Record that the record at `offset` was read: the next offset moves past it (never
/// back).
pub fn advance(positions: &mut Offsets, topic: &str, partition: i32, offset: i64) {
    let next = offset.saturating_add(1);
    // No key allocated per record once the topic is there.
    let parts = match positions.get_mut(topic) {
        Some(parts) => parts,
        None => positions.entry(topic.to_string()).or_default(),
    };
    let slot = parts.entry(partition).or_insert(next);
    *slot = (*slot).max(next);
}

/// Whether every partition with an end offset has been read up to it (`available_now`:
/// stop when caught up with the ends seen at start). A partition without a position
/// counts as not caught up unless its end is 0.
pub fn caught_up(positions: &Offsets, ends: &Offsets) -> bool {
    ends.iter().all(|(topic, parts)| {
        parts.iter().all(|(p, end)| {
            let pos = positions.get(topic).and_then(|m| m.get(p)).copied();
            pos.unwrap_or(0) >= *end
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(entries: &[(&str, i32, i64)]) -> Offsets {
        let mut o = Offsets::new();
        for (t, p, v) in entries {
            o.entry(t.to_string()).or_default().insert(*p, *v);
        }
        o
    }

    #[test]
    fn committed_offsets_win_over_start_and_new_partitions_read_from_earliest() {
        let c = offsets(&[("e", 0, 42)]);
        let s = StartFrom::Latest;
        assert_eq!(
            start_position(s, Some(&c), "e", 0),
            Ok(StartPosition::At(42))
        );
        assert_eq!(
            start_position(s, Some(&c), "e", 1),
            Ok(StartPosition::Earliest)
        );
        assert_eq!(start_position(s, None, "e", 1), Ok(StartPosition::Latest));
        assert_eq!(
            start_position(StartFrom::Timestamp { ms: 5 }, None, "e", 0),
            Ok(StartPosition::Timestamp(5))
        );
        assert!(start_position(StartFrom::Checkpoint, None, "e", 0).is_err());
        assert_eq!(
            start_position(StartFrom::Checkpoint, Some(&c), "e", 0),
            Ok(StartPosition::At(42))
        );
    }

    #[test]
    fn positions_only_move_forward_and_catch_up_with_ends() {
        let mut pos = offsets(&[("e", 0, 0), ("e", 1, 3)]);
        let ends = offsets(&[("e", 0, 2), ("e", 1, 3)]);
        assert!(!caught_up(&pos, &ends));
        advance(&mut pos, "e", 0, 1);
        assert!(caught_up(&pos, &ends));
        advance(&mut pos, "e", 0, 0);
        assert_eq!(
            pos["e"][&0], 2,
            "a redelivered record moved the position back"
        );
        assert!(!caught_up(&Offsets::new(), &ends));
        assert!(caught_up(&Offsets::new(), &offsets(&[("e", 0, 0)])));
    }
}
