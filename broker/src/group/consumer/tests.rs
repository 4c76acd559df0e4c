//! The consumer group state machine and its assignors without a broker:
//! simulated clients that apply each assignment they are given and report
//! what they own on their next heartbeat, as librdkafka does.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::assignor::{self, MemberSpec};
use super::*;

fn topics(list: &[(&str, i32)]) -> Topics {
    list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

fn config() -> ConsumerGroupConfig {
    ConsumerGroupConfig {
        session_timeout_ms: 1_000,
        heartbeat_interval_ms: 100,
        metadata_refresh_ms: 0,
        ..ConsumerGroupConfig::default()
    }
}

/// A simulated client.
#[derive(Debug, Clone)]
struct Client {
    id: String,
    epoch: i32,
    owned: Partitions,
    names: Vec<String>,
    regex: Option<String>,
    instance: Option<String>,
}

impl Client {
    fn new(id: &str, names: &[&str]) -> Client {
        Client {
            id: id.to_string(),
            epoch: 0,
            owned: Partitions::new(),
            names: names.iter().map(|s| s.to_string()).collect(),
            regex: None,
            instance: None,
        }
    }
}

struct Sim {
    group: ConsumerGroup,
    topics: Topics,
    clients: BTreeMap<String, Client>,
    now: i64,
    /// Every partition a client ever had revoked, by client.
    revoked: BTreeMap<String, BTreeSet<(String, i32)>>,
}

impl Sim {
    fn new(t: &[(&str, i32)]) -> Sim {
        Sim {
            group: ConsumerGroup::new("g".into(), config()),
            topics: topics(t),
            clients: BTreeMap::new(),
            now: 0,
            revoked: BTreeMap::new(),
        }
    }

    fn heartbeat(&mut self, id: &str) -> Result<HeartbeatResponse, HeartbeatError> {
        let c = self.clients.get(id).cloned().expect("client");
        let hb = Heartbeat {
            member_id: c.id.clone(),
            member_epoch: c.epoch,
            instance_id: c.instance.clone(),
            rebalance_timeout_ms: 5_000,
            subscribed_topic_names: Some(c.names.clone()),
            subscribed_topic_regex: c.regex.clone(),
            owned: Some(c.owned.clone()),
            ..Heartbeat::default()
        };
        let r = self.group.heartbeat(hb, &self.topics, self.now)?;
        let c = self.clients.get_mut(id).expect("client");
        c.epoch = r.member_epoch;
        if let Some(a) = &r.assignment {
            for (t, ps) in &c.owned {
                for p in ps {
                    if !a.get(t).is_some_and(|s| s.contains(p)) {
                        self.revoked
                            .entry(id.to_string())
                            .or_default()
                            .insert((t.clone(), *p));
                    }
                }
            }
            c.owned = a.clone();
        }
        self.check_no_double_ownership();
        Ok(r)
    }

    fn join(&mut self, c: Client) {
        let id = c.id.clone();
        self.clients.insert(id.clone(), c);
        self.heartbeat(&id).expect("join");
    }

    fn round(&mut self) {
        let ids: Vec<String> = self.clients.keys().cloned().collect();
        for id in ids {
            self.heartbeat(&id).expect("heartbeat");
        }
    }

    fn converge(&mut self) {
        for _ in 0..10 {
            self.round();
        }
    }

    /// Neither the clients nor the coordinator's view ever have a
    /// partition with two owners.
    fn check_no_double_ownership(&self) {
        let mut seen = BTreeMap::new();
        for c in self.clients.values() {
            for (t, ps) in &c.owned {
                for p in ps {
                    if let Some(other) = seen.insert((t.clone(), *p), c.id.clone()) {
                        panic!("{t}-{p} owned by {other} and {}", c.id);
                    }
                }
            }
        }
        let mut seen = BTreeMap::new();
        for m in self.group.data().members.values() {
            for (t, p) in m.owned() {
                if let Some(other) = seen.insert((t.clone(), p), m.member_id.clone()) {
                    panic!("coordinator: {t}-{p} owned by {other} and {}", m.member_id);
                }
            }
        }
    }

    fn sizes(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .clients
            .values()
            .map(|c| c.owned.values().map(BTreeSet::len).sum())
            .collect();
        v.sort();
        v
    }

    /// Every partition of the subscribed topics is owned by exactly one client.
    fn all_owned_once(&self, t: &str) -> bool {
        let n = self.topics.get(t).copied().unwrap_or(0);
        let mut all = Vec::new();
        for c in self.clients.values() {
            if let Some(ps) = c.owned.get(t) {
                all.extend(ps.iter().copied());
            }
        }
        all.sort();
        all == (0..n).collect::<Vec<_>>()
    }
}

#[test]
fn three_members_get_a_balanced_assignment_of_six_partitions() {
    let mut s = Sim::new(&[("t", 6)]);
    for id in ["a", "b", "c"] {
        s.join(Client::new(id, &["t"]));
    }
    s.converge();
    assert_eq!(s.sizes(), vec![2, 2, 2]);
    assert!(s.all_owned_once("t"));
    assert_eq!(s.group.state(), ConsumerGroupState::Stable);
    let d = s.group.data();
    assert!(d.members.values().all(|m| m.member_epoch == d.group_epoch));
}

#[test]
fn a_joining_member_moves_only_the_partitions_it_needs() {
    let mut s = Sim::new(&[("t", 6)]);
    s.join(Client::new("a", &["t"]));
    s.join(Client::new("b", &["t"]));
    s.converge();
    assert_eq!(s.sizes(), vec![3, 3]);
    s.revoked.clear();
    s.join(Client::new("c", &["t"]));
    s.converge();
    assert_eq!(s.sizes(), vec![2, 2, 2]);
    assert!(s.all_owned_once("t"));
    // a and b each gave up exactly one partition, c none.
    assert_eq!(s.revoked.get("a").map_or(0, BTreeSet::len), 1);
    assert_eq!(s.revoked.get("b").map_or(0, BTreeSet::len), 1);
    assert!(!s.revoked.contains_key("c"));
}

#[test]
fn new_partitions_are_withheld_until_their_owner_revokes_them() {
    let mut s = Sim::new(&[("t", 2)]);
    s.join(Client::new("a", &["t"]));
    s.converge();
    s.join(Client::new("b", &["t"]));
    // b is told its epoch but gets nothing a still owns.
    assert!(s.clients["b"].owned.values().all(BTreeSet::is_empty));
    assert_eq!(
        s.group.member("b").map(|m| m.state),
        Some(MemberState::UnreleasedPartitions)
    );
    // a's next heartbeat asks it to revoke one partition; its epoch stays.
    let epoch_before = s.clients["a"].epoch;
    let r = s.heartbeat("a").unwrap();
    assert_eq!(r.member_epoch, epoch_before);
    assert_eq!(
        s.group.member("a").map(|m| m.state),
        Some(MemberState::UnrevokedPartitions)
    );
    // b still waits: a has not acknowledged.
    s.heartbeat("b").unwrap();
    assert!(s.clients["b"].owned.values().all(BTreeSet::is_empty));
    // a acknowledges (reports what it kept) and moves to the new epoch.
    let r = s.heartbeat("a").unwrap();
    assert!(r.member_epoch > epoch_before);
    s.heartbeat("b").unwrap();
    assert_eq!(s.sizes(), vec![1, 1]);
}

#[test]
fn a_member_whose_session_times_out_loses_its_partitions() {
    let mut s = Sim::new(&[("t", 4)]);
    s.join(Client::new("a", &["t"]));
    s.join(Client::new("b", &["t"]));
    s.converge();
    // b stops heartbeating; a keeps going.
    s.now = 600;
    s.heartbeat("a").unwrap();
    s.now = 1_100;
    assert_eq!(s.group.tick(s.now), vec!["b".to_string()]);
    s.clients.remove("b");
    s.converge();
    assert_eq!(s.sizes(), vec![4]);
}

#[test]
fn a_member_that_does_not_revoke_within_the_rebalance_timeout_is_removed() {
    let mut s = Sim::new(&[("t", 2)]);
    s.join(Client::new("a", &["t"]));
    s.converge();
    s.join(Client::new("b", &["t"]));
    // a is asked to revoke but its heartbeat never reports the revocation.
    let hb = Heartbeat {
        member_id: "a".into(),
        member_epoch: s.clients["a"].epoch,
        rebalance_timeout_ms: 300,
        owned: Some(s.clients["a"].owned.clone()),
        ..Heartbeat::default()
    };
    s.group.heartbeat(hb, &s.topics, 0).unwrap();
    assert_eq!(
        s.group.member("a").map(|m| m.state),
        Some(MemberState::UnrevokedPartitions)
    );
    assert_eq!(s.group.next_deadline(), Some(300));
    assert_eq!(s.group.tick(300), vec!["a".to_string()]);
}

#[test]
fn leaving_frees_partitions_and_bumps_the_group_epoch() {
    let mut s = Sim::new(&[("t", 4)]);
    s.join(Client::new("a", &["t"]));
    s.join(Client::new("b", &["t"]));
    s.converge();
    let epoch = s.group.data().group_epoch;
    let r = s
        .group
        .heartbeat(
            Heartbeat {
                member_id: "b".into(),
                member_epoch: LEAVE_EPOCH,
                ..Heartbeat::default()
            },
            &s.topics,
            0,
        )
        .unwrap();
    assert_eq!(r.member_epoch, LEAVE_EPOCH);
    assert_eq!(s.group.data().group_epoch, epoch + 1);
    s.clients.remove("b");
    s.converge();
    assert_eq!(s.sizes(), vec![4]);
}

#[test]
fn epoch_and_membership_errors_are_kafkas() {
    let mut s = Sim::new(&[("t", 4)]);
    s.join(Client::new("a", &["t"]));
    s.converge();
    let e = s.clients["a"].epoch;
    let hb = |id: &str, epoch: i32| Heartbeat {
        member_id: id.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        ..Heartbeat::default()
    };
    let err = s.group.heartbeat(hb("a", e + 1), &s.topics, 0).unwrap_err();
    assert_eq!(err.code(), E::FencedMemberEpoch.code());
    let err = s
        .group
        .heartbeat(hb("nobody", 3), &s.topics, 0)
        .unwrap_err();
    assert_eq!(err.code(), E::UnknownMemberId.code());
    let err = s.group.heartbeat(hb("a", -3), &s.topics, 0).unwrap_err();
    assert_eq!(err.code(), E::InvalidRequest.code());
    let mut j = hb("x", 0);
    j.rebalance_timeout_ms = 1000;
    j.subscribed_topic_names = Some(vec!["t".into()]);
    j.server_assignor = Some("sticky".into());
    let err = s.group.heartbeat(j.clone(), &s.topics, 0).unwrap_err();
    assert_eq!(err.code(), E::UnsupportedAssignor.code());
    j.server_assignor = None;
    j.subscribed_topic_regex = Some("(".into());
    let err = s.group.heartbeat(j.clone(), &s.topics, 0).unwrap_err();
    assert_eq!(err.code(), E::InvalidRegularExpression.code());
    // No member was added by the refused requests.
    assert_eq!(s.group.data().members.len(), 1);

    let mut small = ConsumerGroup::new(
        "small".into(),
        ConsumerGroupConfig {
            max_size: 1,
            ..config()
        },
    );
    j.subscribed_topic_regex = None;
    small.heartbeat(j.clone(), &s.topics, 0).unwrap();
    j.member_id = "y".into();
    let err = small.heartbeat(j, &s.topics, 0).unwrap_err();
    assert_eq!(err.code(), E::GroupMaxSizeReached.code());
}

#[test]
fn a_static_member_rejoins_within_the_session_and_keeps_its_partitions() {
    let mut s = Sim::new(&[("t", 4)]);
    let mut a = Client::new("a1", &["t"]);
    a.instance = Some("inst-a".into());
    s.join(a);
    s.join(Client::new("b", &["t"]));
    s.converge();
    let kept = s.clients["a1"].owned.clone();
    let epoch = s.group.data().group_epoch;
    // Temporary leave (-2): the member stays with its partitions.
    let leave = Heartbeat {
        member_id: "a1".into(),
        member_epoch: STATIC_LEAVE_EPOCH,
        instance_id: Some("inst-a".into()),
        ..Heartbeat::default()
    };
    assert_eq!(
        s.group.heartbeat(leave, &s.topics, 0).unwrap().member_epoch,
        -2
    );
    assert_eq!(s.group.data().group_epoch, epoch);
    // Another member with the instance id while a1 is active would clash;
    // after the temporary leave a new member id takes its place.
    s.clients.remove("a1");
    let mut back = Client::new("a2", &["t"]);
    back.instance = Some("inst-a".into());
    s.join(back);
    assert_eq!(s.clients["a2"].owned, kept);
    assert_eq!(s.group.data().group_epoch, epoch, "no rebalance");
    // A third instance with the same id is refused.
    let mut clash = Client::new("a3", &["t"]);
    clash.instance = Some("inst-a".into());
    s.clients.insert("a3".into(), clash);
    let err = s.heartbeat("a3").unwrap_err();
    assert_eq!(err.code(), E::UnreleasedInstanceId.code());
}

#[test]
fn a_regex_subscription_picks_up_new_topics_and_bumps_the_epoch() {
    let mut s = Sim::new(&[("rx-1", 2), ("other", 2)]);
    let mut c = Client::new("a", &[]);
    c.regex = Some("rx-.*".into());
    s.join(c);
    s.converge();
    assert_eq!(
        s.clients["a"].owned.keys().collect::<Vec<_>>(),
        vec!["rx-1"]
    );
    let epoch = s.group.data().group_epoch;
    s.topics.insert("rx-2".into(), 3);
    s.topics.insert("xrx-3".into(), 1); // not a full match
    s.converge();
    assert_eq!(s.group.data().group_epoch, epoch + 1);
    assert_eq!(s.sizes(), vec![5]);
    // Added partitions bump it too.
    s.topics.insert("rx-2".into(), 4);
    s.converge();
    assert_eq!(s.sizes(), vec![6]);
}

#[test]
fn a_loaded_group_keeps_epochs_and_assignments() {
    let mut s = Sim::new(&[("t", 4)]);
    s.join(Client::new("a", &["t"]));
    s.join(Client::new("b", &["t"]));
    s.converge();
    let json = serde_json::to_vec(s.group.data()).unwrap();
    let data: GroupData = serde_json::from_slice(&json).unwrap();
    let loaded = ConsumerGroup::from_data(data, config(), 5_000);
    assert_eq!(loaded.data(), s.group.data());
    assert_eq!(loaded.next_deadline(), Some(6_000));
    s.group = loaded;
    s.now = 5_000;
    s.converge();
    assert_eq!(s.sizes(), vec![2, 2]);
}

#[test]
fn offset_commits_check_member_epochs() {
    let mut s = Sim::new(&[("t", 2)]);
    s.join(Client::new("a", &["t"]));
    s.converge();
    let e = s.clients["a"].epoch;
    assert_eq!(s.group.validate_offset_commit("a", e), 0);
    assert_eq!(
        s.group.validate_offset_commit("a", e - 1),
        E::StaleMemberEpoch.code()
    );
    assert_eq!(
        s.group.validate_offset_commit("z", e),
        E::UnknownMemberId.code()
    );
    assert_eq!(
        s.group.validate_offset_commit("", -1),
        E::UnknownMemberId.code()
    );
    assert_eq!(s.group.validate_offset_fetch(None, -1), 0);
    assert_eq!(s.group.validate_offset_fetch(Some("a"), e), 0);
    assert_eq!(
        s.group.validate_offset_fetch(Some("a"), e + 1),
        E::StaleMemberEpoch.code()
    );
    let empty = ConsumerGroup::new("e".into(), config());
    assert_eq!(empty.validate_offset_commit("", -1), 0);
}

fn specs(list: &[(&str, &[&str])]) -> BTreeMap<String, MemberSpec> {
    list.iter()
        .map(|(m, ts)| {
            (
                m.to_string(),
                MemberSpec {
                    subscribed: ts.iter().map(|t| t.to_string()).collect(),
                    previous: Partitions::new(),
                },
            )
        })
        .collect()
}

fn load(a: &BTreeMap<String, Partitions>) -> Vec<usize> {
    let mut v: Vec<usize> = a
        .values()
        .map(|p| p.values().map(BTreeSet::len).sum())
        .collect();
    v.sort();
    v
}

#[test]
fn range_gives_contiguous_ranges_per_topic() {
    let members = specs(&[("a", &["x", "y"]), ("b", &["x", "y"])]);
    let out = assignor::range(&members, &topics(&[("x", 3), ("y", 3)]));
    assert_eq!(out["a"]["x"], BTreeSet::from([0, 1]));
    assert_eq!(out["a"]["y"], BTreeSet::from([0, 1]));
    assert_eq!(out["b"]["x"], BTreeSet::from([2]));
}

#[test]
fn uniform_balances_heterogeneous_subscriptions() {
    let members = specs(&[("a", &["x"]), ("b", &["x", "y"]), ("c", &["y"])]);
    let out = assignor::uniform(&members, &topics(&[("x", 4), ("y", 2)]));
    assert_eq!(load(&out), vec![2, 2, 2]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The uniform assignor: every partition exactly once, balanced, and
    /// sticky: a member keeps at least min(previous, quota) partitions.
    #[test]
    fn uniform_is_balanced_and_sticky(n in 0i32..40, m in 1usize..8, seed in any::<u64>()) {
        let t = topics(&[("t", n)]);
        let mut members: BTreeMap<String, MemberSpec> = (0..m)
            .map(|i| (format!("m{i}"), MemberSpec { subscribed: BTreeSet::from(["t".to_string()]), previous: Partitions::new() }))
            .collect();
        let first = assignor::uniform(&members, &t);
        // Change membership: drop one member (by seed) and add one.
        let drop = format!("m{}", seed as usize % m);
        members.remove(&drop);
        members.insert("new".into(), MemberSpec { subscribed: BTreeSet::from(["t".to_string()]), previous: Partitions::new() });
        for (id, spec) in members.iter_mut() {
            spec.previous = first.get(id).cloned().unwrap_or_default();
        }
        let second = assignor::uniform(&members, &t);
        let mut all: Vec<i32> = second.values().flat_map(|p| p.values().flatten().copied()).collect();
        all.sort();
        prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
        let l = load(&second);
        prop_assert!(l.last().copied().unwrap_or(0) - l.first().copied().unwrap_or(0) <= 1);
        let quota_floor = n as usize / members.len();
        for (id, spec) in &members {
            let prev: BTreeSet<i32> = spec.previous.get("t").cloned().unwrap_or_default();
            let now: BTreeSet<i32> = second.get(id).and_then(|p| p.get("t")).cloned().unwrap_or_default();
            let kept = prev.intersection(&now).count();
            prop_assert!(kept >= prev.len().min(quota_floor), "{id} kept {kept} of {}", prev.len());
        }
    }

    /// Any sequence of joins, leaves, subscription changes, lost heartbeats
    /// and expiries: no partition ever has two owners, and once heartbeats
    /// flow every partition is owned by exactly one member.
    #[test]
    fn reconciliation_never_double_assigns(ops in proptest::collection::vec((0u8..6, 0usize..6), 1..60)) {
        let mut s = Sim::new(&[("t", 7), ("u", 3)]);
        let mut next_id = 0;
        for (op, k) in ops {
            let ids: Vec<String> = s.clients.keys().cloned().collect();
            let pick = (!ids.is_empty()).then(|| ids[k % ids.len()].clone());
            match (op, pick) {
                (0, _) | (1, None) => {
                    next_id += 1;
                    let subs: &[&str] = if k % 2 == 0 { &["t", "u"] } else { &["t"] };
                    s.join(Client::new(&format!("c{next_id}"), subs));
                }
                (1, Some(id)) => {
                    let epoch = s.clients[&id].epoch;
                    let _ = s.group.heartbeat(Heartbeat { member_id: id.clone(), member_epoch: LEAVE_EPOCH, ..Heartbeat::default() }, &s.topics, s.now);
                    let _ = epoch;
                    s.clients.remove(&id);
                }
                (2, Some(id)) => {
                    if let Some(c) = s.clients.get_mut(&id) {
                        c.names = if c.names.len() == 2 { vec!["t".into()] } else { vec!["t".into(), "u".into()] };
                    }
                    let _ = s.heartbeat(&id);
                }
                (3, Some(id)) => { let _ = s.heartbeat(&id); }
                (4, Some(id)) => {
                    // The member goes silent until its session expires.
                    s.now += 2_000;
                    let keep: Vec<String> = s.clients.keys().filter(|c| **c != id).cloned().collect();
                    for c in &keep {
                        s.group.timers.entry(c.clone()).or_default().session_deadline = s.now + 1_000;
                    }
                    for gone in s.group.tick(s.now) {
                        s.clients.remove(&gone);
                    }
                }
                _ => { s.round(); }
            }
            s.check_no_double_ownership();
        }
        s.converge();
        if !s.clients.is_empty() {
            prop_assert!(s.all_owned_once("t"));
        }
    }
}

#[test]
fn offsets_retention_counts_from_when_the_group_became_empty() {
    let mut s = Sim::new(&[("t", 2)]);
    s.join(Client::new("a", &["t"]));
    assert_eq!(s.group.empty_since(), None);
    s.now = 10_000;
    s.heartbeat("a").unwrap();
    s.now = 20_000;
    assert_eq!(s.group.tick(s.now), vec!["a".to_string()]);
    assert_eq!(s.group.empty_since(), Some(20_000));
    let loaded = ConsumerGroup::from_data(s.group.data().clone(), config(), 99_000);
    assert_eq!(loaded.empty_since(), Some(99_000));
}

#[test]
fn a_static_member_that_does_not_come_back_is_removed_after_a_session() {
    let mut s = Sim::new(&[("t", 2)]);
    let mut a = Client::new("a", &["t"]);
    a.instance = Some("inst".into());
    s.join(a);
    s.join(Client::new("b", &["t"]));
    s.converge();
    s.now = 500;
    let leave = Heartbeat {
        member_id: "a".into(),
        member_epoch: STATIC_LEAVE_EPOCH,
        instance_id: Some("inst".into()),
        ..Heartbeat::default()
    };
    s.group.heartbeat(leave, &s.topics, s.now).unwrap();
    s.clients.remove("a");
    // b heartbeats on; a's partition stays a's for a full session.
    s.now = 1_400;
    s.round();
    assert!(s.group.tick(s.now).is_empty());
    assert_eq!(s.sizes(), vec![1]);
    s.now = 1_500;
    assert_eq!(s.group.tick(s.now), vec!["a".to_string()]);
    s.converge();
    assert_eq!(s.sizes(), vec![2]);
}

fn subscription(topics: &[&str], owned: &[(&str, &[i32])]) -> bytes::Bytes {
    let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    let owned: Partitions = owned
        .iter()
        .map(|(t, ps)| (t.to_string(), ps.iter().copied().collect()))
        .collect();
    classic::encode_subscription(&topics, &owned)
}

fn classic_join(id: &str, owned: &[(&str, &[i32])]) -> ClassicJoin {
    ClassicJoin {
        member_id: id.into(),
        instance_id: None,
        client_id: "classic".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 600,
        rebalance_timeout_ms: 5_000,
        protocols: vec![("cooperative-sticky".into(), subscription(&["t"], owned))],
    }
}

#[test]
fn a_classic_member_reconciles_by_rejoining() {
    let mut s = Sim::new(&[("t", 4)]);
    s.join(Client::new("a", &["t"]));
    s.converge();
    // A classic member joins: at once, with the member epoch as generation,
    // and nothing a still owns.
    let j = s
        .group
        .classic_join(classic_join("k", &[]), &s.topics, 0)
        .unwrap();
    assert_eq!(j.protocol, "cooperative-sticky");
    let (_, bytes) = s.group.classic_sync("k", j.generation).unwrap();
    assert_eq!(classic::decode_assignment(&bytes), Some(Partitions::new()));
    assert_eq!(
        s.group.classic_sync("k", j.generation + 1),
        Err(E::IllegalGeneration.code())
    );
    // Not at its target: its heartbeat asks it to rejoin.
    assert_eq!(
        s.group.classic_heartbeat("k", j.generation, &s.topics, 0),
        E::RebalanceInProgress.code()
    );
    // a revokes two partitions; then the classic member gets them.
    s.converge();
    let j = s
        .group
        .classic_join(classic_join("k", &[]), &s.topics, 0)
        .unwrap();
    let (_, bytes) = s.group.classic_sync("k", j.generation).unwrap();
    let got = classic::decode_assignment(&bytes).unwrap();
    assert_eq!(got.get("t").map(BTreeSet::len), Some(2));
    assert_eq!(
        s.group.classic_heartbeat("k", j.generation, &s.topics, 0),
        0
    );
    assert_eq!(s.sizes(), vec![2]);
    // Commits use the generation: a stale one is ILLEGAL_GENERATION.
    assert_eq!(s.group.validate_offset_commit("k", j.generation), 0);
    assert_eq!(
        s.group.validate_offset_commit("k", j.generation - 1),
        E::IllegalGeneration.code()
    );
    // Its own session timeout applies (600 ms), then it leaves.
    assert_eq!(s.group.classic_leave("k"), 0);
    assert_eq!(s.group.classic_leave("k"), E::UnknownMemberId.code());
}

/// A Stable classic `consumer` group at generation 7: x owns t-0/1, y t-2/3
/// (range).
fn stable_classic_group() -> crate::group::types::GroupSnapshot {
    use crate::group::types::{GroupSnapshot, GroupState, MemberSnapshot};
    let member = |id: &str, parts: &[i32]| MemberSnapshot {
        member_id: id.into(),
        group_instance_id: None,
        client_id: id.into(),
        client_host: "/h".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocols: vec![("range".into(), subscription(&["t"], &[]).to_vec())],
        assignment: classic::encode_assignment(&Partitions::from([(
            "t".to_string(),
            parts.iter().copied().collect(),
        )]))
        .to_vec(),
    };
    GroupSnapshot {
        group_id: "g".into(),
        state: GroupState::Stable,
        generation_id: 7,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        leader: Some("x".into()),
        members: vec![member("x", &[0, 1]), member("y", &[2, 3])],
        state_timestamp: 0,
    }
}

#[test]
fn a_stable_classic_group_converts_with_its_members_partitions_and_generation() {
    use crate::group::types::GroupState;
    let snap = stable_classic_group();
    let t = topics(&[("t", 4)]);
    let g = ConsumerGroup::from_classic(&snap, config(), &t, 0).unwrap();
    assert_eq!((g.data().group_epoch, g.data().assignment_epoch), (7, 7));
    assert_eq!(g.member("x").unwrap().member_epoch, 7);
    assert_eq!(
        g.member("y").unwrap().assigned,
        Partitions::from([("t".to_string(), BTreeSet::from([2, 3]))])
    );
    assert_eq!(g.state(), ConsumerGroupState::Stable);
    // Not Stable, or not the consumer protocol type: no online upgrade.
    let mut other = snap.clone();
    other.state = GroupState::PreparingRebalance;
    assert!(ConsumerGroup::from_classic(&other, config(), &t, 0).is_none());
    other = snap;
    other.protocol_type = Some("connect".into());
    assert!(ConsumerGroup::from_classic(&other, config(), &t, 0).is_none());
}

#[test]
fn the_last_consumer_member_leaving_downgrades_to_a_classic_group_that_rejoins() {
    use crate::group::state::Group;
    use crate::group::types::GroupState;
    let t = topics(&[("t", 4)]);
    let snap = stable_classic_group();
    let mut g = ConsumerGroup::from_classic(&snap, config(), &t, 0).unwrap();
    // A consumer-protocol member joins: no downgrade while it is there.
    let join = Heartbeat {
        member_id: "c".into(),
        member_epoch: 0,
        rebalance_timeout_ms: 5_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: Some(Partitions::new()),
        ..Heartbeat::default()
    };
    let r = g.heartbeat(join, &t, 0).unwrap();
    assert!(g.to_classic(0).is_none());
    let epoch = g.data().group_epoch;
    assert!(epoch > 7);
    let leave = Heartbeat {
        member_id: "c".into(),
        member_epoch: -1,
        ..Heartbeat::default()
    };
    g.heartbeat(leave, &t, 0).unwrap();
    assert_eq!(r.member_id, "c");
    let classic_snap = g.to_classic(5).expect("only classic members are left");
    assert_eq!(classic_snap.generation_id, g.data().group_epoch);
    assert_eq!(classic_snap.protocol_name.as_deref(), Some("range"));
    assert_eq!(classic_snap.state, GroupState::PreparingRebalance);
    let ids: Vec<&str> = classic_snap
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(ids, ["x", "y"]);
    // Each keeps its subscription and the partitions it owns.
    for m in &classic_snap.members {
        let (subscribed, owned) = classic::decode_subscription(&m.protocols[0].1).unwrap();
        assert_eq!(subscribed, ["t"]);
        assert_eq!(
            Some(owned),
            classic::decode_assignment(&m.assignment),
            "{}",
            m.member_id
        );
        assert_eq!(m.session_timeout_ms, 10_000);
    }
    // The classic group makes them rejoin.
    let group = Group::from_snapshot(classic_snap, Default::default(), 5);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(group.members().len(), 2);
    // No members at all: nothing to downgrade to.
    g.classic_leave("x");
    g.classic_leave("y");
    assert!(g.to_classic(6).is_none());
}
