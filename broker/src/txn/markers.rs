//! Transaction markers (Kafka's `TransactionMarkerChannelManager` and the
//! receiving side of WriteTxnMarkers): once a transaction is decided, a
//! COMMIT or ABORT control batch is written to every partition it touched,
//! by the partition's leader. Partitions this node leads are written
//! locally; the others get a WriteTxnMarkers (v1) request from this node to
//! their leader. Delivery is retried (new leaders, unavailable ISRs) until
//! every partition has its marker, the partition is gone, or this node is
//! no longer the coordinator (the next coordinator sends them again:
//! markers are idempotent for readers, a second marker of a transaction
//! finds nothing open to end).
//!
//! A marker in a `__consumer_offsets` partition also settles the
//! transaction's pending offsets in the group coordinator.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::ResponseError as E;
use rivulet_protocol::control::{build_control_batch, ControlType};
use rivulet_storage::TopicPartition;
use tracing::debug;

use super::links::BrokerLinks;
use super::metadata::{TxnPartition, TxnResult};
use crate::group::coordinator::GroupCoordinator;
use crate::group::offsets::OFFSETS_TOPIC;
use crate::local_node::LocalNode;
use crate::replica_manager::AppendOrigin;

/// How long a marker append waits for its ISR.
const MARKER_APPEND_TIMEOUT_MS: i32 = 10_000;
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

pub struct MarkerSender {
    node: LocalNode,
    groups: Arc<GroupCoordinator>,
    links: Arc<BrokerLinks>,
}

impl MarkerSender {
    pub fn new(node: LocalNode, groups: Arc<GroupCoordinator>, links: Arc<BrokerLinks>) -> Self {
        MarkerSender {
            node,
            groups,
            links,
        }
    }

    /// Write the markers of one transaction to every partition of it.
    /// `true` once all are written (or their partitions are gone); `false`
    /// when `still_coordinator` turned false first.
    pub async fn write_all(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        result: TxnResult,
        partitions: &BTreeSet<TxnPartition>,
        still_coordinator: impl Fn() -> bool,
    ) -> bool {
        let mut remaining = partitions.clone();
        let mut backoff = RETRY_BACKOFF_MIN;
        loop {
            if remaining.is_empty() {
                return true;
            }
            if !still_coordinator() {
                return false;
            }
            let image = self.node.image();
            let mut by_leader: BTreeMap<i32, Vec<TxnPartition>> = BTreeMap::new();
            for (topic, p) in remaining.clone() {
                match image.partition(&topic, p) {
                    // Deleted with its topic: nothing left to mark.
                    None => {
                        remaining.remove(&(topic, p));
                    }
                    Some(reg) if reg.leader < 0 => {}
                    Some(reg) => by_leader.entry(reg.leader).or_default().push((topic, p)),
                }
            }
            // Every leader at once, and this node's partitions at once: a
            // transaction's markers cost one acks=all round, not one per
            // partition.
            let writes = by_leader.into_iter().map(|(leader, tps)| async move {
                let codes = if leader == self.node.node_id() {
                    join_all(tps.iter().map(|(topic, p)| async move {
                        let tp = TopicPartition::new(topic.clone(), *p);
                        write_local(
                            &self.node,
                            &self.groups,
                            &tp,
                            producer_id,
                            producer_epoch,
                            coordinator_epoch,
                            result,
                        )
                        .await
                    }))
                    .await
                } else {
                    self.write_remote(
                        leader,
                        producer_id,
                        producer_epoch,
                        coordinator_epoch,
                        result,
                        &tps,
                    )
                    .await
                };
                (tps, codes)
            });
            for (tps, codes) in join_all(writes).await {
                for (tp, code) in tps.into_iter().zip(codes) {
                    if code == 0 {
                        remaining.remove(&tp);
                    } else {
                        debug!(topic = %tp.0, partition = tp.1, code, "marker not written yet");
                    }
                }
            }
            if !remaining.is_empty() {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
        }
    }

    /// One WriteTxnMarkers request to `leader`; a code per partition.
    async fn write_remote(
        &self,
        leader: i32,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        result: TxnResult,
        tps: &[TxnPartition],
    ) -> Vec<i16> {
        let unavailable = vec![E::CoordinatorNotAvailable.code(); tps.len()];
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in tps {
            topics.entry(t.as_str()).or_default().push(*p);
        }
        let marker = WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_transaction_result(result == TxnResult::Commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(t.to_string().into()))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            );
        let req = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
        let Some(resp) = self.links.round_trip(leader, 1, &req).await else {
            return unavailable;
        };
        let mut codes: HashMap<(String, i32), i16> = HashMap::new();
        for m in resp.markers {
            for t in m.topics {
                for p in t.partitions {
                    codes.insert((t.name.0.to_string(), p.partition_index), p.error_code);
                }
            }
        }
        tps.iter()
            .map(|tp| {
                codes
                    .get(tp)
                    .copied()
                    .unwrap_or(E::UnknownServerError.code())
            })
            .collect()
    }
}

/// Append one marker to a partition this node leads (acks=all), then, for
/// `__consumer_offsets`, settle the transaction's pending offsets.
pub async fn write_local(
    node: &LocalNode,
    groups: &GroupCoordinator,
    tp: &TopicPartition,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    result: TxnResult,
) -> i16 {
    let kind = match result {
        TxnResult::Commit => ControlType::Commit,
        TxnResult::Abort => ControlType::Abort,
    };
    let batch = build_control_batch(
        producer_id,
        producer_epoch,
        kind,
        coordinator_epoch,
        super::coordinator::now_ms(),
    );
    let r = node
        .replicas
        .append_with_origin(
            tp,
            Some(batch.into()),
            -1,
            MARKER_APPEND_TIMEOUT_MS,
            AppendOrigin::Coordinator,
        )
        .await;
    if r.error_code == 0 && tp.topic == OFFSETS_TOPIC {
        groups
            .complete_txn(tp.partition, producer_id, result == TxnResult::Commit)
            .await;
    }
    r.error_code
}
