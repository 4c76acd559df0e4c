//! Broker memory under hostile load (issue 10, "Memory stays bounded under
//! hostile load"): a plain harness, not criterion, against the release
//! `rivulet` binary (`$RIVULET_BIN`, or built as for `loadgen`), run as its
//! own process so that its RSS is its own.
//!
//! For each `socket.request.max.bytes` in `HOSTILE_REQUEST_MAX` (a comma
//! list; default `104857600,1048576`, i.e. the default and 1 MiB, with
//! `queued.max.request.bytes` set to the same value), each of these phases
//! runs against a fresh broker with its own temp data dir (so that neither
//! one phase's backlog nor the memory its allocator kept counts in the
//! next), `HOSTILE_CONNECTIONS` (default 200) TCP connections for
//! `HOSTILE_PHASE_SECS` (default 5) each (`HOSTILE_PHASES=a,b`: only the
//! phases whose name contains `a` or `b`):
//!
//! 1. idle: nothing is sent (the baseline), 2 s.
//! 2. huge claims: for every API key and version the broker advertises
//!    (ApiVersions), the sample body of `request_bounds::sample` with each
//!    count or length prefix in turn set to its largest value (i32 counts
//!    2^31−1, compact varints 0xffffffff); 16 such frames per connection,
//!    which the broker must refuse by closing; connections reopen.
//! 3. stalled prefixes: each connection sends a size prefix of
//!    `socket.request.max.bytes`, a request header and 4 KiB, then stalls.
//! 4. full frames, one phase per kind: each connection sends frames of
//!    exactly `socket.request.max.bytes` as fast as it can and reads the
//!    responses: a Produce v9 to an existing topic whose records field is
//!    garbage; a Metadata v12 that is nearly all one unknown tagged field.
//! 5. amplification, one phase per kind and size: the frame that decodes
//!    into the most memory per wire byte and still passes the pre-pass's 16×
//!    rule (found by bisection against `rivulet_protocol::request::decode`,
//!    the broker's own path): DeleteTopics v5 with empty topic names (all
//!    duplicates), Metadata v9 with empty topic names, OffsetFetch v8 with
//!    empty group ids and null topic lists, Produce v9 with one topic of
//!    many partitions without records; the rest of the frame is one unknown
//!    tagged field (each is first sent once alone, to print the response
//!    it draws). Even connections read the responses, odd ones never do
//!    (the broker then holds a response it cannot write). At 64 KiB (the
//!    largest frames that never wait for the request pool) and at 1 MiB (or
//!    the limit, if smaller).
//!
//! Reported per phase: RSS at its start and its peak (VmHWM, reset through
//! `clear_refs` at the phase start, and VmRSS sampled every 50 ms; the
//! larger) over the load and until the broker's CPU is quiet again (the
//! frames still queued in its sockets are handled after the clients have
//! gone: `drain`, at most `HOSTILE_SETTLE_SECS`, default 15); that peak over
//! `socket.request.max.bytes` and its growth over the start over
//! `socket.request.max.bytes`; two probes on fresh connections during the
//! load: an ApiVersions request every 250 ms (slowest answer, failures) and
//! a 256 KiB ApiVersions (an unknown tagged field; only when the limit
//! allows it) every second, which waits for the request pool like any large
//! request (answered within 3 s / sent); and whether the broker, once
//! drained, still answers ApiVersions and an rdkafka produce/consume round
//! trip (if not, once more after another drain, to tell slow from stuck).
//!
//! The bench exits non-zero, after printing the table, if the broker
//! crashed, stopped serving, or grew by more than `HOSTILE_MAX_MULTIPLE`
//! (default 5) times `socket.request.max.bytes` in a phase. A broker whose
//! RSS passes `HOSTILE_RSS_CAP_MIB` (default: the smaller of 4 GiB and a
//! third of MemAvailable) is SIGKILLed to spare the machine, and reported.
//!
//! Run: `cargo bench --bench hostile` (broker logs:
//! `target/hostile-broker-<limit>-<phase>.log`).

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use tokio::time::timeout_at;

#[path = "../common/mod.rs"]
mod common;
use common::{env_usize, rivulet_bin, target_dir};

/// The rdkafka helpers, for the closing round trip.
use rivulet_testkit::kafka as client;
use rivulet_testkit::poll::Poll;
use rivulet_testkit::process::BrokerProcess;
use rivulet_testkit::procfs::{self, cpu_ticks, mem_available, Proc};

mod clients;
mod frames;
mod process;

use clients::*;
use frames::*;
use process::*;

const MIB: usize = 1 << 20;
/// Frames up to this size never wait for the request pool
/// (`request_memory::SMALL_REQUEST`).
const SMALL_FRAME: usize = 64 * 1024;
/// A tag no request defines: unknown tagged fields are skipped by size.
const PAD_TAG: i32 = 10_000;
/// The topic the Produce frames name (created at start, one partition).
const TOPIC: &str = "hostile";

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / MIB as f64)
}

// ---- phases ----

enum Load {
    Idle,
    Claims(Arc<Vec<Bytes>>),
    Stalled,
    /// Every connection sends `frame`; with `half_silent`, the odd ones
    /// never read their responses.
    Flood {
        frame: Bytes,
        half_silent: bool,
    },
}

struct Row {
    scale: usize,
    phase: String,
    counters: Arc<Counters>,
    probes: Arc<Probes>,
    /// RSS of the fresh broker when the phase started, and its peak.
    start: u64,
    peak: u64,
    /// From the end of the load until the broker's CPU went quiet.
    drain: Duration,
    /// Whether ApiVersions and the rdkafka round trip worked afterwards.
    served: bool,
    verdicts: Vec<String>,
}

struct Plan {
    /// Run only the phases whose name contains one of these (all if empty).
    only: Vec<String>,
    connections: usize,
    phase: Duration,
    settle: Duration,
    cap: u64,
    max_multiple: f64,
}

/// Run one phase's load against the broker until its time is up.
fn run_phase(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    limit: usize,
    plan: &Plan,
    load: &Load,
    duration: Duration,
) -> (Arc<Counters>, Arc<Probes>) {
    let c = Arc::new(Counters::default());
    let p = Arc::new(Probes::default());
    let deadline = tokio::time::Instant::now() + duration;
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(small_probe(addr.to_string(), p.clone()));
        if limit >= 512 * 1024 {
            tasks.spawn(large_probe(addr.to_string(), p.clone()));
        }
        for i in 0..plan.connections {
            let (addr, c) = (addr.to_string(), c.clone());
            match load {
                Load::Idle => {}
                Load::Claims(frames) => {
                    let start = i * frames.len() / plan.connections;
                    tasks.spawn(claims_client(addr, frames.clone(), start, c));
                }
                Load::Stalled => {
                    tasks.spawn(stalled_client(addr, limit, c));
                }
                Load::Flood { frame, half_silent } => {
                    let read = !half_silent || i % 2 == 0;
                    tasks.spawn(flood_client(addr, frame.clone(), read, c));
                }
            }
        }
        let _ = timeout_at(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.shutdown().await;
    });
    (c, p)
}

/// Wait until the broker has used under 5% of a core for 500 ms (the
/// requests still queued in its sockets are done), at most `limit`.
fn settle(pid: u32, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut last = cpu_ticks(Proc::Pid(pid));
    while started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(500));
        let now = cpu_ticks(Proc::Pid(pid));
        // Clock ticks are 1/100 s on Linux: 2 ticks in 500 ms = 4%.
        if now.saturating_sub(last) <= 2 {
            return started.elapsed();
        }
        last = now;
    }
    started.elapsed()
}

/// The phases for a broker of `limit` that advertises `advertised`.
/// Amplification frames are each sent once to `addr` first, to show the
/// response they draw.
fn phases(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    limit: usize,
    advertised: &[(i16, i16, i16)],
) -> Vec<(String, Load)> {
    let scale = mib(limit as u64);
    let (claims, missing) = huge_claims(advertised);
    println!(
        "[{scale}] huge claims: {} frames over {} advertised APIs{}",
        claims.len(),
        advertised.len(),
        if missing.is_empty() {
            String::new()
        } else {
            format!(" (no sample for {})", missing.join(", "))
        }
    );
    let [produce, metadata] = full_frames(limit);
    let mut phases: Vec<(String, Load)> = vec![
        ("idle".into(), Load::Idle),
        ("huge claims".into(), Load::Claims(Arc::new(claims))),
        ("stalled prefixes".into(), Load::Stalled),
        (
            "full Produce v9".into(),
            Load::Flood {
                frame: produce,
                half_silent: false,
            },
        ),
        (
            "full Metadata v12".into(),
            Load::Flood {
                frame: metadata,
                half_silent: false,
            },
        ),
    ];
    let delete_topics = advertised
        .iter()
        .find(|(k, _, _)| *k == ApiKey::DeleteTopics as i16)
        .map_or(5, |(_, _, max)| (*max).clamp(4, 5));
    for target in [SMALL_FRAME, MIB.min(limit)] {
        let size = if target == SMALL_FRAME {
            "64K".to_string()
        } else {
            format!("{}K", target / 1024)
        };
        for a in amplifiers(target, delete_topics) {
            let bytes = a.frame.len() - 4;
            let answer = match rt.block_on(one_request(addr, &a.frame)) {
                Ok((size, took)) => format!(
                    "a {size}-byte response ({:.1}x the frame) in {} ms",
                    size as f64 / bytes as f64,
                    took.as_millis()
                ),
                Err(e) => format!("no response: {e}"),
            };
            println!(
                "[{scale}] amplification frame {}: {} elements in {bytes} bytes, pre-pass \
                 estimate {} ({:.1}x the frame); alone: {answer}",
                a.label,
                a.elements,
                mib(a.estimate as u64),
                a.estimate as f64 / bytes as f64
            );
            phases.push((
                format!("amp {size} {}", a.label),
                Load::Flood {
                    frame: a.frame,
                    half_silent: true,
                },
            ));
        }
    }
    phases
}

/// Run every phase against its own fresh broker of `limit` (so that one
/// phase's backlog and the allocator's retained memory do not count in the
/// next): the table rows.
fn run_scale(rt: &tokio::runtime::Runtime, bin: &Path, limit: usize, plan: &Plan) -> Vec<Row> {
    let start = |phase: &str| {
        let slug = phase.replace(' ', "-");
        let log = target_dir().join(format!("hostile-broker-{limit}-{slug}.log"));
        let mut b = start_broker(bin, limit, log);
        wait_ready(rt, &mut b);
        rt.block_on(client::create_topic(&b.bootstrap(), TOPIC, 1, &[]));
        // Let start-up settle (registration, heartbeats) before measuring.
        std::thread::sleep(Duration::from_secs(1));
        b
    };
    let phases = {
        let broker = start("setup");
        let advertised = rt
            .block_on(api_versions(&broker.bootstrap(), 0))
            .expect("ApiVersions");
        phases(rt, &broker.bootstrap(), limit, &advertised)
    };
    let mut rows: Vec<Row> = Vec::new();
    for (name, load) in phases {
        if !plan.only.is_empty() && !plan.only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        let mut broker = start(&name);
        let reset = procfs::reset_peak_rss(broker.pid());
        let (start_rss, _) = procfs::rss(broker.pid());
        let sampler = Sampler::start(broker.pid(), plan.cap);
        let duration = match load {
            Load::Idle => Duration::from_secs(2),
            _ => plan.phase,
        };
        let (counters, probes) = run_phase(rt, &broker.bootstrap(), limit, plan, &load, duration);
        let drain = settle(broker.pid(), plan.settle);
        let (sampled, capped) = sampler.finish();
        let (_, hwm) = procfs::rss(broker.pid());
        let peak = sampled.max(if reset { hwm } else { 0 });
        let mut verdicts = Vec::new();
        if capped {
            verdicts.push(format!(
                "RSS passed the {} cap: broker SIGKILLed",
                mib(plan.cap)
            ));
        } else if let Some(why) = broker.exited() {
            verdicts.push(format!("CRASHED: {why}"));
        }
        let grew = peak.saturating_sub(start_rss) as f64;
        if grew > plan.max_multiple * limit as f64 {
            verdicts.push(format!(
                "grew by more than {}x socket.request.max.bytes",
                plan.max_multiple
            ));
        }
        let serving = if broker.exited().is_some() {
            Err("exited".to_string())
        } else {
            still_serving(rt, &broker.bootstrap()).map_err(|first| {
                // Refused once: say whether it comes back once the broker is idle.
                let waited = settle(broker.pid(), plan.settle).as_secs();
                match still_serving(rt, &broker.bootstrap()) {
                    Ok(()) => format!("{first}; answered after another {waited} s"),
                    Err(again) => format!("{first}; again after {waited} s: {again}"),
                }
            })
        };
        if let Err(e) = &serving {
            verdicts.push(format!("NOT SERVING afterwards: {e}"));
        }
        let row = Row {
            scale: limit,
            phase: name,
            counters,
            probes,
            start: start_rss,
            peak,
            drain,
            served: serving.is_ok(),
            verdicts,
        };
        print_row(&row, plan);
        rows.push(row);
    }
    rows
}

/// Until the broker answers ApiVersions; panics if it exits first.
fn wait_ready(rt: &tokio::runtime::Runtime, b: &mut BrokerProcess) {
    let bootstrap = b.bootstrap();
    let answered = Poll::new(Duration::from_secs(120))
        .every(Duration::from_millis(100))
        .until(|| {
            if let Some(why) = b.exited() {
                panic!("the broker {why}");
            }
            let r = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(1), api_versions(&bootstrap, 0)).await
            });
            matches!(r, Ok(Ok(_)))
        });
    assert!(answered, "the broker never answered ApiVersions");
}

/// ApiVersions, then 10 records through an rdkafka producer and back
/// through a consumer, on a new topic.
fn still_serving(rt: &tokio::runtime::Runtime, bootstrap: &str) -> Result<(), String> {
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), api_versions(bootstrap, 0)).await
    })
    .map_err(|_| "ApiVersions: no answer within 10 s".to_string())?
    .map_err(|e| format!("ApiVersions: {e}"))?;
    let bootstrap = bootstrap.to_string();
    // The helpers panic on failure: run them where a panic is an answer.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let topic = format!("hostile-roundtrip-{}", std::process::id());
        rt.block_on(client::create_topic(&bootstrap, &topic, 1, &[]));
        let values: Vec<Vec<u8>> = (0..10).map(|i| format!("v{i}").into_bytes()).collect();
        let records: Vec<client::KeyValue<'_>> =
            values.iter().map(|v| (None, Some(v.as_slice()))).collect();
        let p = client::producer(&bootstrap, &[]);
        rt.block_on(client::produce_all(&p, &topic, 0, &records));
        let c = client::consumer(&bootstrap, &[]);
        let got = client::consume_n(&c, &topic, 0, rdkafka::Offset::Beginning, 10);
        let got: Vec<Vec<u8>> = got.into_iter().filter_map(|g| g.value).collect();
        assert_eq!(got, values, "consumed records differ from produced");
    })
    .join()
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "rdkafka round trip panicked".into())
    })
}

fn print_header() {
    println!(
        "{:>9}  {:<33}{:>8}{:>7}{:>7}{:>8}{:>10}{:>11}{:>8}{:>8}{:>8}{:>14}{:>8}{:>7}",
        "limit",
        "phase",
        "frames",
        "conns",
        "closed",
        "answers",
        "start",
        "peak RSS",
        "x limit",
        "growth",
        "drain s",
        "probe max ms",
        "256K ok",
        "serves"
    );
}

fn print_row(r: &Row, plan: &Plan) {
    let c = &r.counters;
    let p = &r.probes;
    let grew = r.peak.saturating_sub(r.start);
    println!(
        "{:>9}  {:<33}{:>8}{:>7}{:>7}{:>8}{:>10}{:>11}{:>8.2}{:>8}{:>8}{:>14}{:>8}{:>7}{}",
        mib(r.scale as u64),
        r.phase,
        c.frames.load(Relaxed),
        c.connects.load(Relaxed),
        c.closed.load(Relaxed),
        c.responses.load(Relaxed),
        mib(r.start),
        mib(r.peak),
        r.peak as f64 / r.scale as f64,
        format!("{:.2}x", grew as f64 / r.scale as f64),
        format!(
            "{}{:.1}",
            if r.drain >= plan.settle { ">" } else { "" },
            r.drain.as_secs_f64()
        ),
        format!(
            "{}{}",
            p.slowest_ms.load(Relaxed),
            match p.failed.load(Relaxed) {
                0 => String::new(),
                n => format!(" ({n} fail)"),
            }
        ),
        match p.large_sent.load(Relaxed) {
            0 => "-".to_string(),
            n => format!("{}/{n}", p.large_ok.load(Relaxed)),
        },
        if r.served { "yes" } else { "NO" },
        if r.verdicts.is_empty() {
            String::new()
        } else {
            format!("  <- {}", r.verdicts.join("; "))
        },
    );
}

fn main() {
    let started = Instant::now();
    let scales: Vec<usize> = std::env::var("HOSTILE_REQUEST_MAX")
        .unwrap_or_else(|_| "104857600,1048576".into())
        .split(',')
        .map(|v| {
            v.trim()
                .replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("HOSTILE_REQUEST_MAX: '{v}' is not a number"))
        })
        .collect();
    let default_cap = (4u64 << 30).min(mem_available() / 3).max(512 << 20);
    let plan = Plan {
        only: std::env::var("HOSTILE_PHASES")
            .unwrap_or_default()
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        connections: env_usize("HOSTILE_CONNECTIONS", 200),
        phase: Duration::from_secs(env_usize("HOSTILE_PHASE_SECS", 5) as u64),
        settle: Duration::from_secs(env_usize("HOSTILE_SETTLE_SECS", 15) as u64),
        cap: env_usize("HOSTILE_RSS_CAP_MIB", (default_cap >> 20) as usize) as u64 * MIB as u64,
        max_multiple: env_usize("HOSTILE_MAX_MULTIPLE", 5) as f64,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let bin = rivulet_bin();
    println!(
        "hostile: {} connections, {} s per phase, {} cores, RSS cap {}; {}",
        plan.connections,
        plan.phase.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mib(plan.cap),
        bin.display()
    );
    print_header();
    let mut rows = Vec::new();
    for &limit in &scales {
        rows.extend(run_scale(&rt, &bin, limit, &plan));
    }
    println!();
    println!(
        "broker RSS per phase, limit = socket.request.max.bytes = queued.max.request.bytes; \
         start = RSS at the phase start; peak = over the phase and its drain; x limit = peak / \
         limit; growth = (peak - start) / limit; drain = load end to broker CPU quiet; \
         frames = sent; conns = opened; closed = ended by the broker; answers = responses read \
         (huge claims: reads with data); probe = slowest ApiVersions; 256K ok = 256 KiB \
         requests answered within 3 s / sent; serves = ApiVersions and an rdkafka round trip after the drain"
    );
    print_header();
    for r in &rows {
        print_row(r, &plan);
    }
    let problems: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.verdicts
                .iter()
                .map(|v| format!("{} / {}: {v}", mib(r.scale as u64), r.phase))
        })
        .collect();
    println!("took {} s", started.elapsed().as_secs());
    if !problems.is_empty() {
        eprintln!("\nhostile: FAILED\n  {}", problems.join("\n  "));
        std::process::exit(1);
    }
}
