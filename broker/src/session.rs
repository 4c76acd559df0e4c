//! [`Session`]: who is on the other end of one connection — the peer
//! address, the listener it came in on (Metadata answers with that
//! listener's advertised addresses, as Kafka does) and its principal (for
//! the authorizer: `User:CN=...` from a TLS client certificate, Kafka's
//! default principal builder, else `User:ANONYMOUS`).
//!
//! On a SASL listener the principal is `User:ANONYMOUS` until the client
//! authenticates, then `User:<name>` (re-set by every re-authentication,
//! KIP-368, which may not change it: [`crate::sasl`]). [`open`] makes one from an accepted connection: the TLS
//! handshake, if the listener has TLS, and the principal.

use std::net::SocketAddr;

use rivulet_protocol::tls::ANONYMOUS;

use crate::listeners::SecurityProtocol;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub peer: SocketAddr,
    /// The listener's name (`PLAINTEXT`, `SSL`, a custom one).
    pub listener: String,
    pub protocol: SecurityProtocol,
    /// `User:...`, Kafka's `KafkaPrincipal` in its string form.
    pub principal: String,
}

impl Session {
    /// Set the principal: a SASL exchange completed (again, for a
    /// re-authentication) as `principal` (`User:<name>`).
    pub fn set_principal(&mut self, principal: String) {
        self.principal = principal;
    }

    /// A plaintext client of the `PLAINTEXT` listener (tests, fuzzing).
    pub fn plaintext(peer: SocketAddr) -> Self {
        Session {
            peer,
            listener: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            principal: ANONYMOUS.into(),
        }
    }
}

/// Why an accepted connection was not served.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
    #[error("TLS handshake did not finish within request.body.timeout.ms ({0:?})")]
    Timeout(std::time::Duration),
}

/// Make an accepted connection of listener `listener` ready to serve: as it
/// is for a plaintext listener (`User:ANONYMOUS`), after a TLS handshake
/// within `timeout` for a TLS one (`tls`), the principal then taken from the
/// client certificate's subject (Kafka's default SSL principal) or
/// `User:ANONYMOUS` without one. A failed or slow handshake is this
/// connection's error only.
pub async fn open(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<&std::sync::Arc<rivulet_protocol::tls::ServerConfig>>,
    timeout: std::time::Duration,
    listener: &str,
    protocol: SecurityProtocol,
) -> Result<(rivulet_protocol::tls::Stream, Session), HandshakeError> {
    use rivulet_protocol::tls::{self, Stream};
    let session = |principal: String| Session {
        peer,
        listener: listener.to_string(),
        protocol,
        principal,
    };
    let Some(config) = tls else {
        return Ok((Stream::Plain(tcp), session(ANONYMOUS.to_string())));
    };
    let stream = tokio::time::timeout(timeout, tls::accept(config, tcp))
        .await
        .map_err(|_| HandshakeError::Timeout(timeout))?
        .map_err(HandshakeError::Failed)?;
    let principal = stream
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| tls::ssl_principal(leaf))
        .unwrap_or_else(|| ANONYMOUS.to_string());
    Ok((stream, session(principal)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use rivulet_protocol::dev_certs::{generate, CertFiles};
    use rivulet_protocol::tls::{ClientAuth, Connector, TlsFiles};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn server(files: &CertFiles, auth: ClientAuth) -> Arc<rivulet_protocol::tls::ServerConfig> {
        TlsFiles {
            certificate: Some(files.node_cert.clone()),
            key: Some(files.node_key.clone()),
            ca: Some(files.ca.clone()),
        }
        .server_config(auth)
        .unwrap()
    }

    fn client(files: &CertFiles, with_cert: bool) -> Connector {
        let (certificate, key) = if with_cert {
            (
                Some(files.client_cert.clone()),
                Some(files.client_key.clone()),
            )
        } else {
            (None, None)
        };
        let tls = TlsFiles {
            certificate,
            key,
            ca: Some(files.ca.clone()),
        };
        Connector::tls(tls.client_config().unwrap())
    }

    /// Accept one connection on an SSL listener while `connect` dials it;
    /// the server side's outcome, and the client's stream if it got one.
    async fn handshake(
        config: Option<Arc<rivulet_protocol::tls::ServerConfig>>,
        connector: Connector,
    ) -> Result<Session, HandshakeError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let protocol = if config.is_some() {
            SecurityProtocol::Ssl
        } else {
            SecurityProtocol::Plaintext
        };
        let server = tokio::spawn(async move {
            let (tcp, peer) = listener.accept().await.unwrap();
            let (mut stream, session) = open(
                tcp,
                peer,
                config.as_ref(),
                Duration::from_secs(5),
                "SSL",
                protocol,
            )
            .await?;
            // Prove the stream carries bytes: echo one.
            let mut b = [0u8; 1];
            if stream.read_exact(&mut b).await.is_ok() {
                let _ = stream.write_all(&b).await;
                let _ = stream.flush().await;
            }
            Ok(session)
        });
        if let Ok(mut s) = connector.connect(&addr).await {
            let _ = s.write_all(b"x").await;
            let _ = s.flush().await;
            let mut b = [0u8; 1];
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut b)).await;
        }
        server.await.unwrap()
    }

    #[tokio::test]
    async fn client_certificate_subject_is_the_principal() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = generate(dir.path()).unwrap();
        let s = handshake(
            Some(server(&files, ClientAuth::Required)),
            client(&files, true),
        )
        .await
        .unwrap();
        assert_eq!(s.principal, "User:CN=rivulet-client,O=Rivulet");
        assert_eq!(s.listener, "SSL");
        assert_eq!(s.protocol, SecurityProtocol::Ssl);
    }

    #[tokio::test]
    async fn without_a_certificate_requested_is_anonymous_and_required_fails() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = generate(dir.path()).unwrap();
        let s = handshake(
            Some(server(&files, ClientAuth::Requested)),
            client(&files, false),
        )
        .await
        .unwrap();
        assert_eq!(s.principal, ANONYMOUS);
        let e = handshake(
            Some(server(&files, ClientAuth::Required)),
            client(&files, false),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, HandshakeError::Failed(_)), "{e}");
    }

    #[tokio::test]
    async fn a_plaintext_client_fails_the_handshake_and_plain_listeners_are_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = generate(dir.path()).unwrap();
        let e = handshake(
            Some(server(&files, ClientAuth::None)),
            Connector::plaintext(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, HandshakeError::Failed(_)), "{e}");
        let s = handshake(None, Connector::plaintext()).await.unwrap();
        assert_eq!(s.principal, ANONYMOUS);
        assert_eq!(s.protocol, SecurityProtocol::Plaintext);
    }
}
