//! ListGroups: the groups this node coordinates, filtered by state (v4)
//! and by type (v5: `classic` or `consumer`, KIP-848), case-insensitively.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;

use super::sb;
use crate::context::BrokerContext;

pub async fn handle(
    b: &BrokerContext,
    req: ListGroupsRequest,
    _version: i16,
) -> ListGroupsResponse {
    let filter: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let groups = b
        .groups
        .list_typed()
        .await
        .into_iter()
        .filter(|g| filter.is_empty() || filter.contains(&g.state.to_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(sb(g.group_id)))
                .with_protocol_type(sb(g.protocol_type))
                .with_group_state(sb(g.state))
                .with_group_type(sb(g.group_type))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
