//! Partition reassignment (AlterPartitionReassignments /
//! ListPartitionReassignments), in Kafka's model (KIP-455,
//! `PartitionReassignmentReplicas`): moving from replicas `R` to target
//! `T`, the partition's replicas are the union `T ++ (R \ T)`, with
//! `adding = T \ R` and `removing = R \ T` recorded beside them. The new
//! replicas fetch like any follower (the broker creates their logs when
//! the image lists them) and join the ISR once caught up; when every
//! target replica is in the ISR the reassignment completes: the replicas
//! become `T`, the ISR loses the removed ones, and leadership moves to the
//! first target replica in the ISR if the leader was being removed.
//! Cancelling (null replicas) reverts to `R`.

use crate::assignment::validate_replicas;
use crate::image::{MetadataImage, PartitionRegistration};
use crate::logic::ControllerError;
use crate::records::{MetadataRecord, NO_LEADER};

/// Why one partition's reassignment was refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReassignError {
    UnknownTopicOrPartition,
    NoReassignmentInProgress,
    InvalidReplicaAssignment(String),
}

/// The original replicas of a partition under reassignment (its replicas
/// minus the adding ones, in order).
pub fn original_replicas(p: &PartitionRegistration) -> Vec<i32> {
    p.replicas
        .iter()
        .copied()
        .filter(|r| !p.adding_replicas.contains(r))
        .collect()
}

/// The target replicas (its replicas minus the removing ones).
pub fn target_replicas(p: &PartitionRegistration) -> Vec<i32> {
    p.replicas
        .iter()
        .copied()
        .filter(|r| !p.removing_replicas.contains(r))
        .collect()
}

/// The record that puts `p` at `replicas` (with `adding`/`removing`),
/// with the ISR cut to them and a leader among them; `None` if nothing
/// would change.
fn set_replicas(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    partition: i32,
    p: &PartitionRegistration,
    replicas: Vec<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
) -> Option<MetadataRecord> {
    let mut isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| replicas.contains(r))
        .collect();
    let mut leader = p.leader;
    if !replicas.contains(&leader) {
        leader = replicas
            .iter()
            .copied()
            .find(|r| isr.contains(r) && image.is_live(*r))
            .unwrap_or(NO_LEADER);
    }
    if isr.is_empty() {
        // Never an empty ISR: keep the old one (the partition is offline
        // until one of it returns), as Kafka keeps the last member.
        isr = p.isr.clone();
    }
    let unchanged = replicas == p.replicas
        && adding == p.adding_replicas
        && removing == p.removing_replicas
        && isr == p.isr
        && leader == p.leader;
    (!unchanged).then(|| MetadataRecord::PartitionReassignment {
        topic_id,
        partition,
        replicas,
        adding,
        removing,
        leader: (leader != p.leader).then_some(leader),
        isr: (isr != p.isr).then_some(isr),
    })
}

/// Complete `p`'s reassignment if every target replica is in `isr` (the
/// ISR after the change being decided): the record, or `None`.
pub fn complete_if_caught_up(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    partition: i32,
    p: &PartitionRegistration,
    isr: &[i32],
) -> Option<MetadataRecord> {
    if p.adding_replicas.is_empty() && p.removing_replicas.is_empty() {
        return None;
    }
    let target = target_replicas(p);
    if !target.iter().all(|r| isr.contains(r)) {
        return None;
    }
    let mut now = p.clone();
    now.isr = isr.to_vec();
    set_replicas(image, topic_id, partition, &now, target, vec![], vec![])
}

/// One partition of AlterPartitionReassignments: `target` replicas, or
/// `None` to cancel. The records to commit (possibly none).
pub fn alter_reassignment(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
) -> Result<Vec<MetadataRecord>, ReassignError> {
    let t = image
        .topic(topic)
        .ok_or(ReassignError::UnknownTopicOrPartition)?;
    let p = t
        .partitions
        .get(&partition)
        .ok_or(ReassignError::UnknownTopicOrPartition)?;
    let ongoing = !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty();
    let original = original_replicas(p);
    let Some(target) = target else {
        if !ongoing {
            return Err(ReassignError::NoReassignmentInProgress);
        }
        return Ok(
            set_replicas(image, t.id, partition, p, original, vec![], vec![])
                .into_iter()
                .collect(),
        );
    };
    validate_replicas(image, target, None).map_err(|e| match e {
        ControllerError::InvalidReplicaAssignment(m) => ReassignError::InvalidReplicaAssignment(m),
        other => ReassignError::InvalidReplicaAssignment(other.to_string()),
    })?;
    let mut replicas = target.to_vec();
    replicas.extend(original.iter().copied().filter(|r| !target.contains(r)));
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    let removing: Vec<i32> = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let mut planned = p.clone();
    planned.replicas = replicas.clone();
    planned.adding_replicas = adding.clone();
    planned.removing_replicas = removing.clone();
    // Already in sync (a reorder, a shrink): complete at once.
    if let Some(done) = complete_if_caught_up(image, t.id, partition, &planned, &p.isr) {
        return Ok(vec![done]);
    }
    if adding.is_empty() && removing.is_empty() {
        // The target is the current set in the same order.
        return Ok(
            set_replicas(image, t.id, partition, p, replicas, vec![], vec![])
                .into_iter()
                .collect(),
        );
    }
    Ok(
        set_replicas(image, t.id, partition, p, replicas, adding, removing)
            .into_iter()
            .collect(),
    )
}

/// A partition under reassignment, as ListPartitionReassignments lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ongoing {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// Every ongoing reassignment, by topic name and partition.
pub fn ongoing(image: &MetadataImage) -> Vec<Ongoing> {
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (pid, p) in &t.partitions {
            if !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty() {
                out.push(Ongoing {
                    topic: t.name.clone(),
                    partition: *pid,
                    replicas: p.replicas.clone(),
                    adding: p.adding_replicas.clone(),
                    removing: p.removing_replicas.clone(),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    out
}

#[cfg(test)]
mod tests;
