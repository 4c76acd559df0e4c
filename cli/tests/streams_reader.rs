//! A stream job's source readers against a real `rivulet` broker process (issue 12):
//! the native reader (Kafka Fetch requests of the runtime's own, the default) and the
//! librdkafka reader (`client = "librdkafka"`) must hand a job the same records.
//!
//! 1. A topic of three partitions holding what producers write in practice: keyed
//!    records with headers, batches compressed with each of gzip, lz4, zstd and snappy,
//!    and transactions, committed and aborted, with other producers' records written
//!    between an aborted transaction's records. A job with each reader (in this
//!    process, `available_now`, into a files sink) must land exactly the records of
//!    committed transactions and the plain ones, each once, with the same key, headers,
//!    partition, offset and timestamp columns under both readers.
//! 2. The broker SIGKILLed and restarted while a job runs with the native reader: the
//!    reader reconnects and the job lands every record produced before and after, once;
//!    on the 3-node cluster, a partition leader SIGKILLed: the reader follows the new
//!    leaders. A job resumed past deleted records reads on from the earliest offset.
//! 3. Where a source starts (earliest, latest, a time; the ends `available_now` stops
//!    at, an open transaction's records excluded) is the same under both clients: the
//!    native one asks with ListOffsets of its own, the librdkafka one through librdkafka.

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::admin::AdminOptions;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_streams::runtime::{self, RunOptions};
use rivulet_streams::JobPlan;
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::{
    admin, block_on, cluster_client_config, create_topic, create_topic_rf, partitions, producer,
    wait_for_leaders,
};
use serde_json::Value;
use tokio::sync::watch;

mod streams_support;
use streams_support::{join_within, lake_rows, spawn_job, start_broker, JobThread};

const TIMEOUT: Duration = Duration::from_secs(20);
const PARTITIONS: i32 = 3;

fn job(name: &str, client: &str, trigger: &str, bootstrap: &str, work: &Path) -> JobPlan {
    job_on("mix", name, client, trigger, bootstrap, work)
}

fn job_on(
    topic: &str,
    name: &str,
    client: &str,
    trigger: &str,
    bootstrap: &str,
    work: &Path,
) -> JobPlan {
    JobPlan::from_toml(&job_text(topic, name, client, trigger, bootstrap, work))
        .expect("a valid job")
}

fn job_text(
    topic: &str,
    name: &str,
    client: &str,
    trigger: &str,
    bootstrap: &str,
    work: &Path,
) -> String {
    format!(
        r#"
[job]
name = "{name}"
trigger = "{trigger}"
bootstrap_servers = "{bootstrap}"
checkpoint_dir = "{cp}"

[[source]]
name = "mix"
topics = ["{topic}"]
start = "earliest"
client = "{client}"

[[operator]]
type = "select"
columns = "id, _key AS k, _headers AS h, _partition AS p, _offset AS o, _timestamp AS t"

[[sink]]
name = "lake"
type = "files"
path = "{lake}"
layout = "year={{yyyy}}"
format = "jsonl"
"#,
        cp = work.join("cp").join(name).display(),
        lake = work.join("lake").join(name).display(),
    )
}

/// Send `(id, partition, key, header)` records and wait for every ack.
async fn send(p: &FutureProducer, records: &[Sent]) {
    send_to(p, "mix", records).await
}

async fn send_to(p: &FutureProducer, topic: &str, records: &[Sent]) {
    let sends: Vec<_> = records
        .iter()
        .map(|(id, partition, key, header)| {
            let payload = format!(r#"{{"id":"{id}"}}"#);
            let mut r = FutureRecord::to(topic)
                .payload(&payload)
                .partition(*partition);
            if let Some(k) = key {
                r = r.key(k.as_str());
            }
            if let Some(h) = header {
                r = r.headers(OwnedHeaders::new().insert(Header {
                    key: "h",
                    value: Some(h.as_str()),
                }));
            }
            p.send_result(r)
                .map_err(|(e, _)| e)
                .expect("queue a record")
        })
        .collect();
    for s in sends {
        s.await
            .expect("delivery future")
            .map_err(|(e, _)| e)
            .expect("produce a record");
    }
}

type Sent = (String, i32, Option<String>, Option<String>);

/// Record `i` of a run of `prefix`: its id, partition, key (every other record) and
/// header value (every third).
fn record(prefix: &str, i: usize) -> Sent {
    let id = format!("{prefix}{i}");
    (
        id.clone(),
        i as i32 % PARTITIONS,
        i.is_multiple_of(2).then(|| format!("key-{id}")),
        i.is_multiple_of(3).then(|| format!("hv-{id}")),
    )
}

fn plain(prefix: &str, n: usize) -> Vec<Sent> {
    (0..n).map(|i| record(prefix, i)).collect()
}

/// What `record` gave the record with this id.
fn sent_as(id: &str) -> Sent {
    let digits = id.len() - id.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (prefix, i) = id.split_at(id.len() - digits);
    record(prefix, i.parse().unwrap_or_else(|_| panic!("id {id}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_and_librdkafka_readers_hand_a_job_the_same_committed_records() {
    let dir = temp_dir();
    let broker = start_broker(dir.path(), TIMEOUT);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "mix", PARTITIONS, &[]).await;

    let mut expected: Vec<String> = Vec::new();
    let keep =
        |expected: &mut Vec<String>, rs: &[Sent]| expected.extend(rs.iter().map(|r| r.0.clone()));
    // Plain keyed records with headers.
    let p = producer(&bootstrap, &[]);
    let rs = plain("plain-", 60);
    send(&p, &rs).await;
    keep(&mut expected, &rs);
    // Batches of each codec (linger gathers many records per batch).
    for codec in ["gzip", "lz4", "zstd", "snappy"] {
        let c = producer(
            &bootstrap,
            &[("compression.type", codec), ("linger.ms", "20")],
        );
        let rs = plain(&format!("{codec}-"), 90);
        send(&c, &rs).await;
        keep(&mut expected, &rs);
    }
    // Transactions: committed, aborted with plain records written inside its range,
    // committed again.
    let txn = transactional_producer(&bootstrap, "reader-mixer");
    txn.begin_transaction().expect("begin");
    let rs = plain("committed-a-", 30);
    send(&txn, &rs).await;
    txn.commit_transaction(TIMEOUT).expect("commit");
    keep(&mut expected, &rs);

    txn.begin_transaction().expect("begin");
    send(&txn, &plain("aborted-", 30)).await;
    let between = plain("between-", 30);
    send(&p, &between).await;
    keep(&mut expected, &between);
    send(&txn, &plain("aborted-late-", 12)).await;
    txn.abort_transaction(TIMEOUT).expect("abort");

    txn.begin_transaction().expect("begin");
    let rs = plain("committed-b-", 30);
    send(&txn, &rs).await;
    txn.commit_transaction(TIMEOUT).expect("commit");
    keep(&mut expected, &rs);
    let tail = plain("tail-", 15);
    send(&p, &tail).await;
    keep(&mut expected, &tail);
    expected.sort();

    let mut seen = Vec::new();
    for client in ["native", "librdkafka"] {
        let name = format!("reader-{client}");
        let plan = job(&name, client, "available_now", &bootstrap, dir.path());
        let (_stop, shutdown) = watch::channel(false);
        let options = RunOptions {
            max_batch_records: 100,
            ..RunOptions::default()
        };
        let summary = tokio::time::timeout(
            Duration::from_secs(60),
            runtime::run(plan, options, shutdown),
        )
        .await
        .unwrap_or_else(|_| panic!("the {client} job did not end"))
        .unwrap_or_else(|e| panic!("the {client} job failed: {e}"));
        let rows = lake_rows(&dir.path().join("lake").join(&name));
        let ids: Vec<String> = rows.keys().cloned().collect();
        let missing: Vec<_> = expected
            .iter()
            .filter(|id| !rows.contains_key(*id))
            .collect();
        let extra: Vec<_> = ids
            .iter()
            .filter(|id| expected.binary_search(id).is_err())
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{client}: {} rows; missing {missing:?}; not expected {extra:?}",
            rows.len()
        );
        assert_eq!(
            summary.records,
            expected.len() as u64,
            "{client}: records read"
        );
        for (id, v) in &rows {
            let (_, partition, key, header) = sent_as(id);
            assert_eq!(
                v["p"],
                Value::from(partition),
                "{client}: partition of {id}"
            );
            assert_eq!(
                v["k"],
                key.map_or(Value::Null, Value::from),
                "{client}: key of {id}"
            );
            let h = v["h"].get("h").cloned().unwrap_or(Value::Null);
            assert_eq!(
                h,
                header.map_or(Value::Null, Value::from),
                "{client}: header of {id}"
            );
            assert!(
                v["t"].as_i64().is_some_and(|t| t > 0),
                "{client}: timestamp of {id}: {v}"
            );
        }
        seen.push(rows);
    }
    // Offsets and timestamps are the same whichever reader read them.
    assert_eq!(seen[0], seen[1], "the two readers' rows differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_reader_reads_on_after_the_broker_is_killed_and_restarted() {
    let dir = temp_dir();
    let mut broker = start_broker(dir.path(), TIMEOUT);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "mix", PARTITIONS, &[]).await;
    let p = producer(&bootstrap, &[]);
    let first = plain("before-", 90);
    send(&p, &first).await;

    let plan = job("restart", "native", "100ms", &bootstrap, dir.path());
    let (stop, running) = spawn_job(&plan, &RunOptions::default());
    let lake = dir.path().join("lake").join("restart");
    wait_for(&lake, first.len(), &running).await;

    broker.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker.start();
    let p = producer(&bootstrap, &[]);
    let second = plain("after-", 90);
    send(&p, &second).await;
    wait_for(&lake, first.len() + second.len(), &running).await;

    stop_and_check(stop, running, &lake, &[&first, &second]);
}

/// Wait until the lake holds `n` rows (each once: `lake_rows` checks).
async fn wait_for<T>(lake: &Path, n: usize, job: &std::thread::JoinHandle<T>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = lake_rows(lake).len();
        if have >= n {
            assert_eq!(have, n, "more rows than records");
            return;
        }
        assert!(
            !job.is_finished(),
            "the job ended early with {have} of {n} rows"
        );
        assert!(Instant::now() < deadline, "{have} of {n} rows after 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A job resumed from its checkpoint after the records at its next offset were deleted
/// (DeleteRecords, as retention would): the fetch is out of range, and the reader reads
/// on from the earliest offset there is — the job's `auto.offset.reset` — with each
/// reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_job_whose_next_records_were_deleted_reads_on_from_the_earliest() {
    let dir = temp_dir();
    let broker = start_broker(dir.path(), TIMEOUT);
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    for client in ["native", "librdkafka"] {
        let topic = format!("trimmed-{client}");
        create_topic(&bootstrap, &topic, 1, &[]).await;
        let p = producer(&bootstrap, &[]);
        // One partition: record i is at offset i.
        let one = |prefix: &str, n: usize| -> Vec<Sent> {
            (0..n)
                .map(|i| (format!("{prefix}{i}"), 0, None, None))
                .collect()
        };
        send_to(&p, &topic, &one("first-", 30)).await;
        let name = format!("trim-{client}");
        let run = || async {
            let plan = job_on(
                &topic,
                &name,
                client,
                "available_now",
                &bootstrap,
                dir.path(),
            );
            let (_stop, shutdown) = watch::channel(false);
            tokio::time::timeout(
                Duration::from_secs(60),
                runtime::run(plan, RunOptions::default(), shutdown),
            )
            .await
            .unwrap_or_else(|_| panic!("the {client} job did not end"))
            .unwrap_or_else(|e| panic!("the {client} job failed: {e}"))
        };
        run().await;
        // The checkpoint says 30; offsets 30..=44 are deleted before the job resumes.
        send_to(&p, &topic, &one("second-", 30)).await;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(45))
            .unwrap();
        let res = admin
            .delete_records(&tpl, &AdminOptions::new())
            .await
            .expect("delete records");
        assert_eq!(res.elements()[0].error(), Ok(()));
        let summary = run().await;
        assert_eq!(summary.records, 15, "{client}: read after the reset");
        let rows = lake_rows(&dir.path().join("lake").join(&name));
        let mut expected: Vec<String> = (0..30).map(|i| format!("first-{i}")).collect();
        expected.extend((15..30).map(|i| format!("second-{i}")));
        expected.sort();
        assert_eq!(
            rows.keys().cloned().collect::<Vec<_>>(),
            expected,
            "{client}"
        );
    }
}

/// The native reader on the 3-node cluster: the leader of a partition it reads is
/// SIGKILLed mid-job; the reader finds the new leaders (Metadata, NOT_LEADER and
/// connection errors retried from the same offsets) and the job lands every record
/// produced before and after, once.
#[test]
fn the_native_reader_follows_a_leader_failover_on_the_cluster() {
    let dir = temp_dir();
    let mut cluster = streams_support::failover_cluster("reader-failover");
    let bootstrap = cluster.bootstrap();
    block_on(create_topic_rf(
        &bootstrap,
        "mix",
        PARTITIONS,
        3,
        &[("min.insync.replicas", "2")],
    ));
    wait_for_leaders(&bootstrap, "mix", Duration::from_secs(60));
    let p = producer(&bootstrap, &[("acks", "all")]);
    let first = plain("before-", 90);
    block_on(send(&p, &first));

    let plan = job("failover", "native", "100ms", &bootstrap, dir.path());
    let (stop, running) = spawn_job(&plan, &RunOptions::default());
    let lake = dir.path().join("lake").join("failover");
    block_on(wait_for(&lake, first.len(), &running));

    let client: BaseConsumer = cluster_client_config(&bootstrap)
        .create()
        .expect("a client");
    let leader = partitions(&client, "mix")
        .and_then(|m| m.get(&0).map(|v| v.leader))
        .expect("mix/0's leader");
    cluster.kill(leader);
    let second = plain("after-", 90);
    block_on(send(&p, &second));
    block_on(wait_for(&lake, first.len() + second.len(), &running));

    stop_and_check(stop, running, &lake, &[&first, &second]);
}

/// Stop the job, which must end cleanly, and check that the lake holds every record
/// of `waves` and nothing else (each once: `lake_rows` checks).
fn stop_and_check(stop: watch::Sender<bool>, running: JobThread, lake: &Path, waves: &[&[Sent]]) {
    stop.send(true).expect("stop the job");
    join_within(running, Duration::from_secs(30)).expect("the job ends cleanly");
    let rows = lake_rows(lake);
    for (id, ..) in waves.iter().flat_map(|w| w.iter()) {
        assert!(rows.contains_key(id), "row {id} is missing");
    }
    assert_eq!(rows.len(), waves.iter().map(|w| w.len()).sum::<usize>());
}

/// Start positions and `available_now` ends, found with the runtime's own Metadata and
/// ListOffsets (native) or librdkafka's: the same rows either way. Records carry
/// timestamps a second apart; a transaction left open holds the end at its first
/// record (the last stable offset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clients_start_and_stop_at_the_same_offsets() {
    let dir = temp_dir();
    let broker = start_broker(dir.path(), TIMEOUT);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "timed", 2, &[]).await;
    // 2020-01-01T00:00:00Z plus i seconds, alternating partitions.
    const T0: i64 = 1_577_836_800_000;
    let p = producer(&bootstrap, &[]);
    for i in 0..30i64 {
        let payload = format!(r#"{{"id":"t{i}"}}"#);
        let r = FutureRecord::<str, str>::to("timed")
            .payload(&payload)
            .partition((i % 2) as i32)
            .timestamp(T0 + i * 1000);
        p.send(r, TIMEOUT)
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }
    // An open transaction: its records are past the last stable offset.
    let txn = transactional_producer(&bootstrap, "reader-open");
    txn.begin_transaction().expect("begin");
    send_to(&txn, "timed", &[("open-0".into(), 0, None, None)]).await;
    let ids = |from: i64| -> Vec<String> { (from..30).map(|i| format!("t{i}")).collect() };
    for (case, (start, want)) in [
        ("earliest", ids(0)),
        ("latest", Vec::new()),
        ("2020-01-01T00:00:20Z", ids(20)),
        ("2999-01-01T00:00:00Z", Vec::new()),
    ]
    .into_iter()
    .enumerate()
    {
        let mut seen = Vec::new();
        for client in ["native", "librdkafka"] {
            let name = format!("start-{case}-{client}");
            let text = job_text(
                "timed",
                &name,
                client,
                "available_now",
                &bootstrap,
                dir.path(),
            )
            .replace("start = \"earliest\"", &format!("start = \"{start}\""));
            let plan = JobPlan::from_toml(&text).expect("a valid job");
            let (_stop, shutdown) = watch::channel(false);
            tokio::time::timeout(
                Duration::from_secs(60),
                runtime::run(plan, RunOptions::default(), shutdown),
            )
            .await
            .unwrap_or_else(|_| panic!("{name} did not end"))
            .unwrap_or_else(|e| panic!("{name} failed: {e}"));
            let rows = lake_rows(&dir.path().join("lake").join(&name));
            let got: Vec<String> = rows.keys().cloned().collect();
            let mut want = want.clone();
            want.sort();
            assert_eq!(got, want, "{client}, start = {start}");
            seen.push(rows);
        }
        assert_eq!(
            seen[0], seen[1],
            "start = {start}: the two clients' rows differ"
        );
    }
    txn.abort_transaction(TIMEOUT).expect("abort");
}

/// An idempotent producer with transactional id `id`, its transactions initialised.
fn transactional_producer(bootstrap: &str, id: &str) -> FutureProducer {
    let txn = producer(
        bootstrap,
        &[("transactional.id", id), ("enable.idempotence", "true")],
    );
    txn.init_transactions(TIMEOUT).expect("init transactions");
    txn
}
