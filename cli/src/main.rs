//! `rivulet-cli`: the `rivulet` binary, everything a user runs from a shell.
//!
//! `rivulet` (or `rivulet broker`) runs a broker node: it loads the TOML
//! config through `rivulet_broker::BrokerConfig` (the broker library owns
//! the settings and their defaults), starts a `BrokerNode` and stops it on
//! SIGINT/SIGTERM. `rivulet cluster up|status|down` ([`cluster`]) runs a
//! local 3-node cluster as background processes of this same binary.
//!
//! `rivulet user` ([`user`]) manages SCRAM users over the Kafka protocol
//! itself (it can reach SASL_SSL listeners).
//!
//! The client commands — `topic`, `produce`, `consume`, `group` — do the
//! jobs kafka-topics.sh, kafka-consumer-groups.sh, kcat and rpk do, as Kafka
//! clients (librdkafka through the `rdkafka` crate) of a running cluster.
//! Every one first asks the bootstrap server for metadata with a
//! [`client::CONNECT_TIMEOUT`] deadline, so a wrong address or a down broker
//! is a clear error within seconds instead of a hang. Results go to stdout,
//! progress and summaries to stderr; any failure is a non-zero exit.
//!
//! This crate owns the command line (clap), the process lifecycle and the
//! Kafka client side (rdkafka), so the `rivulet-broker` library links
//! neither. `rivulet stream validate|explain|run` ([`stream`]) runs stream
//! jobs through `rivulet_streams::runtime`.

/// mimalloc rather than glibc malloc: stream jobs spent a third of their CPU in glibc's
/// malloc/free (malloc_consolidate, unlink_chunk) on many small JSON values; with
/// mimalloc a filter batch takes 0.6× the CPU (`cargo bench --bench streams_exec`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod certs;
mod client;
mod cluster;
mod consume;
mod consumer_group;
mod consumer_protocol;
mod group;
mod leader;
mod node;
mod node_config;
mod partition;
mod produce;
mod quota;
mod rfc3339;
mod stream;
mod top;
mod topic;
// ACLs (issue 13).
mod acl;
mod user;
mod wire_client;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use rivulet_broker::metrics::LogFormat;
use rivulet_broker::{BrokerConfig, BrokerNode};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "rivulet", version, about = "A Kafka-compatible message broker")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `rivulet --config F` without a subcommand runs the broker too.
    #[command(flatten)]
    broker: BrokerArgs,
    /// Broker to bootstrap from, for the client commands [default: 127.0.0.1:9092].
    #[arg(long, short = 'b', global = true, value_name = "HOST:PORT")]
    bootstrap_server: Option<String>,
}

#[derive(Debug, clap::Args, Default)]
struct BrokerArgs {
    /// TOML config file (see config/single.toml); embedded defaults otherwise.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one setting, e.g. --set log.retention.ms=60000 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl BrokerArgs {
    fn is_empty(&self) -> bool {
        self.config.is_none() && self.set.is_empty()
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker node (the default).
    Broker(BrokerArgs),
    /// Create, list, describe, delete topics and alter their configs.
    Topic(topic::TopicArgs),
    /// Send stdin to a topic, one record per line.
    Produce(produce::ProduceArgs),
    /// Print a topic's records to stdout, one per line.
    Consume(consume::ConsumeArgs),
    /// List, describe and delete consumer groups; reset their offsets.
    Group(group::GroupArgs),
    /// Run a local 3-node cluster in the background: up, status, down.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Development TLS certificates: generate.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Stream jobs (examples/streams/): validate, explain, run.
    #[command(subcommand)]
    Stream(stream::StreamCommand),
    /// Add, list and remove ACLs (as kafka-acls.sh).
    #[command(subcommand)]
    Acl(acl::AclCommand),
    /// SCRAM users: create, delete, list (--command-config for SASL/TLS).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Client quotas: producer/consumer byte rates per user and client id
    /// (as kafka-configs.sh --entity-type users|clients).
    #[command(subcommand)]
    Quota(quota::QuotaCommand),
    /// A live view of the cluster from the nodes' metrics endpoints.
    Top(top::TopArgs),
    /// Leader elections: preferred or unclean (as kafka-leader-election.sh).
    #[command(subcommand)]
    Leader(leader::LeaderCommand),
    /// Partition reassignment: move replicas, cancel, --status.
    #[command(subcommand)]
    Partition(partition::PartitionCommand),
    /// Broker decommissioning: drain (move every replica off a node).
    #[command(subcommand)]
    Node(node::NodeCommand),
}

extern "C" {
    /// mimalloc's `mi_option_set` (the binary's allocator): stores an
    /// option's value.
    pub(crate) fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_arena_eager_commit` in mimalloc's `mi_option_t`.
const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;

/// mimalloc's arena uncommitted when reserved: its pages are committed as
/// used and a purge gives them back, as with `MIMALLOC_ARENA_EAGER_COMMIT=0`
/// in the environment (which the binary cannot set for itself). The arena
/// is reserved at the first Rust allocation, which comes before `main`, so
/// the option is set from the ELF constructors (`.init_array`), which run
/// before Rust's runtime starts; mimalloc reads its options lazily, so the
/// order against its own constructor does not matter.
extern "C" fn mimalloc_options_before_main() {
    // SAFETY: mi_option_set only stores an option value; 0 is valid.
    unsafe { mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

#[used]
#[link_section = ".init_array"]
static MIMALLOC_OPTIONS: extern "C" fn() = mimalloc_options_before_main;

fn main() -> std::process::ExitCode {
    // No transparent huge pages, first thing (a huge page faulted in before
    // stays): mimalloc advises its 1 GiB arena MADV_HUGEPAGE, and with THP
    // in `madvise` mode (most distributions) every touched 2 MiB region of
    // it then counts whole in RSS — 22 of an idle broker's 64 MiB. Record
    // bytes live in the page cache, not the heap, so huge heap pages buy
    // little. Stream jobs (`rivulet stream …`) lose by them: each batch's rows
    // kept faulting in huge pages the kernel zeroes (clear_page, a tenth to a
    // quarter of a filter job's CPU in perf; `cargo bench --bench streams`).
    let thp_off = rustix::thread::disable_transparent_huge_pages(true);
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or(Command::Broker(BrokerArgs::default()));
    // The broker logs its life at info; client commands keep stderr for
    // their own progress and errors.
    let default_filter = match command {
        Command::Broker(_) => "info,openraft=warn",
        Command::Stream(stream::StreamCommand::Run(_)) => "info",
        _ => "warn",
    };
    let bootstrap = cli.bootstrap_server;
    // The broker's config says how to log (`log.format`): read it first.
    let mut broker_config = None;
    let mut log_format = LogFormat::Text;
    if let Command::Broker(args) = &command {
        match load_broker_config(&cli.broker, args, bootstrap.is_some()) {
            Ok(config) => {
                log_format = config.metrics.log_format;
                broker_config = Some(config);
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    init_logging(default_filter, log_format);
    if let Err(e) = thp_off {
        tracing::debug!("cannot turn transparent huge pages off: {e}");
    }
    let result = match command {
        Command::Broker(_) => match broker_config {
            Some(config) => run_broker(config),
            None => Err(anyhow::anyhow!("no broker config")),
        },
        Command::Topic(c) => {
            client_bootstrap(&cli.broker, bootstrap).and_then(|b| topic::run(&b, c))
        }
        Command::Produce(args) => {
            client_bootstrap(&cli.broker, bootstrap).and_then(|b| produce::run(&b, args))
        }
        Command::Consume(args) => {
            client_bootstrap(&cli.broker, bootstrap).and_then(|b| consume::run(&b, args))
        }
        Command::Group(c) => {
            client_bootstrap(&cli.broker, bootstrap).and_then(|b| group::run(&b, c))
        }
        Command::User(c) => client_bootstrap(&cli.broker, bootstrap).and_then(|b| user::run(&b, c)),
        Command::Quota(c) => {
            client_bootstrap(&cli.broker, bootstrap).and_then(|b| quota::run(&b, c))
        }
        Command::Cluster(c) => cluster::run(c, !cli.broker.is_empty() || bootstrap.is_some()),
        Command::Certs(c) => certs::run(c),
        Command::Top(args) => top::run(args),
        Command::Acl(c) => client_bootstrap(&cli.broker, bootstrap).and_then(|b| acl::run(&b, c)),
        Command::Leader(c) => {
            client_bootstrap(&cli.broker, bootstrap).and_then(|b| leader::run(&b, c))
        }
        Command::Partition(c) => {
            client_bootstrap(&cli.broker, bootstrap).and_then(|b| partition::run(&b, c))
        }
        Command::Node(c) => client_bootstrap(&cli.broker, bootstrap).and_then(|b| node::run(&b, c)),
        Command::Stream(c) => {
            if cli.broker.is_empty() {
                stream::run(c, bootstrap)
            } else {
                Err(anyhow::anyhow!(
                    "--config/--set are broker settings; `rivulet stream` takes a job file"
                ))
            }
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The address client commands bootstrap from; broker settings are refused
/// rather than silently ignored.
fn client_bootstrap(broker_args: &BrokerArgs, bootstrap: Option<String>) -> anyhow::Result<String> {
    if !broker_args.is_empty() {
        anyhow::bail!(
            "--config and --set configure the broker; client commands take --bootstrap-server"
        );
    }
    Ok(bootstrap.unwrap_or_else(|| DEFAULT_BOOTSTRAP.to_string()))
}

/// Logs to stderr: colours only when it is a terminal (a log file gets no
/// escape codes), one JSON object per line with `log.format = "json"`.
fn init_logging(default_filter: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// `rivulet [--config F] [--set k=v] broker [--config F] [--set k=v]`: the
/// subcommand's file wins, overrides from both apply (the subcommand's last).
fn load_broker_config(
    top: &BrokerArgs,
    sub: &BrokerArgs,
    bootstrap_given: bool,
) -> anyhow::Result<BrokerConfig> {
    if bootstrap_given {
        anyhow::bail!("--bootstrap-server is for client commands; the broker listens on `listeners` (--set listeners=HOST:PORT)");
    }
    let config_file = sub.config.as_ref().or(top.config.as_ref());
    let overrides: Vec<String> = top.set.iter().chain(&sub.set).cloned().collect();
    Ok(BrokerConfig::load(
        config_file.map(|p| p.as_path()),
        &overrides,
    )?)
}

fn run_broker(config: BrokerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let node = BrokerNode::start(config).await?;
        let failure = tokio::select! {
            () = wait_for_signal() => None,
            reason = node.failed() => Some(reason),
        };
        match &failure {
            None => tracing::info!("shutting down"),
            // As Kafka when its metadata log dir fails: stop cleanly (logs
            // flushed, checkpoints written) so that replicas take over, and
            // exit non-zero for a supervisor to notice.
            Some(reason) => tracing::error!("shutting down: {reason}"),
        }
        node.shutdown().await?;
        match failure {
            None => Ok(()),
            Some(reason) => Err(anyhow::anyhow!("stopped: {reason}")),
        }
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

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
