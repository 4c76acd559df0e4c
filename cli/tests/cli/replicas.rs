//! Replica placement commands (issue 14) against three in-process nodes:
//! `topic create --replica-assignment` places replicas as asked (and
//! refuses a bad list), `leader elect` moves leadership back to the
//! preferred replica after a restart.

use rivulet_testkit::broker::{cluster_bootstrap, start_cluster, TestBroker};
use rivulet_testkit::poll::Poll;

use super::*;

struct Cluster {
    runtime: tokio::runtime::Runtime,
    nodes: Vec<TestBroker>,
    _dir: TempDir,
}

impl Cluster {
    fn start(extra: &[(&str, &str)]) -> Cluster {
        let dir = temp_dir();
        let runtime = test_runtime();
        let nodes = runtime.block_on(start_cluster(dir.path(), 3, extra));
        Cluster {
            runtime,
            nodes,
            _dir: dir,
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        let bs = cluster_bootstrap(&self.nodes);
        let mut all = vec!["--bootstrap-server", bs.as_str()];
        all.extend_from_slice(args);
        rivulet(&all, "")
    }

    /// `(replicas, leader, isr)` per partition in node 1's image.
    fn partitions(&self, topic: &str) -> Vec<(Vec<i32>, i32, Vec<i32>)> {
        self.nodes[0]
            .node()
            .broker
            .image()
            .topic(topic)
            .map(|t| {
                t.partitions
                    .values()
                    .map(|p| (p.replicas.clone(), p.leader, p.isr.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(node) = n.node.take() {
                let _ = self.runtime.block_on(node.shutdown());
            }
        }
    }
}

#[test]
fn replica_assignment_places_replicas_and_leader_elect_restores_the_preferred_leader() {
    let mut c = Cluster::start(&[("auto.leader.rebalance.enable", "false")]);
    let run = c.run(&[
        "topic",
        "create",
        "placed",
        "--replica-assignment",
        "2:3,3:1,1:2",
    ]);
    assert!(run.success, "{}", run.stderr);
    let want = [(vec![2, 3], 2), (vec![3, 1], 3), (vec![1, 2], 1)];
    Poll::new(TIMEOUT).wait("the assigned placement", || {
        c.partitions("placed")
            .iter()
            .map(|(r, l, _)| (r.clone(), *l))
            .eq(want.iter().cloned())
    });
    let bad = c.run(&["topic", "create", "bad", "--replica-assignment", "1:1,2:3"]);
    assert!(!bad.success);
    assert!(
        bad.stderr
            .to_lowercase()
            .contains("invalid replica assignment"),
        "{}",
        bad.stderr
    );
    let bad = c.run(&["topic", "create", "bad", "--replica-assignment", "1:x"]);
    assert!(
        !bad.success && bad.stderr.contains("not a broker id"),
        "{}",
        bad.stderr
    );

    // Node 2 restarts: partition 0 (preferring it) is led by node 3 until
    // a preferred election.
    let node2 = c.nodes.remove(1);
    let node2 = c.runtime.block_on(node2.restart());
    c.nodes.insert(1, node2);
    Poll::new(TIMEOUT).wait("node 2 back in partition 0's ISR", || {
        c.partitions("placed")[0].2.contains(&2)
    });
    assert_eq!(c.partitions("placed")[0].1, 3);
    let run = c.run(&["leader", "elect", "--topic", "placed", "--partition", "0"]);
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stdout.contains("placed-0: leader elected"),
        "{}",
        run.stdout
    );
    Poll::new(TIMEOUT).wait("node 2 leading partition 0", || {
        c.partitions("placed")[0].1 == 2
    });
    let run = c.run(&["leader", "elect"]);
    assert!(run.success, "{}", run.stderr);
    assert!(run.stdout.contains("no election needed"), "{}", run.stdout);
    // An unclean election of a partition that has a leader is not needed.
    let run = c.run(&[
        "leader",
        "elect",
        "--topic",
        "placed",
        "--partition",
        "1",
        "--type",
        "unclean",
    ]);
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stdout.contains("placed-1: election not needed"),
        "{}",
        run.stdout
    );
}

#[test]
fn partition_reassign_and_node_drain_move_replicas_and_keep_the_data() {
    // __consumer_offsets with two replicas, so that its partitions on
    // node 3 can move too (with three on three nodes, none could).
    let c = Cluster::start(&[
        ("auto.leader.rebalance.enable", "false"),
        ("offsets.topic.replication.factor", "2"),
    ]);
    let run = c.run(&[
        "topic",
        "create",
        "d",
        "--replica-assignment",
        "3:1,2:3,1:2",
    ]);
    assert!(run.success, "{}", run.stderr);
    let bs = cluster_bootstrap(&c.nodes);
    rivulet_testkit::kafka::wait_for_leaders(&bs, "d", TIMEOUT);
    let lines: String = (0..50).map(|i| format!("k{i}:v{i}\n")).collect();
    for p in ["0", "1", "2"] {
        let mut all = vec!["--bootstrap-server", bs.as_str()];
        all.extend_from_slice(&[
            "produce",
            "d",
            "--partition",
            p,
            "--key-separator",
            ":",
            "--acks",
            "all",
        ]);
        let run = rivulet(&all, &lines);
        assert!(run.success, "{}", run.stderr);
    }

    let run = c.run(&["partition", "reassign", "--status"]);
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stdout.contains("no reassignment in progress"),
        "{}",
        run.stdout
    );
    let run = c.run(&[
        "partition",
        "reassign",
        "--topic",
        "d",
        "--partition",
        "2",
        "--replicas",
        "2,1",
    ]);
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stdout.contains("d-2: reassignment to 2,1 started"),
        "{}",
        run.stdout
    );
    Poll::new(TIMEOUT).wait("d-2 on [2, 1]", || {
        c.partitions("d")[2].0 == vec![2, 1] && c.partitions("d")[2].2.len() == 2
    });
    let bad = c.run(&[
        "partition",
        "reassign",
        "--topic",
        "d",
        "--partition",
        "0",
        "--replicas",
        "1,1",
    ]);
    assert!(
        !bad.success && bad.stderr.contains("InvalidReplicaAssignment"),
        "{}",
        bad.stderr
    );

    // Drain node 3: d-0 [3,1] and d-1 [2,3] lose it, keeping two replicas;
    // the copies throttled, the throttles removed once drained.
    let run = c.run(&["node", "drain", "3", "--throttle", "50000000"]);
    assert!(run.success, "{}", run.stderr);
    for line in [
        "replication throttled to 50000000 B/s per node",
        "throttles removed",
        "drained node 3: 2 partition(s) moved",
    ] {
        assert!(run.stdout.contains(line), "{line}: {}", run.stdout);
    }
    let rates = c.run(&["node", "config"]);
    assert!(!rates.stdout.contains("throttled"), "{}", rates.stdout);
    let topic = c.run(&["topic", "describe", "d"]);
    assert!(!topic.stdout.contains("throttled"), "{}", topic.stdout);
    let parts = c.partitions("d");
    assert!(parts.iter().all(|(r, _, _)| !r.contains(&3)), "{parts:?}");
    let offsets = c.partitions("__consumer_offsets");
    assert!(
        offsets
            .iter()
            .all(|(r, _, _)| !r.contains(&3) && r.len() == 2),
        "{offsets:?}"
    );
    assert_eq!(parts[0].0, vec![2, 1]);
    assert_eq!(parts[1].0, vec![2, 1]);
    let node3 = c.nodes[2].dir.clone();
    Poll::new(TIMEOUT).wait("node 3's partition logs deleted", || {
        (0..3).all(|p| !node3.join(format!("d-{p}")).exists())
    });
    // Everything is still there, read from the remaining nodes.
    for p in ["0", "1", "2"] {
        let mut all = vec!["--bootstrap-server", bs.as_str()];
        all.extend_from_slice(&[
            "consume",
            "d",
            "--partition",
            p,
            "--from",
            "earliest",
            "--count",
            "50",
        ]);
        let run = rivulet(&all, "");
        assert!(run.success, "{}", run.stderr);
        let got: Vec<&str> = run.stdout.lines().collect();
        let want: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
        assert_eq!(got, want, "partition {p}");
    }
    // Reading created __consumer_offsets, placed on node 3 too (draining
    // does not fence a node): a second drain moves those.
    let run = c.run(&["node", "drain", "3"]);
    assert!(run.success, "{}", run.stderr);
    assert!(run.stdout.contains("drained node 3: "), "{}", run.stdout);
    for topic in ["d", "__consumer_offsets"] {
        let parts = c.partitions(topic);
        assert!(
            parts.iter().all(|(r, _, _)| !r.contains(&3)),
            "{topic}: {parts:?}"
        );
    }
    let run = c.run(&["node", "drain", "3"]);
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stdout.contains("drained node 3: 0 partition(s) moved"),
        "{}",
        run.stdout
    );

    // A throttled move back onto node 3 (kafka-reassign-partitions.sh
    // --execute --throttle, then --verify): the rates cluster-wide, the
    // partition's current replicas on the leader list, node 3 on the
    // follower list; removed by --status once nothing moves.
    let run = c.run(&[
        "partition",
        "reassign",
        "--topic",
        "d",
        "--partition",
        "0",
        "--replicas",
        "2,1,3",
        "--throttle",
        "50000000",
    ]);
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("d-0: replication throttled to 50000000 B/s per node"),
        "{}",
        run.stdout
    );
    let rates = c.run(&["node", "config"]);
    for key in [
        "leader.replication.throttled.rate=50000000",
        "follower.replication.throttled.rate=50000000",
    ] {
        assert!(rates.stdout.contains(key), "{key}: {}", rates.stdout);
    }
    let topic = c.run(&["topic", "describe", "d"]);
    for key in [
        "leader.replication.throttled.replicas=0:2,0:1",
        "follower.replication.throttled.replicas=0:3",
    ] {
        assert!(topic.stdout.contains(key), "{key}: {}", topic.stdout);
    }
    Poll::new(TIMEOUT).wait("d-0 on [2, 1, 3]", || {
        c.partitions("d")[0].0 == vec![2, 1, 3] && c.partitions("d")[0].2.len() == 3
    });
    let run = c.run(&["partition", "reassign", "--status", "--topic", "d"]);
    assert!(run.success, "{}", run.stderr);
    assert!(run.stdout.contains("throttles removed"), "{}", run.stdout);
    let rates = c.run(&["node", "config"]);
    assert!(!rates.stdout.contains("throttled"), "{}", rates.stdout);
    let topic = c.run(&["topic", "describe", "d"]);
    assert!(!topic.stdout.contains("throttled"), "{}", topic.stdout);
    // Nothing left to remove.
    let run = c.run(&["partition", "reassign", "--status", "--topic", "d"]);
    assert!(!run.stdout.contains("throttles removed"), "{}", run.stdout);
}
