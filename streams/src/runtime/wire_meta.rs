//! What the native reader ([`super::wire_fetch`]) and the native producer
//! ([`super::wire_produce`]) share: where and as whom they connect, Metadata, and
//! ListOffsets for where a native source starts.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rivulet_protocol::tls::{Connector, Stream};
use rivulet_protocol::wire::{self, Client};

const METADATA_VERSION: i16 = 9;

/// Where and as whom the native clients connect.
#[derive(Debug, Clone)]
pub struct NativeSpec {
    /// `host:port[,host:port...]`.
    pub bootstrap: String,
    pub client_id: String,
    /// Longest one request (connect, metadata, fetch, produce) may take.
    pub timeout: Duration,
    /// Plain or TLS, with SASL or without (`[job.kafka]`).
    pub connector: Connector,
}

impl NativeSpec {
    /// A connection to `addr` whose requests time out after [`NativeSpec::timeout`].
    pub async fn connect(&self, addr: &str) -> Result<Client<Stream>, String> {
        let client = tokio::time::timeout(self.timeout, wire::connect_with(&self.connector, addr))
            .await
            .map_err(|_| format!("connecting to {addr} timed out"))?
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        Ok(client
            .with_client_id(Some(self.client_id.clone()))
            .with_timeout(self.timeout))
    }

    /// The bootstrap servers' addresses.
    pub fn bootstrap_servers(&self) -> impl Iterator<Item = String> + '_ {
        bootstrap_servers(&self.bootstrap)
    }
}

/// The addresses in a `host:port[,host:port...]` list.
pub fn bootstrap_servers(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A topic as Metadata describes it.
#[derive(Debug, Default)]
pub struct TopicMeta {
    /// The topic's error, if any (its partitions are then empty).
    pub error: Option<ResponseError>,
    /// Partition index → leader (absent: no leader now, or the partition's error).
    pub leaders: HashMap<i32, i32>,
    /// How many partitions the topic has.
    pub partition_count: usize,
}

/// The brokers (node id → `host:port`) and the topics asked for.
#[derive(Debug, Default)]
pub struct ClusterMeta {
    pub brokers: HashMap<i32, String>,
    pub topics: HashMap<String, TopicMeta>,
}

/// Metadata for `topics` from the first of the bootstrap servers and `known` brokers
/// that answers; `Err` (the last failure) when none does — retriable.
/// `auto_create`: ask the broker to create missing topics (as a producer does).
pub async fn metadata(
    spec: &NativeSpec,
    known: &HashMap<i32, String>,
    topics: impl IntoIterator<Item = &str>,
    auto_create: bool,
) -> Result<ClusterMeta, String> {
    let request = MetadataRequest::default()
        .with_topics(Some(
            topics
                .into_iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.to_string()))))
                })
                .collect(),
        ))
        .with_allow_auto_topic_creation(auto_create);
    let mut last = "no bootstrap server".to_string();
    for addr in spec.bootstrap_servers().chain(known.values().cloned()) {
        let response = match spec.connect(&addr).await {
            Ok(mut c) => c.round_trip(METADATA_VERSION, &request).await,
            Err(e) => {
                last = e;
                continue;
            }
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                last = format!("metadata from {addr}: {e}");
                continue;
            }
        };
        let mut meta = ClusterMeta {
            brokers: response
                .brokers
                .iter()
                .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
                .collect(),
            topics: HashMap::new(),
        };
        for t in &response.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            let topic = TopicMeta {
                error: ResponseError::try_from_code(t.error_code),
                leaders: t
                    .partitions
                    .iter()
                    .filter(|p| p.error_code == 0 && p.leader_id.0 >= 0)
                    .map(|p| (p.partition_index, p.leader_id.0))
                    .collect(),
                partition_count: t.partitions.len(),
            };
            meta.topics.insert(name, topic);
        }
        return Ok(meta);
    }
    Err(last)
}

/// ListOffsets' timestamp for the earliest offset.
pub const EARLIEST: i64 = -2;
/// ListOffsets' timestamp for the latest offset (the last stable offset, read_committed).
pub const LATEST: i64 = -1;
const LIST_OFFSETS_VERSION: i16 = 2;
/// `read_committed`.
const READ_COMMITTED: i8 = 1;

/// ListOffsets (read_committed) of `tps` at `timestamp` on `client`, one request:
/// [`EARLIEST`], [`LATEST`] (the last stable offset) or a time (the first offset whose
/// timestamp is at or after it; -1 when there is none). The answers in `tps` order.
pub async fn list_offsets<S>(
    client: &mut Client<S>,
    tps: &[(String, i32)],
    timestamp: i64,
) -> Result<Vec<i64>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut topics: std::collections::BTreeMap<&str, Vec<ListOffsetsPartition>> =
        std::collections::BTreeMap::new();
    for (t, p) in tps {
        topics.entry(t.as_str()).or_default().push(
            ListOffsetsPartition::default()
                .with_partition_index(*p)
                .with_timestamp(timestamp),
        );
    }
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(READ_COMMITTED)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let response = client
        .round_trip(LIST_OFFSETS_VERSION, &request)
        .await
        .map_err(|e| format!("list offsets: {e}"))?;
    let mut found: HashMap<(&str, i32), &ListOffsetsPartitionResponse> = HashMap::new();
    for t in &response.topics {
        for p in &t.partitions {
            found.insert((t.name.0.as_str(), p.partition_index), p);
        }
    }
    tps.iter()
        .map(|(t, p)| {
            let answer = found
                .get(&(t.as_str(), *p))
                .ok_or_else(|| format!("{t}/{p}: not in the ListOffsets response"))?;
            match ResponseError::try_from_code(answer.error_code) {
                None => Ok(answer.offset),
                Some(e) => Err(format!("{t}/{p}: {e}")),
            }
        })
        .collect()
}

/// Where a source may start in one partition: its earliest and latest (last stable)
/// offsets, and with a start time the first offset at or after it (`None`: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionBounds {
    pub earliest: i64,
    pub latest: i64,
    pub at_time: Option<i64>,
}

/// The bounds of every partition of `topics` (Metadata, then ListOffsets at each
/// partition's leader), waiting up to the timeout for topics to exist and have leaders.
pub async fn partition_bounds(
    spec: &NativeSpec,
    topics: &[String],
    time: Option<i64>,
) -> Result<std::collections::BTreeMap<(String, i32), PartitionBounds>, String> {
    let deadline = std::time::Instant::now() + spec.timeout;
    let mut brokers = HashMap::new();
    loop {
        let last = match bounds_once(spec, &mut brokers, topics, time).await {
            Ok(b) => return Ok(b),
            Err(e) => e,
        };
        if std::time::Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn bounds_once(
    spec: &NativeSpec,
    brokers: &mut HashMap<i32, String>,
    topics: &[String],
    time: Option<i64>,
) -> Result<std::collections::BTreeMap<(String, i32), PartitionBounds>, String> {
    let meta = metadata(spec, brokers, topics.iter().map(String::as_str), false).await?;
    *brokers = meta.brokers;
    let mut by_leader: HashMap<String, Vec<(String, i32)>> = HashMap::new();
    for topic in topics {
        let t = meta
            .topics
            .get(topic)
            .ok_or_else(|| format!("topic {topic} is not available: not in metadata"))?;
        if let Some(e) = t.error {
            return Err(format!("topic {topic} is not available: {e}"));
        }
        if t.partition_count == 0 {
            return Err(format!("topic {topic} is not available: no partitions"));
        }
        for p in 0..t.partition_count as i32 {
            let addr = t
                .leaders
                .get(&p)
                .and_then(|l| brokers.get(l))
                .ok_or_else(|| format!("{topic}/{p} has no leader"))?;
            by_leader
                .entry(addr.clone())
                .or_default()
                .push((topic.clone(), p));
        }
    }
    let mut out = std::collections::BTreeMap::new();
    for (addr, tps) in by_leader {
        let mut client = spec.connect(&addr).await?;
        let earliest = list_offsets(&mut client, &tps, EARLIEST).await?;
        let latest = list_offsets(&mut client, &tps, LATEST).await?;
        let at_time = match time {
            Some(ms) => list_offsets(&mut client, &tps, ms).await?,
            None => vec![-1; tps.len()],
        };
        for (i, tp) in tps.into_iter().enumerate() {
            let bounds = PartitionBounds {
                earliest: earliest[i],
                latest: latest[i],
                at_time: (time.is_some() && at_time[i] >= 0).then_some(at_time[i]),
            };
            out.insert(tp, bounds);
        }
    }
    Ok(out)
}
