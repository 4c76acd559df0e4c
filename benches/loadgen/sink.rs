//! The in-process sink: a minimal Kafka-protocol server on loopback,
//! one thread per connection, that keeps produced batches in memory as
//! they arrived (no copy) and serves them back to Fetch. Anything it
//! does not understand closes the connection with a message on stderr.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader, RequestKind, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError as E;
use rivulet_protocol::wire::{self, WireError, MIN_REQUEST_SIZE};

const NODE_ID: i32 = 1;
const MAX_FRAME: usize = 100 << 20;
/// The APIs served, at the versions Rivulet serves them.
const APIS: [ApiKey; 4] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::Metadata,
    ApiKey::ApiVersions,
];
/// Size of a record batch header up to and including its record count.
const BATCH_HEADER: usize = 61;

/// One partition: each batch as the producer sent it, zero-copy slices
/// of the request frames, with the base offset assigned to it.
#[derive(Default)]
struct Log {
    batches: Vec<(i64, Bytes)>,
    next_offset: i64,
}

impl Log {
    /// Append the batches in `records`; the first offset, or why not.
    fn append(&mut self, records: &Bytes) -> Result<i64, &'static str> {
        let first = self.next_offset;
        let mut next = first;
        let mut pos = 0;
        let mut appended = Vec::new();
        while pos < records.len() {
            let h = records
                .get(pos..pos + BATCH_HEADER)
                .ok_or("truncated batch header")?;
            let len = i32::from_be_bytes([h[8], h[9], h[10], h[11]]);
            let delta = i32::from_be_bytes([h[23], h[24], h[25], h[26]]);
            let size = 12 + len.max(0) as usize;
            if len < (BATCH_HEADER - 12) as i32 || delta < 0 || pos + size > records.len() {
                return Err("malformed record batch");
            }
            appended.push((next, records.slice(pos..pos + size)));
            next += delta as i64 + 1;
            pos += size;
        }
        if appended.is_empty() {
            return Err("no record batches");
        }
        self.batches.append(&mut appended);
        self.next_offset = next;
        Ok(first)
    }

    /// Whole batches from the one holding `offset`, at least one, within
    /// `max` bytes otherwise; base offsets patched into the copy (the
    /// batch CRC does not cover them).
    fn read(&self, offset: i64, max: usize) -> Bytes {
        if offset < 0 || offset >= self.next_offset {
            return Bytes::new();
        }
        let i = self.batches.partition_point(|(b, _)| *b <= offset).max(1) - 1;
        let mut end = i;
        let mut len = 0;
        for (_, batch) in &self.batches[i..] {
            if end > i && len + batch.len() > max {
                break;
            }
            len += batch.len();
            end += 1;
        }
        let mut out = BytesMut::with_capacity(len);
        for (base, batch) in &self.batches[i..end] {
            let at = out.len();
            out.extend_from_slice(batch);
            out[at..at + 8].copy_from_slice(&base.to_be_bytes());
        }
        out.freeze()
    }
}

struct Shared {
    topic: String,
    port: u16,
    log: Mutex<Log>,
    appended: Condvar,
}

/// A running sink; stops accepting when dropped (open connections end
/// when their clients close them).
pub struct Sink {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Sink {
    /// Listen on a free loopback port; Metadata for all topics lists `topic`.
    pub fn start(topic: &str) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("sink bind");
        let addr = listener.local_addr().expect("sink addr");
        let shared = Arc::new(Shared {
            topic: topic.to_string(),
            port: addr.port(),
            log: Mutex::new(Log::default()),
            appended: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || {
                    if let Err(e) = serve(stream, &shared) {
                        // A client closing with unread data resets.
                        let closed = match &e {
                            WireError::Eof => true,
                            WireError::Io(e) => matches!(
                                e.kind(),
                                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                            ),
                            _ => false,
                        };
                        if !closed {
                            eprintln!("loadgen sink: closing a connection: {e}");
                        }
                    }
                });
            }
        });
        Sink {
            addr,
            stop,
            accept: Some(accept),
        }
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn codec(what: &str, key: ApiKey, version: i16, e: impl std::fmt::Display) -> io::Error {
    bad(format!("{what} {key:?} v{version}: {e}"))
}

fn serve(stream: TcpStream, shared: &Shared) -> Result<(), WireError> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(1 << 20, stream.try_clone()?);
    let mut writer = stream;
    loop {
        let frame = wire::read_frame_blocking(&mut reader, MIN_REQUEST_SIZE, MAX_FRAME)?;
        if let Some(response) = handle(frame, shared)? {
            writer.write_all(&response)?;
        }
    }
}

fn versions() -> Vec<ApiVersion> {
    APIS.iter()
        .filter_map(|k| {
            let r = rivulet_broker::api::supported(*k)?;
            Some(
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(r.min)
                    .with_max_version(r.max),
            )
        })
        .collect()
}

fn handle(mut frame: Bytes, shared: &Shared) -> io::Result<Option<BytesMut>> {
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let key = ApiKey::try_from(raw_key).map_err(|_| bad(format!("API key {raw_key}")))?;
    let range = APIS
        .contains(&key)
        .then(|| rivulet_broker::api::supported(key))
        .flatten()
        .ok_or_else(|| bad(format!("unsupported API {key:?}")))?;
    if key == ApiKey::ApiVersions && version > range.max {
        let body = ApiVersionsResponse::default()
            .with_error_code(E::UnsupportedVersion.code())
            .with_api_keys(versions());
        return encode(key, 0, correlation_id, &ResponseKind::ApiVersions(body)).map(Some);
    }
    if version < range.min || version > range.max {
        return Err(bad(format!("{key:?} v{version}")));
    }
    RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|e| codec("decode", key, version, e))?;
    let request = RequestKind::decode(key, &mut frame, version)
        .map_err(|e| codec("decode", key, version, e))?;
    let response = match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(
            ApiVersionsResponse::default()
                .with_api_keys(versions())
                .with_finalized_features_epoch(-1),
        ),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata(shared, r)),
        RequestKind::Produce(r) => {
            let acks = r.acks;
            let resp = produce(shared, r);
            if acks == 0 {
                return Ok(None);
            }
            ResponseKind::Produce(resp)
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch(shared, r)),
        _ => return Err(bad(format!("unexpected {key:?}"))),
    };
    encode(key, version, correlation_id, &response).map(Some)
}

fn encode(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> io::Result<BytesMut> {
    let header_version = if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(version)
    };
    wire::encode_response(key, version, header_version, correlation_id, 256, |out| {
        response.encode(out, version).map_err(|e| e.to_string())
    })
    .map_err(|e| bad(e.to_string()))
}

fn metadata(shared: &Shared, req: MetadataRequest) -> MetadataResponse {
    let names: Vec<TopicName> = match req.topics {
        Some(t) if !t.is_empty() => t.into_iter().filter_map(|t| t.name).collect(),
        _ => vec![TopicName(StrBytes::from_string(shared.topic.clone()))],
    };
    let partition = MetadataResponsePartition::default()
        .with_leader_id(BrokerId(NODE_ID))
        .with_replica_nodes(vec![BrokerId(NODE_ID)])
        .with_isr_nodes(vec![BrokerId(NODE_ID)]);
    let topics = names
        .into_iter()
        .map(|name| {
            MetadataResponseTopic::default()
                .with_name(Some(name))
                .with_topic_id(uuid::Uuid::from_u128(1))
                .with_partitions(vec![partition.clone()])
                .with_topic_authorized_operations(i32::MIN)
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(NODE_ID))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(shared.port as i32)])
        .with_cluster_id(Some(StrBytes::from_static_str("loadgen-sink")))
        .with_controller_id(BrokerId(NODE_ID))
        .with_topics(topics)
        .with_cluster_authorized_operations(i32::MIN)
}

fn produce(shared: &Shared, req: ProduceRequest) -> ProduceResponse {
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        let parts = t
            .partition_data
            .into_iter()
            .map(|p| {
                let r = PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_log_append_time_ms(-1);
                let appended = match (&p.records, p.index) {
                    (Some(records), 0) => shared.log.lock().expect("sink log").append(records),
                    _ => Err("no records, or not partition 0"),
                };
                match appended {
                    Ok(base) => r.with_base_offset(base),
                    Err(_) => r
                        .with_error_code(E::CorruptMessage.code())
                        .with_base_offset(-1),
                }
            })
            .collect();
        topics.push(
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_partition_responses(parts),
        );
    }
    shared.appended.notify_all();
    ProduceResponse::default().with_responses(topics)
}

fn fetch(shared: &Shared, req: FetchRequest) -> FetchResponse {
    let wait = Duration::from_millis(req.max_wait_ms.clamp(0, 30_000) as u64);
    let deadline = Instant::now() + wait;
    let mut log = shared.log.lock().expect("sink log");
    loop {
        let ready = req
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| p.fetch_offset < log.next_offset);
        let now = Instant::now();
        if ready || now >= deadline {
            break;
        }
        log = shared
            .appended
            .wait_timeout(log, deadline - now)
            .expect("sink log")
            .0;
    }
    let mut remaining = req.max_bytes.max(0) as usize;
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let d = PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_preferred_read_replica(BrokerId(-1))
                        .with_aborted_transactions((req.isolation_level == 1).then(Vec::new));
                    if p.partition != 0 {
                        return d
                            .with_error_code(E::UnknownTopicOrPartition.code())
                            .with_high_watermark(-1)
                            .with_last_stable_offset(-1)
                            .with_log_start_offset(-1)
                            .with_records(Some(Bytes::new()));
                    }
                    let limit = (p.partition_max_bytes.max(0) as usize).min(remaining);
                    let records = log.read(p.fetch_offset, limit);
                    remaining = remaining.saturating_sub(records.len());
                    d.with_high_watermark(log.next_offset)
                        .with_last_stable_offset(log.next_offset)
                        .with_records(Some(records))
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(parts)
        })
        .collect();
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(topics)
}
