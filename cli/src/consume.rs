//! `rivulet consume TOPIC`: print records, one value per line, like
//! kafka-console-consumer.sh and `kcat -C`.
//!
//! The consumer assigns partitions itself (no group membership, nothing is
//! committed) at a starting point resolved per partition: the log start,
//! the end, an offset (clamped into the partition's range) or the first
//! record at or after a time (ListOffsets by timestamp, KIP-79). It stops
//! after `--count` records; at the end of every partition unless
//! `--follow`; or when no record came for `--timeout-ms`.
//!
//! With `--group G` it is a member of consumer group G instead (as
//! kafka-console-consumer.sh --group): the group assigns its partitions,
//! it starts at the group's committed offsets and commits the offset of
//! every record it printed (each second and at the end), so the next run
//! goes on where this one stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};

use super::client::{self, CliContext, CONNECT_TIMEOUT};
use super::rfc3339;

/// Where consumption starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    Offset(i64),
    /// Milliseconds since the epoch.
    Time(i64),
}

/// Parse `--from`: `earliest`, `latest`, an offset or an RFC 3339 time.
pub fn parse_start(s: &str) -> Result<Start, String> {
    match s.trim() {
        "earliest" | "beginning" => Ok(Start::Earliest),
        "latest" | "end" => Ok(Start::Latest),
        t if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => t
            .parse()
            .map(Start::Offset)
            .map_err(|_| format!("offset '{t}' is too large")),
        t if t.contains(':') => rfc3339::parse_millis(t).map(Start::Time),
        _ => Err(format!(
            "expected earliest, latest, an offset or an RFC 3339 time such as \
             2024-05-01T12:00:00Z, got '{s}'"
        )),
    }
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub connection: crate::wire_client::Connection,
    /// Topic to read.
    pub topic: String,
    /// Where to start: earliest, latest, an offset, or an RFC 3339 time
    /// (2024-05-01T12:00:00Z) for the first record at or after it.
    #[arg(long, value_name = "WHERE", default_value = "earliest", value_parser = parse_start)]
    pub from: Start,
    /// Read only this partition [default: all].
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    /// Stop after N records.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Print key<SEP>value instead of the value alone.
    #[arg(long)]
    pub print_key: bool,
    /// Separator between key and value for --print-key.
    #[arg(long, value_name = "SEP", default_value = "\t")]
    pub key_separator: String,
    /// Print `CreateTime:MS` (or `LogAppendTime:MS`) and a tab first, as
    /// kafka-console-consumer.sh's print.timestamp.
    #[arg(long)]
    pub print_timestamp: bool,
    /// Print `Partition:P` and a tab first (print.partition).
    #[arg(long)]
    pub print_partition: bool,
    /// Print `Offset:O` and a tab first (print.offset).
    #[arg(long)]
    pub print_offset: bool,
    /// Keep waiting for new records at the end of the partitions.
    #[arg(long)]
    pub follow: bool,
    /// Stop when no record has arrived for this long.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Read as a member of consumer group G, as kafka-console-consumer.sh
    /// --group: from the group's committed offsets (where --from earliest
    /// or latest says when it has none), committing what was printed.
    #[arg(long, value_name = "G", conflicts_with = "partition")]
    pub group: Option<String>,
    /// read_committed (librdkafka's default; records of open or aborted
    /// transactions are not shown) or read_uncommitted
    /// (kafka-console-consumer.sh's default: everything appended).
    #[arg(
        long,
        value_name = "LEVEL",
        default_value = "read_committed",
        value_parser = ["read_committed", "read_uncommitted"]
    )]
    pub isolation_level: String,
}

/// Print records of `args.topic` from the cluster at `bootstrap`.
pub fn run(bootstrap: &str, args: ConsumeArgs) -> anyhow::Result<()> {
    let mut config = client::client_config(bootstrap, &args.connection)?;
    config
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", &args.isolation_level)
        .set("fetch.wait.max.ms", "100");
    match &args.group {
        Some(group) => {
            let reset = match args.from {
                Start::Earliest => "earliest",
                Start::Latest => "latest",
                _ => bail!(
                    "--group starts at the group's committed offsets, or where --from earliest \
                     or latest says when it has none; move them with `rivulet group reset-offsets`"
                ),
            };
            // What was printed is stored, then committed every second and
            // at the end.
            config
                .set("group.id", group)
                .set("auto.offset.reset", reset)
                .set("enable.auto.commit", "true")
                .set("auto.commit.interval.ms", "1000");
        }
        // librdkafka refuses assign() without a group id; nothing is
        // committed and the group is never joined.
        None => {
            config
                .set("group.id", "rivulet-cli")
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest");
        }
    }
    let consumer: BaseConsumer<CliContext> = config
        .create_with_context(CliContext::default())
        .context("cannot create the Kafka consumer")?;
    let metadata = client::probe_with(&consumer, bootstrap, Some(&args.topic))?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == args.topic)
        .ok_or_else(|| anyhow!("topic {} does not exist", args.topic))?;
    match topic.error().map(RDKafkaErrorCode::from) {
        None => {}
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
            bail!("topic {} does not exist", args.topic)
        }
        Some(code) => bail!("topic {}: {code}", args.topic),
    }
    let partitions = select_partitions(topic, &args.topic, args.partition)?;
    let consumed = match &args.group {
        Some(group) => {
            // Where each partition starts if the group has no offset there
            // (read before joining, so never past what the reset finds).
            let mut start = BTreeMap::new();
            for &p in &partitions {
                let (low, high) = consumer
                    .fetch_watermarks(&args.topic, p, CONNECT_TIMEOUT)
                    .with_context(|| format!("cannot read the offsets of {}/{p}", args.topic))?;
                start.insert(
                    p,
                    if args.from == Start::Latest {
                        high
                    } else {
                        low
                    },
                );
            }
            consumer
                .subscribe(&[&args.topic])
                .context("cannot subscribe")?;
            let consumed = print_records(&consumer, &args, None)?;
            commit_positions(&consumer, group, &start)?;
            consumed
        }
        None => {
            let assignment = start_offsets(&consumer, &args.topic, &partitions, args.from)?;
            consumer
                .assign(&assignment)
                .context("cannot assign the partitions")?;
            print_records(&consumer, &args, Some(partitions.len()))?
        }
    };
    eprintln!("consumed {consumed} records from {}", args.topic);
    Ok(())
}

/// Commit the group member's position in each partition it was assigned:
/// after the last record printed; where it started (`start`) in a
/// partition without a committed offset where it printed nothing, so a
/// group that began at `latest` goes on from there next time, as Kafka's
/// console consumer leaves it.
fn commit_positions(
    consumer: &BaseConsumer<CliContext>,
    group: &str,
    start: &BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    let positions = consumer.position().context("cannot read the positions")?;
    let committed = consumer
        .committed(CONNECT_TIMEOUT)
        .with_context(|| format!("cannot read the offsets of group {group}"))?;
    let mut commit = TopicPartitionList::new();
    for e in positions.elements() {
        let offset = match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => {
                let has_offset = committed
                    .find_partition(e.topic(), e.partition())
                    .is_some_and(|c| matches!(c.offset(), Offset::Offset(_)));
                (!has_offset)
                    .then(|| start.get(&e.partition()).copied())
                    .flatten()
            }
        };
        if let Some(o) = offset {
            commit.add_partition_offset(e.topic(), e.partition(), Offset::Offset(o))?;
        }
    }
    if commit.count() > 0 {
        consumer
            .commit(&commit, CommitMode::Sync)
            .with_context(|| format!("cannot commit the offsets of group {group}"))?;
    }
    Ok(())
}

/// The assignment of `partitions` at the position `from` names.
fn start_offsets(
    consumer: &BaseConsumer<CliContext>,
    topic: &str,
    partitions: &[i32],
    from: Start,
) -> anyhow::Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    match from {
        Start::Earliest | Start::Latest => {
            let offset = if from == Start::Earliest {
                Offset::Beginning
            } else {
                Offset::End
            };
            for &p in partitions {
                tpl.add_partition_offset(topic, p, offset)?;
            }
        }
        Start::Offset(offset) => {
            for &p in partitions {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p, CONNECT_TIMEOUT)
                    .with_context(|| format!("cannot read the offsets of {topic}/{p}"))?;
                tpl.add_partition_offset(topic, p, Offset::Offset(offset.clamp(low, high)))?;
            }
        }
        Start::Time(millis) => {
            let mut query = TopicPartitionList::with_capacity(partitions.len());
            for &p in partitions {
                query.add_partition_offset(topic, p, Offset::Offset(millis))?;
            }
            let found = consumer
                .offsets_for_times(query, CONNECT_TIMEOUT)
                .context("cannot look up offsets by time")?;
            for e in found.elements() {
                e.error()
                    .with_context(|| format!("cannot look up {topic}/{} by time", e.partition()))?;
                // No record at or after the time: start at the end.
                let offset = match e.offset() {
                    Offset::Offset(o) => Offset::Offset(o),
                    _ => Offset::End,
                };
                tpl.add_partition_offset(topic, e.partition(), offset)?;
            }
        }
    }
    Ok(tpl)
}

/// Poll and print until a stop condition holds; the number printed.
/// `assigned` is the number of partitions read, `None` for a group member
/// (its assignment then, which stores each printed record's offset).
fn print_records(
    consumer: &BaseConsumer<CliContext>,
    args: &ConsumeArgs,
    assigned: Option<usize>,
) -> anyhow::Result<u64> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut last_record = Instant::now();
    let mut at_end = BTreeSet::new();
    let mut check_end = false;
    let mut consumed = 0;
    loop {
        if args.count.is_some_and(|n| consumed >= n) {
            break;
        }
        // Only an end reached or a quiet poll can complete the set: the
        // group's assignment is asked then, not for every record.
        if std::mem::take(&mut check_end) && !args.follow && !at_end.is_empty() {
            let reading = match assigned {
                Some(n) => n,
                // Until the group assigns partitions, none is at its end.
                None => consumer
                    .assignment()
                    .map_or(usize::MAX, |a| match a.count() {
                        0 => usize::MAX,
                        n => n,
                    }),
            };
            if at_end.len() >= reading {
                break;
            }
        }
        if idle_limit.is_some_and(|limit| last_record.elapsed() >= limit) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                check_end = true;
                flush(&mut out)?;
            }
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                last_record = Instant::now();
                let written = write_record(&mut out, args, &m);
                match written {
                    Ok(()) => {
                        consumed += 1;
                        if assigned.is_none() {
                            consumer
                                .store_offset_from_message(&m)
                                .context("cannot store the offset")?;
                        }
                    }
                    // The reader went away (`| head`): done.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(consumed),
                    Err(e) => return Err(e).context("cannot write to stdout"),
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                check_end = true;
            }
            // One connection dropping is retried by librdkafka.
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure))) => {
            }
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown))) => {
                let why = consumer.context().last_error.get().unwrap_or_default();
                bail!("lost the connection to every broker ({why})");
            }
            Some(Err(e)) => bail!("cannot consume from {}: {e}", args.topic),
        }
    }
    flush(&mut out)?;
    Ok(consumed)
}

/// One record as a line: the fields asked for in kafka-console-consumer.sh's
/// order (timestamp, partition, offset, key), then the value.
fn write_record(out: &mut impl Write, args: &ConsumeArgs, m: &impl Message) -> std::io::Result<()> {
    if args.print_timestamp {
        match m.timestamp() {
            Timestamp::CreateTime(ms) => write!(out, "CreateTime:{ms}\t")?,
            Timestamp::LogAppendTime(ms) => write!(out, "LogAppendTime:{ms}\t")?,
            Timestamp::NotAvailable => out.write_all(b"NO_TIMESTAMP\t")?,
        }
    }
    if args.print_partition {
        write!(out, "Partition:{}\t", m.partition())?;
    }
    if args.print_offset {
        write!(out, "Offset:{}\t", m.offset())?;
    }
    if args.print_key {
        out.write_all(m.key().unwrap_or_default())?;
        out.write_all(args.key_separator.as_bytes())?;
    }
    out.write_all(m.payload().unwrap_or_default())?;
    out.write_all(b"\n")
}

fn flush(out: &mut impl Write) -> anyhow::Result<()> {
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// The partitions of `topic` (named `name`) a command works on, in order:
/// all of them, or only `only`, which must exist.
pub fn select_partitions(
    topic: &rdkafka::metadata::MetadataTopic,
    name: &str,
    only: Option<i32>,
) -> anyhow::Result<Vec<i32>> {
    let mut partitions: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    if let Some(p) = only {
        if !partitions.contains(&p) {
            bail!(
                "topic {name} has no partition {p} (it has {})",
                partitions.len()
            );
        }
        partitions = vec![p];
    }
    Ok(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_accepts_names_offsets_and_times() {
        assert_eq!(parse_start("earliest"), Ok(Start::Earliest));
        assert_eq!(parse_start("latest"), Ok(Start::Latest));
        assert_eq!(parse_start("42"), Ok(Start::Offset(42)));
        assert_eq!(
            parse_start("2023-11-14T22:13:20Z"),
            Ok(Start::Time(1_700_000_000_000))
        );
        assert!(parse_start("-1").is_err());
        assert!(parse_start("99999999999999999999").is_err());
        assert!(parse_start("2023-11-14").is_err());
        assert!(parse_start("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
