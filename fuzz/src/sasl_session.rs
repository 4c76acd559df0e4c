//! The `sasl_session` fuzz target: arbitrary frames through a SASL
//! listener's connection state machine before and after authentication
//! (`rivulet_broker::sasl::Authenticator`, as `connection.rs` drives it),
//! against the in-process broker of the `request` target, which knows one
//! SCRAM / PLAIN user ([`USER`]).
//!
//! Input: up to [`MAX_FRAMES`] frames, each a big-endian `u16` length and
//! that many bytes (the last takes what is left); each is what follows the
//! size prefix on the wire — a request frame, or a raw token after
//! SaslHandshake v0. Findings, besides panics:
//!
//! - a request other than ApiVersions (before any exchange) is served on a
//!   connection that has not authenticated, or a raw token is served as a
//!   request — the authentication bypass this target exists to rule out;
//! - the session's principal changes to anything but `User:<USER>`, or to
//!   that without the user's password in some frame of the input (a PLAIN
//!   exchange; a SCRAM one cannot succeed here: its server nonce is
//!   random);
//! - a reply whose size prefix is not its length, or that answers a request
//!   frame with another correlation id.
//!
//! This file is shared by `#[path]` with `broker/tests/fuzz_corpus.rs`
//! (beside `request.rs`, whose harness it uses), which replays the corpus
//! and the regressions in `cargo test`.

use std::net::SocketAddr;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use rivulet_broker::listeners::SecurityProtocol;
use rivulet_broker::sasl::{Authenticator, Outcome};
use rivulet_broker::session::Session;
use rivulet_broker::BrokerContext;

use crate::request::{frame, Harness, SASL_PASSWORD as PASSWORD, SASL_USER as USER};

/// Frames one input is cut into at the most.
pub const MAX_FRAMES: usize = 8;
const ANONYMOUS: &str = "User:ANONYMOUS";
const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);

/// What one input's connection came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The session's principal became `User:<USER>`.
    pub authenticated: bool,
    /// Requests handed on to be served.
    pub served: usize,
    /// The connection was closed.
    pub closed: bool,
}

/// Run one input; panics on a finding.
pub fn run(data: &[u8]) -> Seen {
    let frames = split(data);
    if frames.is_empty() {
        return Seen::default();
    }
    let harness = Harness::get();
    let broker = harness.broker();
    harness.block_on(session(&broker, &frames))
}

fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while out.len() < MAX_FRAMES && data.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        let rest = &data[2..];
        let (frame, tail) = rest.split_at(len.min(rest.len()));
        out.push(frame);
        data = tail;
    }
    out
}

async fn session(broker: &BrokerContext, frames: &[&[u8]]) -> Seen {
    let mut session = Session {
        peer: PEER,
        listener: "SASL_PLAINTEXT".into(),
        protocol: SecurityProtocol::SaslPlaintext,
        principal: ANONYMOUS.into(),
    };
    let mut auth = Authenticator::new(broker, &session);
    let mut gave_password = false;
    let mut seen = Seen::default();
    for f in frames {
        let raw = auth.raw_tokens();
        gave_password |= f.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes());
        let outcome = auth
            .on_frame(&Bytes::copy_from_slice(f), &mut session, broker)
            .await;
        let authenticated = session.principal != ANONYMOUS;
        seen.authenticated |= authenticated;
        if authenticated {
            assert_eq!(session.principal, format!("User:{USER}"));
            assert!(gave_password, "authenticated without the password");
        }
        match outcome {
            Outcome::Serve => {
                assert!(!raw, "a raw SASL token was served as a request");
                let key = ApiKey::try_from(i16::from_be_bytes([at(f, 0), at(f, 1)]));
                assert!(
                    authenticated || key == Ok(ApiKey::ApiVersions),
                    "{key:?} served before authentication"
                );
                seen.served += 1;
            }
            Outcome::Reply(out) => check_reply(&out, f, raw),
            Outcome::Close(out, reason) => {
                if let Some(out) = out {
                    check_reply(&out, f, raw);
                }
                assert!(!reason.is_empty(), "closed without a reason");
                seen.closed = true;
                return seen;
            }
        }
    }
    seen
}

fn at(f: &[u8], i: usize) -> u8 {
    f.get(i).copied().unwrap_or(0)
}

fn check_reply(out: &[u8], request: &[u8], raw: bool) {
    let size = out
        .get(..4)
        .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]));
    assert_eq!(
        size,
        i32::try_from(out.len().saturating_sub(4)).ok(),
        "reply size prefix"
    );
    if !raw {
        assert_eq!(
            out.get(4..8),
            request.get(4..8),
            "reply to another correlation id"
        );
    }
}

/// One input of these frames.
pub fn input(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        let len = u16::try_from(f.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&f[..usize::from(len)]);
    }
    out
}

fn handshake(version: i16, mechanism: &str) -> Vec<u8> {
    let r = SaslHandshakeRequest::default().with_mechanism(StrBytes::from(mechanism.to_string()));
    frame(ApiKey::SaslHandshake, version, &r)
}

fn authenticate(version: i16, token: &[u8]) -> Vec<u8> {
    let r = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
    frame(ApiKey::SaslAuthenticate, version, &r)
}

/// Seeds: PLAIN (framed and raw) with the right and a wrong password, then
/// requests after it; requests before authentication; SCRAM first messages;
/// re-authentication; handshakes for mechanisms not offered.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let plain = format!("\0{USER}\0{PASSWORD}");
    let wrong = format!("\0{USER}\0not-the-password");
    let api_versions = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let metadata = frame(ApiKey::Metadata, 12, &MetadataRequest::default());
    let scram_first = format!("n,,n={USER},r=fuzznonce");
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "plain-v1",
            vec![
                api_versions.clone(),
                handshake(1, "PLAIN"),
                authenticate(2, plain.as_bytes()),
                metadata.clone(),
            ],
        ),
        (
            "plain-v0-raw",
            vec![
                handshake(0, "PLAIN"),
                plain.as_bytes().to_vec(),
                metadata.clone(),
            ],
        ),
        (
            "plain-wrong",
            vec![handshake(1, "PLAIN"), authenticate(1, wrong.as_bytes())],
        ),
        (
            "reauth",
            vec![
                handshake(1, "PLAIN"),
                authenticate(2, plain.as_bytes()),
                handshake(1, "PLAIN"),
                authenticate(2, plain.as_bytes()),
                metadata.clone(),
            ],
        ),
        ("metadata-first", vec![metadata.clone()]),
        (
            "metadata-mid-exchange",
            vec![handshake(1, "SCRAM-SHA-512"), metadata.clone()],
        ),
        (
            "scram-first",
            vec![
                handshake(1, "SCRAM-SHA-512"),
                authenticate(2, scram_first.as_bytes()),
                authenticate(2, b"c=biws,r=fuzznonce,p=AAAA"),
            ],
        ),
        (
            "scram-raw",
            vec![
                handshake(0, "SCRAM-SHA-256"),
                scram_first.as_bytes().to_vec(),
                b"garbage".to_vec(),
            ],
        ),
        (
            "gssapi",
            vec![handshake(1, "GSSAPI"), authenticate(2, b"x")],
        ),
        (
            "authenticate-first",
            vec![authenticate(2, plain.as_bytes()), metadata],
        ),
        (
            "api-versions-twice",
            vec![api_versions.clone(), api_versions],
        ),
    ];
    cases
        .into_iter()
        .map(|(name, frames)| (name.to_string(), input(&frames)))
        .collect()
}
