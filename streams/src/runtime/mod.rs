//! The runtime: runs a [`JobPlan`] against a Kafka-compatible broker in micro-batches.
//!
//! One batch (DESIGN.md, "The stream layer"): poll every source (rdkafka, manual
//! assignment, [`source`]); store the batch's planned input — per partition its start
//! and end offsets, and its processing time — in the write-ahead batch log
//! ([`batch_log`]); sort the records canonically (source, topic, partition, offset) and
//! run [`Executor::run_batch`]; write the sinks (`sinks.rs`): dead letters, the
//! at-least-once sinks, then every exactly-once sink, each committing the batch id
//! atomically with its data — PostgreSQL in one database transaction with the offsets
//! and the state snapshot ([`postgres`]), Kafka in one transaction with the offsets and
//! the batch id as offset metadata ([`kafka_sink`]); last, the checkpoint file
//! ([`checkpoint`]). Batches that polled nothing commit nothing and take no batch id.
//! A batch's commit (sinks, then checkpoint) runs on a thread of its own while the
//! next batch polls and runs; the next commit waits for it (`commit.rs`).
//!
//! Resuming ([`recovery`], Spark's protocol): from the freshest full state at or below
//! the last batch every exactly-once sink holds (the checkpoint file, or a PostgreSQL
//! sink's database when it is ahead of a lost checkpoint); then every batch of the log
//! after it is replayed — exactly its planned offsets, from the previous snapshot,
//! with its processing time, so the output is the same — into the sinks that lack it.
//! A job that never committed starts where its sources' `start` says.
//!
//! Dead letters: with an exactly-once Kafka sink they are written in its transaction
//! (the first such sink in plan order), so they are exactly-once too; otherwise they are
//! sent at-least-once before the sinks are written.
//!
//! Triggers: as fast as possible (the next batch as soon as one commits, a poll waits
//! up to [`RunOptions::poll_wait`] when idle), a processing-time interval, `once` (one
//! batch of what is there at start, up to [`RunOptions::max_batch_records`]) and
//! `available_now` (batches until caught up with the end offsets seen at start). The
//! loop also ends when `shutdown` turns true, between batches: a batch is never cut.
//!
//! Files sinks ([`files`]) are exactly-once sinks like the others: their commit log is
//! their record of the last batch they hold, and a batch interrupted before its commit
//! entry is replayed from the batch log. Static tables ([`tables`], CSV or PostgreSQL)
//! load at start and reload between batches, never inside one.

mod acked;
pub mod batch_log;
pub mod checkpoint;
mod commit;
pub mod error;
mod fetcher;
pub mod files;
pub mod kafka_sink;
pub mod offsets;
#[cfg(feature = "parquet")]
pub mod parquet_file;
pub mod postgres;
pub mod recovery;
mod sinks;
pub mod source;
pub mod sql;
pub mod tables;
mod wire_fetch;
mod wire_meta;
mod wire_produce;
mod wire_txn;

use std::collections::BTreeMap;
use std::path::PathBuf;

use rivulet_protocol::tls::Connector;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

pub use error::RuntimeError;
pub use offsets::{Offsets, ResumePoint};

use crate::executor::{BatchOutput, Executor};
use crate::plan::{FileFormat, Guarantee, JobPlan, SinkKind, Trigger};
use crate::row::SourceRecord;
use batch_log::PlannedBatch;
use commit::{CommitOptions, SinkSlot};
use source::KafkaSource;
use tables::Tables;

/// Most records one batch reads, by default. A batch has fixed costs (the batch log,
/// the checkpoint and the files sink each sync a file; the sinks' round trips) that a
/// job catching up with a backlog pays per batch: 50,000 rather than 10,000 took
/// filter → files from 0.08x to 0.18x of a plain consume loop. A job that keeps up
/// takes small batches whatever this is.
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 50_000;

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
    /// Test hook: stop the job with [`RuntimeError::InjectedCrash`] right after sink
    /// `.1` committed batch `.0`, before the sinks after it and the checkpoint — what
    /// a kill -9 at that point leaves behind. `None` in real runs.
    pub crash_after_sink: Option<(u64, String)>,
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
            crash_after_sink: None,
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

/// Run `plan` until its trigger ends or `shutdown` becomes true. `Err` stops the job;
/// what a sink committed of the failed batch a restart completes (replay), the rest is
/// redone.
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

    refuse_bad_credentials(&plan, &bootstrap, options.kafka_timeout).await?;
    let mut sinks = sinks::connect(&plan, &bootstrap, options.kafka_timeout).await?;
    let topics: Vec<String> = plan
        .sources
        .iter()
        .flat_map(|s| s.topics.iter().cloned())
        .collect();
    let (progress, stores) = sinks::progress(&mut sinks, &topics).await?;
    let file = checkpoint::load(&checkpoint_dir, &job)?.map(|c| ResumePoint {
        batch_id: c.batch_id,
        offsets: c.offsets,
        snapshot: (!c.snapshot.is_null()).then_some(c.snapshot),
    });
    let logged = batch_log::list(&checkpoint_dir)?;
    let recovery = recovery::plan_recovery(file, stores, &progress, &logged)
        .map_err(|reason| RuntimeError::config(&job, reason))?;
    batch_log::remove(&checkpoint_dir, &recovery.discard)?;

    let mut executor = Executor::new(plan.clone(), loaded)?;
    let projected = executor.project_sources();
    if let Some(snapshot) = recovery.base.as_ref().and_then(|r| r.snapshot.clone()) {
        executor.restore(snapshot)?;
    }
    let mut last_batch = recovery.base.as_ref().map_or(0, |r| r.batch_id);
    let mut committed = recovery.base.map(|r| r.offsets);
    tracing::info!(%job, last_batch, replay = ?recovery.replay, projected, "starting");

    let dlq_producer = match &plan.dead_letter_topic {
        Some(topic) if sinks::dead_letter_carrier(&sinks).is_none() => {
            let timeout = options.kafka_timeout;
            let connector = connector(&plan)?;
            Some(Arc::new(
                sinks::dlq_producer(&bootstrap, &job, topic, timeout, connector).await?,
            ))
        }
        _ => None,
    };
    let commit_options = CommitOptions {
        dead_letter_topic: plan.dead_letter_topic.clone(),
        producer: dlq_producer,
        crash_after_sink: options.crash_after_sink.clone(),
        checkpoint_dir: checkpoint_dir.clone(),
    };
    // A batch commits while the next one polls and runs ([`commit`]).
    let mut sinks = SinkSlot::new(sinks);
    let mut summary = RunSummary::default();

    for batch_id in recovery.replay {
        let planned = batch_log::load(&checkpoint_dir, &job, batch_id)?;
        if let Some(base) = &committed {
            recovery::check_continuity(base, &planned.start, batch_id)
                .map_err(|reason| RuntimeError::config(&job, reason))?;
        }
        let (records, n) = read_planned(&plan, &bootstrap, &options, &planned).await?;
        tracing::info!(%job, batch_id, records = n, "replaying a planned batch");
        let out = executor.run_batch_owned(records, planned.processing_time_ms)?;
        summary.add(batch_id, n, &out);
        let end = planned.end.clone();
        sinks.start_batch(out, planned, &executor, &commit_options)?;
        sinks.ready().await?;
        last_batch = batch_id;
        committed = Some(end);
    }
    summary.last_batch_id = last_batch;

    let (plan_c, boot_c, job_c, timeout) = (
        plan.clone(),
        bootstrap.clone(),
        job.clone(),
        options.kafka_timeout,
    );
    let mut sources =
        blocking(move || open_sources(&plan_c, &boot_c, &job_c, committed.as_ref(), timeout))
            .await?;

    let bounded = matches!(plan.trigger, Trigger::Once | Trigger::AvailableNow);
    loop {
        if *shutdown.borrow() {
            break;
        }
        sinks.check()?;
        // Between batches: a batch never sees two versions of a table.
        tables.reload_due(Instant::now(), &mut executor).await;
        let tick = Instant::now();
        let start = positions(&sources);
        let opts = options.clone();
        let (back, polled) = blocking(move || {
            let r = poll_all(&mut sources, &opts, bounded);
            Ok((sources, r))
        })
        .await?;
        sources = back;
        let (mut records, n) = polled?;
        if n > 0 {
            let polled_at = Instant::now();
            let batch_id = last_batch.saturating_add(1);
            let planned = PlannedBatch::new(&job, batch_id, start, positions(&sources), now_ms());
            // The batch log is written (and synced) while the executor runs: nothing
            // reaches a sink before it is durable.
            let (dir, p) = (checkpoint_dir.clone(), planned.clone());
            let logging = tokio::task::spawn_blocking(move || batch_log::store(&dir, &p));
            sort_canonically(&mut records);
            let out = executor.run_batch_owned(records, planned.processing_time_ms);
            let run_at = Instant::now();
            logging
                .await
                .map_err(|e| RuntimeError::KafkaState(format!("blocking task failed: {e}")))??;
            let out = out?;
            let logged_at = Instant::now();
            // The previous batch's commit ran beside this batch's poll and run.
            sinks.ready().await?;
            let waited_at = Instant::now();
            summary.add(batch_id, n, &out);
            sinks.start_batch(out, planned, &executor, &commit_options)?;
            if options.crash_after_sink.is_some() {
                // The test hook stops the job right after the batch it names.
                sinks.ready().await?;
            }
            last_batch = batch_id;
            tracing::debug!(
                %job,
                batch_id,
                records = n,
                poll_ms = (polled_at - tick).as_secs_f64() * 1e3,
                run_ms = (run_at - polled_at).as_secs_f64() * 1e3,
                log_wait_ms = (logged_at - run_at).as_secs_f64() * 1e3,
                commit_wait_ms = (waited_at - logged_at).as_secs_f64() * 1e3,
                snapshot_ms = waited_at.elapsed().as_secs_f64() * 1e3,
                "batch run, its commit started"
            );
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
    sinks.ready().await?;
    tracing::info!(%job, ?summary, "stopped");
    drop(sources);
    // Everything is committed: the sinks' clients close on a thread of their own (a
    // librdkafka producer takes ~50 ms to stop its poll thread and destroy itself),
    // not between the job's last commit and its caller. Should the thread not start,
    // they close here, as the closure is dropped.
    let _ = std::thread::Builder::new()
        .name("close-sinks".into())
        .spawn(move || drop(sinks));
    Ok(summary)
}

impl RunSummary {
    fn add(&mut self, batch_id: u64, records: usize, out: &BatchOutput) {
        self.batches += 1;
        self.records += records as u64;
        self.rows += out.sinks.values().map(|r| r.len() as u64).sum::<u64>();
        self.dead_letters += out.dead_letters.len() as u64;
        self.late_dropped += out.late_dropped;
        self.last_batch_id = batch_id;
    }
}

/// Sort each source's records by (topic, partition, offset): a batch and its replay run
/// the executor over the same sequence, so order-sensitive operators (dedup keeps the
/// first, `first`/`last` aggregates, the per-batch watermark) give the same output.
pub fn sort_canonically(records: &mut BTreeMap<String, Vec<SourceRecord>>) {
    for r in records.values_mut() {
        r.sort_by(|a, b| {
            (&a.meta.topic, a.meta.partition, a.meta.offset).cmp(&(
                &b.meta.topic,
                b.meta.partition,
                b.meta.offset,
            ))
        });
    }
}

fn positions(sources: &[KafkaSource]) -> Offsets {
    let mut positions = Offsets::new();
    for s in sources {
        for (t, p) in s.positions() {
            positions.entry(t.clone()).or_default().extend(p);
        }
    }
    positions
}

fn open_sources(
    plan: &JobPlan,
    bootstrap: &str,
    job: &str,
    committed: Option<&Offsets>,
    timeout: Duration,
) -> Result<Vec<KafkaSource>, RuntimeError> {
    let connector = connector(plan)?;
    plan.sources
        .iter()
        .map(|s| KafkaSource::open(s, bootstrap, job, committed, timeout, &connector))
        .collect()
}

/// How the job's native clients connect: plain, TLS, SASL, as `[job.kafka]` says.
pub(crate) fn connector(plan: &JobPlan) -> Result<Connector, RuntimeError> {
    Connector::from_properties(&plan.kafka_properties)
        .map_err(|e| RuntimeError::config(&plan.name, format!("[job.kafka]: {e}")))
}

/// With SASL in `[job.kafka]`: stop the job at once when a bootstrap server
/// refuses its credentials (SASL_AUTHENTICATION_FAILED: a wrong password is
/// not something retrying mends, and every client would retry it for its
/// whole Kafka timeout). The first server that answers decides; one that
/// cannot be reached is left to the clients' own retries.
async fn refuse_bad_credentials(
    plan: &JobPlan,
    bootstrap: &str,
    timeout: Duration,
) -> Result<(), RuntimeError> {
    let connector = connector(plan)?;
    if !connector.is_sasl() {
        return Ok(());
    }
    for addr in wire_meta::bootstrap_servers(bootstrap) {
        match tokio::time::timeout(timeout, connector.connect(&addr)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(RuntimeError::KafkaState(format!(
                    "authentication failed at {addr}: {e}"
                )));
            }
            Ok(Err(_)) | Err(_) => continue,
        }
    }
    Ok(())
}

/// Read exactly a planned batch's records: from its start offsets up to (not
/// including) its end offsets, sorted canonically.
async fn read_planned(
    plan: &JobPlan,
    bootstrap: &str,
    options: &RunOptions,
    planned: &PlannedBatch,
) -> Result<Polled, RuntimeError> {
    let (plan, bootstrap, job) = (plan.clone(), bootstrap.to_string(), plan.name.clone());
    let (planned, mut opts) = (planned.clone(), options.clone());
    opts.max_batch_records = usize::MAX;
    blocking(move || {
        let mut sources = open_sources(
            &plan,
            &bootstrap,
            &job,
            Some(&planned.start),
            opts.kafka_timeout,
        )?;
        for s in &mut sources {
            s.bound_to(&planned.end);
        }
        let (mut records, n) = poll_all(&mut sources, &opts, true)?;
        if let Some(s) = sources.iter().find(|s| !s.caught_up()) {
            return Err(RuntimeError::KafkaState(format!(
                "replay of batch {}: source {} could not read up to the batch's end offsets \
                 (records deleted by retention?)",
                planned.batch_id, s.name
            )));
        }
        sort_canonically(&mut records);
        Ok((records, n))
    })
    .await
}

/// Run blocking work (librdkafka polls, fsyncs) on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
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
            let batch = records.entry(s.name.clone()).or_default();
            let got = s.poll_batch(batch, room, options.poll_wait)?;
            if got > 0 {
                last_progress = Instant::now();
            }
            n += got;
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

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Whether the job's sinks are ones this runtime runs; what `rivulet stream validate`
/// checks beyond the plan. Any number of exactly-once sinks may run together: the batch
/// log and replay ([`recovery`]) keep them in step — except two exactly-once PostgreSQL
/// sinks in one database, whose bookkeeping rows (per job) would collide.
pub fn check_runnable(plan: &JobPlan) -> Result<(), RuntimeError> {
    let mut eo_databases: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &plan.sinks {
        match &s.kind {
            SinkKind::Files { format, .. }
                if *format == FileFormat::Parquet && !cfg!(feature = "parquet") =>
            {
                return Err(RuntimeError::config(
                    &plan.name,
                    format!(
                        "sink {}: format \"parquet\" needs rivulet-streams built with the \
                         `parquet` feature, which this build lacks: use \"jsonl\"",
                        s.name
                    ),
                ))
            }
            SinkKind::Postgres { url, guarantee, .. } if *guarantee == Guarantee::ExactlyOnce => {
                if let Some(other) = eo_databases.insert(url.as_str(), s.name.as_str()) {
                    return Err(RuntimeError::config(
                        &plan.name,
                        format!(
                            "exactly-once sinks {other} and {} write to the same database: \
                             its batch bookkeeping is per job; use one sink or two databases",
                            s.name
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(sinks: &str) -> JobPlan {
        JobPlan::from_toml(&format!(
            "[job]\nname = \"j\"\n[[source]]\nname = \"s\"\ntopics = [\"t\"]\n{sinks}"
        ))
        .unwrap()
    }

    const KAFKA_EO: &str =
        "[[sink]]\nname = \"k\"\ntype = \"kafka\"\ntopic = \"o\"\nguarantee = \"exactly_once\"\n";

    fn pg_eo(name: &str, db: &str) -> String {
        format!(
            "[[sink]]\nname = \"{name}\"\ntype = \"postgres\"\nurl = \"postgres://h/{db}\"\n\
             table = \"t\"\nguarantee = \"exactly_once\"\n"
        )
    }

    #[test]
    fn several_exactly_once_sinks_run_together_but_not_in_one_database() {
        let both = plan(&format!("{KAFKA_EO}{}", pg_eo("p", "a")));
        assert!(check_runnable(&both).is_ok());
        let two_dbs = plan(&format!("{}{}", pg_eo("p", "a"), pg_eo("q", "b")));
        assert!(check_runnable(&two_dbs).is_ok());
        let one_db = plan(&format!("{}{}", pg_eo("p", "a"), pg_eo("q", "a")));
        let e = check_runnable(&one_db).unwrap_err().to_string();
        assert!(e.contains("same database"), "{e}");
        let files = plan("[[sink]]\nname = \"f\"\ntype = \"files\"\npath = \"lake\"\n");
        assert!(check_runnable(&files).is_ok());
        let with_files = plan(&format!(
            "{KAFKA_EO}{}[[sink]]\nname = \"f\"\ntype = \"files\"\npath = \"lake\"\n",
            pg_eo("p", "a")
        ));
        assert!(check_runnable(&with_files).is_ok());
    }
}
