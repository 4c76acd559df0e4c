//! A small tmpfs the test mounts and unmounts, to fill a disk for real.
//!
//! Mounting needs root (CI runs as root). A test that cannot mount fails,
//! unless `RIVULET_SKIP_TMPFS_TESTS=1` opts out, in which case it is
//! skipped with a message.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The opt-out variable.
pub const SKIP_VAR: &str = "RIVULET_SKIP_TMPFS_TESTS";

/// A mounted tmpfs; unmounted (lazily if still busy) and its mount point
/// removed on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mount a tmpfs of `bytes` (rounded up to pages) on a fresh directory.
    /// `None` when the opt-out variable is set; panics when mounting fails.
    pub fn mount(bytes: u64) -> Option<Tmpfs> {
        if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
            eprintln!("{SKIP_VAR}=1: skipping a test that needs a tmpfs");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e} (set {SKIP_VAR}=1 to skip)"));
        assert!(
            out.status.success(),
            "cannot mount a tmpfs on {}: {} (the test needs root; set {SKIP_VAR}=1 to skip)",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file of `bytes` (to delete later, making room).
    pub fn filler(&self, name: &str, bytes: usize) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, vec![0xAB; bytes]).unwrap();
        p
    }

    /// Write a file until the filesystem is full: no page left for anyone.
    pub fn fill_up(&self, name: &str) -> PathBuf {
        use std::io::Write;
        let p = self.path().join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        let page = [0xCDu8; 4096];
        loop {
            match f.write_all(&page) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return p,
                Err(e) => panic!("filling {}: {e}", p.display()),
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let p = self.dir.path();
        let ok = Command::new("umount")
            .arg(p)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a broker of a failed test holds files): detach it
            // now; the kernel frees it once the last file is closed.
            let _ = Command::new("umount").arg("-l").arg(p).status();
        }
    }
}
