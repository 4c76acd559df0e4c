//! Members splitting, joining and leaving; session expiry; regex and static
//! members; partitions added to a subscribed topic.

use super::*;

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
