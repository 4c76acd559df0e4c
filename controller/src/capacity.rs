//! How many partition replicas a node can hold, and the check that refuses
//! creating more (CreateTopics, CreatePartitions) with a clear error instead
//! of partitions a node then fails to open.
//!
//! Every partition a node hosts keeps at least one file open (the active
//! segment's `.log`; indexes are mapped without a descriptor), so a node's
//! open-files limit bounds its partitions. The limit is the node's
//! `max.partitions.per.node` if set, else derived from its open-files limit
//! by [`partitions_for_fd_limit`]. Each broker states its limit when it
//! registers; a broker that states none (an older registration) gets the
//! controller's own node's limit.

use std::collections::BTreeMap;

use crate::image::MetadataImage;
use crate::logic::ControllerError;
use crate::records::MetadataRecord;

/// Descriptors kept for everything but partitions: client and replication
/// connections, the metadata log, checkpoints, the runtime.
pub const RESERVED_FDS: u64 = 1024;

/// Partitions a node with open-files limit `nofile` can host: two thirds of
/// what is left after [`RESERVED_FDS`], leaving room for partitions with
/// more than one segment (1.5 descriptors each on average).
pub fn partitions_for_fd_limit(nofile: u64) -> usize {
    (nofile.saturating_sub(RESERVED_FDS) * 2 / 3).min(usize::MAX as u64) as usize
}

/// Refuse `records` if their new partitions would put some broker over
/// the limit it registered with (else `default_limit`) of partition
/// replicas, counting the replicas `image` already places there. The error
/// names the broker, its count and the limit.
pub fn check_partition_capacity(
    image: &MetadataImage,
    records: &[MetadataRecord],
    default_limit: Option<usize>,
) -> Result<(), ControllerError> {
    let limit_of = |b: i32| {
        image
            .brokers
            .get(&b)
            .and_then(|r| r.max_partitions)
            .map(|m| usize::try_from(m).unwrap_or(usize::MAX))
            .or(default_limit)
    };
    let mut adding: BTreeMap<i32, usize> = BTreeMap::new();
    for r in records {
        if let MetadataRecord::Partition { replicas, .. } = r {
            for b in replicas {
                *adding.entry(*b).or_default() += 1;
            }
        }
    }
    if adding.is_empty() {
        return Ok(());
    }
    let mut hosted: BTreeMap<i32, usize> = BTreeMap::new();
    for t in image.topics.values() {
        for p in t.partitions.values() {
            for b in &p.replicas {
                if adding.contains_key(b) {
                    *hosted.entry(*b).or_default() += 1;
                }
            }
        }
    }
    for (broker, new) in adding {
        let Some(limit) = limit_of(broker) else {
            continue;
        };
        let has = hosted.get(&broker).copied().unwrap_or(0);
        if has + new > limit {
            return Err(ControllerError::PartitionLimit(format!(
                "node {broker} cannot host {new} more partition replicas: it hosts {has} of \
                 at most {limit} (max.partitions.per.node, or what its open-files limit \
                 allows); raise the limit (ulimit -n) or add nodes"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn partition(topic_id: Uuid, partition: i32, replicas: Vec<i32>) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition,
            isr: replicas.clone(),
            leader: replicas[0],
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }

    #[test]
    fn counts_hosted_and_new_replicas_per_broker() {
        let mut image = MetadataImage::default();
        let id = Uuid::new_v4();
        let topic = MetadataRecord::Topic {
            name: "t".into(),
            topic_id: id,
            configs: BTreeMap::new(),
        };
        image.apply(1, &topic).unwrap();
        for p in 0..3 {
            image.apply(2, &partition(id, p, vec![1, 2])).unwrap();
        }
        let new: Vec<_> = (3..5).map(|p| partition(id, p, vec![1, 2])).collect();
        assert!(check_partition_capacity(&image, &new, Some(5)).is_ok());
        assert!(check_partition_capacity(&image, &new, None).is_ok());
        let err = check_partition_capacity(&image, &new, Some(4)).unwrap_err();
        assert!(
            err.to_string().contains("node 1 cannot host 2 more")
                && err.to_string().contains("hosts 3 of at most 4"),
            "{err}"
        );
        assert_eq!(partitions_for_fd_limit(20_000), 12_650);
    }

    /// A broker's own registered limit wins over the controller's default,
    /// so a smaller node is protected in a mixed cluster.
    #[test]
    fn each_broker_is_held_to_the_limit_it_registered() {
        let mut image = MetadataImage::default();
        for (node_id, max_partitions) in [(1, None), (2, Some(3))] {
            let r = &crate::logic::register_broker_with_capacity(
                node_id,
                Uuid::new_v4(),
                Vec::new(),
                None,
                max_partitions,
            )[0];
            image.apply(1, r).unwrap();
        }
        let id = Uuid::new_v4();
        let new: Vec<_> = (0..4).map(|p| partition(id, p, vec![1, 2])).collect();
        let err = check_partition_capacity(&image, &new, None).unwrap_err();
        assert!(
            err.to_string().contains("node 2 cannot host 4 more"),
            "{err}"
        );
        let err = check_partition_capacity(&image, &new, Some(100)).unwrap_err();
        assert!(err.to_string().contains("at most 3"), "{err}");
        let fits: Vec<_> = (0..3).map(|p| partition(id, p, vec![1, 2])).collect();
        assert!(
            check_partition_capacity(&image, &fits, Some(2)).is_err(),
            "node 1: default 2"
        );
        assert!(check_partition_capacity(&image, &fits, None).is_ok());
        assert_eq!(partitions_for_fd_limit(100), 0);
    }
}
