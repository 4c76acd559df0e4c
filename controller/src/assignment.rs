//! Manual replica assignment on CreateTopics and CreatePartitions
//! (`kafka-topics.sh --replica-assignment 1:2,2:3`), validated as Kafka's
//! `ReplicationControlManager` does: every replica a registered broker, no
//! broker twice in one partition, the same replication factor for every
//! partition (and the topic's own one when partitions are added), the
//! partitions of a new topic numbered 0..n, and at least one live broker in
//! each partition, which becomes its ISR (the live replicas, in assignment
//! order) with the first of them leading.

use std::collections::BTreeMap;

use rivulet_storage::LogConfig;
use uuid::Uuid;

use crate::image::MetadataImage;
use crate::logic::{validate_topic_configs, ControllerError, MAX_PARTITIONS_PER_TOPIC};
use crate::records::{MetadataRecord, NO_LEADER};

fn invalid(msg: String) -> ControllerError {
    ControllerError::InvalidReplicaAssignment(msg)
}

/// Kafka's `validateManualPartitionAssignment`: non-empty, no duplicate,
/// every broker registered, and `rf` replicas when one is already fixed.
pub(crate) fn validate_replicas(
    image: &MetadataImage,
    replicas: &[i32],
    rf: Option<usize>,
) -> Result<(), ControllerError> {
    if replicas.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    for pair in sorted.windows(2) {
        if pair[0] == pair[1] {
            return Err(invalid(format!(
                "The manual partition assignment includes duplicate replica {}.",
                pair[0]
            )));
        }
    }
    for r in &sorted {
        if !image.brokers.contains_key(r) {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {r}, but no such broker is registered."
            )));
        }
    }
    if let Some(rf) = rf {
        if rf != replicas.len() {
            return Err(invalid(format!(
                "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).",
                replicas.len()
            )));
        }
    }
    Ok(())
}

/// The registration record of a manually assigned partition: the ISR is
/// its live replicas, led by the first of them.
fn assigned_partition(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    replicas: &[i32],
) -> Result<MetadataRecord, ControllerError> {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|r| image.is_live(*r))
        .collect();
    let Some(&leader) = isr.first() else {
        return Err(invalid(format!(
            "All brokers specified in the manual partition assignment for partition {partition} are fenced or in controlled shutdown."
        )));
    };
    debug_assert!(leader != NO_LEADER);
    Ok(MetadataRecord::Partition {
        topic_id,
        partition,
        replicas: replicas.to_vec(),
        isr,
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
    })
}

/// Create a topic whose partitions are `assignments` (partition index,
/// replicas), in request order.
pub fn create_topic_assigned(
    image: &MetadataImage,
    defaults: &LogConfig,
    name: &str,
    assignments: &[(i32, Vec<i32>)],
    configs: &BTreeMap<String, String>,
    topic_id: Uuid,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    crate::logic::new_topic_name(image, name)?;
    if assignments.len() > MAX_PARTITIONS_PER_TOPIC as usize {
        return Err(ControllerError::InvalidPartitions(format!(
            "{}: must be between 1 and {MAX_PARTITIONS_PER_TOPIC}",
            assignments.len()
        )));
    }
    let mut parts: BTreeMap<i32, MetadataRecord> = BTreeMap::new();
    let mut rf = None;
    for (index, replicas) in assignments {
        if parts.contains_key(index) {
            return Err(invalid(format!(
                "Found multiple manual partition assignments for partition {index}"
            )));
        }
        validate_replicas(image, replicas, rf)?;
        rf = Some(replicas.len());
        parts.insert(
            *index,
            assigned_partition(image, topic_id, *index, replicas)?,
        );
    }
    if parts.is_empty() {
        return Err(invalid("No partition assignment was given.".into()));
    }
    let contiguous = parts.keys().copied().eq(0..parts.len() as i32);
    if !contiguous {
        return Err(invalid(
            "partitions should be a consecutive 0-based integer sequence".into(),
        ));
    }
    validate_topic_configs(defaults, configs)?;
    let mut records = vec![MetadataRecord::Topic {
        name: name.to_string(),
        topic_id,
        configs: configs.clone(),
    }];
    records.extend(parts.into_values());
    Ok(records)
}

/// Grow topic `name` to `total` partitions placed on `assignments` (one
/// replica list per new partition, in order).
pub fn create_partitions_assigned(
    image: &MetadataImage,
    name: &str,
    total: i32,
    assignments: &[Vec<i32>],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let (t, current) = crate::logic::growable_topic(image, name, total)?;
    let additional = (total - current) as usize;
    if assignments.len() != additional {
        return Err(invalid(format!(
            "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
            assignments.len()
        )));
    }
    let rf = t.partitions.values().next().map(|p| p.replicas.len());
    let mut records = Vec::with_capacity(additional);
    for (i, replicas) in assignments.iter().enumerate() {
        validate_replicas(image, replicas, rf)?;
        records.push(assigned_partition(
            image,
            t.id,
            current + i as i32,
            replicas,
        )?);
    }
    Ok(records)
}
