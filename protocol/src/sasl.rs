//! SASL mechanisms, both sides: PLAIN (RFC 4616) and SCRAM-SHA-256 /
//! SCRAM-SHA-512 (RFC 5802, RFC 7677), as Kafka speaks them.
//!
//! Owns the SCRAM arithmetic (Hi, the client and server keys and proofs),
//! the parsing of every SCRAM message (bounded: a token is parsed from the
//! bytes given, never sized by anything in it), the server's state machines
//! ([`ScramServer`], [`verify_plain`]) over stored [`ScramCredential`]s, and
//! the client side ([`ScramClient`], [`authenticate`]) that the replica
//! fetchers, broker links and the `rivulet user` command use.
//!
//! Invariants: a stored credential never holds the password, only the salt,
//! iteration count, StoredKey and ServerKey; proofs and keys are compared
//! in constant time; a server for an unknown user runs the same exchange
//! over a made-up credential and fails at the same step with the same error
//! as a wrong password (no user enumeration).

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use ring::rand::SecureRandom;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::wire::{Client, WireError};

/// Kafka's `PLAIN` mechanism name.
pub const PLAIN: &str = "PLAIN";

/// Kafka's MAX_ITERATIONS for a SCRAM credential.
pub const MAX_ITERATIONS: i32 = 16384;

/// A SCRAM mechanism: its hash, its name and its Kafka type id (the `int8`
/// of the *UserScramCredentials APIs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's `ScramMechanism.type()`: 1 for SHA-256, 2 for SHA-512.
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_kafka_type(t: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.kafka_type() == t)
    }

    /// Kafka's minimum iteration count (4096 for both).
    pub fn min_iterations(self) -> i32 {
        4096
    }

    fn hmac_alg(self) -> ring::hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => ring::hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => ring::hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2_alg(self) -> ring::pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => ring::pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => ring::pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn digest_alg(self) -> &'static ring::digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &ring::digest::SHA256,
            ScramMechanism::Sha512 => &ring::digest::SHA512,
        }
    }

    /// The hash's output length.
    pub fn hash_len(self) -> usize {
        self.digest_alg().output_len()
    }

    /// RFC 5802's `Hi(password, salt, i)`: PBKDF2 with this HMAC, one block.
    /// `iterations` below 1 counts as 1.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: i32) -> Vec<u8> {
        let mut out = vec![0u8; self.hash_len()];
        let n = std::num::NonZeroU32::new(iterations.max(1) as u32)
            .unwrap_or(std::num::NonZeroU32::MIN);
        ring::pbkdf2::derive(self.pbkdf2_alg(), n, salt, password, &mut out);
        out
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let k = ring::hmac::Key::new(self.hmac_alg(), key);
        ring::hmac::sign(&k, data).as_ref().to_vec()
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        ring::digest::digest(self.digest_alg(), data)
            .as_ref()
            .to_vec()
    }

    /// The credential a server stores for `salted_password` (what Kafka's
    /// AlterUserScramCredentials carries): StoredKey = H(HMAC(sp, "Client
    /// Key")), ServerKey = HMAC(sp, "Server Key").
    pub fn credential(
        self,
        salted_password: &[u8],
        salt: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = self.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: self.hash(&client_key),
            server_key: self.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// The credential for `password` with a fresh random salt.
    pub fn credential_for_password(self, password: &str, iterations: i32) -> ScramCredential {
        let salt = random_bytes(32);
        let sp = self.salted_password(password.as_bytes(), &salt, iterations);
        self.credential(&sp, &salt, iterations)
    }
}

/// What a server stores for one user and mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why a SASL exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SaslError {
    /// Not a message of the mechanism, or out of order (the text says which).
    #[error("{0}")]
    Malformed(String),
    /// The proof or password did not match (or the user is unknown).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The client asked for an authorization id other than its user name.
    #[error("Authentication failed: Client requested an authorization id that is different from username")]
    AuthzId,
    /// A message arrived after the exchange ended.
    #[error("unexpected SASL message in state {0}")]
    IllegalState(&'static str),
    /// Client side: the server refused or answered something unexpected.
    #[error("SASL authentication failed: {0}")]
    Refused(String),
    #[error("{0}")]
    Wire(String),
}

impl From<WireError> for SaslError {
    fn from(e: WireError) -> Self {
        SaslError::Wire(e.to_string())
    }
}

fn malformed(what: &str) -> SaslError {
    SaslError::Malformed(format!("Invalid SCRAM message: {what}"))
}

static RNG: OnceLock<ring::rand::SystemRandom> = OnceLock::new();

/// `n` bytes from the system's secure random source.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let rng = RNG.get_or_init(ring::rand::SystemRandom::new);
    // SystemRandom fails only when the OS has no randomness at all; the
    // bytes then stay as they are, which a nonce check still tells apart
    // poorly, so mix in the time rather than panic.
    if rng.fill(&mut out).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for (i, b) in out.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ i as u8;
        }
    }
    out
}

/// A printable nonce without `,` (base64 of 24 random bytes).
pub fn nonce() -> String {
    B64.encode(random_bytes(24))
}

/// Equal in constant time (for equal lengths; lengths are public).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// RFC 5802's saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is an
/// error, as is an empty name.
pub fn decode_saslname(s: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 3)
            .ok_or_else(|| malformed("bad escape in user name"))?;
        match code {
            "2C" => out.push(','),
            "3D" => out.push('='),
            _ => return Err(malformed("bad escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(malformed("empty user name"));
    }
    Ok(out)
}

/// The inverse of [`decode_saslname`].
pub fn encode_saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

/// Split `a=v,b=w` into `(a, v)` pairs; each attribute one letter.
fn attributes(s: &str) -> Result<Vec<(char, &str)>, SaslError> {
    s.split(',')
        .map(|part| {
            let mut chars = part.chars();
            match (chars.next(), chars.next()) {
                (Some(k), Some('=')) if k.is_ascii_alphabetic() => Ok((k, &part[2..])),
                _ => Err(malformed("expected attribute=value")),
            }
        })
        .collect()
}

fn utf8(token: &[u8]) -> Result<&str, SaslError> {
    std::str::from_utf8(token).map_err(|_| malformed("not UTF-8"))
}

/// The parsed client-first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    pub gs2_header: String,
    pub authzid: Option<String>,
    pub user: String,
    pub nonce: String,
    pub bare: String,
}

impl ClientFirst {
    pub fn parse(token: &[u8]) -> Result<Self, SaslError> {
        let s = utf8(token)?;
        // gs2-header: cbind-flag "," [authzid] ","
        let (flag, rest) = s
            .split_once(',')
            .ok_or_else(|| malformed("no GS2 header"))?;
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => return Err(malformed("channel binding is not supported")),
            _ => return Err(malformed("bad GS2 channel binding flag")),
        }
        let (authz, bare) = rest
            .split_once(',')
            .ok_or_else(|| malformed("no GS2 header"))?;
        let authzid = match authz {
            "" => None,
            a => match a.strip_prefix("a=") {
                Some(name) => Some(decode_saslname(name)?),
                None => return Err(malformed("bad authorization id")),
            },
        };
        let attrs = attributes(bare)?;
        let mut it = attrs.iter();
        let user = match it.next() {
            Some(('n', v)) => decode_saslname(v)?,
            Some(('m', _)) => return Err(malformed("mandatory extensions are not supported")),
            _ => return Err(malformed("no user name")),
        };
        let nonce = match it.next() {
            Some(('r', v)) if !v.is_empty() => v.to_string(),
            _ => return Err(malformed("no client nonce")),
        };
        // Optional extensions (Kafka's tokenauth and others) are ignored.
        let gs2_header = s[..s.len() - bare.len()].to_string();
        Ok(ClientFirst {
            gs2_header,
            authzid,
            user,
            nonce,
            bare: bare.to_string(),
        })
    }
}

/// The parsed server-first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFirst {
    pub nonce: String,
    pub salt: Vec<u8>,
    pub iterations: i32,
}

impl ServerFirst {
    pub fn to_text(&self) -> String {
        format!(
            "r={},s={},i={}",
            self.nonce,
            B64.encode(&self.salt),
            self.iterations
        )
    }

    pub fn parse(token: &[u8]) -> Result<Self, SaslError> {
        let s = utf8(token)?;
        let attrs = attributes(s)?;
        if let Some(('e', e)) = attrs.first() {
            return Err(SaslError::Refused(format!("server error: {e}")));
        }
        let mut it = attrs.iter();
        let nonce = match it.next() {
            Some(('r', v)) => v.to_string(),
            _ => return Err(malformed("no nonce")),
        };
        let salt = match it.next() {
            Some(('s', v)) => B64.decode(v).map_err(|_| malformed("bad salt"))?,
            _ => return Err(malformed("no salt")),
        };
        let iterations = match it.next() {
            Some(('i', v)) => v.parse().map_err(|_| malformed("bad iteration count"))?,
            _ => return Err(malformed("no iteration count")),
        };
        Ok(ServerFirst {
            nonce,
            salt,
            iterations,
        })
    }
}

/// The parsed client-final message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal {
    pub channel_binding: String,
    pub nonce: String,
    pub proof: Vec<u8>,
    /// The message up to (not including) `,p=`.
    pub without_proof: String,
}

impl ClientFinal {
    pub fn parse(token: &[u8]) -> Result<Self, SaslError> {
        let s = utf8(token)?;
        let at = s.rfind(",p=").ok_or_else(|| malformed("no proof"))?;
        let without_proof = &s[..at];
        let proof = B64
            .decode(&s[at + 3..])
            .map_err(|_| malformed("bad proof"))?;
        let attrs = attributes(without_proof)?;
        let mut it = attrs.iter();
        let channel_binding = match it.next() {
            Some(('c', v)) => v.to_string(),
            _ => return Err(malformed("no channel binding")),
        };
        let nonce = match it.next() {
            Some(('r', v)) => v.to_string(),
            _ => return Err(malformed("no nonce")),
        };
        Ok(ClientFinal {
            channel_binding,
            nonce,
            proof,
            without_proof: without_proof.to_string(),
        })
    }
}

/// A secret per process for made-up credentials of unknown users: the same
/// user gets the same salt for the process's life, as a real one would.
fn fake_secret() -> &'static [u8] {
    static SECRET: OnceLock<Vec<u8>> = OnceLock::new();
    SECRET.get_or_init(|| random_bytes(32))
}

/// A credential for a user that does not exist: a stable salt, the minimum
/// iteration count and keys no password matches.
pub fn fake_credential(mechanism: ScramMechanism, user: &str) -> ScramCredential {
    let salt = mechanism.hmac(fake_secret(), user.as_bytes());
    ScramCredential {
        salt: salt[..salt.len().min(32)].to_vec(),
        stored_key: random_bytes(mechanism.hash_len()),
        server_key: random_bytes(mechanism.hash_len()),
        iterations: mechanism.min_iterations(),
    }
}

/// Where a [`ScramServer`] is.
#[derive(Debug)]
enum ServerState {
    First,
    Final {
        first: Box<ClientFirst>,
        server_first: String,
        nonce: String,
        credential: ScramCredential,
        known: bool,
    },
    Done,
}

/// The server side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: ServerState,
}

/// What one step of a server exchange produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge; more to come.
    Continue(Vec<u8>),
    /// Authenticated as this user; send this last message.
    Done { user: String, response: Vec<u8> },
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> Self {
        ScramServer {
            mechanism,
            state: ServerState::First,
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Take the client's next message. `lookup` gives a user's stored
    /// credential for this mechanism. Any error ends the exchange.
    pub fn step(
        &mut self,
        token: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Step, SaslError> {
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::First => {
                let first = ClientFirst::parse(token)?;
                if first.authzid.as_ref().is_some_and(|a| *a != first.user) {
                    return Err(SaslError::AuthzId);
                }
                let (credential, known) = match lookup(&first.user) {
                    Some(c) if c.iterations >= self.mechanism.min_iterations() => (c, true),
                    _ => (fake_credential(self.mechanism, &first.user), false),
                };
                let nonce = format!("{}{}", first.nonce, nonce());
                let server_first = ServerFirst {
                    nonce: nonce.clone(),
                    salt: credential.salt.clone(),
                    iterations: credential.iterations,
                }
                .to_text();
                let out = server_first.clone().into_bytes();
                self.state = ServerState::Final {
                    first: Box::new(first),
                    server_first,
                    nonce,
                    credential,
                    known,
                };
                Ok(Step::Continue(out))
            }
            ServerState::Final {
                first,
                server_first,
                nonce,
                credential,
                known,
            } => {
                let fin = ClientFinal::parse(token)?;
                // Kafka's check (`endsWith`, not equality): librdkafka
                // before 2.1 repeats its own nonce in front of the combined
                // one, and Kafka serves it.
                if !fin.nonce.ends_with(&nonce) {
                    return Err(malformed(
                        "Invalid client nonce in the final client message.",
                    ));
                }
                let expected_cb = B64.encode(first.gs2_header.as_bytes());
                if fin.channel_binding != expected_cb {
                    return Err(malformed("channel binding does not match the GS2 header"));
                }
                let auth_message = format!("{},{},{}", first.bare, server_first, fin.without_proof);
                let m = self.mechanism;
                let signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
                if fin.proof.len() != signature.len() {
                    return Err(SaslError::InvalidCredentials);
                }
                let client_key: Vec<u8> = fin
                    .proof
                    .iter()
                    .zip(&signature)
                    .map(|(a, b)| a ^ b)
                    .collect();
                let ok = constant_time_eq(&m.hash(&client_key), &credential.stored_key);
                if !ok || !known {
                    return Err(SaslError::InvalidCredentials);
                }
                let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
                Ok(Step::Done {
                    user: first.user,
                    response: format!("v={}", B64.encode(server_signature)).into_bytes(),
                })
            }
            ServerState::Done => Err(SaslError::IllegalState("COMPLETE")),
        }
    }
}

/// PLAIN's one message: `[authzid] NUL authcid NUL passwd`.
pub fn parse_plain(token: &[u8]) -> Result<(String, String), SaslError> {
    let s = std::str::from_utf8(token)
        .map_err(|_| SaslError::Malformed("Invalid SASL/PLAIN response: not UTF-8".into()))?;
    let parts: Vec<&str> = s.split('\0').collect();
    let [authzid, user, password] = parts.as_slice() else {
        return Err(SaslError::Malformed(format!(
            "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
            parts.len()
        )));
    };
    if user.is_empty() {
        return Err(SaslError::Malformed(
            "Authentication failed: username not specified".into(),
        ));
    }
    if password.is_empty() {
        return Err(SaslError::Malformed(
            "Authentication failed: password not specified".into(),
        ));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(SaslError::AuthzId);
    }
    Ok((user.to_string(), password.to_string()))
}

/// Check a PLAIN password against the user's stored SCRAM credentials
/// (`credentials`: the user's, any mechanism): the password is hashed with
/// the stored salt and iterations and its StoredKey compared. An unknown
/// user costs the same work and fails the same way.
pub fn verify_plain(
    user: &str,
    password: &str,
    credentials: &[(ScramMechanism, ScramCredential)],
) -> bool {
    let Some((m, c)) = credentials.iter().max_by_key(|(m, _)| *m) else {
        let m = ScramMechanism::Sha512;
        let fake = fake_credential(m, user);
        let sp = m.salted_password(password.as_bytes(), &fake.salt, fake.iterations);
        let _ = constant_time_eq(
            &m.credential(&sp, &fake.salt, 0).stored_key,
            &fake.stored_key,
        );
        return false;
    };
    let sp = m.salted_password(password.as_bytes(), &c.salt, c.iterations);
    constant_time_eq(
        &m.credential(&sp, &c.salt, c.iterations).stored_key,
        &c.stored_key,
    )
}

/// The client side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    first_bare: String,
    nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str) -> Self {
        let nonce = nonce();
        ScramClient {
            mechanism,
            password: password.to_string(),
            first_bare: format!("n={},r={nonce}", encode_saslname(user)),
            nonce,
            server_signature: None,
        }
    }

    /// The client-first message.
    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// The client-final message for the server-first `token`.
    pub fn respond(&mut self, token: &[u8]) -> Result<Vec<u8>, SaslError> {
        let sf = ServerFirst::parse(token)?;
        if !sf.nonce.starts_with(&self.nonce) || sf.nonce.len() == self.nonce.len() {
            return Err(SaslError::Refused(
                "the server's nonce does not extend ours".into(),
            ));
        }
        if sf.iterations < self.mechanism.min_iterations() || sf.iterations > MAX_ITERATIONS * 64 {
            return Err(SaslError::Refused(format!(
                "the server asked for {} iterations",
                sf.iterations
            )));
        }
        let m = self.mechanism;
        let sp = m.salted_password(self.password.as_bytes(), &sf.salt, sf.iterations);
        let client_key = m.hmac(&sp, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={}", sf.nonce);
        let server_first = utf8(token)?;
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(&sp, b"Server Key");
        self.server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Check the server-final message: the server knew our credential.
    pub fn finish(&self, token: &[u8]) -> Result<(), SaslError> {
        let s = utf8(token)?;
        if let Some(e) = s.strip_prefix("e=") {
            return Err(SaslError::Refused(format!("server error: {e}")));
        }
        let v = s
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v).ok())
            .ok_or_else(|| malformed("bad server-final message"))?;
        match &self.server_signature {
            Some(expected) if constant_time_eq(expected, &v) => Ok(()),
            _ => Err(SaslError::Refused("the server's signature is wrong".into())),
        }
    }
}

/// A client's SASL settings (librdkafka's `sasl.mechanism`,
/// `sasl.username`, `sasl.password`).
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Authenticate `client`'s connection: SaslHandshake v1, then
/// SaslAuthenticate v2 rounds. The session lifetime the server gave
/// (0: none) on success.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    creds: &SaslCredentials,
) -> Result<i64, SaslError> {
    let hs = client
        .round_trip(
            1,
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_string(creds.mechanism.clone())),
        )
        .await?;
    if hs.error_code != 0 {
        let enabled: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(SaslError::Refused(format!(
            "mechanism {} refused (error {}); the server has {}",
            creds.mechanism,
            hs.error_code,
            enabled.join(",")
        )));
    }
    if creds.mechanism == PLAIN {
        let token = format!("\0{}\0{}", creds.username, creds.password).into_bytes();
        let (_, lifetime) = sasl_round(client, token).await?;
        return Ok(lifetime);
    }
    let mechanism = ScramMechanism::from_name(&creds.mechanism)
        .ok_or_else(|| SaslError::Refused(format!("unknown mechanism {}", creds.mechanism)))?;
    let mut scram = ScramClient::new(mechanism, &creds.username, &creds.password);
    let (server_first, _) = sasl_round(client, scram.first()).await?;
    let fin = scram.respond(&server_first)?;
    let (server_final, lifetime) = sasl_round(client, fin).await?;
    scram.finish(&server_final)?;
    Ok(lifetime)
}

/// One SaslAuthenticate v2 round: the server's token and session lifetime.
async fn sasl_round<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    token: Vec<u8>,
) -> Result<(Vec<u8>, i64), SaslError> {
    let req = SaslAuthenticateRequest::default().with_auth_bytes(token.into());
    let r = client.round_trip(2, &req).await?;
    if r.error_code != 0 {
        return Err(SaslError::Refused(
            r.error_message
                .map(|m| m.to_string())
                .unwrap_or_else(|| format!("error {}", r.error_code)),
        ));
    }
    Ok((r.auth_bytes.to_vec(), r.session_lifetime_ms))
}

#[cfg(test)]
mod tests;
