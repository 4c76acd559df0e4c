//! Authorized operations (KIP-430) over raw requests, for every advertised
//! version that has the field: Metadata (topics v8+, cluster v8–10),
//! DescribeGroups (v3+) and DescribeCluster. Without an authorizer Kafka
//! answers every operation the resource type supports
//! (`AclEntry.supportedOperations`) when the request asks, and INT32_MIN
//! (the schema default) when it does not: kafka-python decodes the field
//! into `ACLOperation`s whenever it is present and raises on bit 31.
//!
//! The expected bitfields are spelled out from Kafka's `AclOperation` codes
//! here, not taken from the broker's constants.

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_testkit::prelude::*;

/// The field's value when the request did not ask.
const OMITTED: i32 = i32::MIN;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

// Kafka's `AclOperation` codes.
const READ: i32 = 3;
const WRITE: i32 = 4;
const CREATE: i32 = 5;
const DELETE: i32 = 6;
const ALTER: i32 = 7;
const DESCRIBE: i32 = 8;
const CLUSTER_ACTION: i32 = 9;
const DESCRIBE_CONFIGS: i32 = 10;
const ALTER_CONFIGS: i32 = 11;
const IDEMPOTENT_WRITE: i32 = 12;

fn bits(ops: &[i32]) -> i32 {
    ops.iter().fold(0, |acc, op| acc | (1 << op))
}

fn topic_ops() -> i32 {
    bits(&[
        READ,
        WRITE,
        CREATE,
        DELETE,
        ALTER,
        DESCRIBE,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
    ])
}

fn cluster_ops() -> i32 {
    bits(&[
        CREATE,
        ALTER,
        DESCRIBE,
        CLUSTER_ACTION,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        IDEMPOTENT_WRITE,
    ])
}

fn group_ops() -> i32 {
    bits(&[READ, DESCRIBE, DELETE])
}

fn range(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let r = rivulet_broker::api::supported(key).unwrap();
    r.min..=r.max
}

fn topic(name: &str) -> MetadataRequestTopic {
    MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
}

/// Metadata for `ops` and a topic that does not exist (not auto-created):
/// `(name, error, topic operations)` of each, and the cluster operations.
async fn metadata(bs: &str, version: i16, ask: bool) -> (Vec<(String, i16, i32)>, i32) {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![topic("ops"), topic("ops-missing")]))
        .with_allow_auto_topic_creation(false)
        .with_include_topic_authorized_operations(ask)
        // The cluster flag left the request in v11.
        .with_include_cluster_authorized_operations(ask && version <= 10);
    let resp = raw_request(bs, version, &req).await;
    let topics = resp
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            (name, t.error_code, t.topic_authorized_operations)
        })
        .collect();
    (topics, resp.cluster_authorized_operations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_describe_cluster_report_operations_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "ops", 2, &[]).await;

    for v in range(ApiKey::Metadata).filter(|v| *v >= 8) {
        let (topics, cluster) = metadata(&bs, v, true).await;
        assert_eq!(
            topics,
            vec![
                ("ops".to_string(), 0, topic_ops()),
                // Kafka fills every topic asked for by name, unknown too.
                (
                    "ops-missing".to_string(),
                    UNKNOWN_TOPIC_OR_PARTITION,
                    topic_ops()
                ),
            ],
            "Metadata v{v} asked"
        );
        let want_cluster = if v <= 10 { cluster_ops() } else { OMITTED };
        assert_eq!(cluster, want_cluster, "Metadata v{v} cluster, asked");

        let (topics, cluster) = metadata(&bs, v, false).await;
        assert!(
            topics.iter().all(|(_, _, ops)| *ops == OMITTED),
            "Metadata v{v} not asked: {topics:?}"
        );
        assert_eq!(cluster, OMITTED, "Metadata v{v} cluster, not asked");
    }

    // Every topic (a null list) carries them too.
    let all = MetadataRequest::default()
        .with_topics(None)
        .with_include_topic_authorized_operations(true);
    let resp = raw_request(&bs, 8, &all).await;
    assert!(!resp.topics.is_empty());
    for t in &resp.topics {
        assert_eq!(t.topic_authorized_operations, topic_ops(), "{:?}", t.name);
    }

    for v in range(ApiKey::DescribeCluster) {
        let req =
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
        let resp = raw_request(&bs, v, &req).await;
        assert_eq!(
            resp.cluster_authorized_operations,
            cluster_ops(),
            "DescribeCluster v{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_groups_reports_group_operations_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "ops", 1, &[]).await;
    // A simple consumer's commit creates the group (Empty).
    let group = "ops-group";
    let c = consumer(&bs, &[("group.id", group)]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("ops", 0, Offset::Offset(0))
        .unwrap();
    c.commit(&tpl, CommitMode::Sync).unwrap();

    for v in range(ApiKey::DescribeGroups) {
        for ask in [false, true] {
            if ask && v < 3 {
                continue; // The flag exists from v3.
            }
            let req = DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_static_str(group))])
                .with_include_authorized_operations(ask);
            let resp = raw_request(&bs, v, &req).await;
            let g = &resp.groups[0];
            assert_eq!((g.error_code, g.group_state.as_str()), (0, "Empty"));
            let want = if ask { group_ops() } else { OMITTED };
            assert_eq!(
                g.authorized_operations, want,
                "DescribeGroups v{v} asked={ask}"
            );
        }
    }
}
