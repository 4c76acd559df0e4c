//! The replication quotas of partition reassignment, as Kafka has them:
//! `leader.replication.throttled.rate` bounds what a leader sends to the
//! throttled replicas it serves, `follower.replication.throttled.rate` what
//! a follower fetches for its own throttled replicas (bytes per second,
//! each one token bucket per node), so copying a partition to a new broker
//! cannot take the bandwidth and disk reads its clients need. Both rates
//! are broker keys, static in the config file and dynamic per node or
//! cluster-wide (what `kafka-reassign-partitions.sh --throttle` sets).
//!
//! Which replicas are throttled: those the topic's
//! `leader.replication.throttled.replicas` /
//! `follower.replication.throttled.replicas` name for this node
//! ([`rivulet_controller::throttled_replicas`]), and on the leader also
//! every replica a reassignment is adding (so a rate alone throttles
//! reassignments); followers in the ISR never are. When a leader's bucket
//! is empty a throttled partition is answered without records (as Kafka's
//! leader omits throttled partitions over quota) and the follower asks
//! again after its long poll; when a follower's is empty it leaves its
//! throttled partitions out of its next fetch. The bucket holds one second
//! of the rate, so bursts stay bounded. A rate of 0 stops throttled
//! replicas; `i64::MAX` (the default) is unlimited.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use rivulet_controller::{throttled_replicas, MetadataImage};

/// The leader-side rate's broker key.
pub const LEADER_RATE_KEY: &str = "leader.replication.throttled.rate";
/// The follower-side rate's broker key.
pub const FOLLOWER_RATE_KEY: &str = "follower.replication.throttled.rate";

/// The rate that means no limit.
const UNLIMITED: u64 = u64::MAX;

#[derive(Debug)]
pub struct ReplicationQuota {
    /// Bytes per second; [`UNLIMITED`]: no limit.
    rate: AtomicU64,
    bucket: Mutex<Bucket>,
    /// Bytes counted against the quota so far (metrics).
    pub throttled_bytes: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    /// May go negative by one read's overshoot; refills at the rate.
    tokens: f64,
    at: Instant,
}

/// `rate` as a bucket rate: `i64::MAX` or negative is unlimited.
fn bucket_rate(rate: i64) -> u64 {
    if (0..i64::MAX).contains(&rate) {
        rate as u64
    } else {
        UNLIMITED
    }
}

impl ReplicationQuota {
    /// A quota of `rate` bytes/s (see [`ReplicationQuota::set_rate`]).
    pub fn new(rate: i64) -> Self {
        let rate = bucket_rate(rate);
        ReplicationQuota {
            rate: AtomicU64::new(rate),
            bucket: Mutex::new(Bucket {
                tokens: if rate == UNLIMITED { 0.0 } else { rate as f64 },
                at: Instant::now(),
            }),
            throttled_bytes: AtomicU64::new(0),
        }
    }

    /// Change the rate: `i64::MAX` (Kafka's default) or negative is
    /// unlimited, 0 lets nothing through. A bucket newly limited starts
    /// full; a lower rate caps what it holds.
    pub fn set_rate(&self, rate: i64) {
        let rate = bucket_rate(rate);
        let old = self.rate.swap(rate, Ordering::Relaxed);
        if old != rate && rate != UNLIMITED {
            let mut b = self.bucket.lock();
            b.tokens = if old == UNLIMITED {
                rate as f64
            } else {
                b.tokens.min(rate as f64)
            };
            b.at = Instant::now();
        }
    }

    pub fn is_limited(&self) -> bool {
        self.rate.load(Ordering::Relaxed) != UNLIMITED
    }

    /// Bytes a throttled read may take now (0: none until the bucket
    /// refills); `usize::MAX` when unlimited.
    pub fn available(&self) -> usize {
        let rate = self.rate.load(Ordering::Relaxed);
        if rate == UNLIMITED {
            return usize::MAX;
        }
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

    /// Account for `bytes` sent to (or fetched for) a throttled replica.
    pub fn record(&self, bytes: usize) {
        if self.is_limited() {
            self.bucket.lock().tokens -= bytes as f64;
            self.throttled_bytes
                .fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }
}

/// This node's two quotas, with the rates of its config file; the dynamic
/// broker configs of each new metadata image override them.
#[derive(Debug)]
pub struct ReplicationQuotas {
    pub leader: ReplicationQuota,
    pub follower: ReplicationQuota,
    static_leader: i64,
    static_follower: i64,
}

impl ReplicationQuotas {
    pub fn new(static_leader: i64, static_follower: i64) -> Self {
        ReplicationQuotas {
            leader: ReplicationQuota::new(static_leader),
            follower: ReplicationQuota::new(static_follower),
            static_leader,
            static_follower,
        }
    }

    /// Take the rates `image` sets for `node_id` (its own dynamic config,
    /// else the cluster-wide one, else the config file's).
    pub fn apply_image(&self, image: &MetadataImage, node_id: i32) {
        let rate = |key: &str, fallback: i64| {
            crate::dynamic_config::value(image, node_id, key)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(fallback)
        };
        self.leader
            .set_rate(rate(LEADER_RATE_KEY, self.static_leader));
        self.follower
            .set_rate(rate(FOLLOWER_RATE_KEY, self.static_follower));
    }
}

/// Whether `replica`'s copy of `partition` of `topic` is throttled under
/// the list `key` ([`throttled_replicas::LEADER_KEY`] as seen by the
/// leader `node_id`, [`throttled_replicas::FOLLOWER_KEY`] by the follower
/// itself): never in the ISR; a replica a reassignment adds always; else
/// when the topic's list names `partition` on `node_id`.
pub fn is_throttled(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    key: &str,
    node_id: i32,
    replica: i32,
) -> bool {
    let Some(t) = image.topic(topic) else {
        return false;
    };
    let Some(p) = t.partitions.get(&partition) else {
        return false;
    };
    !p.isr.contains(&replica)
        && (p.adding_replicas.contains(&replica)
            || throttled_replicas::is_throttled(&t.configs, key, partition, node_id))
}

impl Default for ReplicationQuotas {
    fn default() -> Self {
        ReplicationQuotas::new(i64::MAX, i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_by_default_and_for_non_positive_rates() {
        for r in [i64::MAX, -1] {
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

    #[test]
    fn a_rate_of_zero_lets_nothing_through_and_rates_change_live() {
        let q = ReplicationQuota::new(0);
        assert!(q.is_limited());
        assert_eq!(q.available(), 0);
        q.set_rate(i64::MAX);
        assert!(!q.is_limited());
        assert_eq!(q.available(), usize::MAX);
        q.set_rate(2_000_000);
        assert!(
            q.available() >= 1_999_000,
            "a newly limited bucket starts full"
        );
        q.set_rate(1_000);
        assert!(q.available() <= 1_000, "a lower rate caps the bucket");
    }

    #[test]
    fn rates_come_from_this_node_then_the_cluster_default_then_the_file() {
        use rivulet_controller::logic::CLUSTER_DEFAULT;
        use rivulet_controller::records::{ConfigResource, MetadataRecord};
        let quotas = ReplicationQuotas::new(5_000, i64::MAX);
        let mut image = MetadataImage::default();
        quotas.apply_image(&image, 1);
        assert!(quotas.leader.available() <= 5_000);
        assert!(!quotas.follower.is_limited());
        let set = |image: &mut MetadataImage, offset, broker, key: &str, v: &str| {
            image
                .apply(
                    offset,
                    &MetadataRecord::Config {
                        resource: ConfigResource::Broker(broker),
                        name: key.to_string(),
                        value: Some(v.to_string()),
                    },
                )
                .unwrap();
        };
        set(&mut image, 1, CLUSTER_DEFAULT, FOLLOWER_RATE_KEY, "0");
        set(&mut image, 2, 1, LEADER_RATE_KEY, "9223372036854775807");
        set(&mut image, 3, 2, FOLLOWER_RATE_KEY, "7");
        quotas.apply_image(&image, 1);
        assert!(!quotas.leader.is_limited(), "node 1's own rate wins");
        assert!(quotas.follower.is_limited());
        assert_eq!(
            quotas.follower.available(),
            0,
            "the cluster default, not node 2's"
        );
    }

    #[test]
    fn throttled_replicas_are_listed_or_being_added_and_never_in_the_isr() {
        use rivulet_controller::records::MetadataRecord;
        use rivulet_controller::throttled_replicas::{FOLLOWER_KEY, LEADER_KEY};
        let id = uuid::Uuid::new_v4();
        let mut image = MetadataImage::default();
        let configs = [(LEADER_KEY, "0:1,1:1"), (FOLLOWER_KEY, "0:3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let records = [
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
                configs,
            },
            MetadataRecord::Partition {
                topic_id: id,
                partition: 0,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            },
            MetadataRecord::Partition {
                topic_id: id,
                partition: 1,
                replicas: vec![1, 2],
                isr: vec![1, 2],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            },
            MetadataRecord::PartitionReassignment {
                topic_id: id,
                partition: 1,
                replicas: vec![1, 2, 4],
                adding: vec![4],
                removing: vec![],
                leader: None,
                isr: None,
            },
        ];
        for (i, r) in records.iter().enumerate() {
            image.apply(i as u64 + 1, r).unwrap();
        }
        // Leader 1 lists partition 0 on itself: node 3 (out of the ISR) is
        // throttled, node 2 (in it) is not.
        assert!(is_throttled(&image, "t", 0, LEADER_KEY, 1, 3));
        assert!(!is_throttled(&image, "t", 0, LEADER_KEY, 1, 2));
        // A leader not named in the list throttles nothing but additions.
        assert!(!is_throttled(&image, "t", 0, LEADER_KEY, 2, 3));
        assert!(is_throttled(&image, "t", 1, LEADER_KEY, 2, 4));
        // The follower list names node 3's replica of partition 0 only.
        assert!(is_throttled(&image, "t", 0, FOLLOWER_KEY, 3, 3));
        assert!(!is_throttled(&image, "t", 0, FOLLOWER_KEY, 2, 2));
        assert!(!is_throttled(&image, "nope", 0, LEADER_KEY, 1, 3));
        assert!(!is_throttled(&image, "t", 9, LEADER_KEY, 1, 3));
    }
}
