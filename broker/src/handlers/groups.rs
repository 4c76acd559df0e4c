//! Group membership APIs — FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, ListGroups, DescribeGroups, DeleteGroups — translated to and
//! from the group coordinator. Each handler only maps wire types; the rules
//! live in `group::state`. As in Kafka's `validateGroupStatus`, the APIs of
//! group membership refuse an empty group id with INVALID_GROUP_ID (offset
//! and admin APIs accept it). DescribeGroups (v3+) reports a group's
//! authorized operations when asked and the group has no error, as Kafka's
//! `handleDescribeGroupsRequest`; INT32_MIN otherwise.

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::authorized_operations::{self, Resource, OMITTED};
use super::sb;
use crate::broker::Broker;
use crate::group::types::{JoinRequest, SyncRequest};

const KEY_TYPE_GROUP: i8 = 0;

fn str_of(s: &Option<kafka_protocol::protocol::StrBytes>) -> Option<String> {
    s.as_ref().map(|v| v.to_string())
}

/// The coordinator of one key: `(error, node, host, port)`.
async fn coordinator(b: &Broker, key: &str, key_type: i8) -> (i16, i32, String, i32) {
    if key_type != KEY_TYPE_GROUP {
        // Transactions are not implemented: no transaction coordinator.
        return (E::CoordinatorNotAvailable.code(), -1, String::new(), -1);
    }
    let node = match b.groups.coordinator_for(b, key).await {
        Ok(node) => node,
        Err(code) => return (code, -1, String::new(), -1),
    };
    let image = b.image();
    match image.brokers.get(&node).and_then(|r| r.listeners.first()) {
        Some(l) => (0, node, l.host.clone(), l.port as i32),
        None => (E::CoordinatorNotAvailable.code(), -1, String::new(), -1),
    }
}

pub async fn find_coordinator(
    b: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let mut coordinators = Vec::new();
        for key in &req.coordinator_keys {
            let (code, node, host, port) = coordinator(b, key, req.key_type).await;
            coordinators.push(
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(sb(host))
                    .with_port(port)
                    .with_error_code(code),
            );
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (code, node, host, port) = coordinator(b, &req.key, req.key_type).await;
    FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id(BrokerId(node))
        .with_host(sb(host))
        .with_port(port)
}

pub async fn join_group(
    b: &Broker,
    req: JoinGroupRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> JoinGroupResponse {
    let group_id = req.group_id.to_string();
    // v0 has no rebalance timeout: it equals the session timeout.
    let rebalance_timeout_ms = if version == 0 {
        req.session_timeout_ms
    } else {
        req.rebalance_timeout_ms
    };
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        group_instance_id: str_of(&req.group_instance_id),
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
        reason: str_of(&req.reason),
    };
    let r = if group_id.is_empty() {
        return JoinGroupResponse::default()
            .with_error_code(E::InvalidGroupId.code())
            .with_generation_id(-1);
    } else {
        b.groups.join(b, &group_id, join).await
    };
    JoinGroupResponse::default()
        .with_error_code(r.error_code)
        .with_generation_id(r.generation_id)
        .with_protocol_type(r.protocol_type.map(sb))
        // Before v7 the protocol name is not nullable.
        .with_protocol_name(
            Some(sb(r.protocol_name.unwrap_or_default())).filter(|s| version < 7 || !s.is_empty()),
        )
        .with_leader(sb(r.leader))
        .with_skip_assignment(r.skip_assignment)
        .with_member_id(sb(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(sb))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

pub async fn sync_group(b: &Broker, req: SyncGroupRequest, _version: i16) -> SyncGroupResponse {
    if req.group_id.is_empty() {
        return SyncGroupResponse::default().with_error_code(E::InvalidGroupId.code());
    }
    let sync = SyncRequest {
        member_id: req.member_id.to_string(),
        group_instance_id: str_of(&req.group_instance_id),
        generation_id: req.generation_id,
        protocol_type: str_of(&req.protocol_type),
        protocol_name: str_of(&req.protocol_name),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let r = b.groups.sync(b, &req.group_id, sync).await;
    SyncGroupResponse::default()
        .with_error_code(r.error_code)
        .with_protocol_type(r.protocol_type.map(sb))
        .with_protocol_name(r.protocol_name.map(sb))
        .with_assignment(r.assignment)
}

pub async fn heartbeat(b: &Broker, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
    if req.group_id.is_empty() {
        return HeartbeatResponse::default().with_error_code(E::InvalidGroupId.code());
    }
    let code = b
        .groups
        .heartbeat(
            b,
            &req.group_id,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
        )
        .await;
    HeartbeatResponse::default().with_error_code(code)
}

pub async fn leave_group(b: &Broker, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    if req.group_id.is_empty() {
        return LeaveGroupResponse::default().with_error_code(E::InvalidGroupId.code());
    }
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), str_of(&m.group_instance_id)))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    match b.groups.leave(b, &req.group_id, &members).await {
        Err(code) => LeaveGroupResponse::default().with_error_code(code),
        Ok(codes) if version < 3 => {
            LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(0))
        }
        Ok(codes) => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(codes)
                .map(|((id, inst), code)| {
                    MemberResponse::default()
                        .with_member_id(sb(id))
                        .with_group_instance_id(inst.map(sb))
                        .with_error_code(code)
                })
                .collect(),
        ),
    }
}

pub async fn list_groups(b: &Broker, req: ListGroupsRequest, _version: i16) -> ListGroupsResponse {
    let filter: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let groups = b
        .groups
        .list(b)
        .await
        .into_iter()
        .filter(|(_, _, state)| {
            filter.is_empty() || filter.contains(&state.as_str().to_lowercase())
        })
        .map(|(id, protocol_type, state)| {
            ListedGroup::default()
                .with_group_id(GroupId(sb(id)))
                .with_protocol_type(sb(protocol_type))
                .with_group_state(sb(state.as_str()))
                .with_group_type(sb("classic"))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn describe_groups(
    b: &Broker,
    req: DescribeGroupsRequest,
    _version: i16,
) -> DescribeGroupsResponse {
    let mut out = Vec::new();
    for g in req.groups {
        let described = match b.groups.describe(b, &g).await {
            Err(code) => DescribedGroup::default()
                .with_group_id(g)
                .with_error_code(code)
                .with_authorized_operations(OMITTED),
            Ok(s) => {
                let protocol = s.protocol_name.clone().unwrap_or_default();
                let members = s
                    .members
                    .iter()
                    .map(|m| {
                        let metadata = m
                            .protocols
                            .iter()
                            .find(|(name, _)| *name == protocol)
                            .map(|(_, md)| Bytes::from(md.clone()))
                            .unwrap_or_default();
                        DescribedGroupMember::default()
                            .with_member_id(sb(m.member_id.clone()))
                            .with_group_instance_id(m.group_instance_id.clone().map(sb))
                            .with_client_id(sb(m.client_id.clone()))
                            .with_client_host(sb(m.client_host.clone()))
                            .with_member_metadata(metadata)
                            .with_member_assignment(Bytes::from(m.assignment.clone()))
                    })
                    .collect();
                let ops = authorized_operations::if_asked(
                    req.include_authorized_operations,
                    Resource::Group(&g),
                );
                DescribedGroup::default()
                    .with_authorized_operations(ops)
                    .with_group_id(g)
                    .with_group_state(sb(s.state.as_str()))
                    .with_protocol_type(sb(s.protocol_type.unwrap_or_default()))
                    .with_protocol_data(sb(protocol))
                    .with_members(members)
            }
        };
        out.push(described);
    }
    DescribeGroupsResponse::default().with_groups(out)
}

pub async fn delete_groups(
    b: &Broker,
    req: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for g in req.groups_names {
        let code = b.groups.delete(b, &g).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
