//! Per-member reconciliation towards the target assignment (Kafka's
//! `CurrentAssignmentBuilder`, KIP-848 "Member Reconciliation").
//!
//! A member moves to a new target in at most two steps: first it is asked
//! to revoke the partitions it has that the target no longer gives it (it
//! keeps its epoch, state `UnrevokedPartitions`, until a heartbeat's owned
//! partitions no longer list any of them); then it gets the target's new
//! partitions and the target epoch. A new partition still owned by another
//! member (assigned to it or awaiting its revocation) is withheld (state
//! `UnreleasedPartitions`) until that member has released it, so that no
//! partition is ever owned by two members at once.

use std::collections::BTreeSet;

use super::{Member, MemberState, Partitions};

/// Whether `owned` (a heartbeat's owned partitions; `None` when the member
/// did not send them) still lists any of `revoking`. Unknown is "yes".
pub fn owns_any(owned: Option<&Partitions>, revoking: &Partitions) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    owned.iter().any(|(topic, parts)| {
        revoking
            .get(topic)
            .is_some_and(|r| parts.iter().any(|p| r.contains(p)))
    })
}

/// The member's next state given the target (epoch and partitions), what
/// it reported owning and who owns what (`owned_by_other(topic, p)`: held
/// by any member's assigned or pending-revocation set, this member's
/// pending revocations included).
pub fn reconcile(
    member: &Member,
    target_epoch: i32,
    target: &Partitions,
    owned: Option<&Partitions>,
    owned_by_other: &dyn Fn(&str, i32) -> bool,
) -> Member {
    match member.state {
        MemberState::Stable => {
            if member.member_epoch != target_epoch {
                next(
                    member,
                    member.member_epoch,
                    target_epoch,
                    target,
                    owned,
                    owned_by_other,
                )
            } else {
                member.clone()
            }
        }
        MemberState::UnrevokedPartitions => {
            if owns_any(owned, &member.pending_revocation) {
                member.clone()
            } else {
                // Revocation acknowledged: the partitions are released.
                let mut released = member.clone();
                released.pending_revocation.clear();
                next(
                    &released,
                    member.member_epoch,
                    target_epoch,
                    target,
                    owned,
                    owned_by_other,
                )
            }
        }
        MemberState::UnreleasedPartitions => next(
            member,
            member.member_epoch,
            target_epoch,
            target,
            owned,
            owned_by_other,
        ),
    }
}

fn next(
    member: &Member,
    epoch: i32,
    target_epoch: i32,
    target: &Partitions,
    owned: Option<&Partitions>,
    owned_by_other: &dyn Fn(&str, i32) -> bool,
) -> Member {
    let mut assigned = Partitions::new();
    let mut revoking = Partitions::new();
    let mut pending = Partitions::new();
    let mut unreleased = false;
    let topics: BTreeSet<&String> = target.keys().chain(member.assigned.keys()).collect();
    let empty = BTreeSet::new();
    for topic in topics {
        let want = target.get(topic).unwrap_or(&empty);
        let have = member.assigned.get(topic).unwrap_or(&empty);
        let keep: BTreeSet<i32> = have.intersection(want).copied().collect();
        let revoke: BTreeSet<i32> = have.difference(want).copied().collect();
        let mut add: BTreeSet<i32> = want.difference(&keep).copied().collect();
        let before = add.len();
        add.retain(|p| !owned_by_other(topic, *p));
        unreleased |= add.len() != before;
        if !keep.is_empty() {
            assigned.insert(topic.clone(), keep);
        }
        if !revoke.is_empty() {
            revoking.insert(topic.clone(), revoke);
        }
        if !add.is_empty() {
            pending.insert(topic.clone(), add);
        }
    }
    let mut m = member.clone();
    if !revoking.is_empty() && owns_any(owned, &revoking) {
        m.state = MemberState::UnrevokedPartitions;
        m.set_epoch(epoch);
        m.assigned = assigned;
        m.pending_revocation = revoking;
        return m;
    }
    for (topic, parts) in pending {
        assigned.entry(topic).or_default().extend(parts);
    }
    m.state = if unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
    m.set_epoch(target_epoch);
    m.assigned = assigned;
    m.pending_revocation.clear();
    m
}
