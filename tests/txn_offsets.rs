//! Offsets committed in a transaction (TxnOffsetCommit, KIP-98/KIP-447)
//! over raw requests: pending until the transaction's marker, invisible to
//! OffsetFetch (which with `require_stable`, v7+, answers
//! UNSTABLE_OFFSET_COMMIT and before v7 the last committed offset), kept
//! pending across a restart, committed when the COMMIT marker is in
//! `__consumer_offsets`. The marker is written here as WriteTxnMarkers
//! will write it (append to the offsets partition, then
//! `GroupCoordinator::complete_txn`), since the transaction coordinator is
//! not part of this test.

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rivulet_broker::group::offsets::OFFSETS_TOPIC;
use rivulet_broker::replica_manager::AppendOrigin;
use rivulet_protocol::record_batch::{self, BatchHeader, Compression, TimestampType};
use rivulet_protocol::records::{self, Record};
use rivulet_storage::TopicPartition;
use rivulet_testkit::prelude::*;

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const ILLEGAL_GENERATION: i16 = 22;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;

const TOPIC: &str = "txn-in";
const GROUP: &str = "txn-group";
const PRODUCER_ID: i64 = 4242;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// TxnOffsetCommit of `(partition, offset)`s of [`TOPIC`]; the error code
/// of each partition.
async fn txn_commit(
    bs: &str,
    version: i16,
    group: &str,
    epoch: i16,
    generation: i32,
    member: &str,
    offsets: &[(&str, i32, i64)],
) -> Vec<(i32, i16)> {
    let topics = offsets
        .iter()
        .map(|(t, p, o)| {
            TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(sb(t)))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*o)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(sb("")))])
        })
        .collect();
    let mut req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(sb("txn-1")))
        .with_group_id(GroupId(sb(group)))
        .with_producer_id(ProducerId(PRODUCER_ID))
        .with_producer_epoch(epoch)
        .with_topics(topics);
    if version >= 3 {
        req = req
            .with_generation_id(generation)
            .with_member_id(sb(member));
    }
    let resp = raw_request(bs, version, &req).await;
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.error_code))
        .collect()
}

/// A plain OffsetCommit (no generation) of `offset` for partition 0.
async fn commit(bs: &str, partition: i32, offset: i64) {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(GROUP)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(sb(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(sb(TOPIC)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])]);
    let resp = raw_request(bs, 8, &req).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, NONE);
}

/// `(committed offset, error code)` of partitions 0 and 1 through
/// OffsetFetch `version` (v8 in its per-group form).
async fn fetch(bs: &str, version: i16, require_stable: bool) -> Vec<(i64, i16)> {
    match try_fetch(bs, version, require_stable).await {
        Ok(rows) => rows,
        Err(code) => panic!("OffsetFetch v{version}: group error {code}"),
    }
}

/// The same, or the group-level error.
async fn try_fetch(bs: &str, version: i16, require_stable: bool) -> Result<Vec<(i64, i16)>, i16> {
    if version >= 8 {
        let req = OffsetFetchRequest::default()
            .with_require_stable(require_stable)
            .with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(sb(GROUP)))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(TopicName(sb(TOPIC)))
                    .with_partition_indexes(vec![0, 1])]))]);
        let resp = raw_request(bs, version, &req).await;
        let group = &resp.groups[0];
        if group.error_code != NONE {
            return Err(group.error_code);
        }
        return Ok(group.topics[0]
            .partitions
            .iter()
            .map(|p| (p.committed_offset, p.error_code))
            .collect());
    }
    let mut req = OffsetFetchRequest::default()
        .with_group_id(GroupId(sb(GROUP)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(sb(TOPIC)))
            .with_partition_indexes(vec![0, 1])]));
    if version >= 7 {
        req = req.with_require_stable(require_stable);
    }
    let resp = raw_request(bs, version, &req).await;
    if resp.error_code != NONE {
        return Err(resp.error_code);
    }
    Ok(resp.topics[0]
        .partitions
        .iter()
        .map(|p| (p.committed_offset, p.error_code))
        .collect())
}

/// A COMMIT marker of the producer (Kafka's control batch layout).
fn commit_marker(epoch: i16) -> Bytes {
    let header = BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: -1,
        magic: record_batch::MAGIC_V2,
        crc: 0,
        attributes: record_batch::attributes(
            Compression::None,
            TimestampType::CreateTime,
            true,
            true,
        ),
        last_offset_delta: 0,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: PRODUCER_ID,
        producer_epoch: epoch,
        base_sequence: -1,
        record_count: 1,
    };
    let marker = Record {
        offset_delta: 0,
        timestamp_delta: 0,
        key: Some(Bytes::from_static(&[0, 0, 0, 1])),
        value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
        headers: Vec::new(),
    };
    Bytes::from(records::build_batch(&header, &[marker]).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_offsets_stay_pending_until_the_commit_marker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, TOPIC, 2, &[]).await;
    commit(&bs, 0, 5).await;

    // A stale generation for a group that does not exist (KIP-447, v3).
    assert_eq!(
        txn_commit(&bs, 3, "no-such", 0, 1, "m-1", &[(TOPIC, 0, 1)]).await,
        vec![(0, ILLEGAL_GENERATION)]
    );
    // v0 and v3, and a retry: the last write wins. An unknown partition is
    // refused on its own.
    let ok = txn_commit(&bs, 0, GROUP, 0, -1, "", &[(TOPIC, 0, 9)]).await;
    assert_eq!(ok, vec![(0, NONE)]);
    let ok = txn_commit(
        &bs,
        3,
        GROUP,
        0,
        -1,
        "",
        &[(TOPIC, 0, 10), (TOPIC, 1, 20), ("nope", 0, 1)],
    )
    .await;
    assert_eq!(
        ok,
        vec![(0, NONE), (1, NONE), (0, UNKNOWN_TOPIC_OR_PARTITION)]
    );

    // Pending: old versions see the last committed offset, require_stable
    // sees UNSTABLE_OFFSET_COMMIT.
    for v in [1, 6, 7] {
        assert_eq!(
            fetch(&bs, v, false).await,
            vec![(5, NONE), (-1, NONE)],
            "v{v}"
        );
    }
    for v in [7, 8] {
        assert_eq!(
            fetch(&bs, v, true).await,
            vec![(-1, UNSTABLE_OFFSET_COMMIT), (-1, UNSTABLE_OFFSET_COMMIT)],
            "v{v}"
        );
    }

    // A restart replays the partition: still pending.
    let broker = broker.restart().await;
    let bs = broker.bootstrap();
    // Until this node leads the offsets partition again: NOT_COORDINATOR.
    let replayed = Poll::new(TIMEOUT)
        .value_async(|| async { try_fetch(&bs, 8, true).await.ok() })
        .await
        .expect("the coordinator never came back");
    assert_eq!(
        replayed,
        vec![(-1, UNSTABLE_OFFSET_COMMIT), (-1, UNSTABLE_OFFSET_COMMIT)],
        "pending offsets lost in the restart"
    );
    assert_eq!(fetch(&bs, 6, false).await, vec![(5, NONE), (-1, NONE)]);

    // A newer epoch fences the old producer's offset commits.
    let ok = txn_commit(&bs, 3, GROUP, 1, -1, "", &[(TOPIC, 1, 21)]).await;
    assert_eq!(ok, vec![(1, NONE)]);
    let fenced = txn_commit(&bs, 3, GROUP, 0, -1, "", &[(TOPIC, 1, 99)]).await;
    assert_eq!(fenced, vec![(1, INVALID_PRODUCER_EPOCH)]);

    // The COMMIT marker, as WriteTxnMarkers writes it.
    let ctx = &broker.node().broker;
    let partition = ctx.groups.partition_of(GROUP);
    let r = ctx
        .replicas
        .append_with_origin(
            &TopicPartition::new(OFFSETS_TOPIC, partition),
            Some(commit_marker(1)),
            -1,
            5_000,
            AppendOrigin::Coordinator,
        )
        .await;
    assert_eq!(r.error_code, NONE, "{r:?}");
    ctx.groups.complete_txn(partition, PRODUCER_ID, true).await;
    assert_eq!(fetch(&bs, 8, true).await, vec![(10, NONE), (21, NONE)]);
    assert_eq!(fetch(&bs, 1, false).await, vec![(10, NONE), (21, NONE)]);
}
