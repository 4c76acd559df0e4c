//! Committing a run batch while the next one polls and runs.
//!
//! A batch's commit (its sinks' writes, then its checkpoint and the pruning of the
//! batch log) does not need the executor: it runs on a thread of its own holding the
//! sinks, while the runtime polls and runs the next batch (the executor is not `Send`,
//! so the batches run where the job runs). A PostgreSQL sink's transaction, a Kafka
//! sink's, a files sink's syncs and the checkpoint's then overlap the next batch's
//! poll and executor step instead of following them. The commit's future is built and
//! run on that thread (a current-thread runtime): the sinks move there and back, the
//! future itself never crosses threads, so it need not be `Send`.
//!
//! Invariants (what [`super::recovery`] relies on):
//! - the snapshot a commit writes is taken when its batch has run, before the next
//!   batch runs;
//! - the next batch's commit starts only when this one, checkpoint included, has
//!   finished ([`SinkSlot::ready`]): sinks commit batches in order and the checkpoint
//!   file lags the sinks by one batch at most — what a kill between a sink's commit
//!   and the checkpoint always left;
//! - every batch is in the batch log before its commit starts, so a failed commit, or
//!   a kill while one is in flight, leaves batches the restart replays. A commit's
//!   error stops the job when the runtime next waits for the sinks (after the next
//!   batch ran, whose output is then dropped, or at the end).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio::sync::oneshot;

use super::batch_log::{self, PlannedBatch};
use super::checkpoint::{self, Checkpoint};
use super::error::RuntimeError;
use super::sinks::{self, BatchContext, Sink, WriteOptions};
use crate::executor::{BatchOutput, Executor};

/// Where a job's dead letters go and the test hook: what every commit writes with.
#[derive(Clone)]
pub(crate) struct CommitOptions {
    pub dead_letter_topic: Option<String>,
    pub producer: Option<Arc<sinks::DeadLetterProducer>>,
    pub crash_after_sink: Option<(u64, String)>,
    pub checkpoint_dir: PathBuf,
}

/// One batch to commit: its output, its planned offsets and the executor's snapshot
/// after it.
struct CommitJob {
    out: BatchOutput,
    planned: PlannedBatch,
    snapshot: Value,
    options: CommitOptions,
}

impl CommitJob {
    /// Write the batch to the sinks that lack it, then checkpoint it and prune the log.
    async fn run(self, sinks: &mut [Sink]) -> Result<(), RuntimeError> {
        let started = Instant::now();
        let o = &self.options;
        let write = WriteOptions {
            topic: o.dead_letter_topic.as_deref(),
            producer: o.producer.as_deref(),
            crash_after_sink: o.crash_after_sink.as_ref(),
        };
        let ctx = BatchContext {
            batch_id: self.planned.batch_id,
            end: &self.planned.end,
            snapshot: &self.snapshot,
        };
        sinks::write_batch(sinks, &self.out, &ctx, &write).await?;
        let written = started.elapsed();
        let id = self.planned.batch_id;
        let cp = Checkpoint::new(&self.planned.job, id, self.planned.end, self.snapshot);
        let dir = self.options.checkpoint_dir;
        super::blocking(move || {
            checkpoint::store(&dir, &cp)?;
            batch_log::prune(&dir, id)
        })
        .await?;
        tracing::debug!(
            batch_id = id,
            sinks_ms = written.as_secs_f64() * 1e3,
            checkpoint_ms = (started.elapsed() - written).as_secs_f64() * 1e3,
            "batch committed to the sinks and checkpointed"
        );
        Ok(())
    }
}

/// What a commit thread hands back: the sinks and how the commit went.
type Committed = (Vec<Sink>, Result<(), RuntimeError>);

/// One commit for the commit thread: the sinks, the batch, where to answer.
type Work = (Vec<Sink>, CommitJob, oneshot::Sender<Committed>);

/// The job's sinks, or the thread committing a batch to them.
pub(crate) struct SinkSlot {
    idle: Option<Vec<Sink>>,
    committing: Option<oneshot::Receiver<Committed>>,
    /// The commit thread (started with the first commit; it ends when the slot is
    /// dropped): one thread and runtime for the job, not one per batch.
    worker: Option<std::sync::mpsc::Sender<Work>>,
}

impl SinkSlot {
    pub fn new(sinks: Vec<Sink>) -> SinkSlot {
        SinkSlot {
            idle: Some(sinks),
            committing: None,
            worker: None,
        }
    }

    /// The sinks, once the commit in flight (if any) has finished; its error, if it
    /// failed.
    pub async fn ready(&mut self) -> Result<&mut Vec<Sink>, RuntimeError> {
        if let Some(task) = self.committing.take() {
            let (sinks, result) = task.await.map_err(|_| {
                RuntimeError::KafkaState("the commit thread ended without an answer".into())
            })?;
            self.idle = Some(sinks);
            result?;
        }
        self.idle.as_mut().ok_or_else(lost)
    }

    /// The outcome of a commit that has finished meanwhile, without waiting: a failed
    /// commit stops the job at the next batch boundary, not only when the next batch
    /// has run (an idle source may bring none for long).
    pub fn check(&mut self) -> Result<(), RuntimeError> {
        let Some(task) = self.committing.as_mut() else {
            return Ok(());
        };
        match task.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => Ok(()),
            Err(oneshot::error::TryRecvError::Closed) => {
                self.committing = None;
                Err(RuntimeError::KafkaState(
                    "the commit thread ended without an answer".into(),
                ))
            }
            Ok((sinks, result)) => {
                self.committing = None;
                self.idle = Some(sinks);
                result
            }
        }
    }

    /// Start committing a batch that has just run (after [`Self::ready`]: one commit
    /// at a time), with `executor`'s snapshot taken now, before the next batch runs.
    pub fn start_batch(
        &mut self,
        out: BatchOutput,
        planned: PlannedBatch,
        executor: &Executor,
        options: &CommitOptions,
    ) -> Result<(), RuntimeError> {
        let snapshot = executor.snapshot()?;
        self.start(CommitJob {
            out,
            planned,
            snapshot,
            options: options.clone(),
        })
    }

    fn start(&mut self, job: CommitJob) -> Result<(), RuntimeError> {
        let sinks = self.idle.take().ok_or_else(lost)?;
        let (tx, rx) = oneshot::channel();
        let worker = match self.worker.take() {
            Some(worker) => worker,
            None => match spawn_worker() {
                Ok(worker) => worker,
                Err(e) => {
                    self.idle = Some(sinks);
                    return Err(e);
                }
            },
        };
        if let Err(std::sync::mpsc::SendError((sinks, _, _))) = worker.send((sinks, job, tx)) {
            // The thread is gone (it ends only with its runtime's failure
            // answered): the sinks stay here, the job stops.
            self.idle = Some(sinks);
            return Err(RuntimeError::KafkaState("the commit thread is gone".into()));
        }
        self.worker = Some(worker);
        self.committing = Some(rx);
        Ok(())
    }
}

/// The commit thread: a current-thread runtime running one commit after another,
/// until the slot (the sender) is dropped.
fn spawn_worker() -> Result<std::sync::mpsc::Sender<Work>, RuntimeError> {
    let (tx, rx) = std::sync::mpsc::channel::<Work>();
    std::thread::Builder::new()
        .name("stream-commit".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            while let Ok((mut sinks, job, reply)) = rx.recv() {
                let result = match &rt {
                    Ok(rt) => rt.block_on(job.run(&mut sinks)),
                    Err(e) => Err(RuntimeError::KafkaState(format!(
                        "cannot start the commit thread's runtime: {e}"
                    ))),
                };
                // The receiver is gone only when the job already stopped.
                let _ = reply.send((sinks, result));
            }
        })
        .map_err(|e| RuntimeError::KafkaState(format!("cannot start the commit thread: {e}")))?;
    Ok(tx)
}

fn lost() -> RuntimeError {
    RuntimeError::KafkaState("the sinks were lost with a failed commit task".into())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::plan::JobPlan;
    use crate::runtime::offsets::Offsets;

    fn executor() -> Executor {
        let plan = JobPlan::from_toml(
            "[job]\nname = \"j\"\n[[source]]\nname = \"s\"\ntopics = [\"t\"]\n\
             [[sink]]\nname = \"c\"\ntype = \"console\"\n",
        )
        .unwrap();
        Executor::new(plan, BTreeMap::new()).unwrap()
    }

    fn options(checkpoint_dir: PathBuf) -> CommitOptions {
        CommitOptions {
            dead_letter_topic: None,
            producer: None,
            crash_after_sink: None,
            checkpoint_dir,
        }
    }

    fn planned(id: u64) -> PlannedBatch {
        let mut end = Offsets::new();
        end.insert("t".into(), BTreeMap::from([(0, 10 * id as i64)]));
        PlannedBatch::new("j", id, Offsets::new(), end, 0)
    }

    #[tokio::test]
    async fn batches_commit_in_order_and_a_failed_commit_stops_the_job() {
        let dir = tempfile::tempdir().unwrap();
        let ex = executor();
        let mut slot = SinkSlot::new(Vec::new());
        let opts = options(dir.path().join("cp"));
        for id in 1..=3 {
            slot.ready().await.unwrap();
            slot.start_batch(BatchOutput::default(), planned(id), &ex, &opts)
                .unwrap();
            slot.check().unwrap();
        }
        slot.ready().await.unwrap();
        let cp = checkpoint::load(&dir.path().join("cp"), "j")
            .unwrap()
            .unwrap();
        assert_eq!(cp.batch_id, 3);
        assert_eq!(cp.offsets["t"][&0], 30);

        // A checkpoint directory that is a file: the commit fails, and says so.
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        slot.start_batch(BatchOutput::default(), planned(4), &ex, &options(file))
            .unwrap();
        let mut failed = None;
        for _ in 0..500 {
            if let Err(e) = slot.check() {
                failed = Some(e);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(failed.is_some(), "check() never reported the failed commit");
        // The sinks came back: the job could still stop cleanly.
        assert!(slot.ready().await.is_ok());
    }
}
