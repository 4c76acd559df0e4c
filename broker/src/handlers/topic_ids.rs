//! KIP-516: Produce v13+ and Fetch v13+ address topics by id instead of by
//! name. [`resolve`] fills in each topic's name from the metadata image
//! before the request is authorized and served, so the ACL checks and the
//! handlers keep working on names; an id the image does not know keeps an
//! empty name and is answered UNKNOWN_TOPIC_ID per partition (before
//! authorization, as Kafka's `KafkaApis` does). Responses carry both the
//! name and the id: the encoder writes the one the version has.
//!
//! A known id whose local replica belongs to another incarnation of the
//! topic (deleted and re-created under the same name, not yet caught up
//! here) is answered INCONSISTENT_TOPIC_ID, as Kafka's replica manager does.

use kafka_protocol::messages::RequestKind;
use kafka_protocol::ResponseError as E;
use rivulet_storage::TopicPartition;
use uuid::Uuid;

use super::tn;
use crate::context::BrokerContext;

/// The first Produce version that names topics by id (Kafka 4.1).
pub const PRODUCE_FROM: i16 = 13;
/// The first Fetch version that names topics by id.
pub const FETCH_FROM: i16 = 13;

/// Fill in the name of every topic a Produce or Fetch request at `version`
/// addresses by id, from the broker's metadata image; unknown ids keep an
/// empty name.
pub fn resolve(b: &BrokerContext, request: &mut RequestKind, version: i16) {
    let by_id = match request {
        RequestKind::Produce(_) => by_id(false, version),
        RequestKind::Fetch(_) => by_id(true, version),
        _ => false,
    };
    if !by_id {
        return;
    }
    let image = b.image();
    let name_of = |id: &Uuid| image.topics.get(id).map(|t| tn(t.name.clone()));
    match request {
        RequestKind::Produce(r) => {
            for t in &mut r.topic_data {
                if let Some(name) = name_of(&t.topic_id) {
                    t.name = name;
                }
            }
        }
        RequestKind::Fetch(r) => {
            for t in &mut r.topics {
                if let Some(name) = name_of(&t.topic_id) {
                    t.topic = name;
                }
            }
            for t in &mut r.forgotten_topics_data {
                if let Some(name) = name_of(&t.topic_id) {
                    t.topic = name;
                }
            }
        }
        _ => {}
    }
}

/// Whether `version` of Produce (`fetch` false) or Fetch names topics by id.
pub fn by_id(fetch: bool, version: i16) -> bool {
    version >= if fetch { FETCH_FROM } else { PRODUCE_FROM }
}

/// Whether a topic entry of a request that names topics by id (`by_id`)
/// was left without a name by [`resolve`]: its id (nil included, as in
/// Kafka) is no topic's. No topic has an empty name.
pub fn unresolved(by_id: bool, name: &str) -> bool {
    by_id && name.is_empty()
}

/// The error of partition `tp` of a request that names topics by id
/// (`by_id`; `id` is the request's): UNKNOWN_TOPIC_ID when [`resolve`]
/// found no such topic, INCONSISTENT_TOPIC_ID when the local replica is
/// another incarnation of the topic.
pub fn partition_error(
    b: &BrokerContext,
    tp: &TopicPartition,
    id: &Uuid,
    by_id: bool,
) -> Option<i16> {
    if !by_id {
        return None;
    }
    if tp.topic.is_empty() {
        return Some(E::UnknownTopicId.code());
    }
    let local = b.replicas.get(tp)?;
    (local.topic_id != *id).then(|| E::InconsistentTopicId.code())
}
