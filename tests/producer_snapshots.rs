//! Producer state across a broker restart, loaded from the partition's
//! `<offset>.snapshot` (issue 11): after a clean restart the broker replays
//! no batch of the log, yet still answers a retried batch of a librdkafka
//! idempotent producer with its original offset, refuses a sequence gap,
//! reports the same producers (DescribeProducers), and fences a marker from
//! a coordinator older than the one that ended a librdkafka transaction.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::ProducerState;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, ProduceRequest, TopicName, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_storage::TopicPartition;
use rivulet_testkit::prelude::*;

const TOPIC: &str = "snap";

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

/// One batch of `values` from an idempotent producer, timestamped now.
fn batch(producer_id: i64, epoch: i16, seq: i32, values: &[&str]) -> Bytes {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut b = RecordBatchBuilder::new(Compression::None).producer(producer_id, epoch, seq);
    for v in values {
        b.push(now, None, Some(v.as_bytes()), &[]);
    }
    Bytes::from(b.build().unwrap())
}

/// A raw Produce (acks=all) to partition 0: `(error_code, base_offset)`.
async fn produce(bootstrap: &str, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let resp = raw_request(bootstrap, 9, &req).await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// DescribeProducers of partition 0, by producer id, once the node leads
/// it (after a restart it takes the leadership again first).
async fn producers(bootstrap: &str) -> Vec<ProducerState> {
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(topic_name())
        .with_partition_indexes(vec![0])]);
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let resp = raw_request(bootstrap, 0, &req).await;
        let part = &resp.topics[0].partitions[0];
        if part.error_code == 0 {
            let mut out = part.active_producers.clone();
            out.sort_by_key(|p| p.producer_id);
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "DescribeProducers: error {}",
            part.error_code
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A coordinator's ABORT marker for the producer (WriteTxnMarkers v1):
/// the partition's error code.
async fn write_marker(bootstrap: &str, p: &ProducerState, coordinator_epoch: i32) -> i16 {
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(p.producer_id)
        .with_producer_epoch(p.producer_epoch as i16)
        .with_transaction_result(false)
        .with_coordinator_epoch(coordinator_epoch)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(topic_name())
            .with_partition_indexes(vec![0])])]);
    let resp = raw_request(bootstrap, 1, &req).await;
    resp.markers[0].topics[0].partitions[0].error_code
}

fn txn_producer(bootstrap: &str, id: &str) -> BaseProducer {
    let mut c = client_config(bootstrap);
    c.set("transactional.id", id)
        .set("message.timeout.ms", "15000");
    let p: BaseProducer = c.create().expect("a transactional producer");
    p.init_transactions(TIMEOUT).expect("init_transactions");
    p
}

#[test]
fn duplicates_gaps_and_stale_markers_are_still_caught_after_a_restart_from_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    // Its own runtime: librdkafka's transactional calls block.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let broker = rt.block_on(TestBroker::start(dir.path(), &[]));
    let bs = broker.bootstrap();
    // Small segments: the log rolls (and snapshots) many times.
    rt.block_on(create_topic(&bs, TOPIC, 1, &[("segment.bytes", "2048")]));

    // An idempotent producer, one record per batch (each send awaited).
    let idem = producer(&bs, &[("enable.idempotence", "true")]);
    let values: Vec<String> = (0..120).map(|i| format!("value-{i:04}")).collect();
    let kv: Vec<KeyValue<'_>> = values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
    let offsets = rt.block_on(produce_all(&idem, TOPIC, 0, &kv));
    assert_eq!(offsets, (0..120).collect::<Vec<i64>>());
    // A transaction committed by its coordinator: a COMMIT marker carrying
    // the coordinator's epoch.
    let txn = txn_producer(&bs, "tx-snap");
    txn.begin_transaction().unwrap();
    txn.send(
        BaseRecord::<(), str>::to(TOPIC)
            .partition(0)
            .payload("in-txn"),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    txn.commit_transaction(TIMEOUT).unwrap();
    drop(idem);
    drop(txn);

    let before = rt.block_on(producers(&bs));
    assert_eq!(before.len(), 2, "{before:?}");
    let (idem_state, txn_state) = match before[0].coordinator_epoch {
        -1 => (before[0].clone(), before[1].clone()),
        _ => (before[1].clone(), before[0].clone()),
    };
    assert_eq!(idem_state.last_sequence, 119);
    assert!(txn_state.coordinator_epoch >= 0, "{txn_state:?}");
    let tp = TopicPartition::new(TOPIC, 0);
    let segments = broker
        .node()
        .broker
        .replicas
        .get(&tp)
        .unwrap()
        .log
        .lock()
        .num_segments();
    assert!(segments > 3, "{segments} segments");

    let broker = rt.block_on(broker.restart());
    let log = broker.node().broker.replicas.get(&tp).unwrap().log.clone();
    let (load, end) = {
        let log = log.lock();
        (log.last_producer_state_load(), log.log_end_offset())
    };
    assert_eq!(
        end, 122,
        "120 records, one transactional record, its marker"
    );
    // The clean shutdown's snapshot at the log end: nothing replayed.
    assert_eq!(load.snapshot_offset, Some(end));
    assert_eq!(load.batches_scanned, 0);
    let on_disk: Vec<String> = std::fs::read_dir(dir.path().join("snap-0"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".snapshot"))
        .collect();
    assert!(
        on_disk.contains(&format!("{end:020}.snapshot")),
        "{on_disk:?}"
    );

    // The same producers, coordinator epoch included (it used to be
    // forgotten on restart).
    assert_eq!(rt.block_on(producers(&bs)), before);

    let (pid, epoch) = (idem_state.producer_id.0, idem_state.producer_epoch as i16);
    // A retry of the last batch: its original offset, nothing written.
    let retry = batch(pid, epoch, 119, &["value-0119"]);
    assert_eq!(rt.block_on(produce(&bs, retry)), (0, 119));
    // A gap: OUT_OF_ORDER_SEQUENCE_NUMBER.
    let gap = batch(pid, epoch, 125, &["value-0125"]);
    assert_eq!(rt.block_on(produce(&bs, gap)).0, 45);
    // A marker from the coordinator before the one that committed:
    // TRANSACTION_COORDINATOR_FENCED.
    let stale = rt.block_on(write_marker(
        &bs,
        &txn_state,
        txn_state.coordinator_epoch - 1,
    ));
    assert_eq!(stale, 52, "stale coordinator epoch accepted");
    // The next sequence lands at the log end: the retry was not written.
    let next = batch(pid, epoch, 120, &["value-0120"]);
    assert_eq!(rt.block_on(produce(&bs, next)), (0, end));
}
