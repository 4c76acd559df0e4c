//! ApiVersions: the APIs and versions this broker implements. Only what is
//! really implemented is listed; default-valued tagged fields are left out
//! (librdkafka 2.0 cannot parse them in v3).

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::api;

pub fn handle(_req: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api::api_versions())
        .with_finalized_features_epoch(-1)
}
