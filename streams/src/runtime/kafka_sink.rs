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

use std::borrow::Cow;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use super::acked::AckedProducer;
use super::error::RuntimeError;
use super::offsets::Offsets;
use super::source::client_config;
use crate::expr::Expr;
use crate::operators::DeadLetter;
use crate::plan::Guarantee;
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

pub struct KafkaSink {
    pub name: String,
    topic: String,
    key: Option<Expr>,
    guarantee: Guarantee,
    producer: std::sync::Arc<AckedProducer>,
    /// Exactly-once: reads the group's committed offsets and gives its metadata.
    offsets_client: Option<BaseConsumer>,
    timeout: Duration,
}

impl KafkaSink {
    /// Create the producer; exactly-once also registers the transactional id
    /// (InitProducerId: fences an older instance and aborts its open transaction).
    pub async fn connect(
        name: &str,
        job: &str,
        bootstrap: &str,
        topic: &str,
        key: Option<&Expr>,
        guarantee: Guarantee,
        timeout: Duration,
    ) -> Result<KafkaSink, RuntimeError> {
        let mut c = rdkafka::config::ClientConfig::new();
        c.set("bootstrap.servers", bootstrap)
            .set("client.id", format!("rivulet-stream-{job}-{name}"))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // A batch waits for its acks right after producing: lingering only adds latency.
            .set("linger.ms", "1");
        let exactly_once = guarantee == Guarantee::ExactlyOnce;
        if exactly_once {
            c.set("transactional.id", transactional_id(job, name));
        }
        let producer = std::sync::Arc::new(AckedProducer::create(
            &c,
            &format!("sink {name}: create the producer"),
        )?);
        let offsets_client = if exactly_once {
            let mut cc = client_config(bootstrap, job);
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
        Ok(KafkaSink {
            name: name.to_string(),
            topic: topic.to_string(),
            key: key.cloned(),
            guarantee,
            producer,
            offsets_client,
            timeout,
        })
    }

    pub fn exactly_once(&self) -> bool {
        self.guarantee == Guarantee::ExactlyOnce
    }

    /// The last batch this exactly-once sink committed (0: none): the batch id in the
    /// metadata of its group's committed offsets for the partitions of `topics` (the
    /// job's sources; one transaction commits all of them, so they agree).
    pub fn last_committed_batch(&self, topics: &[String]) -> Result<u64, RuntimeError> {
        let Some(client) = &self.offsets_client else {
            return Ok(0);
        };
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            let md = client
                .fetch_metadata(Some(topic), self.timeout)
                .map_err(RuntimeError::kafka(format!("metadata of topic {topic}")))?;
            for t in md.topics().iter().filter(|t| t.name() == topic) {
                for p in t.partitions() {
                    tpl.add_partition(topic, p.id());
                }
            }
        }
        if tpl.count() == 0 {
            return Ok(0);
        }
        // The group's coordinator may still be coming up (the offsets topic is created
        // on first use): its retriable answers are retried until the timeout.
        let deadline = std::time::Instant::now() + self.timeout;
        let committed = loop {
            match client.committed_offsets(tpl.clone(), self.timeout) {
                Ok(c) => break c,
                Err(e) if is_coordinator_retriable(&e) && std::time::Instant::now() < deadline => {
                    tracing::debug!(sink = %self.name, "reading committed offsets: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(RuntimeError::kafka(format!(
                        "sink {}: read committed offsets",
                        self.name
                    ))(e))
                }
            }
        };
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| parse_batch_metadata(e.metadata()))
            .max()
            .unwrap_or(0))
    }

    /// At-least-once: produce `rows` and wait for every ack.
    pub async fn write(&self, rows: &[Row]) -> Result<(), RuntimeError> {
        let records = self.encode(rows)?;
        self.send_all(&self.topic, &records).await
    }

    /// Exactly-once: one transaction holding `rows`, `dead_letters` (to their topic)
    /// and the batch's end offsets with `batch_id` as metadata. On `Err` nothing of it
    /// is visible to read_committed readers and the job must stop.
    pub async fn write_transaction(
        &self,
        rows: &[Row],
        dead_letters: Option<(&str, &[DeadLetter])>,
        batch_id: u64,
        end: &Offsets,
    ) -> Result<(), RuntimeError> {
        let Some(client) = &self.offsets_client else {
            return Err(RuntimeError::KafkaState(format!(
                "sink {}: not an exactly-once sink",
                self.name
            )));
        };
        let records = self.encode(rows)?;
        let cgm = client.group_metadata().ok_or_else(|| {
            RuntimeError::KafkaState(format!("sink {}: no consumer group metadata", self.name))
        })?;
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
        self.producer
            .inner()
            .begin_transaction()
            .map_err(RuntimeError::kafka(format!(
                "sink {}: begin a transaction",
                self.name
            )))?;
        let result = async {
            self.send_all(&self.topic, &records).await?;
            if let Some((topic, letters)) = dead_letters {
                let values: Vec<(Option<String>, String)> = letters
                    .iter()
                    .map(|d| (None, d.to_record_value().to_string()))
                    .collect();
                self.send_all(topic, &values).await?;
            }
            let (p, t, name) = (self.producer.clone(), self.timeout, self.name.clone());
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
            let (p, t) = (self.producer.clone(), self.timeout);
            if let Err(abort) = super::blocking(move || {
                p.inner()
                    .abort_transaction(t)
                    .map_err(RuntimeError::kafka("abort the transaction"))
            })
            .await
            {
                tracing::warn!(sink = %self.name, "after a failed commit: {abort}");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Each row's key and value: a source row passed through whole is its record's
    /// bytes ([`Row::source_bytes`]), other rows are encoded.
    fn encode<'r>(&'r self, rows: &'r [Row]) -> Result<Vec<Encoded<'r>>, RuntimeError> {
        let mut encoded = Vec::with_capacity(rows.len());
        for row in rows {
            let key = record_key(self.key.as_ref(), row).map_err(|reason| {
                RuntimeError::KafkaState(format!("sink {}: key of a row: {reason}", self.name))
            })?;
            let value = match row.source_bytes.as_deref() {
                Some(bytes) => Cow::Borrowed(bytes),
                None => Cow::Owned(serde_json::to_vec(&row.value).map_err(|e| {
                    RuntimeError::KafkaState(format!("sink {}: encode a row: {e}", self.name))
                })?),
            };
            encoded.push((key, value));
        }
        Ok(encoded)
    }

    /// Produce `records` (key, value) to `topic` and wait for every delivery report.
    async fn send_all<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        topic: &str,
        records: &[(Option<K>, V)],
    ) -> Result<(), RuntimeError> {
        self.producer
            .send_all(
                topic,
                records
                    .iter()
                    .map(|(k, v)| (k.as_ref().map(|k| k.as_ref().as_bytes()), v.as_ref())),
                self.timeout,
                &format!("sink {}", self.name),
            )
            .await
    }
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
