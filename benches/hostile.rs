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

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestGroup};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, GroupId, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rivulet_protocol::request_bounds::sample::sample;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout_at;

#[path = "common/mod.rs"]
mod common;
use common::{bench_dir, free_port, rivulet_bin, target_dir};

/// The end-to-end tests' rdkafka helpers, for the closing round trip.
#[path = "../tests/common/mod.rs"]
mod client;

const MIB: usize = 1 << 20;
/// Frames up to this size never wait for the request pool
/// (`request_memory::SMALL_REQUEST`).
const SMALL_FRAME: usize = 64 * 1024;
/// A tag no request defines: unknown tagged fields are skipped by size.
const PAD_TAG: i32 = 10_000;
/// The topic the Produce frames name (created at start, one partition).
const TOPIC: &str = "hostile";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{name}: '{v}' is not a number"))
        })
        .unwrap_or(default)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / MIB as f64)
}

// ---- the broker process ----

/// `rivulet` as a child process on free loopback ports.
struct BrokerProcess {
    child: Child,
    bootstrap: String,
    log: PathBuf,
    _data: tempfile::TempDir,
}

impl BrokerProcess {
    fn start(bin: &Path, limit: usize, log: PathBuf) -> BrokerProcess {
        let data = bench_dir();
        let port = free_port();
        let out = fs::File::create(&log).expect("broker log file");
        let mut cmd = Command::new(bin);
        for kv in [
            format!("listeners=127.0.0.1:{port}"),
            format!("controller.listener=127.0.0.1:{}", free_port()),
            format!("data.dir={}", data.path().display()),
            format!("socket.request.max.bytes={limit}"),
            format!("queued.max.request.bytes={limit}"),
        ] {
            cmd.arg("--set").arg(kv);
        }
        let child = cmd
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("broker log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        BrokerProcess {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
            log,
            _data: data,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(why)` once the process has exited: its status and log tail.
    fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok().flatten()?;
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(8).collect();
        Some(format!(
            "exited ({status}); last lines of {}:\n    {}",
            self.log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n    ")
        ))
    }

    /// `(VmRSS, VmHWM)` in bytes.
    fn rss(&self) -> (u64, u64) {
        rss_of(self.pid())
    }

    /// Reset VmHWM to the current RSS (Linux 4.0+); false if refused.
    fn reset_peak(&self) -> bool {
        fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_of(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mem_available() -> u64 {
    let text = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Samples the broker's VmRSS every 50 ms; SIGKILLs it above `cap`.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    capped: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32, cap: u64) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let capped = Arc::new(AtomicBool::new(false));
        let (s, p, c) = (stop.clone(), peak.clone(), capped.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Relaxed) {
                let (rss, _) = rss_of(pid);
                p.fetch_max(rss, Relaxed);
                if rss > cap && !c.swap(true, Relaxed) {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Sampler {
            stop,
            peak,
            capped,
            thread,
        }
    }

    /// `(peak VmRSS seen, whether the cap was hit)`.
    fn finish(self) -> (u64, bool) {
        self.stop.store(true, Relaxed);
        let _ = self.thread.join();
        (self.peak.load(Relaxed), self.capped.load(Relaxed))
    }
}

// ---- frames ----

/// A request header for `key`/`version`, encoded.
fn header(key: ApiKey, version: i16) -> BytesMut {
    let mut out = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("hostile")))
        .encode(&mut out, key.request_header_version(version))
        .expect("encode header");
    out
}

/// Header and body of a request, without the size prefix.
fn frame_of<R: Encodable>(key: ApiKey, version: i16, body: &R) -> Vec<u8> {
    let mut out = header(key, version);
    body.encode(&mut out, version).expect("encode body");
    out.to_vec()
}

/// A header followed by `body` as given.
fn raw_frame(key: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    let mut out = header(key, version);
    out.put_slice(body);
    out.to_vec()
}

/// `frame` behind its size prefix.
fn sized(frame: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(frame.len() + 4);
    out.put_i32(frame.len() as i32);
    out.put_slice(frame);
    out.freeze()
}

/// The frame `build(pad)` grown by its padding to `target` bytes (or the
/// nearest below it a varint boundary allows); `None` if it cannot fit.
fn padded(target: usize, build: &dyn Fn(usize) -> Vec<u8>) -> Option<Vec<u8>> {
    let base = build(0);
    if base.len() > target {
        return None;
    }
    let mut best = base;
    // A tag (2 bytes), a size varint (1–5) and the padding itself.
    let mut pad = target.saturating_sub(best.len() + 7);
    for _ in 0..6 {
        if pad == 0 {
            break;
        }
        let f = build(pad);
        match f.len().cmp(&target) {
            std::cmp::Ordering::Equal => return Some(f),
            std::cmp::Ordering::Less => {
                pad += target - f.len();
                best = f;
            }
            std::cmp::Ordering::Greater => pad = pad.saturating_sub(f.len() - target),
        }
    }
    Some(best)
}

/// Whether the broker's own decoding path takes `frame`; its estimate.
fn accepted(key: ApiKey, version: i16, frame: &[u8]) -> Option<usize> {
    rivulet_protocol::request::decode(Bytes::copy_from_slice(frame), key, version)
        .ok()
        .map(|d| d.bounds.decoded_estimate)
}

/// One amplification frame: the most elements a `target`-byte frame can
/// carry and still be accepted.
struct Amplifier {
    label: String,
    elements: usize,
    estimate: usize,
    frame: Bytes,
}

fn amplifier(
    label: &str,
    key: ApiKey,
    version: i16,
    target: usize,
    build: &dyn Fn(usize, usize) -> Vec<u8>,
) -> Option<Amplifier> {
    let at = |n: usize| padded(target, &|pad| build(n, pad));
    let ok = |n: usize| at(n).and_then(|f| accepted(key, version, &f).map(|e| (f, e)));
    let (mut lo, mut hi) = (0usize, target);
    ok(0)?;
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if ok(mid).is_some() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let (frame, estimate) = ok(lo)?;
    Some(Amplifier {
        label: format!("{label} x{lo}"),
        elements: lo,
        estimate,
        frame: sized(&frame),
    })
}

fn pad_fields(pad: usize) -> std::collections::BTreeMap<i32, Bytes> {
    let mut m = std::collections::BTreeMap::new();
    if pad > 0 {
        m.insert(PAD_TAG, Bytes::from(vec![0x5a; pad]));
    }
    m
}

/// A request frame of `n` elements and `pad` bytes of padding.
type Build = Box<dyn Fn(usize, usize) -> Vec<u8>>;

/// The four amplification frames at `target` bytes.
fn amplifiers(target: usize, delete_topics_version: i16) -> Vec<Amplifier> {
    let empty = || TopicName(StrBytes::from_static_str(""));
    let v = delete_topics_version;
    let kinds: [(&str, ApiKey, i16, Build); 4] = [
        (
            "DeleteTopics",
            ApiKey::DeleteTopics,
            v,
            Box::new(move |n, pad| {
                let r = DeleteTopicsRequest::default()
                    .with_topic_names(vec![empty(); n])
                    .with_unknown_tagged_fields(pad_fields(pad));
                frame_of(ApiKey::DeleteTopics, v, &r)
            }),
        ),
        (
            "Metadata",
            ApiKey::Metadata,
            9,
            Box::new(move |n, pad| {
                let t = MetadataRequestTopic::default().with_name(Some(empty()));
                let r = MetadataRequest::default()
                    .with_topics(Some(vec![t; n]))
                    .with_allow_auto_topic_creation(false)
                    .with_include_topic_authorized_operations(true)
                    .with_unknown_tagged_fields(pad_fields(pad));
                frame_of(ApiKey::Metadata, 9, &r)
            }),
        ),
        (
            "OffsetFetch",
            ApiKey::OffsetFetch,
            8,
            Box::new(move |n, pad| {
                let g = OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("")))
                    .with_topics(None);
                let r = OffsetFetchRequest::default()
                    .with_groups(vec![g; n])
                    .with_unknown_tagged_fields(pad_fields(pad));
                frame_of(ApiKey::OffsetFetch, 8, &r)
            }),
        ),
        (
            "Produce",
            ApiKey::Produce,
            9,
            Box::new(move |n, pad| {
                let parts = (0..n)
                    .map(|i| PartitionProduceData::default().with_index(i as i32))
                    .collect();
                let t = TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                    .with_partition_data(parts);
                let r = ProduceRequest::default()
                    .with_acks(1)
                    .with_timeout_ms(1000)
                    .with_topic_data(vec![t])
                    .with_unknown_tagged_fields(pad_fields(pad));
                frame_of(ApiKey::Produce, 9, &r)
            }),
        ),
    ];
    kinds
        .iter()
        .filter_map(|(label, key, version, build)| {
            let a = amplifier(
                &format!("{label} v{version}"),
                *key,
                *version,
                target,
                build,
            );
            if a.is_none() {
                eprintln!("hostile: no {label} v{version} frame of {target} bytes is accepted");
            }
            a
        })
        .collect()
}

/// Frames of exactly `limit` bytes: a Produce v9 whose records are
/// garbage, a Metadata v12 that is nearly all one unknown tagged field.
fn full_frames(limit: usize) -> [Bytes; 2] {
    let produce = padded(limit, &|pad| {
        let records = Bytes::from(vec![0x5a; pad]);
        let p = PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(records));
        let t = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![p]);
        let r = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![t]);
        frame_of(ApiKey::Produce, 9, &r)
    })
    .expect("a produce frame fits");
    let metadata = padded(limit, &|pad| {
        let r = MetadataRequest::default()
            .with_topics(Some(Vec::new()))
            .with_unknown_tagged_fields(pad_fields(pad));
        frame_of(ApiKey::Metadata, 12, &r)
    })
    .expect("a metadata frame fits");
    [sized(&produce), sized(&metadata)]
}

/// Every advertised (key, version) with each prefix of its sample body set
/// to its largest value; and the (key, version)s the table had no sample of.
fn huge_claims(advertised: &[(i16, i16, i16)]) -> (Vec<Bytes>, Vec<String>) {
    let (mut frames, mut missing) = (Vec::new(), Vec::new());
    for &(key, min, max) in advertised {
        let Ok(api) = ApiKey::try_from(key) else {
            missing.push(format!("key {key}"));
            continue;
        };
        for version in min..=max {
            let mut bodies = BTreeSet::new();
            for tagged in [false, true] {
                let Some(s) = sample(key, version, tagged) else {
                    missing.push(format!("{api:?} v{version}"));
                    break;
                };
                for slot in &s.slots {
                    bodies.insert(s.with_max(*slot));
                }
            }
            frames.extend(bodies.iter().map(|b| sized(&raw_frame(api, version, b))));
        }
    }
    (frames, missing)
}

// ---- clients ----

/// What the connections of one phase did.
#[derive(Default)]
struct Counters {
    frames: AtomicU64,
    connects: AtomicU64,
    closed: AtomicU64,
    responses: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
}

/// Read responses (size-prefixed) until the connection ends.
async fn drain_responses<R: AsyncRead + Unpin>(mut r: R, c: &Counters) {
    while let Ok(size) = r.read_i32().await {
        let mut body = (&mut r).take(size.max(0) as u64);
        if tokio::io::copy(&mut body, &mut tokio::io::sink())
            .await
            .is_err()
        {
            return;
        }
        Counters::add(&c.responses, 1);
    }
}

/// Huge claims: 16 frames per connection from `start` on, then read until
/// the broker closes; next connection starts one frame further.
async fn claims_client(addr: String, frames: Arc<Vec<Bytes>>, start: usize, c: Arc<Counters>) {
    const PER_CONNECTION: usize = 16;
    let mut i = start;
    loop {
        let Ok(mut s) = TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        Counters::add(&c.connects, 1);
        let mut batch = BytesMut::new();
        for k in 0..PER_CONNECTION {
            batch.put_slice(&frames[(i + k) % frames.len()]);
        }
        i += 1;
        // The broker closes after the first frame: later writes may fail.
        let _ = s.write_all(&batch).await;
        Counters::add(&c.frames, PER_CONNECTION as u64);
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    Counters::add(&c.closed, 1);
                    break;
                }
                Ok(Ok(_)) => Counters::add(&c.responses, 1),
                Err(_) => break, // neither answered nor closed: counted by the gap
            }
        }
    }
}

/// A size prefix of `limit`, a Produce header and 4 KiB, then nothing.
async fn stalled_client(addr: String, limit: usize, c: Arc<Counters>) {
    let Ok(mut s) = TcpStream::connect(&addr).await else {
        return;
    };
    Counters::add(&c.connects, 1);
    let mut head = BytesMut::new();
    head.put_i32(limit as i32);
    head.put_slice(&raw_frame(ApiKey::Produce, 9, &[0x5a; 4096]));
    if s.write_all(&head).await.is_ok() {
        Counters::add(&c.frames, 1);
    }
    // Returns only if the broker closes the connection.
    drain_responses(s, &c).await;
    Counters::add(&c.closed, 1);
}

/// Send `frame` as fast as the broker takes it; read the responses or not.
async fn flood_client(addr: String, frame: Bytes, read: bool, c: Arc<Counters>) {
    loop {
        let Ok(s) = TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        Counters::add(&c.connects, 1);
        let (r, mut w) = s.into_split();
        // Dropped (and its reader aborted) with this connection or task.
        let mut reader = tokio::task::JoinSet::new();
        if read {
            let c = c.clone();
            reader.spawn(async move { drain_responses(r, &c).await });
        }
        while w.write_all(&frame).await.is_ok() {
            Counters::add(&c.frames, 1);
        }
        Counters::add(&c.closed, 1);
    }
}

/// ApiVersions v3 (with `pad` bytes of unknown tagged field) on a fresh
/// connection: the advertised `(key, min, max)` ranges.
async fn api_versions(addr: &str, pad: usize) -> Result<Vec<(i16, i16, i16)>, String> {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("hostile"))
        .with_client_software_version(StrBytes::from_static_str("1"))
        .with_unknown_tagged_fields(pad_fields(pad));
    let frame = sized(&frame_of(ApiKey::ApiVersions, 3, &req));
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.write_all(&frame).await.map_err(|e| e.to_string())?;
    let size = s.read_i32().await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; size.max(0) as usize];
    s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    let mut buf = Bytes::from(buf);
    ResponseHeader::decode(&mut buf, 0).map_err(|e| e.to_string())?;
    let r = ApiVersionsResponse::decode(&mut buf, 3).map_err(|e| e.to_string())?;
    if r.error_code != 0 {
        return Err(format!("error code {}", r.error_code));
    }
    Ok(r.api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect())
}

/// Send one sized frame on a fresh connection: the response's size and
/// the time it took (60 s at most).
async fn one_request(addr: &str, frame: &[u8]) -> Result<(usize, Duration), String> {
    let started = Instant::now();
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(frame).await?;
        let size = s.read_i32().await?;
        let mut body = (&mut s).take(size.max(0) as u64);
        tokio::io::copy(&mut body, &mut tokio::io::sink()).await?;
        Ok::<_, std::io::Error>(size.max(0) as usize)
    };
    match tokio::time::timeout(Duration::from_secs(60), exchange).await {
        Ok(Ok(size)) => Ok((size, started.elapsed())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 60 s".into()),
    }
}

/// What the probes saw during a phase.
#[derive(Default)]
struct Probes {
    slowest_ms: AtomicU64,
    failed: AtomicU64,
    large_sent: AtomicU64,
    large_ok: AtomicU64,
}

/// One ApiVersions probe: its time counts, and a failure unless answered,
/// also when the phase ends before it does (the task is dropped then).
struct Attempt<'a> {
    probes: &'a Probes,
    started: Instant,
    answered: bool,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.probes.slowest_ms.fetch_max(ms, Relaxed);
        if !self.answered {
            Counters::add(&self.probes.failed, 1);
        }
    }
}

/// An ApiVersions every 250 ms (5 s to answer).
async fn small_probe(addr: String, p: Arc<Probes>) {
    loop {
        let mut attempt = Attempt {
            probes: &p,
            started: Instant::now(),
            answered: false,
        };
        let r = tokio::time::timeout(Duration::from_secs(5), api_versions(&addr, 0)).await;
        attempt.answered = matches!(r, Ok(Ok(_)));
        drop(attempt);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A 256 KiB ApiVersions every second (3 s to answer), each on its own
/// task so that one waiting for the pool does not hold up the next.
async fn large_probe(addr: String, p: Arc<Probes>) {
    let mut probes = tokio::task::JoinSet::new();
    loop {
        let (addr, p) = (addr.clone(), p.clone());
        probes.spawn(async move {
            Counters::add(&p.large_sent, 1);
            let r =
                tokio::time::timeout(Duration::from_secs(3), api_versions(&addr, 256 * 1024)).await;
            if matches!(r, Ok(Ok(_))) {
                Counters::add(&p.large_ok, 1);
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        while probes.try_join_next().is_some() {}
    }
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

/// User + system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (which may hold spaces): state, ppid, …;
    // utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

/// Wait until the broker has used under 5% of a core for 500 ms (the
/// requests still queued in its sockets are done), at most `limit`.
fn settle(pid: u32, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut last = cpu_ticks(pid);
    while started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(500));
        let now = cpu_ticks(pid);
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
        let mut b = BrokerProcess::start(bin, limit, log);
        wait_ready(rt, &mut b);
        rt.block_on(client::create_topic(&b.bootstrap, TOPIC, 1, &[]));
        // Let start-up settle (registration, heartbeats) before measuring.
        std::thread::sleep(Duration::from_secs(1));
        b
    };
    let phases = {
        let broker = start("setup");
        let advertised = rt
            .block_on(api_versions(&broker.bootstrap, 0))
            .expect("ApiVersions");
        phases(rt, &broker.bootstrap, limit, &advertised)
    };
    let mut rows: Vec<Row> = Vec::new();
    for (name, load) in phases {
        if !plan.only.is_empty() && !plan.only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        let mut broker = start(&name);
        let reset = broker.reset_peak();
        let (start_rss, _) = broker.rss();
        let sampler = Sampler::start(broker.pid(), plan.cap);
        let duration = match load {
            Load::Idle => Duration::from_secs(2),
            _ => plan.phase,
        };
        let (counters, probes) = run_phase(rt, &broker.bootstrap, limit, plan, &load, duration);
        let drain = settle(broker.pid(), plan.settle);
        let (sampled, capped) = sampler.finish();
        let (_, hwm) = broker.rss();
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
            still_serving(rt, &broker.bootstrap).map_err(|first| {
                // Refused once: say whether it comes back once the broker is idle.
                let waited = settle(broker.pid(), plan.settle).as_secs();
                match still_serving(rt, &broker.bootstrap) {
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

fn wait_ready(rt: &tokio::runtime::Runtime, b: &mut BrokerProcess) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(why) = b.exited() {
            panic!("the broker {why}");
        }
        let r = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), api_versions(&b.bootstrap, 0)).await
        });
        if matches!(r, Ok(Ok(_))) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the broker never answered ApiVersions"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
