//! Follower replication and ISR upkeep: the tasks and the wire around the
//! replication state machine ([`crate::replication::PartitionReplica`]),
//! whose decisions `ReplicaManager` carries out on the logs.
//!
//! [`run_fetchers`] keeps one fetcher task per source leader broker, each
//! multiplexing every partition this node follows from that leader in one
//! Kafka `Fetch` v12 (replica id = this node) to the leader's advertised
//! listener. Each partition's fetch position comes from its state machine
//! ([`ReplicaManager::fetch_request`](crate::replica_manager::ReplicaManager::fetch_request)),
//! and each partition of the response goes back to it
//! ([`ReplicaManager::apply_fetched`](crate::replica_manager::ReplicaManager::apply_fetched)):
//! truncate on a `diverging_epoch` (KIP-595), append the batches unchanged,
//! high watermark `min(local log end, leader high watermark)`. Errors back
//! off; the set of partitions follows the local replica state, which
//! follows the metadata image.
//!
//! [`maintain_isr`] runs on every node and, for the partitions it leads,
//! sends the controller the ISR changes their state machines propose
//! (`AlterPartition`, checked against the leader and partition epochs:
//! followers lagging longer than `replica.lag.time.max.ms` leave, followers
//! that caught up join) and reports the answers back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use rivulet_controller::{ControllerRequest, ControllerResponse};
use rivulet_protocol::tls::Stream;
use rivulet_protocol::wire::{Client, WireError};
use rivulet_storage::TopicPartition;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::local_node::LocalNode;
use crate::replica_manager::FollowerDurable;
use crate::replication::{AlterPartitionAnswer, FetchedPartition};

/// The Fetch version followers speak (topic names, `last_fetched_epoch`,
/// `diverging_epoch`; replica id in the top-level field).
pub const FETCH_VERSION: i16 = 12;
/// How long a follower fetch waits at the leader for new data.
const FETCH_MAX_WAIT_MS: i32 = 500;
/// The tagged field (Fetch v12+, per partition) in which a Rivulet follower
/// tells the leader how far its log is on disk: 8 bytes, a big-endian
/// offset. Kafka brokers skip unknown tagged fields.
pub const DURABLE_OFFSET_TAG: i32 = 0x5256;
/// Most bytes per partition and per response of one follower fetch.
const FETCH_PARTITION_MAX_BYTES: i32 = 1024 * 1024;
const FETCH_MAX_BYTES: i32 = 16 * 1024 * 1024;
/// Pause after a failed fetch (connection refused, leader not ready),
/// doubling on each further failure up to `BACKOFF_MAX` (Kafka's
/// `replica.fetch.backoff.ms` is 1 s).
const BACKOFF: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Doubling pause between failed fetches; a good fetch resets it.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(BACKOFF)
    }

    fn reset(&mut self) {
        self.0 = BACKOFF;
    }

    /// The pause to take now; the next one is twice as long.
    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        now
    }
}
/// How long one fetch may take, request to end of response: the leader's
/// long poll plus time to send up to `FETCH_MAX_BYTES`.
const FETCH_TIMEOUT: Duration = Duration::from_millis(FETCH_MAX_WAIT_MS as u64 + 10_000);
/// Pause while every partition to fetch is throttled and the follower
/// quota is spent.
const THROTTLE_PAUSE: Duration = Duration::from_millis(100);
/// How often the set of followed partitions is re-read from local state.
const ASSIGNMENT_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Error)]
pub enum FetcherError {
    #[error("leader {0} has no inter-broker listener in the metadata image")]
    NoListener(i32),
    #[error("i/o with the leader: {0}")]
    Io(#[from] std::io::Error),
    #[error("no connection within {0:?}")]
    Timeout(Duration),
    /// Framing, bounds, decoding, correlation or a response over
    /// `socket.request.max.bytes`: what `rivulet_protocol::wire` refuses.
    #[error("fetch from the leader: {0}")]
    Wire(#[from] WireError),
}

impl FetcherError {
    /// Whether the leader's port refused the connection.
    pub fn is_refused(&self) -> bool {
        matches!(self, FetcherError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
    }
}

/// What the fetchers need besides the node: limits from the broker config.
#[derive(Debug, Clone, Copy)]
pub struct FetcherConfig {
    /// Largest response accepted (`socket.request.max.bytes`).
    pub max_response_bytes: usize,
}

/// A follower fsync under way: its outcome and when it finished
/// ([`FollowerDurable::wait_timed`]).
type Fsync = JoinHandle<(Result<(), i16>, Instant)>;

/// A task aborted when its handle is dropped (also when `run_fetchers` is
/// itself aborted at shutdown).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keep one fetcher per leader this node follows partitions from, until
/// `stop`.
pub async fn run_fetchers(node: LocalNode, config: FetcherConfig, mut stop: watch::Receiver<bool>) {
    type Fetcher = (watch::Sender<Vec<TopicPartition>>, AbortOnDrop);
    let mut fetchers: HashMap<i32, Fetcher> = HashMap::new();
    loop {
        let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        for p in node.replicas.all() {
            if let Some(leader) = p.following() {
                by_leader.entry(leader).or_default().push(p.tp.clone());
            }
        }
        for tps in by_leader.values_mut() {
            tps.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        }
        fetchers
            .retain(|leader, (_, task)| by_leader.contains_key(leader) && !task.0.is_finished());
        for (leader, tps) in by_leader {
            match fetchers.get(&leader) {
                Some((tx, _)) => {
                    tx.send_if_modified(|cur| {
                        let changed = *cur != tps;
                        if changed {
                            *cur = tps.clone();
                        }
                        changed
                    });
                }
                None => {
                    info!(leader, partitions = tps.len(), "starting replica fetcher");
                    let (tx, rx) = watch::channel(tps);
                    let task = tokio::spawn(fetch_from(node.clone(), config, leader, rx));
                    fetchers.insert(leader, (tx, AbortOnDrop(task)));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(ASSIGNMENT_POLL) => {}
            _ = stop.changed() => break,
        }
    }
    drop(fetchers);
}

/// The fetcher for partitions led by `leader`.
async fn fetch_from(
    node: LocalNode,
    config: FetcherConfig,
    leader: i32,
    partitions: watch::Receiver<Vec<TopicPartition>>,
) {
    let mut conn: Option<Client<Stream>> = None;
    let mut backoff = Backoff::new();
    // The fsyncs of the last response's partitions (flush policy on-ack),
    // started as soon as that response was appended and awaited after the
    // next fetch's answer has been appended in turn (so a slow fsync delays
    // the report, not the next records' append and fsync); the fetch in
    // flight meanwhile tells the leader how far the log is on disk
    // (`durable_offset`), and the one after it what these fsyncs made
    // durable.
    let mut syncing: Vec<(TopicPartition, Fsync)> = Vec::new();
    // Whether the last fetch broke its connection.
    let mut broke = false;
    loop {
        let tps = partitions.borrow().clone();
        if conn.is_none() {
            match connect(&node, leader).await {
                Ok(stream) => {
                    node.suspects.connected(leader);
                    let low_water = stream.low_water();
                    conn = Some(
                        Client::new(stream)
                            .with_low_water(low_water)
                            .with_client_id(Some(format!(
                                "rivulet-replica-fetcher-{}",
                                node.node_id()
                            )))
                            .with_max_response_bytes(config.max_response_bytes)
                            .with_timeout(FETCH_TIMEOUT),
                    )
                }
                Err(e) => {
                    debug!(leader, error = %e, "replica fetcher cannot connect");
                    if e.is_refused() {
                        // Nothing listens there: the leader's process is
                        // gone (see crate::suspects).
                        node.suspects.refused(leader, &node.image());
                    }
                    tokio::time::sleep(backoff.next()).await;
                    continue;
                }
            }
        }
        let Some(client) = conn.as_mut() else {
            continue;
        };
        let Planned {
            req,
            epochs,
            throttled,
            held_back,
        } = build_request(&node, leader, &tps, !syncing.is_empty());
        if epochs.is_empty() {
            // Only throttled partitions, over the follower quota: ask
            // again as it refills.
            let pause = if held_back {
                THROTTLE_PAUSE
            } else {
                backoff.next()
            };
            tokio::time::sleep(pause).await;
            continue;
        }
        let cycle = &crate::metrics::FOLLOWER_CYCLE;
        let sent = Instant::now();
        let resp = client.round_trip(FETCH_VERSION, &req).await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                debug!(leader, error = %e, "replica fetch failed");
                conn = None;
                // Reconnect at once after a broken connection (a refusal
                // then tells a dead leader from a dropped connection
                // without delay); back off when it breaks again. The
                // fsyncs under way are still awaited before the next
                // fetch reports them.
                if std::mem::replace(&mut broke, true) {
                    tokio::time::sleep(backoff.next()).await;
                }
                continue;
            }
        };
        broke = false;
        let received = Instant::now();
        cycle.round_trip.observe(received - sent);
        let mut progressed = false;
        let mut failed = resp.error_code != 0;
        // Every partition is appended first; their fsyncs then run at once
        // (one response's partitions share the disk's queue instead of
        // waiting for each other), beside the last response's fsyncs if
        // those are still running and beside the next fetch.
        let mut started = Vec::new();
        for t in resp.responses {
            for p in t.partitions {
                let tp = TopicPartition::new(t.topic.to_string(), p.partition_index);
                let Some(&epoch) = epochs.get(&tp) else {
                    continue;
                };
                if throttled.contains(&tp) {
                    let bytes = p.records.as_ref().map_or(0, |r| r.len());
                    node.replicas.quotas.follower.record(bytes);
                }
                match apply_response(&node, leader, &tp, epoch, p) {
                    Ok((changed, fsync)) => {
                        progressed |= changed;
                        started.extend(fsync.map(|f| (tp, tokio::spawn(f.wait_timed()))));
                    }
                    Err(code) => {
                        failed = true;
                        debug!(partition = %tp, leader, error_code = code, "follower fetch error");
                    }
                }
            }
        }
        cycle.apply.observe(received.elapsed());
        // Every cycle has the three phases: the fsync phase is how long
        // after this fetch was sent the last response's fsyncs finished
        // (~0 when they were done before, or there were none).
        let mut synced_at = sent;
        for (tp, fsync) in join_all(
            std::mem::replace(&mut syncing, started)
                .into_iter()
                .map(|(tp, f)| async move { (tp, f.await) }),
        )
        .await
        {
            let code = match fsync {
                Ok((Ok(()), at)) => {
                    synced_at = synced_at.max(at);
                    continue;
                }
                Ok((Err(code), _)) => code,
                Err(_) => E::UnknownServerError.code(),
            };
            failed = true;
            debug!(partition = %tp, leader, error_code = code, "follower fsync error");
        }
        cycle.fsync.observe(synced_at - sent);
        if failed && !progressed {
            tokio::time::sleep(backoff.next()).await;
        } else {
            backoff.reset();
        }
    }
}

/// The leader's inter-broker listener from the image, plain or TLS (the
/// handshake within the same timeout).
async fn connect(node: &LocalNode, leader: i32) -> Result<Stream, FetcherError> {
    let addr = node
        .broker_addr(leader)
        .ok_or(FetcherError::NoListener(leader))?;
    let timeout = Duration::from_secs(5);
    let stream = tokio::time::timeout(timeout, node.inter_broker.connector.connect(&addr))
        .await
        .map_err(|_| FetcherError::Timeout(timeout))??;
    Ok(stream)
}

/// A fetch to send, and what it asks.
struct Planned {
    req: FetchRequest,
    /// The leader epoch each partition was asked under.
    epochs: HashMap<TopicPartition, i32>,
    /// Partitions asked under the follower's replication quota.
    throttled: HashSet<TopicPartition>,
    /// Whether throttled partitions were left out: the quota is spent.
    held_back: bool,
}

/// The on-disk offset a follower sent with `p` ([`DURABLE_OFFSET_TAG`]), if
/// it sent one of the right size.
pub fn durable_offset(p: &FetchPartition) -> Option<i64> {
    let bytes = p.unknown_tagged_fields.get(&DURABLE_OFFSET_TAG)?;
    Some(i64::from_be_bytes(bytes.as_ref().try_into().ok()?))
}

/// One Fetch for every partition still followed from `leader`, except
/// throttled ones while the follower quota is spent
/// (`follower.replication.throttled.rate`, [`crate::replication_quota`]);
/// a throttled partition asks at most what the quota has left.
///
/// `syncing`: fsyncs of the previous response are still running — the
/// leader answers at once rather than parking the fetch, so that the next
/// one, after the fsyncs, reports them without waiting out a long poll.
fn build_request(node: &LocalNode, leader: i32, tps: &[TopicPartition], syncing: bool) -> Planned {
    let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    let mut epochs = HashMap::new();
    let mut throttled = HashSet::new();
    let mut held_back = false;
    let quota = &node.replicas.quotas.follower;
    let image = quota.is_limited().then(|| node.image());
    let me = node.node_id();
    for tp in tps {
        let Some(p) = node.replicas.get(tp) else {
            continue;
        };
        let mut max_bytes = FETCH_PARTITION_MAX_BYTES;
        if let Some(image) = &image {
            let key = rivulet_controller::throttled_replicas::FOLLOWER_KEY;
            if crate::replication_quota::is_throttled(image, &tp.topic, tp.partition, key, me, me) {
                let available = quota.available();
                if available == 0 {
                    held_back = true;
                    continue;
                }
                max_bytes = max_bytes.min(i32::try_from(available).unwrap_or(i32::MAX));
                throttled.insert(tp.clone());
            }
        }
        let Some(f) = node.replicas.fetch_request(&p, leader) else {
            continue;
        };
        epochs.insert(tp.clone(), f.leader_epoch);
        let mut partition = FetchPartition::default()
            .with_partition(tp.partition)
            .with_current_leader_epoch(f.leader_epoch)
            .with_fetch_offset(f.fetch_offset)
            .with_last_fetched_epoch(f.last_fetched_epoch)
            .with_log_start_offset(f.log_start_offset)
            .with_partition_max_bytes(max_bytes);
        if let Some(durable) = f.durable_offset {
            partition.unknown_tagged_fields.insert(
                DURABLE_OFFSET_TAG,
                Bytes::copy_from_slice(&durable.to_be_bytes()),
            );
        }
        topics.entry(tp.topic.clone()).or_default().push(partition);
    }
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(node.node_id()))
        .with_max_wait_ms(if syncing { 0 } else { FETCH_MAX_WAIT_MS })
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, parts)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(name)))
                        .with_partitions(parts)
                })
                .collect(),
        );
    Planned {
        req,
        epochs,
        throttled,
        held_back,
    }
}

/// Apply one partition of a fetch response, if this node still follows it
/// from `leader` in `leader_epoch`: whether the log changed, and the fsync
/// to wait for before the next fetch.
fn apply_response(
    node: &LocalNode,
    leader: i32,
    tp: &TopicPartition,
    leader_epoch: i32,
    data: PartitionData,
) -> Result<(bool, Option<FollowerDurable>), i16> {
    let Some(partition) = node.replicas.get(tp) else {
        return Ok((false, None));
    };
    let records = data.records.unwrap_or_default();
    let diverging = &data.diverging_epoch;
    let response = FetchedPartition {
        leader,
        leader_epoch,
        error_code: data.error_code,
        high_watermark: data.high_watermark,
        log_start_offset: data.log_start_offset,
        diverging_epoch: (diverging.end_offset >= 0)
            .then_some((diverging.epoch, diverging.end_offset)),
        has_records: !records.is_empty(),
    };
    node.replicas.apply_fetched(&partition, &response, records)
}

/// On every node: shrink or expand the ISR of the partitions it leads
/// through the controller, until `stop`.
pub async fn maintain_isr(node: LocalNode, lag: u64, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_millis((lag / 4).clamp(50, 1000));
    loop {
        for (p, request) in node.replicas.isr_changes(lag) {
            let req = ControllerRequest::AlterPartition {
                topic: p.tp.topic.clone(),
                partition: p.tp.partition,
                leader_id: node.node_id(),
                leader_epoch: request.leader_epoch,
                partition_epoch: request.partition_epoch,
                new_isr: request.new_isr.clone(),
            };
            let answer = match node.controller_request(req).await {
                ControllerResponse::Ok { .. } => {
                    info!(partition = %p.tp, from = ?p.state().isr, to = ?request.new_isr, "ISR changed");
                    AlterPartitionAnswer::Committed
                }
                ControllerResponse::Error(e) => {
                    debug!(partition = %p.tp, error = %e, "ISR change refused");
                    AlterPartitionAnswer::from_error(&e)
                }
                other => {
                    debug!(partition = %p.tp, response = ?other, "ISR change unanswered");
                    AlterPartitionAnswer::Unknown
                }
            };
            node.replicas.isr_change_answered(&p, &request, answer);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<u128> = (0..6).map(|_| b.next().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next(), BACKOFF);
    }

    #[test]
    fn the_durable_offset_crosses_the_wire_in_its_tagged_field() {
        use kafka_protocol::protocol::{Decodable, Encodable};
        let mut p = FetchPartition::default().with_fetch_offset(20);
        p.unknown_tagged_fields.insert(
            DURABLE_OFFSET_TAG,
            Bytes::copy_from_slice(&17i64.to_be_bytes()),
        );
        let req = FetchRequest::default().with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![p])]);
        let mut buf = bytes::BytesMut::new();
        req.encode(&mut buf, FETCH_VERSION).expect("encode");
        let back = FetchRequest::decode(&mut buf.freeze(), FETCH_VERSION).expect("decode");
        let p = &back.topics[0].partitions[0];
        assert_eq!(durable_offset(p), Some(17));
        // Absent, or not 8 bytes: none.
        assert_eq!(durable_offset(&FetchPartition::default()), None);
        let mut odd = FetchPartition::default();
        odd.unknown_tagged_fields
            .insert(DURABLE_OFFSET_TAG, Bytes::from_static(&[1, 2, 3]));
        assert_eq!(durable_offset(&odd), None);
    }
}
