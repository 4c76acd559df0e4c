//! KIP-848 consumer groups through librdkafka with `group.protocol=consumer`:
//! the broker computes the assignment, members reconcile incrementally and
//! a rebalance never stops members whose partitions do not move. Also the
//! raw protocol for what librdkafka cannot show (errors, describe, list).
//!
//! `membership`: splitting, joining, leaving, session expiry, regex and
//! static members, partitions added; `durability`: restarts, protocol
//! switches, transactional offsets, classic members rolled over; `raw`:
//! errors, describe and list over the raw protocol.

mod durability;
mod member;
mod membership;
mod raw;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_testkit::prelude::*;

use member::*;
use raw::Raw;

/// Short timings so that tests do not wait on Kafka's 45 s / 5 s defaults.
pub(crate) const FAST: &[(&str, &str)] = &[
    ("group.consumer.session.timeout.ms", "3000"),
    ("group.consumer.heartbeat.interval.ms", "300"),
];
