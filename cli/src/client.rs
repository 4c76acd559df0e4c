//! What every client command shares: the librdkafka settings, a context that
//! keeps librdkafka's log off the terminal but remembers its last error (so
//! a failure can say *why*), and the metadata probe that fails fast when no
//! broker answers.

use std::time::Duration;

use anyhow::{anyhow, Context};
use parking_lot::Mutex;
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;

use crate::wire_client::Connection;

/// How long the first metadata request may take before the command gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Deadline of one admin request (create, delete, describe, alter).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// librdkafka settings every command uses, then the client properties of
/// `--command-config` (security.protocol, sasl.*, ssl.*: librdkafka's
/// names; it refuses a name it does not know), checked and completed as the
/// wire client takes them (`Connector::client_properties`).
/// `bootstrap.servers` comes from `--bootstrap-server` only.
pub fn client_config(bootstrap: &str, connection: &Connection) -> anyhow::Result<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "rivulet-cli")
        // Metadata requests must not create the topics they name.
        .set("allow.auto.create.topics", "false")
        .set("socket.timeout.ms", "10000")
        .set("socket.connection.setup.timeout.ms", "10000")
        // Connection failures (`FAIL`) are logged at info level, which the
        // `log` crate's filter would otherwise leave out: they say why.
        .set_log_level(RDKafkaLogLevel::Info);
    for (key, value) in connection.connector()?.client_properties() {
        if key != "bootstrap.servers" {
            c.set(key, value);
        }
    }
    Ok(c)
}

/// The last error librdkafka reported, for error messages.
#[derive(Debug, Default)]
pub struct LastError(Mutex<Option<String>>);

impl LastError {
    /// librdkafka's log line: errors and connection failures (`FAIL`,
    /// logged below error level when the peer closed) are remembered,
    /// everything goes to `tracing` at debug level
    /// (`RUST_LOG=librdkafka=debug` shows it).
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        tracing::debug!(target: "librdkafka", "{fac} {message}");
        if (level as i32) <= (RDKafkaLogLevel::Error as i32) || fac == "FAIL" {
            *self.0.lock() = Some(message.to_string());
        }
    }

    /// librdkafka's error callback. "All brokers are down" says less than the
    /// connection error before it, so it does not replace it.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", "{error}: {reason}");
        let mut last = self.0.lock();
        if last.is_none() || error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown) {
            *last = Some(reason.to_string());
        }
    }

    pub fn get(&self) -> Option<String> {
        self.0.lock().clone()
    }
}

/// Client context of the admin client and the consumer.
#[derive(Debug, Default)]
pub struct CliContext {
    pub last_error: LastError,
}

impl ClientContext for CliContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.last_error.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.last_error.error(&error, reason);
    }
}

impl ConsumerContext for CliContext {}

/// Cluster metadata (all topics, or just `topic`) within [`CONNECT_TIMEOUT`],
/// or an error naming the address when no broker answered. `drain` serves
/// librdkafka's queued log and error events (one per call), so the error can
/// say why.
pub fn probe<C: ClientContext>(
    client: &Client<C>,
    bootstrap: &str,
    last_error: &LastError,
    topic: Option<&str>,
    mut drain: impl FnMut(),
) -> anyhow::Result<Metadata> {
    client.fetch_metadata(topic, CONNECT_TIMEOUT).map_err(|e| {
        for _ in 0..MAX_EVENTS_DRAINED {
            drain();
        }
        unreachable(bootstrap, last_error, &e)
    })
}

/// Bound on the events [`probe`] serves after a failure.
const MAX_EVENTS_DRAINED: usize = 1000;

/// A client for metadata only: a consumer without a group joins nothing, and
/// its `poll` serves librdkafka's main queue (logs, errors), which the admin
/// client leaves unpolled.
pub fn metadata_client(
    bootstrap: &str,
    connection: &Connection,
) -> anyhow::Result<BaseConsumer<CliContext>> {
    client_config(bootstrap, connection)?
        .create_with_context(CliContext::default())
        .context("cannot create the Kafka client")
}

/// [`probe`] through a [`metadata_client`].
pub fn probe_with(
    consumer: &BaseConsumer<CliContext>,
    bootstrap: &str,
    topic: Option<&str>,
) -> anyhow::Result<Metadata> {
    probe(
        consumer.client(),
        bootstrap,
        &consumer.context().last_error,
        topic,
        || {
            let _ = consumer.poll(Duration::ZERO);
        },
    )
}

fn unreachable(bootstrap: &str, last_error: &LastError, e: &KafkaError) -> anyhow::Error {
    let why = last_error.get().unwrap_or_else(|| e.to_string());
    // Closed before its first answer: what a TLS or SASL listener does to a
    // client that speaks plain Kafka to it.
    let hint = if why.contains("state APIVERSION_QUERY") {
        "; a TLS or SASL listener needs --command-config FILE with security.protocol and its settings"
    } else {
        ""
    };
    anyhow!(
        "no broker answered at {bootstrap} within {}s ({why}){hint}",
        CONNECT_TIMEOUT.as_secs()
    )
}

/// A user-facing description of an admin or produce error code, naming the
/// API when the broker does not implement it.
pub fn describe_code(code: RDKafkaErrorCode, api: &str) -> String {
    match code {
        RDKafkaErrorCode::UnsupportedFeature | RDKafkaErrorCode::UnsupportedVersion => {
            format!("the broker does not support {api} ({code})")
        }
        _ => code.to_string(),
    }
}
