//! Read plans end after a whole batch, wherever `max_bytes` falls: the bytes
//! a plan names as a file range (`ReadPlan::file_piece`, sent to followers
//! with `sendfile`) are exactly what reading it gives, and as many whole
//! batches as fit.

mod common;

use common::*;
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;

#[test]
fn a_plan_cut_by_max_bytes_ends_after_the_last_whole_batch_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_fresh(dir.path());
    // 200 one-record batches of 100 to ~9,000 bytes: some under the
    // offset index's 4 KiB interval (not every batch indexed), some over.
    let mut sizes = Vec::new();
    for i in 0..200usize {
        let value = vec![b'v'; 100 + (i * 1_237) % 9_000];
        let mut b = RecordBatchBuilder::new(Compression::None);
        b.push(T0 + i as i64, Some(b"k"), Some(&value), &[]);
        let mut bytes = b.build().unwrap();
        sizes.push(bytes.len());
        log.append_as_leader(&mut bytes, 0).unwrap();
    }
    // Start of batch i (= offset i) in the segment.
    let starts: Vec<usize> = sizes
        .iter()
        .scan(0, |at, s| {
            let here = *at;
            *at += s;
            Some(here)
        })
        .collect();
    let mut cut = 0;
    for start in [0usize, 1, 7, 50, 123, 199] {
        for max_bytes in [1usize, 150, 4_095, 4_096, 10_000, 33_333, 100_000, 10 << 20] {
            let plan = log
                .plan_read(start as i64, max_bytes, None, true)
                .unwrap()
                .expect("a plan");
            // Whole batches from `start` up to the last one ending within
            // max_bytes (at least the first).
            let mut want = sizes[start];
            for s in &sizes[start + 1..] {
                if want + s > max_bytes {
                    break;
                }
                want += s;
            }
            assert_eq!(plan.len(), want, "from {start}, max {max_bytes}");
            if want < max_bytes.min(starts[199] + sizes[199] - starts[start]) {
                cut += 1;
            }
            let piece = plan.file_piece();
            assert_eq!(piece.position as usize, starts[start]);
            let from_file = piece.read().unwrap();
            let read = plan.execute().unwrap();
            assert_eq!(from_file.len(), want);
            assert!(from_file == read, "from {start}, max {max_bytes}");
        }
    }
    // The cut fell inside a batch for most of them.
    assert!(cut >= 15, "{cut}");
    // Without min_one_batch, a first batch over max_bytes is no plan.
    assert!(log.plan_read(0, 10, None, false).unwrap().is_none());
}
