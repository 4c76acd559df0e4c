//! `rivulet cluster restart --rolling` under load (issue 15, "Failover"):
//! a cluster from `rivulet cluster up` (default settings), an idempotent
//! acks=all producer writing numbered records to three partitions and a
//! consumer reading them while every node is restarted in turn (SIGTERM:
//! a controlled shutdown that moves its leaderships first). No delivery
//! may fail, every acknowledged record is read back by the consumer that
//! ran through the restarts, and each partition is exactly the sequence
//! sent.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::{cluster_client_config, wait_for_partitions};
use rivulet_testkit::ports::free_port_block_in;
use rivulet_testkit::process::run;

use super::harness::{create_replicated_topic, parse, read_partition, Writer, METADATA, RIVULET};

const RUN_LIMIT: Duration = Duration::from_secs(300);

fn rivulet(args: &[&str]) -> rivulet_testkit::process::Run {
    run(Path::new(RIVULET), args, "", RUN_LIMIT)
}

/// Brings the cluster down however the test ends.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = rivulet(&["cluster", "down", "--dir", &self.0, "--timeout", "5"]);
    }
}

#[test]
fn rolling_restart_fails_no_request() {
    let dir = temp_dir();
    let path = dir.path().to_str().unwrap().to_string();
    let mut up = None;
    for _ in 0..5 {
        let base = free_port_block_in(20_000..30_000, &[0, 1, 2, 100, 101, 102]).to_string();
        let r = rivulet(&["cluster", "up", "--dir", &path, "--base-port", &base]);
        if r.stderr.contains("is not free") {
            continue;
        }
        assert!(r.success, "cluster up: {}", r.stderr);
        up = Some(r);
        break;
    }
    let _down = Down(path.clone());
    let bootstrap = up.expect("a free base port").stdout.trim().to_string();
    let topic = "rolling";
    let partitions = 3;
    create_replicated_topic(&bootstrap, topic, partitions);
    let meta: BaseConsumer = cluster_client_config(&bootstrap).create().unwrap();
    wait_for_partitions(&meta, topic, "fully in sync", METADATA, |ps| {
        ps.len() == 3 && ps.values().all(|p| p.leader > 0 && p.isr.len() == 3)
    });

    // A consumer reading every partition from the start, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(BTreeSet::<(i32, u64)>::new()));
    let reader = {
        let (stop, seen, bootstrap) = (stop.clone(), seen.clone(), bootstrap.clone());
        std::thread::spawn(move || {
            let c: BaseConsumer = cluster_client_config(&bootstrap)
                .set("group.id", "rolling-reader")
                .set("enable.auto.commit", "false")
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                tpl.add_partition_offset(topic, p, Offset::Beginning)
                    .unwrap();
            }
            c.assign(&tpl).unwrap();
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match c.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        seen.lock()
                            .unwrap()
                            .insert(parse(m.payload().unwrap_or_default()));
                    }
                    Some(Err(e)) => {
                        errors += 1;
                        eprintln!("consumer: {e}");
                    }
                    None => {}
                }
            }
            errors
        })
    };
    let writer = Writer::start(&bootstrap, topic, partitions, true);
    writer.wait_acked(0, 300);

    let t0 = Instant::now();
    let r = rivulet(&["cluster", "restart", "--rolling", "--dir", &path]);
    eprintln!("{}{}", r.stdout, r.stderr);
    assert!(r.success, "cluster restart --rolling failed");
    eprintln!("rolling restart took {:?}", t0.elapsed());
    for n in 1..=3 {
        assert!(
            r.stdout.contains(&format!("node {n}: stopped")),
            "node {n} restarted: {}",
            r.stdout
        );
    }
    writer.wait_acked(writer.acked(), 300);
    let (sent, tally) = writer.finish();
    eprintln!(
        "sent {sent:?}, acknowledged {}, failed {:?}",
        tally.acked.len(),
        tally.failed
    );
    assert!(
        tally.failed.is_empty(),
        "deliveries failed during the rolling restart: {:?}",
        tally.failed
    );
    // The consumer that ran through the restarts reads everything acked.
    let all_read = rivulet_testkit::poll::Poll::new(Duration::from_secs(60)).until(|| {
        let seen = seen.lock().unwrap();
        tally.acked.keys().all(|k| seen.contains(k))
    });
    stop.store(true, Ordering::Relaxed);
    let consumer_errors = reader.join().unwrap();
    assert!(
        all_read,
        "the consumer missed acknowledged records ({consumer_errors} consumer errors)"
    );
    for p in 0..partitions {
        let log = read_partition(&bootstrap, topic, p);
        let got: Vec<u64> = log.iter().map(|(_, s)| *s).collect();
        assert_eq!(
            got,
            (0..sent[p as usize]).collect::<Vec<_>>(),
            "partition {p}: exactly the sequence sent"
        );
        for ((_, seq), offset) in tally.acked.range((p, 0)..(p + 1, 0)) {
            assert_eq!(log.get(*offset as usize).map(|(_, s)| *s), Some(*seq));
        }
    }
}
