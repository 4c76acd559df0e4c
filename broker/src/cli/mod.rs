//! The client commands of the `rivulet` binary — `topic`, `produce`,
//! `consume`, `group` — the jobs kafka-topics.sh, kafka-consumer-groups.sh,
//! kcat and rpk do, as Kafka clients (librdkafka through the `rdkafka`
//! crate) of a running cluster.
//!
//! Every command first asks the bootstrap server for metadata with a
//! [`client::CONNECT_TIMEOUT`] deadline, so a wrong address or a down broker
//! is a clear error within seconds instead of a hang. Results go to stdout,
//! progress and summaries to stderr; any failure is a non-zero exit.

pub mod client;
pub mod cluster;
pub mod consume;
pub mod consumer_protocol;
pub mod group;
pub mod produce;
pub mod rfc3339;
pub mod topic;

/// `--bootstrap-server` when none is given: the broker's default listener.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// Parse `key=value` (for `--config` and `--set`); the key may not be empty.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

/// Parse a config key (for `--delete`): not empty, no `=`.
pub fn parse_key(s: &str) -> Result<String, String> {
    let k = s.trim();
    if k.is_empty() || k.contains('=') {
        Err(format!("expected a config key, got '{s}'"))
    } else {
        Ok(k.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_splits_at_the_first_equals_sign() {
        assert_eq!(
            parse_key_value("a.b=x=y").unwrap(),
            ("a.b".to_string(), "x=y".to_string())
        );
        assert_eq!(
            parse_key_value("k=").unwrap(),
            ("k".to_string(), String::new())
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=v").is_err());
        assert!(parse_key("a=b").is_err());
        assert_eq!(parse_key(" retention.ms ").unwrap(), "retention.ms");
    }
}
