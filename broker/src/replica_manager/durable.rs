//! Waiting for appended offsets to reach the disk (flush policy on-ack)
//! from async code: the task that finds no fsync running runs one on the
//! blocking pool; every other waiter of that partition log parks its waker
//! in the log's [`FlushTracker`] instead of a blocking thread of its own.
//! Under a CPU-bound load that is one thread woken per fsync instead of one
//! per waiting produce (each woken thread then waking its task).

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use rivulet_storage::durability::DurableStep;
use rivulet_storage::{FlushTracker, StorageError};
use tokio::task::JoinError;

/// Wait until offsets below `upto` are durable; `Err` from the fsync (the
/// log is offline) or from the blocking task that ran it.
pub async fn durable(
    tracker: Arc<FlushTracker>,
    upto: i64,
) -> Result<Result<(), StorageError>, JoinError> {
    let step = poll_fn(|cx| match tracker.poll_durable(upto, cx.waker()) {
        DurableStep::Pending => Poll::Pending,
        step => Poll::Ready(step),
    })
    .await;
    match step {
        DurableStep::Durable => Ok(Ok(())),
        DurableStep::Failed(e) => Ok(Err(e)),
        // Also when another waiter started an fsync meanwhile: this one
        // then waits for it on its thread (rare).
        DurableStep::Flush | DurableStep::Pending => {
            tokio::task::spawn_blocking(move || tracker.wait_durable(upto)).await
        }
    }
}
