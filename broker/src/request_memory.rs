//! The request memory pool (`queued.max.request.bytes`): a budget of bytes
//! for requests in flight across all connections — the frame as it is read
//! and what decoding it takes.
//!
//! A connection reserves, before reading a frame's body, what the frame may
//! cost at worst — its size plus what decoding it may take, which the
//! pre-pass bounds by `MAX_AMPLIFICATION` times the size — and gives back
//! the excess once the pre-pass has measured the frame ([`Reservation::settle`]).
//! So a client that sends many large frames waits for memory (its socket is
//! not read meanwhile) instead of growing the broker without bound, and a
//! frame built to decode into many small structs cannot take more than it
//! reserved. Frames of at
//! most [`SMALL_REQUEST`] bytes never wait: they take what is free and
//! otherwise go ahead unreserved, so that heartbeats, metadata and fetch
//! requests — among them followers' fetches, which acks=all produces holding
//! the pool wait on — cannot be starved into a deadlock. The decoded part of
//! a request (bounded by `rivulet_protocol::request_bounds`) is reserved the
//! same way, without waiting: waiting while holding the frame's reservation
//! could deadlock two connections against each other; so is the encoded
//! response while the client takes it (`request.body.timeout.ms` bounds how
//! long), so that large requests hold back while unread responses pile up.

use std::sync::Arc;

use rivulet_protocol::request_bounds::{AMPLIFICATION_SLACK, MAX_AMPLIFICATION};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests up to this size never wait for the pool.
pub const SMALL_REQUEST: usize = 64 * 1024;

/// The pool; unbounded when `queued.max.request.bytes` is -1.
#[derive(Debug)]
pub struct RequestMemory {
    pool: Option<Arc<Semaphore>>,
    total: u32,
}

/// Bytes reserved for one request; released when dropped.
#[derive(Debug, Default)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// Bytes this reservation holds.
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }

    /// Keep `bytes` of the reservation: give back what is above it, or add
    /// what the pool has free below it (never waiting).
    pub fn settle(&mut self, memory: &RequestMemory, bytes: usize) {
        let held = self.bytes();
        if held > bytes {
            if let Some(p) = self.permit.as_mut() {
                drop(p.split(held - bytes));
            }
        } else {
            memory.try_extend(self, bytes - held);
        }
    }

    fn add(&mut self, permit: OwnedSemaphorePermit) {
        match &mut self.permit {
            Some(p) => p.merge(permit),
            None => self.permit = Some(permit),
        }
    }
}

impl RequestMemory {
    pub fn new(limit: Option<usize>) -> Self {
        // tokio's semaphore counts in u32 for one acquisition; a pool over
        // 4 GiB is capped there (a request cannot be larger than 2 GiB).
        let total = limit.map_or(0, |l| l.min(u32::MAX as usize) as u32);
        RequestMemory {
            pool: limit.map(|_| Arc::new(Semaphore::new(total as usize))),
            total,
        }
    }

    /// Bytes free in the pool (`usize::MAX` when unbounded).
    pub fn available(&self) -> usize {
        self.pool
            .as_ref()
            .map_or(usize::MAX, |p| p.available_permits())
    }

    /// Reserve the worst-case cost of a frame of `bytes` about to be read
    /// (the frame and its largest decoded form): waits for it unless the
    /// frame is small, when it takes what is free. A cost above the whole
    /// pool waits for the whole pool.
    pub async fn reserve_frame(&self, bytes: usize) -> Reservation {
        let mut r = Reservation::default();
        let Some(pool) = &self.pool else {
            return r;
        };
        let worst = bytes
            .saturating_mul(1 + MAX_AMPLIFICATION)
            .saturating_add(AMPLIFICATION_SLACK);
        let n = worst.min(self.total as usize) as u32;
        if bytes <= SMALL_REQUEST {
            self.try_extend(&mut r, n as usize);
            return r;
        }
        // The semaphore is never closed: acquisition only fails if it were.
        if let Ok(p) = pool.clone().acquire_many_owned(n).await {
            r.add(p);
        }
        r
    }

    /// Add up to `bytes` (a decoded request's estimate, a response) to `r`
    /// from what the pool has free now; never waits.
    pub fn try_extend(&self, r: &mut Reservation, bytes: usize) {
        let Some(pool) = &self.pool else {
            return;
        };
        let n = bytes.min(pool.available_permits()).min(self.total as usize) as u32;
        if n == 0 {
            return;
        }
        // Another connection may take permits in between: then this one
        // charges nothing rather than waiting.
        if let Ok(p) = pool.clone().try_acquire_many_owned(n) {
            r.add(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    fn worst(bytes: usize) -> usize {
        bytes * (1 + MAX_AMPLIFICATION) + AMPLIFICATION_SLACK
    }

    #[tokio::test]
    async fn a_frame_reserves_its_worst_case_and_settles_to_what_it_takes() {
        let total = 10 * 1024 * KIB;
        let mem = RequestMemory::new(Some(total));
        let mut a = mem.reserve_frame(300 * KIB).await;
        assert_eq!(a.bytes(), worst(300 * KIB));
        // A second such frame does not fit: it waits.
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            mem.reserve_frame(300 * KIB),
        )
        .await;
        assert!(waiting.is_err(), "a large frame must wait for the pool");
        // A small frame goes ahead, taking what is free.
        let small = mem.reserve_frame(60 * KIB).await;
        assert_eq!(small.bytes(), worst(60 * KIB));
        // Measured: the first frame keeps only what it takes.
        a.settle(&mem, 310 * KIB);
        assert_eq!(a.bytes(), 310 * KIB);
        let b = mem.reserve_frame(300 * KIB).await;
        assert_eq!(b.bytes(), worst(300 * KIB));
        assert_eq!(
            mem.available(),
            total - 310 * KIB - worst(60 * KIB) - worst(300 * KIB)
        );
        drop((a, b, small));
        assert_eq!(mem.available(), total);
    }

    #[tokio::test]
    async fn small_frames_never_wait_on_an_exhausted_pool() {
        let mem = RequestMemory::new(Some(1024 * KIB));
        let all = mem.reserve_frame(1024 * KIB).await;
        assert_eq!(mem.available(), 0);
        let small = mem.reserve_frame(60 * KIB).await;
        assert_eq!(small.bytes(), 0);
        drop(all);
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_pool_takes_the_whole_pool() {
        let mem = RequestMemory::new(Some(100 * 1024));
        let mut r = mem.reserve_frame(1 << 20).await;
        assert_eq!(r.bytes(), 100 * 1024);
        assert_eq!(mem.available(), 0);
        mem.try_extend(&mut r, 4096);
        assert_eq!(r.bytes(), 100 * 1024, "nothing left to extend with");
        drop(r);
        // An extension takes what is free, not all or nothing.
        let mut r = mem.reserve_frame(90 * 1024).await;
        mem.try_extend(&mut r, 50 * 1024);
        assert_eq!(r.bytes(), 100 * 1024);
        assert_eq!(mem.available(), 0);
        drop(r);
        assert_eq!(mem.available(), 100 * 1024);
    }

    #[tokio::test]
    async fn an_unbounded_pool_never_waits() {
        let mem = RequestMemory::new(None);
        let r = mem.reserve_frame(1 << 30).await;
        assert_eq!(r.bytes(), 0);
        assert_eq!(mem.available(), usize::MAX);
    }
}
