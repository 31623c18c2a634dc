//! Hot paths of the message layer: parse + validate of the two requests a switch sees most
//! (an INVITE with SDP, a REGISTER with digest credentials) and printing a 200 OK.
//! Run: `cargo bench -p sip-msg -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sip_msg::{Framing, Message, parse};

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY\r\n\
Supported: replaces, 100rel, timer\r\n\
User-Agent: Yealink SIP-T46U 108.86.0.20\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 232\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n";

const REGISTER: &[u8] = b"REGISTER sip:pbx.example.com;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.12:52917;branch=z9hG4bKd1d3d5e6E480CDD;rport\r\n\
From: \"Desk 1013\" <sip:1013@pbx.example.com>;tag=F87D2248-BCC05E87\r\n\
To: <sip:1013@pbx.example.com>\r\n\
CSeq: 3 REGISTER\r\n\
Call-ID: c7f6bc72e0778e72f7055172226c01d1\r\n\
Contact: <sip:1013@192.0.2.12:52917;transport=udp>;methods=\"INVITE,ACK,BYE,CANCEL,OPTIONS,INFO,MESSAGE,SUBSCRIBE,NOTIFY,PRACK,UPDATE,REFER\"\r\n\
User-Agent: PolycomVVX-VVX_350-UA/5.9.5.0614\r\n\
Authorization: Digest username=\"1013\", realm=\"pbx.example.com\", nonce=\"7d4b7aa44cda192fecad03e48a45ca59\", qop=auth, cnonce=\"nrQhP0p3w8fjTMn\", nc=00000001, opaque=\"59ea226be29c979bb10105e8ba654779\", uri=\"sip:pbx.example.com;transport=udp\", response=\"ab709ea589a580790e2e1cea141f7107\", algorithm=MD5\r\n\
Max-Forwards: 70\r\n\
Expires: 3600\r\n\
Content-Length: 0\r\n\
\r\n";

fn parse_and_validate(bytes: &[u8]) -> bool {
    match parse(bytes, Framing::Datagram) {
        Ok(Message::Request(r)) => r.validate().is_ok(),
        _ => false,
    }
}

fn benches(c: &mut Criterion) {
    assert!(
        parse_and_validate(INVITE) && parse_and_validate(REGISTER),
        "bench inputs must be valid"
    );
    c.bench_function("parse+validate INVITE with SDP", |b| {
        b.iter(|| parse_and_validate(black_box(INVITE)))
    });
    c.bench_function("parse+validate REGISTER with Authorization", |b| {
        b.iter(|| parse_and_validate(black_box(REGISTER)))
    });
    let Ok(Message::Request(invite)) = parse(INVITE, Framing::Datagram) else {
        unreachable!("checked above")
    };
    let ok = invite.make_response(200, "OK", Some("a6c85cf"));
    c.bench_function("print 200 OK", |b| b.iter(|| black_box(&ok).to_bytes()));
}

criterion_group!(parse_benches, benches);
criterion_main!(parse_benches);
