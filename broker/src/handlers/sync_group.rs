//! SyncGroup, translated to and from the group coordinator.

use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::sb;
use crate::context::BrokerContext;
use crate::group::types::SyncRequest;

pub async fn handle(b: &BrokerContext, req: SyncGroupRequest, _version: i16) -> SyncGroupResponse {
    if req.group_id.is_empty() {
        return SyncGroupResponse::default().with_error_code(E::InvalidGroupId.code());
    }
    let sync = SyncRequest {
        member_id: req.member_id.to_string(),
        group_instance_id: super::opt_string(&req.group_instance_id),
        generation_id: req.generation_id,
        protocol_type: super::opt_string(&req.protocol_type),
        protocol_name: super::opt_string(&req.protocol_name),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let r = b.groups.sync(&req.group_id, sync).await;
    SyncGroupResponse::default()
        .with_error_code(r.error_code)
        .with_protocol_type(r.protocol_type.map(sb))
        .with_protocol_name(r.protocol_name.map(sb))
        .with_assignment(r.assignment)
}
