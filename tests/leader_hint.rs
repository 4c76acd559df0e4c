//! KIP-951 (issue 15, "Failover"): a NOT_LEADER_OR_FOLLOWER answer names
//! the partition's current leader, raw over the wire on a 3-node cluster
//! (in process). Produce v10+ carries `CurrentLeader` (leader id and epoch)
//! and `NodeEndpoints` (how to reach that leader); Fetch v12 carries
//! `CurrentLeader`; an older Produce version carries neither. By topic id,
//! Produce v13 and Fetch v13–17 carry them too, Fetch v16+ with the
//! leader's `NodeEndpoints`.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{BrokerId, FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_testkit::prelude::*;

fn produce_request(topic: &str) -> ProduceRequest {
    let mut b = RecordBatchBuilder::new(Compression::None);
    b.push(0, None, Some(b"misdirected"), &[]);
    let records = Bytes::from(b.build().unwrap());
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(2_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn not_leader_answers_name_the_current_leader() {
    let dir = tempfile::tempdir().unwrap();
    let brokers = start_cluster(dir.path(), 3, &[("offsets.topic.replication.factor", "1")]).await;
    let bootstrap = cluster_bootstrap(&brokers);
    let topic = "hinted";
    create_topic_rf(&bootstrap, topic, 1, 3, &[("min.insync.replicas", "2")]).await;
    let (leader, epoch) = Poll::new(TIMEOUT)
        .retry_async("a leader with every replica in sync", || {
            let image = brokers[0].node().broker.image();
            std::future::ready(match image.partition(topic, 0) {
                Some(p) if p.leader > 0 && p.isr.len() == 3 => Ok((p.leader, p.leader_epoch)),
                other => Err(other.cloned()),
            })
        })
        .await;
    let leader_broker = brokers
        .iter()
        .find(|b| b.node().broker.node_id() == leader)
        .expect("the leader runs");
    let follower = brokers
        .iter()
        .find(|b| b.node().broker.node_id() != leader)
        .expect("a follower");
    // The follower must host the partition as a follower first.
    Poll::new(TIMEOUT)
        .retry_async("the follower to host the partition", || {
            let hosted = follower
                .node()
                .broker
                .replicas
                .get(&rivulet_storage::TopicPartition::new(topic, 0))
                .is_some();
            std::future::ready(if hosted { Ok(()) } else { Err("not yet") })
        })
        .await;

    // Produce v12 to the follower: NOT_LEADER_OR_FOLLOWER with the leader.
    let resp = raw_request(&follower.bootstrap(), 12, &produce_request(topic)).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, E::NotLeaderOrFollower.code());
    assert_eq!(
        p.current_leader.leader_id,
        BrokerId(leader),
        "CurrentLeader id"
    );
    assert_eq!(p.current_leader.leader_epoch, epoch, "CurrentLeader epoch");
    assert_eq!(resp.node_endpoints.len(), 1, "{:?}", resp.node_endpoints);
    let e = &resp.node_endpoints[0];
    assert_eq!(e.node_id, BrokerId(leader));
    assert_eq!(
        format!("{}:{}", e.host, e.port),
        leader_broker.bootstrap(),
        "NodeEndpoints names the leader's listener"
    );

    // Produce v9 has no such fields: nothing is filled (nor encodable).
    let resp = raw_request(&follower.bootstrap(), 9, &produce_request(topic)).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, E::NotLeaderOrFollower.code());
    assert_eq!(p.current_leader.leader_id, BrokerId(-1));
    assert!(resp.node_endpoints.is_empty());

    // A consumer's Fetch v12 to the follower: CurrentLeader too.
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_current_leader_epoch(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let resp = raw_request(&follower.bootstrap(), 12, &fetch).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, E::NotLeaderOrFollower.code());
    assert_eq!(p.current_leader.leader_id, BrokerId(leader));
    assert_eq!(p.current_leader.leader_epoch, epoch);

    // By topic id (KIP-516): Produce v13 and Fetch v13–17 carry the same
    // hints, and Fetch v16+ also the leader's NodeEndpoints.
    let id = topic_id(&follower.bootstrap(), topic).await;
    let mut by_id = produce_request(topic);
    by_id.topic_data[0].topic_id = id;
    let resp = raw_request(&follower.bootstrap(), 13, &by_id).await;
    assert_eq!(resp.responses[0].topic_id, id);
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, E::NotLeaderOrFollower.code(), "Produce v13");
    assert_eq!(p.current_leader.leader_id, BrokerId(leader));
    assert_eq!(resp.node_endpoints.len(), 1, "{:?}", resp.node_endpoints);
    let mut fetch = fetch;
    fetch.topics[0].topic_id = id;
    for v in 13..=17 {
        let resp = raw_request(&follower.bootstrap(), v, &fetch).await;
        assert_eq!(resp.responses[0].topic_id, id);
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, E::NotLeaderOrFollower.code(), "Fetch v{v}");
        assert_eq!(p.current_leader.leader_id, BrokerId(leader), "Fetch v{v}");
        assert_eq!(p.current_leader.leader_epoch, epoch, "Fetch v{v}");
        if v >= 16 {
            assert_eq!(resp.node_endpoints.len(), 1, "Fetch v{v}");
            let e = &resp.node_endpoints[0];
            assert_eq!(e.node_id, BrokerId(leader));
            assert_eq!(
                format!("{}:{}", e.host, e.port),
                leader_broker.bootstrap(),
                "Fetch v{v} NodeEndpoints names the leader's listener"
            );
        } else {
            assert!(resp.node_endpoints.is_empty(), "Fetch v{v}");
        }
    }

    for mut b in brokers {
        b.stop().await;
    }
}
