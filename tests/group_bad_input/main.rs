//! Bad input for the group coordinator over raw protocol requests: unknown
//! groups and members, stale generations, invalid JoinGroups, oversized
//! member metadata, opaque and odd leader assignments, oversized commit
//! metadata, commits to unknown topics or partitions. Each case checks the
//! exact Kafka error code, that nothing was created by a refused request,
//! and that the coordinator is unharmed: the group under test still
//! heartbeats, commits and hands over to an rdkafka consumer, and an
//! rdkafka consumer in a fresh group joins and consumes.
//!
//! The codes are those of Kafka 3.x's classic group coordinator
//! (`core/src/main/scala/kafka/coordinator/group/GroupCoordinator.scala`);
//! where the KIP-848 coordinator (`group-coordinator/.../
//! GroupMetadataManager.java`, the default from 4.0) differs, the test says.

mod raw;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use raw::*;
use rivulet_testkit::prelude::*;

// ---- Cases ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_group_or_member_gets_kafkas_codes() {
    let (_dir, _broker, bs) = start().await;

    // A group that does not exist. Heartbeat, SyncGroup, LeaveGroup and a
    // JoinGroup with a member id answer UNKNOWN_MEMBER_ID (KIP-848's
    // coordinator too, except that LeaveGroup there fails at the top
    // level; Kafka 3.x answers per member under a top-level NONE).
    let ghost = Joined {
        member_id: "ghost-1".into(),
        generation: 1,
        leader: String::new(),
    };
    let g = "no-such-group";
    assert_eq!(heartbeat(&bs, g, "ghost-1", 1).await, UNKNOWN_MEMBER_ID);
    let r = sync(
        &bs,
        &sync_request(g, &ghost, 1, &[("ghost-1", Bytes::from_static(b"x"))]),
    )
    .await;
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
    assert_eq!(
        leave(&bs, g, &["ghost-1"]).await,
        (NONE, vec![UNKNOWN_MEMBER_ID])
    );
    let v1 = LeaveGroupRequest::default()
        .with_group_id(gid(g))
        .with_member_id(sb("ghost-1"));
    assert_eq!(raw_request(&bs, 1, &v1).await.error_code, UNKNOWN_MEMBER_ID);
    assert_eq!(
        join(&bs, &consumer_join(g, "ghost-1")).await.error_code,
        UNKNOWN_MEMBER_ID
    );
    // A commit with a generation for a group that does not exist comes
    // from an older generation: ILLEGAL_GENERATION (GROUP_ID_NOT_FOUND only
    // from OffsetCommit v9, KIP-848).
    let codes = commit(&bs, g, "ghost-1", 1, &[(ALIVE, 0, 1, None)]).await;
    assert_eq!(codes[0].1, ILLEGAL_GENERATION);
    assert_no_group(&bs, g).await;

    // A group that exists, a member id that does not.
    let g = "g-unknown-member";
    let m = stable_member(&bs, g).await;
    let gen = m.generation;
    assert_eq!(heartbeat(&bs, g, "ghost-1", gen).await, UNKNOWN_MEMBER_ID);
    assert_eq!(
        sync(&bs, &sync_request(g, &ghost, gen, &[]))
            .await
            .error_code,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        leave(&bs, g, &["ghost-1"]).await,
        (NONE, vec![UNKNOWN_MEMBER_ID])
    );
    assert_eq!(
        join(&bs, &consumer_join(g, "ghost-1")).await.error_code,
        UNKNOWN_MEMBER_ID
    );
    let codes = commit(&bs, g, "ghost-1", gen, &[(ALIVE, 0, 1, None)]).await;
    assert_eq!(codes[0].1, UNKNOWN_MEMBER_ID);
    // Nothing was committed, the member is still the only one.
    assert_eq!(committed(&bs, g, ALIVE, &[0]).await[&0].0, -1);
    let (state, members) = describe(&bs, g).await;
    assert_eq!((state.as_str(), members.len()), ("Stable", 1));
    group_still_works(&bs, g, &[m]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_generation_is_illegal_generation() {
    let (_dir, _broker, bs) = start().await;
    let g = "g-generation";
    let m = stable_member(&bs, g).await;
    let gen = m.generation;
    for stale in [gen - 1, gen + 1, -1] {
        assert_eq!(
            heartbeat(&bs, g, &m.member_id, stale).await,
            ILLEGAL_GENERATION,
            "{stale}"
        );
        let r = sync(&bs, &sync_request(g, &m, stale, &[])).await;
        assert_eq!(r.error_code, ILLEGAL_GENERATION, "{stale}");
    }
    // Every partition gets the group-level error, the one with oversized
    // metadata too (Kafka checks metadata only once the commit is allowed).
    // Both partitions exist: an unknown one is refused before the group.
    create_topic(&bs, "other", 4, &[]).await;
    let big = "x".repeat(COMMIT_METADATA_LIMIT + 1);
    let commits = [(ALIVE, 0, 2, None), ("other", 3, 2, Some(big))];
    for stale in [gen - 1, gen + 1] {
        let codes = commit(&bs, g, &m.member_id, stale, &commits).await;
        assert!(
            codes.iter().all(|(_, c)| *c == ILLEGAL_GENERATION),
            "{codes:?}"
        );
    }
    assert_eq!(committed(&bs, g, ALIVE, &[0]).await[&0].0, -1);
    group_still_works(&bs, g, &[m]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_joins_are_refused_without_creating_groups() {
    let (_dir, _broker, bs) = start().await;

    // An empty group id: INVALID_GROUP_ID for every membership API.
    let r = join(&bs, &consumer_join("", "")).await;
    assert_eq!((r.error_code, r.generation_id), (INVALID_GROUP_ID, -1));
    assert_eq!(heartbeat(&bs, "", "m", 1).await, INVALID_GROUP_ID);
    let nobody = Joined {
        member_id: "m".into(),
        generation: 1,
        leader: String::new(),
    };
    assert_eq!(
        sync(&bs, &sync_request("", &nobody, 1, &[]))
            .await
            .error_code,
        INVALID_GROUP_ID
    );
    assert_eq!(leave(&bs, "", &["m"]).await, (INVALID_GROUP_ID, vec![]));

    // Session timeout outside group.{min,max}.session.timeout.ms (6000 and
    // 1800000 by default), checked before the group is looked up.
    let g = "g-timeout";
    for (timeout, want) in [
        (5999, INVALID_SESSION_TIMEOUT),
        (1_800_001, INVALID_SESSION_TIMEOUT),
        (0, INVALID_SESSION_TIMEOUT),
        (-1, INVALID_SESSION_TIMEOUT),
    ] {
        let req = join_request(
            g,
            "",
            "consumer",
            &[("range", subscription(ALIVE))],
            timeout,
        );
        assert_eq!(
            join(&bs, &req).await.error_code,
            want,
            "session timeout {timeout}"
        );
    }
    assert_no_group(&bs, g).await;
    for edge in [6000, 1_800_000] {
        let req = join_request(g, "", "consumer", &[("range", subscription(ALIVE))], edge);
        assert_eq!(
            join(&bs, &req).await.error_code,
            MEMBER_ID_REQUIRED,
            "session timeout {edge}"
        );
    }

    // Against a Stable group of protocol type "consumer" offering "range":
    // another protocol type, no common protocol, or no protocol at all.
    let g = "g-protocol";
    let m = stable_member(&bs, g).await;
    let sub = subscription(ALIVE);
    let inconsistent = [
        join_request(g, "", "connect", &[("range", sub.clone())], SESSION_MS),
        join_request(
            g,
            "",
            "consumer",
            &[("sticky-only", sub.clone())],
            SESSION_MS,
        ),
        join_request(g, "", "consumer", &[], SESSION_MS),
        join_request(g, "", "", &[("range", sub.clone())], SESSION_MS),
        // The member itself, switching protocol type.
        join_request(
            g,
            &m.member_id,
            "connect",
            &[("range", sub.clone())],
            SESSION_MS,
        ),
    ];
    for req in &inconsistent {
        let r = join(&bs, req).await;
        assert_eq!(r.error_code, INCONSISTENT_GROUP_PROTOCOL, "{req:?}");
    }
    let (state, members) = describe(&bs, g).await;
    assert_eq!((state.as_str(), members.len()), ("Stable", 1));
    group_still_works(&bs, g, &[m]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_member_metadata_is_refused_with_invalid_request() {
    let (_dir, _broker, bs) = start().await;

    // 10 MiB of metadata: far below socket.request.max.bytes (100 MiB),
    // far above group.max.member.metadata.bytes (1 MiB).
    let g = "g-huge";
    let huge = Bytes::from(vec![0xab; 10 * 1024 * 1024]);
    let r = join(
        &bs,
        &join_request(g, "", "consumer", &[("range", huge)], SESSION_MS),
    )
    .await;
    assert_eq!(r.error_code, INVALID_REQUEST);
    assert_no_group(&bs, g).await;

    // At the edge: protocol names count, "range" is 5 bytes.
    let g = "g-edge";
    let at_limit = Bytes::from(vec![0xcd; METADATA_LIMIT - "range".len()]);
    let over = Bytes::from(vec![0xcd; METADATA_LIMIT - "range".len() + 1]);
    let r = join(
        &bs,
        &join_request(g, "", "consumer", &[("range", over.clone())], SESSION_MS),
    )
    .await;
    assert_eq!(r.error_code, INVALID_REQUEST);
    let half = Bytes::from(vec![0xcd; METADATA_LIMIT / 2]);
    let split = [("range", half.clone()), ("roundrobin", half)];
    let r = join(&bs, &join_request(g, "", "consumer", &split, SESSION_MS)).await;
    assert_eq!(
        r.error_code, INVALID_REQUEST,
        "the sum over protocols counts"
    );
    assert_no_group(&bs, g).await;

    let first = join(
        &bs,
        &join_request(
            g,
            "",
            "consumer",
            &[("range", at_limit.clone())],
            SESSION_MS,
        ),
    )
    .await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let id = first.member_id.to_string();
    let joined = join(
        &bs,
        &join_request(
            g,
            &id,
            "consumer",
            &[("range", at_limit.clone())],
            SESSION_MS,
        ),
    )
    .await;
    assert_eq!(joined.error_code, NONE);
    assert_eq!(joined.members.len(), 1);
    assert_eq!(
        joined.members[0].metadata, at_limit,
        "the leader gets the metadata"
    );
    let m = Joined {
        member_id: id.clone(),
        generation: joined.generation_id,
        leader: joined.leader.to_string(),
    };
    assert_eq!(
        sync(&bs, &sync_request(g, &m, m.generation, &[]))
            .await
            .error_code,
        NONE
    );
    // An oversized rejoin of the member is refused; the member stays.
    let r = join(
        &bs,
        &join_request(g, &id, "consumer", &[("range", over)], SESSION_MS),
    )
    .await;
    assert_eq!(r.error_code, INVALID_REQUEST);
    let (state, members) = describe(&bs, g).await;
    assert_eq!((state.as_str(), members.len()), ("Stable", 1));
    group_still_works(&bs, g, &[m]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_assignment_bytes_pass_through_opaquely() {
    let (_dir, _broker, bs) = start().await;
    let g = "g-opaque";
    let members = join_members(&bs, g, 3).await;
    let (leader, follower, left_out) = (&members[0], &members[1], &members[2]);
    // Not a ConsumerProtocolAssignment at all: the coordinator must not
    // parse it (Kafka stores assignments as opaque bytes).
    let mut seed = 0x9e37_79b9_u32;
    let garbage: Bytes = (0..64 * 1024)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        })
        .collect();
    let leader_bytes = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x00]);
    let assignments = [
        (follower.member_id.as_str(), garbage.clone()),
        (leader.member_id.as_str(), leader_bytes.clone()),
        // A member that does not exist is ignored; one left out (the third
        // member) gets an empty assignment.
        ("ghost-member", Bytes::from_static(b"for nobody")),
    ];
    let gen = leader.generation;
    // The follower syncs first and waits for the leader.
    let follower_sync = sync_request(g, follower, gen, &[]);
    let leader_sync = sync_request(g, leader, gen, &assignments);
    let (f, l) = tokio::join!(sync(&bs, &follower_sync), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sync(&bs, &leader_sync).await
    });
    assert_eq!(
        (l.error_code, l.assignment.clone()),
        (NONE, leader_bytes.clone())
    );
    assert_eq!(f.error_code, NONE);
    assert_eq!(
        f.assignment, garbage,
        "the follower gets the leader's bytes exactly"
    );
    let r = sync(&bs, &sync_request(g, left_out, gen, &[])).await;
    assert_eq!((r.error_code, r.assignment.len()), (NONE, 0));

    let (state, described) = describe(&bs, g).await;
    assert_eq!(state, "Stable");
    let want: BTreeMap<String, Bytes> = [
        (leader.member_id.clone(), leader_bytes),
        (follower.member_id.clone(), garbage),
        (left_out.member_id.clone(), Bytes::new()),
    ]
    .into_iter()
    .collect();
    assert_eq!(described, want, "no ghost member, assignments as sent");
    group_still_works(&bs, g, &members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_commit_metadata_fails_only_its_partition() {
    let (_dir, _broker, bs) = start().await;
    create_topic(&bs, "meta", 3, &[]).await;
    let g = "g-commit-metadata";
    let m = stable_member(&bs, g).await;
    let at_limit = "y".repeat(COMMIT_METADATA_LIMIT);
    let commits = [
        ("meta", 0, 5, Some("x".repeat(COMMIT_METADATA_LIMIT + 1))),
        ("meta", 1, 6, Some(at_limit.clone())),
        ("meta", 2, 7, None),
        (ALIVE, 0, 2, Some("small".to_string())),
    ];
    let codes = commit(&bs, g, &m.member_id, m.generation, &commits).await;
    let codes: Vec<i16> = codes.into_iter().map(|(_, c)| c).collect();
    assert_eq!(codes, vec![OFFSET_METADATA_TOO_LARGE, NONE, NONE, NONE]);
    let got = committed(&bs, g, "meta", &[0, 1, 2]).await;
    assert_eq!(
        got[&0],
        (-1, String::new()),
        "the oversized commit is not stored"
    );
    assert_eq!(got[&1], (6, at_limit));
    assert_eq!(got[&2], (7, String::new()));
    assert_eq!(
        committed(&bs, g, ALIVE, &[0]).await[&0],
        (2, "small".to_string())
    );

    // A simple consumer's commit (no generation, group not managed) gets
    // the same per-partition treatment.
    let simple = "g-simple-commit";
    let commits = [
        ("meta", 0, 9, Some("z".repeat(10 * COMMIT_METADATA_LIMIT))),
        ("meta", 1, 9, None),
    ];
    let codes = commit(&bs, simple, "", -1, &commits).await;
    let codes: Vec<i16> = codes.into_iter().map(|(_, c)| c).collect();
    assert_eq!(codes, vec![OFFSET_METADATA_TOO_LARGE, NONE]);
    let got = committed(&bs, simple, "meta", &[0, 1]).await;
    assert_eq!((got[&0].0, got[&1].0), (-1, 9));
    group_still_works(&bs, g, &[m]).await;
}

/// Kafka's `handleOffsetCommitRequest` checks the metadata image before the
/// coordinator: a missing topic or a partition beyond the topic's count is
/// UNKNOWN_TOPIC_OR_PARTITION and not stored, and a request with nothing
/// else never reaches the coordinator (no group error, no group created).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_to_unknown_topics_or_partitions_are_not_stored() {
    let (_dir, _broker, bs) = start().await;
    let (g, missing) = ("g-commit-unknown", "no-such-topic");
    let m = stable_member(&bs, g).await;
    let commits = [
        (ALIVE, 0, 2, None),
        (ALIVE, 1, 3, None),
        (missing, 0, 4, None),
    ];
    let codes = commit(&bs, g, &m.member_id, m.generation, &commits).await;
    let codes: Vec<i16> = codes.into_iter().map(|(_, c)| c).collect();
    let unknown = UNKNOWN_TOPIC_OR_PARTITION;
    assert_eq!(codes, vec![NONE, unknown, unknown]);
    let got = committed(&bs, g, ALIVE, &[0, 1]).await;
    assert_eq!((got[&0].0, got[&1].0), (2, -1));
    assert_eq!(committed(&bs, g, missing, &[0]).await[&0].0, -1);

    // Only unknown partitions: not even a stale generation is looked at.
    let stale = commit(
        &bs,
        g,
        &m.member_id,
        m.generation + 1,
        &[(missing, 0, 5, None)],
    )
    .await;
    assert_eq!(stale[0].1, unknown);
    let simple = "g-simple-unknown";
    let codes = commit(
        &bs,
        simple,
        "",
        -1,
        &[(missing, 1, 6, None), (ALIVE, 9, 6, None)],
    )
    .await;
    assert_eq!((codes[0].1, codes[1].1), (unknown, unknown));
    assert_no_group(&bs, simple).await;
    assert_eq!(committed(&bs, simple, missing, &[1]).await[&1].0, -1);
    group_still_works(&bs, g, &[m]).await;
}
