//! What Kafka's LogValidator refuses, refused the same way: records
//! without a key on a compacted topic, timestamps outside
//! `message.timestamp.before.max.ms` / `after.max.ms` of the broker's
//! clock, and records that do not parse although their batch's CRC is
//! right. Seen through librdkafka (the error a producer gets) and over a
//! raw socket (Produce v9's `record_errors`); in every case nothing of the
//! refused batch is stored and the broker serves the next produce. And
//! what LogValidator changes: a topic's `compression.type` decides the
//! codec its batches are stored in (read from the segment files).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;
use rivulet_protocol::record_batch::{self, BatchIter, Compression, HEADER_SIZE};
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_protocol::wire::{self, Client};
use rivulet_testkit::prelude::*;
use tokio::net::TcpStream;

const VERSION: i16 = 9;
const INVALID_RECORD: i16 = 87;
const INVALID_TIMESTAMP: i16 = 32;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The error librdkafka reports for one record sent to partition 0.
async fn send_one(
    p: &rdkafka::producer::FutureProducer,
    topic: &str,
    key: Option<&str>,
    timestamp: i64,
) -> Result<i64, RDKafkaErrorCode> {
    let mut rec: FutureRecord<'_, str, str> = FutureRecord::to(topic)
        .partition(0)
        .payload("v")
        .timestamp(timestamp);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    match p.send(rec, TIMEOUT).await {
        Ok(delivery) => Ok(delivery.offset),
        Err((KafkaError::MessageProduction(code), _)) => Err(code),
        Err((e, _)) => panic!("unexpected error {e}"),
    }
}

/// Keys of every record in partition 0 (`None` for a keyless one).
fn stored_keys(bootstrap: &str, topic: &str, expected: usize) -> Vec<Option<String>> {
    let c = consumer(bootstrap, &[]);
    let got = consume_n(&c, topic, 0, Offset::Beginning, expected);
    assert!(
        drain(&c, Duration::from_millis(500)).is_empty(),
        "more records stored than accepted"
    );
    got.iter()
        .map(|g| {
            g.key
                .as_ref()
                .map(|k| String::from_utf8_lossy(k).into_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_refuses_records_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "compacted", 1, &[("cleanup.policy", "compact")]).await;
    create_topic(&bs, "plain", 1, &[]).await;
    let p = producer(&bs, &[("linger.ms", "0")]);
    let now = now_ms();
    assert_eq!(send_one(&p, "compacted", Some("a"), now).await, Ok(0));
    assert_eq!(
        send_one(&p, "compacted", None, now).await,
        Err(RDKafkaErrorCode::InvalidRecord)
    );
    assert_eq!(send_one(&p, "compacted", Some("b"), now).await, Ok(1));
    // Keyless records are fine where nothing is compacted.
    assert_eq!(send_one(&p, "plain", None, now).await, Ok(0));
    assert_eq!(
        stored_keys(&bs, "compacted", 2),
        [Some("a".to_string()), Some("b".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_too_far_from_the_broker_clock_are_refused_until_the_topic_allows_them() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(
        &bs,
        "times",
        1,
        &[("message.timestamp.before.max.ms", "86400000")],
    )
    .await;
    let p = producer(&bs, &[("linger.ms", "0")]);
    let now = now_ms();
    let two_hours = 2 * 3_600_000;
    // Kafka 4's default allows one hour into the future.
    assert_eq!(
        send_one(&p, "times", Some("future"), now + two_hours).await,
        Err(RDKafkaErrorCode::InvalidTimestamp)
    );
    // The topic allows one day into the past.
    assert_eq!(
        send_one(&p, "times", Some("old"), now - 2 * 86_400_000).await,
        Err(RDKafkaErrorCode::InvalidTimestamp)
    );
    assert_eq!(send_one(&p, "times", Some("now"), now).await, Ok(0));
    assert_eq!(
        send_one(&p, "times", Some("hour-ago"), now - 3_600_000).await,
        Ok(1)
    );
    // Three hours into the future allowed: the same record goes in.
    let admin = admin(&bs);
    let alter = AlterConfig::new(ResourceSpecifier::Topic("times"))
        .set("message.timestamp.after.max.ms", "10800000");
    let results = admin
        .alter_configs(&[alter], &AdminOptions::new())
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        match send_one(&p, "times", Some("future"), now + two_hours).await {
            Ok(offset) => {
                assert_eq!(offset, 2);
                break;
            }
            Err(RDKafkaErrorCode::InvalidTimestamp) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("after raising message.timestamp.after.max.ms: {e:?}"),
        }
    }
    let c = consumer(&bs, &[]);
    let got = consume_n(&c, "times", 0, Offset::Beginning, 3);
    assert_eq!(got[2].timestamp, Some(now + two_hours));
}

/// A connection for raw Produce requests.
async fn connect(bootstrap: &str) -> Client<TcpStream> {
    wire::connect(bootstrap)
        .await
        .unwrap()
        .with_client_id(Some("validation-test".to_string()))
        .with_timeout(TIMEOUT)
}

async fn produce_raw(
    s: &mut Client<TcpStream>,
    topic: &str,
    records: Vec<u8>,
) -> PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    let mut resp = s.round_trip(VERSION, &req).await.unwrap();
    resp.responses.remove(0).partition_responses.remove(0)
}

fn keyed_batch(codec: Compression, keys: &[Option<&str>]) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(codec);
    for key in keys {
        b.push(now_ms(), key.map(str::as_bytes), Some(b"v"), &[]);
    }
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_records_are_named_in_record_errors_and_garbage_records_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "named", 1, &[("cleanup.policy", "compact")]).await;
    let mut s = connect(&bs).await;
    // Records 1 and 3 of a zstd batch have no key.
    let batch = keyed_batch(
        Compression::Zstd,
        &[Some("a"), None, Some("b"), None, Some("c")],
    );
    let r = produce_raw(&mut s, "named", batch).await;
    assert_eq!(r.error_code, INVALID_RECORD);
    let named: Vec<i32> = r.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(named, [1, 3]);
    let why = r.record_errors[0]
        .batch_index_error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(why.contains("without a key"), "{why}");
    assert!(r.error_message.is_some());

    // A CRC-valid batch whose first record's length runs past the batch.
    let mut garbage = keyed_batch(Compression::None, &[Some("x"), Some("y")]);
    garbage[HEADER_SIZE] = 0x7e;
    record_batch::update_crc(&mut garbage);
    let r = produce_raw(&mut s, "named", garbage).await;
    assert_eq!(r.error_code, INVALID_RECORD, "{:?}", r.error_message);
    // A record count that does not match the records.
    let mut miscounted = keyed_batch(Compression::Lz4, &[Some("x"), Some("y")]);
    miscounted[57..61].copy_from_slice(&3i32.to_be_bytes());
    miscounted[23..27].copy_from_slice(&2i32.to_be_bytes());
    record_batch::update_crc(&mut miscounted);
    let r = produce_raw(&mut s, "named", miscounted).await;
    assert_eq!(r.error_code, INVALID_RECORD, "{:?}", r.error_message);

    // Record 1 two hours ahead of the broker's clock.
    let mut b = RecordBatchBuilder::new(Compression::None);
    for (key, ts) in [("a", now_ms()), ("b", now_ms() + 7_200_000)] {
        b.push(ts, Some(key.as_bytes()), Some(b"v"), &[]);
    }
    let r = produce_raw(&mut s, "named", b.build().unwrap()).await;
    assert_eq!(r.error_code, INVALID_TIMESTAMP, "{:?}", r.error_message);
    let named: Vec<i32> = r.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(named, [1]);

    // A good batch on the same connection goes in at offset 0: nothing of
    // the refused ones was stored.
    let r = produce_raw(
        &mut s,
        "named",
        keyed_batch(Compression::None, &[Some("ok")]),
    )
    .await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    assert_eq!(stored_keys(&bs, "named", 1), [Some("ok".to_string())]);
}

/// The codec of every batch in the segment files of `topic`'s partition 0.
fn stored_codecs(data_dir: &std::path::Path, topic: &str) -> Vec<Compression> {
    let part = data_dir.join(format!("{topic}-0"));
    let mut codecs = Vec::new();
    for entry in std::fs::read_dir(&part).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let bytes = std::fs::read(&path).unwrap();
            for batch in BatchIter::new(&bytes) {
                codecs.push(batch.unwrap().1.compression().unwrap());
            }
        }
    }
    codecs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_compression_type_decides_the_codec_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "to-zstd", 1, &[("compression.type", "zstd")]).await;
    create_topic(&bs, "to-plain", 1, &[("compression.type", "uncompressed")]).await;
    create_topic(&bs, "as-sent", 1, &[]).await;
    let values: Vec<String> = (0..50)
        .map(|i| format!("value-{i}-{}", "y".repeat(100)))
        .collect();
    for (topic, codec) in [
        ("to-zstd", "none"),
        ("to-plain", "lz4"),
        ("as-sent", "gzip"),
    ] {
        let p = producer(&bs, &[("compression.type", codec), ("linger.ms", "20")]);
        let kv: Vec<KeyValue<'_>> = values
            .iter()
            .map(|v| (Some(&b"k"[..]), Some(v.as_bytes())))
            .collect();
        produce_all(&p, topic, 0, &kv).await;
        let c = consumer(&bs, &[]);
        let got = consume_n(&c, topic, 0, Offset::Beginning, values.len());
        let read: Vec<String> = got
            .iter()
            .map(|g| String::from_utf8(g.value.clone().unwrap()).unwrap())
            .collect();
        assert_eq!(read, values, "{topic}");
    }
    let only = |topic: &str, codec: Compression| {
        let codecs = stored_codecs(dir.path(), topic);
        assert!(!codecs.is_empty());
        assert!(codecs.iter().all(|c| *c == codec), "{topic}: {codecs:?}");
    };
    only("to-zstd", Compression::Zstd);
    only("to-plain", Compression::None);
    only("as-sent", Compression::Gzip);
}

/// A topic's `compression.gzip.level` (KIP-390) sets how hard the batches
/// it rebuilds in gzip are compressed: the same uncompressed batch is
/// stored smaller at level 9 than at level 1, and both read back the same
/// through librdkafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_compression_level_compresses_its_rebuilt_batches() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    for (topic, level) in [("gz-1", "1"), ("gz-9", "9")] {
        create_topic(
            &bs,
            topic,
            1,
            &[
                ("compression.type", "gzip"),
                ("compression.gzip.level", level),
            ],
        )
        .await;
    }
    let values: Vec<String> = (0..300)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"user\":\"u{}\",\"n\":{}}}",
                i % 37,
                i * 7 % 211
            )
        })
        .collect();
    let mut b = RecordBatchBuilder::new(Compression::None);
    for v in &values {
        b.push(now_ms(), Some(b"k"), Some(v.as_bytes()), &[]);
    }
    let batch = b.build().unwrap();
    let mut s = connect(&bs).await;
    let mut sizes = Vec::new();
    for topic in ["gz-1", "gz-9"] {
        let r = produce_raw(&mut s, topic, batch.clone()).await;
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        assert_eq!(stored_codecs(dir.path(), topic), [Compression::Gzip]);
        let c = consumer(&bs, &[]);
        let got = consume_n(&c, topic, 0, Offset::Beginning, values.len());
        let read: Vec<String> = got
            .iter()
            .map(|g| String::from_utf8(g.value.clone().unwrap()).unwrap())
            .collect();
        assert_eq!(read, values, "{topic}");
        let log = std::fs::read_dir(dir.path().join(format!("{topic}-0")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "log"))
            .unwrap();
        sizes.push(std::fs::metadata(log).unwrap().len());
    }
    assert!(
        sizes[1] < sizes[0],
        "level 9 stored {} bytes, level 1 {}",
        sizes[1],
        sizes[0]
    );
}
