//! `ReplicaManager` as the executor of the replication state machine: real
//! logs in a temp dir, a manual clock for follower lag, produces parked on
//! `acks=all`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError as E;
use rivulet_controller::{MetadataImage, MetadataRecord};
use rivulet_storage::{LogManager, TopicPartition};
use uuid::Uuid;

use super::*;
use crate::errors;
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_storage::{ManualClock, StorageConfig, SystemClock};

/// A replica manager on node 1 leading `t`/0 with replicas and ISR
/// [1, 2, 3] and min.insync.replicas 2.
fn leader(dir: &std::path::Path, clock: Arc<ManualClock>) -> (ReplicaManager, MetadataImage) {
    let logs = LogManager::open(
        dir,
        StorageConfig::default(),
        Arc::new(SystemClock),
        &|_| None,
    )
    .unwrap();
    let rm = ReplicaManager::new(1, Arc::new(logs), 1).with_lag_clock(clock);
    let topic_id = Uuid::new_v4();
    let mut image = MetadataImage::default();
    let configs = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
    image
        .apply(
            1,
            &MetadataRecord::Topic {
                name: "t".into(),
                topic_id,
                configs,
            },
        )
        .unwrap();
    image
        .apply(
            2,
            &MetadataRecord::Partition {
                topic_id,
                partition: 0,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2, 3],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        )
        .unwrap();
    rm.apply_image(&image);
    (rm, image)
}

/// Apply a PartitionChange of `t`/0 at image offset `offset`.
fn change(
    rm: &ReplicaManager,
    image: &mut MetadataImage,
    offset: u64,
    leader: Option<i32>,
    isr: Option<Vec<i32>>,
) {
    let topic_id = image.topic("t").unwrap().id;
    image
        .apply(
            offset,
            &MetadataRecord::PartitionChange {
                topic_id,
                partition: 0,
                leader,
                isr,
            },
        )
        .unwrap();
    rm.apply_image(image);
}

/// An acks=all produce of one record, parked after its append.
async fn parked_produce(
    rm: &Arc<ReplicaManager>,
) -> (tokio::task::JoinHandle<AppendResult>, Arc<Partition>) {
    let producing = tokio::spawn({
        let rm = rm.clone();
        async move { rm.append(&tp(), Some(batch()), -1, 10_000).await }
    });
    let p = rm.get(&tp()).unwrap();
    while p.log.lock().log_end_offset() < 1 {
        tokio::task::yield_now().await;
    }
    (producing, p)
}

fn batch() -> Bytes {
    let mut b = RecordBatchBuilder::new(Compression::None);
    b.push(0, None, Some(b"v"), &[]);
    Bytes::from(b.build().unwrap())
}

/// Follower `follower` fetches at `offset` (its last batch in epoch 0).
fn fetched(rm: &ReplicaManager, p: &Partition, follower: i32, offset: i64) {
    let last_epoch = if offset > 0 { 0 } else { -1 };
    let answer = rm.follower_fetch(p, follower, offset, None, last_epoch);
    assert_eq!(answer, crate::replication::FollowerFetchAnswer::Read);
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

#[tokio::test]
async fn acks_all_times_out_while_followers_lag() {
    let dir = tempfile::tempdir().unwrap();
    let (rm, _) = leader(dir.path(), Arc::new(ManualClock::new(0)));
    let r = rm.append(&tp(), Some(batch()), -1, 50).await;
    assert_eq!(r.error_code, E::RequestTimedOut.code());
    // The record is in the leader's log, but not committed.
    let p = rm.get(&tp()).unwrap();
    assert_eq!(p.log.lock().log_end_offset(), 1);
    assert_eq!(p.log.lock().high_watermark(), 0);
    assert_eq!(p.replica.lock().parked_acks(), 0, "unparked");
    assert!(p.acks.lock().is_empty());
}

#[tokio::test]
async fn a_dropped_acks_all_produce_is_unparked() {
    let dir = tempfile::tempdir().unwrap();
    let (rm, _) = leader(dir.path(), Arc::new(ManualClock::new(0)));
    let rm = Arc::new(rm);
    let (producing, p) = parked_produce(&rm).await;
    while p.replica.lock().parked_acks() == 0 {
        tokio::task::yield_now().await;
    }
    producing.abort();
    assert!(producing.await.unwrap_err().is_cancelled());
    assert_eq!(p.replica.lock().parked_acks(), 0);
    assert!(p.acks.lock().is_empty());
}

#[tokio::test]
async fn acks_all_answers_once_every_isr_member_fetched_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let (rm, _) = leader(dir.path(), Arc::new(ManualClock::new(0)));
    let rm = Arc::new(rm);
    let (producing, p) = parked_produce(&rm).await;
    fetched(&rm, &p, 2, 1);
    assert_eq!(
        p.log.lock().high_watermark(),
        0,
        "follower 3 has not fetched"
    );
    fetched(&rm, &p, 3, 1);
    assert_eq!(p.log.lock().high_watermark(), 1);
    let r = producing.await.unwrap();
    assert_eq!(r.error_code, errors::NONE);
    assert_eq!(r.base_offset, 0);
}

#[tokio::test]
async fn isr_shrinking_below_min_while_waiting_fails_after_append() {
    let dir = tempfile::tempdir().unwrap();
    let (rm, mut image) = leader(dir.path(), Arc::new(ManualClock::new(0)));
    let rm = Arc::new(rm);
    let (producing, _) = parked_produce(&rm).await;
    change(&rm, &mut image, 3, None, Some(vec![1]));
    let r = producing.await.unwrap();
    assert_eq!(r.error_code, E::NotEnoughReplicasAfterAppend.code());
}

/// KIP-497: from the moment the leader proposes a follower into the
/// ISR, the high watermark waits for that follower, even while the
/// leader's own image still shows it alone.
#[tokio::test]
async fn a_pending_isr_expansion_holds_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let (rm, mut image) = leader(dir.path(), clock.clone());
    change(&rm, &mut image, 3, None, Some(vec![1]));
    let p = rm.get(&tp()).unwrap();
    fetched(&rm, &p, 2, 0);
    let changes = rm.isr_changes(30_000);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].1.new_isr, vec![1, 2]);
    assert!(p.pending_isr().is_some());

    // The controller may already have committed [1, 2]: an acks=1
    // record is not committed until follower 2 has it.
    let r = rm.append(&tp(), Some(batch()), 1, 1_000).await;
    assert_eq!(r.error_code, errors::NONE);
    assert_eq!(p.log.lock().high_watermark(), 0, "waits for follower 2");
    fetched(&rm, &p, 2, 1);
    assert_eq!(p.log.lock().high_watermark(), 1);

    // Unanswered, it is sent again; once answered, it waits for the image.
    let request = changes[0].1.clone();
    rm.isr_change_answered(&p, &request, AlterPartitionAnswer::Unknown);
    assert_eq!(rm.isr_changes(30_000)[0].1, request);
    rm.isr_change_answered(&p, &request, AlterPartitionAnswer::Committed);
    assert!(rm.isr_changes(30_000).is_empty());
    change(&rm, &mut image, 4, None, Some(vec![1, 2]));
    assert_eq!(p.pending_isr(), None, "settled by the image");
}

#[tokio::test]
async fn a_refused_isr_expansion_releases_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let (rm, mut image) = leader(dir.path(), Arc::new(ManualClock::new(0)));
    change(&rm, &mut image, 3, None, Some(vec![1]));
    let p = rm.get(&tp()).unwrap();
    fetched(&rm, &p, 3, 0);
    let changes = rm.isr_changes(30_000);
    assert_eq!(changes[0].1.new_isr, vec![1, 3]);
    rm.append(&tp(), Some(batch()), 1, 1_000).await;
    assert_eq!(p.log.lock().high_watermark(), 0);
    rm.isr_change_answered(&p, &changes[0].1, AlterPartitionAnswer::Refused);
    assert_eq!(p.pending_isr(), None);
    assert_eq!(p.log.lock().high_watermark(), 1, "alone in the ISR again");
}

#[tokio::test]
async fn acks_all_fails_once_leadership_is_lost_even_if_the_high_watermark_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (rm, mut image) = leader(dir.path(), Arc::new(ManualClock::new(0)));
    let rm = Arc::new(rm);
    let (producing, p) = parked_produce(&rm).await;
    // Before the parked produce runs again: node 2 takes over, and this
    // node, now its follower, gets a high watermark past the offset
    // (from node 2's log, which need not hold our record there).
    change(&rm, &mut image, 3, Some(2), None);
    p.log.lock().set_high_watermark(1);
    let r = producing.await.unwrap();
    assert_eq!(r.error_code, E::NotLeaderOrFollower.code());
}

#[tokio::test]
async fn lagging_follower_is_proposed_out_of_the_isr_and_back_in() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let (rm, mut image) = leader(dir.path(), clock.clone());
    let r = rm.append(&tp(), Some(batch()), 1, 0).await;
    assert_eq!(r.error_code, errors::NONE);
    let p = rm.get(&tp()).unwrap();
    clock.advance(1_000);
    fetched(&rm, &p, 2, 1);
    assert!(rm.isr_changes(30_000).is_empty());
    clock.advance(30_000);
    fetched(&rm, &p, 2, 1);
    let changes = rm.isr_changes(30_000);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].1.new_isr, vec![1, 2]);

    // The controller applies it; follower 3 then catches up and is
    // proposed back in.
    change(&rm, &mut image, 3, None, Some(vec![1, 2]));
    assert_eq!(p.state().partition_epoch, 1);
    assert!(rm.isr_changes(30_000).is_empty());
    fetched(&rm, &p, 3, 1);
    let changes = rm.isr_changes(30_000);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].1.new_isr, vec![1, 2, 3]);
}

#[tokio::test]
async fn coordinator_appends_skip_sequences_but_fence_older_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let (rm, _) = leader(dir.path(), Arc::new(ManualClock::new(0)));
    // acks=1: the leader's append is all this test is about.
    let idempotent = |seq: i32, epoch: i16| {
        let mut b = RecordBatchBuilder::new(Compression::None).producer(9, epoch, seq);
        b.push(0, None, Some(b"v"), &[]);
        Bytes::from(b.build().unwrap())
    };
    let unsequenced = |epoch: i16| {
        let mut b = RecordBatchBuilder::new(Compression::None)
            .producer(9, epoch, -1)
            .transactional(true);
        b.push(0, Some(b"k"), Some(b"v"), &[]);
        Bytes::from(b.build().unwrap())
    };
    let r = rm.append(&tp(), Some(idempotent(0, 0)), 1, 5_000).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    // Sequence -1 is out of order for a client ...
    let r = rm.append(&tp(), Some(unsequenced(0)), 1, 5_000).await;
    assert_eq!(r.error_code, E::OutOfOrderSequenceNumber.code());
    // ... but not for a coordinator, and it leaves the client's sequence be.
    let offsets_tp = tp();
    let coordinator = |records| {
        rm.append_with_origin(
            &offsets_tp,
            Some(records),
            1,
            5_000,
            AppendOrigin::Coordinator,
        )
    };
    let r = coordinator(unsequenced(0)).await;
    assert_eq!((r.error_code, r.base_offset), (0, 1));
    let r = rm.append(&tp(), Some(idempotent(1, 0)), 1, 5_000).await;
    assert_eq!((r.error_code, r.base_offset), (0, 2));
    // A newer epoch from the coordinator fences the old one everywhere.
    assert_eq!(coordinator(unsequenced(1)).await.error_code, 0);
    assert_eq!(
        coordinator(unsequenced(0)).await.error_code,
        E::InvalidProducerEpoch.code()
    );
    assert_eq!(
        rm.append(&tp(), Some(idempotent(2, 0)), 1, 5_000)
            .await
            .error_code,
        E::InvalidProducerEpoch.code()
    );
}

#[tokio::test]
async fn markers_from_a_deposed_coordinator_are_fenced() {
    use rivulet_protocol::control::{build_control_batch, ControlType};
    let dir = tempfile::tempdir().unwrap();
    let (rm, _) = leader(dir.path(), Arc::new(ManualClock::new(0)));
    let marker = |coordinator_epoch: i32| {
        Bytes::from(build_control_batch(
            9,
            0,
            ControlType::Commit,
            coordinator_epoch,
            0,
        ))
    };
    let part = tp();
    let write =
        |records| rm.append_with_origin(&part, Some(records), 1, 5_000, AppendOrigin::Coordinator);
    let mut b = RecordBatchBuilder::new(Compression::None)
        .producer(9, 0, 0)
        .transactional(true);
    b.push(0, None, Some(b"v"), &[]);
    rm.get(&tp()).unwrap().mark_verified(9, 0);
    assert_eq!(
        rm.append(&tp(), Some(Bytes::from(b.build().unwrap())), 1, 5_000)
            .await
            .error_code,
        0
    );
    assert_eq!(write(marker(5)).await.error_code, 0);
    // The same coordinator again (a re-sent marker) and a newer one pass;
    // an older one is refused.
    assert_eq!(write(marker(5)).await.error_code, 0);
    assert_eq!(
        write(marker(4)).await.error_code,
        E::TransactionCoordinatorFenced.code()
    );
    assert_eq!(write(marker(6)).await.error_code, 0);
    let summary = rm.get(&tp()).unwrap().producer_summaries();
    assert_eq!(summary[0].coordinator_epoch, 6);
    // A client can never write a marker.
    assert_eq!(
        rm.append(&tp(), Some(marker(7)), 1, 5_000).await.error_code,
        E::InvalidRecord.code()
    );
}

#[tokio::test]
async fn a_transactional_batch_starts_a_transaction_only_with_a_live_verification() {
    use rivulet_protocol::control::{build_control_batch, ControlType};
    let dir = tempfile::tempdir().unwrap();
    let (rm, _) = leader(dir.path(), Arc::new(ManualClock::new(0)));
    let part = rm.get(&tp()).unwrap();
    let batch = |seq: i32| {
        let mut b = RecordBatchBuilder::new(Compression::None)
            .producer(9, 0, seq)
            .transactional(true);
        b.push(0, None, Some(b"v"), &[]);
        Bytes::from(b.build().unwrap())
    };
    // Not verified: refused.
    assert_eq!(
        rm.append(&tp(), Some(batch(0)), 1, 5_000).await.error_code,
        E::InvalidTxnState.code()
    );
    // Verified: starts the transaction; later batches of it need nothing.
    part.mark_verified(9, 0);
    assert_eq!(
        rm.append(&tp(), Some(batch(0)), 1, 5_000).await.error_code,
        0
    );
    assert_eq!(
        rm.append(&tp(), Some(batch(1)), 1, 5_000).await.error_code,
        0
    );
    // The coordinator ends it; a late batch of the same epoch cannot open
    // a new transaction, even one verified before the marker.
    part.mark_verified(9, 0);
    let marker = Bytes::from(build_control_batch(9, 0, ControlType::Abort, 0, 0));
    let r = rm
        .append_with_origin(&tp(), Some(marker), 1, 5_000, AppendOrigin::Coordinator)
        .await;
    assert_eq!(r.error_code, 0);
    assert_eq!(
        rm.append(&tp(), Some(batch(2)), 1, 5_000).await.error_code,
        E::InvalidTxnState.code()
    );
    assert!(part.log.lock().ongoing_transactions().is_empty());
}
