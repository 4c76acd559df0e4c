use super::*;

fn exchange(
    m: ScramMechanism,
    stored: Option<ScramCredential>,
    user: &str,
    password: &str,
) -> Result<String, SaslError> {
    let mut server = ScramServer::new(m);
    let mut client = ScramClient::new(m, user, password);
    let Step::Continue(sf) = server.step(&client.first(), |_| stored.clone())? else {
        panic!("one step")
    };
    let cf = client.respond(&sf)?;
    match server.step(&cf, |_| None)? {
        Step::Done { user, response } => {
            client.finish(&response)?;
            Ok(user)
        }
        Step::Continue(_) => panic!("two steps"),
    }
}

#[test]
fn rfc7677_test_vector_sha256() {
    // RFC 7677 section 3: user "user", password "pencil".
    let m = ScramMechanism::Sha256;
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let sp = m.salted_password(b"pencil", &salt, 4096);
    let c = m.credential(&sp, &salt, 4096);
    let first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
    let server_first =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    let without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    let am = format!("{first_bare},{server_first},{without_proof}");
    let ck = m.hmac(&sp, b"Client Key");
    let sig = m.hmac(&c.stored_key, am.as_bytes());
    let proof: Vec<u8> = ck.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
    assert_eq!(
        B64.encode(proof),
        "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    let ss = m.hmac(&c.server_key, am.as_bytes());
    assert_eq!(
        B64.encode(ss),
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
}

#[test]
fn scram_round_trips_and_wrong_or_unknown_fail_alike() {
    for m in ScramMechanism::ALL {
        let c = m.credential_for_password("s3cret", 4096);
        assert_eq!(
            exchange(m, Some(c.clone()), "a,b=c", "s3cret").unwrap(),
            "a,b=c"
        );
        assert_eq!(
            exchange(m, Some(c), "alice", "wrong"),
            Err(SaslError::InvalidCredentials)
        );
        assert_eq!(
            exchange(m, None, "nobody", "s3cret"),
            Err(SaslError::InvalidCredentials)
        );
    }
}

#[test]
fn garbage_and_out_of_order_messages_are_errors() {
    let m = ScramMechanism::Sha512;
    for bad in [
        &b""[..],
        b"\xff\xfe",
        b"n,,",
        b"x,,n=a,r=b",
        b"n,,r=a",
        b"n,,n=,r=x",
        b"p=tls,,n=a,r=b",
        b"n,,n=a=ZZ,r=b",
    ] {
        assert!(ScramServer::new(m).step(bad, |_| None).is_err(), "{bad:?}");
    }
    // A final message first.
    assert!(ScramServer::new(m)
        .step(b"c=biws,r=abc,p=AAAA", |_| None)
        .is_err());
    // After a good first, garbage and a wrong nonce.
    let c = m.credential_for_password("pw", 4096);
    let mut s = ScramServer::new(m);
    s.step(b"n,,n=u,r=abc", |_| Some(c.clone())).unwrap();
    assert!(s.step(b"c=biws,r=abcX,p=AAAA", |_| None).is_err());
    assert!(
        s.step(b"anything", |_| None).is_err(),
        "done after a failure"
    );
}

#[test]
fn plain_checks_against_scram_credentials() {
    let c = ScramMechanism::Sha256.credential_for_password("pw", 4096);
    let creds = [(ScramMechanism::Sha256, c)];
    assert!(verify_plain("u", "pw", &creds));
    assert!(!verify_plain("u", "nope", &creds));
    assert!(!verify_plain("u", "pw", &[]));
    assert_eq!(parse_plain(b"\0u\0pw").unwrap(), ("u".into(), "pw".into()));
    assert_eq!(parse_plain(b"u\0u\0pw").unwrap(), ("u".into(), "pw".into()));
    assert_eq!(parse_plain(b"x\0u\0pw"), Err(SaslError::AuthzId));
    assert!(parse_plain(b"\0\0pw").is_err());
    assert!(parse_plain(b"garbage").is_err());
}
