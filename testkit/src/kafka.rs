//! Real Kafka clients (rdkafka, i.e. librdkafka) configured the way the
//! tests use them, and what tests do with them: create topics and wait for
//! their leaders, produce records and wait for every ack, read records back,
//! look at partitions through Metadata.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::poll::Poll;
use crate::TIMEOUT;

pub type Admin = AdminClient<DefaultClientContext>;

/// What every test client sets: the bootstrap list, IPv4 (`localhost`
/// would also resolve to ::1), and a 10 s request timeout so a lost
/// request fails the test rather than hanging it.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000");
    c
}

/// For a cluster whose nodes are killed and restarted: no topic is created
/// by a Metadata request, new leaders are seen within a second, and a
/// restarted node is reconnected to within half a second. librdkafka's
/// default request timeout (60 s).
pub fn cluster_client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("allow.auto.create.topics", "false")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("reconnect.backoff.max.ms", "500");
    c
}

/// For benchmarks: a 30 s request timeout, since a saturated broker on a
/// shared machine can take long to answer without being broken.
pub fn bench_client_config(bootstrap: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("socket.timeout.ms", "30000");
    c
}

/// A producer that gives up on a record after 15 s and batches for 5 ms;
/// `extra` settings last.
pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = client_config(bootstrap);
    c.set("message.timeout.ms", "15000").set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("create a producer")
}

/// A consumer for manual assignment (nothing committed, no end-of-partition
/// events, 100 ms fetch waits); `extra` settings last.
pub fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = client_config(bootstrap);
    // librdkafka wants a group id even for manual assignment; nothing is
    // committed, so no coordinator is needed.
    c.set("group.id", "rivulet-test-assign")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("create a consumer")
}

pub fn admin(bootstrap: &str) -> Admin {
    client_config(bootstrap)
        .create()
        .expect("create an admin client")
}

/// Run `f` to completion on a new current-thread runtime: the async
/// helpers from sync tests.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// Create a topic through `admin` (CreateTopics, 20 s operation timeout):
/// the error code of the request or of the topic if it failed.
pub async fn try_create_topic(
    admin: &Admin,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(&str, &str)],
) -> Result<(), (RDKafkaErrorCode, String)> {
    let mut t = NewTopic::new(
        name,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let res = admin.create_topics(&[t], &opts).await.map_err(|e| {
        let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        (code, e.to_string())
    })?;
    for r in res {
        r.map_err(|(topic, code)| (code, format!("create {topic}: {code}")))?;
    }
    Ok(())
}

/// Create a topic of replication factor 1; panics if it fails.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    create_topic_rf(bootstrap, name, partitions, 1, configs).await
}

/// Create a topic; panics if it fails.
pub async fn create_topic_rf(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(&str, &str)],
) {
    let admin = admin(bootstrap);
    if let Err((code, why)) =
        try_create_topic(&admin, name, partitions, replication_factor, configs).await
    {
        panic!("cannot create topic {name}: {code:?}: {why}");
    }
}

/// A record to produce: optional key, optional value.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Produce `(key, value)` pairs to one partition and wait for every ack;
/// returns the offsets.
pub async fn produce_all(
    p: &FutureProducer,
    topic: &str,
    partition: i32,
    records: &[KeyValue<'_>],
) -> Vec<i64> {
    let mut offsets = Vec::new();
    for (k, v) in records {
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).partition(partition);
        if let Some(k) = k {
            rec = rec.key(*k);
        }
        if let Some(v) = v {
            rec = rec.payload(*v);
        }
        let delivery = p
            .send(rec, TIMEOUT)
            .await
            .map_err(|(e, _)| e)
            .unwrap_or_else(|e| panic!("produce to {topic}/{partition}: {e}"));
        offsets.push(delivery.offset);
    }
    offsets
}

/// A consumed record: offset, key, value, timestamp, headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: Option<i64>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

pub fn got(m: &BorrowedMessage<'_>) -> Got {
    use rdkafka::message::Headers;
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                .collect()
        })
        .unwrap_or_default();
    Got {
        offset: m.offset(),
        key: m.key().map(|k| k.to_vec()),
        value: m.payload().map(|v| v.to_vec()),
        timestamp: m.timestamp().to_millis(),
        headers,
    }
}

/// Assign `topic/partition` at `offset` and read `n` records (or fail after
/// [`TIMEOUT`]).
pub fn consume_n(
    c: &BaseConsumer,
    topic: &str,
    partition: i32,
    offset: Offset,
    n: usize,
) -> Vec<Got> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, offset)
        .expect("a partition list");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    // The 100 ms poll is the wait: no sleep between checks.
    Poll::new(TIMEOUT).every(Duration::ZERO).retry(
        format_args!("{n} records from {topic}/{partition}"),
        || {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => out.push(got(&m)),
                Some(Err(e)) => panic!("consumer error: {e}"),
                None => {}
            }
            if out.len() >= n {
                Ok(())
            } else {
                Err(format!("consumed {} of {n}", out.len()))
            }
        },
    );
    out
}

/// Poll for `wait` and return whatever arrives (to check nothing more does).
pub fn drain(c: &BaseConsumer, wait: Duration) -> Vec<Got> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
            out.push(got(&m));
        }
    }
    out
}

/// One partition as a Metadata response shows it (replicas and ISR sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

impl PartitionView {
    /// Whether the partition has a leader (rdkafka shows -1 for none).
    pub fn has_leader(&self) -> bool {
        self.leader >= 0
    }
}

/// `topic`'s partitions per a Metadata request through `client`
/// (partition → view); `None` on an error, or if the topic is absent.
pub fn partitions<C: Consumer>(client: &C, topic: &str) -> Option<BTreeMap<i32, PartitionView>> {
    let md = client
        .fetch_metadata(Some(topic), Duration::from_secs(3))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() {
        return None;
    }
    Some(
        t.partitions()
            .iter()
            .map(|p| {
                let mut isr = p.isr().to_vec();
                isr.sort_unstable();
                let mut replicas = p.replicas().to_vec();
                replicas.sort_unstable();
                (
                    p.id(),
                    PartitionView {
                        leader: p.leader(),
                        replicas,
                        isr,
                    },
                )
            })
            .collect(),
    )
}

/// Poll Metadata as `poll` says until `f` holds for `topic`'s partitions;
/// returns them. Panics with `what` and the last view when time is up.
pub fn wait_for_partitions<C: Consumer>(
    client: &C,
    topic: &str,
    what: &str,
    poll: Poll,
    f: impl Fn(&BTreeMap<i32, PartitionView>) -> bool,
) -> BTreeMap<i32, PartitionView> {
    poll.retry(format_args!("{topic}: {what}"), || {
        match partitions(client, topic) {
            Some(ps) if f(&ps) => Ok(ps),
            seen => Err(seen),
        }
    })
}

/// Wait until every partition of `topic` has a leader (and the topic has
/// any partitions), as a new client sees it.
pub fn wait_for_leaders(bootstrap: &str, topic: &str, timeout: Duration) {
    let client: BaseConsumer = client_config(bootstrap).create().expect("a client");
    wait_for_partitions(
        &client,
        topic,
        "a leader for every partition",
        Poll::new(timeout).every(Duration::from_millis(50)),
        |ps| !ps.is_empty() && ps.values().all(PartitionView::has_leader),
    );
}

/// Wait until Metadata through `bootstrap` lists at least `n` brokers
/// (live, registered and unfenced ones only).
pub fn wait_for_brokers(bootstrap: &str, n: usize, timeout: Duration) {
    let client: BaseConsumer = client_config(bootstrap).create().expect("a client");
    Poll::new(timeout).every(Duration::from_millis(50)).retry(
        format_args!("{n} brokers in Metadata from {bootstrap}"),
        || match client.fetch_metadata(None, Duration::from_secs(2)) {
            Ok(md) if md.brokers().len() >= n => Ok(()),
            Ok(md) => Err(format!("{} brokers", md.brokers().len())),
            Err(e) => Err(e.to_string()),
        },
    );
}

/// The high watermark of `topic`/`partition`, retried (every 200 ms) while
/// the client's metadata still names a dead leader.
pub fn high_watermark<C: Consumer>(
    client: &C,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> i64 {
    Poll::new(timeout).every(Duration::from_millis(200)).retry(
        format_args!("the high watermark of {topic}/{partition}"),
        || {
            client
                .fetch_watermarks(topic, partition, Duration::from_secs(5))
                .map(|(_, high)| high)
        },
    )
}
