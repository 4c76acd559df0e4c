//! The consumer group protocol of KIP-848 (`group.protocol=consumer`): a
//! pure state machine of one group, driven by ConsumerGroupHeartbeat
//! requests and time.
//!
//! The group has an epoch that moves whenever what the assignment depends
//! on moves (a member joins or leaves, a subscription changes, a subscribed
//! topic appears, disappears or gains partitions). When the group epoch is
//! past the assignment epoch, the server-side assignor ([`assignor`])
//! computes a new target assignment for every member at that epoch. Each
//! member then converges to its target on its own heartbeats
//! ([`reconcile`]): revocations first, acknowledged by the member, then new
//! partitions once their previous owners released them. No stop-the-world:
//! members whose partitions do not move keep consuming.
//!
//! Invariants: a partition is owned (assigned or awaiting revocation) by at
//! most one member at any moment; the target gives each partition of a
//! subscribed topic to exactly one subscribed member.
//!
//! Persistence: [`GroupData`] is the whole durable state; the coordinator
//! writes it as one `__consumer_offsets` record whenever a heartbeat or
//! timer changed it (see [`super::offsets`]) and rebuilds the group from
//! the last one when it loads the partition. Session and rebalance
//! deadlines are not persisted: a loaded group gives every member a fresh
//! session timeout, as Kafka does on failover.

pub mod assignor;
pub mod classic;
mod config;
mod error;
pub mod reconcile;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::ResponseError as E;
use serde::{Deserialize, Serialize};

pub use classic::{ClassicJoin, ClassicJoined, ClassicMember};
pub use config::ConsumerGroupConfig;
pub use error::HeartbeatError;

/// Most compiled subscription regexes a group keeps cached.
const MAX_CACHED_REGEXES: usize = 256;

/// Topic name → partitions.
pub type Partitions = BTreeMap<String, BTreeSet<i32>>;

/// Epoch of a member leaving the group for good.
pub const LEAVE_EPOCH: i32 = -1;
/// Epoch of a static member leaving temporarily (it keeps its partitions
/// for the session timeout and may come back under its instance id).
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// A member's reconciliation state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// At the target epoch with all of its target it could get.
    Stable,
    /// Must revoke `pending_revocation` before it moves on.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions others still own.
    UnreleasedPartitions,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }
}

/// One member of a consumer group (durable part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: BTreeSet<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: Partitions,
    pub pending_revocation: Partitions,
    /// Set while the member speaks the classic protocol (online upgrade).
    #[serde(default)]
    pub classic: Option<ClassicMember>,
}

impl Member {
    fn new(member_id: String) -> Member {
        Member {
            member_id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: 0,
            subscribed_topic_names: BTreeSet::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            member_epoch: 0,
            previous_member_epoch: -1,
            state: MemberState::Stable,
            assigned: Partitions::new(),
            pending_revocation: Partitions::new(),
            classic: None,
        }
    }

    pub(crate) fn set_epoch(&mut self, epoch: i32) {
        if epoch != self.member_epoch {
            self.previous_member_epoch = self.member_epoch;
            self.member_epoch = epoch;
        }
    }

    /// Every partition the member owns (assigned or awaiting revocation).
    pub fn owned(&self) -> impl Iterator<Item = (&String, i32)> {
        self.assigned
            .iter()
            .chain(self.pending_revocation.iter())
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t, *p)))
    }
}

/// The durable state of a consumer group: what its `__consumer_offsets`
/// record holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupData {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, Member>,
    /// Member id → its target assignment at `assignment_epoch`.
    pub target: BTreeMap<String, Partitions>,
    /// Subscribed topic → its partition count, as of the last epoch bump.
    pub subscription_metadata: BTreeMap<String, i32>,
}

/// The group states of ConsumerGroupDescribe and ListGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// A ConsumerGroupHeartbeat, topic ids already resolved to names.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when not sent.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns; `None` when not sent.
    pub owned: Option<Partitions>,
    pub client_id: String,
    pub client_host: String,
    /// A classic member's JoinGroup (see [`classic`]); `None` for the
    /// consumer protocol.
    pub classic: Option<ClassicMember>,
}

/// A heartbeat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed or the request was full.
    pub assignment: Option<Partitions>,
}

/// Session and rebalance deadlines of a member (not persisted).
#[derive(Debug, Clone, Copy, Default)]
struct Timers {
    session_deadline: i64,
    rebalance_deadline: Option<i64>,
}

/// One consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    data: GroupData,
    config: ConsumerGroupConfig,
    timers: HashMap<String, Timers>,
    /// When the subscription metadata is next recomputed.
    metadata_refresh_deadline: i64,
    /// Compiled regexes by pattern.
    regexes: HashMap<String, regex::Regex>,
    /// Last time the group had a member or was loaded: offsets retention
    /// counts from here once it is empty.
    last_active: i64,
}

/// The topics the group can subscribe to: name → partition count (internal
/// topics left out).
pub type Topics = BTreeMap<String, i32>;

fn compile(pattern: &str) -> Result<regex::Regex, HeartbeatError> {
    // Kafka matches the whole topic name (re2j `matches`).
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| HeartbeatError::InvalidRegularExpression(pattern.to_string(), e.to_string()))
}

impl ConsumerGroup {
    pub fn new(group_id: String, config: ConsumerGroupConfig) -> ConsumerGroup {
        ConsumerGroup::from_data(
            GroupData {
                group_id,
                ..GroupData::default()
            },
            config,
            0,
        )
    }

    /// Rebuild a loaded group: every member gets a fresh session.
    pub fn from_data(data: GroupData, config: ConsumerGroupConfig, now: i64) -> ConsumerGroup {
        let timers = data
            .members
            .iter()
            .map(|(id, m)| {
                (
                    id.clone(),
                    Timers {
                        session_deadline: now + session_timeout(&config, m),
                        rebalance_deadline: None,
                    },
                )
            })
            .collect();
        ConsumerGroup {
            data,
            config,
            timers,
            metadata_refresh_deadline: 0,
            regexes: HashMap::new(),
            last_active: now,
        }
    }

    pub fn data(&self) -> &GroupData {
        &self.data
    }

    pub fn group_id(&self) -> &str {
        &self.data.group_id
    }

    pub fn is_empty(&self) -> bool {
        self.data.members.is_empty()
    }

    /// When the group became empty (or was loaded empty); `None` while it
    /// has members.
    pub fn empty_since(&self) -> Option<i64> {
        self.is_empty().then_some(self.last_active)
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.data.members.get(id)
    }

    pub fn state(&self) -> ConsumerGroupState {
        let d = &self.data;
        if d.members.is_empty() {
            ConsumerGroupState::Empty
        } else if d.group_epoch > d.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if d
            .members
            .values()
            .any(|m| m.member_epoch != d.assignment_epoch || m.state != MemberState::Stable)
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// The assignor the group uses: the one most members asked for, the
    /// configured default otherwise (Kafka's `preferredServerAssignor`).
    pub fn assignor(&self) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.data.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map(|(a, _)| a.to_string())
            .or_else(|| self.config.assignors.first().cloned())
            .unwrap_or_else(|| "uniform".to_string())
    }

    /// The member's subscription resolved against `topics`.
    fn resolved(&mut self, m: &Member, topics: &Topics) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = m
            .subscribed_topic_names
            .iter()
            .filter(|t| topics.contains_key(*t))
            .cloned()
            .collect();
        if let Some(pattern) = &m.subscribed_topic_regex {
            if !self.regexes.contains_key(pattern) {
                if let Ok(re) = compile(pattern) {
                    self.regexes.insert(pattern.clone(), re);
                }
            }
            if let Some(re) = self.regexes.get(pattern) {
                out.extend(topics.keys().filter(|t| re.is_match(t)).cloned());
            }
        }
        out
    }

    fn subscription_metadata(&mut self, topics: &Topics) -> BTreeMap<String, i32> {
        let members: Vec<Member> = self.data.members.values().cloned().collect();
        let mut out = BTreeMap::new();
        for m in &members {
            for t in self.resolved(m, topics) {
                if let Some(&n) = topics.get(&t) {
                    out.insert(t, n);
                }
            }
        }
        out
    }

    /// Who owns each partition (assigned or pending revocation).
    fn owners(&self) -> HashMap<(String, i32), String> {
        let mut out = HashMap::new();
        for m in self.data.members.values() {
            for (t, p) in m.owned() {
                out.insert((t.clone(), p), m.member_id.clone());
            }
        }
        out
    }

    fn validate(&mut self, hb: &Heartbeat) -> Result<(), HeartbeatError> {
        let invalid = |s: &str| Err(HeartbeatError::InvalidRequest(s.to_string()));
        if hb.instance_id.as_deref() == Some("") {
            return invalid("InstanceId can't be empty.");
        }
        if hb.rack_id.as_deref() == Some("") {
            return invalid("RackId can't be empty.");
        }
        match hb.member_epoch {
            0 => {
                if hb.rebalance_timeout_ms < 0 {
                    return invalid("RebalanceTimeoutMs must be provided in first request.");
                }
                let names = hb
                    .subscribed_topic_names
                    .as_ref()
                    .is_some_and(|n| !n.is_empty());
                if !names && hb.subscribed_topic_regex.is_none() {
                    return invalid(
                        "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                    );
                }
            }
            e if e > 0 || e == LEAVE_EPOCH => {
                if hb.member_id.is_empty() {
                    return invalid("MemberId can't be empty.");
                }
            }
            STATIC_LEAVE_EPOCH => {
                if hb.member_id.is_empty() {
                    return invalid("MemberId can't be empty.");
                }
                if hb.instance_id.is_none() {
                    return invalid("InstanceId can't be null.");
                }
            }
            _ => return invalid("MemberEpoch is invalid."),
        }
        if let Some(a) = &hb.server_assignor {
            if !self.config.assignors.iter().any(|x| x == a) {
                return Err(HeartbeatError::UnsupportedAssignor(a.clone()));
            }
        }
        if let Some(pattern) = &hb.subscribed_topic_regex {
            if !pattern.is_empty() && !self.regexes.contains_key(pattern) {
                let re = compile(pattern)?;
                // A cache, not state: bounded by what members use at once.
                if self.regexes.len() >= MAX_CACHED_REGEXES {
                    self.regexes.clear();
                }
                self.regexes.insert(pattern.clone(), re);
            }
        }
        Ok(())
    }

    /// Handle one heartbeat at `now` against the current topics. On error
    /// the group is unchanged.
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        topics: &Topics,
        now: i64,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        self.validate(&hb)?;
        self.last_active = now;
        if hb.member_epoch == LEAVE_EPOCH || hb.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(hb, now);
        }
        let member_id = if hb.member_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            hb.member_id.clone()
        };
        // The member as it was (None for a new one) and the member to update.
        let (old, mut member) = self.find_member(&hb, &member_id)?;
        if let Some(names) = &hb.subscribed_topic_names {
            member.subscribed_topic_names = names.iter().cloned().collect();
        }
        if let Some(re) = &hb.subscribed_topic_regex {
            member.subscribed_topic_regex = (!re.is_empty()).then(|| re.clone());
        }
        if let Some(a) = &hb.server_assignor {
            member.server_assignor = Some(a.clone());
        }
        if hb.rebalance_timeout_ms >= 0 {
            member.rebalance_timeout_ms = hb.rebalance_timeout_ms;
        }
        if hb.instance_id.is_some() {
            member.instance_id = hb.instance_id.clone();
        }
        if hb.rack_id.is_some() {
            member.rack_id = hb.rack_id.clone();
        }
        member.client_id = hb.client_id.clone();
        member.client_host = hb.client_host.clone();
        member.classic = hb.classic.clone();

        let mut bump = match &old {
            None => true,
            Some(o) => {
                o.subscribed_topic_names != member.subscribed_topic_names
                    || o.subscribed_topic_regex != member.subscribed_topic_regex
                    || o.server_assignor != member.server_assignor
            }
        };
        // A static member replacing its temporarily departed self takes its
        // place under the new id (its assignment and epoch carry over).
        if let Some(o) = &old {
            if o.member_id != member.member_id {
                self.data.members.remove(&o.member_id);
                self.timers.remove(&o.member_id);
                if let Some(t) = self.data.target.remove(&o.member_id) {
                    self.data.target.insert(member.member_id.clone(), t);
                }
            }
        }
        self.data
            .members
            .insert(member.member_id.clone(), member.clone());
        if bump || now >= self.metadata_refresh_deadline {
            let meta = self.subscription_metadata(topics);
            if meta != self.data.subscription_metadata {
                self.data.subscription_metadata = meta;
                bump = true;
            }
            self.metadata_refresh_deadline = now + self.config.metadata_refresh_ms;
        }
        if bump {
            self.data.group_epoch += 1;
        }
        if self.data.group_epoch > self.data.assignment_epoch {
            self.compute_target(topics);
        }
        let target = self
            .data
            .target
            .get(&member.member_id)
            .cloned()
            .unwrap_or_default();
        let owners = self.owners();
        let me = member.member_id.clone();
        let before = member.clone();
        let updated = reconcile::reconcile(
            &member,
            self.data.assignment_epoch,
            &target,
            hb.owned.as_ref(),
            // A member's own pending revocations are released once it
            // acknowledged them; partitions it keeps are never "new".
            &|t: &str, p: i32| owners.get(&(t.to_string(), p)).is_some_and(|o| *o != me),
        );
        let session = session_timeout(&self.config, &updated);
        let timers = self.timers.entry(updated.member_id.clone()).or_default();
        timers.session_deadline = now + session;
        if updated.state == MemberState::UnrevokedPartitions {
            if before.state != MemberState::UnrevokedPartitions
                || before.pending_revocation != updated.pending_revocation
            {
                timers.rebalance_deadline =
                    Some(now + i64::from(updated.rebalance_timeout_ms.max(0)));
            }
        } else {
            timers.rebalance_deadline = None;
        }
        let full = hb.member_epoch == 0
            || (hb.rebalance_timeout_ms != -1
                && hb.subscribed_topic_names.is_some()
                && hb.owned.is_some());
        let changed = before.assigned != updated.assigned;
        let response = HeartbeatResponse {
            member_id: updated.member_id.clone(),
            member_epoch: updated.member_epoch,
            heartbeat_interval_ms: self.config.heartbeat_interval_ms,
            assignment: (full || changed).then(|| updated.assigned.clone()),
        };
        self.data.members.insert(updated.member_id.clone(), updated);
        Ok(response)
    }

    /// The existing member a heartbeat is about (`None` when it joins) and
    /// the member to update.
    fn find_member(
        &self,
        hb: &Heartbeat,
        member_id: &str,
    ) -> Result<(Option<Member>, Member), HeartbeatError> {
        let joining = hb.member_epoch == 0;
        let full = || HeartbeatError::GroupMaxSizeReached(self.config.max_size);
        match &hb.instance_id {
            None => match self.data.members.get(member_id) {
                Some(m) => {
                    if !joining {
                        check_epoch(m, hb.member_epoch, hb.owned.as_ref())?;
                    }
                    Ok((Some(m.clone()), m.clone()))
                }
                None if joining => {
                    if self.data.members.len() >= self.config.max_size {
                        return Err(full());
                    }
                    Ok((None, Member::new(member_id.to_string())))
                }
                None => Err(HeartbeatError::UnknownMemberId(member_id.to_string())),
            },
            Some(instance) => {
                let existing = self
                    .data
                    .members
                    .values()
                    .find(|m| m.instance_id.as_deref() == Some(instance.as_str()));
                match existing {
                    None if joining => {
                        if self.data.members.len() >= self.config.max_size {
                            return Err(full());
                        }
                        Ok((None, Member::new(member_id.to_string())))
                    }
                    None => Err(HeartbeatError::UnknownMemberId(member_id.to_string())),
                    Some(m) if joining => {
                        if m.member_id == member_id {
                            return Ok((Some(m.clone()), m.clone()));
                        }
                        if m.member_epoch != STATIC_LEAVE_EPOCH {
                            return Err(HeartbeatError::UnreleasedInstanceId(instance.clone()));
                        }
                        // The static member is back under a new member id:
                        // it takes the departed one's assignment and epoch.
                        let mut new = m.clone();
                        new.member_id = member_id.to_string();
                        new.member_epoch = m.previous_member_epoch.max(0);
                        new.previous_member_epoch = m.previous_member_epoch;
                        Ok((Some(m.clone()), new))
                    }
                    Some(m) => {
                        if m.member_id != member_id {
                            return Err(HeartbeatError::FencedInstanceId(instance.clone()));
                        }
                        check_epoch(m, hb.member_epoch, hb.owned.as_ref())?;
                        Ok((Some(m.clone()), m.clone()))
                    }
                }
            }
        }
    }

    fn leave(&mut self, hb: Heartbeat, now: i64) -> Result<HeartbeatResponse, HeartbeatError> {
        let id = match &hb.instance_id {
            Some(instance) => {
                let m = self
                    .data
                    .members
                    .values()
                    .find(|m| m.instance_id.as_deref() == Some(instance.as_str()))
                    .ok_or_else(|| HeartbeatError::UnknownMemberId(hb.member_id.clone()))?;
                if m.member_id != hb.member_id {
                    return Err(HeartbeatError::FencedInstanceId(instance.clone()));
                }
                m.member_id.clone()
            }
            None => {
                if !self.data.members.contains_key(&hb.member_id) {
                    return Err(HeartbeatError::UnknownMemberId(hb.member_id.clone()));
                }
                hb.member_id.clone()
            }
        };
        if hb.member_epoch == STATIC_LEAVE_EPOCH {
            // Temporary leave: keep the member and its partitions until the
            // session times out or it rejoins under its instance id.
            if let Some(m) = self.data.members.get_mut(&id) {
                m.previous_member_epoch = m.member_epoch;
                m.member_epoch = STATIC_LEAVE_EPOCH;
            }
            // It has a whole session to come back.
            let t = self.timers.entry(id.clone()).or_default();
            t.session_deadline = now + self.config.session_timeout_ms;
            t.rebalance_deadline = None;
        } else {
            self.remove_member(&id);
        }
        Ok(HeartbeatResponse {
            member_id: id,
            member_epoch: hb.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// Remove a member (left, fenced or expired): its partitions are free
    /// at once and the group epoch moves so that they are reassigned.
    pub fn remove_member(&mut self, id: &str) -> bool {
        if self.data.members.remove(id).is_none() {
            return false;
        }
        self.timers.remove(id);
        self.data.target.remove(id);
        self.data.group_epoch += 1;
        true
    }

    fn compute_target(&mut self, topics: &Topics) {
        let members: Vec<Member> = self.data.members.values().cloned().collect();
        let mut specs = BTreeMap::new();
        for m in &members {
            let subscribed = self.resolved(m, topics);
            specs.insert(
                m.member_id.clone(),
                assignor::MemberSpec {
                    subscribed,
                    previous: self
                        .data
                        .target
                        .get(&m.member_id)
                        .cloned()
                        .unwrap_or_default(),
                },
            );
        }
        let name = self.assignor();
        let meta: BTreeMap<String, i32> = self
            .data
            .subscription_metadata
            .iter()
            .filter(|(t, _)| topics.contains_key(*t))
            .map(|(t, n)| (t.clone(), *n))
            .collect();
        self.data.target = assignor::assign(&name, &specs, &meta);
        self.data.assignment_epoch = self.data.group_epoch;
    }

    /// The earliest session or rebalance deadline.
    pub fn next_deadline(&self) -> Option<i64> {
        self.timers
            .values()
            .flat_map(|t| std::iter::once(t.session_deadline).chain(t.rebalance_deadline))
            .min()
    }

    /// Expire members whose session or rebalance timeout passed; the ids
    /// removed.
    pub fn tick(&mut self, now: i64) -> Vec<String> {
        let expired: Vec<String> = self
            .timers
            .iter()
            .filter(|(_, t)| {
                t.session_deadline <= now || t.rebalance_deadline.is_some_and(|d| d <= now)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.remove_member(id);
        }
        if !expired.is_empty() {
            self.last_active = now;
        }
        // Timers of members that no longer exist (defensive).
        let members = &self.data.members;
        self.timers.retain(|id, _| members.contains_key(id));
        expired
    }

    /// OffsetCommit / TxnOffsetCommit check (Kafka's
    /// `ConsumerGroup.validateOffsetCommit`): a commit without a member
    /// epoch only while the group has no members; otherwise the member must
    /// exist and commit at its current epoch.
    pub fn validate_offset_commit(&self, member_id: &str, member_epoch: i32) -> i16 {
        if member_epoch < 0 && self.data.members.is_empty() {
            return 0;
        }
        match self.data.members.get(member_id) {
            None => E::UnknownMemberId.code(),
            // A classic member's generation is its member epoch.
            Some(m) if m.member_epoch != member_epoch && m.classic.is_some() => {
                E::IllegalGeneration.code()
            }
            Some(m) if m.member_epoch != member_epoch => E::StaleMemberEpoch.code(),
            Some(_) => 0,
        }
    }

    /// OffsetFetch v9 check (`ConsumerGroup.validateOffsetFetch`).
    pub fn validate_offset_fetch(&self, member_id: Option<&str>, member_epoch: i32) -> i16 {
        let Some(member_id) = member_id else {
            return if member_epoch < 0 {
                0
            } else {
                E::UnknownMemberId.code()
            };
        };
        if member_id.is_empty() && member_epoch < 0 {
            return 0;
        }
        match self.data.members.get(member_id) {
            None => E::UnknownMemberId.code(),
            Some(m) if m.member_epoch != member_epoch => E::StaleMemberEpoch.code(),
            Some(_) => 0,
        }
    }
}

/// A member's session timeout: its own as a classic member, the group's
/// `group.consumer.session.timeout.ms` otherwise.
fn session_timeout(config: &ConsumerGroupConfig, m: &Member) -> i64 {
    m.classic.as_ref().map_or(config.session_timeout_ms, |c| {
        i64::from(c.session_timeout_ms.max(1))
    })
}

/// Kafka's `throwIfConsumerGroupMemberEpochIsInvalid`: a member ahead of
/// the coordinator is fenced; one behind is accepted only at its previous
/// epoch with a subset of its assignment (the response that bumped it was
/// lost).
fn check_epoch(
    m: &Member,
    received: i32,
    owned: Option<&Partitions>,
) -> Result<(), HeartbeatError> {
    let fenced = HeartbeatError::FencedMemberEpoch {
        received,
        expected: m.member_epoch,
    };
    if received > m.member_epoch {
        return Err(fenced);
    }
    if received < m.member_epoch {
        let subset = owned.is_none_or(|o| {
            o.iter()
                .all(|(t, ps)| m.assigned.get(t).is_some_and(|a| ps.is_subset(a)) || ps.is_empty())
        });
        if received != m.previous_member_epoch || !subset {
            return Err(fenced);
        }
    }
    Ok(())
}
