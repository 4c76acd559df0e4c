//! The replication quota of partition reassignment
//! (`leader.replication.throttled.rate`, bytes per second): a leader
//! serves the replicas a reassignment is adding from one token bucket, so
//! copying a partition to a new broker cannot take the bandwidth and disk
//! reads its clients need. When the bucket is empty a throttled partition
//! is answered without records (as Kafka's leader omits throttled
//! partitions over quota) and the follower asks again after its long poll.
//! The bucket holds one second of the rate, so bursts stay bounded.
//! Followers already in the ISR are never throttled.

use std::time::Instant;

use parking_lot::Mutex;

#[derive(Debug)]
pub struct ReplicationQuota {
    /// Bytes per second; `None`: unlimited.
    rate: Option<u64>,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// May go negative by one read's overshoot; refills at `rate`.
    tokens: f64,
    at: Instant,
}

impl ReplicationQuota {
    /// A quota of `rate` bytes/s; `i64::MAX` (Kafka's default) or anything
    /// not positive is unlimited.
    pub fn new(rate: i64) -> Self {
        let rate = (rate > 0 && rate < i64::MAX).then_some(rate as u64);
        ReplicationQuota {
            rate,
            bucket: Mutex::new(Bucket {
                tokens: rate.unwrap_or(0) as f64,
                at: Instant::now(),
            }),
        }
    }

    pub fn is_limited(&self) -> bool {
        self.rate.is_some()
    }

    /// Bytes a throttled read may take now (0: none until the bucket
    /// refills); `usize::MAX` when unlimited.
    pub fn available(&self) -> usize {
        let Some(rate) = self.rate else {
            return usize::MAX;
        };
        let mut b = self.bucket.lock();
        let now = Instant::now();
        let refill = now.duration_since(b.at).as_secs_f64() * rate as f64;
        b.tokens = (b.tokens + refill).min(rate as f64);
        b.at = now;
        if b.tokens <= 0.0 {
            0
        } else {
            b.tokens as usize
        }
    }

    /// Account for `bytes` sent to a throttled replica.
    pub fn record(&self, bytes: usize) {
        if self.rate.is_some() {
            self.bucket.lock().tokens -= bytes as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_by_default_and_for_non_positive_rates() {
        for r in [i64::MAX, 0, -1] {
            let q = ReplicationQuota::new(r);
            assert!(!q.is_limited());
            q.record(1 << 30);
            assert_eq!(q.available(), usize::MAX);
        }
    }

    #[test]
    fn a_spent_bucket_allows_nothing_until_it_refills() {
        let q = ReplicationQuota::new(1_000_000);
        assert!(q.available() >= 999_000);
        q.record(1_500_000);
        assert_eq!(q.available(), 0, "overshoot is owed");
        std::thread::sleep(std::time::Duration::from_millis(700));
        let a = q.available();
        assert!(a > 100_000 && a <= 1_000_000, "{a}");
    }
}
