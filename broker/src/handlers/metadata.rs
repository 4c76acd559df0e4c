//! Metadata: live brokers, the controller, the cluster id and, per topic,
//! each partition's leader, leader epoch, replicas, ISR and offline
//! replicas. Unknown topics are created when `auto.create.topics.enable`
//! (Kafka's default) and the client allows it.
//!
//! Authorized operations (v8+: per topic, and for the cluster up to v10,
//! where the field left the schema) are INT32_MIN unless asked for; when
//! asked, those of [`super::authorized_operations`]. As in Kafka, every
//! topic requested by name carries them, an unknown one too; a topic id
//! that is unknown does not.

use std::time::Duration;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::ResponseError as E;
use rivulet_controller::{
    ControllerRequest, ControllerResponse, MetadataImage, TopicImage, NO_LEADER,
};
use rivulet_storage::validate_topic_name;
use uuid::Uuid;

use super::authorized_operations::{self, Resource, OMITTED};
use super::{sb, tn};
use crate::context::BrokerContext;

/// How long a Metadata request waits for a topic it auto-created.
const AUTO_CREATE_WAIT: Duration = Duration::from_secs(5);

enum Wanted {
    Name(String),
    Id(Uuid),
}

/// `listener`: the name of the listener the client connected to; brokers
/// are listed with their addresses on it (Kafka's `MetadataCache.getAliveBrokerNodes(listenerName)`).
pub async fn handle(
    b: &BrokerContext,
    req: MetadataRequest,
    version: i16,
    listener: &str,
) -> MetadataResponse {
    let wanted: Option<Vec<Wanted>> = match &req.topics {
        None => None,
        // v0: an empty list means every topic.
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.iter()
                .map(|t| match &t.name {
                    Some(n) => Wanted::Name(n.to_string()),
                    None => Wanted::Id(t.topic_id),
                })
                .collect(),
        ),
    };
    let allow_create = version < 4 || req.allow_auto_topic_creation;
    // Both flags exist from v8 only (the cluster one up to v10): earlier
    // versions decode them as false.
    let topic_ops = |name: &str| {
        authorized_operations::if_asked(
            req.include_topic_authorized_operations,
            Resource::Topic(name),
        )
    };
    let cluster_ops = authorized_operations::if_asked(
        req.include_cluster_authorized_operations,
        Resource::Cluster,
    );
    let mut image = b.image();
    if let (Some(list), true) = (&wanted, allow_create && b.config.auto_create_topics) {
        let mut created = Vec::new();
        for w in list {
            if let Wanted::Name(name) = w {
                if image.topic(name).is_none()
                    && validate_topic_name(name).is_ok()
                    && auto_create(b, name).await
                {
                    created.push(name.clone());
                }
            }
        }
        for name in &created {
            b.wait_for_topic(name, AUTO_CREATE_WAIT).await;
        }
        if !created.is_empty() {
            image = b.image();
        }
    }

    let me = b.node_id();
    let suspect = &|id: i32| id != me && b.node.suspects.is_suspect(&image, id);
    let topics: Vec<MetadataResponseTopic> = match wanted {
        None => image
            .topics
            .values()
            .map(|t| topic_entry(&image, t, topic_ops(&t.name), suspect))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|w| match w {
                Wanted::Name(name) => match image.topic(&name) {
                    Some(t) => topic_entry(&image, t, topic_ops(&t.name), suspect),
                    None => MetadataResponseTopic::default()
                        .with_name(Some(tn(name.clone())))
                        .with_error_code(if validate_topic_name(&name).is_ok() {
                            E::UnknownTopicOrPartition.code()
                        } else {
                            E::InvalidTopicException.code()
                        })
                        .with_topic_authorized_operations(topic_ops(&name)),
                },
                Wanted::Id(id) => match image.topics.get(&id) {
                    Some(t) => topic_entry(&image, t, topic_ops(&t.name), suspect),
                    None => MetadataResponseTopic::default()
                        .with_topic_id(id)
                        .with_error_code(E::UnknownTopicId.code())
                        .with_topic_authorized_operations(OMITTED),
                },
            })
            .collect(),
    };

    MetadataResponse::default()
        .with_brokers(brokers(b, &image, listener))
        .with_cluster_id(Some(sb(b.cluster_id.clone())))
        .with_controller_id(BrokerId(
            b.node.controller.active_controller().unwrap_or(-1),
        ))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops)
}

/// Ask the controller for a topic with the broker defaults; the replication
/// factor is capped by the live brokers, as a single-node default must work.
async fn auto_create(b: &BrokerContext, name: &str) -> bool {
    let live = b.image().live_brokers().count().max(1) as i32;
    let req = ControllerRequest::CreateTopic {
        name: name.to_string(),
        partitions: b.config.num_partitions,
        replication_factor: b.config.default_replication_factor.min(live),
        configs: Default::default(),
        validate_only: false,
    };
    matches!(
        b.controller_request(req).await,
        ControllerResponse::Ok { .. }
            | ControllerResponse::Error(
                rivulet_controller::logic::ControllerError::TopicAlreadyExists(_)
            )
    )
}

fn brokers(
    b: &BrokerContext,
    image: &MetadataImage,
    listener: &str,
) -> Vec<MetadataResponseBroker> {
    let mut out: Vec<MetadataResponseBroker> = image
        .live_brokers()
        .filter_map(|reg| {
            // A broker without this listener is not reachable through it:
            // left out, as Kafka does.
            let l = reg.listener(listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(reg.node_id))
                    .with_host(sb(l.host.clone()))
                    .with_port(l.port as i32)
                    .with_rack(reg.rack.clone().map(sb)),
            )
        })
        .collect();
    if !out.iter().any(|x| x.node_id.0 == b.node_id()) {
        // Not registered (or fenced) yet: clients still need a bootstrap
        // broker to talk to.
        let (host, port) = b.config.advertised_for(listener);
        out.push(
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id()))
                .with_host(sb(host))
                .with_port(port),
        );
    }
    out
}

/// `suspect`: whether a broker is known here to have died (see
/// [`crate::suspects`]); partitions it leads are answered without a leader.
fn topic_entry(
    image: &MetadataImage,
    t: &TopicImage,
    authorized_operations: i32,
    suspect: &dyn Fn(i32) -> bool,
) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|(pid, p)| {
            let offline: Vec<BrokerId> = p
                .replicas
                .iter()
                .filter(|r| !image.is_live(**r))
                .map(|r| BrokerId(*r))
                .collect();
            let leader = if p.leader != NO_LEADER && suspect(p.leader) {
                NO_LEADER
            } else {
                p.leader
            };
            MetadataResponsePartition::default()
                .with_error_code(if leader == NO_LEADER {
                    E::LeaderNotAvailable.code()
                } else {
                    0
                })
                .with_partition_index(*pid)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
                .with_offline_replicas(offline)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(tn(t.name.clone())))
        .with_topic_id(t.id)
        .with_is_internal(t.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(authorized_operations)
}
