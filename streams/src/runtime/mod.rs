//! The runtime: runs a [`JobPlan`] against a Kafka-compatible broker in micro-batches.
//!
//! One batch (DESIGN.md, "The stream layer"): poll every source (rdkafka, manual
//! assignment, [`source`]), run [`Executor::run_batch`], send dead letters to the
//! dead-letter topic and write the at-least-once sinks (console, PostgreSQL), then
//! commit: the exactly-once PostgreSQL sink writes its rows, the offsets, the batch id
//! and the state snapshot in one database transaction ([`postgres`]); last, the
//! checkpoint file ([`checkpoint`]). Batches that polled nothing commit nothing and do
//! not take a batch id.
//!
//! Resuming ([`offsets`]): with an exactly-once PostgreSQL sink the database's offsets,
//! batch id and snapshot are the source of truth and the checkpoint file only mirrors
//! them; otherwise the checkpoint file is. A job that never committed starts where its
//! sources' `start` says.
//!
//! Triggers: as fast as possible (the next batch as soon as one commits, a poll waits
//! up to [`RunOptions::poll_wait`] when idle), a processing-time interval, `once` (one
//! batch of what is there at start, up to [`RunOptions::max_batch_records`]) and
//! `available_now` (batches until caught up with the end offsets seen at start). The
//! loop also ends when `shutdown` turns true, between batches: a batch is never cut.
//!
//! Files sinks ([`files`]) commit each batch through their own commit log, before the
//! checkpoint file; a job whose only committing sink is one files sink (no exactly-once
//! PostgreSQL sink) resumes from the newer of its commit log and the checkpoint file,
//! so a kill between the two neither repeats nor skips a batch. Static tables
//! ([`tables`], CSV or PostgreSQL) load at start and reload between batches.
//!
//! Not run yet (the job is refused with a clear error): Kafka sinks; at most one
//! exactly-once sink.

pub mod checkpoint;
pub mod error;
pub mod files;
pub mod offsets;
#[cfg(feature = "parquet")]
pub mod parquet_file;
pub mod postgres;
pub mod source;
pub mod sql;
pub mod tables;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

pub use error::RuntimeError;
pub use offsets::{Offsets, ResumePoint};

use crate::executor::{BatchOutput, Executor};
use crate::operators::DeadLetter;
use crate::plan::{FileFormat, Guarantee, JobPlan, SinkKind, Trigger};
use crate::row::SourceRecord;
use checkpoint::Checkpoint;
use files::FilesSink;
use postgres::{BatchCommit, PostgresSink};
use source::KafkaSource;
use tables::Tables;

/// Most records one batch reads, by default.
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 10_000;

/// How a job is run (the plan says what it does).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Overrides the job's `bootstrap_servers`.
    pub bootstrap_servers: Option<String>,
    /// Overrides the job's `checkpoint_dir` (default `checkpoints/<job>`); relative
    /// paths, here and in the job, are relative to the current directory.
    pub checkpoint_dir: Option<PathBuf>,
    /// Most records one batch reads (over all sources).
    pub max_batch_records: usize,
    /// Longest a poll waits for the first record of a batch.
    pub poll_wait: Duration,
    /// Longest a Kafka metadata, ListOffsets or produce call may take.
    pub kafka_timeout: Duration,
    /// `once`/`available_now`: stop waiting for records that are not coming (the end
    /// offsets seen at start counted records of aborted transactions) after this long.
    pub idle_limit: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            bootstrap_servers: None,
            checkpoint_dir: None,
            max_batch_records: DEFAULT_MAX_BATCH_RECORDS,
            poll_wait: Duration::from_millis(200),
            kafka_timeout: Duration::from_secs(30),
            idle_limit: Duration::from_secs(5),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Batches committed by this run.
    pub batches: u64,
    /// Records read.
    pub records: u64,
    /// Rows handed to sinks.
    pub rows: u64,
    pub dead_letters: u64,
    pub late_dropped: u64,
    /// The last committed batch id (this run's or the one it resumed from).
    pub last_batch_id: u64,
}

enum SinkRunner {
    Console,
    Postgres(Box<PostgresSink>),
    Files(Box<FilesSink>),
}

/// Run `plan` until its trigger ends or `shutdown` becomes true. `Err` stops the job
/// with nothing of the failed batch committed; a restart resumes from the last commit.
pub async fn run(
    plan: JobPlan,
    options: RunOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<RunSummary, RuntimeError> {
    let job = plan.name.clone();
    check_runnable(&plan)?;
    let mut tables = Tables::from_plan(&plan, Instant::now());
    let loaded = tables.load_all().await?;
    let bootstrap = options
        .bootstrap_servers
        .clone()
        .or_else(|| plan.bootstrap_servers.clone())
        .ok_or_else(|| {
            RuntimeError::config(&job, "no bootstrap_servers in [job] or on the command line")
        })?;
    let checkpoint_dir = options
        .checkpoint_dir
        .clone()
        .or_else(|| plan.checkpoint_dir.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("checkpoints").join(&job));

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
                PostgresSink::connect(&s.name, &job, url, table, *mode, key, *guarantee).await?,
            )),
            SinkKind::Files {
                path,
                layout,
                format,
            } => {
                let (name, job, path, layout, format) = (
                    s.name.clone(),
                    job.clone(),
                    path.clone(),
                    layout.clone(),
                    *format,
                );
                SinkRunner::Files(Box::new(
                    blocking(move || FilesSink::open(&name, &job, path, layout, format)).await?,
                ))
            }
            SinkKind::Kafka { .. } => {
                return Err(RuntimeError::config(
                    &job,
                    format!(
                        "sink {}: this runtime runs console, postgres and files sinks only (yet)",
                        s.name
                    ),
                ))
            }
        };
        sinks.push((s.name.clone(), runner));
    }
    // At most one (check_runnable).
    let eo = sinks
        .iter()
        .position(|(_, r)| matches!(r, SinkRunner::Postgres(p) if p.exactly_once()));

    let database = match eo.and_then(|i| sinks.get(i)) {
        Some((_, SinkRunner::Postgres(p))) => Some(p.resume_point().await?),
        _ => None,
    };
    let mut file = checkpoint::load(&checkpoint_dir, &job)?.map(|c| ResumePoint {
        batch_id: c.batch_id,
        offsets: c.offsets,
        snapshot: (!c.snapshot.is_null()).then_some(c.snapshot),
    });
    let files_resume = files_resume_sink(&sinks, eo);
    if files_resume.is_none() && sinks.iter().any(|(_, r)| matches!(r, SinkRunner::Files(_))) {
        tracing::warn!(%job, "files sinks beside another committing sink: a batch interrupted between their commits is replayed with the records polled again, which its files may already hold in part (exactly-once needs the batch log)");
    }
    if let Some((_, SinkRunner::Files(f))) = files_resume.and_then(|i| sinks.get(i)) {
        file = files::newer_resume(file, f.resume_point()?);
    }
    let resume = offsets::choose_resume(database, file);
    let mut executor = Executor::new(plan.clone(), loaded)?;
    if let Some(snapshot) = resume.as_ref().and_then(|r| r.snapshot.clone()) {
        executor.restore(snapshot)?;
    }
    let mut last_batch = resume.as_ref().map_or(0, |r| r.batch_id);
    tracing::info!(%job, last_batch, "starting");

    let committed = resume.map(|r| r.offsets);
    let (plan_c, boot_c, job_c, timeout) = (
        plan.clone(),
        bootstrap.clone(),
        job.clone(),
        options.kafka_timeout,
    );
    let mut sources = blocking(move || {
        plan_c
            .sources
            .iter()
            .map(|s| KafkaSource::open(s, &boot_c, &job_c, committed.as_ref(), timeout))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let dead_letters = match &plan.dead_letter_topic {
        Some(topic) => Some((topic.clone(), dlq_producer(&bootstrap, &job)?)),
        None => None,
    };

    let mut summary = RunSummary {
        last_batch_id: last_batch,
        ..Default::default()
    };
    let bounded = matches!(plan.trigger, Trigger::Once | Trigger::AvailableNow);
    loop {
        if *shutdown.borrow() {
            break;
        }
        // Between batches: a batch never sees two versions of a table.
        tables.reload_due(Instant::now(), &mut executor).await;
        let tick = Instant::now();
        let opts = options.clone();
        let (back, polled) = blocking(move || {
            let r = poll_all(&mut sources, &opts, bounded);
            Ok((sources, r))
        })
        .await?;
        sources = back;
        let (records, n) = polled?;
        if n > 0 {
            let batch_id = last_batch.saturating_add(1);
            let out = executor.run_batch(&records, now_ms())?;
            let snapshot = executor.snapshot()?;
            let mut positions = Offsets::new();
            for s in &sources {
                for (t, p) in s.positions() {
                    positions.entry(t.clone()).or_default().extend(p);
                }
            }
            if let Some((topic, producer)) = &dead_letters {
                send_dead_letters(producer, topic, &out.dead_letters, options.kafka_timeout)
                    .await?;
            } else if !out.dead_letters.is_empty() {
                tracing::warn!(%job, count = out.dead_letters.len(), "dead letters dropped: no dead_letter_topic");
            }
            write_sinks(
                &mut sinks,
                &out,
                (eo, files_resume),
                batch_id,
                last_batch,
                &positions,
                &snapshot,
            )
            .await?;
            let cp = Checkpoint::new(&job, batch_id, positions, snapshot);
            let dir = checkpoint_dir.clone();
            blocking(move || checkpoint::store(&dir, &cp)).await?;
            last_batch = batch_id;
            summary.batches += 1;
            summary.records += n as u64;
            summary.rows += out.sinks.values().map(|r| r.len() as u64).sum::<u64>();
            summary.dead_letters += out.dead_letters.len() as u64;
            summary.late_dropped += out.late_dropped;
            summary.last_batch_id = batch_id;
            tracing::debug!(%job, batch_id, records = n, "batch committed");
        }
        match plan.trigger {
            Trigger::Once => break,
            Trigger::AvailableNow if n == 0 || sources.iter().all(KafkaSource::caught_up) => break,
            Trigger::Interval { ms } => {
                let wait = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
                tokio::select! {
                    _ = tokio::time::sleep_until((tick + wait).into()) => {}
                    _ = shutdown.changed() => {}
                }
            }
            _ => {}
        }
    }
    tracing::info!(%job, ?summary, "stopped");
    Ok(summary)
}

/// Run blocking work (librdkafka polls, fsyncs) on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::KafkaState(format!("blocking task failed: {e}")))?
}

type Polled = (BTreeMap<String, Vec<SourceRecord>>, usize);

/// One batch's records from every source. `until_caught_up` (once, available_now)
/// keeps polling a source until it reached its end offsets at start, the batch is
/// full, or nothing came for `idle_limit`.
fn poll_all(
    sources: &mut [KafkaSource],
    options: &RunOptions,
    until_caught_up: bool,
) -> Result<Polled, RuntimeError> {
    let mut records: BTreeMap<String, Vec<SourceRecord>> = BTreeMap::new();
    let mut n = 0usize;
    for s in sources.iter_mut() {
        let mut last_progress = Instant::now();
        loop {
            let room = options.max_batch_records.saturating_sub(n);
            if room == 0 {
                break;
            }
            let got = s.poll_batch(room, options.poll_wait)?;
            if !got.is_empty() {
                last_progress = Instant::now();
            }
            n += got.len();
            records.entry(s.name.clone()).or_default().extend(got);
            if !until_caught_up || s.caught_up() {
                break;
            }
            if last_progress.elapsed() > options.idle_limit {
                tracing::warn!(source = %s.name, "not caught up with the end offsets seen at start, and idle: moving on");
                break;
            }
        }
    }
    Ok((records, n))
}

/// The files sink whose commit entries carry the resume point: the only files sink of a
/// job without an exactly-once PostgreSQL sink (with several committing sinks, only a
/// replay of identical batches keeps them in step).
fn files_resume_sink(sinks: &[(String, SinkRunner)], eo: Option<usize>) -> Option<usize> {
    let mut files = sinks
        .iter()
        .enumerate()
        .filter(|(_, (_, r))| matches!(r, SinkRunner::Files(_)))
        .map(|(i, _)| i);
    match (eo, files.next(), files.next()) {
        (None, Some(i), None) => Some(i),
        _ => None,
    }
}

/// `(exactly-once PostgreSQL sink, files sink carrying the resume point)`, by index.
type Committers = (Option<usize>, Option<usize>);

async fn write_sinks(
    sinks: &mut [(String, SinkRunner)],
    out: &BatchOutput,
    (eo, files_resume): Committers,
    batch_id: u64,
    previous_batch_id: u64,
    offsets: &Offsets,
    snapshot: &serde_json::Value,
) -> Result<(), RuntimeError> {
    // At-least-once sinks first: the commit below (the exactly-once PostgreSQL sink's,
    // or that of the files sink carrying the resume point) marks the batch done.
    for (i, (name, runner)) in sinks.iter_mut().enumerate() {
        let rows = out.sinks.get(name.as_str()).map_or(&[][..], Vec::as_slice);
        match runner {
            SinkRunner::Console => {
                let mut stdout = std::io::stdout().lock();
                for row in rows {
                    writeln!(stdout, "{}", serde_json::Value::Object(row.value.clone())).map_err(
                        |source| RuntimeError::Io {
                            path: PathBuf::from("<stdout>"),
                            source,
                        },
                    )?;
                }
            }
            SinkRunner::Postgres(p) if Some(i) != eo => p.write(rows, None).await?,
            SinkRunner::Files(_) if Some(i) != files_resume => {
                write_files(runner, rows, batch_id, None).await?
            }
            SinkRunner::Postgres(_) | SinkRunner::Files(_) => {}
        }
    }
    if let Some((name, runner)) = files_resume.and_then(|i| sinks.get_mut(i)) {
        let rows = out.sinks.get(name.as_str()).map_or(&[][..], Vec::as_slice);
        write_files(runner, rows, batch_id, Some((offsets, snapshot))).await?;
    }
    if let Some((name, SinkRunner::Postgres(p))) = eo.and_then(|i| sinks.get_mut(i)) {
        let rows = out.sinks.get(name.as_str()).map_or(&[][..], Vec::as_slice);
        p.write(
            rows,
            Some(BatchCommit {
                batch_id,
                previous_batch_id,
                offsets,
                snapshot,
            }),
        )
        .await?;
    }
    Ok(())
}

/// Write one batch to a files sink, its fsyncs on the blocking pool (the sink moves
/// there and back); `resume` goes into the commit entry.
async fn write_files(
    runner: &mut SinkRunner,
    rows: &[crate::row::Row],
    batch_id: u64,
    resume: Option<(&Offsets, &serde_json::Value)>,
) -> Result<(), RuntimeError> {
    let SinkRunner::Files(f) = runner else {
        return Ok(());
    };
    let mut prepared = f.prepare(batch_id, rows)?;
    if let Some((offsets, snapshot)) = resume {
        prepared = prepared.with_resume(offsets, snapshot);
    }
    if let SinkRunner::Files(mut f) = std::mem::replace(runner, SinkRunner::Console) {
        let f = blocking(move || {
            f.commit(prepared)?;
            Ok(f)
        })
        .await?;
        *runner = SinkRunner::Files(f);
    }
    Ok(())
}

fn dlq_producer(bootstrap: &str, job: &str) -> Result<FutureProducer, RuntimeError> {
    let mut c = rdkafka::config::ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", format!("rivulet-stream-{job}-dlq"))
        .set("enable.idempotence", "true");
    c.create()
        .map_err(RuntimeError::kafka("create the dead-letter producer"))
}

/// Send dead letters and wait for every ack (at-least-once: before the batch commits).
async fn send_dead_letters(
    producer: &FutureProducer,
    topic: &str,
    letters: &[DeadLetter],
    timeout: Duration,
) -> Result<(), RuntimeError> {
    let values: Vec<String> = letters
        .iter()
        .map(|d| d.to_record_value().to_string())
        .collect();
    let mut pending = Vec::with_capacity(values.len());
    for value in &values {
        let record: FutureRecord<'_, (), String> = FutureRecord::to(topic).payload(value);
        pending.push(producer.send(record, timeout));
    }
    for p in pending {
        p.await.map_err(|(e, _)| RuntimeError::Kafka {
            context: format!("send a dead letter to {topic}"),
            source: e,
        })?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Whether the job's sinks are ones this runtime runs, and its guarantees hold
/// together; what `rivulet stream validate` checks beyond the plan.
pub fn check_runnable(plan: &JobPlan) -> Result<(), RuntimeError> {
    let mut eo = 0;
    for s in &plan.sinks {
        match &s.kind {
            SinkKind::Console => {}
            SinkKind::Postgres { guarantee, .. } => {
                eo += usize::from(*guarantee == Guarantee::ExactlyOnce);
            }
            SinkKind::Files { format, .. } => {
                if *format == FileFormat::Parquet && !cfg!(feature = "parquet") {
                    return Err(RuntimeError::config(
                        &plan.name,
                        format!(
                            "sink {}: format \"parquet\" needs rivulet-streams built with the \
                             `parquet` feature, which this build lacks: use \"jsonl\"",
                            s.name
                        ),
                    ));
                }
            }
            _ => {
                return Err(RuntimeError::config(
                    &plan.name,
                    format!(
                        "sink {}: this runtime runs console, postgres and files sinks only (yet)",
                        s.name
                    ),
                ))
            }
        }
    }
    if eo > 1 {
        return Err(RuntimeError::config(
            &plan.name,
            "more than one exactly-once sink: one transaction cannot span two databases",
        ));
    }
    Ok(())
}
