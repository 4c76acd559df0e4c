//! Fast detection of a dead node: the active controller learns that a
//! voter's process is gone from the Raft connection to it, long before its
//! broker session expires.
//!
//! The active controller replicates to every voter every
//! `heartbeat_interval` (100 ms). When a voter's process dies the kernel
//! closes its sockets: the open connection breaks and the next connect to
//! its controller port is *refused* (no socket listens there any more). A
//! live process never refuses: however busy it is, the kernel completes the
//! handshake into the listen backlog, and a full backlog drops SYNs (a
//! timeout) rather than answering RST. So a refusal, unlike a timeout,
//! cannot come from a slow or saturated node — which is what makes it safe
//! to fence on, where a shorter session timeout would fence busy nodes.
//!
//! [`PeerLiveness`] collects refusals from the Raft clients
//! ([`crate::raft::network::PeerClient`]) and wakes the controller's
//! periodic task; the controller confirms with one more connect
//! ([`confirm_refused`]) and fences the broker at once if it is refused
//! again (a restarted incarnation binds its controller port before it
//! registers, so only a gone process is fenced this way). Every node in this
//! cluster is a voter and a broker under one node id ("combined mode"), so a
//! voter's death is its broker's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// How long the confirming connect may take; no answer within it is not a
/// refusal (a busy or partitioned node is left to its session timeout).
pub const CONFIRM_TIMEOUT: Duration = Duration::from_millis(500);

/// Voters whose controller port refused a connection, since when.
#[derive(Debug, Clone, Default)]
pub struct PeerLiveness {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Node id → when its port first refused (cleared by a connect).
    refused: Mutex<HashMap<u64, Instant>>,
    changed: Notify,
}

impl PeerLiveness {
    /// A connection to `node` was refused.
    pub fn refused(&self, node: u64) {
        let new = match self.inner.refused.lock().entry(node) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Instant::now());
                true
            }
        };
        if new {
            self.inner.changed.notify_one();
        }
    }

    /// A connection to `node` succeeded: it is up.
    pub fn connected(&self, node: u64) {
        self.inner.refused.lock().remove(&node);
    }

    /// Voters refused and not connected since, with when they were first
    /// refused.
    pub fn refused_nodes(&self) -> Vec<(u64, Instant)> {
        self.inner
            .refused
            .lock()
            .iter()
            .map(|(n, t)| (*n, *t))
            .collect()
    }

    /// Forget every refusal (this node became the active controller again:
    /// what it saw before is stale).
    pub fn clear(&self) {
        self.inner.refused.lock().clear();
    }

    /// Resolves at the next new refusal.
    pub async fn notified(&self) {
        self.inner.changed.notified().await
    }
}

/// Whether a TCP connect to `addr` is refused now (not merely slow: a
/// timeout or any other error is no proof of death).
pub async fn confirm_refused(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(CONFIRM_TIMEOUT, TcpStream::connect(addr)).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_kept_until_a_connect() {
        let l = PeerLiveness::default();
        l.refused(2);
        let first = l.refused_nodes()[0].1;
        l.refused(2);
        assert_eq!(
            l.refused_nodes(),
            vec![(2, first)],
            "the first refusal counts"
        );
        l.connected(2);
        assert!(l.refused_nodes().is_empty());
        l.refused(3);
        l.clear();
        assert!(l.refused_nodes().is_empty());
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_and_a_listening_one_is_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        assert!(!confirm_refused(&addr).await, "a listening port");
        drop(listener);
        assert!(confirm_refused(&addr).await, "a closed port");
    }

    #[tokio::test]
    async fn a_new_refusal_wakes_the_waiter() {
        let l = PeerLiveness::default();
        let waiter = {
            let l = l.clone();
            tokio::spawn(async move { l.notified().await })
        };
        tokio::task::yield_now().await;
        l.refused(1);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
    }
}
