//! The API table: which Kafka APIs and versions this broker implements (and
//! so advertises in ApiVersions), and the dispatch from a decoded request to
//! its handler.
//!
//! Produce is advertised from v0 although v0–v2 bodies are refused, because
//! older librdkafka disables compression when a broker's minimum Produce
//! version is above 0 (KAFKA-18659). Produce and Fetch stop at the last
//! name-addressed versions (12); Metadata stops at 12.

use std::net::SocketAddr;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::VersionRange;

use crate::broker::Broker;
use crate::handlers;

/// `(api, min, max)` of every API this broker serves.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
];

/// The version range served for `key`, if any.
pub fn supported(key: ApiKey) -> Option<VersionRange> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| VersionRange {
            min: *min,
            max: *max,
        })
}

/// The ApiVersions entries.
pub fn api_versions() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(k, min, max)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

/// Run the handler for `request`; `None` when no response is sent.
pub async fn dispatch(
    broker: &Broker,
    header: &RequestHeader,
    request: RequestKind,
    _peer: SocketAddr,
) -> Option<ResponseKind> {
    let v = header.request_api_version;
    Some(match request {
        RequestKind::ApiVersions(r) => {
            ResponseKind::ApiVersions(handlers::api_versions::handle(r, v))
        }
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(handlers::metadata::handle(broker, r, v).await)
        }
        RequestKind::Produce(r) => {
            let acks = r.acks;
            let resp = handlers::produce::handle(broker, r, v).await;
            if acks == 0 {
                return None;
            }
            ResponseKind::Produce(resp)
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(handlers::fetch::handle(broker, r, v).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(handlers::list_offsets::handle(broker, r, v))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(handlers::create_topics::handle(broker, r, v).await)
        }
        // The version check before decoding admits only the APIs above.
        _ => return None,
    })
}
