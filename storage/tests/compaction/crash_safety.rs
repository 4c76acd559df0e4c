//! Crash safety of the swap that installs a cleaned segment: leftover
//! `.cleaned` files are discarded, a swap interrupted after the rename to
//! `.swap` is completed on open, and a pass that raced a truncation is
//! discarded.

use std::fs;
use std::path::Path;

use rivulet_protocol::record_batch::Compression;
use rivulet_storage::LogOpenOptions;

use crate::common::*;
use crate::helpers::*;

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for name in file_names(from) {
        fs::copy(from.join(&name), to.join(&name)).unwrap();
    }
}

fn copy_segment(from: &Path, to: &Path, base: i64, extra: &str) {
    for suffix in [".log", ".index", ".timeindex"] {
        let name = format!("{base:020}{suffix}");
        fs::copy(from.join(&name), to.join(format!("{name}{extra}"))).unwrap();
    }
}

fn remove_segment(dir: &Path, base: i64) {
    for suffix in [".log", ".index", ".timeindex"] {
        fs::remove_file(dir.join(format!("{base:020}{suffix}"))).unwrap();
    }
}

const CODECS: [Compression; 5] = [
    Compression::Gzip,
    Compression::Zstd,
    Compression::None,
    Compression::Snappy,
    Compression::Lz4,
];

/// A closed compacted log in `dir` of many small segments (one round of
/// writes to keys k0..k4 each, codecs taking turns), then one of unique keys, then the active
/// segment; returns its records.
fn write_small_segments(dir: &Path) -> Vec<Rec> {
    let mut log = open(dir, compact_cfg(), clock(), LogOpenOptions::default());
    let mut ts = T0;
    for round in 0..12 {
        let values: Vec<String> = (0..5).map(|k| format!("r{round}-k{k}")).collect();
        let recs: Vec<(String, Option<&str>, i64)> = values
            .iter()
            .enumerate()
            .map(|(k, v)| {
                ts += 1;
                (format!("k{k}"), Some(v.as_str()), ts)
            })
            .collect();
        let recs: Vec<(&str, Option<&str>, i64)> =
            recs.iter().map(|(k, v, t)| (k.as_str(), *v, *t)).collect();
        let mut b = keyed_batch_with(CODECS[round % CODECS.len()], &recs);
        log.append_as_leader(&mut b, 0).unwrap();
        log.roll().unwrap();
    }
    append(
        &mut log,
        &[("u0", Some("u0"), ts + 1), ("u1", Some("u1"), ts + 2)],
    );
    log.roll().unwrap();
    append(&mut log, &[("tail", Some("t"), ts + 3)]);
    let recs = read_all_from(&log, 0);
    log.close().unwrap();
    recs
}

/// The log in `before` cleaned in one pass, in `after` (closed). Segments
/// of about 130 bytes in 1 KiB groups: several groups of several segments.
fn clean_copy(before: &Path, after: &Path) -> Vec<Rec> {
    copy_dir(before, after);
    let c = clock();
    let mut log = open(after, compact_cfg(), c.clone(), clean_opts(i64::MAX));
    log.set_high_watermark(log.log_end_offset());
    c.set(T0 + 100_000);
    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    let recs = read_all_from(&log, 0);
    log.close().unwrap();
    recs
}

#[test]
fn leftover_cleaned_files_are_discarded_on_open() {
    let root = tempfile::tempdir().unwrap();
    let (before, cleaned, crashed) = (
        root.path().join("before"),
        root.path().join("cleaned"),
        root.path().join("crashed"),
    );
    let original = write_small_segments(&before);
    let compacted = clean_copy(&before, &cleaned);
    assert_ne!(compacted, original);

    // The crash came while the cleaner wrote `.cleaned` files, or while it
    // renamed them to `.swap` (indexes first, the log last).
    copy_dir(&before, &crashed);
    let first = segment_bases_on_disk(&cleaned)[0];
    copy_segment(&cleaned, &crashed, first, ".cleaned");
    fs::rename(
        crashed.join(format!("{first:020}.log.cleaned")),
        crashed.join(format!("{first:020}.log.swap.cleaned")),
    )
    .unwrap();
    let second = segment_bases_on_disk(&cleaned)[1];
    copy_segment(&cleaned, &crashed, second, ".cleaned");
    fs::rename(
        crashed.join(format!("{second:020}.index.cleaned")),
        crashed.join(format!("{second:020}.index.swap")),
    )
    .unwrap();

    let log = open(&crashed, compact_cfg(), clock(), unclean_opts());
    assert_eq!(read_all_from(&log, 0), original);
    assert_eq!(file_names(&crashed), file_names(&before));
}

#[test]
fn a_swap_interrupted_after_the_rename_to_swap_is_completed_on_open() {
    let root = tempfile::tempdir().unwrap();
    let (before, cleaned) = (root.path().join("before"), root.path().join("cleaned"));
    let original = write_small_segments(&before);
    let compacted = clean_copy(&before, &cleaned);
    let old_bases = segment_bases_on_disk(&before);
    let new_bases = segment_bases_on_disk(&cleaned);
    // The first cleaned segment replaced several old ones.
    let (group_base, group_end) = (new_bases[0], new_bases[1]);
    let group: Vec<i64> = old_bases
        .iter()
        .copied()
        .filter(|b| *b >= group_base && *b < group_end)
        .collect();
    assert!(group.len() >= 3, "group {group:?} of {old_bases:?}");

    // What the log must read after the first group's swap: that group
    // cleaned, the rest as before.
    let expected: Vec<Rec> = compacted
        .iter()
        .filter(|r| r.0 < group_end)
        .chain(original.iter().filter(|r| r.0 >= group_end))
        .cloned()
        .collect();
    let mut expected_files: Vec<String> = file_names(&cleaned)
        .into_iter()
        .filter(|n| n.starts_with(&format!("{group_base:020}.")))
        .chain(
            file_names(&before)
                .into_iter()
                .filter(|n| n[..20].parse::<i64>().is_ok_and(|b| b >= group_end)),
        )
        .collect();
    expected_files.sort();

    // How far the swap got: how many old segments were deleted, and whether
    // the index files already carry their final names.
    for (deleted, indexes_renamed) in [
        (0, false),
        (1, false),
        (group.len() - 1, false),
        (group.len(), false),
        (group.len(), true),
    ] {
        let crashed = root
            .path()
            .join(format!("crashed-{deleted}-{indexes_renamed}"));
        copy_dir(&before, &crashed);
        for b in &group[..deleted] {
            remove_segment(&crashed, *b);
        }
        copy_segment(&cleaned, &crashed, group_base, ".swap");
        if indexes_renamed {
            for s in [".index", ".timeindex"] {
                let name = format!("{group_base:020}{s}");
                fs::rename(crashed.join(format!("{name}.swap")), crashed.join(name)).unwrap();
            }
        }

        let case = format!("{deleted} old segments deleted, indexes renamed: {indexes_renamed}");
        let log = open(&crashed, compact_cfg(), clock(), unclean_opts());
        assert_eq!(read_all_from(&log, 0), expected, "{case}");
        let segment_files: Vec<String> = file_names(&crashed)
            .into_iter()
            .filter(|n| n.starts_with("000"))
            .collect();
        assert_eq!(segment_files, expected_files, "{case}");
        assert_eq!(
            log.log_end_offset(),
            original.last().unwrap().0 + 1,
            "{case}"
        );
    }
}

#[test]
fn a_fully_swapped_cleaning_pass_reads_as_the_cleaned_log_after_reopen() {
    let root = tempfile::tempdir().unwrap();
    let (before, cleaned) = (root.path().join("before"), root.path().join("cleaned"));
    let original = write_small_segments(&before);
    let compacted = clean_copy(&before, &cleaned);
    let keyed: Vec<(i64, String, Option<String>)> = okv(&original)
        .into_iter()
        .filter(|(_, k, _)| k.starts_with('k'))
        .collect();
    let mut want = keyed[keyed.len() - 5..].to_vec();
    want.extend(
        okv(&original)
            .into_iter()
            .filter(|(_, k, _)| !k.starts_with('k')),
    );
    assert_eq!(okv(&compacted), want);
    let log = open(&cleaned, compact_cfg(), clock(), unclean_opts());
    assert_eq!(read_all_from(&log, 0), compacted);
    assert!(file_names(&cleaned)
        .iter()
        .all(|n| !n.ends_with(".swap") && !n.ends_with(".cleaned")));
}

#[test]
fn a_truncation_during_a_cleaning_pass_discards_the_pass() {
    let root = tempfile::tempdir().unwrap();
    let (dir, dry_run) = (root.path().join("log"), root.path().join("dry-run"));
    let original = write_small_segments(&dir);
    // Where the second group of a pass starts.
    clean_copy(&dir, &dry_run);
    // Cut there: every later value of k0..k4 goes, and the first group's
    // last segment becomes the active one again, unchanged.
    let cut = segment_bases_on_disk(&dry_run)[1];
    assert!(cut < 60, "the cut lies inside the rounds of k0..k4");

    let c = clock();
    let mut log = open(&dir, compact_cfg(), c.clone(), clean_opts(i64::MAX));
    log.set_high_watermark(log.log_end_offset());
    c.set(T0 + 100_000);
    // The cleaner snapshots and compacts without the log's lock ...
    let range = log.cleanable_range(T0 + 100_000, true).unwrap();
    let cleaned = cleaner(&c).compact(&range).unwrap();
    // ... while the follower's log is truncated to where it diverged from
    // the new leader; the leader's records follow.
    log.truncate_to(cut).unwrap();
    log.install_cleaned(cleaned).unwrap();
    append(&mut log, &[("z", Some("from-leader"), T0 + 5_000)]);

    // The pass's key map saw records that no longer exist: nothing of it
    // may be installed, or k0..k4 would vanish altogether.
    let mut expected: Vec<Rec> = original.iter().filter(|r| r.0 < cut).cloned().collect();
    expected.push((
        cut,
        T0 + 5_000,
        Some(b"z".to_vec()),
        Some(b"from-leader".to_vec()),
    ));
    assert_eq!(read_all_from(&log, 0), expected);
    assert!(file_names(&dir)
        .iter()
        .all(|n| !n.ends_with(".cleaned") && !n.ends_with(".swap")));
    assert!(log.cleaned_up_to() <= cut, "{}", log.cleaned_up_to());

    // A pass after the truncation cleans what is there now.
    log.roll().unwrap();
    let end = log.log_end_offset();
    log.set_high_watermark(end);
    cleaner(&c).clean(&mut log, true).unwrap().unwrap();
    assert_eq!(
        read_all_from(&log, 0),
        expected_after_compaction(&expected, end, false)
    );
    assert_eq!(log.cleaned_up_to(), end);

    // Truncating below the cleaned offset lowers it (Kafka's
    // maybeTruncateCheckpoint): the records written there are dirty.
    log.truncate_to(cut - 3).unwrap();
    assert_eq!(log.cleaned_up_to(), cut - 3);
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!(log.cleaned_up_to(), cut - 3);
}
