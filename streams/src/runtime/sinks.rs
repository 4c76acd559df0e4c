//! The job's sinks as the runtime drives them: connecting, reading what each
//! exactly-once sink last committed, and writing one batch to all of them.
//!
//! Order within a batch: dead letters (unless an exactly-once Kafka sink carries them
//! in its transaction), then the at-least-once sinks, then the exactly-once sinks in
//! plan order, each committing the batch id atomically with its data. A replayed batch
//! goes to every at-least-once sink and to the exactly-once sinks that lack it
//! ([`super::recovery::writes_batch`]).
//!
//! Exactly-once sinks share one contract (PostgreSQL, Kafka, files): `last_committed_batch()` — the id of the last batch it holds, read
//! from where it commits its data — and `write_batch(batch_id, rows)`, idempotent per
//! batch id, committing the rows and the batch id together.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::error::RuntimeError;
use super::files::FilesSink;
use super::kafka_sink::KafkaSink;
use super::offsets::{Offsets, ResumePoint};
use super::postgres::{BatchCommit, PostgresSink};
use super::recovery::{writes_batch, SinkProgress};
use super::wire_meta::NativeSpec;
use super::wire_produce::NativeProducer;
use crate::executor::BatchOutput;
use crate::operators::DeadLetter;
use crate::plan::{JobPlan, SinkKind};
use crate::row::Row;
use rivulet_protocol::tls::Connector;

pub(crate) enum SinkRunner {
    Console,
    Postgres(Box<PostgresSink>),
    Kafka(Box<KafkaSink>),
    /// Always exactly-once, through its commit log.
    Files(Box<FilesSink>),
}

pub(crate) struct Sink {
    pub name: String,
    pub runner: SinkRunner,
    /// Exactly-once sinks: the last batch the sink holds (0: none).
    pub last: u64,
}

impl Sink {
    pub fn exactly_once(&self) -> bool {
        match &self.runner {
            SinkRunner::Console => false,
            SinkRunner::Postgres(p) => p.exactly_once(),
            SinkRunner::Kafka(k) => k.exactly_once(),
            SinkRunner::Files(_) => true,
        }
    }
}

/// Connect every sink of `plan`.
pub(crate) async fn connect(
    plan: &JobPlan,
    bootstrap: &str,
    timeout: Duration,
) -> Result<Vec<Sink>, RuntimeError> {
    let job = plan.name.as_str();
    let connector = super::connector(plan)?;
    let mut sinks = Vec::new();
    for s in &plan.sinks {
        let runner = match &s.kind {
            SinkKind::Console => SinkRunner::Console,
            SinkKind::Postgres {
                url,
                table,
                mode,
                key,
                guarantee,
            } => SinkRunner::Postgres(Box::new(
                PostgresSink::connect(&s.name, job, url, table, *mode, key, *guarantee).await?,
            )),
            SinkKind::Kafka {
                topic,
                key,
                guarantee,
                client,
                compression,
            } => SinkRunner::Kafka(Box::new(
                KafkaSink::connect(
                    &s.name,
                    job,
                    bootstrap,
                    topic,
                    key.as_ref().map(|(_, e)| e),
                    *guarantee,
                    *client,
                    *compression,
                    timeout,
                    &connector,
                )
                .await?,
            )),
            SinkKind::Files {
                path,
                layout,
                format,
            } => {
                let (name, job, path, layout, format) = (
                    s.name.clone(),
                    job.to_string(),
                    path.clone(),
                    layout.clone(),
                    *format,
                );
                // Recovery walks and deletes files: on the blocking pool.
                SinkRunner::Files(Box::new(
                    super::blocking(move || FilesSink::open(&name, &job, path, layout, format))
                        .await?,
                ))
            }
        };
        sinks.push(Sink {
            name: s.name.clone(),
            runner,
            last: 0,
        });
    }
    Ok(sinks)
}

/// Read every exactly-once sink's last committed batch (kept in [`Sink::last`]), and
/// the full states (offsets, snapshot) the PostgreSQL ones hold. `topics`: the job's
/// source topics. Runs once at start.
pub(crate) async fn progress(
    sinks: &mut [Sink],
    topics: &[String],
) -> Result<(Vec<SinkProgress>, Vec<ResumePoint>), RuntimeError> {
    let mut progress = Vec::new();
    let mut stores = Vec::new();
    for s in sinks.iter_mut().filter(|s| s.exactly_once()) {
        s.last = match &mut s.runner {
            SinkRunner::Console => 0,
            SinkRunner::Postgres(p) => match p.resume_point().await? {
                Some(point) => {
                    let b = point.batch_id;
                    stores.push(point);
                    b
                }
                None => 0,
            },
            // Metadata and OffsetFetch, once at start (blocking ones with librdkafka).
            SinkRunner::Kafka(k) => k.last_committed_batch(topics).await?,
            SinkRunner::Files(f) => f.last_committed_batch().unwrap_or(0),
        };
        tracing::info!(sink = %s.name, last_batch = s.last, "exactly-once sink");
        progress.push(SinkProgress {
            sink: s.name.clone(),
            last_batch: s.last,
        });
    }
    Ok((progress, stores))
}

/// Where a job's dead letters go when no exactly-once Kafka sink carries them; one
/// batch commits at a time, so the lock is never contended.
pub(crate) type DeadLetterProducer = tokio::sync::Mutex<NativeProducer>;

/// The exactly-once Kafka sink whose transaction carries the dead letters: the first in
/// plan order, if any.
pub(crate) fn dead_letter_carrier(sinks: &[Sink]) -> Option<usize> {
    sinks
        .iter()
        .position(|s| matches!(&s.runner, SinkRunner::Kafka(k) if k.exactly_once()))
}

/// What a batch commits besides its rows.
pub(crate) struct BatchContext<'a> {
    pub batch_id: u64,
    /// The partitions' next offsets after the batch.
    pub end: &'a Offsets,
    pub snapshot: &'a Value,
}

/// How a batch is written: where dead letters go when no exactly-once Kafka sink
/// carries them, and the test hook.
pub(crate) struct WriteOptions<'a> {
    pub topic: Option<&'a str>,
    pub producer: Option<&'a DeadLetterProducer>,
    /// [`super::RunOptions::crash_after_sink`].
    pub crash_after_sink: Option<&'a (u64, String)>,
}

/// Write one batch to every sink that lacks it; `Err` stops the job (what the sinks
/// committed stays committed, their `last` says so; a restart replays the rest).
pub(crate) async fn write_batch(
    sinks: &mut [Sink],
    out: &BatchOutput,
    ctx: &BatchContext<'_>,
    options: &WriteOptions<'_>,
) -> Result<(), RuntimeError> {
    let carrier = dead_letter_carrier(sinks);
    if carrier.is_none() {
        match (options.topic, options.producer) {
            (Some(topic), Some(producer)) => {
                send_dead_letters(producer, topic, &out.dead_letters).await?
            }
            _ if !out.dead_letters.is_empty() => {
                tracing::warn!(
                    count = out.dead_letters.len(),
                    "dead letters dropped: no dead_letter_topic"
                );
            }
            _ => {}
        }
    }
    let rows_of = |name: &str| out.sinks.get(name).map_or(&[][..], Vec::as_slice);
    // At-least-once sinks first: the exactly-once commits below mark the batch done.
    for s in sinks.iter_mut().filter(|s| !s.exactly_once()) {
        let rows = rows_of(&s.name);
        match &mut s.runner {
            SinkRunner::Console => print_rows(rows)?,
            SinkRunner::Postgres(p) => p.write(rows, None).await?,
            SinkRunner::Kafka(k) => k.write(rows).await?,
            SinkRunner::Files(_) => {}
        }
    }
    for (i, s) in sinks.iter_mut().enumerate() {
        if !s.exactly_once() || !writes_batch(s.last, ctx.batch_id) {
            continue;
        }
        let rows = rows_of(&s.name);
        match &mut s.runner {
            SinkRunner::Console => {}
            SinkRunner::Postgres(p) => {
                p.write(
                    rows,
                    Some(BatchCommit {
                        batch_id: ctx.batch_id,
                        previous_batch_id: s.last,
                        offsets: ctx.end,
                        snapshot: ctx.snapshot,
                    }),
                )
                .await?
            }
            SinkRunner::Kafka(k) => {
                let letters = match (carrier == Some(i), options.topic) {
                    (true, Some(topic)) => Some((topic, out.dead_letters.as_slice())),
                    _ => None,
                };
                k.write_transaction(rows, letters, ctx.batch_id, ctx.end)
                    .await?
            }
            SinkRunner::Files(_) => write_files(&mut s.runner, ctx.batch_id, rows).await?,
        }
        s.last = ctx.batch_id;
        if options
            .crash_after_sink
            .is_some_and(|(b, sink)| *b == ctx.batch_id && *sink == s.name)
        {
            return Err(RuntimeError::InjectedCrash {
                batch_id: ctx.batch_id,
                sink: s.name.clone(),
            });
        }
    }
    Ok(())
}

/// Write a batch to the files sink in `runner`: encoded here, written, fsynced and
/// committed on the blocking pool (the sink moves there and back).
async fn write_files(
    runner: &mut SinkRunner,
    batch_id: u64,
    rows: &[Row],
) -> Result<(), RuntimeError> {
    let SinkRunner::Files(f) = runner else {
        return Ok(());
    };
    let prepared = f.prepare(batch_id, rows)?;
    if let SinkRunner::Files(mut f) = std::mem::replace(runner, SinkRunner::Console) {
        let f = super::blocking(move || {
            f.commit(prepared)?;
            Ok(f)
        })
        .await?;
        *runner = SinkRunner::Files(f);
    }
    Ok(())
}

fn print_rows(rows: &[Row]) -> Result<(), RuntimeError> {
    let mut stdout = std::io::stdout().lock();
    for row in rows {
        writeln!(stdout, "{}", Value::Object(row.value.clone())).map_err(|source| {
            RuntimeError::Io {
                path: PathBuf::from("<stdout>"),
                source,
            }
        })?;
    }
    Ok(())
}

/// The job's dead-letter producer (idempotent, the runtime's own Produce requests),
/// knowing `topic`'s partitions before the first batch.
pub(crate) async fn dlq_producer(
    bootstrap: &str,
    job: &str,
    topic: &str,
    timeout: Duration,
    connector: Connector,
) -> Result<DeadLetterProducer, RuntimeError> {
    let spec = NativeSpec {
        bootstrap: bootstrap.to_string(),
        client_id: format!("rivulet-stream-{job}-dlq"),
        timeout,
        connector,
    };
    let state = |e| RuntimeError::KafkaState(format!("dead-letter producer: {e}"));
    let mut producer = NativeProducer::connect(spec, None).await.map_err(state)?;
    producer.prepare(topic).await.map_err(state)?;
    Ok(tokio::sync::Mutex::new(producer))
}

/// Send dead letters and wait for every ack (at-least-once: before the batch commits).
async fn send_dead_letters(
    producer: &DeadLetterProducer,
    topic: &str,
    letters: &[DeadLetter],
) -> Result<(), RuntimeError> {
    if letters.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = letters
        .iter()
        .map(|d| d.to_record_value().to_string())
        .collect();
    producer
        .lock()
        .await
        .send(topic, values.iter().map(|v| (None, v.as_bytes())))
        .await
        .map_err(|e| RuntimeError::KafkaState(format!("dead letters: {e}")))
}
