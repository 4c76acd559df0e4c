//! SASL on a connection: the SASL settings ([`SaslConfig`]) and the
//! per-connection [`Authenticator`] that runs Kafka's
//! `SaslServerAuthenticator` protocol in front of the request handlers.
//!
//! On a SASL_PLAINTEXT or SASL_SSL listener, until the client has
//! authenticated only ApiVersions, SaslHandshake (v0–1) and
//! SaslAuthenticate (v0–2) are served; any other request closes the
//! connection with a logged reason (Kafka's IllegalSaslState → disconnect).
//! SaslHandshake v0 means raw length-prefixed tokens follow, v1 means
//! SaslAuthenticate requests. Frames before authentication are bounded by
//! `sasl.server.max.receive.size`.
//!
//! Mechanisms are [`rivulet_protocol::sasl`]'s (PLAIN and SCRAM-SHA-256/512)
//! over the SCRAM credentials in the metadata image; a successful exchange
//! sets the session's principal to `User:<name>`. A failed one answers
//! SASL_AUTHENTICATION_FAILED (or ILLEGAL_SASL_STATE) with Kafka's message
//! and closes the connection.
//!
//! KIP-368: with `connections.max.reauth.ms` > 0, SaslAuthenticate v1+
//! answers that session lifetime; once it has passed, any request but
//! SaslHandshake/SaslAuthenticate closes the connection. A client may
//! re-authenticate on the same connection at any time (same mechanism, same
//! principal, else it is closed). On other listeners SaslHandshake and
//! SaslAuthenticate are answered ILLEGAL_SASL_STATE, as Kafka does.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use rivulet_controller::MetadataImage;
use rivulet_protocol::request;
use rivulet_protocol::sasl::{self, SaslError, ScramCredential, ScramMechanism, ScramServer, Step};

use crate::api;
use crate::context::BrokerContext;
pub use crate::sasl_config::{BootstrapUser, SaslConfig};
use crate::session::Session;

/// Bootstrap users as a controller request: created when absent.
pub fn bootstrap_request(users: &[BootstrapUser]) -> rivulet_controller::ControllerRequest {
    use rivulet_controller::scram::{ScramCredentialData, ScramUpsertion};
    let upsertions = users
        .iter()
        .map(|u| {
            let c = u
                .mechanism
                .credential_for_password(&u.password, u.iterations);
            ScramUpsertion {
                name: u.name.clone(),
                mechanism: u.mechanism.kafka_type(),
                credential: ScramCredentialData {
                    salt: c.salt,
                    stored_key: c.stored_key,
                    server_key: c.server_key,
                    iterations: c.iterations,
                },
            }
        })
        .collect();
    rivulet_controller::ControllerRequest::AlterUserScramCredentials {
        deletions: Vec::new(),
        upsertions,
        only_if_absent: true,
    }
}

fn stored(image: &MetadataImage, m: ScramMechanism, user: &str) -> Option<ScramCredential> {
    image
        .scram_credential(m.name(), user)
        .map(|c| ScramCredential {
            salt: c.salt.clone(),
            stored_key: c.stored_key.clone(),
            server_key: c.server_key.clone(),
            iterations: c.iterations,
        })
}

/// The server side of the mechanism being run.
#[derive(Debug)]
enum MechServer {
    Scram(ScramServer),
    Plain,
    /// A re-authentication asked for another mechanism: the next token
    /// fails with this message (Kafka's REAUTH_BAD_MECHANISM).
    BadMechanism(String),
}

#[derive(Debug)]
struct Exchange {
    mechanism: String,
    /// SaslHandshake v1: tokens in SaslAuthenticate requests; v0: raw.
    framed: bool,
    server: MechServer,
}

/// An authenticated session.
#[derive(Debug, Clone)]
struct Authenticated {
    mechanism: String,
    user: String,
    expires: Option<Instant>,
}

/// What the connection does with a frame.
#[derive(Debug)]
pub enum Outcome {
    /// Not the authenticator's: serve it as usual.
    Serve,
    /// Write this frame (size prefix included) and go on.
    Reply(BytesMut),
    /// Write this frame, if any, and close the connection for `reason`.
    Close(Option<BytesMut>, String),
}

/// One connection's SASL state.
#[derive(Debug)]
pub struct Authenticator {
    /// Whether the listener uses SASL at all.
    enabled: bool,
    mechanisms: Vec<String>,
    reauth_ms: u64,
    max_receive_size: usize,
    exchange: Option<Exchange>,
    done: Option<Authenticated>,
}

fn frame_key(frame: &[u8]) -> (i16, i16, i32) {
    let b = |i: usize| frame.get(i).copied().unwrap_or(0);
    (
        i16::from_be_bytes([b(0), b(1)]),
        i16::from_be_bytes([b(2), b(3)]),
        i32::from_be_bytes([b(4), b(5), b(6), b(7)]),
    )
}

/// A raw v0 token, size-prefixed.
fn raw_frame(token: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(token.len() + 4);
    out.extend_from_slice(&(token.len() as i32).to_be_bytes());
    out.extend_from_slice(token);
    out
}

impl Authenticator {
    pub fn new(broker: &BrokerContext, session: &Session) -> Self {
        let sasl = &broker.config.sasl;
        Authenticator {
            enabled: session.protocol.uses_sasl(),
            mechanisms: sasl.mechanisms_for(&session.listener).to_vec(),
            reauth_ms: sasl.max_reauth_ms,
            max_receive_size: sasl.max_receive_size,
            exchange: None,
            done: None,
        }
    }

    /// Whether the next frame is a raw SASL token (after SaslHandshake v0).
    pub fn raw_tokens(&self) -> bool {
        self.exchange.as_ref().is_some_and(|e| !e.framed)
    }

    /// The largest frame accepted now: `sasl.server.max.receive.size`
    /// before authentication, else `limit`.
    pub fn frame_limit(&self, limit: usize) -> usize {
        if self.enabled && self.done.is_none() {
            self.max_receive_size.min(limit)
        } else {
            limit
        }
    }

    fn text(&self) -> &'static str {
        if self.done.is_some() {
            "re-authentication"
        } else {
            "authentication"
        }
    }

    /// Look at `frame` (a whole request frame, or a raw token) before it is
    /// served.
    pub async fn on_frame(
        &mut self,
        frame: &Bytes,
        session: &mut Session,
        broker: &BrokerContext,
    ) -> Outcome {
        if self.raw_tokens() {
            return self.raw_token(frame, session, broker).await;
        }
        let (raw_key, version, correlation_id) = frame_key(frame);
        let key = ApiKey::try_from(raw_key).ok();
        let is_sasl = matches!(key, Some(ApiKey::SaslHandshake | ApiKey::SaslAuthenticate));
        if !self.enabled {
            if !is_sasl {
                return Outcome::Serve;
            }
            return self.not_sasl_listener(frame, correlation_id);
        }
        match &self.done {
            Some(done) if !is_sasl => {
                if done.expires.is_some_and(|at| Instant::now() >= at) {
                    return Outcome::Close(
                        None,
                        format!(
                            "the SASL session of {} expired (connections.max.reauth.ms) and the client did not re-authenticate",
                            done.user
                        ),
                    );
                }
                return Outcome::Serve;
            }
            None if key == Some(ApiKey::ApiVersions) && self.exchange.is_none() => {
                return Outcome::Serve
            }
            None if !is_sasl => {
                let what = key.map_or(format!("API key {raw_key}"), |k| format!("{k:?}"));
                let during = if self.exchange.is_some() {
                    "authentication"
                } else {
                    "handshake"
                };
                return Outcome::Close(
                    None,
                    format!("Unexpected Kafka request of type {what} during SASL {during}"),
                );
            }
            _ => {}
        }
        // A SASL request: decode it.
        let (Some(key), Some(range)) = (key, key.and_then(api::supported)) else {
            return Outcome::Close(None, format!("unknown API key {raw_key}"));
        };
        if version < range.min || version > range.max {
            return Outcome::Close(None, format!("unsupported version {version} of {key:?}"));
        }
        let decoded = match request::decode(frame.clone(), key, version) {
            Ok(d) => d,
            Err(e) => return Outcome::Close(None, e.to_string()),
        };
        match decoded.body {
            RequestKind::SaslHandshake(r) => {
                self.handshake(r.mechanism.as_str(), version, correlation_id)
            }
            RequestKind::SaslAuthenticate(r) => {
                self.authenticate(&r.auth_bytes, version, correlation_id, session, broker)
                    .await
            }
            _ => Outcome::Close(None, format!("unexpected {key:?}")),
        }
    }

    fn handshake(&mut self, mechanism: &str, version: i16, correlation_id: i32) -> Outcome {
        let enabled: Vec<StrBytes> = self
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect();
        if self.exchange.is_some() {
            let resp = SaslHandshakeResponse::default()
                .with_error_code(E::IllegalSaslState.code())
                .with_mechanisms(enabled);
            return Outcome::Close(
                encode(
                    ApiKey::SaslHandshake,
                    version,
                    correlation_id,
                    ResponseKind::SaslHandshake(resp),
                ),
                "Unexpected Kafka request of type SaslHandshake during SASL authentication".into(),
            );
        }
        if !self.mechanisms.iter().any(|m| m == mechanism) {
            let resp = SaslHandshakeResponse::default()
                .with_error_code(E::UnsupportedSaslMechanism.code())
                .with_mechanisms(enabled);
            return Outcome::Close(
                encode(
                    ApiKey::SaslHandshake,
                    version,
                    correlation_id,
                    ResponseKind::SaslHandshake(resp),
                ),
                format!("Unsupported SASL mechanism {mechanism}"),
            );
        }
        let server = match &self.done {
            Some(done) if done.mechanism != mechanism => MechServer::BadMechanism(format!(
                "SASL mechanism '{mechanism}' requested by client is not supported for re-authentication of mechanism '{}'",
                done.mechanism
            )),
            _ => match ScramMechanism::from_name(mechanism) {
                Some(m) => MechServer::Scram(ScramServer::new(m)),
                None => MechServer::Plain,
            },
        };
        self.exchange = Some(Exchange {
            mechanism: mechanism.to_string(),
            framed: version >= 1,
            server,
        });
        let resp = SaslHandshakeResponse::default().with_mechanisms(enabled);
        match encode(
            ApiKey::SaslHandshake,
            version,
            correlation_id,
            ResponseKind::SaslHandshake(resp),
        ) {
            Some(f) => Outcome::Reply(f),
            None => Outcome::Close(None, "cannot encode the SaslHandshake response".into()),
        }
    }

    /// Run one token through the mechanism: the server's token and, when
    /// the exchange is complete, the authenticated user.
    async fn step(
        &mut self,
        token: &[u8],
        broker: &BrokerContext,
    ) -> Result<(Vec<u8>, Option<String>), (i16, String, String)> {
        let text = self.text();
        let Some(exchange) = self.exchange.as_mut() else {
            return Err((
                E::IllegalSaslState.code(),
                "Unexpected SaslAuthenticate request before a SaslHandshake".into(),
                "SaslAuthenticate before SaslHandshake".into(),
            ));
        };
        let mechanism = exchange.mechanism.clone();
        let failed = |e: SaslError| {
            let generic = format!(
                "Authentication failed during {text} due to invalid credentials with SASL mechanism {mechanism}"
            );
            match e {
                SaslError::IllegalState(_) => {
                    (E::IllegalSaslState.code(), e.to_string(), e.to_string())
                }
                SaslError::AuthzId => (
                    E::SaslAuthenticationFailed.code(),
                    e.to_string(),
                    e.to_string(),
                ),
                other => (
                    E::SaslAuthenticationFailed.code(),
                    generic,
                    other.to_string(),
                ),
            }
        };
        let image = broker.image();
        match &mut exchange.server {
            MechServer::BadMechanism(msg) => {
                Err((E::SaslAuthenticationFailed.code(), msg.clone(), msg.clone()))
            }
            MechServer::Scram(server) => {
                let m = server.mechanism();
                match server.step(token, |user| stored(&image, m, user)) {
                    Ok(Step::Continue(out)) => Ok((out, None)),
                    Ok(Step::Done { user, response }) => Ok((response, Some(user))),
                    Err(e) => Err(failed(e)),
                }
            }
            MechServer::Plain => {
                let (user, password) = match sasl::parse_plain(token) {
                    Ok(up) => up,
                    Err(SaslError::Malformed(m)) => {
                        return Err((E::SaslAuthenticationFailed.code(), m.clone(), m))
                    }
                    Err(e) => return Err(failed(e)),
                };
                let creds: Vec<(ScramMechanism, ScramCredential)> = ScramMechanism::ALL
                    .into_iter()
                    .filter_map(|m| stored(&image, m, &user).map(|c| (m, c)))
                    .collect();
                // PBKDF2 of thousands of rounds: off the async workers.
                let u = user.clone();
                let ok =
                    tokio::task::spawn_blocking(move || sasl::verify_plain(&u, &password, &creds))
                        .await
                        .unwrap_or(false);
                if ok {
                    Ok((Vec::new(), Some(user)))
                } else {
                    let m = "Authentication failed: Invalid username or password".to_string();
                    Err((
                        E::SaslAuthenticationFailed.code(),
                        m.clone(),
                        format!("{m} (user {user})"),
                    ))
                }
            }
        }
    }

    /// The exchange completed as `user`: the session's principal, or an
    /// error when a re-authentication changed it.
    fn complete(&mut self, user: String, session: &mut Session) -> Result<i64, String> {
        let mechanism = self
            .exchange
            .take()
            .map(|e| e.mechanism)
            .unwrap_or_default();
        if let Some(done) = &self.done {
            if done.user != user {
                return Err(format!(
                    "Cannot change principals during re-authentication from User.{}: User.{user}",
                    done.user
                ));
            }
        }
        let lifetime = self.reauth_ms;
        self.done = Some(Authenticated {
            mechanism,
            user: user.clone(),
            expires: (lifetime > 0).then(|| Instant::now() + Duration::from_millis(lifetime)),
        });
        session.set_principal(format!("User:{user}"));
        Ok(i64::try_from(lifetime).unwrap_or(i64::MAX))
    }

    async fn authenticate(
        &mut self,
        token: &[u8],
        version: i16,
        correlation_id: i32,
        session: &mut Session,
        broker: &BrokerContext,
    ) -> Outcome {
        let reply = |code: i16, message: Option<String>, bytes: Vec<u8>, lifetime: i64| {
            let resp = SaslAuthenticateResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
                .with_auth_bytes(bytes.into())
                .with_session_lifetime_ms(lifetime);
            encode(
                ApiKey::SaslAuthenticate,
                version,
                correlation_id,
                ResponseKind::SaslAuthenticate(resp),
            )
        };
        if self.exchange.as_ref().is_some_and(|e| !e.framed) || self.exchange.is_none() {
            let msg = "Unexpected SaslAuthenticate request outside a SaslHandshake v1 exchange"
                .to_string();
            return Outcome::Close(
                reply(E::IllegalSaslState.code(), Some(msg.clone()), Vec::new(), 0),
                msg,
            );
        }
        match self.step(token, broker).await {
            Ok((out, None)) => match reply(0, None, out, 0) {
                Some(f) => Outcome::Reply(f),
                None => Outcome::Close(None, "cannot encode the SaslAuthenticate response".into()),
            },
            Ok((out, Some(user))) => match self.complete(user, session) {
                Ok(lifetime) => match reply(0, None, out, lifetime) {
                    Some(f) => Outcome::Reply(f),
                    None => {
                        Outcome::Close(None, "cannot encode the SaslAuthenticate response".into())
                    }
                },
                Err(msg) => Outcome::Close(
                    reply(
                        E::SaslAuthenticationFailed.code(),
                        Some(msg.clone()),
                        Vec::new(),
                        0,
                    ),
                    msg,
                ),
            },
            Err((code, message, reason)) => {
                self.exchange = None;
                Outcome::Close(reply(code, Some(message), Vec::new(), 0), reason)
            }
        }
    }

    /// A raw token after SaslHandshake v0: answered raw; a failure closes
    /// the connection without an answer (the v0 protocol has none).
    async fn raw_token(
        &mut self,
        token: &[u8],
        session: &mut Session,
        broker: &BrokerContext,
    ) -> Outcome {
        match self.step(token, broker).await {
            Ok((out, None)) => Outcome::Reply(raw_frame(&out)),
            Ok((out, Some(user))) => match self.complete(user, session) {
                Ok(_) => Outcome::Reply(raw_frame(&out)),
                Err(msg) => Outcome::Close(None, msg),
            },
            Err((_, _, reason)) => {
                self.exchange = None;
                Outcome::Close(None, reason)
            }
        }
    }

    /// SaslHandshake / SaslAuthenticate on a listener without SASL:
    /// ILLEGAL_SASL_STATE, as Kafka's KafkaApis answers.
    fn not_sasl_listener(&self, frame: &Bytes, correlation_id: i32) -> Outcome {
        let (raw_key, version, _) = frame_key(frame);
        let key = ApiKey::try_from(raw_key).ok();
        let supported = key.and_then(api::supported);
        let (Some(key), Some(range)) = (key, supported) else {
            return Outcome::Serve;
        };
        if version < range.min || version > range.max {
            return Outcome::Serve;
        }
        if let Err(e) = request::decode(frame.clone(), key, version) {
            return Outcome::Close(None, e.to_string());
        }
        let body = if key == ApiKey::SaslHandshake {
            ResponseKind::SaslHandshake(
                SaslHandshakeResponse::default().with_error_code(E::IllegalSaslState.code()),
            )
        } else {
            ResponseKind::SaslAuthenticate(
                SaslAuthenticateResponse::default()
                    .with_error_code(E::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate request received after successful authentication",
                    ))),
            )
        };
        match encode(key, version, correlation_id, body) {
            Some(f) => Outcome::Reply(f),
            None => Outcome::Close(None, format!("cannot encode the {key:?} response")),
        }
    }
}

/// A response frame (response header v0 for SaslHandshake, as its
/// versions are not flexible; v0/v1 by version for SaslAuthenticate).
fn encode(key: ApiKey, version: i16, correlation_id: i32, body: ResponseKind) -> Option<BytesMut> {
    rivulet_protocol::wire::encode_response(
        key,
        version,
        key.response_header_version(version),
        correlation_id,
        256,
        |out| body.encode(out, version).map_err(|e| e.to_string()),
    )
    .ok()
}
