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

use std::path::Path;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rivulet_protocol::request_bounds::sample::sample;
use rivulet_protocol::wire::{connect, encode_raw_request};
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::{consumer, producer};
use rivulet_testkit::poll::Poll;
use rivulet_testkit::process::BrokerProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");
const WAIT: Duration = Duration::from_secs(10);

/// Panic (with the tail of its log) if the broker has exited.
fn assert_alive(node: &mut BrokerProcess, after: &str) {
    if let Some(why) = node.exited() {
        panic!("rivulet {why} after {after}");
    }
}

/// A frame with size prefix: the request header `key`/`version` call for,
/// then `body` as it is.
fn frame(key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let api = ApiKey::try_from(key).unwrap_or_else(|_| panic!("unknown api key {key}"));
    encode_raw_request(api, version, 1, Some("hostile"), body)
        .unwrap()
        .to_vec()
}

/// ApiVersions v0 round trip: the advertised `(key, min, max)`.
async fn api_versions(addr: &str) -> Vec<(i16, i16, i16)> {
    let mut client = connect(addr).await.unwrap().with_timeout(WAIT);
    let r = client
        .round_trip(0, &ApiVersionsRequest::default())
        .await
        .expect("ApiVersions answered");
    assert_eq!(r.error_code, 0);
    r.api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect()
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
    let logs = temp_dir();
    let mut node = BrokerProcess::start_in(
        Path::new(RIVULET),
        temp_dir(),
        logs.path().join("rivulet.log"),
        &[],
        &[("RUST_LOG", "warn")],
        WAIT * 3,
    );
    let addr = node.bootstrap();
    let advertised = api_versions(&addr).await;
    assert!(advertised.len() > 20, "{advertised:?}");

    let mut frames = 0;
    for &(key, min, max) in &advertised {
        for version in min..=max {
            let s = sample(key, version, true)
                .unwrap_or_else(|| panic!("no wire layout for advertised {key} v{version}"));
            // Send the frames of one version concurrently.
            let sends = s.slots.iter().map(|slot| {
                let bytes = frame(key, version, &s.with_max(*slot));
                let addr = addr.clone();
                async move { (slot, refused(&addr, &bytes).await) }
            });
            for (slot, was_refused) in futures_util::future::join_all(sends).await {
                assert!(was_refused, "api {key} v{version} {slot:?} was answered");
                frames += 1;
            }
            assert_alive(&mut node, &format!("api {key} v{version}"));
        }
    }
    assert!(frames > 500, "only {frames} hostile frames sent");

    // Still serving: ApiVersions, then a real client's round trip.
    assert_eq!(api_versions(&addr).await, advertised);
    let producer = producer(&addr, &[("message.timeout.ms", "20000")]);
    for i in 0..10 {
        let v = format!("after-hostile-{i}");
        producer
            .send(FutureRecord::<(), _>::to("survivor").payload(&v), WAIT)
            .await
            .unwrap();
    }
    let consumer = consumer(
        &addr,
        &[
            ("group.id", "hostile-check"),
            ("auto.offset.reset", "earliest"),
        ],
    );
    consumer.subscribe(&["survivor"]).unwrap();
    let mut got = Vec::new();
    Poll::new(WAIT * 3).every(Duration::ZERO).until(|| {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
        got.len() >= 10
    });
    let want: Vec<String> = (0..10).map(|i| format!("after-hostile-{i}")).collect();
    assert_eq!(got, want);
    assert_alive(&mut node, "the client round trip");
}
