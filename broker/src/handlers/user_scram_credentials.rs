//! DescribeUserScramCredentials (key 50) and AlterUserScramCredentials
//! (key 51), v0, served by every broker.
//!
//! Describe answers from this node's metadata image, as Kafka's
//! `ScramImage.describe`: every user with a credential when no user is
//! named; a named user without one is RESOURCE_NOT_FOUND, a user named
//! twice DUPLICATE_RESOURCE; each credential as its mechanism and
//! iteration count only.
//!
//! Alter turns each upsertion's salted password into StoredKey and
//! ServerKey here (the salted password goes no further), forwards the whole
//! request to the active controller, which validates it as Kafka does
//! ([`rivulet_controller::scram::alter`]), and waits until this node's image
//! holds the change, so that a client's next Describe here sees it.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::ResponseError as E;
use rivulet_controller::scram::{ScramCredentialData, ScramDeletion, ScramUpsertion};
use rivulet_controller::{ControllerRequest, ControllerResponse};
use rivulet_protocol::sasl::ScramMechanism;

use super::sb;
use crate::context::BrokerContext;

/// How long Alter waits for this node's image to hold its change.
const IMAGE_WAIT: Duration = Duration::from_secs(10);

pub fn describe(
    b: &BrokerContext,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let image = b.image();
    // user → named more than once
    let mut users: BTreeMap<String, bool> = BTreeMap::new();
    match &req.users {
        Some(named) if !named.is_empty() => {
            for u in named {
                let twice = users.contains_key(u.name.as_str());
                users.insert(u.name.to_string(), twice);
            }
        }
        _ => {
            for by_user in image.scram.values() {
                for user in by_user.keys() {
                    users.insert(user.clone(), false);
                }
            }
        }
    }
    let results = users
        .into_iter()
        .map(|(user, twice)| {
            let r = DescribeUserScramCredentialsResult::default().with_user(sb(user.clone()));
            if twice {
                return r.with_error_code(E::DuplicateResource.code()).with_error_message(Some(sb(
                    format!("Cannot describe SCRAM credentials for the same user twice in a single request: {user}"),
                )));
            }
            let infos: Vec<CredentialInfo> = ScramMechanism::ALL
                .into_iter()
                .filter_map(|m| {
                    image.scram_credential(m.name(), &user).map(|c| {
                        CredentialInfo::default()
                            .with_mechanism(m.kafka_type())
                            .with_iterations(c.iterations)
                    })
                })
                .collect();
            if infos.is_empty() {
                r.with_error_code(E::ResourceNotFound.code()).with_error_message(Some(sb(format!(
                    "Attempt to describe a user credential that does not exist: {user}"
                ))))
            } else {
                r.with_credential_infos(infos)
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub async fn alter(
    b: &BrokerContext,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let deletions: Vec<ScramDeletion> = req
        .deletions
        .iter()
        .map(|d| ScramDeletion {
            name: d.name.to_string(),
            mechanism: d.mechanism,
        })
        .collect();
    let upsertions: Vec<ScramUpsertion> = req
        .upsertions
        .iter()
        .map(|u| {
            let credential = match ScramMechanism::from_kafka_type(u.mechanism) {
                Some(m) => {
                    let c = m.credential(&u.salted_password, &u.salt, u.iterations);
                    ScramCredentialData {
                        salt: c.salt,
                        stored_key: c.stored_key,
                        server_key: c.server_key,
                        iterations: c.iterations,
                    }
                }
                // The controller answers UNSUPPORTED_SASL_MECHANISM.
                None => ScramCredentialData {
                    salt: Vec::new(),
                    stored_key: Vec::new(),
                    server_key: Vec::new(),
                    iterations: u.iterations,
                },
            };
            ScramUpsertion {
                name: u.name.to_string(),
                mechanism: u.mechanism,
                credential,
            }
        })
        .collect();
    let users: Vec<String> = deletions
        .iter()
        .map(|d| d.name.clone())
        .chain(upsertions.iter().map(|u| u.name.clone()))
        .collect();
    let resp = b
        .controller_request(ControllerRequest::AlterUserScramCredentials {
            deletions,
            upsertions,
            only_if_absent: false,
        })
        .await;
    let results = match resp {
        ControllerResponse::ScramResults { offset, results } => {
            b.wait_until(IMAGE_WAIT, |image| image.offset >= offset)
                .await;
            results
                .into_iter()
                .map(|r| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(sb(r.user))
                        .with_error_code(r.error_code)
                        .with_error_message(r.error_message.map(sb))
                })
                .collect()
        }
        other => {
            let code = match crate::errors::controller_response(&other).0 {
                0 => E::UnknownServerError.code(),
                code => code,
            };
            let mut seen = std::collections::BTreeSet::new();
            users
                .into_iter()
                .filter(|u| seen.insert(u.clone()))
                .map(|u| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(sb(u))
                        .with_error_code(code)
                })
                .collect()
        }
    };
    AlterUserScramCredentialsResponse::default().with_results(results)
}
