//! The `rivulet` binary: `rivulet` (or `rivulet broker`) runs a node; the
//! other subcommands are admin tools that talk to a running cluster
//! ([`cli`]).

mod cli;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
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
    #[command(subcommand)]
    Topic(cli::topic::TopicCommand),
    /// Send stdin to a topic, one record per line.
    Produce(cli::produce::ProduceArgs),
    /// Print a topic's records to stdout, one per line.
    Consume(cli::consume::ConsumeArgs),
    /// List, describe and delete consumer groups; reset their offsets.
    #[command(subcommand)]
    Group(cli::group::GroupCommand),
    /// Run a local 3-node cluster in the background: up, status, down.
    #[command(subcommand)]
    Cluster(cli::cluster::ClusterCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or(Command::Broker(BrokerArgs::default()));
    // The broker logs its life at info; client commands keep stderr for
    // their own progress and errors.
    let default_filter = match command {
        Command::Broker(_) => "info,openraft=warn",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let bootstrap = cli.bootstrap_server;
    let result = match command {
        Command::Broker(args) => run_broker(cli.broker, args, bootstrap.is_some()),
        Command::Topic(c) => {
            client_bootstrap(&cli.broker, bootstrap).and_then(|b| cli::topic::run(&b, c))
        }
        Command::Produce(args) => {
            client_bootstrap(&cli.broker, bootstrap).and_then(|b| cli::produce::run(&b, args))
        }
        Command::Consume(args) => {
            client_bootstrap(&cli.broker, bootstrap).and_then(|b| cli::consume::run(&b, args))
        }
        Command::Group(c) => {
            client_bootstrap(&cli.broker, bootstrap).and_then(|b| cli::group::run(&b, c))
        }
        Command::Cluster(c) => cli::cluster::run(c, !cli.broker.is_empty() || bootstrap.is_some()),
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
    Ok(bootstrap.unwrap_or_else(|| cli::DEFAULT_BOOTSTRAP.to_string()))
}

/// `rivulet [--config F] [--set k=v] broker [--config F] [--set k=v]`: the
/// subcommand's file wins, overrides from both apply (the subcommand's last).
fn run_broker(top: BrokerArgs, sub: BrokerArgs, bootstrap_given: bool) -> anyhow::Result<()> {
    if bootstrap_given {
        anyhow::bail!("--bootstrap-server is for client commands; the broker listens on `listeners` (--set listeners=HOST:PORT)");
    }
    let config_file = sub.config.or(top.config);
    let overrides: Vec<String> = top.set.into_iter().chain(sub.set).collect();
    let config = BrokerConfig::load(config_file.as_deref(), &overrides)?;
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
