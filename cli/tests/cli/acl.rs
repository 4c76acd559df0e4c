//! `rivulet acl add|list|remove` against a broker with the authorizer on
//! (this test's client, User:ANONYMOUS on PLAINTEXT, is its super user):
//! what `add` creates is in the broker's metadata image, `list` prints it
//! in kafka-acls.sh's format, `remove` deletes what matches; without an
//! authorizer the commands fail with SECURITY_DISABLED.

use rivulet_controller::acl::{AclOperation, AclPermission, PatternType, ResourceType};

use crate::{fails, ok, Broker};

fn acls(
    b: &Broker,
) -> Vec<(
    ResourceType,
    String,
    PatternType,
    String,
    AclOperation,
    AclPermission,
)> {
    let image = b.inner.node().broker.image();
    let mut out: Vec<_> = image
        .acls
        .iter()
        .map(|(_, a)| {
            (
                a.resource_type,
                a.resource_name.clone(),
                a.pattern_type,
                a.principal.clone(),
                a.operation,
                a.permission,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn acl_add_list_remove_round_trip() {
    let b = Broker::start_with(&[
        ("authorizer.class.name", "standard"),
        ("super.users", "User:ANONYMOUS"),
    ]);
    ok(
        &b,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--operation",
            "Write",
            "--topic",
            "orders-",
            "--resource-pattern-type",
            "prefixed",
        ],
        "",
    );
    ok(
        &b,
        &[
            "acl",
            "add",
            "--consumer",
            "--allow-principal",
            "User:bob",
            "--topic",
            "events",
            "--group",
            "billing",
        ],
        "",
    );
    ok(
        &b,
        &[
            "acl",
            "add",
            "--deny-principal",
            "User:mallory",
            "--operation",
            "All",
            "--cluster",
        ],
        "",
    );
    use AclOperation::*;
    use AclPermission::*;
    use PatternType::*;
    use ResourceType::*;
    let s = |x: &str| x.to_string();
    assert_eq!(
        acls(&b),
        [
            (Topic, s("events"), Literal, s("User:bob"), Read, Allow),
            (Topic, s("events"), Literal, s("User:bob"), Describe, Allow),
            (Topic, s("orders-"), Prefixed, s("User:alice"), Read, Allow),
            (Topic, s("orders-"), Prefixed, s("User:alice"), Write, Allow),
            (Group, s("billing"), Literal, s("User:bob"), Read, Allow),
            (
                Cluster,
                s("kafka-cluster"),
                Literal,
                s("User:mallory"),
                All,
                Deny
            ),
        ]
    );

    let listed = ok(&b, &["acl", "list"], "");
    assert!(
        listed.contains(
            "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders-, patternType=PREFIXED)`:"
        ),
        "{listed}"
    );
    assert!(
        listed.contains("(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)"),
        "{listed}"
    );
    // MATCH: the ACLs that apply to topic orders-eu.
    let matching = ok(
        &b,
        &[
            "acl",
            "list",
            "--topic",
            "orders-eu",
            "--resource-pattern-type",
            "match",
        ],
        "",
    );
    assert!(matching.contains("name=orders-,"), "{matching}");
    assert!(!matching.contains("events"), "{matching}");

    // Remove one operation, then every ACL of a resource.
    let removed = ok(
        &b,
        &[
            "acl",
            "remove",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Write",
            "--topic",
            "orders-",
            "--resource-pattern-type",
            "prefixed",
        ],
        "",
    );
    assert!(removed.contains("operation=WRITE"), "{removed}");
    ok(&b, &["acl", "remove", "--topic", "events"], "");
    assert_eq!(
        acls(&b),
        [
            (Topic, s("orders-"), Prefixed, s("User:alice"), Read, Allow),
            (Group, s("billing"), Literal, s("User:bob"), Read, Allow),
            (
                Cluster,
                s("kafka-cluster"),
                Literal,
                s("User:mallory"),
                All,
                Deny
            ),
        ]
    );
    let err = fails(
        &b,
        &[
            "acl",
            "add",
            "--allow-principal",
            "alice",
            "--operation",
            "Read",
            "--topic",
            "t",
        ],
    );
    assert!(err.contains("InvalidRequest"), "{err}");
}

#[test]
fn acl_commands_need_an_authorizer() {
    let b = Broker::start();
    let err = fails(&b, &["acl", "list"]);
    assert!(err.contains("SecurityDisabled"), "{err}");
    let err = fails(
        &b,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:a",
            "--operation",
            "Read",
            "--topic",
            "t",
        ],
    );
    assert!(err.contains("SecurityDisabled"), "{err}");
}
