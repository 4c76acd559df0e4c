//! The transaction state machine of one transactional id (Kafka's
//! `TransactionMetadata` and the checks of its `TransactionCoordinator`):
//! pure code, requests and time in, the next state (to be written to
//! `__transaction_state`) or a Kafka error out.
//!
//! A transition is two steps, as in Kafka: `prepare_*` validates the
//! request against the current state and returns the [`TxnTransit`] to
//! persist, marking it pending; once the record is durable the shell calls
//! [`TxnMetadata::complete`] (or [`TxnMetadata::abandon`] if the write
//! failed). While a transition is pending every other request is refused
//! with CONCURRENT_TRANSACTIONS, so at most one write per transactional id is
//! in flight.
//!
//! States and the transitions allowed between them (Kafka's
//! `TransactionState.validPreviousStates`):
//!
//! ```text
//! Empty ──AddPartitions──▶ Ongoing ──EndTxn──▶ PrepareCommit ──markers──▶ CompleteCommit
//!   ▲                        │    └──EndTxn/timeout/fence──▶ PrepareAbort ──markers──▶ CompleteAbort
//!   └──InitProducerId (epoch bump)── Empty/CompleteCommit/CompleteAbort
//! Empty/Complete* ──expiration──▶ Dead
//! ```
//!
//! `PrepareEpochFence` is never written: it marks an ongoing transaction
//! whose epoch the coordinator bumped (a new producer with the same id, or
//! the transaction timed out) on its way to `PrepareAbort` with that epoch.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError as E;
use serde::{Deserialize, Serialize};

/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH` / `NO_PRODUCER_ID`.
pub const NO_PRODUCER_EPOCH: i16 = -1;
pub const NO_PRODUCER_ID: i64 = -1;

/// A topic partition of a transaction.
pub type TxnPartition = (String, i32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    /// The id in `__transaction_state` records (Kafka's `TransactionState.id`).
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions and ListTransactions report (Kafka's
    /// `TransactionState.name`).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// States a transition into `self` may start from.
    fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// A transaction decided but whose markers are still being written.
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// The outcome a client or the coordinator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TxnResult {
    Commit,
    Abort,
}

/// A state to persist: everything a `__transaction_state` value holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnTransit {
    pub producer_id: i64,
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    pub start_ms: i64,
    pub update_ms: i64,
}

/// Why a request is refused: a Kafka error code, or "nothing to write, the
/// answer is success" (a retried EndTxn of a completed transaction, an
/// AddPartitions of partitions already in the transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Error(i16),
    AlreadyDone,
}

fn err(e: E) -> Refusal {
    Refusal::Error(e.code())
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last rotation (KIP-360: a retried
    /// InitProducerId after an epoch exhaustion is recognised by it).
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump by this producer (KIP-360 retries),
    /// or -1 after a bump by a new producer instance.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    /// When the ongoing transaction started (-1 when none).
    pub start_ms: i64,
    pub update_ms: i64,
    /// The transition being written, if any.
    pub pending: Option<TxnState>,
    /// Set when a fence could not be written: the next fence reuses the
    /// epoch instead of bumping it again (Kafka's `hasFailedEpochFence`).
    failed_fence: bool,
    /// The pending transition is a fencing abort (its epoch is already
    /// bumped in memory).
    fencing: bool,
}

/// Kafka's `TransactionMetadata.isEpochExhausted`: the epoch cannot be
/// bumped twice more (a fence and the retry's bump).
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

impl TxnMetadata {
    /// A new transactional id with its first producer id (epoch -1: the
    /// InitProducerId that created it bumps it to 0).
    pub fn new(transactional_id: String, producer_id: i64, timeout_ms: i32, now: i64) -> Self {
        TxnMetadata {
            transactional_id,
            producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            update_ms: now,
            pending: None,
            failed_fence: false,
            fencing: false,
        }
    }

    /// The metadata a `__transaction_state` record describes (on load).
    pub fn from_transit(transactional_id: String, t: TxnTransit) -> Self {
        TxnMetadata {
            transactional_id,
            producer_id: t.producer_id,
            last_producer_id: t.last_producer_id,
            producer_epoch: t.producer_epoch,
            last_producer_epoch: t.last_producer_epoch,
            timeout_ms: t.timeout_ms,
            state: t.state,
            partitions: t.partitions,
            start_ms: t.start_ms,
            update_ms: t.update_ms,
            pending: None,
            failed_fence: false,
            fencing: false,
        }
    }

    /// The current state as a record value.
    pub fn current(&self) -> TxnTransit {
        TxnTransit {
            producer_id: self.producer_id,
            last_producer_id: self.last_producer_id,
            producer_epoch: self.producer_epoch,
            last_producer_epoch: self.last_producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: self.partitions.clone(),
            start_ms: self.start_ms,
            update_ms: self.update_ms,
        }
    }

    fn transit(&mut self, to: TxnState, f: impl FnOnce(&mut TxnTransit)) -> TxnTransit {
        debug_assert!(
            to.valid_previous().contains(&self.state),
            "{:?} -> {to:?}",
            self.state
        );
        let mut t = self.current();
        t.state = to;
        f(&mut t);
        self.pending = Some(to);
        t
    }

    fn check_pending(&self) -> Result<(), Refusal> {
        match self.pending {
            Some(_) => Err(err(E::ConcurrentTransactions)),
            None => Ok(()),
        }
    }

    /// The written transition is durable: make it the current state.
    pub fn complete(&mut self, t: TxnTransit) {
        self.pending = None;
        self.failed_fence = false;
        self.fencing = false;
        self.producer_id = t.producer_id;
        self.last_producer_id = t.last_producer_id;
        self.producer_epoch = t.producer_epoch;
        self.last_producer_epoch = t.last_producer_epoch;
        self.timeout_ms = t.timeout_ms;
        self.state = t.state;
        self.partitions = t.partitions;
        self.start_ms = t.start_ms;
        self.update_ms = t.update_ms;
    }

    /// The write failed: forget the pending transition. A fence that was
    /// part of it is remembered so the next fence does not bump again.
    pub fn abandon(&mut self) {
        // A fencing abort keeps its epoch in memory (the old producer
        // stays fenced); the next fence reuses it.
        if self.pending.take().is_some() && self.fencing {
            self.failed_fence = true;
        }
        self.fencing = false;
    }

    /// InitProducerId with this transactional id. `expected`: the producer
    /// id and epoch the client sent (KIP-360, v3+), if any. `fresh_id`: a
    /// new producer id, should the epoch be exhausted.
    ///
    /// `Ok(InitStep::Write)`: persist and answer with the transit's id and
    /// epoch. `Ok(InitStep::FenceAndAbort)`: an ongoing transaction must be
    /// aborted first (the transit is its PrepareAbort with the fenced
    /// epoch); the client is answered CONCURRENT_TRANSACTIONS and retries.
    pub fn prepare_init_producer_id(
        &mut self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fresh_id: Option<i64>,
        now: i64,
    ) -> Result<InitStep, Refusal> {
        self.check_pending()?;
        if let Some((pid, epoch)) = expected {
            let valid = self.producer_epoch == NO_PRODUCER_EPOCH
                || pid == self.producer_id
                || (pid == self.last_producer_id && epoch_exhausted(epoch));
            if !valid {
                return Err(err(E::ProducerFenced));
            }
        }
        match self.state {
            TxnState::PrepareAbort | TxnState::PrepareCommit => Err(err(E::ConcurrentTransactions)),
            TxnState::Empty | TxnState::CompleteAbort | TxnState::CompleteCommit => {
                if epoch_exhausted(self.producer_epoch)
                    && expected.is_none_or(|(_, e)| e == self.producer_epoch)
                {
                    let Some(new_id) = fresh_id else {
                        return Ok(InitStep::NeedProducerId);
                    };
                    // Kafka's prepareProducerIdRotation.
                    let recovering = expected.is_some();
                    let old_id = self.producer_id;
                    let t = self.transit(TxnState::Empty, |t| {
                        t.producer_id = new_id;
                        t.last_producer_id = if recovering { old_id } else { NO_PRODUCER_ID };
                        t.producer_epoch = 0;
                        t.last_producer_epoch = NO_PRODUCER_EPOCH;
                        t.timeout_ms = timeout_ms;
                        t.partitions.clear();
                        t.start_ms = -1;
                        t.update_ms = now;
                    });
                    return Ok(InitStep::Write(t));
                }
                // Kafka's prepareIncrementProducerEpoch.
                let bumped = self.producer_epoch.saturating_add(1);
                let (epoch, last) = match expected {
                    None => (bumped, NO_PRODUCER_EPOCH),
                    Some((_, e))
                        if self.producer_epoch == NO_PRODUCER_EPOCH || e == self.producer_epoch =>
                    {
                        (bumped, self.producer_epoch)
                    }
                    // A retry of a bump that succeeded.
                    Some((_, e)) if e == self.last_producer_epoch => {
                        (self.producer_epoch, self.last_producer_epoch)
                    }
                    Some(_) => return Err(err(E::ProducerFenced)),
                };
                let t = self.transit(TxnState::Empty, |t| {
                    t.producer_epoch = epoch;
                    t.last_producer_epoch = last;
                    t.timeout_ms = timeout_ms;
                    t.partitions.clear();
                    t.start_ms = -1;
                    t.update_ms = now;
                });
                Ok(InitStep::Write(t))
            }
            TxnState::Ongoing => Ok(InitStep::FenceAndAbort(self.prepare_fence_and_abort(now))),
            TxnState::Dead | TxnState::PrepareEpochFence => Err(err(E::UnknownServerError)),
        }
    }

    /// Bump the epoch of an ongoing transaction (fencing its producer) and
    /// prepare its abort with that epoch (Kafka's prepareFenceProducerEpoch
    /// followed by endTransaction(ABORT, isFromClient = false)).
    fn prepare_fence_and_abort(&mut self, now: i64) -> TxnTransit {
        debug_assert_eq!(self.state, TxnState::Ongoing);
        let epoch = if self.failed_fence || self.producer_epoch == i16::MAX {
            self.producer_epoch
        } else {
            self.producer_epoch + 1
        };
        // The old producer is fenced from now on, written or not.
        self.producer_epoch = epoch;
        self.last_producer_epoch = NO_PRODUCER_EPOCH;
        self.fencing = true;
        self.transit(TxnState::PrepareAbort, |t| {
            t.producer_epoch = epoch;
            t.last_producer_epoch = NO_PRODUCER_EPOCH;
            t.update_ms = now;
        })
    }

    /// Check a client's producer id and epoch (AddPartitionsToTxn,
    /// AddOffsetsToTxn, EndTxn).
    fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), Refusal> {
        if producer_id != self.producer_id {
            return Err(err(E::InvalidProducerIdMapping));
        }
        if epoch != self.producer_epoch {
            return Err(err(E::ProducerFenced));
        }
        Ok(())
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn (the offsets partition).
    pub fn prepare_add_partitions(
        &mut self,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
        now: i64,
    ) -> Result<TxnTransit, Refusal> {
        self.check_producer(producer_id, epoch)?;
        self.check_pending()?;
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Err(err(E::ConcurrentTransactions))
            }
            TxnState::Ongoing if partitions.iter().all(|p| self.partitions.contains(p)) => {
                return Err(Refusal::AlreadyDone)
            }
            TxnState::Dead | TxnState::PrepareEpochFence => return Err(err(E::UnknownServerError)),
            _ => {}
        }
        let starting = self.state != TxnState::Ongoing;
        Ok(self.transit(TxnState::Ongoing, |t| {
            if starting {
                t.partitions.clear();
                t.start_ms = now;
            }
            t.partitions.extend(partitions.iter().cloned());
            t.update_ms = now;
        }))
    }

    /// EndTxn from the client.
    pub fn prepare_end(
        &mut self,
        producer_id: i64,
        epoch: i16,
        result: TxnResult,
        now: i64,
    ) -> Result<TxnTransit, Refusal> {
        self.check_producer(producer_id, epoch)?;
        self.check_pending()?;
        let invalid = err(E::InvalidTxnState);
        match (self.state, result) {
            (TxnState::Ongoing, _) => {
                let to = match result {
                    TxnResult::Commit => TxnState::PrepareCommit,
                    TxnResult::Abort => TxnState::PrepareAbort,
                };
                Ok(self.transit(to, |t| t.update_ms = now))
            }
            (TxnState::CompleteCommit, TxnResult::Commit)
            | (TxnState::CompleteAbort, TxnResult::Abort) => Err(Refusal::AlreadyDone),
            (TxnState::PrepareCommit, TxnResult::Commit)
            | (TxnState::PrepareAbort, TxnResult::Abort) => Err(err(E::ConcurrentTransactions)),
            _ => Err(invalid),
        }
    }

    /// The coordinator aborts a transaction that outlived its timeout
    /// (Kafka's abortTimedOutTransactions): fence the producer, then abort.
    /// `None` when the transaction is not (or no longer) due.
    pub fn prepare_timeout_abort(&mut self, now: i64) -> Option<TxnTransit> {
        let due = self.state == TxnState::Ongoing
            && self.pending.is_none()
            && self.start_ms >= 0
            && now.saturating_sub(self.start_ms) > i64::from(self.timeout_ms);
        due.then(|| self.prepare_fence_and_abort(now))
    }

    /// All markers of a prepared transaction are written: complete it.
    pub fn prepare_complete(&mut self, now: i64) -> Option<TxnTransit> {
        if self.pending.is_some() {
            return None;
        }
        let to = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return None,
        };
        Some(self.transit(to, |t| {
            t.partitions.clear();
            t.start_ms = -1;
            t.update_ms = now;
        }))
    }

    /// A transactional id idle for longer than `expiration_ms` is removed
    /// (Kafka's `transactional.id.expiration.ms`): the caller writes a
    /// tombstone.
    pub fn prepare_expire(&mut self, now: i64, expiration_ms: i64) -> bool {
        let idle = matches!(
            self.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        ) && self.pending.is_none()
            && now.saturating_sub(self.update_ms) > expiration_ms;
        if idle {
            self.pending = Some(TxnState::Dead);
        }
        idle
    }
}

/// What InitProducerId needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitStep {
    Write(TxnTransit),
    FenceAndAbort(TxnTransit),
    /// The epoch is exhausted: call again with a fresh producer id.
    NeedProducerId,
}

/// The error a client of `version` understands for `code` (KIP-588:
/// PRODUCER_FENCED is new in InitProducerId v4, AddPartitionsToTxn v2,
/// AddOffsetsToTxn v2, EndTxn v2, TxnOffsetCommit v3; older versions get
/// INVALID_PRODUCER_EPOCH).
pub fn downgrade_fenced(code: i16, version: i16, knows_fenced_from: i16) -> i16 {
    if code == E::ProducerFenced.code() && version < knows_fenced_from {
        E::InvalidProducerEpoch.code()
    } else {
        code
    }
}

#[cfg(test)]
mod tests;
