//! Decoding a request frame (the bytes after the size prefix) into
//! `kafka-protocol`'s typed header and body, with the bounded pre-pass of
//! [`crate::request_bounds`] first so that nothing the client claims can
//! size an allocation its bytes cannot back.
//!
//! The caller checks the API key and version against what it serves before
//! calling [`decode`]; this module only refuses what cannot be decoded
//! safely, with a typed reason.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use thiserror::Error;

use crate::request_bounds::{self, Bounds, BoundsError};

/// A decoded request and what the pre-pass measured of it.
#[derive(Debug)]
pub struct DecodedRequest {
    pub header: RequestHeader,
    pub body: RequestKind,
    pub bounds: Bounds,
}

/// Why a request frame could not be decoded.
#[derive(Debug, Error)]
pub enum RequestError {
    #[error("request header of {key:?} v{version}: {source}")]
    HeaderBounds {
        key: ApiKey,
        version: i16,
        source: BoundsError,
    },
    #[error("{key:?} v{version} refused before decoding: {source}")]
    Bounds {
        key: ApiKey,
        version: i16,
        source: BoundsError,
    },
    #[error("{key:?} v{version}: the pre-pass walked {walked} bytes of the body, the decoder read {decoded} (a bug in rivulet's request table)")]
    LayoutMismatch {
        key: ApiKey,
        version: i16,
        walked: usize,
        decoded: usize,
    },
    #[error("cannot decode {key:?} v{version}: {message}")]
    Decode {
        key: ApiKey,
        version: i16,
        message: String,
    },
}

/// Decode `frame` (header and body, without the size prefix) as `key` at
/// `version`. The pre-pass runs first; the decoder only sees frames whose
/// every count fits in the bytes that follow it.
pub fn decode(frame: Bytes, key: ApiKey, version: i16) -> Result<DecodedRequest, RequestError> {
    let header_version = key.request_header_version(version);
    let header_len = request_bounds::check_header(&frame, header_version).map_err(|source| {
        RequestError::HeaderBounds {
            key,
            version,
            source,
        }
    })?;
    let body_bytes = frame.get(header_len..).unwrap_or_default();
    let bounds = request_bounds::check_body(key as i16, version, body_bytes).map_err(|source| {
        RequestError::Bounds {
            key,
            version,
            source,
        }
    })?;
    let mut buf = frame;
    let header =
        RequestHeader::decode(&mut buf, header_version).map_err(decode_error(key, version))?;
    let body_len = buf.len();
    let body = RequestKind::decode(key, &mut buf, version).map_err(decode_error(key, version))?;
    // The walk and the decoder must read the same layout: the walk's checks
    // protect only the counts it read where the decoder reads them. A
    // difference is a bug in the table (refused loudly rather than trusted).
    let decoded = body_len - buf.len();
    if decoded != bounds.consumed {
        return Err(RequestError::LayoutMismatch {
            key,
            version,
            walked: bounds.consumed,
            decoded,
        });
    }
    Ok(DecodedRequest {
        header,
        body,
        bounds,
    })
}

fn decode_error<E: std::fmt::Display>(key: ApiKey, version: i16) -> impl Fn(E) -> RequestError {
    move |e| RequestError::Decode {
        key,
        version,
        message: e.to_string(),
    }
}
