//! Data-path APIs: Produce (WRITE on the topic and on the transactional
//! id), Fetch (READ on the topic; CLUSTER_ACTION for a follower), ListOffsets
//! and OffsetForLeaderEpoch (DESCRIBE), Metadata (DESCRIBE, CREATE for
//! auto-creation, unauthorized topics hidden from an all-topics list),
//! DeleteRecords (DELETE) and DescribeProducers (READ).

use std::collections::HashSet;

use bytes::Bytes;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, TopicResponse};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, DescribeProducersRequest,
    DescribeProducersResponse, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, ProduceRequest, ProduceResponse, RequestKind, ResponseKind,
};
use rivulet_controller::acl::AclOperation::{ClusterAction, Create, Delete, Describe, Read, Write};

use super::{cluster_operations, operations, serve, split, Checked, TOPIC_DENIED, TXN_ID_DENIED};
use crate::authorizer::Authz;
use crate::context::BrokerContext;
use crate::handlers::authorized_operations::{Resource, OMITTED};
use crate::handlers::topic_ids;

pub(super) fn produce(z: &Authz, mut r: ProduceRequest, version: i16) -> Checked {
    let by_id = topic_ids::by_id(false, version);
    let txn_denied = r
        .transactional_id
        .as_ref()
        .filter(|t| !t.is_empty())
        .is_some_and(|t| !z.txn_id(Write, t.as_str()));
    let topics = std::mem::take(&mut r.topic_data);
    let (kept, denied, code) = if txn_denied {
        (Vec::new(), topics, TXN_ID_DENIED)
    } else {
        // An id no topic has is answered UNKNOWN_TOPIC_ID by the handler,
        // before authorization (as Kafka).
        let (k, d) = split(topics, |t| {
            topic_ids::unresolved(by_id, &t.name) || z.topic(Write, t.name.as_str())
        });
        (k, d, TOPIC_DENIED)
    };
    r.topic_data = kept;
    if denied.is_empty() {
        return serve(RequestKind::Produce(r), None);
    }
    let refused: Vec<TopicProduceResponse> = denied
        .iter()
        .map(|t| {
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
                .with_partition_responses(
                    t.partition_data
                        .iter()
                        .map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(code)
                                .with_base_offset(-1)
                                .with_log_append_time_ms(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect(),
                )
        })
        .collect();
    if r.topic_data.is_empty() {
        let resp = (r.acks != 0)
            .then(|| ResponseKind::Produce(ProduceResponse::default().with_responses(refused)));
        return Checked::Respond(resp);
    }
    serve(
        RequestKind::Produce(r),
        Some(Box::new(move |resp| {
            if let ResponseKind::Produce(p) = resp {
                p.responses.extend(refused);
            }
        })),
    )
}

fn fetch_denied(partition: i32) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(TOPIC_DENIED)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica((-1).into())
        .with_records(Some(Bytes::new()))
}

pub(super) fn fetch(z: &Authz, mut r: FetchRequest, version: i16) -> Checked {
    let replica_id = if version >= 15 {
        r.replica_state.replica_id.0
    } else {
        r.replica_id.0
    };
    let by_id = topic_ids::by_id(true, version);
    let topics = std::mem::take(&mut r.topics);
    let (kept, denied) = if replica_id >= 0 {
        // A follower needs CLUSTER_ACTION on the cluster for every partition.
        if z.cluster(ClusterAction) {
            (topics, Vec::new())
        } else {
            (Vec::new(), topics)
        }
    } else {
        split(topics, |t| {
            topic_ids::unresolved(by_id, &t.topic) || z.topic(Read, t.topic.as_str())
        })
    };
    r.topics = kept;
    if denied.is_empty() {
        return serve(RequestKind::Fetch(r), None);
    }
    let refused: Vec<FetchableTopicResponse> = denied
        .iter()
        .map(|t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| fetch_denied(p.partition))
                        .collect(),
                )
        })
        .collect();
    if r.topics.is_empty() && r.session_id == 0 {
        // Nothing to wait for: answer at once, as Kafka does.
        return Checked::Respond(Some(ResponseKind::Fetch(
            FetchResponse::default().with_responses(refused),
        )));
    }
    serve(
        RequestKind::Fetch(r),
        Some(Box::new(move |resp| {
            if let ResponseKind::Fetch(f) = resp {
                if f.error_code == 0 {
                    f.responses.extend(refused);
                }
            }
        })),
    )
}

pub(super) fn list_offsets(z: &Authz, mut r: ListOffsetsRequest) -> Checked {
    let (kept, denied) = split(std::mem::take(&mut r.topics), |t| {
        z.topic(Describe, t.name.as_str())
    });
    r.topics = kept;
    if denied.is_empty() {
        return serve(RequestKind::ListOffsets(r), None);
    }
    let refused: Vec<ListOffsetsTopicResponse> = denied
        .iter()
        .map(|t| {
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(TOPIC_DENIED)
                                .with_timestamp(-1)
                                .with_offset(-1)
                        })
                        .collect(),
                )
        })
        .collect();
    answer_refused!(
        ListOffsets,
        r,
        r.topics,
        refused,
        ListOffsetsResponse.topics
    )
}

pub(super) fn offset_for_leader_epoch(z: &Authz, mut r: OffsetForLeaderEpochRequest) -> Checked {
    let topics = std::mem::take(&mut r.topics);
    let (kept, denied) = if r.replica_id.0 >= 0 {
        if z.cluster(ClusterAction) {
            (topics, Vec::new())
        } else {
            (Vec::new(), topics)
        }
    } else {
        split(topics, |t| z.topic(Describe, t.topic.as_str()))
    };
    r.topics = kept;
    if denied.is_empty() {
        return serve(RequestKind::OffsetForLeaderEpoch(r), None);
    }
    let refused: Vec<OffsetForLeaderTopicResult> = denied
        .iter()
        .map(|t| {
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            EpochEndOffset::default()
                                .with_partition(p.partition)
                                .with_error_code(TOPIC_DENIED)
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        })
                        .collect(),
                )
        })
        .collect();
    answer_refused!(
        OffsetForLeaderEpoch,
        r,
        r.topics,
        refused,
        OffsetForLeaderEpochResponse.topics
    )
}

fn is_internal(topic: &str) -> bool {
    topic == "__consumer_offsets" || topic == "__transaction_state"
}

pub(super) fn metadata(
    b: &BrokerContext,
    z: &Authz,
    mut r: MetadataRequest,
    version: i16,
) -> Checked {
    let image = b.image();
    let named = match &r.topics {
        Some(t) => !(t.is_empty() && version == 0),
        None => false,
    };
    let mut refused: Vec<MetadataResponseTopic> = Vec::new();
    let mut kept_names: HashSet<String> = HashSet::new();
    if named {
        let auto_create =
            (version < 4 || r.allow_auto_topic_creation) && b.config.auto_create_topics;
        let may_create_any = auto_create && z.cluster(Create);
        let topics = r.topics.take().unwrap_or_default();
        let mut kept = Vec::with_capacity(topics.len());
        for t in topics {
            let name = match &t.name {
                Some(n) => Some(n.to_string()),
                None => image.topics.get(&t.topic_id).map(|ti| ti.name.clone()),
            };
            let Some(name) = name else {
                // An unknown topic id: the handler answers UNKNOWN_TOPIC_ID.
                kept.push(t);
                continue;
            };
            let allowed = z.topic(Describe, &name)
                && (image.topic(&name).is_some()
                    || !auto_create
                    || may_create_any
                    || z.topic(Create, &name));
            if allowed {
                kept_names.insert(name);
                kept.push(t);
            } else {
                refused.push(
                    MetadataResponseTopic::default()
                        .with_name(
                            t.name
                                .clone()
                                .or_else(|| Some(crate::handlers::tn(name.clone()))),
                        )
                        .with_topic_id(t.topic_id)
                        .with_is_internal(is_internal(&name))
                        .with_error_code(TOPIC_DENIED)
                        .with_topic_authorized_operations(OMITTED),
                );
            }
        }
        r.topics = Some(kept);
    }
    let topic_ops = r.include_topic_authorized_operations;
    let cluster_ops = r.include_cluster_authorized_operations;
    let z = z.clone();
    serve(
        RequestKind::Metadata(r),
        Some(Box::new(move |resp| {
            let ResponseKind::Metadata(m) = resp else {
                return;
            };
            m.topics.retain(|t| {
                let Some(name) = t.name.as_deref() else {
                    return true;
                };
                if named {
                    // v0 with every named topic refused would list them all.
                    kept_names.contains(name.as_str()) || t.error_code != 0
                } else {
                    z.topic(Describe, name.as_str())
                }
            });
            if topic_ops {
                for t in &mut m.topics {
                    if let (Some(name), 0) = (t.name.as_deref(), t.error_code) {
                        t.topic_authorized_operations = operations(&z, Resource::Topic(name));
                    }
                }
            }
            if cluster_ops {
                m.cluster_authorized_operations = cluster_operations(&z);
            }
            m.topics.extend(refused);
        })),
    )
}

pub(super) fn delete_records(z: &Authz, mut r: DeleteRecordsRequest) -> Checked {
    let (kept, denied) = split(std::mem::take(&mut r.topics), |t| {
        z.topic(Delete, t.name.as_str())
    });
    r.topics = kept;
    if denied.is_empty() {
        return serve(RequestKind::DeleteRecords(r), None);
    }
    let refused: Vec<DeleteRecordsTopicResult> = denied
        .iter()
        .map(|t| {
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index)
                                .with_low_watermark(-1)
                                .with_error_code(TOPIC_DENIED)
                        })
                        .collect(),
                )
        })
        .collect();
    answer_refused!(
        DeleteRecords,
        r,
        r.topics,
        refused,
        DeleteRecordsResponse.topics
    )
}

pub(super) fn describe_producers(z: &Authz, mut r: DescribeProducersRequest) -> Checked {
    let (kept, denied) = split(std::mem::take(&mut r.topics), |t| {
        z.topic(Read, t.name.as_str())
    });
    r.topics = kept;
    if denied.is_empty() {
        return serve(RequestKind::DescribeProducers(r), None);
    }
    let refused: Vec<TopicResponse> = denied
        .iter()
        .map(|t| {
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partition_indexes
                        .iter()
                        .map(|p| {
                            PartitionResponse::default()
                                .with_partition_index(*p)
                                .with_error_code(TOPIC_DENIED)
                        })
                        .collect(),
                )
        })
        .collect();
    answer_refused!(
        DescribeProducers,
        r,
        r.topics,
        refused,
        DescribeProducersResponse.topics
    )
}
