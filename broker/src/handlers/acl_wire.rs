//! Kafka's wire codes of ACLs and ACL filters to [`rivulet_controller::acl`]
//! types and back, with the validation of Kafka's `AclControlManager` and
//! `AclApis`: a creation names one resource type, LITERAL or PREFIXED, one
//! operation and ALLOW or DENY (ANY, MATCH or UNKNOWN there is
//! INVALID_REQUEST), a non-empty name (`kafka-cluster` for the cluster) and
//! a `Type:name` principal; a filter refuses only codes it does not know.

use rivulet_controller::acl::{
    AclBinding, AclFilter, AclOperation, AclPermission, PatternFilter, PatternType, ResourceType,
    ANY_CODE, CLUSTER_NAME, MATCH_CODE,
};

/// ResourceType DELEGATION_TOKEN and USER: valid in filters, never stored.
const UNSUPPORTED_TYPES: [i8; 2] = [6, 7];

/// Why a creation or a filter is INVALID_REQUEST.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAcl {
    #[error("Invalid resourceType {0}")]
    ResourceType(i8),
    #[error("Invalid patternType {0}")]
    PatternType(i8),
    #[error("Invalid operation {0}")]
    Operation(i8),
    #[error("Invalid permissionType {0}")]
    Permission(i8),
    #[error("Resource name should not be empty")]
    EmptyName,
    #[error("The only valid name for the CLUSTER resource is kafka-cluster")]
    ClusterName,
    #[error("Invalid principal '{0}': expected Type:name")]
    Principal(String),
    #[error("Resource type {0} is not supported by this broker")]
    Unsupported(i8),
}

/// The fields of one creation on the wire.
pub struct WireAcl<'a> {
    pub resource_type: i8,
    pub resource_name: &'a str,
    pub pattern_type: i8,
    pub principal: &'a str,
    pub host: &'a str,
    pub operation: i8,
    pub permission: i8,
}

/// A creation as an ACL to store.
pub fn binding(w: &WireAcl<'_>) -> Result<AclBinding, InvalidAcl> {
    if UNSUPPORTED_TYPES.contains(&w.resource_type) {
        return Err(InvalidAcl::Unsupported(w.resource_type));
    }
    let resource_type = ResourceType::from_code(w.resource_type)
        .ok_or(InvalidAcl::ResourceType(w.resource_type))?;
    let pattern_type =
        PatternType::from_code(w.pattern_type).ok_or(InvalidAcl::PatternType(w.pattern_type))?;
    let operation =
        AclOperation::from_code(w.operation).ok_or(InvalidAcl::Operation(w.operation))?;
    let permission =
        AclPermission::from_code(w.permission).ok_or(InvalidAcl::Permission(w.permission))?;
    if w.resource_name.is_empty() {
        return Err(InvalidAcl::EmptyName);
    }
    if resource_type == ResourceType::Cluster && w.resource_name != CLUSTER_NAME {
        return Err(InvalidAcl::ClusterName);
    }
    match w.principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
        _ => return Err(InvalidAcl::Principal(w.principal.to_string())),
    }
    Ok(AclBinding {
        resource_type,
        resource_name: w.resource_name.to_string(),
        pattern_type,
        principal: w.principal.to_string(),
        host: w.host.to_string(),
        operation,
        permission,
    })
}

/// The fields of one filter on the wire.
pub struct WireFilter<'a> {
    pub resource_type: i8,
    pub resource_name: Option<&'a str>,
    pub pattern_type: i8,
    pub principal: Option<&'a str>,
    pub host: Option<&'a str>,
    pub operation: i8,
    pub permission: i8,
}

/// A filter as matched against stored ACLs; `Ok(None)` for a filter that
/// can match nothing stored (resource types this broker never stores).
pub fn filter(w: &WireFilter<'_>) -> Result<Option<AclFilter>, InvalidAcl> {
    let resource_type = match w.resource_type {
        ANY_CODE => None,
        c if UNSUPPORTED_TYPES.contains(&c) => return Ok(None),
        c => Some(ResourceType::from_code(c).ok_or(InvalidAcl::ResourceType(c))?),
    };
    let pattern = match w.pattern_type {
        ANY_CODE => PatternFilter::Any,
        MATCH_CODE => PatternFilter::Match,
        c => PatternFilter::Exactly(PatternType::from_code(c).ok_or(InvalidAcl::PatternType(c))?),
    };
    let operation = match w.operation {
        ANY_CODE => None,
        c => Some(AclOperation::from_code(c).ok_or(InvalidAcl::Operation(c))?),
    };
    let permission = match w.permission {
        ANY_CODE => None,
        c => Some(AclPermission::from_code(c).ok_or(InvalidAcl::Permission(c))?),
    };
    Ok(Some(AclFilter {
        resource_type,
        resource_name: w.resource_name.map(str::to_string),
        pattern,
        principal: w.principal.map(str::to_string),
        host: w.host.map(str::to_string),
        operation,
        permission,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(rt: i8, pt: i8, op: i8, perm: i8) -> WireAcl<'static> {
        WireAcl {
            resource_type: rt,
            resource_name: "t",
            pattern_type: pt,
            principal: "User:a",
            host: "*",
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn any_match_and_unknown_are_invalid_in_a_creation() {
        assert!(binding(&wire(2, 3, 3, 3)).is_ok());
        assert_eq!(binding(&wire(1, 3, 3, 3)), Err(InvalidAcl::ResourceType(1)));
        assert_eq!(binding(&wire(2, 2, 3, 3)), Err(InvalidAcl::PatternType(2)));
        assert_eq!(binding(&wire(2, 1, 3, 3)), Err(InvalidAcl::PatternType(1)));
        assert_eq!(binding(&wire(2, 3, 1, 3)), Err(InvalidAcl::Operation(1)));
        assert_eq!(binding(&wire(2, 3, 3, 1)), Err(InvalidAcl::Permission(1)));
        assert_eq!(binding(&wire(4, 3, 3, 3)), Err(InvalidAcl::ClusterName));
        let mut w = wire(2, 3, 3, 3);
        w.principal = "alice";
        assert!(matches!(binding(&w), Err(InvalidAcl::Principal(_))));
    }

    #[test]
    fn filters_take_any_and_match_but_not_unknown() {
        let f = |rt, pt, op, perm| {
            filter(&WireFilter {
                resource_type: rt,
                resource_name: None,
                pattern_type: pt,
                principal: None,
                host: None,
                operation: op,
                permission: perm,
            })
        };
        assert_eq!(f(1, 1, 1, 1), Ok(Some(AclFilter::any())));
        assert!(matches!(f(2, 2, 3, 3), Ok(Some(_))));
        assert_eq!(f(7, 1, 1, 1), Ok(None));
        assert_eq!(f(0, 1, 1, 1), Err(InvalidAcl::ResourceType(0)));
        assert_eq!(f(1, 0, 1, 1), Err(InvalidAcl::PatternType(0)));
        assert_eq!(f(1, 1, 0, 1), Err(InvalidAcl::Operation(0)));
        assert_eq!(f(1, 1, 1, 9), Err(InvalidAcl::Permission(9)));
    }
}
