//! Pipelining on one connection (broker/src/connection.rs): a produce
//! waiting for replication (acks=all) does not hold back the next request
//! of its connection, which is read and appended meanwhile; responses still
//! come back in request order.
//!
//! - Raw wire: three acks=all produces sent back to back on one socket
//!   while a follower cannot append (the test holds its log lock, so the
//!   high watermark stays put): all three are appended on the leader before
//!   the first is acknowledged, and once the follower is let go the answers
//!   arrive in correlation-id order with increasing base offsets.
//!   Served one request at a time (`connection.max.pipelined.requests=1`,
//!   also tested), only the first is appended until it is answered.
//! - rdkafka: one idempotent producer (acks=all, max.in.flight 5, small
//!   batches so several requests are in flight) on a 3-node cluster; every
//!   record is read back once, in order, at contiguous offsets.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_protocol::wire;
use rivulet_storage::TopicPartition;
use rivulet_testkit::prelude::*;

const PRODUCE_VERSION: i16 = 9;

/// A follower stays in the ISR while the test holds it back.
const CLUSTER: &[(&str, &str)] = &[
    ("replica.lag.time.max.ms", "30000"),
    ("offsets.topic.replication.factor", "1"),
];

fn produce_request(topic: &str, value: &str) -> ProduceRequest {
    let mut b = RecordBatchBuilder::new(Compression::None);
    b.push(0, None, Some(value.as_bytes()), &[]);
    let records = Bytes::from(b.build().unwrap());
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(15_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

/// `(leader, isr)` of `topic`/0 in `b`'s image once `f` holds.
async fn wait_partition(
    b: &TestBroker,
    topic: &str,
    f: impl Fn(i32, &[i32]) -> bool,
) -> (i32, Vec<i32>) {
    Poll::new(TIMEOUT)
        .retry_async("the partition state to match", || {
            let image = b.node().broker.image();
            let got = match image.partition(topic, 0) {
                Some(p) if f(p.leader, &p.isr) => Ok((p.leader, p.isr.clone())),
                other => Err(other.cloned()),
            };
            std::future::ready(got)
        })
        .await
}

/// `(log end offset, high watermark)` of `tp` on `b`.
fn offsets(b: &TestBroker, tp: &TopicPartition) -> (i64, i64) {
    let p = b.node().broker.replicas.get(tp).expect("partition hosted");
    let log = p.log.lock();
    (log.log_end_offset(), log.high_watermark())
}

// Eight workers: the three in-process nodes share the test's runtime, and
// while the test holds a follower's log, that follower's tasks that lock it
// (its fetcher, its ISR check, ...) each block a worker; with four, a CI run
// saw the whole runtime stall until the holder gave up after 60 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn pipelined_produces_append_while_the_first_waits_and_answer_in_order() {
    back_to_back_produces(&[], true).await;
}

/// `connection.max.pipelined.requests=1`: one request at a time, as Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn one_request_at_a_time_when_pipelining_is_off() {
    back_to_back_produces(&[("connection.max.pipelined.requests", "1")], false).await;
}

/// Three acks=all produces back to back while a follower is held: with
/// `pipelined`, all three are appended before the first is answered;
/// without, only the first. Either way the answers come in order.
async fn back_to_back_produces(extra: &[(&str, &str)], pipelined: bool) {
    let dir = tempfile::tempdir().unwrap();
    let settings: Vec<(&str, &str)> = CLUSTER.iter().chain(extra).copied().collect();
    let mut brokers = start_cluster(dir.path(), 3, &settings).await;
    let topic = "pipelined";
    let tp = TopicPartition::new(topic, 0);
    create_topic_rf(
        &cluster_bootstrap(&brokers),
        topic,
        1,
        3,
        &[("min.insync.replicas", "2")],
    )
    .await;
    let (leader, isr) = wait_partition(&brokers[0], topic, |l, isr| l > 0 && isr.len() == 3).await;
    let li = index_of(&brokers, leader);
    let fi = index_of(&brokers, *isr.iter().find(|id| **id != leader).unwrap());
    let mut s = wire::connect(brokers[li].bootstrap())
        .await
        .unwrap()
        .with_client_id(Some("pipelining-test".to_string()))
        .with_timeout(TIMEOUT);
    // A first record, acknowledged by all three: every follower is fetching.
    let first = s
        .round_trip(PRODUCE_VERSION, &produce_request(topic, "warm-up"))
        .await
        .unwrap();
    assert_eq!(first.responses[0].partition_responses[0].error_code, 0);
    Poll::new(TIMEOUT)
        .wait_async("the followers to have the first record", || {
            brokers.iter().all(|b| offsets(b, &tp).0 == 1)
        })
        .await;

    // Hold one follower's log: it cannot append what it fetches, so it
    // does not fetch further and the high watermark stays at 1 while it is
    // in the ISR. The lock is held on a thread of its own.
    let held = brokers[fi]
        .node()
        .broker
        .replicas
        .get(&tp)
        .unwrap()
        .log
        .clone();
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _guard = held.lock();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(Duration::from_secs(60));
    });
    locked_rx.recv().unwrap();

    // Three requests back to back, no response read in between.
    let mut ids = Vec::new();
    for value in ["one", "two", "three"] {
        let id = s.next_correlation_id();
        let frame = wire::encode_request(
            &produce_request(topic, value),
            PRODUCE_VERSION,
            id,
            Some("pipelining-test"),
        )
        .unwrap();
        s.send(&frame).await.unwrap();
        ids.push(id);
    }
    // All three are appended on the leader while the first still waits for
    // the held follower (the high watermark has not moved past the
    // warm-up record, so no acks=all answer can have been given).
    if pipelined {
        let appended = Poll::new(Duration::from_secs(10))
            .until_async(|| offsets(&brokers[li], &tp).0 == 4)
            .await;
        let (leo, hw) = offsets(&brokers[li], &tp);
        assert!(
            appended,
            "the later requests were not appended while the first waited: log end {leo}, \
             high watermark {hw}"
        );
    } else {
        let appended_first = Poll::new(Duration::from_secs(10))
            .until_async(|| offsets(&brokers[li], &tp).0 == 2)
            .await;
        assert!(appended_first, "the first request was not appended");
        // The next request is not even read while the first waits.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            offsets(&brokers[li], &tp).0,
            2,
            "a later request was appended"
        );
    }
    assert_eq!(
        offsets(&brokers[li], &tp).1,
        1,
        "the high watermark moved while the follower was held"
    );

    release_tx
        .send(())
        .expect("the holder gave up after 60 s: the test's runtime stalled while the log was held");
    holder.join().unwrap();
    let mut bases = Vec::new();
    for id in &ids {
        let frame = s.read_response().await.unwrap();
        // Decoding checks the correlation id: responses in request order.
        let resp = wire::decode_response::<ProduceRequest>(frame, PRODUCE_VERSION, *id)
            .unwrap_or_else(|e| panic!("response for correlation id {id}: {e}"));
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "correlation id {id}");
        bases.push(p.base_offset);
    }
    assert_eq!(bases, [1, 2, 3], "base offsets in request order");

    drop(s);
    for b in &mut brokers {
        b.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotent_producer_with_five_in_flight_stores_every_record_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut brokers = start_cluster(dir.path(), 3, CLUSTER).await;
    let bootstrap = cluster_bootstrap(&brokers);
    let topic = "pipelined-idempotent";
    let partitions = 3;
    create_topic_rf(
        &bootstrap,
        topic,
        partitions,
        3,
        &[("min.insync.replicas", "2")],
    )
    .await;
    for b in &brokers {
        Poll::new(TIMEOUT)
            .wait_async("every partition to have three in-sync replicas", || {
                (0..partitions).all(|i| {
                    b.node()
                        .broker
                        .image()
                        .partition(topic, i)
                        .is_some_and(|p| p.leader > 0 && p.isr.len() == 3)
                })
            })
            .await;
    }
    // Small batches and no linger: many requests, up to five in flight on
    // each connection.
    let p = producer(
        &bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
            ("batch.num.messages", "20"),
            ("linger.ms", "0"),
            ("message.timeout.ms", "60000"),
        ],
    );
    let n = 6_000;
    let mut deliveries = Vec::with_capacity(n);
    for i in 0..n {
        let partition = (i % partitions as usize) as i32;
        let value = format!("record-{i:05}");
        let mut rec: FutureRecord<'_, (), str> =
            FutureRecord::to(topic).partition(partition).payload(&value);
        let delivery = loop {
            match p.send_result(rec) {
                Ok(d) => break d,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    rec = back;
                }
                Err((e, _)) => panic!("enqueue record {i}: {e}"),
            }
        };
        deliveries.push((partition, value, delivery));
    }
    let mut sent: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for (partition, value, delivery) in deliveries {
        let d = delivery
            .await
            .expect("delivery future")
            .unwrap_or_else(|(e, _)| panic!("{value}: {e}"));
        assert_eq!(d.partition, partition);
        sent.entry(partition).or_default().push((d.offset, value));
    }

    let c = consumer(&bootstrap, &[]);
    for partition in 0..partitions {
        let expected = &sent[&partition];
        // Acknowledged in send order at increasing offsets.
        let acked: Vec<i64> = expected.iter().map(|(o, _)| *o).collect();
        let contiguous: Vec<i64> = (0..expected.len() as i64).collect();
        assert_eq!(
            acked, contiguous,
            "acknowledged offsets of partition {partition}"
        );
        let got = consume_n(&c, topic, partition, Offset::Beginning, expected.len());
        let read: Vec<(i64, String)> = got
            .iter()
            .map(|g| {
                (
                    g.offset,
                    String::from_utf8(g.value.clone().unwrap()).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            &read, expected,
            "partition {partition}: every record once, in order"
        );
        assert!(
            drain(&c, Duration::from_millis(300)).is_empty(),
            "partition {partition}: records beyond those sent"
        );
    }
    let _ = c.unassign();

    drop(p);
    for b in &mut brokers {
        b.stop().await;
    }
}
