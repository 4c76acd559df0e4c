use super::*;

fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_need_no_config() {
    let c = BrokerConfig::from_props(&BTreeMap::new()).unwrap();
    assert_eq!(c.listener, "127.0.0.1:9092");
    assert_eq!(c.quorum_voters, "1@127.0.0.1:9192");
    assert!(c.auto_create_topics);
    assert_eq!(c.socket_request_max_bytes, 100 * 1024 * 1024);
    // Not a property: only the request fuzz target shortens it.
    assert_eq!(
        c.coordinator.timer_tick,
        std::time::Duration::from_millis(50)
    );
}

#[test]
fn toml_tables_and_overrides_flatten_to_kafka_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.toml");
    std::fs::write(
        &path,
        "\"node.id\" = 3\nlisteners = \"127.0.0.1:9999\"\n[log]\n\"retention.ms\" = 1000\n",
    )
    .unwrap();
    let c = BrokerConfig::load(Some(&path), &["num.partitions=4".into()]).unwrap();
    assert_eq!(c.node_id, 3);
    assert_eq!(c.listener, "127.0.0.1:9999");
    assert_eq!(c.storage.log_defaults.retention_ms, 1000);
    assert_eq!(c.num_partitions, 4);
}

#[test]
fn free_space_warning_threshold_is_bytes_and_zero_turns_it_off() {
    let c = BrokerConfig::from_props(&BTreeMap::new()).unwrap();
    assert_eq!(c.storage.free_space_warn_bytes, 1 << 30);
    assert_eq!(c.storage.free_space_check_interval_ms, 10_000);
    let c = BrokerConfig::from_props(&props(&[("log.dir.free.space.warn.bytes", "0")])).unwrap();
    assert_eq!(c.storage.free_space_warn_bytes, 0);
    let e =
        BrokerConfig::from_props(&props(&[("log.dir.free.space.warn.bytes", "-1")])).unwrap_err();
    assert!(
        e.to_string().contains("log.dir.free.space.warn.bytes"),
        "{e}"
    );
}

#[test]
fn listeners_with_security_protocols_and_tls_files() {
    let c = BrokerConfig::from_props(&props(&[
        (
            "listeners",
            "SSL://127.0.0.1:9093,PLAINTEXT://127.0.0.1:9092",
        ),
        ("advertised.listeners", "SSL://kafka.example:19093"),
        ("inter.broker.listener.name", "PLAINTEXT"),
        ("controller.listener", "SSL://127.0.0.1:9192"),
        ("ssl.certificate.location", "/certs/node.pem"),
        ("ssl.key.location", "/certs/node.key"),
        ("ssl.ca.location", "/certs/ca.pem"),
        ("ssl.client.auth", "required"),
    ]))
    .unwrap();
    let names: Vec<_> = c.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["SSL", "PLAINTEXT"]);
    assert_eq!(c.listener, "127.0.0.1:9093");
    assert_eq!(c.advertised_for("SSL"), ("kafka.example".into(), 19093));
    assert_eq!(c.advertised_for("PLAINTEXT"), ("127.0.0.1".into(), 9092));
    assert_eq!(c.inter_broker_listener, "PLAINTEXT");
    assert_eq!(c.controller_listener, "127.0.0.1:9192");
    assert_eq!(c.controller_protocol, SecurityProtocol::Ssl);
    assert_eq!(c.quorum_voters, "1@127.0.0.1:9192");
    assert_eq!(c.ssl.ca, Some(PathBuf::from("/certs/ca.pem")));
    assert_eq!(c.ssl_client_auth, ClientAuth::Required);
    assert!(c.uses_tls());
    assert_eq!(c.client_auth_for("PLAINTEXT"), ClientAuth::Required);
    // Per listener, Kafka's way (the name in lower case).
    let c = BrokerConfig::from_props(&props(&[
        ("listeners", "CLIENT://h:1,INTERNAL://h:2"),
        ("listener.security.protocol.map", "CLIENT:SSL,INTERNAL:SSL"),
        ("ssl.client.auth", "none"),
        ("listener.name.internal.ssl.client.auth", "required"),
    ]))
    .unwrap();
    assert_eq!(c.client_auth_for("INTERNAL"), ClientAuth::Required);
    assert_eq!(c.client_auth_for("CLIENT"), ClientAuth::None);
    // A SASL_SSL listener ignores the broker-wide setting (KIP-684); its
    // own listener-prefixed one applies.
    let c = BrokerConfig::from_props(&props(&[
        ("listeners", "SSL://h:1,SASL_SSL://h:2,OTHER://h:3"),
        (
            "listener.security.protocol.map",
            "SSL:SSL,SASL_SSL:SASL_SSL,OTHER:SASL_SSL",
        ),
        ("ssl.client.auth", "required"),
        ("listener.name.other.ssl.client.auth", "requested"),
    ]))
    .unwrap();
    assert_eq!(c.client_auth_for("SSL"), ClientAuth::Required);
    assert_eq!(c.client_auth_for("SASL_SSL"), ClientAuth::None);
    assert_eq!(c.client_auth_for("OTHER"), ClientAuth::Requested);
    for (k, v) in [
        ("listener.name.other.ssl.client.auth", "required"),
        ("listener.name.plaintext.ssl.client.auth", "maybe"),
    ] {
        let e = BrokerConfig::from_props(&props(&[(k, v)])).unwrap_err();
        assert!(e.to_string().contains(k), "{e}");
    }
    // Defaults: one PLAINTEXT listener, no TLS anywhere.
    let d = BrokerConfig::from_props(&BTreeMap::new()).unwrap();
    assert_eq!(d.listeners[0].name, "PLAINTEXT");
    assert_eq!(d.inter_broker_listener, "PLAINTEXT");
    assert_eq!(d.ssl_client_auth, ClientAuth::None);
    assert!(!d.uses_tls());
}

#[test]
fn sasl_listeners_parse_and_custom_names_need_the_map() {
    let c = BrokerConfig::from_props(&props(&[(
        "listeners",
        "SASL_SSL://h:1,SASL_PLAINTEXT://h:2",
    )]))
    .unwrap();
    assert!(c.listeners.iter().all(|l| l.protocol.uses_sasl()));
    let c = BrokerConfig::from_props(&props(&[
        ("listeners", "CLIENT://h:1,REPLICATION://h:2"),
        (
            "listener.security.protocol.map",
            "CLIENT:SSL,REPLICATION:PLAINTEXT,CONTROLLER:SSL",
        ),
        ("inter.broker.listener.name", "REPLICATION"),
        ("controller.listener", "CONTROLLER://h:3"),
    ]))
    .unwrap();
    assert_eq!(c.listeners[0].protocol, SecurityProtocol::Ssl);
    assert_eq!(c.controller_protocol, SecurityProtocol::Ssl);
    for (k, v, why) in [
        ("inter.broker.listener.name", "NOPE", "one of the listeners"),
        ("ssl.client.auth", "always", "required, requested or none"),
        ("controller.listener", "CONTROLLER://h:3", "CONTROLLER"),
        ("listeners", "TLS://h:1", "TLS"),
    ] {
        let e = BrokerConfig::from_props(&props(&[(k, v)])).unwrap_err();
        assert!(e.to_string().contains(k), "{e}");
        assert!(e.to_string().contains(why), "{e}");
    }
}

#[test]
fn bad_values_and_unknown_keys_are_named() {
    let e = BrokerConfig::from_props(&props(&[("num.partitions", "zero")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid value 'zero' for num.partitions: expected an integer between 1 and 10000"
    );
    let e = BrokerConfig::from_props(&props(&[("no.such", "1")])).unwrap_err();
    assert_eq!(e.to_string(), "unknown config key 'no.such'");
    assert!(BrokerConfig::from_props(&props(&[("listeners", "nohost")])).is_err());
    assert!(BrokerConfig::from_props(&props(&[("log.retention.ms", "-7")])).is_err());
    assert!(BrokerConfig::from_props(&props(&[("controller.quorum.voters", "1@x")])).is_err());
    assert!(BrokerConfig::load(None, &["novalue".into()]).is_err());
}

#[test]
fn pipelined_requests_default_to_sixteen_and_need_at_least_one() {
    let c = BrokerConfig::from_props(&BTreeMap::new()).unwrap();
    assert_eq!(c.max_pipelined_requests, 16);
    let c =
        BrokerConfig::from_props(&props(&[("connection.max.pipelined.requests", "1")])).unwrap();
    assert_eq!(c.max_pipelined_requests, 1);
    let e = BrokerConfig::from_props(&props(&[("connection.max.pipelined.requests", "0")]))
        .unwrap_err();
    assert!(
        e.to_string().contains("connection.max.pipelined.requests"),
        "{e}"
    );
}
