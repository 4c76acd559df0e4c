//! A source's fetch thread: owns the assigned `BaseConsumer`, polls it in a loop and
//! hands chunks of owned records to the runtime over a bounded channel, so copying
//! records out of librdkafka runs beside the executor and the sinks instead of
//! between batches.
//!
//! Every chunk carries librdkafka's positions taken right after its records were
//! polled: they count as the source's only once the runtime took the whole chunk, so
//! "caught up" (which trusts those positions to step over transaction markers and
//! aborted records) is never claimed while polled records wait in the channel.
//! Filtering by the source's own positions and a replay's limit stays with the runtime
//! ([`super::source::KafkaSource`]): the thread reads on, ahead of what a batch takes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::Offset;

use super::error::RuntimeError;
use super::offsets::{advance, Offsets};
use crate::row::{SourceMeta, SourceRecord};

/// Most records per chunk.
const CHUNK: usize = 1_000;
/// Chunks the channel holds before the thread waits (librdkafka prefetches beyond).
const DEPTH: usize = 64;
/// Longest one poll of the thread waits; also how soon it sees a stop.
const POLL: Duration = Duration::from_millis(50);

/// What the fetch thread sends.
pub enum Fetched {
    /// Records in poll order, then librdkafka's next offsets after them (last polled
    /// offset + 1 per partition, past markers it stepped over).
    Chunk {
        records: Vec<SourceRecord>,
        positions: Offsets,
    },
    /// librdkafka gave up on the source.
    Fatal(String),
}

/// The thread and the runtime's end of its channel. Dropping it stops the thread.
pub struct Fetcher {
    rx: Option<Receiver<Fetched>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Fetcher {
    /// Start polling `consumer` (already assigned) on a thread of its own.
    pub fn start(source: &str, consumer: BaseConsumer) -> Result<Fetcher, RuntimeError> {
        let (tx, rx) = sync_channel(DEPTH);
        let stop = Arc::new(AtomicBool::new(false));
        let (name, flag) = (source.to_string(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("fetch-{source}"))
            .spawn(move || fetch_loop(&name, &consumer, &tx, &flag))
            .map_err(|e| RuntimeError::KafkaState(format!("source {source}: fetch thread: {e}")))?;
        Ok(Fetcher {
            rx: Some(rx),
            stop,
            thread: Some(thread),
        })
    }

    /// The next message, waiting until `deadline` at most (`None`: nothing by then).
    pub fn next(&self, deadline: Instant) -> Option<Fetched> {
        let rx = self.rx.as_ref()?;
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(f) => Some(f),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                Some(Fetched::Fatal("the fetch thread stopped".to_string()))
            }
        }
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // A thread blocked on a full channel sees it closed.
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn fetch_loop(source: &str, consumer: &BaseConsumer, tx: &SyncSender<Fetched>, stop: &AtomicBool) {
    let mut sent = Offsets::new();
    while !stop.load(Ordering::Relaxed) {
        let mut records = Vec::with_capacity(CHUNK);
        let mut timeout = POLL;
        while records.len() < CHUNK {
            match consumer.poll(timeout) {
                None => break,
                Some(Ok(m)) => {
                    records.push(owned(&m));
                    timeout = Duration::ZERO;
                }
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    let _ = tx.send(Fetched::Fatal(format!("fatal consume error {code}")));
                    return;
                }
                Some(Err(e)) => {
                    // Transient (a broker restarting, a leader moving): librdkafka retries.
                    tracing::warn!(%source, "consume error: {e}");
                }
            }
        }
        let positions = next_offsets(consumer);
        if records.is_empty() && positions == sent {
            continue;
        }
        sent.clone_from(&positions);
        let mut msg = Fetched::Chunk { records, positions };
        // Wait for room, still seeing a stop.
        loop {
            match tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(back)) => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    msg = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

/// librdkafka's next offset of every partition it returned records of (or stepped to).
fn next_offsets(consumer: &BaseConsumer) -> Offsets {
    let mut out = Offsets::new();
    if let Ok(tpl) = consumer.position() {
        for e in tpl.elements() {
            if let Offset::Offset(o) = e.offset() {
                if o > 0 {
                    advance(&mut out, e.topic(), e.partition(), o - 1);
                }
            }
        }
    }
    out
}

/// A polled message as an owned record.
fn owned(message: &BorrowedMessage<'_>) -> SourceRecord {
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
    SourceRecord {
        meta: SourceMeta {
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            headers,
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis().unwrap_or(-1),
        },
        value: message.payload().unwrap_or_default().into(),
    }
}
