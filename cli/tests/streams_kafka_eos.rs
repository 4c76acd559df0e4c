//! The stream layer's Kafka sink end to end (issue 12): a real `rivulet` broker
//! process, a producer writing JSON events of which some are kept by a filter, and
//! `rivulet stream run` writing the kept ones to an output topic, SIGKILLed at random
//! points and restarted.
//!
//! Exactly-once: a read_committed consumer of the output topic sees each kept event
//! exactly once and nothing filtered; the bad records reach the dead-letter topic
//! exactly once too (they travel in the sink's transaction); the sink's consumer group
//! holds the end offsets of the last batch with `rivulet-batch=<N>` as metadata, N the
//! checkpoint's batch. At-least-once: every kept event at least once, nothing filtered.
//! Two exactly-once sinks (a topic and a PostgreSQL table) stay in step through the
//! batch log and replay (last test).
//!
//! Kill points: after a random share of what is left is visible in the output, plus a
//! random few milliseconds, so each kill lands mid-stream (asserted) and anywhere in a
//! batch (between planning, producing, committing and checkpointing). Small batches
//! (`--max-batch-records`) give many batches per run. The seed is printed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use rivulet_streams::runtime::{self, RunOptions, RunSummary, RuntimeError};
use rivulet_streams::JobPlan;
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::produce_all;
use rivulet_testkit::kafka::{block_on, consumer, create_topic, producer};
use rivulet_testkit::postgres::TestPostgres;
use rivulet_testkit::process::{send_signal, BrokerProcess, Signal};
use tempfile::TempDir;
use tokio::sync::watch;

mod streams_support;
use streams_support::{committed_reader, join_within, spawn_job, start_broker, Rng, StreamJob};
const TIMEOUT: Duration = Duration::from_secs(20);
const PARTITIONS: i32 = 3;
const JOB: &str = "eos-filter";
/// Records that are not JSON objects: dead letters.
const BAD: &[&str] = &["not json", "{\"truncated\": ", "[1, 2]"];

/// Event `i`: two in three are kept by the job's filter.
fn event(i: usize) -> (String, String, bool) {
    let id = format!("e{i:05}");
    let keep = i % 3 != 2;
    let kind = if keep { "keep" } else { "drop" };
    (
        id.clone(),
        format!(r#"{{"id":"{id}","kind":"{kind}","n":{i}}}"#),
        keep,
    )
}

fn job_file(bootstrap: &str, guarantee: &str) -> String {
    format!(
        r#"[job]
name = "{JOB}"
bootstrap_servers = "{bootstrap}"
checkpoint_dir = "checkpoints/{JOB}"
dead_letter_topic = "dlq"

[[source]]
name = "events"
topics = ["events"]
start = "earliest"

[[operator]]
name = "kept"
type = "filter"
where = "kind = 'keep'"

[[sink]]
name = "out"
type = "kafka"
topic = "out"
key = "id"
guarantee = "{guarantee}"
"#
    )
}

fn produce(p: &FutureProducer, records: &[(String, String)]) {
    streams_support::produce(p, "events", records, TIMEOUT);
}

/// Produce events `from..to`; the ids of the kept ones.
fn produce_wave(p: &FutureProducer, from: usize, to: usize) -> Vec<String> {
    let events: Vec<_> = (from..to).map(event).collect();
    let records: Vec<(String, String)> = events
        .iter()
        .map(|(k, v, _)| (k.clone(), v.clone()))
        .collect();
    produce(p, &records);
    events
        .into_iter()
        .filter(|(_, _, keep)| *keep)
        .map(|(k, _, _)| k)
        .collect()
}

/// Everything a read_committed reader of a topic has seen so far.
struct Reader {
    consumer: BaseConsumer,
    values: Vec<serde_json::Value>,
}

impl Reader {
    fn new(bootstrap: &str, topic: &str) -> Reader {
        Reader {
            consumer: committed_reader(bootstrap, topic, PARTITIONS),
            values: Vec::new(),
        }
    }

    /// Read what arrives within `wait`.
    fn pump(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            match self.consumer.poll(Duration::from_millis(20)) {
                Some(Ok(m)) => {
                    let v = m.payload().expect("a value");
                    self.values
                        .push(serde_json::from_slice(v).expect("a JSON value"));
                }
                Some(Err(e)) => panic!("consumer error: {e}"),
                None if Instant::now() >= deadline => break,
                None => {}
            }
        }
    }

    fn ids(&self) -> Vec<String> {
        self.values
            .iter()
            .map(|v| v["id"].as_str().expect("an id").to_string())
            .collect()
    }

    fn distinct(&self) -> usize {
        self.ids().into_iter().collect::<BTreeSet<_>>().len()
    }
}

struct Harness {
    work: TempDir,
    log: PathBuf,
    bootstrap: String,
    broker: BrokerProcess,
    /// `--max-batch-records`: small, so a run takes many batches.
    batch: usize,
}

impl Harness {
    /// `trigger`: the job's trigger (default: as fast as possible).
    fn start(guarantee: &str, batch: usize, trigger: Option<&str>) -> Harness {
        let work = temp_dir();
        let broker = start_broker(work.path(), TIMEOUT);
        let bootstrap = broker.bootstrap();
        for topic in ["events", "out", "dlq"] {
            block_on(create_topic(&bootstrap, topic, PARTITIONS, &[]));
        }
        let mut text = job_file(&bootstrap, guarantee);
        if let Some(t) = trigger {
            text = text.replace("[job]\n", &format!("[job]\ntrigger = \"{t}\"\n"));
        }
        std::fs::write(work.path().join("job.toml"), text).expect("write the job file");
        Harness {
            log: work.path().join("job.log"),
            work,
            bootstrap,
            broker,
            batch,
        }
    }

    fn job(&self) -> StreamJob {
        StreamJob {
            file: self.work.path().join("job.toml"),
            cwd: self.work.path().to_path_buf(),
            log: self.log.clone(),
            bootstrap: self.bootstrap.clone(),
            batch: self.batch,
        }
    }

    fn spawn(&self) -> Child {
        self.job().spawn()
    }

    fn log_tail(&self) -> String {
        self.job().tail()
    }

    /// Run the job `kills` times, each time producing `wave` more events and killing
    /// it mid-stream once `reader` saw a random share of what is left; then run it to
    /// the end and stop it with SIGTERM. Returns the kept ids and the events produced.
    fn run_with_kills(
        &self,
        reader: &mut Reader,
        rng: &mut Rng,
        kills: usize,
        wave: usize,
    ) -> (Vec<String>, usize) {
        let p = producer(&self.bootstrap, &[("enable.idempotence", "true")]);
        let mut expected = produce_wave(&p, 0, wave);
        let bad: Vec<(String, String)> = BAD
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("bad{i}"), v.to_string()))
            .collect();
        produce(&p, &bad);
        let mut produced = wave;
        for kill in 0..kills {
            expected.extend(produce_wave(&p, produced, produced + wave));
            produced += wave;
            let before = reader.distinct();
            let mut child = self.spawn();
            let left = expected.len() - before;
            let target = before + 1 + rng.below((left / 2) as u64) as usize;
            let deadline = Instant::now() + TIMEOUT;
            while reader.distinct() < target {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "the job exited ({status}) before kill {kill}:\n{}",
                        self.log_tail()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "the job did not reach {target} records before kill {kill}:\n{}",
                    self.log_tail()
                );
                reader.pump(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(rng.below(30)));
            child.kill().expect("SIGKILL the job");
            child.wait().expect("reap the job");
            reader.pump(Duration::from_millis(200));
            let after = reader.distinct();
            eprintln!(
                "kill {kill}: {before} -> {after} of {} kept",
                expected.len()
            );
            assert!(
                after < expected.len(),
                "kill {kill} landed after the job caught up: not a mid-stream kill"
            );
        }
        let mut child = self.spawn();
        let deadline = Instant::now() + Duration::from_secs(30);
        while reader.distinct() < expected.len() {
            assert!(
                Instant::now() < deadline,
                "the output did not catch up: {} of {}\n{}",
                reader.distinct(),
                expected.len(),
                self.log_tail()
            );
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the job exited ({status}):\n{}", self.log_tail());
            }
            reader.pump(Duration::from_millis(20));
        }
        reader.pump(Duration::from_millis(500));
        send_signal(child.id(), Signal::TERM).expect("SIGTERM the job");
        let status = child.wait().expect("wait for the job");
        assert!(
            status.success(),
            "SIGTERM should stop the job cleanly: {status}\n{}",
            self.log_tail()
        );
        reader.pump(Duration::from_millis(300));
        (expected, produced)
    }
}

/// No filtered event reached the output.
fn assert_only_kept(reader: &Reader) {
    let dropped: Vec<&serde_json::Value> = reader
        .values
        .iter()
        .filter(|v| v["kind"] != "keep")
        .collect();
    assert!(
        dropped.is_empty(),
        "filtered events in the output: {dropped:?}"
    );
}

#[test]
fn kafka_sink_is_exactly_once_across_sigkills() {
    let started = Instant::now();
    // The sink sends a batch's records at once; at full speed the job catches up before
    // the test's read_committed reader sees the kill point. A 50 ms interval (at most
    // 400 records/s in batches of 20) keeps every kill mid-stream.
    let h = Harness::start("exactly_once", 20, Some("50ms"));
    let mut rng = Rng::seeded("kafka eos");
    let mut reader = Reader::new(&h.bootstrap, "out");
    let (expected, produced) = h.run_with_kills(&mut reader, &mut rng, 3, 600);

    let ids = reader.ids();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &ids {
        *counts.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "records seen more than once: {twice:?}");
    let want: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(
        counts.keys().copied().collect::<BTreeSet<_>>(),
        want,
        "the output is not exactly the kept events"
    );
    assert_only_kept(&reader);

    // Dead letters travel in the sink's transaction: exactly once as well.
    let mut dlq = Reader::new(&h.bootstrap, "dlq");
    dlq.pump(Duration::from_secs(2));
    let letters: BTreeSet<(i64, i64)> = dlq
        .values
        .iter()
        .filter_map(|v| Some((v["partition"].as_i64()?, v["offset"].as_i64()?)))
        .collect();
    assert_eq!(
        (dlq.values.len(), letters.len()),
        (BAD.len(), BAD.len()),
        "each bad record should be dead-lettered exactly once: {:?}",
        dlq.values
    );

    // The sink's group holds the last batch's end offsets with its id as metadata.
    let checkpoint: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            h.work
                .path()
                .join(format!("checkpoints/{JOB}/checkpoint.json")),
        )
        .expect("read the checkpoint"),
    )
    .expect("a checkpoint");
    let batch = checkpoint["batch_id"].as_u64().expect("a batch id");
    let group = consumer(
        &h.bootstrap,
        &[("group.id", &format!("rivulet-stream-{JOB}-out"))],
    );
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition("events", p);
    }
    let committed = group
        .committed_offsets(tpl, TIMEOUT)
        .expect("read the sink's committed offsets");
    let mut next = 0;
    for e in committed.elements() {
        assert_eq!(
            e.metadata(),
            format!("rivulet-batch={batch}"),
            "offset metadata of events/{}",
            e.partition()
        );
        match e.offset() {
            Offset::Offset(o) => next += o,
            other => panic!("events/{}: no committed offset: {other:?}", e.partition()),
        }
    }
    assert_eq!(
        next as usize,
        produced + BAD.len(),
        "committed offsets do not cover the input"
    );
    eprintln!("kafka exactly-once end to end took {:?}", started.elapsed());
    drop(h.broker);
}

#[test]
fn kafka_sink_is_at_least_once_across_sigkills() {
    let started = Instant::now();
    // Without a transaction per batch the job can be faster than the reader sees it:
    // a 25 ms interval trigger caps it (400 records/s), so the kills land mid-stream.
    let h = Harness::start("at_least_once", 10, Some("25ms"));
    let mut rng = Rng::seeded("kafka alo");
    let mut reader = Reader::new(&h.bootstrap, "out");
    let (expected, _) = h.run_with_kills(&mut reader, &mut rng, 3, 600);
    let got: BTreeSet<String> = reader.ids().into_iter().collect();
    let want: BTreeSet<String> = expected.into_iter().collect();
    assert_eq!(got, want, "every kept event at least once, nothing else");
    assert_only_kept(&reader);
    eprintln!(
        "kafka at-least-once: {} records for {} kept events, took {:?}",
        reader.values.len(),
        want.len(),
        started.elapsed()
    );
    drop(h.broker);
}

/// A second instance of the same exactly-once job (a zombie's successor): its
/// InitProducerId fences the first, whose next transaction fails and stops it with an
/// error; the output stays exactly once. Both run in this process.
#[test]
fn a_second_instance_fences_the_first_and_output_stays_exactly_once() {
    let h = Harness::start("exactly_once", 5, None);
    let p = producer(&h.bootstrap, &[("enable.idempotence", "true")]);
    let mut expected = produce_wave(&p, 0, 600);
    let plan = JobPlan::from_toml(&job_file(&h.bootstrap, "exactly_once")).expect("a job");
    let options = RunOptions {
        checkpoint_dir: Some(h.work.path().join("checkpoints").join(JOB)),
        max_batch_records: 5,
        ..RunOptions::default()
    };
    let (_stop_a, first) = spawn_job(&plan, &options);
    let mut reader = Reader::new(&h.bootstrap, "out");
    let deadline = Instant::now() + TIMEOUT;
    while reader.distinct() < 30 {
        assert!(
            Instant::now() < deadline,
            "the first instance wrote nothing"
        );
        reader.pump(Duration::from_millis(10));
    }
    let (stop_b, second) = spawn_job(&plan, &options);
    // More input, wave after wave until the first instance stops: once the second's
    // InitProducerId has fenced it, its next commit fails. (One wave right away could
    // be all written by the first before the second starts; then the first, idle,
    // never learns it was fenced.)
    let deadline = Instant::now() + TIMEOUT;
    let mut next = 600;
    while !first.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the first instance did not stop within {TIMEOUT:?} of the second's start"
        );
        expected.extend(produce_wave(&p, next, next + 20));
        next += 20;
        std::thread::sleep(Duration::from_millis(200));
    }
    match join_within(first, TIMEOUT) {
        Err(e) => eprintln!("the first instance stopped: {e}"),
        Ok(summary) => panic!("the first instance was not fenced: {summary:?}"),
    }
    // The second runs on (or stopped too, if the first planned a batch it then
    // planned: the checkpoint directory has one writer).
    let _ = stop_b.send(true);
    eprintln!("the second instance: {:?}", join_within(second, TIMEOUT));
    let last = JobPlan::from_toml(
        &job_file(&h.bootstrap, "exactly_once")
            .replace("[job]\n", "[job]\ntrigger = \"available_now\"\n"),
    )
    .expect("a job");
    let (_stop, last) = spawn_job(&last, &options);
    join_within(last, Duration::from_secs(30)).expect("the last run");
    reader.pump(Duration::from_secs(1));
    let ids = reader.ids();
    let distinct: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(ids.len(), distinct.len(), "records seen more than once");
    let want: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(distinct, want, "the output is not exactly the kept events");
    drop(h.broker);
}

// --- two exactly-once sinks ---------------------------------------------------------
//
// Exactly-once across a Kafka topic and a PostgreSQL table through the batch log and
// replay, with the runtime in this process (so `RunOptions::crash_after_sink` can stop
// a run right where a kill -9 would leave one sink ahead of the other: after the topic
// committed batch N and before the table did, or after both and before the
// checkpoint). The next run must replay batch N into the table only (plain inserts: a
// second write shows as duplicate rows; a second transaction shows as duplicates in
// the read_committed topic) and produce the rows the topic got: the job deduplicates
// ids occurring in both partitions, and the copy a replay keeps must be the one the
// first run kept (canonical record order).

fn multi_job(bootstrap: &str, url: &str, checkpoints: &str) -> JobPlan {
    JobPlan::from_toml(&format!(
        r#"[job]
name = "multi"
trigger = "available_now"
bootstrap_servers = "{bootstrap}"
checkpoint_dir = "{checkpoints}"

[[source]]
name = "in"
topics = ["in"]
start = "earliest"
# Event time is the Kafka timestamp; no copy is late however batches cut the input.
watermark_delay = "1h"

[[operator]]
name = "kept"
type = "filter"
where = "kind = 'keep'"

[[operator]]
name = "unique"
type = "dedup"
by = "id"

[[sink]]
name = "topic_out"
input = "unique"
type = "kafka"
topic = "out"
key = "id"
guarantee = "exactly_once"

[[sink]]
name = "table_out"
input = "unique"
type = "postgres"
url = "{url}"
table = "t"
mode = "insert"
guarantee = "exactly_once"
"#
    ))
    .expect("a valid job")
}

/// Events `from..to`: ids repeat across the two partitions (`e<i % 40>`), so dedup
/// keeps the first copy it sees; `copy` tells which one. One in seven is filtered out
/// (copies of an id are 40 apart, so not all of them).
async fn produce_multi(bootstrap: &str, from: usize, to: usize) {
    let p = producer(bootstrap, &[]);
    for i in from..to {
        let kind = if i % 7 == 6 { "drop" } else { "keep" };
        let v = format!(r#"{{"id":"e{}","kind":"{kind}","copy":{i}}}"#, i % 40);
        produce_all(&p, "in", (i % 2) as i32, &[(None, Some(v.as_bytes()))]).await;
    }
}

async fn run_in_process(
    plan: &JobPlan,
    crash: Option<(u64, &str)>,
) -> Result<RunSummary, RuntimeError> {
    let (_tx, rx) = watch::channel(false);
    let options = RunOptions {
        max_batch_records: 7,
        poll_wait: Duration::from_millis(100),
        idle_limit: Duration::from_secs(2),
        crash_after_sink: crash.map(|(b, s)| (b, s.to_string())),
        ..RunOptions::default()
    };
    runtime::run(plan.clone(), options, rx).await
}

/// id → copies, as a read_committed reader of `out` sees them.
fn multi_topic_rows(bootstrap: &str) -> BTreeMap<String, Vec<i64>> {
    let c = consumer(bootstrap, &[("isolation.level", "read_committed")]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("out", p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut rows: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(50)) {
            let m = m.expect("consume");
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            rows.entry(v["id"].as_str().unwrap().to_string())
                .or_default()
                .push(v["copy"].as_i64().unwrap());
        }
    }
    rows
}

fn table_rows(pg: &TestPostgres) -> BTreeMap<String, Vec<i64>> {
    let mut rows: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for line in pg
        .psql("multi", "SELECT id, copy FROM t ORDER BY id, copy")
        .lines()
    {
        let (id, copy) = line.split_once('|').expect("id|copy");
        rows.entry(id.to_string())
            .or_default()
            .push(copy.parse().unwrap());
    }
    rows
}

fn state_batch(pg: &TestPostgres) -> u64 {
    pg.psql(
        "multi",
        "SELECT batch_id FROM rivulet_stream_state WHERE job = 'multi'",
    )
    .trim()
    .parse()
    .expect("a batch id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_one_sink_committed_is_replayed_into_the_other_only() {
    let Some(pg) = TestPostgres::start_or_skip() else {
        return;
    };
    let url = pg.create_database("multi");
    let work = temp_dir();
    let broker = start_broker(work.path(), TIMEOUT);
    let bootstrap = broker.bootstrap();
    for topic in ["in", "out"] {
        create_topic(&bootstrap, topic, PARTITIONS, &[]).await;
    }
    let checkpoints = work.path().join("cp");
    let plan = multi_job(&bootstrap, &url, checkpoints.to_str().unwrap());
    produce_multi(&bootstrap, 0, 60).await;

    // Killed after the topic committed batch 3, before the table did.
    match run_in_process(&plan, Some((3, "topic_out"))).await {
        Err(RuntimeError::InjectedCrash { batch_id: 3, .. }) => {}
        other => panic!("expected the injected crash, got {other:?}"),
    }
    assert_eq!(state_batch(&pg), 2, "the table must not have batch 3 yet");
    let cp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(checkpoints.join("checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(cp["batch_id"], 2);
    assert!(checkpoints
        .join("batches")
        .join(format!("{:020}.json", 3))
        .exists());

    // Killed after both sinks committed batch 6, before its checkpoint.
    match run_in_process(&plan, Some((6, "table_out"))).await {
        Err(RuntimeError::InjectedCrash { batch_id: 6, .. }) => {}
        other => panic!("expected the injected crash, got {other:?}"),
    }
    assert_eq!(state_batch(&pg), 6);

    // Killed again between the sinks, on a later batch, with more input meanwhile.
    produce_multi(&bootstrap, 60, 90).await;
    match run_in_process(&plan, Some((8, "topic_out"))).await {
        Err(RuntimeError::InjectedCrash { batch_id: 8, .. }) => {}
        other => panic!("expected the injected crash, got {other:?}"),
    }

    let summary = run_in_process(&plan, None).await.expect("the last run");
    assert_eq!(state_batch(&pg), summary.last_batch_id);

    let topic = multi_topic_rows(&bootstrap);
    let table = table_rows(&pg);
    let twice: Vec<_> = topic.iter().filter(|(_, c)| c.len() > 1).collect();
    assert!(twice.is_empty(), "the topic has rows twice: {twice:?}");
    let twice: Vec<_> = table.iter().filter(|(_, c)| c.len() > 1).collect();
    assert!(twice.is_empty(), "the table has rows twice: {twice:?}");
    assert_eq!(topic.len(), 40, "every id once: {topic:?}");
    assert_eq!(
        topic, table,
        "a replayed batch produced other rows than the first run"
    );
    // The copy kept is a kept event of that id.
    for (id, copies) in &topic {
        let c = copies[0];
        assert_eq!(format!("e{}", c % 40), *id);
        assert_ne!(c % 7, 6, "a filtered event passed");
    }
    drop(broker);
}
