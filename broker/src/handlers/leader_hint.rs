//! KIP-951: a NOT_LEADER_OR_FOLLOWER answer to Produce (v10+) or Fetch
//! (v12+) names the partition's current leader and epoch (`CurrentLeader`)
//! and, in Produce (and Fetch v16+), how to reach it (`NodeEndpoints`), so a
//! client (librdkafka ≥ 2.6) switches to the new leader at once instead of
//! waiting for a Metadata round trip. Both are tagged fields: the answer is
//! filled only for versions that have them.

use std::collections::BTreeSet;

use kafka_protocol::messages::{
    fetch_response, produce_response, BrokerId, FetchResponse, ProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use rivulet_controller::MetadataImage;

use super::sb;

/// The first Produce version with `CurrentLeader` and `NodeEndpoints`.
pub const PRODUCE_FROM: i16 = 10;
/// The first Fetch version with `CurrentLeader`.
pub const FETCH_FROM: i16 = 12;
/// The first Fetch version with `NodeEndpoints`.
pub const FETCH_ENDPOINTS_FROM: i16 = 16;

/// The leader and leader epoch of `topic`/`partition` in `image`, if it has
/// a leader.
pub fn current_leader(image: &MetadataImage, topic: &str, partition: i32) -> Option<(i32, i32)> {
    let p = image.topic(topic)?.partitions.get(&partition)?;
    (p.leader >= 0).then_some((p.leader, p.leader_epoch))
}

/// Fill `CurrentLeader` of every NOT_LEADER_OR_FOLLOWER partition of a
/// Produce response, and `NodeEndpoints` with those leaders' addresses on
/// `listener` (the one the client connected to), when `version` has them.
pub fn fill_produce(
    resp: &mut ProduceResponse,
    image: &MetadataImage,
    listener: &str,
    version: i16,
) {
    if version < PRODUCE_FROM {
        return;
    }
    let not_leader = E::NotLeaderOrFollower.code();
    let mut leaders = BTreeSet::new();
    for t in &mut resp.responses {
        for p in &mut t.partition_responses {
            if p.error_code != not_leader {
                continue;
            }
            if let Some((leader, epoch)) = current_leader(image, &t.name, p.index) {
                p.current_leader = produce_response::LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
                leaders.insert(leader);
            }
        }
    }
    resp.node_endpoints = endpoints(image, leaders, listener)
        .map(|(id, host, port, rack)| {
            produce_response::NodeEndpoint::default()
                .with_node_id(id)
                .with_host(host)
                .with_port(port)
                .with_rack(rack)
        })
        .collect();
}

/// Fill the `NodeEndpoints` of a Fetch response (v16+) with the addresses on
/// `listener` of the leaders its NOT_LEADER_OR_FOLLOWER partitions name in
/// `CurrentLeader` (filled by the fetch handler from v12).
pub fn fill_fetch(resp: &mut FetchResponse, image: &MetadataImage, listener: &str, version: i16) {
    if version < FETCH_ENDPOINTS_FROM {
        return;
    }
    let not_leader = E::NotLeaderOrFollower.code();
    let leaders: BTreeSet<i32> = resp
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.error_code == not_leader && p.current_leader.leader_id.0 >= 0)
        .map(|p| p.current_leader.leader_id.0)
        .collect();
    resp.node_endpoints = endpoints(image, leaders, listener)
        .map(|(id, host, port, rack)| {
            fetch_response::NodeEndpoint::default()
                .with_node_id(id)
                .with_host(host)
                .with_port(port)
                .with_rack(rack)
        })
        .collect();
}

/// Id, host, port and rack on `listener` of each live broker of `ids`.
fn endpoints<'a>(
    image: &'a MetadataImage,
    ids: BTreeSet<i32>,
    listener: &'a str,
) -> impl Iterator<Item = (BrokerId, StrBytes, i32, Option<StrBytes>)> + 'a {
    ids.into_iter().filter_map(move |id| {
        let reg = image.brokers.get(&id).filter(|b| !b.fenced)?;
        let l = reg.listener(listener)?;
        Some((
            BrokerId(id),
            sb(l.host.clone()),
            i32::from(l.port),
            reg.rack.clone().map(sb),
        ))
    })
}
