//! Part 1 of the cluster bench: replicated produce throughput, latency, CPU
//! and memory, all as ratios measured in one run (see the header of
//! `benches/cluster.rs`).

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{Producer, ThreadedProducer};
use rivulet_testkit::cluster::ProcessCluster;
use rivulet_testkit::kafka::{block_on, try_create_topic, wait_for_partitions, Admin};
use rivulet_testkit::poll::Poll;
use rivulet_testkit::procfs::{cpu_time, rss, Proc};

use super::{client_config, pct_ms, producer, send_one, start_nodes, Ctx, Reports, T};

const MIB: f64 = (1u64 << 20) as f64;
const GIB: f64 = (1u64 << 30) as f64;
const VALUE: usize = 1024;

/// One kind of load: who sends what where.
struct Load {
    label: &'static str,
    acks: &'static str,
    producers: usize,
    partitions: i32,
    /// Client settings on top of the bench's (linger.ms 5, librdkafka's
    /// defaults otherwise).
    extra: &'static [(&'static str, &'static str)],
}

const ONE_BY_ONE: Load = Load {
    label: "1 producer x 1 partition, acks=all",
    acks: "all",
    producers: 1,
    partitions: 1,
    extra: &[],
};
const FOUR_BY_EIGHT: Load = Load {
    label: "4 producers x 8 partitions, acks=all",
    acks: "all",
    producers: 4,
    partitions: 8,
    extra: &[],
};
const IN_FLIGHT_5: Load = Load {
    label: "1 connection, acks=all, max.in.flight 5",
    acks: "all",
    producers: 1,
    partitions: 1,
    extra: &[("max.in.flight.requests.per.connection", "5")],
};
const CEILING: Load = Load {
    label: "client ceiling: acks=0",
    acks: "0",
    producers: 1,
    partitions: 1,
    extra: &[],
};

#[derive(Debug, Clone, Copy)]
struct Measured {
    records_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU seconds of all the target's nodes per GiB of record values.
    cpu_s_per_gib: f64,
    /// Paced runs: the broker-side Produce p99 bound (ms) and the number
    /// of requests ([`broker_p99_ms`]).
    broker_p99: Option<(f64, u64)>,
    /// fsyncs of all the target's nodes per MiB of record values.
    fsyncs_per_mib: f64,
    /// Paced runs: librdkafka's own Produce request round trip (sent to
    /// answered, linger excluded), over its 1 s statistics windows: the
    /// median window's p99 and the worst window's p99, in ms.
    rtt_p99_ms: Option<(f64, f64)>,
}

/// CPU time (user + system) of the live nodes so far, in seconds.
fn cpu_seconds(nodes: &ProcessCluster) -> f64 {
    nodes
        .pids()
        .into_iter()
        .map(|pid| cpu_time(Proc::Pid(pid)).as_secs_f64())
        .sum()
}

/// Create `topic` with `partitions` partitions, replicated to every node
/// (min.insync.replicas 2 when there are three), and wait until every
/// partition has its full ISR.
fn create_topic(nodes: &ProcessCluster, topic: &str, partitions: i32) {
    let bootstrap = nodes.bootstrap();
    let rf = nodes.ids().count() as i32;
    let admin: Admin = client_config(&bootstrap).create().expect("admin");
    let configs: &[(&str, &str)] = if rf > 1 {
        &[("min.insync.replicas", "2")]
    } else {
        &[]
    };
    if let Err(e) = block_on(try_create_topic(&admin, topic, partitions, rf, configs)) {
        panic!("create {topic}: {e:?}");
    }
    let client: BaseConsumer = client_config(&bootstrap).create().expect("client");
    wait_for_partitions(&client, topic, "full ISRs", Poll::new(T), |ps| {
        ps.len() == partitions as usize
            && ps
                .values()
                .all(|p| p.leader > 0 && p.isr.len() == rf as usize)
    });
}

/// Send record indices `first, first + step, …` below `n` (partition:
/// index mod `partitions`); with `pace`, the `k`th of them not before
/// `t0 + k / rate`.
fn send_share(
    p: &ThreadedProducer<Ctx>,
    r: &Reports,
    topic: &str,
    partitions: i32,
    (first, step, n): (usize, usize, usize),
    pace: Option<(Instant, f64)>,
) {
    let value = vec![b'r'; VALUE];
    for (k, i) in (first..n).step_by(step).enumerate() {
        if let Some((t0, rate)) = pace {
            let due = t0 + Duration::from_secs_f64(k as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        send_one(p, r, topic, (i % partitions as usize) as i32, &value);
    }
}

/// `n` records of `load` to a fresh topic on `nodes`, as fast as the
/// producers' queues take them or at `rate` records/s in all.
fn run(nodes: &ProcessCluster, topic: &str, load: &Load, n: usize, rate: Option<f64>) -> Measured {
    create_topic(nodes, topic, load.partitions);
    let bootstrap = nodes.bootstrap();
    let r = Reports::new();
    let mut extra = vec![("linger.ms", "5")];
    if rate.is_some() {
        extra.push(("statistics.interval.ms", "1000"));
    }
    extra.extend_from_slice(load.extra);
    let producers: Vec<ThreadedProducer<Ctx>> = (0..load.producers)
        .map(|_| producer(&bootstrap, load.acks, &r, &extra))
        .collect();
    // Connected, with metadata, before the clock starts.
    let warm = (n / 100).max(load.producers);
    std::thread::scope(|s| {
        for (k, p) in producers.iter().enumerate() {
            let r = &r;
            s.spawn(move || {
                send_share(
                    p,
                    r,
                    topic,
                    load.partitions,
                    (k, load.producers, warm),
                    None,
                );
                p.flush(T).expect("flush");
            });
        }
    });
    r.acked.lock().expect("lock").clear();
    r.rtt.lock().expect("lock").clear();
    let buckets0 = rate.map(|_| produce_buckets(nodes));
    let fsyncs0 = fsyncs(nodes);
    let cpu0 = cpu_seconds(nodes);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for (k, p) in producers.iter().enumerate() {
            let r = &r;
            let pace = rate.map(|rate| (t0, rate / load.producers as f64));
            s.spawn(move || {
                send_share(p, r, topic, load.partitions, (k, load.producers, n), pace);
                p.flush(T).expect("flush");
            });
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(nodes) - cpu0;
    let broker_p99 = buckets0.map(|b0| broker_p99_ms(&b0, &produce_buckets(nodes)));
    let synced = fsyncs(nodes).saturating_sub(fsyncs0);
    if rate.is_some() && std::env::var_os("CLUSTER_BENCH_TIMELINE").is_some() {
        // Each broker connection's 1 s statistics windows in arrival order.
        let windows = r.rtt.lock().expect("lock");
        let line: Vec<String> = windows
            .iter()
            .map(|(p99, max)| format!("{}/{}", p99 / 1000, max / 1000))
            .collect();
        println!("  rtt p99/max ms per window: {}", line.join(" "));
    }
    let rtt_p99_ms = rate.and_then(|_| {
        let mut p99: Vec<i64> = r.rtt.lock().expect("lock").iter().map(|w| w.0).collect();
        p99.sort_unstable();
        let worst = *p99.last()?;
        Some((p99[p99.len() / 2] as f64 / 1e3, worst as f64 / 1e3))
    });
    let failed = r.failed.lock().expect("lock");
    assert!(
        failed.is_empty(),
        "{} records failed: {:?}",
        failed.len(),
        failed.first()
    );
    let mut lat: Vec<u64> = r
        .acked
        .lock()
        .expect("lock")
        .iter()
        .map(|(s, d)| d - s)
        .collect();
    lat.sort_unstable();
    // acks=0: delivery reports come from the client alone, still one each.
    assert_eq!(lat.len(), n);
    Measured {
        records_per_s: n as f64 / secs,
        p50_ms: pct_ms(&lat, 50.0),
        p99_ms: pct_ms(&lat, 99.0),
        cpu_s_per_gib: cpu / (n as f64 * VALUE as f64 / GIB),
        broker_p99,
        fsyncs_per_mib: synced as f64 / (n as f64 * VALUE as f64 / MIB),
        rtt_p99_ms,
    }
}

fn best(runs: &[Measured]) -> Measured {
    *runs
        .iter()
        .max_by(|a, b| a.records_per_s.total_cmp(&b.records_per_s))
        .expect("a run")
}

fn show(run: &str, target: &str, load: &str, m: &Measured) {
    println!(
        "  {run}: {target:<8} {load:<42} {:>8.0} rec/s {:>7.1} MB/s  p50 {:>7.2} ms  \
         p99 {:>7.2} ms  CPU {:>6.1} s/GiB  {:>5.2} fsyncs/MiB",
        m.records_per_s,
        m.records_per_s * VALUE as f64 / 1e6,
        m.p50_ms,
        m.p99_ms,
        m.cpu_s_per_gib,
        m.fsyncs_per_mib
    );
}

/// `rivulet_request_total_seconds` of Produce summed over the nodes, as
/// cumulative counts per bucket bound (seconds; `+Inf` last), from each
/// node's metrics endpoint.
fn produce_buckets(nodes: &ProcessCluster) -> Vec<(f64, u64)> {
    buckets(
        nodes,
        "rivulet_request_total_seconds_bucket{api=\"Produce\",le=\"",
    )
}

/// A histogram summed over the nodes: the sample lines starting with
/// `prefix` (which ends just before the `le` value), as cumulative counts
/// per bucket bound (seconds; `+Inf` last).
fn buckets(nodes: &ProcessCluster, prefix: &str) -> Vec<(f64, u64)> {
    let mut sum: Vec<(f64, u64)> = Vec::new();
    for id in nodes.ids() {
        let text = scrape(&nodes.node(id).metrics_addr());
        let buckets = text.lines().filter_map(|l| {
            let (le, count) = l.strip_prefix(prefix)?.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse::<u64>().ok()?))
        });
        for (i, (le, count)) in buckets.enumerate() {
            match sum.get_mut(i) {
                Some(b) => b.1 += count,
                None => sum.push((le, count)),
            }
        }
    }
    sum
}

/// fsyncs so far (`rivulet_fsync_seconds_count`), summed over the nodes.
fn fsyncs(nodes: &ProcessCluster) -> u64 {
    nodes
        .ids()
        .filter_map(|id| {
            let text = scrape(&nodes.node(id).metrics_addr());
            text.lines()
                .find_map(|l| l.strip_prefix("rivulet_fsync_seconds_count "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

/// `GET /metrics` over plain HTTP/1.0; empty on any failure.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The bucket bound (ms) under which 99% of the Produce requests between
/// two [`produce_buckets`] readings fell, and their number.
fn broker_p99_ms(before: &[(f64, u64)], after: &[(f64, u64)]) -> (f64, u64) {
    bucket_pct_ms(before, after, 99.0)
}

/// The bucket bound (ms) under which `pct` % of the observations between
/// two [`buckets`] readings fell, and their number.
fn bucket_pct_ms(before: &[(f64, u64)], after: &[(f64, u64)], pct: f64) -> (f64, u64) {
    let diff: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, c)| {
            let b = before.iter().find(|(l, _)| l == le).map_or(0, |(_, c)| *c);
            (*le, c.saturating_sub(b))
        })
        .collect();
    let total = diff.last().map_or(0, |(_, c)| *c);
    let le = diff
        .iter()
        .find(|(_, c)| *c as f64 >= pct / 100.0 * total as f64)
        .map_or(f64::NAN, |(le, _)| le * 1e3);
    (le, total)
}

/// `(VmRSS, VmHWM)` of every node, in MiB.
fn rss_mib(nodes: &ProcessCluster) -> Vec<(f64, f64)> {
    nodes
        .pids()
        .into_iter()
        .map(|pid| {
            let (now, peak) = rss(pid);
            (now as f64 / MIB, peak as f64 / MIB)
        })
        .collect()
}

/// Part 1: every load on one node and on three, alternating, best of
/// `repeat`; then the 3-node loads paced at half their best rate for p99.
pub fn part(bin: &Path, records: usize, repeat: usize) {
    if let Some(rates) = half_rates() {
        return paced_only(bin, records, &rates);
    }
    let single = start_nodes(bin, 1, "single");
    let three = start_nodes(bin, 3, "three");
    // Started and registered, no topics yet.
    let idle = (rss_mib(&single), rss_mib(&three));
    let loads = [&ONE_BY_ONE, &FOUR_BY_EIGHT, &IN_FLIGHT_5, &CEILING];
    let mut one: Vec<Vec<Measured>> = vec![Vec::new(); loads.len()];
    let mut three_runs: Vec<Vec<Measured>> = vec![Vec::new(); loads.len()];
    for run_no in 0..repeat {
        for (i, load) in loads.iter().enumerate() {
            let m = run(
                &single,
                &format!("single-{i}-{run_no}"),
                load,
                records,
                None,
            );
            show(&format!("run {run_no}"), "1 node", load.label, &m);
            one[i].push(m);
            if load.acks == "0" {
                // The ceiling is the client's: one node is enough.
                continue;
            }
            let m = run(&three, &format!("three-{i}-{run_no}"), load, records, None);
            show(&format!("run {run_no}"), "3 nodes", load.label, &m);
            three_runs[i].push(m);
        }
    }
    let b1: Vec<Measured> = one.iter().map(|r| best(r)).collect();
    let b3: Vec<Option<Measured>> = three_runs
        .iter()
        .map(|r| (!r.is_empty()).then(|| best(r)))
        .collect();
    let half: Vec<(usize, Measured)> = [0usize, 1]
        .into_iter()
        .filter_map(|i| {
            let rate = b3[i]?.records_per_s / 2.0;
            let m = run(
                &three,
                &format!("half-{i}"),
                loads[i],
                records / 2,
                Some(rate),
            );
            show("half load", "3 nodes", loads[i].label, &m);
            Some((i, m))
        })
        .collect();
    let loaded = (rss_mib(&single), rss_mib(&three));

    let ratio = |i: usize| b3[i].map_or(f64::NAN, |m| m.records_per_s / b1[i].records_per_s);
    let ceiling = b1[3].records_per_s;
    println!("1 KiB records, best of {repeat} runs of {records}:");
    println!(
        "ratio 3 nodes acks=all / 1 node acks=all: 1 producer x 1 partition {:.2}, \
         4 producers x 8 partitions {:.2} (target >= 0.5 each)",
        ratio(0),
        ratio(1)
    );
    println!(
        "one connection acks=all max.in.flight 5 / client ceiling (1 node acks=0, {:.0} rec/s): \
         1 node {:.2}, 3 nodes {:.2}",
        ceiling,
        b1[2].records_per_s / ceiling,
        b3[2].map_or(f64::NAN, |m| m.records_per_s / ceiling)
    );
    for (i, m) in &half {
        let (broker_p99, requests) = m.broker_p99.unwrap_or((f64::NAN, 0));
        let (rtt_median, rtt_worst) = m.rtt_p99_ms.unwrap_or((f64::NAN, f64::NAN));
        println!(
            "3 nodes at half load ({:.0} rec/s), {}: enqueue to delivery report p50 {:.2} ms, \
             p99 {:.2} ms (linger.ms 5 included); client Produce request round trip p99 \
             (librdkafka rtt, 1 s windows) median {rtt_median:.2} ms, worst {rtt_worst:.2} ms; \
             broker-side Produce request p99 <= {} ms ({requests} requests; histogram bucket \
             bound) (target <= 5 ms)",
            m.records_per_s, loads[*i].label, m.p50_ms, m.p99_ms, broker_p99
        );
    }
    println!(
        "broker CPU per GiB, {}: 1 node {:.1} s, 3 nodes (sum of the three) {:.1} s, {:.2}x; \
         {}: 1 node {:.1} s, 3 nodes {:.1} s, {:.2}x ({} cores shared by all)",
        loads[0].label,
        b1[0].cpu_s_per_gib,
        b3[0].map_or(f64::NAN, |m| m.cpu_s_per_gib),
        b3[0].map_or(f64::NAN, |m| m.cpu_s_per_gib / b1[0].cpu_s_per_gib),
        loads[1].label,
        b1[1].cpu_s_per_gib,
        b3[1].map_or(f64::NAN, |m| m.cpu_s_per_gib),
        b3[1].map_or(f64::NAN, |m| m.cpu_s_per_gib / b1[1].cpu_s_per_gib),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let fs = |m: Option<Measured>| m.map_or(f64::NAN, |m| m.fsyncs_per_mib);
    println!(
        "fsyncs per MiB (all nodes), {}: 1 node {:.2}, 3 nodes {:.2}; {}: 1 node {:.2}, 3 nodes {:.2}",
        loads[0].label,
        b1[0].fsyncs_per_mib,
        fs(b3[0]),
        loads[1].label,
        b1[1].fsyncs_per_mib,
        fs(b3[1])
    );
    let fmt = |v: &[(f64, f64)], peak: bool| {
        v.iter()
            .map(|(now, hwm)| format!("{:.1}", if peak { *hwm } else { *now }))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!(
        "RSS per node (MiB): idle 1 node {}, 3 nodes {}; peak under load 1 node {}, 3 nodes {}",
        fmt(&idle.0, false),
        fmt(&idle.1, false),
        fmt(&loaded.0, true),
        fmt(&loaded.1, true)
    );
}

/// `CLUSTER_BENCH_HALF=R1,R2`: skip the full-speed runs and pace the
/// 3-node loads (1 × 1, then 4 × 8) at R1 and R2 records/s (0: skip it).
fn half_rates() -> Option<Vec<f64>> {
    let v = std::env::var("CLUSTER_BENCH_HALF").ok()?;
    let rates: Vec<f64> = v.split(',').filter_map(|r| r.trim().parse().ok()).collect();
    (!rates.is_empty()).then_some(rates)
}

/// Histograms whose p50 / p99 the paced runs print, per phase.
const PHASES: [(&str, &str); 9] = [
    (
        "Produce local (append + leader fsync)",
        "rivulet_request_local_seconds_bucket{api=\"Produce\",le=\"",
    ),
    (
        "Produce remote (high watermark wait)",
        "rivulet_request_remote_seconds_bucket{api=\"Produce\",le=\"",
    ),
    (
        "Produce total",
        "rivulet_request_total_seconds_bucket{api=\"Produce\",le=\"",
    ),
    (
        "Fetch local",
        "rivulet_request_local_seconds_bucket{api=\"Fetch\",le=\"",
    ),
    (
        "Fetch remote (long poll)",
        "rivulet_request_remote_seconds_bucket{api=\"Fetch\",le=\"",
    ),
    ("fsync", "rivulet_fsync_seconds_bucket{le=\""),
    (
        "Follower fetch round trip",
        "rivulet_follower_fetch_seconds_bucket{phase=\"round_trip\",le=\"",
    ),
    (
        "Follower append",
        "rivulet_follower_fetch_seconds_bucket{phase=\"apply\",le=\"",
    ),
    (
        "Follower fsync wait",
        "rivulet_follower_fetch_seconds_bucket{phase=\"fsync\",le=\"",
    ),
];

fn paced_only(bin: &Path, records: usize, rates: &[f64]) {
    let three = start_nodes(bin, 3, "three");
    for (i, (load, rate)) in [&ONE_BY_ONE, &FOUR_BY_EIGHT].iter().zip(rates).enumerate() {
        if *rate <= 0.0 {
            continue;
        }
        let before: Vec<_> = PHASES.iter().map(|(_, p)| buckets(&three, p)).collect();
        let m = run(&three, &format!("paced-{i}"), load, records, Some(*rate));
        for ((label, p), b0) in PHASES.iter().zip(&before) {
            let b1 = buckets(&three, p);
            let (p50, n) = bucket_pct_ms(b0, &b1, 50.0);
            let (p99, _) = bucket_pct_ms(b0, &b1, 99.0);
            let (p999, _) = bucket_pct_ms(b0, &b1, 99.9);
            let (max, _) = bucket_pct_ms(b0, &b1, 100.0);
            if n == 0 {
                // A broker without this histogram (an older build compared).
                println!("    {label:<40} no samples");
                continue;
            }
            println!(
                "    {label:<40} p50 <= {p50:>6} ms  p99 <= {p99:>6} ms  p99.9 <= {p999:>6} ms  \
                 max <= {max:>6} ms  ({n})"
            );
        }
        show("paced", "3 nodes", load.label, &m);
        let (broker_p99, requests) = m.broker_p99.unwrap_or((f64::NAN, 0));
        let (rtt_median, rtt_worst) = m.rtt_p99_ms.unwrap_or((f64::NAN, f64::NAN));
        println!(
            "  client request round trip p99 (librdkafka rtt, 1 s windows): median {rtt_median:.2} ms, \
             worst {rtt_worst:.2} ms; broker-side Produce p99 <= {broker_p99} ms ({requests} requests)"
        );
    }
}
