//! Produce appends on the leader and `acks=all` waiting: validate, check
//! the producer's sequence, append, let the state machine move the high
//! watermark, fsync on the blocking pool when the flush policy asks, then
//! park the produce in the state machine until it answers (or the timeout
//! passes).
//!
//! An append's [`AppendOrigin`] chooses the producer checks, as Kafka's
//! `AppendOrigin`: a client's batches get the full idempotence checks
//! (epoch and sequence); the coordinators' own writes (transactional offset
//! commits to `__consumer_offsets`, transaction markers) carry no sequence
//! (`base_sequence` -1) and are checked for a stale producer epoch only.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError as E;
use rivulet_protocol::control::parse_control_marker;
use rivulet_protocol::record_batch;
use rivulet_storage::config::FlushPolicy;
use rivulet_storage::TopicPartition;
use rivulet_storage::{FlushTracker, StorageError};
use tokio::sync::oneshot;

use super::{Partition, ReplicaManager};
use crate::errors;
use crate::producer_state::SequenceCheck;
use crate::replication::{AckId, ProduceRefusal};

/// Outcome of appending one partition's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub base_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// The records a refused batch was refused for: `(index in the
    /// batch, why)`, Produce v8's `record_errors`.
    pub record_errors: Vec<(i32, String)>,
}

impl AppendResult {
    fn error(code: i16, message: impl Into<Option<String>>) -> Self {
        AppendResult {
            error_code: code,
            error_message: message.into(),
            base_offset: -1,
            log_append_time: -1,
            log_start_offset: -1,
            record_errors: Vec::new(),
        }
    }

    /// A failed append's answer, with the refused records when the log
    /// named them.
    fn storage_error(e: StorageError) -> Self {
        let mut result = AppendResult::error(errors::storage(&e), e.to_string());
        if let StorageError::RecordsRejected(rejected) = e {
            result.record_errors = rejected.errors;
        }
        result
    }
}

/// Who is appending, which decides the producer checks (Kafka's
/// `AppendOrigin`; a follower's appends are recorded by its log alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer's Produce request: epoch and sequence are checked, a
    /// retried batch is answered with its original offsets.
    Client,
    /// The group or transaction coordinator: no sequence check (its
    /// batches have none), but a producer epoch older than the newest this
    /// partition has seen is refused with INVALID_PRODUCER_EPOCH, as Kafka's
    /// `ProducerAppendInfo.checkProducerEpoch` does for coordinator writes
    /// (it is what fences a zombie's transactional offset commit).
    Coordinator,
}

impl ReplicaManager {
    /// Append a producer's records to a partition this node leads
    /// ([`AppendOrigin::Client`]).
    pub async fn append(
        &self,
        tp: &TopicPartition,
        records: Option<Bytes>,
        acks: i16,
        timeout_ms: i32,
    ) -> AppendResult {
        self.append_with_origin(tp, records, acks, timeout_ms, AppendOrigin::Client)
            .await
    }

    /// Append records to a partition this node leads, with the producer
    /// checks of `origin`, and wait as `acks` asks. The producer's epoch is
    /// recorded either way.
    pub async fn append_with_origin(
        &self,
        tp: &TopicPartition,
        records: Option<Bytes>,
        acks: i16,
        timeout_ms: i32,
        origin: AppendOrigin,
    ) -> AppendResult {
        match self.append_staged(tp, records, acks, timeout_ms, origin) {
            Appended::Done(result) => result,
            Appended::Waiting(wait) => wait.wait().await,
        }
    }

    /// The append phase alone, without waiting: checks and append happen
    /// now, in the caller's order (a connection appends its pipelined
    /// produces in request order, so idempotent sequences stay in order);
    /// what is left to wait for (fsync, the high watermark for `acks=all`)
    /// is an [`AppendWait`] the caller awaits when it likes.
    pub fn append_staged(
        &self,
        tp: &TopicPartition,
        records: Option<Bytes>,
        acks: i16,
        timeout_ms: i32,
        origin: AppendOrigin,
    ) -> Appended {
        let Some(partition) = self.get(tp) else {
            return AppendResult::error(E::UnknownTopicOrPartition.code(), None).into();
        };
        let refusal = partition.replica.lock().check_produce(acks);
        let leader_epoch = match refusal {
            Ok(epoch) => epoch,
            Err(ProduceRefusal::NotLeaderOrFollower) => {
                return AppendResult::error(E::NotLeaderOrFollower.code(), None).into()
            }
            Err(ProduceRefusal::NotEnoughReplicas {
                isr,
                min_insync_replicas,
            }) => {
                return AppendResult::error(
                    E::NotEnoughReplicas.code(),
                    format!(
                        "{isr} in-sync replica(s), min.insync.replicas is {min_insync_replicas}"
                    ),
                )
                .into()
            }
        };
        let Some(records) = records.filter(|r| !r.is_empty()) else {
            return AppendResult::error(E::CorruptMessage.code(), "no records".to_string()).into();
        };
        // The client's bytes, with offsets and epoch rewritten in place.
        let mut buf = records.to_vec();
        let outcome = {
            // The producer state lives with the log (the log records every
            // batch it appends): checks and append under one lock.
            let mut log = partition.log.lock();
            let producers = log.producer_state();
            let first = match record_batch::BatchHeader::parse(&buf) {
                Ok(h) => h,
                Err(e) => {
                    return AppendResult::error(E::CorruptMessage.code(), e.to_string()).into()
                }
            };
            if origin == AppendOrigin::Client && first.is_control() {
                // Only coordinators write transaction markers (Kafka's
                // LogValidator for AppendOrigin.CLIENT).
                return AppendResult::error(
                    E::InvalidRecord.code(),
                    "producers may not write control batches".to_string(),
                )
                .into();
            }
            let check = match origin {
                AppendOrigin::Client => producers.check(&first),
                AppendOrigin::Coordinator => producers.check_epoch(&first),
            };
            match check {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate(m) => {
                    return AppendResult {
                        error_code: errors::NONE,
                        error_message: None,
                        base_offset: m.first_offset,
                        log_append_time: -1,
                        log_start_offset: log.log_start_offset(),
                        record_errors: Vec::new(),
                    }
                    .into();
                }
                SequenceCheck::OutOfOrder { expected, got } => {
                    return AppendResult::error(
                        E::OutOfOrderSequenceNumber.code(),
                        format!("expected sequence {expected}, got {got}"),
                    )
                    .into()
                }
                SequenceCheck::InvalidEpoch { current, got } => {
                    return AppendResult::error(
                        E::InvalidProducerEpoch.code(),
                        format!("producer epoch {got} is older than {current}"),
                    )
                    .into()
                }
            }
            // A transaction marker from a coordinator older than the last
            // one that wrote for this producer (a deposed coordinator still
            // sending): Kafka's `checkCoordinatorEpoch`.
            let marker_epoch = match (origin, first.is_control()) {
                (AppendOrigin::Coordinator, true) => match parse_control_marker(&buf) {
                    Ok(Some((_, epoch))) => Some(epoch),
                    _ => None,
                },
                _ => None,
            };
            if let Some(epoch) = marker_epoch {
                if let Some(newer) = producers.newer_coordinator_epoch(first.producer_id, epoch) {
                    return AppendResult::error(
                        E::TransactionCoordinatorFenced.code(),
                        format!("coordinator epoch {epoch} is older than {newer}"),
                    )
                    .into();
                }
            }
            // KIP-890: a client's transactional batch that would start a
            // transaction in this partition needs a verification guard that
            // no marker has cleared since (the handler verified it with the
            // coordinator just before).
            let starts_transaction = origin == AppendOrigin::Client
                && first.is_transactional()
                && !first.is_control()
                && !log.has_ongoing_transaction(first.producer_id);
            if starts_transaction {
                let guard = partition.verified.lock().remove(&first.producer_id);
                if guard != Some(first.producer_epoch) {
                    return AppendResult::error(
                        E::InvalidTxnState.code(),
                        "the partition is not in an ongoing transaction of this producer"
                            .to_string(),
                    )
                    .into();
                }
            }
            if first.is_control() {
                partition.verified.lock().remove(&first.producer_id);
            }
            let storage_origin = match origin {
                AppendOrigin::Client => rivulet_storage::AppendOrigin::Client,
                AppendOrigin::Coordinator => rivulet_storage::AppendOrigin::Coordinator,
            };
            match log.append_as_leader_from(&mut buf, leader_epoch, storage_origin) {
                Ok(info) => {
                    let actions = partition.replica.lock().on_append(&*log);
                    partition.execute(&mut log, actions, None).map(|_| {
                        let durable = (acks == -1
                            && log.config().flush_policy == FlushPolicy::OnAck)
                            .then(|| log.flush_tracker());
                        (info, log.log_start_offset(), durable)
                    })
                }
                Err(e) => Err(e),
            }
        };
        let (info, log_start_offset, durable) = match outcome {
            Ok(appended) => appended,
            Err(e) => return AppendResult::storage_error(e).into(),
        };
        partition.appended.notify_waiters();
        let result = AppendResult {
            error_code: errors::NONE,
            error_message: None,
            base_offset: info.first_offset,
            log_append_time: info.log_append_time,
            log_start_offset,
            record_errors: Vec::new(),
        };
        if durable.is_none() && acks != -1 {
            return Appended::Done(result);
        }
        Appended::Waiting(AppendWait {
            partition,
            durable,
            upto: info.last_offset + 1,
            replicated: acks == -1,
            leader_epoch,
            timeout: Duration::from_millis(timeout_ms.max(0) as u64),
            result,
        })
    }
}

/// An append's outcome before any waiting.
#[derive(Debug)]
pub enum Appended {
    /// Refused, a duplicate, or appended with nothing to wait for.
    Done(AppendResult),
    /// Appended; the fsync or the replication `acks` asks for is pending.
    Waiting(AppendWait),
}

impl From<AppendResult> for Appended {
    fn from(r: AppendResult) -> Self {
        Appended::Done(r)
    }
}

/// What an appended produce still waits for: its bytes on disk (flush
/// policy on-ack) and, for `acks=all`, the high watermark past them.
#[derive(Debug)]
pub struct AppendWait {
    partition: Arc<Partition>,
    durable: Option<Arc<FlushTracker>>,
    /// The offset after the appended records.
    upto: i64,
    /// `acks=all`: wait for the ISR.
    replicated: bool,
    leader_epoch: i32,
    timeout: Duration,
    /// The answer once the waits succeed.
    result: AppendResult,
}

impl AppendWait {
    /// Wait for the fsync (on the blocking pool) and then the high
    /// watermark; the append's result, or the error that ended the wait.
    pub async fn wait(self) -> AppendResult {
        if let Some(tracker) = self.durable {
            let upto = self.upto;
            let synced = tokio::task::spawn_blocking(move || tracker.wait_durable(upto)).await;
            match synced {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return AppendResult::error(errors::storage(&e), e.to_string()),
                Err(e) => return AppendResult::error(E::UnknownServerError.code(), e.to_string()),
            }
        }
        if self.replicated {
            let replicated = wait_for_high_watermark(
                &self.partition,
                self.upto,
                self.leader_epoch,
                self.timeout,
            );
            if let Err(code) = crate::metrics::remote(replicated).await {
                return AppendResult::error(code, None);
            }
        }
        self.result
    }
}

/// acks=all: park in the state machine until the high watermark
/// reaches `upto` (every ISR member has the records) in `leader_epoch`
/// (the one they were appended in), or fail as it decides (leadership
/// lost, ISR below `min.insync.replicas`, partition gone), or `timeout`
/// passes: REQUEST_TIMED_OUT.
async fn wait_for_high_watermark(
    partition: &Partition,
    upto: i64,
    leader_epoch: i32,
    timeout: Duration,
) -> Result<(), i16> {
    let id = partition.next_ack.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = oneshot::channel();
    // Unparks the produce if this future is dropped (the connection
    // went away) before the state machine answered.
    let mut parked = Parked { partition, id };
    {
        let mut log = partition.log.lock();
        partition.acks.lock().insert(id, tx);
        let actions = partition
            .replica
            .lock()
            .wait_for_ack(id, upto, leader_epoch, &*log);
        if let Err(e) = partition.execute(&mut log, actions, None) {
            return Err(errors::storage(&e));
        }
    }
    let answer = match tokio::time::timeout(timeout, &mut rx).await {
        Ok(answer) => answer,
        Err(_) => {
            parked.cancel();
            // An answer given meanwhile is already in the channel.
            match rx.try_recv() {
                Ok(result) => Ok(result),
                Err(_) => return Err(E::RequestTimedOut.code()),
            }
        }
    };
    match answer {
        Ok(result) => result.map_err(errors::acks_all),
        // The sender went without an answer: never, as answers are the
        // only way out of `acks`; treat it as a lost leadership.
        Err(_) => Err(E::NotLeaderOrFollower.code()),
    }
}

/// A produce parked in a partition's state machine; unparked on drop
/// unless answered.
struct Parked<'a> {
    partition: &'a Partition,
    id: AckId,
}

impl Parked<'_> {
    /// Take the produce out of the state machine and the answer channels.
    /// Actions run under the log lock: holding it, an answer already
    /// given is in the channel.
    fn cancel(&mut self) {
        let _log = self.partition.log.lock();
        self.partition.replica.lock().cancel_ack(self.id);
        self.partition.acks.lock().remove(&self.id);
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        let answered = !self.partition.acks.lock().contains_key(&self.id);
        if !answered {
            self.cancel();
        }
    }
}
