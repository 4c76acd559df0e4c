//! A broker, or a cluster of brokers, running in this process on free
//! loopback ports with its own data dir: what most end-to-end tests run
//! against. Heartbeats every 200 ms so registration is quick.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rivulet_broker::{BrokerConfig, BrokerNode, StartError};

use crate::poll::Poll;
use crate::ports::free_port;
use crate::TIMEOUT;

/// A broker running in this process.
pub struct TestBroker {
    /// `None` once stopped.
    pub node: Option<BrokerNode>,
    pub dir: PathBuf,
    pub port: u16,
    pub controller_port: u16,
    /// The settings it was started with beyond ports and data dir.
    pub extra: Vec<(String, String)>,
}

fn owned(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl TestBroker {
    /// Start a broker with data in `dir` and `extra` settings on free
    /// ports; returns once it is registered (and unfenced) in its own image.
    pub async fn start(dir: &Path, extra: &[(&str, &str)]) -> TestBroker {
        let extra = owned(extra);
        // A free port can be taken before the broker binds it (by a node of
        // another test process, which picks from the same range): try other
        // ports then.
        let mut attempt = 0;
        loop {
            match Self::try_start_on(dir, free_port(), free_port(), extra.clone()).await {
                Ok(b) => return b,
                Err(e) if e.port_taken() && attempt < 3 => {
                    eprintln!("broker start failed ({e}); retrying on other ports")
                }
                Err(e) => panic!("broker start failed: {e}"),
            }
            attempt += 1;
        }
    }

    /// Start on the given ports; a failure to start (a port taken since it
    /// was found free) is returned, not a panic.
    pub async fn try_start_on(
        dir: &Path,
        port: u16,
        controller_port: u16,
        extra: Vec<(String, String)>,
    ) -> Result<TestBroker, StartError> {
        let mut props = BTreeMap::new();
        props.insert("listeners".to_string(), format!("127.0.0.1:{port}"));
        props.insert(
            "controller.listener".to_string(),
            format!("127.0.0.1:{controller_port}"),
        );
        props.insert("data.dir".to_string(), dir.display().to_string());
        props.insert("metrics.listener".to_string(), "127.0.0.1:0".to_string());
        props.insert(
            "broker.heartbeat.interval.ms".to_string(),
            "200".to_string(),
        );
        for (k, v) in &extra {
            props.insert(k.clone(), v.clone());
        }
        let config = BrokerConfig::from_props(&props)
            .unwrap_or_else(|e| panic!("bad test broker settings {props:?}: {e}"));
        let node = BrokerNode::start(config).await?;
        let b = node.broker.clone();
        Poll::new(TIMEOUT)
            .wait_async("the broker to register", || b.image().is_live(b.node_id()))
            .await;
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
        Self::try_start_on(
            &self.dir.clone(),
            self.port,
            self.controller_port,
            self.extra.clone(),
        )
        .await
        .unwrap_or_else(|e| panic!("broker restart failed: {e}"))
    }

    /// [`restart`](Self::restart) in place: start again (after
    /// [`stop`](Self::stop), or shut down first if running).
    pub async fn start_again(&mut self) {
        self.stop().await;
        *self = Self::try_start_on(
            &self.dir.clone(),
            self.port,
            self.controller_port,
            self.extra.clone(),
        )
        .await
        .unwrap_or_else(|e| panic!("broker restart failed: {e}"));
    }

    /// Shut down cleanly (no-op if stopped).
    pub async fn stop(&mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await.expect("clean broker shutdown");
        }
    }
}

/// Start `n` brokers (node ids 1..=n) in this process, each with its own
/// data dir under `root` and free ports, sharing one
/// `controller.quorum.voters`; returns once every one is registered and
/// unfenced in every node's image.
pub async fn start_cluster(root: &Path, n: usize, extra: &[(&str, &str)]) -> Vec<TestBroker> {
    start_cluster_per_node(root, n, extra, &[]).await
}

/// [`start_cluster`] with settings for some nodes only: `per_node[i]` is
/// added to node `i + 1`'s config after `extra`.
pub async fn start_cluster_per_node(
    root: &Path,
    n: usize,
    extra: &[(&str, &str)],
    per_node: &[&[(&str, &str)]],
) -> Vec<TestBroker> {
    // Free ports can be taken (by nodes of other test processes) before the
    // nodes bind them: start over on fresh ports and dirs then.
    let mut attempt = 0;
    loop {
        let root = root.join(format!("attempt-{attempt}"));
        match try_start_cluster(&root, n, extra, per_node).await {
            Ok(brokers) => return brokers,
            Err(e) if attempt < 3 => eprintln!("cluster start failed ({e}); retrying"),
            Err(e) => panic!("cluster start failed: {e}"),
        }
        attempt += 1;
    }
}

async fn try_start_cluster(
    root: &Path,
    n: usize,
    extra: &[(&str, &str)],
    per_node: &[&[(&str, &str)]],
) -> Result<Vec<TestBroker>, StartError> {
    let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
    let voters = ports
        .iter()
        .enumerate()
        .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let starts = ports.iter().enumerate().map(|(i, (port, cport))| {
        let mut props = owned(extra);
        props.extend(owned(per_node.get(i).copied().unwrap_or_default()));
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
    for b in &brokers {
        let broker = &b.node().broker;
        Poll::new(TIMEOUT)
            .wait_async(
                format!("node {} to see all {n} live", broker.node_id()),
                || (1..=n as i32).all(|id| broker.image().is_live(id)),
            )
            .await;
    }
    Ok(brokers)
}

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

/// Bootstrap list of every running broker.
pub fn cluster_bootstrap(brokers: &[TestBroker]) -> String {
    brokers
        .iter()
        .filter(|b| b.node.is_some())
        .map(TestBroker::bootstrap)
        .collect::<Vec<_>>()
        .join(",")
}
