//! A job source read from Kafka with rdkafka's `BaseConsumer`, by manual assignment.
//!
//! Manual assignment, not a consumer group: the job's committed offsets live with its
//! output (the PostgreSQL transaction or the checkpoint file), so the group's offsets
//! would be a second, lagging record (Spark's Kafka source does the same). At open
//! every partition of every topic gets a numeric start offset (committed offset, or
//! earliest / latest / by timestamp through ListOffsets), so each commit can record
//! every assigned partition. The end offsets seen at open are kept for
//! `available_now`.
//!
//! Polling is blocking (librdkafka's queue); callers run it off the async workers'
//! critical path (`block_in_place`).

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::error::RuntimeError;
use super::offsets::{advance, caught_up, start_position, Offsets, StartPosition};
use crate::plan::SourcePlan;
use crate::row::{SourceMeta, SourceRecord};

/// A librdkafka config for the job's clients.
pub fn client_config(bootstrap: &str, job: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
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
    consumer: BaseConsumer,
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
    ) -> Result<KafkaSource, RuntimeError> {
        let consumer: BaseConsumer = client_config(bootstrap, job)
            .create()
            .map_err(RuntimeError::kafka("create a consumer"))?;
        let mut positions = Offsets::new();
        let mut ends = Offsets::new();
        let mut tpl = TopicPartitionList::new();
        for topic in &plan.topics {
            for p in partitions(&consumer, topic, timeout)? {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p, timeout)
                    .map_err(RuntimeError::kafka(format!("list offsets of {topic}/{p}")))?;
                let start = start_position(plan.start, committed, topic, p)
                    .map_err(|reason| RuntimeError::config(job, reason))?;
                let pos = match start {
                    StartPosition::At(o) => o,
                    StartPosition::Earliest => low,
                    StartPosition::Latest => high,
                    StartPosition::Timestamp(ms) => {
                        offset_for_time(&consumer, topic, p, ms, timeout)?.unwrap_or(high)
                    }
                };
                positions.entry(topic.clone()).or_default().insert(p, pos);
                ends.entry(topic.clone()).or_default().insert(p, high);
                tpl.add_partition_offset(topic, p, Offset::Offset(pos))
                    .map_err(RuntimeError::kafka(format!("assign {topic}/{p}")))?;
            }
        }
        consumer
            .assign(&tpl)
            .map_err(RuntimeError::kafka("assign partitions"))?;
        tracing::info!(source = %plan.name, ?positions, "source assigned");
        Ok(KafkaSource {
            name: plan.name.clone(),
            consumer,
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

    /// Poll up to `max` records: waits up to `wait` for the first, then takes what is
    /// already fetched.
    pub fn poll_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<SourceRecord>, RuntimeError> {
        let mut out = Vec::new();
        let mut timeout = wait;
        while out.len() < max {
            let message = match self.consumer.poll(timeout) {
                None => break,
                Some(Ok(m)) => m,
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    return Err(RuntimeError::KafkaState(format!(
                        "source {}: fatal consume error {code}",
                        self.name
                    )))
                }
                Some(Err(e)) => {
                    // Transient (a broker restarting, a leader moving): librdkafka retries.
                    tracing::warn!(source = %self.name, "consume error: {e}");
                    continue;
                }
            };
            timeout = Duration::ZERO;
            let (topic, partition, offset) =
                (message.topic(), message.partition(), message.offset());
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
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                h.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(SourceRecord {
                meta: SourceMeta {
                    key: message
                        .key()
                        .map(|k| String::from_utf8_lossy(k).into_owned()),
                    headers,
                    topic: topic.to_string(),
                    partition,
                    offset,
                    timestamp_ms: message.timestamp().to_millis().unwrap_or(-1),
                },
                value: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            });
            advance(&mut self.positions, topic, partition, offset);
        }
        Ok(out)
    }

    /// Whether the source has read up to the end offsets seen at open. Also asks
    /// librdkafka's positions, which move past transaction markers and aborted records
    /// the source never sees.
    pub fn caught_up(&self) -> bool {
        if caught_up(&self.positions, &self.ends) {
            return true;
        }
        let Ok(tpl) = self.consumer.position() else {
            return false;
        };
        let mut positions = self.positions.clone();
        for e in tpl.elements() {
            if let Offset::Offset(o) = e.offset() {
                if o > 0 {
                    advance(&mut positions, e.topic(), e.partition(), o - 1);
                }
            }
        }
        caught_up(&positions, &self.ends)
    }
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
