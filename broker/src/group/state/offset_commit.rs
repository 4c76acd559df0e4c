//! Whether an OffsetCommit or TxnOffsetCommit may commit for a group
//! (Kafka's `ClassicGroup.validateOffsetCommit`).

use kafka_protocol::ResponseError as E;

use super::Group;
use crate::group::types::GroupState;

impl Group {
    /// Whether an OffsetCommit with these credentials may commit (Kafka's
    /// `validateOffsetCommit` for non-transactional commits): generation -1
    /// with no member id is a simple consumer or the admin client, allowed
    /// only while the group is `Empty`; anything else must be a current
    /// member of the current generation, and gets REBALANCE_IN_PROGRESS
    /// while the group awaits its assignment. Commits stay allowed during
    /// `PreparingRebalance` (members learn of the rebalance from heartbeats).
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> i16 {
        self.validate_commit(member_id, group_instance_id, generation_id, false)
    }

    /// Whether a TxnOffsetCommit with these credentials may commit
    /// (KIP-447: v3+ carries the consumer's generation, member id and
    /// instance id, checked as OffsetCommit's; -1/""/null, as every v0–v2
    /// request has, skips the member check). Unlike OffsetCommit it is
    /// accepted without member credentials while the group has members
    /// (older producers cannot send them) and during CompletingRebalance
    /// (the group state is not enforced for transactional commits).
    pub fn validate_txn_offset_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> i16 {
        self.validate_commit(member_id, group_instance_id, generation_id, true)
    }

    fn validate_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        transactional: bool,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return E::CoordinatorNotAvailable.code();
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return 0;
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            if let Err(e) = self.validate_member(member_id, group_instance_id) {
                return e.code();
            }
            if generation_id != self.generation_id {
                return E::IllegalGeneration.code();
            }
        } else if !transactional && self.state != GroupState::Empty {
            return E::UnknownMemberId.code();
        }
        if !transactional && self.state == GroupState::CompletingRebalance {
            return E::RebalanceInProgress.code();
        }
        0
    }
}
