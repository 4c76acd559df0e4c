//! An idle `rivulet` broker with no topics keeps its heap small (issue 15,
//! "Footprint"): the anonymous part of its resident memory (heap, stacks;
//! the binary's own pages, large in a debug build, are file-backed) stays
//! under a generous bound, and transparent huge pages are off for the
//! process (the one or two mimalloc faulted in before `main` stay). Figures are `cargo bench --bench footprint`'s; this only
//! catches a regression of the kind fixed (26 MiB of openraft histogram
//! tables, 2 MiB huge pages of mimalloc's arena).

use std::fs;
use std::time::Duration;

use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::process::{BrokerProcess, NodeSpec};
use rivulet_testkit::procfs::resident;

const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");

/// The bound on an idle broker's anonymous memory: about 9 MiB measured
/// (debug build), 48 MiB before the fixes.
const ANONYMOUS_MAX: u64 = 16 * 1024 * 1024;

#[test]
fn an_idle_broker_keeps_a_small_heap_without_huge_pages() {
    let dir = temp_dir();
    let spec = NodeSpec::new(
        RIVULET,
        dir.path().join("data"),
        dir.path().join("rivulet.log"),
    );
    let mut node = BrokerProcess::spawn(spec);
    node.wait_serving(Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    let pid = node.pid();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let (rss, anonymous) = resident(pid);
    assert!(rss > 0 && anonymous > 0, "smaps_rollup of {pid} unreadable");
    assert!(
        anonymous <= ANONYMOUS_MAX,
        "an idle broker holds {anonymous} B of anonymous memory (at most {ANONYMOUS_MAX}; RSS {rss} B)"
    );
    // Kernels that report it (6.x): THP off for the process.
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
    node.terminate(Duration::from_secs(20));
}
