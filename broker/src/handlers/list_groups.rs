//! ListGroups: the groups this node coordinates, filtered by state (v4).

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
    let groups = b
        .groups
        .list()
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
