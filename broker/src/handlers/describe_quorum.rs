//! DescribeQuorum (KIP-595, KIP-836, KIP-853's nodes in v2): the metadata
//! quorum's leader, epoch, high watermark and each voter's progress, as
//! `kafka-metadata-quorum.sh --bootstrap-server ... describe --status` and
//! `--replication` ask any broker (which asks the active controller, as
//! Kafka's brokers forward it). The one partition is Kafka's
//! `__cluster_metadata-0`.

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::ResponseError as E;
use rivulet_controller::describe_quorum::ReplicaProgress;
use rivulet_controller::{ControllerRequest, ControllerResponse};

use super::sb;
use crate::context::BrokerContext;

/// Kafka's name of the metadata log's topic.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// A voter's progress; the timestamps exist from v1 (the codec refuses a
/// field its version does not have, so they stay at their default before).
fn replica(p: &ReplicaProgress, version: i16) -> ReplicaState {
    let r = ReplicaState::default()
        .with_replica_id(BrokerId(p.replica_id))
        .with_log_end_offset(p.log_end_offset);
    if version < 1 {
        return r;
    }
    r.with_last_fetch_timestamp(p.last_fetch_timestamp)
        .with_last_caught_up_timestamp(p.last_caught_up_timestamp)
}

pub async fn handle(
    b: &BrokerContext,
    req: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    // Kafka answers anything but exactly __cluster_metadata-0 with a
    // top-level UNKNOWN_TOPIC_OR_PARTITION.
    let valid = req.topics.len() == 1
        && req.topics[0].topic_name.as_str() == METADATA_TOPIC
        && req.topics[0].partitions.len() == 1
        && req.topics[0].partitions[0].partition_index == 0;
    if !valid {
        return DescribeQuorumResponse::default()
            .with_error_code(E::UnknownTopicOrPartition.code())
            .with_error_message(
                (version >= 2)
                    .then(|| sb(format!("DescribeQuorum is about {METADATA_TOPIC}-0 only"))),
            );
    }
    let partition = match b
        .controller_request(ControllerRequest::DescribeQuorum)
        .await
    {
        ControllerResponse::Quorum(q) => PartitionData::default()
            .with_partition_index(0)
            .with_leader_id(BrokerId(q.leader_id))
            .with_leader_epoch(q.leader_epoch)
            .with_high_watermark(q.high_watermark)
            .with_current_voters(q.voters.iter().map(|r| replica(r, version)).collect())
            .with_observers(q.observers.iter().map(|r| replica(r, version)).collect()),
        other => {
            let (code, why) = crate::errors::controller_response(&other);
            let code = if code == 0 || code == E::NotController.code() {
                E::NotLeaderOrFollower.code()
            } else {
                code
            };
            PartitionData::default()
                .with_partition_index(0)
                .with_error_code(code)
                .with_error_message(why.filter(|_| version >= 2).map(sb))
                .with_leader_id(BrokerId(-1))
                .with_leader_epoch(-1)
                .with_high_watermark(-1)
        }
    };
    // v2: the voters' controller endpoints.
    let nodes = if version < 2 {
        Vec::new()
    } else {
        rivulet_controller::parse_voters(&b.config.quorum_voters)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| {
                let (host, port) = v.addr.rsplit_once(':')?;
                let port = port.parse::<u16>().ok()?;
                Some(
                    Node::default()
                        .with_node_id(BrokerId(v.id as i32))
                        .with_listeners(vec![Listener::default()
                            .with_name(sb("CONTROLLER"))
                            .with_host(sb(host))
                            .with_port(port)]),
                )
            })
            .collect()
    };
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(sb(METADATA_TOPIC)))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}
