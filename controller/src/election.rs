//! Leader elections asked for by an operator (ElectLeaders) or by the
//! controller's periodic balance check (`auto.leader.rebalance.enable`).
//!
//! As Kafka's `ReplicationControlManager.electLeader`: a preferred election
//! moves leadership to the first replica when it is live and in the ISR
//! (`ELECTION_NOT_NEEDED` when it already leads,
//! `PREFERRED_LEADER_NOT_AVAILABLE` otherwise); an unclean election is for
//! a leaderless partition only (`ELECTION_NOT_NEEDED` when it has a leader)
//! and takes a live ISR member first, else any live replica, whose log then
//! becomes the partition's (`ELIGIBLE_LEADERS_NOT_AVAILABLE` when no replica
//! is live). The balance check follows the ZooKeeper-era controller: a
//! broker whose share of partitions it prefers but does not lead exceeds
//! `leader.imbalance.per.broker.percentage` gets them back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::image::{MetadataImage, PartitionRegistration};
use crate::records::{MetadataRecord, NO_LEADER};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

/// Why one partition got no new leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionError {
    UnknownTopicOrPartition,
    ElectionNotNeeded,
    PreferredLeaderNotAvailable,
    EligibleLeadersNotAvailable,
}

/// The outcome for one partition: `None` when a leader was elected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionResult {
    pub topic: String,
    pub partition: i32,
    pub error: Option<ElectionError>,
}

/// The partition change electing a leader of `p` by `kind`, or why none.
fn elect_one(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    p: &PartitionRegistration,
    kind: ElectionType,
) -> Result<MetadataRecord, ElectionError> {
    match kind {
        ElectionType::Preferred => {
            let preferred = *p
                .replicas
                .first()
                .ok_or(ElectionError::PreferredLeaderNotAvailable)?;
            if p.leader == preferred {
                return Err(ElectionError::ElectionNotNeeded);
            }
            if !image.is_live(preferred) || !p.isr.contains(&preferred) {
                return Err(ElectionError::PreferredLeaderNotAvailable);
            }
            Ok(MetadataRecord::PartitionChange {
                topic_id,
                partition,
                leader: Some(preferred),
                isr: None,
            })
        }
        ElectionType::Unclean => {
            if p.leader != NO_LEADER {
                return Err(ElectionError::ElectionNotNeeded);
            }
            let live = |r: &&i32| image.is_live(**r);
            if let Some(&leader) = p.replicas.iter().filter(|r| p.isr.contains(r)).find(live) {
                return Ok(MetadataRecord::PartitionChange {
                    topic_id,
                    partition,
                    leader: Some(leader),
                    isr: None,
                });
            }
            let leader = *p
                .replicas
                .iter()
                .find(live)
                .ok_or(ElectionError::EligibleLeadersNotAvailable)?;
            Ok(MetadataRecord::PartitionChange {
                topic_id,
                partition,
                leader: Some(leader),
                isr: Some(vec![leader]),
            })
        }
    }
}

/// ElectLeaders: `partitions` (`None`: every partition, answering only
/// those where an election was needed, as Kafka does).
pub fn elect_leaders(
    image: &MetadataImage,
    kind: ElectionType,
    partitions: Option<&[(String, i32)]>,
) -> (Vec<MetadataRecord>, Vec<ElectionResult>) {
    let mut records = Vec::new();
    let mut results = Vec::new();
    let mut one = |topic: &str, partition: i32, all: bool| {
        let outcome = image
            .topic(topic)
            .and_then(|t| Some((t.id, t.partitions.get(&partition)?)))
            .ok_or(ElectionError::UnknownTopicOrPartition)
            .and_then(|(id, p)| elect_one(image, id, partition, p, kind));
        let error = match outcome {
            Ok(r) => {
                records.push(r);
                None
            }
            Err(ElectionError::ElectionNotNeeded) if all => return,
            Err(e) => Some(e),
        };
        results.push(ElectionResult {
            topic: topic.to_string(),
            partition,
            error,
        });
    };
    match partitions {
        Some(list) => {
            for (topic, partition) in list {
                one(topic, *partition, false);
            }
        }
        None => {
            for t in image.topics.values() {
                for partition in t.partitions.keys() {
                    one(&t.name, *partition, true);
                }
            }
        }
    }
    (records, results)
}

/// The periodic balance check: preferred elections for every broker whose
/// imbalance ratio (partitions it prefers but does not lead, over the
/// partitions it prefers) is above `percentage`; only partitions whose
/// preferred replica is live and in sync move.
pub fn rebalance_leaders(image: &MetadataImage, percentage: u32) -> Vec<MetadataRecord> {
    // preferred broker → (preferred partitions, (topic id, partition) not led by it)
    let mut per_broker: BTreeMap<i32, (usize, Vec<(Uuid, i32)>)> = BTreeMap::new();
    for (topic_id, t) in &image.topics {
        for (pid, p) in &t.partitions {
            let Some(&preferred) = p.replicas.first() else {
                continue;
            };
            let e = per_broker.entry(preferred).or_default();
            e.0 += 1;
            if p.leader != preferred {
                e.1.push((*topic_id, *pid));
            }
        }
    }
    let mut records = Vec::new();
    for (total, not_led) in per_broker.values() {
        if not_led.is_empty() || not_led.len() * 100 <= percentage as usize * total {
            continue;
        }
        for (topic_id, pid) in not_led {
            let Some(p) = image
                .topics
                .get(topic_id)
                .and_then(|t| t.partitions.get(pid))
            else {
                continue;
            };
            if let Ok(r) = elect_one(image, *topic_id, *pid, p, ElectionType::Preferred) {
                records.push(r);
            }
        }
    }
    records
}
