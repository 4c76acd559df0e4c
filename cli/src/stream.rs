//! `rivulet stream validate | explain | run JOB.toml`: stream jobs from the command line.
//!
//! `validate` parses and validates a job file (expressions, durations, inputs) and checks
//! that this runtime can run it; `explain` prints the plan, one node per line; `run`
//! runs it with `rivulet_streams::runtime` until its trigger ends (`once`,
//! `available_now`) or SIGINT/SIGTERM, which stop it between batches. A kill -9 at any
//! moment is safe too: a restart resumes from the last committed batch.
//!
//! `-b/--bootstrap-server` overrides the job's `bootstrap_servers`, `--command-config
//! FILE` adds client properties to its `[job.kafka]` (credentials need not be in the
//! job file); relative paths in the job (checkpoint dir, CSV tables) are relative to
//! the current directory.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use rivulet_streams::runtime::{self, RunOptions};
use rivulet_streams::JobPlan;

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Check a job file without running it.
    Validate {
        /// The job file (TOML; see examples/streams/).
        job: PathBuf,
    },
    /// Print a job's plan: sources, operators and sinks, one per line.
    Explain {
        /// The job file (TOML; see examples/streams/).
        job: PathBuf,
    },
    /// Run a job until its trigger ends or SIGINT/SIGTERM.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The job file (TOML; see examples/streams/).
    job: PathBuf,
    /// Checkpoint directory (overrides the job's `checkpoint_dir`).
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Most records one micro-batch reads.
    #[arg(long, value_name = "N", default_value_t = runtime::DEFAULT_MAX_BATCH_RECORDS)]
    max_batch_records: usize,
    /// Kafka client properties added to the job's `[job.kafka]` (the file's
    /// win): credentials kept out of the job file.
    #[command(flatten)]
    connection: crate::wire_client::Connection,
}

fn load(path: &Path) -> anyhow::Result<JobPlan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read job file {}", path.display()))?;
    JobPlan::from_toml(&text).with_context(|| format!("job file {}", path.display()))
}

pub fn run(command: StreamCommand, bootstrap: Option<String>) -> anyhow::Result<()> {
    match command {
        StreamCommand::Validate { job } => {
            let plan = load(&job)?;
            // A valid plan this runtime cannot run yet is still valid: say so, exit 0.
            if let Err(e) = runtime::check_runnable(&plan) {
                eprintln!("note: `rivulet stream run` cannot run it yet: {e}");
            }
            println!(
                "{}: job {} is valid ({} sources, {} operators, {} sinks)",
                job.display(),
                plan.name,
                plan.sources.len(),
                plan.operators.len(),
                plan.sinks.len()
            );
            Ok(())
        }
        StreamCommand::Explain { job } => {
            print!("{}", load(&job)?.explain());
            Ok(())
        }
        StreamCommand::Run(args) => {
            let mut plan = load(&args.job)?;
            plan.kafka_properties.extend(args.connection.properties()?);
            runtime::check_runnable(&plan)
                .with_context(|| format!("job file {}", args.job.display()))?;
            if args.max_batch_records == 0 {
                anyhow::bail!("--max-batch-records must be at least 1");
            }
            keep_freed_memory();
            let options = RunOptions {
                bootstrap_servers: bootstrap,
                checkpoint_dir: args.checkpoint_dir,
                max_batch_records: args.max_batch_records,
                ..RunOptions::default()
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("start the async runtime")?;
            rt.block_on(async move {
                let (stop, stopped) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    crate::wait_for_signal().await;
                    tracing::info!("signal received: stopping after the current batch");
                    let _ = stop.send(true);
                });
                let name = plan.name.clone();
                let summary = runtime::run(plan, options, stopped)
                    .await
                    .with_context(|| format!("job {name}"))?;
                eprintln!(
                    "job {name}: {} batches, {} records, {} rows to sinks, {} dead letters, last batch {}",
                    summary.batches,
                    summary.records,
                    summary.rows,
                    summary.dead_letters,
                    summary.last_batch_id
                );
                Ok(())
            })
        }
    }
}

/// mimalloc (the binary's allocator) option `purge_delay`, index 15 in the
/// `mi_option_e` of the mimalloc pinned by the workspace (libmimalloc-sys 0.1.49, v3).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// A job frees each micro-batch's rows and allocates the next one's right after:
/// memory mimalloc purged (returned to the OS) in between comes back as fresh pages
/// the kernel must zero — a sixth of a filter job's CPU in `perf` (clear_page). A job
/// keeps what it freed: its footprint stays at its peak, a few batches.
fn keep_freed_memory() {
    // SAFETY: mi_option_set only stores an option value; any value is valid for
    // purge_delay (-1: never purge).
    unsafe { crate::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}
