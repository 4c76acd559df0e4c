//! LeaveGroup (one member before v3, a batch of members from v3),
//! translated to and from the group coordinator.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::sb;
use crate::context::BrokerContext;

pub async fn handle(b: &BrokerContext, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    if req.group_id.is_empty() {
        return LeaveGroupResponse::default().with_error_code(E::InvalidGroupId.code());
    }
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    super::opt_string(&m.group_instance_id),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    match b.groups.leave(&req.group_id, &members).await {
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
