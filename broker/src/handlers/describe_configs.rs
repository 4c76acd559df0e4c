//! DescribeConfigs: a topic's every config key with its effective value and
//! source (its own override, DYNAMIC_TOPIC, or the broker default,
//! DEFAULT_CONFIG), all writable; and this broker's static settings (for its
//! own id or `""`), all read-only, STATIC_BROKER_CONFIG when they differ
//! from the built-in default. `configuration_keys`, when given and not
//! empty, selects keys. Synonyms and documentation are not reported.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::describe_configs_response::DescribeConfigsSynonym;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use rivulet_controller::logic::CLUSTER_DEFAULT;
use rivulet_controller::MetadataImage;
use rivulet_storage::validate_topic_name;

use super::sb;
use crate::config::{BrokerConfig, LOG_KEYS};
use crate::context::BrokerContext;
use crate::dynamic_config::{self, SOURCE_DYNAMIC_BROKER, SOURCE_DYNAMIC_DEFAULT_BROKER};
use crate::errors;
use crate::topic_configs::{
    config_type, topic_entries, ConfigResourceError, RESOURCE_BROKER, RESOURCE_TOPIC,
    SOURCE_DEFAULT, SOURCE_DYNAMIC_TOPIC, SOURCE_STATIC_BROKER,
};

/// One reported config.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    value: String,
    source: i8,
    read_only: bool,
}

pub fn handle(
    b: &BrokerContext,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let image = b.image();
    let layers = req.include_synonyms.then(|| Layers::new(b));
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let wanted: Option<HashSet<String>> = r
                .configuration_keys
                .filter(|k| !k.is_empty())
                .map(|k| k.iter().map(|s| s.to_string()).collect());
            // A topic's overrides, for its entries' synonyms.
            let overrides = (r.resource_type == RESOURCE_TOPIC)
                .then(|| image.topic(&r.resource_name).map(|t| &t.configs))
                .flatten();
            match entries(b, &image, r.resource_type, &r.resource_name) {
                Ok(list) => base.with_configs(
                    list.into_iter()
                        .filter(|e| wanted.as_ref().is_none_or(|w| w.contains(&e.name)))
                        .map(|e| {
                            let synonyms = layers
                                .as_ref()
                                .map(|l| l.synonyms(&image, overrides, r.resource_type, &e.name))
                                .unwrap_or_default();
                            DescribeConfigsResourceResult::default()
                                .with_synonyms(synonyms)
                                .with_config_type(if version >= 3 {
                                    config_type(&e.name)
                                } else {
                                    0
                                })
                                .with_name(sb(e.name))
                                .with_value(Some(sb(e.value)))
                                .with_read_only(e.read_only)
                                .with_config_source(e.source)
                                .with_is_sensitive(false)
                                .with_documentation(None)
                        })
                        .collect(),
                ),
                Err(e) => base
                    .with_error_code(errors::config_resource(&e))
                    .with_error_message(Some(sb(e.to_string()))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn entries(
    b: &BrokerContext,
    image: &MetadataImage,
    resource_type: i8,
    name: &str,
) -> Result<Vec<Entry>, ConfigResourceError> {
    match resource_type {
        RESOURCE_TOPIC => {
            validate_topic_name(name)
                .map_err(|e| ConfigResourceError::InvalidTopicName(e.to_string()))?;
            let topic = image
                .topic(name)
                .ok_or_else(|| ConfigResourceError::UnknownTopic(name.to_string()))?;
            Ok(topic_entries(&b.topic_defaults(image), &topic.configs)
                .into_iter()
                .map(|(name, value, source)| Entry {
                    name,
                    value,
                    source,
                    read_only: false,
                })
                .collect())
        }
        RESOURCE_BROKER => {
            let broker = dynamic_config::resource(name, b.node_id())?;
            if broker == CLUSTER_DEFAULT {
                // As Kafka: the cluster-wide dynamic defaults alone.
                return Ok(dynamic_config::current(image, broker)
                    .into_iter()
                    .map(|(name, value)| Entry {
                        name,
                        value,
                        source: SOURCE_DYNAMIC_DEFAULT_BROKER,
                        read_only: false,
                    })
                    .collect());
            }
            let built_in: BTreeMap<String, String> = BrokerConfig::from_props(&BTreeMap::new())
                .map(|c| broker_settings(&c).into_iter().collect())
                .unwrap_or_default();
            Ok(broker_settings(&b.config)
                .into_iter()
                .map(|(name, value)| {
                    let dynamic = [
                        (broker, SOURCE_DYNAMIC_BROKER),
                        (CLUSTER_DEFAULT, SOURCE_DYNAMIC_DEFAULT_BROKER),
                    ]
                    .into_iter()
                    .find_map(|(layer, source)| {
                        image
                            .broker_config(layer, &name)
                            .map(|v| (v.clone(), source))
                    });
                    let (value, source) = match dynamic {
                        Some(found) => found,
                        None if built_in.get(&name) == Some(&value) => (value, SOURCE_DEFAULT),
                        None => (value, SOURCE_STATIC_BROKER),
                    };
                    Entry {
                        read_only: !dynamic_config::is_dynamic(&name),
                        name,
                        value,
                        source,
                    }
                })
                .collect())
        }
        other => Err(ConfigResourceError::UnsupportedResourceType(other)),
    }
}

/// The layers a config's value may come from, for DescribeConfigs'
/// synonyms (v1+ with `include_synonyms`): Kafka's list, strongest first —
/// the topic's override, this broker's dynamic config, the cluster-wide
/// dynamic default, the config file, the built-in default — each under
/// the name it has there (`retention.ms` for the topic, `log.retention.ms`
/// for the broker).
struct Layers {
    node_id: i32,
    file: BTreeMap<String, String>,
    built_in: BTreeMap<String, String>,
}

impl Layers {
    fn new(b: &BrokerContext) -> Layers {
        Layers {
            node_id: b.node_id(),
            file: broker_settings(&b.config).into_iter().collect(),
            built_in: BrokerConfig::from_props(&BTreeMap::new())
                .map(|c| broker_settings(&c).into_iter().collect())
                .unwrap_or_default(),
        }
    }

    fn synonyms(
        &self,
        image: &MetadataImage,
        overrides: Option<&BTreeMap<String, String>>,
        resource_type: i8,
        name: &str,
    ) -> Vec<DescribeConfigsSynonym> {
        let mut out = Vec::new();
        let mut push = |name: &str, value: &str, source: i8| {
            out.push(
                DescribeConfigsSynonym::default()
                    .with_name(sb(name.to_string()))
                    .with_value(Some(sb(value.to_string())))
                    .with_source(source),
            )
        };
        if let Some(v) = overrides.and_then(|o| o.get(name)) {
            push(name, v, SOURCE_DYNAMIC_TOPIC);
        }
        let broker_key = if resource_type == RESOURCE_TOPIC {
            dynamic_config::broker_key(name)
        } else {
            Some(name)
        };
        let Some(key) = broker_key else {
            return out;
        };
        let dynamic = [
            (self.node_id, SOURCE_DYNAMIC_BROKER),
            (CLUSTER_DEFAULT, SOURCE_DYNAMIC_DEFAULT_BROKER),
        ];
        for (layer, source) in dynamic {
            if let Some(v) = image.broker_config(layer, key) {
                push(key, v, source);
            }
        }
        let built_in = self.built_in.get(key);
        if let Some(v) = self.file.get(key).filter(|v| Some(*v) != built_in) {
            push(key, v, SOURCE_STATIC_BROKER);
        }
        if let Some(v) = built_in {
            push(key, v, SOURCE_DEFAULT);
        }
        out
    }
}

/// `(key, value)` of the broker settings a client may want to see, with
/// Kafka's names: the `log.*` defaults every topic inherits and the
/// broker's own limits and defaults.
fn broker_settings(c: &BrokerConfig) -> Vec<(String, String)> {
    let s = &c.storage;
    let mut out: Vec<(String, String)> = vec![
        ("node.id".into(), c.node_id.to_string()),
        (
            "listeners".into(),
            c.listeners
                .iter()
                .map(|l| format!("{}://{}", l.name, l.bind_addr()))
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "advertised.listeners".into(),
            c.listeners
                .iter()
                .map(|l| format!("{}://{}", l.name, l.advertised_addr()))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("controller.listener".into(), c.controller_listener.clone()),
        ("controller.quorum.voters".into(), c.quorum_voters.clone()),
        ("data.dir".into(), c.data_dir.display().to_string()),
        ("num.partitions".into(), c.num_partitions.to_string()),
        (
            "default.replication.factor".into(),
            c.default_replication_factor.to_string(),
        ),
        (
            "min.insync.replicas".into(),
            c.min_insync_replicas.to_string(),
        ),
        (
            "auto.create.topics.enable".into(),
            c.auto_create_topics.to_string(),
        ),
        (
            "socket.request.max.bytes".into(),
            c.socket_request_max_bytes.to_string(),
        ),
        ("max.connections".into(), c.max_connections.to_string()),
        (
            "connections.max.idle.ms".into(),
            c.connections_max_idle_ms.to_string(),
        ),
        (
            "broker.session.timeout.ms".into(),
            c.session_timeout_ms.to_string(),
        ),
        (
            "broker.heartbeat.interval.ms".into(),
            c.heartbeat_interval_ms.to_string(),
        ),
        ("max.open.logs".into(), s.max_open_logs.to_string()),
        (
            "num.recovery.threads".into(),
            s.recovery_threads.to_string(),
        ),
        (
            "log.retention.check.interval.ms".into(),
            s.retention_check_interval_ms.to_string(),
        ),
        ("log.cleaner.enable".into(), s.cleaner_enabled.to_string()),
        (
            "leader.replication.throttled.rate".into(),
            c.leader_replication_throttled_rate.to_string(),
        ),
        (
            "follower.replication.throttled.rate".into(),
            c.follower_replication_throttled_rate.to_string(),
        ),
        (
            "replica.alter.log.dirs.io.max.bytes.per.second".into(),
            c.replica_alter_log_dirs_io_max_bytes_per_second.to_string(),
        ),
    ];
    for (broker_key, log_key) in LOG_KEYS {
        if let Some(v) = s.log_defaults.get(log_key) {
            out.push((broker_key.to_string(), v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_settings_name_every_log_default_once() {
        let mut props = BTreeMap::new();
        props.insert("log.retention.ms".to_string(), "1234".to_string());
        let c = BrokerConfig::from_props(&props).unwrap();
        let settings = broker_settings(&c);
        let names: HashSet<&str> = settings.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names.len(), settings.len(), "no key twice");
        for (broker_key, _) in LOG_KEYS {
            assert!(names.contains(broker_key), "{broker_key}");
        }
        assert!(settings.contains(&("log.retention.ms".to_string(), "1234".to_string())));
        assert!(settings.contains(&("log.cleanup.policy".to_string(), "delete".to_string())));
    }
}
