//! `rivulet quota set|remove|list`: client quotas, as `kafka-configs.sh
//! --entity-type users|clients --alter --add-config
//! 'producer_byte_rate=...'` / `--delete-config` / `--describe` do,
//! through Kafka's AlterClientQuotas and DescribeClientQuotas APIs. An
//! entity is a user, a client id, or both, each named or the default
//! (`--default-user`, `--default-client-id`).

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

use crate::wire_client::connect;

const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Set an entity's byte rates (bytes per second, per broker).
    Set(SetArgs),
    /// Remove an entity's byte rates (both unless one is named).
    Remove(RemoveArgs),
    /// List every entity's quotas.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct Entity {
    /// The user (the principal's name: `alice` for `User:alice`).
    #[arg(long, conflicts_with = "default_user")]
    pub user: Option<String>,
    /// The default of every user without a quota of its own.
    #[arg(long)]
    pub default_user: bool,
    #[arg(long, conflicts_with = "default_client_id")]
    pub client_id: Option<String>,
    /// The default of every client id without a quota of its own.
    #[arg(long)]
    pub default_client_id: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(flatten)]
    pub entity: Entity,
    #[arg(long)]
    pub producer_byte_rate: Option<u64>,
    #[arg(long)]
    pub consumer_byte_rate: Option<u64>,
    #[command(flatten)]
    pub connection: crate::wire_client::Connection,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub entity: Entity,
    /// Only producer_byte_rate.
    #[arg(long)]
    pub producer_byte_rate: bool,
    /// Only consumer_byte_rate.
    #[arg(long)]
    pub consumer_byte_rate: bool,
    #[command(flatten)]
    pub connection: crate::wire_client::Connection,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub connection: crate::wire_client::Connection,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The entity's `(type, name)` parts (`None`: the default).
fn parts(e: &Entity) -> anyhow::Result<Vec<(&'static str, Option<String>)>> {
    let mut out = Vec::new();
    if e.user.is_some() || e.default_user {
        out.push(("user", e.user.clone()));
    }
    if e.client_id.is_some() || e.default_client_id {
        out.push(("client-id", e.client_id.clone()));
    }
    if out.is_empty() {
        bail!("name an entity: --user, --default-user, --client-id and/or --default-client-id");
    }
    Ok(out)
}

/// How an entity is shown: `user=alice client-id=<default>`.
fn show(parts: &[(String, Option<String>)]) -> String {
    parts
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(bootstrap: &str, command: QuotaCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(bootstrap, command))
}

async fn alter(
    bootstrap: &str,
    connection: &crate::wire_client::Connection,
    entity: &Entity,
    ops: Vec<(&str, Option<u64>)>,
) -> anyhow::Result<()> {
    let parts = parts(entity)?;
    if ops.is_empty() {
        bail!("nothing to set: give --producer-byte-rate and/or --consumer-byte-rate");
    }
    let entry = EntryData::default()
        .with_entity(
            parts
                .iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(sb(t))
                        .with_entity_name(n.as_deref().map(sb))
                })
                .collect(),
        )
        .with_ops(
            ops.iter()
                .map(|(k, v)| {
                    OpData::default()
                        .with_key(sb(k))
                        .with_value(v.unwrap_or(0) as f64)
                        .with_remove(v.is_none())
                })
                .collect(),
        );
    let mut client = connect(bootstrap, connection).await?;
    let req = AlterClientQuotasRequest::default().with_entries(vec![entry]);
    let resp = client.round_trip(1, &req).await?;
    for e in resp.entries {
        if e.error_code != 0 {
            let code = kafka_protocol::ResponseError::try_from_code(e.error_code)
                .map_or(e.error_code.to_string(), |c| format!("{c:?}"));
            bail!("{code}: {}", e.error_message.as_deref().unwrap_or(""));
        }
    }
    let shown: Vec<(String, Option<String>)> =
        parts.into_iter().map(|(t, n)| (t.to_string(), n)).collect();
    eprintln!("altered the quotas of {}", show(&shown));
    Ok(())
}

async fn run_async(bootstrap: &str, command: QuotaCommand) -> anyhow::Result<()> {
    match command {
        QuotaCommand::Set(a) => {
            let ops = [
                (PRODUCER_BYTE_RATE, a.producer_byte_rate),
                (CONSUMER_BYTE_RATE, a.consumer_byte_rate),
            ]
            .into_iter()
            .filter(|(_, v)| v.is_some())
            .collect();
            alter(bootstrap, &a.connection, &a.entity, ops).await
        }
        QuotaCommand::Remove(a) => {
            let both = !a.producer_byte_rate && !a.consumer_byte_rate;
            let ops = [
                (PRODUCER_BYTE_RATE, a.producer_byte_rate || both),
                (CONSUMER_BYTE_RATE, a.consumer_byte_rate || both),
            ]
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| (k, None))
            .collect();
            alter(bootstrap, &a.connection, &a.entity, ops).await
        }
        QuotaCommand::List(a) => {
            let mut client = connect(bootstrap, &a.connection).await?;
            let resp = client
                .round_trip(1, &DescribeClientQuotasRequest::default())
                .await?;
            if resp.error_code != 0 {
                bail!(
                    "DescribeClientQuotas: error {}: {}",
                    resp.error_code,
                    resp.error_message.as_deref().unwrap_or("")
                );
            }
            let mut lines: Vec<String> = resp
                .entries
                .unwrap_or_default()
                .into_iter()
                .map(|e| {
                    let mut parts: Vec<(String, Option<String>)> = e
                        .entity
                        .iter()
                        .map(|d| {
                            (
                                d.entity_type.to_string(),
                                d.entity_name.as_ref().map(|n| n.to_string()),
                            )
                        })
                        .collect();
                    // user first, as kafka-configs.sh shows them.
                    parts.sort_by(|a, b| b.0.cmp(&a.0));
                    let values: Vec<String> = e
                        .values
                        .iter()
                        .map(|v| format!("{}={}", v.key.as_str(), v.value))
                        .collect();
                    format!("{}\t{}", show(&parts), values.join(","))
                })
                .collect();
            lines.sort();
            for l in lines {
                println!("{l}");
            }
            Ok(())
        }
    }
}
