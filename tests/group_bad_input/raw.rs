//! The raw group-protocol client of these tests: JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, OffsetCommit/Fetch and DescribeGroups requests
//! built field by field, and the checks that the coordinator still serves
//! a group and a fresh rdkafka consumer after a refused request.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
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
use rivulet_testkit::prelude::*;

// Kafka error codes (`org.apache.kafka.common.protocol.Errors`).
pub const NONE: i16 = 0;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const INVALID_REQUEST: i16 = 42;
pub const MEMBER_ID_REQUIRED: i16 = 79;

/// The topic every group here consumes: one partition, three records.
pub const ALIVE: &str = "alive";
/// Raw members never heartbeat on their own: a session long enough that
/// none expires during a test.
pub const SESSION_MS: i32 = 60_000;
/// `group.max.member.metadata.bytes` at its default.
pub const METADATA_LIMIT: usize = 1024 * 1024;
/// `offset.metadata.max.bytes`.
pub const COMMIT_METADATA_LIMIT: usize = 4096;

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn gid(s: &str) -> GroupId {
    GroupId(sb(s))
}

/// A broker whose first rebalance waits long enough for members joining
/// together to land in one generation, with `alive` holding three records.
pub async fn start() -> (tempfile::TempDir, TestBroker, String) {
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
pub fn subscription(topic: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(-1);
    b.freeze()
}

pub fn join_request(
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
pub fn consumer_join(group: &str, member_id: &str) -> JoinGroupRequest {
    join_request(
        group,
        member_id,
        "consumer",
        &[("range", subscription(ALIVE))],
        SESSION_MS,
    )
}

pub async fn join(bs: &str, req: &JoinGroupRequest) -> JoinGroupResponse {
    raw_request(bs, 5, req).await
}

/// A member of the current generation.
#[derive(Debug, Clone)]
pub struct Joined {
    pub member_id: String,
    pub generation: i32,
    pub leader: String,
}

/// `n` consumers join `group` together (KIP-394: the first JoinGroup gets
/// MEMBER_ID_REQUIRED and an id, the rejoins complete one generation). The
/// leader comes first.
pub async fn join_members(bs: &str, group: &str, n: usize) -> Vec<Joined> {
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

pub fn sync_request(
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

pub async fn sync(bs: &str, req: &SyncGroupRequest) -> SyncGroupResponse {
    raw_request(bs, 3, req).await
}

/// One member joins and syncs (assigning itself nothing): a Stable group.
pub async fn stable_member(bs: &str, group: &str) -> Joined {
    let m = join_members(bs, group, 1).await.remove(0);
    let r = sync(bs, &sync_request(group, &m, m.generation, &[])).await;
    assert_eq!(r.error_code, NONE);
    m
}

pub async fn heartbeat(bs: &str, group: &str, member_id: &str, generation: i32) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_member_id(sb(member_id))
        .with_generation_id(generation);
    raw_request(bs, 3, &req).await.error_code
}

/// LeaveGroup v3 (batched): `(top-level code, one code per member)`.
pub async fn leave(bs: &str, group: &str, member_ids: &[&str]) -> (i16, Vec<i16>) {
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
pub async fn commit(
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
pub async fn committed(
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
pub async fn describe(bs: &str, group: &str) -> (String, BTreeMap<String, Bytes>) {
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
pub async fn assert_no_group(bs: &str, group: &str) {
    assert_eq!(
        describe(bs, group).await,
        ("Dead".to_string(), BTreeMap::new())
    );
}

// ---- The coordinator is unharmed -----------------------------------------

/// An rdkafka consumer in `group` subscribes to `alive`: the offset of the
/// first record it gets.
pub async fn rdkafka_first_offset(bs: &str, group: &str) -> i64 {
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
        // The 100 ms poll is the wait.
        Poll::new(Duration::from_secs(40))
            .every(Duration::ZERO)
            .value(|| match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => Some(m.offset()),
                Some(Err(e)) => {
                    eprintln!("group {group}: {e}");
                    None
                }
                None => None,
            })
            .unwrap_or_else(|| panic!("group {group} consumed nothing"))
    })
    .await
    .unwrap()
}

pub async fn fresh_group_consumes(bs: &str, tag: &str) {
    assert_eq!(rdkafka_first_offset(bs, &format!("fresh-{tag}")).await, 0);
}

/// The group under test still works: its members heartbeat, the first
/// commits offset 1, all leave, and an rdkafka consumer taking over the
/// group starts at the committed offset. Then a fresh group consumes too.
pub async fn group_still_works(bs: &str, group: &str, members: &[Joined]) {
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
