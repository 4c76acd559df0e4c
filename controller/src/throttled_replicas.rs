//! The topic configs that say which replicas the replication quotas
//! throttle, as `kafka-reassign-partitions.sh --throttle` sets them:
//! `leader.replication.throttled.replicas` (the replicas a leader sends to
//! under `leader.replication.throttled.rate`) and
//! `follower.replication.throttled.replicas` (the replicas that fetch under
//! `follower.replication.throttled.rate`). A value is `*` (every replica)
//! or a comma-separated list of `partition:broker` pairs; empty entries
//! are allowed, as Kafka's validator allows them.

/// The leader-side list's topic key.
pub const LEADER_KEY: &str = "leader.replication.throttled.replicas";
/// The follower-side list's topic key.
pub const FOLLOWER_KEY: &str = "follower.replication.throttled.replicas";

/// A parsed throttled-replica list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottledReplicas {
    /// `*`: every replica of the topic.
    All,
    /// `(partition, broker)` pairs.
    Listed(Vec<(i32, i32)>),
}

impl ThrottledReplicas {
    /// Parse a value, with Kafka's message when it is not one.
    pub fn parse(value: &str) -> Result<ThrottledReplicas, String> {
        if value.trim() == "*" {
            return Ok(ThrottledReplicas::All);
        }
        let bad = || {
            format!(
                "'{value}': must be the literal '*' or a list of replicas in the format \
                 [partitionId]:[brokerId],[partitionId]:[brokerId],..."
            )
        };
        let number = |s: &str| {
            if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
                s.parse::<i32>().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let mut pairs = Vec::new();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (p, b) = entry.split_once(':').ok_or_else(bad)?;
            pairs.push((number(p)?, number(b)?));
        }
        Ok(ThrottledReplicas::Listed(pairs))
    }

    /// Whether the replica of `partition` on `broker` is throttled.
    pub fn contains(&self, partition: i32, broker: i32) -> bool {
        match self {
            ThrottledReplicas::All => true,
            ThrottledReplicas::Listed(pairs) => pairs.contains(&(partition, broker)),
        }
    }
}

/// Whether the topic configs `configs` throttle the replica of `partition`
/// on `broker` under the list `key`. A value that does not parse (it was
/// checked when it was set) throttles nothing.
pub fn is_throttled(
    configs: &std::collections::BTreeMap<String, String>,
    key: &str,
    partition: i32,
    broker: i32,
) -> bool {
    configs
        .get(key)
        .and_then(|v| ThrottledReplicas::parse(v).ok())
        .is_some_and(|t| t.contains(partition, broker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_lists_and_empty_values_parse_as_kafka_accepts_them() {
        assert_eq!(ThrottledReplicas::parse(" * "), Ok(ThrottledReplicas::All));
        assert_eq!(
            ThrottledReplicas::parse(""),
            Ok(ThrottledReplicas::Listed(vec![]))
        );
        let t = ThrottledReplicas::parse("0:1, 0:2,,3:101").unwrap();
        assert_eq!(t, ThrottledReplicas::Listed(vec![(0, 1), (0, 2), (3, 101)]));
        assert!(t.contains(0, 2) && t.contains(3, 101));
        assert!(!t.contains(1, 1) && !t.contains(3, 1));
        assert!(ThrottledReplicas::All.contains(7, 9));
    }

    #[test]
    fn anything_else_is_refused_with_the_format() {
        for bad in [
            "1",
            "a:1",
            "1:b",
            "1:2:3",
            "-1:2",
            "*,0:1",
            "1 :2x",
            "99999999999:1",
        ] {
            let e = ThrottledReplicas::parse(bad).unwrap_err();
            assert!(e.contains("[partitionId]:[brokerId]"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_topic_throttles_only_the_replicas_its_list_names() {
        let mut configs = std::collections::BTreeMap::new();
        assert!(!is_throttled(&configs, LEADER_KEY, 0, 1));
        configs.insert(LEADER_KEY.to_string(), "0:1,1:2".to_string());
        configs.insert(FOLLOWER_KEY.to_string(), "*".to_string());
        assert!(is_throttled(&configs, LEADER_KEY, 0, 1));
        assert!(!is_throttled(&configs, LEADER_KEY, 0, 2));
        assert!(is_throttled(&configs, FOLLOWER_KEY, 5, 3));
    }
}
