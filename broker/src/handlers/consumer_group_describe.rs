//! ConsumerGroupDescribe (KIP-848): a consumer group's epochs, assignor and
//! members with their subscriptions, current and target assignments.
//! A group that does not exist, or is a classic group, is GROUP_ID_NOT_FOUND.

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::authorized_operations::{self, Resource, OMITTED};
use super::{sb, tn};
use crate::context::BrokerContext;
use crate::group::consumer::Partitions;

fn assignment(image: &rivulet_controller::MetadataImage, p: &Partitions) -> Assignment {
    Assignment::default().with_topic_partitions(
        p.iter()
            .map(|(topic, parts)| {
                TopicPartitions::default()
                    .with_topic_id(image.topic_ids.get(topic).copied().unwrap_or_default())
                    .with_topic_name(tn(topic.clone()))
                    .with_partitions(parts.iter().copied().collect())
            })
            .collect(),
    )
}

pub async fn handle(
    b: &BrokerContext,
    req: ConsumerGroupDescribeRequest,
    version: i16,
) -> ConsumerGroupDescribeResponse {
    let image = b.image();
    let mut out = Vec::new();
    for g in req.group_ids {
        let described = match b.groups.consumer_describe(&g).await {
            Err(code) => DescribedGroup::default()
                .with_group_id(g)
                .with_error_code(code)
                .with_authorized_operations(OMITTED),
            Ok(None) => DescribedGroup::default()
                .with_error_message(Some(sb(format!("Group {} not found.", g.as_str()))))
                .with_group_id(g)
                .with_error_code(E::GroupIdNotFound.code())
                .with_authorized_operations(OMITTED),
            Ok(Some(view)) => {
                let d = &view.data;
                let members = d
                    .members
                    .values()
                    .map(|m| {
                        let member = Member::default()
                            .with_member_id(sb(m.member_id.clone()))
                            .with_instance_id(m.instance_id.clone().map(sb))
                            .with_rack_id(m.rack_id.clone().map(sb))
                            .with_member_epoch(m.member_epoch)
                            .with_client_id(sb(m.client_id.clone()))
                            .with_client_host(sb(m.client_host.clone()))
                            .with_subscribed_topic_names(
                                m.subscribed_topic_names.iter().cloned().map(tn).collect(),
                            )
                            .with_subscribed_topic_regex(m.subscribed_topic_regex.clone().map(sb))
                            .with_assignment(assignment(&image, &m.assigned))
                            .with_target_assignment(assignment(
                                &image,
                                &d.target.get(&m.member_id).cloned().unwrap_or_default(),
                            ));
                        // v1: 1 = consumer protocol member (-1 unknown, 0 classic).
                        if version >= 1 {
                            member.with_member_type(1)
                        } else {
                            member
                        }
                    })
                    .collect();
                let ops = authorized_operations::if_asked(
                    req.include_authorized_operations,
                    Resource::Group(&g),
                );
                DescribedGroup::default()
                    .with_group_id(g)
                    .with_group_state(sb(view.state.as_str()))
                    .with_group_epoch(d.group_epoch)
                    .with_assignment_epoch(d.assignment_epoch)
                    .with_assignor_name(sb(view.assignor))
                    .with_members(members)
                    .with_authorized_operations(ops)
            }
        };
        out.push(described);
    }
    ConsumerGroupDescribeResponse::default().with_groups(out)
}
