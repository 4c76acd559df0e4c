//! Group APIs: FindCoordinator (DESCRIBE on the group or transactional
//! id), JoinGroup / SyncGroup / Heartbeat / LeaveGroup (READ on the group),
//! ListGroups (every group with DESCRIBE on the cluster, else only the
//! describable ones), DescribeGroups (DESCRIBE), DeleteGroups (DELETE),
//! OffsetCommit (READ on the group and on each topic), OffsetFetch
//! (DESCRIBE on the group and each topic; unauthorized topics left out of
//! an all-topics answer) and OffsetDelete (DELETE on the group, READ on each
//! topic) — as Kafka's `KafkaApis`.

use std::collections::HashMap;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    delete_groups_response::DeletableGroupResult, describe_groups_response::DescribedGroup,
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, RequestKind, ResponseKind, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use rivulet_controller::acl::AclOperation::{Delete, Describe, Read};
use rivulet_controller::acl::ResourceType;

use super::{operations, serve, split, Checked, GROUP_DENIED, TOPIC_DENIED, TXN_ID_DENIED};
use crate::authorizer::Authz;
use crate::handlers::authorized_operations::Resource;

/// FindCoordinator key types.
const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

/// The refusal code for a coordinator key, if refused.
fn key_refused(z: &Authz, key_type: i8, key: &str) -> Option<i16> {
    match key_type {
        KEY_GROUP if !z.allows(Describe, ResourceType::Group, key) => Some(GROUP_DENIED),
        KEY_TRANSACTION if !z.allows(Describe, ResourceType::TransactionalId, key) => {
            Some(TXN_ID_DENIED)
        }
        _ => None,
    }
}

pub(super) fn find_coordinator(z: &Authz, mut r: FindCoordinatorRequest, version: i16) -> Checked {
    if version < 4 {
        return match key_refused(z, r.key_type, r.key.as_str()) {
            None => serve(RequestKind::FindCoordinator(r), None),
            Some(code) => Checked::Respond(Some(ResponseKind::FindCoordinator(
                FindCoordinatorResponse::default()
                    .with_error_code(code)
                    .with_node_id((-1).into())
                    .with_port(-1),
            ))),
        };
    }
    let key_type = r.key_type;
    let mut refused = Vec::new();
    let mut kept = Vec::new();
    for key in std::mem::take(&mut r.coordinator_keys) {
        match key_refused(z, key_type, key.as_str()) {
            None => kept.push(key),
            Some(code) => refused.push(
                Coordinator::default()
                    .with_key(key)
                    .with_node_id((-1).into())
                    .with_port(-1)
                    .with_error_code(code),
            ),
        }
    }
    r.coordinator_keys = kept;
    if refused.is_empty() {
        return serve(RequestKind::FindCoordinator(r), None);
    }
    answer_refused!(
        FindCoordinator,
        r,
        r.coordinator_keys,
        refused,
        FindCoordinatorResponse.coordinators
    )
}

pub(super) fn join_group(z: &Authz, r: JoinGroupRequest) -> Checked {
    if z.group(Read, r.group_id.as_str()) {
        return serve(RequestKind::JoinGroup(r), None);
    }
    Checked::Respond(Some(ResponseKind::JoinGroup(
        JoinGroupResponse::default()
            .with_error_code(GROUP_DENIED)
            .with_generation_id(-1),
    )))
}

pub(super) fn sync_group(z: &Authz, r: SyncGroupRequest) -> Checked {
    if z.group(Read, r.group_id.as_str()) {
        return serve(RequestKind::SyncGroup(r), None);
    }
    Checked::Respond(Some(ResponseKind::SyncGroup(
        SyncGroupResponse::default().with_error_code(GROUP_DENIED),
    )))
}

pub(super) fn heartbeat(z: &Authz, r: HeartbeatRequest) -> Checked {
    if z.group(Read, r.group_id.as_str()) {
        return serve(RequestKind::Heartbeat(r), None);
    }
    Checked::Respond(Some(ResponseKind::Heartbeat(
        HeartbeatResponse::default().with_error_code(GROUP_DENIED),
    )))
}

pub(super) fn leave_group(z: &Authz, r: LeaveGroupRequest) -> Checked {
    if z.group(Read, r.group_id.as_str()) {
        return serve(RequestKind::LeaveGroup(r), None);
    }
    Checked::Respond(Some(ResponseKind::LeaveGroup(
        LeaveGroupResponse::default().with_error_code(GROUP_DENIED),
    )))
}

pub(super) fn list_groups(z: &Authz, r: ListGroupsRequest) -> Checked {
    if z.cluster(Describe) {
        return serve(RequestKind::ListGroups(r), None);
    }
    let z = z.clone();
    serve(
        RequestKind::ListGroups(r),
        Some(Box::new(move |resp| {
            if let ResponseKind::ListGroups(l) = resp {
                l.groups.retain(|g| z.group(Describe, g.group_id.as_str()));
            }
        })),
    )
}

pub(super) fn describe_groups(z: &Authz, mut r: DescribeGroupsRequest) -> Checked {
    let asked = r.include_authorized_operations;
    let (kept, denied) = split(std::mem::take(&mut r.groups), |g| {
        z.group(Describe, g.as_str())
    });
    r.groups = kept;
    // When asked, a refused group reports no operations (0): kafka-python
    // decodes the field and cannot take the schema default.
    let refused: Vec<DescribedGroup> = denied
        .into_iter()
        .map(|g| {
            let mut d = DescribedGroup::default()
                .with_group_id(g)
                .with_error_code(GROUP_DENIED);
            if asked {
                d.authorized_operations = 0;
            }
            d
        })
        .collect();
    if r.groups.is_empty() && !refused.is_empty() {
        return Checked::Respond(Some(ResponseKind::DescribeGroups(
            DescribeGroupsResponse::default().with_groups(refused),
        )));
    }
    let z = z.clone();
    serve(
        RequestKind::DescribeGroups(r),
        Some(Box::new(move |resp| {
            if let ResponseKind::DescribeGroups(d) = resp {
                if asked {
                    for g in &mut d.groups {
                        if g.error_code == 0 {
                            g.authorized_operations =
                                operations(&z, Resource::Group(g.group_id.as_str()));
                        }
                    }
                }
                d.groups.extend(refused);
            }
        })),
    )
}

pub(super) fn delete_groups(z: &Authz, mut r: DeleteGroupsRequest) -> Checked {
    let (kept, denied) = split(std::mem::take(&mut r.groups_names), |g| {
        z.group(Delete, g.as_str())
    });
    r.groups_names = kept;
    if denied.is_empty() {
        return serve(RequestKind::DeleteGroups(r), None);
    }
    let refused: Vec<DeletableGroupResult> = denied
        .into_iter()
        .map(|g| {
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(GROUP_DENIED)
        })
        .collect();
    answer_refused!(
        DeleteGroups,
        r,
        r.groups_names,
        refused,
        DeleteGroupsResponse.results
    )
}

fn commit_refusals(
    topics: &[kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic],
    code: i16,
) -> Vec<OffsetCommitResponseTopic> {
    topics
        .iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect()
}

pub(super) fn offset_commit(z: &Authz, mut r: OffsetCommitRequest) -> Checked {
    if !z.group(Read, r.group_id.as_str()) {
        return Checked::Respond(Some(ResponseKind::OffsetCommit(
            OffsetCommitResponse::default().with_topics(commit_refusals(&r.topics, GROUP_DENIED)),
        )));
    }
    let (kept, denied) = split(std::mem::take(&mut r.topics), |t| {
        z.topic(Read, t.name.as_str())
    });
    r.topics = kept;
    if denied.is_empty() {
        return serve(RequestKind::OffsetCommit(r), None);
    }
    let refused = commit_refusals(&denied, TOPIC_DENIED);
    answer_refused!(
        OffsetCommit,
        r,
        r.topics,
        refused,
        OffsetCommitResponse.topics
    )
}

fn fetch_refused_partition(p: i32, code: i16) -> OffsetFetchResponsePartition {
    OffsetFetchResponsePartition::default()
        .with_partition_index(p)
        .with_committed_offset(-1)
        .with_committed_leader_epoch(-1)
        .with_error_code(code)
}

fn fetch_refused_partitions(p: i32, code: i16) -> OffsetFetchResponsePartitions {
    OffsetFetchResponsePartitions::default()
        .with_partition_index(p)
        .with_committed_offset(-1)
        .with_committed_leader_epoch(-1)
        .with_error_code(code)
}

pub(super) fn offset_fetch(z: &Authz, mut r: OffsetFetchRequest, version: i16) -> Checked {
    if version < 8 {
        if !z.group(Describe, r.group_id.as_str()) {
            let topics = r
                .topics
                .iter()
                .flatten()
                .map(|t| {
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|p| fetch_refused_partition(*p, GROUP_DENIED))
                                .collect(),
                        )
                })
                .collect();
            return Checked::Respond(Some(ResponseKind::OffsetFetch(
                OffsetFetchResponse::default()
                    .with_error_code(GROUP_DENIED)
                    .with_topics(topics),
            )));
        }
        let all = r.topics.is_none();
        let mut refused = Vec::new();
        if let Some(topics) = r.topics.take() {
            let (kept, denied) = split(topics, |t| z.topic(Describe, t.name.as_str()));
            refused = denied
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|p| fetch_refused_partition(*p, TOPIC_DENIED))
                        .collect();
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                })
                .collect();
            r.topics = Some(kept);
        }
        if !all && refused.is_empty() {
            return serve(RequestKind::OffsetFetch(r), None);
        }
        let z = z.clone();
        return serve(
            RequestKind::OffsetFetch(r),
            Some(Box::new(move |resp| {
                if let ResponseKind::OffsetFetch(f) = resp {
                    if all {
                        f.topics.retain(|t| z.topic(Describe, t.name.as_str()));
                    }
                    f.topics.extend(refused);
                }
            })),
        );
    }
    // v8+: several groups, each with its own topics and error.
    let mut refused_groups = Vec::new();
    let mut refused_topics: HashMap<StrBytes, Vec<OffsetFetchResponseTopics>> = HashMap::new();
    let mut all_topics = Vec::new();
    let mut kept = Vec::new();
    for mut g in std::mem::take(&mut r.groups) {
        if !z.group(Describe, g.group_id.as_str()) {
            refused_groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(GROUP_DENIED),
            );
            continue;
        }
        match g.topics.take() {
            None => all_topics.push(g.group_id.0.clone()),
            Some(topics) => {
                let (ok, denied) = split(topics, |t| z.topic(Describe, t.name.as_str()));
                if !denied.is_empty() {
                    refused_topics.insert(
                        g.group_id.0.clone(),
                        denied
                            .into_iter()
                            .map(|t| {
                                let partitions = t
                                    .partition_indexes
                                    .iter()
                                    .map(|p| fetch_refused_partitions(*p, TOPIC_DENIED))
                                    .collect();
                                OffsetFetchResponseTopics::default()
                                    .with_name(t.name)
                                    .with_topic_id(t.topic_id)
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    );
                }
                g.topics = Some(ok);
            }
        }
        kept.push(g);
    }
    r.groups = kept;
    if refused_groups.is_empty() && refused_topics.is_empty() && all_topics.is_empty() {
        return serve(RequestKind::OffsetFetch(r), None);
    }
    if r.groups.is_empty() {
        return Checked::Respond(Some(ResponseKind::OffsetFetch(
            OffsetFetchResponse::default().with_groups(refused_groups),
        )));
    }
    let z = z.clone();
    serve(
        RequestKind::OffsetFetch(r),
        Some(Box::new(move |resp| {
            if let ResponseKind::OffsetFetch(f) = resp {
                for g in &mut f.groups {
                    if all_topics.contains(&g.group_id.0) {
                        g.topics.retain(|t| z.topic(Describe, t.name.as_str()));
                    }
                    if let Some(extra) = refused_topics.remove(&g.group_id.0) {
                        g.topics.extend(extra);
                    }
                }
                f.groups.extend(refused_groups);
            }
        })),
    )
}

pub(super) fn offset_delete(z: &Authz, mut r: OffsetDeleteRequest) -> Checked {
    if !z.group(Delete, r.group_id.as_str()) {
        return Checked::Respond(Some(ResponseKind::OffsetDelete(
            OffsetDeleteResponse::default().with_error_code(GROUP_DENIED),
        )));
    }
    let (kept, denied) = split(std::mem::take(&mut r.topics), |t| {
        z.topic(Read, t.name.as_str())
    });
    r.topics = kept;
    if denied.is_empty() {
        return serve(RequestKind::OffsetDelete(r), None);
    }
    let refused: Vec<OffsetDeleteResponseTopic> = denied
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(TOPIC_DENIED)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    answer_refused!(
        OffsetDelete,
        r,
        r.topics,
        refused,
        OffsetDeleteResponse.topics
    )
}

/// KIP-848 ConsumerGroupHeartbeat: READ on the group, DESCRIBE on every
/// subscribed topic (Kafka's `KafkaApis.handleConsumerGroupHeartbeat`).
pub(super) fn consumer_group_heartbeat(
    z: &Authz,
    r: kafka_protocol::messages::ConsumerGroupHeartbeatRequest,
) -> Checked {
    use kafka_protocol::messages::ConsumerGroupHeartbeatResponse;
    let code = if !z.group(Read, r.group_id.as_str()) {
        GROUP_DENIED
    } else if r
        .subscribed_topic_names
        .iter()
        .flatten()
        .any(|t| !z.topic(Describe, t.as_str()))
    {
        TOPIC_DENIED
    } else {
        return serve(RequestKind::ConsumerGroupHeartbeat(r), None);
    };
    Checked::Respond(Some(ResponseKind::ConsumerGroupHeartbeat(
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_member_epoch(-1),
    )))
}

/// KIP-848 ConsumerGroupDescribe: DESCRIBE on each group.
pub(super) fn consumer_group_describe(
    z: &Authz,
    mut r: kafka_protocol::messages::ConsumerGroupDescribeRequest,
) -> Checked {
    use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup as Described;
    let asked = r.include_authorized_operations;
    let (kept, denied) = split(std::mem::take(&mut r.group_ids), |g| {
        z.group(Describe, g.as_str())
    });
    r.group_ids = kept;
    let refused: Vec<Described> = denied
        .into_iter()
        .map(|g| {
            let mut d = Described::default()
                .with_group_id(g)
                .with_error_code(GROUP_DENIED);
            if asked {
                d.authorized_operations = 0;
            }
            d
        })
        .collect();
    let z = z.clone();
    serve(
        RequestKind::ConsumerGroupDescribe(r),
        Some(Box::new(move |resp| {
            if let ResponseKind::ConsumerGroupDescribe(d) = resp {
                if asked {
                    for g in &mut d.groups {
                        if g.error_code == 0 {
                            g.authorized_operations =
                                operations(&z, Resource::Group(g.group_id.as_str()));
                        }
                    }
                }
                d.groups.extend(refused);
            }
        })),
    )
}
