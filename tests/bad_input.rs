//! Bad input over a raw socket — garbage, truncated frames, negative and
//! huge size prefixes, unknown API keys, unsupported versions, silent
//! clients — gets an answer or a closed connection, and the broker keeps
//! serving a normal client throughout.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, MetadataRequest, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rdkafka::Offset;
use rivulet_testkit::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Encode a request frame (size prefix included).
fn frame<R: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &R) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("raw-test")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let mut out = BytesMut::new();
    out.put_i32(buf.len() as i32);
    out.put(buf);
    out
}

/// Whether the broker closed the connection (EOF or reset) within `wait`.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => false,
    }
}

/// Read one response frame.
async fn read_response(s: &mut TcpStream) -> BytesMut {
    let size = tokio::time::timeout(TIMEOUT, s.read_i32())
        .await
        .unwrap()
        .unwrap();
    assert!(size > 0 && size < 1 << 20);
    let mut buf = BytesMut::zeroed(size as usize);
    s.read_exact(&mut buf).await.unwrap();
    buf
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
    let _silent = TcpStream::connect(&bs).await.unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative size", (-5i32).to_be_bytes().to_vec()),
        ("2 GiB size", (i32::MAX).to_be_bytes().to_vec()),
        (
            "size above socket.request.max.bytes",
            (200 * 1024 * 1024i32).to_be_bytes().to_vec(),
        ),
        ("tiny frame", [0, 0, 0, 3, 1, 2, 3].to_vec()),
        ("unknown api key", {
            let mut f = BytesMut::new();
            f.put_i32(10);
            f.put_i16(999);
            f.put_i16(0);
            f.put_i32(1);
            f.put_i16(-1);
            f.to_vec()
        }),
        ("garbage body", {
            let mut f = BytesMut::new();
            f.put_i32(40);
            f.put_i16(ApiKey::Metadata as i16);
            f.put_i16(9);
            f.put_i32(7);
            f.put_slice(&[0xff; 32]);
            f.to_vec()
        }),
        (
            "unsupported metadata version",
            with_version(
                frame(ApiKey::Metadata, 12, 3, &MetadataRequest::default()),
                99,
            ),
        ),
    ];
    for (i, (name, bytes)) in cases.into_iter().enumerate() {
        let mut s = TcpStream::connect(&bs).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        assert!(
            closed_within(&mut s, Duration::from_secs(5)).await,
            "{name}: connection not closed"
        );
        still_serving(&bs, i + 1).await;
    }

    // A truncated frame: the size promises more than ever arrives.
    let mut s = TcpStream::connect(&bs).await.unwrap();
    let f = frame(ApiKey::Metadata, 9, 1, &MetadataRequest::default());
    s.write_all(&f[..f.len() - 3]).await.unwrap();
    drop(s);
    still_serving(&bs, 100).await;

    // An old Produce body (v2) is refused though v0 is advertised.
    let mut s = TcpStream::connect(&bs).await.unwrap();
    let mut f = BytesMut::new();
    f.put_i32(30);
    f.put_i16(ApiKey::Produce as i16);
    f.put_i16(2);
    f.put_i32(5);
    f.put_i16(-1);
    f.put_slice(&[0u8; 20]);
    s.write_all(&f).await.unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).await,
        "produce v2 not refused"
    );
    still_serving(&bs, 101).await;
}

/// An encoded frame with its API version field replaced.
fn with_version(mut f: BytesMut, v: i16) -> Vec<u8> {
    f[6..8].copy_from_slice(&v.to_be_bytes());
    f.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_new_api_versions_gets_unsupported_version_with_our_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let mut s = TcpStream::connect(broker.bootstrap()).await.unwrap();
    let f = with_version(
        frame(ApiKey::ApiVersions, 3, 42, &ApiVersionsRequest::default()),
        77,
    );
    s.write_all(&f).await.unwrap();
    let mut r = read_response(&mut s).await;
    // Response header v0 (correlation id only), then the v0 body.
    assert_eq!(r.get_i32(), 42);
    assert_eq!(r.get_i16(), 35, "UNSUPPORTED_VERSION");
    let n = r.get_i32();
    let mut keys = Vec::new();
    for _ in 0..n {
        keys.push((r.get_i16(), r.get_i16(), r.get_i16()));
    }
    assert!(
        keys.contains(&(ApiKey::ApiVersions as i16, 0, 3)),
        "{keys:?}"
    );
    assert!(
        keys.contains(&(ApiKey::Produce as i16, 0, 12)),
        "Produce advertised from v0: {keys:?}"
    );
    assert_eq!(r.remaining(), 0);
    // The connection stays usable for a retry at a version we know.
    let f = frame(
        ApiKey::ApiVersions,
        3,
        43,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("raw"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    );
    s.write_all(&f).await.unwrap();
    let mut r = read_response(&mut s).await;
    assert_eq!(r.get_i32(), 43);
    assert_eq!(r.get_i16(), 0);
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
    let mut stalled = TcpStream::connect(&bs).await.unwrap();
    let mut head = BytesMut::new();
    head.put_i32(1_000_000);
    head.put_i16(ApiKey::Metadata as i16);
    head.put_i16(1);
    head.put_slice(&[0u8; 96]);
    stalled.write_all(&head).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Small requests (a real client's produce and fetch) do not wait.
    still_serving(&bs, 1).await;
    assert!(
        !closed_within(&mut stalled, Duration::from_millis(10)).await,
        "the stalled connection was closed before the small requests ran"
    );

    // B: a 200 KiB request (ApiVersions v0 and padding) waits for the pool.
    let mut large = TcpStream::connect(&bs).await.unwrap();
    let mut f = frame(ApiKey::ApiVersions, 0, 9, &ApiVersionsRequest::default());
    f.put_slice(&vec![0u8; 200 * 1024]);
    let size = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&size.to_be_bytes());
    large.write_all(&f).await.unwrap();
    let mut response = read_response(&mut large).await;
    assert_eq!(response.get_i32(), 9, "correlation id");
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
    let mut f = BytesMut::new();
    let header_len = 2 + 2 + 4 + 2 + 1;
    f.put_i32((header_len + body.len()) as i32);
    f.put_i16(ApiKey::DeleteTopics as i16);
    f.put_i16(5);
    f.put_i32(11);
    f.put_i16(-1); // null client id
    f.put_u8(0); // header tagged fields
    f.put_slice(&body);
    let mut s = TcpStream::connect(&bs).await.unwrap();
    s.write_all(&f).await.unwrap();
    // Do not read for a while: the broker's write stalls and times out.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
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
