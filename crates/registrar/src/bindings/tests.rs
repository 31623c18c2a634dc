use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;

const UNIX0: u64 = 1_800_000_000;

/// A registrar plus a virtual clock that tests move by hand.
struct Rig {
    registrar: Registrar,
    t0: Instant,
    now: Instant,
}

impl Rig {
    fn new() -> Rig {
        let t0 = Instant::now();
        Rig {
            registrar: Registrar::new(RegistrarConfig::default()),
            t0,
            now: t0,
        }
    }

    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
    }

    fn now_unix(&self) -> u64 {
        UNIX0 + (self.now - self.t0).as_secs()
    }

    fn register(
        &mut self,
        aor: &str,
        request: RegisterRequest,
    ) -> Result<RegisterOutcome, RegisterError> {
        let proof = Authenticated::for_tests(aor);
        let now_unix = self.now_unix();
        self.registrar
            .apply_register(aor, &proof, request, self.now, now_unix)
    }

    /// The live bindings of `aor` as `uri expires_in` lines.
    fn bindings(&self, aor: &str) -> Vec<String> {
        self.registrar
            .lookup(aor, self.now)
            .map(|b| format!("{} {}", b.record.contact_uri, b.expires_in(self.now)))
            .collect()
    }
}

fn source() -> SocketAddr {
    "192.0.2.7:5060".parse().unwrap()
}

fn request(call_id: &str, cseq: u32, contacts: &[&str], expires: Option<u32>) -> RegisterRequest {
    RegisterRequest {
        call_id: call_id.into(),
        cseq,
        contacts: contacts.iter().map(|u| ContactSpec::new(*u)).collect(),
        star: false,
        expires_header: expires,
        source: source(),
        transport: "UDP".into(),
    }
}

/// Renders an outcome as text: the 200 OK contacts, then the changes.
fn render(outcome: &Result<RegisterOutcome, RegisterError>) -> String {
    match outcome {
        Err(e) => format!("error {} ({e})", e.status_code()),
        Ok(o) => {
            let mut lines: Vec<String> = o
                .contacts
                .iter()
                .map(CurrentContact::header_value)
                .collect();
            for change in &o.changes {
                lines.push(match change {
                    Change::Upsert(r) => {
                        format!("+ {} {}", r.contact_uri, r.expires_at_unix - UNIX0)
                    }
                    Change::Remove(r) => format!("- {}", r.contact_uri),
                });
            }
            lines.join("\n")
        }
    }
}

fn check(rig: &mut Rig, aor: &str, request: RegisterRequest, expect: &str) {
    let got = render(&rig.register(aor, request));
    assert_eq!(got, expect.trim());
}

const A: &str = "sip:1013@192.0.2.7:5060";
const B: &str = "sip:1013@198.51.100.9:5062;transport=tcp";

#[test]
fn add_refresh_and_remove() {
    let mut rig = Rig::new();
    check(
        &mut rig,
        "1013",
        request("c1", 1, &[A], Some(3600)),
        "
<sip:1013@192.0.2.7:5060>;expires=3600
+ sip:1013@192.0.2.7:5060 3600",
    );
    assert_eq!(rig.registrar.registered_count(), 1);

    // Refresh later in the same dialog: new expiry, same single binding.
    rig.advance(1000);
    check(
        &mut rig,
        "1013",
        request("c1", 2, &[A], Some(600)),
        "
<sip:1013@192.0.2.7:5060>;expires=600
+ sip:1013@192.0.2.7:5060 1600",
    );

    // A second contact; the per-contact expires beats the header.
    let mut two = request("c2", 1, &[B], Some(600));
    two.contacts[0].expires_param = Some(120);
    check(
        &mut rig,
        "1013",
        two,
        "
<sip:1013@192.0.2.7:5060>;expires=600
<sip:1013@198.51.100.9:5062;transport=tcp>;expires=120
+ sip:1013@198.51.100.9:5062;transport=tcp 1120",
    );

    // A query (no Contact) lists the bindings and changes nothing.
    rig.advance(20);
    check(
        &mut rig,
        "1013",
        request("c3", 1, &[], None),
        "
<sip:1013@192.0.2.7:5060>;expires=580
<sip:1013@198.51.100.9:5062;transport=tcp>;expires=100",
    );

    // Expires: 0 removes one binding; the URI matches despite case and bracket differences.
    check(
        &mut rig,
        "1013",
        request(
            "c1",
            3,
            &["<SIP:1013@192.0.2.7:5060;TRANSPORT=udp>"],
            Some(0),
        ),
        "
<sip:1013@198.51.100.9:5062;transport=tcp>;expires=100
- sip:1013@192.0.2.7:5060",
    );

    // Removing an unknown contact is a no-op.
    check(
        &mut rig,
        "1013",
        request("c1", 4, &[A], Some(0)),
        "
<sip:1013@198.51.100.9:5062;transport=tcp>;expires=100",
    );

    check(
        &mut rig,
        "1013",
        request("c2", 2, &[B], Some(0)),
        "- sip:1013@198.51.100.9:5062;transport=tcp",
    );
    assert_eq!(rig.registrar.registered_count(), 0);
    assert_eq!(rig.registrar.next_expiry(), None);
}

#[test]
fn expiry_limits() {
    let mut rig = Rig::new();
    // RFC 3261 §10.3 step 6: 0 < expires < min → 423 with the minimum.
    check(
        &mut rig,
        "1013",
        request("c1", 1, &[A], Some(30)),
        "error 423 (interval too brief, minimum is 60s)",
    );
    let mut param = request("c1", 1, &[A], Some(3600));
    param.contacts[0].expires_param = Some(59);
    assert_eq!(
        rig.register("1013", param),
        Err(RegisterError::IntervalTooBrief { min_expires: 60 })
    );
    // Exactly the minimum is fine; above the maximum is clamped; no expiry means the default.
    check(
        &mut rig,
        "1013",
        request("c1", 2, &[A], Some(60)),
        "
<sip:1013@192.0.2.7:5060>;expires=60
+ sip:1013@192.0.2.7:5060 60",
    );
    check(
        &mut rig,
        "1013",
        request("c1", 3, &[A], Some(86400)),
        "
<sip:1013@192.0.2.7:5060>;expires=3600
+ sip:1013@192.0.2.7:5060 3600",
    );
    check(
        &mut rig,
        "1013",
        request("c1", 4, &[A], None),
        "
<sip:1013@192.0.2.7:5060>;expires=3600
+ sip:1013@192.0.2.7:5060 3600",
    );
}

#[test]
fn call_id_and_cseq_ordering() {
    let mut rig = Rig::new();
    rig.register("1013", request("c1", 5, &[A], Some(600)))
        .unwrap();
    // RFC 3261 §10.3 step 7: same Call-ID, CSeq not higher → 500, nothing changes.
    for cseq in [4, 5] {
        check(
            &mut rig,
            "1013",
            request("c1", cseq, &[A, B], Some(600)),
            "error 500 (out-of-order REGISTER for an existing binding)",
        );
    }
    assert_eq!(rig.bindings("1013"), ["sip:1013@192.0.2.7:5060 600"]);
    // A new Call-ID (the phone rebooted) may use any CSeq.
    rig.advance(10);
    check(
        &mut rig,
        "1013",
        request("c9", 1, &[A], Some(600)),
        "
<sip:1013@192.0.2.7:5060>;expires=600
+ sip:1013@192.0.2.7:5060 610",
    );
}

#[test]
fn wildcard_removes_all() {
    let mut rig = Rig::new();
    rig.register("1013", request("c1", 1, &[A, B], Some(600)))
        .unwrap();
    let mut star = request("c1", 2, &[], Some(0));
    star.star = true;

    let mut with_contact = star.clone();
    with_contact.contacts.push(ContactSpec::new(A));
    check(
        &mut rig,
        "1013",
        with_contact,
        "error 400 (Contact: * needs Expires: 0 and no other Contact)",
    );
    let mut without_expires = star.clone();
    without_expires.expires_header = None;
    assert_eq!(
        rig.register("1013", without_expires),
        Err(RegisterError::InvalidWildcard)
    );
    let mut nonzero = star.clone();
    nonzero.expires_header = Some(3600);
    assert_eq!(
        rig.register("1013", nonzero),
        Err(RegisterError::InvalidWildcard)
    );
    let mut stale = star.clone();
    stale.cseq = 1;
    assert_eq!(rig.register("1013", stale), Err(RegisterError::OutOfOrder));
    assert_eq!(rig.registrar.binding_count(), 2);

    check(
        &mut rig,
        "1013",
        star,
        "
- sip:1013@192.0.2.7:5060
- sip:1013@198.51.100.9:5062;transport=tcp",
    );
    assert_eq!(rig.registrar.binding_count(), 0);
}

#[test]
fn only_the_authenticated_user_may_register_its_aor() {
    let mut rig = Rig::new();
    let proof = Authenticated::for_tests("1014");
    let got =
        rig.registrar
            .apply_register("1013", &proof, request("c1", 1, &[A], None), rig.now, UNIX0);
    assert_eq!(got, Err(RegisterError::Forbidden));
    assert_eq!(got.unwrap_err().status_code(), 403);
    assert_eq!(rig.registrar.binding_count(), 0);
}

#[test]
fn contact_limit_is_all_or_nothing() {
    let mut rig = Rig::new();
    let uris: Vec<String> = (0..10).map(|n| format!("sip:1013@192.0.2.{n}")).collect();
    let refs: Vec<&str> = uris.iter().map(String::as_str).collect();
    rig.register("1013", request("c1", 1, &refs, Some(600)))
        .unwrap();
    assert_eq!(rig.registrar.binding_count(), 10);
    check(
        &mut rig,
        "1013",
        request("c2", 1, &["sip:1013@192.0.2.99", A], Some(600)),
        "error 403 (more than 10 bindings for one address of record)",
    );
    assert_eq!(rig.registrar.binding_count(), 10);
    // Removing one and adding one in the same request stays within the limit.
    let mut swap = request("c1", 2, &[&uris[0], A], Some(600));
    swap.contacts[0].expires_param = Some(0);
    assert!(rig.register("1013", swap).is_ok());
    assert_eq!(rig.registrar.binding_count(), 10);
    // Expired bindings do not count against the limit.
    rig.advance(600);
    assert!(
        rig.register(
            "1013",
            request("c3", 1, &["sip:1013@192.0.2.99"], Some(600))
        )
        .is_ok()
    );
    assert_eq!(rig.registrar.binding_count(), 1);
}

#[test]
fn expire_lookup_and_next_expiry() {
    let mut rig = Rig::new();
    rig.register("1013", request("c1", 1, &[A], Some(60)))
        .unwrap();
    rig.register("1013", request("c2", 1, &[B], Some(120)))
        .unwrap();
    rig.register("1014", request("c3", 1, &["sip:1014@192.0.2.8"], Some(90)))
        .unwrap();
    assert_eq!(rig.registrar.registered_count(), 2);
    assert_eq!(
        rig.registrar.next_expiry(),
        Some(rig.t0 + Duration::from_secs(60))
    );

    // Nothing is due yet.
    rig.advance(59);
    assert!(rig.registrar.expire(rig.now).is_empty());
    // At the deadline: lookup hides the binding even before `expire` runs.
    rig.advance(1);
    assert_eq!(rig.bindings("1013"), [format!("{B} 60")]);
    let removed = rig.registrar.expire(rig.now);
    assert_eq!(removed.len(), 1);
    assert!(matches!(&removed[0], Change::Remove(r) if r.contact_uri == A && r.aor == "1013"));
    assert_eq!(
        rig.registrar.next_expiry(),
        Some(rig.t0 + Duration::from_secs(90))
    );

    rig.advance(1000);
    assert_eq!(rig.registrar.expire(rig.now).len(), 2);
    assert_eq!(rig.registrar.registered_count(), 0);
    assert_eq!(rig.registrar.lookup("1013", rig.now).count(), 0);
}

#[test]
fn lookup_orders_by_q() {
    let mut rig = Rig::new();
    let mut req = request("c1", 1, &["sip:a@x", "sip:b@x", "sip:c@x"], Some(600));
    req.contacts[0].q = QValue::parse("0.1");
    req.contacts[2].q = QValue::parse("0.9");
    let outcome = rig.register("1013", req).unwrap();
    assert_eq!(
        outcome
            .contacts
            .iter()
            .map(CurrentContact::header_value)
            .collect::<Vec<_>>(),
        [
            "<sip:b@x>;expires=600",
            "<sip:c@x>;expires=600;q=0.9",
            "<sip:a@x>;expires=600;q=0.1"
        ]
    );
    assert_eq!(
        rig.bindings("1013"),
        ["sip:b@x 600", "sip:c@x 600", "sip:a@x 600"]
    );
}

#[test]
fn same_instance_replaces_old_contact() {
    let mut rig = Rig::new();
    let instance = Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>".to_owned());
    let mut first = request("c1", 1, &[A], Some(600));
    first.contacts[0].instance = instance.clone();
    rig.register("1013", first).unwrap();
    // The phone comes back from a new NAT port with a new Call-ID.
    let mut second = request("c2", 1, &["sip:1013@192.0.2.7:41000"], Some(600));
    second.contacts[0].instance = instance;
    check(
        &mut rig,
        "1013",
        second,
        "
<sip:1013@192.0.2.7:41000>;expires=600
- sip:1013@192.0.2.7:5060
+ sip:1013@192.0.2.7:41000 600",
    );
    assert_eq!(rig.registrar.binding_count(), 1);
}

#[test]
fn restore_from_persisted_records() {
    let mut rig = Rig::new();
    rig.register("1013", request("c1", 1, &[A], Some(600)))
        .unwrap();
    let record = rig
        .registrar
        .lookup("1013", rig.now)
        .next()
        .unwrap()
        .record
        .clone();

    // Restart 100 s later: a fresh registrar with a new monotonic clock.
    let mut restarted = Rig::new();
    restarted.registrar = Registrar::new(RegistrarConfig {
        max_expires: 550,
        ..RegistrarConfig::default()
    });
    let now_unix = UNIX0 + 100;
    let expired = BindingRecord {
        aor: "1014".into(),
        expires_at_unix: UNIX0 + 100,
        ..record.clone()
    };
    let far = BindingRecord {
        aor: "1015".into(),
        expires_at_unix: UNIX0 + 100_000,
        ..record.clone()
    };
    let removals = restarted.registrar.restore(
        [record.clone(), expired.clone(), far],
        restarted.now,
        now_unix,
    );
    assert_eq!(removals, [Change::Remove(expired)]);
    assert_eq!(restarted.bindings("1013"), [format!("{A} 500")]);
    // Clamped to the (lowered) maximum.
    assert_eq!(restarted.bindings("1015"), [format!("{A} 550")]);
    // The restored binding keeps its Call-ID/CSeq ordering.
    assert_eq!(
        restarted.register("1013", request("c1", 1, &[A], Some(600))),
        Err(RegisterError::OutOfOrder)
    );
}

#[test]
fn qvalues() {
    let cases = [
        ("1", Some("1")),
        ("1.0", Some("1")),
        ("1.000", Some("1")),
        ("0", Some("0")),
        ("0.", Some("0")),
        ("0.5", Some("0.5")),
        ("0.125", Some("0.125")),
        ("0.050", Some("0.05")),
        ("1.001", None),
        ("0.1234", None),
        ("2", None),
        ("", None),
        ("-0.5", None),
        ("0.x", None),
    ];
    for (input, expect) in cases {
        assert_eq!(
            QValue::parse(input).map(|q| q.to_string()).as_deref(),
            expect,
            "{input}"
        );
    }
    assert_eq!(QValue::from_thousandths(1001), None);
}

#[test]
fn contact_uri_equality() {
    let cases = [
        ("sip:1013@192.0.2.7:5060", "<sip:1013@192.0.2.7:5060>", true),
        ("sip:1013@Host.example", "SIP:1013@host.EXAMPLE", true),
        ("sip:1013@h;transport=UDP", "sip:1013@h;transport=udp", true),
        // Parameters only in one URI are ignored, except user, ttl, method, maddr.
        ("sip:1013@h;transport=udp", "sip:1013@h", true),
        (
            "sip:1013@h;ob;transport=tcp",
            "sip:1013@h;transport=tcp",
            true,
        ),
        ("sip:1013@h;maddr=239.1.1.1", "sip:1013@h", false),
        ("sip:1013@h", "sip:1013@h;user=phone", false),
        (
            "sip:1013@h;transport=tcp",
            "sip:1013@h;transport=udp",
            false,
        ),
        // User info is case-sensitive, and no default port is assumed.
        ("sip:Bob@h", "sip:bob@h", false),
        ("sip:1013@h", "sip:1013@h:5060", false),
        ("sip:1013@h", "sips:1013@h", false),
    ];
    for (a, b, expect) in cases {
        assert_eq!(uri_equal(a, b), expect, "{a} vs {b}");
        assert_eq!(uri_equal(b, a), expect, "{b} vs {a}");
    }
}

#[test]
fn expired_binding_no_longer_orders_requests() {
    let mut rig = Rig::new();
    rig.register("1013", request("c1", 5, &[A], Some(60)))
        .unwrap();
    rig.advance(60);
    // The binding expired (not yet swept): the same Call-ID may start over.
    check(
        &mut rig,
        "1013",
        request("c1", 1, &[A], Some(60)),
        "
<sip:1013@192.0.2.7:5060>;expires=60
- sip:1013@192.0.2.7:5060
+ sip:1013@192.0.2.7:5060 120",
    );
}

#[test]
fn remove_aor_returns_removals() {
    let mut rig = Rig::new();
    rig.register("1013", request("c1", 1, &[A, B], Some(600)))
        .unwrap();
    assert_eq!(rig.registrar.remove_aor("1013").len(), 2);
    assert!(rig.registrar.remove_aor("1013").is_empty());
    assert_eq!(rig.registrar.all_bindings().count(), 0);
}

mod properties {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// One step of a random run.
    #[derive(Debug, Clone)]
    enum Step {
        Register {
            aor: usize,
            call_id: usize,
            cseq: u32,
            contacts: Vec<(usize, Option<u32>, Option<usize>)>,
            star: bool,
            expires: Option<u32>,
        },
        Advance(u64),
        Expire,
    }

    const AORS: [&str; 2] = ["1013", "1014"];
    /// Includes spellings that are equal under RFC 3261 §19.1.4.
    const URIS: [&str; 5] = [
        "sip:1013@192.0.2.7:5060",
        "<SIP:1013@192.0.2.7:5060;transport=UDP>",
        "sip:1013@192.0.2.7:5062",
        "sip:1013@192.0.2.8",
        "sip:1013@192.0.2.8;maddr=192.0.2.1",
    ];

    fn step() -> impl Strategy<Value = Step> {
        let expires = prop_oneof![
            Just(None),
            Just(Some(0)),
            Just(Some(30)),
            Just(Some(120)),
            Just(Some(5000))
        ];
        prop_oneof![
            4 => (
                0..AORS.len(),
                0usize..2,
                0u32..6,
                prop::collection::vec(
                    (0..URIS.len(), expires.clone(), prop::option::of(0usize..2)),
                    0..4
                ),
                prop::bool::weighted(0.1),
                expires,
            )
                .prop_map(|(aor, call_id, cseq, contacts, star, expires)| Step::Register {
                    aor,
                    call_id,
                    cseq,
                    contacts,
                    star,
                    expires,
                }),
            1 => (1u64..200).prop_map(Step::Advance),
            1 => Just(Step::Expire),
        ]
    }

    proptest! {
        /// Replaying the returned changes into a store keyed by (aor, contact_uri) always
        /// reproduces the table, and no address of record exceeds its binding limit.
        #[test]
        fn changes_mirror_the_table(steps in prop::collection::vec(step(), 0..60)) {
            let mut rig = Rig::new();
            rig.registrar = Registrar::new(RegistrarConfig { max_bindings_per_aor: 3, ..RegistrarConfig::default() });
            let mut store: BTreeMap<(String, String), BindingRecord> = BTreeMap::new();
            for step in steps {
                let changes = match step {
                    Step::Register { aor, call_id, cseq, contacts, star, expires } => {
                        let request = RegisterRequest {
                            call_id: format!("call-{call_id}"),
                            cseq,
                            contacts: contacts
                                .iter()
                                .map(|&(uri, expires_param, instance)| ContactSpec {
                                    uri: URIS[uri].to_owned(),
                                    expires_param,
                                    q: None,
                                    instance: instance.map(|i| format!("<urn:uuid:{i}>")),
                                })
                                .collect(),
                            star,
                            expires_header: expires,
                            source: source(),
                            transport: "UDP".into(),
                        };
                        rig.register(AORS[aor], request).map(|o| o.changes).unwrap_or_default()
                    }
                    Step::Advance(secs) => {
                        rig.advance(secs);
                        Vec::new()
                    }
                    Step::Expire => rig.registrar.expire(rig.now),
                };
                for change in changes {
                    match change {
                        Change::Upsert(r) => {
                            store.insert((r.aor.clone(), r.contact_uri.clone()), r);
                        }
                        Change::Remove(r) => {
                            store.remove(&(r.aor.clone(), r.contact_uri.clone()));
                        }
                    }
                }
                let table: BTreeMap<(String, String), BindingRecord> = rig
                    .registrar
                    .all_bindings()
                    .map(|b| ((b.record.aor.clone(), b.record.contact_uri.clone()), b.record.clone()))
                    .collect();
                prop_assert_eq!(&table, &store);
                for aor in AORS {
                    prop_assert!(rig.registrar.lookup(aor, rig.now).count() <= 3);
                }
            }
        }
    }
}

/// Found by `changes_mirror_the_table`: a contact that matches one binding by instance and
/// another by URI used to leave two bindings with the same contact URI.
#[test]
fn contact_matching_two_bindings_replaces_both() {
    let mut rig = Rig::new();
    let instance = Some("<urn:uuid:1>".to_owned());
    let mut first = request("c1", 1, &[A], Some(600));
    first.contacts[0].instance = instance.clone();
    rig.register("1013", first).unwrap();
    let mut second = request("c1", 2, &[B, B], Some(600));
    second.contacts[1].instance = instance;
    check(
        &mut rig,
        "1013",
        second,
        "
<sip:1013@198.51.100.9:5062;transport=tcp>;expires=600
+ sip:1013@198.51.100.9:5062;transport=tcp 600
- sip:1013@192.0.2.7:5060
+ sip:1013@198.51.100.9:5062;transport=tcp 600",
    );
    assert_eq!(rig.registrar.binding_count(), 1);
}
