//! The authorizer: whether a request's principal, from its host, may
//! perform an operation on a resource — Kafka's `StandardAuthorizer` over
//! the ACLs of the metadata image ([`rivulet_controller::acl`]).
//!
//! Enabled by `authorizer.class.name` (Kafka's class name
//! `org.apache.kafka.metadata.authorizer.StandardAuthorizer`, or the short
//! `standard`). Then, in Kafka's order: a principal listed in `super.users`
//! may do everything; a matching DENY ACL denies; a matching ALLOW allows;
//! a resource with no ACL at all is allowed only with
//! `allow.everyone.if.no.acl.found = true`; anything else is denied.
//! Without an authorizer every request is allowed, as before.
//!
//! [`Authz`] is one request's view: its principal and host and the ACLs as
//! of the request's start (a cheap shared snapshot), so that one request's
//! decisions agree with each other.

use std::collections::BTreeSet;

use rivulet_controller::acl::{AclDecision, AclOperation, AclStore, ResourceType, CLUSTER_NAME};

use crate::config::ConfigError;
use crate::context::BrokerContext;
use crate::session::Session;

/// Kafka's class name of the KRaft authorizer.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
/// The short name Rivulet also accepts for it.
pub const STANDARD_SHORT: &str = "standard";

/// The authorizer's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `super.users`: principals (`User:admin`) allowed everything.
    pub super_users: BTreeSet<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// From `authorizer.class.name`, `super.users` (`;`-separated
    /// principals) and `allow.everyone.if.no.acl.found`; `None` when no
    /// authorizer is configured.
    pub fn from_keys(
        class: &str,
        super_users: &str,
        allow_everyone: &str,
    ) -> Result<Option<Self>, ConfigError> {
        let invalid = |key: &str, value: &str, expected: &str| ConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            expected: expected.into(),
        };
        let allow_everyone_if_no_acl_found = match allow_everyone.trim() {
            "true" => true,
            "false" => false,
            v => {
                return Err(invalid(
                    "allow.everyone.if.no.acl.found",
                    v,
                    "true or false",
                ))
            }
        };
        let mut users = BTreeSet::new();
        for p in super_users
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            match p.split_once(':') {
                Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                    users.insert(p.to_string());
                }
                _ => return Err(invalid(
                    "super.users",
                    super_users,
                    "principals of the form Type:name separated by ';' (User:admin;User:CN=node-1)",
                )),
            }
        }
        match class.trim() {
            "" => Ok(None),
            STANDARD_AUTHORIZER | STANDARD_SHORT => Ok(Some(AuthorizerConfig {
                super_users: users,
                allow_everyone_if_no_acl_found,
            })),
            v => Err(invalid(
                "authorizer.class.name",
                v,
                "empty (no authorizer), org.apache.kafka.metadata.authorizer.StandardAuthorizer or standard",
            )),
        }
    }
}

/// One request's authorizer: who asks, from where, against which ACLs.
#[derive(Debug, Clone)]
pub struct Authz {
    inner: Option<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    allow_everyone_if_no_acl_found: bool,
    acls: AclStore,
    principal: String,
    host: String,
    super_user: bool,
}

impl Authz {
    /// Everything allowed (no authorizer configured).
    pub fn disabled() -> Self {
        Authz { inner: None }
    }

    /// For a request of `session` to `broker`.
    pub fn new(broker: &BrokerContext, session: &Session) -> Self {
        match &broker.config.authorizer {
            None => Authz::disabled(),
            Some(config) => Authz::with(
                config,
                broker.image().acls.clone(),
                &session.principal,
                session.peer.ip().to_string(),
            ),
        }
    }

    /// An authorizer over `acls` for `principal` from `host`.
    pub fn with(config: &AuthorizerConfig, acls: AclStore, principal: &str, host: String) -> Self {
        let super_user = config.super_users.contains(principal);
        Authz {
            inner: Some(Inner {
                allow_everyone_if_no_acl_found: config.allow_everyone_if_no_acl_found,
                acls,
                principal: principal.to_string(),
                host,
                super_user,
            }),
        }
    }

    /// Whether an authorizer is configured.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// May the principal perform `op` on the resource?
    pub fn allows(&self, op: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        let Some(i) = &self.inner else {
            return true;
        };
        i.super_user
            || match i.acls.find(&i.principal, &i.host, op, resource_type, name) {
                AclDecision::Allow => true,
                AclDecision::Deny | AclDecision::NoMatch => false,
                AclDecision::NoAcls => i.allow_everyone_if_no_acl_found,
            }
    }

    pub fn topic(&self, op: AclOperation, name: &str) -> bool {
        self.allows(op, ResourceType::Topic, name)
    }

    pub fn group(&self, op: AclOperation, name: &str) -> bool {
        self.allows(op, ResourceType::Group, name)
    }

    pub fn txn_id(&self, op: AclOperation, name: &str) -> bool {
        self.allows(op, ResourceType::TransactionalId, name)
    }

    pub fn cluster(&self, op: AclOperation) -> bool {
        self.allows(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Kafka's `authorizeByResourceType`: may the principal perform `op` on
    /// at least one resource of the type? As Kafka, first the decision for
    /// a made-up name (`hardcode`: super users, and
    /// `allow.everyone.if.no.acl.found` when no ACL covers that name), then
    /// an ALLOW on some pattern that no DENY covers.
    pub fn on_any(&self, op: AclOperation, resource_type: ResourceType) -> bool {
        let Some(i) = &self.inner else {
            return true;
        };
        self.allows(op, resource_type, "hardcode")
            || i.acls
                .allowed_on_any(&i.principal, &i.host, op, resource_type)
    }
}

#[cfg(test)]
mod tests {
    use rivulet_controller::acl::{AclBinding, AclPermission, PatternType};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn config_keys_parse_and_refuse_bad_values() {
        assert_eq!(AuthorizerConfig::from_keys("", "", "false").unwrap(), None);
        let c = AuthorizerConfig::from_keys(STANDARD_AUTHORIZER, "User:a; User:CN=n,O=x", "true")
            .unwrap()
            .unwrap();
        assert!(c.super_users.contains("User:CN=n,O=x") && c.allow_everyone_if_no_acl_found);
        assert!(AuthorizerConfig::from_keys("standard", "", "false")
            .unwrap()
            .is_some());
        assert!(AuthorizerConfig::from_keys("kafka.Other", "", "false").is_err());
        assert!(AuthorizerConfig::from_keys("standard", "admin", "false").is_err());
        assert!(AuthorizerConfig::from_keys("standard", "", "yes").is_err());
    }

    #[test]
    fn super_users_then_acls_then_the_default() {
        let mut acls = AclStore::default();
        acls.insert(
            Uuid::new_v4(),
            AclBinding {
                resource_type: ResourceType::Topic,
                resource_name: "t".into(),
                pattern_type: PatternType::Literal,
                principal: "User:a".into(),
                host: "*".into(),
                operation: AclOperation::Read,
                permission: AclPermission::Allow,
            },
        );
        let config = |everyone| AuthorizerConfig {
            super_users: ["User:root".to_string()].into(),
            allow_everyone_if_no_acl_found: everyone,
        };
        let z = |who: &str, everyone| Authz::with(&config(everyone), acls.clone(), who, "h".into());
        assert!(z("User:root", false).topic(AclOperation::Delete, "t"));
        assert!(z("User:a", false).topic(AclOperation::Read, "t"));
        assert!(!z("User:b", true).topic(AclOperation::Read, "t"));
        assert!(!z("User:b", false).topic(AclOperation::Read, "u"));
        assert!(z("User:b", true).topic(AclOperation::Read, "u"));
        assert!(Authz::disabled().cluster(AclOperation::Alter));
        // Some topic allows WRITE: only for User:a (READ is not WRITE), or
        // for everyone when no ACL covers the made-up name.
        assert!(!z("User:a", false).on_any(AclOperation::Write, ResourceType::Topic));
        assert!(z("User:b", true).on_any(AclOperation::Write, ResourceType::Topic));
        assert!(!z("User:b", false).on_any(AclOperation::Write, ResourceType::Topic));
    }
}
