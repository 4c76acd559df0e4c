//! A stream job's Kafka sink writers against real `rivulet` broker processes (issue 12):
//! the native writer (Produce requests of the runtime's own, the default) and the
//! librdkafka writer (`client = "librdkafka"`) must deliver the same records, keyed
//! records to the same partitions, at-least-once and exactly-once.
//!
//! 1. One broker: 300 input records, nine in ten with a key field; a job per writer and
//!    guarantee copies them to a topic of three partitions. A read_committed consumer
//!    must read every record once from each output, with its key, and each keyed record
//!    in the same partition under both writers (librdkafka's default partitioner);
//!    records without a key spread over the partitions. The exactly-once sinks' groups
//!    must hold the input's end offsets with the batch id as metadata, read back with
//!    librdkafka; a job run again from its checkpoint reads that back and writes nothing
//!    twice.
//! 2. The 3-node cluster: the leader of an output partition SIGKILLed while an
//!    at-least-once and an exactly-once job write with the native writer: both jobs go
//!    on, the at-least-once output holds every record, the exactly-once one every
//!    record once.
//! 3. A sink's `compression`: the native writer's batches in zstd, librdkafka's in lz4,
//!    as a raw Fetch of the output shows, every record read back once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};
use rivulet_streams::runtime::RunOptions;
use rivulet_streams::JobPlan;
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::{
    block_on, cluster_client_config, consumer, create_topic, create_topic_rf, high_watermark,
    partitions, producer, wait_for_leaders,
};
use rivulet_testkit::process::BrokerProcess;

mod streams_support;
use streams_support::{committed_reader, join_within, produce, spawn_job, start_broker};

const TIMEOUT: Duration = Duration::from_secs(20);
const PARTITIONS: i32 = 3;

/// A job copying topic `input` to `output`, keyed by the `user` field, until the
/// input's end.
fn job(
    name: &str,
    output: &str,
    guarantee: &str,
    client: &str,
    bootstrap: &str,
    work: &Path,
) -> JobPlan {
    let toml = job_toml(
        name,
        output,
        guarantee,
        client,
        "available_now",
        bootstrap,
        work,
    );
    parse(&toml)
}

fn parse(toml: &str) -> JobPlan {
    JobPlan::from_toml(toml).expect("a valid job")
}

/// The TOML of [`job`]'s job with its `trigger`; its sink is the last table.
fn job_toml(
    name: &str,
    output: &str,
    guarantee: &str,
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
name = "input"
topics = ["input"]
start = "earliest"

[[sink]]
name = "out"
type = "kafka"
topic = "{output}"
key = "user"
guarantee = "{guarantee}"
client = "{client}"
"#,
        cp = work.join("cp").join(name).display(),
    )
}

/// Records `from..to`: `{"id":"<prefix><i>","user":"u<i % 37>"}`, every tenth without
/// a user (so without a key in the output).
fn records(prefix: &str, from: usize, to: usize) -> Vec<(String, String)> {
    (from..to)
        .map(|i| {
            let id = format!("{prefix}{i}");
            let value = if i % 10 == 0 {
                format!(r#"{{"id":"{id}"}}"#)
            } else {
                format!(r#"{{"id":"{id}","user":"u{}"}}"#, i % 37)
            };
            (id, value)
        })
        .collect()
}

/// What a read_committed consumer reads of `topic` within `wait` after the last
/// record: (id, partition, key) in order.
struct Read {
    consumer: BaseConsumer,
    rows: Vec<(String, i32, Option<String>)>,
}

impl Read {
    fn new(bootstrap: &str, topic: &str) -> Read {
        Read {
            consumer: committed_reader(bootstrap, topic, PARTITIONS),
            rows: Vec::new(),
        }
    }

    /// Read until `n` distinct ids arrived (failing after `limit`), then for `settle`
    /// more to catch duplicates.
    fn until(&mut self, n: usize, limit: Duration, settle: Duration) {
        let deadline = Instant::now() + limit;
        let mut settled: Option<Instant> = None;
        loop {
            // librdkafka reports a lost broker connection as an error and goes on.
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(20)) {
                let value: serde_json::Value =
                    serde_json::from_slice(m.payload().expect("a value")).expect("JSON");
                let id = value["id"].as_str().expect("an id").to_string();
                let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
                self.rows.push((id, m.partition(), key));
            }
            if settled.is_none() && self.distinct().len() >= n {
                settled = Some(Instant::now());
            }
            match settled {
                Some(t) if t.elapsed() >= settle => return,
                None => assert!(
                    Instant::now() < deadline,
                    "{} of {n} records arrived",
                    self.distinct().len()
                ),
                _ => {}
            }
        }
    }

    fn distinct(&self) -> BTreeSet<&str> {
        self.rows.iter().map(|(id, ..)| id.as_str()).collect()
    }
}

/// A broker (data in `work`) whose topic `input` holds [`records`]`(prefix, 0, n)`.
fn broker_with_input(
    work: &Path,
    prefix: &str,
    n: usize,
) -> (BrokerProcess, Vec<(String, String)>) {
    let broker = start_broker(work, TIMEOUT);
    let bootstrap = broker.bootstrap();
    block_on(create_topic(&bootstrap, "input", PARTITIONS, &[]));
    let p: FutureProducer = producer(&bootstrap, &[]);
    let sent = records(prefix, 0, n);
    produce(&p, "input", &sent, TIMEOUT);
    (broker, sent)
}

/// Run `plan` to its end (a minute at most): it must have read `n` records.
fn run_to_end(plan: &JobPlan, n: usize) {
    let (_stop, job) = spawn_job(plan, &RunOptions::default());
    let summary = join_within(job, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{}: the job failed: {e}", plan.name));
    assert_eq!(summary.records, n as u64, "{}", plan.name);
}

/// Read `output` until `n` distinct records arrived: none of them twice.
fn read_once(bootstrap: &str, output: &str, n: usize, settle: Duration) -> Read {
    let mut read = Read::new(bootstrap, output);
    read.until(n, TIMEOUT, settle);
    assert_eq!(read.rows.len(), n, "{output}: records read more than once");
    read
}

#[test]
fn native_and_librdkafka_writers_deliver_and_place_the_same_records() {
    let dir = temp_dir();
    let (broker, sent) = broker_with_input(dir.path(), "r", 300);
    let bootstrap = broker.bootstrap();

    let mut placed: BTreeMap<String, Vec<(String, i32)>> = BTreeMap::new();
    for guarantee in ["at_least_once", "exactly_once"] {
        for client in ["native", "librdkafka"] {
            let name = format!("copy-{client}-{guarantee}").replace('_', "-");
            let output = format!("{name}-out");
            block_on(create_topic(&bootstrap, &output, PARTITIONS, &[]));
            let plan = job(&name, &output, guarantee, client, &bootstrap, dir.path());
            run_to_end(&plan, sent.len());
            let mut read = read_once(&bootstrap, &output, sent.len(), Duration::from_millis(500));
            let by_id: BTreeMap<&str, (i32, Option<&str>)> = read
                .rows
                .iter()
                .map(|(id, p, k)| (id.as_str(), (*p, k.as_deref())))
                .collect();
            let mut unkeyed = BTreeSet::new();
            for (id, value) in &sent {
                let (partition, key) = by_id[id.as_str()];
                let want: serde_json::Value = serde_json::from_str(value).expect("JSON");
                assert_eq!(key, want["user"].as_str(), "{name}: the key of {id}");
                if key.is_some() {
                    placed
                        .entry(id.clone())
                        .or_default()
                        .push((name.clone(), partition));
                } else {
                    unkeyed.insert(partition);
                }
            }
            // librdkafka's sticky partitioner sends a burst without keys to one partition.
            assert!(
                client == "librdkafka" || unkeyed.len() == PARTITIONS as usize,
                "{name}: records without a key went to partitions {unkeyed:?} only"
            );

            if guarantee == "exactly_once" {
                check_group_offsets(&bootstrap, &name);
                // Run again from the checkpoint: nothing new, nothing written twice.
                run_to_end(&plan, 0);
                read.until(sent.len(), TIMEOUT, Duration::from_millis(300));
                assert_eq!(read.rows.len(), sent.len(), "{name}: written twice");
            }
        }
    }
    // Every keyed record in the same partition under all four jobs.
    for (id, places) in &placed {
        assert_eq!(places.len(), 4, "{id}: {places:?}");
        let first = places[0].1;
        assert!(
            places.iter().all(|(_, p)| *p == first),
            "{id} went to different partitions: {places:?}"
        );
    }
    drop(broker);
}

/// A Kafka sink's `compression`: the native writer's batches (zstd, exactly-once) and
/// librdkafka's (lz4) reach the log compressed in that codec, as a raw Fetch of every
/// output partition shows batch by batch, and a consumer reads every record back.
#[test]
fn a_kafka_sink_writes_batches_in_its_compression() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use rivulet_protocol::record_batch::{peek_batch_size, BatchHeader};
    use rivulet_protocol::Compression;

    let dir = temp_dir();
    let (broker, sent) = broker_with_input(dir.path(), "c", 400);
    let bootstrap = broker.bootstrap();

    for (client, guarantee, codec, want) in [
        ("native", "exactly_once", "zstd", Compression::Zstd),
        ("librdkafka", "at_least_once", "lz4", Compression::Lz4),
    ] {
        let name = format!("{codec}-{client}");
        let output = format!("{name}-out");
        block_on(create_topic(&bootstrap, &output, PARTITIONS, &[]));
        let toml = job_toml(
            &name,
            &output,
            guarantee,
            client,
            "available_now",
            &bootstrap,
            dir.path(),
        );
        let plan = parse(&format!("{toml}compression = \"{codec}\"\n"));
        run_to_end(&plan, sent.len());
        read_once(&bootstrap, &output, sent.len(), Duration::from_millis(300));

        // Every data batch of every partition in `want` (control batches, the
        // transaction markers, are never compressed).
        let topic = TopicName(StrBytes::from_string(output.clone()));
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(8 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic)
                .with_partitions(
                    (0..PARTITIONS)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_partition_max_bytes(4 << 20)
                        })
                        .collect(),
                )]);
        let response = block_on(async {
            let mut client = rivulet_protocol::wire::connect(&bootstrap).await.unwrap();
            client.round_trip(12, &request).await.unwrap()
        });
        let mut data_batches = 0;
        for part in &response.responses[0].partitions {
            assert_eq!(part.error_code, 0, "{name}: {part:?}");
            let records = part.records.as_deref().unwrap_or_default();
            let mut at = 0;
            while let Some(size) = records.get(at..).and_then(peek_batch_size) {
                let header = BatchHeader::parse(&records[at..]).expect("a batch header");
                if !header.is_control() {
                    assert_eq!(header.compression().unwrap(), want, "{name}");
                    data_batches += 1;
                }
                at += size;
            }
            assert_eq!(at, records.len(), "{name}: whole batches");
        }
        assert!(data_batches >= PARTITIONS, "{name}: {data_batches} batches");
    }
    drop(broker);
}

/// The exactly-once sink's group holds the input's end offsets, each with the batch id
/// of the last batch as its metadata.
fn check_group_offsets(bootstrap: &str, job: &str) {
    let group = format!("rivulet-stream-{job}-out");
    let c = consumer(bootstrap, &[("group.id", group.as_str())]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition("input", p);
    }
    let committed = c
        .committed_offsets(tpl, TIMEOUT)
        .expect("committed offsets");
    for e in committed.elements() {
        let end = high_watermark(&c, "input", e.partition(), TIMEOUT);
        assert_eq!(
            e.offset(),
            Offset::Offset(end),
            "{group}: input/{}",
            e.partition()
        );
        let batch = e
            .metadata()
            .strip_prefix("rivulet-batch=")
            .and_then(|b| b.parse::<u64>().ok());
        assert!(
            batch.is_some_and(|b| b > 0),
            "{group}: metadata {:?}",
            e.metadata()
        );
    }
}

#[test]
fn the_native_writer_follows_a_leader_failover_on_the_cluster() {
    let dir = temp_dir();
    let mut cluster = streams_support::failover_cluster("writer-failover");
    let bootstrap = cluster.bootstrap();
    let isr = [("min.insync.replicas", "2")];
    for topic in ["input", "alo-out", "eos-out"] {
        block_on(create_topic_rf(&bootstrap, topic, PARTITIONS, 3, &isr));
        wait_for_leaders(&bootstrap, topic, Duration::from_secs(60));
    }
    let p: FutureProducer = producer(&bootstrap, &[("acks", "all")]);
    let first = records("before-", 0, 150);
    produce(&p, "input", &first, TIMEOUT);

    let alo = parse(&job_toml(
        "alo",
        "alo-out",
        "at_least_once",
        "native",
        "100ms",
        &bootstrap,
        dir.path(),
    ));
    let eos = parse(&job_toml(
        "eos",
        "eos-out",
        "exactly_once",
        "native",
        "100ms",
        &bootstrap,
        dir.path(),
    ));
    let (stop_alo, alo) = spawn_job(&alo, &RunOptions::default());
    let (stop_eos, eos) = spawn_job(&eos, &RunOptions::default());
    Read::new(&bootstrap, "alo-out").until(first.len(), Duration::from_secs(60), Duration::ZERO);
    Read::new(&bootstrap, "eos-out").until(first.len(), Duration::from_secs(60), Duration::ZERO);

    let client: BaseConsumer = cluster_client_config(&bootstrap)
        .create()
        .expect("a client");
    let leader = partitions(&client, "eos-out")
        .and_then(|m| m.get(&0).map(|v| v.leader))
        .expect("eos-out/0's leader");
    cluster.kill(leader);
    let second = records("after-", 150, 300);
    produce(&p, "input", &second, Duration::from_secs(60));
    let all = first.len() + second.len();

    let mut read_alo = Read::new(&bootstrap, "alo-out");
    read_alo.until(all, Duration::from_secs(90), Duration::ZERO);
    let mut read_eos = Read::new(&bootstrap, "eos-out");
    read_eos.until(all, Duration::from_secs(90), Duration::from_secs(1));
    for (stop, job) in [(stop_alo, alo), (stop_eos, eos)] {
        stop.send(true).expect("stop the job");
        join_within(job, Duration::from_secs(60)).expect("the job ends cleanly");
    }
    let want: BTreeSet<&str> = first
        .iter()
        .chain(&second)
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(read_alo.distinct(), want, "at-least-once: every record");
    assert_eq!(read_eos.distinct(), want, "exactly-once: every record");
    assert_eq!(read_eos.rows.len(), all, "exactly-once: each record once");
}
