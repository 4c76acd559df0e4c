//! The broker's memory footprint (issue 15): one `rivulet` broker process
//! with no topics, its resident memory once idle; then per partition (a
//! topic of `FOOTPRINT_PARTITIONS` partitions, 1,000 by default, created
//! and left idle) and per connection (`FOOTPRINT_CONNECTIONS` idle client
//! connections, 1,000 by default, each having sent one ApiVersions request
//! and read its answer): the growth in resident memory divided by the
//! count. Resident memory is `Rss` of /proc/PID/smaps_rollup, with its
//! anonymous part (heap, stacks) apart from the file-backed one (the
//! binary's pages, mapped index files).
//!
//! The broker is `$RIVULET_BIN`, else the release build (built when missing
//! or stale; see `benches/common`). Run: `cargo bench --bench footprint`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use rivulet_protocol::wire::encode_raw_request;
use rivulet_testkit::dirs::bench_dir;
use rivulet_testkit::kafka::{bench_client_config, try_create_topic, wait_for_leaders, Admin};
use rivulet_testkit::process::{BrokerProcess, NodeSpec};
use rivulet_testkit::procfs::resident;

/// How long the broker is left alone before a reading.
const SETTLE: Duration = Duration::from_secs(3);

fn settled(pid: u32) -> (u64, u64) {
    std::thread::sleep(SETTLE);
    resident(pid)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Growth from `before` to `after`, per one of `n`, in bytes.
fn per(before: (u64, u64), after: (u64, u64), n: usize) -> (i64, i64) {
    let n = n.max(1) as i64;
    (
        (after.0 as i64 - before.0 as i64) / n,
        (after.1 as i64 - before.1 as i64) / n,
    )
}

/// An idle client connection: connected, one ApiVersions v0 round trip.
fn connect(bootstrap: &str, frame: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(bootstrap).expect("connect to the broker");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    s.write_all(frame).expect("send ApiVersions");
    let mut size = [0u8; 4];
    s.read_exact(&mut size).expect("an ApiVersions answer");
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).expect("the whole answer");
    s
}

/// Raise this process's open-files soft limit to the hard one (the
/// connections are this process's descriptors too).
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
}

fn main() {
    let partitions = common::env_usize("FOOTPRINT_PARTITIONS", 1000);
    let connections = common::env_usize("FOOTPRINT_CONNECTIONS", 1000);
    raise_nofile();
    let bin = common::rivulet_bin();
    let dir = bench_dir();
    let log = dir.path().join("broker.log");
    let mut broker = BrokerProcess::spawn(NodeSpec::new(&bin, dir.path().join("data"), &log));
    broker.wait_serving(Duration::from_secs(60));
    let pid = broker.pid();
    let bootstrap = broker.bootstrap();
    println!("footprint: {}", bin.display());

    let idle = settled(pid);
    println!(
        "idle, no topics:           RSS {:>6.1} MiB (anonymous {:.1} MiB)",
        mib(idle.0),
        mib(idle.1)
    );

    // Per partition.
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let admin: Admin = bench_client_config(&bootstrap)
        .create()
        .expect("admin client");
    rt.block_on(try_create_topic(
        &admin,
        "footprint",
        partitions as i32,
        1,
        &[],
    ))
    .unwrap_or_else(|e| panic!("create {partitions} partitions: {e:?}"));
    wait_for_leaders(&bootstrap, "footprint", Duration::from_secs(120));
    drop(admin);
    let with_partitions = settled(pid);
    let (p_rss, p_anon) = per(idle, with_partitions, partitions);
    println!(
        "{partitions} partitions:           RSS {:>6.1} MiB: {p_rss} B per partition ({p_anon} B anonymous)",
        mib(with_partitions.0)
    );

    // Per connection.
    let frame = encode_raw_request(ApiKey::ApiVersions, 0, 1, Some("footprint"), &[])
        .expect("an ApiVersions frame");
    let held: Vec<TcpStream> = (0..connections)
        .map(|_| connect(&bootstrap, &frame))
        .collect();
    let with_connections = settled(pid);
    let (c_rss, c_anon) = per(with_partitions, with_connections, connections);
    println!(
        "{connections} idle connections:     RSS {:>6.1} MiB: {c_rss} B per connection ({c_anon} B anonymous)",
        mib(with_connections.0)
    );
    drop(held);
    common::broker::stop_and_report(&mut broker, &log);
}
