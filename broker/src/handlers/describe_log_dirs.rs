//! DescribeLogDirs: this broker has one log dir, its data dir (reported as
//! an absolute path), holding every local partition log. Each partition
//! reports its size on disk, offset lag 0 (no partition is being moved
//! between dirs, so none is a "future" replica). A null topic list means
//! every partition; requested partitions not hosted here are left out, as
//! Kafka does. Total and usable bytes (v4) are -1, "unknown".

use std::collections::{BTreeMap, HashMap, HashSet};

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::{sb, tn};
use crate::context::BrokerContext;

pub fn handle(
    b: &BrokerContext,
    req: DescribeLogDirsRequest,
    _version: i16,
) -> DescribeLogDirsResponse {
    let wanted: Option<HashMap<String, HashSet<i32>>> = req.topics.map(|topics| {
        let mut m: HashMap<String, HashSet<i32>> = HashMap::new();
        for t in topics {
            m.entry(t.topic.to_string())
                .or_default()
                .extend(t.partitions.iter().copied());
        }
        m
    });
    let logs = b.replicas.log_manager();
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for (tp, log) in logs.all_logs() {
        let selected = wanted.as_ref().is_none_or(|w| {
            w.get(&tp.topic)
                .is_some_and(|ps| ps.contains(&tp.partition))
        });
        if !selected {
            continue;
        }
        let size = log.lock().size_in_bytes();
        by_topic.entry(tp.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(tp.partition)
                .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                .with_offset_lag(0)
                .with_is_future_key(false),
        );
    }
    let data_dir = logs.data_dir();
    let dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let topics = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            DescribeLogDirsTopic::default()
                .with_name(tn(name))
                .with_partitions(partitions)
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(sb(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(-1)])
}
