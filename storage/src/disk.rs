//! Free space on the filesystem of a data directory: how much is left
//! ([`space`]), whether an I/O error means it ran out
//! ([`is_out_of_space`]), and when to warn that it is running low
//! ([`FreeSpaceWarning`], `log.dir.free.space.warn.bytes`).
//!
//! What happens when it does run out is the callers' business: a partition
//! append fails and is undone (producers get KAFKA_STORAGE_ERROR), reads go
//! on, and the metadata quorum restarts once there is room again.

use std::io;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Space on the filesystem holding a path, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Free for this process (`f_bavail`: without the blocks reserved for
    /// root, which a broker running as root could still use).
    pub available: u64,
    pub total: u64,
}

/// The space of the filesystem `path` is on (`statvfs`).
pub fn space(path: &Path) -> Result<DiskSpace> {
    let st = rustix::fs::statvfs(path)
        .map_err(io::Error::from)
        .at(path)?;
    Ok(DiskSpace {
        available: st.f_bavail.saturating_mul(st.f_frsize),
        total: st.f_blocks.saturating_mul(st.f_frsize),
    })
}

/// Whether an I/O error says the filesystem (or the user's quota) is full.
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// What a free-space check should say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeSpaceVerdict {
    /// Below the threshold: warn.
    Low(DiskSpace),
    /// Back above the threshold after a warning.
    Recovered(DiskSpace),
}

/// Decides when a periodic free-space check warns: when the available space
/// first drops below the threshold, then again every `repeat_ms` while it
/// stays below, and once more (as recovered) when it is back above. Pure:
/// the caller passes the time and the space it measured.
#[derive(Debug, Clone)]
pub struct FreeSpaceWarning {
    threshold: u64,
    repeat_ms: i64,
    /// When the last warning was given, while the space is low.
    warned_at: Option<i64>,
}

impl FreeSpaceWarning {
    /// Warn below `threshold` bytes (0: never).
    pub fn new(threshold: u64, repeat_ms: i64) -> Self {
        FreeSpaceWarning {
            threshold,
            repeat_ms,
            warned_at: None,
        }
    }

    pub fn check(&mut self, now_ms: i64, space: DiskSpace) -> Option<FreeSpaceVerdict> {
        if space.available >= self.threshold {
            return self
                .warned_at
                .take()
                .map(|_| FreeSpaceVerdict::Recovered(space));
        }
        match self.warned_at {
            Some(at) if now_ms - at < self.repeat_ms => None,
            _ => {
                self.warned_at = Some(now_ms);
                Some(FreeSpaceVerdict::Low(space))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(available: u64) -> DiskSpace {
        DiskSpace {
            available,
            total: 1000,
        }
    }

    #[test]
    fn warns_on_crossing_then_every_repeat_and_once_on_recovery() {
        let mut w = FreeSpaceWarning::new(100, 60_000);
        assert_eq!(w.check(0, space(500)), None);
        assert_eq!(
            w.check(10_000, space(99)),
            Some(FreeSpaceVerdict::Low(space(99)))
        );
        assert_eq!(w.check(20_000, space(50)), None, "not again so soon");
        assert_eq!(
            w.check(70_000, space(40)),
            Some(FreeSpaceVerdict::Low(space(40)))
        );
        assert_eq!(
            w.check(80_000, space(100)),
            Some(FreeSpaceVerdict::Recovered(space(100)))
        );
        assert_eq!(w.check(90_000, space(900)), None);
        assert_eq!(
            w.check(100_000, space(1)),
            Some(FreeSpaceVerdict::Low(space(1)))
        );
    }

    #[test]
    fn a_zero_threshold_never_warns() {
        let mut w = FreeSpaceWarning::new(0, 60_000);
        assert_eq!(w.check(0, space(0)), None);
    }

    #[test]
    fn space_of_a_real_directory_is_plausible() {
        let dir = tempfile::tempdir().unwrap();
        let s = super::space(dir.path()).unwrap();
        assert!(s.total > 0 && s.available <= s.total, "{s:?}");
    }
}
