//! How compressed batches come out of a cleaning pass: a partially cleaned
//! batch is rebuilt in its own codec with its offsets kept, a fully kept one
//! stays byte-identical.

use rivulet_protocol::record_batch::Compression;
use rivulet_storage::{CleanupPolicy, LogConfig, LogOpenOptions};

use crate::common::*;
use crate::helpers::*;

/// One log per pair of codecs: a batch of `first` losing some records, one
/// of `first` keeping all, an uncompressed one keeping all and one of
/// `second` losing its first record.
fn check_compressed_batches(first: Compression, second: Compression) {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let mut log = open(
        dir.path(),
        LogConfig {
            cleanup_policy: CleanupPolicy::COMPACT,
            ..LogConfig::default()
        },
        c.clone(),
        LogOpenOptions::default(),
    );
    let batches = [
        keyed_batch_with(
            first,
            &[
                ("a", Some("a0"), T0),
                ("d", Some("d0"), T0 + 1),
                ("b", Some("b0"), T0 + 2),
                ("f", Some("f0"), T0 + 3),
                ("c", Some("c0"), T0 + 4),
            ],
        ),
        keyed_batch_with(
            first,
            &[("x", Some("x0"), T0 + 5), ("y", Some("y0"), T0 + 6)],
        ),
        keyed_batch_with(
            Compression::None,
            &[("a", Some("a1"), T0 + 7), ("c", Some("c1"), T0 + 8)],
        ),
        keyed_batch_with(
            second,
            &[
                ("e", Some("e0"), T0 + 9),
                ("b", Some("b1"), T0 + 10),
                ("e", Some("e1"), T0 + 11),
            ],
        ),
    ];
    for b in &batches {
        log.append_as_leader(&mut b.clone(), 0).unwrap();
    }
    log.roll().unwrap();
    append(&mut log, &[("z", Some("z0"), T0 + 12)]);
    log.set_high_watermark(log.log_end_offset());
    c.set(T0 + 1_000);
    let before = raw_batches(&log);
    assert_eq!(before.len(), 5);

    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    let after = raw_batches(&log);
    assert_eq!(after.len(), 5, "{first:?}/{second:?}");
    let rebuilt = |i: usize, codec: Compression, kept: Vec<(i64, i64, &str, &str)>| {
        let (h, bytes) = &after[i];
        let (old, _) = &before[i];
        assert_eq!(h.compression().unwrap(), codec, "batch {i}");
        assert_eq!(h.base_offset, old.base_offset, "batch {i}");
        assert_eq!(h.last_offset_delta, old.last_offset_delta, "batch {i}");
        assert_eq!(h.record_count as usize, kept.len(), "batch {i}");
        assert!(bytes.len() < before[i].1.len(), "batch {i} shrank");
        let got = decode_all(bytes);
        let want: Vec<Rec> = kept
            .into_iter()
            .map(|(o, ts, k, v)| (o, ts, Some(k.into()), Some(v.into())))
            .collect();
        assert_eq!(got, want, "batch {i}");
    };
    rebuilt(
        0,
        first,
        vec![(1, T0 + 1, "d", "d0"), (3, T0 + 3, "f", "f0")],
    );
    assert_eq!(
        after[1].1, before[1].1,
        "a fully kept {first:?} batch is byte-identical"
    );
    assert_eq!(
        after[2].1, before[2].1,
        "a fully kept plain batch is byte-identical"
    );
    rebuilt(
        3,
        second,
        vec![(10, T0 + 10, "b", "b1"), (11, T0 + 11, "e", "e1")],
    );
    assert_eq!(after[4].1, before[4].1, "the active segment is untouched");
}

#[test]
fn partially_cleaned_compressed_batches_keep_their_codec_and_full_ones_their_bytes() {
    check_compressed_batches(Compression::Gzip, Compression::Zstd);
    check_compressed_batches(Compression::Zstd, Compression::Gzip);
    check_compressed_batches(Compression::Snappy, Compression::Lz4);
    check_compressed_batches(Compression::Lz4, Compression::Snappy);
}
