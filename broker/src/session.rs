//! [`Session`]: who is on the other end of one connection — the peer
//! address, the listener it came in on (Metadata answers with that
//! listener's advertised addresses, as Kafka does) and its principal (for
//! the authorizer: `User:CN=...` from a TLS client certificate, Kafka's
//! default principal builder, else `User:ANONYMOUS`).
//!
//! Fixed for the connection's life until SASL re-authentication (KIP-368)
//! lands.

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
