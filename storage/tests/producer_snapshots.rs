//! Producer-state snapshots (`<offset>.snapshot`): a log reopened from a
//! snapshot plus the batches after it has exactly the state a full scan of
//! the log gives — producers (epochs, last batches, coordinator epochs) and
//! transactions (ongoing, LSO, aborted) — through appends, markers, rolls,
//! truncations and clean and unclean reopens; corrupt or unknown-version
//! snapshots fall back to older ones or the full scan; and a reopen from a
//! snapshot replays only the log after it.

mod common;

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use rivulet_protocol::control::{build_control_batch, ControlType};
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_storage::producer_snapshot::{list_snapshots, snapshot_path};
use rivulet_storage::producer_state::ProducerSnapshotEntry;
use rivulet_storage::{
    AbortedTxn, AppendOrigin, LogConfig, LogOpenOptions, PartitionLog, SequenceCheck,
};

use common::*;

/// Segments of a few batches each.
fn tiny_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        index_interval_bytes: 64,
        ..small_segments()
    }
}

/// Everything producer state is made of, comparable.
#[derive(Debug, PartialEq, Eq)]
struct State {
    producers: Vec<ProducerSnapshotEntry>,
    ongoing: Vec<(i64, i64)>,
    first_unstable: Option<i64>,
    lso: i64,
    aborted: Vec<AbortedTxn>,
}

fn state(log: &PartitionLog) -> State {
    State {
        producers: log.producer_state().snapshot_entries(),
        ongoing: log.ongoing_transactions(),
        first_unstable: log.first_unstable_offset(),
        lso: log.last_stable_offset(),
        aborted: log
            .aborted_transactions(log.log_start_offset(), log.log_end_offset() + 1)
            .unwrap(),
    }
}

fn data(pid: i64, epoch: i16, seq: i32, n: usize, txn: bool, ts: i64) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(Compression::None)
        .producer(pid, epoch, seq)
        .transactional(txn);
    for i in 0..n {
        b.push(ts + i as i64, Some(b"k"), Some(b"some value"), &[]);
    }
    b.build().unwrap()
}

fn marker(log: &mut PartitionLog, pid: i64, epoch: i16, kind: ControlType, coordinator_epoch: i32) {
    let mut m = build_control_batch(pid, epoch, kind, coordinator_epoch, T0);
    log.append_as_leader_from(&mut m, 0, AppendOrigin::Coordinator)
        .unwrap();
}

/// The state a full scan gives: the log's directory copied without its
/// snapshots and opened with the same high watermark (as after an unclean
/// stop: the copy of the active segment's index is not trimmed).
fn full_scan_state(dir: &Path, hw: i64, log_start: i64) -> State {
    let copy = tempfile::tempdir().unwrap();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".snapshot") {
            fs::copy(e.path(), copy.path().join(&name)).unwrap();
        }
    }
    let log = open(
        copy.path(),
        tiny_segments(),
        clock(),
        LogOpenOptions {
            high_watermark: hw,
            log_start_offset: log_start,
            ..LogOpenOptions::default()
        },
    );
    assert_eq!(log.last_producer_state_load().snapshot_offset, None);
    state(&log)
}

#[derive(Debug, Clone)]
enum Op {
    /// Producer `pid % 3` appends `n` records, transactional or not.
    Data {
        pid: u8,
        n: u8,
        txn: bool,
    },
    /// Its coordinator ends its transaction.
    Marker {
        pid: u8,
        commit: bool,
        coord: u8,
    },
    /// It gets a new epoch (sequences restart).
    BumpEpoch {
        pid: u8,
    },
    Roll,
    /// Truncate to the base of the batch `back / 2 + 1` from the end.
    Truncate {
        back: u8,
    },
    /// Move the high watermark to `log_end - back`.
    Hw {
        back: u8,
    },
    /// Close (clean) or drop after a flush (unclean, recovery point `back`
    /// below the log end), then reopen with the high watermark `hw_back`
    /// lower (its checkpoint lags).
    Reopen {
        clean: bool,
        back: u8,
        hw_back: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..3, 1u8..4, any::<bool>()).prop_map(|(pid, n, txn)| Op::Data { pid, n, txn }),
        3 => (0u8..3, any::<bool>(), 0u8..4).prop_map(|(pid, commit, coord)| Op::Marker { pid, commit, coord }),
        1 => (0u8..3).prop_map(|pid| Op::BumpEpoch { pid }),
        1 => Just(Op::Roll),
        1 => (0u8..12).prop_map(|back| Op::Truncate { back }),
        2 => (0u8..6).prop_map(|back| Op::Hw { back }),
        2 => (any::<bool>(), 0u8..10, prop_oneof![Just(0u8), 0u8..8])
            .prop_map(|(clean, back, hw_back)| Op::Reopen { clean, back, hw_back }),
    ]
}

/// Run `ops`, checking after each reopen and truncation that the state
/// equals the full scan's, and that the live state always did.
fn run(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        tiny_segments(),
        clock(),
        LogOpenOptions::default(),
    );
    // Per producer: (epoch, next sequence).
    let mut producers = [(0i16, 0i32); 3];
    let mut ts = T0;
    for op in ops {
        match *op {
            Op::Data { pid, n, txn } => {
                let (epoch, seq) = producers[pid as usize];
                ts += 1;
                let mut b = data(1000 + pid as i64, epoch, seq, n as usize, txn, ts);
                log.append_as_leader(&mut b, 0).unwrap();
                producers[pid as usize].1 = seq + n as i32;
            }
            Op::Marker { pid, commit, coord } => {
                let kind = if commit {
                    ControlType::Commit
                } else {
                    ControlType::Abort
                };
                let epoch = producers[pid as usize].0;
                marker(&mut log, 1000 + pid as i64, epoch, kind, coord as i32);
            }
            Op::BumpEpoch { pid } => producers[pid as usize] = (producers[pid as usize].0 + 1, 0),
            Op::Roll => log.roll().unwrap(),
            Op::Truncate { back } => {
                // To a batch boundary `back` batches from the end (a cut
                // inside a batch leaves a log end no reopen can find).
                let mut bases = Vec::new();
                log.scan_batch_headers(|h| bases.push(h.base_offset))
                    .unwrap();
                let i = bases.len().saturating_sub(back as usize / 2 + 1);
                let to = bases.get(i).copied().unwrap_or(log.log_end_offset());
                log.truncate_to(to).unwrap();
                let want =
                    full_scan_state(dir.path(), log.high_watermark(), log.log_start_offset());
                assert_eq!(state(&log), want, "after truncating to {to}");
                assert!(list_snapshots(dir.path()).unwrap().iter().all(|o| *o <= to));
            }
            Op::Hw { back } => {
                let hw = (log.log_end_offset() - back as i64).max(log.high_watermark());
                log.set_high_watermark(hw);
            }
            Op::Reopen {
                clean,
                back,
                hw_back,
            } => {
                let live = state(&log);
                let start = log.log_start_offset();
                let hw = (log.high_watermark() - hw_back as i64).max(start);
                let end = log.log_end_offset();
                if clean {
                    log.close().unwrap();
                } else {
                    log.flush().unwrap();
                }
                drop(log);
                log = open(
                    dir.path(),
                    tiny_segments(),
                    clock(),
                    LogOpenOptions {
                        clean_shutdown: clean,
                        recovery_point: (end - back as i64).max(0),
                        high_watermark: hw,
                        log_start_offset: start,
                        ..LogOpenOptions::default()
                    },
                );
                let load = log.last_producer_state_load();
                if hw_back == 0 {
                    // An empty log (end 0) has nothing to snapshot: closing
                    // thousands of never-written partitions writes no file.
                    if clean && end > 0 {
                        assert_eq!(
                            load.snapshot_offset,
                            Some(end),
                            "clean close snapshots the end"
                        );
                        assert_eq!(load.batches_scanned, 0);
                    }
                    assert_eq!(state(&log), live, "reopened ({load:?}) differs from before");
                }
                assert_eq!(state(&log), full_scan_state(dir.path(), hw, start));
            }
        }
    }
    let want = full_scan_state(dir.path(), log.high_watermark(), log.log_start_offset());
    assert_eq!(state(&log), want, "live state differs from a full scan");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn reopen_from_snapshot_equals_full_scan(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops);
    }
}

/// A log of `batches` 2-record batches of 3 producers over many segments,
/// all committed (high watermark at the end).
fn log_with_segments(dir: &Path, batches: usize) -> PartitionLog {
    let mut log = open(dir, tiny_segments(), clock(), LogOpenOptions::default());
    for i in 0..batches {
        let pid = (i % 3) as i64;
        let seq = (i / 3) as i32 * 2;
        log.append_as_leader(&mut data(pid, 0, seq, 2, false, T0), 0)
            .unwrap();
    }
    let end = log.log_end_offset();
    log.set_high_watermark(end);
    log
}

#[test]
fn a_clean_reopen_replays_nothing_and_an_unclean_one_only_the_last_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_segments(dir.path(), 300);
    let segments = log.num_segments() as u64;
    assert!(segments > 50, "{segments} segments");
    let end = log.log_end_offset();
    let want = state(&log);
    log.close().unwrap();
    drop(log);

    let (log, report) = PartitionLog::open(
        dir.path(),
        tp(),
        tiny_segments(),
        clock(),
        LogOpenOptions {
            clean_shutdown: true,
            high_watermark: end,
            ..LogOpenOptions::default()
        },
    )
    .unwrap();
    assert_eq!(report.producer_state.snapshot_offset, Some(end));
    assert_eq!(report.producer_state.batches_scanned, 0);
    assert_eq!(state(&log), want);
    let last_base = log.segments().last().unwrap().base_offset();
    drop(log);

    // Unclean: the close's snapshot goes (as if never written); the roll's
    // snapshot at the active segment's base is the newest left.
    fs::remove_file(snapshot_path(dir.path(), end)).unwrap();
    let log = open(
        dir.path(),
        tiny_segments(),
        clock(),
        LogOpenOptions {
            recovery_point: end,
            high_watermark: end,
            ..LogOpenOptions::default()
        },
    );
    let load = log.last_producer_state_load();
    assert_eq!(load.snapshot_offset, Some(last_base));
    let batches_in_last = (end - last_base) as u64 / 2;
    assert_eq!(load.batches_scanned, batches_in_last);
    assert_eq!(state(&log), want);

    // Without snapshots every batch is replayed.
    for o in list_snapshots(dir.path()).unwrap() {
        fs::remove_file(snapshot_path(dir.path(), o)).unwrap();
    }
    drop(log);
    let log = open(
        dir.path(),
        tiny_segments(),
        clock(),
        LogOpenOptions {
            clean_shutdown: true,
            high_watermark: end,
            ..LogOpenOptions::default()
        },
    );
    let full = log.last_producer_state_load();
    assert_eq!(full.snapshot_offset, None);
    assert_eq!(full.batches_scanned, 300);
    assert!(full.bytes_scanned > 50 * load.bytes_scanned.max(1));
    assert_eq!(state(&log), want);
}

#[test]
fn a_corrupt_or_unknown_version_snapshot_is_deleted_and_an_older_one_or_the_scan_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_segments(dir.path(), 60);
    let end = log.log_end_offset();
    let want = state(&log);
    log.close().unwrap();
    drop(log);
    let snaps = list_snapshots(dir.path()).unwrap();
    assert_eq!(snaps.len(), 3, "{snaps:?}");
    assert_eq!(snaps.last(), Some(&end));
    let reopen = || {
        open(
            dir.path(),
            tiny_segments(),
            clock(),
            LogOpenOptions {
                clean_shutdown: true,
                high_watermark: end,
                ..LogOpenOptions::default()
            },
        )
    };

    // A flipped byte in the newest: the CRC refuses it.
    let newest = snapshot_path(dir.path(), snaps[2]);
    let mut bytes = fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&newest, &bytes).unwrap();
    let log = reopen();
    let load = log.last_producer_state_load();
    assert_eq!(
        (load.snapshot_offset, load.snapshots_rejected),
        (Some(snaps[1]), 1)
    );
    assert_eq!(state(&log), want);
    assert!(!newest.exists(), "a corrupt snapshot is deleted");
    drop(log);

    // An unknown version in the next: the oldest serves.
    let next = snapshot_path(dir.path(), snaps[1]);
    let mut bytes = fs::read(&next).unwrap();
    bytes[0..2].copy_from_slice(&9i16.to_be_bytes());
    fs::write(&next, &bytes).unwrap();
    let log = reopen();
    let load = log.last_producer_state_load();
    assert_eq!(
        (load.snapshot_offset, load.snapshots_rejected),
        (Some(snaps[0]), 1)
    );
    assert_eq!(state(&log), want);
    assert!(!next.exists());
    drop(log);

    // The last one cut short: the full scan, same state.
    let oldest = snapshot_path(dir.path(), snaps[0]);
    let bytes = fs::read(&oldest).unwrap();
    fs::write(&oldest, &bytes[..bytes.len() - 3]).unwrap();
    let log = reopen();
    let load = log.last_producer_state_load();
    assert_eq!((load.snapshot_offset, load.snapshots_rejected), (None, 1));
    assert_eq!(load.batches_scanned, 60);
    assert_eq!(state(&log), want);
    assert!(list_snapshots(dir.path()).unwrap().is_empty());
}

#[test]
fn truncation_below_a_snapshot_deletes_it_and_reloads_from_an_older_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_segments(dir.path(), 60);
    let snaps = list_snapshots(dir.path()).unwrap();
    assert_eq!(snaps.len(), 3, "{snaps:?}");
    // Mid-way between the two newest snapshots, at a batch boundary (every
    // batch holds 2 records from offset 0).
    let to = (snaps[1] + snaps[2]) / 2 / 2 * 2;
    assert!(snaps[1] < to && to < snaps[2], "{snaps:?}");
    log.truncate_to(to).unwrap();
    assert_eq!(list_snapshots(dir.path()).unwrap(), snaps[..2].to_vec());
    let load = log.last_producer_state_load();
    assert_eq!(load.snapshot_offset, Some(snaps[1]));
    assert!(load.batches_scanned > 0);
    let hw = log.high_watermark();
    assert_eq!(state(&log), full_scan_state(dir.path(), hw, 0));
    // Producer 0's batches at or above the truncation point are forgotten:
    // its newest kept batch is what a retry is deduplicated against.
    let last_kept = log
        .producer_state()
        .snapshot_entries()
        .into_iter()
        .find(|p| p.producer_id == 0)
        .unwrap();
    let newest = *last_kept.batches.last().unwrap();
    assert!(newest.last_offset < to);
    let mut retry = rivulet_protocol::record_batch::BatchHeader::parse(&data(
        0,
        0,
        newest.first_seq,
        2,
        false,
        T0,
    ))
    .unwrap();
    retry.base_offset = 0;
    assert!(matches!(
        log.producer_state().check(&retry),
        SequenceCheck::Duplicate(m) if m == newest
    ));

    // Below every snapshot: they all go, the state comes from the full scan.
    log.truncate_to(snaps[0] - 2).unwrap();
    assert!(list_snapshots(dir.path()).unwrap().is_empty());
    assert_eq!(log.last_producer_state_load().snapshot_offset, None);
    let hw = log.high_watermark();
    assert_eq!(state(&log), full_scan_state(dir.path(), hw, 0));

    // A full truncation forgets everything, snapshots included.
    log.roll().unwrap();
    assert!(!list_snapshots(dir.path()).unwrap().is_empty());
    log.truncate_fully_and_start_at(500).unwrap();
    assert!(list_snapshots(dir.path()).unwrap().is_empty());
    assert!(log.producer_state().is_empty());
}

#[test]
fn coordinator_epochs_of_markers_survive_reopen_from_snapshot_and_from_scan() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        tiny_segments(),
        clock(),
        LogOpenOptions::default(),
    );
    log.append_as_leader(&mut data(7, 0, 0, 1, true, T0), 0)
        .unwrap();
    marker(&mut log, 7, 0, ControlType::Commit, 5);
    log.roll().unwrap(); // snapshot holds producer 7's coordinator epoch 5
    log.append_as_leader(&mut data(8, 0, 0, 1, true, T0), 0)
        .unwrap();
    marker(&mut log, 8, 0, ControlType::Abort, 9); // only in the log after it
    let end = log.log_end_offset();
    log.flush().unwrap();
    drop(log); // unclean: no snapshot at the end
    let log = open(
        dir.path(),
        tiny_segments(),
        clock(),
        LogOpenOptions {
            recovery_point: end,
            high_watermark: end,
            ..LogOpenOptions::default()
        },
    );
    assert!(log.last_producer_state_load().snapshot_offset.is_some());
    let p = log.producer_state();
    assert_eq!(p.newer_coordinator_epoch(7, 4), Some(5));
    assert_eq!(p.newer_coordinator_epoch(7, 5), None);
    assert_eq!(p.newer_coordinator_epoch(8, 8), Some(9));
    assert_eq!(log.aborted_transactions(0, end).unwrap().len(), 1);
}

#[test]
fn retention_deletes_snapshots_below_the_first_segment_and_keeps_the_producers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_segments(dir.path(), 60);
    let snaps = list_snapshots(dir.path()).unwrap();
    assert_eq!(snaps.len(), 3, "{snaps:?}");
    let producers = log.producer_state().snapshot_entries();
    // Inside the segment that starts at the middle snapshot.
    let start = log.delete_records_before(snaps[1] + 2).unwrap();
    assert_eq!(start, snaps[1] + 2);
    assert_eq!(log.segments().next().unwrap().base_offset(), snaps[1]);
    assert_eq!(list_snapshots(dir.path()).unwrap(), snaps[1..].to_vec());
    // KIP-360: producers outlive the data retention removed.
    assert_eq!(log.producer_state().snapshot_entries(), producers);
    let end = log.log_end_offset();
    log.close().unwrap();
    drop(log);
    let log = open(
        dir.path(),
        tiny_segments(),
        clock(),
        LogOpenOptions {
            clean_shutdown: true,
            high_watermark: end,
            log_start_offset: start,
            ..LogOpenOptions::default()
        },
    );
    assert_eq!(log.last_producer_state_load().snapshot_offset, Some(end));
    assert_eq!(log.producer_state().snapshot_entries(), producers);
}
