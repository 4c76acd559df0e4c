//! The classic consumer-group protocol as a pure state machine (Kafka's
//! `ClassicGroup` plus the classic parts of `GroupMetadataManager`).
//!
//! A [`Group`] is driven by JoinGroup, SyncGroup, Heartbeat and LeaveGroup
//! events and by [`Group::tick`], each given the current time; it never
//! reads a clock, sleeps or does I/O. Parked JoinGroup/SyncGroup requests are
//! identified by a [`RequestToken`] and answered through [`Output`]s, which
//! the caller carries out in order (`Output::Persist` first: write
//! [`Group::snapshot`] as it is after the call returned, then answer).
//!
//! States: `Empty` → (a member joins) `PreparingRebalance` → (every member
//! rejoined, or the rebalance timeout passed) `CompletingRebalance` → (the
//! leader's SyncGroup) `Stable`; a join with new metadata, a leave or an
//! expiry from `Stable`/`CompletingRebalance` starts a new rebalance, and a
//! join phase that ends with no members makes the group `Empty`. `Dead` is
//! final.
//!
//! Invariants (checked by `debug_assert!` after every event): the leader is
//! a member iff the group has members; `Empty` has no members; `Stable`
//! gives every member an assignment; JoinGroups are parked only while
//! `PreparingRebalance` and SyncGroups only while `CompletingRebalance`;
//! member and instance ids are unique.

use std::collections::HashSet;
use std::fmt;

use bytes::Bytes;
use kafka_protocol::ResponseError as E;

use super::types::{
    GroupSnapshot, GroupState, JoinRequest, JoinResult, MemberSnapshot, Output, RequestToken,
    SyncRequest, SyncResult,
};

mod join;
mod member;
mod offset_commit;
mod rebalance;
mod sync;

use member::Member;

/// How long a new member's parked JoinGroup may wait for the join phase
/// (Kafka's `group.classic.new.member.join.timeout.ms`, 5 minutes): a new
/// member has no id to heartbeat with, and a client that gave up and retried
/// would otherwise leave defunct members behind.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

const NO_GENERATION: i32 = -1;

/// Broker-wide limits and delays of the classic group protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an
    /// empty group waits for more members, extended by the same delay while
    /// members keep joining, up to the rebalance timeout.
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`: members per group (and, here, ids awaiting their
    /// MEMBER_ID_REQUIRED rejoin).
    pub max_members: usize,
    /// `group.max.member.metadata.bytes` (Rivulet's; Kafka bounds a
    /// JoinGroup only by `socket.request.max.bytes`): most bytes of protocol
    /// names plus metadata one member may offer in a JoinGroup. The group
    /// keeps them for the member's lifetime and hands them to the leader on
    /// every rebalance.
    pub max_member_metadata_bytes: usize,
}

impl Default for GroupConfig {
    /// Kafka's defaults except the initial rebalance delay: 100 ms instead of
    /// 3000, because Rivulet targets single-node development where members
    /// of a group start together and every consumer start-up or test would
    /// otherwise pay three seconds.
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 100,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_members: 1000,
            max_member_metadata_bytes: 1024 * 1024,
        }
    }
}

impl GroupConfig {
    /// The checks of a JoinGroup that need no group: the session timeout
    /// range (Kafka's `handleJoinGroup` makes this check before it looks up
    /// or creates the group) and the member metadata limit. The coordinator
    /// runs them before creating a group, so a refused join leaves nothing
    /// behind; [`Group::join`] runs them again.
    pub fn validate_join(&self, req: &JoinRequest) -> Result<(), E> {
        if req.session_timeout_ms < self.min_session_timeout_ms
            || req.session_timeout_ms > self.max_session_timeout_ms
        {
            return Err(E::InvalidSessionTimeout);
        }
        if member_metadata_bytes(req) > self.max_member_metadata_bytes {
            // Kafka has no code for this (it has no such limit): the
            // generic INVALID_REQUEST, not retriable, so the client reports
            // it instead of rejoining in a loop; the coordinator logs which
            // limit was hit.
            return Err(E::InvalidRequest);
        }
        Ok(())
    }
}

/// The bytes of protocol names plus metadata a JoinGroup offers, as counted
/// against `group.max.member.metadata.bytes`.
pub fn member_metadata_bytes(req: &JoinRequest) -> usize {
    req.protocols.iter().fold(0usize, |n, (name, metadata)| {
        n.saturating_add(name.len()).saturating_add(metadata.len())
    })
}

/// Makes member ids. Injected so tests are deterministic.
pub trait MemberIdGenerator: Send {
    /// A new id, unique within the group, starting with `prefix` (the
    /// client id, or the group instance id of a static member, as Kafka).
    fn generate(&mut self, prefix: &str) -> String;
}

/// Kafka's member ids: `{prefix}-{random uuid}`.
#[derive(Debug, Default)]
pub struct UuidMemberIds;

impl MemberIdGenerator for UuidMemberIds {
    fn generate(&mut self, prefix: &str) -> String {
        format!("{prefix}-{}", uuid::Uuid::new_v4())
    }
}

/// `{prefix}-1`, `{prefix}-2`, …: deterministic ids for tests.
#[derive(Debug, Default)]
pub struct SequentialMemberIds {
    next: u64,
}

impl MemberIdGenerator for SequentialMemberIds {
    fn generate(&mut self, prefix: &str) -> String {
        self.next = self.next.saturating_add(1);
        format!("{prefix}-{}", self.next)
    }
}

/// The join phase's timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinTimer {
    /// Kafka's `InitialDelayedJoin`: the first rebalance of an empty group.
    Initial {
        deadline: i64,
        delay_ms: i64,
        remaining_ms: i64,
    },
    /// Kafka's `DelayedJoin`: the rebalance timeout.
    Rebalance { deadline: i64 },
}

impl JoinTimer {
    fn deadline(&self) -> i64 {
        match *self {
            JoinTimer::Initial { deadline, .. } | JoinTimer::Rebalance { deadline } => deadline,
        }
    }
}

/// A member id handed out with MEMBER_ID_REQUIRED, not yet rejoined.
#[derive(Debug, Clone)]
struct PendingMember {
    member_id: String,
    deadline: i64,
}

/// One classic consumer group. See the module docs.
pub struct Group {
    group_id: String,
    config: GroupConfig,
    state: GroupState,
    /// The state before the last transition: a rebalance entered from
    /// `Empty` is the initial one, completed only by its delay timer.
    previous_state: GroupState,
    state_timestamp: i64,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    /// In join order.
    members: Vec<Member>,
    pending_members: Vec<PendingMember>,
    /// Members of the current generation whose SyncGroup has not arrived.
    pending_sync: Vec<String>,
    sync_deadline: Option<i64>,
    join_timer: Option<JoinTimer>,
    /// A member joined during the initial rebalance: extend its delay.
    new_member_added: bool,
    member_ids: Box<dyn MemberIdGenerator>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("group_id", &self.group_id)
            .field("state", &self.state)
            .field("generation_id", &self.generation_id)
            .field("protocol_name", &self.protocol_name)
            .field("leader", &self.leader)
            .field("members", &self.members)
            .field("pending_members", &self.pending_members)
            .field("pending_sync", &self.pending_sync)
            .field("join_timer", &self.join_timer)
            .finish_non_exhaustive()
    }
}

fn join_error(member_id: &str, error: E) -> JoinResult {
    JoinResult {
        error_code: error.code(),
        generation_id: NO_GENERATION,
        protocol_type: None,
        protocol_name: None,
        leader: String::new(),
        member_id: member_id.to_string(),
        members: Vec::new(),
        skip_assignment: false,
    }
}

fn sync_error(error: E) -> SyncResult {
    SyncResult {
        error_code: error.code(),
        protocol_type: None,
        protocol_name: None,
        assignment: Bytes::new(),
    }
}

/// Kafka's `isProtocolInconsistent`: only a value both sides know can clash.
fn inconsistent(requested: &Option<String>, current: &Option<String>) -> bool {
    matches!((requested, current), (Some(r), Some(c)) if r != c)
}

impl Group {
    /// A new, empty group with uuid member ids.
    pub fn new(group_id: String, config: GroupConfig, now_ms: i64) -> Self {
        Group {
            group_id,
            config,
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending_members: Vec::new(),
            pending_sync: Vec::new(),
            sync_deadline: None,
            join_timer: None,
            new_member_added: false,
            member_ids: Box::new(UuidMemberIds),
        }
    }

    /// Replace the member id generator (tests use [`SequentialMemberIds`]).
    pub fn with_member_ids(mut self, member_ids: Box<dyn MemberIdGenerator>) -> Self {
        self.member_ids = member_ids;
        self
    }

    /// A group restored after a coordinator failover. Members get fresh
    /// session deadlines from `now_ms`; a snapshot taken mid-rebalance
    /// restarts the rebalance (members rejoin, those that do not are removed
    /// after the rebalance timeout), as does a group over `max_members`
    /// (Kafka's `onGroupLoaded`). Duplicate member or instance ids in a
    /// damaged snapshot are dropped.
    pub fn from_snapshot(s: GroupSnapshot, config: GroupConfig, now_ms: i64) -> Self {
        let mut g = Group::new(s.group_id, config, now_ms);
        g.generation_id = s.generation_id;
        g.protocol_type = s.protocol_type;
        g.protocol_name = s.protocol_name;
        g.state_timestamp = s.state_timestamp;
        for ms in s.members {
            let duplicate = g.index_of(&ms.member_id).is_some()
                || ms
                    .group_instance_id
                    .as_deref()
                    .is_some_and(|i| g.static_member_id(i).is_some());
            if !duplicate {
                let mut m = Member::from_snapshot(ms);
                m.schedule_heartbeat(now_ms, m.session_timeout());
                g.members.push(m);
            }
        }
        g.leader = match s.leader {
            Some(l) if g.index_of(&l).is_some() => Some(l),
            _ => g.members.first().map(|m| m.member_id.clone()),
        };
        let restart = match s.state {
            GroupState::Dead => {
                g.state = GroupState::Dead;
                false
            }
            _ if g.members.is_empty() => false,
            GroupState::Stable => g.members.len() > g.config.max_members,
            GroupState::Empty
            | GroupState::PreparingRebalance
            | GroupState::CompletingRebalance => true,
        };
        if !g.members.is_empty() && g.state != GroupState::Dead {
            g.state = GroupState::Stable;
            g.previous_state = GroupState::Stable;
            if g.protocol_name.is_none() {
                g.protocol_name = member::select_protocol(&g.members);
            }
        }
        if restart {
            let mut out = Vec::new();
            g.prepare_rebalance(now_ms, &mut out);
            debug_assert!(out.is_empty(), "nothing is parked in a restored group");
        }
        g.check_invariants();
        g
    }

    /// The durable part of the group.
    pub fn snapshot(&self) -> GroupSnapshot {
        GroupSnapshot {
            group_id: self.group_id.clone(),
            state: self.state,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            members: self.members(),
            state_timestamp: self.state_timestamp,
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// Members in join order, with their assignments (empty until assigned).
    pub fn members(&self) -> Vec<MemberSnapshot> {
        self.members.iter().map(Member::snapshot).collect()
    }

    /// Kafka's `ClassicGroup.isEmpty`: the group is in the `Empty` state (no
    /// members; ids awaiting their MEMBER_ID_REQUIRED rejoin do not count).
    pub fn is_empty(&self) -> bool {
        self.state == GroupState::Empty
    }

    /// JoinGroup. Answers at once or parks the request until the join phase
    /// completes; may answer other parked requests.
    pub fn join(&mut self, token: RequestToken, req: JoinRequest, now_ms: i64) -> Vec<Output> {
        let mut out = Vec::new();
        self.do_join(token, req, now_ms, &mut out);
        self.check_invariants();
        out
    }

    /// SyncGroup. The leader's assignment completes the rebalance; a
    /// follower's request before it is parked.
    pub fn sync(&mut self, token: RequestToken, req: SyncRequest, now_ms: i64) -> Vec<Output> {
        let mut out = Vec::new();
        self.do_sync(token, req, now_ms, &mut out);
        self.check_invariants();
        out
    }

    /// Heartbeat: the error code to answer with. Renews the member's session.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return E::CoordinatorNotAvailable.code();
        }
        let idx = match self.validate_member(member_id, group_instance_id) {
            Ok(idx) => idx,
            Err(e) => return e.code(),
        };
        if generation_id != self.generation_id {
            return E::IllegalGeneration.code();
        }
        let error = match self.state {
            GroupState::Empty | GroupState::Dead => return E::UnknownMemberId.code(),
            GroupState::PreparingRebalance => E::RebalanceInProgress.code(),
            GroupState::CompletingRebalance | GroupState::Stable => 0,
        };
        if let Some(m) = self.members.get_mut(idx) {
            m.schedule_heartbeat(now_ms, m.session_timeout());
        }
        error
    }

    /// LeaveGroup (batched, v3+): one error code per `(member id, group
    /// instance id)`; an empty member id with an instance id removes that
    /// static member, whatever its current member id (KIP-345 admin removal).
    pub fn leave(
        &mut self,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> (Vec<i16>, Vec<Output>) {
        let mut out = Vec::new();
        if self.state == GroupState::Dead {
            return (vec![E::CoordinatorNotAvailable.code(); members.len()], out);
        }
        let mut codes = Vec::with_capacity(members.len());
        let mut removed = false;
        for (member_id, instance_id) in members {
            let code = if member_id.is_empty() {
                let current = instance_id
                    .as_deref()
                    .and_then(|i| self.static_member_id(i))
                    .and_then(|id| self.index_of(id));
                match current {
                    Some(idx) => {
                        self.remove_member(idx, &mut out);
                        removed = true;
                        0
                    }
                    None => E::UnknownMemberId.code(),
                }
            } else if self.remove_pending(member_id) {
                removed = true;
                0
            } else {
                match self.validate_member(member_id, instance_id.as_deref()) {
                    Ok(idx) => {
                        self.remove_member(idx, &mut out);
                        removed = true;
                        0
                    }
                    Err(e) => e.code(),
                }
            };
            codes.push(code);
        }
        if removed {
            self.after_member_removed(now_ms, &mut out);
        }
        self.check_invariants();
        (codes, out)
    }

    /// Fire every timer due at `now_ms`: MEMBER_ID_REQUIRED ids and sessions
    /// expire, members that never sent SyncGroup are removed, the join phase
    /// completes after its delay or the rebalance timeout.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Output> {
        let mut out = Vec::new();
        if self.state == GroupState::Dead {
            return out;
        }
        let before = self.pending_members.len();
        self.pending_members.retain(|p| p.deadline > now_ms);
        if self.pending_members.len() != before {
            self.maybe_complete_join(now_ms, &mut out);
        }

        let due: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.heartbeat_deadline.is_some_and(|d| d <= now_ms))
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in due {
            // Earlier expiries in this tick may have removed or rescheduled it.
            let Some(idx) = self.index_of(&member_id) else {
                continue;
            };
            let Some(m) = self.members.get_mut(idx) else {
                continue;
            };
            if m.heartbeat_deadline.is_none_or(|d| d > now_ms) {
                continue;
            }
            m.heartbeat_deadline = None;
            if !m.has_satisfied_heartbeat() {
                self.remove_member(idx, &mut out);
                self.after_member_removed(now_ms, &mut out);
            }
        }

        if self.sync_deadline.is_some_and(|d| d <= now_ms) {
            self.sync_deadline = None;
            let syncing = matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            );
            if syncing && !self.pending_sync.is_empty() {
                for member_id in std::mem::take(&mut self.pending_sync) {
                    if let Some(idx) = self.index_of(&member_id) {
                        self.remove_member(idx, &mut out);
                    }
                }
                self.prepare_rebalance(now_ms, &mut out);
            }
        }

        if self.join_timer.is_some_and(|t| t.deadline() <= now_ms) {
            self.fire_join_timer(now_ms, &mut out);
        }
        self.check_invariants();
        out
    }

    /// The earliest time at which [`Group::tick`] has something to do; it may
    /// be at or before the time of the event that set it.
    pub fn next_deadline(&self) -> Option<i64> {
        if self.state == GroupState::Dead {
            return None;
        }
        let members = self.members.iter().filter_map(|m| m.heartbeat_deadline);
        let pending = self.pending_members.iter().map(|p| p.deadline);
        members
            .chain(pending)
            .chain(self.sync_deadline)
            .chain(self.join_timer.map(|t| t.deadline()))
            .min()
    }

    /// The group is deleted or its coordinator moves away: answer every
    /// parked request with NOT_COORDINATOR (Kafka's `onGroupUnloaded`; the
    /// client rediscovers the coordinator and rejoins) and stop all timers.
    pub fn mark_dead(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        for m in &mut self.members {
            if let Some(token) = m.awaiting_join.take() {
                let result = join_error(&m.member_id, E::NotCoordinator);
                out.push(Output::Join { token, result });
            }
            if let Some(token) = m.awaiting_sync.take() {
                let result = sync_error(E::NotCoordinator);
                out.push(Output::Sync { token, result });
            }
            m.heartbeat_deadline = None;
        }
        self.pending_members.clear();
        self.pending_sync.clear();
        self.sync_deadline = None;
        self.join_timer = None;
        self.previous_state = self.state;
        self.state = GroupState::Dead;
        self.check_invariants();
        out
    }

    // ---- Membership ----

    /// Remove a member, answering its parked requests with UNKNOWN_MEMBER_ID
    /// so the client rejoins; the leader passes to the oldest member left.
    fn remove_member(&mut self, idx: usize, out: &mut Vec<Output>) {
        if idx >= self.members.len() {
            return;
        }
        let m = self.members.remove(idx);
        if let Some(token) = m.awaiting_join {
            let result = join_error("", E::UnknownMemberId);
            out.push(Output::Join { token, result });
        }
        if let Some(token) = m.awaiting_sync {
            out.push(Output::Sync {
                token,
                result: sync_error(E::UnknownMemberId),
            });
        }
        if self.leader.as_deref() == Some(m.member_id.as_str()) {
            self.leader = self.members.first().map(|m| m.member_id.clone());
        }
        self.pending_sync.retain(|id| *id != m.member_id);
    }

    /// After members left or expired: rebalance, or finish a join phase
    /// that was only waiting for them.
    fn after_member_removed(&mut self, now: i64, out: &mut Vec<Output>) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(now, out)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, out),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Kafka's `validateMember`: a given instance id must map to this member
    /// id (else FENCED_INSTANCE_ID), and the member id must be known.
    fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<usize, E> {
        if let Some(instance) = group_instance_id {
            match self.static_member_id(instance) {
                None => return Err(E::UnknownMemberId),
                Some(current) if current != member_id => return Err(E::FencedInstanceId),
                Some(_) => {}
            }
        }
        self.index_of(member_id).ok_or(E::UnknownMemberId)
    }

    fn index_of(&self, member_id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.member_id == member_id)
    }

    fn static_member_id(&self, group_instance_id: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.group_instance_id.as_deref() == Some(group_instance_id))
            .map(|m| m.member_id.as_str())
    }

    fn is_pending(&self, member_id: &str) -> bool {
        self.pending_members
            .iter()
            .any(|p| p.member_id == member_id)
    }

    /// Drop a MEMBER_ID_REQUIRED id; whether it was pending.
    fn remove_pending(&mut self, member_id: &str) -> bool {
        let before = self.pending_members.len();
        self.pending_members.retain(|p| p.member_id != member_id);
        self.pending_members.len() != before
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.iter().all(|m| m.awaiting_join.is_some())
    }

    fn num_awaiting_join(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    /// The group's rebalance timeout: the largest of its members'.
    fn rebalance_timeout(&self) -> i64 {
        self.members
            .iter()
            .map(Member::rebalance_timeout)
            .max()
            .unwrap_or(0)
    }

    fn initial_delay(&self) -> i64 {
        self.config.initial_rebalance_delay_ms.max(0)
    }

    fn transition_to(&mut self, state: GroupState, now: i64) {
        self.previous_state = self.state;
        self.state = state;
        self.state_timestamp = now;
    }

    /// Why the group's invariants do not hold, if they do not.
    fn invariant_violation(&self) -> Option<String> {
        let leader_ok = match &self.leader {
            None => self.members.is_empty(),
            Some(l) => self.index_of(l).is_some(),
        };
        if !leader_ok {
            return Some(format!("leader {:?} is not a member", self.leader));
        }
        if self.state == GroupState::Empty && !self.members.is_empty() {
            return Some("Empty group has members".into());
        }
        let mut ids = HashSet::new();
        let mut instances = HashSet::new();
        let pending: HashSet<&str> = self
            .pending_members
            .iter()
            .map(|p| p.member_id.as_str())
            .collect();
        for m in &self.members {
            let new_instance = m
                .group_instance_id
                .as_deref()
                .is_none_or(|i| instances.insert(i));
            if !ids.insert(m.member_id.as_str()) || !new_instance {
                return Some(format!("member {} appears twice", m.member_id));
            }
            if pending.contains(m.member_id.as_str()) {
                return Some(format!("member {} is also pending", m.member_id));
            }
            if self.state == GroupState::Stable && m.assignment.is_none() {
                return Some(format!("Stable but {} has no assignment", m.member_id));
            }
            if m.awaiting_join.is_some() && self.state != GroupState::PreparingRebalance {
                return Some(format!(
                    "join of {} parked in {:?}",
                    m.member_id, self.state
                ));
            }
            if m.awaiting_sync.is_some() && self.state != GroupState::CompletingRebalance {
                return Some(format!(
                    "sync of {} parked in {:?}",
                    m.member_id, self.state
                ));
            }
        }
        if self
            .pending_sync
            .iter()
            .any(|id| self.index_of(id).is_none())
        {
            return Some("a pending sync is not a member".into());
        }
        None
    }

    fn check_invariants(&self) {
        debug_assert!(
            self.invariant_violation().is_none(),
            "group {}: {:?}",
            self.group_id,
            self.invariant_violation()
        );
    }

    /// Tokens of all parked requests (for tests: none may leak).
    #[cfg(test)]
    fn parked_tokens(&self) -> Vec<RequestToken> {
        self.members
            .iter()
            .flat_map(|m| m.awaiting_join.into_iter().chain(m.awaiting_sync))
            .collect()
    }
}

#[cfg(test)]
mod tests;
