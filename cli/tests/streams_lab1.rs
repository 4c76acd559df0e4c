//! The first lab end to end (issue 12): a real `rivulet` broker process, a producer
//! writing relevant and irrelevant JSON events, and `rivulet stream run` on
//! examples/streams/lab1-filter-to-postgres.toml — pointed at this broker and a
//! throwaway PostgreSQL (rivulet_testkit::postgres) — SIGKILLed at random points three
//! times and restarted. At the end the table holds exactly the relevant events, once
//! each, and bad records reached the dead-letter topic.
//!
//! The test switches the sink from `insert_ignore` on `event_id` to plain `insert`
//! without a key: insert-ignore would absorb a replayed batch, plain insert shows it as
//! duplicate rows, so only real exactly-once (rows and offsets in one transaction,
//! resumed from the database) passes. Kill points: after a random share of the
//! relevant events produced so far is in the table, plus a random few milliseconds, so
//! each kill lands mid-stream (asserted), anywhere in a batch. The seed is printed.
//! Between runs the test deletes the checkpoint file or puts a stale one back: with an
//! exactly-once PostgreSQL sink the database's offsets must win.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureProducer;
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::{block_on, consumer, create_topic, drain, producer};
use rivulet_testkit::postgres::TestPostgres;

mod streams_support;
use streams_support::{start_broker, Rng, StreamJob};

const LAB1: &str = include_str!("../../examples/streams/lab1-filter-to-postgres.toml");
const TIMEOUT: Duration = Duration::from_secs(20);
/// Events per wave; one wave before the first run and one during each killed run.
const WAVE: usize = 1000;
const KILLS: usize = 3;
/// Records that are not valid events: two not JSON, one without its event time.
const BAD: usize = 3;

/// Event `i`: half are purchases with a positive amount (relevant), a quarter
/// purchases of amount 0 and a quarter page views (irrelevant).
fn event(i: usize) -> (String, bool) {
    let (kind, amount, relevant) = match i % 4 {
        0 | 1 => ("purchase", (i % 97) as f64 + 0.5, true),
        2 => ("purchase", 0.0, false),
        _ => ("view", 3.5, false),
    };
    let json = format!(
        r#"{{"event_id":"e{i:05}","type":"{kind}","amount":{amount:.2},"user":"u{}","ts":"2026-12-02T10:{:02}:{:02}Z"}}"#,
        i % 13,
        (i / 60) % 60,
        i % 60
    );
    (json, relevant)
}

fn produce(p: &FutureProducer, values: &[(String, String)]) {
    streams_support::produce(p, "events", values, TIMEOUT);
}

/// Produce events `from..to`; returns the ids of the relevant ones.
fn produce_wave(p: &FutureProducer, from: usize, to: usize) -> Vec<String> {
    let events: Vec<(String, String, bool)> = (from..to)
        .map(|i| {
            let (json, relevant) = event(i);
            (format!("e{i:05}"), json, relevant)
        })
        .collect();
    let values: Vec<(String, String)> = events
        .iter()
        .map(|(k, v, _)| (k.clone(), v.clone()))
        .collect();
    produce(p, &values);
    events
        .into_iter()
        .filter(|(_, _, r)| *r)
        .map(|(k, _, _)| k)
        .collect()
}

fn count(pg: &TestPostgres) -> usize {
    // The first batch creates the table.
    if pg
        .psql("lab", "SELECT to_regclass('purchases') IS NULL")
        .trim()
        == "t"
    {
        return 0;
    }
    let out = pg.psql("lab", "SELECT count(*) FROM purchases");
    out.trim().parse().expect("a count")
}

#[test]
fn lab1_filters_into_postgres_exactly_once_across_sigkills() {
    let Some(pg) = TestPostgres::start_or_skip() else {
        return;
    };
    let started = Instant::now();
    let url = pg.create_database("lab");
    let work = temp_dir();
    let broker = start_broker(work.path(), TIMEOUT);
    let bootstrap = broker.bootstrap();
    block_on(create_topic(&bootstrap, "events", 3, &[]));

    // The lab's job file, pointed at this broker and database, with plain inserts.
    let job_text = LAB1
        .replace(
            "bootstrap_servers = \"127.0.0.1:9092\"",
            &format!("bootstrap_servers = \"{bootstrap}\""),
        )
        .replace("postgres://rivulet@127.0.0.1:5432/lab", &url)
        .replace("mode = \"insert_ignore\"", "mode = \"insert\"")
        .replace("key = [\"event_id\"]\n", "");
    assert!(
        job_text.contains(&url)
            && job_text.contains("mode = \"insert\"")
            && !job_text.contains("key ="),
        "the lab1 job file changed shape; update this test:\n{job_text}"
    );
    let job = StreamJob {
        file: work.path().join("lab1.toml"),
        cwd: work.path().to_path_buf(),
        log: work.path().join("job.log"),
        bootstrap: bootstrap.clone(),
        batch: 10,
    };
    std::fs::write(&job.file, &job_text).expect("write the job file");

    let mut rng = Rng::seeded("lab1");

    let p = producer(&bootstrap, &[("enable.idempotence", "true")]);
    let mut expected: Vec<String> = produce_wave(&p, 0, WAVE);
    // Bad records go to the dead-letter topic, not the table and not the job's death.
    produce(
        &p,
        &[
            ("bad1".into(), "not json".into()),
            ("bad2".into(), "{\"truncated\": ".into()),
            (
                "bad3".into(),
                r#"{"event_id":"x","type":"purchase","amount":5}"#.into(),
            ),
        ],
    );

    let checkpoint = work.path().join("checkpoints/lab1-purchases");
    let stale = work.path().join("stale-checkpoint.json");
    let mut produced = WAVE;
    for kill in 0..KILLS {
        // More events; the job starts with them as a backlog, so it is mid-stream when
        // the kill comes (producing during the run lets it catch up between sends).
        expected.extend(produce_wave(&p, produced, produced + WAVE));
        produced += WAVE;
        let before = count(&pg);
        let mut child = job.spawn();
        // Somewhere in the first half of what is left, so the kill lands mid-stream.
        let left = expected.len() - before;
        let target = before + 1 + rng.below((left / 2) as u64) as usize;
        job.wait_until(
            &mut child,
            &format!("{target} rows for kill {kill}"),
            TIMEOUT,
            || count(&pg) >= target,
        );
        std::thread::sleep(Duration::from_millis(rng.below(30)));
        child.kill().expect("SIGKILL the job");
        child.wait().expect("reap the job");
        let after = count(&pg);
        eprintln!(
            "kill {kill}: {before} -> {after} rows of {} relevant",
            expected.len()
        );
        assert!(
            after < expected.len(),
            "kill {kill} landed after the job caught up: not a mid-stream kill"
        );
        // The database's offsets must win over the checkpoint file: after kill 0 keep a
        // copy of the file, after kill 1 delete it, after kill 2 put the stale copy
        // back. A job that trusted the file would replay batches into the table.
        let file = checkpoint.join("checkpoint.json");
        match kill {
            0 => {
                std::fs::copy(&file, &stale).expect("copy the checkpoint");
            }
            1 => std::fs::remove_file(&file).expect("remove the checkpoint"),
            _ => {
                std::fs::copy(&stale, &file).expect("restore a stale checkpoint");
            }
        }
    }

    // The last run: it must reach exactly the relevant events and stay there.
    let mut child = job.spawn();
    job.wait_until(
        &mut child,
        &format!("all {} relevant rows", expected.len()),
        Duration::from_secs(30),
        || count(&pg) >= expected.len(),
    );
    std::thread::sleep(Duration::from_millis(500));
    job.stop(child);

    let rows = pg.psql("lab", "SELECT event_id FROM purchases ORDER BY event_id");
    let got: Vec<&str> = rows.lines().collect();
    let want: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let got_set: BTreeSet<&str> = got.iter().copied().collect();
    if got.len() != got_set.len() {
        // What tells a batch written twice from an event stored twice.
        let mut seen = BTreeSet::new();
        let twice: Vec<&str> = got.iter().copied().filter(|e| !seen.insert(*e)).collect();
        let c = consumer(&bootstrap, &[]);
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..3 {
            tpl.add_partition_offset("events", p, rdkafka::Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let in_topic: Vec<(i32, i64)> = drain(&c, Duration::from_secs(3))
            .iter()
            .filter(|g| {
                g.key
                    .as_deref()
                    .is_some_and(|k| twice.iter().any(|t| t.as_bytes() == k))
            })
            .map(|g| (-1, g.offset))
            .collect();
        let log = std::fs::read_to_string(&job.log).unwrap_or_default();
        eprintln!("twice in the table: {twice:?}; in the topic at offsets {in_topic:?} (twice there: the input, not the job)");
        eprintln!("job log:\n{log}");
    }
    assert_eq!(
        got.len(),
        got_set.len(),
        "duplicate rows: a batch was written twice"
    );
    assert_eq!(
        got_set, want,
        "the table is not exactly the relevant events"
    );
    // Columns came from the events (the table was created by the first batch).
    assert_eq!(
        pg.psql(
            "lab",
            "SELECT type, amount, \"user\" FROM purchases WHERE event_id = 'e00001'"
        ),
        "purchase|1.5|u1\n"
    );
    // Offsets in the database cover every event on every partition.
    let next: i64 = pg
        .psql(
            "lab",
            "SELECT sum(next_offset) FROM rivulet_stream_offsets WHERE job = 'lab1-purchases'",
        )
        .trim()
        .parse()
        .expect("a sum");
    assert_eq!(
        next as usize,
        produced + BAD,
        "committed offsets do not cover the input"
    );

    // Dead letters are at least once: each bad record is there, possibly repeated.
    let c = consumer(&bootstrap, &[("auto.offset.reset", "earliest")]);
    c.subscribe(&["events-dlq"])
        .expect("subscribe to the dead-letter topic");
    let letters = drain(&c, Duration::from_secs(3));
    let sources: BTreeSet<(i64, i64)> = letters
        .iter()
        .filter_map(|g| g.value.as_deref())
        .filter_map(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
        .filter_map(|v| Some((v["partition"].as_i64()?, v["offset"].as_i64()?)))
        .collect();
    assert_eq!(
        sources.len(),
        BAD,
        "each bad record should be dead-lettered (at least once): {letters:?}"
    );
    eprintln!("lab1 end to end took {:?}", started.elapsed());
    drop(broker);
}
