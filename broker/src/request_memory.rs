//! The request memory pool (`queued.max.request.bytes`): a budget of bytes
//! for requests in flight across all connections — the frame as it is read
//! and what decoding it takes.
//!
//! A connection reserves a frame's size before reading its body, so a
//! client that sends many large frames waits for memory (its socket is not
//! read meanwhile) instead of growing the broker without bound. Frames of at
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

    /// Reserve `bytes` for a frame about to be read: waits for them unless
    /// the frame is small. A frame larger than the whole pool waits for the
    /// whole pool.
    pub async fn reserve_frame(&self, bytes: usize) -> Reservation {
        let mut r = Reservation::default();
        let Some(pool) = &self.pool else {
            return r;
        };
        let n = bytes.min(self.total as usize) as u32;
        if bytes <= SMALL_REQUEST {
            if let Ok(p) = pool.clone().try_acquire_many_owned(n) {
                r.add(p);
            }
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

    #[tokio::test]
    async fn large_frames_wait_for_memory_and_small_ones_do_not() {
        let mem = RequestMemory::new(Some(200 * 1024));
        let a = mem.reserve_frame(150 * 1024).await;
        assert_eq!(a.bytes(), 150 * 1024);
        // 100 KiB more does not fit: the reservation waits.
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            mem.reserve_frame(100 * 1024),
        )
        .await;
        assert!(waiting.is_err(), "a large frame must wait for the pool");
        // A small frame goes ahead without (enough) memory.
        let small = mem.reserve_frame(60 * 1024).await;
        assert_eq!(small.bytes(), 0);
        drop(a);
        let b = mem.reserve_frame(100 * 1024).await;
        assert_eq!(b.bytes(), 100 * 1024);
        assert_eq!(mem.available(), 100 * 1024);
        drop(b);
        assert_eq!(mem.available(), 200 * 1024);
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
