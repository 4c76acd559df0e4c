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

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use futures_util::future::join_all;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

// Kafka error codes (`org.apache.kafka.common.protocol.Errors`).
const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const INVALID_REQUEST: i16 = 42;
const MEMBER_ID_REQUIRED: i16 = 79;

/// The topic every group here consumes: one partition, three records.
const ALIVE: &str = "alive";
/// Raw members never heartbeat on their own: a session long enough that
/// none expires during a test.
const SESSION_MS: i32 = 60_000;
/// `group.max.member.metadata.bytes` at its default.
const METADATA_LIMIT: usize = 1024 * 1024;
/// `offset.metadata.max.bytes`.
const COMMIT_METADATA_LIMIT: usize = 4096;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn gid(s: &str) -> GroupId {
    GroupId(sb(s))
}

/// A broker whose first rebalance waits long enough for members joining
/// together to land in one generation, with `alive` holding three records.
async fn start() -> (tempfile::TempDir, TestBroker, String) {
    let dir = tempfile::tempdir().unwrap();
    let broker =
        TestBroker::start(dir.path(), &[("group.initial.rebalance.delay.ms", "300")]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, ALIVE, 1, &[]).await;
    let p = producer(&bs, &[("acks", "all")]);
    let records: Vec<KeyValue<'_>> = vec![
        (None, Some(b"r0")),
        (None, Some(b"r1")),
        (None, Some(b"r2")),
    ];
    assert_eq!(produce_all(&p, ALIVE, 0, &records).await, vec![0, 1, 2]);
    // The coordinator works before any bad input (this also creates
    // __consumer_offsets, so "unknown group" below means just that).
    fresh_group_consumes(&bs, "before").await;
    (dir, broker, bs)
}

// ---- Raw requests -------------------------------------------------------

/// ConsumerProtocolSubscription v0 for `topic`, no user data.
fn subscription(topic: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(-1);
    b.freeze()
}

fn join_request(
    group: &str,
    member_id: &str,
    protocol_type: &str,
    protocols: &[(&str, Bytes)],
    session_timeout_ms: i32,
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(sb(member_id))
        .with_session_timeout_ms(session_timeout_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(sb(protocol_type))
        .with_protocols(
            protocols
                .iter()
                .map(|(name, metadata)| {
                    JoinGroupRequestProtocol::default()
                        .with_name(sb(name))
                        .with_metadata(metadata.clone())
                })
                .collect(),
        )
}

/// A consumer's JoinGroup offering `range` for `alive`.
fn consumer_join(group: &str, member_id: &str) -> JoinGroupRequest {
    join_request(
        group,
        member_id,
        "consumer",
        &[("range", subscription(ALIVE))],
        SESSION_MS,
    )
}

async fn join(bs: &str, req: &JoinGroupRequest) -> JoinGroupResponse {
    raw_request(bs, 5, req).await
}

/// A member of the current generation.
#[derive(Debug, Clone)]
struct Joined {
    member_id: String,
    generation: i32,
    leader: String,
}

/// `n` consumers join `group` together (KIP-394: the first JoinGroup gets
/// MEMBER_ID_REQUIRED and an id, the rejoins complete one generation). The
/// leader comes first.
async fn join_members(bs: &str, group: &str, n: usize) -> Vec<Joined> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let r = join(bs, &consumer_join(group, "")).await;
        assert_eq!(r.error_code, MEMBER_ID_REQUIRED);
        ids.push(r.member_id.to_string());
    }
    let rejoins: Vec<JoinGroupRequest> = ids.iter().map(|id| consumer_join(group, id)).collect();
    let responses = join_all(rejoins.iter().map(|req| join(bs, req))).await;
    let mut joined: Vec<Joined> = responses
        .into_iter()
        .map(|r| {
            assert_eq!(r.error_code, NONE, "{r:?}");
            Joined {
                member_id: r.member_id.to_string(),
                generation: r.generation_id,
                leader: r.leader.to_string(),
            }
        })
        .collect();
    let generation = joined[0].generation;
    assert!(
        joined.iter().all(|j| j.generation == generation),
        "{joined:?}"
    );
    joined.sort_by_key(|j| j.member_id != j.leader);
    assert_eq!(joined[0].member_id, joined[0].leader);
    joined
}

fn sync_request(
    group: &str,
    m: &Joined,
    generation: i32,
    assignments: &[(&str, Bytes)],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(sb(&m.member_id))
        .with_generation_id(generation)
        .with_assignments(
            assignments
                .iter()
                .map(|(id, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(sb(id))
                        .with_assignment(a.clone())
                })
                .collect(),
        )
}

async fn sync(bs: &str, req: &SyncGroupRequest) -> SyncGroupResponse {
    raw_request(bs, 3, req).await
}

/// One member joins and syncs (assigning itself nothing): a Stable group.
async fn stable_member(bs: &str, group: &str) -> Joined {
    let m = join_members(bs, group, 1).await.remove(0);
    let r = sync(bs, &sync_request(group, &m, m.generation, &[])).await;
    assert_eq!(r.error_code, NONE);
    m
}

async fn heartbeat(bs: &str, group: &str, member_id: &str, generation: i32) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_member_id(sb(member_id))
        .with_generation_id(generation);
    raw_request(bs, 3, &req).await.error_code
}

/// LeaveGroup v3 (batched): `(top-level code, one code per member)`.
async fn leave(bs: &str, group: &str, member_ids: &[&str]) -> (i16, Vec<i16>) {
    let req = LeaveGroupRequest::default()
        .with_group_id(gid(group))
        .with_members(
            member_ids
                .iter()
                .map(|id| MemberIdentity::default().with_member_id(sb(id)))
                .collect(),
        );
    let r = raw_request(bs, 3, &req).await;
    (
        r.error_code,
        r.members.iter().map(|m| m.error_code).collect(),
    )
}

/// One partition of an OffsetCommit: `(topic, partition, offset, metadata)`.
type Commit<'a> = (&'a str, i32, i64, Option<String>);

/// OffsetCommit v8: the code of each `(topic, partition)`, in request order.
async fn commit(
    bs: &str,
    group: &str,
    member_id: &str,
    generation: i32,
    commits: &[Commit<'_>],
) -> Vec<((String, i32), i16)> {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (topic, partition, offset, metadata) in commits {
        by_topic.entry(topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(metadata.as_deref().map(sb)),
        );
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_member_id(sb(member_id))
        .with_generation_id_or_member_epoch(generation)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, parts)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partitions(parts)
                })
                .collect(),
        );
    let r = raw_request(bs, 8, &req).await;
    let codes: BTreeMap<(String, i32), i16> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| ((t.name.to_string(), p.partition_index), p.error_code))
        })
        .collect();
    assert_eq!(codes.len(), commits.len(), "{r:?}");
    commits
        .iter()
        .map(|(t, p, _, _)| {
            let key = (t.to_string(), *p);
            let code = codes[&key];
            (key, code)
        })
        .collect()
}

/// OffsetFetch v7: `partition -> (offset, metadata)` of `topic`.
async fn committed(
    bs: &str,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> BTreeMap<i32, (i64, String)> {
    let req = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_partition_indexes(partitions.to_vec())]));
    let r = raw_request(bs, 7, &req).await;
    assert_eq!(r.error_code, NONE);
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            assert_eq!(p.error_code, NONE);
            let md = p
                .metadata
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            (p.partition_index, (p.committed_offset, md))
        })
        .collect()
}

/// DescribeGroups v5: the group's state and `member id -> assignment`.
async fn describe(bs: &str, group: &str) -> (String, BTreeMap<String, Bytes>) {
    let req = DescribeGroupsRequest::default().with_groups(vec![gid(group)]);
    let r = raw_request(bs, 5, &req).await;
    let g = &r.groups[0];
    assert_eq!(g.error_code, NONE);
    let members = g
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.member_assignment.clone()))
        .collect();
    (g.group_state.to_string(), members)
}

/// The group was never created (DescribeGroups shows an unknown group as
/// `Dead` without members, as Kafka does).
async fn assert_no_group(bs: &str, group: &str) {
    assert_eq!(
        describe(bs, group).await,
        ("Dead".to_string(), BTreeMap::new())
    );
}

// ---- The coordinator is unharmed -----------------------------------------

/// An rdkafka consumer in `group` subscribes to `alive`: the offset of the
/// first record it gets.
async fn rdkafka_first_offset(bs: &str, group: &str) -> i64 {
    let (bs, group) = (bs.to_string(), group.to_string());
    tokio::task::spawn_blocking(move || {
        let mut cfg = client_config(&bs);
        cfg.set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .set("fetch.wait.max.ms", "100");
        let c: BaseConsumer = cfg.create().unwrap();
        c.subscribe(&[ALIVE]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            assert!(Instant::now() < deadline, "group {group} consumed nothing");
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => return m.offset(),
                Some(Err(e)) => eprintln!("group {group}: {e}"),
                None => {}
            }
        }
    })
    .await
    .unwrap()
}

async fn fresh_group_consumes(bs: &str, tag: &str) {
    assert_eq!(rdkafka_first_offset(bs, &format!("fresh-{tag}")).await, 0);
}

/// The group under test still works: its members heartbeat, the first
/// commits offset 1, all leave, and an rdkafka consumer taking over the
/// group starts at the committed offset. Then a fresh group consumes too.
async fn group_still_works(bs: &str, group: &str, members: &[Joined]) {
    for m in members {
        let code = heartbeat(bs, group, &m.member_id, m.generation).await;
        assert_eq!(code, NONE, "heartbeat of {}", m.member_id);
    }
    let m = &members[0];
    let codes = commit(
        bs,
        group,
        &m.member_id,
        m.generation,
        &[(ALIVE, 0, 1, None)],
    )
    .await;
    assert_eq!(codes[0].1, NONE);
    let ids: Vec<&str> = members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(leave(bs, group, &ids).await, (NONE, vec![NONE; ids.len()]));
    assert_eq!(
        describe(bs, group).await,
        ("Empty".to_string(), BTreeMap::new())
    );
    assert_eq!(
        rdkafka_first_offset(bs, group).await,
        1,
        "resume at the commit"
    );
    fresh_group_consumes(bs, group).await;
}

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
