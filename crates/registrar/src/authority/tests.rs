use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::digest::{compute_response, ha1_md5, ha1_sha256};
use crate::header::parse_digest;

const REALM: &str = "biloxi.com";
const LIFETIME: Duration = Duration::from_secs(300);

fn authority() -> DigestAuthority {
    DigestAuthority::new(REALM, [7; 32], LIFETIME)
}

/// The user table of these tests.
struct Users {
    bob: Credentials,
    alice: Credentials,
    carol: Credentials,
}

impl Users {
    fn new() -> Users {
        Users {
            // Plaintext password.
            bob: Credentials::password("zanzibar"),
            // Both HA1s stored.
            alice: Credentials::ha1(
                Some(&ha1_md5("alice", REALM, "wonderland")),
                Some(&ha1_sha256("alice", REALM, "wonderland")),
            )
            .unwrap(),
            // Only an MD5 HA1 stored.
            carol: Credentials::ha1(Some(&ha1_md5("carol", REALM, "kings")), None).unwrap(),
        }
    }

    fn lookup(&self, user: &str) -> Option<&Credentials> {
        match user {
            "bob" => Some(&self.bob),
            "alice" => Some(&self.alice),
            "carol" => Some(&self.carol),
            _ => None,
        }
    }
}

/// What a client puts in its Authorization header.
#[derive(Clone)]
struct Client<'a> {
    user: &'a str,
    password: &'a str,
    algorithm: Algorithm,
    nonce: String,
    opaque: Option<String>,
    nc: Option<u32>,
    realm: &'a str,
    uri: &'a str,
}

impl<'a> Client<'a> {
    /// Answers the challenge value for `algorithm` the way a phone would.
    fn answer(
        challenges: &[String],
        algorithm: Algorithm,
        user: &'a str,
        password: &'a str,
    ) -> Self {
        let value = challenges
            .iter()
            .find(|c| c.contains(&format!("algorithm={}", algorithm.as_str())))
            .expect("challenge for algorithm");
        let params = parse_digest(value).expect("our challenge parses as digest params");
        Client {
            user,
            password,
            algorithm,
            nonce: params.nonce.unwrap().into_owned(),
            opaque: params.opaque.map(|o| o.into_owned()),
            nc: Some(1),
            realm: REALM,
            uri: "sip:biloxi.com",
        }
    }

    fn header(&self) -> String {
        let ha1 = match self.algorithm {
            Algorithm::Md5 => ha1_md5(self.user, self.realm, self.password),
            Algorithm::Sha256 => ha1_sha256(self.user, self.realm, self.password),
        };
        let nc = self.nc.map(|n| format!("{n:08x}"));
        let qop = nc.as_deref().map(|nc| QopAuth {
            nc,
            cnonce: "0a4f113b",
        });
        let response =
            compute_response(self.algorithm, &ha1, &self.nonce, "REGISTER", self.uri, qop);
        let mut h = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
            self.user,
            self.realm,
            self.nonce,
            self.uri,
            self.algorithm.as_str()
        );
        if let Some(nc) = nc {
            h.push_str(&format!(", qop=auth, cnonce=\"0a4f113b\", nc={nc}"));
        }
        if let Some(opaque) = &self.opaque {
            h.push_str(&format!(", opaque=\"{opaque}\""));
        }
        h
    }
}

fn verify_at(
    authority: &mut DigestAuthority,
    users: &Users,
    header: &str,
    now: Instant,
) -> Result<String, AuthFailure> {
    authority
        .verify(header, "REGISTER", |u| users.lookup(u), now)
        .map(|a| a.username().to_owned())
}

#[test]
fn challenge_offers_sha256_then_md5() {
    let mut authority = authority();
    let now = Instant::now();
    let values = authority.challenge(now, false);
    assert_eq!(values.len(), 2);
    assert!(
        values[0]
            .starts_with("Digest realm=\"biloxi.com\", qop=\"auth\", algorithm=SHA-256, nonce=\"")
    );
    assert!(values[1].contains("algorithm=MD5"));
    assert!(!values[0].contains("stale"));
    // Both values share one nonce and the opaque.
    let a = parse_digest(&values[0]).unwrap();
    let b = parse_digest(&values[1]).unwrap();
    assert_eq!(a.nonce, b.nonce);
    assert_eq!(a.opaque, b.opaque);
    assert_eq!(a.nonce.unwrap().len(), NONCE_HEX_LEN);
    let stale = authority.challenge(now, true);
    assert!(stale[0].ends_with(", stale=true"));
    // Every challenge has a fresh nonce.
    assert_ne!(parse_digest(&stale[0]).unwrap().nonce, b.nonce);
    // Realms are quoted safely.
    let mut odd = DigestAuthority::new("a\"b", [1; 32], LIFETIME);
    assert!(odd.challenge(now, false)[0].starts_with("Digest realm=\"a\\\"b\""));
}

#[test]
fn round_trips_for_each_algorithm_and_credential_kind() {
    let users = Users::new();
    let t0 = Instant::now();
    let cases = [
        ("bob", "zanzibar", Algorithm::Sha256, Ok("bob")),
        ("bob", "zanzibar", Algorithm::Md5, Ok("bob")),
        ("alice", "wonderland", Algorithm::Sha256, Ok("alice")),
        ("alice", "wonderland", Algorithm::Md5, Ok("alice")),
        ("carol", "kings", Algorithm::Md5, Ok("carol")),
        // No SHA-256 HA1 stored for carol.
        (
            "carol",
            "kings",
            Algorithm::Sha256,
            Err(AuthFailure::Rejected),
        ),
        (
            "bob",
            "wrong",
            Algorithm::Sha256,
            Err(AuthFailure::Rejected),
        ),
        ("alice", "wrong", Algorithm::Md5, Err(AuthFailure::Rejected)),
        // Unknown user: same outward result as a wrong password.
        (
            "mallory",
            "zanzibar",
            Algorithm::Md5,
            Err(AuthFailure::Rejected),
        ),
    ];
    for (user, password, algorithm, expect) in cases {
        let mut authority = authority();
        let challenge = authority.challenge(t0, false);
        let client = Client::answer(&challenge, algorithm, user, password);
        let got = verify_at(
            &mut authority,
            &users,
            &client.header(),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(got, expect.map(str::to_owned), "{user} {algorithm:?}");
    }
}

#[test]
fn nonce_count_must_increase() {
    let users = Users::new();
    let mut authority = authority();
    let t0 = Instant::now();
    let mut client = Client::answer(
        &authority.challenge(t0, false),
        Algorithm::Sha256,
        "bob",
        "zanzibar",
    );
    let steps = [
        (1, Ok("bob")),
        (1, Err(AuthFailure::Replay)),
        (2, Ok("bob")),
        (5, Ok("bob")),
        (3, Err(AuthFailure::Replay)),
        (5, Err(AuthFailure::Replay)),
        (6, Ok("bob")),
    ];
    for (nc, expect) in steps {
        client.nc = Some(nc);
        let got = verify_at(&mut authority, &users, &client.header(), t0);
        assert_eq!(got, expect.map(str::to_owned), "nc={nc}");
    }
    // A failed password check must not advance the count (no lock-out by an attacker).
    client.nc = Some(100);
    client.password = "guess";
    assert_eq!(
        verify_at(&mut authority, &users, &client.header(), t0),
        Err(AuthFailure::Rejected)
    );
    client.password = "zanzibar";
    client.nc = Some(7);
    assert_eq!(
        verify_at(&mut authority, &users, &client.header(), t0),
        Ok("bob".into())
    );
}

#[test]
fn nonces_expire_into_stale_only_for_the_right_password() {
    let users = Users::new();
    let mut authority = authority();
    let t0 = Instant::now();
    let mut client = Client::answer(
        &authority.challenge(t0, false),
        Algorithm::Md5,
        "bob",
        "zanzibar",
    );
    let just_before = t0 + LIFETIME - Duration::from_millis(1);
    assert_eq!(
        verify_at(&mut authority, &users, &client.header(), just_before),
        Ok("bob".into())
    );
    client.nc = Some(2);
    assert_eq!(
        verify_at(&mut authority, &users, &client.header(), t0 + LIFETIME),
        Err(AuthFailure::Stale)
    );
    client.password = "wrong";
    assert_eq!(
        verify_at(&mut authority, &users, &client.header(), t0 + LIFETIME),
        Err(AuthFailure::Rejected)
    );
}

#[test]
fn foreign_tampered_or_future_nonces_are_stale() {
    let users = Users::new();
    let t0 = Instant::now();
    let mut authority = authority();
    let good = Client::answer(
        &authority.challenge(t0, false),
        Algorithm::Sha256,
        "bob",
        "zanzibar",
    );

    // A nonce from another process (other secret), e.g. before a restart.
    let mut other = DigestAuthority::new(REALM, [8; 32], LIFETIME);
    let foreign = Client::answer(
        &other.challenge(t0, false),
        Algorithm::Sha256,
        "bob",
        "zanzibar",
    );
    assert_eq!(
        verify_at(&mut authority, &users, &foreign.header(), t0),
        Err(AuthFailure::Stale)
    );

    // One nonce digit changed: the MAC no longer matches.
    let mut tampered = good.clone();
    let last = tampered.nonce.pop().unwrap();
    tampered.nonce.push(if last == '0' { '1' } else { '0' });
    assert_eq!(
        verify_at(&mut authority, &users, &tampered.header(), t0),
        Err(AuthFailure::Stale)
    );

    // Not our format at all (the RFC example nonce).
    let mut alien = good.clone();
    alien.nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093".into();
    assert_eq!(
        verify_at(&mut authority, &users, &alien.header(), t0),
        Err(AuthFailure::Stale)
    );

    // Opaque from elsewhere.
    let mut opaque = good.clone();
    opaque.opaque = Some("00".into());
    assert_eq!(
        verify_at(&mut authority, &users, &opaque.header(), t0),
        Err(AuthFailure::Stale)
    );

    // Opaque left out is tolerated (older phones drop it).
    let mut no_opaque = good.clone();
    no_opaque.opaque = None;
    assert_eq!(
        verify_at(&mut authority, &users, &no_opaque.header(), t0),
        Ok("bob".into())
    );

    // A nonce minted later than `now` by the same secret cannot be ours from this run.
    let mut later = DigestAuthority::new(REALM, [7; 32], LIFETIME);
    later.challenge(t0, false);
    let future = Client::answer(
        &later.challenge(t0 + Duration::from_secs(10), false),
        Algorithm::Sha256,
        "bob",
        "zanzibar",
    );
    assert_eq!(
        verify_at(&mut authority, &users, &future.header(), t0),
        Err(AuthFailure::Stale)
    );
}

#[test]
fn rfc2069_response_without_qop() {
    let users = Users::new();
    let t0 = Instant::now();
    let mut authority = authority();
    let mut client = Client::answer(
        &authority.challenge(t0, false),
        Algorithm::Md5,
        "bob",
        "zanzibar",
    );
    client.nc = None;
    // DEVIATION noted in `verify`: no nonce count, so the same response passes until expiry.
    assert_eq!(
        verify_at(&mut authority, &users, &client.header(), t0),
        Ok("bob".into())
    );
    assert_eq!(
        verify_at(&mut authority, &users, &client.header(), t0),
        Ok("bob".into())
    );
    assert_eq!(authority.tracked_nonces(), 0);
}

#[test]
fn header_level_failures() {
    let users = Users::new();
    let t0 = Instant::now();
    let mut authority = authority();
    let client = Client::answer(
        &authority.challenge(t0, false),
        Algorithm::Md5,
        "bob",
        "zanzibar",
    );
    let good = client.header();
    let mut other_realm = client.clone();
    other_realm.realm = "atlanta.com";
    let cases: Vec<(String, AuthFailure)> = vec![
        (String::new(), AuthFailure::Missing),
        ("Basic Ym9iOnphbnppYmFy".into(), AuthFailure::Missing),
        (other_realm.header(), AuthFailure::Missing),
        ("Digest".into(), AuthFailure::Malformed),
        (
            good.replace("uri=\"sip:biloxi.com\", ", ""),
            AuthFailure::Malformed,
        ),
        (
            good.replace("uri=\"sip:biloxi.com\"", "uri=\"\""),
            AuthFailure::Malformed,
        ),
        (
            good.replace("username=\"bob\", ", ""),
            AuthFailure::Malformed,
        ),
        (
            good.replace("qop=auth", "qop=auth-int"),
            AuthFailure::Malformed,
        ),
        (
            good.replace("algorithm=MD5", "algorithm=SHA-512-256"),
            AuthFailure::Malformed,
        ),
        (good.replace("nc=00000001", "nc=1"), AuthFailure::Malformed),
        (
            good.replace("nc=00000001", "nc=0000000g"),
            AuthFailure::Malformed,
        ),
        (
            good.replace(", cnonce=\"0a4f113b\"", ""),
            AuthFailure::Malformed,
        ),
        (format!("{good}, userhash=true"), AuthFailure::Malformed),
        (format!("{good}, nonce=\"x\""), AuthFailure::Malformed),
        (
            good.replace("response=\"", "response=\"0"),
            AuthFailure::Rejected,
        ),
    ];
    for (header, expect) in cases {
        assert_eq!(
            verify_at(&mut authority, &users, &header, t0),
            Err(expect),
            "{header}"
        );
    }
    // Case-insensitive names, upper-case hex response, unknown params, folding: still fine.
    let messy = good
        .replace("username=", "USERNAME = ")
        .replace(", uri=", ",\r\n\turi=")
        .replace("algorithm=MD5", "algorithm=md5, x-foo=\"b\\\"ar\"");
    let response = parse_digest(&good).unwrap().response.unwrap().into_owned();
    let messy = messy.replace(&response, &response.to_uppercase());
    assert_eq!(
        verify_at(&mut authority, &users, &messy, t0),
        Ok("bob".into())
    );
}

#[test]
fn absent_algorithm_means_md5() {
    let users = Users::new();
    let t0 = Instant::now();
    let mut authority = authority();
    let client = Client::answer(
        &authority.challenge(t0, false),
        Algorithm::Md5,
        "bob",
        "zanzibar",
    );
    let header = client.header().replace(", algorithm=MD5", "");
    assert_eq!(
        verify_at(&mut authority, &users, &header, t0),
        Ok("bob".into())
    );
}

#[test]
fn evicted_nonces_cannot_be_replayed() {
    let users = Users::new();
    let t0 = Instant::now();
    let mut authority = authority().with_nonce_capacity(2);
    let mut clients: Vec<Client<'_>> = (0..3)
        .map(|_| {
            Client::answer(
                &authority.challenge(t0, false),
                Algorithm::Md5,
                "bob",
                "zanzibar",
            )
        })
        .collect();
    for client in &clients {
        assert_eq!(
            verify_at(&mut authority, &users, &client.header(), t0),
            Ok("bob".into())
        );
    }
    assert_eq!(authority.tracked_nonces(), 2);
    // The first nonce was evicted: even its next count is refused, as stale, never replayable.
    for nc in [1, 2] {
        clients[0].nc = Some(nc);
        assert_eq!(
            verify_at(&mut authority, &users, &clients[0].header(), t0),
            Err(AuthFailure::Stale)
        );
    }
    clients[2].nc = Some(2);
    assert_eq!(
        verify_at(&mut authority, &users, &clients[2].header(), t0),
        Ok("bob".into())
    );
}

/// The shared corpus directory: `CENTRALINO_SHARED`, else `/work/shared` next to the repo.
fn shared_dir() -> PathBuf {
    match std::env::var_os("CENTRALINO_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// The value of the first `name` header in a SIP message, unfolding continuation lines.
fn header_value(message: &str, name: &str) -> Option<String> {
    let mut lines = message.lines();
    while let Some(line) = lines.next() {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        if !n.trim().eq_ignore_ascii_case(name) {
            continue;
        }
        let mut value = v.trim().to_owned();
        for more in lines.by_ref() {
            if more.starts_with([' ', '\t']) {
                value.push(' ');
                value.push_str(more.trim());
            } else {
                break;
            }
        }
        return Some(value);
    }
    None
}

#[test]
fn polycom_vvx350_capture() {
    let path = shared_dir().join("sip-realmsgs/polycom-vvx350_register-authorized.sip");
    let message = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("read {}: {e} (set CENTRALINO_SHARED)", path.display()));
    let message = String::from_utf8_lossy(&message);
    let value = header_value(&message, "Authorization").expect("Authorization header");
    let params = parse_digest(&value).expect("Polycom credentials parse");
    let (user, realm, nonce, uri) = (
        params.username.as_deref().unwrap(),
        params.realm.as_deref().unwrap(),
        params.nonce.as_deref().unwrap(),
        params.uri.as_deref().unwrap(),
    );
    let qop = QopAuth {
        nc: params.nc.as_deref().unwrap(),
        cnonce: params.cnonce.as_deref().unwrap(),
    };
    let expected = "ab709ea589a580790e2e1cea141f7107";
    assert_eq!(params.response.as_deref(), Some(expected));
    let ha1 = ha1_md5(user, realm, "sometestsecret");
    assert_eq!(
        compute_response(Algorithm::Md5, &ha1, nonce, "REGISTER", uri, Some(qop)),
        expected
    );

    // Through `verify`: the digest is right but the nonce is not ours, so stale;
    // a wrong password is rejected.
    let t0 = Instant::now();
    let mut authority = DigestAuthority::new(realm, [3; 32], LIFETIME);
    let right = Credentials::password("sometestsecret");
    let wrong = Credentials::password("sometestsecreT");
    assert_eq!(
        authority.verify(&value, "REGISTER", |_| Some(&right), t0),
        Err(AuthFailure::Stale)
    );
    assert_eq!(
        authority.verify(&value, "REGISTER", |_| Some(&wrong), t0),
        Err(AuthFailure::Rejected)
    );
}

/// Every Authorization value in the shared captures parses, carries the required parameters,
/// and verifies to `Rejected` with a wrong password (and `Stale` with the known one).
#[test]
fn captured_authorization_values() {
    let files = [
        "polycom-vvx350_register-authorized.sip",
        "polycom-vvx350_register-with-stale-auth.sip",
        "yealink-t27g_register-authorized.sip",
        // No qop: the RFC 2069 form.
        "cisco-tandberg-ex60_register_multipart-remotecc.sip",
    ];
    let t0 = Instant::now();
    let guess = Credentials::password("not-the-password");
    let polycom = Credentials::password("sometestsecret");
    for file in files {
        let path = shared_dir().join("sip-realmsgs").join(file);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("read {}: {e} (set CENTRALINO_SHARED)", path.display()));
        let message = String::from_utf8_lossy(&bytes);
        let value = header_value(&message, "Authorization").expect("Authorization header");
        let params = parse_digest(&value).expect("captured credentials parse");
        for (name, param) in [
            ("username", &params.username),
            ("realm", &params.realm),
            ("nonce", &params.nonce),
            ("uri", &params.uri),
            ("response", &params.response),
        ] {
            assert!(param.is_some(), "{file}: no {name}");
        }
        let realm = params.realm.as_deref().unwrap();
        let mut authority = DigestAuthority::new(realm, [5; 32], LIFETIME);
        if file == "polycom-vvx350_register-authorized.sip" {
            assert_eq!(
                authority.verify(&value, "REGISTER", |_| Some(&polycom), t0),
                Err(AuthFailure::Stale),
                "{file}"
            );
        }
        assert_eq!(
            authority.verify(&value, "REGISTER", |_| Some(&guess), t0),
            Err(AuthFailure::Rejected),
            "{file}"
        );
    }
}

/// Strings that look like digest credentials, to get past the scheme check.
fn digestish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("Digest ".to_owned()),
        Just("username=".to_owned()),
        Just("realm=\"biloxi.com\"".to_owned()),
        Just("nonce=".to_owned()),
        Just("uri=\"sip:x\"".to_owned()),
        Just("response=".to_owned()),
        Just("qop=auth".to_owned()),
        Just("nc=00000001".to_owned()),
        Just("cnonce=".to_owned()),
        Just("algorithm=SHA-256".to_owned()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just(",".to_owned()),
        Just("\r\n ".to_owned()),
        Just("=".to_owned()),
        "[a-f0-9]{0,64}",
        "\\PC{0,8}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn verify_never_panics(header in prop_oneof!["\\PC*", ".*", digestish()], method in "[A-Z]{0,8}") {
        let users = Users::new();
        let t0 = Instant::now();
        let mut authority = authority();
        let _ = authority.challenge(t0, false);
        let _ = authority.verify(&header, &method, |u| users.lookup(u), t0);
        let _ = authority.verify(&header, &method, |_| Some(&users.alice), t0 + LIFETIME * 2);
    }

    /// The replay table never grows past its capacity, and a recorded count is never fresh again.
    #[test]
    fn nonce_counts_stay_bounded(
        capacity in 1usize..16,
        ops in prop::collection::vec((0u64..64, 0u32..8, 1u32..6, 0u64..64), 0..300),
    ) {
        let mut counts = NonceCounts::new(capacity);
        let mut accepted = std::collections::HashSet::new();
        for (issued, seq, nc, expired_before) in ops {
            let id = (issued, seq);
            let verdict = counts.record(id, nc, expired_before);
            prop_assert!(counts.len() <= capacity);
            if verdict == CountVerdict::Fresh {
                prop_assert!(accepted.insert((id, nc)), "replay of {:?} nc={} accepted", id, nc);
            }
        }
    }
}
