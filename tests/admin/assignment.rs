//! Manual replica assignment (issue 14): CreateTopics and CreatePartitions
//! with per-partition broker lists through librdkafka's admin client, on a
//! 3-node in-process cluster; the placement as the quorum recorded it, the
//! first replica leading, records produced and read back; bad assignments
//! refused with Kafka's codes.

use rdkafka::admin::{NewTopic, TopicReplication};

use super::*;

/// `(replicas in order, leader)` of each partition of `topic` in `b`'s image.
fn placement(b: &TestBroker, topic: &str) -> Vec<(Vec<i32>, i32)> {
    broker_of(b)
        .image()
        .topic(topic)
        .map(|t| {
            t.partitions
                .values()
                .map(|p| (p.replicas.clone(), p.leader))
                .collect()
        })
        .unwrap_or_default()
}

async fn create_assigned(
    admin: &Admin,
    name: &str,
    assignment: &[&[i32]],
) -> Result<(), RDKafkaErrorCode> {
    let t = NewTopic::new(
        name,
        assignment.len() as i32,
        TopicReplication::Variable(assignment),
    );
    let res = admin.create_topics(&[t], &opts()).await.unwrap();
    match res.into_iter().next().unwrap() {
        Ok(_) => Ok(()),
        Err((_, code)) => Err(code),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_and_grown_on_the_assigned_brokers() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_cluster(dir.path(), 3, &[]).await;
    let bs = cluster_bootstrap(&nodes);
    let admin = admin(&bs);

    create_assigned(&admin, "placed", &[&[2, 3], &[3, 1], &[1, 2]])
        .await
        .unwrap();
    let want = vec![(vec![2, 3], 2), (vec![3, 1], 3), (vec![1, 2], 1)];
    for n in &nodes {
        let b = broker_of(n);
        Poll::new(TIMEOUT)
            .wait_async("every node to see the placement", || {
                placement(n, "placed") == want
            })
            .await;
        // Each node hosts exactly the partitions assigned to it.
        let me = b.node_id();
        for (p, (replicas, _)) in want.iter().enumerate() {
            let dir = n.dir.join(format!("placed-{p}"));
            Poll::new(TIMEOUT)
                .wait_async(format!("node {me}: placed-{p} hosted iff assigned"), || {
                    dir.is_dir() == replicas.contains(&me)
                })
                .await;
        }
    }
    wait_for_leaders(&bs, "placed", TIMEOUT);
    let p = producer(&bs, &[("acks", "all")]);
    let vals = values("placed", 5);
    for part in 0..3 {
        assert_eq!(
            produce_values(&p, "placed", part, &vals).await,
            vec![0, 1, 2, 3, 4]
        );
    }
    let c = consumer(&bs, &[]);
    for part in 0..3 {
        let got = consume_n(&c, "placed", part, Offset::Beginning, 5);
        let got: Vec<Vec<u8>> = got.into_iter().map(|g| g.value.unwrap()).collect();
        assert_eq!(got, vals, "partition {part}");
    }

    // CreatePartitions with an assignment: placed as asked, same RF enforced.
    let res = admin
        .create_partitions(
            &[NewPartitions::new("placed", 5).assign(&[&[3, 2], &[2, 1]])],
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(res, vec![Ok("placed".to_string())]);
    let mut grown = want.clone();
    grown.extend([(vec![3, 2], 3), (vec![2, 1], 2)]);
    Poll::new(TIMEOUT)
        .wait_async("the grown placement", || {
            placement(&nodes[0], "placed") == grown
        })
        .await;
    wait_for_leaders(&bs, "placed", TIMEOUT);
    // A new client knows the new partitions at once.
    let p = producer(&bs, &[("acks", "all")]);
    assert_eq!(
        produce_values(&p, "placed", 4, &vals).await,
        vec![0, 1, 2, 3, 4]
    );

    let refused = [
        // RF differs from the topic's.
        NewPartitions::new("placed", 6).assign(&[&[1]]),
    ];
    let res = admin.create_partitions(&refused, &opts()).await.unwrap();
    assert_eq!(
        res,
        vec![Err((
            "placed".to_string(),
            RDKafkaErrorCode::InvalidReplicaAssignment
        ))]
    );
    let res = admin
        .create_partitions(
            &[NewPartitions::new("placed", 6).assign(&[&[1, 9]])],
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![Err((
            "placed".to_string(),
            RDKafkaErrorCode::InvalidReplicaAssignment
        ))],
        "unregistered broker 9"
    );
    assert_eq!(placement(&nodes[1], "placed").len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_assignments_are_refused_with_kafkas_codes() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_cluster(dir.path(), 3, &[]).await;
    let bs = cluster_bootstrap(&nodes);
    let admin = admin(&bs);
    use RDKafkaErrorCode::{InvalidReplicaAssignment, InvalidRequest};

    let cases: &[(&str, &[&[i32]], RDKafkaErrorCode)] = &[
        ("dup-broker", &[&[1, 1]], InvalidReplicaAssignment),
        ("unknown-broker", &[&[1, 4]], InvalidReplicaAssignment),
        ("uneven-rf", &[&[1, 2], &[3]], InvalidReplicaAssignment),
        ("empty-list", &[&[]], InvalidReplicaAssignment),
    ];
    for (name, assignment, code) in cases {
        assert_eq!(
            create_assigned(&admin, name, assignment).await,
            Err(*code),
            "{name}"
        );
    }
    // Raw requests for what librdkafka would not send: gaps in the
    // partition numbers, a partition twice, counts beside an assignment.
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic,
    };
    use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, CreateTopicsResponse};
    let topic = |name: &str, parts: &[(i32, &[i32])], np: i32, rf: i16| {
        CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(np)
            .with_replication_factor(rf)
            .with_assignments(
                parts
                    .iter()
                    .map(|(i, r)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(*i)
                            .with_broker_ids(r.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect(),
            )
    };
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            topic("gap", &[(0, &[1]), (2, &[2])], -1, -1),
            topic("twice", &[(0, &[1]), (0, &[2])], -1, -1),
            topic("with-count", &[(0, &[1])], 1, -1),
            topic("with-rf", &[(0, &[1])], -1, 1),
            topic("fine", &[(0, &[3, 1]), (1, &[1, 2])], -1, -1),
        ]);
    let resp: CreateTopicsResponse = raw_request(&nodes[0].bootstrap(), 7, &req).await;
    let codes: Vec<(String, i16)> = resp
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.error_code))
        .collect();
    let irs = InvalidReplicaAssignment as i16;
    let ir = InvalidRequest as i16;
    assert_eq!(
        codes,
        vec![
            ("gap".to_string(), irs),
            ("twice".to_string(), irs),
            ("with-count".to_string(), ir),
            ("with-rf".to_string(), ir),
            ("fine".to_string(), 0),
        ]
    );
    let fine = resp
        .topics
        .iter()
        .find(|t| t.name.as_str() == "fine")
        .unwrap();
    assert_eq!((fine.num_partitions, fine.replication_factor), (2, 2));
    for bad in [
        "gap",
        "twice",
        "with-count",
        "with-rf",
        "dup-broker",
        "uneven-rf",
    ] {
        assert!(broker_of(&nodes[0]).image().topic(bad).is_none(), "{bad}");
    }
    Poll::new(TIMEOUT)
        .wait_async("fine placed", || {
            placement(&nodes[2], "fine") == vec![(vec![3, 1], 3), (vec![1, 2], 1)]
        })
        .await;
}
