//! `rivulet partition reassign`: kafka-reassign-partitions.sh's job for one
//! partition through Kafka's AlterPartitionReassignments and
//! ListPartitionReassignments APIs — move a partition to `--replicas`
//! (new replicas copy the log, then leadership and the old replicas move),
//! `--cancel` an ongoing move, or show what is moving (`--status`).
//!
//! `--throttle BYTES_PER_SEC` bounds the copy as `--execute --throttle`
//! does: the cluster-wide `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate`, and the topic's
//! `leader.replication.throttled.replicas` (the partition's current
//! replicas) and `follower.replication.throttled.replicas` (the ones being
//! added), appended to what the topic lists. `--status`, like `--verify`,
//! removes them once nothing is moving: the topic's lists for `--topic`, the
//! cluster-wide rates when no reassignment is left at all.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rivulet_protocol::tls::Stream;
use rivulet_protocol::wire::Client;

pub(crate) mod throttle;

#[derive(Debug, Subcommand)]
pub enum PartitionCommand {
    /// Move a partition's replicas, cancel a move, or show ongoing moves.
    Reassign(ReassignArgs),
}

#[derive(Debug, Args)]
pub struct ReassignArgs {
    #[arg(long, required_unless_present = "status")]
    pub topic: Option<String>,
    #[arg(long, required_unless_present = "status")]
    pub partition: Option<i32>,
    /// The new replicas, preferred leader first: `2,3,1`.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["cancel", "status"])]
    pub replicas: Vec<i32>,
    /// Cancel the partition's ongoing reassignment (back to its old replicas).
    #[arg(long, conflicts_with = "status")]
    pub cancel: bool,
    /// List ongoing reassignments (all, or --topic/--partition's); once none
    /// is left, remove the throttles `--throttle` set.
    #[arg(long)]
    pub status: bool,
    /// Bound the copy to this many bytes per second per node (leader and
    /// follower side), as kafka-reassign-partitions.sh --throttle.
    #[arg(long, value_name = "BYTES_PER_SEC", conflicts_with_all = ["cancel", "status"])]
    pub throttle: Option<u64>,
    #[command(flatten)]
    pub connection: crate::wire_client::Connection,
}

pub fn run(bootstrap: &str, command: PartitionCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match command {
        PartitionCommand::Reassign(a) => runtime.block_on(reassign(bootstrap, a)),
    }
}

pub(crate) fn describe(code: i16) -> String {
    ResponseError::try_from_code(code).map_or_else(|| format!("error {code}"), |e| format!("{e:?}"))
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// One partition's move: topic, partition, target replicas (`None`: cancel).
pub(crate) type Move = (String, i32, Option<Vec<i32>>);

/// AlterPartitionReassignments for `moves`: per partition, `Err(message)`
/// when refused.
pub(crate) async fn alter(
    client: &mut Client<Stream>,
    moves: &[Move],
) -> anyhow::Result<Vec<(String, i32, Result<(), String>)>> {
    let topics = moves
        .iter()
        .map(|(t, p, r)| {
            ReassignableTopic::default()
                .with_name(topic_name(t))
                .with_partitions(vec![ReassignablePartition::default()
                    .with_partition_index(*p)
                    .with_replicas(
                        r.as_ref().map(|r| r.iter().map(|b| BrokerId(*b)).collect()),
                    )])
        })
        .collect();
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(topics);
    let resp = client
        .round_trip(0, &req)
        .await
        .context("AlterPartitionReassignments failed")?;
    if resp.error_code != 0 {
        bail!(
            "reassignment refused: {}{}",
            describe(resp.error_code),
            resp.error_message
                .map(|m| format!(": {}", m.as_str()))
                .unwrap_or_default()
        );
    }
    Ok(resp
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                let r = if p.error_code == 0 {
                    Ok(())
                } else {
                    Err(format!(
                        "{}{}",
                        describe(p.error_code),
                        p.error_message
                            .as_ref()
                            .map(|m| format!(": {}", m.as_str()))
                            .unwrap_or_default()
                    ))
                };
                (t.name.to_string(), p.partition_index, r)
            })
        })
        .collect())
}

/// One ongoing reassignment: topic, partition, replicas, adding, removing.
pub(crate) type Ongoing = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// ListPartitionReassignments: every ongoing one.
pub(crate) async fn ongoing(client: &mut Client<Stream>) -> anyhow::Result<Vec<Ongoing>> {
    let resp = client
        .round_trip(
            0,
            &ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000),
        )
        .await
        .context("ListPartitionReassignments failed")?;
    if resp.error_code != 0 {
        bail!(
            "listing reassignments refused: {}",
            describe(resp.error_code)
        );
    }
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    Ok(resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    ids(&p.replicas),
                    ids(&p.adding_replicas),
                    ids(&p.removing_replicas),
                )
            })
        })
        .collect())
}

fn join(v: &[i32]) -> String {
    v.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

async fn reassign(bootstrap: &str, a: ReassignArgs) -> anyhow::Result<()> {
    let mut client = crate::wire_client::connect(bootstrap, &a.connection).await?;
    if a.status {
        let list = ongoing(&mut client).await?;
        let mut shown = 0;
        for (t, p, replicas, adding, removing) in &list {
            if a.topic.as_ref().is_some_and(|x| x != t) || a.partition.is_some_and(|x| x != *p) {
                continue;
            }
            shown += 1;
            println!(
                "{t}-{p}: replicas {} adding {} removing {}",
                join(replicas),
                join(adding),
                join(removing)
            );
        }
        if shown == 0 {
            println!("no reassignment in progress");
        }
        let topic_idle = a
            .topic
            .as_ref()
            .is_some_and(|x| list.iter().all(|(t, ..)| t != x));
        let topics: Vec<&str> = a
            .topic
            .as_deref()
            .filter(|_| topic_idle)
            .into_iter()
            .collect();
        let cleared = throttle::clear(&mut client, &topics, list.is_empty()).await?;
        if cleared {
            println!("throttles removed");
        }
        return Ok(());
    }
    let (Some(topic), Some(partition)) = (a.topic, a.partition) else {
        bail!("--topic and --partition are required");
    };
    let target = if a.cancel {
        None
    } else if a.replicas.is_empty() {
        bail!("give --replicas (or --cancel, --status)");
    } else {
        Some(a.replicas)
    };
    if let (Some(rate), Some(replicas)) = (a.throttle, &target) {
        let current = throttle::replicas_of(&mut client, &topic, partition).await?;
        throttle::set(
            &mut client,
            &[(&topic, partition, &current, replicas)],
            rate,
        )
        .await?;
        println!("{topic}-{partition}: replication throttled to {rate} B/s per node");
    }
    let results = alter(&mut client, &[(topic.clone(), partition, target.clone())]).await?;
    for (t, p, r) in results {
        match r {
            Ok(()) if target.is_none() => println!("{t}-{p}: reassignment cancelled"),
            Ok(()) => println!(
                "{t}-{p}: reassignment to {} started",
                join(target.as_deref().unwrap_or_default())
            ),
            Err(e) => bail!("{t}-{p}: {e}"),
        }
    }
    Ok(())
}
