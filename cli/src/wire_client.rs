//! The Kafka wire client of the commands the rdkafka crate does not serve
//! (it does not wrap the ACL, SCRAM, quota, election and reassignment admin
//! APIs): `rivulet user`, `acl`, `quota`, ... speak the protocol themselves,
//! plain, TLS, SASL or both, as `--command-config FILE` says (Kafka's option:
//! librdkafka/Java client properties `security.protocol`, `sasl.mechanism`,
//! `sasl.username`, `sasl.password`, `ssl.ca.location`,
//! `ssl.certificate.location`, `ssl.key.location`; the file `rivulet cluster
//! up --tls/--sasl` prints). The librdkafka commands (`topic`, `produce`,
//! `consume`, `group`) take the same file ([`crate::client::client_config`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use rivulet_protocol::tls::{Connector, Stream};
use rivulet_protocol::wire::{self, Client};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args, Default, Clone)]
pub struct Connection {
    /// Client properties: security.protocol, sasl.mechanism, sasl.username,
    /// sasl.password, ssl.ca.location (Kafka's --command-config).
    #[arg(long, value_name = "FILE", global = true)]
    pub command_config: Option<PathBuf>,
}

impl Connection {
    /// The properties of the `--command-config` file (none without one).
    pub fn properties(&self) -> anyhow::Result<BTreeMap<String, String>> {
        match &self.command_config {
            Some(p) => Ok(parse_properties(
                &std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?,
            )),
            None => Ok(BTreeMap::new()),
        }
    }

    /// The connector the properties describe.
    pub fn connector(&self) -> anyhow::Result<Connector> {
        connector(&self.properties()?)
    }
}

/// Parse a Java-style properties file: `key=value` lines, `#`/`!` comments.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| l.split_once('=').or_else(|| l.split_once(':')))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The connector `props` describe: plain or TLS, with SASL or without.
pub fn connector(props: &BTreeMap<String, String>) -> anyhow::Result<Connector> {
    Ok(Connector::from_properties(props)?)
}

/// A client of the first broker of `bootstrap` (comma-separated) that
/// answers, connected as `connection` says.
pub async fn connect(bootstrap: &str, connection: &Connection) -> anyhow::Result<Client<Stream>> {
    let connector = connection.connector()?;
    let mut last = None;
    for addr in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        let attempt = tokio::time::timeout(
            crate::client::CONNECT_TIMEOUT,
            wire::connect_with(&connector, addr),
        )
        .await;
        match attempt {
            Ok(Ok(c)) => {
                return Ok(c
                    .with_client_id(Some("rivulet-cli".into()))
                    .with_timeout(REQUEST_TIMEOUT))
            }
            Ok(Err(e)) => last = Some(anyhow!("cannot connect to {addr}: {e}")),
            Err(_) => {
                last = Some(anyhow!(
                    "no broker answered at {addr} within {}s",
                    crate::client::CONNECT_TIMEOUT.as_secs()
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("empty --bootstrap-server")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_and_connectors() {
        let p = parse_properties(
            "# c\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism = PLAIN\nsasl.username=a\nsasl.password=b=c\n",
        );
        assert_eq!(p["sasl.password"], "b=c");
        let c = connector(&p).unwrap();
        assert!(c.is_sasl() && !c.is_tls());
        let mut p2 = p.clone();
        p2.remove("sasl.username");
        assert!(connector(&p2).is_err());
        let mut p3 = p.clone();
        p3.insert("security.protocol".into(), "KERBEROS".into());
        assert!(connector(&p3).is_err());
        assert!(!connector(&BTreeMap::new()).unwrap().is_sasl());
    }
}
