//! [`PartitionReplica`]: one partition's replication on one node, as a
//! sans-IO state machine. It owns the replica state from the last metadata
//! image, the leader's view of its followers, the ISR change awaiting the
//! controller (KIP-497's pending ISR) and the parked `acks=all` produces;
//! it reads the local log through [`LogView`] and never writes it: every
//! effect — move the high watermark, truncate, append fetched records,
//! send an AlterPartition, answer a parked produce — is an [`Action`] its
//! executor carries out, in order, before the next event. Time comes in as
//! milliseconds on a monotonic clock. No locks, no async, no I/O.
//!
//! Invariants it keeps:
//! - the high watermark only rises (truncation lowers it in the log, not
//!   here), and on a leader never passes the log end of any member of the
//!   *maximal* ISR: the current ISR plus the members of a pending change;
//! - at most one AlterPartition is in flight, and while a change is pending
//!   no other is proposed (it settles with an image of another partition or
//!   leader epoch, or a refusal that changed nothing);
//! - a parked produce is answered once: success when the high watermark
//!   passes its last offset in the leader epoch it was appended in, or an
//!   [`AckError`].
//!
//! Executors: `ReplicaManager` (its partition log, behind the log lock) and
//! the seeded simulation in `broker/tests/replication_sim`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use kafka_protocol::ResponseError as E;
use rivulet_controller::ControllerError;

use super::rules::{self, Followers, LeaderView};

/// Replica state of a partition as the controller last published it: the
/// metadata image event of [`PartitionReplica::on_image`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub min_insync_replicas: i32,
}

/// What the state machine reads of the local log. `ReplicaManager`
/// implements it over `PartitionLog`, the simulation over its `Vec`.
pub trait LogView {
    fn log_start_offset(&self) -> i64;
    fn log_end_offset(&self) -> i64;
    fn high_watermark(&self) -> i64;
    /// The latest leader epoch in the epoch cache (the epoch of the last
    /// record a follower fetched), if any.
    fn latest_epoch(&self) -> Option<i32>;
    /// Where the latest epoch in the epoch cache starts (on a leader, its
    /// own leader epoch); 0 when the cache is empty.
    fn latest_epoch_start_offset(&self) -> i64;
    /// `LeaderEpochCache::end_offset_for(epoch, log end)`.
    fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64);
}

/// Identifies a parked `acks=all` produce; chosen by the executor, unique
/// per partition.
pub type AckId = u64;

/// Why a parked `acks=all` produce fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// This node no longer leads the partition in the leader epoch the
    /// records were appended in: they may have been truncated since.
    NotLeaderOrFollower,
    /// Committed, but by an ISR smaller than `min.insync.replicas`.
    NotEnoughReplicasAfterAppend,
    /// The partition left this node.
    UnknownTopicOrPartition,
}

/// Why a produce is refused before its append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProduceRefusal {
    NotLeaderOrFollower,
    /// `acks=all` while the ISR is below `min.insync.replicas`.
    NotEnoughReplicas {
        isr: usize,
        min_insync_replicas: i32,
    },
}

/// An ISR change for the controller (Kafka's `AlterPartition`), checked
/// there against the leader and partition epochs it was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartition {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

/// What the controller said to an [`AlterPartition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterPartitionAnswer {
    /// Committed: the image will bring it.
    Committed,
    /// Refused for a reason the image will bring (another leader, leader or
    /// partition epoch): wait for it.
    Superseded,
    /// Refused and nothing changed (a proposed replica is ineligible).
    Refused,
    /// No answer (no active controller, timeout, lost): it may or may not
    /// have been committed; send it again.
    Unknown,
}

impl AlterPartitionAnswer {
    /// The answer a controller error stands for.
    pub fn from_error(e: &ControllerError) -> Self {
        match e {
            ControllerError::IneligibleReplica(_) => AlterPartitionAnswer::Refused,
            _ => AlterPartitionAnswer::Superseded,
        }
    }
}

/// Where a pending ISR change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingIsrStatus {
    /// To be sent at the next [`PartitionReplica::tick`].
    ToSend,
    /// Sent; no answer yet.
    InFlight,
    /// The controller answered: wait for the image.
    Answered,
}

/// An ISR change this leader asked for, from the replica state it was
/// computed on, until an image with another partition or leader epoch
/// supersedes it. Meanwhile the high watermark counts the union of the
/// current and the requested ISR (Kafka's "maximal ISR"): a follower being
/// added may already be in the ISR the controller committed, so it must
/// hold every record the leader acknowledges from the moment it is
/// proposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIsr {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
    pub status: PendingIsrStatus,
}

/// What a follower asks its leader for, one partition of a replica `Fetch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaFetch {
    pub leader: i32,
    /// The leader epoch this node follows in (`current_leader_epoch`); the
    /// response is applied only if it still does.
    pub leader_epoch: i32,
    pub fetch_offset: i64,
    /// Offsets below this are on disk (flush policy on-ack; `None`: not
    /// asked, the leader takes `fetch_offset`).
    pub durable_offset: Option<i64>,
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
}

/// One partition of a fetch response on a follower, as plain data (the
/// records themselves stay with the executor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchedPartition {
    /// The leader and leader epoch the request was sent under.
    pub leader: i32,
    pub leader_epoch: i32,
    pub error_code: i16,
    /// The leader's high watermark (-1: unknown).
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// KIP-595: `(epoch, end offset)` where the leader's log diverges.
    pub diverging_epoch: Option<(i32, i64)>,
    pub has_records: bool,
}

/// The leader's answer to a follower fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerFetchAnswer {
    /// Send records from the fetch offset, up to the log end.
    Read,
    /// Send only this `(epoch, end offset)`: the follower truncates there.
    Diverging { epoch: i32, end_offset: i64 },
}

/// What the executor does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// New leader: its epoch starts at this offset in the epoch cache
    /// (`PartitionLog::assign_epoch_start_offset`).
    AssignEpochStart {
        leader_epoch: i32,
        start_offset: i64,
    },
    /// Raise the high watermark to this offset (and wake long polls).
    HighWatermark(i64),
    /// Answer the parked `acks=all` produce `id`.
    CompleteAck {
        id: AckId,
        result: Result<(), AckError>,
    },
    /// Ask the controller for this ISR change; report the answer with
    /// [`PartitionReplica::on_alter_partition_answer`].
    SendAlterPartition(AlterPartition),
    /// Follower: remove the log from this offset on (divergence).
    TruncateTo(i64),
    /// Follower: drop the whole log and restart it, empty, here (behind
    /// the leader's log start).
    TruncateFullyAndStartAt(i64),
    /// Follower: append the response's records unchanged, then report
    /// [`PartitionReplica::on_append`].
    AppendFetched,
}

/// A fixed bug brought back, for the replication simulation to prove its
/// invariants catch it. Nothing in the broker or its configuration sets
/// one; see [`PartitionReplica::with_mutation`].
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Compute the leader's high watermark over the ISR of the last image
    /// only, ignoring a pending expansion, and forget an answered change
    /// at once instead of waiting for the image.
    HwOverLastSeenIsr,
}

/// A parked `acks=all` produce.
#[derive(Debug, Clone, Copy)]
struct AckWaiter {
    /// The leader epoch its records were appended in.
    leader_epoch: i32,
}

/// One partition on one node: see the module docs.
#[derive(Debug, Clone)]
pub struct PartitionReplica {
    node_id: i32,
    state: ReplicaState,
    /// On the leader: what each follower has fetched, this leader epoch.
    followers: Followers,
    pending_isr: Option<PendingIsr>,
    /// On a follower: the leader's high watermark from the response whose
    /// records are being appended.
    leader_high_watermark: Option<i64>,
    /// Parked produces by (offset their records end at, id).
    acks: BTreeMap<(i64, AckId), AckWaiter>,
    /// The partition left this node.
    removed: bool,
    mutation: Option<Mutation>,
}

impl PartitionReplica {
    /// A partition on node `node_id`, before its first image.
    pub fn new(node_id: i32) -> Self {
        PartitionReplica {
            node_id,
            state: ReplicaState::default(),
            followers: Followers::default(),
            pending_isr: None,
            leader_high_watermark: None,
            acks: BTreeMap::new(),
            removed: false,
            mutation: None,
        }
    }

    /// Bring back a fixed bug (simulation only).
    #[doc(hidden)]
    pub fn with_mutation(mut self, mutation: Mutation) -> Self {
        self.mutation = Some(mutation);
        self
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    pub fn state(&self) -> &ReplicaState {
        &self.state
    }

    pub fn is_leader(&self) -> bool {
        self.state.leader == self.node_id
    }

    /// The leader this node replicates from, if it follows the partition.
    pub fn following(&self) -> Option<i32> {
        let s = &self.state;
        (s.leader >= 0 && s.leader != self.node_id && s.replicas.contains(&self.node_id))
            .then_some(s.leader)
    }

    /// The followers as the leader sees them.
    pub fn followers(&self) -> &Followers {
        &self.followers
    }

    /// The ISR change this leader awaits, if any.
    pub fn pending_isr(&self) -> Option<&PendingIsr> {
        self.pending_isr.as_ref()
    }

    /// Parked produces not answered yet.
    pub fn parked_acks(&self) -> usize {
        self.acks.len()
    }

    /// The ISR the high watermark must respect: the current one plus the
    /// members of a pending change ([`PendingIsr`]). Borrowed unless a
    /// change is pending (this runs on every append and follower fetch).
    pub fn maximal_isr(&self) -> Cow<'_, [i32]> {
        match &self.pending_isr {
            Some(p) if self.mutation != Some(Mutation::HwOverLastSeenIsr) => {
                let mut isr = self.state.isr.clone();
                isr.extend(p.isr.iter().filter(|r| !self.state.isr.contains(r)));
                Cow::Owned(isr)
            }
            _ => Cow::Borrowed(&self.state.isr),
        }
    }

    // ------------------------------------------------------------ events

    /// The metadata image changed (or was applied again): adopt `state`. A
    /// new leader starts its epoch at its log end and starts tracking its
    /// followers; an image of another partition or leader epoch settles a
    /// pending ISR change; parked produces are answered if leadership or
    /// the ISR decides them.
    pub fn on_image(
        &mut self,
        state: ReplicaState,
        log: &impl LogView,
        now_ms: u64,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if state.leader == self.node_id {
            out.push(Action::AssignEpochStart {
                leader_epoch: state.leader_epoch,
                start_offset: log.log_end_offset(),
            });
            if self.followers.leader_epoch != state.leader_epoch
                || self.followers.progress.is_empty()
            {
                let others = state
                    .replicas
                    .iter()
                    .copied()
                    .filter(|r| *r != self.node_id);
                self.followers = Followers::new(state.leader_epoch, others, now_ms);
            }
        }
        if self.pending_isr.as_ref().is_some_and(|p| {
            p.leader_epoch != state.leader_epoch || p.partition_epoch != state.partition_epoch
        }) {
            self.pending_isr = None;
        }
        let changed = self.state != state;
        self.state = state;
        let hw = self.advance_high_watermark(log, &mut out);
        self.settle_acks(hw, changed, &mut out);
        out
    }

    /// Whether this node takes a produce with `acks` now; the leader epoch
    /// to append it in.
    pub fn check_produce(&self, acks: i16) -> Result<i32, ProduceRefusal> {
        let s = &self.state;
        if s.leader != self.node_id {
            return Err(ProduceRefusal::NotLeaderOrFollower);
        }
        if acks == -1 && (s.isr.len() as i32) < s.min_insync_replicas {
            return Err(ProduceRefusal::NotEnoughReplicas {
                isr: s.isr.len(),
                min_insync_replicas: s.min_insync_replicas,
            });
        }
        Ok(s.leader_epoch)
    }

    /// Records were appended to the local log: a leader's produce, or on a
    /// follower the records of [`Action::AppendFetched`]. A leader raises
    /// its high watermark as far as the ISR allows (to its log end when it
    /// is alone); a follower to the leader's, within its own log.
    pub fn on_append(&mut self, log: &impl LogView) -> Vec<Action> {
        let mut out = Vec::new();
        if self.is_leader() {
            let hw = self.advance_high_watermark(log, &mut out);
            self.settle_acks(hw, false, &mut out);
        } else if let Some(leader_hw) = self.leader_high_watermark.take() {
            self.follow_high_watermark(leader_hw, log, &mut out);
        }
        out
    }

    /// Park an `acks=all` produce (after its append and fsync) until the
    /// high watermark reaches `upto` — its last offset + 1 — in
    /// `leader_epoch`. It may be answered at once.
    pub fn wait_for_ack(
        &mut self,
        id: AckId,
        upto: i64,
        leader_epoch: i32,
        log: &impl LogView,
    ) -> Vec<Action> {
        let waiter = AckWaiter { leader_epoch };
        match self.ack_outcome(upto, &waiter, log.high_watermark()) {
            Some(result) => vec![Action::CompleteAck { id, result }],
            None => {
                self.acks.insert((upto, id), waiter);
                Vec::new()
            }
        }
    }

    /// The executor gave up on parked produce `id` (its timeout passed).
    /// Returns whether it was still parked.
    pub fn cancel_ack(&mut self, id: AckId) -> bool {
        let key = self.acks.keys().find(|(_, i)| *i == id).copied();
        key.is_some_and(|k| self.acks.remove(&k).is_some())
    }

    /// The partition left this node: parked produces fail.
    pub fn on_removed(&mut self) -> Vec<Action> {
        self.removed = true;
        let mut out = Vec::new();
        for ((_, id), _) in std::mem::take(&mut self.acks) {
            out.push(Action::CompleteAck {
                id,
                result: Err(AckError::UnknownTopicOrPartition),
            });
        }
        out
    }

    /// The leader's side of a fetch from `follower` at `fetch_offset`
    /// whose last fetched batch had `last_fetched_epoch`. Diverging
    /// (KIP-595): answer only where to truncate. Otherwise the follower
    /// holds everything below `fetch_offset`, and on disk everything below
    /// `durable_offset` when it says (a Rivulet follower that fetches again
    /// while its fsync runs; absent: all of it): record the lower, which may
    /// raise the high watermark and answer parked produces.
    pub fn on_follower_fetch(
        &mut self,
        follower: i32,
        fetch_offset: i64,
        durable_offset: Option<i64>,
        last_fetched_epoch: i32,
        log: &impl LogView,
        now_ms: u64,
    ) -> (FollowerFetchAnswer, Vec<Action>) {
        let end = log.end_offset_for_epoch(last_fetched_epoch);
        if let Some((epoch, end_offset)) =
            rules::diverging_epoch(last_fetched_epoch, fetch_offset, end)
        {
            // No common epoch at all: the follower keeps nothing past our
            // log start (a negative end offset would read as "no divergence").
            let end_offset = if end_offset < 0 {
                log.log_start_offset()
            } else {
                end_offset
            };
            return (
                FollowerFetchAnswer::Diverging { epoch, end_offset },
                Vec::new(),
            );
        }
        let mut out = Vec::new();
        if self.is_leader() {
            let held = durable_offset.map_or(fetch_offset, |d| d.min(fetch_offset));
            self.followers
                .record_fetch(follower, held, log.log_end_offset(), now_ms);
            let hw = self.advance_high_watermark(log, &mut out);
            self.settle_acks(hw, false, &mut out);
        }
        (FollowerFetchAnswer::Read, out)
    }

    /// On a follower: what to fetch from the leader next, if it follows.
    pub fn fetch_request(&self, log: &impl LogView) -> Option<ReplicaFetch> {
        let leader = self.following()?;
        Some(ReplicaFetch {
            leader,
            leader_epoch: self.state.leader_epoch,
            fetch_offset: log.log_end_offset(),
            durable_offset: None,
            last_fetched_epoch: log.latest_epoch().unwrap_or(-1),
            log_start_offset: log.log_start_offset(),
        })
    }

    /// On a follower: one partition of a fetch response arrived. Applied
    /// only while this node still follows the same leader in the leader
    /// epoch it asked under (else no action). `Err(code)` when the leader
    /// answered with an error for it (the fetcher backs off).
    pub fn on_fetch_response(
        &mut self,
        resp: &FetchedPartition,
        log: &impl LogView,
    ) -> Result<Vec<Action>, i16> {
        self.leader_high_watermark = None;
        let s = &self.state;
        let following = s.leader == resp.leader
            && s.leader_epoch == resp.leader_epoch
            && s.leader != self.node_id;
        if resp.error_code == E::OffsetOutOfRange.code() && resp.log_start_offset >= 0 {
            // Behind the leader's log start (retention): start over there.
            if !following {
                return Ok(Vec::new());
            }
            if log.log_end_offset() < resp.log_start_offset {
                return Ok(vec![Action::TruncateFullyAndStartAt(resp.log_start_offset)]);
            }
            return Err(resp.error_code);
        }
        if resp.error_code != 0 {
            return Err(resp.error_code);
        }
        if !following {
            return Ok(Vec::new());
        }
        if let Some(leader_end) = resp.diverging_epoch {
            let to = rules::truncation_offset(
                leader_end,
                log.end_offset_for_epoch(leader_end.0),
                log.log_start_offset(),
                log.log_end_offset(),
            );
            return Ok(vec![Action::TruncateTo(to)]);
        }
        let mut out = Vec::new();
        if resp.has_records {
            if resp.high_watermark >= 0 {
                self.leader_high_watermark = Some(resp.high_watermark);
            }
            out.push(Action::AppendFetched);
        } else if resp.high_watermark >= 0 {
            self.follow_high_watermark(resp.high_watermark, log, &mut out);
        }
        Ok(out)
    }

    /// On the leader, every so often: propose an ISR change to the
    /// controller — followers that have not caught up for `lag_max_ms`
    /// (`replica.lag.time.max.ms`) leave, replicas that reached the high
    /// watermark and the start of this leader epoch join — or send again
    /// one that went unanswered. From the proposal on, the high watermark
    /// waits for a joining follower.
    pub fn tick(&mut self, now_ms: u64, lag_max_ms: u64, log: &impl LogView) -> Vec<Action> {
        let s = &self.state;
        if s.leader != self.node_id || s.replicas.len() < 2 {
            return Vec::new();
        }
        if let Some(p) = self.pending_isr.as_mut() {
            if p.status != PendingIsrStatus::ToSend {
                return Vec::new();
            }
            p.status = PendingIsrStatus::InFlight;
            return vec![Action::SendAlterPartition(AlterPartition {
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                new_isr: p.isr.clone(),
            })];
        }
        if self.followers.leader_epoch != s.leader_epoch {
            return Vec::new();
        }
        let view = LeaderView {
            leader: self.node_id,
            replicas: &s.replicas,
            isr: &s.isr,
            high_watermark: log.high_watermark(),
            epoch_start_offset: log.latest_epoch_start_offset(),
        };
        let Some(new_isr) = rules::isr_update(&view, &self.followers, lag_max_ms, now_ms) else {
            return Vec::new();
        };
        let request = AlterPartition {
            leader_epoch: s.leader_epoch,
            partition_epoch: s.partition_epoch,
            new_isr,
        };
        self.pending_isr = Some(PendingIsr {
            leader_epoch: request.leader_epoch,
            partition_epoch: request.partition_epoch,
            isr: request.new_isr.clone(),
            status: PendingIsrStatus::InFlight,
        });
        vec![Action::SendAlterPartition(request)]
    }

    /// The controller answered `request` (or did not: `Unknown`). A refusal
    /// that changed nothing drops the pending change, and the high
    /// watermark no longer waits for its new members.
    pub fn on_alter_partition_answer(
        &mut self,
        request: &AlterPartition,
        answer: AlterPartitionAnswer,
        log: &impl LogView,
    ) -> Vec<Action> {
        let ours = self.pending_isr.as_ref().is_some_and(|p| {
            p.leader_epoch == request.leader_epoch && p.partition_epoch == request.partition_epoch
        });
        if !ours {
            return Vec::new();
        }
        let forget = self.mutation == Some(Mutation::HwOverLastSeenIsr);
        let mut out = Vec::new();
        match answer {
            AlterPartitionAnswer::Committed | AlterPartitionAnswer::Superseded if forget => {
                self.pending_isr = None;
            }
            AlterPartitionAnswer::Committed | AlterPartitionAnswer::Superseded => {
                if let Some(p) = self.pending_isr.as_mut() {
                    p.status = PendingIsrStatus::Answered;
                }
            }
            AlterPartitionAnswer::Refused => {
                self.pending_isr = None;
                let hw = self.advance_high_watermark(log, &mut out);
                self.settle_acks(hw, false, &mut out);
            }
            AlterPartitionAnswer::Unknown => {
                if let Some(p) = self.pending_isr.as_mut() {
                    p.status = PendingIsrStatus::ToSend;
                }
            }
        }
        out
    }

    // ------------------------------------------------------------ rules

    /// On the leader, raise the high watermark to what the maximal ISR
    /// allows (never lower it). Returns the high watermark after.
    fn advance_high_watermark(&self, log: &impl LogView, out: &mut Vec<Action>) -> i64 {
        let current = log.high_watermark();
        if !self.is_leader() {
            return current;
        }
        let leo = log.log_end_offset();
        let hw = rules::high_watermark(self.node_id, leo, &self.maximal_isr(), &self.followers)
            .clamp(log.log_start_offset(), leo);
        if hw > current {
            out.push(Action::HighWatermark(hw));
            hw
        } else {
            current
        }
    }

    /// On a follower: the high watermark is the leader's, within the local
    /// log; never lowered.
    fn follow_high_watermark(&self, leader_hw: i64, log: &impl LogView, out: &mut Vec<Action>) {
        let hw = leader_hw.min(log.log_end_offset());
        if hw > log.high_watermark() {
            out.push(Action::HighWatermark(hw));
        }
    }

    /// Answer the parked produces the state decides. `all`: look at every
    /// waiter (the replica state changed), else only those the high
    /// watermark `hw` passed.
    fn settle_acks(&mut self, hw: i64, all: bool, out: &mut Vec<Action>) {
        if self.acks.is_empty() {
            return;
        }
        let mut done = Vec::new();
        if all {
            for (&(upto, id), w) in &self.acks {
                if let Some(result) = self.ack_outcome(upto, w, hw) {
                    done.push((upto, id, result));
                }
            }
        } else {
            // Waiters of another epoch exist only right after an image,
            // which looks at all of them.
            for (&(upto, id), w) in self.acks.range(..(hw.saturating_add(1), 0)) {
                if let Some(result) = self.ack_outcome(upto, w, hw) {
                    done.push((upto, id, result));
                }
            }
        }
        for (upto, id, result) in done {
            self.acks.remove(&(upto, id));
            out.push(Action::CompleteAck { id, result });
        }
    }

    /// How a produce parked until `upto` ends now, if it does, as Kafka's
    /// `DelayedProduce`: leadership of the epoch it was appended in first
    /// (a node that followed another leader may hold someone else's
    /// records below its high watermark), then the high watermark `hw`,
    /// then the ISR size (`min.insync.replicas`), then the partition still
    /// being here.
    fn ack_outcome(&self, upto: i64, w: &AckWaiter, hw: i64) -> Option<Result<(), AckError>> {
        let s = &self.state;
        if s.leader != self.node_id || w.leader_epoch != s.leader_epoch {
            Some(Err(AckError::NotLeaderOrFollower))
        } else if upto <= hw {
            Some(if (s.isr.len() as i32) < s.min_insync_replicas {
                Err(AckError::NotEnoughReplicasAfterAppend)
            } else {
                Ok(())
            })
        } else if self.removed {
            Some(Err(AckError::UnknownTopicOrPartition))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests;
