//! SCRAM credentials in the metadata quorum: what the image keeps per user
//! and mechanism, and the controller's decision on an
//! AlterUserScramCredentials request, with Kafka's validation, order and
//! error codes (`ScramControlManager.alterCredentials`).
//!
//! The broker that received the request turns each salted password into
//! StoredKey and ServerKey before forwarding it, so neither the password
//! nor the salted password reaches the metadata log.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// Kafka error codes the decision answers.
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
pub const RESOURCE_NOT_FOUND: i16 = 91;
pub const DUPLICATE_RESOURCE: i16 = 92;
pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;

/// Kafka's bounds on a credential's iteration count.
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

/// One user's stored SCRAM credential for one mechanism.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredentialData {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredentialData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredentialData")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// The mechanism names by Kafka's type id (1 SHA-256, 2 SHA-512).
pub fn mechanism_name(kafka_type: i8) -> Option<&'static str> {
    match kafka_type {
        1 => Some("SCRAM-SHA-256"),
        2 => Some("SCRAM-SHA-512"),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramDeletion {
    pub name: String,
    pub mechanism: i8,
}

/// An upsertion as forwarded by a broker: the keys already derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramUpsertion {
    pub name: String,
    pub mechanism: i8,
    pub credential: ScramCredentialData,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramResult {
    pub user: String,
    pub error_code: i16,
    pub error_message: Option<String>,
}

impl MetadataImage {
    /// User `name`'s credential for mechanism `mechanism` (by name).
    pub fn scram_credential(&self, mechanism: &str, name: &str) -> Option<&ScramCredentialData> {
        self.scram.get(mechanism)?.get(name)
    }
}

fn check_name_and_mechanism(name: &str, mechanism: i8) -> Result<&'static str, (i16, String)> {
    if name.is_empty() {
        return Err((UNACCEPTABLE_CREDENTIAL, "Username must not be empty".into()));
    }
    mechanism_name(mechanism)
        .ok_or_else(|| (UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism".into()))
}

/// Decide an AlterUserScramCredentials request: the records to commit (all
/// or nothing) and one result per user. A user altered twice in one request
/// fails DUPLICATE_RESOURCE (every alteration of it is dropped); deleting a
/// credential that does not exist RESOURCE_NOT_FOUND; an empty name
/// UNACCEPTABLE_CREDENTIAL; an unknown mechanism UNSUPPORTED_SASL_MECHANISM;
/// iterations outside 4096..=16384 UNACCEPTABLE_CREDENTIAL. With
/// `only_if_absent`, an upsertion of a credential that exists succeeds
/// without a record.
pub fn alter(
    image: &MetadataImage,
    deletions: &[ScramDeletion],
    upsertions: &[ScramUpsertion],
    only_if_absent: bool,
) -> (Vec<MetadataRecord>, Vec<ScramResult>) {
    let mut errors: BTreeMap<String, (i16, String)> = BTreeMap::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut ok_deletions: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut ok_upsertions: BTreeMap<String, (&'static str, &ScramCredentialData)> = BTreeMap::new();
    let duplicate = || {
        (
            DUPLICATE_RESOURCE,
            "A user credential cannot be altered twice in the same request".to_string(),
        )
    };
    for d in deletions {
        if errors.contains_key(&d.name) {
            continue;
        }
        if !seen.insert(d.name.clone()) {
            ok_deletions.remove(&d.name);
            errors.insert(d.name.clone(), duplicate());
            continue;
        }
        match check_name_and_mechanism(&d.name, d.mechanism) {
            Err(e) => {
                errors.insert(d.name.clone(), e);
            }
            Ok(mech) if image.scram_credential(mech, &d.name).is_none() => {
                errors.insert(
                    d.name.clone(),
                    (
                        RESOURCE_NOT_FOUND,
                        "Attempt to delete a user credential that does not exist".into(),
                    ),
                );
            }
            Ok(mech) => {
                ok_deletions.insert(d.name.clone(), mech);
            }
        }
    }
    for u in upsertions {
        if errors.contains_key(&u.name) {
            continue;
        }
        if !seen.insert(u.name.clone()) {
            ok_deletions.remove(&u.name);
            ok_upsertions.remove(&u.name);
            errors.insert(u.name.clone(), duplicate());
            continue;
        }
        let checked = check_name_and_mechanism(&u.name, u.mechanism).and_then(|mech| {
            let i = u.credential.iterations;
            if i < MIN_ITERATIONS {
                Err((UNACCEPTABLE_CREDENTIAL, "Too few iterations".into()))
            } else if i > MAX_ITERATIONS {
                Err((UNACCEPTABLE_CREDENTIAL, "Too many iterations".into()))
            } else {
                Ok(mech)
            }
        });
        match checked {
            Err(e) => {
                errors.insert(u.name.clone(), e);
            }
            Ok(mech) => {
                ok_upsertions.insert(u.name.clone(), (mech, &u.credential));
            }
        }
    }
    let mut records = Vec::new();
    let mut results = Vec::new();
    let ok = |user: &str| ScramResult {
        user: user.to_string(),
        error_code: 0,
        error_message: None,
    };
    for (name, mech) in ok_deletions {
        records.push(MetadataRecord::RemoveUserScramCredential {
            name: name.clone(),
            mechanism: mech.to_string(),
        });
        results.push(ok(&name));
    }
    for (name, (mech, credential)) in ok_upsertions {
        if !(only_if_absent && image.scram_credential(mech, &name).is_some()) {
            records.push(MetadataRecord::UserScramCredential {
                name: name.clone(),
                mechanism: mech.to_string(),
                credential: credential.clone(),
            });
        }
        results.push(ok(&name));
    }
    for (user, (code, message)) in errors {
        results.push(ScramResult {
            user,
            error_code: code,
            error_message: Some(message),
        });
    }
    (records, results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(iterations: i32) -> ScramCredentialData {
        ScramCredentialData {
            salt: vec![1],
            stored_key: vec![2],
            server_key: vec![3],
            iterations,
        }
    }

    fn up(name: &str, mechanism: i8, iterations: i32) -> ScramUpsertion {
        ScramUpsertion {
            name: name.into(),
            mechanism,
            credential: cred(iterations),
        }
    }

    fn del(name: &str, mechanism: i8) -> ScramDeletion {
        ScramDeletion {
            name: name.into(),
            mechanism,
        }
    }

    fn code(results: &[ScramResult], user: &str) -> i16 {
        results.iter().find(|r| r.user == user).unwrap().error_code
    }

    #[test]
    fn kafka_validation_and_error_codes() {
        let mut image = MetadataImage::default();
        let (records, results) = alter(
            &image,
            &[del("ghost", 2), del("dup", 1), del("ghost2", 1)],
            &[
                up("alice", 2, 8192),
                up("", 2, 8192),
                up("bob", 7, 8192),
                up("few", 1, 4095),
                up("many", 1, 16385),
                up("dup", 1, 4096),
                up("twice", 1, 4096),
                up("twice", 2, 4096),
            ],
            false,
        );
        assert_eq!(code(&results, "alice"), 0);
        assert_eq!(code(&results, ""), UNACCEPTABLE_CREDENTIAL);
        assert_eq!(code(&results, "bob"), UNSUPPORTED_SASL_MECHANISM);
        assert_eq!(code(&results, "few"), UNACCEPTABLE_CREDENTIAL);
        assert_eq!(code(&results, "many"), UNACCEPTABLE_CREDENTIAL);
        assert_eq!(code(&results, "ghost"), RESOURCE_NOT_FOUND);
        // The deletion of a missing credential fails first; later
        // alterations of that user are not looked at (Kafka's order).
        assert_eq!(code(&results, "dup"), RESOURCE_NOT_FOUND);
        assert_eq!(code(&results, "twice"), DUPLICATE_RESOURCE);
        assert_eq!(records.len(), 1);
        for (i, r) in records.iter().enumerate() {
            image.apply(i as u64 + 1, r).unwrap();
        }
        assert_eq!(
            image.scram_credential("SCRAM-SHA-512", "alice"),
            Some(&cred(8192))
        );
        // A delete and an upsert of one user in one request.
        let (records, results) = alter(&image, &[del("alice", 2)], &[up("alice", 2, 4096)], false);
        assert!(records.is_empty());
        assert_eq!(code(&results, "alice"), DUPLICATE_RESOURCE);
        // Bootstrap: an existing credential stays.
        let (records, results) = alter(&image, &[], &[up("alice", 2, 4096)], true);
        assert!(records.is_empty());
        assert_eq!(code(&results, "alice"), 0);
        // Delete it.
        let (records, _) = alter(&image, &[del("alice", 2)], &[], false);
        image.apply(10, &records[0]).unwrap();
        assert!(image.scram.is_empty());
    }
}
