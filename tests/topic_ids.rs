//! KIP-516 (issue 15): Produce v13 and Fetch v13–17 name topics by id.
//! Raw over the wire (librdkafka does not send Produce v13): what is
//! produced by id is fetched back by id at every Fetch version, an id no
//! topic has is answered UNKNOWN_TOPIC_ID per partition and appends
//! nothing; and through librdkafka, whose consumer switches to Fetch v16 by
//! topic id once the broker advertises it (seen in its protocol debug log).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ProduceRequest};
use kafka_protocol::ResponseError as E;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::Offset;
use rivulet_protocol::record_batch::{BatchIter, Compression};
use rivulet_protocol::records::{decode_batch, RecordBatchBuilder};
use rivulet_testkit::prelude::*;
use uuid::Uuid;

fn batch(values: &[&str]) -> Bytes {
    let mut b = RecordBatchBuilder::new(Compression::Lz4);
    for v in values {
        b.push(1_000, None, Some(v.as_bytes()), &[]);
    }
    Bytes::from(b.build().unwrap())
}

fn produce_by_id(id: Uuid, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_topic_id(id)
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

fn fetch_by_id(ids: &[Uuid]) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(
            ids.iter()
                .map(|id| {
                    FetchTopic::default()
                        .with_topic_id(*id)
                        .with_partitions(vec![FetchPartition::default()
                            .with_partition(0)
                            .with_partition_max_bytes(1 << 20)])
                })
                .collect(),
        )
}

/// `(offset, value)` of every record in a fetched partition's bytes.
fn values(records: &Option<Bytes>) -> Vec<(i64, String)> {
    let bytes = records.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for batch in BatchIter::new(bytes) {
        let (range, _) = batch.expect("a whole batch");
        let batch = decode_batch(&bytes[range], 1 << 20).expect("decodes");
        for r in &batch.records {
            let v = r.value.as_deref().unwrap_or_default();
            out.push((batch.offset_of(r), String::from_utf8_lossy(v).into_owned()));
        }
    }
    out
}

fn only_partition(
    resp: &FetchResponse,
    id: Uuid,
) -> &kafka_protocol::messages::fetch_response::PartitionData {
    let t = resp
        .responses
        .iter()
        .find(|t| t.topic_id == id)
        .unwrap_or_else(|| panic!("topic {id} in {resp:?}"));
    &t.partitions[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_v13_and_fetch_v13_to_v17_by_topic_id() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    let range = rivulet_broker::api::supported(ApiKey::Produce).unwrap();
    assert_eq!(range.max, 13, "Produce v13 advertised");
    let range = rivulet_broker::api::supported(ApiKey::Fetch).unwrap();
    assert_eq!(range.max, 17, "Fetch v17 advertised");

    create_topic(&bs, "by-id", 1, &[]).await;
    let id = topic_id(&bs, "by-id").await;
    assert!(!id.is_nil());

    // Two Produce v13 requests by id: offsets 0–1 then 2.
    let resp = raw_request(&bs, 13, &produce_by_id(id, batch(&["a", "b"]))).await;
    assert_eq!(resp.responses[0].topic_id, id, "the response names the id");
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0), "{p:?}");
    let resp = raw_request(&bs, 13, &produce_by_id(id, batch(&["c"]))).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 2), "{p:?}");
    let sent = vec![
        (0, "a".to_string()),
        (1, "b".to_string()),
        (2, "c".to_string()),
    ];

    // Every Fetch version by id reads back exactly what was sent.
    for v in 13..=17 {
        let resp = raw_request(&bs, v, &fetch_by_id(&[id])).await;
        assert_eq!(resp.error_code, 0, "Fetch v{v}");
        let p = only_partition(&resp, id);
        assert_eq!(p.error_code, 0, "Fetch v{v}: {p:?}");
        assert_eq!(p.high_watermark, 3, "Fetch v{v}");
        assert_eq!(values(&p.records), sent, "Fetch v{v}");
    }
    // And by name at v12, the same records.
    let by_name = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(kafka_protocol::messages::TopicName("by-id".into()))
            .with_partitions(vec![
                FetchPartition::default().with_partition_max_bytes(1 << 20)
            ])]);
    let resp = raw_request(&bs, 12, &by_name).await;
    assert_eq!(values(&resp.responses[0].partitions[0].records), sent);

    // An id no topic has: UNKNOWN_TOPIC_ID, for Produce (nothing appended)
    // and for every Fetch version, next to a known topic that still reads.
    let unknown = Uuid::new_v4();
    let resp = raw_request(&bs, 13, &produce_by_id(unknown, batch(&["lost"]))).await;
    assert_eq!(resp.responses[0].topic_id, unknown);
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, E::UnknownTopicId.code(), "{p:?}");
    assert_eq!(p.base_offset, -1);
    // The nil id is no topic's either (as in Kafka).
    let resp = raw_request(&bs, 13, &produce_by_id(Uuid::nil(), batch(&["lost"]))).await;
    let code = resp.responses[0].partition_responses[0].error_code;
    assert_eq!(code, E::UnknownTopicId.code());
    for v in 13..=17 {
        let resp = raw_request(&bs, v, &fetch_by_id(&[unknown, id])).await;
        let p = only_partition(&resp, unknown);
        assert_eq!(p.error_code, E::UnknownTopicId.code(), "Fetch v{v}: {p:?}");
        assert!(values(&p.records).is_empty());
        let p = only_partition(&resp, id);
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert_eq!(
            values(&p.records),
            sent,
            "Fetch v{v}: nothing more appended"
        );
    }
}

/// Collects librdkafka's log lines (its `debug` output).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<String>>>);

impl ClientContext for Logs {
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, line: &str) {
        self.0.lock().unwrap().push(format!("{fac} {line}"));
    }
}

impl ConsumerContext for Logs {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_consumes_with_fetch_v16_by_topic_id() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "rd-ids", 2, &[]).await;
    let p = producer(&bs, &[("acks", "all")]);
    let owned: Vec<(Vec<u8>, Vec<u8>)> = (0..40)
        .map(|i| (format!("k{i}").into_bytes(), format!("v{i}").into_bytes()))
        .collect();
    let kvs: Vec<KeyValue<'_>> = owned
        .iter()
        .map(|(k, v)| (Some(&k[..]), Some(&v[..])))
        .collect();
    for partition in 0..2 {
        produce_all(&p, "rd-ids", partition, &kvs).await;
    }

    // A consumer group member reading both partitions, logging protocol
    // requests.
    let logs = Logs::default();
    let c: BaseConsumer<Logs> = client_config(&bs)
        .set("group.id", "ids-group")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("debug", "protocol")
        .set_log_level(RDKafkaLogLevel::Debug)
        .create_with_context(logs.clone())
        .expect("consumer");
    c.subscribe(&["rd-ids"]).unwrap();
    let mut got_all: Vec<(i32, i64, Vec<u8>)> = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while got_all.len() < 80 && std::time::Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.expect("no consumer error");
            let g = got(&m);
            got_all.push((m.partition(), g.offset, g.value.unwrap_or_default()));
        }
    }
    got_all.sort();
    let expected: Vec<(i32, i64, Vec<u8>)> = (0..2)
        .flat_map(|part| {
            owned
                .iter()
                .enumerate()
                .map(move |(i, (_, v))| (part, i as i64, v.clone()))
        })
        .collect();
    assert_eq!(
        got_all, expected,
        "every record once, in order per partition"
    );
    c.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .expect("commit");
    let committed = c
        .committed(Duration::from_secs(10))
        .expect("committed offsets");
    for e in committed.elements() {
        assert_eq!(e.offset(), Offset::Offset(40), "{e:?}");
    }

    let lines = logs.0.lock().unwrap().clone();
    let fetches: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("Sent FetchRequest"))
        .collect();
    let sample: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("Fetch"))
        .take(5)
        .collect();
    assert!(!fetches.is_empty(), "no FetchRequest logged: {sample:?}");
    assert!(
        fetches.iter().all(|l| l.contains("(v16")),
        "librdkafka fetches at v16 (topic ids): {:?}",
        &fetches[..fetches.len().min(3)]
    );
}
