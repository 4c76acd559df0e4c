//! Failover end to end: three real `rivulet` processes on loopback, killed
//! with SIGKILL while a real client (rdkafka) writes and reads.
//!
//! - `acks_all_survives_leader_kills_*`: an RF-3 topic with
//!   `min.insync.replicas=2`; a producer with `acks=all` writes a numbered
//!   sequence to every partition while the test SIGKILLs the leader of a
//!   partition, restarts it, waits for it to rejoin every ISR, and goes on
//!   with another partition's leader (a different node each round). At the
//!   end a consumer reads the whole topic: every acknowledged record is at
//!   the offset its acknowledgement named, each partition's sequence is
//!   strictly increasing (no duplicate, no reordering) and holds nothing that
//!   was not sent. With idempotence on, nothing may fail at all, so each
//!   partition is exactly the sent sequence. Then a lone surviving replica
//!   refuses acks=all with NOT_ENOUGH_REPLICAS.
//! - `consumer_group_survives_coordinator_failover`: the group coordinator's
//!   node is killed; the committed offsets survive on the new coordinator and
//!   the group member carries on to the end of the topic; the same for a
//!   KIP-848 consumer group (`consumer_protocol_group_survives_coordinator_failover`).
//!
//! - `read_process_write_is_exactly_once_across_leader_kills` (in
//!   `exactly_once.rs`): a transactional consume-transform-produce loop
//!   while the transaction coordinator and the leaders of its input and
//!   output are killed; the output holds every input record exactly once.
//!
//! - `fast.rs` (issue 15): the unavailability window of leader SIGKILLs
//!   with default settings, bounded per kill; no fencing of busy nodes.
//! - `rolling.rs`: `rivulet cluster restart --rolling` under a producer and
//!   a consumer fails no delivery.
//!
//! Rounds: `RIVULET_CHAOS_ROUNDS` (default 3) kills per test; the longer
//! chaos run is `scripts/chaos.sh` (README, "Tests").

mod eos_loop;
mod exactly_once;
mod fast;
mod harness;
mod rolling;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_testkit::kafka::{
    cluster_client_config, high_watermark, wait_for_partitions, PartitionView,
};
use rivulet_testkit::poll::Poll;

fn rounds() -> usize {
    std::env::var("RIVULET_CHAOS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// The invariants of one partition's log after the chaos: every
/// acknowledged record is at the offset its acknowledgement named, no record
/// is there twice (the non-idempotent writer does not retry either), nothing
/// is there that was not sent. An idempotent producer also keeps its send
/// order, so its partition must be exactly the sent sequence.
///
/// Without idempotence the order of records is the order the leader
/// received them, which need not be the send order: on a leader change
/// librdkafka may send newer records to the new leader before older ones it
/// still held for the dead one (seen here: a batch of older records landed
/// after newer ones, each at the offset its acknowledgement named).
fn check_partition(partition: i32, log: &[(i64, u64)], sent: u64, tally: &Tally, idempotent: bool) {
    let mut at: BTreeMap<u64, i64> = BTreeMap::new();
    for (o, seq) in log {
        assert!(
            *seq < sent,
            "partition {partition}: offset {o} holds {seq}, which was never sent"
        );
        if let Some(first) = at.insert(*seq, *o) {
            panic!("partition {partition}: record {seq} at offsets {first} and {o}");
        }
    }
    let mut acked = 0;
    for ((_, seq), offset) in tally.acked.range((partition, 0)..(partition + 1, 0)) {
        assert_eq!(
            at.get(seq),
            Some(offset),
            "partition {partition}: acknowledged record {seq} is not at offset {offset}"
        );
        acked += 1;
    }
    assert!(acked > 0, "partition {partition}: nothing acknowledged");
    let reordered = log.windows(2).filter(|w| w[0].1 > w[1].1).count();
    if idempotent {
        let want: Vec<u64> = (0..sent).collect();
        let got: Vec<u64> = log.iter().map(|(_, s)| *s).collect();
        assert_eq!(
            got, want,
            "partition {partition}: the idempotent producer's sequence, exactly"
        );
    } else if reordered > 0 {
        eprintln!("partition {partition}: the client reordered records {reordered} times");
    }
}

fn acks_all_survives_leader_kills(idempotent: bool) {
    let started = Instant::now();
    let mut cluster = start_cluster();
    let bootstrap = cluster.bootstrap();
    let topic = "chaos";
    let partitions = 3;
    create_replicated_topic(&bootstrap, topic, partitions);
    let meta: BaseConsumer = cluster_client_config(&bootstrap).create().unwrap();
    let all_in_sync = |ps: &BTreeMap<i32, PartitionView>| {
        ps.len() == partitions as usize && ps.values().all(|p| p.isr.len() == 3 && p.leader > 0)
    };
    wait_for_partitions(&meta, topic, "fully in sync", METADATA, all_in_sync);

    let writer = Writer::start(&bootstrap, topic, partitions, idempotent);
    writer.wait_acked(0, 300);
    let mut killed = Vec::new();
    for round in 0..rounds() {
        // Kill the leader of a partition chosen round-robin: partitions'
        // preferred leaders differ, so the victims do too.
        let ps = wait_for_partitions(&meta, topic, "fully in sync", METADATA, all_in_sync);
        let victim = ps[&((round % partitions as usize) as i32)].leader;
        let before = writer.acked();
        let t0 = Instant::now();
        cluster.kill(victim);
        killed.push(victim);
        // The controller fences it: it leaves every ISR, and the partitions
        // it led get a leader from the rest of their ISR.
        let moved = wait_for_partitions(
            &meta,
            topic,
            "led and in sync without the killed node",
            METADATA,
            |ps| {
                ps.values()
                    .all(|p| p.leader > 0 && p.leader != victim && !p.isr.contains(&victim))
            },
        );
        let moved_after = t0.elapsed();
        writer.wait_acked(before, 200);
        eprintln!(
            "round {round}: killed node {victim}; leaders moved in {moved_after:?}, \
             200 more acks after {:?}; {moved:?}",
            t0.elapsed()
        );
        cluster.restart(victim);
        let t1 = Instant::now();
        wait_for_partitions(
            &meta,
            topic,
            "with the restarted node back in every ISR",
            METADATA,
            |ps| ps.values().all(|p| p.isr.contains(&victim)),
        );
        eprintln!(
            "round {round}: node {victim} back in every ISR after {:?}",
            t1.elapsed()
        );
        writer.wait_acked(writer.acked(), 100);
    }
    let (sent, tally) = writer.finish();
    eprintln!(
        "sent {sent:?}, acknowledged {}, failed {:?}, killed {killed:?}",
        tally.acked.len(),
        tally.failed
    );
    if rounds() >= 2 {
        let mut distinct = killed.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() >= 2, "every kill hit node {killed:?}");
    }
    if idempotent {
        assert!(
            tally.failed.is_empty(),
            "an idempotent producer with retries lost records: {:?}",
            tally.failed
        );
    }
    for p in 0..partitions {
        let log = read_partition(&bootstrap, topic, p);
        check_partition(p, &log, sent[p as usize], &tally, idempotent);
    }

    // A lone survivor: kill one replica; once the ISR has shrunk, stop
    // another cleanly (its controlled shutdown leaves the ISR while the
    // metadata quorum still has a majority); the last one, leading alone,
    // refuses acks=all.
    let ps = wait_for_partitions(&meta, topic, "fully in sync", METADATA, all_in_sync);
    let leader = ps[&0].leader;
    let others: Vec<i32> = cluster
        .live()
        .into_iter()
        .filter(|n| *n != leader)
        .collect();
    cluster.kill(others[0]);
    wait_for_partitions(&meta, topic, "shrunk to two", METADATA, |ps| {
        ps[&0].isr.len() == 2 && ps[&0].leader == leader
    });
    cluster.terminate(others[1], TIMEOUT);
    let lone = cluster_client_config(&cluster.addr(leader))
        .create::<BaseConsumer>()
        .unwrap();
    wait_for_partitions(
        &lone,
        topic,
        "led by the lone survivor alone",
        METADATA,
        |ps| ps[&0].isr == [leader] && ps[&0].leader == leader,
    );
    let outcome = Arc::new(Mutex::new(Tally::default()));
    let p: BaseProducer<Reports> = cluster_client_config(&cluster.addr(leader))
        .set("acks", "all")
        .set("message.send.max.retries", "0")
        .set("message.timeout.ms", "10000")
        .create_with_context(Reports(outcome.clone()))
        .unwrap();
    p.send::<(), _>(BaseRecord::to(topic).partition(0).payload("lonely"))
        .map_err(|(e, _)| e)
        .unwrap();
    p.flush(Duration::from_secs(20)).unwrap();
    let outcome = outcome.lock().unwrap();
    assert!(
        outcome.acked.is_empty(),
        "the lone survivor acknowledged acks=all"
    );
    let errors: Vec<&String> = outcome.failed.keys().collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("NotEnoughReplicas"),
        "refused with {errors:?}"
    );
    eprintln!("whole test took {:?}", started.elapsed());
}

#[test]
fn acks_all_survives_leader_kills_without_idempotence() {
    acks_all_survives_leader_kills(false);
}

#[test]
fn acks_all_survives_leader_kills_with_idempotence() {
    acks_all_survives_leader_kills(true);
}

/// The node that coordinates `group`: the leader of its partition of
/// `__consumer_offsets`, once every replica is in sync.
fn coordinator(meta: &BaseConsumer, group: &str) -> (i32, PartitionView) {
    let ps = wait_for_partitions(
        meta,
        "__consumer_offsets",
        "fully in sync",
        METADATA,
        |ps| !ps.is_empty() && ps.values().all(|p| p.leader > 0 && p.isr.len() == 3),
    );
    let p = rivulet_broker::group::offsets::partition_for(group, ps.len() as i32);
    (p, ps[&p].clone())
}

/// A group member's progress: the committed offset of each partition.
fn committed(c: &BaseConsumer, topic: &str, partitions: i32) -> Vec<i64> {
    try_committed(c, topic, partitions, Duration::from_secs(20)).expect("committed offsets")
}

/// The committed offset of each partition (-1 for none) per `c`'s group
/// coordinator, or why none answered within `timeout`.
fn try_committed(
    c: &BaseConsumer,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> KafkaResult<Vec<i64>> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, timeout)?;
    Ok((0..partitions)
        .map(|p| match got.find_partition(topic, p).unwrap().offset() {
            Offset::Offset(o) => o,
            _ => -1,
        })
        .collect())
}

/// Poll `member` until `seen` holds `n` distinct records (a redelivery after
/// a rebalance counts once more in its tally, not as a new record).
fn consume_until(member: &BaseConsumer, seen: &mut BTreeMap<(i32, u64), u32>, n: usize) {
    // The 100 ms poll is the wait: no sleep between checks.
    Poll::new(TIMEOUT).every(Duration::ZERO).retry(
        format_args!("the group member to see {n} records"),
        || {
            if seen.len() >= n {
                return Ok(());
            }
            match member.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    *seen.entry(parse(m.payload().unwrap())).or_default() += 1;
                }
                Some(Err(e)) => eprintln!("member: {e} (retrying)"),
                None => {}
            }
            if seen.len() >= n {
                Ok(())
            } else {
                Err(format!("stalled at {} of {n} records", seen.len()))
            }
        },
    );
}

#[test]
fn consumer_group_survives_coordinator_failover() {
    group_survives_coordinator_failover("survivors", &[("session.timeout.ms", "10000")]);
}

/// The same with a KIP-848 consumer group (`group.protocol=consumer`): the
/// new coordinator rebuilds the group (members, epochs, assignment) from
/// `__consumer_offsets` and the member heartbeats on without rejoining.
#[test]
fn consumer_protocol_group_survives_coordinator_failover() {
    group_survives_coordinator_failover("survivors-848", &[("group.protocol", "consumer")]);
}

fn group_survives_coordinator_failover(group: &str, settings: &[(&str, &str)]) {
    let mut cluster = start_cluster();
    let bootstrap = cluster.bootstrap();
    let topic = "work";
    let partitions = 3;
    create_replicated_topic(&bootstrap, topic, partitions);
    let meta: BaseConsumer = cluster_client_config(&bootstrap).create().unwrap();
    wait_for_partitions(&meta, topic, "fully in sync", METADATA, |ps| {
        ps.len() == 3 && ps.values().all(|p| p.isr.len() == 3)
    });
    let writer = Writer::start(&bootstrap, topic, partitions, true);
    writer.wait_acked(0, 1500);
    let (sent, tally) = writer.finish();
    let total: u64 = sent.iter().sum();
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);

    let mut config = cluster_client_config(&bootstrap);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    for (k, v) in settings {
        config.set(*k, *v);
    }
    let member: BaseConsumer = config.create().unwrap();
    member.subscribe(&[topic]).unwrap();
    let mut seen: BTreeMap<(i32, u64), u32> = BTreeMap::new();
    consume_until(&member, &mut seen, total as usize / 2);
    member.commit_consumer_state(CommitMode::Sync).unwrap();
    let before = committed(&member, topic, partitions);
    // The idempotent writer lost nothing, so record `seq` of a partition is
    // at offset `seq`: the commit is one past the last record seen there.
    let positions: Vec<i64> = (0..partitions)
        .map(|p| {
            seen.range((p, 0)..(p + 1, 0))
                .next_back()
                .map_or(-1, |((_, seq), _)| *seq as i64 + 1)
        })
        .collect();
    assert_eq!(before, positions, "committed offsets");

    // The offsets topic is replicated to all three nodes (min(3, brokers)).
    let (offsets_partition, view) = coordinator(&meta, group);
    assert_eq!(view.replicas, [1, 2, 3], "__consumer_offsets replicas");
    let victim = view.leader;
    cluster.kill(victim);
    let t0 = Instant::now();
    wait_for_partitions(
        &meta,
        "__consumer_offsets",
        "led by a live node",
        METADATA,
        |ps| ps[&offsets_partition].leader > 0 && ps[&offsets_partition].leader != victim,
    );
    // The new coordinator answers with what was committed before the kill.
    let probe: BaseConsumer = cluster_client_config(&bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let now = Poll::new(TIMEOUT)
        .every(Duration::from_millis(200))
        .retry("a coordinator to answer", || {
            try_committed(&probe, topic, partitions, Duration::from_secs(5))
        });
    assert_eq!(now, before, "committed offsets after the coordinator died");
    eprintln!("new coordinator answered after {:?}", t0.elapsed());

    // The member carries on through the new coordinator to the end.
    consume_until(&member, &mut seen, total as usize);
    member.commit_consumer_state(CommitMode::Sync).unwrap();
    let after = committed(&member, topic, partitions);
    let ends: Vec<i64> = (0..partitions)
        .map(|p| high_watermark(&meta, topic, p, TIMEOUT))
        .collect();
    assert_eq!(
        after, ends,
        "the group committed the end of every partition"
    );
    for p in 0..partitions {
        for seq in 0..sent[p as usize] {
            assert!(
                seen.contains_key(&(p, seq)),
                "record {p}:{seq} never consumed"
            );
        }
    }
    drop(member);
    drop(probe);
    // The killed node comes back and rejoins the offsets topic's ISR.
    cluster.restart(victim);
    wait_for_partitions(
        &meta,
        "__consumer_offsets",
        "with the node back",
        METADATA,
        |ps| ps[&offsets_partition].isr.contains(&victim),
    );
}
