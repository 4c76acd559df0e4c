//! `rivulet node config [--node N] [--set K=V]... [--delete K]...`, as
//! `kafka-configs.sh --entity-type brokers (--entity-default |
//! --entity-name N) --alter / --describe`: the dynamic broker configs — the
//! topic defaults (`log.retention.ms`, `compression.type`,
//! `min.insync.replicas`, ...) a running cluster changes without a
//! restart. Without `--node`, the cluster-wide defaults; with it, that
//! node's own, which win over them. Without changes, the current ones are
//! printed. Sent as IncrementalAlterConfigs / DescribeConfigs to the node
//! concerned (any node for the cluster-wide ones).

use anyhow::{bail, Context};
use clap::Args;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, MetadataRequest,
};
use kafka_protocol::protocol::StrBytes;
use rivulet_protocol::tls::Stream;
use rivulet_protocol::wire::Client;

/// Kafka's config resource types, IncrementalAlterConfigs operations and
/// `ConfigSource` codes (also of `partition::throttle`).
pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;
pub(crate) const OP_SET: i8 = 0;
pub(crate) const OP_DELETE: i8 = 1;
pub(crate) const OP_APPEND: i8 = 2;
pub(crate) const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub(crate) const SOURCE_DYNAMIC_DEFAULT: i8 = 3;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// This node's own configs (default: the cluster-wide defaults).
    #[arg(long)]
    pub node: Option<i32>,
    /// Set a config, `key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Remove a config, falling back to the next layer (repeatable).
    #[arg(long = "delete", value_name = "KEY")]
    pub delete: Vec<String>,
    #[command(flatten)]
    pub connection: crate::wire_client::Connection,
}

/// `(key, Some(value) to set / None to delete)` from the arguments.
fn changes(a: &ConfigArgs) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    for kv in &a.set {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--set {kv}: expected key=value");
        };
        out.push((k.trim().to_string(), Some(v.trim().to_string())));
    }
    out.extend(a.delete.iter().map(|k| (k.trim().to_string(), None)));
    Ok(out)
}

pub async fn run(bootstrap: &str, a: ConfigArgs) -> anyhow::Result<()> {
    let changes = changes(&a)?;
    let address = match a.node {
        None => bootstrap.to_string(),
        Some(id) => node_address(bootstrap, &a.connection, id).await?,
    };
    let mut client = crate::wire_client::connect(&address, &a.connection).await?;
    let name = a.node.map(|id| id.to_string()).unwrap_or_default();
    let whose = a
        .node
        .map_or("the cluster-wide defaults".to_string(), |id| {
            format!("node {id}")
        });
    if changes.is_empty() {
        return describe(&mut client, &name, &whose).await;
    }
    let configs = changes
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(if v.is_some() { OP_SET } else { OP_DELETE })
                .with_value(v.clone().map(StrBytes::from_string))
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_BROKER)
            .with_resource_name(StrBytes::from_string(name))
            .with_configs(configs),
    ]);
    let resp = client
        .round_trip(1, &req)
        .await
        .context("IncrementalAlterConfigs failed")?;
    for r in &resp.responses {
        if r.error_code != 0 {
            let message = r.error_message.as_deref().unwrap_or("");
            bail!("cannot alter {whose}: {message} (error {})", r.error_code);
        }
    }
    println!("altered dynamic configs of {whose}");
    Ok(())
}

/// Print the dynamic configs of broker resource `name`.
async fn describe(client: &mut Client<Stream>, name: &str, whose: &str) -> anyhow::Result<()> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_BROKER)
            .with_resource_name(StrBytes::from_string(name.to_string()))]);
    let resp = client
        .round_trip(4, &req)
        .await
        .context("DescribeConfigs failed")?;
    println!("dynamic configs of {whose}:");
    for r in &resp.results {
        if r.error_code != 0 {
            bail!(
                "{}",
                r.error_message
                    .as_deref()
                    .unwrap_or("DescribeConfigs refused")
            );
        }
        for c in &r.configs {
            let origin = match c.config_source {
                SOURCE_DYNAMIC_BROKER => "this node",
                SOURCE_DYNAMIC_DEFAULT => "cluster-wide default",
                _ => continue,
            };
            let value = c.value.as_deref().unwrap_or("");
            println!("  {}={value}\t({origin})", c.name.as_str());
        }
    }
    Ok(())
}

/// The address clients reach node `id` at (from Metadata).
async fn node_address(
    bootstrap: &str,
    connection: &crate::wire_client::Connection,
    id: i32,
) -> anyhow::Result<String> {
    let mut client = crate::wire_client::connect(bootstrap, connection).await?;
    let md = client
        .round_trip(12, &MetadataRequest::default().with_topics(Some(vec![])))
        .await
        .context("Metadata failed")?;
    md.brokers
        .iter()
        .find(|b| b.node_id.0 == id)
        .map(|b| format!("{}:{}", b.host.as_str(), b.port))
        .with_context(|| format!("node {id} is not in the cluster"))
}
