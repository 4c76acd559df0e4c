//! The Prometheus text exposition (version 0.0.4) of a node: the request
//! path's counters ([`super::Metrics`]) and gauges read from the broker's
//! state at scrape time.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;

use kafka_protocol::messages::ApiKey;
use rivulet_controller::ControllerNode;
use rivulet_protocol::spliced::SENDFILE_BYTES;
use rivulet_storage::histogram::{HistogramSnapshot, BUCKETS, FSYNC_SECONDS};
use rivulet_storage::TopicPartition;

use crate::context::BrokerContext;

/// What the scrape reads besides the broker context.
pub struct NodeState<'a> {
    pub broker: &'a BrokerContext,
    pub controller: Option<&'a ControllerNode>,
    pub open_connections: usize,
    pub ready: bool,
}

/// A label value with `\`, `"` and newlines escaped.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, "gauge", help);
        self.sample(name, "", value);
    }

    fn histogram(&mut self, name: &str, labels: &str, h: &HistogramSnapshot) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, c) in h.cumulative.iter().enumerate() {
            let le = BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            self.sample(
                &format!("{name}_bucket"),
                &format!("{labels}{sep}le=\"{le}\""),
                c,
            );
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_seconds);
        self.sample(&format!("{name}_count"), labels, h.count);
    }
}

/// The whole exposition.
pub async fn render(s: &NodeState<'_>) -> String {
    let b = s.broker;
    let mut o = Out(String::with_capacity(16 * 1024));
    o.family(
        "rivulet_node_info",
        "gauge",
        "This node's id and cluster id",
    );
    o.sample(
        "rivulet_node_info",
        &format!(
            "node_id=\"{}\",cluster_id=\"{}\"",
            b.node_id(),
            esc(&b.cluster_id)
        ),
        1,
    );
    o.gauge(
        "rivulet_ready",
        "1 once the node registered, caught up with the metadata and serves clients",
        u8::from(s.ready),
    );
    o.gauge(
        "rivulet_open_connections",
        "Client connections open on the Kafka listeners",
        s.open_connections,
    );
    topics(&mut o, b);
    requests(&mut o, b);
    let hw = partitions(&mut o, b);
    group_lag(&mut o, b, &hw).await;
    controller(&mut o, s);
    quotas(&mut o, b);
    o.family(
        "rivulet_fsync_seconds",
        "histogram",
        "Time of each fsync round of a partition log (group commit), across the process",
    );
    o.histogram("rivulet_fsync_seconds", "", &FSYNC_SECONDS.snapshot());
    o.family(
        "rivulet_sendfile_bytes_total",
        "counter",
        "Record bytes sent to followers straight from the log files (sendfile), across the process",
    );
    o.sample(
        "rivulet_sendfile_bytes_total",
        "",
        SENDFILE_BYTES.load(Ordering::Relaxed),
    );
    o.family(
        "rivulet_follower_fetch_seconds",
        "histogram",
        "Phases of this node's replica fetch cycles: round_trip (request to response, with the leader's long poll), apply (append every partition), fsync (how long after the next fetch was sent their fsyncs finished; they run beside it)",
    );
    let c = &super::FOLLOWER_CYCLE;
    for (phase, h) in [
        ("round_trip", &c.round_trip),
        ("apply", &c.apply),
        ("fsync", &c.fsync),
    ] {
        o.histogram(
            "rivulet_follower_fetch_seconds",
            &format!("phase=\"{phase}\""),
            &h.snapshot(),
        );
    }
    o.0
}

/// Client quotas (per measured user/client, live ones only) and the
/// replication throttles.
fn quotas(o: &mut Out, b: &BrokerContext) {
    let live = b.client_quotas.snapshot();
    let label = |kind: crate::client_quotas::QuotaKind, user: &str, client: &str| {
        format!(
            "kind=\"{}\",user=\"{}\",client_id=\"{}\"",
            kind.name(),
            esc(user),
            esc(client)
        )
    };
    o.family(
        "rivulet_client_quota_byte_rate",
        "gauge",
        "Bytes per second measured against a client quota (kind produce or fetch; user or client_id empty where the quota does not tell them apart)",
    );
    for (kind, user, client, rate, _) in &live {
        o.sample(
            "rivulet_client_quota_byte_rate",
            &label(*kind, user, client),
            rate,
        );
    }
    o.family(
        "rivulet_client_quota_throttle_seconds_total",
        "counter",
        "Throttle time handed out to clients over their quota",
    );
    for (kind, user, client, _, ms) in &live {
        o.sample(
            "rivulet_client_quota_throttle_seconds_total",
            &label(*kind, user, client),
            *ms as f64 / 1000.0,
        );
    }
    o.family(
        "rivulet_replication_throttled_bytes_total",
        "counter",
        "Bytes sent (leader) or fetched (follower) under the replication throttle",
    );
    for (side, q) in [
        ("leader", &b.replicas.quotas.leader),
        ("follower", &b.replicas.quotas.follower),
    ] {
        o.sample(
            "rivulet_replication_throttled_bytes_total",
            &format!("side=\"{side}\""),
            q.throttled_bytes.load(Ordering::Relaxed),
        );
    }
}

fn topics(o: &mut Out, b: &BrokerContext) {
    let topics = b.metrics.topics();
    type Get = fn(&super::TopicCounters) -> u64;
    let families: [(&str, &str, Get); 5] = [
        (
            "rivulet_topic_bytes_in_total",
            "Record-batch bytes of produce requests appended (leader only)",
            |c| c.bytes_in.load(Ordering::Relaxed),
        ),
        (
            "rivulet_topic_records_in_total",
            "Records of produce requests appended (leader only)",
            |c| c.records_in.load(Ordering::Relaxed),
        ),
        (
            "rivulet_topic_bytes_out_total",
            "Record bytes returned to consumer fetches",
            |c| c.bytes_out.load(Ordering::Relaxed),
        ),
        (
            "rivulet_topic_records_out_total",
            "Records of the whole batches returned to consumer fetches",
            |c| c.records_out.load(Ordering::Relaxed),
        ),
        (
            "rivulet_replication_bytes_out_total",
            "Record bytes returned to follower fetches",
            |c| c.replication_bytes_out.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, get) in families {
        o.family(name, "counter", help);
        for (topic, c) in &topics {
            o.sample(name, &format!("topic=\"{}\"", esc(topic)), get(c));
        }
    }
}

fn requests(o: &mut Out, b: &BrokerContext) {
    let apis: Vec<_> = b
        .metrics
        .apis()
        .map(|(k, s)| {
            let name = ApiKey::try_from(k).map_or_else(|_| k.to_string(), |a| format!("{a:?}"));
            (format!("api=\"{name}\""), s)
        })
        .collect();
    o.family(
        "rivulet_requests_total",
        "counter",
        "Requests handled, by API",
    );
    for (labels, s) in &apis {
        o.sample(
            "rivulet_requests_total",
            labels,
            s.requests.load(Ordering::Relaxed),
        );
    }
    type Pick = fn(&super::ApiStats) -> &rivulet_storage::histogram::Histogram;
    let phases: [(&str, &str, Pick); 4] = [
        (
            "rivulet_request_queue_seconds",
            "Wait for request memory (queued.max.request.bytes), by API",
            |s| &s.queue,
        ),
        (
            "rivulet_request_local_seconds",
            "Decode, handling and encode on this node, by API",
            |s| &s.local,
        ),
        (
            "rivulet_request_remote_seconds",
            "Wait for other replicas (acks=all) or for data (fetch long poll), by API",
            |s| &s.remote,
        ),
        (
            "rivulet_request_total_seconds",
            "From the size prefix read to the response written, by API",
            |s| &s.total,
        ),
    ];
    for (name, help, pick) in phases {
        o.family(name, "histogram", help);
        for (labels, s) in &apis {
            o.histogram(name, labels, &pick(s).snapshot());
        }
    }
}

/// Partition gauges; returns each local partition's high watermark.
fn partitions(o: &mut Out, b: &BrokerContext) -> HashMap<TopicPartition, i64> {
    let me = b.node_id();
    let mut all = b.replicas.all();
    all.sort_by(|x, y| x.tp.cmp(&y.tp));
    let (mut leaders, mut under, mut under_min, mut parked) = (0, 0, 0, 0);
    let mut rows = Vec::with_capacity(all.len());
    let mut hws = HashMap::with_capacity(all.len());
    for p in &all {
        let st = p.state();
        if st.leader == me {
            leaders += 1;
            if st.isr.len() < st.replicas.len() {
                under += 1;
            }
            if (st.isr.len() as i64) < i64::from(st.min_insync_replicas) {
                under_min += 1;
            }
            parked += p.parked_acks();
        }
        let (leo, hw, size) = {
            let log = p.log.lock();
            (
                log.log_end_offset(),
                log.high_watermark(),
                log.size_in_bytes(),
            )
        };
        hws.insert(p.tp.clone(), hw);
        rows.push((
            format!(
                "topic=\"{}\",partition=\"{}\"",
                esc(&p.tp.topic),
                p.tp.partition
            ),
            leo,
            hw,
            size,
        ));
    }
    o.gauge(
        "rivulet_partition_count",
        "Partitions with a replica on this node",
        all.len(),
    );
    o.gauge(
        "rivulet_leader_count",
        "Partitions this node leads",
        leaders,
    );
    o.gauge(
        "rivulet_under_replicated_partitions",
        "Partitions this node leads whose ISR is smaller than their replica set",
        under,
    );
    o.gauge(
        "rivulet_under_min_isr_partitions",
        "Partitions this node leads whose ISR is below min.insync.replicas",
        under_min,
    );
    o.gauge(
        "rivulet_produce_purgatory_size",
        "acks=all produce requests (per partition) waiting for replication",
        parked,
    );
    o.family(
        "rivulet_isr_shrinks_total",
        "counter",
        "ISR shrinks of partitions this node leads, as the metadata brings them (leader requests and fencing alike)",
    );
    o.sample(
        "rivulet_isr_shrinks_total",
        "",
        b.replicas.isr_shrinks.load(Ordering::Relaxed),
    );
    o.family(
        "rivulet_isr_expands_total",
        "counter",
        "ISR expansions of partitions this node leads, as the metadata brings them",
    );
    o.sample(
        "rivulet_isr_expands_total",
        "",
        b.replicas.isr_expands.load(Ordering::Relaxed),
    );
    type Col = fn(&(String, i64, i64, u64)) -> String;
    let cols: [(&str, &str, Col); 3] = [
        (
            "rivulet_log_end_offset",
            "Log end offset of each local replica",
            |r| r.1.to_string(),
        ),
        (
            "rivulet_high_watermark",
            "High watermark of each local replica",
            |r| r.2.to_string(),
        ),
        (
            "rivulet_log_size_bytes",
            "Bytes of every segment of each local replica",
            |r| r.3.to_string(),
        ),
    ];
    for (name, help, col) in cols {
        o.family(name, "gauge", help);
        for r in &rows {
            o.sample(name, &r.0, col(r));
        }
    }
    hws
}

/// Lag of each committed offset of the groups this node coordinates:
/// the partition's log end as consumers see it (its high watermark, as
/// ListOffsets latest answers) minus the committed offset, for partitions
/// with a replica on this node.
async fn group_lag(o: &mut Out, b: &BrokerContext, hw: &HashMap<TopicPartition, i64>) {
    let committed = b.groups.committed_offsets().await;
    o.family(
        "rivulet_consumer_group_committed_offset",
        "gauge",
        "Committed offset per group and partition (groups this node coordinates)",
    );
    let mut lags = Vec::new();
    for (group, topic, partition, offset) in &committed {
        let labels = format!(
            "group=\"{}\",topic=\"{}\",partition=\"{partition}\"",
            esc(group),
            esc(topic)
        );
        o.sample("rivulet_consumer_group_committed_offset", &labels, offset);
        if let Some(end) = hw.get(&TopicPartition::new(topic.clone(), *partition)) {
            lags.push((labels, (end - offset).max(0)));
        }
    }
    o.family(
        "rivulet_consumer_group_lag",
        "gauge",
        "Log end offset (high watermark) minus the committed offset, per group and partition",
    );
    for (labels, lag) in lags {
        o.sample("rivulet_consumer_group_lag", &labels, lag);
    }
}

fn controller(o: &mut Out, s: &NodeState<'_>) {
    let b = s.broker;
    let image = b.image();
    let active = b.node.controller.active_controller() == Some(b.node_id());
    o.gauge(
        "rivulet_active_controller",
        "1 on the node that is the active controller (the Raft leader), else 0",
        u8::from(active),
    );
    // As Kafka's OfflinePartitionsCount: reported by the active controller.
    let offline = if active {
        image
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| !p.has_leader())
            .count()
    } else {
        0
    };
    o.gauge(
        "rivulet_offline_partitions",
        "Partitions without a leader (reported by the active controller)",
        offline,
    );
    o.gauge(
        "rivulet_metadata_offset",
        "Index of the last metadata record applied to this node's image",
        image.offset,
    );
    let committed = s
        .controller
        .and_then(ControllerNode::committed_index)
        .unwrap_or(image.offset);
    o.gauge(
        "rivulet_metadata_lag",
        "Metadata records committed by the quorum but not yet in this node's image",
        committed.saturating_sub(image.offset),
    );
}
