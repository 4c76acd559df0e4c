//! What the metrics endpoint costs the produce path: one `rivulet` broker
//! process, one librdkafka producer (`ThreadedProducer`, acks=1, linger.ms
//! 5, records of `METRICS_BENCH_SIZE` bytes, 1,024 by default) sending
//! `METRICS_BENCH_RECORDS` records (300,000) to a one-partition topic as fast
//! as its queue takes them, alternating runs with `/metrics` scraped every
//! `METRICS_BENCH_SCRAPE_MS` (1,000 ms) by a thread of this process and runs
//! not scraped, `METRICS_BENCH_REPEAT` (3) times each. Reports MB/s of record
//! values per run and the ratio of the medians (scraped / not scraped); the
//! counters and histograms the request path updates are there in both.
//!
//! The broker is `$RIVULET_BIN`, else the release build (built when missing
//! or stale; see `benches/common`). Run: `cargo bench --bench metrics_scrape`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use rivulet_broker::metrics::scrape;
use rivulet_testkit::dirs::bench_dir;
use rivulet_testkit::kafka::bench_client_config;
use rivulet_testkit::process::{BrokerProcess, NodeSpec};

fn produce(bootstrap: &str, topic: &str, n: usize, size: usize) -> f64 {
    let producer: ThreadedProducer<DefaultProducerContext> = bench_client_config(bootstrap)
        .set("acks", "1")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "10000")
        .create()
        .expect("a producer");
    let value = vec![b'v'; size];
    let t0 = Instant::now();
    for _ in 0..n {
        let mut rec = BaseRecord::<(), [u8]>::to(topic).payload(&value[..]);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    common::clients::wait_delivered(&producer, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}"));
    (n * size) as f64 / 1e6 / t0.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n = common::env_usize("METRICS_BENCH_RECORDS", 300_000);
    let size = common::env_usize("METRICS_BENCH_SIZE", 1024);
    let every = Duration::from_millis(common::env_usize("METRICS_BENCH_SCRAPE_MS", 1000) as u64);
    let repeat = common::env_usize("METRICS_BENCH_REPEAT", 3).max(1);
    let bin = common::rivulet_bin();
    let dir = bench_dir();
    let log = dir.path().join("broker.log");
    let mut broker = BrokerProcess::spawn(NodeSpec::new(&bin, dir.path().join("data"), &log));
    broker.wait_serving(Duration::from_secs(60));
    let bootstrap = broker.bootstrap();
    let addr = broker.metrics_addr();
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    println!(
        "metrics_scrape: {} ({n} records of {size} B, acks=1; scraped every {every:?})",
        bin.display()
    );
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let scrapes = Arc::new(AtomicU64::new(0));
    let scrape_ns = Arc::new(AtomicU64::new(0));
    for round in 0..repeat {
        // Each mode goes first every other round: a run after another
        // meets the page cache that one left dirty.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for scraped in order {
            let topic = format!("m-{round}-{scraped}");
            common::broker::create_topic(&rt, &mut broker, &topic, Duration::from_secs(60));
            let stop = Arc::new(AtomicBool::new(false));
            let scraper = scraped.then(|| {
                let (stop, addr) = (stop.clone(), addr.clone());
                let (scrapes, scrape_ns) = (scrapes.clone(), scrape_ns.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        if let Ok((200, _)) = scrape::get(&addr, "/metrics", Duration::from_secs(5))
                        {
                            scrapes.fetch_add(1, Ordering::Relaxed);
                            let took = t.elapsed().as_nanos() as u64;
                            scrape_ns.fetch_add(took, Ordering::Relaxed);
                        }
                        std::thread::sleep(every.saturating_sub(t.elapsed()));
                    }
                })
            });
            let mbs = produce(&bootstrap, &topic, n, size);
            stop.store(true, Ordering::Relaxed);
            if let Some(t) = scraper {
                let _ = t.join();
            }
            println!(
                "  run {round} {:<12} {mbs:>8.1} MB/s",
                if scraped { "scraped" } else { "not scraped" }
            );
            if scraped { &mut on } else { &mut off }.push(mbs);
        }
    }
    let (m_off, m_on) = (median(&mut off), median(&mut on));
    let n_scrapes = scrapes.load(Ordering::Relaxed).max(1);
    println!(
        "median: not scraped {m_off:.1} MB/s, scraped {m_on:.1} MB/s ({n_scrapes} scrapes of {:.1} ms each under load): ratio {:.3}",
        scrape_ns.load(Ordering::Relaxed) as f64 / n_scrapes as f64 / 1e6,
        m_on / m_off
    );
    common::broker::stop_and_report(&mut broker, &log);
}
