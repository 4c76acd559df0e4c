//! The rebalance of [`Group`]: entering `PreparingRebalance`, the join
//! phase's timers (Kafka's `InitialDelayedJoin` and `DelayedJoin`) and its
//! completion into a new generation.

use kafka_protocol::ResponseError as E;

use super::member::{self, Member};
use super::{Group, JoinTimer};
use crate::group::types::{GroupState, Output};

impl Group {
    /// The join phase's timer fired: extend the initial delay while members
    /// keep arriving, else complete the join phase.
    pub(super) fn fire_join_timer(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        let Some(timer) = self.join_timer else { return };
        match timer {
            JoinTimer::Initial {
                delay_ms,
                remaining_ms,
                ..
            } if self.new_member_added && remaining_ms != 0 => {
                // Kafka's InitialDelayedJoin: members are still arriving,
                // wait one more delay (never past the rebalance timeout).
                self.new_member_added = false;
                let delay = self.initial_delay().min(remaining_ms);
                self.join_timer = Some(JoinTimer::Initial {
                    deadline: now_ms.saturating_add(delay),
                    delay_ms: delay,
                    remaining_ms: remaining_ms.saturating_sub(delay_ms).max(0),
                });
            }
            _ => self.complete_join(now_ms, out),
        }
    }

    pub(super) fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        match self.state {
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, out)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, out),
            GroupState::Dead => {}
        }
    }

    /// Enter `PreparingRebalance`. Parked SyncGroups are told to rejoin.
    /// From `Empty` the join phase waits the initial delay; otherwise it
    /// completes as soon as every member has rejoined, or at the rebalance
    /// timeout.
    pub(super) fn prepare_rebalance(&mut self, now: i64, out: &mut Vec<Output>) {
        if self.state == GroupState::CompletingRebalance {
            for m in &mut self.members {
                m.assignment = None;
            }
            self.propagate_assignment(Some(E::RebalanceInProgress), now, out);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let initial = self.state == GroupState::Empty;
        self.transition_to(GroupState::PreparingRebalance, now);
        if initial {
            let delay = self.initial_delay();
            self.new_member_added = false;
            self.join_timer = Some(JoinTimer::Initial {
                deadline: now.saturating_add(delay),
                delay_ms: delay,
                remaining_ms: (self.rebalance_timeout() - delay).max(0),
            });
        } else if self.all_joined() {
            self.complete_join(now, out);
        } else {
            let deadline = now.saturating_add(self.rebalance_timeout());
            self.join_timer = Some(JoinTimer::Rebalance { deadline });
        }
    }

    /// Complete the join phase early once everyone has rejoined, except
    /// during the initial rebalance, which always waits out its delay.
    pub(super) fn maybe_complete_join(&mut self, now: i64, out: &mut Vec<Output>) {
        if self.state == GroupState::PreparingRebalance
            && self.previous_state != GroupState::Empty
            && self.all_joined()
        {
            self.complete_join(now, out);
        }
    }

    /// End the join phase: dynamic members that did not rejoin are removed
    /// (static ones stay until their session expires), a leader is chosen
    /// among the rejoined, and a new generation starts, or the group becomes
    /// `Empty`.
    pub(super) fn complete_join(&mut self, now: i64, out: &mut Vec<Output>) {
        self.join_timer = None;
        while let Some(idx) = self
            .members
            .iter()
            .position(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
        {
            self.remove_member(idx, out);
        }
        if !self.elect_joined_leader() && !self.members.is_empty() {
            // Only static members that did not rejoin are left: wait for
            // them to rejoin or expire. At least 1 ms so time must pass.
            let deadline = now.saturating_add(self.rebalance_timeout().max(1));
            self.join_timer = Some(JoinTimer::Rebalance { deadline });
            return;
        }
        self.generation_id = self.generation_id.saturating_add(1);
        self.pending_sync.clear();
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition_to(GroupState::Empty, now);
            out.push(Output::Persist);
            return;
        }
        self.protocol_name = member::select_protocol(&self.members);
        self.transition_to(GroupState::CompletingRebalance, now);
        out.push(Output::Persist);
        for idx in 0..self.members.len() {
            let result = self.join_response(idx, false);
            let Some(m) = self.members.get_mut(idx) else {
                continue;
            };
            if let Some(token) = m.awaiting_join.take() {
                out.push(Output::Join { token, result });
            }
            m.schedule_heartbeat(now, m.session_timeout());
            m.is_new = false;
            self.pending_sync.push(m.member_id.clone());
        }
        self.sync_deadline = Some(now.saturating_add(self.rebalance_timeout()));
    }

    /// Keep the leader if it rejoined, else pick the first member that did.
    fn elect_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.as_deref() else {
            return false;
        };
        let rejoined = |m: &Member| m.awaiting_join.is_some();
        if self
            .members
            .iter()
            .any(|m| m.member_id == leader && rejoined(m))
        {
            return true;
        }
        match self.members.iter().find(|m| rejoined(m)) {
            Some(m) => {
                self.leader = Some(m.member_id.clone());
                true
            }
            None => false,
        }
    }
}
