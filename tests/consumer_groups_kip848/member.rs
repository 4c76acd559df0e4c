//! A `group.protocol=consumer` member on its own thread, and the checks on
//! what members own, shared by the KIP-848 tests and the group benchmark
//! (`benches/groups`, which includes this file).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use rivulet_testkit::prelude::*;

/// A record to produce: key, value.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// A consumed record: topic, partition, offset, value.
pub type Received = (String, i32, i64, String);

/// Records the partitions librdkafka revokes and assigns.
#[derive(Default, Clone)]
pub struct Tracker {
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
pub struct Member {
    stop: Arc<AtomicBool>,
    assigned: Arc<Mutex<BTreeSet<(String, i32)>>>,
    received: Arc<Mutex<Vec<Received>>>,
    /// When each record arrived (partition, time), for the benchmark.
    pub stamps: Arc<Mutex<Vec<(i32, Instant)>>>,
    revoked: Arc<Mutex<Vec<(String, i32)>>>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    pub fn start(bootstrap: &str, group: &str, topics: &[&str], extra: &[(&str, &str)]) -> Member {
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

    pub fn assigned(&self) -> BTreeSet<(String, i32)> {
        self.assigned.lock().unwrap().clone()
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn revoked(&self) -> Vec<(String, i32)> {
        self.revoked.lock().unwrap().clone()
    }

    pub fn stop(mut self) -> Vec<Received> {
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

pub fn wait_until(what: &str, f: impl Fn() -> bool) {
    Poll::new(Duration::from_secs(60))
        .every(Duration::from_millis(50))
        .wait(what, f)
}

/// The members' partitions of `topic` are an exact, non-overlapping cover
/// of 0..n with these sizes.
pub fn covers(members: &[&Member], topic: &str, n: i32, sizes: &[usize]) -> bool {
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

pub async fn produce_numbered(
    bs: &str,
    topic: &str,
    partitions: i32,
    per_partition: usize,
    tag: &str,
) {
    let p = producer(bs, &[("acks", "all")]);
    for part in 0..partitions {
        let values: Vec<String> = (0..per_partition)
            .map(|i| format!("{tag}-p{part}-{i}"))
            .collect();
        let recs: Vec<KeyValue<'_>> = values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
        produce_all(&p, topic, part, &recs).await;
    }
}

pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}
