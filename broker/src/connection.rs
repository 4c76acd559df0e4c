//! One client connection: read length-prefixed frames, check the API key
//! and version against what we support *before* decoding, decode, dispatch,
//! and write responses in request order — pipelined: a produce waiting for
//! replication does not hold back the reading and appending of the next
//! (see [`run`]).
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

use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{FuturesOrdered, StreamExt};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};
use kafka_protocol::protocol::Encodable;
use rivulet_protocol::request::{self, RequestError};
use rivulet_protocol::spliced::{self, FilePiece, FileSender, SplicedFrame};
use rivulet_protocol::tls::Stream;
use rivulet_protocol::wire::LowWater;
use rivulet_protocol::wire::{self, WireError};
use tokio::io::{AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info};

use crate::api;
use crate::context::BrokerContext;
use crate::dispatch;
use crate::handlers::fetch::FetchFiles;
use crate::listeners::SecurityProtocol;
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
    #[error("the broker is shutting down")]
    Shutdown,
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

/// How long closing a connection may take: a TLS close_notify (or a bare
/// FIN) to a client that stopped reading must not hold anything up.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(200);

/// Serve one connection until it closes, or until `stop` (the broker shuts
/// down). Either way the stream is shut down properly: a TLS client gets
/// close_notify and sees the end of the connection, not a truncation.
pub async fn serve(
    mut stream: Stream,
    mut session: Session,
    broker: Arc<BrokerContext>,
    memory: Arc<RequestMemory>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.tcp().set_nodelay(true);
    let peer = session.peer;
    debug!(%peer, listener = %session.listener, principal = %session.principal, "connection open");
    let reason = tokio::select! {
        reason = run(&mut stream, &mut session, &broker, &memory) => reason,
        _ = stop.changed() => CloseReason::Shutdown,
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
    let (listener, principal) = (&session.listener, &session.principal);
    match &reason {
        CloseReason::Eof => debug!(%peer, %listener, "connection closed by client"),
        CloseReason::Shutdown => debug!(%peer, %listener, "connection closed: shutting down"),
        other => info!(%peer, %listener, %principal, reason = %other, "closing connection"),
    }
}

/// One request on its way out: its response (or none, or the reason to
/// close), what it holds of the pool and of the pipeline until written, and
/// its timings for the request metrics.
struct Answer {
    response: Result<Option<SplicedFrame>, CloseReason>,
    reservation: Reservation,
    _slot: OwnedSemaphorePermit,
    timed: Option<Timed>,
}

/// Times of one served request, as [`crate::metrics::RequestTimes`] wants.
struct Timed {
    key: i16,
    received: Instant,
    queue: Duration,
    handling: Duration,
    remote: Duration,
}

/// A response in the connection's FIFO: ready, or a produce still waiting.
type Pending<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// Requests are read, authenticated and handled in order by the read loop
/// ([`read_loop`]); responses are written in the same order by the write
/// loop ([`write_loop`]), which polls every pending one meanwhile. A
/// produce that waits (fsync, `acks=all` replication) leaves the read loop
/// once appended, so the next request is read and appended while it waits:
/// a producer with several requests in flight on one connection no longer
/// pays one replication round trip per request. At most
/// `connection.max.pipelined.requests` responses are pending at once; any
/// other request waits until every earlier response is written, so it runs
/// exactly as if requests were served one at a time.
async fn run(
    stream: &mut Stream,
    session: &mut Session,
    broker: &Arc<BrokerContext>,
    memory: &RequestMemory,
) -> CloseReason {
    let body_timeout = Duration::from_millis(broker.config.request_body_timeout_ms);
    let slots = broker.config.max_pipelined_requests.max(1);
    let pipeline = Arc::new(Semaphore::new(slots));
    let low_water = stream.low_water();
    // Follower fetches' records go from the log files to a plain socket.
    let socket = stream.plain_fd();
    let (reader, writer) = tokio::io::split(stream);
    let (tx, rx) = mpsc::unbounded_channel::<Pending<'_>>();
    let read = read_loop(
        (reader, low_water),
        session,
        broker,
        memory,
        &pipeline,
        slots,
        tx,
    );
    let write = write_loop(writer, socket, rx, broker, memory, body_timeout);
    tokio::pin!(read, write);
    tokio::select! {
        reason = &mut read => {
            // Earlier responses go out before the connection closes.
            match write.await {
                Ok(()) => reason,
                Err(failed) => failed,
            }
        }
        failed = &mut write => match failed {
            Err(failed) => failed,
            // The write loop ends cleanly only once the read loop is done.
            Ok(()) => read.await,
        },
    }
}

/// Read, authenticate and handle frames in order, queueing their responses
/// on `tx`; returns why the connection is to close.
async fn read_loop<'a>(
    (mut stream, mut low_water): (ReadHalf<&mut Stream>, LowWater),
    session: &mut Session,
    broker: &'a Arc<BrokerContext>,
    memory: &'a RequestMemory,
    pipeline: &Arc<Semaphore>,
    slots: usize,
    tx: mpsc::UnboundedSender<Pending<'a>>,
) -> CloseReason {
    let limit = broker.config.socket_request_max_bytes;
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let body_timeout = Duration::from_millis(broker.config.request_body_timeout_ms);
    let mut auth = Authenticator::new(broker, session);
    // Set by a request over its client quota (crate::client_quotas).
    let throttle = AtomicU32::new(0);
    loop {
        // A place in the pipeline before the next frame is read: a client
        // far ahead of its responses is not read meanwhile.
        let Ok(slot) = pipeline.clone().acquire_owned().await else {
            return CloseReason::Eof;
        };
        // Raw SASL tokens (after SaslHandshake v0) have no request header;
        // frames before authentication are bounded by
        // sasl.server.max.receive.size.
        let min = if auth.raw_tokens() {
            0
        } else {
            wire::MIN_REQUEST_SIZE
        };
        let frame_limit = auth.frame_limit(limit);
        let size = match wire::read_size(&mut stream, min, frame_limit, idle).await {
            Ok(size) => size,
            Err(e) => return CloseReason::from_wire(e, frame_limit),
        };
        // Request times (crate::metrics) start once the size is in.
        let received = Instant::now();
        // Held until the response is written: the frame and what decoding
        // it took stay alive that long.
        let mut reservation = memory.reserve_frame(size).await;
        let queue = received.elapsed();
        let read = wire::read_body(&mut stream, size, idle, &mut low_water);
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
        let key = i16::from_be_bytes([
            frame.first().copied().unwrap_or(0),
            frame.get(1).copied().unwrap_or(0),
        ]);
        let mut slot = slot;
        if slots > 1 && (auth.raw_tokens() || key != ApiKey::Produce as i16) {
            // Served as if alone: after every earlier response is out.
            drop(slot);
            let Ok(mut all) = pipeline.clone().acquire_many_owned(slots as u32).await else {
                return CloseReason::Eof;
            };
            drop(all.split(slots - 1));
            slot = all;
        }
        let pending = match auth.on_frame(&frame, session, broker).await {
            Outcome::Serve => {
                let started = Instant::now();
                let (staged, remote) = crate::metrics::with_remote_timer(stage_frame(
                    frame,
                    session,
                    broker,
                    memory,
                    &mut reservation,
                    &throttle,
                ))
                .await;
                let handling = started.elapsed();
                let timed = Timed {
                    key,
                    received,
                    queue,
                    handling,
                    remote,
                };
                match staged {
                    Ok(Staged::Now(response)) => {
                        ready(Ok(response), reservation, slot, Some(timed))
                    }
                    // Earlier responses go out, then the connection closes.
                    Err(reason) => return reason,
                    Ok(Staged::Later(rest)) => Box::pin(async move {
                        let started = Instant::now();
                        let (response, remote) = crate::metrics::with_remote_timer(rest).await;
                        Answer {
                            response,
                            reservation,
                            _slot: slot,
                            timed: Some(Timed {
                                handling: timed.handling + started.elapsed(),
                                remote: timed.remote + remote,
                                ..timed
                            }),
                        }
                    }),
                }
            }
            Outcome::Reply(response) => ready(
                Ok(Some(SplicedFrame::whole(response))),
                reservation,
                slot,
                None,
            ),
            Outcome::Close(response, reason) => {
                // The error response first (SASL_AUTHENTICATION_FAILED and
                // its message), then the close.
                let response = response.map(SplicedFrame::whole);
                let _ = tx.send(ready(Ok(response), reservation, slot, None));
                return CloseReason::Sasl(reason);
            }
        };
        if tx.send(pending).is_err() {
            // The write loop ended: it has the reason.
            return CloseReason::Eof;
        }
        // Over a client quota: the connection is not read until the rate
        // is back to it (KIP-219's muted channel).
        let ms = throttle.swap(0, Ordering::Relaxed);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
        }
    }
}

/// A response that is ready now.
fn ready<'a>(
    response: Result<Option<SplicedFrame>, CloseReason>,
    reservation: Reservation,
    slot: OwnedSemaphorePermit,
    timed: Option<Timed>,
) -> Pending<'a> {
    Box::pin(std::future::ready(Answer {
        response,
        reservation,
        _slot: slot,
        timed,
    }))
}

/// Write the responses queued on `rx` in order as each is ready (polling
/// all of them meanwhile); `Ok` once the read loop is done and every
/// response is out.
/// `socket`: the stream's descriptor when it is plain, for sending file
/// pieces (a [`FileSender`], made for the first response that has one).
async fn write_loop(
    mut stream: WriteHalf<&mut Stream>,
    socket: Option<RawFd>,
    mut rx: mpsc::UnboundedReceiver<Pending<'_>>,
    broker: &BrokerContext,
    memory: &RequestMemory,
    body_timeout: Duration,
) -> Result<(), CloseReason> {
    let mut fifo = FuturesOrdered::new();
    let mut reading = true;
    let mut files: Option<FileSender> = None;
    loop {
        let answer = tokio::select! {
            biased;
            Some(answer) = fifo.next(), if !fifo.is_empty() => answer,
            pending = rx.recv(), if reading => {
                match pending {
                    Some(pending) => fifo.push_back(pending),
                    None => reading = false,
                }
                continue;
            }
            else => return Ok(()),
        };
        let Answer {
            response,
            mut reservation,
            timed,
            ..
        } = answer;
        if let Some(response) = response? {
            // The response counts against the pool while it waits for
            // the client (never waiting: it exists already), so large
            // requests hold back while unread responses pile up; a
            // client that does not take it in time is disconnected.
            memory.try_extend(&mut reservation, response.len() - response.file_len());
            if files.is_none() && response.file_len() > 0 {
                // SAFETY: the socket is open while `stream` borrows it,
                // which outlives this loop. Without a sender (no descriptor
                // left) the pieces are read and written.
                files = socket.and_then(|fd| unsafe { FileSender::from_raw(fd) }.ok());
            }
            write_response(&mut stream, files.as_ref(), &response, body_timeout).await?;
        }
        if let Some(t) = timed {
            broker.metrics.request(
                t.key,
                crate::metrics::RequestTimes {
                    queue: t.queue,
                    local: t.handling.saturating_sub(t.remote),
                    remote: t.remote,
                    total: t.received.elapsed(),
                },
            );
        }
    }
}

/// Write and flush one response (a TLS stream holds written records until
/// flushed); a client that does not take it within `timeout` is a
/// [`CloseReason::SlowReader`].
async fn write_response(
    stream: &mut (impl AsyncWrite + Unpin),
    files: Option<&FileSender>,
    response: &SplicedFrame,
    timeout: Duration,
) -> Result<(), CloseReason> {
    let write = async {
        spliced::write_spliced(stream, response, files).await?;
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
    let throttle = AtomicU32::new(0);
    let response = match stage_frame(frame, session, broker, memory, reservation, &throttle).await?
    {
        Staged::Now(response) => response,
        Staged::Later(rest) => rest.await?,
    };
    response
        .map(SplicedFrame::flatten)
        .transpose()
        .map_err(CloseReason::Io)
}

/// A request's encoded response, or (a produce appended and waiting) the
/// future that gives it.
enum Staged<'a> {
    Now(Option<SplicedFrame>),
    Later(Pin<Box<dyn Future<Output = Result<Option<SplicedFrame>, CloseReason>> + Send + 'a>>),
}

/// [`handle_frame`] up to a produce's append ([`dispatch::dispatch_staged`]).
async fn stage_frame<'a>(
    frame: Bytes,
    session: &Session,
    broker: &'a Arc<BrokerContext>,
    memory: &RequestMemory,
    reservation: &mut Reservation,
    throttle: &AtomicU32,
) -> Result<Staged<'a>, CloseReason> {
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
            return Ok(Staged::Now(Some(unsupported_api_versions(correlation_id)?)));
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
    let encode = move |response: Option<ResponseKind>, files: &[(Bytes, FilePiece)]| match response
    {
        Some(response) => encode_response(key, version, correlation_id, &response, files).map(Some),
        None => Ok(None),
    };
    // Follower fetches' records from files where the socket is plain.
    let files = FetchFiles::new(matches!(
        session.protocol,
        SecurityProtocol::Plaintext | SecurityProtocol::SaslPlaintext
    ));
    let staged = dispatch::dispatch_staged(
        broker,
        &decoded.header,
        decoded.body,
        session,
        throttle,
        &files,
    )
    .await;
    match staged {
        dispatch::Dispatched::Now(response) => encode(response, &files.take()).map(Staged::Now),
        dispatch::Dispatched::Later(rest) => {
            Ok(Staged::Later(Box::pin(
                async move { encode(rest.await, &[]) },
            )))
        }
    }
}

/// The response frame; a Fetch response's records are spliced in by
/// reference, not copied ([`spliced`]): they are written out from the
/// buffers the log read them into, or (`files`, a follower's) from the log
/// files themselves.
fn encode_response(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
    files: &[(Bytes, FilePiece)],
) -> Result<SplicedFrame, CloseReason> {
    let header_version = if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(version)
    };
    let encode_error = |e: wire::WireError| CloseReason::Encode {
        key,
        version,
        message: e.to_string(),
    };
    let ResponseKind::Fetch(fetch) = response else {
        return wire::encode_response(key, version, header_version, correlation_id, 512, |out| {
            response.encode(out, version).map_err(|e| e.to_string())
        })
        .map(SplicedFrame::whole)
        .map_err(encode_error);
    };
    let records: Vec<Bytes> = fetch
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.clone())
        .collect();
    // Sized once instead of regrowing (less the records kept by reference).
    let capacity = fetch.compute_size(version).unwrap_or(0) + 64;
    wire::encode_response_spliced(
        key,
        version,
        header_version,
        correlation_id,
        capacity,
        &records,
        files,
        |out| fetch.encode(out, version).map_err(|e| e.to_string()),
    )
    .map_err(encode_error)
}

/// UNSUPPORTED_VERSION for a too-new ApiVersions request, in the v0 body
/// shape with our supported ranges, so the client retries with one we know.
fn unsupported_api_versions(correlation_id: i32) -> Result<SplicedFrame, CloseReason> {
    let body = ApiVersionsResponse::default()
        .with_error_code(kafka_protocol::ResponseError::UnsupportedVersion.code())
        .with_api_keys(api::api_versions());
    encode_response(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &ResponseKind::ApiVersions(body),
        &[],
    )
}
