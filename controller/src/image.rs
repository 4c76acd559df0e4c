//! `MetadataImage`: the cluster metadata as of some offset of the metadata
//! log, built by applying [`MetadataRecord`]s in order. Applying is
//! deterministic — the same records give the same image on every node — and
//! total: a record that does not fit the image (a change to an unknown
//! partition, say) is reported and leaves the image unchanged.
//!
//! Each topic sits behind an `Arc`: the image is cloned for every published
//! version, which copies only the topic map's pointers, and a record that
//! changes one topic copies that topic alone (`Arc::make_mut`) — with
//! thousands of partitions a change no longer copies all of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::records::{ConfigResource, Listener, MetadataRecord, NO_LEADER};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApplyError {
    #[error("record refers to unknown broker {0}")]
    UnknownBroker(i32),
    #[error("record refers to unknown topic id {0}")]
    UnknownTopic(Uuid),
    #[error("record refers to unknown partition {1} of topic id {0}")]
    UnknownPartition(Uuid, i32),
    #[error("topic {0} already exists with another id")]
    DuplicateTopic(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub node_id: i32,
    pub incarnation: Uuid,
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// Partition replicas it can host, as it registered (see
    /// [`crate::capacity`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_partitions: Option<u64>,
    /// This incarnation shut down cleanly (see
    /// [`MetadataRecord::ShutDownBroker`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shut_down: bool,
}

impl BrokerRegistration {
    /// The endpoint of the listener named `name` (Kafka's listener names:
    /// `PLAINTEXT`, `SSL`, custom ones), if the broker has one.
    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRegistration {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Replicas a reassignment is adding (part of `replicas`).
    #[serde(default)]
    pub adding_replicas: Vec<i32>,
    /// Replicas a reassignment is removing (part of `replicas`).
    #[serde(default)]
    pub removing_replicas: Vec<i32>,
}

impl PartitionRegistration {
    pub fn has_leader(&self) -> bool {
        self.leader != NO_LEADER
    }

    /// A recorded change: the leader (a new one bumps the leader epoch)
    /// and the ISR when given; the partition epoch always moves.
    fn change(&mut self, leader: Option<i32>, isr: Option<&Vec<i32>>) {
        if let Some(l) = leader {
            if l != self.leader {
                self.leader = l;
                self.leader_epoch += 1;
            }
        }
        if let Some(isr) = isr {
            self.isr = isr.clone();
        }
        self.partition_epoch += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Index of the last record applied (0 before any).
    pub offset: u64,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    #[serde(with = "shared_topics")]
    pub topics: BTreeMap<Uuid, Arc<TopicImage>>,
    pub topic_ids: BTreeMap<String, Uuid>,
    pub broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// First producer id not yet handed out.
    pub next_producer_id: i64,
    /// Every ACL, indexed for the authorizer.
    #[serde(default)]
    pub acls: crate::acl::AclStore,
    /// SCRAM credentials by mechanism name, then user name.
    #[serde(default)]
    pub scram: BTreeMap<String, BTreeMap<String, crate::scram::ScramCredentialData>>,
    /// Client quotas by entity ([`crate::client_quotas`]).
    #[serde(default)]
    pub client_quotas: crate::client_quotas::ClientQuotaStore,
}

impl MetadataImage {
    /// A dynamic broker config of `broker` (-1: the cluster-wide default).
    pub fn broker_config(&self, broker: i32, key: &str) -> Option<&String> {
        self.broker_configs.get(&broker)?.get(key)
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids
            .get(name)
            .and_then(|id| self.topics.get(id))
            .map(|t| &**t)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionRegistration> {
        self.topic(topic)?.partitions.get(&partition)
    }

    /// Brokers that are registered and not fenced, by id.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    pub fn is_live(&self, node_id: i32) -> bool {
        self.brokers.get(&node_id).is_some_and(|b| !b.fenced)
    }

    /// Apply one record at log index `offset`.
    pub fn apply(&mut self, offset: u64, record: &MetadataRecord) -> Result<(), ApplyError> {
        self.offset = self.offset.max(offset);
        match record {
            MetadataRecord::RegisterBroker {
                node_id,
                incarnation,
                listeners,
                rack,
                max_partitions,
            } => {
                self.brokers.insert(
                    *node_id,
                    BrokerRegistration {
                        node_id: *node_id,
                        incarnation: *incarnation,
                        listeners: listeners.clone(),
                        rack: rack.clone(),
                        fenced: true,
                        max_partitions: *max_partitions,
                        shut_down: false,
                    },
                );
            }
            MetadataRecord::FenceBroker { node_id } => self.set_fenced(*node_id, true)?,
            MetadataRecord::UnfenceBroker { node_id } => self.set_fenced(*node_id, false)?,
            MetadataRecord::ShutDownBroker { node_id } => {
                self.set_fenced(*node_id, true)?;
                if let Some(b) = self.brokers.get_mut(node_id) {
                    b.shut_down = true;
                }
            }
            MetadataRecord::Topic {
                name,
                topic_id,
                configs,
            } => {
                if let Some(existing) = self.topic_ids.get(name) {
                    if existing != topic_id {
                        return Err(ApplyError::DuplicateTopic(name.clone()));
                    }
                }
                self.topic_ids.insert(name.clone(), *topic_id);
                self.topics.insert(
                    *topic_id,
                    Arc::new(TopicImage {
                        name: name.clone(),
                        id: *topic_id,
                        partitions: BTreeMap::new(),
                        configs: configs.clone(),
                    }),
                );
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let t = self
                    .topics
                    .remove(topic_id)
                    .ok_or(ApplyError::UnknownTopic(*topic_id))?;
                self.topic_ids.remove(&t.name);
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                let t = self
                    .topics
                    .get_mut(topic_id)
                    .map(Arc::make_mut)
                    .ok_or(ApplyError::UnknownTopic(*topic_id))?;
                t.partitions.insert(
                    *partition,
                    PartitionRegistration {
                        replicas: replicas.clone(),
                        isr: isr.clone(),
                        leader: *leader,
                        leader_epoch: *leader_epoch,
                        partition_epoch: *partition_epoch,
                        adding_replicas: Vec::new(),
                        removing_replicas: Vec::new(),
                    },
                );
            }
            MetadataRecord::PartitionReassignment {
                topic_id,
                partition,
                replicas,
                adding,
                removing,
                leader,
                isr,
            } => {
                let p = self.partition_mut(topic_id, *partition)?;
                p.replicas = replicas.clone();
                p.adding_replicas = adding.clone();
                p.removing_replicas = removing.clone();
                p.change(*leader, isr.as_ref());
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                leader,
                isr,
            } => self
                .partition_mut(topic_id, *partition)?
                .change(*leader, isr.as_ref()),
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                let map = match resource {
                    ConfigResource::Topic(topic) => {
                        let id = self
                            .topic_ids
                            .get(topic)
                            .copied()
                            .ok_or(ApplyError::UnknownTopic(Uuid::nil()))?;
                        match self.topics.get_mut(&id).map(Arc::make_mut) {
                            Some(t) => &mut t.configs,
                            None => return Err(ApplyError::UnknownTopic(id)),
                        }
                    }
                    ConfigResource::Broker(id) => self.broker_configs.entry(*id).or_default(),
                };
                match value {
                    Some(v) => map.insert(name.clone(), v.clone()),
                    None => map.remove(name),
                };
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
            MetadataRecord::Acl { id, acl } => self.acls.insert(*id, acl.clone()),
            MetadataRecord::RemoveAcl { id } => {
                // Removing an unknown id is a no-op, as in Kafka's AclControlManager replay.
                self.acls.remove(id);
            }
            MetadataRecord::UserScramCredential {
                name,
                mechanism,
                credential,
            } => {
                self.scram
                    .entry(mechanism.clone())
                    .or_default()
                    .insert(name.clone(), credential.clone());
            }
            MetadataRecord::ClientQuota { entity, key, value } => {
                crate::client_quotas::apply(&mut self.client_quotas, entity, key, *value);
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                if let Some(users) = self.scram.get_mut(mechanism) {
                    users.remove(name);
                    if users.is_empty() {
                        self.scram.remove(mechanism);
                    }
                }
            }
        }
        Ok(())
    }

    fn partition_mut(
        &mut self,
        topic_id: &Uuid,
        partition: i32,
    ) -> Result<&mut PartitionRegistration, ApplyError> {
        self.topics
            .get_mut(topic_id)
            .map(Arc::make_mut)
            .ok_or(ApplyError::UnknownTopic(*topic_id))?
            .partitions
            .get_mut(&partition)
            .ok_or(ApplyError::UnknownPartition(*topic_id, partition))
    }

    fn set_fenced(&mut self, node_id: i32, fenced: bool) -> Result<(), ApplyError> {
        let b = self
            .brokers
            .get_mut(&node_id)
            .ok_or(ApplyError::UnknownBroker(node_id))?;
        b.fenced = fenced;
        Ok(())
    }
}

/// Serde for the topic map: the topics themselves, as before they were
/// shared (snapshots keep their format).
mod shared_topics {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use uuid::Uuid;

    use super::TopicImage;

    pub fn serialize<S: Serializer>(
        topics: &BTreeMap<Uuid, Arc<TopicImage>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let plain: BTreeMap<&Uuid, &TopicImage> = topics.iter().map(|(k, v)| (k, &**v)).collect();
        plain.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Uuid, Arc<TopicImage>>, D::Error> {
        let plain = BTreeMap::<Uuid, TopicImage>::deserialize(d)?;
        Ok(plain.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}
