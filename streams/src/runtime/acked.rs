//! A producer whose delivery reports are counted, not each awaited: a batch enqueues
//! every record (no future, no channel, no allocation per record) and then waits once
//! until librdkafka has reported as many deliveries as were enqueued. The reports
//! arrive on rdkafka's `ThreadedProducer` poll thread, which blocks in `poll`; the
//! waiting task is woken when the count it waits for is reached (or a record failed).
//!
//! A producer serves one batch at a time (one `send_all` after another), so the counts
//! are the batch's.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::Notify;

use super::error::RuntimeError;

#[derive(Default)]
struct Counts {
    /// Delivery reports seen (acked or failed).
    reported: u64,
    /// Wake the waiter once `reported` reaches this.
    wanted: u64,
    /// The first failure since the last reset.
    failed: Option<KafkaError>,
}

/// The producer's context: counts delivery reports.
#[derive(Default, Clone)]
pub struct AckCounter {
    counts: Arc<Mutex<Counts>>,
    wake: Arc<Notify>,
}

impl ClientContext for AckCounter {}

impl ProducerContext for AckCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut c = lock(&self.counts);
        c.reported += 1;
        if let Err((e, _)) = result {
            c.failed.get_or_insert_with(|| e.clone());
        }
        if c.reported >= c.wanted || c.failed.is_some() {
            self.wake.notify_one();
        }
    }
}

/// A `ThreadedProducer` with counted delivery reports.
pub struct AckedProducer {
    producer: ThreadedProducer<AckCounter>,
    acks: AckCounter,
}

impl AckedProducer {
    pub fn create(config: &ClientConfig, context: &str) -> Result<AckedProducer, RuntimeError> {
        let acks = AckCounter::default();
        let producer = config
            .create_with_context(acks.clone())
            .map_err(RuntimeError::kafka(context.to_string()))?;
        Ok(AckedProducer { producer, acks })
    }

    /// The producer, for transactions.
    pub fn inner(&self) -> &ThreadedProducer<AckCounter> {
        &self.producer
    }

    /// Produce `records` (key, value) to `topic` and wait for every delivery report,
    /// up to `timeout`; `Err` if any record failed. `what` names the sender in errors.
    pub async fn send_all<K, V>(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = (Option<K>, V)>,
        timeout: Duration,
        what: &str,
    ) -> Result<(), RuntimeError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let context = || format!("{what}: produce to {topic}");
        let fail = |source| RuntimeError::Kafka {
            context: context(),
            source,
        };
        let start = {
            let mut c = lock(&self.acks.counts);
            c.failed = None;
            c.wanted = u64::MAX;
            c.reported
        };
        let sent = async {
            let mut enqueued = 0u64;
            for (key, value) in records {
                let key: Option<&[u8]> = key.as_ref().map(|k| k.as_ref());
                let mut record: BaseRecord<'_, [u8], [u8]> =
                    BaseRecord::to(topic).payload(value.as_ref());
                if let Some(k) = key {
                    record = record.key(k);
                }
                loop {
                    match self.producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            record = back;
                            if let Some(e) = lock(&self.acks.counts).failed.take() {
                                return Err(fail(e));
                            }
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Err((e, _)) => return Err(fail(e)),
                    }
                }
                enqueued += 1;
            }
            let target = start + enqueued;
            loop {
                let woken = self.acks.wake.notified();
                {
                    let mut c = lock(&self.acks.counts);
                    if let Some(e) = c.failed.take() {
                        return Err(fail(e));
                    }
                    if c.reported >= target {
                        return Ok(());
                    }
                    c.wanted = target;
                }
                woken.await;
            }
        };
        tokio::time::timeout(timeout, sent).await.map_err(|_| {
            RuntimeError::KafkaState(format!(
                "{what}: records to {topic} not acknowledged within {timeout:?}"
            ))
        })?
    }
}

/// The counts, also after a panic elsewhere held the lock (they stay consistent).
fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}
