//! The group and its offsets across restarts, protocol switches,
//! transactions, and classic members rolled to the consumer protocol.

use super::*;

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
    roll_classic_members("cooperative-sticky", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_classic_members_are_rolled_one_by_one_to_the_consumer_protocol() {
    roll_classic_members("range", false).await;
}

/// And back (the downgrade): once the last consumer-protocol member is
/// replaced by a classic one, the group is a classic group again (not a
/// consumer group for ConsumerGroupDescribe) whose members split the
/// partitions themselves; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_rolled_to_the_consumer_protocol_and_back_downgrade_the_group() {
    roll_classic_members("cooperative-sticky", true).await;
}

async fn roll_classic_members(strategy: &'static str, back: bool) {
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
        if !back {
            std::thread::sleep(Duration::from_millis(500));
            return (received, vec![a2, b2, c]);
        }
        // Back to classic, one by one: still a consumer group while a
        // consumer-protocol member is left.
        received.extend(a2.stop());
        let a3 = Member::start(&bs2, "g-mig", &["mig"], classic);
        wait_until("a back on classic", || {
            covers(&[&a3, &b2, &c], "mig", 4, &[1, 1, 2])
        });
        received.extend(b2.stop());
        let b3 = Member::start(&bs2, "g-mig", &["mig"], classic);
        wait_until("b back on classic", || {
            covers(&[&a3, &b3, &c], "mig", 4, &[1, 1, 2])
        });
        let d = block_on(async { Raw::connect(&bs2).await.describe("g-mig").await });
        assert_eq!((d.error_code, d.members.len()), (0, 3));
        // The last consumer-protocol member leaves: a classic group again.
        received.extend(c.stop());
        wait_until("the classic members split the partitions", || {
            covers(&[&a3, &b3], "mig", 4, &[2, 2])
        });
        let d = block_on(async { Raw::connect(&bs2).await.describe("g-mig").await });
        assert_eq!(d.error_code, 69, "GROUP_ID_NOT_FOUND: not a consumer group");
        let c3 = Member::start(&bs2, "g-mig", &["mig"], classic);
        wait_until("three classic members", || {
            covers(&[&a3, &b3, &c3], "mig", 4, &[1, 1, 2])
        });
        std::thread::sleep(Duration::from_millis(500));
        (received, vec![a3, b3, c3])
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
