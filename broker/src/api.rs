//! The API table: which Kafka APIs and versions this broker implements (and
//! so advertises in ApiVersions), and the dispatch from a decoded request to
//! its handler.
//!
//! Produce is advertised from v0 although v0–v2 bodies are refused, because
//! older librdkafka disables compression when a broker's minimum Produce
//! version is above 0 (KAFKA-18659). Produce and Fetch stop at the last
//! name-addressed versions (12); Metadata stops at 12. OffsetForLeaderEpoch
//! starts at v2: the codec has no v0/v1 (Kafka 4.0 dropped them, KIP-896),
//! and librdkafka only sends v2.

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
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
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
    peer: SocketAddr,
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
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(handlers::offset_for_leader_epoch::handle(broker, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(handlers::create_topics::handle(broker, r, v).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(handlers::delete_topics::handle(broker, r, v).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(handlers::create_partitions::handle(broker, r, v).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(handlers::describe_configs::handle(broker, r, v))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(handlers::alter_configs::handle(broker, r, v).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            handlers::alter_configs::handle_incremental(broker, r, v).await,
        ),
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(handlers::describe_cluster::handle(broker, r, v))
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(handlers::delete_records::handle(broker, r, v).await)
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(handlers::describe_log_dirs::handle(broker, r, v))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(handlers::init_producer_id::handle(broker, r, v).await)
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(handlers::groups::find_coordinator(broker, r, v).await)
        }
        RequestKind::JoinGroup(r) => {
            let client_id = header.client_id.as_deref().unwrap_or_default();
            let host = peer.ip().to_string();
            ResponseKind::JoinGroup(
                handlers::groups::join_group(broker, r, v, client_id, &format!("/{host}")).await,
            )
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(handlers::groups::sync_group(broker, r, v).await)
        }
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(handlers::groups::heartbeat(broker, r, v).await)
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(handlers::groups::leave_group(broker, r, v).await)
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(handlers::groups::list_groups(broker, r, v).await)
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(handlers::groups::describe_groups(broker, r, v).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(handlers::groups::delete_groups(broker, r, v).await)
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(handlers::offsets::offset_commit(broker, r, v).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(handlers::offsets::offset_fetch(broker, r, v).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(handlers::offsets::offset_delete(broker, r, v).await)
        }
        // The version check before decoding admits only the APIs above.
        _ => return None,
    })
}
