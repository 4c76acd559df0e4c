//! Leader elections (issue 14): after a node restart leadership returns to
//! the preferred replicas — by the controller's periodic balance check
//! (`auto.leader.rebalance.enable`, a 1 s interval here) or by an explicit
//! ElectLeaders (preferred) — and an unclean ElectLeaders gives a leader
//! to a partition whose ISR is only a dead node. Three in-process nodes;
//! records are produced and read back through rdkafka.

use std::collections::BTreeMap;

use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use rdkafka::Offset;
use rivulet_testkit::prelude::*;

/// Leader of each partition of `topic` in node `b`'s image.
fn leaders(b: &TestBroker, topic: &str) -> BTreeMap<i32, i32> {
    b.node()
        .broker
        .image()
        .topic(topic)
        .map(|t| t.partitions.iter().map(|(p, r)| (*p, r.leader)).collect())
        .unwrap_or_default()
}

fn isr(b: &TestBroker, topic: &str, partition: i32) -> Vec<i32> {
    b.node()
        .broker
        .image()
        .partition(topic, partition)
        .map(|p| p.isr.clone())
        .unwrap_or_default()
}

/// ElectLeaders v2 for `partitions` (`None`: all) through a raw request.
async fn elect(
    bootstrap: &str,
    kind: i8,
    partitions: Option<&[(&str, i32)]>,
) -> ElectLeadersResponse {
    let req = ElectLeadersRequest::default()
        .with_election_type(kind)
        .with_timeout_ms(10_000)
        .with_topic_partitions(partitions.map(|ps| {
            ps.iter()
                .map(|(t, p)| {
                    TopicPartitions::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(vec![*p])
                })
                .collect()
        }));
    raw_request(bootstrap, 2, &req).await
}

/// `(topic, partition, error code)` of every result.
fn outcomes(r: &ElectLeadersResponse) -> Vec<(String, i32, i16)> {
    r.replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result
                .iter()
                .map(|p| (t.topic.to_string(), p.partition_id, p.error_code))
        })
        .collect()
}

/// Three nodes, topic `topic` with three RF-3 partitions preferring nodes
/// 1, 2, 3 in turn; node 2 restarted, so the partition it prefers is led
/// elsewhere until an election moves it back. Returns the nodes.
async fn restarted_node_2(
    root: &std::path::Path,
    extra: &[(&str, &str)],
    topic: &str,
) -> Vec<TestBroker> {
    let mut nodes = start_cluster(root, 3, extra).await;
    let bs = cluster_bootstrap(&nodes);
    create_topic_rf(&bs, topic, 3, 3, &[]).await;
    wait_for_leaders(&bs, topic, TIMEOUT);
    let preferred: BTreeMap<i32, i32> = nodes[0]
        .node()
        .broker
        .image()
        .topic(topic)
        .unwrap()
        .partitions
        .iter()
        .map(|(p, r)| (*p, r.replicas[0]))
        .collect();
    assert_eq!(leaders(&nodes[0], topic), preferred, "balanced at first");
    let p2 = *preferred.iter().find(|(_, l)| **l == 2).unwrap().0;

    let node2 = nodes.remove(1);
    let node2 = node2.restart().await;
    nodes.insert(1, node2);
    // Back in the ISR (caught up), but no longer leading.
    Poll::new(TIMEOUT)
        .wait_async("node 2 back in the ISR", || {
            isr(&nodes[0], topic, p2).contains(&2)
        })
        .await;
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn preferred_election_restores_leaders_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = restarted_node_2(
        dir.path(),
        &[("auto.leader.rebalance.enable", "false")],
        "pref",
    )
    .await;
    let bs = cluster_bootstrap(&nodes);
    let l = leaders(&nodes[0], "pref");
    assert!(!l.values().any(|l| *l == 2), "node 2 leads nothing: {l:?}");
    let p2 = (0..3)
        .find(|p| {
            nodes[0]
                .node()
                .broker
                .image()
                .partition("pref", *p)
                .unwrap()
                .replicas[0]
                == 2
        })
        .unwrap();
    let other = (p2 + 1) % 3;

    // Nothing moves by itself with auto rebalance off.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(leaders(&nodes[0], "pref"), l);

    let one = nodes[2].bootstrap();
    let r = elect(
        &one,
        0,
        Some(&[("pref", p2), ("pref", other), ("nope", 0), ("pref", 9)]),
    )
    .await;
    assert_eq!(r.error_code, 0);
    let mut got = outcomes(&r);
    got.sort();
    let mut want = vec![
        ("nope".to_string(), 0, E::UnknownTopicOrPartition.code()),
        ("pref".to_string(), p2, 0),
        ("pref".to_string(), other, E::ElectionNotNeeded.code()),
        ("pref".to_string(), 9, E::UnknownTopicOrPartition.code()),
    ];
    want.sort();
    assert_eq!(got, want);
    for n in &nodes {
        Poll::new(TIMEOUT)
            .wait_async("node 2 leading its preferred partition again", || {
                leaders(n, "pref").get(&p2) == Some(&2)
            })
            .await;
    }
    // A client follows: records go to node 2 and are read back.
    let p = producer(&bs, &[("acks", "all")]);
    let recs: Vec<KeyValue<'_>> = vec![(None, Some(b"after".as_slice())); 3];
    assert_eq!(produce_all(&p, "pref", p2, &recs).await, vec![0, 1, 2]);
    let c = consumer(&bs, &[]);
    let back = consume_n(&c, "pref", p2, Offset::Beginning, 3);
    assert!(back
        .iter()
        .all(|g| g.value.as_deref() == Some(b"after".as_slice())));

    // Everything balanced: a null list answers nothing to do.
    let r = elect(&one, 0, None).await;
    assert_eq!(outcomes(&r), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_rebalance_moves_leaders_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = restarted_node_2(
        dir.path(),
        &[("leader.imbalance.check.interval.seconds", "1")],
        "auto",
    )
    .await;
    let preferred: BTreeMap<i32, i32> = nodes[0]
        .node()
        .broker
        .image()
        .topic("auto")
        .unwrap()
        .partitions
        .iter()
        .map(|(p, r)| (*p, r.replicas[0]))
        .collect();
    for n in &nodes {
        Poll::new(TIMEOUT)
            .wait_async("every partition led by its preferred replica", || {
                leaders(n, "auto") == preferred
            })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unclean_election_leads_a_partition_whose_isr_is_a_dead_node() {
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        ("broker.session.timeout.ms", "2000"),
        ("auto.leader.rebalance.enable", "false"),
    ];
    let mut nodes = start_cluster(dir.path(), 3, &extra).await;
    let bs = cluster_bootstrap(&nodes);
    // One partition on nodes 1 and 2, led by 1.
    let admin = admin(&bs);
    let t = rdkafka::admin::NewTopic::new(
        "unclean",
        1,
        rdkafka::admin::TopicReplication::Variable(&[&[1, 2]]),
    );
    let opts = rdkafka::admin::AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let res = admin.create_topics(&[t], &opts).await.unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    wait_for_leaders(&bs, "unclean", TIMEOUT);

    // Node 2 goes, so the ISR is node 1 alone; then node 1 goes too.
    nodes[1].stop().await;
    Poll::new(TIMEOUT)
        .wait_async("ISR [1]", || isr(&nodes[0], "unclean", 0) == vec![1])
        .await;
    let p = producer(&nodes[0].bootstrap(), &[("acks", "all")]);
    let recs: Vec<KeyValue<'_>> = vec![(None, Some(b"only-on-1".as_slice())); 2];
    assert_eq!(produce_all(&p, "unclean", 0, &recs).await, vec![0, 1]);
    drop(p);
    nodes[0].stop().await;
    // Node 2 back (the quorum has a majority again): node 1's session ends,
    // the partition is leaderless, its ISR still [1].
    let (dir2, port2, cport2, extra2) = {
        let n = &nodes[1];
        (n.dir.clone(), n.port, n.controller_port, n.extra.clone())
    };
    nodes[1] = TestBroker::try_start_on(&dir2, port2, cport2, extra2)
        .await
        .unwrap();
    let bs2 = nodes[1].bootstrap();
    Poll::new(TIMEOUT)
        .wait_async("the partition leaderless with ISR [1]", || {
            let image = nodes[1].node().broker.image();
            let p = image.partition("unclean", 0).unwrap();
            !image.is_live(1) && p.leader == -1 && p.isr == vec![1]
        })
        .await;

    // A preferred election cannot help; an unclean one for a partition with
    // a leader is not needed.
    let r = elect(&bs2, 0, Some(&[("unclean", 0)])).await;
    assert_eq!(
        outcomes(&r),
        vec![("unclean".into(), 0, E::PreferredLeaderNotAvailable.code())]
    );
    let r = elect(&bs2, 1, Some(&[("unclean", 0)])).await;
    assert_eq!(outcomes(&r), vec![("unclean".into(), 0, 0)]);
    Poll::new(TIMEOUT)
        .wait_async("node 2 leading with ISR [2]", || {
            let image = nodes[1].node().broker.image();
            let p = image.partition("unclean", 0).unwrap();
            p.leader == 2 && p.isr == vec![2]
        })
        .await;
    let r = elect(&bs2, 1, Some(&[("unclean", 0)])).await;
    assert_eq!(
        outcomes(&r),
        vec![("unclean".into(), 0, E::ElectionNotNeeded.code())]
    );
    // The partition takes records again (what only node 1 had is lost, as
    // an unclean election accepts).
    let p = producer(&bs2, &[("acks", "all")]);
    let recs: Vec<KeyValue<'_>> = vec![(None, Some(b"on-2".as_slice())); 2];
    let offsets = produce_all(&p, "unclean", 0, &recs).await;
    assert_eq!(offsets.len(), 2);
    let c = consumer(&bs2, &[]);
    let back = consume_n(&c, "unclean", 0, Offset::Offset(offsets[0]), 2);
    assert!(back
        .iter()
        .all(|g| g.value.as_deref() == Some(b"on-2".as_slice())));
}

/// DescribeQuorum v`version` for `__cluster_metadata-0` (or `topic`).
async fn describe_quorum(
    bootstrap: &str,
    version: i16,
    topic: &str,
) -> kafka_protocol::messages::DescribeQuorumResponse {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    let req = kafka_protocol::messages::DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    raw_request(bootstrap, version, &req).await
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `kafka-metadata-quorum.sh describe --status / --replication` asks any
/// broker: every node answers with the active controller's view — the
/// leader, its epoch, the high watermark, each voter's log end and last
/// fetch (fresh while it runs, ageing once it is stopped), and in v2 the
/// voters' controller endpoints; anything but `__cluster_metadata-0` is
/// UNKNOWN_TOPIC_OR_PARTITION.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_quorum_reports_the_leader_and_every_voters_progress() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start_cluster(dir.path(), 3, &[]).await;
    let controller_ports: BTreeMap<i32, u16> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (i as i32 + 1, n.controller_port))
        .collect();
    let bad = describe_quorum(&nodes[0].bootstrap(), 2, "topic").await;
    assert_eq!(bad.error_code, E::UnknownTopicOrPartition.code());

    // (leader, epoch, hw, [(voter, log end, last fetch)]) from node `i`.
    type Seen = (i32, i32, i64, Vec<(i32, i64, i64)>);
    let seen = |r: &kafka_protocol::messages::DescribeQuorumResponse| -> Seen {
        assert_eq!(r.error_code, 0);
        assert_eq!(r.topics[0].topic_name.as_str(), "__cluster_metadata");
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "{:?}", p.error_message);
        let mut voters: Vec<_> = p
            .current_voters
            .iter()
            .map(|v| (v.replica_id.0, v.log_end_offset, v.last_fetch_timestamp))
            .collect();
        voters.sort();
        (p.leader_id.0, p.leader_epoch, p.high_watermark, voters)
    };
    let mut leader = 0;
    for (i, n) in nodes.iter().enumerate() {
        let r = describe_quorum(&n.bootstrap(), 2, "__cluster_metadata").await;
        let (l, epoch, hw, voters) = seen(&r);
        assert!(
            (1..=3).contains(&l) && epoch >= 1 && hw > 0,
            "node {}: {l} {epoch} {hw}",
            i + 1
        );
        assert_eq!(voters.iter().map(|v| v.0).collect::<Vec<_>>(), [1, 2, 3]);
        let leader_end = voters.iter().find(|v| v.0 == l).unwrap().1;
        assert!(
            leader_end >= hw,
            "leader's log end {leader_end} below hw {hw}"
        );
        for (id, end, _) in &voters {
            assert!(
                *end > 0 && *end <= leader_end,
                "voter {id}: {end} of {leader_end}"
            );
        }
        // v2 names every voter's controller endpoint.
        let mut endpoints: Vec<(i32, u16)> = r
            .nodes
            .iter()
            .map(|n| (n.node_id.0, n.listeners[0].port))
            .collect();
        endpoints.sort();
        assert_eq!(
            endpoints,
            controller_ports.clone().into_iter().collect::<Vec<_>>()
        );
        leader = l;
    }
    Poll::new(TIMEOUT)
        .value_async(|| {
            let bs = nodes[0].bootstrap();
            async move {
                let (_, _, _, voters) = seen(&describe_quorum(&bs, 1, "__cluster_metadata").await);
                voters.iter().all(|v| now_ms() - v.2 < 2_000).then_some(())
            }
        })
        .await
        .expect("every voter's last fetch within 2 s");
    // A stopped follower's last fetch ages; the others stay fresh. v0 and v1
    // have no nodes.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    nodes[follower as usize - 1].stop().await;
    let live = nodes[leader as usize - 1].bootstrap();
    Poll::new(TIMEOUT)
        .value_async(|| {
            let bs = live.clone();
            async move {
                let (_, _, _, voters) = seen(&describe_quorum(&bs, 1, "__cluster_metadata").await);
                voters
                    .iter()
                    .all(|v| {
                        let age = now_ms() - v.2;
                        if v.0 == follower {
                            age > 3_000
                        } else {
                            age < 2_000
                        }
                    })
                    .then_some(())
            }
        })
        .await
        .expect("the stopped voter's last fetch ageing, the others fresh");
    let v0 = describe_quorum(&live, 0, "__cluster_metadata").await;
    let (l, _, _, _) = seen(&v0);
    assert_eq!(l, leader);
    assert!(v0.nodes.is_empty());
}
