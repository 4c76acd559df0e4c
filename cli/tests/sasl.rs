//! SASL end to end (issue 13), through real clients: kcat (Debian's
//! librdkafka, built with SSL and SASL) and confluent-kafka from target/py,
//! plus raw sockets for the bad inputs.
//!
//! - confluent-kafka (tests/compat/sasl_check.py): users created,
//!   described and deleted with the AdminClient over SASL_SSL as the
//!   bootstrap admin; SCRAM-SHA-256 and PLAIN over SASL_PLAINTEXT, a group
//!   committing over SASL_SSL with SCRAM-SHA-512; wrong password, unknown
//!   user and deleted user refused with Kafka's message;
//! - kcat over SASL_SSL with SCRAM-SHA-512: produce and consume; a wrong
//!   password refused with the message while another client keeps
//!   producing;
//! - raw sockets: requests before authentication, an unknown mechanism,
//!   garbage SCRAM, an exchange cut in the middle, a huge token, a
//!   plaintext request on the SASL_SSL port — each a clean close while
//!   the broker serves others; SaslHandshake v0 with raw tokens;
//!   re-authentication (KIP-368): expiry closes, a re-authentication
//!   extends, another principal closes;
//! - `rivulet user create|list|delete` over SASL_SSL (`--command-config`);
//!   the 3-node cluster with SASL is in `secure_cluster.rs`;
//! - start-up refusals: SASL on the controller listener, a SASL
//!   inter-broker listener without credentials;
//! - kafka-python (tests/compat/kafka_python_secure_check.py) over SSL with
//!   a client certificate and over SASL_SSL with SCRAM-SHA-512 and none,
//!   the broker-wide `ssl.client.auth=required` applying to SSL only.

mod security_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use rivulet_broker::{BrokerConfig, BrokerNode};
use rivulet_protocol::sasl::{SaslCredentials, ScramClient, ScramMechanism};
use rivulet_protocol::tls::{Connector, TlsFiles};
use rivulet_protocol::wire::{self, Client};
use rivulet_testkit::broker::TestBroker;
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::process::run;
use security_support::{addr_of, path, tool, LIMIT, RIVULET};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/py/bin/python");
const FAILED: &str =
    "Authentication failed during authentication due to invalid credentials with SASL mechanism";
const ADMIN_USERS: &str = "SCRAM-SHA-512=[name=admin,password=admin-secret],SCRAM-SHA-256=[name=admin,password=admin-secret,iterations=8192]";

/// `rivulet certs generate --dir DIR`: the CA file.
fn generate_certs(dir: &Path) -> PathBuf {
    let r = run(
        Path::new(RIVULET),
        &["certs", "generate", "--dir", path(dir)],
        "",
        LIMIT,
    );
    assert!(r.success, "certs generate failed: {}", r.stderr);
    dir.to_path_buf()
}

fn sasl_args(
    bootstrap: &str,
    protocol: &str,
    mechanism: &str,
    user: &str,
    pw: &str,
    ca: &Path,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "-b",
        bootstrap,
        "-X",
        &format!("security.protocol={protocol}"),
        "-X",
        &format!("sasl.mechanisms={mechanism}"),
        "-X",
        &format!("sasl.username={user}"),
        "-X",
        &format!("sasl.password={pw}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if protocol == "SASL_SSL" {
        a.extend([
            "-X".to_string(),
            format!("ssl.ca.location={}", path(&ca.join("ca.pem"))),
        ]);
    }
    a
}

fn with(mut base: Vec<String>, more: &[&str]) -> Vec<String> {
    base.extend(more.iter().map(|s| s.to_string()));
    base
}

/// A broker with SASL_SSL, SASL_PLAINTEXT and (inter-broker) PLAINTEXT
/// listeners and the bootstrap admin.
async fn sasl_broker(data: &Path, certs: &Path, extra: &[(&str, &str)]) -> TestBroker {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut settings = vec![
        (
            "listeners",
            "SASL_SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
        ),
        ("inter.broker.listener.name", "PLAINTEXT"),
        ("ssl.certificate.location", "CERT"),
        ("ssl.key.location", "KEY"),
        ("ssl.ca.location", "CA"),
        ("sasl.scram.bootstrap.users", ADMIN_USERS),
        ("offsets.topic.replication.factor", "1"),
    ];
    let (cert, key, ca) = (
        certs.join("node.pem").display().to_string(),
        certs.join("node.key").display().to_string(),
        certs.join("ca.pem").display().to_string(),
    );
    for s in settings.iter_mut() {
        match s.1 {
            "CERT" => s.1 = &cert,
            "KEY" => s.1 = &key,
            "CA" => s.1 = &ca,
            _ => {}
        }
    }
    settings.extend_from_slice(extra);
    TestBroker::start(data, &settings).await
}

fn tls_connector(certs: &Path) -> Connector {
    let files = TlsFiles {
        certificate: None,
        key: None,
        ca: Some(certs.join("ca.pem")),
    };
    Connector::tls(files.client_config().unwrap())
}

fn creds(mechanism: &str, user: &str, password: &str) -> SaslCredentials {
    SaslCredentials {
        mechanism: mechanism.into(),
        username: user.into(),
        password: password.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_kcat_clients_over_sasl_ssl_and_sasl_plaintext() {
    let dir = temp_dir();
    let certs = generate_certs(&dir.path().join("certs"));
    let b = sasl_broker(&dir.path().join("data"), &certs, &[]).await;
    let ssl = addr_of(&b, "SASL_SSL");
    let plain = addr_of(&b, "SASL_PLAINTEXT");

    python_check(
        "sasl_check.py",
        vec![
            ssl.clone(),
            plain.clone(),
            path(&certs.join("ca.pem")).into(),
            "py-sasl".into(),
        ],
        "sasl ok",
    )
    .await;

    // kcat, SCRAM-SHA-512 over SASL_SSL.
    let admin = sasl_args(
        &ssl,
        "SASL_SSL",
        "SCRAM-SHA-512",
        "admin",
        "admin-secret",
        &certs,
    );
    let p = tool(
        "kcat",
        with(admin.clone(), &["-P", "-t", "kcat-sasl"]),
        "one\ntwo\nthree\n",
    )
    .await;
    assert!(p.success, "kcat produce over SASL_SSL: {}", p.stderr);
    let c = tool(
        "kcat",
        with(
            admin.clone(),
            &["-C", "-t", "kcat-sasl", "-o", "beginning", "-e", "-q"],
        ),
        "",
    )
    .await;
    assert_eq!(
        c.stdout.lines().collect::<Vec<_>>(),
        ["one", "two", "three"],
        "{}",
        c.stderr
    );

    // A wrong password is refused with Kafka's message while another
    // client keeps producing.
    let producing = tokio::spawn(tool(
        "kcat",
        with(admin.clone(), &["-P", "-t", "kcat-sasl"]),
        "four\nfive\n",
    ));
    let wrong = sasl_args(&ssl, "SASL_SSL", "SCRAM-SHA-512", "admin", "wrong", &certs);
    let w = tool("kcat", with(wrong, &["-L", "-m", "5"]), "").await;
    assert!(!w.success, "a wrong password was served: {}", w.stdout);
    assert!(
        w.stderr.contains(&format!("{FAILED} SCRAM-SHA-512")),
        "{}",
        w.stderr
    );
    assert!(producing.await.unwrap().success);
    let plain_admin = sasl_args(
        &plain,
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
        "admin",
        "admin-secret",
        &certs,
    );
    let c = tool(
        "kcat",
        with(
            plain_admin,
            &["-C", "-t", "kcat-sasl", "-o", "beginning", "-e", "-q"],
        ),
        "",
    )
    .await;
    assert_eq!(c.stdout.lines().count(), 5, "{}", c.stderr);

    // `rivulet user` over SASL_SSL as the admin: create carol, who then
    // produces with kcat; list; delete; carol refused.
    let props = dir.path().join("admin.properties");
    std::fs::write(
        &props,
        format!(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=admin\nsasl.password=admin-secret\nssl.ca.location={}\n",
            path(&certs.join("ca.pem"))
        ),
    )
    .unwrap();
    let user = |args: &[&str]| {
        let mut a = vec!["user"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--command-config", path(&props), "-b", &ssl]);
        run(Path::new(RIVULET), &a, "", LIMIT)
    };
    let r = user(&[
        "create",
        "carol",
        "--password",
        "carol-secret",
        "--iterations",
        "4096",
    ]);
    assert!(r.success, "user create: {}", r.stderr);
    let r = user(&["list"]);
    assert!(r.success, "user list: {}", r.stderr);
    assert!(
        r.stdout.contains("carol\tSCRAM-SHA-512(iterations=4096)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("admin\tSCRAM-SHA-256(iterations=8192),SCRAM-SHA-512(iterations=4096)"),
        "{}",
        r.stdout
    );
    let carol = sasl_args(
        &ssl,
        "SASL_SSL",
        "SCRAM-SHA-512",
        "carol",
        "carol-secret",
        &certs,
    );
    let p = tool(
        "kcat",
        with(carol.clone(), &["-P", "-t", "kcat-sasl"]),
        "six\n",
    )
    .await;
    assert!(p.success, "carol produces: {}", p.stderr);
    let r = user(&["create", "carol", "--password", "x", "--iterations", "100"]);
    assert!(
        !r.success && r.stderr.contains("Too few iterations"),
        "{}",
        r.stderr
    );
    let r = user(&["delete", "carol"]);
    assert!(r.success, "user delete: {}", r.stderr);
    let r = user(&["delete", "carol", "--mechanism", "SCRAM-SHA-512"]);
    assert!(
        !r.success && r.stderr.contains("ResourceNotFound"),
        "{}",
        r.stderr
    );
    let w = tool("kcat", with(carol, &["-L", "-m", "5"]), "").await;
    assert!(!w.success && w.stderr.contains(FAILED), "{}", w.stderr);
    // Without credentials the SASL_SSL listener refuses the command.
    let r = run(Path::new(RIVULET), &["user", "list", "-b", &ssl], "", LIMIT);
    assert!(!r.success, "{}", r.stdout);
}

/// kafka-python (its own TLS and SCRAM, not librdkafka's) on a broker with
/// an SSL listener requiring client certificates broker-wide and a SASL_SSL
/// one: SSL with the certificate round-trips and commits, without one it is
/// refused; SASL_SSL without a certificate round-trips too (the broker-wide
/// `ssl.client.auth` does not apply to SASL_SSL, as in Kafka), a wrong
/// password is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_over_ssl_with_a_certificate_and_over_sasl_ssl_without_one() {
    let dir = temp_dir();
    let certs = generate_certs(&dir.path().join("certs"));
    let (cert, key, ca) = (
        certs.join("node.pem").display().to_string(),
        certs.join("node.key").display().to_string(),
        certs.join("ca.pem").display().to_string(),
    );
    let b = TestBroker::start(
        &dir.path().join("data"),
        &[
            (
                "listeners",
                "SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
            ),
            ("inter.broker.listener.name", "PLAINTEXT"),
            ("ssl.certificate.location", &cert),
            ("ssl.key.location", &key),
            ("ssl.ca.location", &ca),
            ("ssl.client.auth", "required"),
            ("sasl.scram.bootstrap.users", ADMIN_USERS),
            ("offsets.topic.replication.factor", "1"),
        ],
    )
    .await;
    let out = python_check(
        "kafka_python_secure_check.py",
        vec![
            addr_of(&b, "SSL"),
            addr_of(&b, "SASL_SSL"),
            ca.clone(),
            path(&certs.join("client.pem")).into(),
            path(&certs.join("client.key")).into(),
            "py-secure".into(),
        ],
        "kafka-python secure ok",
    )
    .await;
    eprintln!("{}", out.trim());
}

/// Run `tests/compat/SCRIPT ARGS` with the test clients' Python; it must
/// succeed and print `marker`. Returns its standard output.
async fn python_check(script: &str, args: Vec<String>, marker: &str) -> String {
    let path = format!("{}/../tests/compat/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut all = vec![path];
    all.extend(args);
    let py = tool(PYTHON, all, "").await;
    assert!(
        py.success && py.stdout.contains(marker),
        "{script}:\n{}\n{}",
        py.stdout,
        py.stderr
    );
    py.stdout
}

/// Send `frame` (a whole request, size prefix included) and expect the
/// connection to close, with at most one response before it.
async fn expect_close<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    client: &mut Client<S>,
    what: &str,
) {
    for _ in 0..2 {
        match client.read_response().await {
            Err(wire::WireError::Eof) | Err(wire::WireError::Io(_)) => return,
            Err(e) => panic!("{what}: expected a close, got {e}"),
            Ok(_) => {}
        }
    }
    panic!("{what}: the connection stayed open");
}

fn frame<R: kafka_protocol::protocol::Request>(req: &R, version: i16) -> Vec<u8> {
    wire::encode_request(req, version, 7, Some("raw"))
        .unwrap()
        .to_vec()
}

async fn plain_client(addr: &str) -> Client<tokio::net::TcpStream> {
    wire::connect(addr)
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(15))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_closes_the_connection_and_the_broker_keeps_serving() {
    let dir = temp_dir();
    let certs = generate_certs(&dir.path().join("certs"));
    let b = sasl_broker(&dir.path().join("data"), &certs, &[]).await;
    let ssl = addr_of(&b, "SASL_SSL");
    let plain = addr_of(&b, "SASL_PLAINTEXT");

    // ApiVersions is served before authentication and lists the SASL APIs.
    let mut c = plain_client(&plain).await;
    let v = c
        .round_trip(3, &ApiVersionsRequest::default())
        .await
        .unwrap();
    for key in [17i16, 36, 50, 51] {
        assert!(
            v.api_keys.iter().any(|k| k.api_key == key),
            "API {key} advertised"
        );
    }
    // Any other request before authentication closes the connection.
    c.send(&frame(&MetadataRequest::default(), 4))
        .await
        .unwrap();
    expect_close(&mut c, "Metadata before authentication").await;

    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the list.
    let mut c = plain_client(&plain).await;
    let hs = c
        .round_trip(
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI")),
        )
        .await
        .unwrap();
    assert_eq!(hs.error_code, 33);
    let names: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(names, ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]);
    expect_close(&mut c, "after UNSUPPORTED_SASL_MECHANISM").await;

    // Garbage SCRAM: SASL_AUTHENTICATION_FAILED with the message, closed.
    let mut c = plain_client(&plain).await;
    c.round_trip(
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("SCRAM-SHA-512")),
    )
    .await
    .unwrap();
    let r: SaslAuthenticateResponse = c
        .round_trip(
            2,
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\x00garbage,,=")),
        )
        .await
        .unwrap();
    assert_eq!(r.error_code, 58);
    assert!(
        r.error_message.as_deref().unwrap_or("").contains(FAILED),
        "{r:?}"
    );
    expect_close(&mut c, "after garbage SCRAM").await;

    // Out of order: a client-final first.
    let mut c = plain_client(&plain).await;
    c.round_trip(
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("SCRAM-SHA-256")),
    )
    .await
    .unwrap();
    let r = c
        .round_trip(
            2,
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"c=biws,r=abc,p=AAAA")),
        )
        .await
        .unwrap();
    assert_eq!(r.error_code, 58, "{r:?}");
    expect_close(&mut c, "after an out-of-order SCRAM message").await;

    // SaslAuthenticate before SaslHandshake: ILLEGAL_SASL_STATE, closed.
    let mut c = plain_client(&plain).await;
    let r = c
        .round_trip(
            2,
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"n,,n=a,r=b")),
        )
        .await
        .unwrap();
    assert_eq!(r.error_code, 34, "{r:?}");
    expect_close(&mut c, "SaslAuthenticate first").await;

    // An exchange cut in the middle: client-first, then the client goes.
    let mut cut = plain_client(&plain).await;
    cut.round_trip(
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("SCRAM-SHA-512")),
    )
    .await
    .unwrap();
    let scram = ScramClient::new(ScramMechanism::Sha512, "admin", "admin-secret");
    let r = cut
        .round_trip(
            2,
            &SaslAuthenticateRequest::default().with_auth_bytes(scram.first().into()),
        )
        .await
        .unwrap();
    assert_eq!(r.error_code, 0);
    drop(cut);
    // Half a frame, then gone.
    let mut half = tokio::net::TcpStream::connect(&plain).await.unwrap();
    half.write_all(&[0, 0, 0, 40, 0, 17, 0, 1]).await.unwrap();
    drop(half);

    // A huge SaslAuthenticate: refused by its size prefix, unread.
    let mut c = plain_client(&plain).await;
    c.round_trip(
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )
    .await
    .unwrap();
    let mut huge = Vec::new();
    huge.extend_from_slice(&(64 * 1024 * 1024i32).to_be_bytes());
    huge.extend_from_slice(&[0, 36, 0, 2, 0, 0, 0, 9]);
    c.send(&huge).await.unwrap();
    expect_close(&mut c, "a 64 MiB SaslAuthenticate").await;

    // A plaintext Kafka request on the SASL_SSL port: no answer, closed.
    let mut tcp = tokio::net::TcpStream::connect(&ssl).await.unwrap();
    tcp.write_all(&frame(&ApiVersionsRequest::default(), 0))
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut got))
        .await
        .expect("the SASL_SSL port closes a plaintext client");
    assert!(
        got.is_empty() || got[0] == 21,
        "answered in the clear: {got:?}"
    );

    // SaslHandshake v0: raw tokens (PLAIN), then requests are served.
    let mut c = plain_client(&plain).await;
    let hs = c
        .round_trip(
            0,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        )
        .await
        .unwrap();
    assert_eq!(hs.error_code, 0);
    let token = b"\0admin\0admin-secret";
    let mut raw = (token.len() as i32).to_be_bytes().to_vec();
    raw.extend_from_slice(token);
    c.send(&raw).await.unwrap();
    // PLAIN's answer: an empty token, size-prefixed.
    let mut answer = [0u8; 4];
    c.stream_mut().read_exact(&mut answer).await.unwrap();
    assert_eq!(answer, [0, 0, 0, 0], "PLAIN's answer is an empty token");
    let md = c.round_trip(4, &MetadataRequest::default()).await.unwrap();
    assert_eq!(md.brokers.len(), 1);

    // Through all that the broker serves others: the Rust client with
    // SCRAM over SASL_SSL, and a wrong password refused.
    let ok = tls_connector(&certs).with_sasl(creds("SCRAM-SHA-512", "admin", "admin-secret"));
    let mut c = wire::connect_with(&ok, &ssl).await.unwrap();
    let md = c.round_trip(4, &MetadataRequest::default()).await.unwrap();
    assert_eq!(md.brokers.len(), 1);
    let bad = tls_connector(&certs).with_sasl(creds("SCRAM-SHA-512", "admin", "nope"));
    let e = wire::connect_with(&bad, &ssl).await.unwrap_err();
    assert!(e.to_string().contains(FAILED), "{e}");
    let plain_ok = Connector::plaintext().with_sasl(creds("PLAIN", "admin", "admin-secret"));
    let mut c = wire::connect_with(&plain_ok, &plain).await.unwrap();
    c.round_trip(4, &MetadataRequest::default()).await.unwrap();
}

/// Authenticate `client` with SCRAM-SHA-512: the session lifetime.
async fn scram_login<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    client: &mut Client<S>,
    user: &str,
    password: &str,
) -> Result<i64, String> {
    rivulet_protocol::sasl::authenticate(client, &creds("SCRAM-SHA-512", user, password))
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthentication_extends_the_session_and_expiry_closes_it() {
    let dir = temp_dir();
    let certs = generate_certs(&dir.path().join("certs"));
    let users = format!("{ADMIN_USERS},SCRAM-SHA-512=[name=eve,password=eve-secret]");
    let b = sasl_broker(
        &dir.path().join("data"),
        &certs,
        &[
            ("connections.max.reauth.ms", "3000"),
            ("sasl.scram.bootstrap.users", &users),
        ],
    )
    .await;
    let plain = addr_of(&b, "SASL_PLAINTEXT");

    // The session lifetime is answered; once it has passed, a request
    // closes the connection.
    let mut c = plain_client(&plain).await;
    assert_eq!(scram_login(&mut c, "admin", "admin-secret").await, Ok(3000));
    c.round_trip(4, &MetadataRequest::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3300)).await;
    c.send(&frame(&MetadataRequest::default(), 4))
        .await
        .unwrap();
    expect_close(&mut c, "a request after the session expired").await;

    // Re-authenticating on the same connection keeps it going.
    let mut c = plain_client(&plain).await;
    scram_login(&mut c, "admin", "admin-secret").await.unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1800)).await;
        assert_eq!(scram_login(&mut c, "admin", "admin-secret").await, Ok(3000));
        c.round_trip(4, &MetadataRequest::default()).await.unwrap();
    }

    // Another principal on re-authentication: refused, closed.
    let mut c = plain_client(&plain).await;
    scram_login(&mut c, "admin", "admin-secret").await.unwrap();
    let e = scram_login(&mut c, "eve", "eve-secret").await.unwrap_err();
    assert!(
        e.contains("Cannot change principals during re-authentication"),
        "{e}"
    );
    c.send(&frame(&MetadataRequest::default(), 4)).await.ok();
    expect_close(&mut c, "after a principal change").await;

    // librdkafka re-authenticates by itself: a producer over several
    // sessions that never reconnects.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/compat/sasl_reauth_check.py"
    );
    let py = tool(
        PYTHON,
        vec![script.into(), plain, "reauth".into(), "10".into()],
        "",
    )
    .await;
    assert!(
        py.success && py.stdout.contains("reauth ok"),
        "sasl_reauth_check.py:\n{}\n{}",
        py.stdout,
        py.stderr
    );
}

#[tokio::test]
async fn sasl_on_the_controller_and_inter_broker_sasl_without_credentials_fail_the_start() {
    let dir = temp_dir();
    let config = |kv: &[(&str, &str)]| {
        let mut props: std::collections::BTreeMap<String, String> = [
            ("data.dir", path(&dir.path().join("data"))),
            ("controller.listener", "127.0.0.1:0"),
            ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in kv {
            props.insert(k.to_string(), v.to_string());
        }
        BrokerConfig::from_props(&props).unwrap()
    };
    let e = BrokerNode::start(config(&[("controller.listener", "SASL_SSL://127.0.0.1:0")]))
        .await
        .err()
        .expect("SASL on the controller is refused");
    assert!(e.to_string().contains("use SSL there"), "{e}");
    let e = BrokerNode::start(config(&[]))
        .await
        .err()
        .expect("a SASL inter-broker listener needs credentials");
    assert!(e.to_string().contains("inter.broker.sasl.username"), "{e}");
    for (k, v) in [
        ("sasl.enabled.mechanisms", "GSSAPI"),
        (
            "sasl.scram.bootstrap.users",
            "SCRAM-SHA-1=[name=a,password=b]",
        ),
        ("sasl.scram.bootstrap.users", "SCRAM-SHA-512=[name=a]"),
        ("listener.name.nope.sasl.enabled.mechanisms", "PLAIN"),
    ] {
        let mut props = std::collections::BTreeMap::new();
        props.insert(k.to_string(), v.to_string());
        let e = BrokerConfig::from_props(&props).unwrap_err();
        assert!(e.to_string().contains(k), "{e}");
    }
}

#[test]
fn the_sasl_example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/sasl.toml");
    let c = BrokerConfig::load(Some(&path), &[]).unwrap();
    assert!(c.listeners.iter().all(|l| l.protocol.uses_sasl()));
    assert_eq!(c.inter_broker_listener, "SASL_SSL");
    assert_eq!(c.sasl.inter_broker.username, "admin");
    assert_eq!(c.sasl.bootstrap_users.len(), 2);
    assert_eq!(c.sasl.max_reauth_ms, 3_600_000);
}
