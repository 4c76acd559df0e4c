//! The `request` fuzz target: arbitrary bytes as one request frame (what
//! follows the size prefix) through the path a connection takes —
//! `rivulet_broker::connection::handle_frame`: API key, version and
//! correlation id from the first 8 bytes, the version check, the bounded
//! pre-pass and `kafka-protocol`'s decoder, the handler, the response
//! encoder — against a real single-node broker held in this process.
//!
//! One broker per process ([`Harness::get`]): a data dir on tmpfs
//! (`/dev/shm`) when there is one, a tokio runtime created once, frames run
//! one at a time with `block_on`. Its state carries over from one input to
//! the next, as a long-lived broker's does, until it is replaced by a fresh
//! one (every [`RESET_EVERY`] inputs or when fuzzed topics pile up); a topic
//! `fuzz` (two partitions, a few records) is there for the seeds to reach
//! the data paths, and is recreated if an input deletes it.
//!
//! Findings, besides panics anywhere in the broker (libFuzzer's panic hook
//! aborts on a panic in any thread, background tasks included):
//! - `request::decode` returns `LayoutMismatch` — the pre-pass table and
//!   the codec disagree on a request's layout;
//! - a response's size prefix or correlation id is wrong;
//! - a response cannot be encoded (`CloseReason::Encode`): the broker would
//!   drop the connection where it owes an answer.
//!
//! Keeping an execution cheap: a Fetch's `max_wait_ms` is clamped to
//! [`FETCH_MAX_WAIT_MS`] in the frame before it is handled (the handler has
//! no hook; the bytes at that offset are the field in every Fetch version),
//! `group.initial.rebalance.delay.ms` is 0, the group coordinator's timer
//! ticks every [`GROUP_TIMER_TICK`] instead of 50 ms, and a request still
//! running after [`budget`] (a JoinGroup waiting for the rest of its group,
//! a CreateTopics waiting for its partitions) is left running in the
//! background, as a connection would leave it, while the next input goes
//! on. A request is polled on the fuzzer's thread (in the runtime's
//! context) until it finishes or its budget is up, with microsecond
//! precision (not a tokio timer, which rounds up to the next millisecond
//! tick); only then is it spawned, from where it stopped. At
//! most [`MAX_PARKED`] requests run in the background: past it the oldest
//! is aborted, as when its client disconnects (dropping a handler's future
//! mid-way is a path a real connection takes too), instead of waiting for
//! it. Finished background requests are checked like the others.
//!
//! This file is shared by `#[path]` with `broker/tests/fuzz_corpus.rs`,
//! which replays the corpus and the regressions in `cargo test`; it only
//! uses crates that `rivulet-broker` and its tests depend on.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;
use rivulet_broker::connection::{handle_frame, CloseReason};
use rivulet_broker::request_memory::{RequestMemory, Reservation};
use rivulet_broker::{api, BrokerConfig, BrokerContext, BrokerNode};
use rivulet_protocol::request::{self, RequestError};
use rivulet_protocol::request_bounds;
use tokio::task::{JoinError, JoinHandle};

/// The topic the seeds address.
pub const TOPIC: &str = "fuzz";
const TOPIC_PARTITIONS: i32 = 2;
/// The group the seeds address.
pub const GROUP: &str = "fuzz-group";
/// The SCRAM user the broker knows (`sasl.scram.bootstrap.users`), for the
/// `sasl_session` target.
pub const SASL_USER: &str = "fuzzuser";
pub const SASL_PASSWORD: &str = "fuzz-pw-7f3a9c";
/// Largest Fetch `max_wait_ms` handed to the broker.
pub const FETCH_MAX_WAIT_MS: i32 = 0;
/// Largest JoinGroup session and rebalance timeouts handed to the broker
/// (`group.min.session.timeout.ms` is lowered to 10 to match): members that
/// never heartbeat leave, and rebalances waiting for them end, within a few
/// of the coordinator's timer ticks ([`GROUP_TIMER_TICK`]).
pub const JOIN_MAX_TIMEOUT_MS: i32 = 200;
/// Requests left running in the background at most; past it the oldest is
/// aborted (its client went away).
const MAX_PARKED: usize = 64;
/// A patient harness's least budget and longest wait for the parked set to
/// shrink (see [`Harness::be_patient`]).
const PATIENT_BUDGET: Duration = Duration::from_millis(20);
const PATIENT_WAIT: Duration = Duration::from_secs(2);
/// The fuzzed broker's group timer tick (`CoordinatorConfig::timer_tick`,
/// 50 ms by default): rebalance and session deadlines are acted on within
/// this, so that a parked JoinGroup is answered (and checked) within about
/// [`JOIN_MAX_TIMEOUT_MS`] rather than aborted. Each tick walks every group,
/// so a shorter one costs the broker thread more than it gains.
pub const GROUP_TIMER_TICK: Duration = Duration::from_millis(10);
/// The broker is replaced by a fresh one after this many inputs, or sooner
/// when the fuzzer has made more than [`RESET_TOPICS`] topics: requests that
/// list every topic, log or group cost time in proportion to them, and a
/// long run would otherwise slow down to a crawl (as a long-lived broker's
/// state grows without bound under fuzzed CreateTopics and JoinGroups).
const RESET_EVERY: u64 = 100_000;
const RESET_TOPICS: usize = 200;
/// ... or more than this many partitions, near [`MAX_OPEN_LOGS`]: past it
/// every CreateTopics (the fuzzer's, and the harness's own re-creation of
/// `fuzz` after a fuzzed DeleteTopics) waits its whole timeout for logs that
/// cannot open. Measured: such waits of several seconds every thousand
/// inputs were most of a run's wall time.
const RESET_PARTITIONS: usize = MAX_OPEN_LOGS - 100;
/// `max.open.logs` of the fuzzed broker: each log holds about four file
/// descriptors, shared with libFuzzer in this process, and the default
/// (100,000 logs) is far above the usual descriptor limit (a first run died
/// with "Too many open files" at 3,000 fuzzed partitions). It also bounds
/// what requests listing every log cost, so topics with thousands of
/// partitions need no reset.
const MAX_OPEN_LOGS: usize = 1_000;
/// A frame longer than this is not handled (the fuzzer never makes one
/// anyway); the broker's own limit is `socket.request.max.bytes`.
const MAX_FRAME: usize = 1 << 20;
const PEER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    40_000,
);

/// How long one input may take before it is left running in the background:
/// `RIVULET_FUZZ_BUDGET_US` microseconds, 1 ms by default (most requests
/// take tens of microseconds; a JoinGroup waits for the rest of its group
/// and the coordinator's timer, and the fuzzer finds many of them).
pub fn budget() -> Duration {
    static BUDGET: OnceLock<Duration> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let us = std::env::var("RIVULET_FUZZ_BUDGET_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000);
        Duration::from_micros(us)
    })
}

/// Whether to print each input's API, outcome and time
/// (`RIVULET_FUZZ_TRACE=1`).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("RIVULET_FUZZ_TRACE").is_some())
}

/// A broker in this process and the runtime it runs on.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    live: Mutex<Option<Live>>,
    /// Requests still running after their budget.
    parked: Mutex<Vec<Parked>>,
    runs: AtomicU64,
    parked_total: AtomicU64,
    aborted: AtomicU64,
    resets: AtomicU64,
    /// See [`Harness::be_patient`].
    patient: AtomicBool,
}

/// The running broker and its data dir.
struct Live {
    node: BrokerNode,
    dir: tempfile::TempDir,
    started_at_run: u64,
}

/// A request left running after its budget, checked once it finishes.
struct Parked {
    task: JoinHandle<Result<Option<BytesMut>, CloseReason>>,
    correlation_id: i32,
    raw_key: i16,
    version: i16,
    frame: Bytes,
}

/// What handling one input came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Shorter than a request header: the connection refuses the size.
    TooShort,
    /// A response was written.
    Response,
    /// No response is due (produce with acks=0).
    NoResponse,
    /// The connection would be closed (unknown key, bad version, refused body).
    Closed,
    /// Still running after the budget; left in the background.
    Parked,
}

impl Harness {
    /// The process's harness, started on first use.
    pub fn get() -> &'static Harness {
        static HARNESS: OnceLock<Harness> = OnceLock::new();
        HARNESS.get_or_init(Harness::start)
    }

    fn start() -> Harness {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fuzz-broker")
            .enable_all()
            .build()
            .expect("tokio runtime");
        remove_orphaned_dirs();
        let harness = Harness {
            runtime,
            live: Mutex::new(None),
            parked: Mutex::new(Vec::new()),
            runs: AtomicU64::new(0),
            parked_total: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            patient: AtomicBool::new(false),
        };
        harness.reset();
        harness
    }

    /// Run `f` to completion on the harness's runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// The broker now serving (replaced by a fresh one now and then).
    pub fn broker(&self) -> Arc<BrokerContext> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.as_ref().expect("a running broker").node.broker.clone()
    }

    fn memory(&self) -> Arc<RequestMemory> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.as_ref()
            .expect("a running broker")
            .node
            .request_memory
            .clone()
    }

    /// Stop the broker (aborting the requests still running, after waiting
    /// for them if patient) and start a fresh one in a new data dir, with
    /// the `fuzz` topic.
    fn reset(&self) {
        if self.patient.load(Relaxed) {
            self.drain();
        }
        self.abort_parked(0);
        let old = self.live.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(old) = old {
            self.resets.fetch_add(1, Relaxed);
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), old.node.shutdown()).await
            });
            drop(old.dir);
        }
        let dir = data_dir();
        let node = self.runtime.block_on(start_broker(dir.path()));
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(Live {
            node,
            dir,
            started_at_run: self.runs.load(Relaxed),
        });
        self.ensure_topic();
    }

    /// Every thousand inputs: recreate the `fuzz` topic if an input deleted
    /// it, or replace the broker if its state has grown (see [`RESET_EVERY`]).
    fn maintain(&self, runs: u64) {
        let broker = self.broker();
        let started = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |l| l.started_at_run);
        let image = broker.image();
        let topics = image.topics.len();
        let partitions: usize = image.topics.values().map(|t| t.partitions.len()).sum();
        drop(image);
        if runs - started >= RESET_EVERY || topics > RESET_TOPICS || partitions > RESET_PARTITIONS {
            drop(broker);
            if trace() || runs - started < RESET_EVERY {
                eprintln!(
                    "rivulet-fuzz: a fresh broker after {} inputs \
                     ({topics} topics, {partitions} partitions)",
                    runs - started
                );
            }
            self.reset();
        } else {
            self.ensure_topic();
        }
    }

    /// Create the `fuzz` topic and write a few records to it, unless it is
    /// there.
    fn ensure_topic(&self) {
        let broker = self.broker();
        if broker.image().topic(TOPIC).is_some() {
            return;
        }
        let create = frame(ApiKey::CreateTopics, 7, &create_topics());
        let produce = frame(ApiKey::Produce, 9, &produce(1));
        let memory = self.memory();
        for f in [create, produce] {
            let broker = broker.clone();
            let memory = memory.clone();
            let _ = self.runtime.block_on(async move {
                let mut reservation = Reservation::default();
                handle_frame(
                    Bytes::from(f),
                    &rivulet_broker::session::Session::plaintext(PEER),
                    &broker,
                    &memory,
                    &mut reservation,
                )
                .await
            });
        }
    }

    /// Handle one input as a request frame; panics on a finding.
    pub fn run(&self, data: &[u8]) -> Outcome {
        // The connection refuses a size prefix outside 8..=limit before
        // reading the frame.
        if data.len() < 8 || data.len() > MAX_FRAME {
            return Outcome::TooShort;
        }
        let runs = self.runs.fetch_add(1, Relaxed) + 1;
        if runs.is_multiple_of(1000) {
            self.maintain(runs);
        }
        self.reap_parked();
        let raw_key = i16::from_be_bytes([data[0], data[1]]);
        let version = i16::from_be_bytes([data[2], data[3]]);
        let correlation_id = i32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        let mut frame = data.to_vec();
        let served = ApiKey::try_from(raw_key)
            .ok()
            .filter(|key| api::supported(*key).is_some_and(|r| (r.min..=r.max).contains(&version)));
        if let Some(key) = served {
            check_layout(&frame, key, version);
            clamp_waits(&mut frame, key, version);
        }
        let started = Instant::now();
        let outcome = self.handle(frame, correlation_id, raw_key, version, data);
        if trace() {
            eprintln!(
                "{:?} v{version}: {outcome:?} in {:?}",
                ApiKey::try_from(raw_key).map_err(|_| raw_key),
                started.elapsed()
            );
        }
        outcome
    }

    fn handle(
        &self,
        frame: Vec<u8>,
        correlation_id: i32,
        raw_key: i16,
        version: i16,
        data: &[u8],
    ) -> Outcome {
        let broker = self.broker();
        let memory = self.memory();
        let frame = Bytes::from(frame);
        let for_task = frame.clone();
        let mut request: Handling = Box::pin(async move {
            let mut reservation = Reservation::default();
            handle_frame(
                for_task,
                &rivulet_broker::session::Session::plaintext(PEER),
                &broker,
                &memory,
                &mut reservation,
            )
            .await
        });
        let budget = if self.patient.load(Relaxed) {
            budget().max(PATIENT_BUDGET)
        } else {
            budget()
        };
        // Polled here first, not spawned: most requests finish in their
        // first poll, and handing each to the runtime's worker and back
        // cost two thread wake-ups, which on a busy machine at nice 19
        // each waited milliseconds for a core.
        let polled = {
            let _runtime = self.runtime.enter();
            poll_for(&mut request, budget)
        };
        match polled {
            None => {
                // The request goes on in the background, as on a connection,
                // from where it stopped, and is checked once it finishes.
                let task = self.runtime.spawn(request);
                self.parked_total.fetch_add(1, Relaxed);
                if let Ok(mut parked) = self.parked.lock() {
                    parked.push(Parked {
                        task,
                        correlation_id,
                        raw_key,
                        version,
                        frame,
                    });
                }
                Outcome::Parked
            }
            Some(result) => check_result(Ok(result), correlation_id, raw_key, version, data),
        }
    }

    /// Check the requests that outlived their budget and have finished
    /// since; abort the oldest of those still running past [`MAX_PARKED`]
    /// (a CreateTopics may wait its whole timeout for partitions that
    /// `max.open.logs` keeps from opening; waiting for it would stall the
    /// fuzzer).
    fn reap_parked(&self) {
        self.collect_finished();
        if self.patient.load(Relaxed) {
            let deadline = Instant::now() + PATIENT_WAIT;
            while self.parked_len() > MAX_PARKED && Instant::now() < deadline {
                self.runtime
                    .block_on(async { tokio::time::sleep(Duration::from_millis(1)).await });
                self.collect_finished();
            }
        }
        self.abort_parked(MAX_PARKED);
    }

    /// Check every request rather than run fast, for replaying a corpus in
    /// `cargo test` (an unoptimised build, on a machine maybe busy): each
    /// input gets at least [`PATIENT_BUDGET`], past [`MAX_PARKED`] the
    /// oldest is waited for (up to [`PATIENT_WAIT`]) before it is aborted,
    /// and a reset first drains the parked requests (see [`Harness::drain`]).
    pub fn be_patient(&self) {
        self.patient.store(true, Relaxed);
    }

    /// Abort the oldest parked requests until at most `keep` are left, and
    /// wait until their futures are dropped (so that they no longer hold
    /// the broker). One that finished meanwhile is checked instead.
    fn abort_parked(&self, keep: usize) {
        let evicted: Vec<Parked> = match self.parked.lock() {
            Ok(mut parked) => {
                let excess = parked.len().saturating_sub(keep);
                parked.drain(..excess).collect()
            }
            Err(_) => return,
        };
        for p in evicted {
            p.task.abort();
            let joined = self.runtime.block_on(p.task);
            match joined {
                Err(e) if e.is_cancelled() => {
                    self.aborted.fetch_add(1, Relaxed);
                }
                joined => {
                    check_result(joined, p.correlation_id, p.raw_key, p.version, &p.frame);
                }
            }
        }
    }

    fn parked_len(&self) -> usize {
        self.parked.lock().map_or(0, |p| p.len())
    }

    /// Check the parked requests that have finished; returns how many of
    /// them were answered.
    fn collect_finished(&self) -> usize {
        let Ok(mut parked) = self.parked.lock() else {
            return 0;
        };
        let mut answered = 0;
        let mut running = Vec::with_capacity(parked.len());
        for p in parked.drain(..) {
            if !p.task.is_finished() {
                running.push(p);
                continue;
            }
            let joined = self.runtime.block_on(p.task);
            if check_result(joined, p.correlation_id, p.raw_key, p.version, &p.frame)
                == Outcome::Response
            {
                answered += 1;
            }
        }
        *parked = running;
        answered
    }

    /// Wait up to five seconds for the requests still running and check
    /// them; returns how many of them were answered. Those still running
    /// then are left alone.
    pub fn drain(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut answered = self.collect_finished();
        while self.parked_len() > 0 && Instant::now() < deadline {
            self.runtime
                .block_on(async { tokio::time::sleep(Duration::from_millis(5)).await });
            answered += self.collect_finished();
        }
        answered
    }

    /// Inputs handled, inputs left running after their budget, and how
    /// many times the broker was replaced.
    pub fn stats(&self) -> (u64, u64, u64) {
        (
            self.runs.load(Relaxed),
            self.parked_total.load(Relaxed),
            self.resets.load(Relaxed),
        )
    }

    /// Parked requests aborted before they finished (see [`MAX_PARKED`]).
    pub fn aborted(&self) -> u64 {
        self.aborted.load(Relaxed)
    }
}

/// A request being handled, movable to the runtime part way through.
type Handling = Pin<Box<dyn Future<Output = Result<Option<BytesMut>, CloseReason>> + Send>>;

/// Poll `task` on this thread for up to `budget`, parked in between until
/// its waker or the deadline (with the precision of `park_timeout`, unlike
/// a tokio timer, whose wheel rounds up to whole milliseconds); `None` if
/// it is still pending then. The caller enters the runtime's context.
fn poll_for<F: Future + Unpin>(task: &mut F, budget: Duration) -> Option<F::Output> {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let deadline = Instant::now() + budget;
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = Pin::new(&mut *task).poll(&mut cx) {
            return Some(output);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        // Wakes early on the task's waker (or spuriously: polled again).
        std::thread::park_timeout(left);
    }
}

type Joined = Result<Result<Option<BytesMut>, CloseReason>, JoinError>;

/// Check what a request task came to: a panic or an unencodable answer is a
/// finding, a response must be well formed.
fn check_result(
    joined: Joined,
    correlation_id: i32,
    raw_key: i16,
    version: i16,
    frame: &[u8],
) -> Outcome {
    let result = match joined {
        Err(e) => match e.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(e) => panic!("request task failed: {e}"),
        },
        Ok(result) => result,
    };
    match result {
        Ok(Some(response)) => {
            check_response(&response, correlation_id, raw_key, version);
            Outcome::Response
        }
        Ok(None) => Outcome::NoResponse,
        Err(e @ CloseReason::Encode { .. }) => {
            panic!(
                "the broker cannot encode its answer ({e}); frame {}",
                hex(frame)
            )
        }
        Err(_) => Outcome::Closed,
    }
}

/// Prefix of the data dirs, followed by the owning process id.
const DIR_PREFIX: &str = "rivulet-fuzz-";

/// Where the data dirs go: tmpfs when there is one.
fn dir_parent() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A fresh data dir, named after this process: the process ends by
/// `exit` under libFuzzer, without dropping it, so the next one removes it.
fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
        .tempdir_in(dir_parent())
        .expect("temp data dir")
}

/// Remove the data dirs of harness processes that are gone.
fn remove_orphaned_dirs() {
    let Ok(entries) = std::fs::read_dir(dir_parent()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

async fn start_broker(dir: &std::path::Path) -> BrokerNode {
    let mut last_error = None;
    for _ in 0..5 {
        let mut props = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            props.insert(k.to_string(), v);
        };
        set("listeners", format!("127.0.0.1:{}", free_port()));
        set("controller.listener", format!("127.0.0.1:{}", free_port()));
        set("data.dir", dir.display().to_string());
        set("broker.heartbeat.interval.ms", "200".into());
        set("group.initial.rebalance.delay.ms", "0".into());
        set("group.min.session.timeout.ms", "10".into());
        // Fuzzed topic names would otherwise each become a topic.
        set("auto.create.topics.enable", "false".into());
        // Small preallocated indexes: fuzzed CreateTopics make many logs.
        set("log.index.size.max.bytes", "65536".into());
        set("log.segment.bytes", "1048576".into());
        set("socket.request.max.bytes", MAX_FRAME.to_string());
        set("max.open.logs", MAX_OPEN_LOGS.to_string());
        set(
            "sasl.scram.bootstrap.users",
            format!(
                "SCRAM-SHA-512=[name={SASL_USER},password={SASL_PASSWORD}],\
                 SCRAM-SHA-256=[name={SASL_USER},password={SASL_PASSWORD}]"
            ),
        );
        let mut config = BrokerConfig::from_props(&props).expect("fuzz broker config");
        config.coordinator.timer_tick = GROUP_TIMER_TICK;
        match BrokerNode::start(config).await {
            Ok(node) => {
                let b = node.broker.clone();
                let deadline = Instant::now() + Duration::from_secs(30);
                let ready = |b: &BrokerContext| {
                    let image = b.image();
                    image.is_live(b.node_id())
                        && image.scram_credential("SCRAM-SHA-512", SASL_USER).is_some()
                };
                while !ready(&b) {
                    assert!(Instant::now() < deadline, "fuzz broker never registered");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return node;
            }
            // A free port can be taken before the broker binds it.
            Err(e) if port_taken(&e) => last_error = Some(e),
            Err(e @ rivulet_broker::StartError::Bind { .. }) => last_error = Some(e),
            Err(e) => panic!("fuzz broker did not start: {e}"),
        }
    }
    panic!("fuzz broker did not start: {last_error:?}")
}

/// Whether a broker failed to start on a port taken since [`free_port`]
/// chose it, by another process or by an outgoing connection of this one
/// given it as its ephemeral port (`StartError::port_taken`: the Kafka
/// listener's bind or the controller listener's; a run died on the latter
/// once resets became frequent).
pub fn port_taken(e: &rivulet_broker::StartError) -> bool {
    e.port_taken()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The pre-pass and the decoder must walk the same layout: a
/// `LayoutMismatch` is a bug in rivulet's request table.
fn check_layout(frame: &[u8], key: ApiKey, version: i16) {
    if let Err(e @ RequestError::LayoutMismatch { .. }) =
        request::decode(Bytes::copy_from_slice(frame), key, version)
    {
        panic!("{e}; frame {}", hex(frame));
    }
}

/// Clamp what would make the handler wait: a Fetch's `max_wait_ms`, a
/// JoinGroup's session and rebalance timeouts (the handlers have no hook).
fn clamp_waits(frame: &mut [u8], key: ApiKey, version: i16) {
    let Ok(body) = request_bounds::check_header(frame, key.request_header_version(version)) else {
        return;
    };
    match key {
        // replica_id (i32) comes first up to v14; from v15 it is tagged.
        ApiKey::Fetch => clamp_i32(
            frame,
            body + if version >= 15 { 0 } else { 4 },
            FETCH_MAX_WAIT_MS,
        ),
        ApiKey::JoinGroup => {
            // group_id, then session_timeout_ms and (v1+) rebalance_timeout_ms.
            let Some(after_group) = skip_string(frame, body, version >= 6) else {
                return;
            };
            clamp_i32(frame, after_group, JOIN_MAX_TIMEOUT_MS);
            if version >= 1 {
                clamp_i32(frame, after_group + 4, JOIN_MAX_TIMEOUT_MS);
            }
        }
        _ => {}
    }
}

/// Lower the big-endian i32 at `at` to `max` if it is there and above it.
fn clamp_i32(frame: &mut [u8], at: usize, max: i32) {
    if let Some(field) = frame.get_mut(at..at.saturating_add(4)) {
        let v = i32::from_be_bytes([field[0], field[1], field[2], field[3]]);
        field.copy_from_slice(&v.min(max).to_be_bytes());
    }
}

/// The offset after the string at `at`: an i16 length, or in flexible
/// versions an unsigned varint of length + 1 (0 and -1 are null).
fn skip_string(frame: &[u8], at: usize, compact: bool) -> Option<usize> {
    if !compact {
        let len = i16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
        return Some(at + 2 + usize::try_from(len).unwrap_or(0));
    }
    let (mut len, mut shift, mut pos) = (0u64, 0u32, at);
    loop {
        let b = *frame.get(pos)?;
        pos += 1;
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    let len = usize::try_from(len.saturating_sub(1)).ok()?;
    pos.checked_add(len)
}

fn check_response(response: &[u8], correlation_id: i32, key: i16, version: i16) {
    assert!(
        response.len() >= 8,
        "response of {key} v{version} too short"
    );
    let size = i32::from_be_bytes([response[0], response[1], response[2], response[3]]);
    assert_eq!(
        usize::try_from(size).ok(),
        Some(response.len() - 4),
        "size prefix of the response to {key} v{version}"
    );
    let echoed = i32::from_be_bytes([response[4], response[5], response[6], response[7]]);
    assert_eq!(
        echoed, correlation_id,
        "correlation id of the response to {key} v{version}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[path = "request_seeds.rs"]
mod seeds;
pub use seeds::{create_topics, frame, produce, seeds};
