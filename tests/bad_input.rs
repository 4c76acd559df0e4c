//! Bad input over a raw socket — garbage, truncated frames, negative and
//! huge size prefixes, unknown API keys, unsupported versions, silent
//! clients — gets an answer or a closed connection, and the broker keeps
//! serving a normal client throughout.
//!
//! Frames come from `rivulet_protocol::wire`; the deliberately malformed
//! ones (a size prefix that lies, a header no encoder writes) are written
//! byte by byte and sent as they are with `Client::send`.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, MetadataRequest};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rdkafka::Offset;
use rivulet_protocol::wire::{self, Client};
use rivulet_testkit::prelude::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const CLIENT_ID: &str = "raw-test";

/// A connection to `bootstrap` for raw frames; responses above 1 MiB are
/// refused.
async fn connect(bootstrap: &str) -> Client<TcpStream> {
    wire::connect(bootstrap)
        .await
        .unwrap()
        .with_client_id(Some(CLIENT_ID.to_string()))
        .with_timeout(TIMEOUT)
        .with_max_response_bytes(1 << 20)
}

/// `body` encoded at `version`, for a header that may claim another.
fn body_of<R: Encodable>(body: &R, version: i16) -> Vec<u8> {
    let mut out = BytesMut::new();
    body.encode(&mut out, version).unwrap();
    out.to_vec()
}

/// A frame whose size prefix is right and whose contents `write` puts
/// byte by byte.
fn hand_written(write: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    wire::build_frame(64, |f| {
        write(f);
        Ok::<(), String>(())
    })
    .unwrap()
    .to_vec()
}

/// Whether the broker closed the connection (EOF or reset) within `wait`.
async fn closed_within(s: &mut Client<TcpStream>, wait: Duration) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(wait, s.stream_mut().read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => false,
    }
}

/// A normal client still produces and consumes.
async fn still_serving(bootstrap: &str, round: usize) {
    let p = producer(bootstrap, &[]);
    let value = format!("alive-{round}");
    let offsets = produce_all(&p, "alive", 0, &[(None, Some(value.as_bytes()))]).await;
    let c = consumer(bootstrap, &[]);
    let got = consume_n(&c, "alive", 0, Offset::Offset(offsets[0]), 1);
    assert_eq!(got[0].value.as_deref(), Some(value.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    still_serving(&bs, 0).await;
    // A client that connects and sends nothing sits there harmlessly.
    let _silent = connect(&bs).await;

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative size", (-5i32).to_be_bytes().to_vec()),
        ("2 GiB size", (i32::MAX).to_be_bytes().to_vec()),
        (
            "size above socket.request.max.bytes",
            (200 * 1024 * 1024i32).to_be_bytes().to_vec(),
        ),
        ("tiny frame", [0, 0, 0, 3, 1, 2, 3].to_vec()),
        (
            "unknown api key",
            hand_written(|f| {
                f.put_i16(999);
                f.put_i16(0);
                f.put_i32(1);
                f.put_i16(-1);
            }),
        ),
        (
            "garbage body",
            hand_written(|f| {
                f.put_i16(ApiKey::Metadata as i16);
                f.put_i16(9);
                f.put_i32(7);
                f.put_slice(&[0xff; 32]);
            }),
        ),
        (
            "unsupported metadata version",
            wire::encode_raw_request(
                ApiKey::Metadata,
                99,
                3,
                Some(CLIENT_ID),
                &body_of(&MetadataRequest::default(), 12),
            )
            .unwrap()
            .to_vec(),
        ),
    ];
    for (i, (name, bytes)) in cases.into_iter().enumerate() {
        let mut s = connect(&bs).await;
        s.send(&bytes).await.unwrap();
        assert!(
            closed_within(&mut s, Duration::from_secs(5)).await,
            "{name}: connection not closed"
        );
        still_serving(&bs, i + 1).await;
    }

    // A truncated frame: the size promises more than ever arrives.
    let mut s = connect(&bs).await;
    let f = wire::encode_request(&MetadataRequest::default(), 9, 1, Some(CLIENT_ID)).unwrap();
    s.send(&f[..f.len() - 3]).await.unwrap();
    drop(s);
    still_serving(&bs, 100).await;

    // An old Produce body (v2) is refused though v0 is advertised.
    let mut s = connect(&bs).await;
    let f = wire::encode_raw_request(ApiKey::Produce, 2, 5, None, &[0u8; 20]).unwrap();
    s.send(&f).await.unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).await,
        "produce v2 not refused"
    );
    still_serving(&bs, 101).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_new_api_versions_gets_unsupported_version_with_our_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let mut s = connect(&broker.bootstrap()).await;
    // A v3 body under a header claiming v77.
    let f = wire::encode_raw_request(
        ApiKey::ApiVersions,
        77,
        42,
        Some(CLIENT_ID),
        &body_of(&ApiVersionsRequest::default(), 3),
    )
    .unwrap();
    s.send(&f).await.unwrap();
    // Response header v0 (correlation id only), then the v0 body, to its
    // last byte.
    let r = wire::decode_response::<ApiVersionsRequest>(s.read_response().await.unwrap(), 0, 42)
        .unwrap();
    assert_eq!(r.error_code, 35, "UNSUPPORTED_VERSION");
    let keys: Vec<(i16, i16, i16)> = r
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    assert!(
        keys.contains(&(ApiKey::ApiVersions as i16, 0, 3)),
        "{keys:?}"
    );
    assert!(
        keys.contains(&(ApiKey::Produce as i16, 0, 13)),
        "Produce advertised from v0: {keys:?}"
    );
    // The connection stays usable for a retry at a version we know.
    let retry = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("raw"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let r = s.round_trip(3, &retry).await.unwrap();
    assert_eq!(r.error_code, 0);
}

/// A client that sends the size of a large frame and stalls holds its
/// reservation in the request memory pool only until
/// `request.body.timeout.ms`: small requests flow meanwhile, a large one
/// waits for the pool and is answered once the stalled connection is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_large_frame_holds_the_request_pool_only_until_its_body_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(
        dir.path(),
        &[
            ("socket.request.max.bytes", "1048576"),
            ("queued.max.request.bytes", "1048576"),
            ("request.body.timeout.ms", "6000"),
        ],
    )
    .await;
    let bs = broker.bootstrap();
    still_serving(&bs, 0).await;

    // A: a frame of 1,000,000 bytes announced, 100 sent, then silence. It
    // reserves the whole pool.
    // The size prefix lies: written by hand.
    let mut stalled = connect(&bs).await;
    let mut head = BytesMut::new();
    head.put_i32(1_000_000);
    head.put_i16(ApiKey::Metadata as i16);
    head.put_i16(1);
    head.put_slice(&[0u8; 96]);
    stalled.send(&head).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Small requests (a real client's produce and fetch) do not wait.
    still_serving(&bs, 1).await;
    assert!(
        !closed_within(&mut stalled, Duration::from_millis(10)).await,
        "the stalled connection was closed before the small requests ran"
    );

    // B: a 200 KiB request (ApiVersions v0 and padding) waits for the pool.
    let mut large = connect(&bs).await;
    let mut body = body_of(&ApiVersionsRequest::default(), 0);
    body.extend_from_slice(&vec![0u8; 200 * 1024]);
    let f = wire::encode_raw_request(ApiKey::ApiVersions, 0, 9, Some(CLIENT_ID), &body).unwrap();
    large.send(&f).await.unwrap();
    // Correlation id 9, a v0 body.
    wire::decode_response::<ApiVersionsRequest>(large.read_response().await.unwrap(), 0, 9)
        .unwrap();
    // By the time it was answered, the stalled sender had been cut off.
    assert!(
        closed_within(&mut stalled, Duration::from_millis(100)).await,
        "the large request was answered while the stalled frame held the pool"
    );
    still_serving(&bs, 2).await;
}

/// A client that sends a request and never reads its (large) response is
/// disconnected after `request.body.timeout.ms`, so the response and the
/// request memory it holds are released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_take_its_response_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[("request.body.timeout.ms", "1500")]).await;
    let bs = broker.bootstrap();
    // DeleteTopics v5 naming "ab" 300,000 times: a 900 KB request whose
    // response (INVALID_REQUEST with a message per duplicate) is ~16 MB,
    // more than the socket buffers hold.
    let n: u32 = 300_000;
    let mut body = Vec::new();
    rivulet_protocol::request_bounds::sample::push_uvarint(&mut body, n + 1);
    for _ in 0..n {
        body.extend_from_slice(&[3, b'a', b'b']);
    }
    body.extend_from_slice(&1000i32.to_be_bytes()); // timeout_ms
    body.push(0); // tagged fields
    let f = wire::encode_raw_request(ApiKey::DeleteTopics, 5, 11, None, &body).unwrap();
    let mut s = connect(&bs).await;
    s.send(&f).await.unwrap();
    // Do not read for a while: the broker's write stalls and times out.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), s.stream_mut().read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(k)) => got += k,
            Err(_) => break false,
        }
    };
    assert!(closed, "the connection stayed open ({got} bytes read)");
    assert!(
        got > 0 && got < 15_000_000,
        "expected a cut-off response, read {got} bytes"
    );
    still_serving(&bs, 0).await;
}
