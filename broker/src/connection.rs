//! One client connection: read length-prefixed frames, check the API key
//! and version against what we support *before* decoding, decode, dispatch,
//! and write responses in request order.
//!
//! Bad input never takes the broker down: a size prefix that is negative or
//! above `socket.request.max.bytes` is refused without allocating; an
//! unknown API key, an unsupported version or an undecodable body closes
//! this connection with a logged reason; an ApiVersions request for a
//! version above ours gets `UNSUPPORTED_VERSION` in the v0 shape with our
//! ranges, so the client can retry (KIP-511). ApiVersions responses always
//! use response header v0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info};

use crate::api;
use crate::broker::Broker;

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum CloseReason {
    #[error("client closed the connection")]
    Eof,
    #[error("idle for longer than connections.max.idle.ms")]
    Idle,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("request size {size} is outside 8..={limit} (socket.request.max.bytes)")]
    BadSize { size: i32, limit: usize },
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {key:?}")]
    UnsupportedVersion { key: ApiKey, version: i16 },
    #[error("cannot decode {key:?} v{version}: {message}")]
    Decode {
        key: ApiKey,
        version: i16,
        message: String,
    },
    #[error("cannot encode the response to {key:?} v{version}: {message}")]
    Encode {
        key: ApiKey,
        version: i16,
        message: String,
    },
}

/// Serve one connection until it closes.
pub async fn serve(mut stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>) {
    let _ = stream.set_nodelay(true);
    let reason = run(&mut stream, peer, &broker).await;
    match &reason {
        CloseReason::Eof => debug!(%peer, "connection closed by client"),
        other => info!(%peer, reason = %other, "closing connection"),
    }
}

async fn run(stream: &mut TcpStream, peer: SocketAddr, broker: &Arc<Broker>) -> CloseReason {
    let limit = broker.config.socket_request_max_bytes;
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    loop {
        let mut size = [0u8; 4];
        match tokio::time::timeout(idle, stream.read_exact(&mut size)).await {
            Err(_) => return CloseReason::Idle,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return CloseReason::Eof,
            Ok(Err(e)) => return CloseReason::Io(e),
            Ok(Ok(_)) => {}
        }
        let size = i32::from_be_bytes(size);
        if size < 8 || size as usize > limit {
            return CloseReason::BadSize { size, limit };
        }
        let mut frame = BytesMut::zeroed(size as usize);
        match tokio::time::timeout(idle, stream.read_exact(&mut frame)).await {
            Err(_) => return CloseReason::Idle,
            Ok(Err(e)) => return CloseReason::Io(e),
            Ok(Ok(_)) => {}
        }
        match handle_frame(frame.freeze(), peer, broker).await {
            Ok(Some(response)) => {
                if let Err(e) = stream.write_all(&response).await {
                    return CloseReason::Io(e);
                }
            }
            Ok(None) => {}
            Err(reason) => return reason,
        }
    }
}

/// Decode, handle and encode one request; `None` when no response is due
/// (produce with acks=0).
async fn handle_frame(
    mut frame: Bytes,
    peer: SocketAddr,
    broker: &Arc<Broker>,
) -> Result<Option<BytesMut>, CloseReason> {
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
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
    let header_version = key.request_header_version(version);
    let header =
        RequestHeader::decode(&mut frame, header_version).map_err(|e| CloseReason::Decode {
            key,
            version,
            message: e.to_string(),
        })?;
    let request =
        RequestKind::decode(key, &mut frame, version).map_err(|e| CloseReason::Decode {
            key,
            version,
            message: e.to_string(),
        })?;
    let Some(response) = api::dispatch(broker, &header, request, peer).await else {
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
    let err = |e: anyhow::Error| CloseReason::Encode {
        key,
        version,
        message: e.to_string(),
    };
    // Encode straight after a size placeholder and patch it in: one buffer,
    // no second copy of the (possibly large) body.
    // Fetch responses are large: size the buffer once instead of regrowing.
    let capacity = match response {
        ResponseKind::Fetch(r) => r.compute_size(version).unwrap_or(0) + 64,
        _ => 512,
    };
    let mut out = BytesMut::with_capacity(capacity);
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, header_version)
        .map_err(err)?;
    response.encode(&mut out, version).map_err(err)?;
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(out)
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
