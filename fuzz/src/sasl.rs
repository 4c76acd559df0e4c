//! The `sasl` fuzz target: arbitrary bytes through every SASL message
//! parser and through whole exchanges, both sides
//! (`rivulet_protocol::sasl`): what a client sends before it has
//! authenticated, and what a server sends to our replica fetchers, broker
//! links and `rivulet user`.
//!
//! Input: byte 0 picks what to exercise ([`Mode`]), the rest is the
//! payload. A panic, or a broken invariant asserted here, is a finding:
//!
//! - a parsed client-first message is its GS2 header followed by its bare
//!   part, with a user name and a nonce that are not empty;
//! - a user name decodes only if encoding it again gives the same text
//!   (RFC 5802's `=2C` / `=3D` escapes, nothing else);
//! - PLAIN yields a user and a password that are not empty, and an
//!   authorization id only when it is the user;
//! - a server exchange ([`Mode::Exchange`]) authenticates **only** with the
//!   proof of the right password, computed here independently from RFC 5802
//!   over the exchange's own auth message, for a user whose credential is
//!   known; an exchange whose final message is the canonical one with that
//!   proof always authenticates; after it ended, any further message is
//!   refused;
//! - the client side ([`Mode::Client`]) accepts a server-first message only
//!   with an iteration count it is prepared to compute, and a server-final
//!   message only with the server signature of the right credential.
//!
//! The exchange's final message is the payload after the first NUL, with
//! placeholders the fuzzer cannot guess filled in by the harness: `@N` the
//! combined nonce, `@C` the channel binding of the client's GS2 header, and
//! a trailing `@P` the correct proof (`@W` the same with one bit flipped);
//! so the fuzzer reaches the proof check and the success path, not only the
//! parsers.
//!
//! This file is shared by `#[path]` with `protocol/tests/fuzz_corpus.rs`,
//! which replays the corpus and the regressions in `cargo test`; it only
//! uses crates that `rivulet-protocol` depends on.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rivulet_protocol::sasl::{
    decode_saslname, encode_saslname, parse_plain, ClientFinal, ClientFirst, SaslError,
    ScramClient, ScramCredential, ScramMechanism, ScramServer, ServerFirst, Step, MAX_ITERATIONS,
};

/// The user the exchanges know, and its password.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "alice-secret";
/// A user whose stored credential has too few iterations: served as if
/// unknown.
pub const WEAK_USER: &str = "bob";

/// What one input exercises (byte 0, modulo the count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The payload through every message parser.
    Parsers,
    /// A SCRAM-SHA-256 server exchange: client-first, NUL, client-final.
    Exchange,
    /// The same over SCRAM-SHA-512.
    Exchange512,
    /// The client side: server-first, NUL, server-final.
    Client,
}

const MODES: [Mode; 4] = [
    Mode::Parsers,
    Mode::Exchange,
    Mode::Exchange512,
    Mode::Client,
];

/// Run one input; panics on a finding.
pub fn run(data: &[u8]) {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    match MODES[usize::from(selector) % MODES.len()] {
        Mode::Parsers => parsers(payload),
        Mode::Exchange => exchange(ScramMechanism::Sha256, payload),
        Mode::Exchange512 => exchange(ScramMechanism::Sha512, payload),
        Mode::Client => client(payload),
    }
}

/// An input of this mode with this payload.
pub fn input(mode: Mode, payload: &[u8]) -> Vec<u8> {
    let selector = MODES.iter().position(|m| *m == mode).unwrap_or(0) as u8;
    let mut out = vec![selector];
    out.extend_from_slice(payload);
    out
}

fn parsers(payload: &[u8]) {
    if let Ok(first) = ClientFirst::parse(payload) {
        let text = std::str::from_utf8(payload).unwrap_or_default();
        assert_eq!(
            format!("{}{}", first.gs2_header, first.bare),
            text,
            "client-first is not its GS2 header and bare part"
        );
        assert!(!first.user.is_empty() && !first.nonce.is_empty());
    }
    if let Ok(fin) = ClientFinal::parse(payload) {
        let text = std::str::from_utf8(payload).unwrap_or_default();
        assert!(
            text.starts_with(&fin.without_proof),
            "client-final without proof is not a prefix of the message"
        );
    }
    let _ = ServerFirst::parse(payload);
    if let Ok((user, password)) = parse_plain(payload) {
        assert!(!user.is_empty() && !password.is_empty());
        let text = std::str::from_utf8(payload).unwrap_or_default();
        let authzid = text.split('\0').next().unwrap_or_default();
        assert!(
            authzid.is_empty() || authzid == user,
            "PLAIN authzid {authzid:?} ≠ {user:?}"
        );
    }
    if let Ok(text) = std::str::from_utf8(payload) {
        if let Ok(name) = decode_saslname(text) {
            if !text.contains(',') {
                assert_eq!(
                    encode_saslname(&name),
                    text,
                    "saslname escapes are not strict"
                );
            }
        }
    }
}

/// The stored credential of [`USER`] for `m` and its ClientKey (computed
/// once: the salted password is the expensive part).
fn known(m: ScramMechanism) -> &'static (ScramCredential, Vec<u8>) {
    static SHA256: OnceLock<(ScramCredential, Vec<u8>)> = OnceLock::new();
    static SHA512: OnceLock<(ScramCredential, Vec<u8>)> = OnceLock::new();
    let cell = match m {
        ScramMechanism::Sha256 => &SHA256,
        ScramMechanism::Sha512 => &SHA512,
    };
    cell.get_or_init(|| {
        let salt = b"fuzz-salt-0123456789".to_vec();
        let iterations = m.min_iterations();
        let salted = m.salted_password(PASSWORD.as_bytes(), &salt, iterations);
        let credential = m.credential(&salted, &salt, iterations);
        (credential, m.hmac(&salted, b"Client Key"))
    })
}

fn lookup(m: ScramMechanism, user: &str) -> Option<ScramCredential> {
    match user {
        USER => Some(known(m).0.clone()),
        WEAK_USER => Some(ScramCredential {
            iterations: 1,
            ..known(m).0.clone()
        }),
        _ => None,
    }
}

/// RFC 5802's ClientProof for [`USER`] over `auth_message`.
fn proof(m: ScramMechanism, auth_message: &str) -> Vec<u8> {
    let client_key = &known(m).1;
    let stored_key = m.hash(client_key);
    let signature = m.hmac(&stored_key, auth_message.as_bytes());
    client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect()
}

fn split_nul(payload: &[u8]) -> (&[u8], &[u8]) {
    match payload.iter().position(|b| *b == 0) {
        Some(i) => (&payload[..i], &payload[i + 1..]),
        None => (payload, &[]),
    }
}

fn exchange(m: ScramMechanism, payload: &[u8]) {
    let (first_token, final_template) = split_nul(payload);
    let mut server = ScramServer::new(m);
    let server_first = match server.step(first_token, |u| lookup(m, u)) {
        Ok(Step::Continue(out)) => out,
        Ok(Step::Done { user, .. }) => panic!("authenticated {user:?} on a client-first message"),
        Err(_) => {
            assert_refused_after_end(&mut server, m);
            return;
        }
    };
    // What the server accepted, and what it answered.
    let first = match ClientFirst::parse(first_token) {
        Ok(first) => first,
        Err(e) => panic!("the server took a client-first message the parser refuses: {e}"),
    };
    let sf_text = String::from_utf8(server_first.clone()).unwrap_or_default();
    let sf = match ServerFirst::parse(&server_first) {
        Ok(sf) => sf,
        Err(e) => panic!("the server's own server-first {sf_text:?} does not parse: {e}"),
    };
    assert!(
        sf.nonce.starts_with(&first.nonce) && sf.nonce.len() > first.nonce.len(),
        "the server nonce does not extend the client's"
    );
    // The final message, placeholders filled in.
    let template = String::from_utf8_lossy(final_template);
    let filled = template
        .replace("@N", &sf.nonce)
        .replace("@C", &B64.encode(first.gs2_header.as_bytes()));
    let (final_message, expected_proof) = fill_proof(m, &filled, &first.bare, &sf_text);
    let canonical = template == "c=@C,r=@N,p=@P";
    let result = server.step(final_message.as_bytes(), |u| lookup(m, u));
    let known_user = first.user == USER;
    let authzid_ok = first.authzid.as_ref().is_none_or(|a| *a == first.user);
    match result {
        Ok(Step::Done { user, response }) => {
            assert!(
                known_user,
                "authenticated {user:?}, whose password the harness never gave"
            );
            assert_eq!(user, first.user);
            let fin = ClientFinal::parse(final_message.as_bytes()).unwrap_or_else(|e| {
                panic!("authenticated on a final message that does not parse: {e}")
            });
            let auth = format!("{},{sf_text},{}", first.bare, fin.without_proof);
            assert_eq!(
                fin.proof,
                proof(m, &auth),
                "authenticated without the right proof"
            );
            assert!(response.starts_with(b"v="), "server-final {response:?}");
        }
        Ok(Step::Continue(_)) => panic!("a third SCRAM message was asked for"),
        Err(e) => {
            assert!(
                !(canonical && known_user && authzid_ok && expected_proof.is_some()),
                "the right proof on the canonical final message was refused: {e}"
            );
        }
    }
    assert_refused_after_end(&mut server, m);
}

/// The final message with a trailing `@P` replaced by the right proof over
/// its auth message, or a trailing `@W` by that proof with one bit flipped
/// (right length, wrong value); and the right proof when it was `@P`.
fn fill_proof(
    m: ScramMechanism,
    filled: &str,
    client_first_bare: &str,
    server_first: &str,
) -> (String, Option<Vec<u8>>) {
    for (placeholder, right) in [("@P", true), ("@W", false)] {
        let Some(without_proof) = filled
            .strip_suffix(placeholder)
            .and_then(|head| head.strip_suffix(",p="))
        else {
            continue;
        };
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let mut p = proof(m, &auth);
        if !right {
            p[0] ^= 1;
        }
        let message = format!("{without_proof},p={}", B64.encode(&p));
        return (message, right.then_some(p));
    }
    (filled.to_string(), None)
}

fn assert_refused_after_end(server: &mut ScramServer, m: ScramMechanism) {
    let again = server.step(b"n,,n=alice,r=x", |u| lookup(m, u));
    assert!(
        matches!(again, Err(SaslError::IllegalState(_))),
        "a message after the exchange ended was not refused: {again:?}"
    );
}

fn client(payload: &[u8]) {
    let (server_first, server_final) = split_nul(payload);
    for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
        let mut c = ScramClient::new(m, USER, PASSWORD);
        // The client's nonce is random: `@N` in the server-first message
        // stands for it, so that the fuzzer reaches the iteration checks.
        let first = String::from_utf8_lossy(&c.first()).into_owned();
        let nonce = first.rsplit("r=").next().unwrap_or_default().to_string();
        let sf = String::from_utf8_lossy(server_first).replace("@N", &nonce);
        match c.respond(sf.as_bytes()) {
            Ok(_) => {
                let parsed = ServerFirst::parse(sf.as_bytes())
                    .unwrap_or_else(|e| panic!("answered a server-first that does not parse: {e}"));
                assert!(
                    (m.min_iterations()..=MAX_ITERATIONS * 64).contains(&parsed.iterations),
                    "computed {} iterations for a server",
                    parsed.iterations
                );
                // Only the holder of the credential can sign, and the
                // fuzzer does not hold it.
                assert!(
                    c.finish(server_final).is_err(),
                    "accepted a server signature only the credential's holder can make"
                );
            }
            Err(_) => assert!(
                c.finish(server_final).is_err(),
                "finished without a server-first"
            ),
        }
    }
}

/// Seeds: each parser's valid messages and near misses, whole exchanges
/// (right and wrong proofs, unknown and weak users, authzids), client-side
/// server messages with good and hostile iteration counts.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let parsers = [
        ("client-first", "n,,n=alice,r=abcdef"),
        ("client-first-authzid", "n,a=alice,n=alice,r=abcdef"),
        ("client-first-escapes", "y,,n=a=2Cb=3Dc,r=x,ext=1"),
        ("client-first-cbind", "p=tls-unique,,n=alice,r=x"),
        ("client-final", "c=biws,r=abcdefXYZ,p=dGVzdA=="),
        ("server-first", "r=abc,s=c2FsdA==,i=4096"),
        ("server-error", "e=other-error"),
        ("plain", "\0alice\0secret"),
        ("plain-authzid", "alice\0alice\0secret"),
        ("saslname", "a=3Db=2Cc"),
    ];
    for (name, text) in parsers {
        out.push((
            format!("parse-{name}"),
            input(Mode::Parsers, text.as_bytes()),
        ));
    }
    let exchanges = [
        ("right", "n,,n=alice,r=cnonce\0c=@C,r=@N,p=@P"),
        ("authzid", "n,a=alice,n=alice,r=cnonce\0c=@C,r=@N,p=@P"),
        ("other-authzid", "n,a=eve,n=alice,r=cnonce\0c=@C,r=@N,p=@P"),
        ("unknown-user", "n,,n=mallory,r=cnonce\0c=@C,r=@N,p=@P"),
        ("weak-user", "n,,n=bob,r=cnonce\0c=@C,r=@N,p=@P"),
        ("wrong-proof", "n,,n=alice,r=cnonce\0c=@C,r=@N,p=@W"),
        ("short-proof", "n,,n=alice,r=cnonce\0c=@C,r=@N,p=AAAA"),
        ("empty-proof", "n,,n=alice,r=cnonce\0c=@C,r=@N,p="),
        ("wrong-nonce", "n,,n=alice,r=cnonce\0c=@C,r=cnonce,p=@P"),
        ("wrong-cbind", "n,,n=alice,r=cnonce\0c=eSws,r=@N,p=@P"),
        (
            "old-librdkafka-nonce",
            "n,,n=alice,r=cnonce\0c=@C,r=cnonce@N,p=@P",
        ),
        ("extension", "n,,n=alice,r=cnonce,x=1\0c=@C,r=@N,x=2,p=@P"),
    ];
    for (name, text) in exchanges {
        out.push((
            format!("exchange-{name}"),
            input(Mode::Exchange, text.as_bytes()),
        ));
        out.push((
            format!("exchange512-{name}"),
            input(Mode::Exchange512, text.as_bytes()),
        ));
    }
    let clients = [
        ("good", "r=@Nsrv,s=c2FsdA==,i=4096\0v=AAAA"),
        ("huge-iterations", "r=@Nsrv,s=c2FsdA==,i=2147483647\0v=AAAA"),
        ("few-iterations", "r=@Nsrv,s=c2FsdA==,i=1\0v=AAAA"),
        ("same-nonce", "r=@N,s=c2FsdA==,i=4096\0v=AAAA"),
        ("server-error", "e=invalid-proof\0e=invalid-proof"),
    ];
    for (name, text) in clients {
        out.push((
            format!("client-{name}"),
            input(Mode::Client, text.as_bytes()),
        ));
    }
    out
}
