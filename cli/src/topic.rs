//! `rivulet topic create|list|describe|delete|alter|alter-config`: the
//! kafka-topics.sh / kafka-configs.sh jobs, through librdkafka's admin API.
//! `alter --partitions N` is kafka-topics.sh's `--alter --partitions N`
//! (CreatePartitions): partitions are only ever added.
//!
//! `describe` prints kafka-topics.sh's layout, so scripts and eyes trained
//! on it keep working. `alter-config` uses the legacy AlterConfigs request
//! (rdkafka 0.39 has no IncrementalAlterConfigs), which *replaces* a topic's
//! whole override set: it reads the current overrides with DescribeConfigs
//! and sends them merged with the change. A concurrent change between the
//! two requests is lost, as with kafka-configs.sh before KIP-339.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigResource, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::{Metadata, MetadataTopic};

use super::client::{self, describe_code, CliContext, REQUEST_TIMEOUT};
use crate::wire_client::Connection;

/// `rivulet topic`: a subcommand, and how to connect (`--command-config`
/// anywhere on the line).
#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(subcommand)]
    pub command: TopicCommand,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List the cluster's topics, one name per line.
    List,
    /// Show a topic's partitions (leader, replicas, ISR) and configs.
    Describe(DescribeArgs),
    /// Delete a topic and all its data.
    Delete(DeleteArgs),
    /// Add partitions, as kafka-topics.sh --alter --partitions N (partitions
    /// are never removed).
    Alter(AlterArgs),
    /// Set or remove topic config overrides.
    AlterConfig(AlterConfigArgs),
}

#[derive(Debug, Args)]
pub struct AlterArgs {
    /// Topic name.
    pub name: String,
    /// The new total number of partitions (more than it has).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Place the new partitions' replicas by hand, as kafka-topics.sh: one
    /// broker list per new partition (`1:2,2:3`), the first broker of each
    /// the preferred leader.
    #[arg(long, value_name = "B:B,B:B", value_parser = parse_replica_assignment)]
    pub replica_assignment: Option<ReplicaAssignment>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Topic name.
    pub name: String,
    /// Number of partitions [default: the broker's num.partitions].
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: Option<i32>,
    /// Replicas per partition [default: the broker's default.replication.factor].
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=i16::MAX as i64))]
    pub replication_factor: Option<i32>,
    /// A topic config, e.g. --config retention.ms=86400000 (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = super::parse_key_value)]
    pub configs: Vec<(String, String)>,
    /// Succeed without change when the topic already exists.
    #[arg(long)]
    pub if_not_exists: bool,
    /// Place the replicas by hand, as kafka-topics.sh: one broker list per
    /// partition, partitions separated by commas, the first broker of each
    /// the preferred leader (`1:2,2:3,3:1`). Excludes --partitions and
    /// --replication-factor.
    #[arg(long, value_name = "B:B,B:B", value_parser = parse_replica_assignment,
          conflicts_with_all = ["partitions", "replication_factor"])]
    pub replica_assignment: Option<ReplicaAssignment>,
}

/// Broker ids per partition, partition 0 first.
#[derive(Debug, Clone)]
pub struct ReplicaAssignment(pub Vec<Vec<i32>>);

/// `1:2,2:3,3:1`: partition 0 on brokers 1 and 2, partition 1 on 2 and 3, ...
pub fn parse_replica_assignment(s: &str) -> Result<ReplicaAssignment, String> {
    s.split(',')
        .map(|part| {
            part.split(':')
                .map(|b| {
                    b.trim()
                        .parse::<i32>()
                        .map_err(|_| format!("'{b}' in '{part}' is not a broker id"))
                })
                .collect()
        })
        .collect::<Result<_, _>>()
        .map(ReplicaAssignment)
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Topic name [default: every topic].
    pub name: Option<String>,
    /// Also list every config with its value and source, not just overrides.
    #[arg(long)]
    pub all_configs: bool,
    /// Only partitions whose ISR is smaller than their replica set (as
    /// kafka-topics.sh; topic lines and configs are left out).
    #[arg(long, conflicts_with = "all_configs")]
    pub under_replicated_partitions: bool,
    /// Only partitions without a leader (as kafka-topics.sh).
    #[arg(long, conflicts_with = "all_configs")]
    pub unavailable_partitions: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Topic name.
    pub name: String,
    /// Succeed without change when the topic does not exist.
    #[arg(long)]
    pub if_exists: bool,
}

#[derive(Debug, Args)]
pub struct AlterConfigArgs {
    /// Topic name.
    pub name: String,
    /// Set an override, e.g. --set retention.ms=60000 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = super::parse_key_value)]
    pub set: Vec<(String, String)>,
    /// Remove an override, so the broker default applies again (repeatable).
    #[arg(long = "delete", value_name = "KEY", value_parser = super::parse_key)]
    pub delete: Vec<String>,
}

/// Run one `topic` subcommand against `bootstrap`.
pub fn run(bootstrap: &str, args: TopicArgs) -> anyhow::Result<()> {
    let TopicArgs {
        command,
        connection,
    } = args;
    let admin: AdminClient<CliContext> = client::client_config(bootstrap, &connection)?
        .create_with_context(CliContext::default())
        .context("cannot create the Kafka admin client")?;
    let metadata = client::probe_with(
        &client::metadata_client(bootstrap, &connection)?,
        bootstrap,
        None,
    )?;
    match command {
        TopicCommand::Create(args) => block_on(create(&admin, args)),
        TopicCommand::List => list(&metadata),
        TopicCommand::Describe(args) => block_on(describe(&admin, &metadata, args)),
        TopicCommand::Delete(args) => block_on(delete(&admin, &metadata, args)),
        TopicCommand::Alter(args) => block_on(alter(&admin, &metadata, args)),
        TopicCommand::AlterConfig(args) => block_on(alter_config(&admin, &metadata, args)),
    }
}

/// The admin futures complete on librdkafka's own thread; any executor will
/// do, so a current-thread runtime keeps the client commands light.
pub(super) fn block_on<F: Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

pub(super) fn options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT))
}

async fn create(admin: &AdminClient<CliContext>, args: CreateArgs) -> anyhow::Result<()> {
    let assigned: Option<Vec<&[i32]>> = args
        .replica_assignment
        .as_ref()
        .map(|a| a.0.iter().map(Vec::as_slice).collect());
    // -1 asks the broker for its defaults (KIP-464).
    let mut topic = match &assigned {
        Some(a) => NewTopic::new(
            &args.name,
            a.len() as i32,
            TopicReplication::Variable(a.as_slice()),
        ),
        None => NewTopic::new(
            &args.name,
            args.partitions.unwrap_or(-1),
            TopicReplication::Fixed(args.replication_factor.unwrap_or(-1)),
        ),
    };
    for (k, v) in &args.configs {
        topic = topic.set(k, v);
    }
    let results = admin
        .create_topics([&topic], &options())
        .await
        .with_context(|| format!("cannot create topic {}", args.name))?;
    for result in results {
        match result {
            Ok(name) => println!("created topic {name}"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) if args.if_not_exists => {
                println!("topic {name} already exists")
            }
            Err((name, code)) => bail!(
                "cannot create topic {name}: {}",
                describe_code(code, "CreateTopics")
            ),
        }
    }
    Ok(())
}

fn list(metadata: &Metadata) -> anyhow::Result<()> {
    let mut names: Vec<&str> = metadata.topics().iter().map(MetadataTopic::name).collect();
    names.sort_unstable();
    let mut out = std::io::stdout().lock();
    for name in names {
        writeln!(out, "{name}")?;
    }
    Ok(())
}

/// The topic's entry in `metadata`, or an error if the cluster has none.
pub(super) fn find_topic<'a>(
    metadata: &'a Metadata,
    name: &str,
) -> anyhow::Result<&'a MetadataTopic> {
    let topic = metadata.topics().iter().find(|t| t.name() == name);
    match topic.map(|t| (t, t.error().map(RDKafkaErrorCode::from))) {
        None | Some((_, Some(RDKafkaErrorCode::UnknownTopicOrPartition))) => {
            bail!("topic {name} does not exist")
        }
        Some((_, Some(code))) => bail!("topic {name}: {code}"),
        Some((t, None)) => Ok(t),
    }
}

/// The topic's configs through DescribeConfigs.
async fn topic_configs(
    admin: &AdminClient<CliContext>,
    name: &str,
) -> anyhow::Result<ConfigResource> {
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(name)], &options())
        .await
        .map_err(|e| match e.rdkafka_error_code() {
            Some(code) => anyhow!(
                "cannot describe configs of topic {name}: {}",
                describe_code(code, "DescribeConfigs")
            ),
            None => anyhow!("cannot describe configs of topic {name}: {e}"),
        })?;
    match results.into_iter().next() {
        Some(Ok(resource)) => Ok(resource),
        Some(Err(code)) => bail!(
            "cannot describe configs of topic {name}: {}",
            describe_code(code, "DescribeConfigs")
        ),
        None => bail!("the broker returned no configs for topic {name}"),
    }
}

/// `(key, value)` of the topic's own overrides, by key.
fn overrides(resource: &ConfigResource) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for e in &resource.entries {
        if e.source != ConfigSource::DynamicTopic {
            continue;
        }
        // A hidden (sensitive) value could not be sent back unchanged.
        let Some(v) = &e.value else {
            bail!("the value of override {} is hidden by the broker", e.name);
        };
        out.insert(e.name.clone(), v.clone());
    }
    Ok(out)
}

fn source_name(source: &ConfigSource) -> &'static str {
    match source {
        ConfigSource::DynamicTopic => "topic override",
        ConfigSource::DynamicBroker => "dynamic broker config",
        ConfigSource::DynamicDefaultBroker => "dynamic default broker config",
        ConfigSource::StaticBroker => "static broker config",
        ConfigSource::Default => "default",
        ConfigSource::Unknown => "unknown",
    }
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

async fn describe(
    admin: &AdminClient<CliContext>,
    metadata: &Metadata,
    args: DescribeArgs,
) -> anyhow::Result<()> {
    let names: Vec<String> = match &args.name {
        Some(name) => vec![name.clone()],
        None => {
            let mut all: Vec<String> = metadata
                .topics()
                .iter()
                .map(|t| t.name().to_string())
                .collect();
            all.sort_unstable();
            all
        }
    };
    let filtered = args.under_replicated_partitions || args.unavailable_partitions;
    let mut out = std::io::stdout().lock();
    for name in &names {
        let topic = find_topic(metadata, name)?;
        let mut partitions: Vec<_> = topic.partitions().iter().collect();
        partitions.sort_by_key(|p| p.id());
        let configs = if filtered {
            None
        } else {
            let configs = topic_configs(admin, name).await?;
            let replication_factor = partitions.first().map_or(0, |p| p.replicas().len());
            let overridden: Vec<String> = overrides(&configs)?
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            writeln!(
                out,
                "Topic: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
                name,
                partitions.len(),
                replication_factor,
                overridden.join(",")
            )?;
            Some(configs)
        };
        for p in partitions {
            let under_replicated = p.isr().len() < p.replicas().len();
            let unavailable = p.leader() < 0;
            if filtered
                && !(args.under_replicated_partitions && under_replicated
                    || args.unavailable_partitions && unavailable)
            {
                continue;
            }
            let leader = match p.leader() {
                -1 => "none".to_string(),
                id => id.to_string(),
            };
            write!(
                out,
                "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                name,
                p.id(),
                leader,
                join(p.replicas()),
                join(p.isr())
            )?;
            if let Some(e) = p.error() {
                write!(out, "\tError: {}", RDKafkaErrorCode::from(e))?;
            }
            writeln!(out)?;
        }
        if let (true, Some(configs)) = (args.all_configs, configs) {
            let mut entries: Vec<_> = configs.entries.iter().collect();
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            writeln!(out, "Configs of topic {name}:")?;
            for e in entries {
                writeln!(
                    out,
                    "\t{}={}\t({})",
                    e.name,
                    e.value.as_deref().unwrap_or("<hidden>"),
                    source_name(&e.source)
                )?;
            }
        }
    }
    Ok(())
}

async fn delete(
    admin: &AdminClient<CliContext>,
    metadata: &Metadata,
    args: DeleteArgs,
) -> anyhow::Result<()> {
    if find_topic(metadata, &args.name).is_err() && args.if_exists {
        println!("topic {} does not exist", args.name);
        return Ok(());
    }
    let results = admin
        .delete_topics(&[&args.name], &options())
        .await
        .with_context(|| format!("cannot delete topic {}", args.name))?;
    for result in results {
        match result {
            Ok(name) => println!("deleted topic {name}"),
            Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) if args.if_exists => {
                println!("topic {name} does not exist")
            }
            Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                bail!("topic {name} does not exist")
            }
            Err((name, code)) => bail!(
                "cannot delete topic {name}: {}",
                describe_code(code, "DeleteTopics")
            ),
        }
    }
    Ok(())
}

async fn alter(
    admin: &AdminClient<CliContext>,
    metadata: &Metadata,
    args: AlterArgs,
) -> anyhow::Result<()> {
    let has = find_topic(metadata, &args.name)?.partitions().len();
    let wanted = usize::try_from(args.partitions).unwrap_or(0);
    if wanted <= has {
        bail!(
            "topic {} has {has} partitions: --partitions must be more (partitions are only added)",
            args.name
        );
    }
    let assigned: Option<Vec<&[i32]>> = args
        .replica_assignment
        .as_ref()
        .map(|a| a.0.iter().map(Vec::as_slice).collect());
    if let Some(a) = &assigned {
        if a.len() != wanted - has {
            bail!(
                "--replica-assignment places {} partitions; going from {has} to {wanted} adds {}",
                a.len(),
                wanted - has
            );
        }
    }
    let mut new = NewPartitions::new(&args.name, wanted);
    if let Some(a) = &assigned {
        new = new.assign(a.as_slice());
    }
    let results = admin
        .create_partitions([&new], &options())
        .await
        .with_context(|| format!("cannot add partitions to topic {}", args.name))?;
    for result in results {
        if let Err((name, code)) = result {
            bail!(
                "cannot add partitions to topic {name}: {}",
                describe_code(code, "CreatePartitions")
            );
        }
    }
    println!(
        "topic {} now has {wanted} partitions (was {has})",
        args.name
    );
    Ok(())
}

/// `current` overrides with `set` applied and `delete` removed.
fn merge(
    mut current: BTreeMap<String, String>,
    set: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<BTreeMap<String, String>> {
    if set.is_empty() && delete.is_empty() {
        bail!("nothing to change: give --set KEY=VALUE or --delete KEY");
    }
    for key in delete {
        if set.iter().any(|(k, _)| k == key) {
            bail!("{key} is both set and deleted");
        }
        current.remove(key);
    }
    for (k, v) in set {
        current.insert(k.clone(), v.clone());
    }
    Ok(current)
}

async fn alter_config(
    admin: &AdminClient<CliContext>,
    metadata: &Metadata,
    args: AlterConfigArgs,
) -> anyhow::Result<()> {
    find_topic(metadata, &args.name)?;
    let current = overrides(&topic_configs(admin, &args.name).await?)?;
    let merged = merge(current, &args.set, &args.delete)?;
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(&args.name));
    for (k, v) in &merged {
        alter = alter.set(k, v);
    }
    let results = admin
        .alter_configs([&alter], &options())
        .await
        .with_context(|| format!("cannot alter configs of topic {}", args.name))?;
    for result in results {
        if let Err((_, code)) = result {
            bail!(
                "cannot alter configs of topic {}: {}",
                args.name,
                describe_code(code, "AlterConfigs")
            );
        }
    }
    let now: Vec<String> = merged.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "altered configs of topic {}; overrides now: {}",
        args.name,
        if now.is_empty() {
            "none".to_string()
        } else {
            now.join(",")
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn merge_keeps_untouched_overrides_and_applies_the_change() {
        let current = map(&[("retention.ms", "1000"), ("segment.bytes", "1048576")]);
        let merged = merge(
            current,
            &[("cleanup.policy".into(), "compact".into())],
            &["segment.bytes".into(), "not.set".into()],
        )
        .unwrap();
        assert_eq!(
            merged,
            map(&[("cleanup.policy", "compact"), ("retention.ms", "1000")])
        );
    }

    #[test]
    fn merge_refuses_an_empty_or_contradictory_change() {
        assert!(merge(BTreeMap::new(), &[], &[]).is_err());
        assert!(merge(
            BTreeMap::new(),
            &[("retention.ms".into(), "1".into())],
            &["retention.ms".into()]
        )
        .is_err());
    }
}
