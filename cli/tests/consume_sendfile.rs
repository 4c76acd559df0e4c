//! Consumers fetching large batches over a plain listener get them straight
//! from the log files (`sendfile`, counted by `rivulet_sendfile_bytes_total`),
//! byte for byte, and the records are still counted exactly
//! (`rivulet_topic_records_out_total`, from the batch headers); small
//! batches are read into memory as before.

use std::time::Duration;

use futures_util::future::join_all;
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;
use rivulet_broker::metrics::scrape::{self, Samples};
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::{
    block_on, consume_n, consumer, create_topic, produce_all, producer, KeyValue,
};
use rivulet_testkit::process::{BrokerProcess, NodeSpec};

const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");
const TIMEOUT: Duration = Duration::from_secs(60);

fn metrics(addr: &str) -> Samples {
    let (status, body) = scrape::get(addr, "/metrics", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("GET http://{addr}/metrics: {e}"));
    assert_eq!(status, 200, "{body}");
    Samples::parse(&body)
}

fn value(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("record-{i:06}-").into_bytes();
    v.extend((0..len.saturating_sub(v.len())).map(|k| (k * 31 + i) as u8));
    v
}

/// Consume `values` from `topic`/0 with CRC checks and compare them.
fn consume_and_compare(bootstrap: &str, topic: &str, values: &[Vec<u8>]) {
    let c = consumer(bootstrap, &[("check.crcs", "true")]);
    let got = consume_n(&c, topic, 0, Offset::Beginning, values.len());
    assert_eq!(got.len(), values.len());
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert!(
            r.value.as_deref() == Some(&values[i][..]),
            "{topic}: record {i} differs"
        );
    }
}

#[test]
fn consumers_get_large_batches_from_the_files_and_every_record_is_counted() {
    let dir = temp_dir();
    let spec = NodeSpec::new(
        RIVULET,
        dir.path().join("data"),
        dir.path().join("rivulet.log"),
    )
    .env("RUST_LOG", "info,openraft=warn");
    let mut node = BrokerProcess::spawn(spec);
    node.wait_serving(TIMEOUT);
    let (bootstrap, addr) = (node.bootstrap(), node.metrics_addr());
    block_on(create_topic(&bootstrap, "big", 1, &[]));
    block_on(create_topic(&bootstrap, "small", 1, &[]));

    // Large batches: 300 records of 4 KiB sent at once, a long linger.
    const BIG: usize = 300;
    let big: Vec<Vec<u8>> = (0..BIG).map(|i| value(i, 4096)).collect();
    let p = producer(&bootstrap, &[("linger.ms", "200"), ("acks", "all")]);
    let sends = big.iter().map(|v| {
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to("big").partition(0).payload(v);
        p.send_result(record)
            .unwrap_or_else(|(e, _)| panic!("enqueue: {e}"))
    });
    let acks = block_on(join_all(sends.collect::<Vec<_>>()));
    for (i, ack) in acks.into_iter().enumerate() {
        let delivery = ack
            .expect("delivered")
            .unwrap_or_else(|(e, _)| panic!("record {i}: {e}"));
        assert_eq!(delivery.offset, i as i64);
    }
    // Small batches: one 100-byte record each.
    const SMALL: usize = 100;
    let small: Vec<Vec<u8>> = (0..SMALL).map(|i| value(i, 100)).collect();
    let records: Vec<KeyValue<'_>> = small.iter().map(|v| (None, Some(&v[..]))).collect();
    block_on(produce_all(&p, "small", 0, &records));
    drop(p);

    let before = metrics(&addr).value("rivulet_sendfile_bytes_total");
    consume_and_compare(&bootstrap, "big", &big);
    let m = metrics(&addr);
    let big_out = m.value("rivulet_topic_bytes_out_total{topic=\"big\"}");
    let sent = m.value("rivulet_sendfile_bytes_total") - before;
    assert!(big_out >= (BIG * 4096) as f64, "{big_out} bytes out");
    assert!(
        sent >= 0.9 * big_out,
        "{sent} bytes sent from files of {big_out} consumed"
    );
    assert_eq!(
        m.value("rivulet_topic_records_out_total{topic=\"big\"}"),
        BIG as f64,
        "records out of the large batches, counted from their headers"
    );

    consume_and_compare(&bootstrap, "small", &small);
    let m2 = metrics(&addr);
    assert_eq!(
        m2.value("rivulet_sendfile_bytes_total"),
        m.value("rivulet_sendfile_bytes_total"),
        "small batches are read, not sent from the file"
    );
    assert_eq!(
        m2.value("rivulet_topic_records_out_total{topic=\"small\"}"),
        SMALL as f64
    );
}
