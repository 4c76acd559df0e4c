//! Development certificates (rcgen; feature `dev-certs`): a CA, a node
//! certificate for `localhost`/`127.0.0.1`/`::1` (server and client use:
//! nodes dial each other with it) and a client certificate, as PEM files,
//! plus the settings that use them. `rivulet certs generate` and
//! `rivulet cluster up --tls` write them; tests make their own.
//!
//! For development and tests only: the keys are written unencrypted (mode
//! 0600) and the certificates never expire in practice (rcgen's defaults).
//! Existing files are kept, so a cluster's trust store stays stable across
//! runs; a partial set is refused.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DevCertsError {
    #[error(
        "{0} holds only part of a certificate set; remove ca.pem, node.*, client.* there first"
    )]
    Partial(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("generating certificates: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// The principal of the node certificate (every node's, on SSL): what
/// `super.users` lists when an authorizer is on, so that replication and
/// transaction markers between nodes are allowed.
pub const NODE_PRINCIPAL: &str = "User:CN=rivulet-node,O=Rivulet";
/// The principal of the client certificate.
pub const CLIENT_PRINCIPAL: &str = "User:CN=rivulet-client,O=Rivulet";

/// The files of a generated set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub ca: PathBuf,
    pub node_cert: PathBuf,
    pub node_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl CertFiles {
    pub fn in_dir(dir: &Path) -> Self {
        CertFiles {
            ca: dir.join("ca.pem"),
            node_cert: dir.join("node.pem"),
            node_key: dir.join("node.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }

    fn all(&self) -> [&PathBuf; 5] {
        [
            &self.ca,
            &self.node_cert,
            &self.node_key,
            &self.client_cert,
            &self.client_key,
        ]
    }

    /// The broker settings for these files (every node uses the node pair).
    pub fn broker_settings(&self) -> Vec<(String, String)> {
        vec![
            (
                "ssl.certificate.location".into(),
                self.node_cert.display().to_string(),
            ),
            (
                "ssl.key.location".into(),
                self.node_key.display().to_string(),
            ),
            ("ssl.ca.location".into(), self.ca.display().to_string()),
        ]
    }

    /// librdkafka's client properties for an SSL client with the client
    /// certificate.
    pub fn client_properties(&self, bootstrap: &str) -> String {
        format!(
            "bootstrap.servers={bootstrap}\nsecurity.protocol=SSL\nssl.ca.location={}\n\
             ssl.certificate.location={}\nssl.key.location={}\n",
            self.ca.display(),
            self.client_cert.display(),
            self.client_key.display()
        )
    }
}

/// Write the set into `dir` unless it is all there already; whether it was
/// written. A partial set is an error (it would not match itself).
pub fn generate(dir: &Path) -> Result<(CertFiles, bool), DevCertsError> {
    let files = CertFiles::in_dir(dir);
    let present = files.all().iter().filter(|p| p.exists()).count();
    if present == files.all().len() {
        return Ok((files, false));
    }
    if present > 0 {
        return Err(DevCertsError::Partial(dir.to_path_buf()));
    }
    fs::create_dir_all(dir).map_err(|e| DevCertsError::Io(dir.to_path_buf(), e))?;

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // The most general name first, as usual: RFC 2253 prints it last
    // (`CN=...,O=Rivulet`). (rcgen's default name holds a CN already.)
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::OrganizationName, "Rivulet");
    ca.distinguished_name
        .push(DnType::CommonName, "Rivulet development CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let leaf = |names: Vec<String>, cn: &str, usages: Vec<ExtendedKeyUsagePurpose>| {
        let mut p = CertificateParams::new(names)?;
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name
            .push(DnType::OrganizationName, "Rivulet");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = usages;
        p.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &issuer)?;
        Ok::<_, rcgen::Error>((cert.pem(), key.serialize_pem()))
    };
    let (node_cert, node_key) = leaf(
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        "rivulet-node",
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    )?;
    let (client_cert, client_key) = leaf(
        Vec::new(),
        "rivulet-client",
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )?;
    write(&files.ca, &ca_cert.pem(), false)?;
    write(&files.node_cert, &node_cert, false)?;
    write(&files.node_key, &node_key, true)?;
    write(&files.client_cert, &client_cert, false)?;
    write(&files.client_key, &client_key, true)?;
    Ok((files, true))
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), DevCertsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|e| DevCertsError::Io(path.to_path_buf(), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| DevCertsError::Io(path.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_set_that_serves_tls_and_authenticates_the_client() {
        let dir = tempfile::tempdir().unwrap();
        let (files, made) = generate(dir.path()).unwrap();
        assert!(made);
        for p in files.all() {
            assert!(p.exists(), "{}", p.display());
        }
        // The node pair loads as a server requiring client certificates
        // and as a client; the client certificate's principal is Kafka's.
        let node = crate::tls::TlsFiles {
            certificate: Some(files.node_cert.clone()),
            key: Some(files.node_key.clone()),
            ca: Some(files.ca.clone()),
        };
        node.server_config(crate::tls::ClientAuth::Required)
            .unwrap();
        node.client_config().unwrap();
        let pem = fs::read(&files.client_cert).unwrap();
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
        assert_eq!(
            crate::tls::ssl_principal(&der).as_deref(),
            Some("User:CN=rivulet-client,O=Rivulet")
        );
        assert_eq!(
            crate::tls::ssl_principal(&der).as_deref(),
            Some(CLIENT_PRINCIPAL)
        );
        let pem = fs::read(&files.node_cert).unwrap();
        let der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
        assert_eq!(
            crate::tls::ssl_principal(&der).as_deref(),
            Some(NODE_PRINCIPAL)
        );
        // A second run keeps the files; a partial set is refused.
        let before = fs::read(&files.ca).unwrap();
        assert!(!generate(dir.path()).unwrap().1);
        assert_eq!(fs::read(&files.ca).unwrap(), before);
        fs::remove_file(&files.client_key).unwrap();
        assert!(generate(dir.path()).is_err());
    }
}
