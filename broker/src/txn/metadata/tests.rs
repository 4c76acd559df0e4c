use super::*;

fn fenced() -> Refusal {
    Refusal::Error(E::ProducerFenced.code())
}

fn concurrent() -> Refusal {
    Refusal::Error(E::ConcurrentTransactions.code())
}

/// Apply whatever `prepare` returned, as the shell does after the write.
fn commit_write(m: &mut TxnMetadata, t: TxnTransit) {
    m.complete(t);
}

fn init(m: &mut TxnMetadata, expected: Option<(i64, i16)>, now: i64) -> (i64, i16) {
    match m.prepare_init_producer_id(60_000, expected, None, now) {
        Ok(InitStep::Write(t)) => {
            commit_write(m, t);
            (m.producer_id, m.producer_epoch)
        }
        other => panic!("{other:?}"),
    }
}

fn tp(t: &str, p: i32) -> TxnPartition {
    (t.to_string(), p)
}

#[test]
fn a_new_id_gets_epoch_zero_and_each_init_bumps_it() {
    let mut m = TxnMetadata::new("tx".into(), 42, 60_000, 0);
    assert_eq!(init(&mut m, None, 1), (42, 0));
    assert_eq!(init(&mut m, None, 2), (42, 1));
    assert_eq!(m.state, TxnState::Empty);
    assert_eq!(m.last_producer_epoch, NO_PRODUCER_EPOCH);
}

#[test]
fn a_transaction_runs_through_ongoing_prepare_and_complete() {
    let mut m = TxnMetadata::new("tx".into(), 1, 60_000, 0);
    let (pid, epoch) = init(&mut m, None, 0);
    let t = m
        .prepare_add_partitions(pid, epoch, &[tp("a", 0), tp("b", 1)], 10)
        .unwrap();
    assert_eq!(t.state, TxnState::Ongoing);
    assert_eq!(t.start_ms, 10);
    // While the write is pending, everything else waits.
    assert_eq!(
        m.prepare_end(pid, epoch, TxnResult::Commit, 11),
        Err(concurrent())
    );
    commit_write(&mut m, t);
    // Adding partitions already in the transaction writes nothing.
    assert_eq!(
        m.prepare_add_partitions(pid, epoch, &[tp("a", 0)], 12),
        Err(Refusal::AlreadyDone)
    );
    let t = m
        .prepare_add_partitions(pid, epoch, &[tp("c", 0)], 13)
        .unwrap();
    assert_eq!(t.partitions.len(), 3);
    assert_eq!(t.start_ms, 10, "the start time stays the first add's");
    commit_write(&mut m, t);
    let t = m.prepare_end(pid, epoch, TxnResult::Commit, 20).unwrap();
    assert_eq!(t.state, TxnState::PrepareCommit);
    commit_write(&mut m, t);
    // Markers in flight: a retry is told to wait, the opposite is invalid.
    assert_eq!(
        m.prepare_end(pid, epoch, TxnResult::Commit, 21),
        Err(concurrent())
    );
    assert_eq!(
        m.prepare_end(pid, epoch, TxnResult::Abort, 21),
        Err(Refusal::Error(E::InvalidTxnState.code()))
    );
    assert_eq!(
        m.prepare_add_partitions(pid, epoch, &[tp("a", 0)], 21),
        Err(concurrent())
    );
    let t = m.prepare_complete(30).unwrap();
    assert_eq!(t.state, TxnState::CompleteCommit);
    assert!(t.partitions.is_empty());
    commit_write(&mut m, t);
    assert_eq!(
        m.prepare_end(pid, epoch, TxnResult::Commit, 31),
        Err(Refusal::AlreadyDone),
        "a retried commit of a completed transaction succeeds"
    );
    // The next transaction starts afresh.
    let t = m
        .prepare_add_partitions(pid, epoch, &[tp("z", 0)], 40)
        .unwrap();
    assert_eq!(t.partitions.len(), 1);
    assert_eq!(t.start_ms, 40);
}

#[test]
fn end_without_a_transaction_is_invalid_and_wrong_producers_are_refused() {
    let mut m = TxnMetadata::new("tx".into(), 5, 60_000, 0);
    let (pid, epoch) = init(&mut m, None, 0);
    assert_eq!(
        m.prepare_end(pid, epoch, TxnResult::Commit, 1),
        Err(Refusal::Error(E::InvalidTxnState.code()))
    );
    assert_eq!(
        m.prepare_add_partitions(pid + 1, epoch, &[tp("a", 0)], 1),
        Err(Refusal::Error(E::InvalidProducerIdMapping.code()))
    );
    assert_eq!(
        m.prepare_add_partitions(pid, epoch + 1, &[tp("a", 0)], 1),
        Err(fenced())
    );
}

#[test]
fn a_new_producer_fences_an_idle_one() {
    let mut m = TxnMetadata::new("tx".into(), 9, 60_000, 0);
    let (pid, old) = init(&mut m, None, 0);
    let (_, new) = init(&mut m, None, 1);
    assert_eq!(new, old + 1);
    assert_eq!(
        m.prepare_add_partitions(pid, old, &[tp("a", 0)], 2),
        Err(fenced())
    );
    assert_eq!(m.prepare_end(pid, old, TxnResult::Commit, 2), Err(fenced()));
}

#[test]
fn a_new_producer_fences_and_aborts_an_ongoing_transaction() {
    let mut m = TxnMetadata::new("tx".into(), 9, 60_000, 0);
    let (pid, e0) = init(&mut m, None, 0);
    let t = m.prepare_add_partitions(pid, e0, &[tp("a", 0)], 1).unwrap();
    commit_write(&mut m, t);
    let abort = match m.prepare_init_producer_id(60_000, None, None, 2) {
        Ok(InitStep::FenceAndAbort(t)) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(abort.state, TxnState::PrepareAbort);
    assert_eq!(
        abort.producer_epoch,
        e0 + 1,
        "markers carry the fenced epoch"
    );
    assert_eq!(abort.partitions.len(), 1);
    // The old producer is fenced at once, before the write completes.
    assert_eq!(m.prepare_end(pid, e0, TxnResult::Commit, 3), Err(fenced()));
    commit_write(&mut m, abort);
    // The new producer's retry waits for the markers...
    assert!(matches!(
        m.prepare_init_producer_id(60_000, None, None, 4),
        Err(Refusal::Error(c)) if c == E::ConcurrentTransactions.code()
    ));
    let done = m.prepare_complete(5).unwrap();
    assert_eq!(done.state, TxnState::CompleteAbort);
    commit_write(&mut m, done);
    // ...then gets an epoch above the fence.
    assert_eq!(init(&mut m, None, 6), (pid, e0 + 2));
}

#[test]
fn a_failed_fence_write_does_not_bump_twice() {
    let mut m = TxnMetadata::new("tx".into(), 9, 60_000, 0);
    let (pid, e0) = init(&mut m, None, 0);
    let t = m.prepare_add_partitions(pid, e0, &[tp("a", 0)], 1).unwrap();
    commit_write(&mut m, t);
    let Ok(InitStep::FenceAndAbort(first)) = m.prepare_init_producer_id(60_000, None, None, 2)
    else {
        panic!()
    };
    m.abandon();
    assert_eq!(m.state, TxnState::Ongoing);
    let Ok(InitStep::FenceAndAbort(second)) = m.prepare_init_producer_id(60_000, None, None, 3)
    else {
        panic!()
    };
    assert_eq!(first.producer_epoch, second.producer_epoch);
}

#[test]
fn kip360_recovery_bumps_for_the_current_epoch_and_repeats_for_a_retry() {
    let mut m = TxnMetadata::new("tx".into(), 3, 60_000, 0);
    let (pid, e0) = init(&mut m, None, 0);
    assert_eq!(init(&mut m, Some((pid, e0)), 1), (pid, e0 + 1));
    assert_eq!(m.last_producer_epoch, e0);
    // The response was lost; the producer retries with its old epoch.
    assert_eq!(init(&mut m, Some((pid, e0)), 2), (pid, e0 + 1));
    // A stale epoch is fenced; an unknown producer id too.
    assert_eq!(
        m.prepare_init_producer_id(60_000, Some((pid, e0 + 7)), None, 3),
        Err(fenced())
    );
    assert_eq!(
        m.prepare_init_producer_id(60_000, Some((pid + 100, 0)), None, 3),
        Err(fenced())
    );
}

#[test]
fn an_exhausted_epoch_rotates_the_producer_id() {
    let mut m = TxnMetadata::new("tx".into(), 3, 60_000, 0);
    init(&mut m, None, 0);
    let mut t = m.current();
    t.producer_epoch = i16::MAX - 1;
    m.complete(t);
    assert_eq!(
        m.prepare_init_producer_id(60_000, None, None, 1),
        Ok(InitStep::NeedProducerId)
    );
    let Ok(InitStep::Write(t)) = m.prepare_init_producer_id(60_000, None, Some(77), 1) else {
        panic!()
    };
    assert_eq!((t.producer_id, t.producer_epoch), (77, 0));
    assert_eq!(t.last_producer_id, NO_PRODUCER_ID);
    commit_write(&mut m, t);
    assert_eq!((m.producer_id, m.producer_epoch), (77, 0));
}

#[test]
fn timeouts_abort_only_ongoing_transactions_past_their_timeout() {
    // The producer's transaction.timeout.ms (60 s in `init`) counts.
    let mut m = TxnMetadata::new("tx".into(), 3, 1_000, 0);
    let (pid, e0) = init(&mut m, None, 0);
    assert_eq!(m.timeout_ms, 60_000);
    assert_eq!(m.prepare_timeout_abort(100_000), None, "nothing ongoing");
    let t = m
        .prepare_add_partitions(pid, e0, &[tp("a", 0)], 100)
        .unwrap();
    commit_write(&mut m, t);
    assert_eq!(m.prepare_timeout_abort(60_100), None, "not yet");
    let t = m.prepare_timeout_abort(60_101).unwrap();
    assert_eq!(t.state, TxnState::PrepareAbort);
    assert_eq!(t.producer_epoch, e0 + 1);
    commit_write(&mut m, t);
    assert_eq!(
        m.prepare_end(pid, e0, TxnResult::Commit, 60_200),
        Err(fenced()),
        "the timed-out producer is fenced"
    );
}

#[test]
fn idle_ids_expire_and_busy_ones_do_not() {
    let mut m = TxnMetadata::new("tx".into(), 3, 1_000, 0);
    let (pid, e0) = init(&mut m, None, 0);
    assert!(!m.prepare_expire(500, 1_000));
    assert!(m.prepare_expire(1_001, 1_000));
    m.abandon();
    let t = m
        .prepare_add_partitions(pid, e0, &[tp("a", 0)], 2_000)
        .unwrap();
    commit_write(&mut m, t);
    assert!(
        !m.prepare_expire(10_000_000, 1_000),
        "ongoing never expires"
    );
}

#[test]
fn every_written_transition_is_one_kafka_allows() {
    // A seeded walk through random requests: every transit written must
    // come from a state Kafka allows it to come from, and the epoch never
    // goes down for one producer id.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..200 {
        let mut m = TxnMetadata::new("tx".into(), 1, 100, 0);
        let mut now = 0;
        let mut client = (1_i64, -1_i16);
        for _ in 0..200 {
            now += (next() % 60) as i64;
            let before = (m.state, m.producer_id, m.producer_epoch);
            let r = match next() % 6 {
                0 => m
                    .prepare_init_producer_id(100, None, Some(1_000 + now), now)
                    .map(|s| match s {
                        InitStep::Write(t) | InitStep::FenceAndAbort(t) => Some(t),
                        InitStep::NeedProducerId => None,
                    }),
                1 => m
                    .prepare_add_partitions(
                        client.0,
                        client.1,
                        &[tp("a", (next() % 3) as i32)],
                        now,
                    )
                    .map(Some),
                2 => m
                    .prepare_end(client.0, client.1, TxnResult::Commit, now)
                    .map(Some),
                3 => m
                    .prepare_end(client.0, client.1, TxnResult::Abort, now)
                    .map(Some),
                4 => Ok(m.prepare_complete(now)),
                _ => Ok(m.prepare_timeout_abort(now)),
            };
            if let Ok(Some(t)) = r {
                assert!(
                    t.state.valid_previous().contains(&before.0)
                        || (t.state == TxnState::PrepareAbort && before.0 == TxnState::Ongoing),
                    "{:?} -> {:?}",
                    before.0,
                    t.state
                );
                if t.producer_id == before.1 {
                    assert!(t.producer_epoch >= before.2);
                }
                if next() % 5 == 0 {
                    m.abandon();
                } else {
                    let init = t.state == TxnState::Empty;
                    m.complete(t);
                    if init {
                        client = (m.producer_id, m.producer_epoch);
                    }
                }
            }
        }
    }
}
