//! DeleteGroups: remove empty groups and their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::*;

use crate::context::BrokerContext;

pub async fn handle(
    b: &BrokerContext,
    req: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for g in req.groups_names {
        let code = b.groups.delete(&g).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
