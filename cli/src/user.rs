//! `rivulet user create|delete|list`: SCRAM users, as `kafka-configs.sh
//! --entity-type users --alter --add-config 'SCRAM-SHA-512=[...]'` and
//! `--describe` do, through Kafka's AlterUserScramCredentials and
//! DescribeUserScramCredentials APIs (every broker serves them).
//!
//! The password is salted and hashed here (PBKDF2, the mechanism's Hi);
//! only the salted password travels, and the broker keeps only the keys
//! derived from it. These commands speak the Kafka protocol themselves
//! (the rdkafka crate does not wrap the SCRAM APIs), over TLS and SASL
//! as well: `--command-config FILE` takes
//! librdkafka/Kafka client properties (`security.protocol`,
//! `sasl.mechanism`, `sasl.username`, `sasl.password`, `ssl.ca.location`,
//! `ssl.certificate.location`, `ssl.key.location`), the file `rivulet
//! cluster up --sasl` prints.

use crate::wire_client::connect;
use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use rivulet_protocol::sasl::{random_bytes, ScramMechanism};
use rivulet_protocol::tls::Stream;
use rivulet_protocol::wire::Client;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user's SCRAM credential, or replace it.
    Create(CreateArgs),
    /// Delete a user's SCRAM credential (one mechanism, or all it has).
    Delete(DeleteArgs),
    /// List users and their SCRAM mechanisms and iteration counts.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub name: String,
    #[arg(long)]
    pub password: String,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, default_value = "SCRAM-SHA-512")]
    pub mechanism: String,
    /// PBKDF2 iterations, 4096..=16384.
    #[arg(long, default_value_t = 8192)]
    pub iterations: i32,
    #[command(flatten)]
    pub connection: crate::wire_client::Connection,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    pub name: String,
    /// Only this mechanism's credential; all the user has by default.
    #[arg(long)]
    pub mechanism: Option<String>,
    #[command(flatten)]
    pub connection: crate::wire_client::Connection,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub connection: crate::wire_client::Connection,
}

fn mechanism(name: &str) -> anyhow::Result<ScramMechanism> {
    ScramMechanism::from_name(name)
        .ok_or_else(|| anyhow!("unknown mechanism {name}: expected SCRAM-SHA-256 or SCRAM-SHA-512"))
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

async fn alter(
    client: &mut Client<Stream>,
    req: AlterUserScramCredentialsRequest,
) -> anyhow::Result<()> {
    let resp = client.round_trip(0, &req).await?;
    for r in resp.results {
        if r.error_code != 0 {
            let code = kafka_protocol::ResponseError::try_from_code(r.error_code)
                .map_or(r.error_code.to_string(), |e| format!("{e:?}"));
            bail!(
                "user {}: {code}: {}",
                r.user.as_str(),
                r.error_message.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}

/// The user's mechanisms and iterations, or an empty list.
async fn describe(
    client: &mut Client<Stream>,
    users: Option<Vec<String>>,
) -> anyhow::Result<Vec<(String, Vec<(String, i32)>)>> {
    let req = DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
        u.iter()
            .map(|n| UserName::default().with_name(sb(n)))
            .collect()
    }));
    let resp = client.round_trip(0, &req).await?;
    if resp.error_code != 0 {
        bail!(
            "DescribeUserScramCredentials: error {}: {}",
            resp.error_code,
            resp.error_message.as_deref().unwrap_or("")
        );
    }
    Ok(resp
        .results
        .into_iter()
        .map(|r| {
            let infos = r
                .credential_infos
                .iter()
                .map(|i| {
                    let name = ScramMechanism::from_kafka_type(i.mechanism)
                        .map_or(format!("mechanism {}", i.mechanism), |m| {
                            m.name().to_string()
                        });
                    (name, i.iterations)
                })
                .collect();
            (r.user.to_string(), infos)
        })
        .collect())
}

pub fn run(bootstrap: &str, command: UserCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(bootstrap, command))
}

async fn run_async(bootstrap: &str, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create(a) => {
            let m = mechanism(&a.mechanism)?;
            let mut client = connect(bootstrap, &a.connection).await?;
            let salt = random_bytes(32);
            let salted = m.salted_password(a.password.as_bytes(), &salt, a.iterations);
            let up = ScramCredentialUpsertion::default()
                .with_name(sb(&a.name))
                .with_mechanism(m.kafka_type())
                .with_iterations(a.iterations)
                .with_salt(salt.into())
                .with_salted_password(salted.into());
            alter(
                &mut client,
                AlterUserScramCredentialsRequest::default().with_upsertions(vec![up]),
            )
            .await?;
            eprintln!(
                "user {} has a {} credential ({} iterations)",
                a.name,
                m.name(),
                a.iterations
            );
        }
        UserCommand::Delete(a) => {
            let mut client = connect(bootstrap, &a.connection).await?;
            let mechanisms: Vec<ScramMechanism> = match &a.mechanism {
                Some(m) => vec![mechanism(m)?],
                None => {
                    let described = describe(&mut client, None).await?;
                    let found = described
                        .into_iter()
                        .find(|(u, _)| *u == a.name)
                        .map(|(_, infos)| infos)
                        .unwrap_or_default();
                    if found.is_empty() {
                        bail!("user {} has no SCRAM credential", a.name);
                    }
                    found
                        .iter()
                        .filter_map(|(m, _)| ScramMechanism::from_name(m))
                        .collect()
                }
            };
            // One request per mechanism: Kafka refuses a user altered twice
            // in one request.
            for m in mechanisms {
                let del = ScramCredentialDeletion::default()
                    .with_name(sb(&a.name))
                    .with_mechanism(m.kafka_type());
                alter(
                    &mut client,
                    AlterUserScramCredentialsRequest::default().with_deletions(vec![del]),
                )
                .await?;
                eprintln!("deleted the {} credential of user {}", m.name(), a.name);
            }
        }
        UserCommand::List(a) => {
            let mut client = connect(bootstrap, &a.connection).await?;
            let mut users = describe(&mut client, None).await?;
            users.sort();
            for (user, infos) in users {
                let creds: Vec<String> = infos
                    .iter()
                    .map(|(m, i)| format!("{m}(iterations={i})"))
                    .collect();
                println!("{user}\t{}", creds.join(","));
            }
        }
    }
    Ok(())
}
