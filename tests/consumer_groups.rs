//! Consumer groups through librdkafka: partitions split across members and
//! rebalanced as members join and leave, committed offsets resumed exactly
//! after restarts (of the consumers and of the broker), cooperative-sticky
//! assignment, static membership, session expiry, describe/list/delete and
//! lag.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use rivulet_testkit::prelude::*;

/// A consumed record: partition, offset, value.
type Received = (i32, i64, Vec<u8>);

/// A group member polling on its own thread.
struct Member {
    stop: Arc<AtomicBool>,
    /// Unsubscribe (LeaveGroup) before closing on stop; otherwise just close
    /// (a static member then does not leave, KIP-345).
    leave: Arc<AtomicBool>,
    assigned: Arc<Mutex<BTreeSet<i32>>>,
    received: Arc<Mutex<Vec<Received>>>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    fn start(bootstrap: &str, group: &str, topic: &str, extra: &[(&str, &str)]) -> Member {
        let mut cfg = client_config(bootstrap);
        cfg.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "200")
            .set("fetch.wait.max.ms", "100");
        for (k, v) in extra {
            cfg.set(*k, *v);
        }
        let consumer: BaseConsumer = cfg.create().unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let leave = Arc::new(AtomicBool::new(true));
        let assigned = Arc::new(Mutex::new(BTreeSet::new()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (s, l, a, r) = (
            stop.clone(),
            leave.clone(),
            assigned.clone(),
            received.clone(),
        );
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    r.lock().unwrap().push((
                        m.partition(),
                        m.offset(),
                        m.payload().unwrap_or_default().to_vec(),
                    ));
                    // Commit what was processed, synchronously, record by record.
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(
                        m.topic(),
                        m.partition(),
                        Offset::Offset(m.offset() + 1),
                    )
                    .unwrap();
                    let _ = consumer.commit(&tpl, CommitMode::Sync);
                }
                if let Ok(tpl) = consumer.assignment() {
                    *a.lock().unwrap() = tpl.elements().iter().map(|e| e.partition()).collect();
                }
            }
            if l.load(Ordering::SeqCst) {
                consumer.unsubscribe();
                let _ = consumer.poll(Duration::from_millis(100));
            }
            drop(consumer);
        });
        Member {
            stop,
            leave,
            assigned,
            received,
            thread: Some(thread),
        }
    }

    fn assigned(&self) -> BTreeSet<i32> {
        self.assigned.lock().unwrap().clone()
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn stop(mut self, leave: bool) -> Vec<Received> {
        self.leave.store(leave, Ordering::SeqCst);
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
    Poll::new(Duration::from_secs(40))
        .every(Duration::from_millis(50))
        .wait(what, f)
}

/// The partitions of `members` form an exact, non-overlapping cover of 0..n.
fn covers(members: &[&Member], n: i32, sizes: &[usize]) -> bool {
    let sets: Vec<BTreeSet<i32>> = members.iter().map(|m| m.assigned()).collect();
    let mut all = BTreeSet::new();
    let mut total = 0;
    for s in &sets {
        total += s.len();
        all.extend(s.iter().copied());
    }
    let mut got: Vec<usize> = sets.iter().map(BTreeSet::len).collect();
    got.sort();
    let mut want = sizes.to_vec();
    want.sort();
    total == n as usize && all == (0..n).collect() && got == want
}

async fn produce_numbered(bs: &str, topic: &str, partitions: i32, per_partition: usize, tag: &str) {
    let p = producer(bs, &[("acks", "all")]);
    for part in 0..partitions {
        for i in 0..per_partition {
            let v = format!("{tag}-p{part}-{i}");
            produce_all(&p, topic, part, &[(None, Some(v.as_bytes()))]).await;
        }
    }
}

/// Join `group` over the raw protocol (MEMBER_ID_REQUIRED flow, then the
/// join and sync of a rebalance), subscribed to `topic`, and return the
/// member id; the caller then simply never heartbeats.
async fn raw_join_and_go_silent(bs: &str, group: &str, topic: &str, session_ms: i32) -> String {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    // ConsumerProtocolSubscription v0: topics, no user data.
    let mut subscription = BytesMut::new();
    subscription.put_i16(0);
    subscription.put_i32(1);
    subscription.put_i16(topic.len() as i16);
    subscription.put_slice(topic.as_bytes());
    subscription.put_i32(-1);
    let subscription = subscription.freeze();
    let mut s = rivulet_protocol::wire::connect(bs)
        .await
        .unwrap()
        .with_client_id(Some("raw-member".to_string()))
        .with_timeout(TIMEOUT);
    let mut join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(
            ["range", "roundrobin"]
                .iter()
                .map(|n| {
                    JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str(n))
                        .with_metadata(subscription.clone())
                })
                .collect(),
        );
    let first = s.round_trip(5, &join).await.unwrap();
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED first");
    join = join.with_member_id(first.member_id.clone());
    let joined = s.round_trip(5, &join).await.unwrap();
    assert_eq!(joined.error_code, 0);
    assert_ne!(
        joined.leader, joined.member_id,
        "the rdkafka member leads and assigns"
    );
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone());
    let synced = s.round_trip(3, &sync).await.unwrap();
    assert_eq!(synced.error_code, 0);
    assert!(
        !synced.assignment.is_empty(),
        "the raw member got a partition"
    );
    joined.member_id.to_string()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_split_partitions_and_rebalance_on_join_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "six", 6, &[]).await;
    let bs2 = bs.clone();
    blocking(move || {
        let a = Member::start(&bs2, "g-split", "six", &[]);
        let b = Member::start(&bs2, "g-split", "six", &[]);
        wait_until("two members share six partitions", || {
            covers(&[&a, &b], 6, &[3, 3])
        });
        let c = Member::start(&bs2, "g-split", "six", &[]);
        wait_until("three members get two each", || {
            covers(&[&a, &b, &c], 6, &[2, 2, 2])
        });
        let gone = b.assigned();
        b.stop(true);
        wait_until("two members take over the leaver's partitions", || {
            covers(&[&a, &c], 6, &[3, 3])
        });
        let now: BTreeSet<i32> = a.assigned().union(&c.assigned()).copied().collect();
        assert!(gone.is_subset(&now));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_resume_exactly_after_consumer_and_broker_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "resume", 2, &[]).await;
    produce_numbered(&bs, "resume", 2, 10, "first").await;
    let bs2 = bs.clone();
    let first = blocking(move || {
        let m = Member::start(&bs2, "g-resume", "resume", &[]);
        wait_until("20 records", || m.received().len() >= 20);
        m.stop(true)
    })
    .await;
    assert_eq!(first.len(), 20);

    // Lag is zero once everything is committed; produce more: lag = new records.
    produce_numbered(&bs, "resume", 2, 5, "second").await;
    let c = consumer(&bs, &[("group.id", "g-resume")]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("resume", 0);
    tpl.add_partition("resume", 1);
    let committed = c.committed_offsets(tpl, TIMEOUT).unwrap();
    for e in committed.elements() {
        assert_eq!(
            e.offset(),
            Offset::Offset(10),
            "partition {}",
            e.partition()
        );
        let (_, high) = c
            .fetch_watermarks("resume", e.partition(), TIMEOUT)
            .unwrap();
        assert_eq!(high - 10, 5, "lag = produced - committed");
    }
    drop(c);

    // Restart the broker: group offsets come back from __consumer_offsets.
    let broker = broker.restart().await;
    let bs = broker.bootstrap();
    let bs2 = bs.clone();
    let second = blocking(move || {
        let m = Member::start(&bs2, "g-resume", "resume", &[]);
        wait_until("the 10 new records", || m.received().len() >= 10);
        std::thread::sleep(Duration::from_millis(500));
        m.stop(true)
    })
    .await;
    let values: BTreeSet<String> = second
        .iter()
        .map(|(_, _, v)| String::from_utf8(v.clone()).unwrap())
        .collect();
    let expected: BTreeSet<String> = (0..2)
        .flat_map(|p| (0..5).map(move |i| format!("second-p{p}-{i}")))
        .collect();
    assert_eq!(
        values, expected,
        "exactly the uncommitted records, none again"
    );
    assert_eq!(second.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_keep_their_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "coop", 4, &[]).await;
    blocking(move || {
        let opts = [("partition.assignment.strategy", "cooperative-sticky")];
        let a = Member::start(&bs, "g-coop", "coop", &opts);
        wait_until("a owns everything", || a.assigned().len() == 4);
        let b = Member::start(&bs, "g-coop", "coop", &opts);
        wait_until("split two and two", || covers(&[&a, &b], 4, &[2, 2]));
        let kept = a.assigned();
        assert_eq!(kept.len(), 2);
        // Sticky: a kept partitions it had, b only got ones a released.
        assert!(kept.is_subset(&(0..4).collect()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_member_is_expired_and_a_static_member_restarts_without_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[("group.min.session.timeout.ms", "1000")]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "expire", 2, &[]).await;
    let fast = [("session.timeout.ms", "2000")];
    let bs2 = bs.clone();
    let a = blocking(move || {
        let a = Member::start(&bs2, "g-expire", "expire", &fast);
        wait_until("a owns both", || a.assigned().len() == 2);
        a
    })
    .await;
    // A raw member joins, syncs, then never heartbeats again.
    let silent = raw_join_and_go_silent(&bs, "g-expire", "expire", 2000).await;
    let a = blocking(move || {
        wait_until("a gave up one partition to the raw member", || {
            a.assigned().len() == 1
        });
        wait_until(
            "the silent member's partition comes back after its session",
            || a.assigned().len() == 2,
        );
        a
    })
    .await;
    let desc = consumer(&bs, &[])
        .fetch_group_list(Some("g-expire"), TIMEOUT)
        .unwrap();
    let ids: Vec<&str> = desc.groups()[0].members().iter().map(|m| m.id()).collect();
    assert!(
        !ids.contains(&silent.as_str()),
        "expired member still listed: {ids:?}"
    );
    drop(a);
    blocking(move || {
        // Static membership: same group.instance.id back within the session
        // timeout keeps the same assignment without a rebalance.
        let stat = [
            ("session.timeout.ms", "10000"),
            ("group.instance.id", "static-1"),
        ];
        let s1 = Member::start(&bs, "g-static", "expire", &stat);
        let s2 = Member::start(
            &bs,
            "g-static",
            "expire",
            &[
                ("session.timeout.ms", "10000"),
                ("group.instance.id", "static-2"),
            ],
        );
        wait_until("static split", || covers(&[&s1, &s2], 2, &[1, 1]));
        let before_2 = s2.assigned();
        let before_1 = s1.assigned();
        s1.stop(false); // close without LeaveGroup: a static restart
        let s1b = Member::start(&bs, "g-static", "expire", &stat);
        wait_until("static member back with its partition", || {
            s1b.assigned() == before_1
        });
        assert_eq!(
            s2.assigned(),
            before_2,
            "the other static member was not rebalanced"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_listed_described_and_deleted() {
    use rdkafka::admin::AdminOptions;
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "desc", 1, &[]).await;
    produce_numbered(&bs, "desc", 1, 3, "d").await;
    let bs2 = bs.clone();
    let m = blocking(move || {
        let m = Member::start(&bs2, "g-desc", "desc", &[("client.id", "describer")]);
        wait_until("records", || m.received().len() >= 3);
        m
    })
    .await;
    let c = consumer(&bs, &[]);
    let list = c.fetch_group_list(Some("g-desc"), TIMEOUT).unwrap();
    let g = &list.groups()[0];
    assert_eq!(g.name(), "g-desc");
    assert_eq!(g.state(), "Stable");
    assert_eq!(g.protocol_type(), "consumer");
    assert_eq!(g.members().len(), 1);
    assert_eq!(g.members()[0].client_id(), "describer");
    assert!(g.members()[0].assignment().is_some_and(|a| !a.is_empty()));
    // A non-empty group cannot be deleted.
    let admin = admin(&bs);
    let r = admin
        .delete_groups(&["g-desc"], &AdminOptions::new())
        .await
        .unwrap();
    assert!(r[0].is_err(), "{r:?}");
    blocking(move || drop(m.stop(true))).await;
    let r = admin
        .delete_groups(&["g-desc"], &AdminOptions::new())
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let all = c.fetch_group_list(None, TIMEOUT).unwrap();
    assert!(all.groups().iter().all(|g| g.name() != "g-desc"));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("desc", 0);
    let c2 = consumer(&bs, &[("group.id", "g-desc")]);
    let committed = c2.committed_offsets(tpl, TIMEOUT).unwrap();
    assert_eq!(
        committed.elements()[0].offset(),
        Offset::Invalid,
        "offsets went with the group"
    );
}
