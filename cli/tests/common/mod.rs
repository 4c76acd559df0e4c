//! What the CLI package's end-to-end tests share: running the `rivulet`
//! binary as a user does.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");

/// What a finished `rivulet` run left behind.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// Wait for `child`, killing it after `limit` so a hang fails the test.
pub fn finish(mut child: Child, started: Instant, limit: Duration) -> Run {
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("rivulet did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        success: status.success(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        took: started.elapsed(),
    }
}

/// Run `rivulet args…` with `stdin`, for at most `limit`.
pub fn run_rivulet(args: &[&str], stdin: &str, limit: Duration) -> Run {
    let started = Instant::now();
    let mut child = Command::new(RIVULET)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let text = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let run = finish(child, started, limit);
    writer.join().unwrap();
    run
}
