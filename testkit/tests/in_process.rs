//! The kit against a real broker in this process: start and restart it,
//! create a topic and see its leader, produce and read records back, look
//! at partitions through Metadata, send a raw request.

use kafka_protocol::messages::ApiVersionsRequest;
use rdkafka::consumer::BaseConsumer;
use rdkafka::Offset;
use rivulet_testkit::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_serves_records_through_the_kit_and_keeps_them_over_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "kit", 2, &[]).await;
    let bs2 = bs.clone();
    tokio::task::spawn_blocking(move || wait_for_leaders(&bs2, "kit", TIMEOUT))
        .await
        .unwrap();

    let p = producer(&bs, &[]);
    let records: Vec<KeyValue<'_>> = vec![(Some(b"k0"), Some(b"v0")), (None, Some(b"v1"))];
    assert_eq!(produce_all(&p, "kit", 1, &records).await, vec![0, 1]);

    let broker = broker.restart().await;
    let bs = broker.bootstrap();
    let got = tokio::task::spawn_blocking(move || {
        let c = consumer(&bs, &[]);
        let got = consume_n(&c, "kit", 1, Offset::Beginning, 2);
        assert!(drain(&c, std::time::Duration::from_millis(300)).is_empty());
        let meta: BaseConsumer = client_config(&bs).create().unwrap();
        let ps = partitions(&meta, "kit").expect("the topic is listed");
        (got, ps)
    })
    .await
    .unwrap();
    let (got, ps) = got;
    assert_eq!(
        got.iter()
            .map(|g| (g.offset, g.key.clone(), g.value.clone()))
            .collect::<Vec<_>>(),
        vec![
            (0, Some(b"k0".to_vec()), Some(b"v0".to_vec())),
            (1, None, Some(b"v1".to_vec()))
        ]
    );
    assert_eq!(ps.len(), 2);
    assert!(ps.values().all(|p| p.leader == 1 && p.isr == [1]), "{ps:?}");

    let versions = raw_request(&broker.bootstrap(), 3, &ApiVersionsRequest::default()).await;
    assert_eq!(versions.error_code, 0);
    assert!(!versions.api_keys.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_forms_and_lists_its_brokers() {
    let dir = tempfile::tempdir().unwrap();
    let brokers = start_cluster(dir.path(), 3, &[]).await;
    assert_eq!(index_of(&brokers, 2), 1);
    let bs = cluster_bootstrap(&brokers);
    assert_eq!(bs.split(',').count(), 3);
    tokio::task::spawn_blocking(move || wait_for_brokers(&bs, 3, TIMEOUT))
        .await
        .unwrap();
}
