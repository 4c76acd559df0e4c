//! SyncGroup handling of [`Group`]: followers wait for the leader's
//! assignment, which ends the rebalance.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::ResponseError as E;

use super::member::Member;
use super::{inconsistent, sync_error, Group};
use crate::group::types::{GroupState, Output, RequestToken, SyncRequest, SyncResult};

impl Group {
    /// Kafka\'s `classicGroupSyncToClassicGroup`.
    pub(super) fn do_sync(
        &mut self,
        token: RequestToken,
        req: SyncRequest,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        let fail = |out: &mut Vec<Output>, e: E| {
            out.push(Output::Sync {
                token,
                result: sync_error(e),
            })
        };
        if self.state == GroupState::Dead {
            return fail(out, E::CoordinatorNotAvailable);
        }
        let idx = match self.validate_member(&req.member_id, req.group_instance_id.as_deref()) {
            Ok(idx) => idx,
            Err(e) => return fail(out, e),
        };
        if req.generation_id != self.generation_id {
            return fail(out, E::IllegalGeneration);
        }
        if inconsistent(&req.protocol_type, &self.protocol_type)
            || inconsistent(&req.protocol_name, &self.protocol_name)
        {
            return fail(out, E::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => fail(out, E::UnknownMemberId),
            GroupState::PreparingRebalance => fail(out, E::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(idx) {
                    park_sync(m, token, out);
                }
                self.remove_pending_sync(&req.member_id);
                if self.leader.as_deref() == Some(req.member_id.as_str()) {
                    self.complete_sync(req.assignments, now, out);
                }
            }
            GroupState::Stable => {
                self.remove_pending_sync(&req.member_id);
                if let Some(m) = self.members.get_mut(idx) {
                    let result = SyncResult {
                        error_code: 0,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment: m.assignment.clone().unwrap_or_default(),
                    };
                    out.push(Output::Sync { token, result });
                    m.schedule_heartbeat(now, m.session_timeout());
                }
            }
        }
    }

    /// The leader's assignment: members it left out get an empty one,
    /// entries for unknown members are ignored.
    fn complete_sync(
        &mut self,
        assignments: Vec<(String, Bytes)>,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
        for m in &mut self.members {
            m.assignment = Some(by_member.remove(&m.member_id).unwrap_or_default());
        }
        self.transition_to(GroupState::Stable, now);
        out.push(Output::Persist);
        self.propagate_assignment(None, now, out);
    }

    /// Answer every parked SyncGroup with its assignment (or `error`) and
    /// restart the session of each answered member.
    pub(super) fn propagate_assignment(
        &mut self,
        error: Option<E>,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        for m in &mut self.members {
            let Some(token) = m.awaiting_sync.take() else {
                continue;
            };
            let result = match error {
                Some(e) => sync_error(e),
                None => SyncResult {
                    error_code: 0,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone().unwrap_or_default(),
                },
            };
            out.push(Output::Sync { token, result });
            m.schedule_heartbeat(now, m.session_timeout());
        }
    }

    fn remove_pending_sync(&mut self, member_id: &str) {
        self.pending_sync.retain(|id| id != member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
    }
}

/// Park a SyncGroup; a superseded one (a client-side retry) is told to
/// rejoin rather than held forever.
fn park_sync(m: &mut Member, token: RequestToken, out: &mut Vec<Output>) {
    if let Some(old) = m.awaiting_sync.replace(token).filter(|old| *old != token) {
        out.push(Output::Sync {
            token: old,
            result: sync_error(E::RebalanceInProgress),
        });
    }
}
