//! Compaction of logs holding transactions (KIP-98, KIP-534): data of aborted
//! transactions is dropped and never shadows committed values, control
//! batches are never deduplicated by key, a marker goes only after its
//! transaction's data is gone and `delete.retention.ms` has passed, and no
//! pass cleans at or past the last stable offset.

use rivulet_protocol::control::{build_control_batch, parse_control_marker, ControlType};
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::{self, RecordBatchBuilder};
use rivulet_storage::{AppendOrigin, LogOpenOptions, ManualClock, PartitionLog};

use crate::common::*;
use crate::helpers::*;

fn txn_append(log: &mut PartitionLog, pid: i64, recs: &[(&str, &str)]) -> i64 {
    let mut b = RecordBatchBuilder::new(Compression::None)
        .producer(pid, 0, 0)
        .transactional(true);
    for (k, v) in recs {
        b.push(T0, Some(k.as_bytes()), Some(v.as_bytes()), &[]);
    }
    log.append_as_leader(&mut b.build().unwrap(), 0)
        .unwrap()
        .first_offset
}

fn end(log: &mut PartitionLog, pid: i64, kind: ControlType) -> i64 {
    let mut m = build_control_batch(pid, 0, kind, 0, T0);
    log.append_as_leader_from(&mut m, 0, AppendOrigin::Coordinator)
        .unwrap()
        .first_offset
}

/// `(offset, key, value)` of every data record, and `(offset, kind, has
/// delete horizon)` of every marker, read back from the log.
#[allow(clippy::type_complexity)]
fn contents(log: &PartitionLog) -> (Vec<(i64, String, String)>, Vec<(i64, ControlType, bool)>) {
    let (mut data, mut markers) = (Vec::new(), Vec::new());
    for (h, bytes) in raw_batches(log) {
        if h.is_control() {
            if let Some((kind, _)) = parse_control_marker(&bytes).unwrap() {
                markers.push((h.base_offset, kind, h.has_delete_horizon()));
            }
            continue;
        }
        let d = records::decode_batch(&bytes, 1 << 20).unwrap();
        for r in &d.records {
            let s =
                |b: &Option<bytes::Bytes>| String::from_utf8(b.clone().unwrap().to_vec()).unwrap();
            data.push((d.offset_of(r), s(&r.key), s(&r.value)));
        }
    }
    (data, markers)
}

fn kv(o: i64, k: &str, v: &str) -> (i64, String, String) {
    (o, k.to_string(), v.to_string())
}

/// A compacted log with: k1=a; an aborted transaction rewriting k1 and k2; a
/// committed one writing k3; k2=b; another committed one writing k4; all
/// closed; an active segment after.
fn mixed_log(dir: &std::path::Path, c: &std::sync::Arc<ManualClock>) -> PartitionLog {
    let mut log = open(dir, compact_cfg(), c.clone(), LogOpenOptions::default());
    append(&mut log, &[("k1", Some("a"), T0)]); // 0
    txn_append(&mut log, 1, &[("k1", "aborted"), ("k2", "aborted")]); // 1..=2
    txn_append(&mut log, 2, &[("k3", "c")]); // 3
    end(&mut log, 1, ControlType::Abort); // 4
    end(&mut log, 2, ControlType::Commit); // 5
    append(&mut log, &[("k2", Some("b"), T0)]); // 6
    txn_append(&mut log, 3, &[("k4", "d")]); // 7
    end(&mut log, 3, ControlType::Commit); // 8
    append(&mut log, &[("k5", Some("e"), T0)]); // 9
    log.roll().unwrap();
    append(&mut log, &[("k9", Some("z"), T0)]); // 10, active
    log.set_high_watermark(log.log_end_offset());
    log
}

#[test]
fn aborted_data_is_dropped_and_markers_go_only_after_their_data_and_the_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let mut log = mixed_log(dir.path(), &c);
    assert_eq!(log.aborted_transactions(0, 11).unwrap().len(), 1);
    c.set(T0 + 1_000);

    // Pass 1: the aborted records go and do not shadow k1=a; every marker
    // stays (the abort's data was still there when the pass met it).
    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    let (data, markers) = contents(&log);
    assert_eq!(
        data,
        vec![
            kv(0, "k1", "a"),
            kv(3, "k3", "c"),
            kv(6, "k2", "b"),
            kv(7, "k4", "d"),
            kv(9, "k5", "e"),
            kv(10, "k9", "z"),
        ]
    );
    assert_eq!(
        markers,
        vec![
            (4, ControlType::Abort, false),
            (5, ControlType::Commit, false),
            (8, ControlType::Commit, false),
        ],
        "control batches are never deduplicated by key"
    );

    // Pass 2: the abort's data is gone, so its marker is stamped with a delete
    // horizon (KIP-534) but kept; the commits keep their data and markers.
    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    let (data2, markers) = contents(&log);
    assert_eq!(data2, data);
    assert_eq!(
        markers,
        vec![
            (4, ControlType::Abort, true),
            (5, ControlType::Commit, false),
            (8, ControlType::Commit, false),
        ]
    );

    // Before delete.retention.ms has passed the marker stays ...
    c.set(T0 + 1_000 + compact_cfg().delete_retention_ms - 1);
    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    assert_eq!(contents(&log).1.len(), 3);
    // ... and after it, it goes.
    c.set(T0 + 1_000 + compact_cfg().delete_retention_ms + 1);
    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    let (data3, markers) = contents(&log);
    assert_eq!(data3, data);
    assert_eq!(
        markers,
        vec![
            (5, ControlType::Commit, false),
            (8, ControlType::Commit, false)
        ]
    );

    // A reopened log reads the same and has no stale transaction state.
    let leo = log.log_end_offset();
    drop(log);
    let mut log = open(dir.path(), compact_cfg(), c.clone(), unclean_opts());
    log.set_high_watermark(leo);
    assert_eq!(contents(&log).0, data);
    assert!(log.ongoing_transactions().is_empty());
    assert_eq!(log.last_stable_offset(), leo);
}

#[test]
fn commit_marker_goes_once_its_data_was_compacted_away() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let mut log = open(
        dir.path(),
        compact_cfg(),
        c.clone(),
        LogOpenOptions::default(),
    );
    txn_append(&mut log, 1, &[("k", "old")]); // 0
    end(&mut log, 1, ControlType::Commit); // 1
    append(&mut log, &[("k", Some("new"), T0)]); // 2
    append(&mut log, &[("other", Some("x"), T0)]); // 3
    log.roll().unwrap();
    append(&mut log, &[("tail", Some("t"), T0)]);
    log.set_high_watermark(log.log_end_offset());
    c.set(T0 + 1_000);
    let pass = |log: &mut PartitionLog| {
        cleaner(&c).clean(log, true).unwrap().unwrap();
        contents(log)
    };
    // Pass 1 removes k=old; its transaction's batch was met, so the marker stays.
    let (data, markers) = pass(&mut log);
    assert_eq!(data[0], kv(2, "k", "new"));
    assert_eq!(markers, vec![(1, ControlType::Commit, false)]);
    // Pass 2 stamps it; after delete.retention.ms pass 3 removes it.
    assert_eq!(pass(&mut log).1, vec![(1, ControlType::Commit, true)]);
    c.set(T0 + 2_000 + compact_cfg().delete_retention_ms);
    assert!(pass(&mut log).1.is_empty());
}

#[test]
fn cleaning_never_reaches_the_last_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let mut log = open(
        dir.path(),
        compact_cfg(),
        c.clone(),
        LogOpenOptions::default(),
    );
    // Enough records for several segments, the key "k" rewritten throughout.
    for i in 0..20 {
        let v = format!("v{i}");
        append(&mut log, &[("k", Some(&v), T0 + i)]);
    }
    let open_txn = txn_append(&mut log, 7, &[("t", "open")]);
    for i in 20..40 {
        let v = format!("v{i}");
        append(&mut log, &[("k", Some(&v), T0 + i)]);
    }
    log.roll().unwrap();
    append(&mut log, &[("tail", Some("t"), T0)]);
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(log.last_stable_offset(), open_txn);
    c.set(T0 + 10_000);

    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    let lso_seg = segment_bases(&log)
        .into_iter()
        .filter(|b| *b <= open_txn)
        .max()
        .unwrap();
    let (data, _) = contents(&log);
    let k_offsets: Vec<i64> = data.iter().filter(|r| r.1 == "k").map(|r| r.0).collect();
    // Below the segment holding the LSO, only the last "k" there survived;
    // from it on, nothing was touched.
    assert!(lso_seg > 0, "the first segment is cleanable");
    assert!(log.cleaned_up_to() <= open_txn);
    let mut expected = vec![lso_seg - 1];
    expected.extend((lso_seg..=40).filter(|o| *o != open_txn));
    assert_eq!(k_offsets, expected);
    assert!(data.iter().any(|r| r.1 == "t" && r.0 == open_txn));

    // Committed but not replicated: still held.
    let marker = end(&mut log, 7, ControlType::Commit);
    log.set_high_watermark(marker);
    assert_eq!(log.last_stable_offset(), open_txn);
    // Replicated: the next pass may clean past it.
    log.roll().unwrap();
    append(&mut log, &[("tail2", Some("t"), T0)]);
    log.set_high_watermark(log.log_end_offset());
    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    let (data, _) = contents(&log);
    let ks: Vec<_> = data.iter().filter(|r| r.1 == "k").collect();
    assert_eq!(ks.len(), 1, "{ks:?}");
    assert_eq!(ks[0].2, "v39");
}
