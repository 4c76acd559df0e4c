//! OffsetForLeaderEpoch (KIP-320): the leader answers the end offset of a
//! leader epoch — the log end offset for the current epoch, the start of the
//! next epoch for an older one — and fences clients whose current leader
//! epoch is stale (FENCED_LEADER_EPOCH) or ahead (UNKNOWN_LEADER_EPOCH);
//! followers answer NOT_LEADER_OR_FOLLOWER. A librdkafka consumer that
//! validates its position with it after a leader change reads on without
//! loss.

use std::time::Duration;

use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::{ApiKey, BrokerId, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use rdkafka::consumer::BaseConsumer;
use rdkafka::Offset;
use rivulet_storage::TopicPartition;
use rivulet_testkit::prelude::*;

const NONE: i16 = 0;

fn versions() -> std::ops::RangeInclusive<i16> {
    let r = rivulet_broker::api::supported(ApiKey::OffsetForLeaderEpoch)
        .expect("OffsetForLeaderEpoch is advertised");
    r.min..=r.max
}

/// One OffsetForLeaderEpoch request for `topic`/`partition` at `version`
/// (v3+ as a consumer, replica id -1).
async fn offset_for_epoch_v(
    bootstrap: &str,
    version: i16,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> EpochEndOffset {
    let req =
        OffsetForLeaderEpochRequest::default().with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current_leader_epoch)
                .with_leader_epoch(leader_epoch)])]);
    let req = if version >= 3 {
        req.with_replica_id(BrokerId(-1))
    } else {
        req
    };
    let resp = raw_request(bootstrap, version, &req).await;
    assert_eq!(resp.topics.len(), 1, "v{version}: one topic back");
    assert_eq!(resp.topics[0].topic.0.as_str(), topic);
    assert_eq!(resp.topics[0].partitions.len(), 1, "v{version}");
    let p = resp.topics[0].partitions[0].clone();
    assert_eq!(p.partition, partition, "v{version}: partition echoed");
    p
}

/// The same at the highest version we serve.
async fn offset_for_epoch(
    bootstrap: &str,
    topic: &str,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> EpochEndOffset {
    offset_for_epoch_v(
        bootstrap,
        *versions().end(),
        topic,
        0,
        current_leader_epoch,
        leader_epoch,
    )
    .await
}

/// `(error, leader_epoch, end_offset)` of an answer.
fn triple(p: &EpochEndOffset) -> (i16, i32, i64) {
    (p.error_code, p.leader_epoch, p.end_offset)
}

async fn produce_n(bootstrap: &str, topic: &str, from: usize, n: usize, acks: &str) {
    let p = producer(bootstrap, &[("acks", acks)]);
    let vals: Vec<String> = (from..from + n).map(|i| format!("record-{i}")).collect();
    // One send awaited at a time: one batch per record.
    let recs: Vec<KeyValue<'_>> = vals.iter().map(|v| (None, Some(v.as_bytes()))).collect();
    produce_all(&p, topic, 0, &recs).await;
}

/// Wait until `b` holds `tp` with `f(leader, leader_epoch)` true in its
/// replica state (what the handler checks, applied after the image).
async fn wait_state(b: &TestBroker, tp: &TopicPartition, f: impl Fn(i32, i32) -> bool) -> i32 {
    let epoch = || {
        let s = b.node().broker.replicas.get(tp)?.state();
        f(s.leader, s.leader_epoch).then_some(s.leader_epoch)
    };
    Poll::new(TIMEOUT)
        .every(Duration::from_millis(10))
        .value_async(|| std::future::ready(epoch()))
        .await
        .expect("replica state never matched")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_broker_answers_epoch_end_offsets_and_fences_stale_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    let topic = "ofle";
    create_topic(&bs, topic, 1, &[]).await;
    let tp = TopicPartition::new(topic, 0);
    let me = broker.node().broker.node_id();
    let e0 = wait_state(&broker, &tp, |l, _| l == me).await;
    produce_n(&bs, topic, 0, 3, "1").await;

    // The current epoch ends at the log end offset, in every version.
    for v in versions() {
        let p = offset_for_epoch_v(&bs, v, topic, 0, e0, e0).await;
        assert_eq!(triple(&p), (NONE, e0, 3), "v{v}");
        let p = offset_for_epoch_v(&bs, v, topic, 0, -1, e0).await;
        assert_eq!(triple(&p), (NONE, e0, 3), "v{v} without fencing");
    }

    // A restart moves leadership away and back: a newer epoch starts at 3.
    let mut broker = broker.restart().await;
    let bs = broker.bootstrap();
    let e1 = wait_state(&broker, &tp, |l, e| l == me && e > e0).await;
    produce_n(&bs, topic, 3, 2, "1").await;

    assert_eq!(
        triple(&offset_for_epoch(&bs, topic, e1, e1).await),
        (NONE, e1, 5),
        "current epoch: the log end offset"
    );
    assert_eq!(
        triple(&offset_for_epoch(&bs, topic, e1, e0).await),
        (NONE, e0, 3),
        "an older epoch ends where the next one starts"
    );
    for between in e0 + 1..e1 {
        // Epochs this log never wrote in (the leaderless one while the
        // broker was down) answer with the largest epoch below them.
        assert_eq!(
            triple(&offset_for_epoch(&bs, topic, e1, between).await),
            (NONE, e0, 3),
            "epoch {between} between {e0} and {e1}"
        );
    }
    assert_eq!(
        triple(&offset_for_epoch(&bs, topic, -1, e1 + 3).await),
        (NONE, -1, -1),
        "an epoch above ours is unknown, without an error"
    );
    assert_eq!(
        offset_for_epoch(&bs, topic, e1 + 1, e1 + 1)
            .await
            .error_code,
        E::UnknownLeaderEpoch.code(),
        "a client ahead of our epoch"
    );
    for v in versions() {
        let p = offset_for_epoch_v(&bs, v, topic, 0, e0, e0).await;
        assert_eq!(
            triple(&p),
            (E::FencedLeaderEpoch.code(), -1, -1),
            "v{v}: a stale current leader epoch is fenced"
        );
    }

    // Unknown topics and partitions.
    assert_eq!(
        offset_for_epoch(&bs, "no-such-topic", -1, 0)
            .await
            .error_code,
        E::UnknownTopicOrPartition.code()
    );
    let p = offset_for_epoch_v(&bs, *versions().end(), topic, 7, -1, e1).await;
    assert_eq!(triple(&p), (E::UnknownTopicOrPartition.code(), -1, -1));

    broker.stop().await;
}

const CLUSTER: &[(&str, &str)] = &[
    ("replica.lag.time.max.ms", "3000"),
    ("offsets.topic.replication.factor", "1"),
];

/// Read `n` records of `topic`/0 with `c` (already assigned); transport
/// errors right after a failover are tolerated.
fn read_values(c: &BaseConsumer, n: usize) -> Vec<(i64, String)> {
    use rdkafka::message::Message;
    let mut out = Vec::new();
    // The 100 ms poll is the wait.
    Poll::new(TIMEOUT)
        .every(Duration::ZERO)
        .retry(format!("{n} records"), || {
            if out.len() >= n {
                return Ok(());
            }
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => out.push((
                    m.offset(),
                    String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
                )),
                Some(Err(e)) => eprintln!("consumer error (retrying): {e}"),
                None => {}
            }
            Err(format!("consumed {} of {n}: {out:?}", out.len()))
        });
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_leader_answers_the_old_epochs_end_and_followers_refuse() {
    use rdkafka::consumer::Consumer;

    let dir = tempfile::tempdir().unwrap();
    let mut brokers = start_cluster(dir.path(), 3, CLUSTER).await;
    let bootstrap = cluster_bootstrap(&brokers);
    let topic = "ofle-failover";
    create_topic_rf(&bootstrap, topic, 1, 3, &[("min.insync.replicas", "2")]).await;
    let tp = TopicPartition::new(topic, 0);
    let mut leader = -1;
    let mut e0 = -1;
    for b in &brokers {
        e0 = wait_state(b, &tp, |l, _| l > 0).await;
        leader = b.node().broker.replicas.get(&tp).unwrap().state().leader;
    }
    produce_n(&bootstrap, topic, 0, 10, "all").await;

    // A consumer reads the first epoch's records: its position (10) now
    // carries epoch e0, which librdkafka validates with OffsetForLeaderEpoch
    // once the metadata shows a newer epoch.
    let c = consumer(&bootstrap, &[("auto.offset.reset", "latest")]);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let first = read_values(&c, 10);
    assert_eq!(first.last().unwrap().0, 9);

    // Stop the leader: another replica leads in a newer epoch, which starts
    // at offset 10.
    let li = index_of(&brokers, leader);
    brokers[li].stop().await;
    let others: Vec<usize> = (0..3).filter(|i| *i != li).collect();
    let e1 = wait_state(&brokers[others[0]], &tp, |l, e| {
        l > 0 && l != leader && e > e0
    })
    .await;
    let new_leader = brokers[others[0]]
        .node()
        .broker
        .replicas
        .get(&tp)
        .unwrap()
        .state()
        .leader;
    for i in &others {
        wait_state(&brokers[*i], &tp, |l, e| l == new_leader && e == e1).await;
    }
    let ni = index_of(&brokers, new_leader);
    let fi = others.iter().copied().find(|i| *i != ni).unwrap();
    let nb = brokers[ni].bootstrap();
    let fb = brokers[fi].bootstrap();
    produce_n(&nb, topic, 10, 5, "all").await;

    assert_eq!(
        triple(&offset_for_epoch(&nb, topic, e1, e0).await),
        (NONE, e0, 10),
        "the old epoch ends where the new leader's starts"
    );
    assert_eq!(
        triple(&offset_for_epoch(&nb, topic, e1, e1).await),
        (NONE, e1, 15)
    );
    assert_eq!(
        triple(&offset_for_epoch(&nb, topic, e0, e0).await),
        (E::FencedLeaderEpoch.code(), -1, -1),
        "a client still on the old leader's epoch"
    );
    for v in versions() {
        let p = offset_for_epoch_v(&nb, v, topic, 0, e1, e0).await;
        assert_eq!(triple(&p), (NONE, e0, 10), "v{v}");
        let p = offset_for_epoch_v(&fb, v, topic, 0, e1, e0).await;
        assert_eq!(
            triple(&p),
            (E::NotLeaderOrFollower.code(), -1, -1),
            "v{v}: the follower does not answer"
        );
    }
    assert_eq!(
        offset_for_epoch(&fb, topic, -1, e0).await.error_code,
        E::NotLeaderOrFollower.code()
    );
    assert_eq!(
        offset_for_epoch(&fb, topic, e0, e0).await.error_code,
        E::FencedLeaderEpoch.code(),
        "the epoch fence comes before the leadership check, as in Kafka"
    );

    // The consumer validates its e0 position against the new leader and
    // carries on at 10: a wrong end offset would reset it to the log end
    // (auto.offset.reset=latest) and lose offsets 10..15.
    let rest = read_values(&c, 5);
    let want: Vec<(i64, String)> = (10..15).map(|i| (i, format!("record-{i}"))).collect();
    assert_eq!(rest, want, "every record after the leader change");
    assert!(drain(&c, Duration::from_millis(300)).is_empty());
    drop(c);

    for mut b in brokers {
        b.stop().await;
    }
}
