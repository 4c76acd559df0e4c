//! What the native reader ([`super::wire_fetch`]) and the native producer
//! ([`super::wire_produce`]) share: where and as whom they connect, and Metadata.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rivulet_protocol::wire::{self, Client};
use tokio::net::TcpStream;

const METADATA_VERSION: i16 = 9;

/// Where and as whom the native clients connect.
#[derive(Debug, Clone)]
pub struct NativeSpec {
    /// `host:port[,host:port...]`.
    pub bootstrap: String,
    pub client_id: String,
    /// Longest one request (connect, metadata, fetch, produce) may take.
    pub timeout: Duration,
}

impl NativeSpec {
    /// A connection to `addr` whose requests time out after [`NativeSpec::timeout`].
    pub async fn connect(&self, addr: &str) -> Result<Client<TcpStream>, String> {
        let client = tokio::time::timeout(self.timeout, wire::connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr} timed out"))?
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        Ok(client
            .with_client_id(Some(self.client_id.clone()))
            .with_timeout(self.timeout))
    }

    /// The bootstrap servers' addresses.
    pub fn bootstrap_servers(&self) -> impl Iterator<Item = String> + '_ {
        self.bootstrap
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }
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
