//! JoinGroup handling of [`Group`]: admission (session timeout, group size,
//! protocols), new dynamic and static members, rejoins, and the answers for
//! the current generation.

use kafka_protocol::ResponseError as E;

use super::member::{self, Member};
use super::{join_error, sync_error, Group, PendingMember, NEW_MEMBER_JOIN_TIMEOUT_MS};
use crate::group::types::{
    GroupState, JoinRequest, JoinResult, JoinedMember, Output, RequestToken,
};

impl Group {
    /// Kafka's `classicGroupJoinToClassicGroup` for an existing group.
    pub(super) fn do_join(
        &mut self,
        token: RequestToken,
        req: JoinRequest,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        let reply = |out: &mut Vec<Output>, result| out.push(Output::Join { token, result });
        let is_new = req.member_id.is_empty();
        if let Err(e) = self.config.validate_join(&req) {
            return reply(out, join_error(&req.member_id, e));
        }
        if !self.accept_joining_member(&req.member_id) {
            // Kafka drops a known (only possible while rebalancing: one that
            // has not rejoined yet) or pending member that would overflow the
            // group here.
            if let Some(idx) = self.index_of(&req.member_id) {
                self.remove_member(idx, out);
                self.after_member_removed(now, out);
            } else if self.remove_pending(&req.member_id) {
                self.maybe_complete_join(now, out);
            }
            return reply(out, join_error("", E::GroupMaxSizeReached));
        }
        let echoed = if is_new { "" } else { req.member_id.as_str() };
        if self.state == GroupState::Dead {
            return reply(out, join_error(echoed, E::CoordinatorNotAvailable));
        }
        if !self.supports_protocols(&req) {
            return reply(out, join_error(echoed, E::InconsistentGroupProtocol));
        }
        if is_new {
            self.join_new_member(token, req, now, out);
        } else {
            self.join_existing_member(token, req, now, out);
        }
    }

    /// Kafka's `acceptJoiningMember`: new members only while the group has
    /// room; while rebalancing, room is counted among members that rejoined.
    fn accept_joining_member(&self, member_id: &str) -> bool {
        let max = self.config.max_members;
        let known = self.index_of(member_id).and_then(|i| self.members.get(i));
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                known.is_some_and(|m| m.awaiting_join.is_some()) || self.num_awaiting_join() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                known.is_some() || self.members.len() < max
            }
        }
    }

    fn supports_protocols(&self, req: &JoinRequest) -> bool {
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return false;
        }
        self.state == GroupState::Empty
            || (self.protocol_type.as_deref() == Some(req.protocol_type.as_str())
                && member::supports_any(&self.members, &req.protocols))
    }

    fn join_new_member(
        &mut self,
        token: RequestToken,
        req: JoinRequest,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let new_id = self.member_ids.generate(prefix);
        let existing = req
            .group_instance_id
            .as_deref()
            .and_then(|i| self.static_member_id(i))
            .and_then(|id| self.index_of(id));
        if let Some(idx) = existing {
            self.replace_static_member(idx, token, req, new_id, now, out);
        } else if req.group_instance_id.is_none() && req.require_known_member_id {
            // KIP-394: hand out the id; the member rejoins with it. It holds
            // up the join phase until it does or its session expires.
            let result = if self.pending_members.len() >= self.config.max_members {
                join_error("", E::GroupMaxSizeReached)
            } else {
                let deadline = now.saturating_add(i64::from(req.session_timeout_ms));
                self.pending_members.push(PendingMember {
                    member_id: new_id.clone(),
                    deadline,
                });
                join_error(&new_id, E::MemberIdRequired)
            };
            out.push(Output::Join { token, result });
        } else {
            self.add_member_and_rebalance(token, &req, new_id, now, out);
        }
    }

    fn join_existing_member(
        &mut self,
        token: RequestToken,
        req: JoinRequest,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        // Pending ids are only handed to dynamic members; a pending id with
        // an instance id falls through to member validation and is refused.
        if req.group_instance_id.is_none() && self.is_pending(&req.member_id) {
            let member_id = req.member_id.clone();
            return self.add_member_and_rebalance(token, &req, member_id, now, out);
        }
        let idx = match self.validate_member(&req.member_id, req.group_instance_id.as_deref()) {
            Ok(idx) => idx,
            Err(e) => {
                let result = join_error(&req.member_id, e);
                return out.push(Output::Join { token, result });
            }
        };
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        let matches = self
            .members
            .get(idx)
            .is_some_and(|m| m.matches(&req.protocols));
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(idx, token, &req, now, out)
            }
            // Unchanged metadata (e.g. a lost JoinGroup response): repeat the
            // current generation's answer. The leader may rejoin in Stable
            // to force a rebalance (e.g. for topic metadata changes).
            GroupState::CompletingRebalance | GroupState::Stable
                if matches && !(self.state == GroupState::Stable && is_leader) =>
            {
                let result = self.join_response(idx, false);
                out.push(Output::Join { token, result });
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(idx, token, &req, now, out)
            }
            GroupState::Empty | GroupState::Dead => {
                let result = join_error(&req.member_id, E::UnknownMemberId);
                out.push(Output::Join { token, result });
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        token: RequestToken,
        req: &JoinRequest,
        member_id: String,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        self.remove_pending(&member_id);
        let mut m = Member::from_join(member_id, req);
        m.awaiting_join = Some(token);
        // A new member cannot heartbeat (no id, socket parked): only the
        // new-member join timeout bounds its wait.
        m.schedule_heartbeat(now, NEW_MEMBER_JOIN_TIMEOUT_MS);
        if self.state == GroupState::PreparingRebalance && self.previous_state == GroupState::Empty
        {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(m.member_id.clone());
        }
        self.members.push(m);
        self.maybe_prepare_rebalance_or_complete_join(now, out);
    }

    fn update_member_and_rebalance(
        &mut self,
        idx: usize,
        token: RequestToken,
        req: &JoinRequest,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        if let Some(m) = self.members.get_mut(idx) {
            m.update(req);
            park_join(m, token, out);
        }
        self.maybe_prepare_rebalance_or_complete_join(now, out);
    }

    /// KIP-345: a known instance id rejoins with an unknown member id (a
    /// restart). The old id is fenced and replaced; in `Stable`, if the
    /// selected protocol stays the same, the group keeps its generation and
    /// assignment and only the new id is persisted (no rebalance).
    fn replace_static_member(
        &mut self,
        idx: usize,
        token: RequestToken,
        req: JoinRequest,
        new_id: String,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        let Some(m) = self.members.get_mut(idx) else {
            return;
        };
        let old_id = std::mem::replace(&mut m.member_id, new_id.clone());
        if let Some(t) = m.awaiting_join.take() {
            let result = join_error(&old_id, E::FencedInstanceId);
            out.push(Output::Join { token: t, result });
        }
        if let Some(t) = m.awaiting_sync.take() {
            out.push(Output::Sync {
                token: t,
                result: sync_error(E::FencedInstanceId),
            });
        }
        let supports_skip = req.supports_skip_assignment;
        m.update(&req);
        m.schedule_heartbeat(now, m.session_timeout());
        m.awaiting_join = Some(token);
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        for id in &mut self.pending_sync {
            if *id == old_id {
                id.clone_from(&new_id);
            }
        }
        match self.state {
            GroupState::Stable if member::select_protocol(&self.members) == self.protocol_name => {
                out.push(Output::Persist);
                let is_leader = self.leader.as_deref() == Some(new_id.as_str());
                // KIP-814: a static leader must not run the assignor again.
                let mut result = self.join_response(idx, is_leader && supports_skip);
                if is_leader && !supports_skip {
                    // Before v9 Kafka names the old leader id, so the
                    // restarted leader acts as a follower and just syncs.
                    result.leader = old_id.clone();
                    result.members.clear();
                }
                if let Some(m) = self.members.get_mut(idx) {
                    m.awaiting_join = None;
                }
                out.push(Output::Join { token, result });
            }
            // In CompletingRebalance the leader may be assigning to the old
            // id: start over so the new id gets an assignment.
            GroupState::CompletingRebalance => self.prepare_rebalance(now, out),
            _ => self.maybe_prepare_rebalance_or_complete_join(now, out),
        }
    }

    /// The JoinGroup answer for the current generation; the leader gets
    /// every member's metadata for the selected protocol.
    pub(super) fn join_response(&self, idx: usize, skip_assignment: bool) -> JoinResult {
        let member_id = self
            .members
            .get(idx)
            .map(|m| m.member_id.clone())
            .unwrap_or_default();
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        JoinResult {
            error_code: 0,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            members: if is_leader {
                self.member_metadata()
            } else {
                Vec::new()
            },
            member_id,
            skip_assignment,
        }
    }

    fn member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .iter()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }
}

/// Park a JoinGroup; a request it supersedes (a retry after a client-side
/// timeout) is answered so the coordinator does not hold it forever.
fn park_join(m: &mut Member, token: RequestToken, out: &mut Vec<Output>) {
    if let Some(old) = m.awaiting_join.replace(token).filter(|old| *old != token) {
        let result = join_error(&m.member_id, E::RebalanceInProgress);
        out.push(Output::Join { token: old, result });
    }
}
