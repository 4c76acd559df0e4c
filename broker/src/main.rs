//! The `rivulet` binary: `rivulet` (or `rivulet broker`) runs a node; the
//! other subcommands are admin tools that talk to a running cluster.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use rivulet_broker::{BrokerConfig, BrokerNode};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "rivulet", version, about = "A Kafka-compatible message broker")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    broker: BrokerArgs,
}

#[derive(Debug, clap::Args, Default)]
struct BrokerArgs {
    /// TOML config file (see config/single.toml); embedded defaults otherwise.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Override one setting, e.g. --set log.retention.ms=60000 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    set: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker node (the default).
    Broker,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command.unwrap_or(Command::Broker) {
        Command::Broker => runtime.block_on(run_broker(cli.broker)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_broker(args: BrokerArgs) -> anyhow::Result<()> {
    let config = BrokerConfig::load(args.config.as_deref(), &args.set)?;
    let node = BrokerNode::start(config).await?;
    wait_for_signal().await;
    tracing::info!("shutting down");
    node.shutdown().await?;
    Ok(())
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
