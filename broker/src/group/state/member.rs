//! One member of a classic group (Kafka's `ClassicGroupMember`) and the
//! protocol rules that depend only on the member list: which protocols the
//! whole group supports and which one it selects.

use bytes::Bytes;

use crate::group::types::{JoinRequest, MemberSnapshot, RequestToken};

#[derive(Debug, Clone)]
pub(super) struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// `(protocol name, metadata)` in the member's preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// `None` until the leader's SyncGroup of the current generation (or a
    /// restored snapshot) gives the member its assignment.
    pub assignment: Option<Bytes>,
    /// A JoinGroup parked until the join phase completes.
    pub awaiting_join: Option<RequestToken>,
    /// A SyncGroup parked until the leader's assignment arrives.
    pub awaiting_sync: Option<RequestToken>,
    /// Joined but not yet through a completed join phase: such a member has
    /// no generation to heartbeat with, so its deadline is the new-member
    /// join timeout and being parked does not keep it alive.
    pub is_new: bool,
    /// When the member's heartbeat timer fires (Kafka's DelayedHeartbeat).
    /// `None` once it fired while the member was parked; it is re-armed
    /// when the parked request is answered.
    pub heartbeat_deadline: Option<i64>,
}

impl Member {
    pub fn from_join(member_id: String, req: &JoinRequest) -> Member {
        Member {
            member_id,
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols.clone(),
            assignment: None,
            awaiting_join: None,
            awaiting_sync: None,
            is_new: true,
            heartbeat_deadline: None,
        }
    }

    pub fn from_snapshot(s: MemberSnapshot) -> Member {
        Member {
            member_id: s.member_id,
            group_instance_id: s.group_instance_id,
            client_id: s.client_id,
            client_host: s.client_host,
            session_timeout_ms: s.session_timeout_ms,
            rebalance_timeout_ms: s.rebalance_timeout_ms,
            protocols: s
                .protocols
                .into_iter()
                .map(|(name, metadata)| (name, Bytes::from(metadata)))
                .collect(),
            assignment: Some(Bytes::from(s.assignment)),
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
            heartbeat_deadline: None,
        }
    }

    pub fn snapshot(&self) -> MemberSnapshot {
        MemberSnapshot {
            member_id: self.member_id.clone(),
            group_instance_id: self.group_instance_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            session_timeout_ms: self.session_timeout_ms,
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            protocols: self
                .protocols
                .iter()
                .map(|(name, metadata)| (name.clone(), metadata.to_vec()))
                .collect(),
            assignment: self
                .assignment
                .as_ref()
                .map(|a| a.to_vec())
                .unwrap_or_default(),
        }
    }

    /// Take over a rejoin's protocols and timeouts (Kafka's `updateMember`).
    pub fn update(&mut self, req: &JoinRequest) {
        self.protocols = req.protocols.clone();
        self.rebalance_timeout_ms = req.rebalance_timeout_ms;
        self.session_timeout_ms = req.session_timeout_ms;
    }

    /// Same protocols, in the same order, with the same metadata.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    /// Kafka's `hasSatisfiedHeartbeat`: a parked member is alive (its socket
    /// is muted, it cannot heartbeat) unless it is new, in which case only
    /// the new-member join timeout keeps it.
    pub fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }

    pub fn schedule_heartbeat(&mut self, now_ms: i64, timeout_ms: i64) {
        self.heartbeat_deadline = Some(now_ms.saturating_add(timeout_ms.max(0)));
    }

    pub fn rebalance_timeout(&self) -> i64 {
        i64::from(self.rebalance_timeout_ms.max(0))
    }

    pub fn session_timeout(&self) -> i64 {
        i64::from(self.session_timeout_ms.max(0))
    }
}

/// Kafka's `supportsProtocols` for a group that already has a protocol type:
/// the type matches and at least one offered protocol is supported by every
/// current member.
pub(super) fn supports_any(members: &[Member], offered: &[(String, Bytes)]) -> bool {
    offered
        .iter()
        .any(|(name, _)| members.iter().all(|m| m.supports(name)))
}

/// Kafka's `selectProtocol`: among the protocols every member supports, each
/// member votes for its most preferred one; most votes wins. Kafka breaks
/// ties by hash order; here the protocol that got its first vote earliest
/// (members in join order) wins, so the outcome is deterministic.
pub(super) fn select_protocol(members: &[Member]) -> Option<String> {
    let mut tally: Vec<(&str, usize)> = Vec::new();
    for m in members {
        let vote = m
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| members.iter().all(|other| other.supports(name)));
        if let Some(vote) = vote {
            match tally.iter_mut().find(|(name, _)| *name == vote) {
                Some((_, count)) => *count += 1,
                None => tally.push((vote, 1)),
            }
        }
    }
    let mut best: Option<(&str, usize)> = None;
    for (name, count) in tally {
        if best.is_none_or(|(_, c)| count > c) {
            best = Some((name, count));
        }
    }
    best.map(|(name, _)| name.to_string())
}
