//! What the end-to-end benchmarks share beyond `rivulet-testkit`: the
//! release `rivulet` binary, built when missing or stale; bench knobs from
//! the environment; topic creation and a reported stop of the broker
//! process (`broker`); the CPU meter and the measured consumer (`clients`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

// Each bench compiles this module on its own and uses only part of it.
#[allow(dead_code)]
pub mod broker;
#[allow(dead_code)]
pub mod clients;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Newest modification time of any file under `dir`.
pub fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// The `rivulet` binary: `$RIVULET_BIN`, or the workspace's release build,
/// (re)built when missing or older than the crates it is built from.
pub fn rivulet_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RIVULET_BIN") {
        return PathBuf::from(p);
    }
    let root = workspace_root();
    let bin = target_dir().join("release").join("rivulet");
    let built = fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let sources = ["cli", "broker", "controller", "storage", "protocol"]
        .iter()
        .filter_map(|c| newest_mtime(&root.join(c)))
        .max();
    if built.is_some() && built >= sources {
        return bin;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("bench: building the broker: cargo build --release -p rivulet-cli --bin rivulet");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "rivulet-cli",
            "--bin",
            "rivulet",
        ])
        .current_dir(&root)
        .status();
    match status {
        Ok(s) if s.success() && bin.exists() => bin,
        other => panic!(
            "could not build {} ({other:?}); build it with `cargo build --release -p \
             rivulet-cli --bin rivulet` or point RIVULET_BIN at a rivulet binary",
            bin.display()
        ),
    }
}

/// A count from the environment (`_` separators allowed, e.g. `1_000`),
/// or `default` when unset; a bench knob that is not a number stops the run.
// Each bench compiles this module on its own; loadgen reads lists instead.
#[allow(dead_code)]
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{name}: '{v}' is not a number"))
        })
        .unwrap_or(default)
}
