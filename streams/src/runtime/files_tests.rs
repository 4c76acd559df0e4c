use serde_json::{json, Value};

use super::*;
use crate::plan::layout::DEFAULT_LAYOUT;

/// 2024-12-30T10:00:00Z.
const DEC30: i64 = 1_735_552_800_000;
const DAY: i64 = 86_400_000;

fn row(id: u64, event_time: i64) -> Row {
    let Value::Object(m) = json!({"id": id, "v": format!("r{id}")}) else {
        unreachable!()
    };
    Row::new(m, event_time)
}

fn open(dir: &Path, layout: &str) -> FilesSink {
    FilesSink::open(
        "lake",
        "job1",
        dir,
        Layout::parse(layout).unwrap(),
        FileFormat::Jsonl,
    )
    .unwrap()
}

/// Every file under `root`, relative, sorted (commit log included).
fn tree(root: &Path) -> Vec<String> {
    fn go(dir: &Path, rel: &str, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if e.file_type().unwrap().is_dir() {
                go(&e.path(), &path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    go(root, "", &mut out);
    out.sort();
    out
}

/// The ids in every committed data file (by the commit log), in file order.
fn committed_ids(root: &Path) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(root.join(COMMITS_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    entries.sort();
    for p in entries {
        let e: CommitEntry = serde_json::from_slice(&fs::read(p).unwrap()).unwrap();
        for f in e.files {
            for line in fs::read_to_string(root.join(f)).unwrap().lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                ids.push(v["id"].as_u64().unwrap());
            }
        }
    }
    ids
}

#[test]
fn layout_paths_are_utc_and_zero_padded() {
    // 2025-01-05T23:30:00-02:00 is 2025-01-06T01:30:00Z: the UTC day counts.
    let t = 1_736_127_000_000;
    let rows = [row(1, DEC30), row(2, t), row(3, DEC30 + 60_000)];
    let default = Layout::parse(DEFAULT_LAYOUT).unwrap();
    let files = plan_batch(&default, FileFormat::Jsonl, 7, &rows).unwrap();
    let paths: Vec<String> = files.iter().map(PlannedFile::relative_path).collect();
    assert_eq!(
        paths,
        [
            "year=2024/month=12/day=30/part-00000000000000000007-0.jsonl",
            "year=2025/month=01/day=06/part-00000000000000000007-1.jsonl",
        ]
    );
    assert_eq!(
        String::from_utf8(files[0].bytes.clone()).unwrap(),
        "{\"id\":1,\"v\":\"r1\"}\n{\"id\":3,\"v\":\"r3\"}\n"
    );
    assert_eq!((files[0].rows, files[1].rows), (2, 1));

    let ano = Layout::parse("ano={yyyy}/mes={MM}/dia={dd}").unwrap();
    let files = plan_batch(&ano, FileFormat::Jsonl, 1, &rows).unwrap();
    assert_eq!(files[1].dir, "ano=2025/mes=01/dia=06");
    // Out of the calendar's range: Hive's null partition.
    let files = plan_batch(&ano, FileFormat::Jsonl, 1, &[row(9, i64::MAX)]).unwrap();
    assert_eq!(files[0].dir, UNDATED_DIR);
}

#[test]
fn data_file_names_parse_back_to_their_batch() {
    let name = data_file_name(42, 3, FileFormat::Jsonl);
    assert_eq!(name, "part-00000000000000000042-3.jsonl");
    assert_eq!(batch_of_data_file(&name), Some(42));
    assert_eq!(
        batch_of_data_file(&data_file_name(u64::MAX, 0, FileFormat::Parquet)),
        Some(u64::MAX)
    );
    for other in [
        "part-42-0.jsonl",
        "part-00000000000000000042-.jsonl",
        "part-00000000000000000042-0.csv",
        "notes.txt",
        "part-0000000000000000004x-0.jsonl",
        "part-",
    ] {
        assert_eq!(batch_of_data_file(other), None, "{other}");
    }
}

#[test]
fn writes_files_and_a_commit_entry_per_batch() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let mut sink = open(&root, "ano={yyyy}/mes={MM}/dia={dd}");
    assert_eq!(sink.last_committed_batch(), None);
    sink.write_batch(1, &[row(1, DEC30), row(2, DEC30 + DAY)])
        .unwrap();
    sink.write_batch(2, &[]).unwrap();
    sink.write_batch(3, &[row(3, DEC30)]).unwrap();
    assert_eq!(sink.last_committed_batch(), Some(3));
    assert_eq!(
        tree(&root),
        [
            "_rivulet_commits/00000000000000000001.json",
            "_rivulet_commits/00000000000000000002.json",
            "_rivulet_commits/00000000000000000003.json",
            "ano=2024/mes=12/dia=30/part-00000000000000000001-0.jsonl",
            "ano=2024/mes=12/dia=30/part-00000000000000000003-0.jsonl",
            "ano=2024/mes=12/dia=31/part-00000000000000000001-1.jsonl",
        ]
    );
    let e: CommitEntry = serde_json::from_slice(
        &fs::read(root.join(COMMITS_DIR).join("00000000000000000001.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (e.job.as_str(), e.batch_id, e.rows, e.files.len()),
        ("job1", 1, 2, 2)
    );
    assert_eq!(committed_ids(&root), [1, 2, 3]);
    // Reopened, the sink knows where it stands.
    assert_eq!(
        open(&root, "ano={yyyy}/mes={MM}/dia={dd}").last_committed_batch(),
        Some(3)
    );
}

#[test]
fn rewriting_a_committed_batch_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(dir.path(), DEFAULT_LAYOUT);
    sink.write_batch(1, &[row(1, DEC30)]).unwrap();
    sink.write_batch(2, &[row(2, DEC30)]).unwrap();
    let before = tree(dir.path());
    // A replay of batch 2 (even with other rows) and an older batch change nothing.
    sink.write_batch(2, &[row(2, DEC30), row(99, DEC30 + DAY)])
        .unwrap();
    sink.write_batch(1, &[row(98, DEC30)]).unwrap();
    let mut reopened = open(dir.path(), DEFAULT_LAYOUT);
    reopened.write_batch(2, &[row(97, DEC30)]).unwrap();
    assert_eq!(tree(dir.path()), before);
    assert_eq!(committed_ids(dir.path()), [1, 2]);
}

#[test]
fn recovery_removes_uncommitted_files_and_keeps_committed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut sink = open(root, DEFAULT_LAYOUT);
    sink.write_batch(1, &[row(1, DEC30)]).unwrap();
    // What a kill leaves: batch 2's files renamed but no entry, a temp data file of
    // batch 2, a temp commit entry, and a batch-3 file in a new directory.
    let day = root.join("year=2024/month=12/day=30");
    fs::write(
        day.join(data_file_name(2, 0, FileFormat::Jsonl)),
        "{\"id\":2}\n",
    )
    .unwrap();
    fs::write(
        day.join(".tmp-part-00000000000000000002-1.jsonl"),
        "{\"id\"",
    )
    .unwrap();
    fs::write(
        root.join(COMMITS_DIR)
            .join(".tmp-00000000000000000002.json"),
        "{",
    )
    .unwrap();
    let new_day = root.join("year=2025/month=01/day=01");
    fs::create_dir_all(&new_day).unwrap();
    fs::write(
        new_day.join(data_file_name(3, 0, FileFormat::Jsonl)),
        "{}\n",
    )
    .unwrap();
    // Someone else's file is not ours to delete.
    fs::write(day.join("README.txt"), "notes").unwrap();

    let sink = open(root, DEFAULT_LAYOUT);
    assert_eq!(sink.last_committed_batch(), Some(1));
    assert_eq!(
        tree(root),
        [
            "_rivulet_commits/00000000000000000001.json",
            "year=2024/month=12/day=30/README.txt",
            "year=2024/month=12/day=30/part-00000000000000000001-0.jsonl",
        ]
    );
    assert!(
        !root.join("year=2025").exists(),
        "the directories only batch 3 had are gone"
    );
    assert_eq!(committed_ids(root), [1]);
}

#[test]
fn a_crash_between_rename_and_commit_entry_replays_to_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut sink = open(root, DEFAULT_LAYOUT);
    sink.write_batch(1, &[row(1, DEC30)]).unwrap();
    let batch2 = [row(2, DEC30), row(3, DEC30 + DAY), row(4, DEC30 + 2 * DAY)];
    // Simulate the crash: the files of batch 2 are written and renamed exactly as
    // `commit` does, then the process dies before the entry.
    let prepared = sink.prepare(2, &batch2).unwrap();
    for f in &prepared.files {
        fs::create_dir_all(root.join(&f.dir)).unwrap();
        fs::write(root.join(f.relative_path()), &f.bytes).unwrap();
    }
    drop(sink);
    // Restart: recovery drops batch 2's files, so a reader of the commit log and a
    // reader of the tree agree again.
    let mut sink = open(root, DEFAULT_LAYOUT);
    assert_eq!(sink.last_committed_batch(), Some(1));
    assert_eq!(tree(root).len(), 2, "{:?}", tree(root));
    // The runtime replays batch 2 with the same rows: same names, each row once.
    sink.write_batch(2, &batch2).unwrap();
    let names: Vec<String> = prepared
        .files
        .iter()
        .map(PlannedFile::relative_path)
        .collect();
    for n in &names {
        assert!(root.join(n).exists(), "{n}");
    }
    assert_eq!(committed_ids(root), [1, 2, 3, 4]);
    assert_eq!(tree(root).len(), 2 + names.len() + 1);
}

#[test]
fn a_directory_committed_by_another_job_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), DEFAULT_LAYOUT)
        .write_batch(1, &[row(1, DEC30)])
        .unwrap();
    let other = FilesSink::open(
        "lake",
        "job2",
        dir.path(),
        Layout::parse(DEFAULT_LAYOUT).unwrap(),
        FileFormat::Jsonl,
    );
    assert!(
        matches!(other, Err(RuntimeError::Files { ref reason, .. }) if reason.contains("job1")),
        "{other:?}"
    );
}

#[cfg(not(feature = "parquet"))]
#[test]
fn parquet_without_the_feature_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let r = FilesSink::open(
        "lake",
        "job1",
        dir.path(),
        Layout::parse(DEFAULT_LAYOUT).unwrap(),
        FileFormat::Parquet,
    );
    assert!(matches!(r, Err(RuntimeError::Config { .. })), "{r:?}");
}

#[cfg(feature = "parquet")]
#[test]
fn parquet_files_are_committed_and_recovered_like_json_lines() {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let dir = tempfile::tempdir().unwrap();
    let open_parquet = || {
        FilesSink::open(
            "lake",
            "job1",
            dir.path(),
            Layout::parse(DEFAULT_LAYOUT).unwrap(),
            FileFormat::Parquet,
        )
        .unwrap()
    };
    let mut sink = open_parquet();
    sink.write_batch(1, &[row(1, DEC30), row(2, DEC30), row(3, DEC30 + DAY)])
        .unwrap();
    // An interrupted batch 2.
    let day = dir.path().join("year=2024/month=12/day=30");
    fs::write(day.join(data_file_name(2, 0, FileFormat::Parquet)), "PAR1").unwrap();
    drop(sink);
    open_parquet();
    assert_eq!(
        tree(dir.path()),
        [
            "_rivulet_commits/00000000000000000001.json",
            "year=2024/month=12/day=30/part-00000000000000000001-0.parquet",
            "year=2024/month=12/day=31/part-00000000000000000001-1.parquet",
        ]
    );
    let f = fs::File::open(day.join(data_file_name(1, 0, FileFormat::Parquet))).unwrap();
    let rows: usize = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows, 2);
}

#[test]
fn source_rows_passed_through_are_written_as_their_bytes_one_per_line() {
    let layout = Layout::parse(DEFAULT_LAYOUT).unwrap();
    let mut as_sent = row(1, DEC30);
    as_sent.source_bytes = Some(std::sync::Arc::from(&br#"{"v":"r1", "id":1.50}"#[..]));
    // Bytes spanning lines would break JSON Lines: re-encoded from the bytes, whole.
    let mut multiline = row(2, DEC30);
    multiline.source_bytes = Some(std::sync::Arc::from(&b"{\"id\":2,\n\"extra\":true}"[..]));
    let files = plan_batch(&layout, FileFormat::Jsonl, 7, &[as_sent, multiline]).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        String::from_utf8(files[0].bytes.clone()).unwrap(),
        "{\"v\":\"r1\", \"id\":1.50}\n{\"extra\":true,\"id\":2}\n"
    );
}

#[test]
fn rows_group_by_directory_in_row_order_whatever_hours_they_jump_between() {
    // Hours and days interleaved, out of order, and times the calendar cannot date:
    // each row lands where its own path says, rows keep their order within a file.
    let hour = 3_600_000;
    let times = [
        DEC30,
        DEC30 + hour,
        DEC30 + DAY,
        DEC30 + 30 * 60_000,
        DEC30 - DAY,
        DEC30 + DAY + 5,
        i64::MAX,
        DEC30 + 2 * hour,
        i64::MIN,
        DEC30,
    ];
    let rows: Vec<Row> = times
        .iter()
        .enumerate()
        .map(|(i, t)| row(i as u64, *t))
        .collect();
    for template in [DEFAULT_LAYOUT, "d={dd}/h={HH}"] {
        let layout = Layout::parse(template).unwrap();
        let files = plan_batch(&layout, FileFormat::Jsonl, 3, &rows).unwrap();
        let mut expected: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (i, t) in times.iter().enumerate() {
            let dir = layout
                .path_for(*t)
                .unwrap_or_else(|| UNDATED_DIR.to_string());
            expected.entry(dir).or_default().push(i as u64);
        }
        let got: BTreeMap<String, Vec<u64>> = files
            .iter()
            .map(|f| {
                let text = String::from_utf8(f.bytes.clone()).unwrap();
                let ids = text
                    .lines()
                    .map(|l| {
                        serde_json::from_str::<Value>(l).unwrap()["id"]
                            .as_u64()
                            .unwrap()
                    })
                    .collect();
                (f.dir.clone(), ids)
            })
            .collect();
        assert_eq!(got, expected, "{template}");
    }
}
