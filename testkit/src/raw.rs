//! One Kafka request on a fresh connection, for the APIs and versions
//! librdkafka does not speak. (To be replaced by `rivulet_protocol`'s wire
//! client.)

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::TIMEOUT;

/// Send `req` at `version` to `bootstrap` (one address) and decode its
/// response. Panics unless the response matches the request and decodes to
/// the last byte, or if none comes within [`TIMEOUT`].
pub async fn raw_request<R: Request>(bootstrap: &str, version: i16, req: &R) -> R::Response {
    let correlation_id = 7;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("rivulet-raw")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, R::header_version(version))
        .expect("encode the request header");
    req.encode(&mut body, version).expect("encode the request");
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put(body);
    let mut s = tokio::net::TcpStream::connect(bootstrap)
        .await
        .unwrap_or_else(|e| panic!("connect to {bootstrap}: {e}"));
    s.write_all(&frame).await.expect("send the request");
    let size = tokio::time::timeout(TIMEOUT, s.read_i32())
        .await
        .expect("no response")
        .expect("read the response size");
    let mut buf = BytesMut::zeroed(size as usize);
    s.read_exact(&mut buf).await.expect("read the response");
    let mut buf = buf.freeze();
    let h = ResponseHeader::decode(&mut buf, R::Response::header_version(version))
        .expect("decode the response header");
    assert_eq!(h.correlation_id, correlation_id);
    let resp = R::Response::decode(&mut buf, version).expect("decode the response");
    assert_eq!(buf.remaining(), 0, "response has trailing bytes");
    resp
}
