//! The SASL settings of a broker ([`SaslConfig`]): mechanisms per
//! listener, re-authentication, the inter-broker client credentials and
//! the bootstrap SCRAM users, parsed from Kafka-named keys (see
//! `config/single.toml`). Pure parsing; [`crate::sasl`] uses them.

use std::collections::BTreeMap;

use rivulet_protocol::sasl::{self, SaslCredentials, ScramMechanism, PLAIN};

use crate::listeners::ListenerConfig;

/// A SASL setting that does not parse: the key, its value, what was
/// expected (`crate::config` turns it into its `ConfigError::Invalid`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value '{value}' for {key}: expected {expected}")]
pub struct InvalidSasl {
    pub key: String,
    pub value: String,
    pub expected: String,
}

/// The mechanisms this broker implements.
pub const MECHANISMS: [&str; 3] = ["SCRAM-SHA-256", "SCRAM-SHA-512", PLAIN];

/// A user the controller creates when it does not exist yet
/// (`sasl.scram.bootstrap.users`).
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapUser {
    pub mechanism: ScramMechanism,
    pub name: String,
    pub password: String,
    pub iterations: i32,
}

impl std::fmt::Debug for BootstrapUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapUser")
            .field("mechanism", &self.mechanism)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The SASL settings of a broker.
#[derive(Clone)]
pub struct SaslConfig {
    /// `sasl.enabled.mechanisms`.
    pub enabled_mechanisms: Vec<String>,
    /// `listener.name.<name>.sasl.enabled.mechanisms`, by listener name.
    pub listener_mechanisms: BTreeMap<String, Vec<String>>,
    /// `connections.max.reauth.ms` (0: sessions do not expire).
    pub max_reauth_ms: u64,
    /// `sasl.server.max.receive.size`: the largest frame before
    /// authentication.
    pub max_receive_size: usize,
    /// The client side of inter-broker connections on a SASL listener:
    /// `sasl.mechanism.inter.broker.protocol`, `inter.broker.sasl.username`,
    /// `inter.broker.sasl.password`.
    pub inter_broker: SaslCredentials,
    /// `sasl.scram.bootstrap.users`.
    pub bootstrap_users: Vec<BootstrapUser>,
}

impl std::fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("enabled_mechanisms", &self.enabled_mechanisms)
            .field("listener_mechanisms", &self.listener_mechanisms)
            .field("max_reauth_ms", &self.max_reauth_ms)
            .field("inter_broker", &self.inter_broker)
            .field("bootstrap_users", &self.bootstrap_users)
            .finish_non_exhaustive()
    }
}

fn invalid(key: &str, value: &str, expected: &str) -> InvalidSasl {
    InvalidSasl {
        key: key.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

fn mechanisms(key: &str, value: &str) -> Result<Vec<String>, InvalidSasl> {
    let list: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    if list.is_empty() || list.iter().any(|m| !MECHANISMS.contains(&m.as_str())) {
        return Err(invalid(
            key,
            value,
            "a comma-separated list of SCRAM-SHA-256, SCRAM-SHA-512, PLAIN (no GSSAPI or OAUTHBEARER)",
        ));
    }
    Ok(list)
}

/// Split at top-level commas (not inside `[...]` or quotes).
fn split_top(value: &str) -> Vec<&str> {
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    let mut out = Vec::new();
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '[' if !quoted => depth += 1,
            ']' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// `sasl.scram.bootstrap.users`: entries as Kafka's `kafka-storage format
/// --add-scram`, `MECHANISM=[name=N,password=P(,iterations=I)]`, comma
/// separated; a value may be double-quoted (then it may hold `,` and `]`).
pub fn parse_bootstrap_users(value: &str) -> Result<Vec<BootstrapUser>, InvalidSasl> {
    const KEY: &str = "sasl.scram.bootstrap.users";
    const EXPECTED: &str =
        "MECHANISM=[name=NAME,password=PASSWORD,iterations=N] entries, comma separated";
    let mut out = Vec::new();
    for entry in split_top(value) {
        let bad = || invalid(KEY, value, EXPECTED);
        let (mech, rest) = entry.split_once('=').ok_or_else(bad)?;
        let mechanism = ScramMechanism::from_name(mech.trim()).ok_or_else(bad)?;
        let inner = rest
            .trim()
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(bad)?;
        let (mut name, mut password, mut iterations) = (None, None, mechanism.min_iterations());
        for kv in split_top(inner) {
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            match k.trim() {
                "name" => name = Some(v.to_string()),
                "password" => password = Some(v.to_string()),
                "iterations" => {
                    iterations = v
                        .parse()
                        .ok()
                        .filter(|i| (mechanism.min_iterations()..=sasl::MAX_ITERATIONS).contains(i))
                        .ok_or_else(|| invalid(KEY, value, "iterations between 4096 and 16384"))?
                }
                _ => return Err(bad()),
            }
        }
        match (name, password) {
            (Some(name), Some(password)) if !name.is_empty() && !password.is_empty() => {
                out.push(BootstrapUser {
                    mechanism,
                    name,
                    password,
                    iterations,
                })
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

impl SaslConfig {
    /// Build from the flat properties (`get` gives a key's value over the
    /// defaults) and the per-listener overrides (lower-case listener name →
    /// (key, value)).
    pub fn from_props(
        get: &dyn Fn(&str) -> String,
        per_listener: &BTreeMap<String, (String, String)>,
        listeners: &[ListenerConfig],
    ) -> Result<Self, InvalidSasl> {
        let enabled_mechanisms =
            mechanisms("sasl.enabled.mechanisms", &get("sasl.enabled.mechanisms"))?;
        let mut listener_mechanisms = BTreeMap::new();
        for (lower, (key, value)) in per_listener {
            let Some(l) = listeners.iter().find(|l| l.name.to_lowercase() == *lower) else {
                return Err(invalid(key, value, "a key naming one of the listeners"));
            };
            listener_mechanisms.insert(l.name.clone(), mechanisms(key, value)?);
        }
        let num = |key: &str, max: u64| -> Result<u64, InvalidSasl> {
            let v = get(key);
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| invalid(key, &v, &format!("an integer between 0 and {max}")))
        };
        let max_reauth_ms = num("connections.max.reauth.ms", i64::MAX as u64 / 2)?;
        let max_receive_size = num("sasl.server.max.receive.size", i32::MAX as u64)? as usize;
        let mech = get("sasl.mechanism.inter.broker.protocol")
            .trim()
            .to_string();
        if !MECHANISMS.contains(&mech.as_str()) {
            return Err(invalid(
                "sasl.mechanism.inter.broker.protocol",
                &mech,
                "one of SCRAM-SHA-256, SCRAM-SHA-512, PLAIN",
            ));
        }
        Ok(SaslConfig {
            enabled_mechanisms,
            listener_mechanisms,
            max_reauth_ms,
            max_receive_size,
            inter_broker: SaslCredentials {
                mechanism: mech,
                username: get("inter.broker.sasl.username").trim().to_string(),
                password: get("inter.broker.sasl.password"),
            },
            bootstrap_users: parse_bootstrap_users(&get("sasl.scram.bootstrap.users"))?,
        })
    }

    /// The mechanisms listener `name` offers.
    pub fn mechanisms_for(&self, name: &str) -> &[String] {
        self.listener_mechanisms
            .get(name)
            .unwrap_or(&self.enabled_mechanisms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_users_parse_kafka_add_scram_entries() {
        let u = parse_bootstrap_users(
            "SCRAM-SHA-512=[name=admin,password=admin-secret], SCRAM-SHA-256=[name=bob,password=\"a,b]c\",iterations=8192]",
        )
        .unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].mechanism, ScramMechanism::Sha512);
        assert_eq!(
            (u[0].name.as_str(), u[0].password.as_str(), u[0].iterations),
            ("admin", "admin-secret", 4096)
        );
        assert_eq!(
            (u[1].name.as_str(), u[1].password.as_str(), u[1].iterations),
            ("bob", "a,b]c", 8192)
        );
        assert!(parse_bootstrap_users("").unwrap().is_empty());
        for bad in [
            "SCRAM-SHA-1=[name=a,password=b]",
            "SCRAM-SHA-512=name=a,password=b",
            "SCRAM-SHA-512=[name=a]",
            "SCRAM-SHA-512=[name=,password=b]",
            "SCRAM-SHA-512=[name=a,password=b,iterations=100]",
            "SCRAM-SHA-512=[name=a,password=b,salt=x]",
        ] {
            assert!(parse_bootstrap_users(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mechanisms_per_listener_and_defaults() {
        let listeners = crate::listeners::parse_listeners(
            "CLIENT://h:1,INTERNAL://h:2",
            "",
            &crate::listeners::parse_protocol_map("CLIENT:SASL_SSL,INTERNAL:SASL_PLAINTEXT")
                .unwrap(),
        )
        .unwrap();
        let defaults: BTreeMap<&str, &str> = [
            (
                "sasl.enabled.mechanisms",
                "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
            ),
            ("connections.max.reauth.ms", "0"),
            ("sasl.server.max.receive.size", "524288"),
            ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
        ]
        .into_iter()
        .collect();
        let get = |k: &str| defaults.get(k).map(|v| v.to_string()).unwrap_or_default();
        let mut per = BTreeMap::new();
        per.insert(
            "internal".to_string(),
            (
                "listener.name.internal.sasl.enabled.mechanisms".to_string(),
                "SCRAM-SHA-512".to_string(),
            ),
        );
        let c = SaslConfig::from_props(&get, &per, &listeners).unwrap();
        assert_eq!(c.mechanisms_for("INTERNAL"), ["SCRAM-SHA-512"]);
        assert_eq!(
            c.mechanisms_for("CLIENT"),
            ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]
        );
        assert_eq!(c.inter_broker.mechanism, "SCRAM-SHA-512");
        per.insert(
            "other".into(),
            (
                "listener.name.other.sasl.enabled.mechanisms".into(),
                "PLAIN".into(),
            ),
        );
        assert!(SaslConfig::from_props(&get, &per, &listeners).is_err());
    }
}
