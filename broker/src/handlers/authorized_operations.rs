//! Authorized operations (KIP-430): the bitfield of Kafka `AclOperation`
//! codes (bit `1 << code`) a client may perform on a resource, which
//! DescribeGroups (v3+), Metadata (topics v8+, cluster v8–10) and
//! DescribeCluster return when the request asks for them.
//!
//! This module is the one place that decides the bits, so that an
//! authorizer (ACLs) replaces [`authorized_operations`] and nothing else.
//! Without an authorizer Kafka reports every operation the resource type
//! supports (`AuthHelper.authorizedOperations` over
//! `AclEntry.supportedOperations`). When the request did not ask, the field
//! keeps its schema default, INT32_MIN ([`OMITTED`]): kafka-python decodes
//! the field as a set of `ACLOperation`s, and any undefined bit (bit 31
//! included when it *did* ask) raises in the client.

/// Kafka's `org.apache.kafka.common.acl.AclOperation`, with its wire codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub enum AclOperation {
    Unknown = 0,
    Any = 1,
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
}

/// A resource whose authorized operations a client can ask for, with its
/// name (an authorizer decides per name; without one the name is unused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource<'a> {
    Topic(&'a str),
    Group(&'a str),
    /// The cluster (Kafka's resource name `kafka-cluster`).
    Cluster,
}

/// The schema default of every authorized-operations field: "not asked".
pub const OMITTED: i32 = i32::MIN;

use AclOperation::*;

/// `AclEntry.supportedOperations(TOPIC)`.
const TOPIC_SUPPORTED: &[AclOperation] = &[
    Read,
    Write,
    Create,
    Describe,
    Delete,
    Alter,
    DescribeConfigs,
    AlterConfigs,
];

/// `AclEntry.supportedOperations(GROUP)` up to Kafka 3.8. Kafka 3.9+ adds
/// DESCRIBE_CONFIGS and ALTER_CONFIGS with group configs (KAFKA-14510,
/// KIP-848), which Rivulet does not implement (DescribeConfigs refuses the
/// GROUP resource type), so they are not claimed here.
const GROUP_SUPPORTED: &[AclOperation] = &[Read, Describe, Delete];

/// `AclEntry.supportedOperations(CLUSTER)`.
const CLUSTER_SUPPORTED: &[AclOperation] = &[
    Create,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    Alter,
    Describe,
];

/// Kafka's `Utils.to32BitField`: bit `code` set for each operation.
pub const fn bitfield(ops: &[AclOperation]) -> i32 {
    let mut bits = 0i32;
    let mut i = 0;
    while i < ops.len() {
        bits |= 1 << (ops[i] as i8);
        i += 1;
    }
    bits
}

/// Every operation on a topic: READ, WRITE, CREATE, DELETE, ALTER,
/// DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub const TOPIC_OPERATIONS: i32 = bitfield(TOPIC_SUPPORTED);
/// Every operation on a group: READ, DELETE, DESCRIBE.
pub const GROUP_OPERATIONS: i32 = bitfield(GROUP_SUPPORTED);
/// Every operation on the cluster: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
pub const CLUSTER_OPERATIONS: i32 = bitfield(CLUSTER_SUPPORTED);

/// The operations the resource type supports (`AclEntry.supportedOperations`).
pub fn supported_operations(resource: Resource<'_>) -> &'static [AclOperation] {
    match resource {
        Resource::Topic(_) => TOPIC_SUPPORTED,
        Resource::Group(_) => GROUP_SUPPORTED,
        Resource::Cluster => CLUSTER_SUPPORTED,
    }
}

/// The bitfield of operations allowed on `resource`. There is no
/// authorizer: every supported operation is allowed, as in Kafka without
/// `authorizer.class.name`. An authorizer would keep only the supported
/// operations it allows for the request's principal (and Kafka answers 0
/// for the cluster when DESCRIBE on it is denied).
pub fn authorized_operations(resource: Resource<'_>) -> i32 {
    bitfield(supported_operations(resource))
}

/// The bitfield of the supported operations of `resource` that `allows`
/// (given the operation's code) allows: what an authorizer reports.
pub fn decided(resource: Resource<'_>, allows: impl Fn(i8) -> bool) -> i32 {
    supported_operations(resource)
        .iter()
        .filter(|op| allows(**op as i8))
        .fold(0, |bits, op| bits | 1 << (*op as i8))
}

/// What a response carries: the authorized operations when the request
/// asked for them, [`OMITTED`] otherwise.
pub fn if_asked(asked: bool, resource: Resource<'_>) -> i32 {
    if asked {
        authorized_operations(resource)
    } else {
        OMITTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfields_are_kafkas_supported_operations() {
        // READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
        // DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11.
        assert_eq!(TOPIC_OPERATIONS, 0b1101_1111_1000);
        // READ 3, DELETE 6, DESCRIBE 8.
        assert_eq!(GROUP_OPERATIONS, 0b1_0100_1000);
        // CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9,
        // DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.
        assert_eq!(CLUSTER_OPERATIONS, 0b1_1111_1010_0000);
        for r in [
            Resource::Topic("t"),
            Resource::Group("g"),
            Resource::Cluster,
        ] {
            assert_eq!(authorized_operations(r), bitfield(supported_operations(r)));
        }
    }

    #[test]
    fn omitted_unless_asked_and_never_bit_31_when_asked() {
        for r in [
            Resource::Topic("t"),
            Resource::Group("g"),
            Resource::Cluster,
        ] {
            assert_eq!(if_asked(false, r), i32::MIN);
            let bits = if_asked(true, r);
            // Only codes kafka-python's ACLOperation defines (3..=12 here),
            // never UNKNOWN, ANY, ALL or the sign bit.
            assert!(bits > 0 && bits & 0b111 == 0 && bits < 1 << 13, "{bits:#b}");
        }
    }
}
