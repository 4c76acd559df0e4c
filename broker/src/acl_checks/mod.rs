//! What Kafka's `KafkaApis` authorizes on each API, in front of the
//! handlers: [`check`] takes a decoded request and either answers it at
//! once (nothing in it is authorized) or hands the handler the authorized
//! part, with a [`Post`] step that adds the refused entities to the
//! handler's response with their `*_AUTHORIZATION_FAILED` codes, drops
//! what the principal may not see (topics of an all-topics Metadata,
//! groups of ListGroups, ...) and fills the authorized-operations
//! bitfields from the real decisions. The handlers stay unaware of ACLs.
//!
//! Without an authorizer [`check`] returns the request untouched.

/// The end of a check that refused some of a request's entries: only the
/// refusals when nothing is left to serve (`left` is empty), else the
/// handler's answer to the rest with the refusals added to `Response.field`.
macro_rules! answer_refused {
    ($api:ident, $request:expr, $left:expr, $refused:expr, $response:ident.$field:ident) => {{
        let refused = $refused;
        if $left.is_empty() {
            let mut resp = $response::default();
            resp.$field = refused;
            Checked::Respond(Some(ResponseKind::$api(resp)))
        } else {
            serve(
                RequestKind::$api($request),
                Some(Box::new(move |resp| {
                    if let ResponseKind::$api(x) = resp {
                        x.$field.extend(refused);
                    }
                })),
            )
        }
    }};
}

mod admin;
mod data;
mod groups;
mod replicas;
mod txn;

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::ResponseError as E;
use rivulet_controller::acl::{AclOperation, ResourceType};

use crate::authorizer::Authz;
use crate::context::BrokerContext;
use crate::handlers::authorized_operations::{self, Resource};

/// What the authorizer adds to the handler's response.
pub type Post = Box<dyn FnOnce(&mut ResponseKind) + Send>;

/// The outcome of [`check`].
pub enum Checked {
    /// Serve this (possibly reduced) request, then apply the step if any.
    Serve(RequestKind, Option<Post>),
    /// Answer this (`None`: nothing, as for acks=0) without the handler.
    Respond(Option<ResponseKind>),
}

pub(crate) const TOPIC_DENIED: i16 = 29;
pub(crate) const GROUP_DENIED: i16 = 30;
pub(crate) const CLUSTER_DENIED: i16 = 31;
pub(crate) const TXN_ID_DENIED: i16 = 53;

const _: () = {
    assert!(E::TopicAuthorizationFailed.code() == TOPIC_DENIED);
    assert!(E::GroupAuthorizationFailed.code() == GROUP_DENIED);
    assert!(E::ClusterAuthorizationFailed.code() == CLUSTER_DENIED);
    assert!(E::TransactionalIdAuthorizationFailed.code() == TXN_ID_DENIED);
};

/// Authorize `request` as Kafka does for its API.
pub fn check(
    b: &BrokerContext,
    z: &Authz,
    header: &RequestHeader,
    request: RequestKind,
) -> Checked {
    if !z.enabled() {
        return Checked::Serve(request, None);
    }
    let v = header.request_api_version;
    use RequestKind as R;
    match request {
        R::Produce(r) => data::produce(z, r, v),
        R::Fetch(r) => data::fetch(z, r, v),
        R::ListOffsets(r) => data::list_offsets(z, r),
        R::OffsetForLeaderEpoch(r) => data::offset_for_leader_epoch(z, r),
        R::Metadata(r) => data::metadata(b, z, r, v),
        R::DeleteRecords(r) => data::delete_records(z, r),
        R::DescribeProducers(r) => data::describe_producers(z, r),
        R::CreateTopics(r) => admin::create_topics(z, r),
        R::DeleteTopics(r) => admin::delete_topics(b, z, r),
        R::CreatePartitions(r) => admin::create_partitions(z, r),
        R::DescribeConfigs(r) => admin::describe_configs(z, r),
        R::AlterConfigs(r) => admin::alter_configs(z, r),
        R::IncrementalAlterConfigs(r) => admin::incremental_alter_configs(z, r),
        R::DescribeCluster(r) => admin::describe_cluster(z, r),
        R::DescribeLogDirs(r) => admin::describe_log_dirs(z, r, v),
        R::DescribeAcls(r) => admin::describe_acls(z, r),
        R::CreateAcls(r) => admin::create_acls(z, r),
        R::DeleteAcls(r) => admin::delete_acls(z, r),
        R::FindCoordinator(r) => groups::find_coordinator(z, r, v),
        R::JoinGroup(r) => groups::join_group(z, r),
        R::SyncGroup(r) => groups::sync_group(z, r),
        R::Heartbeat(r) => groups::heartbeat(z, r),
        R::LeaveGroup(r) => groups::leave_group(z, r),
        R::ListGroups(r) => groups::list_groups(z, r),
        R::DescribeGroups(r) => groups::describe_groups(z, r),
        R::DeleteGroups(r) => groups::delete_groups(z, r),
        R::OffsetCommit(r) => groups::offset_commit(z, r),
        R::OffsetFetch(r) => groups::offset_fetch(z, r, v),
        R::OffsetDelete(r) => groups::offset_delete(z, r),
        R::InitProducerId(r) => txn::init_producer_id(z, r),
        R::TxnOffsetCommit(r) => txn::txn_offset_commit(z, r),
        R::AddPartitionsToTxn(r) => txn::add_partitions_to_txn(z, r, v),
        R::AddOffsetsToTxn(r) => txn::add_offsets_to_txn(z, r),
        R::EndTxn(r) => txn::end_txn(z, r),
        R::WriteTxnMarkers(r) => txn::write_txn_markers(z, r),
        R::DescribeTransactions(r) => txn::describe_transactions(z, r),
        R::ListTransactions(r) => txn::list_transactions(z, r),
        // APIs other branches serve (KIP-848 groups, SCRAM credentials):
        // checked here so that they are not open once served.
        R::ConsumerGroupHeartbeat(r) => groups::consumer_group_heartbeat(z, r),
        R::ConsumerGroupDescribe(r) => groups::consumer_group_describe(z, r),
        R::AlterUserScramCredentials(r) => admin::alter_user_scram_credentials(z, r),
        R::DescribeUserScramCredentials(r) => admin::describe_user_scram_credentials(z, r),
        R::DescribeQuorum(r) => admin::describe_quorum(z, r),
        R::DescribeClientQuotas(r) => admin::describe_client_quotas(z, r),
        R::AlterClientQuotas(r) => admin::alter_client_quotas(z, r),
        R::ElectLeaders(r) => replicas::elect_leaders(z, r),
        R::AlterPartitionReassignments(r) => replicas::alter_partition_reassignments(z, r),
        R::ListPartitionReassignments(r) => replicas::list_partition_reassignments(z, r),
        // ApiVersions, SaslHandshake, SaslAuthenticate and anything not
        // served (refused before decoding) need no authorization.
        other => Checked::Serve(other, None),
    }
}

/// Serve `request`, with `post` only if there is something to add.
fn serve(request: RequestKind, post: Option<Post>) -> Checked {
    Checked::Serve(request, post)
}

/// Split `items` into the allowed and the refused ones.
fn split<T>(items: Vec<T>, allowed: impl Fn(&T) -> bool) -> (Vec<T>, Vec<T>) {
    items.into_iter().partition(|t| allowed(t))
}

/// The authorized-operations bitfield of `resource` by the real decisions
/// (Kafka's `AuthHelper.authorizedOperations`).
pub fn operations(z: &Authz, resource: Resource<'_>) -> i32 {
    let (rt, name) = match resource {
        Resource::Topic(n) => (ResourceType::Topic, n),
        Resource::Group(n) => (ResourceType::Group, n),
        Resource::Cluster => (ResourceType::Cluster, rivulet_controller::acl::CLUSTER_NAME),
    };
    authorized_operations::decided(resource, |code| {
        AclOperation::from_code(code).is_some_and(|op| z.allows(op, rt, name))
    })
}

/// The cluster's bitfield when asked: 0 without DESCRIBE on the cluster, as Kafka.
fn cluster_operations(z: &Authz) -> i32 {
    if z.cluster(AclOperation::Describe) {
        operations(z, Resource::Cluster)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use rivulet_controller::acl::{AclBinding, AclPermission, AclStore, PatternType};
    use uuid::Uuid;

    use super::*;
    use crate::authorizer::AuthorizerConfig;

    fn z(acls: &[(ResourceType, &str, AclOperation)]) -> Authz {
        let mut store = AclStore::default();
        for (rt, name, op) in acls {
            store.insert(
                Uuid::new_v4(),
                AclBinding {
                    resource_type: *rt,
                    resource_name: name.to_string(),
                    pattern_type: PatternType::Literal,
                    principal: "User:a".into(),
                    host: "*".into(),
                    operation: *op,
                    permission: AclPermission::Allow,
                },
            );
        }
        let config = AuthorizerConfig {
            super_users: Default::default(),
            allow_everyone_if_no_acl_found: false,
        };
        Authz::with(&config, store, "User:a", "h".into())
    }

    #[test]
    fn authorized_operations_are_the_decisions() {
        let a = z(&[
            (ResourceType::Topic, "t", AclOperation::Read),
            (ResourceType::Topic, "t", AclOperation::AlterConfigs),
            (ResourceType::Group, "g", AclOperation::Delete),
        ]);
        // READ, DESCRIBE (implied), ALTER_CONFIGS, DESCRIBE_CONFIGS (implied).
        assert_eq!(
            operations(&a, Resource::Topic("t")),
            1 << 3 | 1 << 8 | 1 << 10 | 1 << 11
        );
        assert_eq!(operations(&a, Resource::Topic("u")), 0);
        assert_eq!(operations(&a, Resource::Group("g")), 1 << 6 | 1 << 8);
        // No DESCRIBE on the cluster: 0, as Kafka.
        assert_eq!(cluster_operations(&a), 0);
        let c = z(&[(ResourceType::Cluster, "kafka-cluster", AclOperation::All)]);
        assert_eq!(
            cluster_operations(&c),
            authorized_operations::authorized_operations(Resource::Cluster)
        );
    }
}
