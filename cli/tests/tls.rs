//! TLS end to end, through a real Kafka client: kcat (Debian's, librdkafka
//! 2.0 built with SSL; the workspace's rdkafka is built without it). The
//! certificates come from `rivulet certs generate`.
//!
//! - an SSL listener beside a PLAINTEXT one: produce and consume over SSL
//!   with server authentication; Metadata answers each listener's address;
//! - `ssl.client.auth = required`: a client without a certificate is
//!   refused, one with the generated client certificate served;
//! - a plaintext client on the SSL port, and a TLS client on the PLAINTEXT
//!   port, are closed while other clients keep being served;
//! - a large request written in 1,000-byte pieces, then a small request
//!   alone, are both answered over SSL and PLAINTEXT (the socket's receive
//!   low-water mark, `rivulet_protocol::low_water`);
//! - bad certificate files and a SASL controller listener fail the start
//!   clearly;
//! - `rivulet cluster up --tls` (with `ssl.client.auth=required`): TLS on
//!   every port, an acks=all produce replicated to all three nodes over
//!   TLS, a client without a certificate refused.

mod security_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rivulet_broker::{BrokerConfig, BrokerNode};
use rivulet_protocol::tls::{Connector, TlsFiles};
use rivulet_testkit::broker::TestBroker;
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::process::run;
use security_support::{
    addr_of, cluster_up, kcat, path, strings, wait_replicated, ClusterDown, LIMIT, RIVULET,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `rivulet certs generate --dir DIR`: the files it wrote.
struct Certs {
    ca: PathBuf,
    node_cert: PathBuf,
    node_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn generate_certs(dir: &Path) -> Certs {
    let d = dir.to_str().unwrap();
    let r = run(
        Path::new(RIVULET),
        &["certs", "generate", "--dir", d],
        "",
        LIMIT,
    );
    assert!(r.success, "certs generate failed: {}", r.stderr);
    assert!(
        r.stdout.contains("security.protocol=SSL"),
        "client settings printed: {}",
        r.stdout
    );
    Certs {
        ca: dir.join("ca.pem"),
        node_cert: dir.join("node.pem"),
        node_key: dir.join("node.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    }
}

/// Read until the peer closes (within 15 s) and check that what came back,
/// if anything, is a TLS alert record (content type 21) and not a Kafka
/// response.
async fn expect_closed_without_an_answer(tcp: &mut tokio::net::TcpStream, addr: &str) {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut got))
        .await
        .unwrap_or_else(|_| panic!("{addr} kept a plaintext client open"));
    // A reset instead of a close is as good.
    let _ = read;
    assert!(
        got.is_empty() || got[0] == 21,
        "{addr} answered a plaintext request: {got:?}"
    );
}

/// kcat's SSL settings: trust the CA; with the client certificate if asked.
fn ssl_args(bootstrap: &str, certs: &Certs, with_client_cert: bool) -> Vec<String> {
    let mut a = vec![
        "-b".to_string(),
        bootstrap.to_string(),
        "-X".into(),
        "security.protocol=SSL".into(),
        "-X".into(),
        format!("ssl.ca.location={}", path(&certs.ca)),
    ];
    if with_client_cert {
        a.extend([
            "-X".into(),
            format!("ssl.certificate.location={}", path(&certs.client_cert)),
            "-X".into(),
            format!("ssl.key.location={}", path(&certs.client_key)),
        ]);
    }
    a
}

fn with(mut base: Vec<String>, more: &[&str]) -> Vec<String> {
    base.extend(more.iter().map(|s| s.to_string()));
    base
}

/// A TLS client that trusts the generated CA, with no certificate of its own.
fn trusting_the_ca(certs: &Certs) -> Connector {
    let files = TlsFiles {
        certificate: None,
        key: None,
        ca: Some(certs.ca.clone()),
    };
    Connector::tls(files.client_config().unwrap())
}

/// A connection to `addr` through `connector` that was served an
/// ApiVersions request (by our own client).
async fn served_api_versions(
    connector: &Connector,
    addr: &str,
) -> rivulet_protocol::wire::Client<rivulet_protocol::tls::Stream> {
    let mut client = rivulet_protocol::wire::connect_with(connector, addr)
        .await
        .unwrap();
    let resp = client
        .round_trip(3, &kafka_protocol::messages::ApiVersionsRequest::default())
        .await
        .unwrap();
    assert_eq!(resp.error_code, 0);
    assert!(!resp.api_keys.is_empty());
    client
}

/// Create `topic` with `partitions` partitions of one replica through
/// `admin` (CreateTopics v5).
async fn create_topic(
    admin: &mut rivulet_protocol::wire::Client<rivulet_protocol::tls::Stream>,
    topic: &kafka_protocol::messages::TopicName,
    partitions: i32,
) {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let request = kafka_protocol::messages::CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic.clone())
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    let created = admin.round_trip(5, &request).await.unwrap();
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
}

/// A broker with an SSL listener and a PLAINTEXT one, both on port 0;
/// `client_auth` is the SSL listener's (Kafka's per-listener key).
async fn ssl_broker(data: &Path, certs: &Certs, client_auth: &str) -> TestBroker {
    TestBroker::start(
        data,
        &[
            ("listeners", "SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0"),
            ("inter.broker.listener.name", "PLAINTEXT"),
            ("ssl.certificate.location", path(&certs.node_cert)),
            ("ssl.key.location", path(&certs.node_key)),
            ("ssl.ca.location", path(&certs.ca)),
            ("ssl.client.auth", "none"),
            ("listener.name.ssl.ssl.client.auth", client_auth),
            ("offsets.topic.replication.factor", "1"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_over_ssl_beside_a_plaintext_listener() {
    let dir = temp_dir();
    let certs = generate_certs(&dir.path().join("certs"));
    let b = ssl_broker(&dir.path().join("data"), &certs, "none").await;
    let ssl = addr_of(&b, "SSL");
    let plain = addr_of(&b, "PLAINTEXT");

    let p = kcat(
        with(ssl_args(&ssl, &certs, false), &["-P", "-t", "tls-t"]),
        "one\ntwo\nthree\n",
    )
    .await;
    assert!(p.success, "produce over SSL: {}", p.stderr);
    let c = kcat(
        with(
            ssl_args(&ssl, &certs, false),
            &["-C", "-t", "tls-t", "-o", "beginning", "-e", "-q"],
        ),
        "",
    )
    .await;
    assert!(c.success, "consume over SSL: {}", c.stderr);
    assert_eq!(
        c.stdout.lines().collect::<Vec<_>>(),
        ["one", "two", "three"]
    );

    // Metadata names each listener's own address: a client of the SSL
    // listener is sent to SSL ports, one of PLAINTEXT to plaintext ports.
    let md = kcat(with(ssl_args(&ssl, &certs, false), &["-L"]), "").await;
    assert!(
        md.stdout.contains(&format!("broker 1 at {ssl}")),
        "{}",
        md.stdout
    );
    let md = kcat(vec!["-b".into(), plain.clone(), "-L".into()], "").await;
    assert!(
        md.stdout.contains(&format!("broker 1 at {plain}")),
        "{}",
        md.stdout
    );
    // The plaintext listener serves the same data.
    let c = kcat(
        vec![
            "-b".into(),
            plain,
            "-C".into(),
            "-t".into(),
            "tls-t".into(),
            "-o".into(),
            "beginning".into(),
            "-e".into(),
            "-q".into(),
        ],
        "",
    )
    .await;
    assert_eq!(c.stdout.lines().count(), 3, "{}", c.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_auth_refuses_a_client_without_a_certificate() {
    let dir = temp_dir();
    let certs = generate_certs(&dir.path().join("certs"));
    let b = ssl_broker(&dir.path().join("data"), &certs, "required").await;
    let ssl = addr_of(&b, "SSL");

    let without = kcat(with(ssl_args(&ssl, &certs, false), &["-L", "-m", "3"]), "").await;
    assert!(
        !without.success,
        "a client without a certificate was served"
    );
    assert!(
        !without.stdout.contains("broker 1 at"),
        "{}",
        without.stdout
    );

    let p = kcat(
        with(ssl_args(&ssl, &certs, true), &["-P", "-t", "mtls"]),
        "a\nb\n",
    )
    .await;
    assert!(p.success, "produce with a client certificate: {}", p.stderr);
    let c = kcat(
        with(
            ssl_args(&ssl, &certs, true),
            &["-C", "-t", "mtls", "-o", "beginning", "-e", "-q"],
        ),
        "",
    )
    .await;
    assert_eq!(
        c.stdout.lines().collect::<Vec<_>>(),
        ["a", "b"],
        "{}",
        c.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_on_the_ssl_port_and_a_tls_client_on_the_plaintext_port_are_closed() {
    let dir = temp_dir();
    let certs = generate_certs(&dir.path().join("certs"));
    let b = ssl_broker(&dir.path().join("data"), &certs, "none").await;
    let ssl = addr_of(&b, "SSL");

    // A Kafka ApiVersions v0 frame, in the clear.
    let mut frame = Vec::new();
    let body: [u8; 10] = [0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];
    frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
    frame.extend_from_slice(&body);
    let mut tcp = tokio::net::TcpStream::connect(&ssl).await.unwrap();
    tcp.write_all(&frame).await.unwrap();
    expect_closed_without_an_answer(&mut tcp, &ssl).await;

    // A TLS client on the plaintext port: its ClientHello reads as a
    // frame size far above socket.request.max.bytes, so the connection is
    // closed and the handshake fails.
    let plain = addr_of(&b, "PLAINTEXT");
    let connector = trusting_the_ca(&certs);
    let tls_on_plain = tokio::time::timeout(Duration::from_secs(15), connector.connect(&plain))
        .await
        .expect("the plaintext listener closes a TLS client promptly");
    assert!(
        tls_on_plain.is_err(),
        "a TLS handshake succeeded on PLAINTEXT"
    );
    let md = kcat(vec!["-b".into(), plain, "-L".into()], "").await;
    assert!(
        md.success,
        "the plaintext listener still serves: {}",
        md.stderr
    );

    // TLS clients are still served, by the Rust client too.
    let md = kcat(with(ssl_args(&ssl, &certs, false), &["-L"]), "").await;
    assert!(
        md.success && md.stdout.contains("broker 1 at"),
        "{}",
        md.stderr
    );
    let connector = trusting_the_ca(&certs);
    served_api_versions(&connector, &ssl).await;
}

/// A Produce request of ~800 KiB written 1,000 bytes at a time (each piece
/// its own TLS record and TCP segment, as librdkafka writes record values
/// over TLS), then, after a pause, a small request on its own: the broker
/// reads the large frame whole (its socket's receive low-water mark raised
/// while much of the frame is missing) and answers the small one at once
/// (the mark back at one byte; left raised, the broker would never wake for
/// it). Over SSL and over PLAINTEXT; the records are read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_request_in_small_pieces_then_a_small_one_alone_are_both_answered() {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ApiVersionsRequest, ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use rivulet_protocol::record_batch::Compression;
    use rivulet_protocol::records::RecordBatchBuilder;
    use rivulet_protocol::wire;

    const RECORDS: i64 = 800;
    let dir = temp_dir();
    let certs = generate_certs(&dir.path().join("certs"));
    let b = ssl_broker(&dir.path().join("data"), &certs, "none").await;
    let topic = TopicName(StrBytes::from_static_str("pieces"));
    let plain = addr_of(&b, "PLAINTEXT");
    let mut admin = served_api_versions(&Connector::plaintext(), &plain).await;
    create_topic(&mut admin, &topic, 1).await;

    let value = vec![b'v'; 1000];
    for (round, (listener, connector)) in [
        ("SSL", trusting_the_ca(&certs)),
        ("PLAINTEXT", Connector::plaintext()),
    ]
    .into_iter()
    .enumerate()
    {
        let mut client = served_api_versions(&connector, &addr_of(&b, listener)).await;
        let mut batch = RecordBatchBuilder::new(Compression::None);
        // Timestamps of now: older ones would expire by retention.ms.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        for _ in 0..RECORDS {
            batch.push(now, None, Some(&value), &[]);
        }
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(15_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic.clone())
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(bytes::Bytes::from(batch.build().unwrap())))])]);
        let correlation = client.next_correlation_id();
        let frame = wire::encode_request(&request, 9, correlation, None).unwrap();
        assert!(frame.len() > 800_000);
        for piece in frame.chunks(1000) {
            let stream = client.stream_mut();
            stream.write_all(piece).await.unwrap();
            stream.flush().await.unwrap();
        }
        let answer = tokio::time::timeout(Duration::from_secs(30), client.read_response())
            .await
            .unwrap_or_else(|_| panic!("{listener}: no answer to the large produce"))
            .unwrap();
        let answer = wire::decode_response::<ProduceRequest>(answer, 9, correlation).unwrap();
        let partition = &answer.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0, "{listener}: {answer:?}");
        assert_eq!(partition.base_offset, round as i64 * RECORDS, "{listener}");

        tokio::time::sleep(Duration::from_millis(300)).await;
        let versions = tokio::time::timeout(
            Duration::from_secs(5),
            client.round_trip(3, &ApiVersionsRequest::default()),
        )
        .await
        .unwrap_or_else(|_| panic!("{listener}: a small request after the large one waits"))
        .unwrap();
        assert_eq!(versions.error_code, 0);
    }

    // Offset and value size: kcat's output is read once it exits, so it
    // must fit a pipe.
    let read_back = ["-C", "-t", "pieces", "-o", "beginning", "-e", "-q"];
    let c = kcat(
        strings(&[&["-b", plain.as_str()], &read_back[..], &["-f", "%o %S\n"]].concat()),
        "",
    )
    .await;
    assert!(c.success, "{}", c.stderr);
    let read: Vec<String> = c.stdout.lines().map(String::from).collect();
    let expected: Vec<String> = (0..2 * RECORDS).map(|o| format!("{o} 1000")).collect();
    assert_eq!(read, expected);
}

/// Fetch responses carry their records by reference from the log's read
/// buffers (`rivulet_protocol::spliced`): over SSL and PLAINTEXT, a Fetch of
/// three partitions (batches of 200 KB, 20 KB and 300 bytes: two spliced, one
/// copied) answers each partition with exactly the bytes of its segment file,
/// at two Fetch versions; and kcat, checking every batch's CRC, reads every
/// record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_responses_over_ssl_and_plaintext_carry_the_segment_bytes_exactly() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{FetchRequest, ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use rivulet_protocol::record_batch::Compression;
    use rivulet_protocol::records::RecordBatchBuilder;

    let dir = temp_dir();
    let certs = generate_certs(&dir.path().join("certs"));
    let data = dir.path().join("data");
    let b = ssl_broker(&data, &certs, "none").await;
    let topic = TopicName(StrBytes::from_static_str("spliced"));
    let plain = addr_of(&b, "PLAINTEXT");
    let mut admin = served_api_versions(&Connector::plaintext(), &plain).await;
    create_topic(&mut admin, &topic, 3).await;

    // Partition p gets `counts[p]` records of 100 distinct bytes each.
    let counts = [2_000usize, 200, 3];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let partition_data = counts
        .iter()
        .enumerate()
        .map(|(p, &n)| {
            let mut batch = RecordBatchBuilder::new(Compression::None);
            for i in 0..n {
                let value: Vec<u8> = (0..100).map(|k| (i * 31 + k * 7 + p) as u8).collect();
                batch.push(now, None, Some(&value), &[]);
            }
            PartitionProduceData::default()
                .with_index(p as i32)
                .with_records(Some(bytes::Bytes::from(batch.build().unwrap())))
        })
        .collect();
    let produced = admin
        .round_trip(
            9,
            &ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(15_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic.clone())
                    .with_partition_data(partition_data)]),
        )
        .await
        .unwrap();
    for p in &produced.responses[0].partition_responses {
        assert_eq!(p.error_code, 0, "{produced:?}");
    }
    let segments: Vec<Vec<u8>> = (0..3)
        .map(|p| std::fs::read(data.join(format!("spliced-{p}/00000000000000000000.log"))).unwrap())
        .collect();
    assert!(segments[0].len() > 200_000 && segments[1].len() > 20_000);
    assert!(segments[2].len() < rivulet_protocol::spliced::MIN_SPLICE);

    for (listener, connector) in [
        ("SSL", trusting_the_ca(&certs)),
        ("PLAINTEXT", Connector::plaintext()),
    ] {
        let mut client = served_api_versions(&connector, &addr_of(&b, listener)).await;
        for version in [4i16, 12] {
            let partitions = (0..3)
                .map(|p| {
                    FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20)
                })
                .collect();
            let request = FetchRequest::default()
                .with_replica_id(kafka_protocol::messages::BrokerId(-1))
                .with_max_wait_ms(0)
                .with_max_bytes(8 << 20)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic.clone())
                    .with_partitions(partitions)]);
            let response = client.round_trip(version, &request).await.unwrap();
            assert_eq!(response.error_code, 0, "{listener} v{version}");
            let mut got = response.responses[0].partitions.clone();
            got.sort_by_key(|p| p.partition_index);
            assert_eq!(got.len(), 3, "{listener} v{version}");
            for (p, part) in got.iter().enumerate() {
                assert_eq!(part.error_code, 0, "{listener} v{version} p{p}");
                let records = part.records.as_deref().unwrap_or_default();
                assert!(
                    records == &segments[p][..],
                    "{listener} v{version} p{p}: {} bytes fetched, the segment has {}",
                    records.len(),
                    segments[p].len()
                );
            }
        }
    }

    // A real client over SSL, every batch's CRC checked: partition, offset,
    // value size (the output must fit a pipe: kcat's is read once it exits).
    let c = kcat(
        with(
            ssl_args(&addr_of(&b, "SSL"), &certs, false),
            &[
                "-C",
                "-t",
                "spliced",
                "-o",
                "beginning",
                "-e",
                "-q",
                "-X",
                "check.crcs=true",
                "-f",
                "%p %S\n",
            ],
        ),
        "",
    )
    .await;
    assert!(c.success && !c.stderr.contains("ERROR"), "{}", c.stderr);
    for (p, &n) in counts.iter().enumerate() {
        let line = format!("{p} 100");
        assert_eq!(c.stdout.lines().filter(|l| *l == line).count(), n, "p{p}");
    }
    assert_eq!(c.stdout.lines().count(), counts.iter().sum::<usize>());
}

/// A broker that shuts down ends its TLS connections with close_notify:
/// the client reads the end of the stream, not a truncation ("unexpected
/// eof" in librdkafka's and OpenSSL's words).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_shutting_down_closes_tls_connections_cleanly() {
    let dir = temp_dir();
    let certs = generate_certs(&dir.path().join("certs"));
    let mut b = ssl_broker(&dir.path().join("data"), &certs, "none").await;
    let connector = trusting_the_ca(&certs);
    let mut client = served_api_versions(&connector, &addr_of(&b, "SSL")).await;

    b.stop().await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), client.stream_mut().read(&mut buf))
        .await
        .expect("the connection ends when the broker stops");
    assert!(
        matches!(read, Ok(0)),
        "a clean end of stream (close_notify), got {read:?}"
    );
}

#[tokio::test]
async fn bad_certificate_files_and_a_sasl_controller_fail_the_start() {
    let dir = temp_dir();
    let certs = generate_certs(&dir.path().join("certs"));
    let config = |kv: &[(&str, &str)]| {
        let mut props: std::collections::BTreeMap<String, String> = [
            ("data.dir", path(&dir.path().join("data"))),
            ("controller.listener", "127.0.0.1:0"),
            ("listeners", "SSL://127.0.0.1:0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in kv {
            props.insert(k.to_string(), v.to_string());
        }
        BrokerConfig::from_props(&props).unwrap()
    };
    let missing = dir.path().join("nope.pem");
    let err = BrokerNode::start(config(&[
        ("ssl.certificate.location", path(&missing)),
        ("ssl.key.location", path(&certs.node_key)),
    ]))
    .await
    .err()
    .expect("a missing certificate file fails the start");
    let msg = err.to_string();
    assert!(
        msg.contains("ssl.certificate.location") && msg.contains("nope.pem"),
        "{msg}"
    );
    // A certificate where the key should be.
    let err = BrokerNode::start(config(&[
        ("ssl.certificate.location", path(&certs.node_cert)),
        ("ssl.key.location", path(&certs.node_cert)),
    ]))
    .await
    .err()
    .expect("a key file without a key fails the start");
    assert!(err.to_string().contains("ssl.key.location"), "{err}");
    // SASL on the controller quorum is refused (its transport has none).
    let err = BrokerNode::start(config(&[("controller.listener", "SASL_SSL://127.0.0.1:0")]))
        .await
        .err()
        .expect("SASL on the controller is refused");
    assert!(err.to_string().contains("use SSL there"), "{err}");
}

#[test]
fn the_tls_example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/tls.toml");
    let c = BrokerConfig::load(Some(&path), &[]).unwrap();
    let names: Vec<_> = c.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["SSL", "PLAINTEXT"]);
    assert_eq!(c.inter_broker_listener, "SSL");
    assert!(c.controller_protocol.uses_tls());
    assert_eq!(c.ssl.ca, Some(PathBuf::from("certs/ca.pem")));
    assert_eq!(
        c.client_auth_for("SSL"),
        rivulet_protocol::tls::ClientAuth::Requested
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_up_tls_replicates_over_tls_on_every_port() {
    let dir = temp_dir();
    let _down = ClusterDown(path(dir.path()).to_string());
    // Client certificates required everywhere: the nodes replicate and
    // reach the quorum with their node certificates.
    let (base, r) = cluster_up(dir.path(), &["--tls", "--set", "ssl.client.auth=required"]).await;
    // The client settings, as a librdkafka properties file.
    let props = dir.path().join("client.properties");
    std::fs::write(&props, &r.stdout).unwrap();
    assert!(r.stdout.contains("security.protocol=SSL"), "{}", r.stdout);

    let records: String = (1..=50).map(|i| format!("r{i}\n")).collect();
    let p = kcat(
        vec![
            "-F".into(),
            path(&props).into(),
            "-X".into(),
            "request.required.acks=-1".into(),
            "-P".into(),
            "-t".into(),
            "replicated".into(),
        ],
        &records,
    )
    .await;
    assert!(p.success, "acks=all produce over TLS: {}", p.stderr);
    let c = kcat(
        vec![
            "-F".into(),
            path(&props).into(),
            "-C".into(),
            "-t".into(),
            "replicated".into(),
            "-o".into(),
            "beginning".into(),
            "-e".into(),
            "-q".into(),
        ],
        "",
    )
    .await;
    assert_eq!(c.stdout.lines().count(), 50, "{}", c.stderr);

    // A client without a certificate is refused.
    let bootstrap = format!("127.0.0.1:{base}");
    let ca = dir.path().join("certs/ca.pem");
    let refused = kcat(
        vec![
            "-b".into(),
            bootstrap,
            "-X".into(),
            "security.protocol=SSL".into(),
            "-X".into(),
            format!("ssl.ca.location={}", path(&ca)),
            "-L".into(),
            "-m".into(),
            "3".into(),
        ],
        "",
    )
    .await;
    assert!(
        !refused.success,
        "served without a certificate: {}",
        refused.stdout
    );

    // Every node holds the records: the followers fetched them over the
    // TLS listeners (there is no other).
    wait_replicated(dir.path(), "replicated").await;

    // Every port speaks only TLS: a TLS handshake trusting the CA
    // succeeds on each Kafka and controller port, and a plaintext
    // ApiVersions gets no answer.
    let files = TlsFiles {
        certificate: Some(dir.path().join("certs/node.pem")),
        key: Some(dir.path().join("certs/node.key")),
        ca: Some(dir.path().join("certs/ca.pem")),
    };
    let connector = Connector::tls(files.client_config().unwrap());
    for offset in [0u16, 1, 2, 100, 101, 102] {
        let addr = format!("127.0.0.1:{}", base + offset);
        connector
            .connect(&addr)
            .await
            .unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"));
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff])
            .await
            .unwrap();
        expect_closed_without_an_answer(&mut tcp, &addr).await;
    }
}
