//! Data-driven tests over `test_data/`, one runner per boundary, plus property tests.
//!
//! - `test_data/offers/*.sdp`: offers from real-world phones. Each `.expected` file holds our
//!   answer, the [`Negotiated`] outcome and the re-offer we would send to the other leg (or the
//!   error). Leading `# policy: ...` / `# local: ip port` lines in the `.sdp` set the inputs.
//! - `test_data/answers/*.sdp`: answers from phones to our default offer (which is written at
//!   the top of each `.expected` file) and what [`accept_answer`] makes of them.
//! - `test_data/ok/*.sdp`: odd but valid SDP and a dump of the parsed model.
//! - `test_data/err/*.sdp`: broken SDP and the [`SdpError`] it yields.
//!
//! `UPDATE_EXPECT=1 cargo test -p sdp` rewrites the `.expected` files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::*;

const LOCAL_IP: &str = "192.0.2.10";
const LOCAL_PORT: u16 = 40000;
const SESSION_ID: u64 = 4242;

fn local(ip: &str, port: u16) -> MediaAddress {
    MediaAddress {
        ip: ip.parse().expect("test address is valid"),
        rtp_port: port,
    }
}

/// Runs `produce` on every `*.sdp` in a directory and compares with the `.expected` file.
fn check_dir(dir: &str, produce: fn(&[u8]) -> String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(dir);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry is readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sdp"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no fixtures in {}", dir.display());
    let mut failures = Vec::new();
    for input in &inputs {
        let text = std::fs::read(input).expect("fixture is readable");
        let actual = produce(&text);
        if let Err(message) = check(&input.with_extension("expected"), &actual) {
            failures.push(message);
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Compares `actual` with the expected file, or rewrites it under `UPDATE_EXPECT=1`.
fn check(expected_path: &Path, actual: &str) -> Result<(), String> {
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(expected_path, actual).expect("expected file is writable");
        return Ok(());
    }
    let expected = std::fs::read_to_string(expected_path).unwrap_or_default();
    if expected == actual {
        return Ok(());
    }
    Err(format!(
        "--- {} (set UPDATE_EXPECT=1 to accept)\n--- expected\n{expected}\n--- actual\n{actual}",
        expected_path.display()
    ))
}

/// Splits leading `# key: value` directives from the SDP body.
fn directives(text: &str) -> (Vec<(String, String)>, String) {
    let mut found = Vec::new();
    let mut body = String::new();
    let mut in_header = true;
    for line in text.split_inclusive('\n') {
        if in_header && let Some(directive) = line.strip_prefix('#') {
            if let Some((key, value)) = directive.split_once(':') {
                found.push((key.trim().to_owned(), value.trim().to_owned()));
            }
            continue;
        }
        in_header = false;
        body.push_str(line);
    }
    (found, body)
}

fn policy_from(value: &str) -> CodecPolicy {
    let codecs = value
        .split_whitespace()
        .map(|name| match name {
            "PCMU" => Codec::Pcmu,
            "PCMA" => Codec::Pcma,
            "G722" => Codec::G722,
            "telephone-event" => Codec::TelephoneEvent,
            other => panic!("unknown codec {other} in # policy"),
        })
        .collect();
    CodecPolicy::new(codecs).expect("# policy lists an audio codec")
}

/// Crate-level round trip: printing a parsed description parses back to the same model.
fn assert_round_trip(sdp: &SessionDescription) {
    let printed = sdp.to_bytes();
    let reparsed = SessionDescription::parse(&printed).expect("printed SDP parses");
    assert_eq!(&reparsed, sdp, "round trip changed the model:\n{}", sdp);
}

fn produce_answer(text: &[u8]) -> String {
    let text = std::str::from_utf8(text).expect("offer fixtures are UTF-8");
    let (directives, body) = directives(text);
    let mut policy = CodecPolicy::default();
    let mut address = local(LOCAL_IP, LOCAL_PORT);
    for (key, value) in &directives {
        match key.as_str() {
            "policy" => policy = policy_from(value),
            "local" => {
                let (ip, port) = value.rsplit_once(' ').expect("# local: ip port");
                address = local(ip, port.parse().expect("# local port is a number"));
            }
            _ => {}
        }
    }
    let mut out = String::new();
    let offer = match SessionDescription::parse(body.as_bytes()) {
        Ok(offer) => offer,
        Err(e) => return format!("parse error: {e}\n"),
    };
    assert_round_trip(&offer);
    let mut origin = Origin::new(SESSION_ID, address.ip);
    match answer(&offer, &policy, address, &mut origin) {
        Ok((ours, negotiated)) => {
            assert_eq!(
                origin.session_version, 1,
                "an answer bumps the version once"
            );
            assert_round_trip(&ours);
            assert_eq!(
                ours.media.len(),
                offer.media.len(),
                "RFC 3264 §6: one answer m-line per offer m-line"
            );
            // Our answer must pass our own answer check, with the same codecs.
            let checked = accept_answer(&offer, &ours).expect("our answer is valid for the offer");
            assert_eq!(checked.codec, negotiated.codec);
            assert_eq!(
                checked.telephone_event_payload_type,
                negotiated.telephone_event_payload_type
            );
            writeln!(out, "# answer\n{}", ours.to_string().replace("\r\n", "\n")).unwrap();
            writeln!(out, "# negotiated\n{negotiated:#?}\n").unwrap();
        }
        Err(e) => {
            assert_eq!(
                origin.session_version, 0,
                "a failed answer leaves the version alone"
            );
            writeln!(out, "# answer\nerror: {e}\n").unwrap();
        }
    }
    let mut origin = Origin::new(SESSION_ID, address.ip);
    match offer_from(&offer, &policy, address, &mut origin) {
        Ok(relayed) => {
            assert_round_trip(&relayed);
            write!(
                out,
                "# offer to the other leg\n{}",
                relayed.to_string().replace("\r\n", "\n")
            )
            .unwrap();
        }
        Err(e) => writeln!(out, "# offer to the other leg\nerror: {e}").unwrap(),
    }
    out
}

fn default_offer() -> SessionDescription {
    let address = local(LOCAL_IP, LOCAL_PORT);
    let mut origin = Origin::new(SESSION_ID, address.ip);
    offer(
        &CodecPolicy::default(),
        address,
        &mut origin,
        Direction::SendRecv,
    )
}

fn produce_accept(text: &[u8]) -> String {
    let ours = default_offer();
    let mut out = format!("# our offer\n{}\n", ours.to_string().replace("\r\n", "\n"));
    let answer = match SessionDescription::parse(text) {
        Ok(answer) => answer,
        Err(e) => return format!("{out}# negotiated\nparse error: {e}\n"),
    };
    assert_round_trip(&answer);
    match accept_answer(&ours, &answer) {
        Ok(negotiated) => writeln!(out, "# negotiated\n{negotiated:#?}").unwrap(),
        Err(e) => writeln!(out, "# negotiated\nerror: {e}").unwrap(),
    }
    out
}

fn produce_error(text: &[u8]) -> String {
    match SessionDescription::parse(text) {
        Ok(sdp) => format!("unexpectedly parsed:\n{sdp:#?}\n"),
        Err(e) => format!("{e}\nline: {:?}\nkind: {:?}\n", e.line(), e.kind()),
    }
}

fn produce_dump(text: &[u8]) -> String {
    match SessionDescription::parse(text) {
        Ok(sdp) => {
            assert_round_trip(&sdp);
            format!("{sdp:#?}\n")
        }
        Err(e) => format!("unexpected error: {e}\n"),
    }
}

#[test]
fn parses() {
    check_dir("ok", produce_dump);
}

#[test]
fn offers() {
    check_dir("offers", produce_answer);
}

#[test]
fn answers() {
    check_dir("answers", produce_accept);
}

#[test]
fn errors() {
    check_dir("err", produce_error);
}

#[test]
fn versions_increase_on_every_offer_and_answer_we_send() {
    // RFC 3264 §8: each new description in the session carries a higher version.
    let address = local(LOCAL_IP, LOCAL_PORT);
    let mut origin = Origin::new(7, address.ip);
    let first = offer(
        &CodecPolicy::default(),
        address,
        &mut origin,
        Direction::SendRecv,
    );
    let hold = offer(
        &CodecPolicy::default(),
        address,
        &mut origin,
        Direction::SendOnly,
    );
    let phone = SessionDescription::parse(b"v=0\no=- 1 1 IN IP4 192.0.2.77\ns=-\nc=IN IP4 192.0.2.77\nt=0 0\nm=audio 5000 RTP/AVP 8\n")
        .expect("fixture parses");
    let (answered, _) =
        answer(&phone, &CodecPolicy::default(), address, &mut origin).expect("PCMA is allowed");
    let relayed =
        offer_from(&phone, &CodecPolicy::default(), address, &mut origin).expect("PCMA is allowed");
    let versions: Vec<u64> = [&first, &hold, &answered, &relayed]
        .iter()
        .map(|s| s.origin.session_version)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    assert!(
        [&first, &hold, &answered, &relayed]
            .iter()
            .all(|s| s.origin.session_id == 7)
    );
    // A failed negotiation sends nothing, so the version stays.
    let video = SessionDescription::parse(b"v=0\no=- 1 2 IN IP4 192.0.2.77\ns=-\nc=IN IP4 192.0.2.77\nt=0 0\nm=video 5002 RTP/AVP 96\n")
        .expect("fixture parses");
    assert_eq!(
        answer(&video, &CodecPolicy::default(), address, &mut origin),
        Err(NegotiationError::NoCommonCodec)
    );
    assert_eq!(origin.session_version, 4);
}

#[test]
fn relay_flow_answers_caller_with_the_callee_codec() {
    // A offers PCMU and PCMA; B prefers PCMA. Answering A with B's codec avoids transcoding.
    let a_offer = SessionDescription::parse(
        b"v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 5000 RTP/AVP 0 8 101\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\n",
    )
    .expect("fixture parses");
    let a_side = local(LOCAL_IP, 40000);
    let b_side = local(LOCAL_IP, 40002);
    let (mut a_origin, mut b_origin) = (Origin::new(1, a_side.ip), Origin::new(2, b_side.ip));
    let b_offer = offer_from(&a_offer, &CodecPolicy::default(), b_side, &mut b_origin)
        .expect("A's codecs are allowed");
    assert_eq!(b_offer.media[0].formats, ["0", "8", "101"]);
    let b_answer = SessionDescription::parse(
        b"v=0\no=- 7 7 IN IP4 192.0.2.2\ns=-\nc=IN IP4 192.0.2.2\nt=0 0\nm=audio 6000 RTP/AVP 8 101\na=rtpmap:101 telephone-event/8000\n",
    )
    .expect("fixture parses");
    let b_leg = accept_answer(&b_offer, &b_answer).expect("B answered with an offered codec");
    assert_eq!(
        b_leg.codec,
        NegotiatedCodec {
            payload_type: 8,
            codec: Codec::Pcma
        }
    );
    let follow_b = CodecPolicy::new(vec![b_leg.codec.codec, Codec::TelephoneEvent])
        .expect("has an audio codec");
    let (_, a_leg) =
        answer(&a_offer, &follow_b, a_side, &mut a_origin).expect("A offered PCMA too");
    assert_eq!(a_leg.codec, b_leg.codec);
    assert_eq!(a_leg.telephone_event_payload_type, Some(101));
    assert_eq!(b_leg.remote, Some("192.0.2.2:6000".parse().expect("valid")));
}

#[test]
fn reoffer_for_hold_keeps_codecs_and_bumps_version() {
    let address = local(LOCAL_IP, LOCAL_PORT);
    let mut origin = Origin::new(9, address.ip);
    let first = offer(
        &CodecPolicy::default(),
        address,
        &mut origin,
        Direction::SendRecv,
    );
    let hold = reoffer(&first, &mut origin, Direction::SendOnly);
    let resume = reoffer(&hold, &mut origin, Direction::SendRecv);
    assert_eq!(
        (hold.origin.session_version, resume.origin.session_version),
        (2, 3)
    );
    assert_eq!(hold.media[0].direction(), Some(Direction::SendOnly));
    assert_eq!(hold.media[0].formats, first.media[0].formats);
    let mut expected = first.clone();
    expected.origin.session_version = 3;
    assert_eq!(
        resume, expected,
        "resuming restores the first offer, one version later"
    );
}

#[test]
fn answer_direction_mirrors_offer_per_rfc3264_section_6_1() {
    let address = local(LOCAL_IP, LOCAL_PORT);
    let cases = [
        ("", "192.0.2.77", Direction::SendRecv, false),
        ("a=sendrecv\n", "192.0.2.77", Direction::SendRecv, false),
        ("a=sendonly\n", "192.0.2.77", Direction::RecvOnly, true),
        ("a=recvonly\n", "192.0.2.77", Direction::SendOnly, false),
        ("a=inactive\n", "192.0.2.77", Direction::Inactive, true),
        // RFC 2543 hold: the offerer receives nothing, so we only receive.
        ("", "0.0.0.0", Direction::RecvOnly, true),
        ("a=recvonly\n", "0.0.0.0", Direction::Inactive, true),
    ];
    for (attribute, ip, expected, hold) in cases {
        let text = format!(
            "v=0\no=- 1 1 IN IP4 {ip}\ns=-\nc=IN IP4 {ip}\nt=0 0\nm=audio 5000 RTP/AVP 0\n{attribute}"
        );
        let offered = SessionDescription::parse(text.as_bytes()).expect("fixture parses");
        let mut origin = Origin::new(1, address.ip);
        let (ours, negotiated) = answer(&offered, &CodecPolicy::default(), address, &mut origin)
            .expect("PCMU is allowed");
        assert_eq!(negotiated.direction, expected, "offer {attribute:?} c={ip}");
        assert_eq!(ours.media[0].direction(), Some(expected));
        assert_eq!(negotiated.remote_hold, hold, "offer {attribute:?} c={ip}");
        assert_eq!(negotiated.remote.is_none(), ip == "0.0.0.0");
    }
}

#[test]
fn session_level_direction_applies_to_media_without_one() {
    let text = "v=0\no=- 1 1 IN IP4 192.0.2.7\ns=-\nc=IN IP4 192.0.2.7\nt=0 0\na=sendonly\nm=audio 5000 RTP/AVP 0\nm=audio 5002 RTP/AVP 0\na=inactive\n";
    let sdp = SessionDescription::parse(text.as_bytes()).expect("fixture parses");
    assert_eq!(sdp.direction_of(&sdp.media[0]), Direction::SendOnly);
    assert_eq!(sdp.direction_of(&sdp.media[1]), Direction::Inactive);
}

#[test]
fn accept_answer_reports_our_direction() {
    let ours = default_offer();
    for (theirs, expected) in [
        ("sendrecv", Direction::SendRecv),
        ("recvonly", Direction::SendOnly),
        ("sendonly", Direction::RecvOnly),
        ("inactive", Direction::Inactive),
    ] {
        let text = format!(
            "v=0\no=- 1 1 IN IP4 192.0.2.8\ns=-\nc=IN IP4 192.0.2.8\nt=0 0\nm=audio 7000 RTP/AVP 0\na={theirs}\n"
        );
        let answered = SessionDescription::parse(text.as_bytes()).expect("fixture parses");
        assert_eq!(
            accept_answer(&ours, &answered).map(|n| n.direction),
            Ok(expected),
            "answer {theirs}"
        );
    }
}

#[test]
fn policy_needs_an_audio_codec() {
    assert_eq!(
        CodecPolicy::new(vec![Codec::TelephoneEvent]),
        Err(PolicyError::NoAudioCodec)
    );
    assert_eq!(CodecPolicy::new(vec![]), Err(PolicyError::NoAudioCodec));
    let policy = CodecPolicy::new(vec![Codec::G722, Codec::Pcmu, Codec::G722]).expect("has audio");
    assert_eq!(policy.audio(), [Codec::G722, Codec::Pcmu]);
}

#[test]
fn printing_is_crlf_and_deterministic() {
    let text = "v=0\no=- 1 1 IN IP6 2001:db8::1\ns=\nc=IN IP6 2001:db8::1\nb=AS:64\nt=0 0\nm=audio 5000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\na=rtcp:5001\na=x-vendor\n";
    let sdp = SessionDescription::parse(text.as_bytes()).expect("fixture parses");
    let printed = String::from_utf8(sdp.to_bytes()).expect("printer writes UTF-8");
    assert_eq!(printed, text.replace("s=\n", "s= \n").replace('\n', "\r\n"));
    assert_eq!(sdp.to_bytes(), sdp.clone().to_bytes());
}

mod properties {
    use proptest::prelude::*;

    use crate::*;

    fn token() -> impl Strategy<Value = String> {
        "[A-Za-z0-9+./_-]{1,10}"
    }

    /// Free text for s=, i=, attribute values: no line breaks, no surrounding blanks.
    fn text() -> impl Strategy<Value = String> {
        "[A-Za-z0-9 :=/.;é-]{0,16}".prop_map(|s| s.trim().to_owned())
    }

    fn connection() -> impl Strategy<Value = Connection> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|o| Connection::new(IpAddr::from(o))),
            any::<[u16; 8]>().prop_map(|s| Connection::new(IpAddr::from(s))),
            (token(), token(), token()).prop_map(|(n, a, addr)| Connection {
                network_type: n,
                address_type: a,
                address: addr,
            }),
        ]
    }

    fn bandwidth() -> impl Strategy<Value = Bandwidth> {
        ("[A-Za-z-]{1,5}", any::<u64>()).prop_map(|(bandwidth_type, value)| Bandwidth {
            bandwidth_type,
            value,
        })
    }

    fn attribute() -> impl Strategy<Value = Attribute> {
        ("[A-Za-z0-9_.-]{1,12}", proptest::option::of(text()))
            .prop_map(|(name, value)| Attribute { name, value })
    }

    fn media() -> impl Strategy<Value = MediaDescription> {
        (
            (
                token(),
                any::<u16>(),
                proptest::option::of(any::<u16>()),
                token(),
                proptest::collection::vec(token(), 0..6),
            ),
            proptest::option::of(text()),
            proptest::option::of(connection()),
            proptest::collection::vec(bandwidth(), 0..2),
            proptest::option::of(text()),
            proptest::collection::vec(attribute(), 0..6),
        )
            .prop_map(
                |(
                    (media, port, port_count, proto, formats),
                    information,
                    connection,
                    bandwidths,
                    key,
                    attributes,
                )| {
                    MediaDescription {
                        media,
                        port,
                        port_count,
                        proto,
                        formats,
                        information,
                        connection,
                        bandwidths,
                        encryption_key: key,
                        attributes,
                    }
                },
            )
    }

    fn session() -> impl Strategy<Value = SessionDescription> {
        let origin = (
            token(),
            any::<u64>(),
            any::<u64>(),
            token(),
            token(),
            token(),
        )
            .prop_map(
                |(username, session_id, session_version, network_type, address_type, address)| {
                    Origin {
                        username,
                        session_id,
                        session_version,
                        network_type,
                        address_type,
                        address,
                    }
                },
            );
        let timing = (
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(text(), 0..2),
        )
            .prop_map(|(start, stop, repeats)| Timing {
                start,
                stop,
                repeats,
            });
        (
            (
                any::<u32>(),
                origin,
                text(),
                proptest::option::of(text()),
                proptest::option::of(text()),
            ),
            (
                proptest::collection::vec(text(), 0..2),
                proptest::collection::vec(text(), 0..2),
            ),
            (
                proptest::option::of(connection()),
                proptest::collection::vec(bandwidth(), 0..2),
            ),
            (
                proptest::collection::vec(timing, 1..3),
                proptest::option::of(text()),
                proptest::option::of(text()),
            ),
            proptest::collection::vec(attribute(), 0..5),
            proptest::collection::vec(media(), 0..4),
        )
            .prop_map(
                |(
                    (version, origin, session_name, information, uri),
                    (emails, phones),
                    (connection, bandwidths),
                    (timings, time_zones, encryption_key),
                    attributes,
                    media,
                )| SessionDescription {
                    version,
                    origin,
                    session_name,
                    information,
                    uri,
                    emails,
                    phones,
                    connection,
                    bandwidths,
                    timings,
                    time_zones,
                    encryption_key,
                    attributes,
                    media,
                },
            )
    }

    /// Lines that look like SDP, so the fuzzing reaches past the first line.
    fn sdp_like() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            Just("v=0".to_owned()),
            Just("o=- 1 2 IN IP4 192.0.2.1".to_owned()),
            Just("s=-".to_owned()),
            Just("t=0 0".to_owned()),
            Just("c=IN IP4 0.0.0.0".to_owned()),
            Just("c=IN IP6 ::1".to_owned()),
            Just("a=sendonly".to_owned()),
            Just("a=rtpmap:101 telephone-event/8000".to_owned()),
            Just("a=rtpmap:0 PCMU/8000".to_owned()),
            Just("a=rtcp:65535 IN IP4 192.0.2.2".to_owned()),
            Just("a=ptime:0".to_owned()),
            Just("m=audio 65535 RTP/AVP 0 8 101 300 x".to_owned()),
            Just("m=audio 0 RTP/AVP 0".to_owned()),
            "[a-z]=[ -~]{0,30}",
            "[ -~\t\r]{0,30}",
        ];
        (
            proptest::collection::vec(line, 0..20),
            prop_oneof![Just("\r\n"), Just("\n")],
        )
            .prop_map(|(lines, end)| lines.join(end).into_bytes())
    }

    fn exercise(input: &[u8]) {
        let Ok(sdp) = SessionDescription::parse(input) else {
            return;
        };
        let reparsed = SessionDescription::parse(&sdp.to_bytes());
        assert_eq!(reparsed.as_ref(), Ok(&sdp));
        let local = MediaAddress {
            ip: IpAddr::from([192, 0, 2, 10]),
            rtp_port: 40000,
        };
        let mut origin = Origin::new(1, local.ip);
        let _ = answer(&sdp, &CodecPolicy::default(), local, &mut origin);
        let _ = offer_from(&sdp, &CodecPolicy::default(), local, &mut origin);
        let ours = offer(
            &CodecPolicy::default(),
            local,
            &mut origin,
            Direction::SendRecv,
        );
        let _ = accept_answer(&ours, &sdp);
        let _ = accept_answer(&sdp, &sdp);
    }

    use std::net::IpAddr;

    /// An audio or video m-line drawn from what phones offer, with random quirks.
    fn offered_media() -> impl Strategy<Value = String> {
        let format = prop_oneof![
            Just((0u8, None)),
            Just((8, None)),
            Just((9, None)),
            Just((18, Some("G729/8000"))),
            Just((0, Some("PCMA/8000"))),
            (96u8..128, Just(Some("telephone-event/8000"))),
            (96u8..128, Just(Some("PCMU/8000"))),
            (96u8..128, Just(Some("opus/48000/2"))),
            (96u8..128, Just(Some("telephone-event/48000"))),
        ];
        (
            prop_oneof![Just("audio"), Just("audio"), Just("video")],
            prop_oneof![Just(0u16), 1024u16..65535],
            prop_oneof![Just("RTP/AVP"), Just("RTP/AVP"), Just("RTP/SAVP")],
            proptest::collection::vec(format, 1..6),
            proptest::option::of(prop_oneof![
                Just("sendrecv"),
                Just("sendonly"),
                Just("recvonly"),
                Just("inactive")
            ]),
            proptest::option::of(0u32..300),
        )
            .prop_map(|(media, port, proto, formats, direction, ptime)| {
                let numbers: Vec<String> = formats.iter().map(|(pt, _)| pt.to_string()).collect();
                let mut text = format!("m={media} {port} {proto} {}\r\n", numbers.join(" "));
                for (pt, map) in formats.iter().filter_map(|(pt, m)| m.map(|m| (pt, m))) {
                    text.push_str(&format!("a=rtpmap:{pt} {map}\r\n"));
                }
                if let Some(direction) = direction {
                    text.push_str(&format!("a={direction}\r\n"));
                }
                if let Some(ptime) = ptime {
                    text.push_str(&format!("a=ptime:{ptime}\r\n"));
                }
                text
            })
    }

    fn offered_session() -> impl Strategy<Value = SessionDescription> {
        (
            prop_oneof![Just("192.0.2.9"), Just("0.0.0.0")],
            proptest::collection::vec(offered_media(), 0..4),
        )
            .prop_map(|(ip, media)| {
                let text = format!(
                    "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n{}",
                    media.concat()
                );
                SessionDescription::parse(text.as_bytes()).expect("generated offers are valid")
            })
    }

    proptest! {
        #[test]
        fn answers_follow_rfc3264(offered in offered_session(), g722 in any::<bool>()) {
            let policy = if g722 {
                CodecPolicy::new(vec![Codec::G722, Codec::Pcmu, Codec::Pcma, Codec::TelephoneEvent])
                    .expect("has audio")
            } else {
                CodecPolicy::default()
            };
            let local = MediaAddress { ip: IpAddr::from([192, 0, 2, 10]), rtp_port: 40000 };
            let mut origin = Origin::new(1, local.ip);
            match answer(&offered, &policy, local, &mut origin) {
                Ok((ours, negotiated)) => {
                    prop_assert_eq!(ours.media.len(), offered.media.len());
                    let accepted: Vec<usize> =
                        ours.media.iter().enumerate().filter(|(_, m)| m.port != 0).map(|(i, _)| i).collect();
                    prop_assert_eq!(accepted, vec![negotiated.media_index]);
                    let theirs = &offered.media[negotiated.media_index];
                    let mine = &ours.media[negotiated.media_index];
                    prop_assert!(mine.formats.iter().all(|f| theirs.formats.contains(f)));
                    prop_assert!(policy.allows(negotiated.codec.codec));
                    prop_assert_eq!(&mine.formats[0], &negotiated.codec.payload_type.to_string());
                    prop_assert!((10..=200).contains(&negotiated.ptime));
                    prop_assert_eq!(mine.direction(), Some(negotiated.direction));
                    let checked = accept_answer(&offered, &ours);
                    prop_assert_eq!(checked.map(|n| n.codec), Ok(negotiated.codec));
                    prop_assert_eq!(origin.session_version, 1);
                }
                Err(error) => {
                    prop_assert_eq!(error, NegotiationError::NoCommonCodec);
                    prop_assert_eq!(origin.session_version, 0);
                    let usable = offered.media.iter().any(|m| {
                        m.port != 0 && m.media == "audio" && m.proto == "RTP/AVP"
                            && m.payload_types().any(|pt| {
                                m.rtpmap(pt).map_or(matches!(pt, 0 | 8) || (g722 && pt == 9), |map| {
                                    map.encoding == "PCMU" || map.encoding == "PCMA"
                                })
                            })
                    });
                    prop_assert!(!usable, "refused a usable offer");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn no_panic_on_arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            exercise(&input);
        }

        #[test]
        fn no_panic_on_sdp_like_input(input in sdp_like()) {
            exercise(&input);
        }

        #[test]
        fn print_then_parse_is_identity(sdp in session()) {
            let printed = sdp.to_bytes();
            prop_assert_eq!(SessionDescription::parse(&printed), Ok(sdp));
        }
    }
}
