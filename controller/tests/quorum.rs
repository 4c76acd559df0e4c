//! The metadata quorum over real TCP on loopback: election, replication of
//! metadata to every node's image, controller failover, broker fencing,
//! catch-up from a snapshot after restart, and bad configuration.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rivulet_controller::{
    parse_voters, ControllerNode, ControllerRequest, ControllerResponse, Listener, MetadataImage,
    QuorumConfig, QuorumError, Voter, NO_LEADER,
};
use rivulet_testkit::poll::wait_for_async;
use rivulet_testkit::ports::free_ports;
use uuid::Uuid;

const T: Duration = Duration::from_secs(15);

fn voters(ports: &[u16]) -> Vec<Voter> {
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| Voter {
            id: i as u64 + 1,
            addr: format!("127.0.0.1:{p}"),
        })
        .collect()
}

fn config(id: u64, voters: &[Voter], dir: &Path) -> QuorumConfig {
    let mut c = QuorumConfig::new(id, voters.to_vec(), dir.join(format!("node-{id}")));
    c.heartbeat_interval_ms = 50;
    c.election_timeout_min_ms = 300;
    c.election_timeout_max_ms = 600;
    c.session_timeout_ms = 2_000;
    c.snapshot_every_entries = 20;
    c
}

async fn start_all(n: usize, dir: &Path) -> (Vec<Voter>, Vec<Option<ControllerNode>>) {
    let v = voters(&free_ports(n));
    let mut nodes = Vec::new();
    for voter in &v {
        nodes.push(Some(
            ControllerNode::start(config(voter.id, &v, dir))
                .await
                .unwrap(),
        ));
    }
    (v, nodes)
}

async fn wait_for<F: Fn() -> bool>(what: &str, f: F) {
    wait_for_async(what, T, f).await
}

fn leader_of(nodes: &[Option<ControllerNode>]) -> Option<u64> {
    nodes
        .iter()
        .flatten()
        .find(|n| n.is_leader())
        .map(|n| n.node_id())
}

async fn request(node: &ControllerNode, req: ControllerRequest) -> ControllerResponse {
    node.request(req, T).await.unwrap()
}

async fn register_brokers(node: &ControllerNode, ids: &[i32]) -> BTreeMap<i32, Uuid> {
    let mut incarnations = BTreeMap::new();
    for &id in ids {
        let inc = Uuid::new_v4();
        let listeners = vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9000 + id as u16,
        }];
        let r = request(
            node,
            ControllerRequest::RegisterBroker {
                node_id: id,
                incarnation: inc,
                listeners,
                rack: None,
                max_partitions: None,
            },
        )
        .await;
        assert!(matches!(r, ControllerResponse::Ok { .. }), "{r:?}");
        let r = request(
            node,
            ControllerRequest::BrokerHeartbeat {
                node_id: id,
                incarnation: inc,
            },
        )
        .await;
        assert!(matches!(r, ControllerResponse::Ok { .. }), "{r:?}");
        incarnations.insert(id, inc);
    }
    incarnations
}

async fn create_topic(
    node: &ControllerNode,
    name: &str,
    partitions: i32,
    rf: i32,
) -> ControllerResponse {
    request(
        node,
        ControllerRequest::CreateTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
            configs: BTreeMap::new(),
            validate_only: false,
        },
    )
    .await
}

fn has_topic(image: &Arc<MetadataImage>, name: &str) -> bool {
    image.topic(name).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_is_a_one_voter_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let (_, nodes) = start_all(1, dir.path()).await;
    let node = nodes[0].as_ref().unwrap();
    wait_for("self-election", || node.is_leader()).await;
    register_brokers(node, &[1]).await;
    assert!(matches!(
        create_topic(node, "solo", 3, 1).await,
        ControllerResponse::Ok { .. }
    ));
    let image = node.image();
    let t = image.topic("solo").unwrap();
    assert_eq!(t.partitions.len(), 3);
    assert!(t.partitions.values().all(|p| p.leader == 1));
    // validate_only creates nothing; bad requests get typed errors.
    let r = request(
        node,
        ControllerRequest::CreateTopic {
            name: "dry".into(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
            validate_only: true,
        },
    )
    .await;
    assert!(matches!(r, ControllerResponse::Ok { .. }));
    assert!(!has_topic(&node.image(), "dry"));
    let r = create_topic(node, "wide", 1, 3).await;
    assert!(matches!(r, ControllerResponse::Error(_)), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_replicate_metadata_and_survive_losing_the_active_controller() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut nodes) = start_all(3, dir.path()).await;
    wait_for("a leader", || leader_of(&nodes).is_some()).await;
    let leader = leader_of(&nodes).unwrap();
    // Requests sent to a follower are forwarded to the active controller.
    let follower = nodes
        .iter()
        .flatten()
        .find(|n| n.node_id() != leader)
        .unwrap();
    register_brokers(follower, &[1, 2, 3]).await;
    let r = create_topic(follower, "orders", 6, 3).await;
    assert!(matches!(r, ControllerResponse::Ok { .. }), "{r:?}");
    for n in nodes.iter().flatten() {
        wait_for("topic on every node", || has_topic(&n.image(), "orders")).await;
    }
    let before = nodes[0]
        .as_ref()
        .unwrap()
        .image()
        .topic("orders")
        .unwrap()
        .clone();

    // Kill the active controller: another takes over within seconds.
    let old_term = nodes[(leader - 1) as usize].as_ref().unwrap().term();
    let killed = nodes[(leader - 1) as usize].take().unwrap();
    let t0 = Instant::now();
    killed.shutdown().await;
    wait_for("a new leader", || {
        leader_of(&nodes).is_some_and(|l| l != leader)
    })
    .await;
    let failover = t0.elapsed();
    println!("controller failover took {failover:?}");
    let survivor = nodes.iter().flatten().next().unwrap();
    assert!(survivor.term() > old_term);
    assert_eq!(
        survivor.image().topic("orders").unwrap(),
        &before,
        "metadata intact"
    );
    let r = create_topic(survivor, "after", 1, 2).await;
    assert!(matches!(r, ControllerResponse::Ok { .. }), "{r:?}");
    for n in nodes.iter().flatten() {
        wait_for("new topic on survivors", || has_topic(&n.image(), "after")).await;
    }
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}

/// First boot: the lowest voter writes the initial membership and the others
/// learn it from it. With the lowest voter absent, the other two write it
/// themselves after a grace period and elect a leader; the lowest voter,
/// started later, joins them (its own log is still empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quorum_bootstraps_without_its_lowest_voter_and_takes_it_in_later() {
    let dir = tempfile::tempdir().unwrap();
    let v = voters(&free_ports(3));
    let mut nodes: Vec<Option<ControllerNode>> = vec![None];
    for voter in &v[1..] {
        let node = ControllerNode::start(config(voter.id, &v, dir.path()))
            .await
            .unwrap();
        nodes.push(Some(node));
    }
    wait_for("a leader among voters 2 and 3", || {
        leader_of(&nodes).is_some()
    })
    .await;
    let leader = leader_of(&nodes).unwrap();
    assert!(leader == 2 || leader == 3, "leader {leader}");
    // A metadata record committed before voter 1 exists.
    register_brokers(nodes[1].as_ref().unwrap(), &[7]).await;

    nodes[0] = Some(
        ControllerNode::start(config(1, &v, dir.path()))
            .await
            .unwrap(),
    );
    let first = nodes[0].as_ref().unwrap();
    wait_for("voter 1 has the earlier record", || {
        first.image().brokers.contains_key(&7)
    })
    .await;
    assert!(
        nodes.iter().flatten().all(|n| n.term() >= 1),
        "every voter in a real term"
    );
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_broker_is_fenced_and_its_partitions_move_within_the_isr() {
    let dir = tempfile::tempdir().unwrap();
    let (_, nodes) = start_all(3, dir.path()).await;
    wait_for("a leader", || leader_of(&nodes).is_some()).await;
    let node = nodes[0].as_ref().unwrap();
    let inc = register_brokers(node, &[1, 2, 3]).await;
    assert!(matches!(
        create_topic(node, "t", 3, 3).await,
        ControllerResponse::Ok { .. }
    ));
    // The request may have been forwarded: wait until this node applied it.
    wait_for("topic on node 1", || has_topic(&node.image(), "t")).await;
    let before = node.image().topic("t").unwrap().partitions.clone();
    // Brokers 1 and 3 keep heartbeating; broker 2 falls silent.
    let hb_node_addrs: Vec<_> = nodes.iter().flatten().collect();
    let deadline = Instant::now() + T;
    let mut fenced = false;
    while Instant::now() < deadline {
        for id in [1, 3] {
            let _ = hb_node_addrs[0]
                .request(
                    ControllerRequest::BrokerHeartbeat {
                        node_id: id,
                        incarnation: inc[&id],
                    },
                    T,
                )
                .await;
        }
        if !node.image().is_live(2) {
            fenced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(fenced, "broker 2 was never fenced");
    let image = node.image();
    assert!(image.is_live(1) && image.is_live(3));
    for (pid, p) in &image.topic("t").unwrap().partitions {
        let old = &before[pid];
        assert!(!p.isr.contains(&2), "partition {pid}: {p:?}");
        assert_ne!(p.leader, 2);
        assert_ne!(p.leader, NO_LEADER);
        if old.leader == 2 {
            assert_eq!(p.leader_epoch, old.leader_epoch + 1, "leader epoch bumped");
        }
    }
    // A stale incarnation is refused; re-registering and heartbeating unfences.
    let r = request(
        node,
        ControllerRequest::BrokerHeartbeat {
            node_id: 2,
            incarnation: Uuid::new_v4(),
        },
    )
    .await;
    assert_eq!(r, ControllerResponse::StaleBrokerEpoch);
    register_brokers(node, &[2]).await;
    wait_for("broker 2 live again", || node.image().is_live(2)).await;
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_from_snapshot_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let (v, mut nodes) = start_all(3, dir.path()).await;
    wait_for("a leader", || leader_of(&nodes).is_some()).await;
    let leader = leader_of(&nodes).unwrap();
    let down_id = if leader == 3 { 2 } else { 3 };
    let down = nodes[(down_id - 1) as usize].take().unwrap();
    down.shutdown().await;
    let node = nodes.iter().flatten().next().unwrap();
    register_brokers(node, &[1, 2]).await;
    // Enough entries for several snapshots and log purges.
    for i in 0..60 {
        let r = create_topic(node, &format!("t{i}"), 1, 1).await;
        assert!(matches!(r, ControllerResponse::Ok { .. }), "{r:?}");
    }
    let leader_node = nodes.iter().flatten().find(|n| n.is_leader()).unwrap();
    wait_for("a snapshot", || leader_node.snapshot_index().is_some()).await;
    let restarted = ControllerNode::start(config(down_id, &v, dir.path()))
        .await
        .unwrap();
    // Compared with the leader's image of the moment: it still changes (the
    // brokers registered above never heartbeat, so their sessions expire and
    // they are fenced, under load possibly after the restart).
    wait_for("restarted node caught up", || {
        restarted.image().topics == leader_node.image().topics
    })
    .await;
    assert_eq!(restarted.image().topic_ids.len(), 60);
    // And it survives its own restart from disk (snapshot + log).
    restarted.trigger_snapshot().await.unwrap();
    restarted.shutdown().await;
    let again = ControllerNode::start(config(down_id, &v, dir.path()))
        .await
        .unwrap();
    wait_for("image restored", || again.image().topic_ids.len() == 60).await;
    again.shutdown().await;
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_quorum_configuration_is_rejected_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let v = parse_voters("1@127.0.0.1:1,2@127.0.0.1:2").unwrap();
    let err = ControllerNode::start(config(3, &v, dir.path()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not among the voters"), "{err}");
    assert!(matches!(
        parse_voters("1@127.0.0.1:1,1@127.0.0.1:2"),
        Err(QuorumError::InvalidVoters(_))
    ));
    assert!(parse_voters("x@127.0.0.1:1").is_err());
    assert!(parse_voters("1@127.0.0.1").is_err());
    assert!(parse_voters("1@:99").is_err());
    assert!(parse_voters("").is_err());

    // Unreachable peers: the node starts, elects nobody, and requests time
    // out with a clear error instead of hanging.
    let ports = free_ports(3);
    let v = voters(&ports);
    let lonely = ControllerNode::start(config(1, &v, dir.path()))
        .await
        .unwrap();
    let err = lonely
        .request(
            ControllerRequest::DeleteTopic { name: "x".into() },
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, QuorumError::Timeout(_)), "{err}");
    assert!(!lonely.is_leader());
    lonely.shutdown().await;

    // A corrupt metadata log refuses to start and is left untouched.
    let v1 = voters(&free_ports(1));
    let cfg = config(1, &v1, &dir.path().join("corrupt"));
    let node = ControllerNode::start(cfg.clone()).await.unwrap();
    wait_for("self-election", || node.is_leader()).await;
    register_brokers(&node, &[1]).await;
    for i in 0..3 {
        create_topic(&node, &format!("c{i}"), 1, 1).await;
    }
    node.shutdown().await;
    let log = cfg.data_dir.join("__cluster_metadata-0").join("raft.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x55;
    std::fs::write(&log, &bytes).unwrap();
    let err = ControllerNode::start(cfg).await.unwrap_err();
    assert!(err.to_string().contains("raft.log"), "{err}");
    assert_eq!(
        std::fs::read(&log).unwrap(),
        bytes,
        "a corrupt log is not modified"
    );
}
