//! The measured stream jobs: their TOML, how many rows each must leave in
//! its sink, and how a sink is read back (for counts) and watched (for
//! latency).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use rivulet_testkit::kafka::bench_client_config;
use rivulet_testkit::postgres::TestPostgres;

/// Users (keys) the events are spread over.
pub const USERS: usize = 1_000;
/// Event kinds, in turn; the filter drops `view`, so it keeps 2 of 3.
pub const KINDS: [&str; 3] = ["click", "view", "buy"];
/// Every event's value is exactly this long.
pub const EVENT_BYTES: usize = 100;

/// Event `i`, with event time `ts_ms`: a 100-byte JSON object.
pub fn event(i: usize, ts_ms: i64) -> Vec<u8> {
    let kind = KINDS[i % KINDS.len()];
    let mut s = format!(
        r#"{{"id":{i},"user":"u{:04}","kind":"{kind}","amount":{}.{:02},"ts":{ts_ms},"p":""#,
        i % USERS,
        i % 500,
        i % 100
    );
    let pad = EVENT_BYTES.saturating_sub(s.len() + 2);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    s.into_bytes()
}

/// How many of events `0..n` the filter keeps.
pub fn kept(n: usize) -> usize {
    (0..n).filter(|i| KINDS[i % KINDS.len()] != "view").count()
}

/// The event-time field of a row or event value (`ts`, epoch millis).
pub fn ts_of(value: &[u8]) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    v.get("ts")?.as_i64()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    FilterKafka { exactly_once: bool },
    WindowPostgres,
    FilterFiles,
}

impl Job {
    pub fn label(self) -> &'static str {
        match self {
            Job::FilterKafka {
                exactly_once: false,
            } => "filter → kafka (at-least-once)",
            Job::FilterKafka { exactly_once: true } => "filter → kafka (exactly-once)",
            Job::WindowPostgres => "tumbling 1m count/sum by key → postgres",
            Job::FilterFiles => "filter → date-partitioned files",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Job::FilterKafka {
                exactly_once: false,
            } => "kafka-alo",
            Job::FilterKafka { exactly_once: true } => "kafka-eos",
            Job::WindowPostgres => "window-pg",
            Job::FilterFiles => "files",
        }
    }
}

/// Where one run of a job reads and writes.
pub struct Target {
    pub job: Job,
    /// Unique per run: the job name, its output topic, table and directory.
    pub run: String,
    pub input: String,
    pub trigger: &'static str,
    /// Checkpoints and files go under here.
    pub work: PathBuf,
    pub pg_url: String,
}

impl Target {
    pub fn output_topic(&self) -> String {
        format!("out-{}", self.run)
    }
    pub fn table(&self) -> String {
        format!("agg_{}", self.run.replace('-', "_"))
    }
    pub fn lake_dir(&self) -> PathBuf {
        self.work.join("lake").join(&self.run)
    }

    /// The job file (TOML).
    pub fn toml(&self) -> String {
        let head = format!(
            r#"[job]
name = "{run}"
trigger = "{trigger}"
checkpoint_dir = "{cp}"

[[source]]
name = "events"
topics = ["{input}"]
start = "earliest"
event_time = {{ field = "ts", format = "epoch_millis" }}
watermark_delay = "5s"
"#,
            run = self.run,
            trigger = self.trigger,
            cp = self.work.join("checkpoints").join(&self.run).display(),
            input = self.input,
        );
        let body = match self.job {
            Job::FilterKafka { exactly_once } => format!(
                r#"
[[operator]]
name = "kept"
type = "filter"
where = "kind <> 'view'"

[[sink]]
name = "out"
type = "kafka"
topic = "{}"
key = "user"
guarantee = "{}"
client = "{}"
"#,
                self.output_topic(),
                if exactly_once {
                    "exactly_once"
                } else {
                    "at_least_once"
                },
                sink_client(),
            ),
            Job::WindowPostgres => format!(
                r#"
[[operator]]
name = "by_user"
type = "key_by"
by = "user"

[[operator]]
name = "per_minute"
type = "window"
window = "tumbling"
size = "1m"
aggregates = ["count(*) AS n", "sum(amount) AS total"]
output_mode = "update"

[[sink]]
name = "out"
type = "postgres"
url = "{}"
table = "{}"
mode = "upsert"
key = ["user", "window_start"]
guarantee = "exactly_once"
"#,
                self.pg_url,
                self.table()
            ),
            Job::FilterFiles => format!(
                r#"
[[operator]]
name = "kept"
type = "filter"
where = "kind <> 'view'"

[[sink]]
name = "out"
type = "files"
path = "{}"
format = "jsonl"
"#,
                self.lake_dir().display()
            ),
        };
        head + &body
    }

    /// Rows the job must leave in its sink for `n` input events.
    pub fn expected(&self, n: usize) -> usize {
        match self.job {
            Job::WindowPostgres => n,
            _ => kept(n),
        }
    }
}

/// Counts what a job's sink holds (for the aggregate: the sum of the
/// counts, i.e. input events accounted for).
pub struct Watcher {
    kind: WatcherKind,
}

enum WatcherKind {
    Kafka(BaseConsumer),
    Postgres(tokio_postgres::Client, String),
    Files(PathBuf, BTreeSet<PathBuf>),
}

impl Watcher {
    pub async fn new(t: &Target, bootstrap: &str, pg: &TestPostgres) -> Watcher {
        let kind = match t.job {
            Job::FilterKafka { .. } => {
                let mut c = bench_client_config(bootstrap);
                c.set("group.id", "rivulet-streams-bench-watch")
                    .set("enable.auto.commit", "false")
                    .set("isolation.level", "read_committed")
                    .set("fetch.wait.max.ms", "10");
                let consumer: BaseConsumer = c.create().expect("watch consumer");
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&t.output_topic(), 0, Offset::Beginning)
                    .expect("partition list");
                consumer.assign(&tpl).expect("assign");
                WatcherKind::Kafka(consumer)
            }
            Job::WindowPostgres => {
                let (client, conn) =
                    tokio_postgres::connect(&pg.url_for("bench"), tokio_postgres::NoTls)
                        .await
                        .expect("connect to postgres");
                tokio::spawn(conn);
                WatcherKind::Postgres(client, t.table())
            }
            Job::FilterFiles => WatcherKind::Files(t.lake_dir(), BTreeSet::new()),
        };
        Watcher { kind }
    }

    /// New sink rows since the last call: for record sinks the event time
    /// of each new row; for the aggregate, the new total count as one
    /// `Err(total)`.
    pub async fn poll(&mut self) -> Seen {
        match &mut self.kind {
            WatcherKind::Kafka(consumer) => {
                let mut ts = Vec::new();
                let until = Instant::now() + Duration::from_millis(20);
                while Instant::now() < until {
                    match consumer.poll(Duration::from_millis(5)) {
                        Some(Ok(m)) => ts.push(m.payload().and_then(ts_of).unwrap_or(0)),
                        Some(Err(e)) => eprintln!("bench: watch consumer: {e}"),
                        None => break,
                    }
                }
                Seen::Rows(ts)
            }
            WatcherKind::Postgres(client, table) => {
                let sql = format!("SELECT coalesce(sum(n), 0)::bigint FROM {table}");
                match client.query_one(sql.as_str(), &[]).await {
                    Ok(row) => Seen::Total(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0)),
                    // The job creates the table with its first batch.
                    Err(_) => Seen::Total(0),
                }
            }
            WatcherKind::Files(dir, seen) => {
                let mut ts = Vec::new();
                for file in jsonl_files(dir) {
                    if seen.insert(file.clone()) {
                        let text = fs::read_to_string(&file).unwrap_or_default();
                        ts.extend(text.lines().map(|l| ts_of(l.as_bytes()).unwrap_or(0)));
                    }
                }
                Seen::Rows(ts)
            }
        }
    }
}

pub enum Seen {
    /// The event times of rows that became visible.
    Rows(Vec<i64>),
    /// Input events accounted for by the visible aggregates.
    Total(usize),
}

/// Every committed-looking data file under `dir` (not temporaries, not
/// the commit log).
pub fn jsonl_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".jsonl") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The Kafka sinks' `client`: `STREAMS_BENCH_SINK_CLIENT` (default native), to
/// measure the native writer against librdkafka's.
fn sink_client() -> String {
    std::env::var("STREAMS_BENCH_SINK_CLIENT").unwrap_or_else(|_| "native".to_string())
}
