//! `rivulet cluster up --sasl`: SASL/SCRAM on every Kafka listener of the
//! local cluster (SASL_SSL with `--tls`, else SASL_PLAINTEXT), replication
//! authenticated as the bootstrap admin, the controller quorum left as it
//! is (SSL with client certificates under `--tls`: the quorum transport has
//! no SASL).
//!
//! The admin's password is made once per cluster directory and kept in
//! `DIR/admin.password` (mode 0600); the nodes get it through
//! `sasl.scram.bootstrap.users` and `inter.broker.sasl.password`.

use std::fs;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use rivulet_protocol::sasl::{random_bytes, SaslCredentials};

/// The bootstrap admin's user name.
pub const ADMIN: &str = "admin";
/// Its mechanism, for clients and replication.
pub const MECHANISM: &str = "SCRAM-SHA-512";

/// The admin password of the cluster in `dir`, if one was made.
pub fn recorded_admin_password(dir: &Path) -> Option<String> {
    let p = fs::read_to_string(dir.join("admin.password")).ok()?;
    let p = p.trim();
    (!p.is_empty()).then(|| p.to_string())
}

/// The admin password of the cluster in `dir`, made on first use.
pub fn admin_password(dir: &Path) -> anyhow::Result<String> {
    if let Some(p) = recorded_admin_password(dir) {
        return Ok(p);
    }
    let path = dir.join("admin.password");
    let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(18));
    fs::write(&path, format!("{p}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
    }
    Ok(p)
}

/// The settings `--sasl` adds to every node (after `--tls`'s, before the
/// user's `--set`): the listener's protocol, the bootstrap admin, the
/// inter-broker credentials, and the admin as a super user (with `--tls`
/// next to the nodes' certificate principal) so that replication and the
/// admin keep working when the user turns the authorizer on.
pub fn node_settings(kafka_addr: &str, tls: bool, password: &str) -> Vec<(String, String)> {
    let protocol = if tls { "SASL_SSL" } else { "SASL_PLAINTEXT" };
    let s = |k: &str, v: String| (k.to_string(), v);
    vec![
        s("listeners", format!("{protocol}://{kafka_addr}")),
        s(
            "sasl.scram.bootstrap.users",
            format!(
                "SCRAM-SHA-512=[name={ADMIN},password=\"{password}\"],SCRAM-SHA-256=[name={ADMIN},password=\"{password}\"]"
            ),
        ),
        s("sasl.mechanism.inter.broker.protocol", MECHANISM.to_string()),
        s("inter.broker.sasl.username", ADMIN.to_string()),
        s("inter.broker.sasl.password", password.to_string()),
        s("super.users", super_users(tls)),
    ]
}

fn super_users(tls: bool) -> String {
    let admin = format!("User:{ADMIN}");
    if tls {
        format!("{};{admin}", rivulet_protocol::dev_certs::NODE_PRINCIPAL)
    } else {
        admin
    }
}

/// The admin's client credentials.
pub fn admin_credentials(password: &str) -> SaslCredentials {
    SaslCredentials {
        mechanism: MECHANISM.to_string(),
        username: ADMIN.to_string(),
        password: password.to_string(),
    }
}

/// librdkafka client properties for the admin (`kcat -F`, confluent-kafka,
/// `rivulet user --command-config`).
pub fn client_properties(bootstrap: &str, password: &str, ca: Option<&Path>) -> String {
    let protocol = if ca.is_some() {
        "SASL_SSL"
    } else {
        "SASL_PLAINTEXT"
    };
    let mut out = format!(
        "bootstrap.servers={bootstrap}\nsecurity.protocol={protocol}\nsasl.mechanism={MECHANISM}\nsasl.username={ADMIN}\nsasl.password={password}\n"
    );
    if let Some(ca) = ca {
        out.push_str(&format!("ssl.ca.location={}\n", ca.display()));
    }
    out
}
