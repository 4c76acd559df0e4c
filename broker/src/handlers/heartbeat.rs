//! Heartbeat, translated to and from the group coordinator.

use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use crate::context::BrokerContext;

pub async fn handle(b: &BrokerContext, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
    if req.group_id.is_empty() {
        return HeartbeatResponse::default().with_error_code(E::InvalidGroupId.code());
    }
    let code = b
        .groups
        .heartbeat(
            &req.group_id,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
        )
        .await;
    HeartbeatResponse::default().with_error_code(code)
}
