//! A source's native fetch thread: reads the assigned partitions with Kafka's own
//! Fetch requests (v11, `read_committed`) instead of through librdkafka, and hands the
//! runtime the same chunks ([`Fetched`]) the librdkafka loop does.
//!
//! Why: a librdkafka consumer copies every record into a message of its own, queues
//! it, and the job then copies it out again; here a fetch response's record batches
//! are decoded in place (`rivulet_protocol::records`) straight into the job's records,
//! and the next fetch is sent before the current response is decoded, so the broker
//! reads on while the job decodes.
//!
//! What Kafka's consumer does, done the same way: partitions are fetched from their
//! leaders (Metadata), one connection and one fetch in flight per leader; a retriable
//! error (a leader moved, a broker restarting, a connection lost) refreshes the leaders
//! and fetches on from the same offsets after a short backoff; OFFSET_OUT_OF_RANGE
//! starts over from the earliest offset (the job's `auto.offset.reset`, and the source
//! steps over records it already read); `read_committed` drops the records of aborted
//! transactions with the response's aborted-transaction list and the abort markers
//! (Kafka's `Fetcher`), and never hands over control batches. A corrupt batch, a record
//! format older than v2, or an authorization failure stops the source with the reason.
//!
//! Each chunk's positions are the next fetch offsets of the partitions the response
//! covered: past the records handed over and past markers and aborted records.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rivulet_protocol::control::{parse_control_marker, ControlType};
use rivulet_protocol::record_batch::{peek_batch_size, BatchHeader};
use rivulet_protocol::records::decode_batch;
use rivulet_protocol::tls::Stream;
use rivulet_protocol::wire::{self, Client};
use tokio::task::JoinSet;

use super::fetcher::{Fetched, StopSignal};
use super::offsets::Offsets;
use super::wire_meta;
use crate::row::{SourceMeta, SourceRecord};

const FETCH_VERSION: i16 = 11;
/// Longest the broker holds a fetch with nothing to return.
const MAX_WAIT_MS: i32 = 100;
/// Most record bytes per partition in one response (librdkafka's
/// `fetch.message.max.bytes` default) and per response: with the fetch thread's channel
/// of 8 responses, the records read ahead of the job stay under ~64 MiB, librdkafka's
/// `queued.max.messages.kbytes` default. A batch larger than either still comes whole.
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const MAX_BYTES: i32 = 8 << 20;
/// Most bytes one batch may decompress to.
const MAX_BATCH_RECORD_BYTES: usize = 256 << 20;
/// Wait before fetching again after a retriable error.
const BACKOFF: Duration = Duration::from_millis(200);
/// Retriable errors are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// `read_committed`.
const READ_COMMITTED: i8 = 1;

type Tp = (String, i32);

pub use super::wire_meta::NativeSpec;

/// The fetch thread's body: fetch `start` (next offset per partition) until `stop`.
pub fn run(
    source: &str,
    spec: NativeSpec,
    start: Offsets,
    tx: SyncSender<Fetched>,
    stop: Arc<StopSignal>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Fetched::Fatal(format!("fetch runtime: {e}")));
            return;
        }
    };
    let parts = start
        .into_iter()
        .flat_map(|(t, ps)| ps.into_iter().map(move |(p, o)| ((t.clone(), p), o)))
        .collect();
    let ctx = Arc::new(Ctx {
        source: source.to_string(),
        spec,
        tx,
        stop,
    });
    runtime.block_on(coordinate(ctx, parts));
}

struct Ctx {
    source: String,
    spec: NativeSpec,
    tx: SyncSender<Fetched>,
    stop: Arc<StopSignal>,
}

impl Ctx {
    fn stopped(&self) -> bool {
        self.stop.is_set()
    }

    /// Hand `msg` to the runtime, waiting for room; `false` once the runtime is gone.
    async fn deliver(&self, mut msg: Fetched) -> bool {
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if self.stopped() {
                        return false;
                    }
                    msg = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
}

/// How a leader's fetch task ended.
enum TaskEnd {
    /// Fetch these partitions (next offsets) again after finding their leaders.
    Moved {
        parts: BTreeMap<Tp, i64>,
        reason: String,
    },
    /// The source cannot go on.
    Fatal(String),
    /// Stopped, or the runtime is gone.
    Done,
}

/// Find leaders, run one fetch task per leader, and put partitions whose task ended
/// with a retriable error back to be placed again.
async fn coordinate(ctx: Arc<Ctx>, mut unplaced: BTreeMap<Tp, i64>) {
    let mut tasks = JoinSet::new();
    let mut brokers: HashMap<i32, String> = HashMap::new();
    // While a broker is down the same warnings would come every backoff.
    let mut warned: Option<Instant> = None;
    let mut warn = |what: &str, reason: &str| {
        if warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            tracing::warn!(source = %ctx.source, "{what}: {reason} (retrying; said at most every {WARN_EVERY:?})");
            warned = Some(Instant::now());
        }
    };
    while !ctx.stopped() {
        if !unplaced.is_empty() {
            match leaders(&ctx, &brokers, &unplaced).await {
                Ok((found, leader_of)) => {
                    brokers = found;
                    let mut by_leader: BTreeMap<i32, BTreeMap<Tp, i64>> = BTreeMap::new();
                    for (tp, offset) in std::mem::take(&mut unplaced) {
                        match leader_of.get(&tp).filter(|l| brokers.contains_key(l)) {
                            Some(l) => {
                                by_leader.entry(*l).or_default().insert(tp, offset);
                            }
                            None => {
                                unplaced.insert(tp, offset);
                            }
                        }
                    }
                    for (leader, parts) in by_leader {
                        let addr = brokers.get(&leader).cloned().unwrap_or_default();
                        tasks.spawn(fetch_from(ctx.clone(), addr, parts));
                    }
                }
                Err(Failure::Fatal(reason)) => {
                    ctx.deliver(Fetched::Fatal(reason)).await;
                    return;
                }
                Err(Failure::Retry(reason)) => warn("finding partition leaders", &reason),
            }
            if !unplaced.is_empty() {
                let waiting: Vec<String> =
                    unplaced.keys().map(|(t, p)| format!("{t}/{p}")).collect();
                warn("no leader yet", &waiting.join(", "));
            }
        }
        // Placed partitions need nothing until a task ends or the source stops.
        let wait = if unplaced.is_empty() {
            Duration::from_secs(1)
        } else {
            BACKOFF
        };
        tokio::select! {
            Some(ended) = tasks.join_next() => match ended {
                Ok(TaskEnd::Moved { parts, reason }) => {
                    warn("fetching again after an error", &reason);
                    unplaced.extend(parts);
                    tokio::time::sleep(BACKOFF).await;
                }
                Ok(TaskEnd::Fatal(reason)) => {
                    ctx.deliver(Fetched::Fatal(reason)).await;
                    return;
                }
                Ok(TaskEnd::Done) => return,
                Err(e) => {
                    ctx.deliver(Fetched::Fatal(format!("fetch task failed: {e}"))).await;
                    return;
                }
            },
            _ = tokio::time::sleep(wait) => {}
            _ = ctx.stop.wait() => return,
        }
    }
}

enum Failure {
    Retry(String),
    Fatal(String),
}

/// The brokers and the leader of every partition in `parts`, from the first of the
/// bootstrap servers and known brokers that answers a Metadata request.
async fn leaders(
    ctx: &Ctx,
    known: &HashMap<i32, String>,
    parts: &BTreeMap<Tp, i64>,
) -> Result<(HashMap<i32, String>, HashMap<Tp, i32>), Failure> {
    let topics: BTreeSet<&str> = parts.keys().map(|(t, _)| t.as_str()).collect();
    let meta = wire_meta::metadata(&ctx.spec, known, topics, false)
        .await
        .map_err(Failure::Retry)?;
    let mut leader_of = HashMap::new();
    for (name, t) in meta.topics {
        match t.error {
            Some(e) if !e.is_retriable() => {
                return Err(Failure::Fatal(format!("topic {name}: {e}")))
            }
            Some(_) => continue,
            None => {}
        }
        for (p, leader) in t.leaders {
            leader_of.insert((name.clone(), p), leader);
        }
    }
    Ok((meta.brokers, leader_of))
}

/// Fetch `parts` from the leader at `addr` until an error moves them or the source
/// stops. One fetch is in flight while the previous response is decoded.
async fn fetch_from(ctx: Arc<Ctx>, addr: String, mut parts: BTreeMap<Tp, i64>) -> TaskEnd {
    let moved = |parts, reason| TaskEnd::Moved { parts, reason };
    let mut client = match ctx.spec.connect(&addr).await {
        Ok(c) => c,
        Err(e) => return moved(parts, e),
    };
    let mut inflight: Option<i32> = None;
    loop {
        if ctx.stopped() {
            return TaskEnd::Done;
        }
        let correlation_id = match inflight.take() {
            Some(id) => id,
            None => match send_fetch(&mut client, &ctx.spec.client_id, &parts).await {
                Ok(id) => id,
                Err(e) => return moved(parts, format!("fetch from {addr}: {e}")),
            },
        };
        let response = match client.read_response().await.and_then(|frame| {
            wire::decode_response::<FetchRequest>(frame, FETCH_VERSION, correlation_id)
        }) {
            Ok(r) => r,
            Err(e) => return moved(parts, format!("fetch from {addr}: {e}")),
        };
        if let Some(e) = ResponseError::try_from_code(response.error_code) {
            if e.is_retriable() {
                return moved(parts, format!("fetch from {addr}: {e}"));
            }
            return TaskEnd::Fatal(format!("fetch from {addr}: {e}"));
        }
        let Progress {
            next,
            reset,
            mut retry,
        } = match progress(&response, &parts) {
            Ok(p) => p,
            Err(reason) => return TaskEnd::Fatal(reason),
        };
        // The broker reads on while this response is decoded.
        if retry.is_none() && reset.is_empty() {
            match send_fetch(&mut client, &ctx.spec.client_id, &next).await {
                Ok(id) => inflight = Some(id),
                Err(e) => retry = Some(format!("fetch from {addr}: {e}")),
            }
        }
        let (records, positions) = match decode_response(&response, &parts, &next) {
            Ok(chunk) => chunk,
            Err(reason) => return TaskEnd::Fatal(reason),
        };
        parts = next;
        if (!records.is_empty() || !positions.is_empty())
            && !ctx.deliver(Fetched::Chunk { records, positions }).await
        {
            return TaskEnd::Done;
        }
        for tp in reset {
            match earliest(&mut client, &tp).await {
                Ok(o) => {
                    tracing::warn!(source = %ctx.source, topic = %tp.0, partition = tp.1, offset = o,
                        "offset out of range: reading on from the earliest offset");
                    parts.insert(tp, o);
                }
                Err(e) => retry = Some(format!("earliest offset of {}/{}: {e}", tp.0, tp.1)),
            }
        }
        if let Some(reason) = retry {
            return moved(parts, reason);
        }
    }
}

/// What a fetch response says about where each partition goes on.
struct Progress {
    /// Next offsets, past the response's whole batches (from their headers alone).
    next: BTreeMap<Tp, i64>,
    /// Partitions whose offset is out of range.
    reset: Vec<Tp>,
    /// A retriable error of a partition: fetch again after finding leaders.
    retry: Option<String>,
}

/// The first pass over a response; `Err` for an error the source cannot go on after.
fn progress(response: &FetchResponse, parts: &BTreeMap<Tp, i64>) -> Result<Progress, String> {
    let mut out = Progress {
        next: parts.clone(),
        reset: Vec::new(),
        retry: None,
    };
    for topic in &response.responses {
        for p in &topic.partitions {
            let tp = (topic.topic.0.to_string(), p.partition_index);
            let Some(from) = parts.get(&tp).copied() else {
                continue; // not asked for
            };
            let name = format!("{}/{}", tp.0, tp.1);
            match ResponseError::try_from_code(p.error_code) {
                None => {
                    let n = next_offset(p, from).map_err(|reason| format!("{name}: {reason}"))?;
                    out.next.insert(tp, n);
                }
                Some(ResponseError::OffsetOutOfRange) => out.reset.push(tp),
                Some(e) if e.is_retriable() => out.retry = Some(format!("{name}: {e}")),
                Some(e) => return Err(format!("{name}: {e}")),
            }
        }
    }
    Ok(out)
}

/// The records of a response's partitions without errors, and the next offsets of
/// those that moved.
fn decode_response(
    response: &FetchResponse,
    parts: &BTreeMap<Tp, i64>,
    next: &BTreeMap<Tp, i64>,
) -> Result<(Vec<SourceRecord>, Offsets), String> {
    let mut records = Vec::new();
    let mut positions = Offsets::new();
    for topic in &response.responses {
        let name = topic.topic.0.as_str();
        for p in &topic.partitions {
            let tp = (name.to_string(), p.partition_index);
            let (Some(from), Some(to)) = (parts.get(&tp), next.get(&tp)) else {
                continue;
            };
            if p.error_code != 0 {
                continue;
            }
            decode_partition(name, p, *from, &mut records)
                .map_err(|reason| format!("{name}/{}: {reason}", p.partition_index))?;
            if to > from {
                positions
                    .entry(name.to_string())
                    .or_default()
                    .insert(p.partition_index, *to);
            }
        }
    }
    Ok((records, positions))
}

/// Send a fetch of `parts` from their next offsets; its correlation id.
async fn send_fetch(
    client: &mut Client<Stream>,
    client_id: &str,
    parts: &BTreeMap<Tp, i64>,
) -> Result<i32, wire::WireError> {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for ((topic, partition), offset) in parts {
        let p = FetchPartition::default()
            .with_partition(*partition)
            .with_fetch_offset(*offset)
            .with_partition_max_bytes(PARTITION_MAX_BYTES);
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == topic => t.partitions.push(p),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(MAX_BYTES)
        .with_isolation_level(READ_COMMITTED)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    let correlation_id = client.next_correlation_id();
    let frame = wire::encode_request(&request, FETCH_VERSION, correlation_id, Some(client_id))?;
    client.send(&frame).await?;
    Ok(correlation_id)
}

/// The earliest offset of `tp`, asked of its leader.
async fn earliest(client: &mut Client<Stream>, tp: &Tp) -> Result<i64, String> {
    let found =
        wire_meta::list_offsets(client, std::slice::from_ref(tp), wire_meta::EARLIEST).await?;
    found
        .first()
        .copied()
        .ok_or_else(|| "no ListOffsets answer".to_string())
}

/// The offset after the last whole batch of a partition's records (`from` if none).
/// A batch cut off at the end of the response is fetched again whole next time.
fn next_offset(p: &PartitionData, from: i64) -> Result<i64, String> {
    let Some(bytes) = &p.records else {
        return Ok(from);
    };
    let mut next = from;
    let mut whole = false;
    for batch in batches(bytes) {
        let header = batch?.0;
        next = next.max(header.next_offset());
        whole = true;
    }
    if !whole && !bytes.is_empty() {
        return Err(format!(
            "the first record batch at offset {from} is larger than the fetch response \
             could hold ({} bytes)",
            bytes.len()
        ));
    }
    Ok(next)
}

/// The whole batches of a record set, with their headers (not yet CRC-checked).
fn batches(bytes: &[u8]) -> impl Iterator<Item = Result<(BatchHeader, &[u8]), String>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let rest = bytes.get(pos..)?;
        let size = peek_batch_size(rest)?;
        let batch = rest.get(..size)?;
        pos += size;
        Some(
            BatchHeader::parse(batch)
                .map(|h| (h, batch))
                .map_err(|e| format!("record batch at byte {}: {e}", pos - size)),
        )
    })
}

/// Append the records of a partition's response at or after `from` to `out`, leaving
/// out control batches and the batches of aborted transactions.
fn decode_partition(
    topic: &str,
    p: &PartitionData,
    from: i64,
    out: &mut Vec<SourceRecord>,
) -> Result<(), String> {
    let Some(bytes) = &p.records else {
        return Ok(());
    };
    // Kafka's consumer: an aborted transaction's producer is skipped from its first
    // offset until its abort marker.
    let mut pending: BinaryHeap<Reverse<(i64, i64)>> = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| Reverse((a.first_offset, a.producer_id.0)))
        .collect();
    let mut aborting: HashSet<i64> = HashSet::new();
    for batch in batches(bytes) {
        let (header, batch) = batch?;
        if header.next_offset() <= from {
            continue;
        }
        while let Some(Reverse((first, pid))) = pending.peek().copied() {
            if first > header.last_offset() {
                break;
            }
            aborting.insert(pid);
            pending.pop();
        }
        if header.is_control() {
            let marker = parse_control_marker(batch).map_err(|e| e.to_string())?;
            if matches!(marker, Some((ControlType::Abort, _))) {
                aborting.remove(&header.producer_id);
            }
            continue;
        }
        if header.is_transactional() && aborting.contains(&header.producer_id) {
            continue;
        }
        let decoded = decode_batch(batch, MAX_BATCH_RECORD_BYTES)
            .map_err(|e| format!("record batch at offset {}: {e}", header.base_offset))?;
        out.reserve(decoded.records.len());
        for r in &decoded.records {
            let offset = decoded.offset_of(r);
            if offset < from {
                continue;
            }
            out.push(SourceRecord {
                meta: SourceMeta {
                    key: r
                        .key
                        .as_ref()
                        .map(|k| String::from_utf8_lossy(k).into_owned()),
                    headers: r
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                String::from_utf8_lossy(&h.key).into_owned(),
                                h.value
                                    .as_ref()
                                    .map(|v| String::from_utf8_lossy(v).into_owned()),
                            )
                        })
                        .collect(),
                    topic: topic.to_string(),
                    partition: p.partition_index,
                    offset,
                    timestamp_ms: decoded.timestamp_of(r),
                },
                value: r.value.as_deref().unwrap_or_default().into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "wire_fetch_tests.rs"]
mod tests;
