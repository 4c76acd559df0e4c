//! The controller's decisions as pure functions: given the current
//! [`MetadataImage`] and a request (or the passage of time), the records to
//! commit — or the error to answer with. No I/O, no clocks of its own; the
//! quorum shell feeds requests and time in and commits what comes out.
//!
//! Leader election follows Kafka's KRaft rules: a new leader comes from the
//! ISR, preferring replica order, never from outside it unless
//! `unclean.leader.election.enable`; a fenced broker leaves every ISR except
//! when it is the last member, in which case the partition goes leaderless
//! (-1) until a member returns.

use std::collections::{BTreeMap, HashMap};

use rivulet_storage::{validate_topic_name, LogConfig};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::image::{MetadataImage, PartitionRegistration};
use crate::records::{ConfigResource, Listener, MetadataRecord, NO_LEADER};
use crate::throttled_replicas;

/// Producer ids handed to a broker per allocation.
pub const PRODUCER_ID_BLOCK: i64 = 1000;
/// Most partitions one topic may have (a limit like every other).
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// Topic configs that are not storage settings but are still per topic.
const TOPIC_BROKER_KEYS: &[&str] = &["min.insync.replicas", "unclean.leader.election.enable"];

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ControllerError {
    #[error("topic '{0}' already exists")]
    TopicAlreadyExists(String),
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("unknown partition {1} of topic '{0}'")]
    UnknownPartition(String, i32),
    #[error("{0}")]
    InvalidTopicName(String),
    #[error("replication factor {requested} is invalid: {live} live broker(s)")]
    InvalidReplicationFactor { requested: i32, live: usize },
    #[error("invalid partition count {0}")]
    InvalidPartitions(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("broker {0} is not registered")]
    UnknownBroker(i32),
    #[error("broker {0} is not the leader of this partition")]
    NotLeader(i32),
    #[error("leader epoch {got} is stale (current {current})")]
    FencedLeaderEpoch { got: i32, current: i32 },
    #[error("partition epoch {got} does not match {current}")]
    InvalidUpdateVersion { got: i32, current: i32 },
    #[error("replica {0} cannot join the ISR")]
    IneligibleReplica(i32),
    #[error("{0} ACLs in one operation exceed the limit of {max}", max = crate::acl::MAX_ACLS_PER_OP)]
    TooManyAcls(usize),
    /// A manual replica assignment Kafka would refuse (INVALID_REPLICA_ASSIGNMENT).
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// A malformed admin request (INVALID_REQUEST).
    #[error("{0}")]
    InvalidRequest(String),
    /// New partitions a node has no room for (POLICY_VIOLATION).
    #[error("{0}")]
    PartitionLimit(String),
}

/// Validate a topic's config overrides against every known key.
pub fn validate_topic_configs(
    defaults: &LogConfig,
    configs: &BTreeMap<String, String>,
) -> Result<(), ControllerError> {
    let mut log_keys = BTreeMap::new();
    for (k, v) in configs {
        if [
            throttled_replicas::LEADER_KEY,
            throttled_replicas::FOLLOWER_KEY,
        ]
        .contains(&k.as_str())
        {
            throttled_replicas::ThrottledReplicas::parse(v).map_err(|why| {
                ControllerError::InvalidConfig(format!("invalid value for {k}: {why}"))
            })?;
        } else if TOPIC_BROKER_KEYS.contains(&k.as_str()) {
            let ok = match k.as_str() {
                "min.insync.replicas" => v.parse::<i32>().is_ok_and(|n| n >= 1),
                _ => v == "true" || v == "false",
            };
            if !ok {
                return Err(ControllerError::InvalidConfig(format!(
                    "invalid value '{v}' for {k}"
                )));
            }
        } else {
            log_keys.insert(k.clone(), v.clone());
        }
    }
    defaults
        .with_overrides(&log_keys)
        .map(|_| ())
        .map_err(|e| ControllerError::InvalidConfig(e.to_string()))
}

/// The topic's `unclean.leader.election.enable`, else the cluster's
/// dynamic default, else false.
fn unclean_allowed(image: &MetadataImage, topic_id: &Uuid) -> bool {
    const KEY: &str = "unclean.leader.election.enable";
    image
        .topics
        .get(topic_id)
        .and_then(|t| t.configs.get(KEY))
        .or_else(|| image.broker_config(CLUSTER_DEFAULT, KEY))
        .is_some_and(|v| v == "true")
}

/// The broker id under which the cluster-wide dynamic broker configs are
/// kept (Kafka's BROKER resource named "").
pub const CLUSTER_DEFAULT: i32 = -1;

/// Set or delete dynamic broker config keys (`None` deletes) of `broker`
/// ([`CLUSTER_DEFAULT`] for every broker). The broker that took the
/// request checked keys and values (it knows which keys are dynamic); the
/// controller checks the broker is known.
pub fn alter_broker_configs(
    image: &MetadataImage,
    broker: i32,
    changes: &BTreeMap<String, Option<String>>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    if broker != CLUSTER_DEFAULT && !image.brokers.contains_key(&broker) {
        return Err(ControllerError::UnknownBroker(broker));
    }
    Ok(changes
        .iter()
        .map(|(k, v)| MetadataRecord::Config {
            resource: ConfigResource::Broker(broker),
            name: k.clone(),
            value: v.clone(),
        })
        .collect())
}

/// A broker (re)registers: a new incarnation, fenced until its heartbeat.
pub fn register_broker(
    node_id: i32,
    incarnation: Uuid,
    listeners: Vec<Listener>,
    rack: Option<String>,
) -> Vec<MetadataRecord> {
    register_broker_with_capacity(node_id, incarnation, listeners, rack, None)
}

/// [`register_broker`] for a broker that says how many partition replicas
/// it can host (see [`crate::capacity`]).
pub fn register_broker_with_capacity(
    node_id: i32,
    incarnation: Uuid,
    listeners: Vec<Listener>,
    rack: Option<String>,
    max_partitions: Option<u64>,
) -> Vec<MetadataRecord> {
    vec![MetadataRecord::RegisterBroker {
        node_id,
        incarnation,
        listeners,
        rack,
        max_partitions,
    }]
}

/// A valid name no topic has yet.
pub(crate) fn new_topic_name(image: &MetadataImage, name: &str) -> Result<(), ControllerError> {
    validate_topic_name(name).map_err(|e| ControllerError::InvalidTopicName(e.to_string()))?;
    if image.topic(name).is_some() {
        return Err(ControllerError::TopicAlreadyExists(name.to_string()));
    }
    Ok(())
}

/// Create a topic with replicas spread evenly over live brokers; the first
/// replica of each partition leads it.
pub fn create_topic(
    image: &MetadataImage,
    defaults: &LogConfig,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &BTreeMap<String, String>,
    topic_id: Uuid,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    new_topic_name(image, name)?;
    if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
        return Err(ControllerError::InvalidPartitions(format!(
            "{partitions}: must be between 1 and {MAX_PARTITIONS_PER_TOPIC}"
        )));
    }
    let live: Vec<i32> = image.live_brokers().map(|b| b.node_id).collect();
    if replication_factor < 1 || replication_factor as usize > live.len() {
        return Err(ControllerError::InvalidReplicationFactor {
            requested: replication_factor,
            live: live.len(),
        });
    }
    validate_topic_configs(defaults, configs)?;
    let mut records = vec![MetadataRecord::Topic {
        name: name.to_string(),
        topic_id,
        configs: configs.clone(),
    }];
    let start = total_partitions(image);
    for p in 0..partitions {
        let replicas = assign_replicas(&live, start + p as usize, replication_factor as usize);
        records.push(new_partition(topic_id, p, replicas));
    }
    Ok(records)
}

fn total_partitions(image: &MetadataImage) -> usize {
    image.topics.values().map(|t| t.partitions.len()).sum()
}

/// Replicas for the `n`-th partition placed in the cluster: consecutive
/// brokers starting at `n mod brokers`, so leaders rotate.
fn assign_replicas(live: &[i32], n: usize, rf: usize) -> Vec<i32> {
    (0..rf).map(|i| live[(n + i) % live.len()]).collect()
}

fn new_partition(topic_id: Uuid, partition: i32, replicas: Vec<i32>) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition,
        leader: replicas.first().copied().unwrap_or(NO_LEADER),
        isr: replicas.clone(),
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
    }
}

pub fn delete_topic(
    image: &MetadataImage,
    name: &str,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let t = image
        .topic(name)
        .ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
    Ok(vec![MetadataRecord::RemoveTopic { topic_id: t.id }])
}

/// Topic `name` and its partition count, if it may grow to `total`
/// partitions (more than now, at most the limit).
pub(crate) fn growable_topic<'a>(
    image: &'a MetadataImage,
    name: &str,
    total: i32,
) -> Result<(&'a crate::image::TopicImage, i32), ControllerError> {
    let t = image
        .topic(name)
        .ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
    let current = t.partitions.len() as i32;
    if total <= current || total > MAX_PARTITIONS_PER_TOPIC {
        return Err(ControllerError::InvalidPartitions(format!(
            "topic '{name}' has {current} partitions; the new count {total} must be larger (and at most {MAX_PARTITIONS_PER_TOPIC})"
        )));
    }
    Ok((t, current))
}

/// Grow a topic to `total` partitions (Kafka never shrinks).
pub fn create_partitions(
    image: &MetadataImage,
    name: &str,
    total: i32,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let (t, current) = growable_topic(image, name, total)?;
    let rf = t.partitions.values().next().map_or(1, |p| p.replicas.len());
    let live: Vec<i32> = image.live_brokers().map(|b| b.node_id).collect();
    if rf > live.len() {
        return Err(ControllerError::InvalidReplicationFactor {
            requested: rf as i32,
            live: live.len(),
        });
    }
    let start = total_partitions(image);
    Ok((current..total)
        .map(|p| new_partition(t.id, p, assign_replicas(&live, start + p as usize, rf)))
        .collect())
}

/// Set or delete topic config keys (`None` deletes), validated as a whole.
pub fn alter_topic_configs(
    image: &MetadataImage,
    defaults: &LogConfig,
    name: &str,
    changes: &BTreeMap<String, Option<String>>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let t = image
        .topic(name)
        .ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
    let mut merged = t.configs.clone();
    for (k, v) in changes {
        match v {
            Some(v) => merged.insert(k.clone(), v.clone()),
            None => merged.remove(k),
        };
    }
    validate_topic_configs(defaults, &merged)?;
    Ok(changes
        .iter()
        .map(|(k, v)| MetadataRecord::Config {
            resource: ConfigResource::Topic(name.to_string()),
            name: k.clone(),
            value: v.clone(),
        })
        .collect())
}

/// Fence a broker: it leaves every ISR it is in (unless last), and each
/// partition it led gets a new leader from the remaining ISR.
pub fn fence_broker(
    image: &MetadataImage,
    node_id: i32,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let b = image
        .brokers
        .get(&node_id)
        .ok_or(ControllerError::UnknownBroker(node_id))?;
    let mut records = Vec::new();
    if !b.fenced {
        records.push(MetadataRecord::FenceBroker { node_id });
    }
    let is_eligible = |id: i32| id != node_id && image.is_live(id);
    for (topic_id, t) in &image.topics {
        for (pid, p) in &t.partitions {
            if p.leader != node_id && !p.isr.contains(&node_id) {
                continue;
            }
            let mut isr: Vec<i32> = p.isr.iter().copied().filter(|r| *r != node_id).collect();
            if isr.is_empty() {
                isr = p.isr.clone();
            }
            let mut leader = p.leader;
            if p.leader == node_id || p.leader == NO_LEADER {
                leader = choose_leader(p, &isr, &is_eligible, unclean_allowed(image, topic_id));
                if leader != NO_LEADER && !isr.contains(&leader) {
                    isr = vec![leader];
                }
            }
            records.extend(change(*topic_id, *pid, p, leader, isr));
        }
    }
    Ok(records)
}

/// A clean shutdown of the broker's current incarnation: fenced as by
/// [`fence_broker`], and marked so that a heartbeat of the same
/// incarnation (one sent before it asked to leave and applied after) does
/// not unfence it again.
pub fn shut_down_broker(
    image: &MetadataImage,
    node_id: i32,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let mut records = vec![MetadataRecord::ShutDownBroker { node_id }];
    records.extend(
        fence_broker(image, node_id)?
            .into_iter()
            .filter(|r| !matches!(r, MetadataRecord::FenceBroker { .. })),
    );
    Ok(records)
}

/// Unfence a broker after its heartbeat: leaderless partitions whose ISR
/// holds it get it as leader. An incarnation that shut down stays fenced.
pub fn unfence_broker(
    image: &MetadataImage,
    node_id: i32,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let b = image
        .brokers
        .get(&node_id)
        .ok_or(ControllerError::UnknownBroker(node_id))?;
    if !b.fenced || b.shut_down {
        return Ok(Vec::new());
    }
    let mut records = vec![MetadataRecord::UnfenceBroker { node_id }];
    for (topic_id, t) in &image.topics {
        for (pid, p) in &t.partitions {
            if p.leader == NO_LEADER && p.isr.contains(&node_id) {
                records.extend(change(*topic_id, *pid, p, node_id, p.isr.clone()));
            }
        }
    }
    Ok(records)
}

/// Move leadership back to each partition's preferred (first) replica when
/// it is live and in sync (`auto.leader.rebalance.enable`).
pub fn preferred_leader_elections(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for (topic_id, t) in &image.topics {
        for (pid, p) in &t.partitions {
            let Some(&preferred) = p.replicas.first() else {
                continue;
            };
            if p.leader != preferred && image.is_live(preferred) && p.isr.contains(&preferred) {
                records.extend(change(*topic_id, *pid, p, preferred, p.isr.clone()));
            }
        }
    }
    records
}

fn choose_leader(
    p: &PartitionRegistration,
    isr: &[i32],
    eligible: &dyn Fn(i32) -> bool,
    unclean: bool,
) -> i32 {
    p.replicas
        .iter()
        .copied()
        .find(|r| isr.contains(r) && eligible(*r))
        .or_else(|| {
            unclean
                .then(|| p.replicas.iter().copied().find(|r| eligible(*r)))
                .flatten()
        })
        .unwrap_or(NO_LEADER)
}

fn change(
    topic_id: Uuid,
    partition: i32,
    p: &PartitionRegistration,
    leader: i32,
    isr: Vec<i32>,
) -> Option<MetadataRecord> {
    let leader_changed = leader != p.leader;
    let isr_changed = isr != p.isr;
    (leader_changed || isr_changed).then(|| MetadataRecord::PartitionChange {
        topic_id,
        partition,
        leader: leader_changed.then_some(leader),
        isr: isr_changed.then_some(isr),
    })
}

/// AlterPartition: the leader asks to shrink or expand the ISR. Checked
/// against the current leader, leader epoch and partition epoch.
#[allow(clippy::too_many_arguments)]
pub fn alter_partition(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    leader_id: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    new_isr: Vec<i32>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let t = image
        .topic(topic)
        .ok_or_else(|| ControllerError::UnknownTopic(topic.to_string()))?;
    let p = t
        .partitions
        .get(&partition)
        .ok_or_else(|| ControllerError::UnknownPartition(topic.to_string(), partition))?;
    if p.leader != leader_id {
        return Err(ControllerError::NotLeader(leader_id));
    }
    if leader_epoch != p.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch {
            got: leader_epoch,
            current: p.leader_epoch,
        });
    }
    if partition_epoch != p.partition_epoch {
        return Err(ControllerError::InvalidUpdateVersion {
            got: partition_epoch,
            current: p.partition_epoch,
        });
    }
    if !new_isr.contains(&leader_id) {
        return Err(ControllerError::IneligibleReplica(leader_id));
    }
    for r in &new_isr {
        let joining = !p.isr.contains(r);
        if !p.replicas.contains(r) || (joining && !image.is_live(*r)) {
            return Err(ControllerError::IneligibleReplica(*r));
        }
    }
    Ok(change(t.id, partition, p, p.leader, new_isr)
        .into_iter()
        .collect())
}

/// Hand the next block of producer ids to `broker_id`: returns the block's
/// first id and the record that reserves it.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    broker_id: i32,
) -> Result<(i64, MetadataRecord), ControllerError> {
    if !image.brokers.contains_key(&broker_id) {
        return Err(ControllerError::UnknownBroker(broker_id));
    }
    let start = image.next_producer_id;
    Ok((
        start,
        MetadataRecord::ProducerIds {
            broker_id,
            next_producer_id: start + PRODUCER_ID_BLOCK,
        },
    ))
}

/// Broker liveness as the active controller sees it: last heartbeat time per
/// broker and the session timeout. Kept out of the image (it is not
/// replicated: a new controller starts every session afresh).
#[derive(Debug, Clone)]
pub struct BrokerHeartbeats {
    session_timeout_ms: i64,
    last_seen: HashMap<i32, i64>,
}

impl BrokerHeartbeats {
    pub fn new(session_timeout_ms: i64) -> Self {
        BrokerHeartbeats {
            session_timeout_ms,
            last_seen: HashMap::new(),
        }
    }

    pub fn touch(&mut self, node_id: i32, now_ms: i64) {
        self.last_seen.insert(node_id, now_ms);
    }

    pub fn forget(&mut self, node_id: i32) {
        self.last_seen.remove(&node_id);
    }

    /// Start every session afresh (this node became the active controller
    /// again: what it saw before is stale).
    pub fn reset(&mut self) {
        self.last_seen.clear();
    }

    /// Unfenced brokers whose session expired; a broker never seen by this
    /// controller gets a full session from `now` first.
    pub fn expired(&mut self, image: &MetadataImage, now_ms: i64) -> Vec<i32> {
        let mut out = Vec::new();
        for b in image.live_brokers() {
            let seen = *self.last_seen.entry(b.node_id).or_insert(now_ms);
            if now_ms - seen > self.session_timeout_ms {
                out.push(b.node_id);
            }
        }
        out
    }
}
