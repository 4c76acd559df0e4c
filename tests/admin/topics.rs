//! Topics and records going away or growing: partitions added and
//! produced to, topics deleted with their data, records deleted below a new
//! log start.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_partitions_take_records_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "grow", 1, &[]).await;
    let admin = admin(&bs);

    let res = admin
        .create_partitions(&[NewPartitions::new("grow", 3)], &opts())
        .await
        .unwrap();
    assert_eq!(res, vec![Ok("grow".to_string())]);
    assert!(dir.path().join("grow-1").is_dir() && dir.path().join("grow-2").is_dir());
    // The new partition is led here and takes records right away.
    let p = producer(&bs, &[]);
    let vals = values("new", 3);
    assert_eq!(produce_values(&p, "grow", 2, &vals).await, vec![0, 1, 2]);
    let c = consumer(&bs, &[]);
    let got = consume_n(&c, "grow", 2, Offset::Beginning, 3);
    assert_eq!(
        got.iter()
            .map(|g| (g.offset, g.value.clone().unwrap()))
            .collect::<Vec<_>>(),
        vals.iter()
            .cloned()
            .enumerate()
            .map(|(i, v)| (i as i64, v))
            .collect::<Vec<_>>()
    );
    let md = c.fetch_metadata(Some("grow"), TIMEOUT).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);

    // validate_only checks without growing; shrinking, assignments to
    // unknown brokers and unknown topics are refused.
    let res = admin
        .create_partitions(
            &[NewPartitions::new("grow", 5)],
            &opts().validate_only(true),
        )
        .await
        .unwrap();
    assert_eq!(res, vec![Ok("grow".to_string())]);
    assert!(!dir.path().join("grow-3").exists());
    let res = admin
        .create_partitions(&[NewPartitions::new("grow", 2)], &opts())
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![Err((
            "grow".to_string(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );
    let res = admin
        .create_partitions(&[NewPartitions::new("grow", 4).assign(&[&[2]])], &opts())
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![Err((
            "grow".to_string(),
            RDKafkaErrorCode::InvalidReplicaAssignment
        ))],
        "broker 2 is not registered"
    );
    let res = admin
        .create_partitions(&[NewPartitions::new("nope", 4)], &opts())
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![Err((
            "nope".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
    let md = c.fetch_metadata(Some("grow"), TIMEOUT).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);
    assert_eq!(
        broker_of(&broker)
            .image()
            .topic("grow")
            .unwrap()
            .partitions
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_topics_lose_their_data_and_refuse_records() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[("auto.create.topics.enable", "false")]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "doomed", 2, &[]).await;
    let p = producer(&bs, &[]);
    produce_values(&p, "doomed", 0, &values("a", 3)).await;
    produce_values(&p, "doomed", 1, &values("b", 2)).await;
    let names = dir_entries(dir.path());
    assert!(
        names.contains("doomed-0") && names.contains("doomed-1"),
        "{names:?}"
    );
    drop(p);

    let admin = admin(&bs);
    let res = admin.delete_topics(&["doomed"], &opts()).await.unwrap();
    assert_eq!(res, vec![Ok("doomed".to_string())]);
    // Answered once the data is gone: no directory of the topic is left,
    // not even one being removed.
    let left: Vec<String> = dir_entries(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("doomed"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(broker_of(&broker).image().topic("doomed").is_none());

    // Producing to it fails as an unknown topic.
    let p = producer(
        &bs,
        &[
            ("message.timeout.ms", "5000"),
            ("topic.metadata.propagation.max.ms", "500"),
        ],
    );
    let rec: FutureRecord<'_, [u8], [u8]> =
        FutureRecord::to("doomed").partition(0).payload(b"late");
    let err = p.send(rec, TIMEOUT).await.map_err(|(e, _)| e).unwrap_err();
    assert!(
        matches!(
            err,
            KafkaError::MessageProduction(
                RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition
            )
        ),
        "{err:?}"
    );
    let res = admin.delete_topics(&["doomed"], &opts()).await.unwrap();
    assert_eq!(
        res,
        vec![Err((
            "doomed".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );

    // The name can be reused at once, and the new topic starts empty.
    create_topic(&bs, "doomed", 1, &[]).await;
    let p = producer(&bs, &[]);
    assert_eq!(
        produce_values(&p, "doomed", 0, &values("c", 1)).await,
        vec![0]
    );

    // DeleteTopics v6 addresses topics by id.
    create_topic(&bs, "by-id", 1, &[]).await;
    let id = broker_of(&broker).image().topic("by-id").unwrap().id;
    let by_id = |name: Option<&str>, id: uuid::Uuid| {
        DeleteTopicState::default()
            .with_name(name.map(|n| TopicName(StrBytes::from_string(n.into()))))
            .with_topic_id(id)
    };
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            by_id(None, id),
            by_id(None, uuid::Uuid::new_v4()),
            by_id(Some("doomed"), id),
        ]);
    let resp = raw_request(&bs, 6, &req).await;
    let r: Vec<(Option<String>, i16)> = resp
        .responses
        .iter()
        .map(|r| (r.name.as_ref().map(|n| n.to_string()), r.error_code))
        .collect();
    assert_eq!(
        r,
        vec![
            (Some("by-id".into()), 0),
            (None, 100),                 // UNKNOWN_TOPIC_ID
            (Some("doomed".into()), 42)  // INVALID_REQUEST: name and id
        ]
    );
    assert_eq!(resp.responses[0].topic_id, id);
    assert!(!dir.path().join("by-id-0").exists());
    assert!(broker_of(&broker).image().topic("by-id").is_none());
    assert!(broker_of(&broker).image().topic("doomed").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_records_move_the_log_start_and_consumers_begin_there() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    // Small segments, so deleting records deletes whole segment files.
    create_topic(&bs, "trim", 1, &[("segment.bytes", "1024")]).await;
    let p = producer(&bs, &[]);
    let vals = values("r", 20);
    assert_eq!(
        produce_values(&p, "trim", 0, &vals).await,
        (0..20).collect::<Vec<i64>>()
    );
    let part_dir = dir.path().join("trim-0");
    let before = segment_files(&part_dir);
    assert!(before.len() >= 3, "{before:?}");
    let admin = admin(&bs);

    let delete = |offset: Offset| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("trim", 0, offset).unwrap();
        tpl
    };
    let res = admin
        .delete_records(&delete(Offset::Offset(12)), &opts())
        .await
        .unwrap();
    let e = &res.elements()[0];
    assert_eq!((e.offset(), e.error()), (Offset::Offset(12), Ok(())));
    // Segments wholly below 12 are gone; the one holding 12 stays.
    let after = segment_files(&part_dir);
    let first = after[0].0;
    assert!(first > 0 && first <= 12, "{before:?} -> {after:?}");
    assert_eq!(
        after,
        before
            .iter()
            .copied()
            .filter(|(base, _)| *base >= first)
            .collect::<Vec<_>>()
    );

    let c = consumer(&bs, &[]);
    assert_eq!(c.fetch_watermarks("trim", 0, TIMEOUT).unwrap(), (12, 20));
    let got = consume_n(&c, "trim", 0, Offset::Beginning, 8);
    assert_eq!(
        got.iter()
            .map(|g| (g.offset, g.value.clone().unwrap()))
            .collect::<Vec<_>>(),
        (12..20)
            .map(|i| (i, vals[i as usize].clone()))
            .collect::<Vec<_>>()
    );
    assert!(drain(&c, Duration::from_millis(300)).is_empty());

    // Beyond the high watermark: refused. Offset::End: up to the high watermark.
    let res = admin
        .delete_records(&delete(Offset::Offset(21)), &opts())
        .await
        .unwrap();
    assert_eq!(
        res.elements()[0].error(),
        Err(KafkaError::OffsetFetch(RDKafkaErrorCode::OffsetOutOfRange))
    );
    let res = admin
        .delete_records(&delete(Offset::End), &opts())
        .await
        .unwrap();
    assert_eq!(res.elements()[0].offset(), Offset::Offset(20));
    assert_eq!(c.fetch_watermarks("trim", 0, TIMEOUT).unwrap(), (20, 20));
    assert_eq!(
        produce_values(&p, "trim", 0, &values("s", 1)).await,
        vec![20]
    );
    let c = consumer(&bs, &[]);
    let got = consume_n(&c, "trim", 0, Offset::Beginning, 1);
    assert_eq!(got[0].offset, 20);
}
