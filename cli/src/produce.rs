//! `rivulet produce TOPIC`: one record per stdin line, like
//! kafka-console-producer.sh and `kcat -P`.
//!
//! Lines are bytes (no UTF-8 required); the trailing `\n` or `\r\n` is not
//! part of the record. With `--key-separator SEP` a line is split at its
//! first SEP into key and value; a line without SEP is a record without key
//! (as kcat does). Keyed records are partitioned like the Java client does
//! (murmur2), so they land where Kafka's own tools would put them.
//!
//! `--compression-codec none|gzip|snappy|lz4|zstd` compresses the batches.
//!
//! Sending stops at the first failed delivery; the command waits for every
//! record in flight, prints `produced N records` to stderr and exits
//! non-zero if any record failed.

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use super::client::{self, LastError};

/// How long librdkafka keeps retrying one record before failing it.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub connection: crate::wire_client::Connection,
    /// Topic to write to.
    pub topic: String,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub key_separator: Option<String>,
    /// Acknowledgements to wait for: 0 (none), 1 (the leader) or all (the ISR).
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    pub acks: String,
    /// Write every record to this partition instead of choosing by key.
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    /// Print the count sent so far to stderr every N records (0: never).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub progress_every: u64,
    /// Longest line accepted; a longer one stops the command with an error.
    #[arg(long, value_name = "BYTES", default_value_t = 1_000_000)]
    pub max_line_bytes: usize,
    /// Compress batches (kafka-console-producer's flag: given without a
    /// value, gzip).
    #[arg(
        long,
        value_name = "CODEC",
        default_value = "none",
        num_args = 0..=1,
        default_missing_value = "gzip",
        value_parser = ["none", "gzip", "snappy", "lz4", "zstd"]
    )]
    pub compression_codec: String,
}

/// Counts deliveries as librdkafka reports them (on its polling thread).
#[derive(Debug, Default)]
struct ProduceContext {
    last_error: LastError,
    delivered: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl ClientContext for ProduceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.last_error.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.last_error.error(&error, reason);
    }
}

impl ProducerContext for ProduceContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_failure.lock();
                if first.is_none() {
                    *first = Some(e.to_string());
                }
            }
        }
    }
}

/// Read `stdin` into `topic` through the cluster at `bootstrap`.
pub fn run(bootstrap: &str, args: ProduceArgs) -> anyhow::Result<()> {
    let mut config = client::client_config(bootstrap, &args.connection)?;
    config
        .set("acks", &args.acks)
        .set("compression.type", &args.compression_codec)
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .set(
            "message.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        )
        // Producing is what creates a topic when the broker auto-creates.
        .set("allow.auto.create.topics", "true");
    let producer: ThreadedProducer<ProduceContext> = config
        .create_with_context(ProduceContext::default())
        .context("cannot create the Kafka producer")?;
    let ctx = producer.context().clone();
    // The producer's own thread serves librdkafka's events.
    client::probe(producer.client(), bootstrap, &ctx.last_error, None, || {})?;

    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    let mut sent: u64 = 0;
    let mut read_error = None;
    while ctx.failed.load(Ordering::Relaxed) == 0 {
        match read_line(&mut input, &mut line, args.max_line_bytes) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                read_error = Some(format!("line {}: {e}", sent + 1));
                break;
            }
        }
        let (key, value) = split(&line, args.key_separator.as_deref());
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&args.topic).payload(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = args.partition {
            record = record.partition(p);
        }
        if let Err(e) = send(&producer, record) {
            read_error = Some(format!("record {}: {e}", sent + 1));
            break;
        }
        sent += 1;
        if args.progress_every > 0 && sent.is_multiple_of(args.progress_every) {
            eprintln!(
                "sent {sent} records, {} acknowledged",
                ctx.delivered.load(Ordering::Relaxed)
            );
        }
    }
    // Every record sent is delivered or failed within DELIVERY_TIMEOUT.
    let flushed = producer.flush(DELIVERY_TIMEOUT + Duration::from_secs(5));
    let delivered = ctx.delivered.load(Ordering::Relaxed);
    let failed = ctx.failed.load(Ordering::Relaxed);
    eprintln!("produced {delivered} records to {}", args.topic);
    if let Some(e) = read_error {
        bail!("stopped at {e}");
    }
    if failed > 0 {
        let why = ctx.first_failure.lock().clone().unwrap_or_default();
        bail!("{failed} of {sent} records were not delivered: {why}");
    }
    if let Err(e) = flushed {
        bail!(
            "{} of {sent} records are still unacknowledged: {e}",
            sent.saturating_sub(delivered)
        );
    }
    Ok(())
}

/// Hand `record` to librdkafka, waiting while its queue is full.
fn send(
    producer: &ThreadedProducer<ProduceContext>,
    mut record: BaseRecord<'_, [u8], [u8]>,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Read the next line into `buf` without its line ending; `false` at the end
/// of input. A line longer than `max` bytes is an error, and nothing longer
/// is buffered.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> std::io::Result<bool> {
    buf.clear();
    // One more than `max` for the newline.
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let n = input.by_ref().take(limit).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if buf.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("longer than --max-line-bytes {max}"),
        ));
    }
    Ok(true)
}

/// `(key, value)` of a line: split at the first `sep`, or no key.
fn split<'a>(line: &'a [u8], sep: Option<&str>) -> (Option<&'a [u8]>, &'a [u8]) {
    let Some(sep) = sep.map(str::as_bytes).filter(|s| !s.is_empty()) else {
        return (None, line);
    };
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (line.get(..i), line.get(i + sep.len()..).unwrap_or_default()),
        None => (None, line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lose_their_endings_and_long_lines_are_refused() {
        let mut input = std::io::Cursor::new(b"one\r\ntwo\n\nlast".to_vec());
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while read_line(&mut input, &mut buf, 16).unwrap() {
            lines.push(String::from_utf8(buf.clone()).unwrap());
        }
        assert_eq!(lines, ["one", "two", "", "last"]);

        let mut input = std::io::Cursor::new(b"1234\n12345\n".to_vec());
        assert!(read_line(&mut input, &mut buf, 4).unwrap());
        assert_eq!(buf, b"1234");
        assert!(read_line(&mut input, &mut buf, 4).is_err());
    }

    #[test]
    fn key_is_split_at_the_first_separator() {
        assert_eq!(
            split(b"k::v::w", Some("::")),
            (Some(&b"k"[..]), &b"v::w"[..])
        );
        assert_eq!(split(b"::v", Some("::")), (Some(&b""[..]), &b"v"[..]));
        assert_eq!(split(b"no-key", Some("::")), (None, &b"no-key"[..]));
        assert_eq!(split(b"a:b", None), (None, &b"a:b"[..]));
    }
}
