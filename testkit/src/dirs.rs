//! Temp dirs for broker data, removed when dropped.

use std::path::PathBuf;

use tempfile::TempDir;

/// Where benches put data when set: a disk of the caller's choosing.
pub const BENCH_DIR_VAR: &str = "RIVULET_BENCH_DIR";

/// A fresh temp dir in the system temp dir.
pub fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("create a temp dir")
}

/// A fresh temp dir under `$RIVULET_BENCH_DIR` if set, else as [`temp_dir`].
pub fn bench_dir() -> TempDir {
    match std::env::var_os(BENCH_DIR_VAR) {
        Some(d) => {
            tempfile::tempdir_in(PathBuf::from(d)).expect("create a dir in $RIVULET_BENCH_DIR")
        }
        None => temp_dir(),
    }
}
