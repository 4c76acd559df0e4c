//! A job source read from Kafka by manual assignment.
//!
//! Manual assignment, not a consumer group: the job's committed offsets live with its
//! output (the PostgreSQL transaction or the checkpoint file), so the group's offsets
//! would be a second, lagging record (Spark's Kafka source does the same). At open
//! every partition of every topic gets a numeric start offset (committed offset, or
//! earliest / latest / by timestamp through ListOffsets — the runtime's own requests
//! for a native source, librdkafka's for `client = "librdkafka"`), so each commit can record
//! every assigned partition. The end offsets seen at open are kept for
//! `available_now`.
//!
//! The records themselves are read by the source's fetch thread ([`super::fetcher`]):
//! with Kafka Fetch requests of the runtime's own by default ([`super::wire_fetch`]),
//! or through this librdkafka consumer (`client = "librdkafka"`). Taking its chunks
//! blocks, so callers run it on tokio's blocking pool.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use rivulet_protocol::tls::Connector;

use super::error::RuntimeError;
use super::fetcher::{Fetched, Fetcher};
use super::offsets::{advance, caught_up, start_position, Offsets, StartPosition};
use super::wire_meta::{self, NativeSpec, PartitionBounds};
use crate::plan::{KafkaClient, SourcePlan, StartFrom};
use crate::row::SourceRecord;

/// A librdkafka config for the job's clients, connecting as the native
/// ones do (`[job.kafka]`'s properties, through `connector`).
pub fn client_config(bootstrap: &str, job: &str, connector: &Connector) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (key, value) in connector.client_properties() {
        c.set(key, value);
    }
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", format!("rivulet-stream-{job}"))
        // Needed by librdkafka even with manual assignment; nothing is committed to it.
        .set("group.id", format!("rivulet-stream-{job}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Only records of committed transactions reach a job.
        .set("isolation.level", "read_committed")
        // A committed offset below the log start (deleted by retention) reads on from
        // the earliest record there is.
        .set("auto.offset.reset", "earliest")
        // librdkafka stops fetching for fetch.queue.backoff.ms (default 1 s) whenever its
        // prefetch queue is full, which a job working through a backlog hits after every
        // batch: with the default a job read ~0.08x what a plain consume loop did.
        .set("fetch.queue.backoff.ms", "10");
    c
}

pub struct KafkaSource {
    pub name: String,
    fetcher: Fetcher,
    /// The rest of the chunk a batch filled up in.
    pending: std::vec::IntoIter<SourceRecord>,
    /// The reader's positions after the pending chunk: the source's once it is taken.
    pending_positions: Option<Offsets>,
    /// The reader's positions after the chunks wholly taken.
    fetched: Offsets,
    positions: Offsets,
    ends: Offsets,
    /// Replay: the batch's end offsets; records at or past them are not the batch's.
    limit: Option<Offsets>,
}

impl KafkaSource {
    /// Assign every partition of the source's topics, starting at the committed offsets
    /// (`committed`, if the job committed before) or where `start` says.
    pub fn open(
        plan: &SourcePlan,
        bootstrap: &str,
        job: &str,
        committed: Option<&Offsets>,
        timeout: Duration,
        connector: &Connector,
    ) -> Result<KafkaSource, RuntimeError> {
        // Only a start time for partitions without a committed offset needs it.
        let time = match (committed, plan.start) {
            (None, StartFrom::Timestamp { ms }) => Some(ms),
            _ => None,
        };
        let spec = NativeSpec {
            bootstrap: bootstrap.to_string(),
            client_id: format!("rivulet-stream-{job}"),
            timeout,
            connector: connector.clone(),
        };
        let consumer = match plan.client {
            KafkaClient::Native => None,
            KafkaClient::Librdkafka => Some(
                client_config(bootstrap, job, connector)
                    .create::<BaseConsumer>()
                    .map_err(RuntimeError::kafka("create a consumer"))?,
            ),
        };
        let bounds = match &consumer {
            None => native_bounds(&spec, &plan.topics, time)?,
            Some(c) => librdkafka_bounds(c, &plan.topics, time, timeout)?,
        };
        let mut positions = Offsets::new();
        let mut ends = Offsets::new();
        for ((topic, p), b) in &bounds {
            let start = start_position(plan.start, committed, topic, *p)
                .map_err(|reason| RuntimeError::config(job, reason))?;
            let pos = match start {
                StartPosition::At(o) => o,
                StartPosition::Earliest => b.earliest,
                StartPosition::Latest => b.latest,
                StartPosition::Timestamp(_) => b.at_time.unwrap_or(b.latest),
            };
            positions.entry(topic.clone()).or_default().insert(*p, pos);
            ends.entry(topic.clone()).or_default().insert(*p, b.latest);
        }
        let fetcher = match consumer {
            None => Fetcher::start_native(&plan.name, spec, positions.clone())?,
            Some(consumer) => {
                let mut tpl = TopicPartitionList::new();
                for (topic, parts) in &positions {
                    for (p, pos) in parts {
                        tpl.add_partition_offset(topic, *p, Offset::Offset(*pos))
                            .map_err(RuntimeError::kafka(format!("assign {topic}/{p}")))?;
                    }
                }
                consumer
                    .assign(&tpl)
                    .map_err(RuntimeError::kafka("assign partitions"))?;
                Fetcher::start(&plan.name, consumer)?
            }
        };
        tracing::info!(source = %plan.name, client = ?plan.client, ?positions, "source assigned");
        Ok(KafkaSource {
            name: plan.name.clone(),
            fetcher,
            pending: Vec::new().into_iter(),
            pending_positions: None,
            fetched: Offsets::new(),
            positions,
            ends,
            limit: None,
        })
    }

    /// Read no record at or past `end` (a replayed batch's end offsets; partitions
    /// missing there read nothing), and count as caught up once at `end`.
    pub fn bound_to(&mut self, end: &Offsets) {
        let mut ends = Offsets::new();
        for (topic, parts) in &self.positions {
            for p in parts.keys() {
                let e = end.get(topic).and_then(|m| m.get(p)).copied();
                let pos = self.positions.get(topic).and_then(|m| m.get(p)).copied();
                if let Some(e) = e.or(pos) {
                    ends.entry(topic.clone()).or_default().insert(*p, e);
                }
            }
        }
        self.ends = ends.clone();
        self.limit = Some(ends);
    }

    /// The next offset of every assigned partition.
    pub fn positions(&self) -> &Offsets {
        &self.positions
    }

    /// Poll up to `max` records into `out` (appended; returns how many): waits up to
    /// `wait` for the first, then takes what the fetch thread has already handed over.
    /// Appending into the batch's vector, reserved a chunk at a time, moves each record
    /// once and never regrows a vector of the whole batch.
    pub fn poll_batch(
        &mut self,
        out: &mut Vec<SourceRecord>,
        max: usize,
        wait: Duration,
    ) -> Result<usize, RuntimeError> {
        let first = out.len();
        let deadline = Instant::now() + wait;
        while out.len() - first < max {
            if self.pending.as_slice().is_empty() {
                if let Some(p) = self.pending_positions.take() {
                    merge(&mut self.fetched, &p); // the whole chunk is taken
                }
                // Wait only for the first record.
                let until = if out.len() == first {
                    deadline
                } else {
                    Instant::now()
                };
                match self.fetcher.next(until) {
                    None => break,
                    Some(Fetched::Fatal(reason)) => {
                        return Err(RuntimeError::KafkaState(format!(
                            "source {}: {reason}",
                            self.name
                        )))
                    }
                    Some(Fetched::Chunk { records, positions }) => {
                        out.reserve(records.len().min(max - (out.len() - first)));
                        self.pending = records.into_iter();
                        self.pending_positions = Some(positions);
                        continue;
                    }
                }
            }
            let Some(record) = self.pending.next() else {
                continue;
            };
            let (partition, offset) = (record.meta.partition, record.meta.offset);
            let topic = record.meta.topic.as_str();
            let next = self
                .positions
                .get(topic)
                .and_then(|m| m.get(&partition))
                .copied();
            if next.is_some_and(|n| offset < n) {
                continue; // read in a committed batch already
            }
            if let Some(limit) = &self.limit {
                let end = limit.get(topic).and_then(|m| m.get(&partition));
                if end.is_none_or(|e| offset >= *e) {
                    continue; // past the replayed batch
                }
            }
            advance(&mut self.positions, topic, partition, offset);
            out.push(record);
        }
        if self.pending.as_slice().is_empty() {
            if let Some(p) = self.pending_positions.take() {
                merge(&mut self.fetched, &p);
            }
        }
        Ok(out.len() - first)
    }

    /// Whether the source has read up to the end offsets seen at open. Also trusts
    /// the reader's positions as of the chunks wholly taken, which move past
    /// transaction markers and aborted records the source never sees.
    pub fn caught_up(&self) -> bool {
        if caught_up(&self.positions, &self.ends) {
            return true;
        }
        if !self.pending.as_slice().is_empty() {
            return false;
        }
        let mut positions = self.positions.clone();
        merge(&mut positions, &self.fetched);
        caught_up(&positions, &self.ends)
    }
}

/// Move `into` forward to the next offsets in `from` (a chunk names only the
/// partitions it covers).
fn merge(into: &mut Offsets, from: &Offsets) {
    for (topic, parts) in from {
        for (p, next) in parts {
            if *next > 0 {
                advance(into, topic, *p, next - 1);
            }
        }
    }
}

/// Every partition's bounds with the runtime's own Metadata and ListOffsets requests,
/// on a runtime of its own (the source opens on the blocking pool).
fn native_bounds(
    spec: &NativeSpec,
    topics: &[String],
    time: Option<i64>,
) -> Result<BTreeMap<(String, i32), PartitionBounds>, RuntimeError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RuntimeError::KafkaState(format!("a runtime for ListOffsets: {e}")))?;
    runtime
        .block_on(wire_meta::partition_bounds(spec, topics, time))
        .map_err(RuntimeError::KafkaState)
}

/// Every partition's bounds through a librdkafka consumer (`client = "librdkafka"`).
fn librdkafka_bounds(
    consumer: &BaseConsumer,
    topics: &[String],
    time: Option<i64>,
    timeout: Duration,
) -> Result<BTreeMap<(String, i32), PartitionBounds>, RuntimeError> {
    let mut out = BTreeMap::new();
    for topic in topics {
        for p in partitions(consumer, topic, timeout)? {
            let (earliest, latest) = consumer
                .fetch_watermarks(topic, p, timeout)
                .map_err(RuntimeError::kafka(format!("list offsets of {topic}/{p}")))?;
            let at_time = match time {
                Some(ms) => offset_for_time(consumer, topic, p, ms, timeout)?,
                None => None,
            };
            let bounds = PartitionBounds {
                earliest,
                latest,
                at_time,
            };
            out.insert((topic.clone(), p), bounds);
        }
    }
    Ok(out)
}

/// The partitions of `topic`, waiting up to `timeout` for it to exist.
fn partitions(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, RuntimeError> {
    let deadline = Instant::now() + timeout;
    loop {
        let md = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(RuntimeError::kafka(format!("metadata of topic {topic}")))?;
        let found = md.topics().iter().find(|t| t.name() == topic);
        let problem = match found {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                return Ok(t.partitions().iter().map(|p| p.id()).collect());
            }
            Some(t) => format!("{:?}", t.error()),
            None => "not in metadata".to_string(),
        };
        if Instant::now() >= deadline {
            return Err(RuntimeError::KafkaState(format!(
                "topic {topic} is not available: {problem}"
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The first offset of `topic`/`partition` with a timestamp ≥ `ms`; `None` if none.
fn offset_for_time(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    ms: i64,
    timeout: Duration,
) -> Result<Option<i64>, RuntimeError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(ms))
        .map_err(RuntimeError::kafka("offsets for time"))?;
    let got = consumer
        .offsets_for_times(tpl, timeout)
        .map_err(RuntimeError::kafka(format!(
            "offsets for time of {topic}/{partition}"
        )))?;
    Ok(got
        .find_partition(topic, partition)
        .and_then(|e| match e.offset() {
            Offset::Offset(o) if o >= 0 => Some(o),
            _ => None,
        }))
}
