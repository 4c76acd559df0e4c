//! The broker process under test: start, RSS and CPU sampling.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};

use super::*;

// ---- the broker process ----

/// `rivulet` as a child process on free loopback ports.
pub(crate) struct BrokerProcess {
    pub(crate) child: Child,
    pub(crate) bootstrap: String,
    pub(crate) log: PathBuf,
    pub(crate) _data: tempfile::TempDir,
}

impl BrokerProcess {
    pub(crate) fn start(bin: &Path, limit: usize, log: PathBuf) -> BrokerProcess {
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

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(why)` once the process has exited: its status and log tail.
    pub(crate) fn exited(&mut self) -> Option<String> {
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
    pub(crate) fn rss(&self) -> (u64, u64) {
        rss_of(self.pid())
    }

    /// Reset VmHWM to the current RSS (Linux 4.0+); false if refused.
    pub(crate) fn reset_peak(&self) -> bool {
        fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn rss_of(pid: u32) -> (u64, u64) {
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

pub(crate) fn mem_available() -> u64 {
    let text = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
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
                let (rss, _) = rss_of(pid);
                p.fetch_max(rss, Relaxed);
                if rss > cap && !c.swap(true, Relaxed) {
                    let _ = i32::try_from(pid)
                        .ok()
                        .and_then(Pid::from_raw)
                        .map(|p| kill_process(p, Signal::KILL));
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
