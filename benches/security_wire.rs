//! What TLS + SASL costs the *broker* (issue 13), measured with a client
//! that costs little: our own wire client (`rivulet_protocol::wire`, rustls,
//! SCRAM-SHA-512 through `rivulet_protocol::tls::Connector`) instead of
//! librdkafka, whose OpenSSL and per-record work made the client the
//! bottleneck of `scripts/bench_security.sh` (the broker used ~6 % of a core
//! there). A plain harness, not criterion.
//!
//! One broker (the release `rivulet`, `$RIVULET_BIN` or built as for
//! `loadgen`) with two listeners, PLAINTEXT and SASL_SSL (SCRAM-SHA-512, dev
//! certificates from `rivulet certs generate`). Runs alternate PLAINTEXT and
//! SASL_SSL (`SECURITY_BENCH_REPEAT`, default 3), best of each reported:
//!
//! - produce: `SECURITY_BENCH_CONNECTIONS` connections (default 1), each to
//!   its own partition of a fresh topic, acks=1, Produce v9 requests of
//!   `SECURITY_BENCH_BATCH` 1 KiB records (default 256, as librdkafka with
//!   linger.ms 5 fills under load), up to 5 requests in flight per
//!   connection (librdkafka's `max.in.flight` default), until
//!   `SECURITY_BENCH_RECORDS` records (default 200,000) per connection;
//!   With `SECURITY_BENCH_SLICE=N` each request is written in N-byte
//!   slices, one write (over TLS one record) each, as librdkafka does (one
//!   `SSL_write` per buffer slice: ~1.8 KiB on average for 1 KiB records);
//! - consume: the same records read back with Fetch v12 (one request in
//!   flight per connection, 1 MiB per partition, librdkafka's defaults);
//! - connect: `SECURITY_BENCH_CONNECTS` (default 200) new connections one
//!   after another, each TCP (+ TLS handshake + SCRAM exchange) + Metadata.
//!
//! MB/s counts record values (MB = 10^6 bytes). CPU is the broker's own
//! (`/proc/PID/stat`) per GB moved, and the client's (this process). The
//! ratio SASL_SSL / PLAINTEXT is the figure of the issue (target ≥ 0.7).
//! `SECURITY_BENCH_PIN=1` puts every broker thread on CPU 0 and this process
//! on CPU 1 (as on separate machines: the client's TLS then does not take the
//! broker's CPU).
//!
//! Run: `cargo bench --bench security_wire`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, MetadataRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rivulet_protocol::record_batch::{peek_batch_size, BatchHeader, Compression};
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_protocol::sasl::SaslCredentials;
use rivulet_protocol::tls::{Connector, Stream, TlsFiles};
use rivulet_protocol::wire::{self, Client};
use rivulet_testkit::dirs::bench_dir;
use rivulet_testkit::kafka::{admin, block_on, try_create_topic};
use rivulet_testkit::ports::free_ports;
use rivulet_testkit::process::{BrokerProcess, NodeSpec};
use rivulet_testkit::procfs::{cpu_time, Proc};

#[path = "common/mod.rs"]
mod common;
use common::{env_usize, rivulet_bin};

const VALUE: usize = 1024;
const IN_FLIGHT: usize = 5;
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
const T: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Plaintext,
    SaslSsl,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Plaintext => "PLAINTEXT",
            Kind::SaslSsl => "SASL_SSL",
        }
    }
}

struct Setup {
    plain: String,
    sasl: String,
    tls_connector: Connector,
    broker_pid: u32,
}

impl Setup {
    fn addr(&self, kind: Kind) -> &str {
        match kind {
            Kind::Plaintext => &self.plain,
            Kind::SaslSsl => &self.sasl,
        }
    }

    fn connector(&self, kind: Kind) -> Connector {
        match kind {
            Kind::Plaintext => Connector::plaintext(),
            Kind::SaslSsl => self.tls_connector.clone(),
        }
    }

    async fn connect(&self, kind: Kind) -> Client<Stream> {
        wire::connect_with(&self.connector(kind), self.addr(kind))
            .await
            .unwrap_or_else(|e| panic!("connect over {}: {e}", kind.name()))
            .with_client_id(Some("security-wire-bench".into()))
            .with_timeout(T)
    }
}

/// One phase's figures.
#[derive(Clone, Copy, Default)]
struct Figures {
    mb_s: f64,
    broker_cpu_s_per_gb: f64,
    client_cpu_s_per_gb: f64,
}

impl Figures {
    fn measure(broker: u32, bytes: u64, run: impl FnOnce()) -> Figures {
        let (b0, c0, t0) = (
            cpu_time(Proc::Pid(broker)),
            cpu_time(Proc::This),
            Instant::now(),
        );
        run();
        let elapsed = t0.elapsed().as_secs_f64();
        let gb = bytes as f64 / 1e9;
        Figures {
            mb_s: bytes as f64 / 1e6 / elapsed,
            broker_cpu_s_per_gb: (cpu_time(Proc::Pid(broker)) - b0).as_secs_f64() / gb,
            client_cpu_s_per_gb: (cpu_time(Proc::This) - c0).as_secs_f64() / gb,
        }
    }

    fn best(self, other: Figures) -> Figures {
        if other.mb_s > self.mb_s {
            other
        } else {
            self
        }
    }
}

fn topic_name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_string()))
}

/// A Produce frame of `batch` to `topic`/`partition` (correlation id 0,
/// patched per send).
fn produce_frame(topic: &str, partition: i32, batch: Bytes) -> BytesMut {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    wire::encode_request(&req, PRODUCE_VERSION, 0, Some("security-wire-bench"))
        .expect("encode a produce request")
}

/// Size prefix (4), api key (2), api version (2), then the correlation id.
fn set_correlation_id(frame: &mut [u8], id: i32) {
    frame[8..12].copy_from_slice(&id.to_be_bytes());
}

async fn produce_one(setup: &Setup, kind: Kind, topic: &str, partition: i32, requests: usize) {
    let batch_records = env_usize("SECURITY_BENCH_BATCH", 256);
    let slice = env_usize("SECURITY_BENCH_SLICE", 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let value = vec![b'x'; VALUE];
    let mut b = RecordBatchBuilder::new(Compression::None);
    for _ in 0..batch_records {
        b.push(now, None, Some(&value), &[]);
    }
    let batch = Bytes::from(b.build().expect("build a record batch"));
    let mut frame = produce_frame(topic, partition, batch);
    let mut client = setup.connect(kind).await;
    let mut pending = std::collections::VecDeque::new();
    let mut sent = 0;
    while sent < requests || !pending.is_empty() {
        if sent < requests && pending.len() < IN_FLIGHT {
            let id = client.next_correlation_id();
            set_correlation_id(&mut frame, id);
            if slice == 0 {
                client.send(&frame).await.expect("send a produce request");
            } else {
                for part in frame.chunks(slice) {
                    client
                        .send(part)
                        .await
                        .expect("send part of a produce request");
                }
            }
            pending.push_back(id);
            sent += 1;
            continue;
        }
        let id = pending.pop_front().expect("a request in flight");
        let bytes = client.read_response().await.expect("a produce response");
        let resp = wire::decode_response::<ProduceRequest>(bytes, PRODUCE_VERSION, id)
            .expect("decode a produce response");
        let code = resp.responses[0].partition_responses[0].error_code;
        assert_eq!(code, 0, "produce over {} failed with {code}", kind.name());
    }
}

/// Read `partition` of `topic` from offset 0 until `records` records came.
async fn consume_one(setup: &Setup, kind: Kind, topic: &str, partition: i32, records: i64) {
    let mut client = setup.connect(kind).await;
    let mut offset = 0i64;
    while offset < records {
        let req = FetchRequest::default()
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(52_428_800)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1_048_576)])]);
        let resp = client
            .round_trip(FETCH_VERSION, &req)
            .await
            .expect("a fetch response");
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch over {} failed", kind.name());
        let data = p.records.clone().unwrap_or_default();
        let mut pos = 0;
        while let Some(size) = peek_batch_size(&data[pos..]) {
            if pos + size > data.len() {
                break; // a partial batch at the end of the response
            }
            let h = BatchHeader::parse(&data[pos..]).expect("a batch header");
            offset = offset.max(h.next_offset());
            pos += size;
        }
    }
}

fn produce(setup: &Setup, kind: Kind, topic: &str, connections: usize, records: usize) -> Figures {
    let batch = env_usize("SECURITY_BENCH_BATCH", 256);
    let requests = records.div_ceil(batch);
    let bytes = (requests * batch * VALUE * connections) as u64;
    Figures::measure(setup.broker_pid, bytes, || {
        block_on(async {
            let runs = (0..connections)
                .map(|p| produce_one(setup, kind, topic, p as i32, requests))
                .collect::<Vec<_>>();
            futures_util::future::join_all(runs).await;
        })
    })
}

fn consume(setup: &Setup, kind: Kind, topic: &str, connections: usize, records: usize) -> Figures {
    let batch = env_usize("SECURITY_BENCH_BATCH", 256);
    let total = records.div_ceil(batch) * batch;
    let bytes = (total * VALUE * connections) as u64;
    Figures::measure(setup.broker_pid, bytes, || {
        block_on(async {
            let runs = (0..connections)
                .map(|p| consume_one(setup, kind, topic, p as i32, total as i64))
                .collect::<Vec<_>>();
            futures_util::future::join_all(runs).await;
        })
    })
}

/// New connections per second (each + one Metadata request).
fn connect_rate(setup: &Setup, kind: Kind, n: usize) -> f64 {
    let start = Instant::now();
    block_on(async {
        for _ in 0..n {
            let mut c = setup.connect(kind).await;
            c.round_trip(12, &MetadataRequest::default())
                .await
                .expect("metadata");
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

fn pin(pid: u32, cpu: &str) {
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", cpu, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "taskset -a -p -c {cpu} {pid} failed (util-linux installed?)"
    );
}

fn start_broker(bin: &Path, dir: &Path) -> (BrokerProcess, Setup) {
    let certs = dir.join("certs");
    let status = Command::new(bin)
        .args(["certs", "generate", "--dir"])
        .arg(&certs)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run rivulet certs generate");
    assert!(status.success(), "rivulet certs generate failed");
    let ports = free_ports(2);
    let (plain, sasl) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
    );
    let spec = NodeSpec::new(bin, dir.join("data"), dir.join("broker.log"));
    let controller = spec.controller_port;
    let spec = spec
        .ports(ports[0], controller)
        .set(
            "listeners",
            format!("PLAINTEXT://{plain},SASL_SSL://{sasl}"),
        )
        .set("inter.broker.listener.name", "PLAINTEXT")
        .set("ssl.certificate.location", certs.join("node.pem").display())
        .set("ssl.key.location", certs.join("node.key").display())
        .set("ssl.ca.location", certs.join("ca.pem").display())
        .set(
            "sasl.scram.bootstrap.users",
            "SCRAM-SHA-512=[name=admin,password=admin-secret]",
        )
        .set("offsets.topic.replication.factor", 1);
    let mut broker = BrokerProcess::spawn(spec);
    broker.wait_serving(T);
    let tls = TlsFiles {
        certificate: None,
        key: None,
        ca: Some(certs.join("ca.pem")),
    }
    .client_config()
    .expect("a TLS client config from the dev CA");
    let tls_connector = Connector::tls(tls).with_sasl(SaslCredentials {
        mechanism: "SCRAM-SHA-512".into(),
        username: "admin".into(),
        password: "admin-secret".into(),
    });
    let setup = Setup {
        plain,
        sasl,
        tls_connector,
        broker_pid: broker.pid(),
    };
    (broker, setup)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list
    }
    let bin = rivulet_bin();
    let dir = bench_dir();
    let (broker, setup) = start_broker(&bin, dir.path());
    let setup = Arc::new(setup);
    if std::env::var("SECURITY_BENCH_PIN").is_ok_and(|v| v == "1") {
        pin(broker.pid(), "0");
        pin(std::process::id(), "1");
    }
    let connections = env_usize("SECURITY_BENCH_CONNECTIONS", 1);
    let records = env_usize("SECURITY_BENCH_RECORDS", 200_000);
    let repeat = env_usize("SECURITY_BENCH_REPEAT", 3);
    let connects = env_usize("SECURITY_BENCH_CONNECTS", 200);
    let admin = admin(&setup.plain);
    let mut best = [[Figures::default(); 2]; 2]; // [kind][produce, consume]
    for run in 0..repeat {
        for (k, kind) in [Kind::Plaintext, Kind::SaslSsl].into_iter().enumerate() {
            let topic = format!("sec-{}-{run}", kind.name().to_lowercase());
            block_on(try_create_topic(&admin, &topic, connections as i32, 1, &[]))
                .unwrap_or_else(|e| panic!("create {topic}: {e:?}"));
            let p = produce(&setup, kind, &topic, connections, records);
            let c = consume(&setup, kind, &topic, connections, records);
            println!(
                "run {run} {:<9} produce {:>7.1} MB/s (broker {:.2} / client {:.2} CPU s/GB)  \
                 consume {:>7.1} MB/s (broker {:.2} / client {:.2} CPU s/GB)",
                kind.name(),
                p.mb_s,
                p.broker_cpu_s_per_gb,
                p.client_cpu_s_per_gb,
                c.mb_s,
                c.broker_cpu_s_per_gb,
                c.client_cpu_s_per_gb
            );
            best[k][0] = best[k][0].best(p);
            best[k][1] = best[k][1].best(c);
        }
    }
    let plain_connects = connect_rate(&setup, Kind::Plaintext, connects);
    let sasl_connects = connect_rate(&setup, Kind::SaslSsl, connects);
    println!();
    println!(
        "security_wire: {connections} connection(s), {records} x 1 KiB records each, batches of {}, \
         written in slices of {} bytes, best of {repeat}",
        env_usize("SECURITY_BENCH_BATCH", 256),
        env_usize("SECURITY_BENCH_SLICE", 0)
    );
    for (i, phase) in ["produce", "consume"].into_iter().enumerate() {
        let (p, s) = (best[0][i], best[1][i]);
        println!(
            "{phase}: PLAINTEXT {:.1} MB/s, SASL_SSL {:.1} MB/s, ratio {:.2}; broker CPU s/GB \
             {:.2} -> {:.2}",
            p.mb_s,
            s.mb_s,
            s.mb_s / p.mb_s,
            p.broker_cpu_s_per_gb,
            s.broker_cpu_s_per_gb
        );
    }
    println!(
        "new connections/s (+ Metadata): PLAINTEXT {plain_connects:.0}, SASL_SSL (TLS + \
         SCRAM-SHA-512) {sasl_connects:.0}"
    );
    drop(broker);
}
