//! `PartitionReplica` driven by events over an in-memory log: each test
//! applies the actions as an executor would.

use super::*;

/// A log of offsets only: where it starts and ends, its high watermark
/// and its epoch cache as `(epoch, start offset)`.
#[derive(Debug, Clone, Default)]
struct Log {
    start: i64,
    end: i64,
    hw: i64,
    epochs: Vec<(i32, i64)>,
}

impl LogView for Log {
    fn log_start_offset(&self) -> i64 {
        self.start
    }
    fn log_end_offset(&self) -> i64 {
        self.end
    }
    fn high_watermark(&self) -> i64 {
        self.hw
    }
    fn latest_epoch(&self) -> Option<i32> {
        self.epochs.last().map(|e| e.0)
    }
    fn latest_epoch_start_offset(&self) -> i64 {
        self.epochs.last().map_or(0, |e| e.1)
    }
    fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let Some(last) = self.epochs.last() else {
            return (-1, -1);
        };
        if epoch < 0 || epoch > last.0 {
            return (-1, -1);
        }
        if epoch == last.0 {
            return (epoch, self.end);
        }
        let higher = self.epochs.partition_point(|e| e.0 <= epoch);
        match higher.checked_sub(1) {
            Some(floor) => (self.epochs[floor].0, self.epochs[higher].1),
            None => (epoch, self.epochs[0].1),
        }
    }
}

impl Log {
    /// A leader appends `n` records in `epoch`.
    fn append(&mut self, epoch: i32, n: i64) {
        if self.latest_epoch() != Some(epoch) {
            self.epochs.push((epoch, self.end));
        }
        self.end += n;
    }

    /// Carry out the log's part of `actions`; return them.
    fn apply(&mut self, actions: Vec<Action>) -> Vec<Action> {
        for a in &actions {
            match a {
                Action::AssignEpochStart {
                    leader_epoch,
                    start_offset,
                } if self.latest_epoch().is_none_or(|e| e < *leader_epoch) => {
                    self.epochs.push((*leader_epoch, *start_offset));
                }
                Action::HighWatermark(hw) => {
                    assert!(*hw > self.hw, "high watermark {hw} not above {}", self.hw);
                    self.hw = *hw;
                }
                Action::TruncateTo(to) => {
                    self.end = self.end.min(*to);
                    self.hw = self.hw.min(*to);
                    self.epochs.retain(|e| e.1 < *to);
                }
                Action::TruncateFullyAndStartAt(at) => {
                    *self = Log {
                        start: *at,
                        end: *at,
                        hw: *at,
                        epochs: Vec::new(),
                    };
                }
                _ => {}
            }
        }
        actions
    }
}

fn state(leader: i32, epoch: i32, pe: i32, isr: &[i32]) -> ReplicaState {
    ReplicaState {
        leader,
        leader_epoch: epoch,
        partition_epoch: pe,
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
        min_insync_replicas: 2,
    }
}

/// Node 1 leading epoch 1 with ISR `isr`, 10 records of epoch 0 already in
/// its log (committed).
fn leader(isr: &[i32]) -> (PartitionReplica, Log) {
    let mut log = Log {
        end: 10,
        hw: 10,
        epochs: vec![(0, 0)],
        ..Log::default()
    };
    let mut r = PartitionReplica::new(1);
    log.apply(r.on_image(state(1, 1, 0, isr), &log, 0));
    (r, log)
}

fn hw_moves(actions: &[Action]) -> Vec<i64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::HighWatermark(hw) => Some(*hw),
            _ => None,
        })
        .collect()
}

fn acks(actions: &[Action]) -> Vec<(AckId, Result<(), AckError>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::CompleteAck { id, result } => Some((*id, *result)),
            _ => None,
        })
        .collect()
}

fn alter(actions: &[Action]) -> Option<AlterPartition> {
    actions.iter().find_map(|a| match a {
        Action::SendAlterPartition(r) => Some(r.clone()),
        _ => None,
    })
}

#[test]
fn new_leader_starts_its_epoch_at_its_log_end() {
    let (r, log) = leader(&[1, 2, 3]);
    assert!(r.is_leader());
    assert_eq!(log.epochs, vec![(0, 0), (1, 10)]);
    assert_eq!(r.followers().leader_epoch, 1);
    assert_eq!(r.following(), None);
}

#[test]
fn high_watermark_advances_when_every_isr_member_fetched_past_it() {
    let (mut r, mut log) = leader(&[1, 2, 3]);
    log.append(1, 5);
    assert!(hw_moves(&r.on_append(&log)).is_empty());
    let (answer, a) = r.on_follower_fetch(2, 15, None, 1, &log, 10);
    assert_eq!(answer, FollowerFetchAnswer::Read);
    assert!(hw_moves(&log.apply(a)).is_empty(), "follower 3 lags");
    let (_, a) = r.on_follower_fetch(3, 12, None, 1, &log, 10);
    assert_eq!(hw_moves(&log.apply(a)), vec![12]);
    let (_, a) = r.on_follower_fetch(3, 15, None, 1, &log, 20);
    assert_eq!(hw_moves(&log.apply(a)), vec![15]);
}

#[test]
fn high_watermark_waits_for_what_followers_have_on_disk() {
    let (mut r, mut log) = leader(&[1, 2, 3]);
    log.append(1, 5);
    r.on_append(&log);
    // Both hold offsets up to 15, but follower 3 has only 12 on disk.
    let (_, a) = r.on_follower_fetch(2, 15, Some(15), 1, &log, 10);
    log.apply(a);
    let (answer, a) = r.on_follower_fetch(3, 15, Some(12), 1, &log, 10);
    assert_eq!(answer, FollowerFetchAnswer::Read);
    assert_eq!(hw_moves(&log.apply(a)), vec![12]);
    // Its next fetch, after the fsync, reports the rest.
    let (_, a) = r.on_follower_fetch(3, 15, Some(15), 1, &log, 20);
    assert_eq!(hw_moves(&log.apply(a)), vec![15]);
    // A durable offset past the fetch offset counts for no more than it.
    let (mut r, mut log) = leader(&[1, 2]);
    log.append(1, 5);
    r.on_append(&log);
    let (_, a) = r.on_follower_fetch(2, 13, Some(99), 1, &log, 10);
    assert_eq!(hw_moves(&log.apply(a)), vec![13]);
}

#[test]
fn sole_isr_member_commits_at_its_log_end() {
    let (mut r, mut log) = leader(&[1]);
    log.append(1, 3);
    assert_eq!(hw_moves(&log.apply(r.on_append(&log))), vec![13]);
}

#[test]
fn lagging_follower_is_proposed_out_of_the_isr() {
    let (mut r, mut log) = leader(&[1, 2, 3]);
    log.append(1, 1);
    log.apply(r.on_append(&log));
    let (_, a) = r.on_follower_fetch(2, 11, None, 1, &log, 1_000);
    log.apply(a);
    assert_eq!(alter(&r.tick(1_000, 30_000, &log)), None);
    let (_, a) = r.on_follower_fetch(2, 11, None, 1, &log, 31_000);
    log.apply(a);
    let req = alter(&r.tick(31_000, 30_000, &log)).expect("shrink");
    assert_eq!(
        req,
        AlterPartition {
            leader_epoch: 1,
            partition_epoch: 0,
            new_isr: vec![1, 2],
        }
    );
    assert_eq!(
        r.pending_isr().map(|p| p.status),
        Some(PendingIsrStatus::InFlight)
    );
    // One change at a time.
    assert_eq!(alter(&r.tick(31_000, 30_000, &log)), None);
}

#[test]
fn caught_up_follower_is_proposed_back_into_the_isr() {
    let (mut r, mut log) = leader(&[1, 2]);
    log.append(1, 2);
    let (_, a) = r.on_follower_fetch(2, 12, None, 1, &log, 100);
    log.apply(a);
    assert_eq!(log.hw, 12);
    // Follower 3 below the high watermark stays out; at it, it joins.
    let (_, a) = r.on_follower_fetch(3, 11, None, 1, &log, 100);
    log.apply(a);
    assert_eq!(alter(&r.tick(100, 30_000, &log)), None);
    let (_, a) = r.on_follower_fetch(3, 12, None, 1, &log, 200);
    log.apply(a);
    let req = alter(&r.tick(200, 30_000, &log)).expect("expand");
    assert_eq!(req.new_isr, vec![1, 2, 3]);
}

/// KIP-497: from the moment the leader proposes a follower into the ISR,
/// the high watermark waits for that follower, though the leader's image
/// still shows the old ISR.
#[test]
fn pending_expansion_holds_the_high_watermark_at_the_maximal_isr() {
    let (mut r, mut log) = leader(&[1]);
    let (_, a) = r.on_follower_fetch(2, 10, None, 1, &log, 0);
    log.apply(a);
    let req = alter(&r.tick(0, 30_000, &log)).expect("expand");
    assert_eq!(req.new_isr, vec![1, 2]);
    assert_eq!(r.maximal_isr().as_ref(), &[1, 2]);
    log.append(1, 1);
    assert!(
        hw_moves(&log.apply(r.on_append(&log))).is_empty(),
        "waits for 2"
    );
    let (_, a) = r.on_follower_fetch(2, 11, None, 1, &log, 10);
    assert_eq!(hw_moves(&log.apply(a)), vec![11]);
    // Answered, it waits for the image, which settles it.
    log.apply(r.on_alter_partition_answer(&req, AlterPartitionAnswer::Committed, &log));
    assert_eq!(
        r.pending_isr().map(|p| p.status),
        Some(PendingIsrStatus::Answered)
    );
    assert_eq!(alter(&r.tick(20, 30_000, &log)), None);
    log.apply(r.on_image(state(1, 1, 1, &[1, 2]), &log, 20));
    assert_eq!(r.pending_isr(), None);
}

#[test]
fn refused_expansion_releases_the_high_watermark() {
    let (mut r, mut log) = leader(&[1]);
    let (_, a) = r.on_follower_fetch(3, 10, None, 1, &log, 0);
    log.apply(a);
    let req = alter(&r.tick(0, 30_000, &log)).expect("expand");
    log.append(1, 1);
    log.apply(r.on_append(&log));
    assert_eq!(log.hw, 10);
    let a = log.apply(r.on_alter_partition_answer(&req, AlterPartitionAnswer::Refused, &log));
    assert_eq!(hw_moves(&a), vec![11], "alone in the ISR again");
    assert_eq!(r.pending_isr(), None);
}

#[test]
fn unanswered_change_is_sent_again() {
    let (mut r, mut log) = leader(&[1]);
    let (_, a) = r.on_follower_fetch(2, 10, None, 1, &log, 0);
    log.apply(a);
    let req = alter(&r.tick(0, 30_000, &log)).expect("expand");
    r.on_alter_partition_answer(&req, AlterPartitionAnswer::Unknown, &log);
    assert_eq!(alter(&r.tick(10, 30_000, &log)), Some(req.clone()));
    // An answer to a change from another partition epoch is not ours.
    let stale = AlterPartition {
        partition_epoch: 7,
        ..req.clone()
    };
    r.on_alter_partition_answer(&stale, AlterPartitionAnswer::Refused, &log);
    assert_eq!(r.pending_isr().map(|p| p.isr.clone()), Some(vec![1, 2]));
}

#[test]
fn acks_all_is_released_once_the_high_watermark_passes_it() {
    let (mut r, mut log) = leader(&[1, 2, 3]);
    assert_eq!(r.check_produce(-1), Ok(1));
    log.append(1, 1);
    log.apply(r.on_append(&log));
    assert!(r.wait_for_ack(7, 11, 1, &log).is_empty());
    log.append(1, 1);
    log.apply(r.on_append(&log));
    assert!(r.wait_for_ack(8, 12, 1, &log).is_empty());
    let (_, a) = r.on_follower_fetch(2, 12, None, 1, &log, 0);
    assert!(acks(&log.apply(a)).is_empty());
    let (_, a) = r.on_follower_fetch(3, 11, None, 1, &log, 0);
    assert_eq!(acks(&log.apply(a)), vec![(7, Ok(()))]);
    let (_, a) = r.on_follower_fetch(3, 12, None, 1, &log, 0);
    assert_eq!(acks(&log.apply(a)), vec![(8, Ok(()))]);
    assert_eq!(r.parked_acks(), 0);
}

#[test]
fn acks_all_already_committed_is_answered_at_once() {
    let (mut r, log) = leader(&[1, 2, 3]);
    assert_eq!(acks(&r.wait_for_ack(1, 10, 1, &log)), vec![(1, Ok(()))]);
}

#[test]
fn produce_is_refused_off_the_leader_or_below_min_insync_replicas() {
    let (r, _) = leader(&[1]);
    assert_eq!(r.check_produce(1), Ok(1));
    assert_eq!(
        r.check_produce(-1),
        Err(ProduceRefusal::NotEnoughReplicas {
            isr: 1,
            min_insync_replicas: 2
        })
    );
    let mut f = PartitionReplica::new(2);
    f.on_image(state(1, 1, 0, &[1, 2]), &Log::default(), 0);
    assert_eq!(f.check_produce(1), Err(ProduceRefusal::NotLeaderOrFollower));
}

#[test]
fn isr_shrinking_below_min_fails_parked_produces_after_append() {
    let (mut r, mut log) = leader(&[1, 2, 3]);
    log.append(1, 1);
    log.apply(r.on_append(&log));
    r.wait_for_ack(1, 11, 1, &log);
    let a = log.apply(r.on_image(state(1, 1, 1, &[1]), &log, 0));
    assert_eq!(
        acks(&a),
        vec![(1, Err(AckError::NotEnoughReplicasAfterAppend))]
    );
}

#[test]
fn losing_leadership_fails_parked_produces() {
    let (mut r, mut log) = leader(&[1, 2, 3]);
    log.append(1, 1);
    r.wait_for_ack(1, 11, 1, &log);
    let a = log.apply(r.on_image(state(2, 2, 1, &[1, 2, 3]), &log, 0));
    assert_eq!(acks(&a), vec![(1, Err(AckError::NotLeaderOrFollower))]);
    // Registered after the change (its fsync took long): same answer.
    assert_eq!(
        acks(&r.wait_for_ack(2, 11, 1, &log)),
        vec![(2, Err(AckError::NotLeaderOrFollower))]
    );
}

#[test]
fn removed_partition_fails_parked_produces_and_cancelled_ones_are_gone() {
    let (mut r, mut log) = leader(&[1, 2, 3]);
    log.append(1, 2);
    r.wait_for_ack(1, 11, 1, &log);
    r.wait_for_ack(2, 12, 1, &log);
    assert!(r.cancel_ack(2));
    assert!(!r.cancel_ack(2));
    assert_eq!(
        acks(&r.on_removed()),
        vec![(1, Err(AckError::UnknownTopicOrPartition))]
    );
    assert_eq!(
        acks(&r.wait_for_ack(3, 12, 1, &log)),
        vec![(3, Err(AckError::UnknownTopicOrPartition))]
    );
}

#[test]
fn leader_answers_divergence_instead_of_recording_the_fetch() {
    let (mut r, mut log) = leader(&[1, 2, 3]);
    // The follower has epoch 0 up to 14, the leader only up to 10.
    let (answer, a) = r.on_follower_fetch(2, 14, None, 0, &log, 0);
    assert_eq!(
        answer,
        FollowerFetchAnswer::Diverging {
            epoch: 0,
            end_offset: 10
        }
    );
    assert!(a.is_empty());
    assert_eq!(r.followers().progress[&2].log_end_offset, 0);
    // An epoch the leader does not know (above its latest): no common
    // epoch, back to the leader's log start.
    log.start = 4;
    log.epochs = vec![(3, 4)];
    let (answer, _) = r.on_follower_fetch(2, 14, None, 5, &log, 0);
    assert_eq!(
        answer,
        FollowerFetchAnswer::Diverging {
            epoch: -1,
            end_offset: 4
        }
    );
}

/// Node 2 following node 1 in epoch 2; its log holds epochs 0 at [0, 5)
/// and 1 at [5, 8).
fn follower() -> (PartitionReplica, Log) {
    let log = Log {
        end: 8,
        hw: 5,
        epochs: vec![(0, 0), (1, 5)],
        ..Log::default()
    };
    let mut r = PartitionReplica::new(2);
    assert!(r.on_image(state(1, 2, 0, &[1, 2, 3]), &log, 0).is_empty());
    (r, log)
}

fn response(hw: i64) -> FetchedPartition {
    FetchedPartition {
        leader: 1,
        leader_epoch: 2,
        error_code: 0,
        high_watermark: hw,
        log_start_offset: 0,
        diverging_epoch: None,
        has_records: false,
    }
}

#[test]
fn follower_fetches_from_its_log_end_with_its_last_epoch() {
    let (r, log) = follower();
    assert_eq!(r.following(), Some(1));
    assert_eq!(
        r.fetch_request(&log),
        Some(ReplicaFetch {
            leader: 1,
            leader_epoch: 2,
            fetch_offset: 8,
            durable_offset: None,
            last_fetched_epoch: 1,
            log_start_offset: 0,
        })
    );
}

#[test]
fn divergence_truncates_the_follower() {
    let (mut r, mut log) = follower();
    // The leader never had epoch 1; its epoch 0 ends at 6. Ours ends at 5.
    let resp = FetchedPartition {
        diverging_epoch: Some((0, 6)),
        ..response(5)
    };
    let a = log.apply(r.on_fetch_response(&resp, &log).unwrap());
    assert_eq!(a, vec![Action::TruncateTo(5)]);
    assert_eq!(r.fetch_request(&log).map(|f| f.last_fetched_epoch), Some(0));
}

#[test]
fn follower_takes_the_leaders_high_watermark_within_its_log() {
    let (mut r, mut log) = follower();
    let a = r.on_fetch_response(&response(20), &log).unwrap();
    assert_eq!(hw_moves(&log.apply(a)), vec![8]);
    // With records: append first, then the high watermark.
    let resp = FetchedPartition {
        has_records: true,
        ..response(20)
    };
    assert_eq!(
        r.on_fetch_response(&resp, &log).unwrap(),
        vec![Action::AppendFetched]
    );
    log.append(2, 4);
    assert_eq!(hw_moves(&log.apply(r.on_append(&log))), vec![12]);
    // Never lowered.
    assert!(r.on_fetch_response(&response(3), &log).unwrap().is_empty());
}

#[test]
fn response_from_an_old_leader_epoch_is_ignored_and_errors_are_reported() {
    let (mut r, log) = follower();
    let old = FetchedPartition {
        leader_epoch: 1,
        has_records: true,
        ..response(20)
    };
    assert!(r.on_fetch_response(&old, &log).unwrap().is_empty());
    let failed = FetchedPartition {
        error_code: E::NotLeaderOrFollower.code(),
        ..response(-1)
    };
    assert_eq!(
        r.on_fetch_response(&failed, &log),
        Err(E::NotLeaderOrFollower.code())
    );
}

#[test]
fn follower_behind_the_leaders_log_start_starts_over_there() {
    let (mut r, log) = follower();
    let resp = FetchedPartition {
        error_code: E::OffsetOutOfRange.code(),
        log_start_offset: 100,
        ..response(-1)
    };
    assert_eq!(
        r.on_fetch_response(&resp, &log),
        Ok(vec![Action::TruncateFullyAndStartAt(100)])
    );
    let ahead = FetchedPartition {
        log_start_offset: 3,
        ..resp
    };
    assert_eq!(
        r.on_fetch_response(&ahead, &log),
        Err(E::OffsetOutOfRange.code())
    );
}

#[test]
fn follower_becoming_leader_stops_fetching() {
    let (mut r, mut log) = follower();
    log.apply(r.on_image(state(2, 3, 1, &[1, 2, 3]), &log, 0));
    assert!(r.is_leader());
    assert_eq!(r.fetch_request(&log), None);
    assert_eq!(log.epochs.last(), Some(&(3, 8)));
}

#[test]
fn mutation_hw_over_last_seen_isr_ignores_the_pending_expansion() {
    let (r, mut log) = leader(&[1]);
    let mut r = r.with_mutation(Mutation::HwOverLastSeenIsr);
    let (_, a) = r.on_follower_fetch(2, 10, None, 1, &log, 0);
    log.apply(a);
    alter(&r.tick(0, 30_000, &log)).expect("expand");
    log.append(1, 1);
    assert_eq!(hw_moves(&log.apply(r.on_append(&log))), vec![11]);
}
