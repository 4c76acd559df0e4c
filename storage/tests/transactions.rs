//! Transactions in a partition log (KIP-98): the last stable offset, aborted
//! transactions and their `.txnindex` files, across leader and follower
//! appends, truncation, retention and reopening — checked on offsets and on
//! the bytes of the files on disk.

mod common;

use std::fs;
use std::path::Path;

use rivulet_protocol::control::{build_control_batch, ControlType};
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_protocol::BatchError;
use rivulet_storage::{
    AbortedTxn, AppendOrigin, LogConfig, LogOpenOptions, PartitionLog, StorageError,
};

use common::*;

/// A transactional batch of `n` records from producer `pid`.
fn txn_batch(pid: i64, n: usize) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(Compression::None)
        .producer(pid, 0, 0)
        .transactional(true);
    for i in 0..n {
        b.push(T0, Some(format!("k{i}").as_bytes()), Some(b"txn"), &[]);
    }
    b.build().unwrap()
}

/// Append `n` records of producer `pid`'s transaction; returns the first offset.
fn txn(log: &mut PartitionLog, pid: i64, n: usize) -> i64 {
    log.append_as_leader(&mut txn_batch(pid, n), 0)
        .unwrap()
        .first_offset
}

/// Append a plain (non-transactional) batch of `n` records.
fn plain(log: &mut PartitionLog, n: usize) -> i64 {
    log.append_as_leader(&mut batch("plain", n, T0), 0)
        .unwrap()
        .first_offset
}

/// Append producer `pid`'s marker as the coordinator would; returns its offset.
fn end(log: &mut PartitionLog, pid: i64, kind: ControlType) -> i64 {
    let mut m = build_control_batch(pid, 0, kind, 5, T0);
    log.append_as_leader_from(&mut m, 0, AppendOrigin::Coordinator)
        .unwrap()
        .first_offset
}

fn aborted(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

/// Segments of about two batches each, so transactions span segments.
fn tiny_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 200,
        index_interval_bytes: 64,
        ..small_segments()
    }
}

fn new_log(dir: &Path, cfg: LogConfig) -> PartitionLog {
    open(dir, cfg, clock(), LogOpenOptions::default())
}

fn txn_index_path(dir: &Path, base: i64) -> std::path::PathBuf {
    dir.join(format!("{base:020}.txnindex"))
}

/// The 34-byte entries of a `.txnindex` file, decoded by hand.
fn txn_index_file(dir: &Path, base: i64) -> Vec<AbortedTxn> {
    let bytes = fs::read(txn_index_path(dir, base)).unwrap();
    assert_eq!(bytes.len() % 34, 0, "whole 34-byte entries");
    bytes
        .chunks(34)
        .map(|e| {
            assert_eq!(&e[0..2], &[0, 0], "version 0");
            let at = |i: usize| i64::from_be_bytes(e[i..i + 8].try_into().unwrap());
            aborted(at(2), at(10), at(18), at(26))
        })
        .collect()
}

#[test]
fn lso_equals_high_watermark_without_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), LogConfig::default());
    plain(&mut log, 3);
    assert_eq!(log.last_stable_offset(), 0);
    log.set_high_watermark(2);
    assert_eq!(log.last_stable_offset(), 2);
    log.set_high_watermark(3);
    assert_eq!(log.last_stable_offset(), 3);
    assert_eq!(log.first_unstable_offset(), None);
    assert!(log.aborted_transactions(0, 3).unwrap().is_empty());
}

#[test]
fn open_transaction_holds_the_lso_until_its_marker_is_replicated() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), LogConfig::default());
    plain(&mut log, 3); // 0..=2
    let first = txn(&mut log, 7, 2); // 3..=4
    plain(&mut log, 3); // 5..=7
    txn(&mut log, 7, 1); // 8, same transaction
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(first, 3);
    assert_eq!(log.last_stable_offset(), 3);
    assert_eq!(log.ongoing_transactions(), vec![(7, 3)]);
    let marker = end(&mut log, 7, ControlType::Commit);
    assert_eq!(marker, 9);
    assert!(log.ongoing_transactions().is_empty());
    // Decided, but the marker is not below the high watermark yet.
    log.set_high_watermark(9);
    assert_eq!(log.last_stable_offset(), 3);
    assert_eq!(log.first_unstable_offset(), Some(3));
    log.set_high_watermark(10);
    assert_eq!(log.last_stable_offset(), 10);
    assert_eq!(log.first_unstable_offset(), None);
    assert!(
        log.aborted_transactions(0, 10).unwrap().is_empty(),
        "a commit is not indexed"
    );
}

#[test]
fn lso_is_the_oldest_of_several_transactions_and_never_above_the_hw() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), LogConfig::default());
    txn(&mut log, 1, 1); // 0
    txn(&mut log, 2, 1); // 1
    log.set_high_watermark(2);
    assert_eq!(log.last_stable_offset(), 0);
    end(&mut log, 1, ControlType::Abort); // 2
    log.set_high_watermark(3);
    assert_eq!(log.last_stable_offset(), 1, "producer 2 still open");
    plain(&mut log, 2); // 3..=4
    end(&mut log, 2, ControlType::Commit); // 5
    log.set_high_watermark(4);
    assert_eq!(log.last_stable_offset(), 1, "commit of 2 unreplicated");
    log.set_high_watermark(6);
    assert_eq!(log.last_stable_offset(), 6);
}

#[test]
fn clients_cannot_append_control_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), LogConfig::default());
    txn(&mut log, 1, 1);
    let mut m = build_control_batch(1, 0, ControlType::Commit, 0, T0);
    let err = log.append_as_leader(&mut m, 0).unwrap_err();
    assert!(matches!(
        err,
        StorageError::InvalidBatch(BatchError::ControlBatchFromClient)
    ));
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.ongoing_transactions(), vec![(1, 0)]);
    // A malformed control batch is refused even from the coordinator.
    let mut bad = build_control_batch(1, 0, ControlType::Commit, 0, T0);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(log
        .append_as_leader_from(&mut bad, 0, AppendOrigin::Coordinator)
        .is_err());
    assert_eq!(log.log_end_offset(), 1);
}

/// Producer 1 aborts 0..=4 while producer 2 is open; producer 2 commits; 3 aborts.
fn log_with_aborts(log: &mut PartitionLog) {
    txn(log, 1, 2); // 0..=1
    txn(log, 2, 2); // 2..=3
    end(log, 1, ControlType::Abort); // 4
    end(log, 2, ControlType::Commit); // 5
    txn(log, 3, 1); // 6
    end(log, 3, ControlType::Abort); // 7
    plain(log, 2); // 8..=9
    log.set_high_watermark(log.log_end_offset());
}

#[test]
fn aborted_transactions_are_listed_for_the_ranges_that_overlap_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), LogConfig::default());
    log_with_aborts(&mut log);
    let a1 = aborted(1, 0, 4, 2); // producer 2 was still open at offset 2
    let a3 = aborted(3, 6, 7, 8);
    assert_eq!(log.aborted_transactions(0, 10).unwrap(), vec![a1, a3]);
    assert_eq!(log.aborted_transactions(4, 10).unwrap(), vec![a1, a3]);
    assert_eq!(log.aborted_transactions(5, 10).unwrap(), vec![a3]);
    assert_eq!(log.aborted_transactions(0, 1).unwrap(), vec![a1]);
    assert_eq!(log.aborted_transactions(0, 6).unwrap(), vec![a1]);
    assert_eq!(log.aborted_transactions(5, 6).unwrap(), vec![]);
    assert_eq!(log.aborted_transactions(8, 10).unwrap(), vec![]);
    assert_eq!(log.last_stable_offset(), 10);
}

#[test]
fn aborted_transaction_starting_in_an_earlier_segment_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), small_segments());
    let first = txn(&mut log, 9, 3);
    while log.num_segments() < 3 {
        plain(&mut log, 5);
    }
    let marker = end(&mut log, 9, ControlType::Abort);
    log.set_high_watermark(log.log_end_offset());
    let segs = segment_bases(&log);
    let marker_seg = *segs.last().unwrap();
    assert!(marker_seg > first);
    let want = vec![aborted(9, first, marker, marker + 1)];
    // Kafka reads from the fetch offset's segment on, and a transaction's
    // entry sits in its marker's segment, even for a fetch that ends early.
    assert_eq!(log.aborted_transactions(first, first + 1).unwrap(), want);
    assert_eq!(log.aborted_transactions(0, marker + 1).unwrap(), want);
    // On disk only in the marker's segment.
    for b in segs {
        let p = txn_index_path(dir.path(), b);
        assert_eq!(p.exists(), b == marker_seg, "segment {b}");
    }
    assert_eq!(txn_index_file(dir.path(), marker_seg), want);
}

#[test]
fn txnindex_files_hold_kafkas_34_byte_entries_only_where_aborts_are() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), tiny_segments());
    log_with_aborts(&mut log);
    let bases = segment_bases(&log);
    let mut on_disk = Vec::new();
    for b in &bases {
        if txn_index_path(dir.path(), *b).exists() {
            on_disk.extend(txn_index_file(dir.path(), *b));
        }
    }
    assert_eq!(on_disk, vec![aborted(1, 0, 4, 2), aborted(3, 6, 7, 8)]);
    let with_files = bases
        .iter()
        .filter(|b| txn_index_path(dir.path(), **b).exists())
        .count();
    assert!(bases.len() >= 4, "segments {bases:?}");
    assert_eq!(
        with_files, 2,
        "one file per segment holding an abort marker"
    );
}

#[test]
fn transactions_survive_a_clean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), tiny_segments());
    log_with_aborts(&mut log);
    txn(&mut log, 4, 2); // 10..=11, left open
    log.set_high_watermark(12);
    let aborted_before = log.aborted_transactions(0, 12).unwrap();
    log.close().unwrap();
    drop(log);
    // Closing wrote a producer-state snapshot at the log end; reopening
    // changes no file.
    let files_before = file_names(dir.path());
    assert!(files_before.contains(&"00000000000000000012.snapshot".to_string()));
    let log = open(
        dir.path(),
        tiny_segments(),
        clock(),
        LogOpenOptions {
            clean_shutdown: true,
            recovery_point: 12,
            high_watermark: 12,
            ..LogOpenOptions::default()
        },
    );
    assert_eq!(file_names(dir.path()), files_before);
    assert_eq!(log.aborted_transactions(0, 12).unwrap(), aborted_before);
    assert_eq!(log.ongoing_transactions(), vec![(4, 10)]);
    assert_eq!(log.last_stable_offset(), 10);
}

#[test]
fn unclean_reopen_rebuilds_missing_and_torn_txn_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), tiny_segments());
    log_with_aborts(&mut log);
    txn(&mut log, 4, 2);
    let with_index: Vec<i64> = segment_bases(&log)
        .into_iter()
        .filter(|b| txn_index_path(dir.path(), *b).exists())
        .collect();
    let contents: Vec<Vec<u8>> = with_index
        .iter()
        .map(|b| fs::read(txn_index_path(dir.path(), *b)).unwrap())
        .collect();
    assert_eq!(with_index.len(), 2, "the two aborts in different segments");
    log.flush().unwrap();
    drop(log); // no close: unclean
               // One index lost, another torn.
    fs::remove_file(txn_index_path(dir.path(), with_index[0])).unwrap();
    let torn = txn_index_path(dir.path(), with_index[1]);
    let bytes = fs::read(&torn).unwrap();
    fs::write(&torn, &bytes[..bytes.len() - 3]).unwrap();
    let log = open(
        dir.path(),
        tiny_segments(),
        clock(),
        LogOpenOptions {
            high_watermark: 12,
            ..LogOpenOptions::default()
        },
    );
    for (b, want) in with_index.iter().zip(&contents) {
        assert_eq!(&fs::read(txn_index_path(dir.path(), *b)).unwrap(), want);
    }
    assert_eq!(
        log.aborted_transactions(0, 12).unwrap(),
        vec![aborted(1, 0, 4, 2), aborted(3, 6, 7, 8)]
    );
    assert_eq!(log.ongoing_transactions(), vec![(4, 10)]);
    assert_eq!(log.last_stable_offset(), 10);
}

#[test]
fn torn_txn_index_is_rebuilt_even_after_a_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), LogConfig::default());
    log_with_aborts(&mut log);
    log.close().unwrap();
    drop(log);
    let p = txn_index_path(dir.path(), 0);
    let good = fs::read(&p).unwrap();
    let mut torn = good.clone();
    torn.extend_from_slice(&[0, 0, 1]);
    fs::write(&p, &torn).unwrap();
    let log = open(
        dir.path(),
        LogConfig::default(),
        clock(),
        LogOpenOptions {
            clean_shutdown: true,
            recovery_point: 10,
            high_watermark: 10,
            ..LogOpenOptions::default()
        },
    );
    assert_eq!(fs::read(&p).unwrap(), good);
    assert_eq!(log.aborted_transactions(0, 10).unwrap().len(), 2);
}

#[test]
fn truncation_below_an_abort_marker_drops_its_entry_and_reopens_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), LogConfig::default());
    txn(&mut log, 1, 2); // 0..=1
    plain(&mut log, 1); // 2
    end(&mut log, 1, ControlType::Abort); // 3
    txn(&mut log, 2, 1); // 4
    end(&mut log, 2, ControlType::Abort); // 5
    log.set_high_watermark(2);
    assert_eq!(txn_index_file(dir.path(), 0).len(), 2);
    // Above the high watermark: rolled back exactly.
    log.truncate_to(5).unwrap();
    assert_eq!(
        log.aborted_transactions(0, 5).unwrap(),
        vec![aborted(1, 0, 3, 4)]
    );
    assert_eq!(txn_index_file(dir.path(), 0), vec![aborted(1, 0, 3, 4)]);
    assert_eq!(log.ongoing_transactions(), vec![(2, 4)]);
    log.truncate_to(3).unwrap();
    assert!(log.aborted_transactions(0, 3).unwrap().is_empty());
    assert!(!txn_index_path(dir.path(), 0).exists());
    assert_eq!(log.ongoing_transactions(), vec![(1, 0)]);
    log.set_high_watermark(3);
    assert_eq!(log.last_stable_offset(), 0);
    // A new abort after truncation is indexed again.
    assert_eq!(end(&mut log, 1, ControlType::Abort), 3);
    assert_eq!(txn_index_file(dir.path(), 0), vec![aborted(1, 0, 3, 4)]);
}

#[test]
fn truncation_below_the_high_watermark_rescans_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), small_segments());
    txn(&mut log, 1, 2); // 0..=1
    while log.num_segments() < 2 {
        plain(&mut log, 5);
    }
    let marker = end(&mut log, 1, ControlType::Commit);
    txn(&mut log, 2, 1);
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(log.ongoing_transactions(), vec![(2, marker + 1)]);
    log.truncate_to(marker).unwrap();
    assert_eq!(log.ongoing_transactions(), vec![(1, 0)]);
    assert_eq!(log.last_stable_offset(), 0);
}

#[test]
fn truncating_fully_forgets_every_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), LogConfig::default());
    log_with_aborts(&mut log);
    txn(&mut log, 4, 1);
    log.truncate_fully_and_start_at(100).unwrap();
    assert!(log.ongoing_transactions().is_empty());
    assert!(log.aborted_transactions(100, 200).unwrap().is_empty());
    assert_eq!(log.last_stable_offset(), 100);
    assert!(!file_names(dir.path())
        .iter()
        .any(|n| n.ends_with(".txnindex")));
}

#[test]
fn follower_appends_track_the_same_transactions() {
    let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = new_log(ldir.path(), tiny_segments());
    log_with_aborts(&mut leader);
    txn(&mut leader, 4, 2);
    let mut follower = new_log(fdir.path(), tiny_segments());
    let mut next = 0;
    while next < leader.log_end_offset() {
        let bytes = leader.read(next, 300, None, true).unwrap();
        let info = follower.append_as_follower(&bytes).unwrap();
        next = info.last_offset + 1;
    }
    follower.set_high_watermark(12);
    assert_eq!(follower.ongoing_transactions(), vec![(4, 10)]);
    assert_eq!(follower.last_stable_offset(), 10);
    assert_eq!(
        follower.aborted_transactions(0, 12).unwrap(),
        leader.aborted_transactions(0, 12).unwrap()
    );
    for b in segment_bases(&follower) {
        let (lp, fp) = (
            txn_index_path(ldir.path(), b),
            txn_index_path(fdir.path(), b),
        );
        assert_eq!(fp.exists(), lp.exists(), "segment {b}");
        if fp.exists() {
            assert_eq!(fs::read(fp).unwrap(), fs::read(lp).unwrap());
        }
    }
}

#[test]
fn deleting_a_segment_deletes_its_txn_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), small_segments());
    txn(&mut log, 1, 1);
    end(&mut log, 1, ControlType::Abort);
    while log.num_segments() < 3 {
        plain(&mut log, 5);
    }
    log.set_high_watermark(log.log_end_offset());
    assert!(txn_index_path(dir.path(), 0).exists());
    let second = segment_bases(&log)[1];
    log.delete_records_before(second).unwrap();
    assert!(!txn_index_path(dir.path(), 0).exists());
    assert!(log
        .aborted_transactions(second, log.log_end_offset())
        .unwrap()
        .is_empty());
    assert_eq!(log.last_stable_offset(), log.high_watermark());
}

#[test]
fn reopening_finds_every_marker_whatever_the_batch_sizes() {
    // Markers straddle the scan's read buffer, and follow batches larger
    // than it (which the scan skips by reading headers only).
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), LogConfig::default());
    let mut want = Vec::new();
    for pid in 0..120i64 {
        let size = match pid % 10 {
            0 => 150_000,
            3 => 70_000,
            _ => 500 + 37 * pid as usize,
        };
        let mut b = RecordBatchBuilder::new(Compression::None)
            .producer(pid, 0, 0)
            .transactional(true);
        b.push(T0, Some(b"k"), Some(&vec![b'x'; size]), &[]);
        let first = log
            .append_as_leader(&mut b.build().unwrap(), 0)
            .unwrap()
            .first_offset;
        let kind = if pid % 3 == 0 {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        let marker = end(&mut log, pid, kind);
        if kind == ControlType::Abort {
            want.push(aborted(pid, first, marker, marker + 1));
        }
    }
    txn(&mut log, 500, 1);
    let leo = log.log_end_offset();
    log.set_high_watermark(leo);
    assert_eq!(log.aborted_transactions(0, leo).unwrap(), want);
    drop(log);
    fs::remove_file(txn_index_path(dir.path(), 0)).unwrap();
    let log = open(
        dir.path(),
        LogConfig::default(),
        clock(),
        LogOpenOptions {
            high_watermark: leo,
            ..LogOpenOptions::default()
        },
    );
    assert_eq!(log.aborted_transactions(0, leo).unwrap(), want);
    assert_eq!(txn_index_file(dir.path(), 0), want);
    assert_eq!(log.ongoing_transactions(), vec![(500, leo - 1)]);
}

mod model {
    //! Any history of transactional and plain appends, markers, high
    //! watermark moves, truncations and reopenings leaves the log with the
    //! LSO, ongoing transactions and aborted list that a from-scratch reading
    //! of its batches gives.

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// `pid` < 0: a plain batch.
        Data {
            pid: i64,
            n: usize,
        },
        Marker {
            pid: i64,
            abort: bool,
        },
        /// Move the HW this fraction of the way to the log end.
        Hw(f64),
        /// Truncate to a batch boundary: this fraction of the way from the
        /// log start (so above or below the HW).
        Truncate(f64),
        Reopen {
            clean: bool,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (-1i64..4, 1usize..4).prop_map(|(pid, n)| Op::Data { pid, n }),
            3 => (0i64..4, any::<bool>()).prop_map(|(pid, abort)| Op::Marker { pid, abort }),
            3 => (0.0f64..=1.0).prop_map(Op::Hw),
            1 => (0.0f64..=1.0).prop_map(Op::Truncate),
            1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        ]
    }

    /// A batch in the model: base offset, producer, marker.
    #[derive(Debug, Clone, Copy)]
    struct B {
        base: i64,
        pid: i64,
        marker: Option<bool>,
    }

    /// `(ongoing (pid, first) oldest first, aborted entries, completed (first, marker))`.
    #[allow(clippy::type_complexity)]
    fn replay(log: &[B]) -> (Vec<(i64, i64)>, Vec<AbortedTxn>, Vec<(i64, i64)>) {
        let mut ongoing: Vec<(i64, i64)> = Vec::new();
        let (mut aborted_list, mut completed) = (Vec::new(), Vec::new());
        for b in log {
            match b.marker {
                None if b.pid >= 0 && !ongoing.iter().any(|(p, _)| *p == b.pid) => {
                    ongoing.push((b.pid, b.base));
                }
                None => {}
                Some(abort) => {
                    if let Some(i) = ongoing.iter().position(|(p, _)| *p == b.pid) {
                        let (_, first) = ongoing.remove(i);
                        completed.push((first, b.base));
                        if abort {
                            let lso = ongoing.iter().map(|(_, f)| *f).min().unwrap_or(b.base + 1);
                            aborted_list.push(aborted(b.pid, first, b.base, lso));
                        }
                    }
                }
            }
        }
        (ongoing, aborted_list, completed)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn log_agrees_with_a_replay_of_its_batches(ops in proptest::collection::vec(op(), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let mut log = new_log(dir.path(), tiny_segments());
            let mut model: Vec<B> = Vec::new();
            for op in ops {
                let leo = log.log_end_offset();
                match op {
                    Op::Data { pid, n } => {
                        let base = if pid < 0 { plain(&mut log, n) } else {
                            log.append_as_leader(&mut txn_batch(pid, n), 0).unwrap().first_offset
                        };
                        model.push(B { base, pid, marker: None });
                    }
                    Op::Marker { pid, abort } => {
                        let kind = if abort { ControlType::Abort } else { ControlType::Commit };
                        let base = end(&mut log, pid, kind);
                        model.push(B { base, pid, marker: Some(abort) });
                    }
                    Op::Hw(f) => {
                        let hw = log.high_watermark();
                        let to = hw + ((leo - hw) as f64 * f) as i64;
                        log.set_high_watermark(to);
                    }
                    Op::Truncate(f) => {
                        let i = (model.len() as f64 * f) as usize;
                        if let Some(b) = model.get(i).copied() {
                            log.truncate_to(b.base).unwrap();
                            model.truncate(i);
                        }
                    }
                    Op::Reopen { clean } => {
                        let hw = log.high_watermark();
                        if clean { log.close().unwrap(); } else { log.flush().unwrap(); }
                        drop(log);
                        log = open(dir.path(), tiny_segments(), clock(), LogOpenOptions {
                            clean_shutdown: clean,
                            recovery_point: if clean { leo } else { 0 },
                            high_watermark: hw,
                            ..LogOpenOptions::default()
                        });
                    }
                }
                let (ongoing, aborted_list, completed) = replay(&model);
                let hw = log.high_watermark();
                let lso = ongoing.iter().map(|(_, f)| *f)
                    .chain(completed.iter().filter(|(_, m)| *m >= hw).map(|(f, _)| *f))
                    .min()
                    .map_or(hw, |f| f.min(hw));
                let mut by_first = ongoing.clone();
                by_first.sort_by_key(|(_, f)| *f);
                prop_assert_eq!(log.ongoing_transactions(), by_first);
                prop_assert_eq!(log.last_stable_offset(), lso);
                let leo = log.log_end_offset();
                prop_assert_eq!(log.aborted_transactions(0, leo).unwrap(), aborted_list.clone());
                // What the files hold is what the log lists.
                let mut on_disk = Vec::new();
                for b in segment_bases(&log) {
                    if txn_index_path(dir.path(), b).exists() {
                        on_disk.extend(txn_index_file(dir.path(), b));
                    }
                }
                prop_assert_eq!(on_disk, aborted_list);
            }
        }
    }
}
