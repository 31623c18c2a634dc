//! Property tests: the parser never panics and never accepts what it cannot print back, printed
//! messages round-trip, and the stream framer is independent of how bytes are chunked and keeps
//! its memory bounded. Case counts are bounded so the whole file runs in seconds in debug.

mod common;

use common::round_trip_problems;
use proptest::prelude::*;
use sip_msg::{
    Frame, Framing, HeaderName, Message, Method, Request, SipUri, StreamFramer, Uri, parse,
};

/// Valid messages to mutate: typical traffic plus a few awkward but legal shapes.
const SEEDS: &[&[u8]] = &[
    b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\nMax-Forwards: 70\r\nTo: Bob <sip:bob@example.com>\r\nFrom: \"Alice\" <sip:alice@example.net>;tag=1928301774\r\nCall-ID: a84b4c76e66710@example.net\r\nCSeq: 314159 INVITE\r\nContact: <sip:alice@192.0.2.1:5060>\r\nContent-Type: application/sdp\r\nContent-Length: 31\r\n\r\nv=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n",
    b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3;received=[2001:db8::9:255]\r\nf: <sip:a@b>;tag=1\r\nt: <sip:c@d>;tag=2\r\ni: x@y\r\nCSeq: 2 REGISTER\r\nm: <sip:201@198.51.100.7:5060>;expires=1800\r\nl: 0\r\n\r\n",
    b"REGISTER sip:example.com SIP/2.0\r\nVia  : SIP  /  2.0\r\n /UDP host.example.com;branch=z9hG4bKx\r\nTo: sip:u@example.com\r\nFrom: sip:u@example.com;tag=9\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\nAuthorization: Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"sip:example.com\", response=\"0123456789abcdef0123456789abcdef\"\r\nContact: \"A, B\" <sip:u@192.0.2.9;transport=tcp>;expires=60, <tel:+1-555-0100>\r\nContent-Length: 0\r\n\r\n",
    b"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\nTo: sip:j_user@example.com\nFrom: sip:caller@example.org;tag=33242\nCall-ID: lf.only\nCSeq: 8 OPTIONS\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\n\n",
];

/// Runs everything the switch would run on received bytes; panics only on a broken invariant:
/// a message that parses and validates must print and re-parse to the same message.
fn exercise(bytes: &[u8]) {
    for framing in [Framing::Datagram, Framing::Stream] {
        let msg = match parse(bytes, framing) {
            Ok(m) => m,
            Err(e) => {
                if let Some(Message::Request(r)) = e.partial.as_deref() {
                    let _ = r.make_response(400, "Bad Request", Some("t"));
                }
                continue;
            }
        };
        let valid = match &msg {
            Message::Request(r) => {
                let _ = (
                    r.uri(),
                    r.top_via(),
                    r.cseq(),
                    r.from(),
                    r.to(),
                    r.call_id(),
                );
                let _ = r.make_response(200, "OK", Some("x")).to_bytes();
                r.validate().is_ok()
            }
            Message::Response(r) => {
                let _ = (r.top_via(), r.cseq(), r.from(), r.to(), r.call_id());
                r.validate().is_ok()
            }
        };
        let _ = msg.headers().values(&HeaderName::Contact);
        if valid {
            let problems = round_trip_problems(&msg);
            assert!(
                problems.is_empty(),
                "{problems:?}\ninput: {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    let mut framer = StreamFramer::new(4096);
    if framer.push(bytes).is_ok() {
        while let Ok(Some(_)) = framer.next_frame() {}
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, &'static [u8]),
    Delete(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let special: &'static [&'static [u8]] = &[
        b"\r", b"\n", b"\r\n", b":", b",", b"\"", b"<", b">", b";", b" ", b"\t", b"\\", b"\r\n ",
        b"%", b"@", b"[", b"\0", b"\xff",
    ];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, b)| Mutation::Flip(p, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), proptest::sample::select(special))
            .prop_map(|(p, s)| Mutation::Insert(p, s)),
        (any::<usize>(), 1usize..8).prop_map(|(p, n)| Mutation::Delete(p, n)),
    ]
}

fn apply(mut bytes: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = bytes.len().max(1);
        match *m {
            Mutation::Flip(p, b) => {
                if let Some(x) = bytes.get_mut(p % len) {
                    *x ^= 1 << b;
                }
            }
            Mutation::Truncate(p) => bytes.truncate(p % len),
            Mutation::Insert(p, s) => {
                let at = p % (bytes.len() + 1);
                bytes.splice(at..at, s.iter().copied());
            }
            Mutation::Delete(p, n) => {
                let at = p % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
        }
    }
    bytes
}

const TOKEN: &str = "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,11}";
const HOST: &str = "([a-z][a-z0-9-]{0,10}\\.){0,2}[a-z]{2,6}|192\\.0\\.2\\.[0-9]{1,3}|\\[2001:db8::[0-9a-f]{1,4}\\]";

fn sip_uri() -> impl Strategy<Value = SipUri> {
    (
        proptest::option::of("[a-z0-9._+%-]{1,12}"),
        HOST,
        proptest::option::of(1u16..),
        proptest::option::of("[a-z0-9-]{1,8}"),
    )
        .prop_map(|(user, host, port, param)| {
            // `%` in the generated user part must start a valid escape
            let user = user.map(|u| u.replace('%', "%25"));
            let mut uri = SipUri::new(user.as_deref(), &host, port);
            if let Some(p) = param {
                uri.params
                    .push(sip_msg::Param::new(p.to_lowercase(), None::<String>));
            }
            uri
        })
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Invite),
        Just(Method::Register),
        Just(Method::Options),
        Just(Method::Bye),
        Just(Method::Ack),
        "[A-Z]{3,10}".prop_map(|m| Method::from_token(&m).unwrap_or(Method::Info)),
    ]
}

/// A valid request built through the public API.
fn request() -> impl Strategy<Value = Request> {
    (
        method(),
        sip_uri(),
        sip_uri(),
        TOKEN,
        TOKEN,
        0u32..(1 << 31),
        0u32..=255,
        proptest::collection::vec(("X-[A-Za-z0-9-]{1,10}", "[!-~]([ -~]{0,30}[!-~])?"), 0..4),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::option::of("[A-Za-z ]{1,12}"),
    )
        .prop_map(
            |(method, ruri, from, tag, branch, seq, mf, extra, body, display)| {
                let mut r = Request::new(method.clone(), &Uri::Sip(ruri));
                let h = &mut r.headers;
                h.push(
                    HeaderName::Via,
                    format!("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{branch}"),
                );
                h.push(HeaderName::MaxForwards, mf.to_string());
                let mut from = sip_msg::NameAddr::new(Uri::Sip(from));
                from.display = display
                    .map(|d| d.trim().to_owned())
                    .filter(|d| !d.is_empty());
                from.set_param("tag", Some(&tag));
                h.push(HeaderName::From, from.to_string());
                h.push(HeaderName::To, "<sip:bob@example.com>");
                h.push(HeaderName::CallId, format!("{tag}@example.com"));
                h.push(HeaderName::CSeq, format!("{seq} {method}"));
                for (n, v) in extra {
                    h.push(HeaderName::parse(&n), v);
                }
                r.body = body;
                r
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(seed in 0..SEEDS.len(), muts in proptest::collection::vec(mutation(), 1..6)) {
        exercise(&apply(SEEDS[seed].to_vec(), &muts));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_requests_round_trip(req in request()) {
        prop_assert_eq!(req.validate(), Ok(()));
        let msg = Message::Request(req.clone());
        let problems = round_trip_problems(&msg);
        prop_assert!(problems.is_empty(), "{:?}", problems);
        let Ok(Message::Request(back)) = parse(&msg.to_bytes(), Framing::Stream) else {
            return Err(TestCaseError::fail("printed request does not parse"));
        };
        prop_assert_eq!(back.uri(), req.uri());
        prop_assert_eq!(back.body, req.body);
    }

    #[test]
    fn framer_ignores_chunking(reqs in proptest::collection::vec(request(), 1..5), pings in proptest::collection::vec(0usize..3, 5), cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (r, n_pings) in reqs.iter().zip(pings) {
            for _ in 0..n_pings {
                stream.extend_from_slice(b"\r\n\r\n");
                expected.push(Frame::Ping);
            }
            let bytes = r.to_bytes();
            stream.extend_from_slice(&bytes);
            expected.push(Frame::Message(bytes));
        }
        let drain = |f: &mut StreamFramer, out: &mut Vec<Frame>| {
            while let Some(frame) = f.next_frame().expect("valid stream") {
                out.push(frame);
            }
        };
        let mut whole = StreamFramer::default();
        let mut one_push = Vec::new();
        whole.push(&stream).expect("fits");
        drain(&mut whole, &mut one_push);
        prop_assert_eq!(&one_push, &expected);

        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(stream.len());
        let mut chunked = StreamFramer::default();
        let mut got = Vec::new();
        let mut at = 0;
        for cut in cuts {
            chunked.push(&stream[at..cut]).expect("fits");
            drain(&mut chunked, &mut got);
            at = cut;
        }
        prop_assert_eq!(got, expected);
        prop_assert_eq!(chunked.buffered(), 0);
    }

    #[test]
    fn framer_memory_is_bounded(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..40)) {
        let limit = 1000;
        let mut framer = StreamFramer::new(limit);
        for chunk in chunks {
            if framer.push(&chunk).is_err() {
                break;
            }
            prop_assert!(framer.buffered() <= 2 * limit);
            loop {
                match framer.next_frame() {
                    Ok(Some(Frame::Message(m))) => prop_assert!(m.len() <= limit),
                    Ok(Some(Frame::Ping)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            prop_assert!(framer.buffered() <= 2 * limit);
        }
    }
}
