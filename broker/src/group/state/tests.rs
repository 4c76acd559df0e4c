//! Tests of the classic group state machine: explicit times, sequential
//! member ids (`{client or instance id}-{n}`), no sockets or sleeps.

use bytes::Bytes;
use kafka_protocol::ResponseError as E;

use super::*;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn group_with(config: GroupConfig) -> Group {
    Group::new("g".into(), config, 0).with_member_ids(Box::new(SequentialMemberIds::default()))
}

fn group() -> Group {
    group_with(GroupConfig::default())
}

fn join_req_with(member_id: &str, client_id: &str, protocols: &[(&str, &str)]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: client_id.into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|(name, meta)| (name.to_string(), Bytes::copy_from_slice(meta.as_bytes())))
            .collect(),
        require_known_member_id: false,
        supports_skip_assignment: true,
        reason: None,
    }
}

/// A dynamic member offering `range` with metadata `meta-{client}`.
fn join_req(member_id: &str, client_id: &str) -> JoinRequest {
    let meta = format!("meta-{client_id}");
    join_req_with(member_id, client_id, &[("range", &meta)])
}

fn static_req(member_id: &str, client_id: &str, instance: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.into()),
        ..join_req(member_id, client_id)
    }
}

fn sync_req(member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        generation_id,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a.as_bytes())))
            .collect(),
    }
}

fn join_of(out: &[Output], token: RequestToken) -> JoinResult {
    out.iter()
        .find_map(|o| match o {
            Output::Join { token: t, result } if *t == token => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no JoinGroup answer for token {token} in {out:?}"))
}

fn sync_of(out: &[Output], token: RequestToken) -> SyncResult {
    out.iter()
        .find_map(|o| match o {
            Output::Sync { token: t, result } if *t == token => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no SyncGroup answer for token {token} in {out:?}"))
}

fn member_ids(g: &Group) -> Vec<String> {
    g.members().into_iter().map(|m| m.member_id).collect()
}

/// Tick at each deadline until the join phase completes; the outputs.
fn run_join_phase(g: &mut Group) -> Vec<Output> {
    let mut out = Vec::new();
    while g.state() == GroupState::PreparingRebalance {
        let Some(at) = g.next_deadline() else { break };
        out.extend(g.tick(at));
    }
    out
}

/// Joins `reqs` at t=0 (tokens 1..), completes the join phase and syncs
/// every member at t=1000 with assignment `assign-{member id}`: a Stable
/// group of generation 1. Returns the member ids in join order.
fn stable_group_of(g: &mut Group, reqs: Vec<JoinRequest>) -> Vec<String> {
    for (token, req) in (1..).zip(reqs) {
        assert!(g.join(token, req, 0).is_empty());
    }
    run_join_phase(g);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let ids = member_ids(g);
    let assignments: Vec<(String, String)> = ids
        .iter()
        .map(|id| (id.clone(), format!("assign-{id}")))
        .collect();
    let assignments: Vec<(&str, &str)> = assignments
        .iter()
        .map(|(m, a)| (m.as_str(), a.as_str()))
        .collect();
    let leader = g.leader().map(str::to_string).unwrap_or_default();
    for (token, id) in (100..).zip(&ids) {
        if *id != leader {
            assert!(g.sync(token, sync_req(id, 1, &[]), 1000).is_empty());
        }
    }
    g.sync(99, sync_req(&leader, 1, &assignments), 1000);
    assert_eq!(g.state(), GroupState::Stable);
    ids
}

fn stable_group(clients: &[&str]) -> (Group, Vec<String>) {
    let mut g = group();
    let ids = stable_group_of(&mut g, clients.iter().map(|c| join_req("", c)).collect());
    (g, ids)
}

#[test]
fn two_members_join_one_generation_and_leader_gets_all_metadata() {
    let mut g = group();
    assert!(g.join(1, join_req("", "a"), 0).is_empty());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert!(g.join(2, join_req("", "b"), 50).is_empty());
    // A member arrived during the initial delay: wait one more delay.
    assert!(g.tick(100).is_empty());
    assert_eq!(g.next_deadline(), Some(200));
    let out = g.tick(200);
    assert_eq!(out.first(), Some(&Output::Persist));
    let (a, b) = (join_of(&out, 1), join_of(&out, 2));
    assert_eq!(
        (a.error_code, a.generation_id, a.member_id.as_str()),
        (0, 1, "a-1")
    );
    assert_eq!(
        (b.error_code, b.generation_id, b.member_id.as_str()),
        (0, 1, "b-2")
    );
    assert_eq!((a.leader.as_str(), b.leader.as_str()), ("a-1", "a-1"));
    assert_eq!(a.protocol_name.as_deref(), Some("range"));
    let metadata: Vec<(&str, &[u8])> = a
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), m.metadata.as_ref()))
        .collect();
    assert_eq!(
        metadata,
        vec![("a-1", &b"meta-a"[..]), ("b-2", &b"meta-b"[..])]
    );
    assert!(b.members.is_empty());
    assert_eq!(g.state(), GroupState::CompletingRebalance);

    // The follower's SyncGroup waits for the leader's assignment.
    assert!(g.sync(4, sync_req("b-2", 1, &[]), 210).is_empty());
    let out = g.sync(3, sync_req("a-1", 1, &[("a-1", "A"), ("b-2", "B")]), 220);
    assert_eq!(out.first(), Some(&Output::Persist));
    assert_eq!(sync_of(&out, 3).assignment, Bytes::from_static(b"A"));
    assert_eq!(sync_of(&out, 4).assignment, Bytes::from_static(b"B"));
    assert_eq!(sync_of(&out, 4).protocol_name.as_deref(), Some("range"));
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn first_join_waits_the_initial_delay_not_the_session_timeout() {
    let mut g = group();
    let req = JoinRequest {
        session_timeout_ms: 45_000,
        ..join_req("", "a")
    };
    assert!(g.join(1, req, 0).is_empty());
    assert_eq!(g.next_deadline(), Some(100));
    assert_eq!(join_of(&g.tick(100), 1).generation_id, 1);
}

#[test]
fn initial_delay_extends_while_members_join_up_to_the_rebalance_timeout() {
    let mut g = group();
    let req = |client| JoinRequest {
        rebalance_timeout_ms: 250,
        ..join_req("", client)
    };
    g.join(1, req("a"), 0);
    g.join(2, req("b"), 50);
    assert!(g.tick(100).is_empty());
    g.join(3, req("c"), 150);
    assert!(g.tick(200).is_empty());
    assert_eq!(
        g.next_deadline(),
        Some(250),
        "only 50 ms of the rebalance timeout left"
    );
    g.join(4, req("d"), 220);
    let out = g.tick(250);
    assert_eq!(join_of(&out, 4).generation_id, 1);
    assert_eq!(g.members().len(), 4);
}

#[test]
fn member_id_required_then_rejoin_with_the_assigned_id() {
    let mut g = group();
    let first = JoinRequest {
        require_known_member_id: true,
        supports_skip_assignment: true,
        ..join_req("", "a")
    };
    let r = join_of(&g.join(1, first.clone(), 0), 1);
    assert_eq!(
        (r.error_code, r.member_id.as_str()),
        (E::MemberIdRequired.code(), "a-1")
    );
    assert_eq!(g.state(), GroupState::Empty);
    assert!(g.members().is_empty());
    assert_eq!(g.next_deadline(), Some(i64::from(SESSION)));

    let again = JoinRequest {
        member_id: "a-1".into(),
        ..first
    };
    assert!(g.join(2, again, 10).is_empty());
    let r = join_of(&g.tick(110), 2);
    assert_eq!(
        (r.error_code, r.member_id.as_str(), r.generation_id),
        (0, "a-1", 1)
    );
}

#[test]
fn assigned_member_id_expires_after_the_session_timeout() {
    let mut g = group();
    let first = JoinRequest {
        require_known_member_id: true,
        supports_skip_assignment: true,
        ..join_req("", "a")
    };
    g.join(1, first.clone(), 0);
    assert!(g.tick(i64::from(SESSION)).is_empty());
    assert_eq!(g.next_deadline(), None);
    let again = JoinRequest {
        member_id: "a-1".into(),
        ..first
    };
    let r = join_of(&g.join(2, again, i64::from(SESSION) + 1), 2);
    assert_eq!(r.error_code, E::UnknownMemberId.code());
}

#[test]
fn new_member_in_stable_group_triggers_rebalance_reported_by_heartbeats() {
    let (mut g, ids) = stable_group(&["a", "b"]);
    let (a, b) = (&ids[0], &ids[1]);
    assert!(g.join(10, join_req("", "c"), 2000).is_empty());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.heartbeat(a, None, 1, 2001), E::RebalanceInProgress.code());
    assert!(g.join(11, join_req(a, "a"), 2002).is_empty());
    assert_eq!(g.heartbeat(b, None, 1, 2003), E::RebalanceInProgress.code());
    // The last member to rejoin completes the join phase at once.
    let out = g.join(12, join_req(b, "b"), 2004);
    let results = [join_of(&out, 10), join_of(&out, 11), join_of(&out, 12)];
    assert!(results
        .iter()
        .all(|r| r.error_code == 0 && r.generation_id == 2));
    assert_eq!(
        results[1].members.len(),
        3,
        "the leader sees all three members"
    );
    assert_eq!(g.heartbeat(a, None, 2, 2005), 0);
    assert_eq!(g.heartbeat(a, None, 1, 2005), E::IllegalGeneration.code());
}

#[test]
fn member_that_stops_heartbeating_expires_and_the_rest_rebalance() {
    let (mut g, ids) = stable_group(&["a", "b"]);
    let (a, b) = (&ids[0], &ids[1]);
    let synced = 1000;
    assert_eq!(g.heartbeat(a, None, 1, synced + 5000), 0);
    assert!(g.tick(synced + i64::from(SESSION) - 1).is_empty());
    g.tick(synced + i64::from(SESSION));
    assert_eq!(member_ids(&g), vec![a.clone()]);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.heartbeat(b, None, 1, 11_001), E::UnknownMemberId.code());
    let r = join_of(&g.join(20, join_req(a, "a"), 11_002), 20);
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
}

#[test]
fn leave_triggers_rebalance() {
    let (mut g, ids) = stable_group(&["a", "b"]);
    let (codes, out) = g.leave(&[(ids[1].clone(), None)], 2000);
    assert_eq!(codes, vec![0]);
    assert!(out.is_empty());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat(&ids[0], None, 1, 2001),
        E::RebalanceInProgress.code()
    );
    let r = join_of(&g.join(20, join_req(&ids[0], "a"), 2002), 20);
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
}

#[test]
fn last_member_leaving_empties_the_group_and_bumps_the_generation() {
    let (mut g, ids) = stable_group(&["a"]);
    let (codes, out) = g.leave(&[(ids[0].clone(), None)], 2000);
    assert_eq!(codes, vec![0]);
    assert_eq!(out, vec![Output::Persist]);
    assert_eq!(g.state(), GroupState::Empty);
    assert!(g.is_empty());
    assert_eq!(g.generation_id(), 2);
    assert_eq!((g.leader(), g.protocol_name()), (None, None));
    assert_eq!(g.next_deadline(), None);
}

#[test]
fn leave_by_instance_id_removes_the_static_member() {
    let mut g = group();
    let ids = stable_group_of(&mut g, vec![static_req("", "a", "ia"), join_req("", "b")]);
    let leaving = [
        (String::new(), Some("ia".to_string())),
        (String::new(), Some("nope".into())),
    ];
    let (codes, _) = g.leave(&leaving, 2000);
    assert_eq!(codes, vec![0, E::UnknownMemberId.code()]);
    assert_eq!(member_ids(&g), vec![ids[1].clone()]);
    assert_eq!(
        g.leader(),
        Some(ids[1].as_str()),
        "leadership passes on at once"
    );
}

#[test]
fn static_member_restart_keeps_assignment_without_rebalance() {
    let mut g = group();
    let ids = stable_group_of(&mut g, vec![static_req("", "a", "ia"), join_req("", "b")]);
    assert_eq!(ids, vec!["ia-1".to_string(), "b-2".to_string()]);

    let out = g.join(5, static_req("", "a", "ia"), 4000);
    assert_eq!(out.first(), Some(&Output::Persist));
    let r = join_of(&out, 5);
    assert_eq!(
        (r.error_code, r.member_id.as_str(), r.generation_id),
        (0, "ia-3", 1)
    );
    assert_eq!(r.leader, "ia-3");
    assert!(
        r.skip_assignment,
        "KIP-814: the static leader keeps the current assignment"
    );
    assert_eq!(r.members.len(), 2);
    assert_eq!((g.state(), g.generation_id()), (GroupState::Stable, 1));

    assert_eq!(
        g.heartbeat("ia-1", Some("ia"), 1, 4001),
        E::FencedInstanceId.code()
    );
    assert_eq!(g.heartbeat("ia-3", Some("ia"), 1, 4001), 0);
    assert_eq!(g.heartbeat("b-2", None, 1, 4001), 0);
    let sync = SyncRequest {
        group_instance_id: Some("ia".into()),
        ..sync_req("ia-3", 1, &[])
    };
    let r = sync_of(&g.sync(6, sync, 4002), 6);
    assert_eq!(
        (r.error_code, r.assignment),
        (0, Bytes::from("assign-ia-1"))
    );
}

#[test]
fn static_follower_restart_is_answered_without_member_metadata() {
    let mut g = group();
    stable_group_of(&mut g, vec![join_req("", "a"), static_req("", "b", "ib")]);
    let r = join_of(&g.join(5, static_req("", "b", "ib"), 4000), 5);
    assert_eq!((r.member_id.as_str(), r.leader.as_str()), ("ib-3", "a-1"));
    assert!(!r.skip_assignment && r.members.is_empty());
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn static_member_restart_during_rebalance_fences_the_parked_join() {
    let mut g = group();
    let ids = stable_group_of(&mut g, vec![static_req("", "a", "ia"), join_req("", "b")]);
    assert!(g.join(10, join_req("", "c"), 2000).is_empty());
    assert!(g.join(11, static_req(&ids[0], "a", "ia"), 2001).is_empty());
    let out = g.join(12, static_req("", "a", "ia"), 2002);
    let fenced = join_of(&out, 11);
    assert_eq!(
        (fenced.error_code, fenced.member_id.as_str()),
        (E::FencedInstanceId.code(), "ia-1")
    );
    let out = g.join(13, join_req(&ids[1], "b"), 2003);
    assert_eq!(join_of(&out, 12).member_id, "ia-4");
    assert_eq!(join_of(&out, 12).generation_id, 2);
}

#[test]
fn protocol_selection_takes_most_votes_among_protocols_all_support() {
    let mut g = group();
    let a = join_req_with("", "a", &[("range", "ra"), ("roundrobin", "rra")]);
    let b = join_req_with("", "b", &[("roundrobin", "rrb"), ("range", "rb")]);
    let c = join_req_with(
        "",
        "c",
        &[("sticky", "sc"), ("roundrobin", "rrc"), ("range", "rc")],
    );
    g.join(1, a, 0);
    g.join(2, b, 0);
    g.join(3, c, 0);
    let leader = join_of(&run_join_phase(&mut g), 1);
    // sticky is not supported by all; roundrobin gets b's and c's votes.
    assert_eq!(leader.protocol_name.as_deref(), Some("roundrobin"));
    let metadata: Vec<&[u8]> = leader.members.iter().map(|m| m.metadata.as_ref()).collect();
    assert_eq!(metadata, vec![&b"rra"[..], b"rrb", b"rrc"]);

    let d = join_req_with("", "d", &[("sticky", "sd")]);
    let r = join_of(&g.join(4, d, 300), 4);
    assert_eq!(
        (r.error_code, r.member_id.as_str()),
        (E::InconsistentGroupProtocol.code(), "")
    );
}

#[test]
fn inconsistent_protocol_type_is_rejected() {
    let (mut g, ids) = stable_group(&["a"]);
    let connect = JoinRequest {
        protocol_type: "connect".into(),
        ..join_req("", "x")
    };
    let r = join_of(&g.join(5, connect, 2000), 5);
    assert_eq!(r.error_code, E::InconsistentGroupProtocol.code());
    let no_protocols = JoinRequest {
        protocols: Vec::new(),
        ..join_req("", "y")
    };
    let r = join_of(&group().join(6, no_protocols, 0), 6);
    assert_eq!(r.error_code, E::InconsistentGroupProtocol.code());

    let wrong_name = SyncRequest {
        protocol_name: Some("roundrobin".into()),
        ..sync_req(&ids[0], 1, &[])
    };
    assert_eq!(
        sync_of(&g.sync(7, wrong_name, 2001), 7).error_code,
        E::InconsistentGroupProtocol.code()
    );
    let unnamed = SyncRequest {
        protocol_type: None,
        protocol_name: None,
        ..sync_req(&ids[0], 1, &[])
    };
    assert_eq!(sync_of(&g.sync(8, unnamed, 2002), 8).error_code, 0);
}

#[test]
fn stale_generation_and_unknown_members_are_rejected() {
    let (mut g, ids) = stable_group(&["a"]);
    let a = &ids[0];
    assert_eq!(g.heartbeat(a, None, 0, 2000), E::IllegalGeneration.code());
    assert_eq!(
        sync_of(&g.sync(5, sync_req(a, 0, &[]), 2000), 5).error_code,
        E::IllegalGeneration.code()
    );
    assert_eq!(
        g.validate_offset_commit(a, None, 0),
        E::IllegalGeneration.code()
    );
    assert_eq!(g.validate_offset_commit(a, None, 1), 0);
    assert_eq!(
        g.heartbeat("ghost", None, 1, 2000),
        E::UnknownMemberId.code()
    );
    assert_eq!(
        g.validate_offset_commit("ghost", None, 1),
        E::UnknownMemberId.code()
    );
    assert_eq!(
        g.validate_offset_commit(a, Some("not-mine"), 1),
        E::UnknownMemberId.code()
    );
}

#[test]
fn commits_wait_for_the_assignment_but_not_for_a_pending_rebalance() {
    let (mut g, ids) = stable_group(&["a", "b"]);
    g.join(10, join_req(&ids[0], "a"), 2000);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.validate_offset_commit(&ids[1], None, 1), 0);
    g.join(11, join_req(&ids[1], "b"), 2001);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(
        g.validate_offset_commit(&ids[1], None, 2),
        E::RebalanceInProgress.code()
    );
}

#[test]
fn simple_consumer_commit_is_allowed_only_while_the_group_is_empty() {
    let mut g = group();
    assert_eq!(g.validate_offset_commit("", None, -1), 0);
    let ids = stable_group_of(&mut g, vec![join_req("", "a")]);
    assert_eq!(
        g.validate_offset_commit("", None, -1),
        E::UnknownMemberId.code()
    );
    g.leave(&[(ids[0].clone(), None)], 2000);
    assert_eq!(g.validate_offset_commit("", None, -1), 0);
    g.mark_dead();
    assert_eq!(
        g.validate_offset_commit("", None, -1),
        E::CoordinatorNotAvailable.code()
    );
}

#[test]
fn rebalance_timeout_removes_members_that_did_not_rejoin() {
    let (mut g, ids) = stable_group(&["a", "b"]);
    let (a, b) = (&ids[0], &ids[1]);
    g.join(10, join_req("", "c"), 2000);
    g.join(11, join_req(a, "a"), 2001);
    for t in [5000, 15_000, 25_000] {
        assert_eq!(g.heartbeat(b, None, 1, t), E::RebalanceInProgress.code());
    }
    assert!(g.tick(2000 + i64::from(REBALANCE) - 1).is_empty());
    let out = g.tick(2000 + i64::from(REBALANCE));
    assert_eq!(join_of(&out, 11).generation_id, 2);
    assert_eq!(member_ids(&g), vec![a.clone(), "c-3".to_string()]);
    assert_eq!(g.heartbeat(b, None, 1, 32_001), E::UnknownMemberId.code());
}

#[test]
fn member_expiring_while_completing_rebalance_restarts_the_join_phase() {
    let mut g = group();
    for (token, c) in [(1, "a"), (2, "b"), (3, "c")] {
        g.join(token, join_req("", c), 0);
    }
    run_join_phase(&mut g);
    let done = 200;
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert!(g.sync(5, sync_req("b-2", 1, &[]), done + 1).is_empty());
    assert_eq!(g.heartbeat("a-1", None, 1, done + 5000), 0);
    let out = g.tick(done + i64::from(SESSION));
    assert_eq!(sync_of(&out, 5).error_code, E::RebalanceInProgress.code());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(member_ids(&g), vec!["a-1".to_string(), "b-2".to_string()]);
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let mut g = group();
    g.join(1, join_req("", "a"), 0);
    g.join(2, join_req("", "b"), 0);
    run_join_phase(&mut g);
    let done = 200;
    g.sync(3, sync_req("a-1", 1, &[("a-1", "A"), ("b-2", "B")]), done);
    for t in [done + 5000, done + 15_000, done + 25_000] {
        assert_eq!(g.heartbeat("b-2", None, 1, t), 0);
        assert_eq!(g.heartbeat("a-1", None, 1, t), 0);
    }
    g.tick(done + i64::from(REBALANCE));
    assert_eq!(member_ids(&g), vec!["a-1".to_string()]);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn leader_that_leaves_is_replaced_at_the_next_rebalance() {
    let (mut g, ids) = stable_group(&["a", "b"]);
    g.leave(&[(ids[0].clone(), None)], 2000);
    let r = join_of(&g.join(10, join_req(&ids[1], "b"), 2001), 10);
    assert_eq!((r.leader.as_str(), r.members.len()), (ids[1].as_str(), 1));
}

#[test]
fn session_timeout_outside_the_configured_range_is_rejected() {
    let mut g = group();
    for session_timeout_ms in [5999, 1_800_001] {
        let req = JoinRequest {
            session_timeout_ms,
            ..join_req("", "a")
        };
        assert_eq!(
            join_of(&g.join(1, req, 0), 1).error_code,
            E::InvalidSessionTimeout.code()
        );
    }
    assert_eq!(g.state(), GroupState::Empty);
}

#[test]
fn member_metadata_over_the_limit_is_rejected_and_names_count_too() {
    let config = GroupConfig {
        max_member_metadata_bytes: 100,
        ..GroupConfig::default()
    };
    let mut g = group_with(config);
    // "range" (5 bytes) + 95 bytes of metadata is exactly the limit.
    let (at_limit, over) = ("m".repeat(95), "m".repeat(96));
    let r = join_of(
        &g.join(1, join_req_with("", "a", &[("range", &over)]), 0),
        1,
    );
    assert_eq!(r.error_code, E::InvalidRequest.code());
    // Spread over two protocols (52 + 49 bytes), the sum counts.
    let half = "m".repeat(47);
    let split = [("range", half.as_str()), ("rr", half.as_str())];
    let r = join_of(&g.join(2, join_req_with("", "a", &split), 0), 2);
    assert_eq!(r.error_code, E::InvalidRequest.code());
    assert!(g.members().is_empty());
    assert_eq!(g.state(), GroupState::Empty);

    assert!(g
        .join(3, join_req_with("", "a", &[("range", &at_limit)]), 0)
        .is_empty());
    assert_eq!(member_ids(&g), vec!["a-1"]);
    // An oversized rejoin is refused; the parked join and member stay.
    let r = join_of(
        &g.join(4, join_req_with("a-1", "a", &[("range", &over)]), 0),
        4,
    );
    assert_eq!(r.error_code, E::InvalidRequest.code());
    assert_eq!(g.parked_tokens(), vec![3]);
    let r = join_of(&run_join_phase(&mut g), 3);
    assert_eq!((r.error_code, r.members.len()), (0, 1));
}

#[test]
fn full_group_rejects_new_members() {
    let config = GroupConfig {
        max_members: 2,
        ..GroupConfig::default()
    };
    let mut g = group_with(config);
    stable_group_of(&mut g, vec![join_req("", "a"), join_req("", "b")]);
    let r = join_of(&g.join(5, join_req("", "c"), 2000), 5);
    assert_eq!(
        (r.error_code, r.member_id.as_str()),
        (E::GroupMaxSizeReached.code(), "")
    );
    let known = JoinRequest {
        require_known_member_id: true,
        supports_skip_assignment: true,
        ..join_req("", "d")
    };
    assert_eq!(
        join_of(&g.join(6, known, 2000), 6).error_code,
        E::GroupMaxSizeReached.code()
    );
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn snapshot_round_trip_keeps_generation_members_and_assignments() {
    let mut g = group();
    let ids = stable_group_of(&mut g, vec![static_req("", "a", "ia"), join_req("", "b")]);
    let snap = g.snapshot();
    let mut restored = Group::from_snapshot(snap.clone(), GroupConfig::default(), 50_000);
    assert_eq!(restored.snapshot(), snap);
    assert_eq!(restored.next_deadline(), Some(50_000 + i64::from(SESSION)));
    assert_eq!(restored.heartbeat(&ids[0], Some("ia"), 1, 50_001), 0);
    let r = sync_of(&restored.sync(7, sync_req(&ids[1], 1, &[]), 50_002), 7);
    assert_eq!(r.assignment, Bytes::from(format!("assign-{}", ids[1])));
}

#[test]
fn snapshot_taken_mid_rebalance_restarts_the_rebalance() {
    let mut g = group();
    g.join(1, join_req("", "a"), 0);
    g.join(2, join_req("", "b"), 0);
    run_join_phase(&mut g);
    let snap = g.snapshot();
    assert_eq!(snap.state, GroupState::CompletingRebalance);
    let mut restored = Group::from_snapshot(snap, GroupConfig::default(), 50_000);
    assert_eq!(restored.state(), GroupState::PreparingRebalance);
    assert_eq!(
        restored.heartbeat("a-1", None, 1, 50_001),
        E::RebalanceInProgress.code()
    );
    restored.join(3, join_req("a-1", "a"), 50_002);
    let r = join_of(&restored.join(4, join_req("b-2", "b"), 50_003), 4);
    assert_eq!(r.generation_id, 2);
}

#[test]
fn mark_dead_answers_parked_requests_with_not_coordinator() {
    let mut g = group();
    g.join(1, join_req("", "a"), 0);
    g.join(2, join_req("", "b"), 0);
    let out = g.mark_dead();
    assert_eq!(join_of(&out, 1).error_code, E::NotCoordinator.code());
    assert_eq!(join_of(&out, 2).error_code, E::NotCoordinator.code());
    assert_eq!(g.state(), GroupState::Dead);
    assert_eq!(g.next_deadline(), None);
    assert!(g.tick(1_000_000).is_empty());
    assert_eq!(
        g.heartbeat("a-1", None, 0, 1),
        E::CoordinatorNotAvailable.code()
    );
    let r = join_of(&g.join(3, join_req("", "c"), 1), 3);
    assert_eq!(r.error_code, E::CoordinatorNotAvailable.code());
}

#[test]
fn retried_join_supersedes_the_parked_one() {
    let (mut g, ids) = stable_group(&["a", "b"]);
    assert!(g.join(10, join_req(&ids[0], "a"), 2000).is_empty());
    let out = g.join(11, join_req(&ids[0], "a"), 2001);
    assert_eq!(join_of(&out, 10).error_code, E::RebalanceInProgress.code());
    assert_eq!(g.parked_tokens(), vec![11]);
}

mod events;

#[test]
fn txn_offset_commit_checks_members_only_when_given_and_ignores_the_rebalance() {
    let (mut g, ids) = stable_group(&["a", "b"]);
    let a = &ids[0];
    // v0–v2 carry no member credentials: accepted though the group has
    // members (OffsetCommit would answer UNKNOWN_MEMBER_ID).
    assert_eq!(g.validate_txn_offset_commit("", None, -1), 0);
    assert_eq!(
        g.validate_offset_commit("", None, -1),
        E::UnknownMemberId.code()
    );
    // v3 (KIP-447): checked as OffsetCommit's.
    assert_eq!(g.validate_txn_offset_commit(a, None, 1), 0);
    assert_eq!(
        g.validate_txn_offset_commit(a, None, 0),
        E::IllegalGeneration.code()
    );
    assert_eq!(
        g.validate_txn_offset_commit("ghost", None, 1),
        E::UnknownMemberId.code()
    );
    // CompletingRebalance is not enforced for transactional commits.
    g.join(10, join_req(&ids[0], "a"), 2000);
    g.join(11, join_req(&ids[1], "b"), 2001);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(g.validate_txn_offset_commit(a, None, 2), 0);
    assert_eq!(
        g.validate_offset_commit(a, None, 2),
        E::RebalanceInProgress.code()
    );
}
