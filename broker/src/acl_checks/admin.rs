//! Admin APIs: CreateTopics (CREATE on the cluster or the topic; the
//! returned configs need DESCRIBE_CONFIGS), DeleteTopics (DELETE),
//! CreatePartitions (ALTER), DescribeConfigs / AlterConfigs /
//! IncrementalAlterConfigs (DESCRIBE_CONFIGS / ALTER_CONFIGS on the topic,
//! or on the cluster for broker resources), DescribeCluster (the cluster's
//! authorized operations), DescribeLogDirs (DESCRIBE on the cluster) and the
//! ACL APIs (DESCRIBE on the cluster to list, ALTER to change).

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_response as incremental;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, CreateAclsRequest, CreateAclsResponse,
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteAclsRequest, DeleteAclsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeAclsRequest, DescribeAclsResponse, DescribeClusterRequest, DescribeConfigsRequest,
    DescribeConfigsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, RequestKind, ResponseKind,
};
use rivulet_controller::acl::AclOperation::{
    self, Alter, AlterConfigs, Create, Delete, Describe, DescribeConfigs,
};

use super::{cluster_operations, serve, split, Checked, CLUSTER_DENIED, TOPIC_DENIED};
use crate::authorizer::Authz;
use crate::context::BrokerContext;

/// Config resource types (`ConfigResource.Type`).
const CONFIG_TOPIC: i8 = 2;
const CONFIG_BROKER: i8 = 4;
const CONFIG_BROKER_LOGGER: i8 = 8;

/// Whether a config resource may be `op`'d, and the refusal code if not.
fn config_allowed(z: &Authz, op: AclOperation, resource_type: i8, name: &str) -> Result<(), i16> {
    match resource_type {
        CONFIG_TOPIC if !z.topic(op, name) => Err(TOPIC_DENIED),
        CONFIG_BROKER | CONFIG_BROKER_LOGGER if !z.cluster(op) => Err(CLUSTER_DENIED),
        _ => Ok(()),
    }
}

pub(super) fn create_topics(z: &Authz, mut r: CreateTopicsRequest) -> Checked {
    let any = z.cluster(Create);
    let (kept, denied) = split(std::mem::take(&mut r.topics), |t| {
        any || z.topic(Create, t.name.as_str())
    });
    r.topics = kept;
    let refused: Vec<CreatableTopicResult> = denied
        .iter()
        .map(|t| {
            CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(TOPIC_DENIED)
                .with_num_partitions(-1)
                .with_replication_factor(-1)
        })
        .collect();
    if r.topics.is_empty() && !refused.is_empty() {
        return Checked::Respond(Some(ResponseKind::CreateTopics(
            CreateTopicsResponse::default().with_topics(refused),
        )));
    }
    let z = z.clone();
    serve(
        RequestKind::CreateTopics(r),
        Some(Box::new(move |resp| {
            if let ResponseKind::CreateTopics(c) = resp {
                for t in &mut c.topics {
                    if t.error_code == 0 && !z.topic(DescribeConfigs, t.name.as_str()) {
                        t.topic_config_error_code = TOPIC_DENIED;
                        t.configs = None;
                    }
                }
                c.topics.extend(refused);
            }
        })),
    )
}

pub(super) fn delete_topics(b: &BrokerContext, z: &Authz, mut r: DeleteTopicsRequest) -> Checked {
    let image = b.image();
    let mut refused: Vec<DeletableTopicResult> = Vec::new();
    let (kept, denied) = split(std::mem::take(&mut r.topic_names), |n| {
        z.topic(Delete, n.as_str())
    });
    r.topic_names = kept;
    for n in denied {
        refused.push(
            DeletableTopicResult::default()
                .with_name(Some(n))
                .with_error_code(TOPIC_DENIED),
        );
    }
    let (kept, denied) = split(std::mem::take(&mut r.topics), |t| {
        let name = match &t.name {
            Some(n) => Some(n.to_string()),
            None => image.topics.get(&t.topic_id).map(|ti| ti.name.clone()),
        };
        // An unknown id is the handler's UNKNOWN_TOPIC_ID.
        name.is_none_or(|n| z.topic(Delete, &n))
    });
    r.topics = kept;
    for t in denied {
        refused.push(
            DeletableTopicResult::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_error_code(TOPIC_DENIED),
        );
    }
    if refused.is_empty() {
        return serve(RequestKind::DeleteTopics(r), None);
    }
    if r.topics.is_empty() && r.topic_names.is_empty() {
        return Checked::Respond(Some(ResponseKind::DeleteTopics(
            DeleteTopicsResponse::default().with_responses(refused),
        )));
    }
    serve(
        RequestKind::DeleteTopics(r),
        Some(Box::new(move |resp| {
            if let ResponseKind::DeleteTopics(d) = resp {
                d.responses.extend(refused);
            }
        })),
    )
}

pub(super) fn create_partitions(z: &Authz, mut r: CreatePartitionsRequest) -> Checked {
    let (kept, denied) = split(std::mem::take(&mut r.topics), |t| {
        z.topic(Alter, t.name.as_str())
    });
    r.topics = kept;
    if denied.is_empty() {
        return serve(RequestKind::CreatePartitions(r), None);
    }
    let refused: Vec<CreatePartitionsTopicResult> = denied
        .into_iter()
        .map(|t| {
            CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(TOPIC_DENIED)
        })
        .collect();
    answer_refused!(
        CreatePartitions,
        r,
        r.topics,
        refused,
        CreatePartitionsResponse.results
    )
}

pub(super) fn describe_configs(z: &Authz, mut r: DescribeConfigsRequest) -> Checked {
    let mut refused = Vec::new();
    let mut kept = Vec::new();
    for res in std::mem::take(&mut r.resources) {
        match config_allowed(
            z,
            DescribeConfigs,
            res.resource_type,
            res.resource_name.as_str(),
        ) {
            Ok(()) => kept.push(res),
            Err(code) => refused.push(
                DescribeConfigsResult::default()
                    .with_error_code(code)
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name),
            ),
        }
    }
    r.resources = kept;
    if refused.is_empty() {
        return serve(RequestKind::DescribeConfigs(r), None);
    }
    answer_refused!(
        DescribeConfigs,
        r,
        r.resources,
        refused,
        DescribeConfigsResponse.results
    )
}

pub(super) fn alter_configs(z: &Authz, mut r: AlterConfigsRequest) -> Checked {
    let mut refused = Vec::new();
    let mut kept = Vec::new();
    for res in std::mem::take(&mut r.resources) {
        match config_allowed(
            z,
            AlterConfigs,
            res.resource_type,
            res.resource_name.as_str(),
        ) {
            Ok(()) => kept.push(res),
            Err(code) => refused.push(
                AlterConfigsResourceResponse::default()
                    .with_error_code(code)
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name),
            ),
        }
    }
    r.resources = kept;
    if refused.is_empty() {
        return serve(RequestKind::AlterConfigs(r), None);
    }
    answer_refused!(
        AlterConfigs,
        r,
        r.resources,
        refused,
        AlterConfigsResponse.responses
    )
}

pub(super) fn incremental_alter_configs(
    z: &Authz,
    mut r: IncrementalAlterConfigsRequest,
) -> Checked {
    let mut refused = Vec::new();
    let mut kept = Vec::new();
    for res in std::mem::take(&mut r.resources) {
        match config_allowed(
            z,
            AlterConfigs,
            res.resource_type,
            res.resource_name.as_str(),
        ) {
            Ok(()) => kept.push(res),
            Err(code) => refused.push(
                incremental::AlterConfigsResourceResponse::default()
                    .with_error_code(code)
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name),
            ),
        }
    }
    r.resources = kept;
    if refused.is_empty() {
        return serve(RequestKind::IncrementalAlterConfigs(r), None);
    }
    answer_refused!(
        IncrementalAlterConfigs,
        r,
        r.resources,
        refused,
        IncrementalAlterConfigsResponse.responses
    )
}

pub(super) fn describe_cluster(z: &Authz, r: DescribeClusterRequest) -> Checked {
    if !r.include_cluster_authorized_operations {
        return serve(RequestKind::DescribeCluster(r), None);
    }
    let bits = cluster_operations(z);
    serve(
        RequestKind::DescribeCluster(r),
        Some(Box::new(move |resp| {
            if let ResponseKind::DescribeCluster(d) = resp {
                d.cluster_authorized_operations = bits;
            }
        })),
    )
}

pub(super) fn describe_log_dirs(z: &Authz, r: DescribeLogDirsRequest, version: i16) -> Checked {
    if z.cluster(Describe) {
        return serve(RequestKind::DescribeLogDirs(r), None);
    }
    // Kafka answers an empty result, with the error from v3 on.
    let mut resp = DescribeLogDirsResponse::default();
    if version >= 3 {
        resp.error_code = CLUSTER_DENIED;
    }
    Checked::Respond(Some(ResponseKind::DescribeLogDirs(resp)))
}

pub(super) fn describe_acls(z: &Authz, r: DescribeAclsRequest) -> Checked {
    if z.cluster(Describe) {
        return serve(RequestKind::DescribeAcls(r), None);
    }
    Checked::Respond(Some(ResponseKind::DescribeAcls(
        DescribeAclsResponse::default()
            .with_error_code(CLUSTER_DENIED)
            .with_error_message(Some(crate::handlers::sb("Cluster authorization failed."))),
    )))
}

pub(super) fn create_acls(z: &Authz, r: CreateAclsRequest) -> Checked {
    if z.cluster(Alter) {
        return serve(RequestKind::CreateAcls(r), None);
    }
    let results = r
        .creations
        .iter()
        .map(|_| AclCreationResult::default().with_error_code(CLUSTER_DENIED))
        .collect();
    Checked::Respond(Some(ResponseKind::CreateAcls(
        CreateAclsResponse::default().with_results(results),
    )))
}

pub(super) fn delete_acls(z: &Authz, r: DeleteAclsRequest) -> Checked {
    if z.cluster(Alter) {
        return serve(RequestKind::DeleteAcls(r), None);
    }
    let results = r
        .filters
        .iter()
        .map(|_| DeleteAclsFilterResult::default().with_error_code(CLUSTER_DENIED))
        .collect();
    Checked::Respond(Some(ResponseKind::DeleteAcls(
        DeleteAclsResponse::default().with_filter_results(results),
    )))
}

/// AlterUserScramCredentials (SASL/SCRAM): ALTER on the cluster.
pub(super) fn alter_user_scram_credentials(
    z: &Authz,
    r: kafka_protocol::messages::AlterUserScramCredentialsRequest,
) -> Checked {
    use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
    use kafka_protocol::messages::AlterUserScramCredentialsResponse;
    if z.cluster(Alter) {
        return serve(RequestKind::AlterUserScramCredentials(r), None);
    }
    let users = r
        .deletions
        .iter()
        .map(|d| d.name.clone())
        .chain(r.upsertions.iter().map(|u| u.name.clone()));
    let results = users
        .map(|user| {
            AlterUserScramCredentialsResult::default()
                .with_user(user)
                .with_error_code(CLUSTER_DENIED)
        })
        .collect();
    Checked::Respond(Some(ResponseKind::AlterUserScramCredentials(
        AlterUserScramCredentialsResponse::default().with_results(results),
    )))
}

/// DescribeUserScramCredentials (SASL/SCRAM): DESCRIBE on the cluster.
pub(super) fn describe_user_scram_credentials(
    z: &Authz,
    r: kafka_protocol::messages::DescribeUserScramCredentialsRequest,
) -> Checked {
    use kafka_protocol::messages::DescribeUserScramCredentialsResponse;
    if z.cluster(Describe) {
        return serve(RequestKind::DescribeUserScramCredentials(r), None);
    }
    Checked::Respond(Some(ResponseKind::DescribeUserScramCredentials(
        DescribeUserScramCredentialsResponse::default().with_error_code(CLUSTER_DENIED),
    )))
}

/// DescribeQuorum: DESCRIBE on the cluster.
pub(super) fn describe_quorum(
    z: &Authz,
    r: kafka_protocol::messages::DescribeQuorumRequest,
) -> Checked {
    use kafka_protocol::messages::DescribeQuorumResponse;
    if z.cluster(Describe) {
        return serve(RequestKind::DescribeQuorum(r), None);
    }
    Checked::Respond(Some(ResponseKind::DescribeQuorum(
        DescribeQuorumResponse::default().with_error_code(CLUSTER_DENIED),
    )))
}

/// DescribeClientQuotas: DESCRIBE_CONFIGS on the cluster.
pub(super) fn describe_client_quotas(
    z: &Authz,
    r: kafka_protocol::messages::DescribeClientQuotasRequest,
) -> Checked {
    use kafka_protocol::messages::DescribeClientQuotasResponse;
    if z.cluster(DescribeConfigs) {
        return serve(RequestKind::DescribeClientQuotas(r), None);
    }
    Checked::Respond(Some(ResponseKind::DescribeClientQuotas(
        DescribeClientQuotasResponse::default()
            .with_error_code(CLUSTER_DENIED)
            .with_entries(None),
    )))
}

/// AlterClientQuotas: ALTER_CONFIGS on the cluster.
pub(super) fn alter_client_quotas(
    z: &Authz,
    r: kafka_protocol::messages::AlterClientQuotasRequest,
) -> Checked {
    use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
    use kafka_protocol::messages::AlterClientQuotasResponse;
    if z.cluster(AlterConfigs) {
        return serve(RequestKind::AlterClientQuotas(r), None);
    }
    let entries = r
        .entries
        .into_iter()
        .map(|e| {
            EntryData::default()
                .with_error_code(CLUSTER_DENIED)
                .with_entity(
                    e.entity
                        .into_iter()
                        .map(|d| {
                            EntityData::default()
                                .with_entity_type(d.entity_type)
                                .with_entity_name(d.entity_name)
                        })
                        .collect(),
                )
        })
        .collect();
    Checked::Respond(Some(ResponseKind::AlterClientQuotas(
        AlterClientQuotasResponse::default().with_entries(entries),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_configs_need_the_cluster() {
        let z = Authz::with(
            &crate::authorizer::AuthorizerConfig {
                super_users: Default::default(),
                allow_everyone_if_no_acl_found: false,
            },
            Default::default(),
            "User:a",
            "h".into(),
        );
        assert_eq!(
            config_allowed(&z, DescribeConfigs, CONFIG_TOPIC, "t"),
            Err(TOPIC_DENIED)
        );
        assert_eq!(
            config_allowed(&z, DescribeConfigs, CONFIG_BROKER, "1"),
            Err(CLUSTER_DENIED)
        );
        assert_eq!(config_allowed(&z, DescribeConfigs, 99, "x"), Ok(()));
    }
}
