//! Idempotent-producer semantics seen on the wire: a retried batch is
//! answered with its original offset and stored once, a sequence gap gets
//! OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch INVALID_PRODUCER_EPOCH, and
//! the producer state survives a broker restart (rebuilt from the log).

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::Offset;
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_protocol::wire::{self, Client};
use rivulet_testkit::prelude::*;
use tokio::net::TcpStream;

const VERSION: i16 = 9;

fn batch(producer_id: i64, epoch: i16, seq: i32, values: &[&str]) -> Bytes {
    // Current timestamps: old ones would be (rightly) deleted by time
    // retention when the restarted broker runs its first retention pass.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut b = RecordBatchBuilder::new(Compression::None).producer(producer_id, epoch, seq);
    for v in values {
        b.push(now, None, Some(v.as_bytes()), &[]);
    }
    Bytes::from(b.build().unwrap())
}

/// A connection for raw Produce requests.
async fn connect(bootstrap: &str) -> Client<TcpStream> {
    wire::connect(bootstrap)
        .await
        .unwrap()
        .with_client_id(Some("idem-test".to_string()))
        .with_timeout(TIMEOUT)
}

/// Send one Produce (acks=all) and return `(error_code, base_offset)`.
async fn produce(s: &mut Client<TcpStream>, topic: &str, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let resp = s.round_trip(VERSION, &req).await.unwrap();
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_deduplicated_gaps_and_stale_epochs_refused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    create_topic(&broker.bootstrap(), "idem", 1, &[]).await;
    let mut s = connect(&broker.bootstrap()).await;
    let pid = 4242;
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 0, 0, &["a", "b"])).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 0, 2, &["c"])).await,
        (0, 2)
    );
    // A retry of the first batch: its original offset, nothing written.
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 0, 0, &["a", "b"])).await,
        (0, 0)
    );
    // A gap: sequence 5 when 3 is next.
    let (code, _) = produce(&mut s, "idem", batch(pid, 0, 5, &["x"])).await;
    assert_eq!(code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    // A new epoch restarts at sequence 0 and fences the old one.
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 1, 0, &["d"])).await,
        (0, 3)
    );
    let (code, _) = produce(&mut s, "idem", batch(pid, 0, 3, &["e"])).await;
    assert_eq!(code, 47, "INVALID_PRODUCER_EPOCH");
    // A plain (non-idempotent) batch is unaffected.
    assert_eq!(
        produce(&mut s, "idem", batch(-1, -1, -1, &["plain"])).await,
        (0, 4)
    );
    drop(s);

    let broker = broker.restart().await;
    let mut s = connect(&broker.bootstrap()).await;
    // State was rebuilt from the log: the retry is still recognised.
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 1, 0, &["d"])).await,
        (0, 3)
    );
    let (code, _) = produce(&mut s, "idem", batch(pid, 0, 3, &["e"])).await;
    assert_eq!(code, 47);
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 1, 1, &["f"])).await,
        (0, 5)
    );

    let c = consumer(&broker.bootstrap(), &[("debug", "fetch,msg,protocol")]);
    let got = consume_n(&c, "idem", 0, Offset::Beginning, 6);
    let values: Vec<String> = got
        .iter()
        .map(|g| String::from_utf8(g.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(
        values,
        vec!["a", "b", "c", "d", "plain", "f"],
        "each batch stored exactly once"
    );
    assert!(drain(&c, std::time::Duration::from_millis(300)).is_empty());
}
