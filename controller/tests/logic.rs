//! Controller decisions, applied to an image: placement, validation, fencing
//! and failover, ISR changes, producer ids.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rivulet_controller::logic::{self, ControllerError};
use rivulet_controller::{Listener, MetadataImage, MetadataRecord, NO_LEADER};
use rivulet_storage::LogConfig;
use uuid::Uuid;

fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for r in records {
        let next = image.offset + 1;
        image.apply(next, r).unwrap();
    }
}

fn cluster(n: i32) -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in 1..=n {
        let l = vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9091 + id as u16,
        }];
        apply(
            &mut image,
            &logic::register_broker(id, Uuid::from_u128(id as u128), l, None),
        );
        let r = logic::unfence_broker(&image, id).unwrap();
        apply(&mut image, &r);
    }
    image
}

fn create(image: &mut MetadataImage, name: &str, parts: i32, rf: i32) -> Uuid {
    let id = Uuid::new_v4();
    let r = logic::create_topic(
        image,
        &LogConfig::default(),
        name,
        parts,
        rf,
        &BTreeMap::new(),
        id,
    )
    .unwrap();
    apply(image, &r);
    id
}

#[test]
fn registered_brokers_start_fenced_until_unfenced() {
    let mut image = MetadataImage::default();
    apply(
        &mut image,
        &logic::register_broker(1, Uuid::new_v4(), vec![], None),
    );
    assert!(!image.is_live(1));
    let r = logic::unfence_broker(&image, 1).unwrap();
    apply(&mut image, &r);
    assert!(image.is_live(1));
}

#[test]
fn create_topic_spreads_replicas_and_leaders_evenly() {
    let mut image = cluster(3);
    create(&mut image, "orders", 6, 3);
    let t = image.topic("orders").unwrap();
    let mut leaders = BTreeMap::new();
    for p in t.partitions.values() {
        assert_eq!(p.replicas.len(), 3);
        let mut sorted = p.replicas.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 3, "distinct replicas");
        assert_eq!(p.leader, p.replicas[0]);
        assert_eq!(p.isr, p.replicas);
        *leaders.entry(p.leader).or_insert(0) += 1;
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
}

#[test]
fn create_topic_rejects_bad_requests() {
    let mut image = cluster(2);
    let cfg = LogConfig::default();
    let none = BTreeMap::new();
    assert_eq!(
        logic::create_topic(&image, &cfg, "t", 1, 3, &none, Uuid::new_v4()),
        Err(ControllerError::InvalidReplicationFactor {
            requested: 3,
            live: 2
        })
    );
    assert!(matches!(
        logic::create_topic(&image, &cfg, "t", 0, 1, &none, Uuid::new_v4()),
        Err(ControllerError::InvalidPartitions(_))
    ));
    assert!(matches!(
        logic::create_topic(&image, &cfg, "bad/name", 1, 1, &none, Uuid::new_v4()),
        Err(ControllerError::InvalidTopicName(_))
    ));
    let mut bad = BTreeMap::new();
    bad.insert("retention.ms".to_string(), "soon".to_string());
    assert!(matches!(
        logic::create_topic(&image, &cfg, "t", 1, 1, &bad, Uuid::new_v4()),
        Err(ControllerError::InvalidConfig(_))
    ));
    create(&mut image, "t", 1, 1);
    assert_eq!(
        logic::create_topic(&image, &cfg, "t", 1, 1, &none, Uuid::new_v4()),
        Err(ControllerError::TopicAlreadyExists("t".into()))
    );
}

#[test]
fn fencing_a_leader_moves_leadership_within_the_isr_with_bumped_epoch() {
    let mut image = cluster(3);
    create(&mut image, "t", 3, 3);
    let before = image.topic("t").unwrap().partitions.clone();
    let r = logic::fence_broker(&image, 1).unwrap();
    apply(&mut image, &r);
    assert!(!image.is_live(1));
    for (pid, p) in &image.topic("t").unwrap().partitions {
        let old = &before[pid];
        assert!(!p.isr.contains(&1), "fenced broker leaves the ISR");
        assert_ne!(p.leader, 1);
        assert!(p.isr.contains(&p.leader));
        if old.leader == 1 {
            assert_eq!(p.leader_epoch, old.leader_epoch + 1);
            // Next in replica order that is in sync.
            assert_eq!(p.leader, old.replicas[1]);
        } else {
            assert_eq!(p.leader_epoch, old.leader_epoch);
        }
        assert_eq!(p.partition_epoch, old.partition_epoch + 1);
    }
}

/// A heartbeat of an incarnation that shut down cleanly, applied after its
/// shutdown (it was in flight), must not bring it back as live: it is
/// exiting, and would otherwise be listed and preferred as leader again.
#[test]
fn a_clean_shutdown_stays_fenced_until_the_broker_registers_again() {
    let mut image = cluster(3);
    create(&mut image, "t", 3, 3);
    let r = logic::shut_down_broker(&image, 1).unwrap();
    apply(&mut image, &r);
    assert!(!image.is_live(1));
    for p in image.topic("t").unwrap().partitions.values() {
        assert_ne!(p.leader, 1);
        assert!(!p.isr.contains(&1));
    }
    let r = logic::unfence_broker(&image, 1).unwrap();
    assert!(r.is_empty(), "{r:?}");
    assert!(logic::preferred_leader_elections(&image).is_empty());
    // A new incarnation registers and is unfenced by its first heartbeat.
    apply(
        &mut image,
        &logic::register_broker(1, Uuid::from_u128(100), vec![], None),
    );
    let r = logic::unfence_broker(&image, 1).unwrap();
    apply(&mut image, &r);
    assert!(image.is_live(1));
}

#[test]
fn partition_whose_last_isr_member_dies_goes_offline_until_it_returns() {
    let mut image = cluster(2);
    create(&mut image, "solo", 1, 1);
    let leader = image.partition("solo", 0).unwrap().leader;
    let r = logic::fence_broker(&image, leader).unwrap();
    apply(&mut image, &r);
    let p = image.partition("solo", 0).unwrap();
    assert_eq!(p.leader, NO_LEADER);
    assert_eq!(p.isr, vec![leader], "the last ISR member stays");
    let r = logic::unfence_broker(&image, leader).unwrap();
    apply(&mut image, &r);
    let p = image.partition("solo", 0).unwrap();
    assert_eq!(p.leader, leader);
    assert_eq!(p.leader_epoch, 2);
}

#[test]
fn unclean_election_only_when_enabled() {
    let mut image = cluster(2);
    let mut cfg = BTreeMap::new();
    cfg.insert(
        "unclean.leader.election.enable".to_string(),
        "true".to_string(),
    );
    let id = Uuid::new_v4();
    let r = logic::create_topic(&image, &LogConfig::default(), "u", 1, 2, &cfg, id).unwrap();
    apply(&mut image, &r);
    // Shrink the ISR to the leader only, then fence the leader.
    let p = image.partition("u", 0).unwrap().clone();
    let r = logic::alter_partition(
        &image,
        "u",
        0,
        p.leader,
        p.leader_epoch,
        p.partition_epoch,
        vec![p.leader],
    )
    .unwrap();
    apply(&mut image, &r);
    let r = logic::fence_broker(&image, p.leader).unwrap();
    apply(&mut image, &r);
    let after = image.partition("u", 0).unwrap();
    let other = p.replicas[1];
    assert_eq!(
        after.leader, other,
        "out-of-sync replica elected because unclean is on"
    );
    assert_eq!(after.isr, vec![other]);
}

/// The cluster-wide dynamic default (BROKER "" in Kafka) allows unclean
/// elections for a topic without its own setting; a topic's `false` wins.
#[test]
fn unclean_election_by_the_cluster_wide_dynamic_default() {
    const KEY: &str = "unclean.leader.election.enable";
    let mut image = cluster(2);
    let changes: BTreeMap<String, Option<String>> =
        [(KEY.to_string(), Some("true".to_string()))].into();
    let r = logic::alter_broker_configs(&image, logic::CLUSTER_DEFAULT, &changes).unwrap();
    apply(&mut image, &r);
    assert!(
        logic::alter_broker_configs(&image, 9, &changes).is_err(),
        "unknown broker"
    );
    // Both led by node 1 with node 1 alone in sync; then node 1 dies.
    for (topic, own) in [("inherits", None), ("refuses", Some("false"))] {
        let cfg: BTreeMap<String, String> = own
            .map(|v| (KEY.to_string(), v.to_string()))
            .into_iter()
            .collect();
        let r = rivulet_controller::assignment::create_topic_assigned(
            &image,
            &LogConfig::default(),
            topic,
            &[(0, vec![1, 2])],
            &cfg,
            Uuid::new_v4(),
        )
        .unwrap();
        apply(&mut image, &r);
        let p = image.partition(topic, 0).unwrap().clone();
        assert_eq!(p.leader, 1);
        let r = logic::alter_partition(
            &image,
            topic,
            0,
            1,
            p.leader_epoch,
            p.partition_epoch,
            vec![1],
        )
        .unwrap();
        apply(&mut image, &r);
    }
    let r = logic::fence_broker(&image, 1).unwrap();
    apply(&mut image, &r);
    assert_eq!(
        image.partition("inherits", 0).unwrap().leader,
        2,
        "the cluster default allows the out-of-sync replica"
    );
    assert_eq!(
        image.partition("refuses", 0).unwrap().leader,
        NO_LEADER,
        "the topic's own false wins"
    );
}

#[test]
fn preferred_leader_returns_when_back_in_sync() {
    let mut image = cluster(3);
    create(&mut image, "t", 3, 3);
    let r = logic::fence_broker(&image, 2).unwrap();
    apply(&mut image, &r);
    let r = logic::unfence_broker(&image, 2).unwrap();
    apply(&mut image, &r);
    assert!(
        logic::preferred_leader_elections(&image).is_empty(),
        "2 is not in sync yet"
    );
    // Leaders add 2 back to the ISR.
    for pid in 0..3 {
        let p = image.partition("t", pid).unwrap().clone();
        if !p.isr.contains(&2) {
            let mut isr = p.isr.clone();
            isr.push(2);
            let r = logic::alter_partition(
                &image,
                "t",
                pid,
                p.leader,
                p.leader_epoch,
                p.partition_epoch,
                isr,
            )
            .unwrap();
            apply(&mut image, &r);
        }
    }
    let r = logic::preferred_leader_elections(&image);
    assert_eq!(r.len(), 1);
    apply(&mut image, &r);
    for p in image.topic("t").unwrap().partitions.values() {
        assert_eq!(p.leader, p.replicas[0]);
    }
}

#[test]
fn alter_partition_checks_leader_and_epochs() {
    let mut image = cluster(3);
    create(&mut image, "t", 1, 3);
    let p = image.partition("t", 0).unwrap().clone();
    let shrink = vec![p.leader];
    assert_eq!(
        logic::alter_partition(
            &image,
            "t",
            0,
            p.replicas[1],
            p.leader_epoch,
            p.partition_epoch,
            shrink.clone()
        ),
        Err(ControllerError::NotLeader(p.replicas[1]))
    );
    assert!(matches!(
        logic::alter_partition(
            &image,
            "t",
            0,
            p.leader,
            p.leader_epoch - 1,
            p.partition_epoch,
            shrink.clone()
        ),
        Err(ControllerError::FencedLeaderEpoch { .. })
    ));
    assert!(matches!(
        logic::alter_partition(
            &image,
            "t",
            0,
            p.leader,
            p.leader_epoch,
            p.partition_epoch + 1,
            shrink.clone()
        ),
        Err(ControllerError::InvalidUpdateVersion { .. })
    ));
    assert_eq!(
        logic::alter_partition(
            &image,
            "t",
            0,
            p.leader,
            p.leader_epoch,
            p.partition_epoch,
            vec![p.leader, 99]
        ),
        Err(ControllerError::IneligibleReplica(99))
    );
    let r = logic::alter_partition(
        &image,
        "t",
        0,
        p.leader,
        p.leader_epoch,
        p.partition_epoch,
        shrink,
    )
    .unwrap();
    apply(&mut image, &r);
    let q = image.partition("t", 0).unwrap();
    assert_eq!(q.isr, vec![p.leader]);
    assert_eq!(q.partition_epoch, p.partition_epoch + 1);
    assert_eq!(
        q.leader_epoch, p.leader_epoch,
        "ISR changes keep the leader epoch"
    );
}

#[test]
fn producer_id_blocks_never_overlap() {
    let mut image = cluster(2);
    let mut starts = Vec::new();
    for b in [1, 2, 1] {
        let (start, rec) = logic::allocate_producer_ids(&image, b).unwrap();
        apply(&mut image, &[rec]);
        starts.push(start);
    }
    assert_eq!(starts, vec![0, 1000, 2000]);
    assert!(logic::allocate_producer_ids(&image, 9).is_err());
}

#[test]
fn create_partitions_grows_only() {
    let mut image = cluster(3);
    create(&mut image, "t", 2, 2);
    assert!(logic::create_partitions(&image, "t", 2).is_err());
    let r = logic::create_partitions(&image, "t", 5).unwrap();
    apply(&mut image, &r);
    let t = image.topic("t").unwrap();
    assert_eq!(t.partitions.len(), 5);
    assert!(t.partitions.values().all(|p| p.replicas.len() == 2));
}

#[test]
fn alter_configs_validates_and_deletes() {
    let mut image = cluster(1);
    create(&mut image, "t", 1, 1);
    let mut ch = BTreeMap::new();
    ch.insert("retention.ms".to_string(), Some("1000".to_string()));
    ch.insert("min.insync.replicas".to_string(), Some("2".to_string()));
    let r = logic::alter_topic_configs(&image, &LogConfig::default(), "t", &ch).unwrap();
    apply(&mut image, &r);
    assert_eq!(
        image
            .topic("t")
            .unwrap()
            .configs
            .get("retention.ms")
            .unwrap(),
        "1000"
    );
    let mut bad = BTreeMap::new();
    bad.insert("min.insync.replicas".to_string(), Some("0".to_string()));
    assert!(logic::alter_topic_configs(&image, &LogConfig::default(), "t", &bad).is_err());
    let mut del = BTreeMap::new();
    del.insert("retention.ms".to_string(), None);
    let r = logic::alter_topic_configs(&image, &LogConfig::default(), "t", &del).unwrap();
    apply(&mut image, &r);
    assert!(!image
        .topic("t")
        .unwrap()
        .configs
        .contains_key("retention.ms"));
}

#[test]
fn session_timeout_expires_silent_brokers() {
    let image = cluster(2);
    let mut hb = logic::BrokerHeartbeats::new(1000);
    assert!(hb.expired(&image, 0).is_empty());
    hb.touch(1, 900);
    assert_eq!(hb.expired(&image, 1500), vec![2]);
}

proptest! {
    /// Applying the same records gives the same image, and records survive
    /// a serde round trip (they are what the Raft log stores).
    #[test]
    fn image_is_deterministic(ops in proptest::collection::vec((0u8..5, 1i32..4), 1..40)) {
        let mut image = cluster(3);
        let mut log: Vec<MetadataRecord> = Vec::new();
        for (i, (op, b)) in ops.into_iter().enumerate() {
            let recs = match op {
                0 => logic::create_topic(&image, &LogConfig::default(), &format!("t{i}"), 2, 1 + (b % 2), &BTreeMap::new(), Uuid::from_u128(i as u128)).unwrap_or_default(),
                1 => logic::fence_broker(&image, b).unwrap_or_default(),
                2 => logic::unfence_broker(&image, b).unwrap_or_default(),
                3 => logic::preferred_leader_elections(&image),
                _ => logic::allocate_producer_ids(&image, b).map(|(_, r)| vec![r]).unwrap_or_default(),
            };
            apply(&mut image, &recs);
            log.extend(recs);
            // Invariants: a leader is live and in the ISR, or there is none.
            for t in image.topics.values() {
                for p in t.partitions.values() {
                    prop_assert!(p.leader == NO_LEADER || (p.isr.contains(&p.leader) && p.replicas.contains(&p.leader)));
                    prop_assert!(!p.isr.is_empty());
                }
            }
        }
        let encoded = serde_json::to_string(&log).unwrap();
        let decoded: Vec<MetadataRecord> = serde_json::from_str(&encoded).unwrap();
        let mut replay = cluster(3);
        apply(&mut replay, &decoded);
        prop_assert_eq!(&replay, &image);
    }
}
