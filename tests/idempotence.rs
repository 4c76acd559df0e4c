//! Idempotent-producer semantics seen on the wire: a retried batch is
//! answered with its original offset and stored once, a sequence gap gets
//! OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch INVALID_PRODUCER_EPOCH, and
//! the producer state survives a broker restart (rebuilt from the log).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::ProduceResponse;
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rdkafka::Offset;
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_testkit::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// Send one Produce (acks=all) and return `(error_code, base_offset)`.
async fn produce(s: &mut TcpStream, topic: &str, records: Bytes, correlation: i32) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(VERSION)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("idem-test")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, ApiKey::Produce.request_header_version(VERSION))
        .unwrap();
    req.encode(&mut body, VERSION).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put(body);
    s.write_all(&frame).await.unwrap();
    let size = s.read_i32().await.unwrap();
    let mut buf = BytesMut::zeroed(size as usize);
    s.read_exact(&mut buf).await.unwrap();
    let mut buf = buf.freeze();
    let h =
        ResponseHeader::decode(&mut buf, ApiKey::Produce.response_header_version(VERSION)).unwrap();
    assert_eq!(h.correlation_id, correlation);
    let resp = ProduceResponse::decode(&mut buf, VERSION).unwrap();
    assert_eq!(buf.remaining(), 0);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_deduplicated_gaps_and_stale_epochs_refused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    create_topic(&broker.bootstrap(), "idem", 1, &[]).await;
    let mut s = TcpStream::connect(broker.bootstrap()).await.unwrap();
    let pid = 4242;
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 0, 0, &["a", "b"]), 1).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 0, 2, &["c"]), 2).await,
        (0, 2)
    );
    // A retry of the first batch: its original offset, nothing written.
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 0, 0, &["a", "b"]), 3).await,
        (0, 0)
    );
    // A gap: sequence 5 when 3 is next.
    let (code, _) = produce(&mut s, "idem", batch(pid, 0, 5, &["x"]), 4).await;
    assert_eq!(code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    // A new epoch restarts at sequence 0 and fences the old one.
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 1, 0, &["d"]), 5).await,
        (0, 3)
    );
    let (code, _) = produce(&mut s, "idem", batch(pid, 0, 3, &["e"]), 6).await;
    assert_eq!(code, 47, "INVALID_PRODUCER_EPOCH");
    // A plain (non-idempotent) batch is unaffected.
    assert_eq!(
        produce(&mut s, "idem", batch(-1, -1, -1, &["plain"]), 7).await,
        (0, 4)
    );
    drop(s);

    let broker = broker.restart().await;
    let mut s = TcpStream::connect(broker.bootstrap()).await.unwrap();
    // State was rebuilt from the log: the retry is still recognised.
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 1, 0, &["d"]), 8).await,
        (0, 3)
    );
    let (code, _) = produce(&mut s, "idem", batch(pid, 0, 3, &["e"]), 9).await;
    assert_eq!(code, 47);
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 1, 1, &["f"]), 10).await,
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
