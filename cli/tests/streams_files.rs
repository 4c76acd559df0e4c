//! The files sink end to end (issue 12): a real `rivulet` broker process, a producer
//! writing JSON events whose event times span three UTC days, and `rivulet stream run`
//! of examples/streams/lab2-filter-to-lake.toml (filter → files, `available_now`). First a run to completion, then
//! runs SIGKILLed mid-stream at random points (seed printed) and a last run to
//! completion. The files on disk must then hold every kept event exactly once over all
//! committed files (as the commit log lists them), in the directory of its event day,
//! with no temp file and no data file outside the commit log.
//!
//! Also here: a stream–static join with a PostgreSQL table reloaded on its interval,
//! written through the files sink (the second test).
//!
//! Small batches (`--max-batch-records 10`) give many commits per run, so kills land
//! inside batches, between a batch's files and its commit entry, and between the commit
//! entry and the checkpoint file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use rivulet_streams::runtime::{self, RunOptions};
use rivulet_streams::JobPlan;
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::{block_on, create_topic, producer};
use rivulet_testkit::postgres::TestPostgres;
use serde_json::Value;

mod streams_support;
use streams_support::{lake_rows, start_broker, Rng, StreamJob};

const LAB2: &str = include_str!("../../examples/streams/lab2-filter-to-lake.toml");
const TIMEOUT: Duration = Duration::from_secs(20);
const WAVE: usize = 600;
const KILLS: usize = 3;
const DAYS: [&str; 3] = ["2026-11-29", "2026-11-30", "2026-12-01"];

/// Event `i`: three in four are clicks (kept), the rest views (filtered out). Days
/// rotate; times include the first and last second of a day and, in another zone, an
/// instant that is already the next UTC day.
fn event(i: usize) -> (String, Option<(String, String)>) {
    let day = DAYS[i % 3];
    let ts = match i % 5 {
        0 => format!("{day}T23:59:59Z"),
        1 => format!("{day}T00:00:00Z"),
        // 21:30-03:00 is 00:30Z the next day (not for the last day: three days only).
        2 if i % 3 != 2 => format!("{day}T21:30:00-03:00"),
        _ => format!("{day}T{:02}:{:02}:00Z", i % 24, i % 60),
    };
    let utc_day = if ts.ends_with("-03:00") {
        DAYS.get(i % 3 + 1).copied().unwrap_or("none").to_string()
    } else {
        day.to_string()
    };
    let kept = i % 4 != 3;
    let kind = if kept { "click" } else { "view" };
    let id = format!("e{i:05}");
    let json = format!(r#"{{"id":"{id}","type":"{kind}","ts":"{ts}"}}"#);
    (json, kept.then_some((id, utc_day)))
}

/// Produce events `from..to`; returns the kept ones: id → its UTC day.
fn produce_wave(p: &FutureProducer, from: usize, to: usize) -> BTreeMap<String, String> {
    let events: Vec<_> = (from..to).map(event).collect();
    block_on(async {
        let sends: Vec<_> = events
            .iter()
            .map(|(json, _)| p.send(FutureRecord::<(), _>::to("events").payload(json), TIMEOUT))
            .collect();
        for s in sends {
            s.await.map_err(|(e, _)| e).expect("produce an event");
        }
    });
    events.into_iter().filter_map(|(_, k)| k).collect()
}

/// Run the job to its end (`available_now`), which must be a clean exit.
fn run_to_end(job: &StreamJob) {
    let mut child = job.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait for the job") {
            assert!(status.success(), "the job failed: {status}\n{}", job.tail());
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the available_now run did not end\n{}", job.tail());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file under `root`, relative and `/`-separated.
fn files_under(root: &Path) -> Vec<String> {
    fn go(dir: &Path, rel: &str, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if e.file_type().is_ok_and(|t| t.is_dir()) {
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

/// The commit log: every committed batch's files, and the rows they hold.
fn commit_log(root: &Path) -> (Vec<String>, u64) {
    let mut files = Vec::new();
    let mut rows = 0;
    for f in files_under(&root.join("_rivulet_commits")) {
        // Entries only: not temp files.
        if f.starts_with(".tmp-") {
            continue;
        }
        let Ok(bytes) = std::fs::read(root.join("_rivulet_commits").join(&f)) else {
            continue;
        };
        let e: serde_json::Value = serde_json::from_slice(&bytes).expect("a commit entry");
        rows += e["rows"].as_u64().expect("rows");
        for p in e["files"].as_array().expect("files") {
            files.push(p.as_str().expect("a path").to_string());
        }
    }
    (files, rows)
}

#[test]
fn filter_to_date_partitioned_files_exactly_once_across_sigkills() {
    let started = Instant::now();
    let work = temp_dir();
    let broker = start_broker(work.path(), TIMEOUT);
    let bootstrap = broker.bootstrap();
    block_on(create_topic(&bootstrap, "events", 3, &[]));
    let job = StreamJob {
        file: work.path().join("clicks.toml"),
        cwd: work.path().to_path_buf(),
        log: work.path().join("job.log"),
        bootstrap: bootstrap.clone(),
        batch: 10,
    };
    // The second lab's job file, pointed at this broker.
    let job_text = LAB2.replace(
        "bootstrap_servers = \"127.0.0.1:9092\"",
        &format!("bootstrap_servers = \"{bootstrap}\""),
    );
    assert!(
        job_text.contains(&bootstrap) && job_text.contains("path = \"lake/clicks\""),
        "the lab2 job file changed shape; update this test:\n{job_text}"
    );
    std::fs::write(&job.file, job_text).expect("write the job file");
    let lake = work.path().join("lake/clicks");
    let mut rng = Rng::seeded("streams_files");

    let p = producer(&bootstrap, &[("enable.idempotence", "true")]);
    // available_now: process the backlog, commit, exit 0.
    let mut expected = produce_wave(&p, 0, WAVE);
    run_to_end(&job);
    assert_eq!(commit_log(&lake).1, expected.len() as u64, "{}", job.tail());

    let mut produced = WAVE;
    for kill in 0..KILLS {
        expected.extend(produce_wave(&p, produced, produced + WAVE));
        produced += WAVE;
        let before = commit_log(&lake).1 as usize;
        let target = before + 1 + rng.below(((expected.len() - before) / 2) as u64) as usize;
        let mut child = job.spawn();
        job.wait_until(
            &mut child,
            &format!("progress for kill {kill}"),
            TIMEOUT,
            || commit_log(&lake).1 as usize >= target,
        );
        std::thread::sleep(Duration::from_millis(rng.below(20)));
        child.kill().expect("SIGKILL the job");
        child.wait().expect("reap the job");
        let after = commit_log(&lake).1 as usize;
        eprintln!(
            "kill {kill}: {before} -> {after} committed rows of {}",
            expected.len()
        );
        assert!(
            after < expected.len(),
            "kill {kill} came after the job caught up"
        );
    }
    run_to_end(&job);

    // Exactly the kept events, once each, in the directory of their UTC day.
    let (committed, rows) = commit_log(&lake);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut dups = Vec::new();
    for f in &committed {
        let text = std::fs::read_to_string(lake.join(f)).expect("a committed file exists");
        let dir = f.rsplit_once('/').map_or("", |(d, _)| d).to_string();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            assert_eq!(
                v["type"], "click",
                "a filtered event reached the lake: {line}"
            );
            let id = v["id"].as_str().expect("an id").to_string();
            if seen.insert(id.clone(), dir.clone()).is_some() {
                dups.push(id);
            }
        }
    }
    assert!(dups.is_empty(), "events written twice: {dups:?}");
    assert_eq!(rows as usize, seen.len());
    let want: BTreeMap<String, String> = expected
        .iter()
        .map(|(id, day)| {
            let (y, rest) = day.split_once('-').expect("a date");
            let (m, d) = rest.split_once('-').expect("a date");
            (id.clone(), format!("year={y}/month={m}/day={d}"))
        })
        .collect();
    let missing: Vec<&String> = want.keys().filter(|k| !seen.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "events missing from the lake: {missing:?}"
    );
    assert_eq!(seen, want, "events in the wrong day directory");
    let dirs: BTreeSet<&str> = seen.values().map(String::as_str).collect();
    assert_eq!(
        dirs.into_iter().collect::<Vec<_>>(),
        [
            "year=2026/month=11/day=29",
            "year=2026/month=11/day=30",
            "year=2026/month=12/day=01",
        ]
    );

    // Nothing on disk but committed files and commit entries.
    let on_disk = files_under(&lake);
    assert!(
        on_disk
            .iter()
            .all(|f| !f.rsplit('/').next().unwrap_or(f).starts_with(".tmp-")),
        "temp files left: {on_disk:?}"
    );
    let listed: BTreeSet<&str> = committed.iter().map(String::as_str).collect();
    let stray: Vec<&String> = on_disk
        .iter()
        .filter(|f| !f.starts_with("_rivulet_commits/") && !listed.contains(f.as_str()))
        .collect();
    assert!(
        stray.is_empty(),
        "data files outside the commit log: {stray:?}"
    );
    eprintln!("streams_files took {:?}", started.elapsed());
    drop(broker);
}

async fn wait_for_row(root: &Path, id: &str) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = lake_rows(root).get(id) {
            return v.clone();
        }
        assert!(Instant::now() < deadline, "row {id} never reached the lake");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A stream–static join with a table in a real PostgreSQL (rivulet_testkit::postgres),
/// reloaded on its interval, the job run in this process by `runtime::run` against the
/// broker process, into a files sink: rows see the table as loaded; after an UPDATE and
/// the reload interval, new rows see the new values; a failed reload (the table renamed
/// away) keeps the last good table and the job running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_table_reloads_between_batches_and_keeps_the_old_one_on_failure() {
    let Some(pg) = TestPostgres::start_or_skip() else {
        return;
    };
    let url = pg.create_database("dims");
    pg.psql(
        "dims",
        "CREATE TABLE customers (id TEXT PRIMARY KEY, tier TEXT, since DATE); \
         INSERT INTO customers VALUES ('c1', 'bronze', '2024-01-02'), ('c2', 'silver', NULL)",
    );
    let dir = temp_dir();
    let broker = start_broker(dir.path(), TIMEOUT);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 1, &[]).await;
    let lake = dir.path().join("lake");
    let plan = JobPlan::from_toml(&format!(
        r#"
[job]
name = "enrich"
trigger = "100ms"

[[source]]
name = "orders"
topics = ["orders"]
start = "earliest"

[[operator]]
type = "join_static"
table = {{ postgres = {{ url = "{url}", table = "customers" }} }}
table_key = "id"
stream_key = "customer"
kind = "left"
prefix = "customer_"
reload = "1s"
max_rows = 10

[[sink]]
type = "files"
path = "{}"
"#,
        lake.display()
    ))
    .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let options = RunOptions {
        bootstrap_servers: Some(bootstrap.clone()),
        checkpoint_dir: Some(dir.path().join("checkpoint")),
        poll_wait: Duration::from_millis(50),
        ..RunOptions::default()
    };
    // The job runs beside the driver below (a job is not Send: operators are boxed
    // trait objects), and stops when the driver is done.
    let job = runtime::run(plan, options, stopped);
    let driver = async {
        let p = producer(&bootstrap, &[("enable.idempotence", "true")]);
        let send = |id: &'static str, customer: &'static str| {
            let p = p.clone();
            async move {
                let v = format!(r#"{{"id":"{id}","customer":"{customer}"}}"#);
                p.send(FutureRecord::<(), _>::to("orders").payload(&v), TIMEOUT)
                    .await
                    .map_err(|(e, _)| e)
                    .expect("produce");
            }
        };
        send("o1", "c1").await;
        let o1 = wait_for_row(&lake, "o1").await;
        // Every table column but the key, typed by PostgreSQL's row_to_json.
        assert_eq!(
            o1,
            serde_json::json!({"id": "o1", "customer": "c1",
                "customer_tier": "bronze", "customer_since": "2024-01-02"})
        );

        pg.psql("dims", "UPDATE customers SET tier = 'gold' WHERE id = 'c1'");
        // After the reload interval, new rows see the update; the old row keeps its value.
        tokio::time::sleep(Duration::from_millis(2000)).await;
        send("o2", "c1").await;
        assert_eq!(wait_for_row(&lake, "o2").await["customer_tier"], "gold");
        assert_eq!(lake_rows(&lake)["o1"]["customer_tier"], "bronze");

        // The table goes away: reloads fail, the job keeps joining with the last good one.
        pg.psql("dims", "ALTER TABLE customers RENAME TO customers_old");
        tokio::time::sleep(Duration::from_millis(2000)).await;
        send("o3", "c1").await;
        assert_eq!(wait_for_row(&lake, "o3").await["customer_tier"], "gold");

        stop.send(true).unwrap();
    };
    // A failed reload must not stop the job: it runs until told to.
    tokio::pin!(job);
    let summary = tokio::select! {
        r = &mut job => panic!("the job ended before it was stopped: {r:?}"),
        () = driver => job.await.expect("the job ran until stopped"),
    };
    assert!(summary.batches >= 3, "{summary:?}");
    drop(broker);
}
