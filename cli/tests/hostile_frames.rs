//! Hostile frames against the real `rivulet` process: for every API key and
//! every version the broker advertises, a small frame with one count or
//! length prefix set to its largest value (an i32 array count of 2^31−1, a
//! compact-array varint of 0xffffffff, string and bytes lengths likewise) —
//! one frame per prefix, each on its own connection. Before the bounded
//! pre-pass, the first such frame aborted the process
//! ("memory allocation of 154618822584 bytes failed"). Each frame must be
//! refused (the connection closed), the process must stay alive, and
//! afterwards it must answer ApiVersions and a real client's produce and
//! consume.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rivulet_protocol::request_bounds::sample::sample;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");
const WAIT: Duration = Duration::from_secs(10);

fn free_port_pair() -> u16 {
    // A port p with p + 100 also free (the controller listener).
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < 60000 && TcpListener::bind(("127.0.0.1", p + 100)).is_ok() {
            return p;
        }
    }
}

struct Node {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port_pair();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(RIVULET)
            .arg("--set")
            .arg(format!("listeners={addr}"))
            .arg("--set")
            .arg(format!("controller.listener=127.0.0.1:{}", port + 100))
            .arg("--set")
            .arg(format!("data.dir={}", dir.path().display()))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Node {
            child,
            addr,
            _dir: dir,
        }
    }

    fn assert_alive(&mut self, after: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("rivulet exited ({status}) after {after}");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A frame with size prefix: request header v0/1/2 for `key`/`version`.
fn frame(key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&key.to_be_bytes());
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(&1i32.to_be_bytes());
    let hv = ApiKey::try_from(key)
        .map(|k| k.request_header_version(version))
        .unwrap_or(1);
    if hv >= 1 {
        f.extend_from_slice(&7i16.to_be_bytes());
        f.extend_from_slice(b"hostile");
    }
    if hv >= 2 {
        f.push(0);
    }
    f.extend_from_slice(body);
    let mut out = (f.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&f);
    out
}

/// ApiVersions v0 round trip: the advertised `(key, min, max)`.
async fn api_versions(addr: &str) -> Vec<(i16, i16, i16)> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&frame(ApiKey::ApiVersions as i16, 0, &[]))
        .await
        .unwrap();
    let size = tokio::time::timeout(WAIT, s.read_i32())
        .await
        .expect("ApiVersions answered")
        .unwrap();
    let mut buf = BytesMut::zeroed(size as usize);
    s.read_exact(&mut buf).await.unwrap();
    let mut buf = buf.freeze();
    ResponseHeader::decode(&mut buf, 0).unwrap();
    let r = ApiVersionsResponse::decode(&mut buf, 0).unwrap();
    assert_eq!(r.error_code, 0);
    assert!(!buf.has_remaining());
    r.api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect()
}

async fn wait_serving(addr: &str) {
    let started = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        assert!(started.elapsed() < WAIT * 3, "rivulet never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Send one frame on a fresh connection; true if the broker closed it
/// without an answer.
async fn refused(addr: &str, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr).await.unwrap();
    if s.write_all(bytes).await.is_err() {
        return true;
    }
    let mut buf = [0u8; 64];
    match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => panic!("no answer and no close within {WAIT:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn largest_counts_in_every_advertised_request_are_refused_and_the_broker_lives() {
    let mut node = Node::start();
    wait_serving(&node.addr).await;
    let advertised = api_versions(&node.addr).await;
    assert!(advertised.len() > 20, "{advertised:?}");

    let mut frames = 0;
    for &(key, min, max) in &advertised {
        for version in min..=max {
            let s = sample(key, version, true)
                .unwrap_or_else(|| panic!("no wire layout for advertised {key} v{version}"));
            // Send the frames of one version concurrently.
            let sends = s.slots.iter().map(|slot| {
                let bytes = frame(key, version, &s.with_max(*slot));
                let addr = node.addr.clone();
                async move { (slot, refused(&addr, &bytes).await) }
            });
            for (slot, was_refused) in futures_util::future::join_all(sends).await {
                assert!(was_refused, "api {key} v{version} {slot:?} was answered");
                frames += 1;
            }
            node.assert_alive(&format!("api {key} v{version}"));
        }
    }
    assert!(frames > 500, "only {frames} hostile frames sent");

    // Still serving: ApiVersions, then a real client's round trip.
    assert_eq!(api_versions(&node.addr).await, advertised);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &node.addr)
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    for i in 0..10 {
        let v = format!("after-hostile-{i}");
        producer
            .send(FutureRecord::<(), _>::to("survivor").payload(&v), WAIT)
            .await
            .unwrap();
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &node.addr)
        .set("group.id", "hostile-check")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&["survivor"]).unwrap();
    let mut got = Vec::new();
    let started = Instant::now();
    while got.len() < 10 && started.elapsed() < WAIT * 3 {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    let want: Vec<String> = (0..10).map(|i| format!("after-hostile-{i}")).collect();
    assert_eq!(got, want);
    node.assert_alive("the client round trip");
}
