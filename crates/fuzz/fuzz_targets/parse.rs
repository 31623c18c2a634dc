//! Any bytes through parse + validate (both framings); a message that validates must print,
//! re-parse and validate to the same message (Content-Length aside, which printing recomputes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_msg::{Framing, HeaderName, Message, parse};

fn validity(m: &Message) -> Result<(), u16> {
    match m {
        Message::Request(r) => r.validate().map_err(|e| e.status),
        Message::Response(r) => r.validate().map_err(|e| e.status),
    }
}

fn without_length(m: &Message) -> Message {
    let mut m = m.clone();
    match &mut m {
        Message::Request(r) => r.headers.remove(&HeaderName::ContentLength),
        Message::Response(r) => r.headers.remove(&HeaderName::ContentLength),
    }
    m
}

fuzz_target!(|data: &[u8]| {
    for framing in [Framing::Datagram, Framing::Stream] {
        let msg = match parse(data, framing) {
            Ok(m) => m,
            Err(e) => {
                if let Some(Message::Request(r)) = e.partial.as_deref() {
                    let _ = r.make_response(400, "Bad Request", Some("tag")).to_bytes();
                }
                continue;
            }
        };
        match &msg {
            Message::Request(r) => {
                let _ = (r.uri(), r.top_via(), r.cseq(), r.from(), r.to());
                let _ = r.make_response(180, "Ringing", Some("tag")).to_bytes();
            }
            Message::Response(r) => {
                let _ = (r.top_via(), r.cseq(), r.from(), r.to());
            }
        }
        if validity(&msg).is_err() {
            continue;
        }
        let printed = msg.to_bytes();
        let again = parse(&printed, Framing::Stream).expect("a valid message re-parses after printing");
        assert_eq!(validity(&again), Ok(()), "re-parsed message no longer validates");
        assert_eq!(without_length(&msg), without_length(&again), "round trip changed the message");
        assert_eq!(again.to_bytes(), printed, "printing is not idempotent");
    }
});
