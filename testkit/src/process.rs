//! The `rivulet` binary as a child process: one broker node that can be
//! SIGKILLed, SIGTERMed and started again on the same ports and data, with
//! its stdout and stderr in a log file; and one-shot runs of the binary
//! (`rivulet topic …`) with their output captured.
//!
//! The binary is a parameter everywhere: only the crate that defines it
//! gets `env!("CARGO_BIN_EXE_rivulet")`; benches build a release one.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use rustix::process::Signal;
use rustix::process::{kill_process, Pid};
use tempfile::TempDir;

use crate::poll::Poll;
use crate::ports::free_port;

/// Send `signal` to process `pid` (no-op if `pid` is not a valid pid).
pub fn send_signal(pid: u32, signal: Signal) -> std::io::Result<()> {
    match i32::try_from(pid).ok().and_then(Pid::from_raw) {
        Some(pid) => kill_process(pid, signal).map_err(std::io::Error::from),
        None => Ok(()),
    }
}

/// The last `lines` lines of the file at `path` (empty if unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(f) = File::open(path) else {
        return String::new();
    };
    let all: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// How to run one `rivulet` broker node: `bin [--config FILE] --set k=v …`
/// with `listeners`, `controller.listener` and `data.dir` from the fields,
/// then `settings` in order (a `--set` overrides the file).
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub bin: PathBuf,
    /// The Kafka listener, on 127.0.0.1.
    pub port: u16,
    /// The controller (Raft) listener, on 127.0.0.1.
    pub controller_port: u16,
    /// The metrics and health HTTP endpoint (`metrics.listener`), on
    /// 127.0.0.1.
    pub metrics_port: u16,
    pub data_dir: PathBuf,
    /// Where stdout and stderr go: created by the first start, appended to
    /// by restarts.
    pub log: PathBuf,
    pub settings: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    /// A config file (`--config`), read before the settings.
    pub config: Option<PathBuf>,
    /// Soft and hard open-files limit of the process (started through
    /// util-linux's `prlimit`), if not inherited.
    pub nofile: Option<u64>,
}

impl NodeSpec {
    /// A node of `bin` on free ports.
    pub fn new(
        bin: impl Into<PathBuf>,
        data_dir: impl Into<PathBuf>,
        log: impl Into<PathBuf>,
    ) -> NodeSpec {
        NodeSpec {
            bin: bin.into(),
            port: free_port(),
            controller_port: free_port(),
            metrics_port: free_port(),
            data_dir: data_dir.into(),
            log: log.into(),
            settings: Vec::new(),
            env: Vec::new(),
            config: None,
            nofile: None,
        }
    }

    /// The same node with its open-files limit (soft and hard) at `n`.
    pub fn nofile(mut self, n: u64) -> NodeSpec {
        self.nofile = Some(n);
        self
    }

    /// The same node with its metrics endpoint on `port`.
    pub fn metrics_port(mut self, port: u16) -> NodeSpec {
        self.metrics_port = port;
        self
    }

    /// The same node on these ports.
    pub fn ports(mut self, port: u16, controller_port: u16) -> NodeSpec {
        (self.port, self.controller_port) = (port, controller_port);
        self
    }

    /// One more `--set key=value`.
    pub fn set(mut self, key: impl Into<String>, value: impl ToString) -> NodeSpec {
        self.settings.push((key.into(), value.to_string()));
        self
    }

    /// One more environment variable for the process.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> NodeSpec {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Start from the config file at `path` (`--config`); the ports, the
    /// data dir and the settings still override it.
    pub fn config(mut self, path: impl Into<PathBuf>) -> NodeSpec {
        self.config = Some(path.into());
        self
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The value of a `--set` setting, if given.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The command line after the binary.
    pub fn args(&self) -> Vec<String> {
        let mut sets = vec![
            format!("listeners=127.0.0.1:{}", self.port),
            format!("controller.listener=127.0.0.1:{}", self.controller_port),
            format!("metrics.listener=127.0.0.1:{}", self.metrics_port),
            format!("data.dir={}", self.data_dir.display()),
        ];
        sets.extend(self.settings.iter().map(|(k, v)| format!("{k}={v}")));
        let config = self
            .config
            .iter()
            .flat_map(|c| ["--config".to_string(), c.display().to_string()]);
        config
            .chain(sets.into_iter().flat_map(|kv| ["--set".to_string(), kv]))
            .collect()
    }
}

/// A `rivulet` node as a child process. Dropping it SIGKILLs it.
pub struct BrokerProcess {
    spec: NodeSpec,
    child: Option<Child>,
    /// A data dir owned by this process's lifetime, if it was given one.
    _data: Option<TempDir>,
}

impl BrokerProcess {
    /// Start the node of `spec`, its log created afresh. Returns at once:
    /// see [`BrokerProcess::wait_serving`].
    pub fn spawn(spec: NodeSpec) -> BrokerProcess {
        File::create(&spec.log)
            .unwrap_or_else(|e| panic!("create the node log {}: {e}", spec.log.display()));
        let mut p = BrokerProcess {
            spec,
            child: None,
            _data: None,
        };
        p.start();
        p
    }

    /// Keep `data` (the node's data dir) until this value is dropped.
    pub fn owning(mut self, data: TempDir) -> BrokerProcess {
        self._data = Some(data);
        self
    }

    /// Start a node of `bin` on free ports with its data in `data` (removed
    /// when this value is dropped), `settings` and `env`, and wait (up to
    /// `timeout`) until it answers Metadata. A port found free can be taken
    /// by another process's socket before the node binds it (see
    /// [`crate::ports`]): a node that exits with "Address already in use"
    /// is started again on other free ports, with its data dir emptied.
    pub fn start_in(
        bin: &Path,
        data: TempDir,
        log: PathBuf,
        settings: &[(&str, &str)],
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> BrokerProcess {
        const PORT_RACES: usize = 3;
        for attempt in 0.. {
            let mut spec = NodeSpec::new(bin, data.path(), &log);
            for (k, v) in settings {
                spec = spec.set(*k, v);
            }
            for (k, v) in env {
                spec = spec.env(*k, *v);
            }
            let mut p = BrokerProcess::spawn(spec);
            if p.wait_serving_or_exit(timeout) {
                return p.owning(data);
            }
            let tail = p.log_tail(20);
            assert!(
                attempt < PORT_RACES && tail.contains("Address already in use"),
                "the broker exited; last lines of {}:\n{tail}",
                log.display()
            );
            eprintln!("a port of the broker was taken before it bound it; again on other ports");
            drop(p);
            for entry in std::fs::read_dir(data.path()).expect("read the data dir") {
                let path = entry.expect("a data dir entry").path();
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Start the node again (after [`kill`](Self::kill) or
    /// [`terminate`](Self::terminate)) on the same ports and data, its
    /// output appended to the log. Panics if it runs.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the node runs already");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log)
            .unwrap_or_else(|e| panic!("open the node log {}: {e}", self.spec.log.display()));
        let out = log.try_clone().expect("clone the log handle");
        let mut command = match self.spec.nofile {
            // prlimit execs the binary: the child's pid is the node's.
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(&self.spec.bin);
                c
            }
            None => Command::new(&self.spec.bin),
        };
        let child = command
            .args(self.spec.args())
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.spec.bin.display()));
        self.child = Some(child);
    }

    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// Whether it was started and not since killed or terminated (it may
    /// have exited on its own: see [`exited`](Self::exited)).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Its pid; panics if it is not running.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the node runs").id()
    }

    pub fn port(&self) -> u16 {
        self.spec.port
    }

    pub fn controller_port(&self) -> u16 {
        self.spec.controller_port
    }

    /// The metrics endpoint's `host:port`.
    pub fn metrics_addr(&self) -> String {
        format!("127.0.0.1:{}", self.spec.metrics_port)
    }

    pub fn bootstrap(&self) -> String {
        self.spec.bootstrap()
    }

    pub fn data_dir(&self) -> &Path {
        &self.spec.data_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.spec.log
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.spec.log, lines)
    }

    /// Send `signal` to it (no-op if it is not running).
    pub fn signal(&self, signal: Signal) -> std::io::Result<()> {
        match &self.child {
            Some(c) => kill_process(Pid::from_child(c), signal).map_err(std::io::Error::from),
            None => Ok(()),
        }
    }

    /// SIGKILL it and reap it (no-op if it is not running).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill_process(Pid::from_child(&child), Signal::KILL);
            let _ = child.wait();
        }
    }

    /// SIGTERM it (a controlled shutdown) and wait up to `timeout` for it to
    /// exit: its exit status, or `None` if it did not exit in time (it is
    /// SIGKILLed then). Panics if it is not running.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("the node runs");
        kill_process(Pid::from_child(&child), Signal::TERM).expect("send SIGTERM");
        let status = Poll::new(timeout).value(|| child.try_wait().ok().flatten());
        if status.is_none() {
            let _ = kill_process(Pid::from_child(&child), Signal::KILL);
            let _ = child.wait();
        }
        status
    }

    /// `Some(why)` once the process has exited on its own: its status and
    /// the last 8 lines of its log.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        Some(format!(
            "exited ({status}); last lines of {}:\n    {}",
            self.spec.log.display(),
            self.log_tail(8).replace('\n', "\n    ")
        ))
    }

    /// Panic with the log's tail if the process has exited.
    pub fn check_alive(&mut self) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!(
                "the broker exited ({status}); last lines of {}:\n{}",
                self.spec.log.display(),
                self.log_tail(20)
            );
        }
    }

    /// Wait until a Metadata request through rdkafka lists a broker; panics
    /// if the process exits first or `timeout` passes.
    pub fn wait_serving(&mut self, timeout: Duration) {
        if !self.wait_serving_or_exit(timeout) {
            self.check_alive();
        }
    }

    /// Wait until a Metadata request through rdkafka lists a broker (true)
    /// or the process exits (false); panics if `timeout` passes.
    fn wait_serving_or_exit(&mut self, timeout: Duration) -> bool {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let client: BaseConsumer = crate::kafka::client_config(&self.bootstrap())
            .create()
            .expect("a metadata client");
        let outcome = Poll::new(timeout)
            .every(Duration::from_millis(50))
            .value(|| {
                if self.exited().is_some() {
                    return Some(false);
                }
                client
                    .fetch_metadata(None, Duration::from_secs(1))
                    .is_ok_and(|md| !md.brokers().is_empty())
                    .then_some(true)
            });
        outcome
            .unwrap_or_else(|| panic!("the broker at {} never answered Metadata", self.bootstrap()))
    }
}

impl Drop for BrokerProcess {
    /// A failing test must not leave the node behind.
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a finished one-shot run of a binary left behind.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

fn read_all(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// Wait for `child` (stdout and stderr piped), killing it once `limit`
/// has passed since `started` so a hang fails the test.
pub fn finish(mut child: Child, started: Instant, limit: Duration) -> Run {
    let out = read_all(child.stdout.take().expect("piped stdout"));
    let err = read_all(child.stderr.take().expect("piped stderr"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        success: status.success(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        took: started.elapsed(),
    }
}

/// Run `bin args…` with `stdin` as its input, for at most `limit`.
pub fn run(bin: &Path, args: &[&str], stdin: &str, limit: Duration) -> Run {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut input = child.stdin.take().expect("piped stdin");
    let text = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let run = finish(child, started, limit);
    writer.join().expect("stdin writer");
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_captures_output_and_status() {
        let r = run(
            Path::new("sh"),
            &["-c", "cat; echo err >&2; exit 3"],
            "in\n",
            Duration::from_secs(10),
        );
        assert!(!r.success);
        assert_eq!(r.stdout, "in\n");
        assert_eq!(r.stderr, "err\n");
    }

    #[test]
    #[should_panic(expected = "did not finish within")]
    fn a_hanging_run_is_killed() {
        run(Path::new("sleep"), &["30"], "", Duration::from_millis(200));
    }

    #[test]
    fn signals_reach_a_child() {
        let mut c = Command::new("sleep").arg("30").spawn().unwrap();
        send_signal(c.id(), Signal::TERM).unwrap();
        let status = c.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(15));
    }

    #[test]
    fn node_spec_args_put_ports_and_dir_first() {
        let s = NodeSpec::new("rivulet", "/d", "/l")
            .ports(9092, 9192)
            .metrics_port(9292)
            .set("node.id", 2)
            .env("RUST_LOG", "warn");
        assert_eq!(
            s.args(),
            [
                "--set",
                "listeners=127.0.0.1:9092",
                "--set",
                "controller.listener=127.0.0.1:9192",
                "--set",
                "metrics.listener=127.0.0.1:9292",
                "--set",
                "data.dir=/d",
                "--set",
                "node.id=2"
            ]
        );
        assert_eq!(s.setting("node.id"), Some("2"));
        assert_eq!(s.bootstrap(), "127.0.0.1:9092");
    }

    #[test]
    fn a_config_file_comes_before_the_settings() {
        let s = NodeSpec::new("rivulet", "/d", "/l")
            .ports(9092, 9192)
            .config("/etc/single.toml");
        assert_eq!(
            s.args()[..4],
            [
                "--config",
                "/etc/single.toml",
                "--set",
                "listeners=127.0.0.1:9092"
            ]
        );
        // Ports (Kafka, controller, metrics) and the data dir.
        assert_eq!(s.args().len(), 10);
    }
}
