//! Measurements of a running broker, exposed in Prometheus text format on
//! `metrics.listener` ([`http`]), with `/health` and `/ready`.
//!
//! Two kinds of numbers:
//! - counters and histograms the request path updates ([`Metrics`]): bytes
//!   and records in and out per topic, requests and their queue, local,
//!   remote and total time per API. The hot path only does relaxed atomic
//!   adds; a topic's counters are found once per partition of a request
//!   (a read-locked map lookup), never per record.
//! - gauges computed when scraped ([`render`]) from the state the broker
//!   already keeps: partition counts, under-replicated, offline and
//!   under-min-ISR partitions, log end offset, high watermark and size per
//!   partition, consumer-group lag, the controller, open connections,
//!   parked acks=all produces. Nothing is maintained for them in between.
//!
//! Definitions:
//! - *bytes in* of a topic: the record-batch bytes of produce requests
//!   appended to a partition this node leads (the `records` field of each
//!   successfully appended partition, as the client sent it); *records in*:
//!   the records of those batches (each batch header's record count).
//!   Duplicates an idempotent producer resent and failed appends count for
//!   nothing. Replication (follower appends) is not counted.
//! - *bytes out* / *records out*: the record bytes (and the records of the
//!   whole batches among them) returned to consumer fetches; follower
//!   fetches are counted apart (`rivulet_replication_bytes_out_total`).
//! - request times: *queue* is the wait for request memory
//!   (`queued.max.request.bytes`) before the body is read, *remote* the
//!   wait for other replicas (acks=all) or for data (a fetch's long poll),
//!   *local* the rest of the handling (decode, handler, encode), *total*
//!   from the size prefix read to the response written.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use rivulet_storage::histogram::Histogram;

pub mod http;
pub mod render;
pub mod scrape;

/// Request times are kept for API keys below this.
const API_SLOTS: usize = 96;

/// Counters of one topic.
#[derive(Debug, Default)]
pub struct TopicCounters {
    pub bytes_in: AtomicU64,
    pub records_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub records_out: AtomicU64,
    pub replication_bytes_out: AtomicU64,
}

/// Requests of one API and their times.
#[derive(Debug, Default)]
pub struct ApiStats {
    pub requests: AtomicU64,
    pub queue: Histogram,
    pub local: Histogram,
    pub remote: Histogram,
    pub total: Histogram,
}

/// The phases of one request, measured by the connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestTimes {
    pub queue: Duration,
    pub local: Duration,
    pub remote: Duration,
    pub total: Duration,
}

#[derive(Debug)]
pub struct Metrics {
    topics: RwLock<HashMap<String, Arc<TopicCounters>>>,
    apis: Vec<ApiStats>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            topics: RwLock::new(HashMap::new()),
            apis: (0..API_SLOTS).map(|_| ApiStats::default()).collect(),
        }
    }
}

impl Metrics {
    /// The counters of `topic`, created on first use.
    pub fn topic(&self, topic: &str) -> Arc<TopicCounters> {
        if let Some(c) = self.topics.read().get(topic) {
            return c.clone();
        }
        self.topics
            .write()
            .entry(topic.to_string())
            .or_default()
            .clone()
    }

    /// Forget a deleted topic's counters.
    pub fn forget_topic(&self, topic: &str) {
        self.topics.write().remove(topic);
    }

    /// Every topic's counters, by name.
    pub fn topics(&self) -> Vec<(String, Arc<TopicCounters>)> {
        let mut v: Vec<_> = self
            .topics
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// A produce of `records` (one partition's record set) was appended.
    pub fn produced(&self, topic: &str, records: &[u8]) {
        let c = self.topic(topic);
        c.bytes_in
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        c.records_in
            .fetch_add(count_records(records), Ordering::Relaxed);
    }

    /// A fetch returned `records` of `topic`; `replica` for a follower's.
    pub fn fetched(&self, topic: &str, records: &[u8], replica: bool) {
        if records.is_empty() {
            return;
        }
        let c = self.topic(topic);
        if replica {
            c.replication_bytes_out
                .fetch_add(records.len() as u64, Ordering::Relaxed);
        } else {
            c.bytes_out
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            c.records_out
                .fetch_add(count_records(records), Ordering::Relaxed);
        }
    }

    /// One request of API `key` was answered (or needed no answer).
    pub fn request(&self, key: i16, times: RequestTimes) {
        let Some(s) = usize::try_from(key).ok().and_then(|k| self.apis.get(k)) else {
            return;
        };
        s.requests.fetch_add(1, Ordering::Relaxed);
        s.queue.observe(times.queue);
        s.local.observe(times.local);
        s.remote.observe(times.remote);
        s.total.observe(times.total);
    }

    /// Every API key with at least one request, with its stats.
    pub fn apis(&self) -> impl Iterator<Item = (i16, &ApiStats)> {
        self.apis
            .iter()
            .enumerate()
            .filter(|(_, s)| s.requests.load(Ordering::Relaxed) > 0)
            .map(|(k, s)| (k as i16, s))
    }
}

/// The phases of a follower's fetch cycle (replica fetcher), across the
/// process: the fetch round trip (request written to response read,
/// including the leader's long poll), appending the response's partitions,
/// and their fsyncs (started once appended, running beside the next fetch
/// and its append; `fsync` is how long after that next fetch was sent they
/// finished, 0 if before; its successor reports them) — what an acks=all
/// produce on the leader waits for besides its own fsync.
#[derive(Debug, Default)]
pub struct FollowerCycle {
    pub round_trip: Histogram,
    pub apply: Histogram,
    pub fsync: Histogram,
}

pub static FOLLOWER_CYCLE: FollowerCycle = FollowerCycle {
    round_trip: Histogram::new(),
    apply: Histogram::new(),
    fsync: Histogram::new(),
};

/// How a broker's logs are written (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; colours only on a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

/// `metrics.listener` and `log.format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `host:port` of the HTTP endpoint; `None` (an empty value) turns it off.
    pub listener: Option<String>,
    /// Whether `metrics.listener` was set rather than defaulted: a default
    /// port already taken (another node on this machine) only logs a
    /// warning, a configured one fails the start.
    pub listener_configured: bool,
    pub log_format: LogFormat,
}

impl MetricsConfig {
    pub fn from_keys(
        get: &dyn Fn(&str) -> String,
        listener_configured: bool,
    ) -> Result<Self, crate::config::ConfigError> {
        let invalid =
            |key: &str, value: String, expected: &str| crate::config::ConfigError::Invalid {
                key: key.into(),
                value,
                expected: expected.into(),
            };
        let listener = match get("metrics.listener").trim() {
            "" => None,
            v if v.parse::<std::net::SocketAddr>().is_ok() => Some(v.to_string()),
            v => match v.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Some(v.to_string())
                }
                _ => {
                    return Err(invalid(
                        "metrics.listener",
                        v.to_string(),
                        "host:port, or empty to turn the endpoint off",
                    ))
                }
            },
        };
        let log_format = match get("log.format").trim() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            v => return Err(invalid("log.format", v.to_string(), "text or json")),
        };
        Ok(MetricsConfig {
            listener,
            listener_configured,
            log_format,
        })
    }
}

/// The records of the whole v2 batches at the start of `buf`, from each
/// batch header's record count (no CRC check, no decoding); a trailing
/// partial batch (a fetch cut at `max_bytes`) counts for nothing.
pub fn count_records(buf: &[u8]) -> u64 {
    const LENGTH_AT: usize = 8;
    const COUNT_AT: usize = 57;
    let mut pos = 0usize;
    let mut n = 0u64;
    while let Some(rest) = buf.get(pos..) {
        let (Some(len), Some(count)) = (
            rest.get(LENGTH_AT..LENGTH_AT + 4),
            rest.get(COUNT_AT..COUNT_AT + 4),
        ) else {
            break;
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let Ok(size) = usize::try_from(len) else {
            break;
        };
        let size = size.saturating_add(12);
        if size > rest.len() {
            break;
        }
        n += u64::from(u32::from_be_bytes([count[0], count[1], count[2], count[3]]));
        pos += size;
    }
    n
}

tokio::task_local! {
    /// Remote time of the request the current task serves.
    static REMOTE: Cell<Duration>;
}

/// Run `serve` (one request's handling) measuring its remote time: what
/// [`remote`] waits inside it add up. Returns the output and that time.
pub async fn with_remote_timer<T>(serve: impl std::future::Future<Output = T>) -> (T, Duration) {
    REMOTE
        .scope(Cell::new(Duration::ZERO), async {
            let out = serve.await;
            (out, REMOTE.with(Cell::get))
        })
        .await
}

/// Await `wait` (for other replicas, or for data) as the request's remote
/// time. Outside [`with_remote_timer`] it is just awaited.
pub async fn remote<T>(wait: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = wait.await;
    let _ = REMOTE.try_with(|r| r.set(r.get() + started.elapsed()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: i32, body: usize) -> Vec<u8> {
        let mut b = vec![0u8; 61 + body];
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[57..61].copy_from_slice(&records.to_be_bytes());
        b
    }

    #[test]
    fn records_are_counted_from_whole_batch_headers() {
        let mut set = batch(3, 10);
        set.extend(batch(5, 0));
        assert_eq!(count_records(&set), 8);
        let partial = batch(7, 100);
        set.extend(&partial[..80]);
        assert_eq!(count_records(&set), 8, "a cut batch counts for nothing");
        assert_eq!(count_records(&[]), 0);
        assert_eq!(count_records(&[1, 2, 3]), 0);
    }

    #[test]
    fn topic_counters_add_up() {
        let m = Metrics::default();
        m.produced("a", &batch(2, 4));
        m.produced("a", &batch(1, 0));
        m.fetched("a", &batch(2, 4), false);
        m.fetched("a", &batch(2, 4), true);
        let a = m.topic("a");
        assert_eq!(a.records_in.load(Ordering::Relaxed), 3);
        assert_eq!(a.bytes_in.load(Ordering::Relaxed), 65 + 61);
        assert_eq!(a.records_out.load(Ordering::Relaxed), 2);
        assert_eq!(a.replication_bytes_out.load(Ordering::Relaxed), 65);
    }

    #[tokio::test]
    async fn remote_time_adds_up_inside_the_scope_only() {
        let ((), t) = with_remote_timer(async {
            remote(tokio::time::sleep(Duration::from_millis(20))).await;
            remote(tokio::time::sleep(Duration::from_millis(20))).await;
        })
        .await;
        assert!(t >= Duration::from_millis(40), "{t:?}");
        remote(async {}).await;
    }
}
