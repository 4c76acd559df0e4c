//! Seed frames: a sample body for every API version served (from the
//! pre-pass table, with and without tagged fields), and typed requests with
//! real names, records and groups for the main APIs at every version served.
//!
//! Frames are built with `rivulet_protocol::wire` (without their size
//! prefix: the harness takes what follows it).

use super::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;
use rivulet_protocol::wire;

fn s(v: &'static str) -> StrBytes {
    StrBytes::from_static_str(v)
}

fn topic() -> TopicName {
    TopicName(s(TOPIC))
}

fn group() -> GroupId {
    GroupId(s(GROUP))
}

pub fn create_topics() -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(topic())
            .with_num_partitions(TOPIC_PARTITIONS)
            .with_replication_factor(1)
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(s("cleanup.policy"))
                    .with_value(Some(s("compact,delete"))),
            ])])
}

pub fn produce(acks: i16) -> ProduceRequest {
    let mut b = RecordBatchBuilder::new(Compression::Lz4);
    b.push(1_000, Some(b"k"), Some(b"v"), &[("h", Some(b"x"))]);
    b.push(1_001, Some(b"k"), None, &[]);
    let batch = b.build().unwrap_or_default();
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(1_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic())
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch))),
            ])])
}

fn fetch() -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic())
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])])
}

fn metadata() -> MetadataRequest {
    MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic())),
    ]))
}

fn list_offsets() -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(topic())
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(1_000),
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(1)
                    .with_timestamp(-1),
            ])])
}

fn join_group() -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group())
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(b"\0\x01\0\0\0\x01\0\x04fuzz"))])
}

fn sync_group() -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(group())
        .with_generation_id(1)
        .with_member_id(s("fuzz-member"))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s("fuzz-member"))
                .with_assignment(Bytes::from_static(b"\0\x01")),
        ])
}

fn heartbeat() -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(group())
        .with_generation_id(1)
        .with_member_id(s("fuzz-member"))
}

fn offset_commit() -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(group())
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic())
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1)
                        .with_committed_metadata(Some(s("m"))),
                ]),
        ])
}

fn offset_fetch(version: i16) -> OffsetFetchRequest {
    if version >= 8 {
        return OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(group())
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopics::default()
                        .with_name(topic())
                        .with_partition_indexes(vec![0, 1]),
                ])),
        ]);
    }
    OffsetFetchRequest::default()
        .with_group_id(group())
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic())
                .with_partition_indexes(vec![0, 1]),
        ]))
}

fn find_coordinator(version: i16) -> FindCoordinatorRequest {
    let r = FindCoordinatorRequest::default();
    if version >= 4 {
        r.with_coordinator_keys(vec![s(GROUP)])
    } else {
        r.with_key(s(GROUP))
    }
}

fn describe_configs(_version: i16) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(TOPIC)),
    ])
}

fn init_producer_id(_version: i16) -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// The transactional id the transaction seeds use.
const TXN_ID: &str = "fuzz-tx";

fn txn_id() -> TransactionalId {
    TransactionalId(s(TXN_ID))
}

fn init_transactional(_version: i16) -> InitProducerIdRequest {
    init_producer_id(0).with_transactional_id(Some(txn_id()))
}

fn find_txn_coordinator(version: i16) -> FindCoordinatorRequest {
    let r = FindCoordinatorRequest::default().with_key_type(1);
    if version >= 4 {
        r.with_coordinator_keys(vec![s(TXN_ID)])
    } else {
        r.with_key(s(TXN_ID))
    }
}

fn txn_topics() -> Vec<add_partitions_to_txn_request::AddPartitionsToTxnTopic> {
    vec![
        add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
            .with_name(topic())
            .with_partitions(vec![0, 1]),
    ]
}

fn add_partitions_to_txn(version: i16) -> AddPartitionsToTxnRequest {
    if version <= 3 {
        return AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txn_id())
            .with_v3_and_below_producer_id(ProducerId(0))
            .with_v3_and_below_producer_epoch(0)
            .with_v3_and_below_topics(txn_topics());
    }
    AddPartitionsToTxnRequest::default().with_transactions(vec![
        add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
            .with_transactional_id(txn_id())
            .with_producer_id(ProducerId(0))
            .with_producer_epoch(0)
            .with_verify_only(true)
            .with_topics(txn_topics()),
    ])
}

fn add_offsets_to_txn(_version: i16) -> AddOffsetsToTxnRequest {
    AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id())
        .with_producer_id(ProducerId(0))
        .with_producer_epoch(0)
        .with_group_id(group())
}

fn txn_offset_commit(_version: i16) -> TxnOffsetCommitRequest {
    TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id())
        .with_group_id(group())
        .with_producer_id(ProducerId(0))
        .with_producer_epoch(0)
        .with_generation_id(-1)
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(topic())
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1),
                ]),
        ])
}

fn end_txn(_version: i16) -> EndTxnRequest {
    EndTxnRequest::default()
        .with_transactional_id(txn_id())
        .with_producer_id(ProducerId(0))
        .with_producer_epoch(0)
        .with_committed(true)
}

fn write_txn_markers(_version: i16) -> WriteTxnMarkersRequest {
    WriteTxnMarkersRequest::default().with_markers(vec![
        write_txn_markers_request::WritableTxnMarker::default()
            .with_producer_id(ProducerId(0))
            .with_producer_epoch(0)
            .with_transaction_result(false)
            .with_coordinator_epoch(0)
            .with_topics(vec![
                write_txn_markers_request::WritableTxnMarkerTopic::default()
                    .with_name(topic())
                    .with_partition_indexes(vec![0]),
            ]),
    ])
}

fn describe_transactions(_version: i16) -> DescribeTransactionsRequest {
    DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id()])
}

fn describe_producers(_version: i16) -> DescribeProducersRequest {
    DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(topic())
            .with_partition_indexes(vec![0, 1]),
    ])
}

/// A transactional batch of producer 0 (the verification with the
/// coordinator refuses it unless a fuzzed transaction made it valid).
fn produce_transactional(_version: i16) -> ProduceRequest {
    let mut b = RecordBatchBuilder::new(Compression::None)
        .producer(0, 0, 0)
        .transactional(true);
    b.push(1_000, Some(b"k"), Some(b"v"), &[]);
    let batch = b.build().unwrap_or_default();
    produce(1)
        .with_transactional_id(Some(txn_id()))
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic())
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch))),
            ])])
}

fn add<R: Encodable>(
    out: &mut Vec<(String, Vec<u8>)>,
    key: ApiKey,
    name: &str,
    body: impl Fn(i16) -> R,
    every_version: bool,
) {
    let Some(range) = api::supported(key) else {
        return;
    };
    let versions: Vec<i16> = if every_version {
        (range.min..=range.max).collect()
    } else {
        vec![range.max]
    };
    for v in versions {
        let f = frame(key, v, &body(v));
        if !f.is_empty() {
            out.push((format!("typed-{key:?}-{name}-v{v}"), f));
        }
    }
}

pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (key, min, max) in api::SUPPORTED {
        for v in *min..=*max {
            let plain = request_bounds::sample::sample(*key as i16, v, false);
            let tagged = request_bounds::sample::sample(*key as i16, v, true);
            if let Some(p) = &plain {
                out.push((
                    format!("sample-{key:?}-v{v}"),
                    frame_with_body(*key, v, &p.body),
                ));
            }
            if let (Some(p), Some(t)) = (&plain, &tagged) {
                if p.body != t.body {
                    out.push((
                        format!("sample-{key:?}-v{v}-tagged"),
                        frame_with_body(*key, v, &t.body),
                    ));
                }
            }
        }
    }
    add(&mut out, ApiKey::Produce, "acks1", |_| produce(1), true);
    add(
        &mut out,
        ApiKey::Produce,
        "acks-all",
        |_| produce(-1),
        false,
    );
    add(&mut out, ApiKey::Produce, "acks0", |_| produce(0), false);
    add(&mut out, ApiKey::Fetch, "p0", |_| fetch(), true);
    add(&mut out, ApiKey::Metadata, "fuzz", |_| metadata(), true);
    add(
        &mut out,
        ApiKey::ListOffsets,
        "p0p1",
        |_| list_offsets(),
        true,
    );
    add(
        &mut out,
        ApiKey::CreateTopics,
        "fuzz",
        |_| create_topics(),
        true,
    );
    add(&mut out, ApiKey::JoinGroup, "new", |_| join_group(), true);
    add(
        &mut out,
        ApiKey::SyncGroup,
        "member",
        |_| sync_group(),
        true,
    );
    add(&mut out, ApiKey::Heartbeat, "member", |_| heartbeat(), true);
    add(
        &mut out,
        ApiKey::OffsetCommit,
        "p0",
        |_| offset_commit(),
        true,
    );
    add(&mut out, ApiKey::OffsetFetch, "p0p1", offset_fetch, true);
    add(
        &mut out,
        ApiKey::FindCoordinator,
        "group",
        find_coordinator,
        true,
    );
    add(
        &mut out,
        ApiKey::DescribeConfigs,
        "topic",
        describe_configs,
        true,
    );
    add(
        &mut out,
        ApiKey::InitProducerId,
        "idempotent",
        init_producer_id,
        true,
    );
    add(
        &mut out,
        ApiKey::InitProducerId,
        "txn",
        init_transactional,
        true,
    );
    add(
        &mut out,
        ApiKey::FindCoordinator,
        "txn",
        find_txn_coordinator,
        true,
    );
    add(
        &mut out,
        ApiKey::AddPartitionsToTxn,
        "p0p1",
        add_partitions_to_txn,
        true,
    );
    add(
        &mut out,
        ApiKey::AddOffsetsToTxn,
        "group",
        add_offsets_to_txn,
        true,
    );
    add(
        &mut out,
        ApiKey::TxnOffsetCommit,
        "p0",
        txn_offset_commit,
        true,
    );
    add(&mut out, ApiKey::EndTxn, "commit", end_txn, true);
    add(
        &mut out,
        ApiKey::WriteTxnMarkers,
        "abort-p0",
        write_txn_markers,
        true,
    );
    add(
        &mut out,
        ApiKey::DescribeTransactions,
        "txn",
        describe_transactions,
        true,
    );
    add(
        &mut out,
        ApiKey::DescribeProducers,
        "p0p1",
        describe_producers,
        true,
    );
    add(
        &mut out,
        ApiKey::Produce,
        "txn",
        produce_transactional,
        false,
    );
    out
}

/// A request frame (without size prefix): the header (client id `fuzz`,
/// correlation id 1), then `body` encoded at `version`; empty if `body`
/// cannot be said in that version.
pub fn frame<R: Encodable>(key: ApiKey, version: i16, body: &R) -> Vec<u8> {
    let mut buf = BytesMut::new();
    match body.encode(&mut buf, version) {
        Ok(()) => frame_with_body(key, version, &buf),
        Err(_) => Vec::new(),
    }
}

/// The header [`frame`] writes followed by a raw body.
fn frame_with_body(key: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    wire::encode_raw_request(key, version, 1, Some("fuzz"), body)
        .map(|f| f.get(4..).unwrap_or_default().to_vec())
        .unwrap_or_default()
}
