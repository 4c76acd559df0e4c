//! `rivulet leader elect`: kafka-leader-election.sh's job through Kafka's
//! ElectLeaders API — a preferred election (leadership back to the first
//! replica) or an unclean one (a leaderless partition led by a live
//! replica outside the ISR, accepting lost records) for one partition or
//! for every partition of the cluster.

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::partition::describe;

#[derive(Debug, Subcommand)]
pub enum LeaderCommand {
    /// Elect leaders: preferred replicas (default) or unclean.
    Elect(ElectArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ElectionKind {
    Preferred,
    Unclean,
}

#[derive(Debug, Args)]
pub struct ElectArgs {
    /// Only this topic's partition (with --partition); every partition by default.
    #[arg(long, requires = "partition")]
    pub topic: Option<String>,
    #[arg(long, requires = "topic")]
    pub partition: Option<i32>,
    #[arg(long = "type", value_enum, default_value = "preferred")]
    pub kind: ElectionKind,
    #[command(flatten)]
    pub connection: crate::wire_client::Connection,
}

pub fn run(bootstrap: &str, command: LeaderCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match command {
        LeaderCommand::Elect(a) => runtime.block_on(elect(bootstrap, a)),
    }
}

async fn elect(bootstrap: &str, a: ElectArgs) -> anyhow::Result<()> {
    let mut client = crate::wire_client::connect(bootstrap, &a.connection).await?;
    let partitions = match (a.topic, a.partition) {
        (Some(t), Some(p)) => Some(vec![TopicPartitions::default()
            .with_topic(TopicName(StrBytes::from_string(t)))
            .with_partitions(vec![p])]),
        _ => None,
    };
    let req = ElectLeadersRequest::default()
        .with_election_type(match a.kind {
            ElectionKind::Preferred => 0,
            ElectionKind::Unclean => 1,
        })
        .with_topic_partitions(partitions)
        .with_timeout_ms(30_000);
    let resp = client
        .round_trip(2, &req)
        .await
        .context("ElectLeaders failed")?;
    if resp.error_code != 0 {
        bail!("leader election refused: {}", describe(resp.error_code));
    }
    let mut failed = 0;
    let not_needed = ResponseError::ElectionNotNeeded.code();
    let mut any = false;
    for t in &resp.replica_election_results {
        for p in &t.partition_result {
            any = true;
            let name = format!("{}-{}", t.topic.as_str(), p.partition_id);
            match p.error_code {
                0 => println!("{name}: leader elected"),
                c if c == not_needed => println!("{name}: election not needed"),
                c => {
                    failed += 1;
                    println!("{name}: {}", describe(c));
                }
            }
        }
    }
    if !any {
        println!("no election needed");
    }
    if failed > 0 {
        bail!("{failed} partition(s) got no new leader");
    }
    Ok(())
}
