//! DescribeGroups. From v3 a group's authorized operations are reported
//! when asked and the group has no error, as Kafka's
//! `handleDescribeGroupsRequest`; INT32_MIN otherwise.

use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::*;

use super::authorized_operations::{self, Resource, OMITTED};
use super::sb;
use crate::context::BrokerContext;

pub async fn handle(
    b: &BrokerContext,
    req: DescribeGroupsRequest,
    _version: i16,
) -> DescribeGroupsResponse {
    let mut out = Vec::new();
    for g in req.groups {
        let described = match b.groups.describe(&g).await {
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
