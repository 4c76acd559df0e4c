//! Property test: random sequences of JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, time passing, failover and deletion never panic and keep the
//! group's invariants; every parked request is answered exactly once.

use std::collections::BTreeSet;

use bytes::Bytes;
use proptest::prelude::*;

use super::{group, join_req_with, member_ids};
use crate::group::state::{Group, GroupConfig, SequentialMemberIds};
use crate::group::types::{GroupState, Output, RequestToken, SyncRequest};

#[derive(Debug, Clone)]
enum Op {
    JoinNew {
        client: u8,
        instance: Option<u8>,
        protocols: u8,
        require_known: bool,
    },
    Rejoin {
        who: usize,
        protocols: u8,
    },
    Sync {
        who: usize,
        stale: bool,
    },
    Heartbeat {
        who: usize,
        stale: bool,
    },
    Leave {
        who: usize,
        by_instance: bool,
    },
    Advance {
        ms: i64,
    },
    Restore,
    MarkDead,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, proptest::option::of(0u8..3), 0u8..4, any::<bool>()).prop_map(
            |(client, instance, protocols, require_known)| Op::JoinNew { client, instance, protocols, require_known }
        ),
        4 => (any::<usize>(), 0u8..4).prop_map(|(who, protocols)| Op::Rejoin { who, protocols }),
        4 => (any::<usize>(), proptest::bool::weighted(0.1)).prop_map(|(who, stale)| Op::Sync { who, stale }),
        3 => (any::<usize>(), proptest::bool::weighted(0.1)).prop_map(|(who, stale)| Op::Heartbeat { who, stale }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(who, by_instance)| Op::Leave { who, by_instance }),
        4 => (0i64..15_000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Restore),
        1 => Just(Op::MarkDead),
    ]
}

fn protocols(variant: u8) -> Vec<(&'static str, &'static str)> {
    match variant {
        0 => vec![("range", "r")],
        1 => vec![("range", "r"), ("roundrobin", "rr")],
        2 => vec![("roundrobin", "rr")],
        _ => vec![("roundrobin", "rr2"), ("range", "r2")],
    }
}

/// Drives a group with random events like a coordinator would, checking
/// that every parked request is answered exactly once.
struct Harness {
    g: Group,
    now: i64,
    next_token: RequestToken,
    outstanding: BTreeSet<RequestToken>,
    /// `(member id, group instance id)` seen in JoinGroup answers.
    known: Vec<(String, Option<String>)>,
}

impl Harness {
    fn token(&mut self) -> RequestToken {
        self.next_token += 1;
        self.outstanding.insert(self.next_token);
        self.next_token
    }

    fn absorb(&mut self, out: Vec<Output>) -> Result<(), TestCaseError> {
        for o in out {
            let token = match &o {
                Output::Join { token, result } => {
                    if !result.member_id.is_empty() {
                        let instance = self
                            .g
                            .members()
                            .into_iter()
                            .find(|m| m.member_id == result.member_id);
                        let instance = instance.and_then(|m| m.group_instance_id);
                        self.known.push((result.member_id.clone(), instance));
                    }
                    *token
                }
                Output::Sync { token, .. } => *token,
                Output::Persist => continue,
            };
            prop_assert!(
                self.outstanding.remove(&token),
                "token {} answered twice or never issued",
                token
            );
        }
        Ok(())
    }

    fn pick(&self, who: usize) -> Option<(String, Option<String>)> {
        self.known.get(who.checked_rem(self.known.len())?).cloned()
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        let generation = self.g.generation_id();
        match op {
            Op::JoinNew {
                client,
                instance,
                protocols: p,
                require_known,
            } => {
                let client = format!("c{client}");
                let meta = protocols(p);
                let mut req = join_req_with("", &client, &meta);
                req.group_instance_id = instance.map(|i| format!("i{i}"));
                req.require_known_member_id = require_known;
                req.rebalance_timeout_ms = 20_000;
                let token = self.token();
                let out = self.g.join(token, req, self.now);
                self.absorb(out)?;
            }
            Op::Rejoin { who, protocols: p } => {
                let Some((id, instance)) = self.pick(who) else {
                    return Ok(());
                };
                let mut req = join_req_with(&id, "c", &protocols(p));
                req.group_instance_id = instance;
                let token = self.token();
                let out = self.g.join(token, req, self.now);
                self.absorb(out)?;
            }
            Op::Sync { who, stale } => {
                let Some((id, instance)) = self.pick(who) else {
                    return Ok(());
                };
                let assignments: Vec<(String, Bytes)> = member_ids(&self.g)
                    .into_iter()
                    .map(|m| (m, Bytes::from_static(b"x")))
                    .collect();
                let req = SyncRequest {
                    member_id: id,
                    group_instance_id: instance,
                    generation_id: if stale { generation - 1 } else { generation },
                    protocol_type: None,
                    protocol_name: None,
                    assignments,
                };
                let token = self.token();
                let out = self.g.sync(token, req, self.now);
                self.absorb(out)?;
            }
            Op::Heartbeat { who, stale } => {
                let Some((id, instance)) = self.pick(who) else {
                    return Ok(());
                };
                let generation = if stale { generation - 1 } else { generation };
                self.g
                    .heartbeat(&id, instance.as_deref(), generation, self.now);
            }
            Op::Leave { who, by_instance } => {
                let Some((id, instance)) = self.pick(who) else {
                    return Ok(());
                };
                let id = if by_instance && instance.is_some() {
                    String::new()
                } else {
                    id
                };
                let (codes, out) = self.g.leave(&[(id, instance)], self.now);
                prop_assert_eq!(codes.len(), 1);
                self.absorb(out)?;
            }
            Op::Advance { ms } => {
                self.now += ms;
                let out = self.g.tick(self.now);
                self.absorb(out)?;
            }
            Op::Restore => {
                // A coordinator failover: parked requests die with the old
                // coordinator (their connections are answered NOT_COORDINATOR).
                let snapshot = self.g.snapshot();
                let out = self.g.mark_dead();
                self.absorb(out)?;
                self.g = Group::from_snapshot(snapshot, GroupConfig::default(), self.now)
                    .with_member_ids(Box::new(SequentialMemberIds {
                        next: self.next_token + 1000,
                    }));
            }
            Op::MarkDead => {
                let out = self.g.mark_dead();
                self.absorb(out)?;
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_event_sequences_keep_the_group_invariants(ops in proptest::collection::vec(op(), 1..80)) {
        let mut h = Harness {
            g: group(),
            now: 0,
            next_token: 0,
            outstanding: BTreeSet::new(),
            known: Vec::new(),
        };
        let mut generation = h.g.generation_id();
        for op in ops {
            h.apply(op)?;
            let g = &h.g;
            prop_assert_eq!(g.invariant_violation(), None);
            prop_assert!(g.generation_id() >= generation, "generation went back");
            generation = g.generation_id();
            let members = g.members();
            match g.leader() {
                Some(l) => prop_assert!(members.iter().any(|m| m.member_id == l)),
                None => prop_assert!(members.is_empty()),
            }
            if g.state() == GroupState::Stable {
                prop_assert!(members.iter().all(|m| g.members.iter().any(|x| x.member_id == m.member_id && x.assignment.is_some())));
            }
            let parked: BTreeSet<RequestToken> = g.parked_tokens().into_iter().collect();
            prop_assert_eq!(&parked, &h.outstanding, "parked requests must be exactly the unanswered ones");
            if let Some(d) = g.next_deadline() {
                prop_assert!(d >= 0);
            }
        }
    }
}
