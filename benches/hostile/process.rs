//! The broker process under test: start on free ports with the request
//! limits of a scale, and an RSS sampler that SIGKILLs it above a cap.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use rivulet_testkit::dirs::bench_dir;
use rivulet_testkit::process::{send_signal, BrokerProcess, NodeSpec, Signal};
use rivulet_testkit::procfs;

/// `rivulet` as a child process on free loopback ports, its data in a
/// fresh bench dir, `socket.request.max.bytes` and
/// `queued.max.request.bytes` both `limit`. Returns at once.
pub(crate) fn start_broker(bin: &Path, limit: usize, log: PathBuf) -> BrokerProcess {
    let data = bench_dir();
    let spec = NodeSpec::new(bin, data.path(), log)
        .set("socket.request.max.bytes", limit)
        .set("queued.max.request.bytes", limit)
        .env("NO_COLOR", "1");
    BrokerProcess::spawn(spec).owning(data)
}

/// Samples the broker's VmRSS every 50 ms; SIGKILLs it above `cap`.
pub(crate) struct Sampler {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) peak: Arc<AtomicU64>,
    pub(crate) capped: Arc<AtomicBool>,
    pub(crate) thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    pub(crate) fn start(pid: u32, cap: u64) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let capped = Arc::new(AtomicBool::new(false));
        let (s, p, c) = (stop.clone(), peak.clone(), capped.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Relaxed) {
                let (rss, _) = procfs::rss(pid);
                p.fetch_max(rss, Relaxed);
                if rss > cap && !c.swap(true, Relaxed) {
                    let _ = send_signal(pid, Signal::KILL);
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
    pub(crate) fn finish(self) -> (u64, bool) {
        self.stop.store(true, Relaxed);
        let _ = self.thread.join();
        (self.peak.load(Relaxed), self.capped.load(Relaxed))
    }
}
