//! The GroupCoordinator with transactional offsets, on a one-node
//! [`LocalNode`]: real logs in a temp dir, `__consumer_offsets` led by this
//! node, markers appended as the transaction coordinator appends them.
//! A second coordinator over the same node stands for a new coordinator
//! replaying the partition.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use kafka_protocol::ResponseError as E;
use rivulet_controller::{
    ControllerRequest, ControllerResponse, MetadataImage, MetadataRecord, QuorumError,
};
use rivulet_storage::{LogManager, StorageConfig, SystemClock, TopicPartition};
use tokio::sync::watch;
use uuid::Uuid;

use super::*;
use crate::controller_client::ControllerClient;
use crate::replica_manager::ReplicaManager;

/// Offsets partitions of the test node.
const PARTITIONS: i32 = 2;

/// A quorum that only hands out one fixed image.
#[derive(Debug)]
struct FixedImage(watch::Sender<Arc<MetadataImage>>);

impl ControllerClient for FixedImage {
    fn image(&self) -> Arc<MetadataImage> {
        self.0.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.0.subscribe()
    }

    fn active_controller(&self) -> Option<i32> {
        None
    }

    fn request(
        &self,
        _req: ControllerRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<ControllerResponse, QuorumError>> {
        Box::pin(async { Err(QuorumError::Storage("no controller in this test".into())) })
    }
}

/// Node 1 leading every `__consumer_offsets` partition alone.
fn node(dir: &std::path::Path) -> LocalNode {
    let logs = LogManager::open(
        dir,
        StorageConfig::default(),
        Arc::new(SystemClock),
        &|_| None,
    )
    .unwrap();
    let rm = Arc::new(ReplicaManager::new(1, Arc::new(logs), 1));
    let topic_id = Uuid::new_v4();
    let mut image = MetadataImage::default();
    let topic = MetadataRecord::Topic {
        name: OFFSETS_TOPIC.into(),
        topic_id,
        configs: BTreeMap::new(),
    };
    image.apply(1, &topic).unwrap();
    for partition in 0..PARTITIONS {
        let p = MetadataRecord::Partition {
            topic_id,
            partition,
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        };
        image.apply(2 + partition as u64, &p).unwrap();
    }
    rm.apply_image(&image);
    let (tx, _) = watch::channel(Arc::new(image));
    LocalNode::new(rm, Arc::new(FixedImage(tx)))
}

fn coordinator(node: &LocalNode) -> GroupCoordinator {
    let config = CoordinatorConfig {
        offsets_partitions: PARTITIONS,
        ..CoordinatorConfig::default()
    };
    GroupCoordinator::new(config, node.clone())
}

fn off(offset: i64) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: 0,
        metadata: Some(String::new()),
        commit_timestamp: 0,
    }
}

fn txn(producer_id: i64, producer_epoch: i16) -> TxnCommit {
    TxnCommit {
        producer_id,
        producer_epoch,
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
    }
}

fn commits(rows: &[(i32, i64)]) -> Vec<(String, i32, CommittedOffset)> {
    rows.iter()
        .map(|(p, o)| ("t".to_string(), *p, off(*o)))
        .collect()
}

/// Append the marker to the group's offsets partition, then tell the
/// coordinator (what WriteTxnMarkers does).
async fn end_txn(gc: &GroupCoordinator, group: &str, pid: i64, epoch: i16, commit: bool) {
    let p = gc.partition_of(group);
    let r = gc
        .node
        .replicas
        .append_with_origin(
            &TopicPartition::new(OFFSETS_TOPIC, p),
            Some(offsets::marker_batch(pid, epoch, commit)),
            -1,
            5_000,
            AppendOrigin::Coordinator,
        )
        .await;
    assert_eq!(r.error_code, 0, "{r:?}");
    gc.complete_txn(p, pid, commit).await;
}

/// `(committed offset, error code)` of t-`partition`.
async fn fetched(
    gc: &GroupCoordinator,
    group: &str,
    partition: i32,
    require_stable: bool,
) -> (Option<i64>, i16) {
    let rows = gc
        .fetch(group, Some(vec![("t".into(), partition)]), require_stable)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    (r.offset.as_ref().map(|o| o.offset), r.error_code)
}

const UNSTABLE: i16 = 88;

#[tokio::test]
async fn txn_offsets_are_pending_until_the_commit_marker() {
    let dir = tempfile::tempdir().unwrap();
    let gc = coordinator(&node(dir.path()));
    assert_eq!(E::UnstableOffsetCommit.code(), UNSTABLE);
    gc.commit("g", "", None, -1, commits(&[(0, 5)]))
        .await
        .unwrap();
    gc.txn_commit("g", &txn(7, 0), commits(&[(0, 9), (1, 3)]))
        .await
        .unwrap();
    // Not visible; require_stable reports the pending commit.
    assert_eq!(fetched(&gc, "g", 0, false).await, (Some(5), 0));
    assert_eq!(fetched(&gc, "g", 1, false).await, (None, 0));
    assert_eq!(fetched(&gc, "g", 0, true).await, (None, UNSTABLE));
    assert_eq!(fetched(&gc, "g", 1, true).await, (None, UNSTABLE));
    let all = gc.fetch("g", None, false).await.unwrap();
    assert_eq!(all.len(), 1, "only committed offsets are listed: {all:?}");

    end_txn(&gc, "g", 7, 0, true).await;
    assert_eq!(fetched(&gc, "g", 0, true).await, (Some(9), 0));
    assert_eq!(fetched(&gc, "g", 1, true).await, (Some(3), 0));
    // The marker again (a retried WriteTxnMarkers) changes nothing.
    gc.complete_txn(gc.partition_of("g"), 7, true).await;
    assert_eq!(fetched(&gc, "g", 0, false).await, (Some(9), 0));
}

#[tokio::test]
async fn abort_drops_pending_offsets_and_retries_keep_the_last_write() {
    let dir = tempfile::tempdir().unwrap();
    let gc = coordinator(&node(dir.path()));
    gc.commit("g", "", None, -1, commits(&[(0, 5)]))
        .await
        .unwrap();
    gc.txn_commit("g", &txn(7, 0), commits(&[(0, 9)]))
        .await
        .unwrap();
    end_txn(&gc, "g", 7, 0, false).await;
    assert_eq!(fetched(&gc, "g", 0, true).await, (Some(5), 0));

    // Next transaction of the producer: a retry with another offset wins.
    gc.txn_commit("g", &txn(7, 0), commits(&[(0, 10)]))
        .await
        .unwrap();
    gc.txn_commit("g", &txn(7, 0), commits(&[(0, 11)]))
        .await
        .unwrap();
    end_txn(&gc, "g", 7, 0, true).await;
    assert_eq!(fetched(&gc, "g", 0, true).await, (Some(11), 0));
}

#[tokio::test]
async fn a_new_coordinator_replays_commits_aborts_and_open_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path());
    let gc = coordinator(&node);
    gc.commit("g", "", None, -1, commits(&[(0, 1), (1, 1)]))
        .await
        .unwrap();
    gc.txn_commit("g", &txn(7, 0), commits(&[(0, 2)]))
        .await
        .unwrap();
    gc.txn_commit("g", &txn(8, 0), commits(&[(1, 2)]))
        .await
        .unwrap();
    end_txn(&gc, "g", 7, 0, true).await;
    end_txn(&gc, "g", 8, 0, false).await;
    // Open at the log end.
    gc.txn_commit("g", &txn(7, 0), commits(&[(1, 3)]))
        .await
        .unwrap();

    let fresh = coordinator(&node);
    assert_eq!(fetched(&fresh, "g", 0, true).await, (Some(2), 0));
    assert_eq!(fetched(&fresh, "g", 1, false).await, (Some(1), 0));
    assert_eq!(fetched(&fresh, "g", 1, true).await, (None, UNSTABLE));
    end_txn(&fresh, "g", 7, 0, true).await;
    assert_eq!(fetched(&fresh, "g", 1, true).await, (Some(3), 0));
}

#[tokio::test]
async fn a_marker_reported_to_a_coordinator_that_has_not_loaded_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path());
    let gc = coordinator(&node);
    gc.txn_commit("g", &txn(7, 0), commits(&[(0, 4)]))
        .await
        .unwrap();
    let fresh = coordinator(&node);
    end_txn(&fresh, "g", 7, 0, true).await;
    assert_eq!(fetched(&fresh, "g", 0, true).await, (Some(4), 0));
}

#[tokio::test]
async fn offsets_only_transactions_create_the_group_and_generations_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let gc = coordinator(&node(dir.path()));
    // A generation for a group that does not exist: stale, nothing created.
    let stale = TxnCommit {
        generation_id: 3,
        member_id: "m-1".into(),
        ..txn(7, 0)
    };
    assert_eq!(
        gc.txn_commit("new", &stale, commits(&[(0, 1)])).await,
        Err(E::IllegalGeneration.code())
    );
    assert_eq!(gc.describe("new").await.unwrap().state, GroupState::Dead);
    gc.txn_commit("new", &txn(7, 0), commits(&[(0, 1)]))
        .await
        .unwrap();
    assert_eq!(gc.describe("new").await.unwrap().state, GroupState::Empty);
    // The group exists now: an unknown member is refused.
    assert_eq!(
        gc.txn_commit("new", &stale, commits(&[(0, 2)])).await,
        Err(E::UnknownMemberId.code())
    );
    end_txn(&gc, "new", 7, 0, true).await;
    assert_eq!(fetched(&gc, "new", 0, false).await, (Some(1), 0));
}

#[tokio::test]
async fn an_older_producer_epoch_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let gc = coordinator(&node(dir.path()));
    gc.txn_commit("g", &txn(7, 1), commits(&[(0, 1)]))
        .await
        .unwrap();
    assert_eq!(
        gc.txn_commit("g", &txn(7, 0), commits(&[(0, 2)])).await,
        Err(E::InvalidProducerEpoch.code())
    );
    assert_eq!(
        gc.txn_commit("g", &txn(-1, 0), commits(&[(0, 2)])).await,
        Err(E::InvalidProducerIdMapping.code())
    );
    end_txn(&gc, "g", 7, 1, true).await;
    assert_eq!(fetched(&gc, "g", 0, false).await, (Some(1), 0));
}

#[tokio::test]
async fn deleting_offsets_or_the_group_drops_pending_ones_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path());
    let gc = coordinator(&node);
    gc.txn_commit("g", &txn(7, 0), commits(&[(0, 1), (1, 1)]))
        .await
        .unwrap();
    gc.delete_offsets("g", &[("t".into(), 0)]).await.unwrap();
    assert_eq!(fetched(&gc, "g", 0, true).await, (None, 0));
    assert_eq!(fetched(&gc, "g", 1, true).await, (None, UNSTABLE));
    end_txn(&gc, "g", 7, 0, true).await;
    assert_eq!(
        fetched(&gc, "g", 0, false).await,
        (None, 0),
        "not resurrected"
    );
    assert_eq!(fetched(&gc, "g", 1, false).await, (Some(1), 0));

    gc.txn_commit("h", &txn(8, 0), commits(&[(0, 5)]))
        .await
        .unwrap();
    assert_eq!(gc.delete("h").await, 0);
    end_txn(&gc, "h", 8, 0, true).await;
    assert_eq!(fetched(&gc, "h", 0, false).await, (None, 0));

    // A new coordinator replays the same.
    let fresh = coordinator(&node);
    assert_eq!(fetched(&fresh, "g", 0, true).await, (None, 0));
    assert_eq!(fetched(&fresh, "g", 1, true).await, (Some(1), 0));
    assert_eq!(fetched(&fresh, "h", 0, true).await, (None, 0));
    assert_eq!(fresh.describe("h").await.unwrap().state, GroupState::Dead);
}

#[tokio::test]
async fn retention_spares_offsets_with_a_pending_transactional_commit() {
    let dir = tempfile::tempdir().unwrap();
    let config = CoordinatorConfig {
        offsets_partitions: PARTITIONS,
        offsets_retention_ms: 0,
        ..CoordinatorConfig::default()
    };
    let gc = GroupCoordinator::new(config, node(dir.path()));
    gc.commit("g", "", None, -1, commits(&[(0, 1), (1, 1)]))
        .await
        .unwrap();
    gc.txn_commit("g", &txn(7, 0), commits(&[(1, 2)]))
        .await
        .unwrap();
    let entries: Vec<Arc<GroupEntry>> = gc.groups.lock().values().cloned().collect();
    gc.expire_offsets(&entries, now_ms() + 1).await;
    assert_eq!(fetched(&gc, "g", 0, false).await, (None, 0), "expired");
    assert_eq!(fetched(&gc, "g", 1, false).await, (Some(1), 0), "kept");
    end_txn(&gc, "g", 7, 0, true).await;
    assert_eq!(fetched(&gc, "g", 1, false).await, (Some(2), 0));
}

fn classic_join(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "classic".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), bytes::Bytes::from_static(b"m"))],
        require_known_member_id: false,
        supports_skip_assignment: true,
        reason: None,
    }
}

fn consumer_join(member_id: &str) -> crate::group::consumer::Heartbeat {
    crate::group::consumer::Heartbeat {
        member_id: member_id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 10_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: Some(Default::default()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_consumer_group_is_rebuilt_by_a_new_coordinator_and_refuses_classic_members() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path());
    let gc = coordinator(&n);
    let r = gc
        .consumer_heartbeat("cg", consumer_join("m1"))
        .await
        .unwrap();
    assert_eq!((r.member_id.as_str(), r.member_epoch), ("m1", 1));
    gc.commit("cg", "m1", None, 1, commits(&[(0, 5)]))
        .await
        .unwrap();
    assert_eq!(
        gc.commit("cg", "m1", None, 0, commits(&[(0, 6)])).await,
        Err(E::StaleMemberEpoch.code())
    );
    // A second coordinator replays the partition: same group, same member,
    // same epoch, the committed offset.
    let gc2 = Arc::new(coordinator(&n));
    let (stop, stopped) = watch::channel(false);
    let timers = tokio::spawn(gc2.clone().run_timers(stopped));
    let view = gc2.consumer_describe("cg").await.unwrap().unwrap();
    assert_eq!(view.data.group_epoch, 1);
    assert_eq!(view.data.members["m1"].member_epoch, 1);
    assert_eq!(fetched(&gc2, "cg", 0, false).await, (Some(5), 0));
    let mut hb = consumer_join("m1");
    hb.member_epoch = 1;
    assert_eq!(
        gc2.consumer_heartbeat("cg", hb).await.unwrap().member_epoch,
        1
    );
    // A classic member whose metadata is no consumer subscription may not
    // join it.
    let j = gc2.join("cg", classic_join("")).await;
    assert_eq!(j.error_code, E::InconsistentGroupProtocol.code());
    assert_eq!(gc2.list_typed().await[0].group_type, "consumer");
    // Once empty, a classic member turns it into a classic group (offsets kept).
    let mut leave = consumer_join("m1");
    leave.member_epoch = -1;
    gc2.consumer_heartbeat("cg", leave).await.unwrap();
    let j = gc2.join("cg", classic_join("")).await;
    assert_eq!(j.error_code, 0);
    assert_eq!(fetched(&gc2, "cg", 0, false).await, (Some(5), 0));
    // Now a consumer-protocol member is told it is not a consumer group.
    let err = gc2
        .consumer_heartbeat("cg", consumer_join("m2"))
        .await
        .unwrap_err();
    assert_eq!(err.code, E::GroupIdNotFound.code());
    // And the group stays classic for a third coordinator.
    let gc3 = coordinator(&n);
    assert!(gc3.consumer_describe("cg").await.unwrap().is_none());
    stop.send(true).unwrap();
    timers.await.unwrap();
}
