//! ConsumerGroupHeartbeat (KIP-848), translated to and from the group
//! coordinator's consumer groups: topic ids on the wire, topic names inside
//! (a partition of a topic id this broker does not know is left out).

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::*;

use super::{opt_string, sb};
use crate::context::BrokerContext;
use crate::group::consumer::{Heartbeat, Partitions};

pub async fn handle(
    b: &BrokerContext,
    req: ConsumerGroupHeartbeatRequest,
    _version: i16,
    client_id: &str,
    client_host: &str,
) -> ConsumerGroupHeartbeatResponse {
    let image = b.image();
    let owned = req.topic_partitions.as_ref().map(|tps| {
        let mut out = Partitions::new();
        for tp in tps {
            if let Some(t) = image.topics.get(&tp.topic_id) {
                out.entry(t.name.clone())
                    .or_default()
                    .extend(tp.partitions.iter().copied());
            }
        }
        out
    });
    let hb = Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: opt_string(&req.instance_id),
        rack_id: opt_string(&req.rack_id),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|ns| ns.iter().map(|n| n.to_string()).collect()),
        subscribed_topic_regex: opt_string(&req.subscribed_topic_regex),
        server_assignor: opt_string(&req.server_assignor),
        owned,
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
        classic: None,
    };
    match b.groups.consumer_heartbeat(&req.group_id, hb).await {
        Err(f) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(f.code)
            .with_error_message(f.message.map(sb))
            .with_member_epoch(-1),
        Ok(r) => {
            let image = b.image();
            let assignment = r.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .filter_map(|(topic, parts)| {
                            image.topic_ids.get(&topic).map(|id| {
                                TopicPartitions::default()
                                    .with_topic_id(*id)
                                    .with_partitions(parts.into_iter().collect())
                            })
                        })
                        .collect(),
                )
            });
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(sb(r.member_id)))
                .with_member_epoch(r.member_epoch)
                .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
                .with_assignment(assignment)
        }
    }
}
