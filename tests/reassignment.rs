//! Partition reassignment (issue 14) on three in-process nodes, under an
//! acks=all rdkafka producer: one partition grows from RF 1 to RF 3, one
//! moves from nodes [1, 2] to [3, 2] (its leader, node 1, removed, so
//! leadership moves). ListPartitionReassignments shows both while the new
//! replicas copy the log under a 2 MB/s replication quota, then nothing;
//! every acknowledged record is read back afterwards; the removed replica's
//! log is gone. Cancelling and bad targets answer Kafka's codes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Offset;
use rivulet_testkit::prelude::*;

async fn alter(
    bootstrap: &str,
    moves: &[(&str, i32, Option<&[i32]>)],
) -> AlterPartitionReassignmentsResponse {
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(
            moves
                .iter()
                .map(|(t, p, r)| {
                    ReassignableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(vec![ReassignablePartition::default()
                            .with_partition_index(*p)
                            .with_replicas(r.map(|r| r.iter().map(|b| BrokerId(*b)).collect()))])
                })
                .collect(),
        );
    raw_request(bootstrap, 0, &req).await
}

/// `(topic, partition, error)` of an alteration's answer.
fn codes(r: &AlterPartitionReassignmentsResponse) -> Vec<(String, i32, i16)> {
    let mut v: Vec<_> = r
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    v.sort();
    v
}

/// `(topic, partition, replicas, adding, removing)` of every ongoing one.
async fn list(bootstrap: &str) -> Vec<(String, i32, Vec<i32>, Vec<i32>, Vec<i32>)> {
    let r: ListPartitionReassignmentsResponse = raw_request(
        bootstrap,
        0,
        &ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000),
    )
    .await;
    assert_eq!(r.error_code, 0);
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    let mut out: Vec<_> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    ids(&p.replicas),
                    ids(&p.adding_replicas),
                    ids(&p.removing_replicas),
                )
            })
        })
        .collect();
    out.sort();
    out
}

/// `(replicas, leader, isr sorted)` of a partition in node `b`'s image.
fn registration(b: &TestBroker, topic: &str, partition: i32) -> (Vec<i32>, i32, Vec<i32>) {
    let image = b.node().broker.image();
    let p = image.partition(topic, partition).unwrap();
    let mut isr = p.isr.clone();
    isr.sort_unstable();
    (p.replicas.clone(), p.leader, isr)
}

async fn create_assigned(bootstrap: &str, name: &str, replicas: &[i32]) {
    let admin = admin(bootstrap);
    let a: &[&[i32]] = &[replicas];
    let t = NewTopic::new(name, 1, TopicReplication::Variable(a));
    let res = admin
        .create_topics(&[t], &AdminOptions::new().operation_timeout(Some(TIMEOUT)))
        .await
        .unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    wait_for_leaders(bootstrap, name, TIMEOUT);
}

/// Produce numbered 1 KiB values to `topic`/0 with acks=all until `stop`,
/// about 200 KB/s (20 every 100 ms: below the replication quota, or the
/// new replicas could never catch up); the numbers acknowledged.
async fn produce_until(p: FutureProducer, topic: &'static str, stop: Arc<AtomicBool>) -> Vec<u64> {
    let mut acked = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut pending = Vec::new();
        for _ in 0..20 {
            let v = format!("{n:08}-{}", "v".repeat(1000));
            let rec: FutureRecord<'_, (), str> = FutureRecord::to(topic).partition(0).payload(&v);
            pending.push((n, p.send_result(rec).map_err(|(e, _)| e).unwrap()));
            n += 1;
        }
        for (i, f) in pending {
            if let Ok(Ok(_)) = f.await {
                acked.push(i);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    acked
}

/// The numbers of every value in `topic`/0 (read to its end).
fn read_numbers(bootstrap: &str, topic: &str) -> BTreeSet<u64> {
    let c = consumer(bootstrap, &[]);
    let end = high_watermark(&c, topic, 0);
    let got = consume_n(&c, topic, 0, Offset::Beginning, end as usize);
    got.iter()
        .map(|g| {
            let v = g.value.as_ref().unwrap();
            std::str::from_utf8(&v[..8]).unwrap().parse().unwrap()
        })
        .collect()
}

fn high_watermark(c: &BaseConsumer, topic: &str, partition: i32) -> i64 {
    rivulet_testkit::kafka::high_watermark(c, topic, partition, TIMEOUT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_move_under_acks_all_load_without_losing_records() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_cluster(
        dir.path(),
        3,
        &[
            ("leader.replication.throttled.rate", "2000000"),
            ("auto.leader.rebalance.enable", "false"),
        ],
    )
    .await;
    let bs = cluster_bootstrap(&nodes);
    create_assigned(&bs, "grow", &[1]).await;
    create_assigned(&bs, "move", &[1, 2]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mk = || {
        let mut c = rivulet_testkit::kafka::cluster_client_config(&bs);
        c.set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000");
        c.create::<FutureProducer>().unwrap()
    };
    let grow = tokio::spawn(produce_until(mk(), "grow", stop.clone()));
    let mv = tokio::spawn(produce_until(mk(), "move", stop.clone()));
    // About 1 MB in each before the move, so copying takes a while at 2 MB/s.
    let c = consumer(&bs, &[]);
    Poll::new(Duration::from_secs(60))
        .wait_async("1000 records in each partition", || {
            high_watermark(&c, "grow", 0) >= 1000 && high_watermark(&c, "move", 0) >= 1000
        })
        .await;

    let one = nodes[0].bootstrap();
    let r = alter(
        &one,
        &[("grow", 0, Some(&[1, 2, 3])), ("move", 0, Some(&[3, 2]))],
    )
    .await;
    assert_eq!(r.error_code, 0);
    assert_eq!(
        codes(&r),
        vec![("grow".into(), 0, 0), ("move".into(), 0, 0)]
    );
    // In progress: the union of old and new replicas, adding and removing.
    assert_eq!(
        list(&one).await,
        vec![
            ("grow".into(), 0, vec![1, 2, 3], vec![2, 3], vec![]),
            ("move".into(), 0, vec![3, 2, 1], vec![3], vec![1]),
        ]
    );
    // Then done: the target replicas, all in sync; node 3 leads "move".
    let mut done = false;
    for _ in 0..600 {
        if list(&one).await.is_empty() {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done, "reassignments still listed: {:?}", list(&one).await);
    for n in &nodes {
        Poll::new(TIMEOUT)
            .wait_async("the target placement on every node", || {
                registration(n, "grow", 0) == (vec![1, 2, 3], 1, vec![1, 2, 3])
                    && registration(n, "move", 0) == (vec![3, 2], 3, vec![2, 3])
            })
            .await;
    }
    let removed = nodes[0].dir.join("move-0");
    Poll::new(TIMEOUT)
        .wait_async("node 1's move-0 log deleted", || !removed.exists())
        .await;
    // The producers keep going against the new leader for a while.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let grow_acked = grow.await.unwrap();
    let mv_acked = mv.await.unwrap();
    assert!(grow_acked.len() > 1000 && mv_acked.len() > 1000);

    let bs2 = nodes[2].bootstrap();
    let (g, m) = tokio::task::spawn_blocking(move || {
        (read_numbers(&bs2, "grow"), read_numbers(&bs2, "move"))
    })
    .await
    .unwrap();
    let lost: Vec<_> = grow_acked.iter().filter(|n| !g.contains(n)).collect();
    assert!(
        lost.is_empty(),
        "grow lost {} acked records: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let lost: Vec<_> = mv_acked.iter().filter(|n| !m.contains(n)).collect();
    assert!(
        lost.is_empty(),
        "move lost {} acked records: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_bad_targets_answer_kafkas_codes() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_cluster(
        dir.path(),
        3,
        &[("leader.replication.throttled.rate", "1000")],
    )
    .await;
    let bs = cluster_bootstrap(&nodes);
    create_assigned(&bs, "c", &[1]).await;
    let p = producer(&bs, &[("acks", "all")]);
    let big = vec![b'x'; 100_000];
    let recs: Vec<KeyValue<'_>> = vec![(None, Some(&big[..])); 5];
    produce_all(&p, "c", 0, &recs).await;
    let one = nodes[0].bootstrap();

    let r = alter(
        &one,
        &[
            ("c", 0, None),
            ("nope", 0, Some(&[1])),
            ("c", 7, Some(&[1])),
        ],
    )
    .await;
    assert_eq!(
        codes(&r),
        vec![
            ("c".into(), 0, E::NoReassignmentInProgress.code()),
            ("c".into(), 7, E::UnknownTopicOrPartition.code()),
            ("nope".into(), 0, E::UnknownTopicOrPartition.code()),
        ]
    );
    for bad in [&[1, 1][..], &[1, 9][..], &[][..]] {
        let r = alter(&one, &[("c", 0, Some(bad))]).await;
        assert_eq!(
            codes(&r),
            vec![("c".into(), 0, E::InvalidReplicaAssignment.code())],
            "{bad:?}"
        );
    }
    // At 1 kB/s the 500 kB copy to node 2 stays in progress; cancel it.
    let r = alter(&one, &[("c", 0, Some(&[2]))]).await;
    assert_eq!(codes(&r), vec![("c".into(), 0, 0)]);
    assert_eq!(
        list(&one).await,
        vec![("c".into(), 0, vec![2, 1], vec![2], vec![1])]
    );
    let node2_log = nodes[1].dir.join("c-0");
    Poll::new(TIMEOUT)
        .wait_async("node 2 hosting the new replica", || node2_log.is_dir())
        .await;
    let r = alter(&one, &[("c", 0, None)]).await;
    assert_eq!(codes(&r), vec![("c".into(), 0, 0)]);
    assert!(list(&one).await.is_empty());
    assert_eq!(registration(&nodes[0], "c", 0), (vec![1], 1, vec![1]));
    Poll::new(TIMEOUT)
        .wait_async("node 2's copy deleted", || !node2_log.exists())
        .await;
}

/// A config's value and source in a DescribeConfigs answer.
async fn described(
    admin: &rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>,
    resource: rdkafka::admin::ResourceSpecifier<'_>,
    key: &str,
) -> (String, String) {
    let r = admin
        .describe_configs(&[resource], &AdminOptions::new())
        .await
        .unwrap();
    let r = r[0].as_ref().unwrap();
    let e = r.get(key).unwrap_or_else(|| panic!("{key} not described"));
    (
        e.value.clone().unwrap_or_default(),
        format!("{:?}", e.source),
    )
}

/// Stop node 3, produce 3 MB to `thr`/0 (led by node 1) with acks=1, start
/// node 3 again: how long from its start until it is back in the ISR.
async fn catch_up_time(nodes: &mut [TestBroker], bootstrap: &str) -> Duration {
    nodes[2].stop().await;
    Poll::new(TIMEOUT)
        .wait_async("node 3 out of the ISR", || {
            registration(&nodes[0], "thr", 0).2 == vec![1]
        })
        .await;
    let p = producer(bootstrap, &[("acks", "1"), ("linger.ms", "5")]);
    let big = vec![b'x'; 10_000];
    let recs: Vec<KeyValue<'_>> = vec![(None, Some(&big[..])); 300];
    produce_all(&p, "thr", 0, &recs).await;
    drop(p);
    let started = std::time::Instant::now();
    nodes[2].start_again().await;
    for _ in 0..600 {
        if registration(&nodes[0], "thr", 0).2 == vec![1, 3] {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node 3 did not rejoin the ISR within 30 s");
}

/// The throttles `kafka-reassign-partitions.sh --throttle` sets, through
/// librdkafka's IncrementalAlterConfigs as that tool sends them (each
/// BROKER resource to its own node): a replica out of the ISR that the
/// topic's throttled-replica list names catches up no faster than the
/// rate, on the leader's side and then on the follower's; DescribeConfigs
/// shows the dynamic values; `--verify`'s DELETE of all three broker keys
/// and both topic lists clears them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttles_set_as_kafka_reassign_partitions_does_bound_a_catching_up_replica() {
    use native::Op::{Delete, Set};
    use rdkafka::admin::ResourceSpecifier;
    use rivulet_testkit::native_admin as native;

    let dir = tempfile::tempdir().unwrap();
    let mut nodes =
        start_cluster(dir.path(), 3, &[("auto.leader.rebalance.enable", "false")]).await;
    let bs = cluster_bootstrap(&nodes);
    create_assigned(&bs, "thr", &[1, 3]).await;
    let admin = admin(&bs);
    let alter = |restype, name: &str, ops: &[(&str, native::Op, Option<&str>)]| {
        native::alter_configs(
            &admin,
            native::Api::IncrementalAlterConfigs,
            restype,
            name,
            ops,
        )
        .unwrap_or_else(|e| panic!("{name}: {e:?}"))
    };
    const RATE: &str = "500000";
    let leader_rate = "leader.replication.throttled.rate";
    let follower_rate = "follower.replication.throttled.rate";
    let dirs_rate = "replica.alter.log.dirs.io.max.bytes.per.second";
    let leader_list = "leader.replication.throttled.replicas";
    let follower_list = "follower.replication.throttled.replicas";

    // The list's format is checked.
    let bad = native::alter_configs(
        &admin,
        native::Api::IncrementalAlterConfigs,
        native::TOPIC,
        "thr",
        &[(leader_list, Set, Some("0-1"))],
    )
    .unwrap_err();
    assert_eq!(
        bad.0,
        rdkafka::types::RDKafkaErrorCode::InvalidConfig,
        "{bad:?}"
    );
    assert!(bad.1.contains("[partitionId]:[brokerId]"), "{bad:?}");

    // The leader's side: node 1's rate, the topic's leader list naming the
    // partition on node 1 (the tool lists the current replicas there).
    alter(
        native::BROKER,
        "1",
        &[
            (leader_rate, Set, Some(RATE)),
            (follower_rate, Set, Some(RATE)),
        ],
    );
    alter(native::TOPIC, "thr", &[(leader_list, Set, Some("0:1,0:3"))]);
    assert_eq!(
        described(&admin, ResourceSpecifier::Broker(1), leader_rate).await,
        (RATE.to_string(), "DynamicBroker".to_string())
    );
    assert_eq!(
        described(&admin, ResourceSpecifier::Topic("thr"), leader_list).await,
        ("0:1,0:3".to_string(), "DynamicTopic".to_string())
    );
    let took = catch_up_time(&mut nodes, &bs).await;
    // 3 MB at 0.5 MB/s from a bucket holding one second: at least 5 s.
    eprintln!("leader-throttled catch-up: {took:?}");
    assert!(
        took >= Duration::from_millis(3500),
        "leader-throttled catch-up took {took:?}"
    );
    // Counted as throttled on the metrics endpoint (about 3 MB each side).
    let counted = |n: &TestBroker, leader_side: bool| {
        let q = &n.node().broker.replicas.quotas;
        let q = if leader_side { &q.leader } else { &q.follower };
        q.throttled_bytes.load(std::sync::atomic::Ordering::Relaxed)
    };
    assert!(
        counted(&nodes[0], true) >= 2_500_000,
        "{}",
        counted(&nodes[0], true)
    );

    // The follower's side: the leader's throttle cleared as --verify clears
    // it (DELETE of all three broker keys, and of both topic lists), node
    // 3's follower rate and the follower list naming it.
    let all_three = [
        (leader_rate, Delete, None),
        (follower_rate, Delete, None),
        (dirs_rate, Delete, None),
    ];
    for node in ["1", "2", "3"] {
        alter(native::BROKER, node, &all_three);
    }
    alter(
        native::TOPIC,
        "thr",
        &[(leader_list, Delete, None), (follower_list, Delete, None)],
    );
    assert_eq!(
        described(&admin, ResourceSpecifier::Broker(1), leader_rate).await,
        ("9223372036854775807".to_string(), "Default".to_string())
    );
    assert_eq!(
        described(&admin, ResourceSpecifier::Topic("thr"), leader_list).await,
        (String::new(), "Default".to_string())
    );
    alter(
        native::BROKER,
        "3",
        &[
            (leader_rate, Set, Some(RATE)),
            (follower_rate, Set, Some(RATE)),
        ],
    );
    alter(native::TOPIC, "thr", &[(follower_list, Set, Some("0:3"))]);
    let took = catch_up_time(&mut nodes, &bs).await;
    eprintln!("follower-throttled catch-up: {took:?}");
    assert!(
        took >= Duration::from_millis(3500),
        "follower-throttled catch-up took {took:?}"
    );
    assert!(
        counted(&nodes[2], false) >= 2_500_000,
        "{}",
        counted(&nodes[2], false)
    );
    // For scale (printed, not asserted: timing on a loaded machine), the
    // same catch-up once the throttle is cleared.
    alter(native::BROKER, "3", &all_three);
    alter(native::TOPIC, "thr", &[(follower_list, Delete, None)]);
    eprintln!(
        "unthrottled catch-up: {:?}",
        catch_up_time(&mut nodes, &bs).await
    );

    // Every record reached node 3.
    let c = consumer(&nodes[2].bootstrap(), &[]);
    assert_eq!(high_watermark(&c, "thr", 0), 900);
    let local = nodes[2]
        .node()
        .broker
        .replicas
        .get(&rivulet_storage::TopicPartition::new("thr", 0))
        .unwrap();
    assert_eq!(local.log.lock().log_end_offset(), 900);
}
