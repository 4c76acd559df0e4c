//! `rivulet group list|describe|reset-offsets|delete`: the
//! kafka-consumer-groups.sh jobs, as a librdkafka client.
//!
//! Every command except `list` and `delete` runs a consumer whose
//! `group.id` is the group's, without subscribing: it never joins the
//! group, but its OffsetFetch and OffsetCommit requests are the group's.
//! Such a commit (generation -1, no member id) is accepted only while the
//! group has no members, so `reset-offsets` refuses an active group up
//! front (as Kafka does) rather than racing its consumers.
//!
//! `describe` shows the committed offsets of the partitions its members own
//! and of every partition of the cluster's current topics for which the
//! group has one: rdkafka's OffsetFetch names its partitions, so it asks for
//! all of them. Offsets committed for topics since deleted are not shown.
//! A KIP-848 consumer group (which DescribeGroups reports as Dead) is
//! described through ConsumerGroupDescribe ([`consumer_group`]) and also
//! shows its epochs and each member's epoch, current and target assignment.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use rdkafka::admin::AdminClient;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::groups::GroupInfo;
use rdkafka::metadata::Metadata;
use rdkafka::{Offset, TopicPartitionList};

use super::client::{self, describe_code, CliContext, CONNECT_TIMEOUT, REQUEST_TIMEOUT};
use super::consumer_group;
use super::consumer_protocol::{decode_assignment, format_assignment, partition_count, Assignment};
use super::topic;
use crate::wire_client::Connection;

mod reset;
pub use reset::ResetOffsetsArgs;

/// `rivulet group`: a subcommand, and how to connect (`--command-config`
/// anywhere on the line).
#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    pub command: GroupCommand,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List every consumer group with its state.
    List,
    /// Show a group's state, its members with their partitions, and its
    /// committed offsets with the lag behind the log end.
    Describe(DescribeArgs),
    /// Set a group's committed offsets for a topic (only while the group
    /// has no active members).
    ResetOffsets(ResetOffsetsArgs),
    /// Delete a group without members, and its committed offsets.
    Delete(DeleteArgs),
}

/// A group id: not empty.
fn parse_group(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("the group id must not be empty".to_string())
    } else {
        Ok(s.to_string())
    }
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Group id.
    #[arg(value_parser = parse_group)]
    pub group: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Group id.
    #[arg(value_parser = parse_group)]
    pub group: String,
}

/// Run one `group` subcommand against `bootstrap`.
pub fn run(bootstrap: &str, args: GroupArgs) -> anyhow::Result<()> {
    let connection = &args.connection;
    match args.command {
        GroupCommand::List => list(bootstrap, connection),
        GroupCommand::Describe(args) => describe(bootstrap, connection, &args),
        GroupCommand::ResetOffsets(args) => reset::reset_offsets(bootstrap, connection, &args),
        GroupCommand::Delete(args) => delete(bootstrap, connection, &args),
    }
}

/// A consumer acting for `group` without joining it.
fn group_consumer(
    bootstrap: &str,
    connection: &Connection,
    group: &str,
) -> anyhow::Result<BaseConsumer<CliContext>> {
    let mut config = client::client_config(bootstrap, connection)?;
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    config
        .create_with_context(CliContext::default())
        .context("cannot create the Kafka consumer")
}

/// What went wrong in a request, naming `api` if the broker lacks it.
fn explain(e: &KafkaError, api: &str) -> String {
    match e.rdkafka_error_code() {
        Some(code) => describe_code(code, api),
        None => e.to_string(),
    }
}

/// One member of a group, as DescribeGroups reports it.
#[derive(Debug)]
struct Member {
    id: String,
    client_id: String,
    host: String,
    /// `None` when the assignment bytes are not the consumer protocol's.
    assignment: Option<Assignment>,
}

/// A group, as DescribeGroups reports it.
#[derive(Debug)]
struct Group {
    name: String,
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
}

impl Group {
    fn from_info(g: &GroupInfo) -> Group {
        let consumer_protocol = g.protocol_type() == "consumer";
        let members = g
            .members()
            .iter()
            .map(|m| Member {
                id: m.id().to_string(),
                client_id: m.client_id().to_string(),
                host: m.client_host().to_string(),
                assignment: match (consumer_protocol, m.assignment()) {
                    (false, _) => None,
                    // Not assigned yet (librdkafka reports empty bytes as none).
                    (true, None) => Some(Assignment::new()),
                    (true, Some(bytes)) => decode_assignment(bytes),
                },
            })
            .collect();
        Group {
            name: g.name().to_string(),
            state: g.state().to_string(),
            protocol_type: g.protocol_type().to_string(),
            protocol: g.protocol().to_string(),
            members,
        }
    }

    /// A KIP-848 consumer group as the shared tables show it (protocol
    /// `consumer`, the assignor as the strategy, current assignments).
    fn from_consumer_group(name: &str, cg: &consumer_group::ConsumerGroup) -> Group {
        Group {
            name: name.to_string(),
            state: cg.state.clone(),
            protocol_type: "consumer".to_string(),
            protocol: cg.assignor.clone(),
            members: cg
                .members
                .iter()
                .map(|m| Member {
                    id: m.id.clone(),
                    client_id: m.client_id.clone(),
                    host: m.host.clone(),
                    assignment: Some(m.current.clone()),
                })
                .collect(),
        }
    }

    /// The owner (member index) of each assigned partition.
    fn owners(&self) -> BTreeMap<(String, i32), usize> {
        let mut owners = BTreeMap::new();
        for (i, m) in self.members.iter().enumerate() {
            for (topic, partitions) in m.assignment.iter().flatten() {
                for &p in partitions {
                    owners.insert((topic.clone(), p), i);
                }
            }
        }
        owners
    }
}

/// The group named `name`, or `None` when the cluster has no such group
/// (Kafka reports a group that does not exist as `Dead`).
fn find_group(consumer: &BaseConsumer<CliContext>, name: &str) -> anyhow::Result<Option<Group>> {
    let list = consumer
        .fetch_group_list(Some(name), REQUEST_TIMEOUT)
        .map_err(|e| {
            anyhow!(
                "cannot describe group {name}: {}",
                explain(&e, "DescribeGroups")
            )
        })?;
    Ok(list
        .groups()
        .iter()
        .find(|g| g.name() == name && g.state() != "Dead")
        .map(Group::from_info))
}

fn list(bootstrap: &str, connection: &Connection) -> anyhow::Result<()> {
    let consumer = client::metadata_client(bootstrap, connection)?;
    client::probe_with(&consumer, bootstrap, None)?;
    let list = consumer
        .fetch_group_list(None, REQUEST_TIMEOUT)
        .map_err(|e| anyhow!("cannot list the groups: {}", explain(&e, "ListGroups")))?;
    let mut groups: Vec<Group> = list
        .groups()
        .iter()
        .map(|g| {
            // DescribeGroups shows a KIP-848 consumer group as Dead.
            if g.state() == "Dead" {
                if let Ok(Some(cg)) =
                    consumer_group::describe(bootstrap, connection, g.name(), REQUEST_TIMEOUT)
                {
                    return Group::from_consumer_group(g.name(), &cg);
                }
            }
            Group::from_info(g)
        })
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| vec![cell(&g.name), cell(&g.state), g.members.len().to_string()])
        .collect();
    let mut out = std::io::stdout().lock();
    write_table(&mut out, &["GROUP", "STATE", "MEMBERS"], &rows)?;
    Ok(())
}

/// Every partition of the cluster's topics.
fn all_partitions(metadata: &Metadata) -> BTreeSet<(String, i32)> {
    metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| {
            t.partitions()
                .iter()
                .map(|p| (t.name().to_string(), p.id()))
        })
        .collect()
}

/// The group's committed offsets of `partitions`; partitions without one
/// are absent.
fn committed(
    consumer: &BaseConsumer<CliContext>,
    group: &str,
    partitions: &BTreeSet<(String, i32)>,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for (t, p) in partitions {
        tpl.add_partition(t, *p);
    }
    let fetched = consumer
        .committed_offsets(tpl, REQUEST_TIMEOUT)
        .map_err(|e| {
            anyhow!(
                "cannot read the committed offsets of group {group}: {}",
                explain(&e, "OffsetFetch")
            )
        })?;
    Ok(fetched
        .elements()
        .iter()
        .filter(|e| e.error().is_ok())
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
            _ => None,
        })
        .collect())
}

fn describe(bootstrap: &str, connection: &Connection, args: &DescribeArgs) -> anyhow::Result<()> {
    let consumer = group_consumer(bootstrap, connection, &args.group)?;
    let metadata = client::probe_with(&consumer, bootstrap, None)?;
    let (group, modern) = match find_group(&consumer, &args.group)? {
        Some(g) => (g, None),
        // DescribeGroups shows a KIP-848 consumer group as Dead.
        None => {
            match consumer_group::describe(bootstrap, connection, &args.group, REQUEST_TIMEOUT)? {
                Some(cg) => (Group::from_consumer_group(&args.group, &cg), Some(cg)),
                None => bail!("group {} does not exist", args.group),
            }
        }
    };
    let owners = group.owners();
    let mut wanted = all_partitions(&metadata);
    wanted.extend(owners.keys().cloned());
    let offsets = committed(&consumer, &args.group, &wanted)?;
    let mut lag_rows = Vec::new();
    for key in wanted {
        let owner = owners.get(&key).and_then(|&i| group.members.get(i));
        let current = offsets.get(&key).copied();
        if current.is_none() && owner.is_none() {
            continue;
        }
        let (topic, partition) = key;
        let end = consumer
            .fetch_watermarks(&topic, partition, CONNECT_TIMEOUT)
            .ok()
            .map(|(_, high)| high);
        let lag = current.zip(end).and_then(|(c, e)| e.checked_sub(c));
        lag_rows.push(vec![
            cell(&topic),
            partition.to_string(),
            or_dash(current),
            or_dash(end),
            or_dash(lag),
            cell(owner.map_or("", |m| &m.id)),
            cell(owner.map_or("", |m| &m.host)),
            cell(owner.map_or("", |m| &m.client_id)),
        ]);
    }

    let mut out = std::io::stdout().lock();
    write_table(
        &mut out,
        &[
            "GROUP",
            "STATE",
            "PROTOCOL-TYPE",
            "ASSIGNMENT-STRATEGY",
            "#MEMBERS",
        ],
        &[vec![
            cell(&group.name),
            cell(&group.state),
            cell(&group.protocol_type),
            cell(&group.protocol),
            group.members.len().to_string(),
        ]],
    )?;
    if group.members.is_empty() {
        eprintln!("group {} has no active members", args.group);
    } else {
        let rows: Vec<Vec<String>> = group
            .members
            .iter()
            .map(|m| {
                let (count, assigned) = match &m.assignment {
                    Some(a) => (partition_count(a).to_string(), format_assignment(a)),
                    None => ("?".to_string(), "?".to_string()),
                };
                vec![
                    cell(&m.id),
                    cell(&m.host),
                    cell(&m.client_id),
                    count,
                    cell(&assigned),
                ]
            })
            .collect();
        writeln!(out)?;
        write_table(
            &mut out,
            &[
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID",
                "#PARTITIONS",
                "ASSIGNMENT",
            ],
            &rows,
        )?;
    }
    if let Some(cg) = &modern {
        // The consumer protocol's own view: epochs, current vs target.
        writeln!(out)?;
        write_table(
            &mut out,
            &["GROUP-EPOCH", "ASSIGNMENT-EPOCH"],
            &[vec![
                cg.group_epoch.to_string(),
                cg.assignment_epoch.to_string(),
            ]],
        )?;
        if !cg.members.is_empty() {
            let rows: Vec<Vec<String>> = cg
                .members
                .iter()
                .map(|m| {
                    vec![
                        cell(&m.id),
                        cell(m.instance_id.as_deref().unwrap_or("")),
                        m.epoch.to_string(),
                        cell(&format_assignment(&m.current)),
                        cell(&format_assignment(&m.target)),
                    ]
                })
                .collect();
            writeln!(out)?;
            write_table(
                &mut out,
                &[
                    "CONSUMER-ID",
                    "INSTANCE-ID",
                    "MEMBER-EPOCH",
                    "ASSIGNMENT",
                    "TARGET-ASSIGNMENT",
                ],
                &rows,
            )?;
        }
    }
    if lag_rows.is_empty() {
        eprintln!("group {} has no committed offsets", args.group);
    } else {
        writeln!(out)?;
        write_table(
            &mut out,
            &[
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID",
            ],
            &lag_rows,
        )?;
    }
    Ok(())
}

fn delete(bootstrap: &str, connection: &Connection, args: &DeleteArgs) -> anyhow::Result<()> {
    let admin: AdminClient<CliContext> = client::client_config(bootstrap, connection)?
        .create_with_context(CliContext::default())
        .context("cannot create the Kafka admin client")?;
    client::probe_with(
        &client::metadata_client(bootstrap, connection)?,
        bootstrap,
        None,
    )?;
    let group = args.group.as_str();
    topic::block_on(async {
        let results = admin
            .delete_groups(&[group], &topic::options())
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot delete group {group}: {}",
                    explain(&e, "DeleteGroups")
                )
            })?;
        for result in results {
            match result {
                Ok(name) => println!("deleted group {name}"),
                Err((name, RDKafkaErrorCode::GroupIdNotFound)) => {
                    bail!("group {name} does not exist")
                }
                Err((name, RDKafkaErrorCode::NonEmptyGroup)) => bail!(
                    "cannot delete group {name}: it has active members; stop its consumers first"
                ),
                Err((name, code)) => bail!(
                    "cannot delete group {name}: {}",
                    describe_code(code, "DeleteGroups")
                ),
            }
        }
        Ok(())
    })
}

fn or_dash(v: Option<i64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A table cell: `-` for nothing, and control characters from the network
/// (client ids, hosts, topic names) shown as `?` rather than sent to the
/// terminal.
fn cell(s: &str) -> String {
    if s.is_empty() {
        return "-".to_string();
    }
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `rows` under `header`, each column padded to its widest cell and two
/// spaces apart, as kafka-consumer-groups.sh aligns its output.
fn write_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len().min(widths.len()) {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        writeln!(out, "{line}").context("cannot write to stdout")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_without_trailing_space() {
        let mut out = Vec::new();
        write_table(
            &mut out,
            &["TOPIC", "PARTITION", "LAG"],
            &[
                vec!["orders".into(), "0".into(), "12".into()],
                vec!["a".into(), "10".into(), "-".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "TOPIC   PARTITION  LAG\n\
             orders  0          12\n\
             a       10         -\n"
        );
    }

    #[test]
    fn cells_show_nothing_as_a_dash_and_hide_control_characters() {
        assert_eq!(cell(""), "-");
        assert_eq!(cell("client\x1b[2J"), "client?[2J");
        assert_eq!(cell("/127.0.0.1"), "/127.0.0.1");
    }

    #[test]
    fn group_ids_must_not_be_empty() {
        assert!(parse_group("").is_err());
        assert_eq!(parse_group("g 1"), Ok("g 1".to_string()));
    }
}
