//! The Kafka sink: rows as JSON values to a topic, keyed by an expression over the row
//! (absent or null: no key), at-least-once or exactly-once.
//!
//! At-least-once: an idempotent producer (no duplicates from its own retries, KIP-98)
//! and every ack awaited before the batch commits; a kill between the acks and the
//! checkpoint replays the batch, so its records may appear twice.
//!
//! Exactly-once: the read-process-write pattern of Kafka transactions (KIP-98, KIP-447).
//! `transactional.id = rivulet-stream-<job>-<sink>`, so a restarted job fences the
//! killed one and aborts its open transaction (InitProducerId). One transaction per
//! micro-batch: begin, produce the rows (and, when the runtime asks, the batch's dead
//! letters), `send_offsets_to_transaction` with the batch's end offsets for the consumer
//! group `rivulet-stream-<job>-<sink>` and `rivulet-batch=<N>` as each offset's
//! metadata, commit. The group is per sink, not per job, so that each exactly-once
//! Kafka sink records its own last batch. Nothing reads with that group: the committed
//! offsets are the sink's record of which batch it holds ([`KafkaSink::last_committed_batch`]),
//! read back through OffsetFetch. A failed or fenced transaction is aborted (when it
//! still can be) and stops the job; a restart resumes.
//!
//! Written with Produce requests of the runtime's own ([`NativeProducer`], the
//! default) or, with `client = "librdkafka"`, a librdkafka producer; both do the same.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use rivulet_protocol::tls::Connector;
use rivulet_protocol::Compression;
use serde_json::Value;

use super::acked::AckedProducer;
use super::error::RuntimeError;
use super::offsets::Offsets;
use super::source::client_config;
use super::wire_meta::NativeSpec;
use super::wire_produce::NativeProducer;
use crate::expr::Expr;
use crate::operators::DeadLetter;
use crate::plan::{Guarantee, KafkaClient};
use crate::row::Row;

const METADATA_PREFIX: &str = "rivulet-batch=";

/// The offset metadata recording batch `batch_id`.
pub fn batch_metadata(batch_id: u64) -> String {
    format!("{METADATA_PREFIX}{batch_id}")
}

/// The batch id in offset metadata written by [`batch_metadata`].
pub fn parse_batch_metadata(metadata: &str) -> Option<u64> {
    metadata.strip_prefix(METADATA_PREFIX)?.parse().ok()
}

/// The transactional id of an exactly-once Kafka sink.
pub fn transactional_id(job: &str, sink: &str) -> String {
    format!("rivulet-stream-{job}-{sink}")
}

/// The consumer group an exactly-once Kafka sink commits the batch's offsets to.
pub fn offsets_group(job: &str, sink: &str) -> String {
    format!("rivulet-stream-{job}-{sink}")
}

/// A row's record key: the key expression's value, strings as they are (a field's
/// string borrowed from the row), other values as JSON text; `None` without an
/// expression or for null.
pub fn record_key<'r>(key: Option<&'r Expr>, row: &'r Row) -> Result<Option<Cow<'r, str>>, String> {
    let Some(expr) = key else {
        return Ok(None);
    };
    // A slot row's string field, borrowed from its bytes without a `Value`.
    if let Expr::Column(name) = expr {
        if let Some(text) = row.field_text(name) {
            return Ok(Some(Cow::Borrowed(text)));
        }
    }
    match expr.eval_borrowed(row).map_err(|e| e.to_string())? {
        Cow::Borrowed(Value::Null) | Cow::Owned(Value::Null) => Ok(None),
        Cow::Borrowed(Value::String(s)) => Ok(Some(Cow::Borrowed(s.as_str()))),
        Cow::Owned(Value::String(s)) => Ok(Some(Cow::Owned(s))),
        other => Ok(Some(Cow::Owned(other.to_string()))),
    }
}

/// A record to produce: its key and value.
type Encoded<'r> = (Option<Cow<'r, str>>, Cow<'r, [u8]>);

/// What writes the sink's records.
enum Backend {
    /// Produce requests of the runtime's own ([`NativeProducer`]).
    Native(Box<NativeProducer>),
    Librdkafka {
        producer: Arc<AckedProducer>,
        /// Exactly-once: reads the group's committed offsets and gives its metadata.
        offsets_client: Option<BaseConsumer>,
    },
}

pub struct KafkaSink {
    pub name: String,
    job: String,
    topic: String,
    key: Option<Expr>,
    guarantee: Guarantee,
    backend: Backend,
    timeout: Duration,
}

impl KafkaSink {
    /// Create the producer; exactly-once also registers the transactional id
    /// (InitProducerId: fences an older instance and aborts its open transaction).
    #[allow(clippy::too_many_arguments)]
    pub async fn connect(
        name: &str,
        job: &str,
        bootstrap: &str,
        topic: &str,
        key: Option<&Expr>,
        guarantee: Guarantee,
        client: KafkaClient,
        compression: Compression,
        timeout: Duration,
        connector: &Connector,
    ) -> Result<KafkaSink, RuntimeError> {
        let exactly_once = guarantee == Guarantee::ExactlyOnce;
        let backend = match client {
            KafkaClient::Native => {
                let spec = NativeSpec {
                    bootstrap: bootstrap.to_string(),
                    client_id: format!("rivulet-stream-{job}-{name}"),
                    timeout,
                    connector: connector.clone(),
                };
                let id = exactly_once.then(|| transactional_id(job, name));
                let state = |e| RuntimeError::KafkaState(format!("sink {name}: {e}"));
                let mut producer = NativeProducer::connect(spec, id)
                    .await
                    .map_err(state)?
                    .with_compression(compression);
                producer.prepare(topic).await.map_err(state)?;
                Backend::Native(Box::new(producer))
            }
            KafkaClient::Librdkafka => {
                let codec = rivulet_protocol::compression::codec_name(compression);
                Self::librdkafka(
                    name,
                    job,
                    bootstrap,
                    connector,
                    exactly_once,
                    codec,
                    timeout,
                )
                .await?
            }
        };
        Ok(KafkaSink {
            name: name.to_string(),
            job: job.to_string(),
            topic: topic.to_string(),
            key: key.cloned(),
            guarantee,
            backend,
            timeout,
        })
    }

    async fn librdkafka(
        name: &str,
        job: &str,
        bootstrap: &str,
        connector: &Connector,
        exactly_once: bool,
        compression: &str,
        timeout: Duration,
    ) -> Result<Backend, RuntimeError> {
        let mut c = rdkafka::config::ClientConfig::new();
        for (key, value) in connector.client_properties() {
            c.set(key, value);
        }
        c.set("bootstrap.servers", bootstrap)
            .set("client.id", format!("rivulet-stream-{job}-{name}"))
            .set("enable.idempotence", "true")
            .set("compression.type", compression)
            .set("acks", "all")
            // A batch waits for its acks right after producing: lingering only adds latency.
            .set("linger.ms", "1");
        if exactly_once {
            c.set("transactional.id", transactional_id(job, name));
        }
        let producer = Arc::new(AckedProducer::create(
            &c,
            &format!("sink {name}: create the producer"),
        )?);
        let offsets_client = if exactly_once {
            let mut cc = client_config(bootstrap, job, connector);
            cc.set("group.id", offsets_group(job, name));
            let p = producer.clone();
            let sink = name.to_string();
            super::blocking(move || {
                p.inner()
                    .init_transactions(timeout)
                    .map_err(RuntimeError::kafka(format!(
                        "sink {sink}: init transactions"
                    )))
            })
            .await?;
            Some(cc.create().map_err(RuntimeError::kafka(format!(
                "sink {name}: create the offsets client"
            )))?)
        } else {
            None
        };
        Ok(Backend::Librdkafka {
            producer,
            offsets_client,
        })
    }

    pub fn exactly_once(&self) -> bool {
        self.guarantee == Guarantee::ExactlyOnce
    }

    /// The last batch this exactly-once sink committed (0: none): the batch id in the
    /// metadata of its group's committed offsets for the partitions of `topics` (the
    /// job's sources; one transaction commits all of them, so they agree).
    pub async fn last_committed_batch(&mut self, topics: &[String]) -> Result<u64, RuntimeError> {
        if !self.exactly_once() {
            return Ok(0);
        }
        let group = offsets_group(&self.job, &self.name);
        let metadata = match &mut self.backend {
            Backend::Native(p) => p.committed_metadata(&group, topics).await.map_err(|e| {
                RuntimeError::KafkaState(format!("sink {}: read committed offsets: {e}", self.name))
            })?,
            Backend::Librdkafka {
                offsets_client: Some(client),
                ..
            } => librdkafka_committed(client, &self.name, topics, self.timeout)?,
            Backend::Librdkafka { .. } => return Ok(0),
        };
        Ok(metadata
            .iter()
            .filter_map(|m| parse_batch_metadata(m))
            .max()
            .unwrap_or(0))
    }

    /// At-least-once: produce `rows` and wait for every ack.
    pub async fn write(&mut self, rows: &[Row]) -> Result<(), RuntimeError> {
        let records = encode(&self.name, self.key.as_ref(), rows)?;
        let what = format!("sink {}", self.name);
        match &mut self.backend {
            Backend::Native(p) => p
                .send(&self.topic, records.iter().map(as_record))
                .await
                .map_err(|e| RuntimeError::KafkaState(format!("{what}: {e}"))),
            Backend::Librdkafka { producer, .. } => {
                let records = records.iter().map(as_record);
                producer
                    .send_all(&self.topic, records, self.timeout, &what)
                    .await
            }
        }
    }

    /// Exactly-once: one transaction holding `rows`, `dead_letters` (to their topic)
    /// and the batch's end offsets with `batch_id` as metadata. On `Err` nothing of it
    /// is visible to read_committed readers and the job must stop.
    pub async fn write_transaction(
        &mut self,
        rows: &[Row],
        dead_letters: Option<(&str, &[DeadLetter])>,
        batch_id: u64,
        end: &Offsets,
    ) -> Result<(), RuntimeError> {
        if !self.exactly_once() {
            return Err(RuntimeError::KafkaState(format!(
                "sink {}: not an exactly-once sink",
                self.name
            )));
        }
        let records = encode(&self.name, self.key.as_ref(), rows)?;
        let letters: Option<(&str, Vec<String>)> = dead_letters.map(|(t, ls)| {
            let values = ls.iter().map(|d| d.to_record_value().to_string()).collect();
            (t, values)
        });
        let topic = self.topic.clone();
        let name = self.name.clone();
        let state = |e: String| RuntimeError::KafkaState(format!("sink {name}: {e}"));
        match &mut self.backend {
            Backend::Native(p) => {
                p.begin().map_err(state)?;
                let group = offsets_group(&self.job, &self.name);
                let offsets = end
                    .iter()
                    .flat_map(|(t, ps)| ps.iter().map(move |(p, o)| ((t.clone(), *p), *o)))
                    .collect();
                let result = async {
                    p.send(&topic, records.iter().map(as_record)).await?;
                    if let Some((t, values)) = &letters {
                        p.send(t, values.iter().map(|v| (None, v.as_bytes())))
                            .await?;
                    }
                    p.send_offsets(&group, &offsets, &batch_metadata(batch_id))
                        .await?;
                    p.end(true)
                        .await
                        .map_err(|e| format!("commit batch {batch_id}: {e}"))
                }
                .await;
                if let Err(e) = result {
                    if p.in_transaction() {
                        if let Err(abort) = p.end(false).await {
                            tracing::warn!(sink = %name, "after a failed commit: {abort}");
                        }
                    }
                    return Err(state(e));
                }
                Ok(())
            }
            Backend::Librdkafka {
                producer,
                offsets_client,
            } => {
                let Some(client) = offsets_client else {
                    return Err(state("no offsets client".into()));
                };
                let producer = producer.clone();
                let cgm = client
                    .group_metadata()
                    .ok_or_else(|| state("no consumer group metadata".into()))?;
                let mut tpl = TopicPartitionList::new();
                let metadata = batch_metadata(batch_id);
                for (topic, parts) in end {
                    for (p, o) in parts {
                        let mut e = tpl.add_partition(topic, *p);
                        e.set_offset(Offset::Offset(*o))
                            .map_err(RuntimeError::kafka("offsets to commit"))?;
                        e.set_metadata(metadata.as_str());
                    }
                }
                producer
                    .inner()
                    .begin_transaction()
                    .map_err(RuntimeError::kafka(format!(
                        "sink {name}: begin a transaction"
                    )))?;
                let what = format!("sink {name}");
                let result = async {
                    producer
                        .send_all(&topic, records.iter().map(as_record), self.timeout, &what)
                        .await?;
                    if let Some((t, values)) = &letters {
                        let values = values.iter().map(|v| (None::<&[u8]>, v.as_bytes()));
                        producer.send_all(t, values, self.timeout, &what).await?;
                    }
                    let (p, t, name) = (producer.clone(), self.timeout, name.clone());
                    super::blocking(move || {
                        p.inner()
                            .send_offsets_to_transaction(&tpl, &cgm, t)
                            .map_err(RuntimeError::kafka(format!(
                                "sink {name}: send offsets to the transaction"
                            )))?;
                        p.inner()
                            .commit_transaction(t)
                            .map_err(RuntimeError::kafka(format!(
                                "sink {name}: commit batch {batch_id}"
                            )))
                    })
                    .await
                }
                .await;
                if let Err(e) = result {
                    // Abort what can be aborted (a fenced producer cannot: its successor's
                    // InitProducerId aborted it already) so readers are not held at the LSO
                    // until the transaction times out.
                    let (p, t) = (producer.clone(), self.timeout);
                    if let Err(abort) = super::blocking(move || {
                        p.inner()
                            .abort_transaction(t)
                            .map_err(RuntimeError::kafka("abort the transaction"))
                    })
                    .await
                    {
                        tracing::warn!(sink = %name, "after a failed commit: {abort}");
                    }
                    return Err(e);
                }
                Ok(())
            }
        }
    }
}

/// Each row's key and value: a source row passed through whole is its record's bytes
/// ([`Row::source_bytes`]), other rows are encoded.
fn encode<'r>(
    sink: &str,
    key: Option<&'r Expr>,
    rows: &'r [Row],
) -> Result<Vec<Encoded<'r>>, RuntimeError> {
    let mut encoded = Vec::with_capacity(rows.len());
    for row in rows {
        let key = record_key(key, row).map_err(|reason| {
            RuntimeError::KafkaState(format!("sink {sink}: key of a row: {reason}"))
        })?;
        let value = match row.source_bytes.as_deref() {
            Some(bytes) => Cow::Borrowed(bytes),
            None => Cow::Owned(serde_json::to_vec(&row.value).map_err(|e| {
                RuntimeError::KafkaState(format!("sink {sink}: encode a row: {e}"))
            })?),
        };
        encoded.push((key, value));
    }
    Ok(encoded)
}

/// A (key, value) pair as the producers take it.
fn as_record<K: AsRef<str>, V: AsRef<[u8]>>((k, v): &(Option<K>, V)) -> (Option<&[u8]>, &[u8]) {
    (k.as_ref().map(|k| k.as_ref().as_bytes()), v.as_ref())
}

/// What a librdkafka offsets client reads as the group's committed offsets' metadata.
fn librdkafka_committed(
    client: &BaseConsumer,
    sink: &str,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<String>, RuntimeError> {
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let md = client
            .fetch_metadata(Some(topic), timeout)
            .map_err(RuntimeError::kafka(format!("metadata of topic {topic}")))?;
        for t in md.topics().iter().filter(|t| t.name() == topic) {
            for p in t.partitions() {
                tpl.add_partition(topic, p.id());
            }
        }
    }
    if tpl.count() == 0 {
        return Ok(Vec::new());
    }
    // The group's coordinator may still be coming up (the offsets topic is created
    // on first use): its retriable answers are retried until the timeout.
    let deadline = std::time::Instant::now() + timeout;
    let committed = loop {
        match client.committed_offsets(tpl.clone(), timeout) {
            Ok(c) => break c,
            Err(e) if is_coordinator_retriable(&e) && std::time::Instant::now() < deadline => {
                tracing::debug!(sink = %sink, "reading committed offsets: {e}; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(RuntimeError::kafka(format!(
                    "sink {sink}: read committed offsets"
                ))(e))
            }
        }
    };
    Ok(committed
        .elements()
        .iter()
        .map(|e| e.metadata().to_string())
        .collect())
}

/// Errors a coordinator answers while it moves or loads: retried.
fn is_coordinator_retriable(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::NotCoordinator
                | C::CoordinatorLoadInProgress
                | C::CoordinatorNotAvailable
                | C::RequestTimedOut
        )
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(v: Value) -> Row {
        match v {
            Value::Object(m) => Row::new(m, 0),
            _ => unreachable!(),
        }
    }

    #[test]
    fn batch_metadata_round_trips_and_rejects_foreign_metadata() {
        assert_eq!(parse_batch_metadata(&batch_metadata(42)), Some(42));
        assert_eq!(parse_batch_metadata(""), None);
        assert_eq!(parse_batch_metadata("rivulet-batch=x"), None);
        assert_eq!(parse_batch_metadata("other=5"), None);
    }

    #[test]
    fn keys_come_from_the_key_expression() {
        let r = row(json!({"id": "a1", "n": 7, "none": null}));
        let key = |e: &str| {
            record_key(Some(&Expr::parse(e).unwrap()), &r)
                .unwrap()
                .map(Cow::into_owned)
        };
        assert_eq!(key("id"), Some("a1".to_string()));
        assert_eq!(key("n"), Some("7".to_string()));
        assert_eq!(key("id || 'x'"), Some("a1x".to_string()));
        assert_eq!(key("none"), None);
        assert_eq!(record_key(None, &r).unwrap(), None);
        assert_eq!(transactional_id("j", "out"), "rivulet-stream-j-out");
    }
}
