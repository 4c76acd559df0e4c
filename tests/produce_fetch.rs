//! Produce and consume through librdkafka (the rdkafka crate): keys,
//! values, headers, null values, every compression codec, acks levels,
//! large messages, consumption from earliest/latest/a timestamp, many
//! partitions, and data surviving a broker restart.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;

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
    let borrowed: Vec<(Option<&[u8]>, Option<&[u8]>)> = records
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
