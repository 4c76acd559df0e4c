//! Produce and consume through librdkafka (the rdkafka crate): keys,
//! values, headers, null values, every compression codec, acks levels,
//! large messages, consumption from earliest/latest/a timestamp, many
//! partitions, and data surviving a broker restart.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;
use rivulet_testkit::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_then_consume_from_earliest_returns_exactly_what_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    // Auto-created on first use, as Kafka does by default.
    let p = producer(&bs, &[("acks", "all")]);
    let records: Vec<(Vec<u8>, Vec<u8>)> = (0..20)
        .map(|i| {
            (
                format!("key-{i}").into_bytes(),
                format!("value-{i}").into_bytes(),
            )
        })
        .collect();
    let borrowed: Vec<KeyValue<'_>> = records
        .iter()
        .map(|(k, v)| (Some(&k[..]), Some(&v[..])))
        .collect();
    let offsets = produce_all(&p, "first", 0, &borrowed).await;
    assert_eq!(offsets, (0..20).collect::<Vec<i64>>());
    let c = consumer(&bs, &[]);
    let got = consume_n(&c, "first", 0, Offset::Beginning, 20);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.offset, i as i64);
        assert_eq!(g.key.as_deref(), Some(records[i].0.as_slice()));
        assert_eq!(g.value.as_deref(), Some(records[i].1.as_slice()));
    }
    assert!(
        drain(&c, Duration::from_millis(500)).is_empty(),
        "nothing beyond what was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_with_repeated_keys_and_null_values_survive() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "hdr", 1, &[]).await;
    let p = producer(&bs, &[]);
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "dup",
            value: Some("one"),
        })
        .insert(Header {
            key: "dup",
            value: Some("two"),
        })
        .insert(Header {
            key: "nil",
            value: None::<&str>,
        });
    let rec: FutureRecord<'_, str, str> = FutureRecord::to("hdr")
        .partition(0)
        .key("k")
        .headers(headers);
    p.send(rec, TIMEOUT).await.map_err(|(e, _)| e).unwrap();
    let c = consumer(&bs, &[]);
    let got = consume_n(&c, "hdr", 0, Offset::Beginning, 1);
    assert_eq!(got[0].value, None, "null value stays null");
    assert_eq!(
        got[0].headers,
        vec![
            ("dup".to_string(), Some(b"one".to_vec())),
            ("dup".to_string(), Some(b"two".to_vec())),
            ("nil".to_string(), None),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&bs, &topic, 1, &[]).await;
        let p = producer(&bs, &[("compression.type", codec), ("linger.ms", "50")]);
        let values: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("{codec}-{i}-{}", "x".repeat(200)).into_bytes())
            .collect();
        let futures: Vec<_> = values
            .iter()
            .map(|v| {
                p.send::<[u8], [u8], _>(
                    FutureRecord::to(&topic).partition(0).payload(&v[..]),
                    TIMEOUT,
                )
            })
            .collect();
        for f in futures {
            f.await.map_err(|(e, _)| e).unwrap();
        }
        let c = consumer(&bs, &[]);
        let got = consume_n(&c, &topic, 0, Offset::Beginning, 50);
        let got_values: Vec<Vec<u8>> = got.iter().map(|g| g.value.clone().unwrap()).collect();
        assert_eq!(got_values, values, "codec {codec}");
        assert_eq!(
            got.iter().map(|g| g.offset).collect::<Vec<_>>(),
            (0..50).collect::<Vec<i64>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_one_and_all_are_all_stored() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "acks", 1, &[]).await;
    let mut expected = Vec::new();
    for acks in ["0", "1", "all"] {
        let p = producer(&bs, &[("acks", acks)]);
        for i in 0..5 {
            let v = format!("acks{acks}-{i}");
            produce_all(&p, "acks", 0, &[(None, Some(v.as_bytes()))]).await;
            expected.push(v.into_bytes());
        }
    }
    let c = consumer(&bs, &[]);
    let got = consume_n(&c, "acks", 0, Offset::Beginning, 15);
    assert_eq!(
        got.iter()
            .map(|g| g.value.clone().unwrap())
            .collect::<Vec<_>>(),
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_pass_and_oversize_batches_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "big", 1, &[]).await;
    let p = producer(
        &bs,
        &[
            ("message.max.bytes", "5000000"),
            ("compression.type", "none"),
        ],
    );
    let almost_mib = vec![7u8; 1_000_000];
    produce_all(&p, "big", 0, &[(None, Some(&almost_mib))]).await;
    // Above the broker's max.message.bytes (1048588 by default).
    let too_big = vec![8u8; 2_000_000];
    let err = p
        .send::<[u8], [u8], _>(
            FutureRecord::to("big").partition(0).payload(&too_big[..]),
            TIMEOUT,
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
    let c = consumer(&bs, &[("fetch.message.max.bytes", "5000000")]);
    let got = consume_n(&c, "big", 0, Offset::Beginning, 1);
    assert_eq!(got[0].value.as_deref(), Some(&almost_mib[..]));
    assert!(
        drain(&c, Duration::from_millis(300)).is_empty(),
        "the rejected batch was not stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_from_latest_and_from_a_timestamp_returns_exact_records() {
    use rdkafka::consumer::Consumer;
    use rdkafka::TopicPartitionList;
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "times", 1, &[]).await;
    let p = producer(&bs, &[]);
    // Recent timestamps, so time retention never deletes them mid-test.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    for i in 0..10i64 {
        let v = format!("t{i}");
        let rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to("times")
            .partition(0)
            .payload(v.as_bytes())
            .timestamp(base + i * 1000);
        p.send(rec, TIMEOUT).await.map_err(|(e, _)| e).unwrap();
    }
    let c = consumer(&bs, &[]);
    // A timestamp between records 4 and 5 resolves to record 5.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::Offset(base + 4500))
        .unwrap();
    let resolved = c.offsets_for_times(tpl, TIMEOUT).unwrap();
    let off = resolved.find_partition("times", 0).unwrap().offset();
    assert_eq!(off, Offset::Offset(5));
    let got = consume_n(&c, "times", 0, off, 5);
    assert_eq!(
        got.iter()
            .map(|g| g.value.clone().unwrap())
            .collect::<Vec<_>>(),
        (5..10)
            .map(|i| format!("t{i}").into_bytes())
            .collect::<Vec<_>>()
    );
    assert_eq!(got[0].timestamp, Some(base + 5000));
    // A timestamp after every record resolves to the end (-1).
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::Offset(base + 60_000))
        .unwrap();
    let resolved = c.offsets_for_times(tpl, TIMEOUT).unwrap();
    assert_eq!(
        resolved.find_partition("times", 0).unwrap().offset(),
        Offset::End
    );
    // Earliest/latest watermarks.
    assert_eq!(c.fetch_watermarks("times", 0, TIMEOUT).unwrap(), (0, 10));
    // From latest: only records produced after the assignment arrive.
    let c2 = consumer(&bs, &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::End).unwrap();
    c2.assign(&tpl).unwrap();
    assert!(drain(&c2, Duration::from_millis(500)).is_empty());
    produce_all(
        &p,
        "times",
        0,
        &[(None, Some(b"new-1")), (None, Some(b"new-2"))],
    )
    .await;
    let got = consume_n(&c2, "times", 0, Offset::Offset(10), 2);
    assert_eq!(
        got.iter().map(|g| g.offset).collect::<Vec<_>>(),
        vec![10, 11]
    );
    assert_eq!(got[1].value.as_deref(), Some(&b"new-2"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_partitions_keep_their_own_data_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "wide", 12, &[]).await;
    let p = producer(&bs, &[("acks", "all")]);
    for part in 0..12 {
        let recs: Vec<Vec<u8>> = (0..4)
            .map(|i| format!("p{part}-r{i}").into_bytes())
            .collect();
        let borrowed: Vec<KeyValue<'_>> = recs.iter().map(|r| (None, Some(&r[..]))).collect();
        let offsets = produce_all(&p, "wide", part, &borrowed).await;
        assert_eq!(offsets, vec![0, 1, 2, 3], "partition {part}");
    }
    drop(p);
    let broker = broker.restart().await;
    let bs = broker.bootstrap();
    for part in 0..12 {
        let c = consumer(&bs, &[]);
        let got = consume_n(&c, "wide", part, Offset::Beginning, 4);
        let values: Vec<Vec<u8>> = got.iter().map(|g| g.value.clone().unwrap()).collect();
        assert_eq!(
            values,
            (0..4)
                .map(|i| format!("p{part}-r{i}").into_bytes())
                .collect::<Vec<_>>()
        );
    }
    // Appends after the restart continue the offsets.
    let p = producer(&bs, &[]);
    let offsets = produce_all(&p, "wide", 3, &[(None, Some(b"after"))]).await;
    assert_eq!(offsets, vec![4]);
}
