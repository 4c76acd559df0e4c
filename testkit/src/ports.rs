//! Free loopback ports, all below Linux's ephemeral range (32768..).
//!
//! A node that stops and starts again on the same ports must get them back.
//! A port from the ephemeral range does not promise that: while the node is
//! down, any outgoing connection on the machine may be given it as its
//! source port — even a peer's reconnect to that very port, which Linux then
//! completes as a connection to itself — and the restart fails with "address
//! in use" (seen in CI: a test cluster's restarted node could not bind its
//! controller port). Outgoing connections never take ports below the
//! ephemeral range, so every port handed out here comes from there:
//! [`free_port_block`] picks a block of ports free when picked, not yet
//! bound. Two tests of one process starting nodes at once could pick
//! overlapping blocks (one's controller ports another's Kafka ports — seen
//! in CI), so every port handed out is remembered and never handed out
//! again by this process. Another process can still bind one between the
//! pick and the node's bind (another test binary picks from the same range
//! at random): callers that start a listener retry on other ports then (see
//! `broker::TestBroker::start`).

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::net::TcpListener;
use std::ops::Range;
use std::sync::Mutex;

/// A port no socket on 127.0.0.1 uses now, below the ephemeral range.
pub fn free_port() -> u16 {
    free_port_block(&[0])
}

/// `n` distinct free ports, below the ephemeral range.
pub fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

/// Whether every port `base + offset` can be bound now.
pub fn ports_free(base: u16, offsets: &[u16]) -> bool {
    offsets.iter().all(|o| {
        base.checked_add(*o)
            .is_some_and(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
    })
}

/// A base port in 10000..19800 with every `base + offset` free now: below
/// Linux's ephemeral range (32768..), so a port freed by a killed node is
/// not handed to some other test's socket before the node comes back; and
/// apart from the 20000..30000 that `rivulet cluster up` tests pick from
/// (with [`free_port_block_in`]).
/// Random, so parallel test processes rarely try the same block.
pub fn free_port_block(offsets: &[u16]) -> u16 {
    free_port_block_in(10_000..19_800, offsets)
}

/// A random base port in `bases` with every `base + offset` free now (100
/// tries; panics if none is found). For a caller that keeps apart from the
/// blocks [`free_port_block`] hands out.
pub fn free_port_block_in(bases: Range<u16>, offsets: &[u16]) -> u16 {
    let span = u64::from(bases.end.saturating_sub(bases.start)).max(1);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        let r = RandomState::new().hash_one(0u8);
        let base = bases.start + (r % span) as u16;
        let ports: Vec<u16> = offsets
            .iter()
            .filter_map(|o| base.checked_add(*o))
            .collect();
        if ports.len() == offsets.len()
            && !ports.iter().any(|p| handed_out.contains(p))
            && ports_free(base, offsets)
        {
            handed_out.extend(ports);
            return base;
        }
    }
    panic!("no free block of ports {offsets:?} found from bases {bases:?}");
}

/// Every port a block of this process has handed out.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_real() {
        // Whether a port is still free after it is handed out is up to the
        // rest of the machine (other test processes pick from the same
        // range), so that is not asserted: only what `free_ports` itself
        // promises.
        let ports = free_ports(8);
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), 8);
        assert!(
            ports.iter().all(|p| (10_000..32_768).contains(p)),
            "{ports:?}"
        );
    }

    #[test]
    fn a_port_block_is_free_and_below_the_ephemeral_range() {
        let offsets = [0, 1, 2, 100, 101, 102];
        let base = free_port_block(&offsets);
        assert!((10_000..19_800).contains(&base));
        let _held: Vec<TcpListener> = offsets
            .iter()
            .map(|o| TcpListener::bind(("127.0.0.1", base + o)).expect("free"))
            .collect();
        assert!(!ports_free(base, &offsets), "held ports are not free");
    }

    #[test]
    fn blocks_never_share_a_port_even_before_they_are_bound() {
        // Nothing is bound between the picks, as when two tests start their
        // clusters at once: 8 blocks with offsets 0, 1, 100, 101 from 40
        // bases (random picks alone would overlap 95 % of the time).
        let offsets = [0, 1, 100, 101];
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..8 {
            let base = free_port_block_in(15_000..15_040, &offsets);
            for o in offsets {
                assert!(seen.insert(base + o), "port {} handed out twice", base + o);
            }
        }
    }

    #[test]
    fn a_port_block_in_a_range_starts_in_it() {
        let offsets = [0, 1, 2, 100, 101, 102];
        let base = free_port_block_in(20_000..30_000, &offsets);
        assert!((20_000..30_000).contains(&base));
        for o in offsets {
            TcpListener::bind(("127.0.0.1", base + o)).expect("a free port binds");
        }
    }
}
