//! The Kafka sink's native producer: rows written as record batches of its own and
//! sent with Kafka's Produce requests (v9, `acks=all`), instead of through librdkafka.
//!
//! Why: librdkafka's producer copies every record into a message of its own, queues
//! it, batches it on its own thread and reports each delivery back; a stream batch
//! already holds all its records at once, so here each partition's records are
//! encoded straight into uncompressed v2 batches ([`BatchWriter`]) and sent, and the
//! batch waits once for all of them.
//!
//! What an idempotent Kafka producer does, done the same way (KIP-98): a producer id
//! and epoch from InitProducerId, a sequence number per partition, up to five
//! requests in flight per leader connection (one batch per partition per request, as
//! Kafka's brokers require), DUPLICATE_SEQUENCE_NUMBER taken as an ack. A retriable
//! error (leader moved, broker restarting, connection lost, not enough replicas)
//! refreshes the leaders and sends the partition's unacknowledged batches again, in
//! order, with their sequence numbers, until the sink's timeout; anything else (too
//! large, not authorized, fenced, a sequence the broker lost) fails the batch with the
//! reason. Partitions are chosen as librdkafka's default partitioner does (CRC-32 of
//! the key modulo the partition count; records without a key spread over all), so a
//! job's keyed output lands where it did with librdkafka.
//!
//! Transactions (the exactly-once sink) are in [`super::wire_txn`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rivulet_protocol::record_batch::{self, BatchHeader, Compression, TimestampType};
use rivulet_protocol::records::BatchWriter;
use rivulet_protocol::tls::Stream;
use rivulet_protocol::wire::{self, Client};
use tokio::task::JoinSet;

use super::wire_meta::{self, NativeSpec, TopicMeta};
use super::wire_txn::Txn;

const PRODUCE_VERSION: i16 = 9;
/// `acks=all`.
const ACKS_ALL: i16 = -1;
/// Largest batch written, records and header (librdkafka's `batch.size` default);
/// a single record larger than this goes alone in its batch.
const BATCH_BYTES: usize = 1_000_000;
/// Requests in flight per connection (Kafka's limit for an idempotent producer).
const MAX_IN_FLIGHT: usize = 5;
/// Waits before trying again after a retriable error: 5 ms, doubling up to 100 ms
/// (Kafka's `retry.backoff.ms`). Short first steps matter: a transaction's first
/// request often meets CONCURRENT_TRANSACTIONS while the previous one's markers are
/// written, and a new topic has no leader for a moment.
#[derive(Debug, Default)]
pub(super) struct Backoff(u32);

impl Backoff {
    pub async fn wait(&mut self) {
        let ms = (5u64 << self.0.min(5)).min(100);
        self.0 = self.0.saturating_add(1);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

pub(super) type Tp = (String, i32);

/// A producer connected to a cluster: idempotent, and transactional with a
/// transactional id ([`super::wire_txn`]).
pub struct NativeProducer {
    pub(super) spec: NativeSpec,
    /// Producer id and epoch from InitProducerId.
    pub(super) producer: (i64, i16),
    /// The next sequence number per partition.
    pub(super) sequences: HashMap<Tp, i32>,
    pub(super) brokers: HashMap<i32, String>,
    topics: HashMap<String, TopicMeta>,
    /// Open connections by `host:port`.
    pub(super) conns: HashMap<String, Client<Stream>>,
    /// Where the next record without a key goes.
    spread: usize,
    pub(super) txn: Option<Txn>,
    /// The codec of the batches written.
    compression: Compression,
}

impl NativeProducer {
    /// A producer with its producer id: idempotent, or transactional with
    /// `transactional_id` (whose InitProducerId fences an older instance and aborts
    /// its open transaction).
    pub async fn connect(
        spec: NativeSpec,
        transactional_id: Option<String>,
    ) -> Result<NativeProducer, String> {
        let mut producer = NativeProducer {
            spec,
            producer: (-1, -1),
            sequences: HashMap::new(),
            brokers: HashMap::new(),
            topics: HashMap::new(),
            conns: HashMap::new(),
            spread: std::process::id() as usize,
            txn: transactional_id.map(Txn::new),
            compression: Compression::None,
        };
        producer.init_producer_id().await?;
        Ok(producer)
    }

    /// Produce `records` (key, value) to `topic` and wait until all in-sync replicas
    /// hold every one, up to the timeout. In an open transaction, the partitions are
    /// added to it first.
    pub async fn send<'a>(
        &mut self,
        topic: &str,
        records: impl IntoIterator<Item = (Option<&'a [u8]>, &'a [u8])>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + self.spec.timeout;
        let count = self.partition_count(topic, deadline).await?;
        let mut writers: Vec<Vec<BatchWriter>> = (0..count).map(|_| Vec::new()).collect();
        for (key, value) in records {
            let p = match key {
                Some(k) => crc32fast::hash(k) as usize % count,
                None => {
                    self.spread = self.spread.wrapping_add(1);
                    self.spread % count
                }
            };
            let size = key.map_or(0, <[u8]>::len) + value.len() + 24;
            let batches = &mut writers[p];
            match batches.last_mut() {
                Some(w) if w.size() + size <= BATCH_BYTES => w.push(0, key, Some(value)),
                _ => {
                    let mut w = BatchWriter::with_capacity(size.clamp(64 << 10, BATCH_BYTES));
                    w.push(0, key, Some(value));
                    batches.push(w);
                }
            }
        }
        let touched: BTreeSet<Tp> = writers
            .iter()
            .enumerate()
            .filter(|(_, w)| !w.is_empty())
            .map(|(p, _)| (topic.to_string(), p as i32))
            .collect();
        if touched.is_empty() {
            return Ok(());
        }
        if self.txn.as_ref().is_some_and(Txn::is_open) {
            self.add_partitions(&touched, deadline).await?;
        }
        let now = super::now_ms();
        let transactional = self.txn.is_some();
        let mut queues = BTreeMap::new();
        for (p, batches) in writers.into_iter().enumerate() {
            if batches.is_empty() {
                continue;
            }
            let tp = (topic.to_string(), p as i32);
            let sequence = self.sequences.entry(tp.clone()).or_insert(0);
            let mut queue = VecDeque::with_capacity(batches.len());
            for w in batches {
                let header = batch_header(
                    self.producer,
                    *sequence,
                    now,
                    self.compression,
                    transactional,
                );
                let count = w.count();
                let batch = w
                    .finish_compressed(&header)
                    .map_err(|e| format!("compress a batch: {e}"))?;
                *sequence = next_sequence(*sequence, count);
                queue.push_back(Bytes::from(batch));
            }
            queues.insert(tp, queue);
        }
        self.deliver(queues, deadline).await
    }

    /// Write batches compressed with `codec` (Kafka's `compression.type`).
    pub fn with_compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self
    }

    /// Learn `topic`'s partitions and leaders now, not at the first batch.
    pub async fn prepare(&mut self, topic: &str) -> Result<(), String> {
        let deadline = Instant::now() + self.spec.timeout;
        self.partition_count(topic, deadline).await.map(|_| ())
    }

    /// How many partitions `topic` has (Metadata, creating it if the broker does so
    /// for producers), waiting for a topic being created until `deadline`.
    async fn partition_count(&mut self, topic: &str, deadline: Instant) -> Result<usize, String> {
        let mut backoff = Backoff::default();
        loop {
            if let Some(t) = self.topics.get(topic).filter(|t| t.partition_count > 0) {
                return Ok(t.partition_count);
            }
            let last = match self.refresh([topic]).await {
                Ok(()) => match self.topics.get(topic).and_then(|t| t.error) {
                    Some(e) if !e.is_retriable() => return Err(format!("topic {topic}: {e}")),
                    Some(e) => e.to_string(),
                    None => "no partitions yet".to_string(),
                },
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!("metadata of topic {topic}: {last}"));
            }
            backoff.wait().await;
        }
    }

    async fn refresh<'t>(
        &mut self,
        topics: impl IntoIterator<Item = &'t str>,
    ) -> Result<(), String> {
        let meta = wire_meta::metadata(&self.spec, &self.brokers, topics, true).await?;
        self.brokers = meta.brokers;
        self.topics.extend(meta.topics);
        Ok(())
    }

    fn leader_addr(&self, (topic, p): &Tp) -> Option<String> {
        let leader = self.topics.get(topic)?.leaders.get(p)?;
        self.brokers.get(leader).cloned()
    }

    /// Send every queued batch to its partition's leader until all are acknowledged:
    /// one task per leader; partitions whose batches failed retriably are placed
    /// again after fresh Metadata.
    async fn deliver(
        &mut self,
        mut queues: BTreeMap<Tp, VecDeque<Bytes>>,
        deadline: Instant,
    ) -> Result<(), String> {
        let transactional_id = self.txn.as_ref().map(|t| t.id.clone());
        let mut last = String::new();
        let mut backoff = Backoff::default();
        loop {
            queues.retain(|_, q| !q.is_empty());
            if queues.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let parts: Vec<String> = queues.keys().map(|(t, p)| format!("{t}/{p}")).collect();
                return Err(format!(
                    "records to {} not acknowledged within {:?}: {last}",
                    parts.join(", "),
                    self.spec.timeout
                ));
            }
            if queues.keys().any(|tp| self.leader_addr(tp).is_none()) {
                let topics: BTreeSet<String> = queues.keys().map(|(t, _)| t.clone()).collect();
                if let Err(e) = self.refresh(topics.iter().map(String::as_str)).await {
                    last = e;
                }
            }
            let mut by_leader: HashMap<String, BTreeMap<Tp, VecDeque<Bytes>>> = HashMap::new();
            for (tp, q) in std::mem::take(&mut queues) {
                match self.leader_addr(&tp) {
                    Some(addr) => {
                        by_leader.entry(addr).or_default().insert(tp, q);
                    }
                    None => {
                        last = format!("{}/{}: no leader", tp.0, tp.1);
                        queues.insert(tp, q);
                    }
                }
            }
            let mut tasks = JoinSet::new();
            for (addr, parts) in by_leader {
                let leg = Leg {
                    client: self.conns.remove(&addr),
                    spec: self.spec.clone(),
                    addr,
                    transactional_id: transactional_id.clone(),
                };
                tasks.spawn(leg.produce(parts));
            }
            let mut moved = !queues.is_empty();
            while let Some(joined) = tasks.join_next().await {
                let out = joined.map_err(|e| format!("produce task: {e}"))?;
                if let Some(c) = out.client {
                    self.conns.insert(out.addr, c);
                }
                match out.end {
                    LegEnd::Done => {}
                    LegEnd::Retry(reason) => {
                        last = reason;
                        moved = true;
                    }
                    LegEnd::Fatal(reason) => return Err(reason),
                }
                queues.extend(out.unacked);
            }
            if moved && !queues.is_empty() {
                // Leaders may have moved: ask again before the next attempt.
                for (t, _) in queues.keys() {
                    self.topics.remove(t);
                }
                backoff.wait().await;
            }
        }
    }
}

/// The header of a batch this producer writes (in `codec`, CreateTime `now`).
fn batch_header(
    producer: (i64, i16),
    sequence: i32,
    now: i64,
    codec: Compression,
    transactional: bool,
) -> BatchHeader {
    let attributes =
        record_batch::attributes(codec, TimestampType::CreateTime, transactional, false);
    BatchHeader::template(attributes, now, producer.0, producer.1, sequence)
}

/// The sequence after `count` records from `sequence`, wrapping past `i32::MAX` to 0
/// as Kafka's producer and broker do.
pub(super) fn next_sequence(sequence: i32, count: i32) -> i32 {
    if sequence > i32::MAX - count {
        count - (i32::MAX - sequence) - 1
    } else {
        sequence + count
    }
}

/// One leader's share of a delivery.
struct Leg {
    client: Option<Client<Stream>>,
    spec: NativeSpec,
    addr: String,
    transactional_id: Option<String>,
}

enum LegEnd {
    Done,
    Retry(String),
    Fatal(String),
}

struct LegOutcome {
    addr: String,
    /// The connection, unless it failed.
    client: Option<Client<Stream>>,
    /// Batches not acknowledged, in order, per partition.
    unacked: Vec<(Tp, VecDeque<Bytes>)>,
    end: LegEnd,
}

impl Leg {
    /// Send `parts`' batches, request by request (the n-th request holds the n-th
    /// batch of each partition), up to [`MAX_IN_FLIGHT`] at once, and read the acks.
    async fn produce(mut self, mut parts: BTreeMap<Tp, VecDeque<Bytes>>) -> LegOutcome {
        let mut acked: HashMap<Tp, usize> = HashMap::new();
        let (client, end) = match self.client.take() {
            Some(c) => self.exchange(c, &parts, &mut acked).await,
            None => match self.spec.connect(&self.addr).await {
                Ok(c) => self.exchange(c, &parts, &mut acked).await,
                Err(e) => (None, LegEnd::Retry(e)),
            },
        };
        let unacked = parts
            .iter_mut()
            .filter_map(|(tp, q)| {
                q.drain(..acked.get(tp).copied().unwrap_or(0).min(q.len()));
                (!q.is_empty()).then(|| (tp.clone(), std::mem::take(q)))
            })
            .collect();
        LegOutcome {
            addr: self.addr,
            client,
            unacked,
            end,
        }
    }

    async fn exchange(
        &self,
        mut client: Client<Stream>,
        parts: &BTreeMap<Tp, VecDeque<Bytes>>,
        acked: &mut HashMap<Tp, usize>,
    ) -> (Option<Client<Stream>>, LegEnd) {
        let rounds = parts.values().map(VecDeque::len).max().unwrap_or(0);
        let mut failed: BTreeMap<Tp, String> = BTreeMap::new();
        let mut in_flight: VecDeque<(i32, BTreeSet<Tp>)> = VecDeque::new();
        let mut next = 0;
        loop {
            while in_flight.len() < MAX_IN_FLIGHT && next < rounds {
                let (request, sent) = self.request(parts, next, &failed);
                next += 1;
                if sent.is_empty() {
                    continue;
                }
                let correlation_id = client.next_correlation_id();
                let written = match wire::encode_request(
                    &request,
                    PRODUCE_VERSION,
                    correlation_id,
                    Some(&self.spec.client_id),
                ) {
                    Ok(frame) => client.send(&frame).await,
                    Err(e) => {
                        return (Some(client), LegEnd::Fatal(format!("produce request: {e}")))
                    }
                };
                if let Err(e) = written {
                    return (
                        None,
                        LegEnd::Retry(format!("produce to {}: {e}", self.addr)),
                    );
                }
                in_flight.push_back((correlation_id, sent));
            }
            let Some((correlation_id, mut sent)) = in_flight.pop_front() else {
                break;
            };
            let response = match client.read_response().await.and_then(|frame| {
                wire::decode_response::<ProduceRequest>(frame, PRODUCE_VERSION, correlation_id)
            }) {
                Ok(r) => r,
                Err(e) => {
                    return (
                        None,
                        LegEnd::Retry(format!("produce to {}: {e}", self.addr)),
                    )
                }
            };
            for t in &response.responses {
                let topic = t.name.0.to_string();
                for p in &t.partition_responses {
                    let tp = (topic.clone(), p.index);
                    if !sent.remove(&tp) {
                        continue;
                    }
                    match ResponseError::try_from_code(p.error_code) {
                        None | Some(ResponseError::DuplicateSequenceNumber) => {
                            if !failed.contains_key(&tp) {
                                *acked.entry(tp).or_insert(0) += 1;
                            }
                        }
                        // A later batch of a partition whose earlier batch failed:
                        // sent again, in order, with the rest.
                        Some(_) if failed.contains_key(&tp) => {}
                        Some(e) if e.is_retriable() => {
                            failed.insert(tp, format!("{topic}/{}: {e}", p.index));
                        }
                        Some(e) => {
                            let detail = p
                                .error_message
                                .as_ref()
                                .map_or(String::new(), |m| format!(" ({})", m.as_str()));
                            return (
                                Some(client),
                                LegEnd::Fatal(format!(
                                    "produce to {topic}/{}: {e}{detail}",
                                    p.index
                                )),
                            );
                        }
                    }
                }
            }
            for tp in sent {
                failed.insert(tp, format!("{}: no answer for a partition", self.addr));
            }
        }
        let end = match failed.into_values().next() {
            Some(reason) => LegEnd::Retry(reason),
            None => LegEnd::Done,
        };
        (Some(client), end)
    }

    /// The `round`-th request: the `round`-th batch of each partition that has one
    /// and has not failed, and which partitions it holds.
    fn request(
        &self,
        parts: &BTreeMap<Tp, VecDeque<Bytes>>,
        round: usize,
        failed: &BTreeMap<Tp, String>,
    ) -> (ProduceRequest, BTreeSet<Tp>) {
        let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
        let mut sent = BTreeSet::new();
        for (tp, q) in parts {
            let Some(batch) = q.get(round).filter(|_| !failed.contains_key(tp)) else {
                continue;
            };
            topics.entry(tp.0.as_str()).or_default().push(
                PartitionProduceData::default()
                    .with_index(tp.1)
                    .with_records(Some(batch.clone())),
            );
            sent.insert(tp.clone());
        }
        let request = ProduceRequest::default()
            .with_transactional_id(
                self.transactional_id
                    .as_ref()
                    .map(|id| TransactionalId(StrBytes::from_string(id.clone()))),
            )
            .with_acks(ACKS_ALL)
            .with_timeout_ms(i32::try_from(self.spec.timeout.as_millis()).unwrap_or(i32::MAX))
            .with_topic_data(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(name.to_string())))
                            .with_partition_data(partitions)
                    })
                    .collect(),
            );
        (request, sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_as_kafkas() {
        assert_eq!(next_sequence(0, 5), 5);
        assert_eq!(next_sequence(i32::MAX - 5, 5), i32::MAX);
        assert_eq!(next_sequence(i32::MAX - 5, 6), 0);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 1, 10), 8);
    }

    #[test]
    fn keyed_records_are_placed_as_librdkafka_places_them() {
        // librdkafka's consistent_random: CRC-32 (zlib's) of the key modulo the count.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32fast::hash(b"") as usize % 3, 0);
    }
}
