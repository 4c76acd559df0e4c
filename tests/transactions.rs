//! Transactions through librdkafka (rdkafka): commit and abort across
//! partitions, read_committed versus read_uncommitted readers, the last
//! stable offset holding read_committed readers behind an open transaction,
//! fencing of a producer by a newer one with the same transactional id,
//! the coordinator aborting a transaction that outlived its timeout, and
//! consumed offsets committed with the transaction
//! (`send_offsets_to_transaction`) or dropped with its abort.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_testkit::prelude::*;

/// A broker on its own multi-threaded runtime (kept alive by the caller),
/// so the test's blocking librdkafka calls never starve it.
struct Broker {
    _rt: tokio::runtime::Runtime,
    broker: TestBroker,
    _dir: tempfile::TempDir,
}

fn start(extra: &[(&str, &str)]) -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let broker = rt.block_on(TestBroker::start(dir.path(), extra));
    Broker {
        _rt: rt,
        broker,
        _dir: dir,
    }
}

fn txn_producer(bootstrap: &str, id: &str, extra: &[(&str, &str)]) -> BaseProducer {
    let mut c = client_config(bootstrap);
    c.set("transactional.id", id)
        .set("message.timeout.ms", "15000")
        .set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let p: BaseProducer = c.create().expect("a transactional producer");
    p.init_transactions(TIMEOUT).expect("init_transactions");
    p
}

fn send(p: &BaseProducer, topic: &str, partition: i32, value: &str) {
    p.send(
        BaseRecord::<(), str>::to(topic)
            .partition(partition)
            .payload(value),
    )
    .map_err(|(e, _)| e)
    .expect("enqueue a record");
}

/// Non-transactional records (acks=all) to partition 0.
fn write_plain(p: &rdkafka::producer::FutureProducer, topic: &str, vals: &[&str]) {
    let kv: Vec<KeyValue<'_>> = vals.iter().map(|v| (None, Some(v.as_bytes()))).collect();
    block_on(produce_all(p, topic, 0, &kv));
}

fn reader(bootstrap: &str, isolation: &str) -> BaseConsumer {
    consumer(bootstrap, &[("isolation.level", isolation)])
}

fn values(got: &[Got]) -> Vec<String> {
    got.iter()
        .map(|g| String::from_utf8_lossy(g.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

/// Every value a reader gets from `topic/partition` from the start, once
/// `expect` of them arrived and nothing more came for a second.
fn read_all(
    bootstrap: &str,
    isolation: &str,
    topic: &str,
    partition: i32,
    expect: usize,
) -> Vec<String> {
    let c = reader(bootstrap, isolation);
    let mut got = consume_n(&c, topic, partition, Offset::Beginning, expect);
    got.extend(drain(&c, Duration::from_secs(1)));
    values(&got)
}

#[test]
fn committed_records_are_seen_and_aborted_ones_only_by_read_uncommitted() {
    let b = start(&[]);
    let bs = b.broker.bootstrap();
    block_on(create_topic(&bs, "tx", 2, &[]));
    let p = txn_producer(&bs, "tx-commit-abort", &[]);

    p.begin_transaction().unwrap();
    send(&p, "tx", 0, "a0");
    send(&p, "tx", 0, "a1");
    send(&p, "tx", 1, "b0");
    p.commit_transaction(TIMEOUT).expect("commit");

    p.begin_transaction().unwrap();
    send(&p, "tx", 0, "x0");
    send(&p, "tx", 1, "x1");
    p.flush(TIMEOUT).unwrap();
    p.abort_transaction(TIMEOUT).expect("abort");

    p.begin_transaction().unwrap();
    send(&p, "tx", 0, "c0");
    p.commit_transaction(TIMEOUT).expect("commit");

    assert_eq!(
        read_all(&bs, "read_committed", "tx", 0, 3),
        ["a0", "a1", "c0"]
    );
    assert_eq!(read_all(&bs, "read_committed", "tx", 1, 1), ["b0"]);
    assert_eq!(
        read_all(&bs, "read_uncommitted", "tx", 0, 4),
        ["a0", "a1", "x0", "c0"]
    );
    assert_eq!(read_all(&bs, "read_uncommitted", "tx", 1, 2), ["b0", "x1"]);
}

#[test]
fn an_open_transaction_holds_read_committed_readers_at_its_first_offset() {
    let b = start(&[]);
    let bs = b.broker.bootstrap();
    block_on(create_topic(&bs, "lso", 1, &[]));
    let p = txn_producer(&bs, "tx-lso", &[]);
    let plain = producer(&bs, &[]);

    write_plain(&plain, "lso", &["before"]);
    p.begin_transaction().unwrap();
    send(&p, "lso", 0, "t0");
    p.flush(TIMEOUT).unwrap();
    // Written after the open transaction's first record: held back too.
    write_plain(&plain, "lso", &["after"]);

    let committed = reader(&bs, "read_committed");
    assert_eq!(
        values(&consume_n(&committed, "lso", 0, Offset::Beginning, 1)),
        ["before"]
    );
    assert!(
        drain(&committed, Duration::from_secs(2)).is_empty(),
        "read_committed must stop at the open transaction"
    );
    assert_eq!(
        read_all(&bs, "read_uncommitted", "lso", 0, 3),
        ["before", "t0", "after"]
    );

    p.commit_transaction(TIMEOUT).expect("commit");
    let rest = consume_n(&committed, "lso", 0, Offset::Offset(1), 2);
    assert_eq!(values(&rest), ["t0", "after"]);
}

#[test]
fn a_new_producer_with_the_same_id_fences_the_old_one_and_aborts_its_transaction() {
    let b = start(&[]);
    let bs = b.broker.bootstrap();
    block_on(create_topic(&bs, "fence", 1, &[]));
    let old = txn_producer(&bs, "tx-fence", &[]);
    old.begin_transaction().unwrap();
    send(&old, "fence", 0, "zombie");
    old.flush(TIMEOUT).unwrap();

    // The new instance's init aborts the open transaction and fences.
    let new = txn_producer(&bs, "tx-fence", &[]);
    let err = old
        .commit_transaction(TIMEOUT)
        .expect_err("a fenced producer cannot commit");
    match &err {
        KafkaError::Transaction(e) => assert!(e.is_fatal(), "fencing is fatal: {err}"),
        other => panic!("unexpected error {other}"),
    }

    new.begin_transaction().unwrap();
    send(&new, "fence", 0, "fresh");
    new.commit_transaction(TIMEOUT)
        .expect("commit by the new producer");
    assert_eq!(read_all(&bs, "read_committed", "fence", 0, 1), ["fresh"]);
    assert_eq!(
        read_all(&bs, "read_uncommitted", "fence", 0, 2),
        ["zombie", "fresh"]
    );
}

#[test]
fn the_coordinator_aborts_a_transaction_past_its_timeout() {
    let b = start(&[(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "100",
    )]);
    let bs = b.broker.bootstrap();
    block_on(create_topic(&bs, "slow", 1, &[]));
    let p = txn_producer(
        &bs,
        "tx-slow",
        &[
            ("transaction.timeout.ms", "1500"),
            ("socket.timeout.ms", "1500"),
            ("message.timeout.ms", "1500"),
        ],
    );
    let plain = producer(&bs, &[]);
    p.begin_transaction().unwrap();
    send(&p, "slow", 0, "abandoned");
    p.flush(TIMEOUT).unwrap();
    write_plain(&plain, "slow", &["later"]);

    // Once the coordinator aborts, the LSO moves past the abandoned record
    // and read_committed readers get the record written after it.
    let committed = reader(&bs, "read_committed");
    let got = consume_n(&committed, "slow", 0, Offset::Beginning, 1);
    assert_eq!(values(&got), ["later"]);
    assert!(
        p.commit_transaction(TIMEOUT).is_err(),
        "an aborted transaction cannot commit"
    );
}

#[test]
fn offsets_sent_with_a_transaction_commit_with_it_and_vanish_with_an_abort() {
    let b = start(&[]);
    let bs = b.broker.bootstrap();
    block_on(create_topic(&bs, "in", 1, &[]));
    block_on(create_topic(&bs, "out", 1, &[]));
    let plain = producer(&bs, &[]);
    write_plain(&plain, "in", &["1", "2", "3", "4"]);

    let group = consumer(
        &bs,
        &[("group.id", "rpw"), ("isolation.level", "read_committed")],
    );
    let p = txn_producer(&bs, "tx-rpw", &[]);
    let meta = group.group_metadata().expect("group metadata");
    let offsets = |next: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("in", 0, Offset::Offset(next))
            .unwrap();
        tpl
    };
    let committed = |c: &BaseConsumer| -> Offset {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("in", 0);
        let got = c
            .committed_offsets(tpl, TIMEOUT)
            .expect("committed offsets");
        got.find_partition("in", 0).expect("in/0").offset()
    };

    // Consume 2 records, produce their results, commit both together.
    p.begin_transaction().unwrap();
    send(&p, "out", 0, "r1");
    send(&p, "out", 0, "r2");
    p.send_offsets_to_transaction(&offsets(2), &meta, TIMEOUT)
        .expect("send offsets");
    p.commit_transaction(TIMEOUT).expect("commit");
    assert_eq!(committed(&group), Offset::Offset(2));

    // The next two are aborted: neither the results nor the offsets stay.
    p.begin_transaction().unwrap();
    send(&p, "out", 0, "r3");
    p.send_offsets_to_transaction(&offsets(4), &meta, TIMEOUT)
        .expect("send offsets");
    p.flush(TIMEOUT).unwrap();
    p.abort_transaction(TIMEOUT).expect("abort");
    assert_eq!(committed(&group), Offset::Offset(2));
    assert_eq!(read_all(&bs, "read_committed", "out", 0, 2), ["r1", "r2"]);

    // A plain commit still works for the group afterwards.
    group
        .commit(&offsets(3), CommitMode::Sync)
        .expect("plain commit");
    assert_eq!(committed(&group), Offset::Offset(3));
}

#[test]
fn admin_apis_describe_open_transactions_and_their_producers() {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::{
        DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, TopicName,
        TransactionalId,
    };
    use kafka_protocol::protocol::StrBytes;

    let b = start(&[]);
    let bs = b.broker.bootstrap();
    block_on(create_topic(&bs, "seen", 1, &[]));
    let p = txn_producer(&bs, "tx-seen", &[]);
    p.begin_transaction().unwrap();
    send(&p, "seen", 0, "v");
    p.flush(TIMEOUT).unwrap();

    let id = TransactionalId(StrBytes::from_static_str("tx-seen"));
    let described = block_on(raw_request(
        &bs,
        0,
        &DescribeTransactionsRequest::default().with_transactional_ids(vec![
            id.clone(),
            TransactionalId(StrBytes::from_static_str("tx-unknown")),
        ]),
    ));
    let s = &described.transaction_states[0];
    assert_eq!((s.error_code, s.transaction_state.as_str()), (0, "Ongoing"));
    assert_eq!(s.topics.len(), 1);
    assert_eq!(s.topics[0].topic.0.as_str(), "seen");
    assert_eq!(s.topics[0].partitions, [0]);
    assert_eq!(
        described.transaction_states[1].error_code, 105,
        "TRANSACTIONAL_ID_NOT_FOUND"
    );

    let listed = block_on(raw_request(&bs, 0, &ListTransactionsRequest::default()));
    assert!(listed
        .transaction_states
        .iter()
        .any(|t| t.transactional_id == id && t.transaction_state.as_str() == "Ongoing"));

    let producers = block_on(raw_request(
        &bs,
        0,
        &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(TopicName(StrBytes::from_static_str("seen")))
            .with_partition_indexes(vec![0])]),
    ));
    let part = &producers.topics[0].partitions[0];
    assert_eq!(part.error_code, 0);
    assert_eq!(part.active_producers.len(), 1);
    assert_eq!(part.active_producers[0].producer_id, s.producer_id);
    assert_eq!(part.active_producers[0].current_txn_start_offset, 0);

    p.commit_transaction(TIMEOUT).unwrap();
    let after = block_on(raw_request(
        &bs,
        0,
        &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(TopicName(StrBytes::from_static_str("seen")))
            .with_partition_indexes(vec![0])]),
    ));
    Poll::new(TIMEOUT).retry("the marker ends the open transaction", || {
        let now = block_on(raw_request(
            &bs,
            0,
            &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
                .with_name(TopicName(StrBytes::from_static_str("seen")))
                .with_partition_indexes(vec![0])]),
        ));
        match now.topics[0].partitions[0].active_producers[0].current_txn_start_offset {
            -1 => Ok(()),
            o => Err(format!("still open at {o}")),
        }
    });
    drop(after);
}

#[test]
fn transactions_span_partitions_led_by_every_node_of_a_cluster() {
    // Three nodes: the coordinator writes markers to partitions it leads
    // and sends WriteTxnMarkers to the other leaders; those leaders verify
    // first transactional batches with the coordinator over the wire
    // (AddPartitionsToTxn verify_only).
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let brokers = rt.block_on(start_cluster(dir.path(), 3, &[]));
    let bs = cluster_bootstrap(&brokers);
    block_on(create_topic_rf(
        &bs,
        "spread",
        3,
        3,
        &[("min.insync.replicas", "2")],
    ));
    wait_for_leaders(&bs, "spread", TIMEOUT);
    let leaders: std::collections::BTreeSet<i32> = {
        let c = consumer(&bs, &[]);
        partitions(&c, "spread")
            .expect("metadata")
            .values()
            .map(|p| p.leader)
            .collect()
    };
    assert_eq!(leaders.len(), 3, "one leader per node: {leaders:?}");

    let p = txn_producer(&bs, "tx-spread", &[]);
    p.begin_transaction().unwrap();
    for part in 0..3 {
        send(&p, "spread", part, &format!("c{part}"));
    }
    p.commit_transaction(TIMEOUT).expect("commit");
    p.begin_transaction().unwrap();
    for part in 0..3 {
        send(&p, "spread", part, &format!("x{part}"));
    }
    p.flush(TIMEOUT).unwrap();
    p.abort_transaction(TIMEOUT).expect("abort");
    p.begin_transaction().unwrap();
    for part in 0..3 {
        send(&p, "spread", part, &format!("d{part}"));
    }
    p.commit_transaction(TIMEOUT).expect("commit");

    for part in 0..3 {
        assert_eq!(
            read_all(&bs, "read_committed", "spread", part, 2),
            [format!("c{part}"), format!("d{part}")]
        );
        assert_eq!(
            read_all(&bs, "read_uncommitted", "spread", part, 3),
            [format!("c{part}"), format!("x{part}"), format!("d{part}")]
        );
    }
    drop(brokers);
    drop(rt);
}
