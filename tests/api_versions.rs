//! Every advertised version of the main APIs gets a response that decodes.
//! kafka-protocol refuses to encode a field set to a non-default value in a
//! version that lacks it, which would close the client's connection; older
//! clients (kcat from Debian, kafka-python) use older versions than the
//! rdkafka crate, so each version is exercised here.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_testkit::prelude::*;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn range(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let r = rivulet_broker::api::supported(key).unwrap();
    r.min..=r.max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_of_the_data_apis_answers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "v", 1, &[]).await;
    let mut b = RecordBatchBuilder::new(Compression::None);
    b.push(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
        None,
        Some(b"x"),
        &[],
    );
    let records = Bytes::from(b.build().unwrap());
    // Produce v13 and Fetch v13+ name the topic by id (KIP-516).
    let id = topic_id(&bs, "v").await;

    for v in range(ApiKey::Produce).filter(|v| *v >= 3) {
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name("v"))
                .with_topic_id(id)
                .with_partition_data(vec![
                    PartitionProduceData::default().with_records(Some(records.clone()))
                ])]);
        let resp = raw_request(&bs, v, &req).await;
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code, 0,
            "Produce v{v}"
        );
    }
    for v in range(ApiKey::Fetch) {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(10)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name("v"))
                .with_topic_id(id)
                .with_partitions(vec![
                    FetchPartition::default().with_partition_max_bytes(1 << 20)
                ])]);
        let req = if v >= 7 {
            req.with_session_epoch(-1)
        } else {
            req
        };
        let resp = raw_request(&bs, v, &req).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert!(
            p.records.as_ref().is_some_and(|r| !r.is_empty()),
            "Fetch v{v} returned records"
        );
    }
    for v in range(ApiKey::ListOffsets) {
        for ts in [-2i64, -1, 0] {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(name("v"))
                    .with_partitions(vec![
                        ListOffsetsPartition::default().with_timestamp(ts)
                    ])]);
            let resp = raw_request(&bs, v, &req).await;
            assert_eq!(
                resp.topics[0].partitions[0].error_code, 0,
                "ListOffsets v{v} ts {ts}"
            );
        }
    }
    for v in range(ApiKey::OffsetForLeaderEpoch) {
        let req = OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(name("v"))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default().with_leader_epoch(0)
                ]),
        ]);
        let req = if v >= 3 {
            req.with_replica_id(BrokerId(-1))
        } else {
            req
        };
        let resp = raw_request(&bs, v, &req).await;
        let p = &resp.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "OffsetForLeaderEpoch v{v}");
        assert!(p.end_offset > 0, "OffsetForLeaderEpoch v{v}: {p:?}");
    }
    for v in range(ApiKey::Metadata) {
        let topics = Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("v")))
        ]);
        let req = MetadataRequest::default().with_topics(topics);
        let req = if v >= 4 {
            req.with_allow_auto_topic_creation(false)
        } else {
            req
        };
        let resp = raw_request(&bs, v, &req).await;
        assert_eq!(resp.topics[0].error_code, 0, "Metadata v{v}");
        assert_eq!(resp.topics[0].partitions.len(), 1);
    }
    for v in range(ApiKey::FindCoordinator) {
        let req = if v >= 4 {
            FindCoordinatorRequest::default()
                .with_coordinator_keys(vec![StrBytes::from_static_str("vg")])
        } else {
            FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("vg"))
        };
        let resp = raw_request(&bs, v, &req).await;
        let code = if v >= 4 {
            resp.coordinators[0].error_code
        } else {
            resp.error_code
        };
        assert!(code == 0 || code == 15, "FindCoordinator v{v}: {code}");
    }
    for v in range(ApiKey::OffsetFetch).filter(|v| *v < 8) {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("vg")))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(name("v"))
                .with_partition_indexes(vec![0])]));
        let resp = raw_request(&bs, v, &req).await;
        assert_eq!(
            resp.topics[0].partitions[0].committed_offset, -1,
            "OffsetFetch v{v}"
        );
    }
    for v in range(ApiKey::ApiVersions) {
        let req = ApiVersionsRequest::default();
        let req = if v >= 3 {
            req.with_client_software_name(StrBytes::from_static_str("t"))
                .with_client_software_version(StrBytes::from_static_str("1"))
        } else {
            req
        };
        let resp = raw_request(&bs, v, &req).await;
        assert_eq!(resp.error_code, 0, "ApiVersions v{v}");
    }
}
