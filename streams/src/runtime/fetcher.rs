//! A source's fetch thread: reads the assigned partitions — natively with Kafka Fetch
//! requests ([`super::wire_fetch`], the default) or by polling an assigned librdkafka
//! `BaseConsumer` — and hands chunks of owned records to the runtime over a bounded
//! channel, so reading records runs beside the executor and the sinks instead of
//! between batches.
//!
//! Every chunk carries the reader's positions taken right after its records were
//! read: they count as the source's only once the runtime took the whole chunk, so
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
use super::wire_fetch::{self, NativeSpec};
use crate::row::{SourceMeta, SourceRecord};

/// Most records per chunk.
const CHUNK: usize = 1_000;
/// Chunks the channel holds before the thread waits (librdkafka prefetches beyond).
const DEPTH: usize = 64;
/// The same for the native reader, whose chunks are whole fetch responses (up to
/// 8 MiB of records each).
const NATIVE_DEPTH: usize = 8;
/// Longest one poll of the thread waits; also how soon it sees a stop.
const POLL: Duration = Duration::from_millis(50);

/// What the fetch thread sends.
pub enum Fetched {
    /// Records in poll order, then the next offsets after them of the partitions the
    /// chunk covers (last polled offset + 1, past markers and aborted records stepped
    /// over); a partition missing there has not moved.
    Chunk {
        records: Vec<SourceRecord>,
        positions: Offsets,
    },
    /// The reader gave up on the source.
    Fatal(String),
}

/// A fetch thread's stop signal: a flag its loops check, and a wake-up for the native
/// reader's runtime, which would otherwise see the flag only after its current wait.
#[derive(Debug, Default)]
pub struct StopSignal {
    flag: AtomicBool,
    wake: tokio::sync::Notify,
}

impl StopSignal {
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // Kept as a permit if nothing waits yet.
        self.wake.notify_one();
    }

    /// Until the signal is set.
    pub async fn wait(&self) {
        if !self.is_set() {
            self.wake.notified().await;
        }
    }
}

/// The thread and the runtime's end of its channel. Dropping it stops the thread.
pub struct Fetcher {
    rx: Option<Receiver<Fetched>>,
    stop: Arc<StopSignal>,
    thread: Option<JoinHandle<()>>,
}

impl Fetcher {
    /// Start polling `consumer` (already assigned) on a thread of its own.
    pub fn start(source: &str, consumer: BaseConsumer) -> Result<Fetcher, RuntimeError> {
        let name = source.to_string();
        Fetcher::spawn(source, DEPTH, move |tx, stop| {
            fetch_loop(&name, &consumer, &tx, &stop)
        })
    }

    /// Start fetching the partitions of `start` from their next offsets with Kafka
    /// Fetch requests of this crate's own ([`super::wire_fetch`]).
    pub fn start_native(
        source: &str,
        spec: NativeSpec,
        start: Offsets,
    ) -> Result<Fetcher, RuntimeError> {
        let name = source.to_string();
        Fetcher::spawn(source, NATIVE_DEPTH, move |tx, stop| {
            wire_fetch::run(&name, spec, start, tx, stop)
        })
    }

    /// Run `body` on a thread named after the source, with the sending end of a
    /// channel of `depth` chunks and the stop flag.
    fn spawn(
        source: &str,
        depth: usize,
        body: impl FnOnce(SyncSender<Fetched>, Arc<StopSignal>) + Send + 'static,
    ) -> Result<Fetcher, RuntimeError> {
        let (tx, rx) = sync_channel(depth);
        let stop = Arc::new(StopSignal::default());
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fetch-{source}"))
            .spawn(move || body(tx, flag))
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
        self.stop.set();
        // A thread blocked on a full channel sees it closed.
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn fetch_loop(source: &str, consumer: &BaseConsumer, tx: &SyncSender<Fetched>, stop: &StopSignal) {
    let mut sent = Offsets::new();
    while !stop.is_set() {
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
                    if stop.is_set() {
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
