//! Reassignment and election decisions applied to an image: the union
//! while adding, completion with the ISR, leader moves, cancel; preferred
//! and unclean elections; the imbalance threshold.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::*;
use crate::election::{self, ElectionError, ElectionType};
use crate::logic;

fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for r in records {
        let next = image.offset + 1;
        image.apply(next, r).unwrap();
    }
}

/// `n` live brokers and topic `t` with one partition on `replicas`.
fn image_with(n: i32, replicas: &[i32]) -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in 1..=n {
        apply(
            &mut image,
            &logic::register_broker(id, Uuid::from_u128(id as u128), vec![], None),
        );
        let r = logic::unfence_broker(&image, id).unwrap();
        apply(&mut image, &r);
    }
    let r = crate::assignment::create_topic_assigned(
        &image,
        &rivulet_storage::LogConfig::default(),
        "t",
        &[(0, replicas.to_vec())],
        &BTreeMap::new(),
        Uuid::from_u128(99),
    )
    .unwrap();
    apply(&mut image, &r);
    image
}

fn part(image: &MetadataImage) -> PartitionRegistration {
    image.partition("t", 0).unwrap().clone()
}

/// The leader reports `isr` (as AlterPartition would), plus completion.
fn isr_change(image: &mut MetadataImage, isr: &[i32]) {
    let p = part(image);
    let mut records = logic::alter_partition(
        image,
        "t",
        0,
        p.leader,
        p.leader_epoch,
        p.partition_epoch,
        isr.to_vec(),
    )
    .unwrap();
    records.extend(complete_if_caught_up(
        image,
        Uuid::from_u128(99),
        0,
        &p,
        isr,
    ));
    apply(image, &records);
}

#[test]
fn moving_the_leader_away_keeps_the_union_until_the_new_replica_is_in_sync() {
    let mut image = image_with(3, &[1, 2]);
    let r = alter_reassignment(&image, "t", 0, Some(&[3, 2])).unwrap();
    apply(&mut image, &r);
    let p = part(&image);
    assert_eq!(
        (
            p.replicas.clone(),
            p.adding_replicas.clone(),
            p.removing_replicas.clone()
        ),
        (vec![3, 2, 1], vec![3], vec![1])
    );
    assert_eq!(
        (p.leader, p.isr.clone()),
        (1, vec![1, 2]),
        "nothing moves yet"
    );
    assert_eq!(ongoing(&image).len(), 1);

    isr_change(&mut image, &[1, 2, 3]);
    let p = part(&image);
    assert_eq!(p.replicas, vec![3, 2]);
    assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
    assert_eq!(p.leader, 3, "the first target replica in the ISR leads");
    assert_eq!(p.isr, vec![2, 3]);
    assert!(ongoing(&image).is_empty());
}

#[test]
fn a_shrink_or_reorder_completes_at_once_and_cancel_reverts() {
    let mut image = image_with(3, &[1, 2, 3]);
    let r = alter_reassignment(&image, "t", 0, Some(&[2, 3])).unwrap();
    apply(&mut image, &r);
    let p = part(&image);
    assert_eq!((p.replicas.clone(), p.leader), (vec![2, 3], 2));
    assert!(p.adding_replicas.is_empty());

    assert_eq!(
        alter_reassignment(&image, "t", 0, None),
        Err(ReassignError::NoReassignmentInProgress)
    );
    let r = alter_reassignment(&image, "t", 0, Some(&[1, 2])).unwrap();
    apply(&mut image, &r);
    assert_eq!(part(&image).replicas, vec![1, 2, 3]);
    let r = alter_reassignment(&image, "t", 0, None).unwrap();
    apply(&mut image, &r);
    let p = part(&image);
    assert_eq!((p.replicas, p.leader, p.isr), (vec![2, 3], 2, vec![2, 3]));
    assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
    assert!(matches!(
        alter_reassignment(&image, "t", 0, Some(&[2, 2])),
        Err(ReassignError::InvalidReplicaAssignment(_))
    ));
    assert_eq!(
        alter_reassignment(&image, "t", 5, Some(&[2])),
        Err(ReassignError::UnknownTopicOrPartition)
    );
}

#[test]
fn elections_answer_kafkas_errors() {
    let mut image = image_with(3, &[1, 2]);
    let one = [("t".to_string(), 0)];
    let (r, res) = election::elect_leaders(&image, ElectionType::Preferred, Some(&one));
    assert!(r.is_empty());
    assert_eq!(res[0].error, Some(ElectionError::ElectionNotNeeded));
    // Node 1 fenced: node 2 leads; preferred back only once 1 is in sync.
    let r = logic::fence_broker(&image, 1).unwrap();
    apply(&mut image, &r);
    assert_eq!(part(&image).leader, 2);
    let (_, res) = election::elect_leaders(&image, ElectionType::Preferred, Some(&one));
    assert_eq!(
        res[0].error,
        Some(ElectionError::PreferredLeaderNotAvailable)
    );
    assert_eq!(election::rebalance_leaders(&image, 10), vec![]);
    let r = logic::unfence_broker(&image, 1).unwrap();
    apply(&mut image, &r);
    isr_change(&mut image, &[2, 1]);
    // 1 of 1 preferred partitions not led: 100% > 10%, but not above 100%.
    assert_eq!(election::rebalance_leaders(&image, 100), vec![]);
    let r = election::rebalance_leaders(&image, 10);
    assert_eq!(r.len(), 1);
    apply(&mut image, &r);
    assert_eq!(part(&image).leader, 1);

    // Unclean: the ISR is only node 1, which dies; node 2 takes over.
    isr_change(&mut image, &[1]);
    let r = logic::fence_broker(&image, 1).unwrap();
    apply(&mut image, &r);
    assert_eq!((part(&image).leader, part(&image).isr), (-1, vec![1]));
    let (r, res) = election::elect_leaders(&image, ElectionType::Unclean, Some(&one));
    assert_eq!(res[0].error, None);
    apply(&mut image, &r);
    assert_eq!((part(&image).leader, part(&image).isr), (2, vec![2]));
    let (_, res) = election::elect_leaders(&image, ElectionType::Unclean, None);
    assert!(
        res.is_empty(),
        "all partitions: not-needed ones are left out"
    );
    let r = logic::fence_broker(&image, 2).unwrap();
    apply(&mut image, &r);
    let r = logic::fence_broker(&image, 3).unwrap();
    apply(&mut image, &r);
    let (_, res) = election::elect_leaders(&image, ElectionType::Unclean, Some(&one));
    assert_eq!(
        res[0].error,
        Some(ElectionError::EligibleLeadersNotAvailable)
    );
}
