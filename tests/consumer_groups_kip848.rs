//! KIP-848 consumer groups through librdkafka with `group.protocol=consumer`:
//! the broker computes the assignment, members reconcile incrementally and
//! a rebalance never stops members whose partitions do not move. Also the
//! raw protocol for what librdkafka cannot show (errors, describe, list).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use rivulet_testkit::prelude::*;

/// A record to produce: key, value.
type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// A consumed record: topic, partition, offset, value.
type Received = (String, i32, i64, String);

/// Records the partitions librdkafka revokes and assigns.
#[derive(Default, Clone)]
struct Tracker {
    revoked: Arc<Mutex<Vec<(String, i32)>>>,
}

impl ClientContext for Tracker {}

impl ConsumerContext for Tracker {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = r {
            let mut v = self.revoked.lock().unwrap();
            for e in tpl.elements() {
                v.push((e.topic().to_string(), e.partition()));
            }
        }
    }
}

/// A `group.protocol=consumer` member polling on its own thread and
/// committing each record it processes.
struct Member {
    stop: Arc<AtomicBool>,
    assigned: Arc<Mutex<BTreeSet<(String, i32)>>>,
    received: Arc<Mutex<Vec<Received>>>,
    /// When each record arrived (partition, time), for the benchmark.
    stamps: Arc<Mutex<Vec<(i32, Instant)>>>,
    revoked: Arc<Mutex<Vec<(String, i32)>>>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    fn start(bootstrap: &str, group: &str, topics: &[&str], extra: &[(&str, &str)]) -> Member {
        let mut cfg = client_config(bootstrap);
        cfg.set("group.id", group)
            .set("group.protocol", "consumer")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("topic.metadata.refresh.interval.ms", "500")
            .set("fetch.wait.max.ms", "100");
        for (k, v) in extra {
            cfg.set(*k, *v);
        }
        let tracker = Tracker::default();
        let revoked = tracker.revoked.clone();
        let consumer: BaseConsumer<Tracker> = cfg.create_with_context(tracker).unwrap();
        consumer.subscribe(topics).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let assigned = Arc::new(Mutex::new(BTreeSet::new()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let stamps = Arc::new(Mutex::new(Vec::new()));
        let (s, a, r, st) = (
            stop.clone(),
            assigned.clone(),
            received.clone(),
            stamps.clone(),
        );
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    st.lock().unwrap().push((m.partition(), Instant::now()));
                    r.lock().unwrap().push((
                        m.topic().to_string(),
                        m.partition(),
                        m.offset(),
                        String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                    ));
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(
                        m.topic(),
                        m.partition(),
                        Offset::Offset(m.offset() + 1),
                    )
                    .unwrap();
                    // A commit at a stale epoch during a rebalance fails;
                    // the record then may come again (at-least-once).
                    let _ = consumer.commit(&tpl, CommitMode::Sync);
                }
                if let Ok(tpl) = consumer.assignment() {
                    *a.lock().unwrap() = tpl
                        .elements()
                        .iter()
                        .map(|e| (e.topic().to_string(), e.partition()))
                        .collect();
                }
            }
            // Closing leaves the group (epoch -1).
            drop(consumer);
        });
        Member {
            stop,
            assigned,
            received,
            stamps,
            revoked,
            thread: Some(thread),
        }
    }

    fn assigned(&self) -> BTreeSet<(String, i32)> {
        self.assigned.lock().unwrap().clone()
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn revoked(&self) -> Vec<(String, i32)> {
        self.revoked.lock().unwrap().clone()
    }

    fn stop(mut self) -> Vec<Received> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.received()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    Poll::new(Duration::from_secs(60))
        .every(Duration::from_millis(50))
        .wait(what, f)
}

/// The members' partitions of `topic` are an exact, non-overlapping cover
/// of 0..n with these sizes.
fn covers(members: &[&Member], topic: &str, n: i32, sizes: &[usize]) -> bool {
    let sets: Vec<BTreeSet<i32>> = members
        .iter()
        .map(|m| {
            m.assigned()
                .into_iter()
                .filter(|(t, _)| t == topic)
                .map(|(_, p)| p)
                .collect()
        })
        .collect();
    let total: usize = sets.iter().map(BTreeSet::len).sum();
    let all: BTreeSet<i32> = sets.iter().flatten().copied().collect();
    let mut got: Vec<usize> = sets.iter().map(BTreeSet::len).collect();
    got.sort();
    let mut want = sizes.to_vec();
    want.sort();
    total == n as usize && all == (0..n).collect() && got == want
}

async fn produce_numbered(bs: &str, topic: &str, partitions: i32, per_partition: usize, tag: &str) {
    let p = producer(bs, &[("acks", "all")]);
    for part in 0..partitions {
        let values: Vec<String> = (0..per_partition)
            .map(|i| format!("{tag}-p{part}-{i}"))
            .collect();
        let recs: Vec<KeyValue<'_>> = values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
        produce_all(&p, topic, part, &recs).await;
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Short timings so that tests do not wait on Kafka's 45 s / 5 s defaults.
const FAST: &[(&str, &str)] = &[
    ("group.consumer.session.timeout.ms", "3000"),
    ("group.consumer.heartbeat.interval.ms", "300"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_split_six_partitions_and_consume_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), FAST).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "six", 6, &[]).await;
    let bs2 = bs.clone();
    let (a, b, c) = blocking(move || {
        let a = Member::start(&bs2, "g-three", &["six"], &[]);
        let b = Member::start(&bs2, "g-three", &["six"], &[]);
        let c = Member::start(&bs2, "g-three", &["six"], &[]);
        wait_until("three members get two partitions each", || {
            covers(&[&a, &b, &c], "six", 6, &[2, 2, 2])
        });
        (a, b, c)
    })
    .await;
    produce_numbered(&bs, "six", 6, 20, "r").await;
    let got = blocking(move || {
        wait_until("120 records", || {
            a.received().len() + b.received().len() + c.received().len() >= 120
        });
        std::thread::sleep(Duration::from_millis(500));
        let mut all = a.stop();
        all.extend(b.stop());
        all.extend(c.stop());
        all
    })
    .await;
    let values: Vec<String> = got.iter().map(|r| r.3.clone()).collect();
    let unique: BTreeSet<String> = values.iter().cloned().collect();
    assert_eq!(
        values.len(),
        120,
        "every record exactly once (stable group)"
    );
    assert_eq!(unique.len(), 120);
    // Every record was committed: the group's offsets are at the end.
    let probe = consumer(&bs, &[("group.id", "g-three")]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..6 {
        tpl.add_partition("six", p);
    }
    let committed = probe.committed_offsets(tpl, TIMEOUT).unwrap();
    for e in committed.elements() {
        assert_eq!(
            e.offset(),
            Offset::Offset(20),
            "partition {}",
            e.partition()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_and_leaving_members_move_only_the_partitions_needed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), FAST).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "moves", 6, &[]).await;
    // A producer keeps writing to every partition during the test.
    let stop_producing = Arc::new(AtomicBool::new(false));
    let sp = stop_producing.clone();
    let pbs = bs.clone();
    let producing = tokio::spawn(async move {
        let p = producer(&pbs, &[("acks", "1")]);
        let mut i = 0u64;
        while !sp.load(Ordering::SeqCst) {
            for part in 0..6 {
                let v = format!("m-{i}");
                produce_all(&p, "moves", part, &[(None, Some(v.as_bytes()))]).await;
                i += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let bs2 = bs.clone();
    blocking(move || {
        let a = Member::start(&bs2, "g-moves", &["moves"], &[]);
        let b = Member::start(&bs2, "g-moves", &["moves"], &[]);
        wait_until("two members split six partitions", || {
            covers(&[&a, &b], "moves", 6, &[3, 3])
        });
        let (ra, rb) = (a.revoked().len(), b.revoked().len());
        let (ka, kb) = (a.assigned(), b.assigned());
        let (na, nb) = (a.received().len(), b.received().len());
        let joined_at = Instant::now();
        let c = Member::start(&bs2, "g-moves", &["moves"], &[]);
        wait_until("three members get two each", || {
            covers(&[&a, &b, &c], "moves", 6, &[2, 2, 2])
        });
        let took = joined_at.elapsed();
        // Each of a and b gave up exactly one partition and kept two.
        let lost_a: Vec<_> = a.revoked()[ra..].to_vec();
        let lost_b: Vec<_> = b.revoked()[rb..].to_vec();
        assert_eq!(lost_a.len(), 1, "a revoked only what moved: {lost_a:?}");
        assert_eq!(lost_b.len(), 1, "b revoked only what moved: {lost_b:?}");
        assert!(a.assigned().is_subset(&ka) && b.assigned().is_subset(&kb));
        // No stop-the-world: a and b consumed while c was joining.
        assert!(a.received().len() > na && b.received().len() > nb);
        eprintln!(
            "join: {took:?} until every partition was assigned again; a and b consumed {} records meanwhile",
            a.received().len() - na + b.received().len() - nb
        );
        // c leaves: its partitions go back, a and b revoke nothing.
        let (ra, rb) = (a.revoked().len(), b.revoked().len());
        let (na, nb) = (a.received().len(), b.received().len());
        c.stop();
        wait_until("two members take the leaver's partitions", || {
            covers(&[&a, &b], "moves", 6, &[3, 3])
        });
        assert_eq!(a.revoked().len(), ra, "a revoked nothing when c left");
        assert_eq!(b.revoked().len(), rb, "b revoked nothing when c left");
        wait_until("both keep consuming", || {
            a.received().len() > na && b.received().len() > nb
        });
    })
    .await;
    stop_producing.store(true, Ordering::SeqCst);
    producing.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_members_partitions_move_after_the_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), FAST).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "silent", 4, &[]).await;
    // A raw member joins, takes its share and then never heartbeats again
    // (as a SIGKILLed process would).
    let mut raw = Raw::connect(&bs).await;
    let first = raw
        .heartbeat("g-silent", "silent-member", 0, Some(&["silent"]), None)
        .await;
    assert_eq!(first.error_code, 0);
    let bs2 = bs.clone();
    let started = Instant::now();
    blocking(move || {
        let a = Member::start(&bs2, "g-silent", &["silent"], &[]);
        wait_until(
            "a gets everything after the raw member's session expires",
            || covers(&[&a], "silent", 4, &[4]),
        );
    })
    .await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(2_000),
        "the silent member kept its partitions until its session timed out ({waited:?})"
    );
    // The expired member is fenced.
    let again = raw
        .heartbeat("g-silent", "silent-member", first.member_epoch, None, None)
        .await;
    assert_eq!(again.error_code, 25, "UNKNOWN_MEMBER_ID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_subscription_picks_up_a_topic_created_later() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), FAST).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "rx-one", 2, &[]).await;
    create_topic(&bs, "other", 1, &[]).await;
    produce_numbered(&bs, "rx-one", 2, 3, "one").await;
    produce_numbered(&bs, "other", 1, 3, "other").await;
    let bs2 = bs.clone();
    let m = blocking(move || {
        let m = Member::start(&bs2, "g-regex", &["^rx-.*"], &[]);
        wait_until("rx-one consumed", || m.received().len() >= 6);
        m
    })
    .await;
    create_topic(&bs, "rx-two", 3, &[]).await;
    produce_numbered(&bs, "rx-two", 3, 2, "two").await;
    let got = blocking(move || {
        wait_until("rx-two assigned and consumed", || m.received().len() >= 12);
        std::thread::sleep(Duration::from_millis(300));
        m.stop()
    })
    .await;
    let topics: BTreeSet<String> = got.iter().map(|r| r.0.clone()).collect();
    assert_eq!(
        topics,
        BTreeSet::from(["rx-one".to_string(), "rx-two".to_string()])
    );
    assert_eq!(got.len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_and_the_group_survive_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), FAST).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "resume", 2, &[]).await;
    produce_numbered(&bs, "resume", 2, 10, "first").await;
    let bs2 = bs.clone();
    let first = blocking(move || {
        let m = Member::start(&bs2, "g-resume", &["resume"], &[]);
        wait_until("20 records", || m.received().len() >= 20);
        std::thread::sleep(Duration::from_millis(300));
        m.stop()
    })
    .await;
    assert_eq!(first.len(), 20);
    let describe_before = Raw::connect(&bs).await.describe("g-resume").await;
    let broker = broker.restart().await;
    let bs = broker.bootstrap();
    // The consumer group was rebuilt from __consumer_offsets: same epoch.
    // Until the restarted node leads the offsets partition again it answers
    // NOT_COORDINATOR (16), as a client would see it, and is asked again.
    let mut raw = Raw::connect(&bs).await;
    let mut describe_after = raw.describe("g-resume").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while [14, 15, 16].contains(&describe_after.error_code) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        describe_after = raw.describe("g-resume").await;
    }
    assert_eq!(describe_after.error_code, 0);
    assert_eq!(describe_after.group_epoch, describe_before.group_epoch);
    produce_numbered(&bs, "resume", 2, 5, "second").await;
    let bs2 = bs.clone();
    let second = blocking(move || {
        let m = Member::start(&bs2, "g-resume", &["resume"], &[]);
        wait_until("the 10 new records", || m.received().len() >= 10);
        std::thread::sleep(Duration::from_millis(500));
        m.stop()
    })
    .await;
    let values: BTreeSet<String> = second.iter().map(|r| r.3.clone()).collect();
    let expected: BTreeSet<String> = (0..2)
        .flat_map(|p| (0..5).map(move |i| format!("second-p{p}-{i}")))
        .collect();
    assert_eq!(values, expected, "exactly the uncommitted records");
    assert_eq!(second.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_errors_describe_and_list_follow_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), FAST).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "errs", 3, &[]).await;
    let mut raw = Raw::connect(&bs).await;
    let hb = |group: &str, member: &str, epoch: i32| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_member_id(StrBytes::from_string(member.into()))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(10_000)
            .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str("errs"))]))
            .with_topic_partitions(Some(vec![]))
    };
    let r = raw
        .send(hb("g-errs", "m1", 0).with_server_assignor(Some(StrBytes::from_static_str("nope"))))
        .await;
    assert_eq!(r.error_code, 112, "UNSUPPORTED_ASSIGNOR");
    let r = raw
        .send(
            hb("g-errs", "m1", 0)
                .with_subscribed_topic_regex(Some(StrBytes::from_static_str("(("))),
        )
        .await;
    assert_eq!(r.error_code, 128, "INVALID_REGULAR_EXPRESSION");
    let r = raw
        .send(hb("g-errs", "m1", 0).with_server_assignor(Some(StrBytes::from_static_str("range"))))
        .await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.member_epoch, 1);
    let ids: BTreeSet<i32> = r
        .assignment
        .as_ref()
        .map(|a| {
            a.topic_partitions
                .iter()
                .flat_map(|t| t.partitions.clone())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ids, BTreeSet::from([0, 1, 2]));
    let r2 = raw.send(hb("g-errs", "m1", 5)).await;
    assert_eq!(r2.error_code, 110, "FENCED_MEMBER_EPOCH");
    let r2 = raw.send(hb("g-errs", "ghost", 3)).await;
    assert_eq!(r2.error_code, 25, "UNKNOWN_MEMBER_ID");
    // Offsets: a stale epoch is refused, the current one accepted.
    for (epoch, code) in [(0, 113), (1, 0)] {
        let commit = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g-errs")))
            .with_member_id(StrBytes::from_static_str("m1"))
            .with_generation_id_or_member_epoch(epoch)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("errs")))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(7),
                    ]),
            ]);
        let resp = raw.stream.round_trip(9, &commit).await.unwrap();
        assert_eq!(
            resp.topics[0].partitions[0].error_code, code,
            "commit at epoch {epoch}"
        );
    }
    // A classic member whose metadata is no consumer subscription cannot
    // join a consumer group.
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g-errs")))
        .with_member_id(StrBytes::from_static_str(""))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(StrBytes::from_static_str("range"))]);
    let j = raw.stream.round_trip(5, &join).await.unwrap();
    assert_eq!(j.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
    // Describe and list.
    let d = raw.describe("g-errs").await;
    assert_eq!(d.error_code, 0);
    assert_eq!(d.assignor_name.as_str(), "range");
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_epoch, 1);
    let missing = raw.describe("no-such-group").await;
    assert_eq!(missing.error_code, 69, "GROUP_ID_NOT_FOUND");
    let list =
        ListGroupsRequest::default().with_types_filter(vec![StrBytes::from_static_str("consumer")]);
    let l = raw.stream.round_trip(5, &list).await.unwrap();
    let listed: Vec<(String, String)> = l
        .groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.group_type.to_string()))
        .collect();
    assert_eq!(listed, vec![("g-errs".to_string(), "consumer".to_string())]);
    let classic_only =
        ListGroupsRequest::default().with_types_filter(vec![StrBytes::from_static_str("classic")]);
    let l = raw.stream.round_trip(5, &classic_only).await.unwrap();
    assert!(l.groups.is_empty());
    // Leaving: epoch -1 answers -1 and frees the group.
    let r = raw.send(hb("g-errs", "m1", -1)).await;
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
    assert_eq!(raw.describe("g-errs").await.group_state.as_str(), "Empty");
}

/// A raw protocol connection to the broker.
struct Raw {
    stream: rivulet_protocol::wire::Client<tokio::net::TcpStream>,
}

impl Raw {
    async fn connect(bs: &str) -> Raw {
        let stream = rivulet_protocol::wire::connect(bs)
            .await
            .unwrap()
            .with_client_id(Some("raw-member".to_string()))
            .with_timeout(TIMEOUT);
        Raw { stream }
    }

    async fn send(&mut self, req: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
        // The group's coordinator is this (only) broker.
        self.stream.round_trip(1, &req).await.unwrap()
    }

    async fn heartbeat(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
        topics: Option<&[&str]>,
        regex: Option<&str>,
    ) -> ConsumerGroupHeartbeatResponse {
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_member_id(StrBytes::from_string(member.into()))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(if epoch == 0 { 10_000 } else { -1 })
            .with_subscribed_topic_names(topics.map(|ts| {
                ts.iter()
                    .map(|t| TopicName(StrBytes::from_string(t.to_string())))
                    .collect()
            }))
            .with_subscribed_topic_regex(regex.map(|r| StrBytes::from_string(r.into())))
            .with_topic_partitions((epoch == 0).then(Vec::new));
        self.send(req).await
    }

    async fn describe(&mut self, group: &str) -> consumer_group_describe_response::DescribedGroup {
        let req = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_string(group.into()))]);
        // v0: the test client's response bounds know v0 only.
        let mut r: ConsumerGroupDescribeResponse = self.stream.round_trip(0, &req).await.unwrap();
        r.groups.remove(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarts_within_the_session_and_keeps_its_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), FAST).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "static", 4, &[]).await;
    let bs2 = bs.clone();
    let (b, kept) = blocking(move || {
        let a = Member::start(
            &bs2,
            "g-static",
            &["static"],
            &[("group.instance.id", "inst-a")],
        );
        let b = Member::start(&bs2, "g-static", &["static"], &[]);
        wait_until("two and two", || covers(&[&a, &b], "static", 4, &[2, 2]));
        let kept = a.assigned();
        // Closing a static member leaves only temporarily (epoch -2).
        a.stop();
        (b, kept)
    })
    .await;
    let before = Raw::connect(&bs).await.describe("g-static").await;
    let bs2 = bs.clone();
    let b = blocking(move || {
        let revoked = b.revoked().len();
        let a = Member::start(
            &bs2,
            "g-static",
            &["static"],
            &[("group.instance.id", "inst-a")],
        );
        wait_until(
            "the restarted static member has its partitions back",
            || a.assigned() == kept,
        );
        assert_eq!(b.revoked().len(), revoked, "b lost nothing");
        drop(a);
        b
    })
    .await;
    let after = Raw::connect(&bs).await.describe("g-static").await;
    assert_eq!(before.group_epoch, after.group_epoch, "no rebalance");
    drop(b);
}

/// Issue 14's benchmark: a member joins a 10-member group consuming 100
/// partitions under a steady load; the time until every partition is
/// consumed again (each one yielded a record after the join and the
/// assignment covers all 100 over 11 members), and how many records the 10
/// members that stayed consumed in that window. Classic eager (range),
/// classic cooperative-sticky, KIP-848 (uniform), in one run:
/// `cargo test --test consumer_groups_kip848 -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly"]
async fn bench_join_into_ten_members_classic_eager_cooperative_and_kip848() {
    let dir = tempfile::tempdir().unwrap();
    // Classic groups: the initial delay as in production would add 3 s to
    // each scenario's start only, not to the join measured.
    let broker = TestBroker::start(
        dir.path(),
        &[
            ("group.consumer.heartbeat.interval.ms", "1000"),
            ("group.min.session.timeout.ms", "1000"),
        ],
    )
    .await;
    let bs = broker.bootstrap();
    let scenarios: [(&str, &[(&str, &str)]); 3] = [
        (
            "classic eager (range)",
            &[
                ("group.protocol", "classic"),
                ("partition.assignment.strategy", "range"),
                ("session.timeout.ms", "10000"),
                ("heartbeat.interval.ms", "1000"),
            ],
        ),
        (
            "classic cooperative-sticky",
            &[
                ("group.protocol", "classic"),
                ("partition.assignment.strategy", "cooperative-sticky"),
                ("session.timeout.ms", "10000"),
                ("heartbeat.interval.ms", "1000"),
            ],
        ),
        ("KIP-848 (uniform)", &[]),
    ];
    let mut report = Vec::new();
    for (i, (name, settings)) in scenarios.iter().enumerate() {
        let topic = format!("bench-{i}");
        create_topic(&bs, &topic, 100, &[]).await;
        let stop = Arc::new(AtomicBool::new(false));
        let (sp, pbs, ptopic) = (stop.clone(), bs.clone(), topic.clone());
        let producing = tokio::spawn(async move {
            let p = producer(&pbs, &[("acks", "1"), ("linger.ms", "20")]);
            let mut i = 0u64;
            while !sp.load(Ordering::SeqCst) {
                for part in 0..100 {
                    let v = format!("{i}");
                    let _ = p.send_result(
                        rdkafka::producer::FutureRecord::<(), [u8]>::to(&ptopic)
                            .partition(part)
                            .payload(v.as_bytes()),
                    );
                    i += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let (bs2, name) = (bs.clone(), name.to_string());
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let line = blocking(move || {
            let group = format!("bench-group-{i}");
            let settings: Vec<(&str, &str)> =
                settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let members: Vec<Member> = (0..10)
                .map(|_| Member::start(&bs2, &group, &[topic.as_str()], &settings))
                .collect();
            let refs: Vec<&Member> = members.iter().collect();
            wait_until("ten members share 100 partitions", || {
                covers(&refs, &topic, 100, &[10; 10])
            });
            std::thread::sleep(Duration::from_secs(2));
            let before: usize = members.iter().map(|m| m.received().len()).sum();
            let t0 = Instant::now();
            let newcomer = Member::start(&bs2, &group, &[topic.as_str()], &settings);
            let mut all: Vec<&Member> = members.iter().collect();
            all.push(&newcomer);
            let done = |all: &[&Member]| {
                let mut sizes = vec![9; 10];
                sizes.push(10);
                let covered = covers(all, &topic, 100, &sizes);
                let mut seen = BTreeSet::new();
                for m in all {
                    for (p, at) in m.stamps.lock().unwrap().iter() {
                        if *at > t0 {
                            seen.insert(*p);
                        }
                    }
                }
                covered && seen.len() == 100
            };
            wait_until("every partition consumed again", || done(&all));
            let took = t0.elapsed();
            let during: usize = members.iter().map(|m| m.received().len()).sum::<usize>() - before;
            // The longest a staying member went without a record in the
            // window (from the join until all was consumed again): a
            // stop-the-world rebalance shows here.
            let end = t0 + took;
            let longest_pause = members
                .iter()
                .map(|m| {
                    let mut times: Vec<Instant> = m
                        .stamps
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(_, at)| *at)
                        .filter(|at| *at <= end)
                        .collect();
                    times.sort();
                    let mut last = times.iter().rev().find(|at| **at <= t0).copied().unwrap_or(t0);
                    let mut gap = Duration::ZERO;
                    for at in times.iter().filter(|at| **at > t0) {
                        gap = gap.max(at.duration_since(last));
                        last = *at;
                    }
                    gap.max(end.duration_since(last))
                })
                .max()
                .unwrap_or_default();
            drop(newcomer);
            drop(members);
            format!("{name}: {took:?} until every partition was consumed again; the 10 staying members consumed {during} records meanwhile; longest pause of a staying member {longest_pause:?}")
        })
        .await;
        stop.store(true, Ordering::SeqCst);
        producing.await.unwrap();
        eprintln!("{line}");
        report.push(line);
    }
    eprintln!("\n{}", report.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_added_to_a_subscribed_topic_are_assigned_without_revocations() {
    use rdkafka::admin::{AdminOptions, NewPartitions};
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), FAST).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "grow", 2, &[]).await;
    let bs2 = bs.clone();
    let (a, b) = blocking(move || {
        let a = Member::start(&bs2, "g-grow", &["grow"], &[]);
        let b = Member::start(&bs2, "g-grow", &["grow"], &[]);
        wait_until("one partition each", || {
            covers(&[&a, &b], "grow", 2, &[1, 1])
        });
        (a, b)
    })
    .await;
    let (ra, rb) = (a.revoked().len(), b.revoked().len());
    let results = admin(&bs)
        .create_partitions(&[NewPartitions::new("grow", 4)], &AdminOptions::new())
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    produce_numbered(&bs, "grow", 4, 2, "g").await;
    blocking(move || {
        wait_until("two partitions each", || {
            covers(&[&a, &b], "grow", 4, &[2, 2])
        });
        wait_until("every record", || {
            a.received().len() + b.received().len() >= 8
        });
        assert_eq!(
            (a.revoked().len(), b.revoked().len()),
            (ra, rb),
            "nothing revoked"
        );
    })
    .await;
}

/// Switching protocols through an empty group (the online migration of a
/// group with members is not implemented): classic members commit, stop;
/// consumer-protocol members resume at the commits; they stop; classic
/// members resume at theirs. Nothing is lost or read twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_switches_protocols_while_empty_and_keeps_its_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), FAST).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "switch", 2, &[]).await;
    let classic: &[(&str, &str)] = &[
        ("group.protocol", "classic"),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "200"),
    ];
    let mut all = Vec::new();
    for (round, settings) in [classic, &[], classic].into_iter().enumerate() {
        let tag = format!("round{round}");
        produce_numbered(&bs, "switch", 2, 5, &tag).await;
        let (bs2, settings): (String, Vec<(String, String)>) = (
            bs.clone(),
            settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let got = blocking(move || {
            let settings: Vec<(&str, &str)> = settings
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let m = Member::start(&bs2, "g-switch", &["switch"], &settings);
            wait_until("this round's records", || m.received().len() >= 10);
            std::thread::sleep(Duration::from_millis(500));
            m.stop()
        })
        .await;
        let values: BTreeSet<String> = got.iter().map(|r| r.3.clone()).collect();
        let expected: BTreeSet<String> = (0..2)
            .flat_map(|p| (0..5).map(|i| (p, i)).collect::<Vec<_>>())
            .map(|(p, i)| format!("{tag}-p{p}-{i}"))
            .collect();
        assert_eq!(
            values, expected,
            "round {round} read exactly its new records"
        );
        assert_eq!(got.len(), 10, "round {round}");
        all.extend(got);
    }
    assert_eq!(all.len(), 30);
}

/// TxnOffsetCommit with a consumer-protocol member's group metadata (its
/// member id and member epoch): the offsets commit with the transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_offsets_of_a_consumer_protocol_member_commit_with_the_transaction() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), FAST).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "txin", 1, &[]).await;
    create_topic(&bs, "txout", 1, &[]).await;
    produce_numbered(&bs, "txin", 1, 3, "in").await;
    blocking(move || {
        let mut cfg = client_config(&bs);
        cfg.set("group.id", "g-txn")
            .set("group.protocol", "consumer")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        let c: BaseConsumer = cfg.create().unwrap();
        c.subscribe(&["txin"]).unwrap();
        let read = std::cell::Cell::new(0);
        wait_until("three records", || {
            if let Some(Ok(_)) = c.poll(Duration::from_millis(50)) {
                read.set(read.get() + 1);
            }
            read.get() >= 3
        });
        let mut pcfg = client_config(&bs);
        pcfg.set("transactional.id", "tx-848").set("linger.ms", "5");
        let p: BaseProducer = pcfg.create().unwrap();
        p.init_transactions(TIMEOUT).unwrap();
        p.begin_transaction().unwrap();
        p.send(
            BaseRecord::<(), str>::to("txout")
                .partition(0)
                .payload("out"),
        )
        .map_err(|(e, _)| e)
        .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("txin", 0, Offset::Offset(3))
            .unwrap();
        let meta = c.group_metadata().unwrap();
        p.send_offsets_to_transaction(&tpl, &meta, TIMEOUT).unwrap();
        p.commit_transaction(TIMEOUT).unwrap();
        let mut ask = TopicPartitionList::new();
        ask.add_partition("txin", 0);
        let got = c.committed_offsets(ask, TIMEOUT).unwrap();
        assert_eq!(
            got.find_partition("txin", 0).unwrap().offset(),
            Offset::Offset(3)
        );
    })
    .await;
}

/// The online upgrade: a classic group's members are replaced one by one by
/// `group.protocol=consumer` members while a producer keeps writing; the
/// group converts at the first consumer-protocol member and serves its
/// remaining classic members until they are gone. Every record is consumed
/// (at least once). Cooperative-sticky classic members, then eager (range).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_classic_members_are_rolled_one_by_one_to_the_consumer_protocol() {
    roll_classic_members("cooperative-sticky").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_classic_members_are_rolled_one_by_one_to_the_consumer_protocol() {
    roll_classic_members("range").await;
}

async fn roll_classic_members(strategy: &'static str) {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), FAST).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "mig", 4, &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (sp, pbs) = (stop.clone(), bs.clone());
    let producing = tokio::spawn(async move {
        let p = producer(&pbs, &[("acks", "all")]);
        let mut sent = Vec::new();
        let mut i = 0u64;
        while !sp.load(Ordering::SeqCst) {
            for part in 0..4 {
                let v = format!("mig-{i}");
                produce_all(&p, "mig", part, &[(None, Some(v.as_bytes()))]).await;
                sent.push(v);
                i += 1;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        sent
    });
    let bs2 = bs.clone();
    let (received, members) = blocking(move || {
        let classic: &[(&str, &str)] = &[
            ("group.protocol", "classic"),
            ("partition.assignment.strategy", strategy),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "200"),
        ];
        let mut received = Vec::new();
        let a = Member::start(&bs2, "g-mig", &["mig"], classic);
        let b = Member::start(&bs2, "g-mig", &["mig"], classic);
        wait_until("classic members split 2/2", || {
            covers(&[&a, &b], "mig", 4, &[2, 2])
        });
        // The first consumer-protocol member upgrades the group.
        let c = Member::start(&bs2, "g-mig", &["mig"], &[]);
        wait_until("three members cover four partitions", || {
            covers(&[&a, &b, &c], "mig", 4, &[1, 1, 2])
        });
        // It is a consumer group now, with all three members.
        let d = block_on(async { Raw::connect(&bs2).await.describe("g-mig").await });
        assert_eq!((d.error_code, d.members.len()), (0, 3));
        // Roll a, then b.
        received.extend(a.stop());
        let a2 = Member::start(&bs2, "g-mig", &["mig"], &[]);
        wait_until("a's replacement joined", || {
            covers(&[&a2, &b, &c], "mig", 4, &[1, 1, 2])
        });
        received.extend(b.stop());
        let b2 = Member::start(&bs2, "g-mig", &["mig"], &[]);
        wait_until("b's replacement joined", || {
            covers(&[&a2, &b2, &c], "mig", 4, &[1, 1, 2])
        });
        std::thread::sleep(Duration::from_millis(500));
        (received, vec![a2, b2, c])
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let sent = producing.await.unwrap();
    let want: BTreeSet<String> = sent.into_iter().collect();
    let got = blocking(move || {
        let all = |members: &[Member]| -> BTreeSet<String> {
            members
                .iter()
                .flat_map(|m| m.received())
                .map(|r| r.3)
                .collect()
        };
        let before: BTreeSet<String> = received.iter().map(|r| r.3.clone()).collect();
        wait_until("every record consumed", || {
            let now: BTreeSet<String> = all(&members).union(&before).cloned().collect();
            want.is_subset(&now)
        });
        (want.len(), all(&members).union(&before).count())
    })
    .await;
    assert!(got.0 > 0 && got.1 >= got.0);
}
