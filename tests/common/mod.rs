//! Shared helpers for end-to-end tests: a broker started in-process on free
//! loopback ports with its own temp data dir, and rdkafka clients for it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_broker::{BrokerConfig, BrokerNode};

pub const TIMEOUT: Duration = Duration::from_secs(20);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A broker running in this process.
pub struct TestBroker {
    pub node: Option<BrokerNode>,
    pub dir: PathBuf,
    pub port: u16,
    pub controller_port: u16,
    pub extra: Vec<(String, String)>,
}

impl TestBroker {
    pub async fn start(dir: &Path, extra: &[(&str, &str)]) -> TestBroker {
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // A free port can be taken before the broker binds it (by another
        // test's outgoing connection): try other ports then.
        for attempt in 0.. {
            match Self::try_start_on(dir, free_port(), free_port(), extra.clone()).await {
                Ok(b) => return b,
                Err(e @ rivulet_broker::StartError::Bind { .. }) if attempt < 3 => {
                    eprintln!("broker start failed ({e}); retrying on other ports")
                }
                Err(e) => panic!("broker start failed: {e}"),
            }
        }
        unreachable!()
    }

    async fn start_on(
        dir: &Path,
        port: u16,
        controller_port: u16,
        extra: Vec<(String, String)>,
    ) -> TestBroker {
        Self::try_start_on(dir, port, controller_port, extra)
            .await
            .unwrap()
    }

    /// Like `start_on`, but a failure to start (a port taken since
    /// `free_port` found it free) is returned, not a panic.
    async fn try_start_on(
        dir: &Path,
        port: u16,
        controller_port: u16,
        extra: Vec<(String, String)>,
    ) -> Result<TestBroker, rivulet_broker::StartError> {
        let mut props = BTreeMap::new();
        props.insert("listeners".to_string(), format!("127.0.0.1:{port}"));
        props.insert(
            "controller.listener".to_string(),
            format!("127.0.0.1:{controller_port}"),
        );
        props.insert("data.dir".to_string(), dir.display().to_string());
        props.insert(
            "broker.heartbeat.interval.ms".to_string(),
            "200".to_string(),
        );
        for (k, v) in &extra {
            props.insert(k.clone(), v.clone());
        }
        let config = BrokerConfig::from_props(&props).unwrap();
        let node = BrokerNode::start(config).await?;
        let b = node.broker.clone();
        let deadline = Instant::now() + TIMEOUT;
        while !b.image().is_live(b.node_id()) {
            assert!(Instant::now() < deadline, "broker never registered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(TestBroker {
            node: Some(node),
            dir: dir.to_path_buf(),
            port,
            controller_port,
            extra,
        })
    }

    /// The running node (panics if stopped).
    pub fn node(&self) -> &BrokerNode {
        self.node.as_ref().expect("broker is stopped")
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Shut down cleanly and start again on the same ports and data.
    pub async fn restart(mut self) -> TestBroker {
        self.stop().await;
        Self::start_on(
            &self.dir.clone(),
            self.port,
            self.controller_port,
            self.extra.clone(),
        )
        .await
    }

    pub async fn stop(&mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await.unwrap();
        }
    }
}

/// Start `n` brokers (node ids 1..=n) in this process, each with its own
/// data dir under `root` and free ports, sharing one
/// `controller.quorum.voters`; returns once every one is registered and
/// unfenced in its own image.
pub async fn start_cluster(root: &Path, n: usize, extra: &[(&str, &str)]) -> Vec<TestBroker> {
    // Free ports can be taken (by other tests' outgoing connections) before
    // the nodes bind them: start over on fresh ports and dirs then.
    for attempt in 0.. {
        let root = root.join(format!("attempt-{attempt}"));
        match try_start_cluster(&root, n, extra).await {
            Ok(brokers) => return brokers,
            Err(e) if attempt < 3 => eprintln!("cluster start failed ({e}); retrying"),
            Err(e) => panic!("cluster start failed: {e}"),
        }
    }
    unreachable!()
}

async fn try_start_cluster(
    root: &Path,
    n: usize,
    extra: &[(&str, &str)],
) -> Result<Vec<TestBroker>, rivulet_broker::StartError> {
    let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
    let voters = ports
        .iter()
        .enumerate()
        .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let starts = ports.iter().enumerate().map(|(i, (port, cport))| {
        let mut props: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        props.push(("node.id".into(), (i + 1).to_string()));
        props.push(("controller.quorum.voters".into(), voters.clone()));
        let dir = root.join(format!("node-{}", i + 1));
        async move { TestBroker::try_start_on(&dir, *port, *cport, props).await }
    });
    let started = futures_util::future::join_all(starts).await;
    let mut brokers = Vec::with_capacity(n);
    let mut failure = None;
    for r in started {
        match r {
            Ok(b) => brokers.push(b),
            Err(e) => failure = Some(e),
        }
    }
    if let Some(e) = failure {
        for b in &mut brokers {
            b.stop().await;
        }
        return Err(e);
    }
    let deadline = Instant::now() + TIMEOUT;
    for b in &brokers {
        let broker = &b.node().broker;
        while !(1..=n as i32).all(|id| broker.image().is_live(id)) {
            assert!(Instant::now() < deadline, "cluster never formed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(brokers)
}

/// Bootstrap list of every running broker.
/// The index in `brokers` of the running node `node_id`.
pub fn index_of(brokers: &[TestBroker], node_id: i32) -> usize {
    brokers
        .iter()
        .position(|b| {
            b.node
                .as_ref()
                .is_some_and(|n| n.broker.node_id() == node_id)
        })
        .expect("node is running")
}

pub fn cluster_bootstrap(brokers: &[TestBroker]) -> String {
    brokers
        .iter()
        .filter(|b| b.node.is_some())
        .map(TestBroker::bootstrap)
        .collect::<Vec<_>>()
        .join(",")
}

pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000");
    c
}

pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = client_config(bootstrap);
    c.set("message.timeout.ms", "15000").set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().unwrap()
}

pub fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = client_config(bootstrap);
    // librdkafka wants a group id even for manual assignment; nothing is
    // committed, so no coordinator is needed.
    c.set("group.id", "rivulet-test-assign")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().unwrap()
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap).create().unwrap()
}

pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    create_topic_rf(bootstrap, name, partitions, 1, configs).await
}

pub async fn create_topic_rf(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(&str, &str)],
) {
    let admin = admin(bootstrap);
    let mut t = NewTopic::new(
        name,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = admin
        .create_topics(&[t], &AdminOptions::new().operation_timeout(Some(TIMEOUT)))
        .await
        .unwrap();
    for r in res {
        r.unwrap();
    }
}

/// A record to produce: optional key, optional value.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Produce `(key, value)` pairs to one partition and wait for every ack;
/// returns the offsets.
pub async fn produce_all(
    p: &FutureProducer,
    topic: &str,
    partition: i32,
    records: &[KeyValue<'_>],
) -> Vec<i64> {
    let mut offsets = Vec::new();
    for (k, v) in records {
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).partition(partition);
        if let Some(k) = k {
            rec = rec.key(*k);
        }
        if let Some(v) = v {
            rec = rec.payload(*v);
        }
        let delivery = p.send(rec, TIMEOUT).await.map_err(|(e, _)| e).unwrap();
        offsets.push(delivery.offset);
    }
    offsets
}

/// A consumed record: offset, key, value, timestamp, headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: Option<i64>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

pub fn got(m: &BorrowedMessage<'_>) -> Got {
    use rdkafka::message::Headers;
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                .collect()
        })
        .unwrap_or_default();
    Got {
        offset: m.offset(),
        key: m.key().map(|k| k.to_vec()),
        value: m.payload().map(|v| v.to_vec()),
        timestamp: m.timestamp().to_millis(),
        headers,
    }
}

/// Assign `topic/partition` at `offset` and read `n` records (or fail after
/// the timeout).
pub fn consume_n(
    c: &BaseConsumer,
    topic: &str,
    partition: i32,
    offset: Offset,
    n: usize,
) -> Vec<Got> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, offset).unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {n} records from {topic}/{partition}",
            out.len()
        );
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(got(&m)),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    out
}

/// Poll for `wait` and return whatever arrives (to check nothing more does).
pub fn drain(c: &BaseConsumer, wait: Duration) -> Vec<Got> {
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
            out.push(got(&m));
        }
    }
    out
}

/// Send one request on a fresh connection and decode its response: for the
/// APIs and versions librdkafka does not speak. Panics unless the response
/// matches the request and decodes to the last byte.
pub async fn raw_request<R: kafka_protocol::protocol::Request>(
    bootstrap: &str,
    version: i16,
    req: &R,
) -> R::Response {
    use bytes::{Buf, BufMut, BytesMut};
    use kafka_protocol::messages::{RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let correlation_id = 7;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("rivulet-raw")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, R::header_version(version))
        .unwrap();
    req.encode(&mut body, version).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put(body);
    let mut s = tokio::net::TcpStream::connect(bootstrap).await.unwrap();
    s.write_all(&frame).await.unwrap();
    let size = tokio::time::timeout(TIMEOUT, s.read_i32())
        .await
        .expect("no response")
        .unwrap();
    let mut buf = BytesMut::zeroed(size as usize);
    s.read_exact(&mut buf).await.unwrap();
    let mut buf = buf.freeze();
    let h = ResponseHeader::decode(&mut buf, R::Response::header_version(version)).unwrap();
    assert_eq!(h.correlation_id, correlation_id);
    let resp = R::Response::decode(&mut buf, version).unwrap();
    assert_eq!(buf.remaining(), 0, "response has trailing bytes");
    resp
}

pub mod native_admin;
pub mod tmpfs;
