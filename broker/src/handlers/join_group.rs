//! JoinGroup, translated to and from the group coordinator; the rules live
//! in `group::state`. As Kafka's `validateGroupStatus`, an empty group id
//! is INVALID_GROUP_ID.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::sb;
use crate::context::BrokerContext;
use crate::group::types::JoinRequest;

pub async fn handle(
    b: &BrokerContext,
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
        group_instance_id: super::opt_string(&req.group_instance_id),
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
        reason: super::opt_string(&req.reason),
    };
    let r = if group_id.is_empty() {
        return JoinGroupResponse::default()
            .with_error_code(E::InvalidGroupId.code())
            .with_generation_id(-1);
    } else {
        b.groups.join(&group_id, join).await
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
