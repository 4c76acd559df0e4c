//! `rivulet certs generate --dir DIR`: development certificates
//! ([`rivulet_protocol::dev_certs`]): a CA, a node certificate for
//! localhost and a client certificate, and the librdkafka client settings
//! that use them.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use rivulet_protocol::dev_certs::generate;

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a development CA, a node certificate (localhost, 127.0.0.1)
    /// and a client certificate, PEM, into DIR.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Directory for ca.pem, node.pem/node.key, client.pem/client.key.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn run(command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Generate(args) => {
            let dir = std::path::absolute(&args.dir)
                .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
            let (files, made) = generate(&dir)?;
            if made {
                eprintln!(
                    "wrote a CA, a node and a client certificate to {}",
                    dir.display()
                );
            } else {
                eprintln!("kept the certificates already in {}", dir.display());
            }
            print!("{}", files.client_properties("127.0.0.1:9092"));
            Ok(())
        }
    }
}
