//! Listener configuration, Kafka's way: `listeners` names each endpoint
//! (`SSL://127.0.0.1:9093,PLAINTEXT://127.0.0.1:9092`),
//! `listener.security.protocol.map` gives each name its security protocol
//! (`CLIENT:SSL,REPLICATION:SSL`), `advertised.listeners` what clients of
//! that listener are told, `inter.broker.listener.name` which one brokers
//! dial each other on (Kafka's `KafkaConfig.listeners` and
//! `EndPoint.createEndPoint`).
//!
//! Pure parsing: no sockets. Invariants of a parsed list: at least one
//! listener, names unique, every name mapped to a protocol, ports unique,
//! each listener advertised (its own address when not given).

use std::collections::BTreeMap;

/// A listener setting that does not parse: the key, its value, what was
/// expected (`crate::config` turns it into its `ConfigError::Invalid`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value '{value}' for {key}: expected {expected}")]
pub struct InvalidListener {
    pub key: String,
    pub value: String,
    pub expected: String,
}

/// Kafka's `SecurityProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections are encrypted with TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients authenticate with SASL first.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// Kafka's default `listener.security.protocol.map`: every protocol name
/// maps to itself.
pub const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// One endpoint this broker listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// The listener name (`PLAINTEXT`, `SSL`, or a custom one such as
    /// `CLIENT`), as brokers register it and clients never see it.
    pub name: String,
    pub protocol: SecurityProtocol,
    /// Where to bind.
    pub host: String,
    pub port: u16,
    /// What Metadata tells clients that connected to this listener.
    pub advertised_host: String,
    pub advertised_port: u16,
}

impl ListenerConfig {
    pub fn bind_addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn advertised_addr(&self) -> String {
        format!("{}:{}", self.advertised_host, self.advertised_port)
    }
}

fn invalid(key: &str, value: &str, expected: impl Into<String>) -> InvalidListener {
    InvalidListener {
        key: key.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

/// `listener.security.protocol.map`: `NAME:PROTOCOL,...`.
pub fn parse_protocol_map(
    value: &str,
) -> Result<BTreeMap<String, SecurityProtocol>, InvalidListener> {
    const KEY: &str = "listener.security.protocol.map";
    let mut map = BTreeMap::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, proto) = part
            .split_once(':')
            .ok_or_else(|| invalid(KEY, value, "NAME:PROTOCOL pairs, comma separated"))?;
        let proto = SecurityProtocol::parse(proto).ok_or_else(|| {
            invalid(
                KEY,
                value,
                format!("a protocol of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL for {name}"),
            )
        })?;
        if map.insert(name.trim().to_string(), proto).is_some() {
            return Err(invalid(KEY, value, format!("{name} only once")));
        }
    }
    Ok(map)
}

/// One `NAME://host:port`; a bare `host:port` is `default_name://host:port`
/// (the last value says it was bare).
fn parse_endpoint(
    key: &str,
    whole: &str,
    part: &str,
    default_name: &str,
) -> Result<(String, String, u16, bool), InvalidListener> {
    let (name, addr, bare) = match part.split_once("://") {
        Some((name, addr)) => (name.trim(), addr.trim(), false),
        None => (default_name, part.trim(), true),
    };
    let bad = || invalid(key, whole, "NAME://host:port, comma separated");
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if name.is_empty() || host.is_empty() {
        return Err(bad());
    }
    Ok((name.to_string(), host.to_string(), port, bare))
}

/// Parse `listeners` and `advertised.listeners` against the protocol map.
/// A bare `host:port` (the form before named listeners) is a `PLAINTEXT`
/// listener; a bare `advertised.listeners` applies to the first listener.
pub fn parse_listeners(
    listeners: &str,
    advertised: &str,
    map: &BTreeMap<String, SecurityProtocol>,
) -> Result<Vec<ListenerConfig>, InvalidListener> {
    let mut out: Vec<ListenerConfig> = Vec::new();
    for part in listeners
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (name, host, port, bare) = parse_endpoint("listeners", listeners, part, "PLAINTEXT")?;
        // A bare address is PLAINTEXT whatever the map names.
        let protocol = match map.get(&name) {
            _ if bare => SecurityProtocol::Plaintext,
            Some(p) => *p,
            None => {
                return Err(invalid(
                    "listeners",
                    listeners,
                    format!("listener name {name} in listener.security.protocol.map"),
                ))
            }
        };
        if out.iter().any(|l| l.name == name) {
            return Err(invalid(
                "listeners",
                listeners,
                format!("each listener name once ({name} repeats)"),
            ));
        }
        if port != 0 && out.iter().any(|l| l.port == port) {
            return Err(invalid(
                "listeners",
                listeners,
                format!("each port once ({port} repeats)"),
            ));
        }
        out.push(ListenerConfig {
            name,
            protocol,
            advertised_host: host.clone(),
            advertised_port: port,
            host,
            port,
        });
    }
    let first_name = match out.first() {
        Some(l) => l.name.clone(),
        None => return Err(invalid("listeners", listeners, "at least one listener")),
    };
    for part in advertised
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (name, host, port, _) =
            parse_endpoint("advertised.listeners", advertised, part, &first_name)?;
        let l = out.iter_mut().find(|l| l.name == name).ok_or_else(|| {
            invalid(
                "advertised.listeners",
                advertised,
                format!("names among the listeners ({name} is not one)"),
            )
        })?;
        l.advertised_host = host;
        l.advertised_port = port;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_map() -> BTreeMap<String, SecurityProtocol> {
        parse_protocol_map(DEFAULT_PROTOCOL_MAP).unwrap()
    }

    #[test]
    fn bare_host_port_is_one_plaintext_listener() {
        let l = parse_listeners("127.0.0.1:9092", "", &default_map()).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].name, "PLAINTEXT");
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l[0].bind_addr(), "127.0.0.1:9092");
        assert_eq!(l[0].advertised_addr(), "127.0.0.1:9092");
    }

    #[test]
    fn several_named_listeners_with_their_protocols_and_advertised_addresses() {
        let l = parse_listeners(
            "SSL://0.0.0.0:9093, PLAINTEXT://127.0.0.1:9092",
            "SSL://broker1.example:19093",
            &default_map(),
        )
        .unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].name, "SSL");
        assert!(l[0].protocol.uses_tls());
        assert_eq!(l[0].bind_addr(), "0.0.0.0:9093");
        assert_eq!(l[0].advertised_addr(), "broker1.example:19093");
        assert_eq!(l[1].advertised_addr(), "127.0.0.1:9092");
    }

    #[test]
    fn custom_names_take_their_protocol_from_the_map() {
        let map = parse_protocol_map("CLIENT:SASL_SSL,REPLICATION:SSL").unwrap();
        let l = parse_listeners("CLIENT://h:1,REPLICATION://h:2", "", &map).unwrap();
        assert_eq!(l[0].protocol, SecurityProtocol::SaslSsl);
        assert!(l[0].protocol.uses_sasl() && l[0].protocol.uses_tls());
        assert_eq!(l[1].protocol, SecurityProtocol::Ssl);
        // A bare address stays PLAINTEXT though the map has no such name.
        let bare = parse_listeners("h:3", "", &map).unwrap();
        assert_eq!(bare[0].protocol, SecurityProtocol::Plaintext);
        let e = parse_listeners("OTHER://h:1", "", &map).unwrap_err();
        assert!(
            e.to_string()
                .contains("listener name OTHER in listener.security.protocol.map"),
            "{e}"
        );
    }

    #[test]
    fn bad_listener_lists_are_refused_with_the_reason() {
        let map = default_map();
        for (listeners, advertised, why) in [
            ("", "", "at least one listener"),
            ("SSL://h:1,SSL://h:2", "", "SSL repeats"),
            ("SSL://h:1,PLAINTEXT://h:1", "", "1 repeats"),
            ("SSL://h", "", "NAME://host:port"),
            ("SSL://:1", "", "NAME://host:port"),
            ("SSL://h:1", "PLAINTEXT://h:2", "PLAINTEXT is not one"),
        ] {
            let e = parse_listeners(listeners, advertised, &map).unwrap_err();
            assert!(e.to_string().contains(why), "{listeners}: {e}");
        }
        assert!(parse_protocol_map("SSL:TLS").is_err());
        assert!(parse_protocol_map("SSL").is_err());
        assert!(parse_protocol_map("A:SSL,A:PLAINTEXT").is_err());
    }
}
