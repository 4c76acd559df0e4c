//! The broker keys this node knows: those that set a topic default (a
//! log config key under its broker name) and every other one with its
//! default, in the order `config/single.toml` documents them. Parsing and
//! checking their values is [`super::BrokerConfig::from_props`]'s.

/// Broker keys that map onto a log (topic) config key.
pub const LOG_KEYS: &[(&str, &str)] = &[
    ("log.segment.bytes", "segment.bytes"),
    ("log.roll.ms", "segment.ms"),
    ("log.index.size.max.bytes", "segment.index.bytes"),
    ("log.index.interval.bytes", "index.interval.bytes"),
    ("log.retention.ms", "retention.ms"),
    ("log.retention.bytes", "retention.bytes"),
    ("log.cleanup.policy", "cleanup.policy"),
    ("log.cleaner.delete.retention.ms", "delete.retention.ms"),
    ("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms"),
    ("log.cleaner.max.compaction.lag.ms", "max.compaction.lag.ms"),
    (
        "log.cleaner.min.cleanable.ratio",
        "min.cleanable.dirty.ratio",
    ),
    ("message.max.bytes", "max.message.bytes"),
    ("log.flush.policy", "flush.policy"),
    ("log.flush.interval.ms", "flush.ms"),
    ("log.message.timestamp.type", "message.timestamp.type"),
    (
        "log.message.timestamp.before.max.ms",
        "message.timestamp.before.max.ms",
    ),
    (
        "log.message.timestamp.after.max.ms",
        "message.timestamp.after.max.ms",
    ),
    // Kafka's broker-level name has no `log.` prefix.
    ("compression.type", "compression.type"),
    ("compression.gzip.level", "compression.gzip.level"),
    ("compression.lz4.level", "compression.lz4.level"),
    ("compression.zstd.level", "compression.zstd.level"),
];

/// Every other key with its default, in the order `config/single.toml`
/// documents them.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("node.id", "1"),
    ("listeners", "127.0.0.1:9092"),
    ("advertised.listeners", ""),
    (
        "listener.security.protocol.map",
        crate::listeners::DEFAULT_PROTOCOL_MAP,
    ),
    ("inter.broker.listener.name", ""),
    ("controller.listener", "127.0.0.1:9192"),
    ("ssl.certificate.location", ""),
    ("ssl.key.location", ""),
    ("ssl.ca.location", ""),
    ("ssl.client.auth", "none"),
    ("controller.quorum.voters", ""),
    ("data.dir", "./rivulet-data"),
    ("cluster.id", ""),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("min.insync.replicas", "1"),
    ("auto.create.topics.enable", "true"),
    ("socket.request.max.bytes", "104857600"),
    ("max.connections", "10000"),
    ("queued.max.request.bytes", "104857600"),
    ("request.body.timeout.ms", "60000"),
    ("connections.max.idle.ms", "600000"),
    ("broker.session.timeout.ms", "9000"),
    ("broker.heartbeat.interval.ms", "2000"),
    ("broker.fence.on.refused.connection", "true"),
    ("controller.quorum.election.timeout.ms", "500"),
    ("replica.lag.time.max.ms", "30000"),
    ("max.open.logs", "100000"),
    ("num.recovery.threads", "2"),
    ("log.retention.check.interval.ms", "300000"),
    ("log.cleaner.enable", "true"),
    ("log.dir.free.space.warn.bytes", "1073741824"),
    ("log.dir.free.space.check.interval.ms", "10000"),
    ("log.page.cache.window.bytes", "67108864"),
    ("offsets.topic.num.partitions", "10"),
    ("offsets.topic.replication.factor", "3"),
    ("offsets.retention.minutes", "10080"),
    ("group.initial.rebalance.delay.ms", "100"),
    ("group.min.session.timeout.ms", "6000"),
    ("group.max.session.timeout.ms", "1800000"),
    ("group.max.size", "1000"),
    ("group.max.member.metadata.bytes", "1048576"),
    ("transaction.state.log.num.partitions", "10"),
    ("transaction.state.log.replication.factor", "3"),
    ("transaction.state.log.min.isr", "2"),
    ("transaction.max.timeout.ms", "900000"),
    ("transactional.id.expiration.ms", "604800000"),
    (
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "10000",
    ),
    ("authorizer.class.name", ""),
    ("super.users", ""),
    ("allow.everyone.if.no.acl.found", "false"),
    ("group.consumer.session.timeout.ms", "45000"),
    ("group.consumer.heartbeat.interval.ms", "5000"),
    ("group.consumer.max.size", "1000"),
    ("group.consumer.assignors", "uniform,range"),
    // SASL (crate::sasl). Kafka's default sasl.enabled.mechanisms is
    // GSSAPI, which Rivulet does not have.
    (
        "sasl.enabled.mechanisms",
        "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
    ),
    ("connections.max.reauth.ms", "0"),
    ("sasl.server.max.receive.size", "524288"),
    ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
    ("inter.broker.sasl.username", ""),
    ("inter.broker.sasl.password", ""),
    ("sasl.scram.bootstrap.users", ""),
    // Metrics, health and logs (crate::metrics, README "Metrics").
    ("metrics.listener", "127.0.0.1:9292"),
    ("log.format", "text"),
    // Leader balance (issue 14, admin operations).
    ("auto.leader.rebalance.enable", "true"),
    ("leader.imbalance.per.broker.percentage", "10"),
    ("leader.imbalance.check.interval.seconds", "300"),
    ("leader.replication.throttled.rate", "9223372036854775807"),
    ("follower.replication.throttled.rate", "9223372036854775807"),
    (
        "replica.alter.log.dirs.io.max.bytes.per.second",
        "9223372036854775807",
    ),
    // Client quotas (crate::client_quotas): how rates are measured.
    ("quota.window.num", "11"),
    ("quota.window.size.seconds", "1"),
    // Pipelining on one connection (crate::connection, issue 15).
    ("connection.max.pipelined.requests", "16"),
    // Many partitions (issue 15): -1 derives the limit from the open-files
    // limit (rivulet_controller::capacity).
    ("max.partitions.per.node", "-1"),
];
