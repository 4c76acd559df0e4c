//! Followers fetching over a plain listener get the leader's records
//! straight from its log files (`sendfile`, counted by
//! `rivulet_sendfile_bytes_total`), and get them byte for byte: after the
//! leader is killed, the follower that takes over serves every record
//! produced, in order, to a librdkafka consumer that checks their CRCs.

use std::path::Path;
use std::time::Duration;

use rdkafka::consumer::BaseConsumer;
use rdkafka::Offset;
use rivulet_broker::metrics::scrape::{self, Samples};
use rivulet_testkit::cluster::{ClusterPorts, ClusterSpec, ProcessCluster};
use rivulet_testkit::kafka::{
    block_on, cluster_client_config, consume_n, consumer, create_topic_rf, partitions, produce_all,
    producer, KeyValue,
};
use rivulet_testkit::poll::Poll;

const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");
const TIMEOUT: Duration = Duration::from_secs(60);
const RECORDS: usize = 400;
/// Every batch is over the 4 KiB below which record bytes are copied.
const VALUE: usize = 8 << 10;

fn metrics(addr: &str) -> Samples {
    let (status, body) = scrape::get(addr, "/metrics", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("GET http://{addr}/metrics: {e}"));
    assert_eq!(status, 200, "{body}");
    Samples::parse(&body)
}

fn value(i: usize) -> Vec<u8> {
    let mut v = format!("record-{i:06}-").into_bytes();
    v.extend((0..VALUE - v.len()).map(|k| (k * 31 + i) as u8));
    v
}

#[test]
fn followers_get_the_leaders_records_from_its_files_and_serve_them_after_a_failover() {
    let mut cluster = ProcessCluster::start(
        ClusterSpec::new(Path::new(RIVULET), 3)
            .ports(ClusterPorts::Block)
            .cluster_id("sendfile-test")
            .env("RUST_LOG", "info,openraft=warn")
            .timeout(TIMEOUT),
    );
    let bootstrap = cluster.bootstrap();
    block_on(create_topic_rf(
        &bootstrap,
        "sf",
        1,
        3,
        &[("min.insync.replicas", "2")],
    ));
    let client: BaseConsumer = cluster_client_config(&bootstrap).create().unwrap();
    let in_sync = |n: usize| {
        Poll::new(TIMEOUT)
            .value(|| {
                partitions(&client, "sf")
                    .and_then(|p| p.get(&0).cloned())
                    .filter(|v| v.has_leader() && v.isr.len() == n)
            })
            .unwrap_or_else(|| panic!("sf/0 with a leader and {n} in sync"))
    };
    let leader = in_sync(3).leader;
    let leader_metrics = cluster.node(leader).metrics_addr();
    let sent_before = metrics(&leader_metrics).value("rivulet_sendfile_bytes_total");

    let values: Vec<Vec<u8>> = (0..RECORDS).map(value).collect();
    let records: Vec<KeyValue<'_>> = values.iter().map(|v| (None, Some(&v[..]))).collect();
    let p = producer(&bootstrap, &[("acks", "all")]);
    let offsets = block_on(produce_all(&p, "sf", 0, &records));
    assert_eq!(offsets, (0..RECORDS as i64).collect::<Vec<_>>());
    drop(p);

    // acks=all: both followers have every batch; they fetched them from
    // the leader's files.
    let m = metrics(&leader_metrics);
    let replicated = m.value("rivulet_replication_bytes_out_total{topic=\"sf\"}");
    let sent = m.value("rivulet_sendfile_bytes_total") - sent_before;
    assert!(
        replicated >= (2 * RECORDS * VALUE) as f64,
        "{replicated} bytes replicated"
    );
    assert!(
        sent >= 0.9 * replicated,
        "{sent} bytes sent from files of {replicated} replicated"
    );

    // The leader goes; a follower takes over and serves what it was sent.
    cluster.kill(leader);
    let view = in_sync(2);
    assert_ne!(view.leader, leader);
    // Bootstrapped from the new leader alone: a dead broker in the list is
    // a transport error librdkafka reports to the consumer.
    let c = consumer(&cluster.addr(view.leader), &[("check.crcs", "true")]);
    let got = consume_n(&c, "sf", 0, Offset::Beginning, RECORDS);
    assert_eq!(got.len(), RECORDS);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert!(
            r.value.as_deref() == Some(&values[i][..]),
            "record {i} differs"
        );
    }
}
