//! ACLs with two real principals (issue 13): an SSL listener requiring
//! client certificates, the authorizer on, kcat (Debian's librdkafka with
//! SSL) as two identities from `rivulet certs generate`:
//!
//! - the node certificate, `User:CN=rivulet-node,O=Rivulet`, a super user:
//!   creates topics by producing, reads everything;
//! - the client certificate, `User:CN=rivulet-client,O=Rivulet`, granted
//!   READ on `shared` only: it sees `shared` and not `secret` in Metadata,
//!   consumes `shared`, is refused (TOPIC_AUTHORIZATION_FAILED) producing
//!   to `shared` and consuming `secret`; a DENY for it on `shared` then
//!   overrides its ALLOW.
//!
//! The ACLs are set with `rivulet acl add` over a PLAINTEXT listener whose
//! clients (User:ANONYMOUS) hold ALTER and DESCRIBE on the cluster.

mod security_support;

use std::path::Path;

use rivulet_controller::acl::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};
use rivulet_controller::{ControllerRequest, ControllerResponse};
use rivulet_protocol::dev_certs::{generate, CertFiles, CLIENT_PRINCIPAL, NODE_PRINCIPAL};
use rivulet_testkit::broker::TestBroker;
use rivulet_testkit::dirs::temp_dir;
use security_support::{addr_of, cluster_up, kcat, rivulet, wait_replicated, ClusterDown, LIMIT};

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// kcat as the holder of `cert`/`key`, on `bootstrap`, then `more`.
fn as_identity(
    bootstrap: &str,
    certs: &CertFiles,
    cert: &Path,
    key: &Path,
    more: &[&str],
) -> Vec<String> {
    let mut a = vec![
        "-b".to_string(),
        bootstrap.to_string(),
        "-X".into(),
        "security.protocol=SSL".into(),
        "-X".into(),
        format!("ssl.ca.location={}", p(&certs.ca)),
        "-X".into(),
        format!("ssl.certificate.location={}", p(cert)),
        "-X".into(),
        format!("ssl.key.location={}", p(key)),
        "-m".into(),
        "10".into(),
    ];
    a.extend(more.iter().map(|s| s.to_string()));
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_certificate_principals_get_what_their_acls_say() {
    let dir = temp_dir();
    let (certs, _) = generate(&dir.path().join("certs")).unwrap();
    let super_users = NODE_PRINCIPAL.to_string();
    let b = TestBroker::start(
        &dir.path().join("data"),
        &[
            ("listeners", "SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0"),
            ("inter.broker.listener.name", "SSL"),
            ("ssl.certificate.location", &p(&certs.node_cert)),
            ("ssl.key.location", &p(&certs.node_key)),
            ("ssl.ca.location", &p(&certs.ca)),
            ("ssl.client.auth", "required"),
            ("offsets.topic.replication.factor", "1"),
            (
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            ),
            ("super.users", &super_users),
        ],
    )
    .await;
    let ssl = addr_of(&b, "SSL");
    let plain = addr_of(&b, "PLAINTEXT");
    // The administrator on PLAINTEXT: ALTER and DESCRIBE on the cluster.
    let admin = |op| AclBinding {
        resource_type: ResourceType::Cluster,
        resource_name: "kafka-cluster".into(),
        pattern_type: PatternType::Literal,
        principal: "User:ANONYMOUS".into(),
        host: "*".into(),
        operation: op,
        permission: AclPermission::Allow,
    };
    let broker = &b.node().broker;
    let resp = broker
        .controller_request(ControllerRequest::CreateAcls {
            acls: vec![admin(AclOperation::Alter), admin(AclOperation::Describe)],
        })
        .await;
    assert!(matches!(resp, ControllerResponse::Ok { .. }), "{resp:?}");
    assert!(broker.wait_until(LIMIT, |i| i.acls.len() == 2).await);

    let node = |more: &[&str]| as_identity(&ssl, &certs, &certs.node_cert, &certs.node_key, more);
    let client =
        |more: &[&str]| as_identity(&ssl, &certs, &certs.client_cert, &certs.client_key, more);

    // The super user creates both topics by producing to them.
    for t in ["shared", "secret"] {
        let r = kcat(node(&["-P", "-t", t]), &format!("{t}-1\n{t}-2\n")).await;
        assert!(r.success, "super user produce to {t}: {}", r.stderr);
    }
    // The client may READ `shared` (and so DESCRIBE it), set with the CLI.
    let add = rivulet(
        [
            "-b",
            &plain,
            "acl",
            "add",
            "--allow-principal",
            CLIENT_PRINCIPAL,
            "--operation",
            "Read",
            "--topic",
            "shared",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(add.success, "rivulet acl add: {}", add.stderr);
    // (an assign-only consumer needs no group)

    let md = kcat(client(&["-L"]), "").await;
    assert!(md.stdout.contains("topic \"shared\""), "{}", md.stdout);
    assert!(!md.stdout.contains("topic \"secret\""), "{}", md.stdout);
    let md = kcat(node(&["-L"]), "").await;
    assert!(md.stdout.contains("topic \"secret\""), "{}", md.stdout);

    let c = kcat(
        client(&[
            "-C",
            "-t",
            "shared",
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
        ]),
        "",
    )
    .await;
    assert!(c.success, "client consume shared: {}", c.stderr);
    assert_eq!(
        c.stdout.lines().collect::<Vec<_>>(),
        ["shared-1", "shared-2"]
    );

    let c = kcat(
        client(&["-C", "-t", "secret", "-p", "0", "-o", "beginning", "-e"]),
        "",
    )
    .await;
    assert!(!c.stdout.contains("secret-1"), "{}", c.stdout);
    assert!(
        c.stderr.contains("authoriz") || c.stderr.contains("Authoriz"),
        "client consume secret: {}",
        c.stderr
    );

    let w = kcat(client(&["-P", "-t", "shared", "-p", "0"]), "nope\n").await;
    assert!(
        w.stderr.contains("Topic authorization failed"),
        "client produce to shared: {} {}",
        w.success,
        w.stderr
    );

    // A DENY for the client wins over its ALLOW; the super user is unaffected.
    let deny = rivulet(
        [
            "-b",
            &plain,
            "acl",
            "add",
            "--deny-principal",
            CLIENT_PRINCIPAL,
            "--operation",
            "Read",
            "--topic",
            "shared",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(
        deny.success,
        "rivulet acl add --deny-principal: {}",
        deny.stderr
    );
    let c = kcat(
        client(&["-C", "-t", "shared", "-p", "0", "-o", "beginning", "-e"]),
        "",
    )
    .await;
    assert!(
        c.stderr.contains("Topic authorization failed"),
        "client consume shared after the DENY: {}",
        c.stderr
    );
    let c = kcat(
        node(&[
            "-C",
            "-t",
            "shared",
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
        ]),
        "",
    )
    .await;
    assert_eq!(c.stdout.lines().count(), 2, "{}", c.stderr);
}

/// `rivulet cluster up --tls --set authorizer.class.name=standard`: the
/// nodes' certificate principal is their super user, so they replicate
/// (an acks=all produce with min.insync.replicas=2 succeeds and reaches
/// every node's log) while the client certificate, with no ACL, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_up_tls_with_the_authorizer_replicates() {
    let dir = temp_dir();
    let _down = ClusterDown(p(dir.path()));
    let (base, _) = cluster_up(
        dir.path(),
        &[
            "--tls",
            "--set",
            "ssl.client.auth=required",
            "--set",
            "authorizer.class.name=standard",
        ],
    )
    .await;
    let bootstrap = format!(
        "127.0.0.1:{base},127.0.0.1:{},127.0.0.1:{}",
        base + 1,
        base + 2
    );
    let certs = CertFiles::in_dir(&dir.path().join("certs"));
    let node =
        |more: &[&str]| as_identity(&bootstrap, &certs, &certs.node_cert, &certs.node_key, more);
    let client = |more: &[&str]| {
        as_identity(
            &bootstrap,
            &certs,
            &certs.client_cert,
            &certs.client_key,
            more,
        )
    };

    let records: String = (1..=20).map(|i| format!("r{i}\n")).collect();
    let w = kcat(
        client(&["-X", "request.required.acks=-1", "-P", "-t", "replicated"]),
        &records,
    )
    .await;
    assert!(
        !w.success || w.stderr.contains("authorization"),
        "client produce: {}",
        w.stderr
    );
    let w = kcat(
        node(&["-X", "request.required.acks=-1", "-P", "-t", "replicated"]),
        &records,
    )
    .await;
    assert!(w.success, "super user acks=all produce: {}", w.stderr);
    wait_replicated(dir.path(), "replicated").await;
    let c = kcat(
        node(&["-C", "-t", "replicated", "-o", "beginning", "-e", "-q"]),
        "",
    )
    .await;
    assert_eq!(c.stdout.lines().count(), 20, "{}", c.stderr);
}

#[test]
fn the_acl_example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/acl.toml");
    let c = rivulet_broker::BrokerConfig::load(Some(&path), &[]).unwrap();
    let a = c.authorizer.expect("an authorizer");
    assert!(a.super_users.contains(NODE_PRINCIPAL));
    assert!(!a.allow_everyone_if_no_acl_found);
}
