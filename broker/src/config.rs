//! Broker configuration: embedded defaults, an optional TOML file and
//! `--set key=value` overrides, all with Kafka's property names.
//!
//! The TOML may nest (`[log] retention.ms = 1000`) or quote dotted keys
//! (`"log.retention.ms" = 1000`); both flatten to `log.retention.ms`. Every
//! key is known and validated: an unknown key or a bad value is an error
//! naming the key, the value and what was expected.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rivulet_protocol::tls::{ClientAuth, TlsFiles};
use rivulet_storage::{LogConfig, StorageConfig};
use thiserror::Error;

use crate::listeners::{
    parse_listeners, parse_protocol_map, InvalidListener, ListenerConfig, SecurityProtocol,
};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("unknown config key '{0}'")]
    UnknownKey(String),
    #[error("invalid value '{value}' for {key}: expected {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: String,
    },
    #[error("--set expects key=value, got '{0}'")]
    BadOverride(String),
}

impl From<crate::sasl_config::InvalidSasl> for ConfigError {
    fn from(e: crate::sasl_config::InvalidSasl) -> Self {
        ConfigError::Invalid {
            key: e.key,
            value: e.value,
            expected: e.expected,
        }
    }
}

impl From<InvalidListener> for ConfigError {
    fn from(e: InvalidListener) -> Self {
        ConfigError::Invalid {
            key: e.key,
            value: e.value,
            expected: e.expected,
        }
    }
}

mod keys;
pub use keys::{DEFAULTS, LOG_KEYS};

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    /// The first listener's `host:port`.
    pub listener: String,
    /// The first listener's advertised `host:port`.
    pub advertised_listener: String,
    /// Every listener, in `listeners` order (at least one).
    pub listeners: Vec<ListenerConfig>,
    /// The listener other brokers reach this one on, and this one them
    /// (replica fetchers, transaction links): `inter.broker.listener.name`,
    /// by default the first listener.
    pub inter_broker_listener: String,
    /// The controller listener's `host:port`.
    pub controller_listener: String,
    /// Its security protocol (every voter's: they share one trust store).
    pub controller_protocol: SecurityProtocol,
    /// `ssl.certificate.location`, `ssl.key.location`, `ssl.ca.location`:
    /// this node's PEM files for every TLS listener and for its TLS
    /// connections to other nodes.
    pub ssl: TlsFiles,
    /// `ssl.client.auth` of every TLS listener without its own.
    pub ssl_client_auth: ClientAuth,
    /// `listener.name.<name>.ssl.client.auth`, by listener name.
    pub listener_client_auth: BTreeMap<String, ClientAuth>,
    pub quorum_voters: String,
    pub data_dir: PathBuf,
    pub cluster_id: Option<String>,
    pub num_partitions: i32,
    pub default_replication_factor: i32,
    pub min_insync_replicas: i32,
    pub auto_create_topics: bool,
    pub socket_request_max_bytes: usize,
    pub max_connections: usize,
    /// Bytes of requests (frames and their decoded form) the broker holds at
    /// once across connections (`queued.max.request.bytes`); `None` is
    /// unbounded (-1).
    pub queued_max_request_bytes: Option<usize>,
    /// A frame's body must arrive within this long after its size prefix,
    /// and its response be taken within this long (`request.body.timeout.ms`),
    /// so a stalled client cannot keep its share of the request memory pool.
    pub request_body_timeout_ms: u64,
    pub connections_max_idle_ms: u64,
    /// Requests of one connection read and handled while earlier ones wait
    /// for their responses to be written (`connection.max.pipelined.requests`;
    /// 1: one at a time, as Kafka).
    pub max_pipelined_requests: usize,
    pub session_timeout_ms: i64,
    pub heartbeat_interval_ms: u64,
    /// `broker.fence.on.refused.connection`: the active controller fences a
    /// broker as soon as its controller port refuses connections (its
    /// process is gone) instead of waiting out its session.
    pub fence_on_refused_connection: bool,
    /// `controller.quorum.election.timeout.ms`: a voter that has not heard
    /// from the active controller for a random time between this and twice
    /// this starts an election (Raft heartbeats go every 100 ms).
    pub election_timeout_ms: u64,
    /// A follower that has not caught up with the leader's log end for this
    /// long leaves the ISR (`replica.lag.time.max.ms`).
    pub replica_lag_time_max_ms: u64,
    /// `auto.leader.rebalance.enable`: the active controller moves
    /// leadership back to preferred replicas.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.per.broker.percentage`.
    pub leader_imbalance_percentage: u32,
    /// `max.partitions.per.node`: most partition replicas a node may host
    /// (`None`, from -1: what the open-files limit allows).
    pub max_partitions_per_node: Option<usize>,
    /// `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval_s: u64,
    /// `leader.replication.throttled.rate`: bytes/s a leader sends to its
    /// throttled replicas (crate::replication_quota; i64::MAX: unlimited).
    pub leader_replication_throttled_rate: i64,
    /// `follower.replication.throttled.rate`: bytes/s a follower fetches
    /// for its throttled replicas.
    pub follower_replication_throttled_rate: i64,
    /// `replica.alter.log.dirs.io.max.bytes.per.second`: nothing to bound
    /// with one data dir; kept so it can be described and set as in Kafka.
    pub replica_alter_log_dirs_io_max_bytes_per_second: i64,
    /// `quota.window.num` × `quota.window.size.seconds`: the windows client
    /// quota rates are measured over.
    pub quota_windows: crate::client_quotas::Windows,
    pub storage: StorageConfig,
    pub coordinator: crate::group::coordinator::CoordinatorConfig,
    pub transactions: crate::txn::TxnCoordinatorConfig,
    /// `authorizer.class.name` and its settings; `None` allows everything.
    pub authorizer: Option<crate::authorizer::AuthorizerConfig>,
    /// SASL: mechanisms, re-authentication, inter-broker credentials,
    /// bootstrap users.
    pub sasl: crate::sasl_config::SaslConfig,
    /// `metrics.listener` and `log.format`.
    pub metrics: crate::metrics::MetricsConfig,
}

fn int<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    value: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    match value.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(ConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            expected: format!("an integer between {min} and {max}"),
        }),
    }
}

fn boolean(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            expected: "true or false".into(),
        }),
    }
}

/// A TOML table as the broker reads it: dotted keys with string values.
pub fn flatten_toml(table: &toml::Table) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    flatten("", table, &mut out);
    out
}

/// Flatten a TOML table into dotted keys with string values.
fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            toml::Value::Array(a) => {
                let parts: Vec<String> = a
                    .iter()
                    .map(|x| match x {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.insert(key, parts.join(","));
            }
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

impl BrokerConfig {
    /// Defaults, then the file (if any), then `key=value` overrides.
    pub fn load(file: Option<&std::path::Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let mut props = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let table: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| ConfigError::Toml {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
            props = flatten_toml(&table);
        }
        for o in overrides {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| ConfigError::BadOverride(o.clone()))?;
            props.insert(k.trim().to_string(), v.trim().to_string());
        }
        Self::from_props(&props)
    }

    /// Build from flat properties over the defaults.
    pub fn from_props(props: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut all: BTreeMap<String, String> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut log = LogConfig::default();
        // Kafka's per-listener override, listener.name.<name>.ssl.client.auth
        // (the name in lower case).
        let mut listener_auth: BTreeMap<String, (String, String)> = BTreeMap::new();
        // listener.name.<name>.sasl.enabled.mechanisms
        let mut listener_sasl: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (k, v) in props {
            let sasl_per_listener = k
                .strip_prefix("listener.name.")
                .and_then(|rest| rest.strip_suffix(".sasl.enabled.mechanisms"));
            if let Some(name) = sasl_per_listener {
                listener_sasl.insert(name.to_lowercase(), (k.clone(), v.clone()));
                continue;
            }
            let per_listener = k
                .strip_prefix("listener.name.")
                .and_then(|rest| rest.strip_suffix(".ssl.client.auth"));
            if let Some(name) = per_listener {
                listener_auth.insert(name.to_lowercase(), (k.clone(), v.clone()));
            } else if let Some((_, log_key)) = LOG_KEYS.iter().find(|(bk, _)| bk == k) {
                log.set(log_key, v).map_err(|e| ConfigError::Invalid {
                    key: k.clone(),
                    value: v.clone(),
                    expected: e.to_string(),
                })?;
            } else if all.contains_key(k) {
                all.insert(k.clone(), v.clone());
            } else {
                return Err(ConfigError::UnknownKey(k.clone()));
            }
        }
        let get = |k: &str| all.get(k).cloned().unwrap_or_default();
        let node_id = int("node.id", &get("node.id"), 0, i32::MAX)?;
        let protocols = parse_protocol_map(&get("listener.security.protocol.map"))?;
        let listeners =
            parse_listeners(&get("listeners"), &get("advertised.listeners"), &protocols)?;
        let (listener, advertised_listener) = match listeners.first() {
            Some(l) => (l.bind_addr(), l.advertised_addr()),
            None => (String::new(), String::new()),
        };
        let inter_broker_listener = match get("inter.broker.listener.name").trim() {
            "" => listeners
                .first()
                .map(|l| l.name.clone())
                .unwrap_or_default(),
            name if listeners.iter().any(|l| l.name == name) => name.to_string(),
            name => {
                return Err(ConfigError::Invalid {
                    key: "inter.broker.listener.name".into(),
                    value: name.into(),
                    expected: "the name of one of the listeners".into(),
                })
            }
        };
        let (controller_listener, controller_protocol) = {
            let v = get("controller.listener");
            let parsed = parse_listeners(&v, "", &protocols).map_err(|e| ConfigError::Invalid {
                key: "controller.listener".into(),
                value: v.clone(),
                expected: e.expected,
            })?;
            match parsed.as_slice() {
                [one] => (one.bind_addr(), one.protocol),
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "controller.listener".into(),
                        value: v,
                        expected: "one [NAME://]host:port".into(),
                    })
                }
            }
        };
        let path =
            |k: &str| Some(PathBuf::from(get(k).trim())).filter(|p| !p.as_os_str().is_empty());
        let ssl = TlsFiles {
            certificate: path("ssl.certificate.location"),
            key: path("ssl.key.location"),
            ca: path("ssl.ca.location"),
        };
        let client_auth = |key: &str, value: &str| {
            ClientAuth::parse(value).ok_or_else(|| ConfigError::Invalid {
                key: key.into(),
                value: value.into(),
                expected: "required, requested or none".into(),
            })
        };
        let ssl_client_auth = client_auth("ssl.client.auth", &get("ssl.client.auth"))?;
        let mut listener_client_auth = BTreeMap::new();
        for (lower, (key, value)) in &listener_auth {
            let Some(l) = listeners.iter().find(|l| l.name.to_lowercase() == *lower) else {
                return Err(ConfigError::Invalid {
                    key: key.clone(),
                    value: value.clone(),
                    expected: "a key naming one of the listeners".into(),
                });
            };
            listener_client_auth.insert(l.name.clone(), client_auth(key, value)?);
        }
        let quorum_voters = match get("controller.quorum.voters").trim() {
            "" => format!("{node_id}@{controller_listener}"),
            v => v.to_string(),
        };
        rivulet_controller::parse_voters(&quorum_voters).map_err(|e| ConfigError::Invalid {
            key: "controller.quorum.voters".into(),
            value: quorum_voters.clone(),
            expected: e.to_string(),
        })?;
        let data_dir = PathBuf::from(get("data.dir"));
        if data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                key: "data.dir".into(),
                value: String::new(),
                expected: "a directory path".into(),
            });
        }
        let cluster_id = Some(get("cluster.id")).filter(|s| !s.trim().is_empty());
        let storage = StorageConfig {
            log_defaults: log,
            max_open_logs: int("max.open.logs", &get("max.open.logs"), 1, 10_000_000)?,
            recovery_threads: int("num.recovery.threads", &get("num.recovery.threads"), 1, 64)?,
            retention_check_interval_ms: int(
                "log.retention.check.interval.ms",
                &get("log.retention.check.interval.ms"),
                1,
                i64::MAX / 2,
            )?,
            cleaner_enabled: boolean("log.cleaner.enable", &get("log.cleaner.enable"))?,
            free_space_warn_bytes: int(
                "log.dir.free.space.warn.bytes",
                &get("log.dir.free.space.warn.bytes"),
                0,
                u64::MAX / 2,
            )?,
            page_cache_window_bytes: int(
                "log.page.cache.window.bytes",
                &get("log.page.cache.window.bytes"),
                0,
                u64::MAX / 2,
            )?,
            free_space_check_interval_ms: int(
                "log.dir.free.space.check.interval.ms",
                &get("log.dir.free.space.check.interval.ms"),
                100,
                i64::MAX / 2,
            )?,
            ..StorageConfig::default()
        };
        let socket_request_max_bytes: usize = int(
            "socket.request.max.bytes",
            &get("socket.request.max.bytes"),
            1024,
            i32::MAX as usize,
        )?;
        // Like Kafka, the request memory pool must hold the largest request.
        let queued_max_request_bytes = match get("queued.max.request.bytes").trim() {
            "-1" => None,
            v => Some(int(
                "queued.max.request.bytes",
                v,
                socket_request_max_bytes,
                i64::MAX as usize,
            )?),
        };
        let sasl = crate::sasl_config::SaslConfig::from_props(&get, &listener_sasl, &listeners)?;
        let metrics =
            crate::metrics::MetricsConfig::from_keys(&get, props.contains_key("metrics.listener"))?;
        Ok(BrokerConfig {
            sasl,
            metrics,
            node_id,
            listener,
            advertised_listener,
            listeners,
            inter_broker_listener,
            controller_listener,
            controller_protocol,
            ssl,
            ssl_client_auth,
            listener_client_auth,
            quorum_voters,
            data_dir,
            cluster_id,
            num_partitions: int("num.partitions", &get("num.partitions"), 1, 10_000)?,
            default_replication_factor: int(
                "default.replication.factor",
                &get("default.replication.factor"),
                1,
                i16::MAX as i32,
            )?,
            min_insync_replicas: int(
                "min.insync.replicas",
                &get("min.insync.replicas"),
                1,
                i16::MAX as i32,
            )?,
            auto_create_topics: boolean(
                "auto.create.topics.enable",
                &get("auto.create.topics.enable"),
            )?,
            socket_request_max_bytes,
            max_connections: int("max.connections", &get("max.connections"), 1, 1_000_000)?,
            queued_max_request_bytes,
            request_body_timeout_ms: int(
                "request.body.timeout.ms",
                &get("request.body.timeout.ms"),
                1,
                u64::MAX / 2,
            )?,
            connections_max_idle_ms: int(
                "connections.max.idle.ms",
                &get("connections.max.idle.ms"),
                1,
                u64::MAX / 2,
            )?,
            max_pipelined_requests: int(
                "connection.max.pipelined.requests",
                &get("connection.max.pipelined.requests"),
                1,
                1024,
            )?,
            session_timeout_ms: int(
                "broker.session.timeout.ms",
                &get("broker.session.timeout.ms"),
                100,
                i64::MAX / 2,
            )?,
            heartbeat_interval_ms: int(
                "broker.heartbeat.interval.ms",
                &get("broker.heartbeat.interval.ms"),
                10,
                u64::MAX / 2,
            )?,
            fence_on_refused_connection: boolean(
                "broker.fence.on.refused.connection",
                &get("broker.fence.on.refused.connection"),
            )?,
            election_timeout_ms: int(
                "controller.quorum.election.timeout.ms",
                &get("controller.quorum.election.timeout.ms"),
                200,
                600_000,
            )?,
            replica_lag_time_max_ms: int(
                "replica.lag.time.max.ms",
                &get("replica.lag.time.max.ms"),
                10,
                u64::MAX / 2,
            )?,
            auto_leader_rebalance: boolean(
                "auto.leader.rebalance.enable",
                &get("auto.leader.rebalance.enable"),
            )?,
            leader_imbalance_percentage: int(
                "leader.imbalance.per.broker.percentage",
                &get("leader.imbalance.per.broker.percentage"),
                0,
                100,
            )?,
            max_partitions_per_node: usize::try_from(int(
                "max.partitions.per.node",
                &get("max.partitions.per.node"),
                -1i64,
                100_000_000,
            )?)
            .ok(),
            leader_imbalance_check_interval_s: int(
                "leader.imbalance.check.interval.seconds",
                &get("leader.imbalance.check.interval.seconds"),
                1,
                u64::MAX / 2000,
            )?,
            leader_replication_throttled_rate: int(
                "leader.replication.throttled.rate",
                &get("leader.replication.throttled.rate"),
                0,
                i64::MAX,
            )?,
            follower_replication_throttled_rate: int(
                "follower.replication.throttled.rate",
                &get("follower.replication.throttled.rate"),
                0,
                i64::MAX,
            )?,
            replica_alter_log_dirs_io_max_bytes_per_second: int(
                "replica.alter.log.dirs.io.max.bytes.per.second",
                &get("replica.alter.log.dirs.io.max.bytes.per.second"),
                0,
                i64::MAX,
            )?,
            quota_windows: crate::client_quotas::Windows {
                samples: int("quota.window.num", &get("quota.window.num"), 1usize, 1000)?,
                window_ms: int(
                    "quota.window.size.seconds",
                    &get("quota.window.size.seconds"),
                    1u64,
                    3600,
                )? * 1000,
            },
            storage,
            coordinator: crate::group::coordinator::CoordinatorConfig {
                offsets_partitions: int(
                    "offsets.topic.num.partitions",
                    &get("offsets.topic.num.partitions"),
                    1,
                    1000,
                )?,
                offsets_replication_factor: int(
                    "offsets.topic.replication.factor",
                    &get("offsets.topic.replication.factor"),
                    1,
                    i16::MAX as i32,
                )?,
                offsets_retention_ms: int::<i64>(
                    "offsets.retention.minutes",
                    &get("offsets.retention.minutes"),
                    1,
                    i64::MAX / 60_000 / 2,
                )? * 60_000,
                group: crate::group::state::GroupConfig {
                    initial_rebalance_delay_ms: int(
                        "group.initial.rebalance.delay.ms",
                        &get("group.initial.rebalance.delay.ms"),
                        0,
                        i64::MAX / 2,
                    )?,
                    min_session_timeout_ms: int(
                        "group.min.session.timeout.ms",
                        &get("group.min.session.timeout.ms"),
                        1,
                        i32::MAX,
                    )?,
                    max_session_timeout_ms: int(
                        "group.max.session.timeout.ms",
                        &get("group.max.session.timeout.ms"),
                        1,
                        i32::MAX,
                    )?,
                    max_members: int("group.max.size", &get("group.max.size"), 1, 1_000_000)?,
                    max_member_metadata_bytes: int(
                        "group.max.member.metadata.bytes",
                        &get("group.max.member.metadata.bytes"),
                        1024,
                        i32::MAX as usize,
                    )?,
                },
                timer_tick: crate::group::coordinator::DEFAULT_TIMER_TICK,
                consumer: crate::group::consumer::ConsumerGroupConfig::from_keys(&get)?,
            },
            transactions: crate::txn::TxnCoordinatorConfig {
                partitions: int(
                    "transaction.state.log.num.partitions",
                    &get("transaction.state.log.num.partitions"),
                    1,
                    1000,
                )?,
                replication_factor: int(
                    "transaction.state.log.replication.factor",
                    &get("transaction.state.log.replication.factor"),
                    1,
                    i16::MAX as i32,
                )?,
                min_isr: int(
                    "transaction.state.log.min.isr",
                    &get("transaction.state.log.min.isr"),
                    1,
                    i16::MAX as i32,
                )?,
                max_timeout_ms: int(
                    "transaction.max.timeout.ms",
                    &get("transaction.max.timeout.ms"),
                    1,
                    i32::MAX,
                )?,
                id_expiration_ms: int(
                    "transactional.id.expiration.ms",
                    &get("transactional.id.expiration.ms"),
                    1,
                    i64::MAX / 2,
                )?,
                abort_check_interval_ms: int(
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                    &get("transaction.abort.timed.out.transaction.cleanup.interval.ms"),
                    10,
                    u64::MAX / 2,
                )?,
            },
            authorizer: crate::authorizer::AuthorizerConfig::from_keys(
                &get("authorizer.class.name"),
                &get("super.users"),
                &get("allow.everyone.if.no.acl.found"),
            )?,
        })
    }

    /// The first listener's advertised host and port.
    pub fn advertised_host_port(&self) -> (String, i32) {
        match self.listeners.first() {
            Some(l) => (l.advertised_host.clone(), i32::from(l.advertised_port)),
            None => (String::new(), 9092),
        }
    }

    /// The advertised host and port of the listener named `name`, for
    /// Metadata answered to a client of that listener.
    pub fn advertised_for(&self, name: &str) -> (String, i32) {
        match self.listeners.iter().find(|l| l.name == name) {
            Some(l) => (l.advertised_host.clone(), i32::from(l.advertised_port)),
            None => self.advertised_host_port(),
        }
    }

    /// The `ssl.client.auth` of listener `name`: its own
    /// (`listener.name.<name>.ssl.client.auth`), else the broker-wide one —
    /// but not on a SASL_SSL listener, whose clients authenticate with SASL:
    /// only its own setting asks them for a certificate (Kafka's rule,
    /// KIP-684), so `ssl.client.auth=required` for an SSL listener does not
    /// lock certificate-less SASL clients out of the SASL_SSL one.
    pub fn client_auth_for(&self, name: &str) -> ClientAuth {
        if let Some(auth) = self.listener_client_auth.get(name) {
            return *auth;
        }
        let sasl_ssl = self
            .listeners
            .iter()
            .any(|l| l.name == name && l.protocol == SecurityProtocol::SaslSsl);
        if sasl_ssl {
            ClientAuth::None
        } else {
            self.ssl_client_auth
        }
    }

    /// Whether any connection of this node, served or dialled, uses TLS.
    pub fn uses_tls(&self) -> bool {
        self.controller_protocol.uses_tls() || self.listeners.iter().any(|l| l.protocol.uses_tls())
    }
}

#[cfg(test)]
mod tests;
