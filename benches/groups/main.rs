//! Consumer-group benchmark (issue 14): a member joins a 10-member group
//! consuming 100 partitions while a producer keeps writing to every
//! partition; for classic eager (range), classic cooperative-sticky and
//! KIP-848 (uniform) in one run: the time until every partition is consumed
//! again, the records the staying members consumed meanwhile, and the longest
//! pause of a staying member (a stop-the-world rebalance shows there).
//!
//! `cargo bench --bench groups` (a debug-profile broker is enough: the
//! figures are about protocol round trips, not CPU).

#[path = "../../tests/consumer_groups_kip848/member.rs"]
mod member;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use member::*;
use rivulet_testkit::prelude::*;

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us too:
    // there, only check that the bench starts.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(join_into_ten_members());
}

/// Issue 14's benchmark: a member joins a 10-member group consuming 100
/// partitions under a steady load; the time until every partition is
/// consumed again (each one yielded a record after the join and the
/// assignment covers all 100 over 11 members), and how many records the 10
/// members that stayed consumed in that window. Classic eager (range),
/// classic cooperative-sticky, KIP-848 (uniform), in one run:
/// `cargo test --test consumer_groups_kip848 -- --ignored --nocapture`.
async fn join_into_ten_members() {
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
