//! DescribeCluster and DescribeLogDirs, which librdkafka cannot send, as
//! raw requests.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_and_log_dirs_report_this_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    let b = broker_of(&broker);

    for version in [0, 1] {
        let resp = raw_request(&bs, version, &DescribeClusterRequest::default()).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.cluster_id.to_string(), b.cluster_id);
        assert_eq!(resp.controller_id.0, 1);
        assert_eq!(resp.cluster_authorized_operations, i32::MIN);
        let brokers: Vec<(i32, String, i32)> = resp
            .brokers
            .iter()
            .map(|x| (x.broker_id.0, x.host.to_string(), x.port))
            .collect();
        assert_eq!(
            brokers,
            vec![(1, "127.0.0.1".to_string(), broker.port as i32)]
        );
    }
    let asked = DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    let resp = raw_request(&bs, 1, &asked).await;
    assert_eq!(
        resp.cluster_authorized_operations,
        rivulet_broker::handlers::describe_cluster::CLUSTER_OPERATIONS
    );
    let controllers = DescribeClusterRequest::default().with_endpoint_type(2);
    let resp = raw_request(&bs, 1, &controllers).await;
    assert_eq!(resp.error_code, 114, "MISMATCHED_ENDPOINT_TYPE");
    // librdkafka's view (from Metadata) agrees.
    let c = consumer(&bs, &[]);
    let md = c.fetch_metadata(None, TIMEOUT).unwrap();
    let brokers: Vec<(i32, String, i32)> = md
        .brokers()
        .iter()
        .map(|x| (x.id(), x.host().to_string(), x.port()))
        .collect();
    assert_eq!(
        brokers,
        vec![(1, "127.0.0.1".to_string(), broker.port as i32)]
    );

    create_topic(&bs, "dirs", 2, &[]).await;
    let p = producer(&bs, &[]);
    produce_values(&p, "dirs", 0, &values("d", 3)).await;
    let on_disk: i64 = segment_files(&dir.path().join("dirs-0"))
        .iter()
        .map(|(_, len)| *len as i64)
        .sum();
    assert!(on_disk > 0);
    let log_dir = std::path::absolute(dir.path())
        .unwrap()
        .display()
        .to_string();
    for version in [1, 4] {
        let resp = raw_request(
            &bs,
            version,
            &DescribeLogDirsRequest::default().with_topics(None),
        )
        .await;
        assert_eq!(resp.results.len(), 1);
        let r = &resp.results[0];
        assert_eq!((r.error_code, r.log_dir.to_string()), (0, log_dir.clone()));
        let t = r
            .topics
            .iter()
            .find(|t| t.name.to_string() == "dirs")
            .unwrap();
        let parts: Vec<(i32, i64, i64, bool)> = t
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    p.partition_size,
                    p.offset_lag,
                    p.is_future_key,
                )
            })
            .collect();
        assert_eq!(parts, vec![(0, on_disk, 0, false), (1, 0, 0, false)]);
    }
    let only =
        DescribeLogDirsRequest::default()
            .with_topics(Some(vec![DescribableLogDirTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("dirs")))
                .with_partitions(vec![1, 7])]));
    let resp = raw_request(&bs, 4, &only).await;
    let topics: Vec<(String, Vec<i32>)> = resp.results[0]
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    assert_eq!(topics, vec![("dirs".to_string(), vec![1])]);
}

/// DescribeQuorum on a single node: a quorum of one, led by itself, its
/// log end at or past the high watermark (the three-node case is in
/// tests/leader_elections.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_quorum_of_a_single_node() {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use kafka_protocol::messages::DescribeQuorumRequest;
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let r = raw_request(&broker.bootstrap(), 2, &req).await;
    assert_eq!(r.error_code, 0);
    let p = &r.topics[0].partitions[0];
    assert_eq!(
        (p.error_code, p.leader_id.0),
        (0, 1),
        "{:?}",
        p.error_message
    );
    assert!(p.leader_epoch >= 1 && p.high_watermark > 0);
    assert_eq!(p.current_voters.len(), 1);
    let me = &p.current_voters[0];
    assert_eq!(me.replica_id.0, 1);
    assert!(me.log_end_offset >= p.high_watermark);
    assert!(p.observers.is_empty());
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(r.nodes[0].listeners[0].port, broker.controller_port);
}
