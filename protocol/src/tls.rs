//! TLS for every Rivulet connection: the Kafka listeners, the replica
//! fetchers and broker links, and the controller's Raft transport.
//!
//! Owns loading PEM files into `rustls` configurations (ring provider), the
//! [`Stream`] every connection is served or dialled over (plain TCP or TLS
//! on TCP), the [`Connector`] that dials it, and the SSL principal taken
//! from a client certificate's subject ([`ssl_principal`]).
//!
//! Invariants: a configuration is only built from files that parsed (a bad
//! file is a [`TlsError`] naming the file, for start-up to refuse); one
//! connection's failed handshake is that connection's error alone.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
/// Re-exported so crates that pass configurations around need no rustls.
pub use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::low_water::LowWater;

/// The principal of a TLS client that sent no certificate, and of every
/// plaintext client (Kafka's `KafkaPrincipal.ANONYMOUS`).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{key} = {path}: {message}")]
    File {
        key: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{0} is not set (needed for TLS)")]
    Missing(&'static str),
    #[error("TLS configuration: {0}")]
    Rustls(String),
    #[error("{0}")]
    Property(String),
}

/// `ssl.client.auth`: whether a listener asks TLS clients for a certificate
/// (Kafka's `SslClientAuth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// A client without a valid certificate fails the handshake.
    Required,
    /// A client may send one (then it must be valid); without, it is
    /// `User:ANONYMOUS`.
    Requested,
    #[default]
    None,
}

impl ClientAuth {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "required" => Some(ClientAuth::Required),
            "requested" => Some(ClientAuth::Requested),
            "none" => Some(ClientAuth::None),
            _ => None,
        }
    }
}

/// The PEM files of one node, by librdkafka's property names:
/// `ssl.certificate.location` (this node's chain, leaf first),
/// `ssl.key.location` (its PKCS#8, PKCS#1 or SEC1 key) and
/// `ssl.ca.location` (the trust store: CA certificates that sign peers').
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

fn file_err(key: &'static str, path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        key,
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn load_certs(
    key: &'static str,
    path: &Option<PathBuf>,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let path = path.as_ref().ok_or(TlsError::Missing(key))?;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(key, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(key, path, e))?;
    if certs.is_empty() {
        return Err(file_err(key, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn load_key(path: &Option<PathBuf>) -> Result<PrivateKeyDer<'static>, TlsError> {
    const KEY: &str = "ssl.key.location";
    let path = path.as_ref().ok_or(TlsError::Missing(KEY))?;
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_err(KEY, path, e))
}

fn roots(files: &TlsFiles) -> Result<RootCertStore, TlsError> {
    const KEY: &str = "ssl.ca.location";
    let mut roots = RootCertStore::empty();
    for cert in load_certs(KEY, &files.ca)? {
        if let Some(path) = &files.ca {
            roots.add(cert).map_err(|e| file_err(KEY, path, e))?;
        }
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The listeners' provider: ring's suites with AES-128-GCM first. With
/// AES-NI it costs about a quarter less CPU per byte than AES-256-GCM,
/// which OpenSSL (librdkafka, Python clients) proposes first; the server
/// picks by its own order ([`ServerConfig::ignore_client_order`]), and every
/// suite stays available to clients that offer only others.
fn server_provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::CipherSuite as S;
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            S::TLS13_AES_128_GCM_SHA256
                | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    Arc::new(p)
}

fn rustls_err(e: impl std::fmt::Display) -> TlsError {
    TlsError::Rustls(e.to_string())
}

impl TlsFiles {
    /// The server side of a listener: this node's certificate and key, and
    /// with client authentication the CA that signs clients'.
    pub fn server_config(&self, auth: ClientAuth) -> Result<Arc<ServerConfig>, TlsError> {
        let certs = load_certs("ssl.certificate.location", &self.certificate)?;
        let key = load_key(&self.key)?;
        let builder = ServerConfig::builder_with_provider(server_provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls_err)?;
        let builder = match auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Required | ClientAuth::Requested => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(self)?), provider());
                let verifier = if auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build().map_err(rustls_err)?)
            }
        };
        let mut config = builder.with_single_cert(certs, key).map_err(rustls_err)?;
        config.ignore_client_order = true;
        Ok(Arc::new(config))
    }

    /// The client side, for connections between nodes: trust `ssl.ca.location`
    /// and present this node's certificate when it has one (so listeners
    /// with `ssl.client.auth = required` accept their peers).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls_err)?
            .with_root_certificates(roots(self)?);
        let config = if self.certificate.is_some() || self.key.is_some() {
            let certs = load_certs("ssl.certificate.location", &self.certificate)?;
            builder
                .with_client_auth_cert(certs, load_key(&self.key)?)
                .map_err(rustls_err)?
        } else {
            builder.with_no_client_auth()
        };
        Ok(Arc::new(config))
    }
}

/// The TCP side of a TLS connection: reads buffered, because rustls reads
/// at most 4 KiB per call (one syscall each on a bare socket); writes pass
/// through.
pub type TlsTransport = tokio::io::BufReader<TcpStream>;

/// Read buffer under TLS: several TLS records per syscall.
const TLS_READ_BUFFER: usize = 64 * 1024;

/// How much a served TLS connection encrypts ahead of the socket (rustls'
/// default is 64 KiB): a fetch response goes out as 16 KiB records in
/// writes of up to this size, a quarter of the `writev` calls, while the
/// client still decrypts the first records as the next are sealed.
const TLS_SEND_BUFFER: usize = 256 * 1024;

/// The most of a frame one TLS record holds, with its header, padding and
/// tag, rounded up.
const TLS_RECORD_SLACK: usize = 20 * 1024;

/// A connection: plain TCP or TLS over TCP, either side.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TlsTransport>>),
}

impl Stream {
    /// The socket's descriptor when it is a plain one, for a
    /// [`FileSender`](crate::spliced::FileSender) made when first needed
    /// (through TLS, file pieces are read and written as the rest).
    pub fn plain_fd(&self) -> Option<std::os::fd::RawFd> {
        match self {
            Stream::Plain(s) => Some(s.as_raw_fd()),
            Stream::Tls(_) => None,
        }
    }

    /// The TCP socket under it.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0.get_ref(),
        }
    }

    /// The receive low-water mark of its socket for reading frame bodies
    /// ([`crate::low_water`]). Under TLS, a read waits holding at most one
    /// partial record above the socket (the transport's buffer is drained
    /// first), so the mark stays that far below what a frame lacks.
    pub fn low_water(&self) -> LowWater {
        let slack = match self {
            Stream::Plain(_) => 0,
            Stream::Tls(_) => TLS_RECORD_SLACK,
        };
        LowWater::new(self.tcp().as_raw_fd(), slack)
    }

    /// The peer's certificate chain (leaf first), if it sent one over TLS.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(s) => s.get_ref().1.peer_certificates(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Accept TLS on an accepted TCP connection (the server side of a TLS
/// listener). The handshake's own failure is the error returned.
pub async fn accept(config: &Arc<ServerConfig>, tcp: TcpStream) -> io::Result<Stream> {
    let mut tls = tokio_rustls::TlsAcceptor::from(config.clone())
        .accept(tokio::io::BufReader::with_capacity(TLS_READ_BUFFER, tcp))
        .await?;
    tls.get_mut().1.set_buffer_limit(Some(TLS_SEND_BUFFER));
    Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls))))
}

/// Dials `host:port`, plain or TLS: one per kind of outgoing connection,
/// cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Connector {
    tls: Option<Arc<ClientConfig>>,
    /// SASL_PLAINTEXT / SASL_SSL: authenticate every connection first.
    sasl: Option<Arc<crate::sasl::SaslCredentials>>,
    /// What [`Connector::from_properties`] was given, the SASL mechanism
    /// filled in (empty for the other constructors).
    properties: Arc<std::collections::BTreeMap<String, String>>,
}

impl Connector {
    pub fn plaintext() -> Self {
        Connector::default()
    }

    pub fn tls(config: Arc<ClientConfig>) -> Self {
        Connector {
            tls: Some(config),
            ..Connector::default()
        }
    }

    /// Every connection authenticates with `creds` (SaslHandshake v1 and
    /// SaslAuthenticate) before it is handed out.
    pub fn with_sasl(mut self, creds: crate::sasl::SaslCredentials) -> Self {
        self.sasl = Some(Arc::new(creds));
        self
    }

    /// The connector Kafka client properties describe (librdkafka's and the Java
    /// client's names): `security.protocol` PLAINTEXT (also when absent), SSL,
    /// SASL_PLAINTEXT or SASL_SSL; `ssl.ca.location`, `ssl.certificate.location`,
    /// `ssl.key.location`; `sasl.mechanism` (or librdkafka's `sasl.mechanisms`;
    /// default SCRAM-SHA-512), `sasl.username`, `sasl.password`.
    pub fn from_properties(
        props: &std::collections::BTreeMap<String, String>,
    ) -> Result<Connector, TlsError> {
        let get = |k: &str| props.get(k).map(String::as_str).unwrap_or("");
        let protocol = match get("security.protocol") {
            "" => "PLAINTEXT",
            p => p,
        };
        let (tls, sasl) = match protocol.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return Err(TlsError::Property(format!(
                    "security.protocol {other}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
                )))
            }
        };
        let path = |k: &str| Some(PathBuf::from(get(k))).filter(|p| !p.as_os_str().is_empty());
        let mut c = if tls {
            let files = TlsFiles {
                certificate: path("ssl.certificate.location"),
                key: path("ssl.key.location"),
                ca: path("ssl.ca.location"),
            };
            Connector::tls(files.client_config()?)
        } else {
            Connector::plaintext()
        };
        if sasl {
            let mechanism = match (get("sasl.mechanism"), get("sasl.mechanisms")) {
                ("", "") => "SCRAM-SHA-512",
                ("", m) | (m, _) => m,
            };
            if get("sasl.username").is_empty() {
                return Err(TlsError::Property(format!(
                    "security.protocol {protocol} needs sasl.username and sasl.password"
                )));
            }
            c = c.with_sasl(crate::sasl::SaslCredentials {
                mechanism: mechanism.to_string(),
                username: get("sasl.username").to_string(),
                password: get("sasl.password").to_string(),
            });
        }
        let mut properties = props.clone();
        if let Some(creds) = &c.sasl {
            properties.remove("sasl.mechanisms");
            properties.insert("sasl.mechanism".into(), creds.mechanism.clone());
        }
        c.properties = Arc::new(properties);
        Ok(c)
    }

    /// The client properties the connector was made from, with the SASL
    /// mechanism it uses written out (librdkafka's own default would be
    /// GSSAPI): what a librdkafka client of the same servers is given, so
    /// that both kinds of client connect alike. Empty unless made by
    /// [`Connector::from_properties`].
    pub fn client_properties(&self) -> &std::collections::BTreeMap<String, String> {
        &self.properties
    }

    pub fn is_sasl(&self) -> bool {
        self.sasl.is_some()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Connect (`TCP_NODELAY` set) and, for TLS, verify the server's
    /// certificate against the host part of `addr` (a DNS name or an IP
    /// address in its subject alternative names). A SASL refusal is an error
    /// of kind `PermissionDenied`.
    pub async fn connect(&self, addr: &str) -> io::Result<Stream> {
        let stream = self.connect_transport(addr).await?;
        let Some(creds) = &self.sasl else {
            return Ok(stream);
        };
        let mut client = crate::wire::Client::new(stream);
        crate::sasl::authenticate(&mut client, creds)
            .await
            .map_err(|e| {
                // The exchange cut short is a broken connection; anything
                // else is the server's refusal (or an answer not of SASL).
                let kind = match e {
                    crate::sasl::SaslError::Wire(_) => io::ErrorKind::ConnectionAborted,
                    _ => io::ErrorKind::PermissionDenied,
                };
                io::Error::new(kind, e)
            })?;
        Ok(client.into_inner())
    }

    /// TCP, and TLS on it if configured, without SASL.
    async fn connect_transport(&self, addr: &str) -> io::Result<Stream> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let Some(config) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(
                name,
                tokio::io::BufReader::with_capacity(TLS_READ_BUFFER, tcp),
            )
            .await?;
        Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls))))
    }
}

/// Kafka's default SSL principal for a client certificate: `User:` and the
/// subject as `X500Principal.getName()` prints it (RFC 2253: the last RDN
/// first, `,` between RDNs, `+` within one, specials escaped), e.g.
/// `User:CN=client,O=Rivulet`. `None` when the DER does not parse.
pub fn ssl_principal(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|a| {
                let oid = a.attr_type().to_id_string();
                match (short_name(&oid), a.as_str()) {
                    (Some(name), Ok(value)) => format!("{name}={}", escape_rfc2253(value)),
                    // As Java: an unknown type by OID, its value as hex DER.
                    _ => format!("{oid}=#{}", hex(a.attr_value().as_bytes())),
                }
            })
            .collect();
        rdns.push(attrs.join("+"));
    }
    rdns.reverse();
    Some(format!("User:{}", rdns.join(",")))
}

/// The keywords `X500Principal.getName()` (RFC 2253 plus Java's extras) uses.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_properties_name_the_mechanism_the_connector_uses() {
        let props = |kv: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let base = [
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.username", "u"),
            ("sasl.password", "p"),
            ("client.id", "kept"),
        ];
        // No mechanism: SCRAM-SHA-512, written out for librdkafka.
        let c = Connector::from_properties(&props(&base)).unwrap();
        let p = c.client_properties();
        assert_eq!(p["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!((p["client.id"].as_str(), p.len()), ("kept", 5));
        // librdkafka's plural spelling becomes the one name.
        let mut with = base.to_vec();
        with.push(("sasl.mechanisms", "PLAIN"));
        let c = Connector::from_properties(&props(&with)).unwrap();
        assert_eq!(c.client_properties()["sasl.mechanism"], "PLAIN");
        assert!(!c.client_properties().contains_key("sasl.mechanisms"));
        // Without SASL nothing is added; other constructors carry none.
        let plain = Connector::from_properties(&props(&[("security.protocol", "PLAINTEXT")]));
        assert_eq!(plain.unwrap().client_properties().len(), 1);
        assert!(Connector::plaintext().client_properties().is_empty());
    }

    #[test]
    fn client_auth_parses_kafkas_values_only() {
        assert_eq!(ClientAuth::parse("required"), Some(ClientAuth::Required));
        assert_eq!(ClientAuth::parse("requested"), Some(ClientAuth::Requested));
        assert_eq!(ClientAuth::parse("none"), Some(ClientAuth::None));
        assert_eq!(ClientAuth::parse("yes"), None);
    }

    #[test]
    fn rfc2253_escapes_specials_and_edge_spaces() {
        assert_eq!(escape_rfc2253("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rfc2253("#x "), "\\#x\\ ");
        assert_eq!(escape_rfc2253("plain"), "plain");
    }

    #[test]
    fn missing_and_unreadable_files_are_named() {
        let e = TlsFiles::default()
            .server_config(ClientAuth::None)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "ssl.certificate.location is not set (needed for TLS)"
        );
        let dir = std::env::temp_dir().join(format!("rivulet-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not pem at all\n").unwrap();
        let files = TlsFiles {
            certificate: Some(junk.clone()),
            key: Some(dir.join("absent.pem")),
            ca: None,
        };
        let e = files.server_config(ClientAuth::None).unwrap_err();
        assert!(
            e.to_string().starts_with("ssl.certificate.location = ")
                && e.to_string().contains("junk.pem"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(feature = "dev-certs")]
    /// A TLS 1.3 handshake in memory between `server` and a client of
    /// `client`: the suite they agreed on.
    fn handshake(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> rustls::CipherSuite {
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut c = rustls::ClientConnection::new(client, name).unwrap();
        let mut s = rustls::ServerConnection::new(server).unwrap();
        for _ in 0..10 {
            if !c.is_handshaking() && !s.is_handshaking() {
                break;
            }
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets().unwrap();
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut &buf[..]).unwrap();
            c.process_new_packets().unwrap();
        }
        s.negotiated_cipher_suite().unwrap().suite()
    }

    #[cfg(feature = "dev-certs")]
    #[test]
    fn listeners_prefer_aes_128_gcm_and_still_accept_the_others() {
        use rustls::CipherSuite as S;
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = crate::dev_certs::generate(dir.path()).unwrap();
        let server = TlsFiles {
            certificate: Some(files.node_cert.clone()),
            key: Some(files.node_key.clone()),
            ca: Some(files.ca.clone()),
        }
        .server_config(ClientAuth::None)
        .unwrap();
        let client_files = TlsFiles {
            certificate: None,
            key: None,
            ca: Some(files.ca.clone()),
        };
        // The client proposes AES-256-GCM first, as OpenSSL does.
        let client = client_files.client_config().unwrap();
        assert_eq!(
            client.crypto_provider().cipher_suites[0].suite(),
            S::TLS13_AES_256_GCM_SHA384
        );
        assert_eq!(
            handshake(server.clone(), client),
            S::TLS13_AES_128_GCM_SHA256
        );
        // A client that offers only AES-256-GCM gets it.
        let mut only = rustls::crypto::ring::default_provider();
        only.cipher_suites
            .retain(|s| s.suite() == S::TLS13_AES_256_GCM_SHA384);
        let client = ClientConfig::builder_with_provider(Arc::new(only))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(&client_files).unwrap())
            .with_no_client_auth();
        assert_eq!(
            handshake(server, Arc::new(client)),
            S::TLS13_AES_256_GCM_SHA384
        );
    }
}
