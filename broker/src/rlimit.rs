//! The open-files limit at start: the soft limit is raised to the hard one
//! (a partition keeps its active segment open, so the default soft limit of
//! many systems, 1,024, would hold a few hundred partitions), and both are
//! logged with the partitions they allow (see
//! [`rivulet_controller::capacity`]).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use tracing::{info, warn};

/// The open-files limit after [`raise_nofile_limit`]: `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; the limit in force
/// afterwards (unchanged if the raise is refused, which is logged).
pub fn raise_nofile_limit() -> FdLimit {
    let before = getrlimit(Resource::Nofile);
    let mut now = before;
    if before.current != before.maximum {
        let raised = Rlimit {
            current: before.maximum,
            maximum: before.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => now = raised,
            Err(e) => warn!(soft = ?before.current, hard = ?before.maximum, error = %e,
                "cannot raise the open-files limit to its hard limit"),
        }
    }
    FdLimit {
        soft: now.current,
        hard: now.maximum,
    }
}

/// Most partition replicas this node may host: `max.partitions.per.node`
/// when set, else what the open-files limit allows. Logged with the limit.
pub fn partition_limit(configured: Option<usize>, fds: FdLimit) -> Option<usize> {
    let from_fds = fds
        .soft
        .map(rivulet_controller::capacity::partitions_for_fd_limit);
    let limit = configured.or(from_fds);
    info!(
        soft = %fds.soft.map_or("unlimited".to_string(), |v| v.to_string()),
        hard = %fds.hard.map_or("unlimited".to_string(), |v| v.to_string()),
        max_partitions = %limit.map_or("unlimited".to_string(), |v| v.to_string()),
        from = %if configured.is_some() { "max.partitions.per.node" } else { "open-files limit" },
        "open-files limit"
    );
    limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_limit_wins_over_the_fd_derived_one() {
        let fds = FdLimit {
            soft: Some(4096),
            hard: Some(4096),
        };
        assert_eq!(partition_limit(Some(10), fds), Some(10));
        assert_eq!(partition_limit(None, fds), Some(2048));
        let unlimited = FdLimit {
            soft: None,
            hard: None,
        };
        assert_eq!(partition_limit(None, unlimited), None);
    }

    #[test]
    fn soft_limit_ends_at_the_hard_limit() {
        let fds = raise_nofile_limit();
        assert_eq!(fds.soft, fds.hard);
    }
}
