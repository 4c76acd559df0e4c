//! The replication throttles of `rivulet partition reassign --throttle`, set
//! and removed as kafka-reassign-partitions.sh's `--execute --throttle` and
//! `--verify` do, through IncrementalAlterConfigs: the rates cluster-wide
//! (broker resource ""), the throttled replica lists on the topic.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, MetadataRequest,
};
use kafka_protocol::protocol::StrBytes;
use rivulet_protocol::tls::Stream;
use rivulet_protocol::wire::Client;

use super::{describe, topic_name};
use crate::node_config::{
    OP_APPEND, OP_DELETE, OP_SET, RESOURCE_BROKER, RESOURCE_TOPIC, SOURCE_DYNAMIC_DEFAULT,
    SOURCE_TOPIC,
};

const RATES: [&str; 2] = [
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
];
const LISTS: [&str; 2] = [
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
];

/// One partition's move: topic, partition, its replicas now, its target.
pub(crate) type Throttled<'a> = (&'a str, i32, &'a [i32], &'a [i32]);

/// Throttle `moves` at `rate` bytes/s: the rates cluster-wide; per topic, each
/// partition's current replicas appended to the leader list and the replicas
/// it gains to the follower list.
pub(crate) async fn set(
    client: &mut Client<Stream>,
    moves: &[Throttled<'_>],
    rate: u64,
) -> anyhow::Result<()> {
    let mut lists: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for (topic, partition, current, target) in moves {
        let (leaders, followers) = lists.entry(topic).or_default();
        leaders.extend(current.iter().map(|b| format!("{partition}:{b}")));
        followers.extend(
            target
                .iter()
                .filter(|b| !current.contains(b))
                .map(|b| format!("{partition}:{b}")),
        );
    }
    let rates = RATES
        .iter()
        .map(|k| config(k, OP_SET, Some(rate.to_string())))
        .collect();
    let mut resources = vec![resource(RESOURCE_BROKER, "", rates)];
    for (topic, (leaders, followers)) in lists {
        let configs = [(LISTS[0], leaders), (LISTS[1], followers)]
            .into_iter()
            .filter(|(_, entries)| !entries.is_empty())
            .map(|(key, entries)| config(key, OP_APPEND, Some(entries.join(","))))
            .collect();
        resources.push(resource(RESOURCE_TOPIC, topic, configs));
    }
    alter(client, resources).await
}

/// Remove the throttled replica lists of `topics` and the cluster-wide rates
/// (if `rates`), where set; whether any was.
pub(crate) async fn clear(
    client: &mut Client<Stream>,
    topics: &[&str],
    rates: bool,
) -> anyhow::Result<bool> {
    let mut resources = Vec::new();
    for t in topics {
        let set = present(client, RESOURCE_TOPIC, t, &LISTS, SOURCE_TOPIC).await?;
        if !set.is_empty() {
            resources.push(resource(RESOURCE_TOPIC, t, deletions(&set)));
        }
    }
    if rates {
        let set = present(client, RESOURCE_BROKER, "", &RATES, SOURCE_DYNAMIC_DEFAULT).await?;
        if !set.is_empty() {
            resources.push(resource(RESOURCE_BROKER, "", deletions(&set)));
        }
    }
    if resources.is_empty() {
        return Ok(false);
    }
    alter(client, resources).await?;
    Ok(true)
}

fn deletions(keys: &[String]) -> Vec<AlterableConfig> {
    keys.iter().map(|k| config(k, OP_DELETE, None)).collect()
}

fn config(key: &str, op: i8, value: Option<String>) -> AlterableConfig {
    AlterableConfig::default()
        .with_name(StrBytes::from_string(key.to_string()))
        .with_config_operation(op)
        .with_value(value.map(StrBytes::from_string))
}

fn resource(kind: i8, name: &str, configs: Vec<AlterableConfig>) -> AlterConfigsResource {
    AlterConfigsResource::default()
        .with_resource_type(kind)
        .with_resource_name(StrBytes::from_string(name.to_string()))
        .with_configs(configs)
}

async fn alter(
    client: &mut Client<Stream>,
    resources: Vec<AlterConfigsResource>,
) -> anyhow::Result<()> {
    let resp = client
        .round_trip(
            1,
            &IncrementalAlterConfigsRequest::default().with_resources(resources),
        )
        .await
        .context("IncrementalAlterConfigs failed")?;
    for r in &resp.responses {
        if r.error_code != 0 {
            let name = r.resource_name.as_str();
            let what = if name.is_empty() { "the cluster" } else { name };
            bail!(
                "cannot change the throttles of {what}: {}{}",
                describe(r.error_code),
                r.error_message
                    .as_ref()
                    .map(|m| format!(": {}", m.as_str()))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// Which of `keys` resource `name` has set with `source`.
async fn present(
    client: &mut Client<Stream>,
    kind: i8,
    name: &str,
    keys: &[&str],
    source: i8,
) -> anyhow::Result<Vec<String>> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configuration_keys(Some(
                keys.iter()
                    .map(|k| StrBytes::from_string(k.to_string()))
                    .collect(),
            ))]);
    let resp = client
        .round_trip(4, &req)
        .await
        .context("DescribeConfigs failed")?;
    let mut out = Vec::new();
    for r in &resp.results {
        if r.error_code != 0 {
            bail!(
                "cannot read the configs of {name:?}: {}",
                describe(r.error_code)
            );
        }
        out.extend(
            r.configs
                .iter()
                .filter(|c| c.config_source == source && keys.contains(&c.name.as_str()))
                .map(|c| c.name.to_string()),
        );
    }
    Ok(out)
}

/// The replicas of `topic`-`partition` now (Metadata).
pub(crate) async fn replicas_of(
    client: &mut Client<Stream>,
    topic: &str,
    partition: i32,
) -> anyhow::Result<Vec<i32>> {
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
    ]));
    let md = client
        .round_trip(12, &req)
        .await
        .context("Metadata failed")?;
    md.topics
        .iter()
        .filter(|t| t.error_code == 0)
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .map(|p| p.replica_nodes.iter().map(|b| b.0).collect())
        .with_context(|| format!("{topic}-{partition} is not in the cluster's metadata"))
}
