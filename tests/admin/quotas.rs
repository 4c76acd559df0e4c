//! Client quotas (KIP-546's AlterClientQuotas / DescribeClientQuotas, as
//! `kafka-configs.sh --entity-type clients|users` sends them, and their
//! enforcement): keys and entities checked as Kafka checks them, filters
//! as Kafka applies them; a producer over `producer_byte_rate` gets
//! `throttle_time_ms` and its connection is not read until the rate is
//! back (KIP-219), while another client id is not slowed; a librdkafka
//! consumer over `consumer_byte_rate` reads no faster than its quota.

use bytes::Bytes;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse, ProduceRequest,
};
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::RecordBatchBuilder;

use super::*;

type Entity<'a> = &'a [(&'a str, Option<&'a str>)];

/// AlterClientQuotas of one entity: `Ok` or (error code, message).
async fn alter_quota(
    bootstrap: &str,
    entity: Entity<'_>,
    ops: &[(&str, Option<f64>)],
) -> Result<(), (i16, String)> {
    let req = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(
            entity
                .iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(StrBytes::from_string(t.to_string()))
                        .with_entity_name(n.map(|n| StrBytes::from_string(n.to_string())))
                })
                .collect(),
        )
        .with_ops(
            ops.iter()
                .map(|(k, v)| {
                    OpData::default()
                        .with_key(StrBytes::from_string(k.to_string()))
                        .with_value(v.unwrap_or(0.0))
                        .with_remove(v.is_none())
                })
                .collect(),
        )]);
    let resp: AlterClientQuotasResponse = raw_request(bootstrap, 1, &req).await;
    let e = &resp.entries[0];
    match e.error_code {
        0 => Ok(()),
        code => Err((
            code,
            e.error_message.as_deref().unwrap_or_default().to_string(),
        )),
    }
}

/// DescribeClientQuotas: `(entity, [(key, value)])` of every match.
async fn describe_quotas(
    bootstrap: &str,
    components: &[(&str, i8, Option<&str>)],
    strict: bool,
) -> Result<Vec<(Vec<(String, Option<String>)>, Vec<(String, f64)>)>, i16> {
    let req = DescribeClientQuotasRequest::default()
        .with_strict(strict)
        .with_components(
            components
                .iter()
                .map(|(t, m, n)| {
                    ComponentData::default()
                        .with_entity_type(StrBytes::from_string(t.to_string()))
                        .with_match_type(*m)
                        .with_match(n.map(|n| StrBytes::from_string(n.to_string())))
                })
                .collect(),
        );
    let resp: DescribeClientQuotasResponse = raw_request(bootstrap, 1, &req).await;
    if resp.error_code != 0 {
        return Err(resp.error_code);
    }
    let mut out: Vec<_> = resp
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let mut entity: Vec<_> = e
                .entity
                .iter()
                .map(|d| {
                    (
                        d.entity_type.to_string(),
                        d.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect();
            entity.sort();
            let values = e
                .values
                .iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect();
            (entity, values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_quotas_are_checked_stored_and_described_as_kafka_does() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    const INVALID_REQUEST: i16 = 42;
    for (entity, ops, why) in [
        (
            &[("client-id", Some("c"))][..],
            &[("request_percentage", Some(50.0))][..],
            "not supported",
        ),
        (
            &[("client-id", Some("c"))][..],
            &[("producer_byte_rate", Some(10.5))][..],
            "fractional",
        ),
        (
            &[("client-id", Some("c"))][..],
            &[("producer_byte_rate", Some(0.0))][..],
            "greater than 0",
        ),
        (
            &[("client-id", Some("c"))][..],
            &[("no_such_rate", Some(1.0))][..],
            "Invalid configuration key",
        ),
        (&[][..], &[("producer_byte_rate", Some(1.0))][..], "empty"),
        (
            &[("user", Some("a")), ("user", Some("b"))][..],
            &[("producer_byte_rate", Some(1.0))][..],
            "duplicate",
        ),
        (
            &[("ip", Some("127.0.0.1"))][..],
            &[("connection_creation_rate", Some(1.0))][..],
            "not supported",
        ),
    ] {
        let (code, msg) = alter_quota(&bs, entity, ops).await.unwrap_err();
        assert_eq!(code, INVALID_REQUEST, "{entity:?} {ops:?}: {msg}");
        assert!(msg.contains(why), "{entity:?} {ops:?}: {msg}");
    }
    alter_quota(
        &bs,
        &[("user", Some("alice"))],
        &[("producer_byte_rate", Some(1e6))],
    )
    .await
    .unwrap();
    alter_quota(
        &bs,
        &[("user", Some("alice")), ("client-id", None)],
        &[
            ("consumer_byte_rate", Some(2e6)),
            ("producer_byte_rate", Some(3e6)),
        ],
    )
    .await
    .unwrap();
    alter_quota(
        &bs,
        &[("client-id", None)],
        &[("consumer_byte_rate", Some(5e5))],
    )
    .await
    .unwrap();
    let alice = |c: Option<&str>| {
        let mut e = vec![("user".to_string(), Some("alice".to_string()))];
        if let Some(c) = c {
            e.insert(
                0,
                (
                    "client-id".to_string(),
                    (!c.is_empty()).then(|| c.to_string()),
                ),
            );
        }
        e
    };
    // Everything with user=alice, not strictly: both of hers.
    let all = describe_quotas(&bs, &[("user", 0, Some("alice"))], false)
        .await
        .unwrap();
    assert_eq!(
        all,
        vec![
            (
                alice(Some("")),
                vec![
                    ("consumer_byte_rate".into(), 2e6),
                    ("producer_byte_rate".into(), 3e6)
                ]
            ),
            (alice(None), vec![("producer_byte_rate".into(), 1e6)]),
        ]
    );
    // Strictly: only the user-only entity.
    let strict = describe_quotas(&bs, &[("user", 0, Some("alice"))], true)
        .await
        .unwrap();
    assert_eq!(
        strict,
        vec![(alice(None), vec![("producer_byte_rate".into(), 1e6)])]
    );
    // The default client-id entity, and no filter at all.
    let defaults = describe_quotas(&bs, &[("client-id", 1, None)], true)
        .await
        .unwrap();
    assert_eq!(
        defaults,
        vec![(
            vec![("client-id".to_string(), None)],
            vec![("consumer_byte_rate".into(), 5e5)]
        )]
    );
    assert_eq!(describe_quotas(&bs, &[], false).await.unwrap().len(), 3);
    assert_eq!(
        describe_quotas(&bs, &[("user", 0, None)], false).await,
        Err(INVALID_REQUEST)
    );
    // Removing keys removes the entity once it has none left.
    alter_quota(
        &bs,
        &[("user", Some("alice"))],
        &[("producer_byte_rate", None)],
    )
    .await
    .unwrap();
    let left = describe_quotas(&bs, &[("user", 2, None)], false)
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    // Kept across a restart (they live in the metadata quorum).
    let broker = broker.restart().await;
    let bs = broker.bootstrap();
    assert_eq!(describe_quotas(&bs, &[], false).await.unwrap().len(), 2);
}

/// One Produce of `batch` to `topic`/0 on `c`: the response's throttle.
async fn produce_throttle(
    c: &mut rivulet_protocol::wire::Client<tokio::net::TcpStream>,
    topic: &str,
    batch: &[u8],
) -> i32 {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::copy_from_slice(batch)))])]);
    let resp = c.round_trip(9, &req).await.unwrap();
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    resp.throttle_time_ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_and_consumers_over_their_quota_are_slowed_to_it() {
    let dir = tempfile::tempdir().unwrap();
    // Rates over two windows of a second (Kafka's default: 11), so a
    // burst of one second's worth passes and the test stays short.
    let broker = TestBroker::start(
        dir.path(),
        &[
            ("quota.window.num", "2"),
            ("quota.window.size.seconds", "1"),
        ],
    )
    .await;
    let bs = broker.bootstrap();
    create_topic(&bs, "q", 1, &[]).await;
    // 200 KB/s for client "slow": 600 KB at once is 400 KB too many, two
    // seconds' worth.
    alter_quota(
        &bs,
        &[("client-id", Some("slow"))],
        &[("producer_byte_rate", Some(200_000.0))],
    )
    .await
    .unwrap();
    let mut b = RecordBatchBuilder::new(Compression::None);
    let value = vec![b'q'; 10_000];
    for _ in 0..60 {
        b.push(0, None, Some(&value), &[]);
    }
    let batch = b.build().unwrap();
    let connect = |id: &'static str| {
        let bs = bs.clone();
        async move {
            rivulet_protocol::wire::connect(&bs)
                .await
                .unwrap()
                .with_client_id(Some(id.to_string()))
                .with_timeout(TIMEOUT)
        }
    };
    let mut fast = connect("fast").await;
    assert_eq!(produce_throttle(&mut fast, "q", &batch).await, 0);
    assert_eq!(
        produce_throttle(&mut fast, "q", &batch).await,
        0,
        "no quota for 'fast'"
    );
    let mut slow = connect("slow").await;
    let throttle = produce_throttle(&mut slow, "q", &batch).await;
    assert!(
        (1_500..=2_500).contains(&throttle),
        "throttle_time_ms {throttle}"
    );
    // The connection is not read until then (a client ignoring the
    // throttle waits anyway).
    let started = std::time::Instant::now();
    let mut small = RecordBatchBuilder::new(Compression::None);
    small.push(0, None, Some(b"s"), &[]);
    let again = produce_throttle(&mut slow, "q", &small.build().unwrap()).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(throttle as u64 - 300),
        "the muted connection answered after {waited:?} (throttle {throttle} ms)"
    );
    assert!(again >= 0);
    // The metrics endpoint shows who is throttled, and how much.
    let ctx = broker_of(&broker);
    let text =
        rivulet_broker::metrics::render::render(&rivulet_broker::metrics::render::NodeState {
            broker: &ctx,
            controller: None,
            open_connections: 0,
            ready: true,
        })
        .await;
    let sample = |name: &str, labels: &str| -> f64 {
        let prefix = format!("{name}{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in the scrape"))
            .parse()
            .unwrap()
    };
    let labels = r#"kind="produce",user="",client_id="slow""#;
    let throttled = sample("rivulet_client_quota_throttle_seconds_total", labels);
    assert!(throttled >= f64::from(throttle) / 1000.0, "{throttled}");
    // Its rate series exists (its value depends on how much of the span
    // the throttle wait has passed).
    assert!(sample("rivulet_client_quota_byte_rate", labels) >= 0.0);
    assert!(
        !text.contains(r#"client_id="fast""#),
        "no quota, no measurement"
    );

    // A librdkafka consumer over consumer_byte_rate: 600 KB at 100 KB/s
    // (fetches of at most 100 KB, the quota's worth over the measured
    // span) takes about five seconds; without the quota, well under one.
    alter_quota(
        &bs,
        &[("client-id", Some("slow-reader"))],
        &[("consumer_byte_rate", Some(100_000.0))],
    )
    .await
    .unwrap();
    // In batches of one record, as a producer with a small batch.size
    // writes them (a fetch returns whole batches).
    create_topic(&bs, "qc", 1, &[]).await;
    let p = producer(&bs, &[("batch.size", "12000"), ("linger.ms", "0")]);
    let recs: Vec<KeyValue<'_>> = vec![(None, Some(&value[..])); 60];
    produce_all(&p, "qc", 0, &recs).await;
    let records = 60;
    let read_all = |client_id: &'static str| {
        let bs = bs.clone();
        tokio::task::spawn_blocking(move || {
            let c = consumer(
                &bs,
                &[("client.id", client_id), ("fetch.max.bytes", "1048576")],
            );
            let started = std::time::Instant::now();
            let got = consume_n(&c, "qc", 0, Offset::Beginning, records);
            (got.len(), started.elapsed())
        })
    };
    let (n, slow_took) = read_all("slow-reader").await.unwrap();
    assert_eq!(n, records);
    assert!(
        slow_took >= Duration::from_millis(3_000),
        "600 KB at 100 KB/s took {slow_took:?}"
    );
    let (n, fast_took) = read_all("fast-reader").await.unwrap();
    assert_eq!(n, records);
    eprintln!("consumer over its quota: {slow_took:?}; without one: {fast_took:?}");
}
