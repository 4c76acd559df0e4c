//! Kafka framing on a byte stream, bounded, and a typed request/response
//! client over it: the one place Rivulet writes and reads the 4-byte size
//! prefix. The broker's connections read requests and write responses with
//! it; the replica fetcher, the tests and the benchmarks talk to brokers
//! through [`Client`].
//!
//! Bounds: a size prefix is checked against a limit before anything is
//! allocated; a body is read as it arrives ([`read_body`]: a peer that
//! claims a size and stalls costs only what it sent, and each wait for more
//! bytes is timed); a response's counts are checked against its bytes
//! ([`crate::request_bounds`]) before `kafka-protocol` decodes it, and a
//! response that leaves bytes unread is refused.
//!
//! This module does I/O only through the `AsyncRead`/`AsyncWrite` it is
//! given (or, for servers and clients written with `std` I/O, the
//! `std::io::Read` given to [`read_frame_blocking`]); connecting
//! ([`connect`]) is a convenience for clients.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

pub use crate::low_water::LowWater;
use crate::low_water::Watched;
use crate::request_bounds::{self, BoundsError};
use crate::spliced::{encode_spliced, FilePiece, SpliceBuf, SplicedFrame};

/// The smallest request frame: API key, version and correlation id.
pub const MIN_REQUEST_SIZE: usize = 8;
/// The smallest response frame: a correlation id.
pub const MIN_RESPONSE_SIZE: usize = 4;

/// Bytes read per step of a frame body: the buffer grows with what has
/// arrived, never to the size a prefix claims before the bytes are there.
const READ_STEP: usize = 64 * 1024;

/// Why a frame could not be read, written, encoded or decoded.
#[derive(Debug, Error)]
pub enum WireError {
    #[error("the peer closed the connection")]
    Eof,
    #[error("no bytes from the peer for {0:?}")]
    Idle(Duration),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame size {size} is outside {min}..={limit}")]
    BadSize { size: i32, min: usize, limit: usize },
    #[error("cannot encode {key:?} v{version}: {message}")]
    Encode {
        key: ApiKey,
        version: i16,
        message: String,
    },
    #[error("response to {key:?} v{version} refused before decoding: {source}")]
    Bounds {
        key: ApiKey,
        version: i16,
        source: BoundsError,
    },
    #[error("cannot decode the response to {key:?} v{version}: {message}")]
    Decode {
        key: ApiKey,
        version: i16,
        message: String,
    },
    #[error("the response to {key:?} v{version} has {extra} bytes after its body")]
    TrailingBytes {
        key: ApiKey,
        version: i16,
        extra: usize,
    },
    #[error("response correlation id {got}, expected {expected}")]
    Correlation { expected: i32, got: i32 },
    #[error("no response within {0:?}")]
    Timeout(Duration),
}

/// Read a size prefix. [`WireError::Eof`] when the stream ends cleanly
/// before it; [`WireError::Idle`] when nothing arrives within `idle`;
/// [`WireError::BadSize`] for a size outside `min..=limit`.
pub async fn read_size<S: AsyncRead + Unpin>(
    stream: &mut S,
    min: usize,
    limit: usize,
    idle: Duration,
) -> Result<usize, WireError> {
    let mut size = [0u8; 4];
    match tokio::time::timeout(idle, stream.read_exact(&mut size)).await {
        Err(_) => return Err(WireError::Idle(idle)),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(WireError::Eof),
        Ok(Err(e)) => return Err(WireError::Io(e)),
        Ok(Ok(_)) => {}
    }
    checked_size(size, min, limit)
}

fn checked_size(prefix: [u8; 4], min: usize, limit: usize) -> Result<usize, WireError> {
    let size = i32::from_be_bytes(prefix);
    match usize::try_from(size) {
        Ok(s) if s >= min && s <= limit => Ok(s),
        _ => Err(WireError::BadSize { size, min, limit }),
    }
}

/// Read a frame body of `size` bytes as it arrives; `idle` bounds each wait
/// for more bytes (the caller bounds the whole read if it must).
/// `low` raises the socket's receive low-water mark while much of the body
/// is missing ([`LowWater`]; [`LowWater::none`] for a stream that is not a
/// socket) and lowers it again before returning, or when the read is
/// dropped unfinished (a caller's timeout).
pub async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    size: usize,
    idle: Duration,
    low: &mut LowWater,
) -> Result<Bytes, WireError> {
    let low = LoweredOnDrop(low);
    read_body_marked(stream, size, idle, &mut *low.0).await
}

/// Puts a socket's low-water mark back to one byte when dropped.
struct LoweredOnDrop<'a>(&'a mut LowWater);

impl Drop for LoweredOnDrop<'_> {
    fn drop(&mut self) {
        self.0.reset();
    }
}

async fn read_body_marked<S: AsyncRead + Unpin>(
    stream: &mut S,
    size: usize,
    idle: Duration,
    low: &mut LowWater,
) -> Result<Bytes, WireError> {
    let mut frame = BytesMut::new();
    while frame.len() < size {
        let want = size - frame.len();
        if frame.capacity() == frame.len() {
            // Room for what has arrived at once (a buffer grown a step at
            // a time copies itself at each step), never for more than the
            // peer sent: at least a step, or double what is in.
            let arrived = low.queued().unwrap_or(0);
            frame.reserve(want.min(frame.len().max(READ_STEP).max(arrived)));
        }
        let mut watched = Watched {
            inner: &mut *stream,
            low: &mut *low,
            missing: want,
        };
        let mut limited = (&mut watched).take(want as u64);
        match tokio::time::timeout(idle, limited.read_buf(&mut frame)).await {
            Err(_) => return Err(WireError::Idle(idle)),
            Ok(Err(e)) => return Err(WireError::Io(e)),
            Ok(Ok(0)) => return Err(WireError::Eof),
            Ok(Ok(_)) => {}
        }
    }
    Ok(frame.freeze())
}

/// Read one frame (size prefix checked against `min..=limit`, then the
/// body as it arrives, like [`read_size`] and [`read_body`]) from a
/// blocking reader, for servers and clients written with `std` I/O. Waits
/// are bounded by the reader (`TcpStream::set_read_timeout`): its timeout
/// surfaces as [`WireError::Io`].
pub fn read_frame_blocking<R: std::io::Read>(
    reader: &mut R,
    min: usize,
    limit: usize,
) -> Result<Bytes, WireError> {
    use std::io::ErrorKind;
    let mut prefix = [0u8; 4];
    match reader.read_exact(&mut prefix) {
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Err(WireError::Eof),
        Err(e) => return Err(WireError::Io(e)),
        Ok(()) => {}
    }
    let size = checked_size(prefix, min, limit)?;
    let mut frame = BytesMut::new();
    let mut filled = 0;
    while filled < size {
        if frame.len() == filled {
            let want = size - filled;
            frame.resize(filled + want.min(filled.max(READ_STEP)), 0);
        }
        match reader.read(&mut frame[filled..]) {
            Ok(0) => return Err(WireError::Eof),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(WireError::Io(e)),
        }
    }
    Ok(frame.freeze())
}

/// A frame built in one buffer: a size placeholder, what `write` puts after
/// it, then the size patched in (no second copy of a large body).
/// `capacity` is a hint for the body's size.
pub fn build_frame<E>(
    capacity: usize,
    write: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<BytesMut, FrameError<E>> {
    let mut out = BytesMut::with_capacity(capacity.saturating_add(4));
    out.put_i32(0);
    write(&mut out).map_err(FrameError::Write)?;
    let size = i32::try_from(out.len() - 4).map_err(|_| FrameError::TooLarge(out.len() - 4))?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(out)
}

/// Why [`build_frame`] failed.
#[derive(Debug, Error)]
pub enum FrameError<E> {
    #[error("{0}")]
    Write(E),
    #[error("a {0}-byte frame does not fit a size prefix")]
    TooLarge(usize),
    #[error("a file piece's stand-in was not encoded as one whole field")]
    StandIn,
}

/// A request frame (size prefix included) for `body` at `version`, with the
/// header version the API's `version` calls for.
pub fn encode_request<R: Request>(
    body: &R,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
) -> Result<BytesMut, WireError> {
    let key = api_key(R::KEY);
    let header = request_header(R::KEY, version, correlation_id, client_id);
    build_frame(body.compute_size(version).unwrap_or(0) + 64, |out| {
        header
            .encode(out, R::header_version(version))
            .map_err(|e| e.to_string())?;
        body.encode(out, version).map_err(|e| e.to_string())
    })
    .map_err(|e| WireError::Encode {
        key,
        version,
        message: e.to_string(),
    })
}

/// A request frame with a body given as raw bytes (a hand-built or hostile
/// body in tests and benchmarks): the header is encoded as `key` at
/// `version` calls for, the body is copied as is.
pub fn encode_raw_request(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    body: &[u8],
) -> Result<BytesMut, WireError> {
    let header = request_header(key as i16, version, correlation_id, client_id);
    build_frame(body.len() + 64, |out| {
        header
            .encode(out, key.request_header_version(version))
            .map_err(|e| e.to_string())?;
        out.put_slice(body);
        Ok::<(), String>(())
    })
    .map_err(|e| WireError::Encode {
        key,
        version,
        message: e.to_string(),
    })
}

/// A response frame: the header (`correlation_id`) at `header_version`,
/// then what `body` writes. `capacity` is a hint for the body's size.
pub fn encode_response(
    key: ApiKey,
    version: i16,
    header_version: i16,
    correlation_id: i32,
    capacity: usize,
    body: impl FnOnce(&mut BytesMut) -> Result<(), String>,
) -> Result<BytesMut, WireError> {
    build_frame(capacity, |out| {
        response_header(correlation_id, header_version, out)?;
        body(out)
    })
    .map_err(|e| encode_error(key, version, e))
}

fn response_header(
    correlation_id: i32,
    header_version: i16,
    out: &mut impl kafka_protocol::protocol::buf::ByteBufMut,
) -> Result<(), String> {
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(out, header_version)
        .map_err(|e| e.to_string())
}

fn encode_error(key: ApiKey, version: i16, e: impl std::fmt::Display) -> WireError {
    WireError::Encode {
        key,
        version,
        message: e.to_string(),
    }
}

/// [`encode_response`], keeping the byte fields that are one of `splice`
/// (a Fetch response's records) by reference and putting each of `files`
/// where its stand-in is ([`crate::spliced`]).
#[allow(clippy::too_many_arguments)]
pub fn encode_response_spliced(
    key: ApiKey,
    version: i16,
    header_version: i16,
    correlation_id: i32,
    capacity: usize,
    splice: &[Bytes],
    files: &[(Bytes, FilePiece)],
    body: impl FnOnce(&mut SpliceBuf) -> Result<(), String>,
) -> Result<SplicedFrame, WireError> {
    encode_spliced(capacity, splice, files, |out| {
        response_header(correlation_id, header_version, out)?;
        body(out)
    })
    .map_err(|e| encode_error(key, version, e))
}

/// Decode a response frame (without its size prefix) to `R` at `version`:
/// header and body counts checked against the bytes first, the correlation
/// id compared with `correlation_id`, nothing left unread.
pub fn decode_response<R: Request>(
    frame: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, WireError> {
    let key = api_key(R::KEY);
    let header_version = R::Response::header_version(version);
    let bounds = |source| WireError::Bounds {
        key,
        version,
        source,
    };
    let decode = |e: String| WireError::Decode {
        key,
        version,
        message: e,
    };
    let header_len =
        request_bounds::check_response_header(&frame, header_version).map_err(bounds)?;
    request_bounds::check_response_body(
        R::KEY,
        version,
        frame.get(header_len..).unwrap_or_default(),
    )
    .map_err(bounds)?;
    let mut buf = frame;
    let header =
        ResponseHeader::decode(&mut buf, header_version).map_err(|e| decode(e.to_string()))?;
    if header.correlation_id != correlation_id {
        return Err(WireError::Correlation {
            expected: correlation_id,
            got: header.correlation_id,
        });
    }
    let body = R::Response::decode(&mut buf, version).map_err(|e| decode(e.to_string()))?;
    if !buf.is_empty() {
        return Err(WireError::TrailingBytes {
            key,
            version,
            extra: buf.len(),
        });
    }
    Ok(body)
}

fn request_header(
    key: i16,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(key)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|c| StrBytes::from_string(c.to_string())))
}

fn api_key(key: i16) -> ApiKey {
    ApiKey::try_from(key).unwrap_or(ApiKey::Produce)
}

/// Connect to a Kafka listener (`TCP_NODELAY` set) and wrap it in a
/// [`Client`].
pub async fn connect(addr: impl ToSocketAddrs) -> std::io::Result<Client<TcpStream>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let low = LowWater::new(std::os::fd::AsRawFd::as_raw_fd(&stream), 0);
    Ok(Client::new(stream).with_low_water(low))
}

/// Connect to a Kafka listener through `connector` (plain or TLS).
pub async fn connect_with(
    connector: &crate::tls::Connector,
    addr: &str,
) -> std::io::Result<Client<crate::tls::Stream>> {
    let stream = connector.connect(addr).await?;
    let low = stream.low_water();
    Ok(Client::new(stream).with_low_water(low))
}

/// Requests to one broker over one stream, one at a time: typed
/// ([`Client::round_trip`]) or raw ([`Client::send`] and
/// [`Client::read_response`]) for tests that build frames by hand.
#[derive(Debug)]
pub struct Client<S> {
    stream: S,
    next_correlation_id: i32,
    client_id: Option<String>,
    max_response_bytes: usize,
    timeout: Duration,
    /// Raised while a large response is missing ([`LowWater`]).
    low_water: LowWater,
}

/// Largest response a [`Client`] reads unless told otherwise.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;
/// How long a [`Client`] waits for a response unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Self {
        Client {
            stream,
            next_correlation_id: 1,
            client_id: Some("rivulet".to_string()),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            timeout: DEFAULT_TIMEOUT,
            low_water: LowWater::none(),
        }
    }

    /// The receive low-water mark of `stream`'s socket, raised while much
    /// of a large response is missing (`Stream::low_water`); without it
    /// every arriving segment wakes the reader.
    pub fn with_low_water(mut self, low_water: LowWater) -> Self {
        self.low_water = low_water;
        self
    }

    /// The client id sent in request headers (`None`: null).
    pub fn with_client_id(mut self, client_id: Option<String>) -> Self {
        self.client_id = client_id;
        self
    }

    /// Responses whose size prefix claims more are refused unread.
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// How long a request may take, from sending it to the end of its
    /// response.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    pub fn into_inner(self) -> S {
        self.stream
    }

    /// The correlation id the next request gets.
    pub fn next_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1).max(1);
        id
    }

    /// Send `request` at `version` and read its response.
    pub async fn round_trip<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, WireError> {
        let correlation_id = self.next_correlation_id();
        let frame = encode_request(request, version, correlation_id, self.client_id.as_deref())?;
        let timeout = self.timeout;
        let exchange = async {
            self.stream.write_all(&frame).await?;
            // TLS streams hold written records until flushed.
            self.stream.flush().await?;
            self.read_frame().await
        };
        let response = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| WireError::Timeout(timeout))??;
        decode_response::<R>(response, version, correlation_id)
    }

    /// Write `bytes` as they are (a whole frame, part of one, or several).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let timeout = self.timeout;
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(timeout, write)
            .await
            .map_err(|_| WireError::Timeout(timeout))??;
        Ok(())
    }

    /// Read one response frame (without its size prefix), undecoded.
    pub async fn read_response(&mut self) -> Result<Bytes, WireError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.read_frame())
            .await
            .map_err(|_| WireError::Timeout(timeout))?
    }

    async fn read_frame(&mut self) -> Result<Bytes, WireError> {
        let size = read_size(
            &mut self.stream,
            MIN_RESPONSE_SIZE,
            self.max_response_bytes,
            self.timeout,
        )
        .await?;
        read_body(&mut self.stream, size, self.timeout, &mut self.low_water).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, MetadataRequest};
    use tokio::io::duplex;

    const IDLE: Duration = Duration::from_secs(5);

    /// A one-request server: reads a request frame, answers with `respond`.
    async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
        mut s: S,
        respond: impl FnOnce(RequestHeader) -> BytesMut,
    ) -> S {
        let size = read_size(&mut s, MIN_REQUEST_SIZE, 1 << 20, IDLE)
            .await
            .unwrap();
        let mut frame = read_body(&mut s, size, IDLE, &mut LowWater::none())
            .await
            .unwrap();
        let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).unwrap();
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let header =
            RequestHeader::decode(&mut frame, key.request_header_version(version)).unwrap();
        let out = respond(header);
        s.write_all(&out).await.unwrap();
        s
    }

    fn api_versions_response(correlation_id: i32, extra: &[u8]) -> BytesMut {
        let body = ApiVersionsResponse::default().with_error_code(0);
        encode_response(ApiKey::ApiVersions, 3, 0, correlation_id, 64, |out| {
            body.encode(out, 3).map_err(|e| e.to_string())?;
            out.put_slice(extra);
            Ok(())
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_typed_round_trip_sends_the_header_and_decodes_the_response() {
        let (a, b) = duplex(1 << 16);
        let server = tokio::spawn(serve_one(b, |h| {
            assert_eq!(h.request_api_key, ApiKey::ApiVersions as i16);
            assert_eq!(h.request_api_version, 3);
            assert_eq!(h.client_id.as_deref(), Some("tester"));
            api_versions_response(h.correlation_id, &[])
        }));
        let mut client = Client::new(a).with_client_id(Some("tester".into()));
        let resp = client
            .round_trip(3, &ApiVersionsRequest::default())
            .await
            .unwrap();
        assert_eq!(resp.error_code, 0);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_response_with_bytes_after_its_body_is_refused() {
        let (a, b) = duplex(1 << 16);
        tokio::spawn(serve_one(b, |h| {
            api_versions_response(h.correlation_id, &[0, 0])
        }));
        let err = Client::new(a)
            .round_trip(3, &ApiVersionsRequest::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, WireError::TrailingBytes { extra: 2, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_response_for_another_request_is_refused() {
        let (a, b) = duplex(1 << 16);
        tokio::spawn(serve_one(b, |h| {
            api_versions_response(h.correlation_id + 7, &[])
        }));
        let err = Client::new(a)
            .round_trip(3, &ApiVersionsRequest::default())
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::Correlation { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_response_claiming_a_huge_array_is_refused_before_decoding() {
        let (a, b) = duplex(1 << 16);
        tokio::spawn(serve_one(b, |h| {
            // Metadata v1 response: throttle-less v1 starts with the brokers
            // array; claim 2^31-1 brokers in a 4-byte body.
            build_frame(16, |out| {
                out.put_i32(h.correlation_id);
                out.put_i32(i32::MAX);
                Ok::<(), String>(())
            })
            .unwrap()
        }));
        let err = Client::new(a)
            .round_trip(1, &MetadataRequest::default())
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::Bounds { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_size_prefix_above_the_limit_is_refused_unread() {
        let (mut a, mut b) = duplex(64);
        b.write_all(&(64 * 1024 * 1024i32).to_be_bytes())
            .await
            .unwrap();
        let err = read_size(&mut a, MIN_REQUEST_SIZE, 1 << 20, IDLE)
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::BadSize { .. }), "{err}");
        b.write_all(&(-1i32).to_be_bytes()).await.unwrap();
        let err = read_size(&mut a, MIN_REQUEST_SIZE, 1 << 20, IDLE)
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::BadSize { size: -1, .. }), "{err}");
    }

    #[tokio::test]
    async fn a_stalled_body_holds_only_what_arrived_and_times_out() {
        let (mut a, mut b) = duplex(1 << 16);
        b.write_all(&[7u8; 100]).await.unwrap();
        let read = tokio::spawn(async move {
            read_body(
                &mut a,
                1 << 30,
                Duration::from_millis(100),
                &mut LowWater::none(),
            )
            .await
        });
        let err = read.await.unwrap().unwrap_err();
        assert!(matches!(err, WireError::Idle(_)), "{err}");
        drop(b);
    }

    #[tokio::test]
    async fn a_clean_close_before_a_frame_is_eof() {
        let (mut a, b) = duplex(64);
        drop(b);
        let err = read_size(&mut a, MIN_REQUEST_SIZE, 1 << 20, IDLE)
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::Eof), "{err}");
    }

    /// A blocking reader that hands out at most `step` bytes per read.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
        reads: usize,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.step).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            self.reads += 1;
            Ok(n)
        }
    }

    #[test]
    fn a_blocking_read_takes_one_frame_as_it_arrives() {
        let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut bytes = build_frame(body.len(), |out| {
            out.put_slice(&body);
            Ok::<(), String>(())
        })
        .unwrap()
        .to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 8]);
        let mut r = Trickle {
            bytes: &bytes,
            step: 1000,
            reads: 0,
        };
        let frame = read_frame_blocking(&mut r, MIN_REQUEST_SIZE, 1 << 20).unwrap();
        assert_eq!(&frame[..], &body[..]);
        assert!(r.reads > 200, "read in steps: {}", r.reads);
        // The next frame's prefix is left for the next read: its body is
        // missing, which is an EOF.
        assert_eq!(r.bytes, &[0, 0, 0, 8]);
        let err = read_frame_blocking(&mut r, MIN_REQUEST_SIZE, 1 << 20).unwrap_err();
        assert!(matches!(err, WireError::Eof), "{err}");
    }

    #[test]
    fn a_blocking_read_refuses_a_bad_prefix_and_a_truncated_body() {
        let cases: [(&[u8], &str); 5] = [
            (&[0, 0, 0, 3, 1, 2, 3], "below the minimum"),
            (&[0x7f, 0xff, 0xff, 0xff], "above the limit"),
            (&[0xff, 0xff, 0xff, 0xfb], "negative"),
            (&[0, 0], "a torn prefix"),
            (&[0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8], "a truncated body"),
        ];
        for (bytes, what) in cases {
            let mut r = bytes;
            let err = read_frame_blocking(&mut r, MIN_REQUEST_SIZE, 1 << 20).unwrap_err();
            let expected = match what {
                "a torn prefix" | "a truncated body" => matches!(err, WireError::Eof),
                _ => matches!(err, WireError::BadSize { .. }),
            };
            assert!(expected, "{what}: {err}");
        }
        let mut r: &[u8] = &[];
        let err = read_frame_blocking(&mut r, MIN_REQUEST_SIZE, 1 << 20).unwrap_err();
        assert!(matches!(err, WireError::Eof), "{err}");
    }

    #[test]
    fn raw_and_typed_requests_frame_the_same_bytes() {
        let req = MetadataRequest::default().with_topics(None);
        let typed = encode_request(&req, 4, 9, Some("c")).unwrap();
        let mut body = BytesMut::new();
        req.encode(&mut body, 4).unwrap();
        let raw = encode_raw_request(ApiKey::Metadata, 4, 9, Some("c"), &body).unwrap();
        assert_eq!(typed, raw);
        let size = i32::from_be_bytes([typed[0], typed[1], typed[2], typed[3]]) as usize;
        assert_eq!(size, typed.len() - 4);
    }
}
