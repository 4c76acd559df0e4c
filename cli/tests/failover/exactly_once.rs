//! Exactly-once read-process-write across SIGKILLs (issue 11, "Failure").
//!
//! A loop thread consumes topic A with `isolation.level=read_committed` in a
//! consumer group and writes one record to topic B per record of A, in
//! transactions that also carry the consumed offsets
//! (`send_offsets_to_transaction`, KIP-98/KIP-447). Meanwhile the main
//! thread SIGKILLs, in turn, the leader of the `__transaction_state`
//! partition that coordinates the loop's transactional id, the leader of a
//! partition of A and the leader of a partition of B, lets the loop commit
//! more while the node is down, restarts it and waits until it is back in
//! every ISR. At the end B, read with read_committed, holds each record of
//! A exactly once and in A's order, per partition; read_uncommitted may
//! show more (aborted attempts), read_committed none of them.
//!
//! The loop itself is in `eos_loop.rs`. Debugging aids are listed there.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_testkit::cluster::ProcessCluster;
use rivulet_testkit::kafka::{
    block_on, cluster_client_config, high_watermark, wait_for_partitions, PartitionView,
};
use rivulet_testkit::poll::Poll;
use rivulet_testkit::raw::raw_request;
use std::sync::{Arc, Mutex};

use crate::eos_loop::*;
use crate::harness::*;
use crate::rounds;

/// Fill every A partition with `per_partition` numbered records through an
/// idempotent acks=all producer; each record `seq` lands at offset `seq`.
fn fill_source(bootstrap: &str, per_partition: u64) {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let p: BaseProducer<Reports> = cluster_client_config(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create_with_context(Reports(tally.clone()))
        .unwrap();
    for seq in 0..per_partition {
        for part in 0..PARTITIONS {
            let v = value(part, seq);
            while let Err((e, _)) =
                p.send::<(), _>(BaseRecord::to(SOURCE).partition(part).payload(&v))
            {
                assert!(
                    matches!(
                        e,
                        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
                    ),
                    "{e}"
                );
                p.poll(Duration::from_millis(10));
            }
        }
    }
    p.flush(TIMEOUT).unwrap();
    let t = tally.lock().unwrap();
    assert!(t.failed.is_empty(), "filling A: {:?}", t.failed);
    for ((part, seq), offset) in &t.acked {
        assert_eq!(
            *offset, *seq as i64,
            "A {part}: record {seq} at offset {offset}"
        );
    }
    assert_eq!(t.acked.len() as u64, per_partition * PARTITIONS as u64);
}

/// Every record of B's `partition` readable with `isolation`, from the
/// beginning to its end (the LSO for read_committed): (A partition,
/// A offset, A value) per record, in B's order.
fn read_sink(bootstrap: &str, partition: i32, isolation: &str) -> Vec<(i32, i64, String)> {
    let c: BaseConsumer = cluster_client_config(bootstrap)
        .set("group.id", "eos-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    // With read_committed this is the LSO; B ends with a control batch, so
    // the end is where the consumer's position reaches it, not a record.
    let end = high_watermark(&c, SINK, partition, TIMEOUT);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(SINK, partition, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let position = |c: &BaseConsumer| match c
        .position()
        .ok()
        .and_then(|t| t.find_partition(SINK, partition).map(|e| e.offset()))
    {
        Some(Offset::Offset(o)) => o,
        _ => -1,
    };
    Poll::new(TIMEOUT).every(Duration::ZERO).retry(
        format_args!("B/{partition} ({isolation}) up to {end}"),
        || {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => out.push(unprocessed(m.payload().unwrap())),
                Some(Err(KafkaError::PartitionEOF(_))) if position(&c) >= end => return Ok(()),
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => eprintln!("reader: {e} (retrying)"),
                None if position(&c) >= end => return Ok(()),
                None => {}
            }
            Err(format!(
                "read {} records, position {}",
                out.len(),
                position(&c)
            ))
        },
    );
    out
}

/// The topics whose partitions must all be fully in sync between kills.
const TOPICS: [&str; 4] = [SOURCE, SINK, "__transaction_state", "__consumer_offsets"];

fn wait_all_in_sync(
    meta: &BaseConsumer,
    what: &str,
) -> BTreeMap<&'static str, BTreeMap<i32, PartitionView>> {
    TOPICS
        .iter()
        .map(|t| {
            let ps = wait_for_partitions(meta, t, what, METADATA, |ps| {
                !ps.is_empty() && ps.values().all(|p| p.leader > 0 && p.isr.len() == NODES)
            });
            (*t, ps)
        })
        .collect()
}

/// The coordinator of the loop's transactional id: the leader of its
/// `__transaction_state` partition per Metadata (Kafka's
/// `partitionFor`), which must be what FindCoordinator (key type 1) names.
fn txn_coordinator(cluster: &ProcessCluster, meta: &BaseConsumer) -> i32 {
    Poll::new(TIMEOUT).every(Duration::from_millis(200)).retry(
        "Metadata and FindCoordinator to agree on the transaction coordinator",
        || {
            let all = wait_all_in_sync(meta, "fully in sync");
            let ps = &all["__transaction_state"];
            let p = rivulet_broker::txn::log::partition_for(TRANSACTIONAL_ID, ps.len() as i32);
            let leader = ps[&p].leader;
            let req = FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![StrBytes::from_static_str(TRANSACTIONAL_ID)]);
            let asked = cluster.live()[0];
            let resp = block_on(raw_request(&cluster.addr(asked), 4, &req));
            let c = &resp.coordinators[0];
            if c.error_code == 0 && c.node_id.0 == leader {
                Ok(leader)
            } else {
                Err(format!(
                    "partition {p} led by {leader}; node {asked} answers {} (error {})",
                    c.node_id.0, c.error_code
                ))
            }
        },
    )
}

#[test]
fn read_process_write_is_exactly_once_across_leader_kills() {
    let started = Instant::now();
    let mut cluster = start_cluster();
    let bootstrap = cluster.bootstrap();
    create_replicated_topic(&bootstrap, SOURCE, PARTITIONS);
    create_replicated_topic(&bootstrap, SINK, PARTITIONS);
    let meta: BaseConsumer = cluster_client_config(&bootstrap).create().unwrap();
    let kills = 3 * rounds() as i64;
    let total = CHUNK * (kills + 2);
    let per_partition = (total / PARTITIONS as i64) as u64;
    let total = per_partition as i64 * PARTITIONS as i64;
    fill_source(&bootstrap, per_partition);

    let rpw = Loop::start(&bootstrap);
    rpw.wait_committed(rpw.allow(CHUNK));
    let mut killed = Vec::new();
    for round in 0..rounds() {
        for kind in ["transaction coordinator", "leader of A", "leader of B"] {
            let all = wait_all_in_sync(&meta, "fully in sync");
            let victim = match kind {
                "transaction coordinator" => txn_coordinator(&cluster, &meta),
                "leader of A" => all[SOURCE][&(round as i32 % PARTITIONS)].leader,
                _ => all[SINK][&((round as i32 + 1) % PARTITIONS)].leader,
            };
            // Kill while a transaction is open, its records written to B
            // (and, for the leader of A, while the consumer fetches from it).
            let before = rpw.committed();
            rpw.hold_next();
            let target = rpw.allow(CHUNK);
            rpw.wait_held();
            let t0 = Instant::now();
            cluster.kill(victim);
            killed.push(victim);
            rpw.release();
            rpw.wait_committed(target);
            let down = t0.elapsed();
            cluster.restart(victim);
            wait_all_in_sync(&meta, "with the restarted node back in every ISR");
            eprintln!(
                "round {round}: killed the {kind}, node {victim}; the loop committed \
                 {} records while it was down ({down:?}); back in sync after {:?}",
                target - before,
                t0.elapsed()
            );
        }
    }
    rpw.allow(total);
    rpw.wait_committed(total);
    let progress = rpw.finish();
    eprintln!("killed {killed:?}; loop: {progress:?}");

    // The group's committed offsets are A's ends, per the coordinator too.
    let probe: BaseConsumer = cluster_client_config(&bootstrap)
        .set("group.id", GROUP)
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut all = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        all.add_partition(SOURCE, p);
    }
    let committed = probe.committed_offsets(all, TIMEOUT).unwrap();
    for p in 0..PARTITIONS {
        let end = high_watermark(&meta, SOURCE, p, TIMEOUT);
        assert_eq!(end, per_partition as i64, "A/{p} end offset");
        assert_eq!(
            committed.find_partition(SOURCE, p).map(|e| e.offset()),
            Some(Offset::Offset(end)),
            "the group's committed offset of A/{p}"
        );
    }

    let mut hidden = 0;
    for p in 0..PARTITIONS {
        let seen = read_sink(&bootstrap, p, "read_committed");
        let want: Vec<(i32, i64, String)> = (0..per_partition)
            .map(|o| (p, o as i64, value(p, o)))
            .collect();
        if seen != want {
            let mut count: BTreeMap<i64, u32> = BTreeMap::new();
            for (_, o, _) in &seen {
                *count.entry(*o).or_default() += 1;
            }
            let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).take(10).collect();
            let missing: Vec<_> = (0..per_partition as i64)
                .filter(|o| !count.contains_key(o))
                .take(10)
                .collect();
            let first_bad = seen.iter().zip(&want).position(|(a, b)| a != b);
            panic!(
                "B/{p} read_committed is not A/{p} exactly once in order: {} records for {}; \
                 repeated (offset, times) {twice:?}; missing {missing:?}; first difference at \
                 index {first_bad:?}: {:?}",
                seen.len(),
                want.len(),
                first_bad.and_then(|i| seen.get(i)),
            );
        }
        // read_uncommitted also shows the aborted attempts: every record
        // read_committed hid is a repeat of one of A's records.
        let all = read_sink(&bootstrap, p, "read_uncommitted");
        assert!(
            all.len() >= seen.len(),
            "B/{p}: read_uncommitted shows less"
        );
        for (ap, o, v) in &all {
            assert!(
                *ap == p && (0..per_partition as i64).contains(o) && *v == value(p, *o as u64),
                "B/{p} holds a record that is no processed record of A/{p}: {ap}:{o}|{v}"
            );
        }
        hidden += all.len() - seen.len();
    }
    assert!(
        hidden as u64 >= progress.deliberately_aborted_records && hidden > 0,
        "read_uncommitted shows {hidden} records more than read_committed, but {} records \
         were written in transactions the loop aborted",
        progress.deliberately_aborted_records
    );
    eprintln!(
        "B holds {total} records exactly once; read_committed hid {hidden} aborted ones; \
         whole test took {:?}",
        started.elapsed()
    );
}
