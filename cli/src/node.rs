//! `rivulet node drain N`: decommission a broker by moving every replica
//! off it first. Each partition with a replica on N is reassigned (Kafka's
//! AlterPartitionReassignments) to the same replicas with N replaced by the
//! live broker holding the fewest replicas among those not already in the
//! partition, so the replication factor and the leader order stay; the
//! command then waits until no reassignment is left and no partition lists
//! N, and reports what moved. Partitions that cannot keep their
//! replication factor without N (no spare live broker) are reported and
//! make the command fail; the others still move.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use kafka_protocol::messages::MetadataRequest;
use rivulet_protocol::tls::Stream;
use rivulet_protocol::wire::Client;

use crate::partition::{self, Move};

/// A partition and its replicas: topic, partition, replicas.
type Placement = (String, i32, Vec<i32>);

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Move every replica off a broker (before removing it), and wait.
    Drain(DrainArgs),
    /// Show or change the dynamic broker configs (topic defaults such as
    /// log.retention.ms), cluster-wide or of one node, as kafka-configs.sh
    /// --entity-type brokers.
    Config(crate::node_config::ConfigArgs),
}

#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The broker's node id.
    pub node: i32,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Bound the copies to this many bytes per second per node (as
    /// kafka-reassign-partitions.sh --throttle); removed once drained.
    #[arg(long, value_name = "BYTES_PER_SEC")]
    pub throttle: Option<u64>,
    #[command(flatten)]
    pub connection: crate::wire_client::Connection,
}

pub fn run(bootstrap: &str, command: NodeCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match command {
        NodeCommand::Drain(a) => runtime.block_on(drain(bootstrap, a)),
        NodeCommand::Config(a) => runtime.block_on(crate::node_config::run(bootstrap, a)),
    }
}

/// Live brokers and `(topic, partition, replicas)` from a Metadata request.
async fn layout(client: &mut Client<Stream>) -> anyhow::Result<(Vec<i32>, Vec<Placement>)> {
    let md = client
        .round_trip(12, &MetadataRequest::default().with_topics(None))
        .await
        .context("Metadata failed")?;
    let brokers = md.brokers.iter().map(|b| b.node_id.0).collect();
    let mut parts = Vec::new();
    for t in &md.topics {
        let Some(name) = &t.name else { continue };
        for p in &t.partitions {
            parts.push((
                name.to_string(),
                p.partition_index,
                p.replica_nodes.iter().map(|b| b.0).collect(),
            ));
        }
    }
    Ok((brokers, parts))
}

/// The moves that take `node` out of every partition, and the partitions
/// that have no spare live broker to take its place.
pub fn plan(node: i32, live: &[i32], partitions: &[Placement]) -> (Vec<Move>, Vec<(String, i32)>) {
    let mut load: BTreeMap<i32, usize> = live
        .iter()
        .filter(|b| **b != node)
        .map(|b| (*b, 0))
        .collect();
    for (_, _, replicas) in partitions {
        for r in replicas {
            if let Some(n) = load.get_mut(r) {
                *n += 1;
            }
        }
    }
    let mut moves = Vec::new();
    let mut stuck = Vec::new();
    for (topic, partition, replicas) in partitions {
        if !replicas.contains(&node) {
            continue;
        }
        let spare = load
            .iter()
            .filter(|(b, _)| !replicas.contains(b))
            .min_by_key(|(b, n)| (**n, **b))
            .map(|(b, _)| *b);
        let Some(spare) = spare else {
            stuck.push((topic.clone(), *partition));
            continue;
        };
        *load.entry(spare).or_default() += 1;
        let target = replicas
            .iter()
            .map(|r| if *r == node { spare } else { *r })
            .collect();
        moves.push((topic.clone(), *partition, Some(target)));
    }
    (moves, stuck)
}

async fn drain(bootstrap: &str, a: DrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut client = crate::wire_client::connect(bootstrap, &a.connection).await?;
    let (live, partitions) = layout(&mut client).await?;
    let (moves, mut stuck) = plan(a.node, &live, &partitions);
    let mut refused = Vec::new();
    if let Some(rate) = a.throttle.filter(|_| !moves.is_empty()) {
        let throttled: Vec<_> = moves
            .iter()
            .filter_map(|(t, p, target)| {
                let now = partitions.iter().find(|(pt, pp, _)| pt == t && pp == p)?;
                Some((t.as_str(), *p, now.2.as_slice(), target.as_deref()?))
            })
            .collect();
        partition::throttle::set(&mut client, &throttled, rate).await?;
        println!("replication throttled to {rate} B/s per node");
    }
    if !moves.is_empty() {
        for (t, p, r) in partition::alter(&mut client, &moves).await? {
            match r {
                Ok(()) => println!("{t}-{p}: moving off node {}", a.node),
                Err(e) => refused.push(format!("{t}-{p}: {e}")),
            }
        }
    }
    let deadline = started + Duration::from_secs(a.timeout);
    loop {
        let (_, now) = layout(&mut client).await?;
        let left = now.iter().filter(|(_, _, r)| r.contains(&a.node)).count();
        let moving = partition::ongoing(&mut client).await?.len();
        if left <= stuck.len() + refused.len() && moving == 0 {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "node {} still hosts {left} replica(s) after {}s ({moving} reassignment(s) in progress)",
                a.node,
                a.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if a.throttle.is_some() && !moves.is_empty() {
        let topics: BTreeSet<&str> = moves.iter().map(|(t, ..)| t.as_str()).collect();
        let topics: Vec<&str> = topics.into_iter().collect();
        partition::throttle::clear(&mut client, &topics, true).await?;
        println!("throttles removed");
    }
    let moved = moves.len() - refused.len();
    println!(
        "drained node {}: {moved} partition(s) moved in {:.1}s",
        a.node,
        started.elapsed().as_secs_f64()
    );
    if !stuck.is_empty() || !refused.is_empty() {
        for (t, p) in stuck.drain(..) {
            eprintln!(
                "{t}-{p}: no other live broker can take node {}'s replica",
                a.node
            );
        }
        for r in &refused {
            eprintln!("{r}");
        }
        bail!("node {} still hosts replicas", a.node);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_replaces_the_node_by_the_least_loaded_spare_and_keeps_order() {
        let parts = vec![
            ("a".to_string(), 0, vec![3, 1]),
            ("a".to_string(), 1, vec![1, 2]),
            ("b".to_string(), 0, vec![3]),
            ("c".to_string(), 0, vec![1, 2, 3]),
        ];
        let (moves, stuck) = plan(3, &[1, 2, 3], &parts);
        assert_eq!(
            moves,
            vec![
                ("a".to_string(), 0, Some(vec![2, 1])),
                ("b".to_string(), 0, Some(vec![1])),
            ]
        );
        assert_eq!(stuck, vec![("c".to_string(), 0)]);
    }
}
