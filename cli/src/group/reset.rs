//! `rivulet group reset-offsets`: a group's committed offsets for a topic
//! set to the log start or end, an offset, the first record at or after a
//! time, or shifted from where they are — spelled `--to WHERE` (commits
//! unless `--dry-run`) or as kafka-consumer-groups.sh spells it
//! (`--to-earliest` ..., printed only unless `--execute`). Only while the
//! group has no members, as Kafka does; every commit is read back.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::super::client::{self, CliContext, CONNECT_TIMEOUT, REQUEST_TIMEOUT};
use super::super::consume::{parse_start, select_partitions, Start};
use super::super::{rfc3339, topic};
use super::{committed, explain, find_group, group_consumer, or_dash, parse_group, write_table};
use crate::wire_client::Connection;

#[derive(Debug, Args)]
pub struct ResetOffsetsArgs {
    /// Group id.
    #[arg(value_parser = parse_group)]
    pub group: String,
    /// Topic whose offsets are reset.
    #[arg(long)]
    pub topic: String,
    /// Reset only this partition [default: all].
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    #[command(flatten)]
    pub target: ResetTarget,
    /// Print the new offsets without committing them.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit the new offsets: needed with kafka-consumer-groups.sh's
    /// spellings (`--to-earliest` ...), which otherwise only print them, as
    /// that tool does; `--to` commits without it.
    #[arg(long, conflicts_with = "dry_run")]
    pub execute: bool,
}

/// Where `reset-offsets` moves the offsets: `--to`, or one of
/// kafka-consumer-groups.sh's options.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ResetTarget {
    /// The new position: earliest, latest, an offset (clamped into the
    /// partition's range), or an RFC 3339 time (2024-05-01T12:00:00Z) for
    /// the first record at or after it.
    #[arg(long, value_name = "WHERE", value_parser = parse_start)]
    pub to: Option<Start>,
    /// As kafka-consumer-groups.sh: the log start.
    #[arg(long)]
    pub to_earliest: bool,
    /// As kafka-consumer-groups.sh: the log end.
    #[arg(long)]
    pub to_latest: bool,
    /// As kafka-consumer-groups.sh: this offset, clamped into the
    /// partition's range.
    #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
    pub to_offset: Option<i64>,
    /// As kafka-consumer-groups.sh: the first record at or after this time
    /// (2024-05-01T12:00:00.000, local time unless a zone is given).
    #[arg(long, value_name = "DATETIME", value_parser = rfc3339::parse_millis_or_local)]
    pub to_datetime: Option<i64>,
    /// As kafka-consumer-groups.sh: the committed offset moved by N
    /// (negative: back), clamped into the partition's range.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
}

/// Where each partition's committed offset goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    At(Start),
    ShiftBy(i64),
}

impl ResetTarget {
    /// The position, and whether it was given in kafka-consumer-groups.sh's
    /// spelling (which commits only with `--execute`).
    fn resolve(&self) -> (ResetTo, bool) {
        match *self {
            ResetTarget { to: Some(to), .. } => (ResetTo::At(to), false),
            ResetTarget {
                to_offset: Some(o), ..
            } => (ResetTo::At(Start::Offset(o)), true),
            ResetTarget {
                to_datetime: Some(t),
                ..
            } => (ResetTo::At(Start::Time(t)), true),
            ResetTarget {
                shift_by: Some(n), ..
            } => (ResetTo::ShiftBy(n), true),
            ResetTarget {
                to_latest: true, ..
            } => (ResetTo::At(Start::Latest), true),
            // clap requires one of the group; `--to-earliest` is the rest.
            _ => (ResetTo::At(Start::Earliest), true),
        }
    }
}

/// The offset `to` names in each of `partitions`: log start and end from
/// the watermarks, an offset clamped into them, the first record at or
/// after a time (the end when there is none, as Kafka resets), or the
/// group's committed offset (`previous`) shifted and clamped.
fn target_offsets(
    consumer: &BaseConsumer<CliContext>,
    topic: &str,
    partitions: &[i32],
    to: ResetTo,
    previous: &BTreeMap<(String, i32), i64>,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut watermarks = BTreeMap::new();
    for &p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, CONNECT_TIMEOUT)
            .map_err(|e| {
                anyhow!(
                    "cannot read the offsets of {topic}/{p}: {}",
                    explain(&e, "ListOffsets")
                )
            })?;
        watermarks.insert(p, (low, high));
    }
    let mut by_time = BTreeMap::new();
    if let ResetTo::At(Start::Time(millis)) = to {
        let mut query = TopicPartitionList::with_capacity(partitions.len());
        for &p in partitions {
            query.add_partition_offset(topic, p, Offset::Offset(millis))?;
        }
        let found = consumer
            .offsets_for_times(query, REQUEST_TIMEOUT)
            .map_err(|e| {
                anyhow!(
                    "cannot look up offsets by time: {}",
                    explain(&e, "ListOffsets")
                )
            })?;
        for e in found.elements() {
            e.error()
                .with_context(|| format!("cannot look up {topic}/{} by time", e.partition()))?;
            if let Offset::Offset(o) = e.offset() {
                by_time.insert(e.partition(), o);
            }
        }
    }
    let mut targets = BTreeMap::new();
    for (&p, &(low, high)) in &watermarks {
        let wanted = match to {
            ResetTo::At(Start::Earliest) => low,
            ResetTo::At(Start::Latest) => high,
            ResetTo::At(Start::Offset(o)) => o,
            ResetTo::At(Start::Time(_)) => by_time.get(&p).copied().unwrap_or(high),
            // As kafka-consumer-groups.sh: only a committed offset shifts.
            ResetTo::ShiftBy(n) => match previous.get(&(topic.to_string(), p)) {
                Some(&o) => o.saturating_add(n),
                None => bail!(
                    "cannot shift the offset of {topic}/{p}: the group has no committed offset there"
                ),
            },
        };
        let target = wanted.clamp(low, high);
        if target != wanted {
            eprintln!(
                "offset {wanted} is outside {topic}/{p}'s range [{low}, {high}]; using {target}"
            );
        }
        targets.insert(p, target);
    }
    Ok(targets)
}

pub(super) fn reset_offsets(
    bootstrap: &str,
    connection: &Connection,
    args: &ResetOffsetsArgs,
) -> anyhow::Result<()> {
    let consumer = group_consumer(bootstrap, connection, &args.group)?;
    let metadata = client::probe_with(&consumer, bootstrap, Some(&args.topic))?;
    let partitions = select_partitions(
        topic::find_topic(&metadata, &args.topic)?,
        &args.topic,
        args.partition,
    )?;
    // Kafka's rule (ConsumerGroupCommand): offsets are reset only while no
    // consumer could overwrite them; a group that does not exist yet may be
    // given offsets.
    if let Some(group) = find_group(&consumer, &args.group)? {
        if group.state != "Empty" {
            bail!(
                "group {} is active (state {}, {} members): offsets can only be reset \
                 while the group is inactive; stop its consumers first",
                args.group,
                group.state,
                group.members.len()
            );
        }
    }
    let keys: BTreeSet<(String, i32)> = partitions
        .iter()
        .map(|&p| (args.topic.clone(), p))
        .collect();
    let previous = committed(&consumer, &args.group, &keys)?;
    let (to, kafka_spelling) = args.target.resolve();
    let targets = target_offsets(&consumer, &args.topic, &partitions, to, &previous)?;
    // `--to` commits unless --dry-run; kafka-consumer-groups.sh's options
    // only with --execute, as there.
    let execute = !args.dry_run && (args.execute || !kafka_spelling);
    if execute {
        commit(&consumer, &args.group, &args.topic, &targets)?;
    }
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|(&p, &o)| {
            vec![
                args.topic.clone(),
                p.to_string(),
                or_dash(previous.get(&(args.topic.clone(), p)).copied()),
                o.to_string(),
            ]
        })
        .collect();
    let mut out = std::io::stdout().lock();
    write_table(
        &mut out,
        &["TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"],
        &rows,
    )?;
    if !execute && !args.dry_run {
        eprintln!(
            "dry run: nothing committed; add --execute to commit (as kafka-consumer-groups.sh)"
        );
    } else if !execute {
        eprintln!("dry run: nothing committed");
    } else {
        eprintln!(
            "reset the offsets of group {} for {} partitions of {}",
            args.group,
            targets.len(),
            args.topic
        );
    }
    Ok(())
}

/// Commit `targets` for the group, then read them back: a commit the
/// coordinator refused must not look like a success.
fn commit(
    consumer: &BaseConsumer<CliContext>,
    group: &str,
    topic: &str,
    targets: &BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    let mut tpl = TopicPartitionList::with_capacity(targets.len());
    for (&p, &o) in targets {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
    }
    consumer.commit(&tpl, CommitMode::Sync).map_err(|e| {
        match e.rdkafka_error_code() {
            // The group got members after the check above.
            Some(
                code @ (RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::RebalanceInProgress),
            ) => anyhow!(
                "cannot commit the offsets of group {group}: it became active ({code}); \
                 stop its consumers first"
            ),
            _ => anyhow!(
                "cannot commit the offsets of group {group}: {}",
                explain(&e, "OffsetCommit")
            ),
        }
    })?;
    let keys: BTreeSet<(String, i32)> = targets.keys().map(|&p| (topic.to_string(), p)).collect();
    let now = committed(consumer, group, &keys)?;
    for (&p, &o) in targets {
        let got = now.get(&(topic.to_string(), p)).copied();
        if got != Some(o) {
            bail!(
                "the commit of offset {o} for {topic}/{p} did not take effect (the group's \
                 committed offset is {})",
                or_dash(got)
            );
        }
    }
    Ok(())
}
