//! The `request` fuzz target's seeds, committed corpus (fuzz/corpus/request)
//! and regressions (fuzz/regressions/request), replayed on stable through
//! the harness the fuzz target runs (fuzz/src/request.rs): each one as a
//! request frame through `handle_frame` against an in-process broker, with
//! the same checks (no panic anywhere in the broker, no `LayoutMismatch`
//! between the pre-pass table and the decoder, well-formed responses).
//!
//! `cargo test -p rivulet-broker --test fuzz_corpus -- --ignored` rewrites
//! the committed seeds (scripts/fuzz.sh seeds).

#[path = "../../fuzz/src/request.rs"]
mod request;
#[path = "../../fuzz/src/sasl_session.rs"]
mod sasl_session;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use request::{Harness, Outcome};

#[test]
fn request_corpus_and_regressions_run_clean() {
    // A panic in a broker task (caught by tokio) is a finding too.
    let panicked = Arc::new(AtomicBool::new(false));
    let flag = panicked.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flag.store(true, Ordering::SeqCst);
        previous(info);
    }));

    let inputs: Vec<(String, Vec<u8>)> = request::seeds()
        .into_iter()
        .map(|(name, data)| (format!("seed {name}"), data))
        .chain(
            rivulet_testkit::fuzz::replay_inputs("request", 101)
                .into_iter()
                .map(|(p, data)| (p.display().to_string(), data)),
        )
        .collect();
    let harness = Harness::get();
    // Every input's answer checked, none aborted for speed.
    harness.be_patient();
    let mut responses = 0;
    for (name, data) in &inputs {
        eprintln!("{name}");
        if harness.run(data) == Outcome::Response {
            responses += 1;
        }
    }
    // Requests left running after their budget (JoinGroups waiting for the
    // coordinator's timer, and more of them unoptimised) are checked too.
    responses += harness.drain();
    let (runs, parked, _) = harness.stats();
    eprintln!(
        "{runs} frames, {responses} answered, {parked} parked after their budget, {} aborted",
        harness.aborted()
    );
    // The typed seeds are real requests: most of them get an answer.
    assert!(
        responses * 2 > inputs.len(),
        "{responses} of {}",
        inputs.len()
    );
    assert!(!panicked.load(Ordering::SeqCst), "a broker task panicked");
}

/// The `sasl_session` target's seeds, corpus and regressions through a SASL
/// listener's connection state machine, with its checks (nothing but
/// ApiVersions served before authentication, no principal without the
/// password); and the seeds reach both ends: the right PLAIN password
/// authenticates and gets its next request served, a wrong one closes.
#[test]
fn sasl_session_corpus_and_regressions_run_clean() {
    let seeds: std::collections::BTreeMap<String, Vec<u8>> =
        sasl_session::seeds().into_iter().collect();
    let seen = |name: &str| sasl_session::run(&seeds[name]);
    let right = seen("plain-v1");
    assert!(right.authenticated && right.served == 2, "{right:?}");
    let raw = seen("plain-v0-raw");
    assert!(raw.authenticated && raw.served == 1, "{raw:?}");
    let wrong = seen("plain-wrong");
    assert!(!wrong.authenticated && wrong.closed, "{wrong:?}");
    let early = seen("metadata-first");
    assert!(early.closed && early.served == 0, "{early:?}");

    for (path, data) in &rivulet_testkit::fuzz::replay_inputs("sasl_session", 10) {
        eprintln!("{}", path.display());
        sasl_session::run(data);
    }
}

#[test]
#[ignore = "rewrites fuzz/corpus/sasl_session (scripts/fuzz.sh seeds)"]
fn write_sasl_session_seeds() {
    rivulet_testkit::fuzz::write_seeds("sasl_session", &sasl_session::seeds());
}

/// The harness's broker start retries a port taken between choosing and
/// binding it, for the controller listener too (a fuzz run died of it).
#[test]
fn a_port_taken_before_the_broker_binds_it_is_retried() {
    let in_use = || std::io::Error::from(std::io::ErrorKind::AddrInUse);
    let controller = rivulet_broker::StartError::Quorum(rivulet_controller::QuorumError::Bind {
        addr: "127.0.0.1:41835".into(),
        source: in_use(),
    });
    assert!(request::port_taken(&controller) && controller.port_taken());
    let listener = rivulet_broker::StartError::Bind {
        addr: "127.0.0.1:9092".into(),
        source: in_use(),
    };
    assert!(request::port_taken(&listener) && listener.port_taken());
    let denied = rivulet_broker::StartError::Bind {
        addr: "127.0.0.1:1".into(),
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    };
    assert!(!request::port_taken(&denied) && !denied.port_taken());
    let other =
        rivulet_broker::StartError::Quorum(rivulet_controller::QuorumError::Raft("no".into()));
    assert!(!request::port_taken(&other) && !other.port_taken());
}

#[test]
#[ignore = "rewrites fuzz/corpus/request (scripts/fuzz.sh seeds)"]
fn write_request_seeds() {
    rivulet_testkit::fuzz::write_seeds("request", &request::seeds());
}
