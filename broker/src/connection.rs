//! One client connection: read length-prefixed frames, check the API key
//! and version against what we support *before* decoding, decode, dispatch,
//! and write responses in request order.
//!
//! Bad input never takes the broker down: a size prefix that is negative or
//! above `socket.request.max.bytes` is refused without allocating; a frame's
//! body is read as it arrives (a client that sends a size and stalls holds
//! only what it sent) after reserving its size in the request memory pool
//! ([`crate::request_memory`]); every count, length and size in the frame is
//! checked against the bytes present before `kafka-protocol` decodes it
//! ([`rivulet_protocol::request`]); an unknown API key, an unsupported
//! version or a body refused by those checks or by the decoder closes this
//! connection with a logged reason; an ApiVersions request for a version
//! above ours gets `UNSUPPORTED_VERSION` in the v0 shape with our ranges, so
//! the client can retry (KIP-511). ApiVersions responses always use response
//! header v0.
//!
//! The connection is plain TCP or TLS ([`Stream`]); which listener it came
//! in on and who the client is travel with it as its [`Session`]. On a SASL
//! listener every frame passes the connection's [`Authenticator`] first
//! (authentication, re-authentication, session expiry: [`crate::sasl`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};
use kafka_protocol::protocol::Encodable;
use rivulet_protocol::request::{self, RequestError};
use rivulet_protocol::tls::Stream;
use rivulet_protocol::wire::{self, WireError};
use tokio::io::AsyncWriteExt;
use tracing::{debug, info};

use crate::api;
use crate::context::BrokerContext;
use crate::dispatch;
use crate::request_memory::{RequestMemory, Reservation};
use crate::sasl::{Authenticator, Outcome};
use crate::session::Session;

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum CloseReason {
    #[error("client closed the connection")]
    Eof,
    #[error("idle for longer than connections.max.idle.ms")]
    Idle,
    #[error(
        "the {size}-byte request body did not arrive within request.body.timeout.ms ({timeout:?})"
    )]
    SlowBody { size: usize, timeout: Duration },
    #[error("the client did not take its {size}-byte response within request.body.timeout.ms ({timeout:?})")]
    SlowReader { size: usize, timeout: Duration },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("request size {size} is outside 8..={limit} (socket.request.max.bytes)")]
    BadSize { size: i32, limit: usize },
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {key:?}")]
    UnsupportedVersion { key: ApiKey, version: i16 },
    #[error("{0}")]
    Request(#[from] RequestError),
    #[error("cannot encode the response to {key:?} v{version}: {message}")]
    Encode {
        key: ApiKey,
        version: i16,
        message: String,
    },
    /// Refused by the SASL authenticator ([`crate::sasl`]).
    #[error("SASL: {0}")]
    Sasl(String),
}

impl CloseReason {
    fn from_wire(e: WireError, limit: usize) -> Self {
        match e {
            WireError::Eof => CloseReason::Eof,
            WireError::Idle(_) | WireError::Timeout(_) => CloseReason::Idle,
            WireError::Io(e) => CloseReason::Io(e),
            WireError::BadSize { size, .. } => CloseReason::BadSize { size, limit },
            other => CloseReason::Io(std::io::Error::other(other)),
        }
    }
}

/// Serve one connection until it closes.
pub async fn serve(
    mut stream: Stream,
    mut session: Session,
    broker: Arc<BrokerContext>,
    memory: Arc<RequestMemory>,
) {
    let _ = stream.tcp().set_nodelay(true);
    let peer = session.peer;
    debug!(%peer, listener = %session.listener, principal = %session.principal, "connection open");
    let reason = run(&mut stream, &mut session, &broker, &memory).await;
    let (listener, principal) = (&session.listener, &session.principal);
    match &reason {
        CloseReason::Eof => debug!(%peer, %listener, "connection closed by client"),
        other => info!(%peer, %listener, %principal, reason = %other, "closing connection"),
    }
}

async fn run(
    stream: &mut Stream,
    session: &mut Session,
    broker: &Arc<BrokerContext>,
    memory: &RequestMemory,
) -> CloseReason {
    let limit = broker.config.socket_request_max_bytes;
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let body_timeout = Duration::from_millis(broker.config.request_body_timeout_ms);
    let mut auth = Authenticator::new(broker, session);
    loop {
        // Raw SASL tokens (after SaslHandshake v0) have no request header;
        // frames before authentication are bounded by
        // sasl.server.max.receive.size.
        let min = if auth.raw_tokens() {
            0
        } else {
            wire::MIN_REQUEST_SIZE
        };
        let frame_limit = auth.frame_limit(limit);
        let size = match wire::read_size(stream, min, frame_limit, idle).await {
            Ok(size) => size,
            Err(e) => return CloseReason::from_wire(e, frame_limit),
        };
        // Request times (crate::metrics) start once the size is in.
        let received = std::time::Instant::now();
        // Held until the response is written: the frame and what decoding
        // it took stay alive that long.
        let mut reservation = memory.reserve_frame(size).await;
        let queue = received.elapsed();
        let read = wire::read_body(stream, size, idle);
        let frame = match tokio::time::timeout(body_timeout, read).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => return CloseReason::from_wire(e, limit),
            Err(_) => {
                return CloseReason::SlowBody {
                    size,
                    timeout: body_timeout,
                }
            }
        };
        let mut timed = None;
        let handled = match auth.on_frame(&frame, session, broker).await {
            Outcome::Serve => {
                let key = i16::from_be_bytes([
                    frame.first().copied().unwrap_or(0),
                    frame.get(1).copied().unwrap_or(0),
                ]);
                let started = std::time::Instant::now();
                let (handled, remote) = crate::metrics::with_remote_timer(handle_frame(
                    frame,
                    session,
                    broker,
                    memory,
                    &mut reservation,
                ))
                .await;
                timed = Some((key, started.elapsed(), remote));
                handled
            }
            Outcome::Reply(response) => Ok(Some(response)),
            Outcome::Close(response, reason) => {
                // The error response first (SASL_AUTHENTICATION_FAILED and
                // its message), then the close.
                if let Some(response) = response {
                    let _ = write_response(stream, &response, body_timeout).await;
                }
                return CloseReason::Sasl(reason);
            }
        };
        match handled {
            Ok(Some(response)) => {
                // The response counts against the pool while it waits for
                // the client (never waiting: it exists already), so large
                // requests hold back while unread responses pile up; a
                // client that does not take it in time is disconnected.
                memory.try_extend(&mut reservation, response.len());
                if let Err(reason) = write_response(stream, &response, body_timeout).await {
                    return reason;
                }
            }
            Ok(None) => {}
            Err(reason) => return reason,
        }
        if let Some((key, handling, remote)) = timed {
            broker.metrics.request(
                key,
                crate::metrics::RequestTimes {
                    queue,
                    local: handling.saturating_sub(remote),
                    remote,
                    total: received.elapsed(),
                },
            );
        }
    }
}

/// Write and flush one response (a TLS stream holds written records until
/// flushed); a client that does not take it within `timeout` is a
/// [`CloseReason::SlowReader`].
async fn write_response(
    stream: &mut Stream,
    response: &[u8],
    timeout: Duration,
) -> Result<(), CloseReason> {
    let write = async {
        stream.write_all(response).await?;
        stream.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(CloseReason::Io(e)),
        Err(_) => Err(CloseReason::SlowReader {
            size: response.len(),
            timeout,
        }),
    }
}

/// Decode, handle and encode one request; `None` when no response is due
/// (produce with acks=0). `frame` is at least 8 bytes (the caller checks the
/// size prefix). `reservation` is settled to the frame and its decoded size.
pub async fn handle_frame(
    frame: Bytes,
    session: &Session,
    broker: &Arc<BrokerContext>,
    memory: &RequestMemory,
    reservation: &mut Reservation,
) -> Result<Option<BytesMut>, CloseReason> {
    let b = |i: usize| frame.get(i).copied().unwrap_or(0);
    let raw_key = i16::from_be_bytes([b(0), b(1)]);
    let version = i16::from_be_bytes([b(2), b(3)]);
    let correlation_id = i32::from_be_bytes([b(4), b(5), b(6), b(7)]);
    let key = ApiKey::try_from(raw_key).map_err(|_| CloseReason::UnknownApiKey(raw_key))?;
    let Some(range) = api::supported(key) else {
        return Err(CloseReason::UnknownApiKey(raw_key));
    };
    if version < range.min || version > range.max {
        if key == ApiKey::ApiVersions && version > range.max {
            return Ok(Some(unsupported_api_versions(correlation_id)?));
        }
        return Err(CloseReason::UnsupportedVersion { key, version });
    }
    let frame_len = frame.len();
    let decoded = request::decode(frame, key, version)?;
    // Keep what this request takes, give back the rest of the worst case.
    reservation.settle(
        memory,
        frame_len.saturating_add(decoded.bounds.decoded_estimate),
    );
    let Some(response) = dispatch::dispatch(broker, &decoded.header, decoded.body, session).await
    else {
        return Ok(None);
    };
    encode_response(key, version, correlation_id, &response).map(Some)
}

fn encode_response(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Result<BytesMut, CloseReason> {
    let header_version = if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(version)
    };
    // Fetch responses are large: size the buffer once instead of regrowing.
    let capacity = match response {
        ResponseKind::Fetch(r) => r.compute_size(version).unwrap_or(0) + 64,
        _ => 512,
    };
    wire::encode_response(
        key,
        version,
        header_version,
        correlation_id,
        capacity,
        |out| response.encode(out, version).map_err(|e| e.to_string()),
    )
    .map_err(|e| CloseReason::Encode {
        key,
        version,
        message: e.to_string(),
    })
}

/// UNSUPPORTED_VERSION for a too-new ApiVersions request, in the v0 body
/// shape with our supported ranges, so the client retries with one we know.
fn unsupported_api_versions(correlation_id: i32) -> Result<BytesMut, CloseReason> {
    let body = ApiVersionsResponse::default()
        .with_error_code(kafka_protocol::ResponseError::UnsupportedVersion.code())
        .with_api_keys(api::api_versions());
    encode_response(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &ResponseKind::ApiVersions(body),
    )
}
