//! Replication on a 3-node in-process cluster: acks=all waits for the ISR
//! and every replica ends up with byte-identical logs; a clean stop of the
//! leader moves leadership within the ISR (epoch bumped) and an idempotent
//! producer carries on without loss or duplicates; a lone survivor refuses
//! acks=all with NOT_ENOUGH_REPLICAS; a restarted node catches up and
//! rejoins the ISR.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{MetadataRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use rdkafka::Offset;
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_storage::TopicPartition;
use rivulet_testkit::prelude::*;

const CLUSTER: &[(&str, &str)] = &[
    ("replica.lag.time.max.ms", "3000"),
    ("offsets.topic.replication.factor", "1"),
];

fn values(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("record-{i}")).collect()
}

async fn produce_values(p: &rdkafka::producer::FutureProducer, topic: &str, vals: &[String]) {
    let recs: Vec<KeyValue<'_>> = vals.iter().map(|v| (None, Some(v.as_bytes()))).collect();
    produce_all(p, topic, 0, &recs).await;
}

/// Read `n` values of `topic`/0 from the beginning. Transport errors are
/// tolerated: right after a failover librdkafka may still try the stopped
/// node before its metadata catches up.
fn consume_values(c: &rdkafka::consumer::BaseConsumer, topic: &str, n: usize) -> Vec<String> {
    use rdkafka::consumer::Consumer;
    use rdkafka::message::Message;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    // The 100 ms poll is the wait.
    Poll::new(TIMEOUT)
        .every(Duration::ZERO)
        .retry(format!("{n} records of {topic}"), || {
            if out.len() >= n {
                return Ok(());
            }
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap()),
                Some(Err(e)) => eprintln!("consumer error (retrying): {e}"),
                None => {}
            }
            Err(format!("consumed {} of {n}", out.len()))
        });
    out
}

/// The whole log of `tp` on `b`, as stored bytes, and its log end offset.
fn log_bytes(b: &TestBroker, tp: &TopicPartition) -> (Bytes, i64) {
    let p = b.node().broker.replicas.get(tp).expect("partition hosted");
    let log = p.log.lock();
    let bytes = log
        .read(log.log_start_offset(), usize::MAX / 2, None, true)
        .unwrap();
    (bytes, log.log_end_offset())
}

/// Wait until every running broker's log of `tp` ends at `leo`.
async fn wait_replicated(brokers: &[TestBroker], tp: &TopicPartition, leo: i64) {
    let ends = || -> Vec<i64> {
        brokers
            .iter()
            .filter(|b| b.node.is_some())
            .map(|b| {
                b.node()
                    .broker
                    .replicas
                    .get(tp)
                    .map_or(-1, |p| p.log.lock().log_end_offset())
            })
            .collect()
    };
    let done = Poll::new(TIMEOUT)
        .until_async(|| ends().iter().all(|e| *e == leo))
        .await;
    assert!(done, "logs end at {:?}, want {leo}", ends());
}

/// Wait until the image on `b` satisfies `f` for `topic`/0; returns
/// `(leader, leader_epoch, isr)`.
async fn wait_partition(
    b: &TestBroker,
    topic: &str,
    f: impl Fn(i32, &[i32]) -> bool,
) -> (i32, i32, Vec<i32>) {
    Poll::new(TIMEOUT)
        .retry_async("the partition state to match", || {
            let image = b.node().broker.image();
            let got = match image.partition(topic, 0) {
                Some(p) if f(p.leader, &p.isr) => Ok((p.leader, p.leader_epoch, p.isr.clone())),
                other => Err(other.cloned()),
            };
            std::future::ready(got)
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acks_all_replicates_identical_logs_to_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let brokers = start_cluster(dir.path(), 3, CLUSTER).await;
    let bootstrap = cluster_bootstrap(&brokers);
    let topic = "replicated";
    create_topic_rf(&bootstrap, topic, 1, 3, &[("min.insync.replicas", "2")]).await;
    let tp = TopicPartition::new(topic, 0);

    let p = producer(&bootstrap, &[("acks", "all")]);
    let vals = values(0..200);
    produce_values(&p, topic, &vals).await;

    let c = consumer(&bootstrap, &[]);
    let got = consume_n(&c, topic, 0, Offset::Beginning, vals.len());
    let read: Vec<String> = got
        .iter()
        .map(|g| String::from_utf8(g.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(read, vals);
    assert_eq!(got.last().unwrap().offset, 199);

    wait_replicated(&brokers, &tp, 200).await;
    let (leader_bytes, _) = log_bytes(&brokers[0], &tp);
    assert!(!leader_bytes.is_empty());
    for b in &brokers[1..] {
        assert_eq!(log_bytes(b, &tp).0, leader_bytes, "replica logs differ");
    }
    // Every replica is in sync, and the followers learned the high watermark.
    let (_, _, isr) = wait_partition(&brokers[0], topic, |_, isr| isr.len() == 3).await;
    assert_eq!(isr.len(), 3);

    for mut b in brokers {
        b.stop().await;
    }
}

/// A raw acks=all produce of one small batch to `topic`/0 on `bootstrap`.
async fn raw_produce(bootstrap: &str, topic: &str) -> i16 {
    let mut b = RecordBatchBuilder::new(Compression::None);
    b.push(0, None, Some(b"lonely"), &[]);
    let records = Bytes::from(b.build().unwrap());
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(2_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let resp = raw_request(bootstrap, 9, &req).await;
    resp.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover_loses_nothing_and_restarted_replica_rejoins_isr() {
    let dir = tempfile::tempdir().unwrap();
    let mut brokers = start_cluster(dir.path(), 3, CLUSTER).await;
    let bootstrap = cluster_bootstrap(&brokers);
    let topic = "failover";
    create_topic_rf(&bootstrap, topic, 1, 3, &[("min.insync.replicas", "2")]).await;
    let tp = TopicPartition::new(topic, 0);
    let (leader, epoch, _) =
        wait_partition(&brokers[0], topic, |l, isr| l > 0 && isr.len() == 3).await;

    let p = producer(
        &bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("retry.backoff.ms", "50"),
        ],
    );
    let vals = values(0..100);
    produce_values(&p, topic, &vals[..50]).await;

    // Stop the leader cleanly: leadership moves within the ISR.
    let li = index_of(&brokers, leader);
    brokers[li].stop().await;
    let other = (li + 1) % 3;
    let (new_leader, new_epoch, isr) =
        wait_partition(&brokers[other], topic, |l, _| l > 0 && l != leader).await;
    assert!(new_epoch > epoch, "leader epoch not bumped");
    assert!(!isr.contains(&leader));
    assert!(isr.contains(&new_leader));
    // Metadata lists the live brokers only, and the stopped one among the
    // partition's replicas as offline.
    let md = raw_request(
        &brokers[other].bootstrap(),
        12,
        &MetadataRequest::default().with_topics(None),
    )
    .await;
    let mut live: Vec<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
    live.sort_unstable();
    assert_eq!(live.len(), 2);
    assert!(!live.contains(&leader), "{live:?}");
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .unwrap();
    let p0 = &t.partitions[0];
    assert_eq!(p0.leader_id.0, new_leader);
    assert_eq!(p0.leader_epoch, new_epoch);
    assert_eq!(p0.replica_nodes.len(), 3);
    let offline: Vec<i32> = p0.offline_replicas.iter().map(|b| b.0).collect();
    assert_eq!(offline, [leader], "offline replicas");

    // The producer carries on (it retries against the new leader).
    produce_values(&p, topic, &vals[50..]).await;
    let c = consumer(&cluster_bootstrap(&brokers), &[]);
    let read = consume_values(&c, topic, vals.len());
    assert_eq!(
        read, vals,
        "every acknowledged record exactly once, in order"
    );
    assert!(drain(&c, Duration::from_millis(300)).is_empty());
    drop(c);
    drop(p);
    wait_replicated(&brokers, &tp, 100).await;

    // Stop the other follower: the lone survivor refuses acks=all.
    let survivor = index_of(&brokers, new_leader);
    let follower = (0..3)
        .find(|i| *i != survivor && brokers[*i].node.is_some())
        .unwrap();
    brokers[follower].stop().await;
    wait_partition(&brokers[survivor], topic, |_, isr| isr == [new_leader]).await;
    let code = raw_produce(&brokers[survivor].bootstrap(), topic).await;
    assert_eq!(code, E::NotEnoughReplicas.code());

    // Restart the first node: it catches up and rejoins the ISR, and
    // acks=all works again.
    let stopped = std::mem::replace(
        &mut brokers[li],
        TestBroker {
            node: None,
            dir: Default::default(),
            port: 0,
            controller_port: 0,
            extra: Vec::new(),
        },
    );
    brokers[li] = stopped.restart().await;
    let (leader_now, _, _) =
        wait_partition(&brokers[survivor], topic, |_, isr| isr.len() == 2).await;
    wait_replicated(&brokers, &tp, 100).await;
    // The controller may hand leadership back to the preferred replica, and
    // the leader may apply the image that grew the ISR a moment after the
    // survivor did: until then it answers NOT_LEADER_OR_FOLLOWER or
    // NOT_ENOUGH_REPLICAS (seen under load); acks=all must work again soon.
    let _ = leader_now;
    Poll::new(TIMEOUT)
        .retry_async("acks=all after the rejoin", || async {
            let (l, _, _) =
                wait_partition(&brokers[survivor], topic, |_, isr| isr.len() == 2).await;
            match raw_produce(&brokers[index_of(&brokers, l)].bootstrap(), topic).await {
                0 => Ok(()),
                c if c == E::NotLeaderOrFollower.code() || c == E::NotEnoughReplicas.code() => {
                    Err(format!("error {c}"))
                }
                c => panic!("acks=all after rejoin: error {c}"),
            }
        })
        .await;
    wait_replicated(&brokers, &tp, 101).await;
    assert_eq!(
        log_bytes(&brokers[li], &tp).0,
        log_bytes(&brokers[survivor], &tp).0
    );

    for mut b in brokers {
        b.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_truncates_suffix_of_an_older_epoch_before_fetching() {
    let dir = tempfile::tempdir().unwrap();
    let mut brokers = start_cluster(dir.path(), 3, CLUSTER).await;
    let bootstrap = cluster_bootstrap(&brokers);
    let topic = "diverging";
    create_topic_rf(&bootstrap, topic, 1, 3, &[("min.insync.replicas", "2")]).await;
    let tp = TopicPartition::new(topic, 0);
    let (leader, old_epoch, _) =
        wait_partition(&brokers[0], topic, |l, isr| l > 0 && isr.len() == 3).await;
    let p = producer(&bootstrap, &[("acks", "all")]);
    produce_values(&p, topic, &values(0..10)).await;
    drop(p);
    wait_replicated(&brokers, &tp, 10).await;

    // A new leader: its epoch starts at offset 10.
    let li = index_of(&brokers, leader);
    brokers[li].stop().await;
    let other = (li + 1) % 3;
    let (new_leader, new_epoch, _) =
        wait_partition(&brokers[other], topic, |l, _| l > 0 && l != leader).await;
    let fi = (0..3)
        .find(|i| brokers[*i].node.is_some() && *i != index_of(&brokers, new_leader))
        .unwrap();
    // The remaining follower gets a suffix in the old epoch that the new
    // leader never had, as if the old leader had sent it just before dying.
    let follower = brokers[fi].node().broker.replicas.get(&tp).unwrap();
    Poll::new(TIMEOUT)
        .every(Duration::from_millis(10))
        .wait_async("the follower to see the new epoch", || {
            follower.state().leader_epoch == new_epoch
        })
        .await;
    {
        let mut b = RecordBatchBuilder::new(Compression::None);
        b.push(0, None, Some(b"divergent"), &[]);
        let mut buf = b.build().unwrap();
        let mut log = follower.log.lock();
        log.append_as_leader(&mut buf, old_epoch).unwrap();
        assert_eq!(log.log_end_offset(), 11);
    }

    // acks=all needs the follower, which must drop offset 10 and take the
    // leader's records instead.
    let nb = brokers[index_of(&brokers, new_leader)].bootstrap();
    let p = producer(&nb, &[("acks", "all")]);
    produce_values(&p, topic, &values(10..15)).await;
    wait_replicated(&brokers, &tp, 15).await;
    let li = index_of(&brokers, new_leader);
    assert_eq!(
        log_bytes(&brokers[fi], &tp).0,
        log_bytes(&brokers[li], &tp).0
    );
    let c = consumer(&nb, &[]);
    let read = consume_values(&c, topic, 15);
    assert_eq!(read, values(0..15));

    for mut b in brokers {
        b.stop().await;
    }
}

/// Each broker is held to the partition limit it registered with, not the
/// controller's: node 3 may host 2 partition replicas, nodes 1 and 2 many,
/// whichever node is the active controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_node_is_held_to_its_own_partition_limit() {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::CreateTopicsRequest;
    let dir = tempfile::tempdir().unwrap();
    let roomy: &[(&str, &str)] = &[("max.partitions.per.node", "10000")];
    let small: &[(&str, &str)] = &[("max.partitions.per.node", "2")];
    let brokers = start_cluster_per_node(dir.path(), 3, CLUSTER, &[roomy, roomy, small]).await;
    // CreateTopics goes to the controller's node or is forwarded: any will do.
    let bootstrap = brokers[0].bootstrap();
    let create = |name: &str, partitions: i32| {
        CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_num_partitions(partitions)
                .with_replication_factor(3)])
    };
    // RF 3 on 3 nodes: every partition has a replica on node 3.
    let resp = raw_request(&bootstrap, 5, &create("too-many", 3)).await;
    let t = &resp.topics[0];
    assert_eq!(t.error_code, E::PolicyViolation.code(), "{t:?}");
    let msg = t
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(msg.contains("node 3") && msg.contains("at most 2"), "{msg}");
    assert!(brokers[0].node().broker.image().topic("too-many").is_none());
    // Two fit.
    let resp = raw_request(&bootstrap, 5, &create("fits", 2)).await;
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0]);
    for mut b in brokers {
        b.stop().await;
    }
}
