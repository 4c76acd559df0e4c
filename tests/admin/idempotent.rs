//! The idempotent producer: InitProducerId epoch bumps and each record
//! written once, in order.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_writes_each_record_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), &[]).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "idem", 1, &[]).await;
    let p = producer(
        &bs,
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
            ("batch.num.messages", "7"),
        ],
    );
    // Many sends in flight at once: several batches per request.
    let vals = values("i", 60);
    let sends = vals.iter().map(|v| {
        let rec: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to("idem").partition(0).payload(&v[..]);
        p.send(rec, TIMEOUT)
    });
    let offsets: Vec<i64> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.map_err(|(e, _)| e).unwrap().offset)
        .collect();
    assert_eq!(offsets, (0..60).collect::<Vec<i64>>());
    let c = consumer(&bs, &[]);
    let got = consume_n(&c, "idem", 0, Offset::Beginning, 60);
    assert_eq!(
        got.iter()
            .map(|g| g.value.clone().unwrap())
            .collect::<Vec<_>>(),
        vals
    );
    assert!(drain(&c, Duration::from_millis(300)).is_empty());

    // Every batch carries the producer id InitProducerId handed out, epoch
    // 0, and sequences that continue exactly where the last batch ended.
    let part = broker_of(&broker)
        .replicas
        .get(&TopicPartition::new("idem", 0))
        .unwrap();
    let mut headers: Vec<BatchHeader> = Vec::new();
    part.log
        .lock()
        .scan_batch_headers(|h| headers.push(*h))
        .unwrap();
    assert!(headers.len() > 1, "{} batches", headers.len());
    let pid = headers[0].producer_id;
    assert!(pid >= 0);
    let mut next_seq = 0;
    for h in &headers {
        assert_eq!((h.producer_id, h.producer_epoch), (pid, 0));
        assert_eq!(h.base_sequence, next_seq);
        assert_eq!(
            i64::from(h.base_sequence),
            h.base_offset,
            "one record per offset"
        );
        next_seq = h.base_sequence + h.last_offset_delta + 1;
    }
    assert_eq!(next_seq, 60);

    // InitProducerId itself: a fresh id per producer, an epoch bump for a
    // producer that names itself (KIP-360); with a transactional id, the
    // transaction coordinator's answer.
    let fresh = InitProducerIdRequest::default().with_transactional_id(None);
    let r = raw_request(&bs, 0, &fresh).await;
    assert_eq!((r.error_code, r.producer_epoch), (0, 0));
    assert!(r.producer_id.0 >= 0 && r.producer_id.0 != pid);
    let bump = fresh
        .clone()
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(0);
    let r = raw_request(&bs, 4, &bump).await;
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, pid, 1)
    );
    let half = fresh.clone().with_producer_epoch(3);
    assert_eq!(
        raw_request(&bs, 4, &half).await.error_code,
        42,
        "INVALID_REQUEST"
    );
    let txn = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx-1"))))
        .with_transaction_timeout_ms(60_000);
    let r = raw_request(&bs, 4, &txn).await;
    assert_eq!(
        (r.error_code, r.producer_epoch),
        (0, 0),
        "a transactional id"
    );
    assert!(r.producer_id.0 >= 0);
    let again = raw_request(&bs, 4, &txn).await;
    assert_eq!(
        (again.error_code, again.producer_id.0, again.producer_epoch),
        (0, r.producer_id.0, 1),
        "the same id again: its producer id, the epoch bumped"
    );
    let too_long = txn.clone().with_transaction_timeout_ms(900_001);
    assert_eq!(
        raw_request(&bs, 4, &too_long).await.error_code,
        50,
        "INVALID_TRANSACTION_TIMEOUT above transaction.max.timeout.ms"
    );
    let empty = txn
        .clone()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str(""))));
    assert_eq!(
        raw_request(&bs, 4, &empty).await.error_code,
        42,
        "INVALID_REQUEST"
    );
}
