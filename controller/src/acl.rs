//! ACLs: Kafka's access-control model (`AclBinding`: a resource pattern and
//! an access-control entry) and [`AclStore`], the ACLs of the metadata
//! image indexed for the authorizer.
//!
//! The model and codes are Kafka's (`org.apache.kafka.common.acl`,
//! `org.apache.kafka.common.resource`): resource types TOPIC, GROUP,
//! CLUSTER, TRANSACTIONAL_ID; pattern types LITERAL (the name `*` matches
//! every resource of the type) and PREFIXED; principal `User:*` matches
//! every principal and host `*` every host. [`AclStore::find`] is
//! `StandardAuthorizerData.findAclRule`: a matching DENY wins over a
//! matching ALLOW, an ALLOW of READ, WRITE, DELETE or ALTER implies
//! DESCRIBE, an ALLOW of ALTER_CONFIGS implies DESCRIBE_CONFIGS, ALL covers
//! every operation, and whether the resource has any ACL at all (whoever
//! they are for) is reported so that `allow.everyone.if.no.acl.found` can
//! apply. Super users and that default are the broker's authorizer's.
//!
//! Lookup cost does not grow with the number of ACLs: per resource type a
//! hash map by literal name and one by prefix, and the set of prefix
//! lengths in use, so a name is checked against each prefix length once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The literal resource name (and host) that matches every one.
pub const WILDCARD: &str = "*";
/// The principal that matches every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The name of the one CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// Most ACLs one CreateAcls or DeleteAcls may add or remove (Kafka's
/// `MAX_RECORDS_PER_USER_OP`).
pub const MAX_ACLS_PER_OP: usize = 10_000;

macro_rules! coded_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:expr, $text:expr;)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),+ }
            }

            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }

            /// Kafka's upper-case name (`TOPIC`, `DESCRIBE_CONFIGS`).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parse Kafka's name, any case, `-` or `_` between words.
            pub fn parse(s: &str) -> Option<Self> {
                let s = s.trim().to_ascii_uppercase().replace('-', "_");
                Self::ALL.iter().copied().find(|v| v.name() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

coded_enum!(
    /// `ResourceType` (DELEGATION_TOKEN and USER are not supported).
    ResourceType {
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
    }
);

coded_enum!(
    /// `PatternType` of a stored ACL.
    PatternType {
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

coded_enum!(
    /// `AclOperation` of a stored ACL or an authorization question.
    AclOperation {
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

coded_enum!(
    /// `AclPermissionType`.
    AclPermission {
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// Kafka's wire code for ANY in every filter enum.
pub const ANY_CODE: i8 = 1;
/// PatternType MATCH (filters only).
pub const MATCH_CODE: i8 = 2;

/// One ACL: who (principal, host) may or may not (permission) do what
/// (operation) to which resources (type, name, pattern type).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

/// How a filter selects pattern types (`PatternType` ANY, MATCH or one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatternFilter {
    /// Any pattern type; the name, if given, must be equal.
    Any,
    /// Every ACL that would apply to the named resource: the literal one,
    /// the wildcard `*` and every prefix of the name.
    Match,
    Exactly(PatternType),
}

/// Kafka's `AclBindingFilter`: `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<AclPermission>,
}

impl AclFilter {
    /// A filter matching every ACL.
    pub fn any() -> Self {
        AclFilter {
            resource_type: None,
            resource_name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    /// `ResourcePatternFilter.matches` and `AccessControlEntryFilter.matches`.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let eq = |f: &Option<String>, v: &str| f.as_deref().is_none_or(|f| f == v);
        if self.resource_type.is_some_and(|t| t != acl.resource_type)
            || !eq(&self.principal, &acl.principal)
            || !eq(&self.host, &acl.host)
            || self.operation.is_some_and(|o| o != acl.operation)
            || self.permission.is_some_and(|p| p != acl.permission)
        {
            return false;
        }
        let name = match self.pattern {
            PatternFilter::Exactly(p) if p != acl.pattern_type => return false,
            _ => match &self.resource_name {
                None => return true,
                Some(n) => n,
            },
        };
        match self.pattern {
            PatternFilter::Any | PatternFilter::Exactly(_) => *name == acl.resource_name,
            PatternFilter::Match => match acl.pattern_type {
                PatternType::Literal => *name == acl.resource_name || acl.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&acl.resource_name),
            },
        }
    }
}

/// The part of an ACL the authorizer matches once the resource matched.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    principal: String,
    host: String,
    operation: AclOperation,
    permission: AclPermission,
}

impl Entry {
    fn of(acl: &AclBinding) -> Self {
        Entry {
            principal: acl.principal.clone(),
            host: acl.host.clone(),
            operation: acl.operation,
            permission: acl.permission,
        }
    }

    /// `StandardAuthorizerData.findResult`: `Some(permission)` when this
    /// entry decides the question, `None` when it does not apply.
    fn decides(&self, principal: &str, host: &str, op: AclOperation) -> Option<AclPermission> {
        if self.principal != principal && self.principal != WILDCARD_PRINCIPAL {
            return None;
        }
        if self.host != WILDCARD && self.host != host {
            return None;
        }
        if self.operation != AclOperation::All {
            let applies = match (self.permission, op) {
                // Only an ALLOW implies other operations.
                (AclPermission::Allow, AclOperation::Describe) => matches!(
                    self.operation,
                    AclOperation::Describe
                        | AclOperation::Read
                        | AclOperation::Write
                        | AclOperation::Delete
                        | AclOperation::Alter
                ),
                (AclPermission::Allow, AclOperation::DescribeConfigs) => matches!(
                    self.operation,
                    AclOperation::DescribeConfigs | AclOperation::AlterConfigs
                ),
                _ => self.operation == op,
            };
            if !applies {
                return None;
            }
        }
        Some(self.permission)
    }
}

/// The ACLs that apply to resources of one type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TypeIndex {
    literal: HashMap<String, Vec<Entry>>,
    prefixed: HashMap<String, Vec<Entry>>,
    /// Byte length of each prefix in `prefixed`, with how many prefixes
    /// have it: a name is looked up once per length in use.
    prefix_lengths: BTreeMap<usize, usize>,
}

impl TypeIndex {
    fn add(&mut self, acl: &AclBinding) {
        let entry = Entry::of(acl);
        match acl.pattern_type {
            PatternType::Literal => self
                .literal
                .entry(acl.resource_name.clone())
                .or_default()
                .push(entry),
            PatternType::Prefixed => {
                let list = self.prefixed.entry(acl.resource_name.clone()).or_default();
                if list.is_empty() {
                    *self
                        .prefix_lengths
                        .entry(acl.resource_name.len())
                        .or_default() += 1;
                }
                list.push(entry);
            }
        }
    }

    fn remove(&mut self, acl: &AclBinding) {
        let entry = Entry::of(acl);
        let map = match acl.pattern_type {
            PatternType::Literal => &mut self.literal,
            PatternType::Prefixed => &mut self.prefixed,
        };
        let Some(list) = map.get_mut(&acl.resource_name) else {
            return;
        };
        if let Some(i) = list.iter().position(|e| *e == entry) {
            list.swap_remove(i);
        }
        if list.is_empty() {
            map.remove(&acl.resource_name);
            if acl.pattern_type == PatternType::Prefixed {
                let len = acl.resource_name.len();
                if let Some(n) = self.prefix_lengths.get_mut(&len) {
                    *n -= 1;
                    if *n == 0 {
                        self.prefix_lengths.remove(&len);
                    }
                }
            }
        }
    }
}

/// What the ACLs say about one question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclDecision {
    Allow,
    Deny,
    /// No ACL allowed or denied it, but the resource has ACLs (for others).
    NoMatch,
    /// The resource has no ACL at all.
    NoAcls,
}

#[derive(Debug, Clone, Default)]
struct Inner {
    by_id: BTreeMap<Uuid, AclBinding>,
    types: [TypeIndex; 4],
}

/// The ACLs of a metadata image, by id and indexed for [`AclStore::find`].
/// Cloning is cheap (shared until changed), as images are cloned on every
/// applied batch of records. Serialized as the map id → ACL; two stores
/// are equal when they hold the same ACLs under the same ids (the index's
/// inner order depends on the order they were added in).
#[derive(Debug, Clone, Default)]
pub struct AclStore(Arc<Inner>);

impl PartialEq for AclStore {
    fn eq(&self, other: &Self) -> bool {
        self.0.by_id == other.0.by_id
    }
}

impl Eq for AclStore {}

fn slot(t: ResourceType) -> usize {
    match t {
        ResourceType::Topic => 0,
        ResourceType::Group => 1,
        ResourceType::Cluster => 2,
        ResourceType::TransactionalId => 3,
    }
}

impl AclStore {
    pub fn len(&self) -> usize {
        self.0.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.by_id.is_empty()
    }

    /// Every ACL with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &AclBinding)> {
        self.0.by_id.iter()
    }

    pub fn contains(&self, acl: &AclBinding) -> bool {
        // The controller's duplicate check: the ACLs of that exact pattern.
        let t = &self.0.types[slot(acl.resource_type)];
        let map = match acl.pattern_type {
            PatternType::Literal => &t.literal,
            PatternType::Prefixed => &t.prefixed,
        };
        map.get(&acl.resource_name)
            .is_some_and(|l| l.contains(&Entry::of(acl)))
    }

    /// Add `acl` under `id` (replacing what `id` held).
    pub fn insert(&mut self, id: Uuid, acl: AclBinding) {
        let inner = Arc::make_mut(&mut self.0);
        if let Some(old) = inner.by_id.insert(id, acl.clone()) {
            inner.types[slot(old.resource_type)].remove(&old);
        }
        inner.types[slot(acl.resource_type)].add(&acl);
    }

    /// Remove the ACL with `id`; what it was, if any.
    pub fn remove(&mut self, id: &Uuid) -> Option<AclBinding> {
        if !self.0.by_id.contains_key(id) {
            return None;
        }
        let inner = Arc::make_mut(&mut self.0);
        let old = inner.by_id.remove(id)?;
        inner.types[slot(old.resource_type)].remove(&old);
        Some(old)
    }

    /// Every ACL `filter` matches, with its id.
    pub fn matching<'a>(
        &'a self,
        filter: &'a AclFilter,
    ) -> impl Iterator<Item = (&'a Uuid, &'a AclBinding)> + 'a {
        self.iter().filter(move |(_, acl)| filter.matches(acl))
    }

    /// Whether `principal` from `host` may perform `op` on the resource of
    /// type `resource_type` named `name`, by the ACLs alone: literal ACLs on
    /// the name, the wildcard `*` and prefixed ACLs on any prefix of it. A
    /// DENY anywhere wins.
    pub fn find(
        &self,
        principal: &str,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> AclDecision {
        let t = &self.0.types[slot(resource_type)];
        let mut found = false;
        let mut allowed = false;
        let mut check = |entries: Option<&Vec<Entry>>| -> bool {
            let Some(entries) = entries else {
                return false;
            };
            found |= !entries.is_empty();
            for e in entries {
                match e.decides(principal, host, op) {
                    Some(AclPermission::Deny) => return true,
                    Some(AclPermission::Allow) => allowed = true,
                    None => {}
                }
            }
            false
        };
        if check(t.literal.get(name)) {
            return AclDecision::Deny;
        }
        if name != WILDCARD && check(t.literal.get(WILDCARD)) {
            return AclDecision::Deny;
        }
        for &len in t.prefix_lengths.keys() {
            if len > name.len() {
                break;
            }
            let Some(prefix) = name.get(..len) else {
                continue;
            };
            if check(t.prefixed.get(prefix)) {
                return AclDecision::Deny;
            }
        }
        if allowed {
            AclDecision::Allow
        } else if found {
            AclDecision::NoMatch
        } else {
            AclDecision::NoAcls
        }
    }

    /// The ACL part of Kafka's `Authorizer.authorizeByResourceType`:
    /// whether some resource pattern of `resource_type` allows `principal`
    /// from `host` to perform `op` exactly (or as ALL), with no DENY
    /// covering it (a DENY on `*`, on the same literal name, or on a prefix
    /// of the allowed name). Used for "WRITE on any topic" (an idempotent
    /// producer without IDEMPOTENT_WRITE); super users and
    /// `allow.everyone.if.no.acl.found` are the authorizer's.
    pub fn allowed_on_any(
        &self,
        principal: &str,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        let t = &self.0.types[slot(resource_type)];
        let applies = |e: &Entry, perm: AclPermission| {
            e.permission == perm
                && (e.principal == principal || e.principal == WILDCARD_PRINCIPAL)
                && (e.host == WILDCARD || e.host == host)
                && (e.operation == op || e.operation == AclOperation::All)
        };
        let denied_literal = |name: &str| {
            t.literal
                .get(name)
                .is_some_and(|l| l.iter().any(|e| applies(e, AclPermission::Deny)))
        };
        let denied_prefix = |name: &str| {
            t.prefixed.iter().any(|(p, l)| {
                name.starts_with(p.as_str()) && l.iter().any(|e| applies(e, AclPermission::Deny))
            })
        };
        if denied_literal(WILDCARD) {
            return false;
        }
        for (name, l) in &t.literal {
            if l.iter().any(|e| applies(e, AclPermission::Allow))
                && (name == WILDCARD || (!denied_literal(name) && !denied_prefix(name)))
            {
                return true;
            }
        }
        for (name, l) in &t.prefixed {
            if l.iter().any(|e| applies(e, AclPermission::Allow)) && !denied_prefix(name) {
                return true;
            }
        }
        false
    }
}

impl Serialize for AclStore {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.by_id.iter())
    }
}

impl<'de> Deserialize<'de> for AclStore {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let by_id = BTreeMap::<Uuid, AclBinding>::deserialize(d)?;
        let mut store = AclStore::default();
        for (id, acl) in by_id {
            store.insert(id, acl);
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AclOperation::*;
    use AclPermission::*;
    use ResourceType::*;

    fn acl(
        t: ResourceType,
        name: &str,
        p: PatternType,
        principal: &str,
        op: AclOperation,
        perm: AclPermission,
    ) -> AclBinding {
        AclBinding {
            resource_type: t,
            resource_name: name.into(),
            pattern_type: p,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    fn store(acls: &[AclBinding]) -> AclStore {
        let mut s = AclStore::default();
        for a in acls {
            s.insert(Uuid::new_v4(), a.clone());
        }
        s
    }

    #[test]
    fn deny_wins_and_allow_implies_describe_only() {
        let s = store(&[
            acl(Topic, "t", PatternType::Literal, "User:a", Read, Allow),
            acl(Topic, "t", PatternType::Literal, "User:b", Read, Allow),
            acl(Topic, "t", PatternType::Literal, "User:b", Describe, Deny),
        ]);
        assert_eq!(s.find("User:a", "h", Read, Topic, "t"), AclDecision::Allow);
        assert_eq!(
            s.find("User:a", "h", Describe, Topic, "t"),
            AclDecision::Allow
        );
        assert_eq!(
            s.find("User:a", "h", Write, Topic, "t"),
            AclDecision::NoMatch
        );
        assert_eq!(s.find("User:b", "h", Read, Topic, "t"), AclDecision::Allow);
        assert_eq!(
            s.find("User:b", "h", Describe, Topic, "t"),
            AclDecision::Deny
        );
        assert_eq!(s.find("User:a", "h", Read, Topic, "u"), AclDecision::NoAcls);
        // A DENY of READ does not deny DESCRIBE.
        let s = store(&[
            acl(Topic, "t", PatternType::Literal, "User:*", Describe, Allow),
            acl(Topic, "t", PatternType::Literal, "User:a", Read, Deny),
        ]);
        assert_eq!(
            s.find("User:a", "h", Describe, Topic, "t"),
            AclDecision::Allow
        );
        assert_eq!(s.find("User:a", "h", Read, Topic, "t"), AclDecision::Deny);
    }

    #[test]
    fn prefixed_wildcard_all_and_hosts() {
        let mut host_acl = acl(Group, "g", PatternType::Literal, "User:a", Read, Allow);
        host_acl.host = "10.0.0.1".into();
        let s = store(&[
            acl(
                Topic,
                "orders-",
                PatternType::Prefixed,
                "User:a",
                All,
                Allow,
            ),
            acl(
                Topic,
                "orders-secret",
                PatternType::Prefixed,
                "User:a",
                Read,
                Deny,
            ),
            acl(Topic, "*", PatternType::Literal, "User:w", Write, Allow),
            acl(
                Cluster,
                CLUSTER_NAME,
                PatternType::Literal,
                "User:c",
                AlterConfigs,
                Allow,
            ),
            host_acl,
        ]);
        assert_eq!(
            s.find("User:a", "h", Write, Topic, "orders-1"),
            AclDecision::Allow
        );
        assert_eq!(
            s.find("User:a", "h", Read, Topic, "orders-secret-1"),
            AclDecision::Deny
        );
        assert_eq!(
            s.find("User:a", "h", Read, Topic, "order"),
            AclDecision::NoMatch
        );
        assert_eq!(
            s.find("User:w", "h", Write, Topic, "anything"),
            AclDecision::Allow
        );
        assert_eq!(
            s.find("User:w", "h", Read, Topic, "anything"),
            AclDecision::NoMatch
        );
        assert_eq!(
            s.find("User:c", "h", DescribeConfigs, Cluster, CLUSTER_NAME),
            AclDecision::Allow
        );
        assert_eq!(
            s.find("User:a", "10.0.0.1", Read, Group, "g"),
            AclDecision::Allow
        );
        assert_eq!(
            s.find("User:a", "10.0.0.2", Read, Group, "g"),
            AclDecision::NoMatch
        );
        assert_eq!(
            s.find("User:a", "h", Read, TransactionalId, "g"),
            AclDecision::NoAcls
        );
    }

    #[test]
    fn removal_and_serde_rebuild_the_index() {
        let a = acl(Topic, "p-", PatternType::Prefixed, "User:a", Read, Allow);
        let mut s = AclStore::default();
        let id = Uuid::new_v4();
        s.insert(id, a.clone());
        assert!(s.contains(&a));
        let copy = s.clone();
        let json = serde_json::to_string(&s).unwrap();
        let back: AclStore = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.remove(&id), Some(a.clone()));
        assert_eq!(
            s.find("User:a", "h", Read, Topic, "p-1"),
            AclDecision::NoAcls
        );
        // The clone taken before is unchanged.
        assert_eq!(
            copy.find("User:a", "h", Read, Topic, "p-1"),
            AclDecision::Allow
        );
        assert_eq!(
            back.find("User:a", "h", Read, Topic, "p-1"),
            AclDecision::Allow
        );
        // Equality is by content, whatever order the ACLs were added in.
        let (x, y) = (Uuid::new_v4(), Uuid::new_v4());
        let b = acl(Topic, "p-", PatternType::Prefixed, "User:b", Read, Allow);
        let (mut one, mut two) = (AclStore::default(), AclStore::default());
        one.insert(x, a.clone());
        one.insert(y, b.clone());
        two.insert(y, b);
        two.insert(x, a);
        assert_eq!(one, two);
    }

    #[test]
    fn filters_match_as_kafkas() {
        let lit = acl(Topic, "foo", PatternType::Literal, "User:a", Read, Allow);
        let wild = acl(Topic, "*", PatternType::Literal, "User:a", Read, Allow);
        let pre = acl(Topic, "fo", PatternType::Prefixed, "User:a", Read, Allow);
        let mut f = AclFilter::any();
        assert!(f.matches(&lit) && f.matches(&pre));
        f.resource_name = Some("foo".into());
        assert!(f.matches(&lit) && !f.matches(&wild) && !f.matches(&pre));
        f.pattern = PatternFilter::Match;
        assert!(f.matches(&lit) && f.matches(&wild) && f.matches(&pre));
        f.pattern = PatternFilter::Exactly(PatternType::Prefixed);
        assert!(!f.matches(&lit) && !f.matches(&pre));
        f.resource_name = Some("fo".into());
        assert!(f.matches(&pre));
        f.principal = Some("User:b".into());
        assert!(!f.matches(&pre));
    }

    #[test]
    fn any_resource_of_a_type() {
        let s = store(&[
            acl(Topic, "t", PatternType::Literal, "User:a", Write, Allow),
            acl(Topic, "t", PatternType::Prefixed, "User:a", Write, Deny),
            acl(Topic, "u", PatternType::Prefixed, "User:b", Write, Allow),
        ]);
        assert!(!s.allowed_on_any("User:a", "h", Write, Topic));
        assert!(s.allowed_on_any("User:b", "h", Write, Topic));
        assert!(!s.allowed_on_any("User:c", "h", Write, Topic));
        assert!(!AclStore::default().allowed_on_any("User:c", "h", Write, Topic));
    }
}
