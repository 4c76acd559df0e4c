//! From a decoded request to its handler in [`crate::handlers`], and from
//! the handler's typed response back to a [`ResponseKind`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};

use crate::client_quotas;
use crate::context::BrokerContext;
use crate::handlers;
use crate::handlers::fetch::FetchFiles;
use crate::session::Session;

/// Authorize `request` ([`crate::acl_checks`]), then run the handler for
/// what is authorized; `None` when no response is sent.
pub async fn dispatch(
    broker: &BrokerContext,
    header: &RequestHeader,
    request: RequestKind,
    session: &Session,
) -> Option<ResponseKind> {
    let throttle = AtomicU32::new(0);
    let files = FetchFiles::off();
    match dispatch_staged(broker, header, request, session, &throttle, &files).await {
        Dispatched::Now(response) => response,
        Dispatched::Later(rest) => rest.await,
    }
}

/// A request's handling, split where a produce waits.
// Returned once per request and taken apart at once: boxing the response
// would cost an allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Dispatched<'a> {
    /// Handled; `None` when no response is sent.
    Now(Option<ResponseKind>),
    /// A produce whose records are appended; the rest (its fsync and
    /// replication waits, then the response) is this future, which needs
    /// nothing of the connection.
    Later(Pin<Box<dyn Future<Output = Option<ResponseKind>> + Send + 'a>>),
}

/// [`dispatch`], returning as soon as a produce is appended
/// ([`handlers::produce::stage`]) with its waits as
/// [`Dispatched::Later`]; every other request is handled at once. A
/// produce or consumer fetch over its client quota
/// ([`crate::client_quotas`]) says so in its response's
/// `throttle_time_ms` and sets `throttle` (ms): the connection is not read
/// again for that long. A follower fetch's records to be sent from files go
/// to `files` ([`FetchFiles`]), their stand-ins into the response.
pub async fn dispatch_staged<'a>(
    broker: &'a BrokerContext,
    header: &RequestHeader,
    mut request: RequestKind,
    session: &Session,
    throttle: &AtomicU32,
    files: &FetchFiles,
) -> Dispatched<'a> {
    // Topics named by id (Produce/Fetch v13+) get their names first: the
    // ACL checks and the handlers work on names.
    handlers::topic_ids::resolve(broker, &mut request, header.request_api_version);
    let authz = crate::authorizer::Authz::new(broker, session);
    let (request, post) = match crate::acl_checks::check(broker, &authz, header, request) {
        crate::acl_checks::Checked::Serve(request, post) => (request, post),
        crate::acl_checks::Checked::Respond(response) => return Dispatched::Now(response),
    };
    let client_id = header.client_id.as_deref().unwrap_or_default();
    let principal = session.principal.as_str();
    let RequestKind::Produce(r) = request else {
        let mut request = request;
        let fetch_quota = match &mut request {
            RequestKind::Fetch(f)
                if handlers::fetch::replica_id(f, header.request_api_version) < 0 =>
            {
                client_quotas::hooks::FetchQuota::limit(broker, principal, client_id, f)
            }
            _ => None,
        };
        let Some(mut response) = serve(broker, header, request, session, files).await else {
            return Dispatched::Now(None);
        };
        if let (Some(quota), ResponseKind::Fetch(f)) = (fetch_quota, &mut response) {
            let ms = quota.fetched(broker, principal, client_id, f);
            if ms > 0 {
                f.throttle_time_ms = f.throttle_time_ms.max(ms.min(i32::MAX as u32) as i32);
                throttle.store(ms, Ordering::Relaxed);
            }
        }
        if let Some(post) = post {
            post(&mut response);
        }
        return Dispatched::Now(Some(response));
    };
    let acks = r.acks;
    let quota_ms = client_quotas::hooks::produce(broker, principal, client_id, &r);
    if quota_ms > 0 {
        throttle.store(quota_ms, Ordering::Relaxed);
    }
    let staged = handlers::produce::stage(broker, r, header.request_api_version).await;
    let waiting = staged.is_waiting();
    let listener = session.listener.clone();
    let rest = async move {
        let mut response = staged.finish(broker, &listener).await;
        if acks == 0 {
            return None;
        }
        if quota_ms > 0 {
            let ms = quota_ms.min(i32::MAX as u32) as i32;
            response.throttle_time_ms = response.throttle_time_ms.max(ms);
        }
        let mut response = ResponseKind::Produce(response);
        if let Some(post) = post {
            post(&mut response);
        }
        Some(response)
    };
    if waiting {
        Dispatched::Later(Box::pin(rest))
    } else {
        Dispatched::Now(rest.await)
    }
}

/// Run the handler for `request` (Produce is staged by [`dispatch_staged`]);
/// `None` when no response is sent.
async fn serve(
    broker: &BrokerContext,
    header: &RequestHeader,
    request: RequestKind,
    session: &Session,
    files: &FetchFiles,
) -> Option<ResponseKind> {
    let v = header.request_api_version;
    Some(match request {
        RequestKind::ApiVersions(r) => {
            ResponseKind::ApiVersions(handlers::api_versions::handle(r, v))
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(
            handlers::metadata::handle(broker, r, v, &session.listener).await,
        ),
        RequestKind::Fetch(r) => ResponseKind::Fetch(
            handlers::fetch::handle(broker, r, v, &session.listener, files).await,
        ),
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
            handlers::incremental_alter_configs::handle(broker, r, v).await,
        ),
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(
            handlers::describe_cluster::handle(broker, r, v, &session.listener),
        ),
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(handlers::delete_records::handle(broker, r, v).await)
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(handlers::describe_log_dirs::handle(broker, r, v))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(handlers::init_producer_id::handle(broker, r, v).await)
        }
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(
            handlers::find_coordinator::handle(broker, r, v, &session.listener).await,
        ),
        RequestKind::JoinGroup(r) => {
            let client_id = header.client_id.as_deref().unwrap_or_default();
            let host = session.peer.ip().to_string();
            ResponseKind::JoinGroup(
                handlers::join_group::handle(broker, r, v, client_id, &format!("/{host}")).await,
            )
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(handlers::sync_group::handle(broker, r, v).await)
        }
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(handlers::heartbeat::handle(broker, r, v).await)
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(handlers::leave_group::handle(broker, r, v).await)
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(handlers::list_groups::handle(broker, r, v).await)
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(handlers::describe_groups::handle(broker, r, v).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(handlers::delete_groups::handle(broker, r, v).await)
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(handlers::offset_commit::handle(broker, r, v).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(handlers::offset_fetch::handle(broker, r, v).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(handlers::offset_delete::handle(broker, r, v).await)
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(handlers::txn_offset_commit::handle(broker, r, v).await)
        }
        // The version check before decoding admits only the APIs above.
        RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(
            handlers::add_partitions_to_txn::handle(broker, r, v).await,
        ),
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(handlers::add_offsets_to_txn::handle(broker, r, v).await)
        }
        RequestKind::EndTxn(r) => {
            ResponseKind::EndTxn(handlers::end_txn::handle(broker, r, v).await)
        }
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(handlers::write_txn_markers::handle(broker, r, v).await)
        }
        RequestKind::DescribeTransactions(r) => ResponseKind::DescribeTransactions(
            handlers::describe_transactions::handle(broker, r, v).await,
        ),
        RequestKind::DescribeProducers(r) => ResponseKind::DescribeProducers(
            handlers::describe_producers::handle(broker, r, v).await,
        ),
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(handlers::list_transactions::handle(broker, r, v).await)
        }
        RequestKind::DescribeAcls(r) => {
            ResponseKind::DescribeAcls(handlers::describe_acls::handle(broker, r, v))
        }
        RequestKind::CreateAcls(r) => {
            ResponseKind::CreateAcls(handlers::create_acls::handle(broker, r, v).await)
        }
        RequestKind::DeleteAcls(r) => {
            ResponseKind::DeleteAcls(handlers::delete_acls::handle(broker, r, v).await)
        }
        RequestKind::ConsumerGroupHeartbeat(r) => {
            let client_id = header.client_id.as_deref().unwrap_or_default();
            let host = format!("/{}", session.peer.ip());
            ResponseKind::ConsumerGroupHeartbeat(
                handlers::consumer_group_heartbeat::handle(broker, r, v, client_id, &host).await,
            )
        }
        RequestKind::ConsumerGroupDescribe(r) => ResponseKind::ConsumerGroupDescribe(
            handlers::consumer_group_describe::handle(broker, r, v).await,
        ),
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(
            handlers::user_scram_credentials::describe(broker, r),
        ),
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(
            handlers::user_scram_credentials::alter(broker, r).await,
        ),
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(handlers::describe_quorum::handle(broker, r, v).await)
        }
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(handlers::client_quotas::describe(broker, r))
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(handlers::client_quotas::alter(broker, r).await)
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(handlers::elect_leaders::handle(broker, r, v).await)
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            handlers::partition_reassignments::alter(broker, r).await,
        ),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(
            handlers::partition_reassignments::list(broker, r),
        ),
        _ => return None,
    })
}
