//! Whole-switch scenarios in virtual time: a trunk and desk phones (only addresses and SIP
//! text) talk to one `Switchboard` built from `dialplans/example.toml` with a fixed seed. No
//! sockets, no sleeping. Each scenario asserts the key messages of its ladder and ends with the
//! leak check (`Rig::assert_no_leaks`: after 64*T1 + 5 s no calls, transactions or media ports
//! are left, and every `OpenMedia` was closed once). A failing scenario prints its SIP ladder
//! with virtual timestamps; some also compare it with a golden file in `tests/ladders/`
//! (`UPDATE_EXPECT=1` rewrites them, `RIG_LADDER=1` prints every ladder).
//!
//! Map: basic call and hang-ups (`basic_call_trunk_hangs_up`, `phone_hangs_up_first`), forking
//! (`forking_*`), CANCEL (`trunk_cancels_*`, `cancel_*`), no answer (`phone_silent_timer_b`,
//! `phone_rings_forever_ring_timeout`), failures (`phone_busy_486`, `phone_declines_603`,
//! `nobody_registered_480`), session timers (`session_timer_*`), lost messages (`lost_*`,
//! `no_ack_from_trunk_ends_call`), soak (`a_thousand_calls_leave_nothing_behind`,
//! `seeded_mix_of_calls_leaves_nothing_behind`), hold (`hold_*`), REGISTER and digest
//! (`register_*`, `stale_nonce_*`, `invite_from_unknown_source_gets_407`), hunt groups
//! (`*group*`).

mod rig;

use std::time::Duration;

use b2bua::LegSide;
use rig::{
    Caller, Leg, Phone, Placed, Rig, SETTLE, SWITCH_IP, addr, is_request, is_response, sdp_summary,
};
use sip_msg::{HeaderName, Message, Method, NameAddr, Response};

const DIRECT: &str = "201";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Phone 201 at 127.0.0.1:5061, registered for an hour.
fn phone_201(rig: &mut Rig) -> Phone {
    let mut p = Phone::new(rig, "201", "127.0.0.1:5061", "phone1");
    p.register(rig, 3600);
    p
}

/// The trunk calls the emergency number; the switch says 100 and rings `phone`.
fn ring(rig: &mut Rig, trunk: &Caller, phone: &Phone, extra: &[(&str, &str)]) -> (Placed, Leg) {
    let call = trunk.invite(rig, DIRECT, extra);
    rig.expect_response(trunk.addr, 100, Method::Invite);
    let leg = phone.expect_invite(rig);
    (call, leg)
}

/// Ring, 180, 200, ACK both ways: an established call.
fn establish(
    rig: &mut Rig,
    trunk: &Caller,
    phone: &Phone,
    extra: &[(&str, &str)],
) -> (Placed, Leg, Response) {
    let (mut call, leg) = ring(rig, trunk, phone, extra);
    phone.answer(rig, &leg, 180);
    rig.expect_response(trunk.addr, 180, Method::Invite);
    phone.answer(rig, &leg, 200);
    rig.expect_request(phone.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    trunk.ack(rig, &mut call, &ok);
    (call, leg, ok)
}

/// The trunk hangs up an established call; the phone answers the switch's BYE.
fn trunk_hangs_up(rig: &mut Rig, trunk: &Caller, phone: &Phone, call: &mut Placed) {
    trunk.bye(rig, call);
    rig.expect_response(trunk.addr, 200, Method::Bye);
    let bye = rig.expect_request(phone.addr, Method::Bye);
    phone.respond(rig, &bye, 200);
}

fn user_of(header: Option<&str>) -> Option<String> {
    NameAddr::parse(header?).ok()?.uri.user().map(str::to_owned)
}

// ---------------------------------------------------------------------------------------------
// 1. Basic call, the trunk hangs up
// ---------------------------------------------------------------------------------------------

#[test]
fn basic_call_trunk_hangs_up() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);

    let mut call = trunk.invite(&mut rig, DIRECT, &[]);
    rig.expect_response(trunk.addr, 100, Method::Invite);
    let leg = phone.expect_invite(&mut rig);

    // The INVITE to the phone: Request-URI is the registered contact, the offer is anchored
    // on the switch, and the caller's user is kept in From.
    assert_eq!(leg.invite.uri_raw, "sip:201@127.0.0.1:5061");
    let (ip, port, _) = sdp_summary(&leg.invite.body);
    assert_eq!(
        ip,
        Some(SWITCH_IP.parse().unwrap()),
        "B offer c= must be the switch"
    );
    assert!(
        rig::RTP_PORTS.contains(&port) && port % 2 == 0,
        "B offer port {port} outside the RTP range or odd"
    );
    assert_eq!(
        user_of(leg.invite.headers.get(&HeaderName::From)).as_deref(),
        Some("0612345678")
    );
    assert!(leg.invite.headers.get(&HeaderName::Contact).is_some());

    phone.answer(&mut rig, &leg, 180);
    rig.expect_response(trunk.addr, 180, Method::Invite);
    phone.answer(&mut rig, &leg, 200);
    let ack = rig.expect_request(phone.addr, Method::Ack);
    assert_eq!(rig::to_tag(&ack.headers).as_deref(), Some(leg.tag.as_str()));
    assert_eq!(
        ack.uri_raw, "sip:201@127.0.0.1:5061",
        "ACK goes to the phone's Contact"
    );
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    let (ip, a_port, _) = sdp_summary(&ok.body);
    assert_eq!(
        ip,
        Some(SWITCH_IP.parse().unwrap()),
        "A answer c= must be the switch"
    );
    assert!(rig::RTP_PORTS.contains(&a_port) && a_port != port);
    trunk.ack(&mut rig, &mut call, &ok);

    // Media: one OpenMedia with the two ports we saw in SDP, and the peers' addresses.
    assert_eq!(rig.opened.len(), 1);
    let (key, open_a, open_b) = rig.opened[0];
    assert_eq!((open_a, open_b), (a_port, port));
    let last = |rig: &Rig, side: LegSide| {
        rig.remotes
            .iter()
            .rev()
            .find(|r| r.call == key && r.leg == side)
            .and_then(|r| r.rtp)
    };
    assert_eq!(
        last(&rig, LegSide::A),
        Some(addr(&format!("127.0.0.2:{}", call.rtp_port)))
    );
    assert_eq!(
        last(&rig, LegSide::B),
        Some(addr(&format!("127.0.0.1:{}", leg.rtp_port)))
    );
    assert_eq!(rig.sb.n_calls(), 1);

    rig.advance(secs(30));
    assert_eq!(rig.sb.n_calls(), 1, "an established call stays up");
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    assert_eq!(rig.sb.n_calls(), 0);
    rig.assert_no_leaks();
    // Nothing else reached the peers: no retransmissions of answered requests.
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
    rig.check_ladder("basic_call");
}

// ---------------------------------------------------------------------------------------------
// 2. The phone hangs up first
// ---------------------------------------------------------------------------------------------

#[test]
fn phone_hangs_up_first() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, mut leg, _) = establish(&mut rig, &trunk, &phone, &[]);
    rig.advance(secs(10));
    phone.bye(&mut rig, &mut leg);
    rig.expect_response(phone.addr, 200, Method::Bye);
    let bye = rig.expect_request(trunk.addr, Method::Bye);
    assert_eq!(bye.call_id(), call.invite.call_id());
    assert_eq!(
        rig::to_tag(&bye.headers),
        NameAddr::parse(call.invite.headers.get(&HeaderName::From).unwrap())
            .unwrap()
            .tag()
            .map(str::to_owned),
        "BYE to the trunk: To carries the trunk's tag"
    );
    assert_eq!(
        bye.uri_raw, "sip:0612345678@127.0.0.2:5060",
        "BYE goes to the trunk's Contact"
    );
    trunk.respond(&mut rig, &bye, 200);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
    rig.check_ladder("phone_hangs_up_first");
}

// ---------------------------------------------------------------------------------------------
// 3. Forking to two contacts of 201
// ---------------------------------------------------------------------------------------------

#[test]
fn forking_second_contact_answers() {
    let mut rig = Rig::new();
    let mut p1 = Phone::new(&mut rig, "201", "127.0.0.1:5061", "phone1");
    let mut p2 = Phone::new(&mut rig, "201", "127.0.0.1:5062", "phone2");
    p1.register(&mut rig, 3600);
    p2.register(&mut rig, 3600);
    assert_eq!(rig.saved.len(), 2, "two bindings for 201");
    let trunk = Caller::trunk(&mut rig);

    let mut call = trunk.invite(&mut rig, DIRECT, &[]);
    rig.expect_response(trunk.addr, 100, Method::Invite);
    let leg1 = p1.expect_invite(&mut rig);
    let leg2 = p2.expect_invite(&mut rig);
    assert_ne!(leg1.invite.call_id(), leg2.invite.call_id());

    p1.answer(&mut rig, &leg1, 180);
    p2.answer(&mut rig, &leg2, 180);
    rig.advance(secs(3));
    p2.answer(&mut rig, &leg2, 200);
    rig.expect_request(p2.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    trunk.ack(&mut rig, &mut call, &ok);

    let cancel = rig.expect_request(p1.addr, Method::Cancel);
    assert_eq!(cancel.call_id(), leg1.invite.call_id());
    p1.respond(&mut rig, &cancel, 200);
    p1.answer(&mut rig, &leg1, 487);
    let ack = rig.expect_request(p1.addr, Method::Ack);
    assert_eq!(ack.cseq().map(|c| c.seq), leg1.invite.cseq().map(|c| c.seq));

    let oks = rig.received(trunk.addr, |m| is_response(m, 200, &Method::Invite));
    assert_eq!(oks.len(), 1, "the trunk gets exactly one 200");
    assert_eq!(rig.sb.n_calls(), 1);
    rig.advance(secs(20));
    trunk_hangs_up(&mut rig, &trunk, &p2, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |m| is_response(m, 180, &Method::Invite));
    rig.assert_quiet(p1.addr, |_| false);
    rig.assert_quiet(p2.addr, |_| false);
    rig.check_ladder("forking");
}

// ---------------------------------------------------------------------------------------------
// 4. CANCEL from the trunk while ringing
// ---------------------------------------------------------------------------------------------

#[test]
fn trunk_cancels_while_ringing() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 180);
    rig.expect_response(trunk.addr, 180, Method::Invite);
    rig.advance(secs(5));

    trunk.cancel(&mut rig, &call);
    rig.expect_response(trunk.addr, 200, Method::Cancel);
    let terminated = rig.expect_response(trunk.addr, 487, Method::Invite);
    trunk.ack_failure(&mut rig, &call, &terminated);

    let cancel = rig.expect_request(phone.addr, Method::Cancel);
    assert_eq!(cancel.call_id(), leg.invite.call_id());
    assert_eq!(
        cancel.top_via().and_then(|v| v.branch().map(str::to_owned)),
        leg.invite
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned)),
        "CANCEL shares the INVITE's branch"
    );
    phone.respond(&mut rig, &cancel, 200);
    phone.answer(&mut rig, &leg, 487);
    rig.expect_request(phone.addr, Method::Ack);
    assert_eq!(rig.sb.n_calls(), 0);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
    rig.check_ladder("trunk_cancels");
}

// ---------------------------------------------------------------------------------------------
// 5. CANCEL races the phone's 200
// ---------------------------------------------------------------------------------------------

#[test]
fn cancel_races_the_phones_200() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 180);
    rig.expect_response(trunk.addr, 180, Method::Invite);

    trunk.cancel(&mut rig, &call);
    rig.expect_response(trunk.addr, 200, Method::Cancel);
    let terminated = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(terminated.status, 487, "the trunk cancelled: 487, not 200");
    trunk.ack_failure(&mut rig, &call, &terminated);
    let cancel = rig.expect_request(phone.addr, Method::Cancel);

    // The phone had already answered: its 200 crosses the CANCEL.
    phone.answer(&mut rig, &leg, 200);
    phone.respond(&mut rig, &cancel, 200);
    let ack = rig.expect_request(phone.addr, Method::Ack);
    assert_eq!(rig::to_tag(&ack.headers).as_deref(), Some(leg.tag.as_str()));
    let bye = rig.expect_request(phone.addr, Method::Bye);
    assert_eq!(bye.call_id(), leg.invite.call_id());
    assert_eq!(rig::to_tag(&bye.headers).as_deref(), Some(leg.tag.as_str()));
    phone.respond(&mut rig, &bye, 200);

    assert!(
        rig.received(trunk.addr, |m| is_response(m, 200, &Method::Invite))
            .is_empty(),
        "the trunk must never get a 200 for a cancelled INVITE"
    );
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
    rig.check_ladder("cancel_races_200");
}

// ---------------------------------------------------------------------------------------------
// 6. The phone does not answer
// ---------------------------------------------------------------------------------------------

#[test]
fn phone_silent_timer_b() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, _leg) = ring(&mut rig, &trunk, &phone, &[]);
    rig.advance(secs(31));
    assert!(
        rig.take(
            trunk.addr,
            |m| matches!(m, Message::Response(r) if r.status >= 200)
        )
        .is_none(),
        "no final before Timer B"
    );
    rig.advance(Duration::from_millis(1100));
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    assert!(
        fin.status == 408 || fin.status == 480,
        "Timer B should give 408 or 480, got {}",
        fin.status
    );
    trunk.ack_failure(&mut rig, &call, &fin);
    // Timer A retransmitted the INVITE meanwhile: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
    let invites = rig.take_all(phone.addr, |m| is_request(m, &Method::Invite));
    assert_eq!(invites.len(), 6, "Timer A retransmissions");
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
    rig.check_ladder("timer_b");
}

#[test]
fn phone_rings_forever_ring_timeout() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 180);
    rig.expect_response(trunk.addr, 180, Method::Invite);
    rig.advance(secs(59));
    assert!(
        rig.take(
            trunk.addr,
            |m| matches!(m, Message::Response(r) if r.status >= 200)
        )
        .is_none(),
        "no final before the ring timeout"
    );
    rig.advance(Duration::from_millis(1100));
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(fin.status, 480);
    trunk.ack_failure(&mut rig, &call, &fin);
    let cancel = rig.expect_request(phone.addr, Method::Cancel);
    phone.respond(&mut rig, &cancel, 200);
    phone.answer(&mut rig, &leg, 487);
    rig.expect_request(phone.addr, Method::Ack);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
    rig.check_ladder("ring_timeout");
}

// ---------------------------------------------------------------------------------------------
// 7. Failures: busy, decline, nobody registered
// ---------------------------------------------------------------------------------------------

fn phone_refuses(status: u16) -> u16 {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 180);
    phone.answer(&mut rig, &leg, status);
    rig.expect_request(phone.addr, Method::Ack);
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    trunk.ack_failure(&mut rig, &call, &fin);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |m| is_response(m, 180, &Method::Invite));
    rig.assert_quiet(phone.addr, |_| false);
    fin.status
}

#[test]
fn phone_busy_486() {
    assert_eq!(phone_refuses(486), 486);
}

#[test]
fn phone_declines_603() {
    assert_eq!(phone_refuses(603), 603);
}

#[test]
fn nobody_registered_480() {
    let mut rig = Rig::new();
    let trunk = Caller::trunk(&mut rig);
    let call = trunk.invite(&mut rig, DIRECT, &[]);
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(fin.status, 480);
    trunk.ack_failure(&mut rig, &call, &fin);
    assert!(rig.opened.is_empty(), "no media for a refused call");
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |m| is_response(m, 100, &Method::Invite));
}

// ---------------------------------------------------------------------------------------------
// 8. Session timers (RFC 4028)
// ---------------------------------------------------------------------------------------------

const TIMER_HEADERS: &[(&str, &str)] = &[("Session-Expires", "120"), ("Supported", "timer")];

#[test]
fn session_timer_expires_without_refresh() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (_call, _leg, ok) = establish(&mut rig, &trunk, &phone, TIMER_HEADERS);
    let answered = rig.elapsed;
    let se = ok
        .headers
        .get(&HeaderName::SessionExpires)
        .expect("200 carries Session-Expires");
    assert_eq!(se.replace(' ', ""), "120;refresher=uac");

    rig.advance(secs(80));
    assert_eq!(rig.sb.n_calls(), 1, "still up at 80 s");
    // RFC 4028 §10: BYE slightly before expiry (at most min(32, SE/3) before); never after.
    let bye_a = rig.wait_for_request(trunk.addr, Method::Bye, secs(45));
    let at = rig.elapsed - answered;
    assert!(
        at >= secs(120 - 32) && at <= secs(120),
        "BYE at {at:?} after answer"
    );
    let bye_b = rig.expect_request(phone.addr, Method::Bye);
    trunk.respond(&mut rig, &bye_a, 200);
    phone.respond(&mut rig, &bye_b, 200);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
    rig.check_ladder("session_timer_expires");
}

#[test]
fn session_timer_refreshed_by_reinvite() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, _leg, _ok) = establish(&mut rig, &trunk, &phone, TIMER_HEADERS);
    let answered = rig.elapsed;

    rig.advance(secs(100));
    trunk.reinvite(
        &mut rig,
        &mut call,
        "sendrecv",
        &[
            ("Session-Expires", "120;refresher=uac"),
            ("Supported", "timer"),
        ],
    );
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    assert_eq!(
        ok.headers
            .get(&HeaderName::SessionExpires)
            .map(|s| s.replace(' ', ""))
            .as_deref(),
        Some("120;refresher=uac")
    );
    trunk.ack_reinvite(&mut rig, &call);
    let refreshed = rig.elapsed;

    rig.advance_to(answered + secs(150));
    assert_eq!(
        rig.sb.n_calls(),
        1,
        "the refresh keeps the call past the first 120 s"
    );
    assert!(
        rig.take(trunk.addr, |m| is_request(m, &Method::Bye))
            .is_none()
    );
    assert!(
        rig.take(phone.addr, |m| is_request(m, &Method::Bye))
            .is_none()
    );

    let bye_a = rig.wait_for_request(trunk.addr, Method::Bye, secs(100));
    let at = rig.elapsed - refreshed;
    assert!(
        at >= secs(120 - 32) && at <= secs(120),
        "BYE at {at:?} after the refresh"
    );
    let bye_b = rig.expect_request(phone.addr, Method::Bye);
    trunk.respond(&mut rig, &bye_a, 200);
    phone.respond(&mut rig, &bye_b, 200);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
    rig.check_ladder("session_timer_refreshed");
}

// ---------------------------------------------------------------------------------------------
// 9. Lost messages
// ---------------------------------------------------------------------------------------------

#[test]
fn lost_invite_to_phone_is_retransmitted() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    rig.drop_next(phone.addr, "INVITE", 1);
    let mut call = trunk.invite(&mut rig, DIRECT, &[]);
    rig.expect_response(trunk.addr, 100, Method::Invite);
    assert!(
        rig.take(phone.addr, |m| is_request(m, &Method::Invite))
            .is_none()
    );
    rig.advance(Duration::from_millis(500));
    let leg = phone.expect_invite(&mut rig);
    phone.answer(&mut rig, &leg, 200);
    rig.expect_request(phone.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    trunk.ack(&mut rig, &mut call, &ok);
    rig.advance(secs(5));
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

#[test]
fn lost_200_from_phone_is_reacked() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 180);
    rig.expect_response(trunk.addr, 180, Method::Invite);
    // The phone's first 200 is lost on the way (never delivered); it retransmits after T1.
    rig.advance(Duration::from_millis(500));
    phone.answer(&mut rig, &leg, 200);
    rig.expect_request(phone.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    trunk.ack(&mut rig, &mut call, &ok);
    // And the phone's ACK is lost too: the phone retransmits its 200, the switch ACKs again.
    rig.advance(Duration::from_millis(1000));
    phone.answer(&mut rig, &leg, 200);
    let acks = rig.take_all(phone.addr, |m| is_request(m, &Method::Ack));
    assert_eq!(acks.len(), 1, "a retransmitted 200 is ACKed again");
    assert_eq!(
        rig.received(trunk.addr, |m| is_response(m, 200, &Method::Invite))
            .len(),
        1,
        "the phone's retransmission is not forwarded"
    );
    rig.advance(secs(5));
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

#[test]
fn lost_ack_from_trunk_200_is_retransmitted() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 200);
    rig.expect_request(phone.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    // The trunk's ACK does not arrive: 200 again at 0.5, 1.5, 3.5 s (RFC 3261 §13.3.1.4).
    rig.advance(Duration::from_millis(3600));
    let again = rig.take_all(trunk.addr, |m| is_response(m, 200, &Method::Invite));
    assert_eq!(again.len(), 3, "200 retransmitted on T1, 2*T1, 4*T1");
    trunk.ack(&mut rig, &mut call, &ok);
    rig.advance(secs(20));
    assert!(
        rig.take(trunk.addr, |m| is_response(m, 200, &Method::Invite))
            .is_none(),
        "no 200 after the ACK"
    );
    assert_eq!(rig.sb.n_calls(), 1);
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
    rig.check_ladder("lost_ack");
}

#[test]
fn no_ack_from_trunk_ends_call() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (_call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 200);
    rig.expect_request(phone.addr, Method::Ack);
    rig.expect_response(trunk.addr, 200, Method::Invite);
    rig.advance(secs(31));
    assert_eq!(rig.sb.n_calls(), 1, "still waiting for the ACK at 31 s");
    assert!(
        rig.take(phone.addr, |m| is_request(m, &Method::Bye))
            .is_none()
    );
    let bye_b = rig.wait_for_request(phone.addr, Method::Bye, secs(2));
    phone.respond(&mut rig, &bye_b, 200);
    let bye_a = rig.expect_request(trunk.addr, Method::Bye);
    trunk.respond(&mut rig, &bye_a, 200);
    let retransmits = rig.take_all(trunk.addr, |m| is_response(m, 200, &Method::Invite));
    assert!(
        retransmits.len() >= 7,
        "200 retransmitted until Timer L, got {}",
        retransmits.len()
    );
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
    rig.check_ladder("no_ack_timer_l");
}

// ---------------------------------------------------------------------------------------------
// 11. Hold from the trunk
// ---------------------------------------------------------------------------------------------

#[test]
fn hold_from_trunk_answered_recvonly() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, _leg, _ok) = establish(&mut rig, &trunk, &phone, &[]);
    let key = rig.opened[0].0;
    let n_remotes = rig.remotes.len();
    rig.advance(secs(10));

    trunk.reinvite(&mut rig, &mut call, "sendonly", &[]);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    let (ip, port, dir) = sdp_summary(&ok.body);
    assert_eq!(dir.as_deref(), Some("recvonly"), "hold answered recvonly");
    assert_eq!(ip, Some(SWITCH_IP.parse().unwrap()));
    assert_eq!(port, rig.opened[0].1, "the A-leg port does not change");
    trunk.ack_reinvite(&mut rig, &call);
    let updated: Vec<_> = rig.remotes[n_remotes..]
        .iter()
        .filter(|r| r.call == key && r.leg == LegSide::A)
        .cloned()
        .collect();
    assert_eq!(
        updated.len(),
        1,
        "one MediaRemote for the A leg after the re-INVITE"
    );

    rig.advance(secs(10));
    trunk.reinvite(&mut rig, &mut call, "sendrecv", &[]);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    assert_eq!(
        sdp_summary(&ok.body).2.as_deref(),
        Some("sendrecv"),
        "resume answered sendrecv"
    );
    trunk.ack_reinvite(&mut rig, &call);
    assert_eq!(rig.sb.n_calls(), 1, "the call continues");
    rig.advance(secs(10));
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
    rig.check_ladder("hold_from_trunk");
}

// ---------------------------------------------------------------------------------------------
// 12. REGISTER at the core level, and an unknown caller
// ---------------------------------------------------------------------------------------------

#[test]
fn register_challenge_bind_and_remove() {
    let mut rig = Rig::new();
    let mut phone = Phone::new(&mut rig, "201", "127.0.0.1:5061", "phone1");
    let ok = phone.register(&mut rig, 600);
    let contact = ok
        .headers
        .get(&HeaderName::Contact)
        .expect("200 lists the bindings");
    let na = NameAddr::parse(contact).unwrap();
    assert_eq!(na.uri.to_string(), "sip:201@127.0.0.1:5061");
    assert_eq!(na.param("expires"), Some("600"));
    assert_eq!(rig.sb.n_bindings(), 1);
    assert_eq!(rig.saved.len(), 1);

    let ok = phone.register(&mut rig, 0);
    assert!(
        ok.headers.get(&HeaderName::Contact).is_none(),
        "no bindings left to list"
    );
    assert_eq!(rig.sb.n_bindings(), 0);
    assert_eq!(rig.deleted.len(), 1);
    assert_eq!(rig.deleted[0].contact_uri, "sip:201@127.0.0.1:5061");

    let brief = phone.try_register(&mut rig, 10);
    assert_eq!(brief.status, 423);
    assert_eq!(brief.headers.get(&HeaderName::MinExpires), Some("60"));
    assert_eq!(rig.sb.n_bindings(), 0);
    rig.assert_no_leaks();
    rig.check_ladder("register");
}

/// `Switchboard::n_bindings` is documented as "registered contacts across all extensions".
#[test]
fn n_bindings_counts_contacts() {
    let mut rig = Rig::new();
    let mut p1 = Phone::new(&mut rig, "201", "127.0.0.1:5061", "phone1");
    let mut p2 = Phone::new(&mut rig, "201", "127.0.0.1:5062", "phone2");
    p1.register(&mut rig, 3600);
    p2.register(&mut rig, 3600);
    assert_eq!(rig.saved.len(), 2);
    assert_eq!(rig.sb.n_bindings(), 2, "two contacts of 201 are registered");
}

#[test]
fn registration_expires() {
    let mut rig = Rig::new();
    let mut phone = Phone::new(&mut rig, "202", "127.0.0.1:5063", "phone3");
    phone.register(&mut rig, 60);
    rig.advance(secs(59));
    assert_eq!(rig.sb.n_bindings(), 1);
    rig.advance(secs(2));
    assert_eq!(rig.sb.n_bindings(), 0, "binding gone after its expiry");
    assert_eq!(rig.deleted.len(), 1, "expiry is persisted as DeleteBinding");
    rig.assert_no_leaks();
}

#[test]
fn wrong_password_is_refused() {
    let mut rig = Rig::new();
    let mut phone = Phone::new(&mut rig, "203", "127.0.0.1:5064", "phone4");
    phone.password = "wrong".into();
    let r = phone.try_register(&mut rig, 600);
    assert!(
        r.status == 401 || r.status == 403,
        "wrong password: {}",
        r.status
    );
    assert_eq!(rig.sb.n_bindings(), 0);
    rig.assert_no_leaks();
}

#[test]
fn invite_from_unknown_source_gets_407() {
    let mut rig = Rig::new();
    let _phone = phone_201(&mut rig);
    let stranger = Caller::at(&mut rig, "127.0.0.9:5060", "stranger");
    let call = stranger.invite(&mut rig, DIRECT, &[]);
    let fin = rig.expect_final(stranger.addr, Method::Invite);
    assert_eq!(fin.status, 407);
    assert!(
        fin.headers
            .get_all(&HeaderName::ProxyAuthenticate)
            .any(|c| c.contains("realm=\"centralino.example\""))
    );
    stranger.ack_failure(&mut rig, &call, &fin);
    assert!(rig.opened.is_empty());
    assert!(
        rig.take(addr("127.0.0.1:5061"), |m| is_request(m, &Method::Invite))
            .is_none(),
        "nothing rings"
    );
    rig.assert_no_leaks();
    rig.assert_quiet(stranger.addr, |_| false);
}

// ---------------------------------------------------------------------------------------------
// 10. Hours of calls in virtual time
// ---------------------------------------------------------------------------------------------

#[test]
fn a_thousand_calls_leave_nothing_behind() {
    let mut rig = Rig::new();
    rig.ladder_limit = Some(300);
    let mut phone = Phone::new(&mut rig, "201", "127.0.0.1:5061", "phone1");
    let trunk = Caller::trunk(&mut rig);
    let mut registered_at = None;
    let mut outcomes = [0u32; 5];
    for i in 0..1000u32 {
        if registered_at.is_none_or(|t| rig.elapsed - t > secs(1800)) {
            phone.register(&mut rig, 3600);
            registered_at = Some(rig.elapsed);
        }
        let kind = i % 5;
        outcomes[kind as usize] += 1;
        let (mut call, mut leg) = ring(&mut rig, &trunk, &phone, &[]);
        phone.answer(&mut rig, &leg, 180);
        rig.expect_response(trunk.addr, 180, Method::Invite);
        rig.advance(secs(2));
        match kind {
            // answered, the trunk hangs up
            0 | 1 => {
                phone.answer(&mut rig, &leg, 200);
                rig.expect_request(phone.addr, Method::Ack);
                let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
                trunk.ack(&mut rig, &mut call, &ok);
                rig.advance(secs(u64::from(30 + i % 7)));
                if kind == 0 {
                    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
                } else {
                    phone.bye(&mut rig, &mut leg);
                    rig.expect_response(phone.addr, 200, Method::Bye);
                    let bye = rig.expect_request(trunk.addr, Method::Bye);
                    trunk.respond(&mut rig, &bye, 200);
                }
            }
            // cancelled by the trunk
            2 => {
                trunk.cancel(&mut rig, &call);
                rig.expect_response(trunk.addr, 200, Method::Cancel);
                let t = rig.expect_response(trunk.addr, 487, Method::Invite);
                trunk.ack_failure(&mut rig, &call, &t);
                let cancel = rig.expect_request(phone.addr, Method::Cancel);
                phone.respond(&mut rig, &cancel, 200);
                phone.answer(&mut rig, &leg, 487);
                rig.expect_request(phone.addr, Method::Ack);
            }
            // busy
            3 => {
                phone.answer(&mut rig, &leg, 486);
                rig.expect_request(phone.addr, Method::Ack);
                let f = rig.expect_response(trunk.addr, 486, Method::Invite);
                trunk.ack_failure(&mut rig, &call, &f);
            }
            // CANCEL crossing the phone's 200
            _ => {
                trunk.cancel(&mut rig, &call);
                rig.expect_response(trunk.addr, 200, Method::Cancel);
                let t = rig.expect_final(trunk.addr, Method::Invite);
                trunk.ack_failure(&mut rig, &call, &t);
                let cancel = rig.expect_request(phone.addr, Method::Cancel);
                phone.answer(&mut rig, &leg, 200);
                phone.respond(&mut rig, &cancel, 200);
                rig.expect_request(phone.addr, Method::Ack);
                let bye = rig.expect_request(phone.addr, Method::Bye);
                phone.respond(&mut rig, &bye, 200);
            }
        }
        assert_eq!(
            rig.sb.n_calls(),
            0,
            "call {i} (kind {kind}) still in the table"
        );
        rig.advance(secs(5));
        if i % 50 == 49 {
            rig.clear_inboxes();
        }
    }
    assert!(
        rig.elapsed > secs(3 * 3600),
        "several virtual hours: {:?}",
        rig.elapsed
    );
    assert_eq!(rig.opened.len(), 1000);
    rig.assert_no_leaks();
    assert_eq!(outcomes, [200; 5]);
}

// ---------------------------------------------------------------------------------------------
// Edges around the scenarios above
// ---------------------------------------------------------------------------------------------

/// Both contacts answer 200 at the same instant: the first wins, the second is ACKed and hung
/// up, and the trunk still sees one 200.
#[test]
fn forking_both_answer() {
    let mut rig = Rig::new();
    let mut p1 = Phone::new(&mut rig, "201", "127.0.0.1:5061", "phone1");
    let mut p2 = Phone::new(&mut rig, "201", "127.0.0.1:5062", "phone2");
    p1.register(&mut rig, 3600);
    p2.register(&mut rig, 3600);
    let trunk = Caller::trunk(&mut rig);
    let mut call = trunk.invite(&mut rig, DIRECT, &[]);
    let leg1 = p1.expect_invite(&mut rig);
    let leg2 = p2.expect_invite(&mut rig);
    p1.answer(&mut rig, &leg1, 200);
    p2.answer(&mut rig, &leg2, 200);
    rig.expect_request(p1.addr, Method::Ack);
    rig.expect_request(p2.addr, Method::Ack);
    let bye = rig.expect_request(p2.addr, Method::Bye);
    assert_eq!(
        rig::to_tag(&bye.headers).as_deref(),
        Some(leg2.tag.as_str())
    );
    p2.respond(&mut rig, &bye, 200);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    trunk.ack(&mut rig, &mut call, &ok);
    assert_eq!(
        rig.received(trunk.addr, |m| is_response(m, 200, &Method::Invite))
            .len(),
        1
    );
    rig.advance(secs(10));
    trunk_hangs_up(&mut rig, &trunk, &p1, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |m| is_response(m, 100, &Method::Invite));
    rig.assert_quiet(p1.addr, |_| false);
    rig.assert_quiet(p2.addr, |_| false);
}

/// One contact is busy, the other rings and answers: busy alone does not end the call.
#[test]
fn forking_one_busy_other_answers() {
    let mut rig = Rig::new();
    let mut p1 = Phone::new(&mut rig, "201", "127.0.0.1:5061", "phone1");
    let mut p2 = Phone::new(&mut rig, "201", "127.0.0.1:5062", "phone2");
    p1.register(&mut rig, 3600);
    p2.register(&mut rig, 3600);
    let trunk = Caller::trunk(&mut rig);
    let mut call = trunk.invite(&mut rig, DIRECT, &[]);
    let leg1 = p1.expect_invite(&mut rig);
    let leg2 = p2.expect_invite(&mut rig);
    p1.answer(&mut rig, &leg1, 486);
    rig.expect_request(p1.addr, Method::Ack);
    assert!(
        rig.take(
            trunk.addr,
            |m| matches!(m, Message::Response(r) if r.status >= 200)
        )
        .is_none(),
        "one busy contact is not the final answer"
    );
    rig.advance(secs(3));
    p2.answer(&mut rig, &leg2, 180);
    rig.advance(secs(3));
    p2.answer(&mut rig, &leg2, 200);
    rig.expect_request(p2.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    trunk.ack(&mut rig, &mut call, &ok);
    rig.advance(secs(10));
    trunk_hangs_up(&mut rig, &trunk, &p2, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(p1.addr, |_| false);
    rig.assert_quiet(p2.addr, |m| is_request(m, &Method::Invite));
}

/// Both contacts fail: busy beats unavailable in the caller's answer.
#[test]
fn forking_all_fail_busy_wins() {
    let mut rig = Rig::new();
    let mut p1 = Phone::new(&mut rig, "201", "127.0.0.1:5061", "phone1");
    let mut p2 = Phone::new(&mut rig, "201", "127.0.0.1:5062", "phone2");
    p1.register(&mut rig, 3600);
    p2.register(&mut rig, 3600);
    let trunk = Caller::trunk(&mut rig);
    let call = trunk.invite(&mut rig, DIRECT, &[]);
    let leg1 = p1.expect_invite(&mut rig);
    let leg2 = p2.expect_invite(&mut rig);
    p1.answer(&mut rig, &leg1, 480);
    p2.answer(&mut rig, &leg2, 486);
    rig.expect_request(p1.addr, Method::Ack);
    rig.expect_request(p2.addr, Method::Ack);
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(fin.status, 486);
    trunk.ack_failure(&mut rig, &call, &fin);
    rig.assert_no_leaks();
}

/// A fork that has not sent any provisional yet when another answers: the CANCEL waits for
/// its first 1xx (RFC 3261 §9.1), and goes out then.
#[test]
fn forking_cancel_waits_for_provisional() {
    let mut rig = Rig::new();
    let mut p1 = Phone::new(&mut rig, "201", "127.0.0.1:5061", "phone1");
    let mut p2 = Phone::new(&mut rig, "201", "127.0.0.1:5062", "phone2");
    p1.register(&mut rig, 3600);
    p2.register(&mut rig, 3600);
    let trunk = Caller::trunk(&mut rig);
    let mut call = trunk.invite(&mut rig, DIRECT, &[]);
    let leg1 = p1.expect_invite(&mut rig);
    let leg2 = p2.expect_invite(&mut rig);
    p2.answer(&mut rig, &leg2, 200);
    rig.expect_request(p2.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    trunk.ack(&mut rig, &mut call, &ok);
    assert!(
        rig.take(p1.addr, |m| is_request(m, &Method::Cancel))
            .is_none(),
        "no CANCEL before a provisional"
    );
    // Phone 1 was slow: its 180 comes now.
    rig.take_all(p1.addr, |m| is_request(m, &Method::Invite)); // Timer A resends meanwhile
    rig.advance(Duration::from_millis(200));
    p1.answer(&mut rig, &leg1, 180);
    let cancel = rig.expect_request(p1.addr, Method::Cancel);
    p1.respond(&mut rig, &cancel, 200);
    p1.answer(&mut rig, &leg1, 487);
    rig.expect_request(p1.addr, Method::Ack);
    rig.advance(secs(10));
    trunk_hangs_up(&mut rig, &trunk, &p2, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(p1.addr, |m| is_request(m, &Method::Invite));
    rig.assert_quiet(p2.addr, |_| false);
}

/// The trunk CANCELs before the phone sent anything; the phone then rings: the switch CANCELs
/// it as soon as it may (first 1xx).
#[test]
fn trunk_cancels_before_phone_provisional() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    trunk.cancel(&mut rig, &call);
    rig.expect_response(trunk.addr, 200, Method::Cancel);
    let t = rig.expect_response(trunk.addr, 487, Method::Invite);
    trunk.ack_failure(&mut rig, &call, &t);
    assert!(
        rig.take(phone.addr, |m| is_request(m, &Method::Cancel))
            .is_none(),
        "no CANCEL before a provisional"
    );
    rig.advance(Duration::from_millis(100));
    phone.answer(&mut rig, &leg, 180);
    let cancel = rig.expect_request(phone.addr, Method::Cancel);
    phone.respond(&mut rig, &cancel, 200);
    phone.answer(&mut rig, &leg, 487);
    rig.expect_request(phone.addr, Method::Ack);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// The trunk CANCELs before the phone sent anything, and the phone answers 200 straight away:
/// ACK and BYE the phone, 487 (never 200) to the trunk.
#[test]
fn trunk_cancels_then_phone_answers_without_ringing() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    trunk.cancel(&mut rig, &call);
    rig.expect_response(trunk.addr, 200, Method::Cancel);
    let t = rig.expect_response(trunk.addr, 487, Method::Invite);
    trunk.ack_failure(&mut rig, &call, &t);
    phone.answer(&mut rig, &leg, 200);
    rig.expect_request(phone.addr, Method::Ack);
    let bye = rig.expect_request(phone.addr, Method::Bye);
    phone.respond(&mut rig, &bye, 200);
    assert!(
        rig.received(trunk.addr, |m| is_response(m, 200, &Method::Invite))
            .is_empty()
    );
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// The trunk's CANCEL arrives after the switch already sent 200: the CANCEL has no effect
/// (RFC 3261 §9.2), the trunk ACKs and the call goes on.
#[test]
fn cancel_after_200_has_no_effect() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 200);
    rig.expect_request(phone.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    trunk.cancel(&mut rig, &call);
    let cancel_resp = rig.expect_final(trunk.addr, Method::Cancel);
    assert!(
        cancel_resp.status == 200 || cancel_resp.status == 481,
        "CANCEL after 2xx: {}",
        cancel_resp.status
    );
    trunk.ack(&mut rig, &mut call, &ok);
    assert!(
        rig.received(trunk.addr, |m| is_response(m, 487, &Method::Invite))
            .is_empty(),
        "no 487 after a 200"
    );
    assert!(
        rig.take(phone.addr, |m| is_request(m, &Method::Cancel)
            || is_request(m, &Method::Bye))
            .is_none()
    );
    rig.advance(secs(10));
    assert_eq!(rig.sb.n_calls(), 1, "the call goes on");
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// The trunk hangs up before its ACK ever arrives (BYE may precede a lost ACK).
#[test]
fn trunk_bye_before_ack() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 200);
    rig.expect_request(phone.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    call.to_tag = rig::to_tag(&ok.headers);
    call.remote_target = rig::contact_uri(&ok.headers);
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.advance(secs(40));
    assert!(
        rig.take_all(trunk.addr, |m| is_request(m, &Method::Bye))
            .is_empty(),
        "no BYE back to a caller that hung up"
    );
    rig.take_all(trunk.addr, |m| is_response(m, 200, &Method::Invite));
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// The phone hangs up right after answering, before the trunk's ACK. RFC 3261 §15: the
/// switch (the trunk's UAS) must not send BYE before the ACK for its 2xx arrives (or Timer L).
#[test]
fn phone_bye_before_trunk_ack_waits_for_ack() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, mut leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 200);
    rig.expect_request(phone.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    phone.bye(&mut rig, &mut leg);
    rig.expect_response(phone.addr, 200, Method::Bye);
    assert!(
        rig.take(trunk.addr, |m| is_request(m, &Method::Bye))
            .is_none(),
        "RFC 3261 §15: BYE to the trunk before its ACK"
    );
    trunk.ack(&mut rig, &mut call, &ok);
    let bye = rig.expect_request(trunk.addr, Method::Bye);
    trunk.respond(&mut rig, &bye, 200);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// The trunk's ACK arrives after the call already ended (the phone hung up at once): the ACK
/// must still stop the 200 retransmissions (RFC 3261 §13.3.1.4).
#[test]
fn late_ack_stops_200_retransmissions() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, mut leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 200);
    rig.expect_request(phone.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    phone.bye(&mut rig, &mut leg);
    rig.expect_response(phone.addr, 200, Method::Bye);
    rig.advance(Duration::from_millis(100));
    trunk.ack(&mut rig, &mut call, &ok);
    if let Some(Message::Request(bye)) = rig.take(trunk.addr, |m| is_request(m, &Method::Bye)) {
        trunk.respond(&mut rig, &bye, 200);
    }
    rig.advance(secs(10));
    let again = rig.take_all(trunk.addr, |m| is_response(m, 200, &Method::Invite));
    assert!(
        again.is_empty(),
        "200 retransmitted {} times after the trunk's ACK",
        again.len()
    );
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// A BYE that crosses the other side's BYE: each side gets 200 or 481, nothing leaks.
#[test]
fn both_hang_up_at_once() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, mut leg, _) = establish(&mut rig, &trunk, &phone, &[]);
    rig.advance(secs(5));
    trunk.bye(&mut rig, &mut call);
    phone.bye(&mut rig, &mut leg);
    rig.expect_response(trunk.addr, 200, Method::Bye);
    let r = rig.expect_final(phone.addr, Method::Bye);
    assert!(r.status == 200 || r.status == 481);
    let bye = rig.expect_request(phone.addr, Method::Bye);
    phone.respond(&mut rig, &bye, 200);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// The media relay reports silence: the switch hangs up both legs.
#[test]
fn media_timeout_ends_call() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (_call, _leg, _) = establish(&mut rig, &trunk, &phone, &[]);
    let key = rig.opened[0].0;
    rig.advance(secs(30));
    rig.input(b2bua::Input::MediaTimeout { call: key });
    let a = rig.expect_request(trunk.addr, Method::Bye);
    let b = rig.expect_request(phone.addr, Method::Bye);
    trunk.respond(&mut rig, &a, 200);
    phone.respond(&mut rig, &b, 200);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// The driver could not bind the RTP ports while the phone rang: 480 (or 503) and CANCEL.
#[test]
fn media_failed_while_ringing() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 180);
    let key = rig.opened[0].0;
    rig.input(b2bua::Input::MediaFailed { call: key });
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    assert!(fin.status >= 400);
    trunk.ack_failure(&mut rig, &call, &fin);
    let cancel = rig.expect_request(phone.addr, Method::Cancel);
    phone.respond(&mut rig, &cancel, 200);
    phone.answer(&mut rig, &leg, 487);
    rig.expect_request(phone.addr, Method::Ack);
    rig.assert_no_leaks();
}

/// Hold from the phone's side: answered by the switch on the B leg.
#[test]
fn hold_from_phone() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, leg, _) = establish(&mut rig, &trunk, &phone, &[]);
    let key = rig.opened[0].0;
    let n = rig.remotes.len();
    // re-INVITE from the phone, in the B dialog.
    let inv = &leg.invite;
    let body =
        rig::sdp("127.0.0.1", leg.rtp_port, "sendonly").replace("o=peer 1000 1", "o=peer 1000 2");
    let headers = vec![
        (
            "Via",
            "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-hold-1;rport".to_owned(),
        ),
        ("Max-Forwards", "70".to_owned()),
        (
            "From",
            format!(
                "{};tag={}",
                inv.headers.get(&HeaderName::To).unwrap(),
                leg.tag
            ),
        ),
        ("To", inv.headers.get(&HeaderName::From).unwrap().to_owned()),
        ("Call-ID", inv.call_id().unwrap().to_owned()),
        ("CSeq", "1 INVITE".to_owned()),
        ("Contact", "<sip:201@127.0.0.1:5061>".to_owned()),
    ];
    let target = rig::contact_uri(&inv.headers).unwrap();
    rig.send(
        phone.addr,
        rig::message(&format!("INVITE {target} SIP/2.0"), &headers, &body),
    );
    let ok = rig.expect_response(phone.addr, 200, Method::Invite);
    assert_eq!(sdp_summary(&ok.body).2.as_deref(), Some("recvonly"));
    assert_eq!(
        sdp_summary(&ok.body).1,
        rig.opened[0].2,
        "B-leg port unchanged"
    );
    let ack_headers = vec![
        (
            "Via",
            "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-hold-ack;rport".to_owned(),
        ),
        ("Max-Forwards", "70".to_owned()),
        (
            "From",
            format!(
                "{};tag={}",
                inv.headers.get(&HeaderName::To).unwrap(),
                leg.tag
            ),
        ),
        ("To", ok.headers.get(&HeaderName::To).unwrap().to_owned()),
        ("Call-ID", inv.call_id().unwrap().to_owned()),
        ("CSeq", "1 ACK".to_owned()),
    ];
    let target = rig::contact_uri(&ok.headers).unwrap();
    rig.send(
        phone.addr,
        rig::message(&format!("ACK {target} SIP/2.0"), &ack_headers, ""),
    );
    assert!(
        rig.remotes[n..]
            .iter()
            .any(|r| r.call == key && r.leg == LegSide::B),
        "MediaRemote for B after the phone's re-INVITE"
    );
    rig.advance(secs(40));
    assert_eq!(rig.sb.n_calls(), 1);
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// RFC 4028 §9: a refresher named in the request is copied into the 2xx.
#[test]
fn session_timer_refresher_uas_requested() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (_call, _leg, ok) = establish(
        &mut rig,
        &trunk,
        &phone,
        &[
            ("Session-Expires", "120;refresher=uas"),
            ("Supported", "timer"),
        ],
    );
    let se = ok
        .headers
        .get(&HeaderName::SessionExpires)
        .map(|s| s.replace(' ', ""));
    assert_eq!(
        se.as_deref(),
        Some("120;refresher=uas"),
        "RFC 4028 §9: the UAS copies the refresher the request named"
    );
}

/// RFC 4028 §9: when the caller does not support timers (a proxy added Session-Expires), the
/// refresher must be the UAS: the caller will never refresh.
#[test]
fn session_timer_caller_without_support() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (_call, _leg, ok) = establish(&mut rig, &trunk, &phone, &[("Session-Expires", "120")]);
    let se = ok
        .headers
        .get(&HeaderName::SessionExpires)
        .map(|s| s.replace(' ', ""));
    assert_ne!(
        se.as_deref(),
        Some("120;refresher=uac"),
        "RFC 4028 §9: refresher=uac to a UAC without Supported: timer"
    );
    // A caller that knows nothing of timers never refreshes: the call must not be cut at 120 s.
    rig.advance(secs(130));
    assert_eq!(
        rig.sb.n_calls(),
        1,
        "call cut by a session timer the caller never agreed to"
    );
}

/// Session-Expires below 90 s: 422 with Min-SE (RFC 4028 §8.1).
#[test]
fn session_timer_too_small_422() {
    let mut rig = Rig::new();
    let _phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let call = trunk.invite(
        &mut rig,
        DIRECT,
        &[("Session-Expires", "60"), ("Supported", "timer")],
    );
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(fin.status, 422);
    assert_eq!(fin.headers.get(&HeaderName::MinSe), Some("90"));
    trunk.ack_failure(&mut rig, &call, &fin);
    rig.assert_no_leaks();
}

/// Retransmitted INVITE from the trunk: absorbed, one call, one fork.
#[test]
fn trunk_invite_retransmission_absorbed() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    rig.advance(Duration::from_millis(500));
    rig.send(trunk.addr, call.invite.to_bytes());
    assert_eq!(rig.sb.n_calls(), 1);
    assert_eq!(rig.opened.len(), 1);
    rig.take_all(trunk.addr, |m| is_response(m, 100, &Method::Invite));
    rig.take_all(phone.addr, |m| is_request(m, &Method::Invite));
    phone.answer(&mut rig, &leg, 200);
    rig.expect_request(phone.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    trunk.ack(&mut rig, &mut call, &ok);
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// Requests in a dialog the switch does not know get 481; OPTIONS outside a dialog gets 200.
#[test]
fn unknown_dialog_481_and_options() {
    let mut rig = Rig::new();
    let trunk = Caller::trunk(&mut rig);
    let mut ghost = Placed {
        invite: rig::parse_request(&rig::message(
            "INVITE sip:201@192.0.2.10 SIP/2.0",
            &[
                (
                    "Via",
                    "SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-ghost".to_owned(),
                ),
                ("From", "<sip:1@127.0.0.2>;tag=g1".to_owned()),
                ("To", "<sip:201@192.0.2.10>".to_owned()),
                ("Call-ID", "ghost@127.0.0.2".to_owned()),
                ("CSeq", "1 INVITE".to_owned()),
            ],
            "",
        )),
        to_tag: Some("nope".into()),
        remote_target: None,
        cseq: 1,
        rtp_port: 40000,
    };
    trunk.bye(&mut rig, &mut ghost);
    rig.expect_response(trunk.addr, 481, Method::Bye);
    let options = rig::message(
        "OPTIONS sip:192.0.2.10 SIP/2.0",
        &[
            (
                "Via",
                "SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-opt".to_owned(),
            ),
            ("Max-Forwards", "70".to_owned()),
            ("From", "<sip:ping@127.0.0.2>;tag=o1".to_owned()),
            ("To", "<sip:192.0.2.10>".to_owned()),
            ("Call-ID", "options@127.0.0.2".to_owned()),
            ("CSeq", "1 OPTIONS".to_owned()),
        ],
        "",
    );
    rig.send(trunk.addr, options);
    rig.expect_response(trunk.addr, 200, Method::Options);
    rig.assert_no_leaks();
}

/// Direct dial of another extension (202), and a call to a number nobody routes.
#[test]
fn direct_dial_other_extension() {
    let mut rig = Rig::new();
    let mut p = Phone::new(&mut rig, "202", "127.0.0.1:5065", "phone202");
    p.register(&mut rig, 3600);
    let trunk = Caller::trunk(&mut rig);
    let call = trunk.invite(&mut rig, "202", &[]);
    let leg = p.expect_invite(&mut rig);
    assert_eq!(leg.invite.uri_raw, "sip:202@127.0.0.1:5065");
    p.answer(&mut rig, &leg, 486);
    rig.expect_request(p.addr, Method::Ack);
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(fin.status, 486);
    trunk.ack_failure(&mut rig, &call, &fin);
    rig.assert_no_leaks();
}

/// A number the dialplan does not know: the router says `hangup:not-in-service`, which is a
/// permanent "no such number" (404), not a "try again later" (480).
#[test]
fn unknown_number_404() {
    let mut rig = Rig::new();
    let _phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let call = trunk.invite(&mut rig, "555123", &[]);
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    trunk.ack_failure(&mut rig, &call, &fin);
    rig.assert_no_leaks();
    assert_eq!(
        fin.status,
        404,
        "unknown number answered {} {} ({:?})",
        fin.status,
        fin.reason,
        fin.headers.get(&HeaderName::Warning)
    );
}

/// One seed reproduces a whole run, byte for byte.
#[test]
fn same_seed_same_ladder() {
    fn run() -> Vec<String> {
        let mut rig = Rig::new();
        let phone = phone_201(&mut rig);
        let trunk = Caller::trunk(&mut rig);
        let (mut call, _leg, _) = establish(&mut rig, &trunk, &phone, &[]);
        rig.advance(secs(3));
        trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
        rig.assert_no_leaks();
        let mut all = Vec::new();
        for at in [trunk.addr, phone.addr] {
            for r in rig.received(at, |_| true) {
                all.push(format!(
                    "{:?} {}",
                    r.at,
                    String::from_utf8_lossy(&match r.msg {
                        Message::Request(q) => q.to_bytes(),
                        Message::Response(p) => p.to_bytes(),
                    })
                ));
            }
        }
        all
    }
    assert_eq!(run(), run());
}

// ---------------------------------------------------------------------------------------------
// Extension callers, digest edges, abuse protection
// ---------------------------------------------------------------------------------------------

/// Extension 202 calls 201: challenged with 407, retried with Proxy-Authorization, rung.
#[test]
fn extension_calls_extension_with_digest() {
    let mut rig = Rig::new();
    let callee = phone_201(&mut rig);
    let creds = Phone::new(&mut rig, "202", "127.0.0.1:5065", "phone202");
    let mut caller = Caller::at(&mut rig, "127.0.0.1:5065", "phone202");
    caller.user = "202".into();
    let first = caller.invite(&mut rig, "201", &[]);
    let challenge = rig.expect_response(caller.addr, 407, Method::Invite);
    caller.ack_failure(&mut rig, &first, &challenge);
    let auth = creds.authorization(
        &challenge,
        &HeaderName::ProxyAuthenticate,
        "INVITE",
        &format!("sip:201@{SWITCH_IP}:5060"),
    );
    let mut call = caller.invite(&mut rig, "201", &[("Proxy-Authorization", &auth)]);
    rig.expect_response(caller.addr, 100, Method::Invite);
    let leg = callee.expect_invite(&mut rig);
    assert_eq!(
        user_of(leg.invite.headers.get(&HeaderName::From)).as_deref(),
        Some("202")
    );
    callee.answer(&mut rig, &leg, 200);
    rig.expect_request(callee.addr, Method::Ack);
    let ok = rig.expect_response(caller.addr, 200, Method::Invite);
    caller.ack(&mut rig, &mut call, &ok);
    rig.advance(secs(20));
    caller.bye(&mut rig, &mut call);
    rig.expect_response(caller.addr, 200, Method::Bye);
    let bye = rig.expect_request(callee.addr, Method::Bye);
    callee.respond(&mut rig, &bye, 200);
    rig.assert_no_leaks();
    rig.assert_quiet(caller.addr, |_| false);
    rig.assert_quiet(callee.addr, |_| false);
}

/// A digest answered after the nonce lifetime (300 s) gets a fresh challenge with stale=true.
#[test]
fn stale_nonce_gets_stale_challenge() {
    let mut rig = Rig::new();
    let phone = Phone::new(&mut rig, "201", "127.0.0.1:5061", "phone1");
    let register = |rig: &mut Rig, cseq: u32, auth: Option<&str>| {
        let mut headers = vec![
            (
                "Via",
                format!("SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-st-{cseq};rport"),
            ),
            ("Max-Forwards", "70".to_owned()),
            ("From", "<sip:201@centralino.example>;tag=st".to_owned()),
            ("To", "<sip:201@centralino.example>".to_owned()),
            ("Call-ID", "stale-1".to_owned()),
            ("CSeq", format!("{cseq} REGISTER")),
            ("Contact", "<sip:201@127.0.0.1:5061>".to_owned()),
            ("Expires", "600".to_owned()),
        ];
        if let Some(a) = auth {
            headers.push(("Authorization", a.to_owned()));
        }
        rig.send(
            addr("127.0.0.1:5061"),
            rig::message("REGISTER sip:centralino.example SIP/2.0", &headers, ""),
        );
        rig.expect_final(addr("127.0.0.1:5061"), Method::Register)
    };
    let challenge = register(&mut rig, 1, None);
    assert_eq!(challenge.status, 401);
    let auth = phone.authorization(
        &challenge,
        &HeaderName::WwwAuthenticate,
        "REGISTER",
        "sip:centralino.example",
    );
    rig.advance(secs(301));
    let again = register(&mut rig, 2, Some(&auth));
    assert_eq!(again.status, 401);
    assert!(
        again
            .headers
            .get_all(&HeaderName::WwwAuthenticate)
            .any(|c| c.replace(' ', "").contains("stale=true")),
        "stale=true expected"
    );
    assert_eq!(rig.sb.n_bindings(), 0);
    // The same credentials, fresh nonce: accepted; replayed (same nonce, same nc): refused.
    let auth = phone.authorization(
        &again,
        &HeaderName::WwwAuthenticate,
        "REGISTER",
        "sip:centralino.example",
    );
    assert_eq!(register(&mut rig, 3, Some(&auth)).status, 200);
    assert_eq!(
        register(&mut rig, 4, Some(&auth)).status,
        401,
        "a replayed nc must be refused"
    );
    rig.assert_no_leaks();
}

/// 20 failed digests in a minute from one address: ignored for 60 s, then answered again.
#[test]
fn abusive_source_is_ignored_then_forgiven() {
    let mut rig = Rig::new();
    let _phone = phone_201(&mut rig);
    let stranger = Caller::at(&mut rig, "127.0.0.9:5060", "stranger");
    let bad = "Digest username=\"201\", realm=\"centralino.example\", nonce=\"bm90LWEtbm9uY2U\", uri=\"sip:201@192.0.2.10:5060\", response=\"00000000000000000000000000000000\", algorithm=MD5";
    for i in 0..20 {
        let call = stranger.invite(&mut rig, "201", &[("Proxy-Authorization", bad)]);
        let fin = rig.expect_final(stranger.addr, Method::Invite);
        assert!(
            fin.status == 403 || fin.status == 407,
            "attempt {i}: {}",
            fin.status
        );
        stranger.ack_failure(&mut rig, &call, &fin);
    }
    stranger.invite(&mut rig, "201", &[]);
    assert!(
        rig.take(stranger.addr, |_| true).is_none(),
        "a banned source gets no answer"
    );
    rig.advance(secs(61));
    rig.take_all(stranger.addr, |_| true);
    let call = stranger.invite(&mut rig, "201", &[]);
    let fin = rig.expect_final(stranger.addr, Method::Invite);
    assert_eq!(fin.status, 407, "answered again after the ban");
    stranger.ack_failure(&mut rig, &call, &fin);
    rig.assert_no_leaks();
}

/// The trunk is never penalised, however many bad requests it sends.
#[test]
fn trunk_is_never_penalised() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    for i in 0..25 {
        let bad = rig::message(
            &format!("INVITE sip:{DIRECT}@192.0.2.10 SIP/2.0"),
            &[
                (
                    "Via",
                    format!("SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-bad-{i}"),
                ),
                ("Max-Forwards", "70".to_owned()),
                ("From", "<sip:x@127.0.0.2>;tag=b".to_owned()),
                ("To", "<sip:y@192.0.2.10>".to_owned()),
                ("Call-ID", format!("bad-{i}")),
                ("CSeq", "1 BYE".to_owned()),
            ],
            "",
        );
        rig.send(trunk.addr, bad);
        let r = rig.expect_final(trunk.addr, Method::Bye);
        assert_eq!(r.status, 400);
    }
    let (mut call, _leg, _) = establish(&mut rig, &trunk, &phone, &[]);
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
}

/// Max-Forwards: 0 gets 483; Require of an unknown extension gets 420 with Unsupported.
#[test]
fn invite_refusals_483_420() {
    let mut rig = Rig::new();
    let _phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let mut placed = trunk.invite(&mut rig, DIRECT, &[("Require", "100rel")]);
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(fin.status, 420);
    assert_eq!(fin.headers.get(&HeaderName::Unsupported), Some("100rel"));
    trunk.ack_failure(&mut rig, &placed, &fin);

    let text = String::from_utf8(trunk_invite_bytes(&mut rig, &trunk, "0")).unwrap();
    rig.send(trunk.addr, &text);
    placed.invite = rig::parse_request(text.as_bytes());
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(fin.status, 483);
    trunk.ack_failure(&mut rig, &placed, &fin);
    assert!(rig.opened.is_empty());
    rig.assert_no_leaks();
}

fn trunk_invite_bytes(rig: &mut Rig, trunk: &Caller, max_forwards: &str) -> Vec<u8> {
    let n = rig.unique();
    rig::message(
        &format!("INVITE sip:{DIRECT}@192.0.2.10 SIP/2.0"),
        &[
            (
                "Via",
                format!("SIP/2.0/UDP {};branch=z9hG4bK-mf-{n}", trunk.addr),
            ),
            ("Max-Forwards", max_forwards.to_owned()),
            ("From", format!("<sip:{}@127.0.0.2>;tag=mf-{n}", trunk.user)),
            ("To", format!("<sip:{DIRECT}@192.0.2.10>")),
            ("Call-ID", format!("mf-{n}")),
            ("CSeq", "1 INVITE".to_owned()),
            ("Contact", "<sip:0612345678@127.0.0.2:5060>".to_owned()),
        ],
        &rig::sdp("127.0.0.2", 40100, "sendrecv"),
    )
}

// ---------------------------------------------------------------------------------------------
// Early media, UPDATE refresh, many calls at once
// ---------------------------------------------------------------------------------------------

/// 183 with SDP: the trunk gets 183 with the switch's answer, then the 200 carries the same
/// answer (RFC 3264: one answer per offer).
#[test]
fn early_media_183_then_200() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer_with_sdp(&mut rig, &leg, 183);
    let early = rig.expect_response(trunk.addr, 183, Method::Invite);
    assert!(!early.body.is_empty(), "183 carries SDP");
    let key = rig.opened[0].0;
    assert!(rig.remotes.iter().any(|r| r.call == key
        && r.leg == LegSide::B
        && r.rtp == Some(addr(&format!("127.0.0.1:{}", leg.rtp_port)))));
    rig.advance(secs(4));
    phone.answer(&mut rig, &leg, 200);
    rig.expect_request(phone.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    assert_eq!(ok.body, early.body, "the 200 repeats the early answer");
    assert_eq!(
        rig::to_tag(&ok.headers),
        rig::to_tag(&early.headers),
        "one dialog with the trunk"
    );
    trunk.ack(&mut rig, &mut call, &ok);
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// The trunk refreshes the session with UPDATE (RFC 4028 allows either method).
#[test]
fn session_timer_refreshed_by_update() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, _leg, _) = establish(&mut rig, &trunk, &phone, TIMER_HEADERS);
    rig.advance(secs(60));
    call.cseq += 1;
    let update = trunk.in_dialog(
        &mut rig,
        &call,
        Method::Update,
        call.cseq,
        &[("Session-Expires", "120;refresher=uac")],
        "",
    );
    rig.send(trunk.addr, update.to_bytes());
    let ok = rig.expect_response(trunk.addr, 200, Method::Update);
    assert!(ok.headers.get(&HeaderName::SessionExpires).is_some());
    rig.advance(secs(100));
    assert_eq!(rig.sb.n_calls(), 1, "UPDATE refreshed the session");
    let bye_a = rig.wait_for_request(trunk.addr, Method::Bye, secs(30));
    let bye_b = rig.expect_request(phone.addr, Method::Bye);
    trunk.respond(&mut rig, &bye_a, 200);
    phone.respond(&mut rig, &bye_b, 200);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// Twenty calls up at once to one phone: distinct media ports, each hung up from either side.
#[test]
fn twenty_calls_at_once() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let mut calls = Vec::new();
    for _ in 0..20 {
        calls.push(establish(&mut rig, &trunk, &phone, &[]));
        rig.advance(Duration::from_millis(300));
    }
    assert_eq!(rig.sb.n_calls(), 20);
    assert_eq!(rig.sb.media_ports_in_use(), 40);
    let mut ports: Vec<u16> = rig.opened.iter().flat_map(|o| [o.1, o.2]).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 40, "every leg has its own port");
    for (i, (call, leg, _)) in calls.iter_mut().enumerate() {
        if i % 2 == 0 {
            trunk_hangs_up(&mut rig, &trunk, &phone, call);
        } else {
            phone.bye(&mut rig, leg);
            rig.expect_response(phone.addr, 200, Method::Bye);
            let bye = rig.expect_request(trunk.addr, Method::Bye);
            assert_eq!(
                bye.call_id(),
                call.invite.call_id(),
                "BYE for the right call"
            );
            trunk.respond(&mut rig, &bye, 200);
        }
        rig.advance(Duration::from_millis(700));
    }
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

// ---------------------------------------------------------------------------------------------
// Offer/answer edges and unanswered requests
// ---------------------------------------------------------------------------------------------

/// The phone answers 200 with an SDP that shares no codec with the offer. The trunk offered
/// SDP, so a 200 without an answer is a protocol error (RFC 3261 §13.2.1, RFC 3264): the switch
/// must not forward a body-less 200; it should hang the phone up and fail the caller.
#[test]
fn phone_answer_without_common_codec() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    let mut resp = leg.invite.make_response(200, "OK", Some(&leg.tag));
    resp.headers
        .push(HeaderName::Contact, "<sip:201@127.0.0.1:5061>");
    resp.headers
        .push(HeaderName::ContentType, "application/sdp");
    resp.body = b"v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n".to_vec();
    rig.send(phone.addr, resp.to_bytes());
    rig.expect_request(phone.addr, Method::Ack);
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    assert!(
        fin.status >= 300 || !fin.body.is_empty(),
        "200 without SDP answer sent to the trunk"
    );
    if fin.status >= 300 {
        trunk.ack_failure(&mut rig, &call, &fin);
        let bye = rig.expect_request(phone.addr, Method::Bye);
        phone.respond(&mut rig, &bye, 200);
    }
    rig.assert_no_leaks();
}

/// A re-INVITE without SDP (a common RFC 4028 refresh): the 200 must carry an offer
/// (RFC 3261 §14.2, RFC 3264 §5), and the ACK then carries the answer.
#[test]
fn reinvite_without_sdp_gets_offer() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, _leg, _) = establish(&mut rig, &trunk, &phone, &[]);
    rig.advance(secs(10));
    call.cseq += 1;
    let reinvite = trunk.in_dialog(&mut rig, &call, Method::Invite, call.cseq, &[], "");
    rig.send(trunk.addr, reinvite.to_bytes());
    let ok = rig.expect_final(trunk.addr, Method::Invite);
    trunk.ack_reinvite(&mut rig, &call);
    let status = ok.status;
    let has_offer = !ok.body.is_empty();
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    assert_eq!(status, 200);
    assert!(
        has_offer,
        "200 to an offer-less re-INVITE must carry an SDP offer"
    );
}

/// The trunk never answers the switch's BYE: Timer F ends the transaction, nothing leaks.
#[test]
fn bye_never_answered() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (_call, mut leg, _) = establish(&mut rig, &trunk, &phone, &[]);
    phone.bye(&mut rig, &mut leg);
    rig.expect_response(phone.addr, 200, Method::Bye);
    rig.advance(secs(40));
    let byes = rig.take_all(trunk.addr, |m| is_request(m, &Method::Bye));
    assert_eq!(
        byes.len(),
        11,
        "BYE sent then retransmitted on Timer E until Timer F"
    );
    rig.assert_no_leaks();
}

/// The switch's ACK for the phone's 200 is lost and the call ends at once; the phone's 200
/// retransmission must still be ACKed, or the phone keeps a half-open dialog
/// (RFC 3261 §13.2.2.4: every 2xx retransmission is ACKed).
#[test]
fn phone_200_retransmission_after_call_ended_is_acked() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    rig.drop_next(phone.addr, "ACK", 1);
    phone.answer(&mut rig, &leg, 200);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    trunk.ack(&mut rig, &mut call, &ok);
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.advance(Duration::from_millis(500));
    phone.answer(&mut rig, &leg, 200);
    let acks = rig.take_all(phone.addr, |m| is_request(m, &Method::Ack));
    rig.assert_no_leaks();
    assert_eq!(
        acks.len(),
        1,
        "the 200 retransmitted after the call ended was not ACKed"
    );
}

/// The trunk hangs up an early dialog with BYE (RFC 3261 §15: the caller may BYE an early
/// dialog). The switch must answer the pending INVITE (487, §15.1.2), CANCEL the ringing phone,
/// and leave no transaction behind.
#[test]
fn trunk_bye_in_early_dialog() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 180);
    let ringing = rig.expect_response(trunk.addr, 180, Method::Invite);
    call.to_tag = rig::to_tag(&ringing.headers);
    call.remote_target = rig::contact_uri(&ringing.headers);
    rig.advance(secs(3));
    trunk.bye(&mut rig, &mut call);
    rig.expect_response(trunk.addr, 200, Method::Bye);
    let cancel = rig.wait_for(phone.addr, secs(1), |m| is_request(m, &Method::Cancel));
    if let Some(Message::Request(cancel)) = &cancel {
        phone.respond(&mut rig, cancel, 200);
        phone.answer(&mut rig, &leg, 487);
        rig.expect_request(phone.addr, Method::Ack);
    }
    let fin = rig.take(trunk.addr, |m| matches!(m, Message::Response(r) if r.status >= 200 && rig::cseq_method(m) == Some(Method::Invite)));
    if let Some(Message::Response(fin)) = &fin {
        trunk.ack_failure(&mut rig, &call, fin);
    }
    rig.advance(SETTLE);
    let (n_tx, n_calls) = (rig.sb.n_transactions(), rig.sb.n_calls());
    assert!(
        cancel.is_some()
            && fin
                .as_ref()
                .is_some_and(|m| matches!(m, Message::Response(r) if r.status == 487))
            && n_tx == 0
            && n_calls == 0,
        "after an early-dialog BYE: CANCEL to the phone: {}; final to the trunk's INVITE: {:?}; transactions left after {SETTLE:?}: {n_tx}; calls left: {n_calls}",
        cancel.is_some(),
        fin.map(|m| rig::summary(&m)),
    );
    rig.assert_no_leaks();
}

/// REGISTER without Contact lists the bindings; `Contact: *` with `Expires: 0` removes them all.
#[test]
fn register_query_and_wildcard_removal() {
    let mut rig = Rig::new();
    let mut p1 = Phone::new(&mut rig, "201", "127.0.0.1:5061", "phone1");
    let mut p2 = Phone::new(&mut rig, "201", "127.0.0.1:5062", "phone2");
    p1.register(&mut rig, 3600);
    p2.register(&mut rig, 1800);
    let send = |rig: &mut Rig,
                cseq: u32,
                contact: Option<&str>,
                expires: Option<&str>,
                auth: Option<&str>| {
        let mut headers = vec![
            (
                "Via",
                format!("SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-q-{cseq};rport"),
            ),
            ("Max-Forwards", "70".to_owned()),
            ("From", "<sip:201@centralino.example>;tag=q".to_owned()),
            ("To", "<sip:201@centralino.example>".to_owned()),
            ("Call-ID", "query-1".to_owned()),
            ("CSeq", format!("{cseq} REGISTER")),
        ];
        if let Some(c) = contact {
            headers.push(("Contact", c.to_owned()));
        }
        if let Some(e) = expires {
            headers.push(("Expires", e.to_owned()));
        }
        if let Some(a) = auth {
            headers.push(("Authorization", a.to_owned()));
        }
        rig.send(
            addr("127.0.0.1:5061"),
            rig::message("REGISTER sip:centralino.example SIP/2.0", &headers, ""),
        );
        rig.expect_final(addr("127.0.0.1:5061"), Method::Register)
    };
    let ch = send(&mut rig, 1, None, None, None);
    assert_eq!(ch.status, 401);
    let auth = p1.authorization(
        &ch,
        &HeaderName::WwwAuthenticate,
        "REGISTER",
        "sip:centralino.example",
    );
    let listed = send(&mut rig, 2, None, None, Some(&auth));
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.headers.values(&HeaderName::Contact).map(|v| v.len()),
        Some(2),
        "a query lists both bindings"
    );

    let ch = send(&mut rig, 3, Some("*"), Some("0"), None);
    let auth = p1.authorization(
        &ch,
        &HeaderName::WwwAuthenticate,
        "REGISTER",
        "sip:centralino.example",
    );
    let removed = send(&mut rig, 4, Some("*"), Some("0"), Some(&auth));
    assert_eq!(removed.status, 200);
    assert_eq!(rig.deleted.len(), 2, "both bindings deleted");
    assert_eq!(rig.sb.n_bindings(), 0);
    rig.assert_no_leaks();
}

/// The phone accepts the CANCEL (200) but never sends the 487: RFC 3261 §9.1 says to give the
/// INVITE up 64*T1 after the CANCEL, so nothing may stay behind.
#[test]
fn cancelled_phone_never_sends_487() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 180);
    trunk.cancel(&mut rig, &call);
    rig.expect_response(trunk.addr, 200, Method::Cancel);
    let t = rig.expect_response(trunk.addr, 487, Method::Invite);
    trunk.ack_failure(&mut rig, &call, &t);
    let cancel = rig.expect_request(phone.addr, Method::Cancel);
    phone.respond(&mut rig, &cancel, 200);
    rig.assert_no_leaks();
}

/// A phone that rings and then goes silent (crashed, unplugged): the ring timeout CANCELs it,
/// nothing answers the CANCEL or the INVITE; everything must still end.
#[test]
fn ringing_phone_vanishes() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 180);
    let fin = rig.wait_for(
        trunk.addr,
        secs(61),
        |m| matches!(m, Message::Response(r) if r.status >= 200),
    );
    let Some(Message::Response(fin)) = fin else {
        panic!("no final response to the trunk")
    };
    assert_eq!(fin.status, 480);
    trunk.ack_failure(&mut rig, &call, &fin);
    rig.assert_no_leaks();
}

/// `Output::MediaRemote` is documented as "`None` while on hold": a trunk that puts the call
/// on hold (a=sendonly, RFC 3264 §8.4) or a=inactive receives nothing, so the relay must stop
/// sending to it; resuming gives the address back.
#[test]
fn hold_clears_media_remote() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, _leg, _) = establish(&mut rig, &trunk, &phone, &[]);
    let key = rig.opened[0].0;
    let last_a = |rig: &Rig| {
        rig.remotes
            .iter()
            .rev()
            .find(|r| r.call == key && r.leg == LegSide::A)
            .map(|r| r.rtp)
    };
    let mut seen = Vec::new();
    for dir in ["sendonly", "inactive", "sendrecv"] {
        trunk.reinvite(&mut rig, &mut call, dir, &[]);
        rig.expect_response(trunk.addr, 200, Method::Invite);
        trunk.ack_reinvite(&mut rig, &call);
        seen.push((dir, last_a(&rig).flatten()));
    }
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    let trunk_rtp = Some(addr(&format!("127.0.0.2:{}", call.rtp_port)));
    assert_eq!(
        seen,
        vec![
            ("sendonly", None),
            ("inactive", None),
            ("sendrecv", trunk_rtp)
        ],
        "MediaRemote for A after hold, inactive, resume"
    );
}

/// A re-INVITE that moves the trunk's media to a new port updates the A-leg remote.
#[test]
fn reinvite_moves_media() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, _leg, _) = establish(&mut rig, &trunk, &phone, &[]);
    let key = rig.opened[0].0;
    call.rtp_port = 41234;
    trunk.reinvite(&mut rig, &mut call, "sendrecv", &[]);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    assert_eq!(sdp_summary(&ok.body).1, rig.opened[0].1);
    trunk.ack_reinvite(&mut rig, &call);
    let last = rig
        .remotes
        .iter()
        .rev()
        .find(|r| r.call == key && r.leg == LegSide::A)
        .and_then(|r| r.rtp);
    assert_eq!(last, Some(addr("127.0.0.2:41234")));
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

// ---------------------------------------------------------------------------------------------
// NAT, TCP, Record-Route, codecs, long calls
// ---------------------------------------------------------------------------------------------

/// A phone behind NAT registers a private Contact: INVITE and BYE go to the REGISTER's source
/// address, while the Request-URI stays the Contact.
#[test]
fn natted_phone_reached_at_register_source() {
    let mut rig = Rig::new();
    let mut phone = Phone::new(&mut rig, "201", "127.0.0.1:40000", "natphone");
    phone.contact = Some("10.0.0.5:5060".into());
    phone.register(&mut rig, 3600);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, leg, _) = establish(&mut rig, &trunk, &phone, &[]);
    assert_eq!(leg.invite.uri_raw, "sip:201@10.0.0.5:5060");
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(phone.addr, |_| false);
}

/// A phone registered over TCP: every request to it goes over its connection, nothing is
/// retransmitted, and reliable-transport timers end the transactions.
#[test]
fn tcp_phone_call() {
    let mut rig = Rig::new();
    let mut phone = Phone::new(&mut rig, "201", "127.0.0.1:5070", "tcpphone");
    phone.transport = "TCP";
    rig.use_tcp(phone.addr);
    phone.register(&mut rig, 3600);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    assert!(
        leg.invite
            .top_via()
            .is_some_and(|v| v.transport.eq_ignore_ascii_case("TCP")),
        "Via says TCP"
    );
    rig.advance(secs(5));
    assert!(
        rig.take(phone.addr, |m| is_request(m, &Method::Invite))
            .is_none(),
        "no retransmission over TCP"
    );
    phone.answer(&mut rig, &leg, 200);
    rig.expect_request(phone.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    trunk.ack(&mut rig, &mut call, &ok);
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    assert!(
        rig.transports_to(phone.addr)
            .iter()
            .all(|t| *t == sip_core::Transport::Tcp),
        "everything to the TCP phone over TCP"
    );
    assert!(
        rig.transports_to(trunk.addr)
            .iter()
            .all(|t| *t == sip_core::Transport::Udp)
    );
    rig.assert_quiet(phone.addr, |_| false);
}

/// Record-Route from the trunk's side is echoed in the 200 and becomes the route set of the
/// switch's BYE (RFC 3261 §12.1.1, §12.2.1.1).
#[test]
fn record_route_from_trunk() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let rr = "<sip:edge.provider.example;lr>";
    let (_call, mut leg, ok) = establish(&mut rig, &trunk, &phone, &[("Record-Route", rr)]);
    assert_eq!(ok.headers.get(&HeaderName::RecordRoute), Some(rr));
    phone.bye(&mut rig, &mut leg);
    rig.expect_response(phone.addr, 200, Method::Bye);
    let bye = rig.expect_request(trunk.addr, Method::Bye);
    assert_eq!(bye.headers.get(&HeaderName::Route), Some(rr));
    assert_eq!(bye.uri_raw, "sip:0612345678@127.0.0.2:5060");
    trunk.respond(&mut rig, &bye, 200);
    rig.assert_no_leaks();
}

/// An offer with no codec the switch knows: 488, no media opened.
#[test]
fn offer_without_known_codec_488() {
    let mut rig = Rig::new();
    let _phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let body = "v=0\r\no=t 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    let bytes = rig::message(
        &format!("INVITE sip:{DIRECT}@192.0.2.10 SIP/2.0"),
        &[
            (
                "Via",
                "SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-729".to_owned(),
            ),
            ("Max-Forwards", "70".to_owned()),
            ("From", "<sip:0612345678@127.0.0.2>;tag=729".to_owned()),
            ("To", format!("<sip:{DIRECT}@192.0.2.10>")),
            ("Call-ID", "g729@127.0.0.2".to_owned()),
            ("CSeq", "1 INVITE".to_owned()),
            ("Contact", "<sip:0612345678@127.0.0.2:5060>".to_owned()),
        ],
        body,
    );
    rig.send(trunk.addr, &bytes);
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(fin.status, 488);
    let placed = Placed {
        invite: rig::parse_request(&bytes),
        to_tag: None,
        remote_target: None,
        cseq: 1,
        rtp_port: 40000,
    };
    trunk.ack_failure(&mut rig, &placed, &fin);
    assert!(
        rig.take(addr("127.0.0.1:5061"), |m| is_request(m, &Method::Invite))
            .is_none()
    );
    rig.assert_no_leaks();
}

/// A two-hour call kept alive by refreshes every 60 s (half the interval, RFC 4028 §10).
#[test]
fn two_hour_call_with_refreshes() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, _leg, _) = establish(&mut rig, &trunk, &phone, TIMER_HEADERS);
    for _ in 0..120 {
        rig.advance(secs(60));
        trunk.reinvite(
            &mut rig,
            &mut call,
            "sendrecv",
            &[
                ("Session-Expires", "120;refresher=uac"),
                ("Supported", "timer"),
            ],
        );
        rig.expect_response(trunk.addr, 200, Method::Invite);
        trunk.ack_reinvite(&mut rig, &call);
    }
    assert_eq!(rig.sb.n_calls(), 1);
    assert!(
        rig.take(trunk.addr, |m| is_request(m, &Method::Bye))
            .is_none()
    );
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// `refresher=uas`: the switch refreshes the session itself at half the interval (re-INVITE
/// with the current SDP, the trunk not allowing UPDATE), keeps the call past the interval, and
/// ends both legs when a refresh gets 481 (RFC 4028 §10).
#[test]
fn session_timer_switch_refreshes_with_reinvite() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, _leg, ok) = establish(
        &mut rig,
        &trunk,
        &phone,
        &[
            ("Session-Expires", "120;refresher=uas"),
            ("Supported", "timer"),
        ],
    );
    assert_eq!(
        ok.headers
            .get(&HeaderName::SessionExpires)
            .map(|s| s.replace(' ', ""))
            .as_deref(),
        Some("120;refresher=uas")
    );
    let answered = rig.elapsed;
    let mut last = answered;
    for round in 0..2 {
        let refresh = rig.wait_for_request(trunk.addr, Method::Invite, secs(70));
        let gap = rig.elapsed - last;
        assert!(
            gap >= secs(40) && gap <= secs(70),
            "refresh {round} after {gap:?}, expected about SE/2"
        );
        assert_eq!(
            rig::to_tag(&refresh.headers),
            NameAddr::parse(call.invite.headers.get(&HeaderName::From).unwrap())
                .unwrap()
                .tag()
                .map(str::to_owned)
        );
        assert!(
            !refresh.body.is_empty(),
            "a refreshing re-INVITE carries the session's SDP"
        );
        assert_eq!(
            sdp_summary(&refresh.body).1,
            rig.opened[0].1,
            "same A-leg port"
        );
        trunk.answer_refresh(&mut rig, &call, &refresh);
        rig.expect_request(trunk.addr, Method::Ack);
        last = rig.elapsed;
    }
    assert!(rig.elapsed - answered >= secs(120));
    assert_eq!(rig.sb.n_calls(), 1, "refreshed by the switch itself");
    let refresh = rig.wait_for_request(trunk.addr, Method::Invite, secs(70));
    trunk.respond(&mut rig, &refresh, 481);
    rig.expect_request(trunk.addr, Method::Ack); // the transaction's ACK for a non-2xx
    let bye_b = rig.wait_for_request(phone.addr, Method::Bye, secs(1));
    phone.respond(&mut rig, &bye_b, 200);
    if let Some(Message::Request(bye_a)) = rig.take(trunk.addr, |m| is_request(m, &Method::Bye)) {
        trunk.respond(&mut rig, &bye_a, 200);
    }
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// The same with a trunk that allows UPDATE: the refresh is an UPDATE (no SDP needed); a
/// trunk that stops answering ends the call when the refresh times out.
#[test]
fn session_timer_switch_refreshes_with_update() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, _leg, _) = establish(
        &mut rig,
        &trunk,
        &phone,
        &[
            ("Session-Expires", "120;refresher=uas"),
            ("Supported", "timer"),
            ("Allow", "UPDATE"),
        ],
    );
    let refresh = rig.wait_for_request(trunk.addr, Method::Update, secs(70));
    trunk.answer_refresh(&mut rig, &call, &refresh);
    rig.advance(secs(40));
    assert_eq!(rig.sb.n_calls(), 1);
    // The trunk vanishes: the next UPDATE is never answered.
    let _unanswered = rig.wait_for_request(trunk.addr, Method::Update, secs(30));
    let bye_b = rig.wait_for_request(phone.addr, Method::Bye, secs(90));
    phone.respond(&mut rig, &bye_b, 200);
    rig.take_all(trunk.addr, |m| {
        is_request(m, &Method::Update) || is_request(m, &Method::Bye)
    });
    rig.assert_no_leaks();
    rig.assert_quiet(phone.addr, |_| false);
}

/// Offer-less re-INVITE, continued: the trunk's answer comes in the ACK (RFC 3264 §4,
/// RFC 3261 §13.2.1) and may move its media; the relay must learn the new address from it.
#[test]
fn answer_in_ack_updates_media_remote() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, _leg, _) = establish(&mut rig, &trunk, &phone, &[]);
    let key = rig.opened[0].0;
    rig.advance(secs(10));
    call.cseq += 1;
    let reinvite = trunk.in_dialog(&mut rig, &call, Method::Invite, call.cseq, &[], "");
    rig.send(trunk.addr, reinvite.to_bytes());
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    let (ip, port, _) = sdp_summary(&ok.body);
    assert_eq!(
        (ip, port),
        (Some(SWITCH_IP.parse().unwrap()), rig.opened[0].1),
        "the offer names the A-leg port"
    );
    let answer = rig::sdp("127.0.0.2", 41500, "sendrecv")
        .replace("RTP/AVP 0 8 101", "RTP/AVP 0 101")
        .replace("a=rtpmap:8 PCMA/8000\r\n", "");
    let ack = trunk.in_dialog(&mut rig, &call, Method::Ack, call.cseq, &[], &answer);
    rig.send(trunk.addr, ack.to_bytes());
    let last = rig
        .remotes
        .iter()
        .rev()
        .find(|r| r.call == key && r.leg == LegSide::A)
        .and_then(|r| r.rtp);
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    assert_eq!(
        last,
        Some(addr("127.0.0.2:41500")),
        "MediaRemote from the answer in the ACK"
    );
}

// ---------------------------------------------------------------------------------------------
// A seeded mix of every behaviour above, back to back
// ---------------------------------------------------------------------------------------------

/// Plays one call of `kind` between the trunk and phone 201 (at 127.0.0.1:5061), to the end.
fn play(rig: &mut Rig, trunk: &Caller, phone: &Phone, kind: u32) {
    let final_of = |rig: &mut Rig| {
        rig.wait_for(trunk.addr, secs(70), |m| matches!(m, Message::Response(r) if r.status >= 200 && rig::cseq_method(m) == Some(Method::Invite)))
    };
    match kind {
        // answered; the trunk hangs up
        0 => {
            let (mut call, _, _) = establish(rig, trunk, phone, &[]);
            rig.advance(secs(20));
            trunk_hangs_up(rig, trunk, phone, &mut call);
        }
        // answered; the phone hangs up
        1 => {
            let (_call, mut leg, _) = establish(rig, trunk, phone, &[]);
            rig.advance(secs(15));
            phone.bye(rig, &mut leg);
            rig.expect_response(phone.addr, 200, Method::Bye);
            let bye = rig.expect_request(trunk.addr, Method::Bye);
            trunk.respond(rig, &bye, 200);
        }
        // cancelled while ringing
        2 => {
            let (call, leg) = ring(rig, trunk, phone, &[]);
            phone.answer(rig, &leg, 180);
            rig.advance(secs(4));
            trunk.cancel(rig, &call);
            let Some(Message::Response(fin)) = final_of(rig) else {
                panic!("no 487")
            };
            assert_eq!(fin.status, 487);
            trunk.ack_failure(rig, &call, &fin);
            let cancel = rig.expect_request(phone.addr, Method::Cancel);
            phone.respond(rig, &cancel, 200);
            phone.answer(rig, &leg, 487);
        }
        // CANCEL crosses the phone's 200
        3 => {
            let (call, leg) = ring(rig, trunk, phone, &[]);
            phone.answer(rig, &leg, 180);
            trunk.cancel(rig, &call);
            let Some(Message::Response(fin)) = final_of(rig) else {
                panic!("no 487")
            };
            trunk.ack_failure(rig, &call, &fin);
            let cancel = rig.expect_request(phone.addr, Method::Cancel);
            phone.answer(rig, &leg, 200);
            phone.respond(rig, &cancel, 200);
            let bye = rig.expect_request(phone.addr, Method::Bye);
            phone.respond(rig, &bye, 200);
        }
        // busy or decline
        4 | 5 => {
            let (call, leg) = ring(rig, trunk, phone, &[]);
            phone.answer(rig, &leg, if kind == 4 { 486 } else { 603 });
            let Some(Message::Response(fin)) = final_of(rig) else {
                panic!("no final")
            };
            trunk.ack_failure(rig, &call, &fin);
        }
        // the phone never answers: Timer B
        6 => {
            let (call, _leg) = ring(rig, trunk, phone, &[]);
            let Some(Message::Response(fin)) = final_of(rig) else {
                panic!("no final after Timer B")
            };
            trunk.ack_failure(rig, &call, &fin);
        }
        // the phone rings forever: ring timeout, CANCEL, 487
        7 => {
            let (call, leg) = ring(rig, trunk, phone, &[]);
            phone.answer(rig, &leg, 180);
            let Some(Message::Response(fin)) = final_of(rig) else {
                panic!("no final after the ring timeout")
            };
            trunk.ack_failure(rig, &call, &fin);
            let cancel = rig.expect_request(phone.addr, Method::Cancel);
            phone.respond(rig, &cancel, 200);
            phone.answer(rig, &leg, 487);
        }
        // the trunk never ACKs: Timer L ends both legs
        8 => {
            let (_call, leg) = ring(rig, trunk, phone, &[]);
            phone.answer(rig, &leg, 200);
            let bye_b = rig.wait_for_request(phone.addr, Method::Bye, secs(40));
            phone.respond(rig, &bye_b, 200);
            if let Some(Message::Request(bye_a)) =
                rig.wait_for(trunk.addr, secs(1), |m| is_request(m, &Method::Bye))
            {
                trunk.respond(rig, &bye_a, 200);
            }
        }
        // session timer without refresh
        9 => {
            let (_call, _leg, _) = establish(rig, trunk, phone, TIMER_HEADERS);
            let bye_a = rig.wait_for_request(trunk.addr, Method::Bye, secs(130));
            trunk.respond(rig, &bye_a, 200);
            let bye_b = rig.expect_request(phone.addr, Method::Bye);
            phone.respond(rig, &bye_b, 200);
        }
        // hold and resume, then the trunk hangs up
        10 => {
            let (mut call, _, _) = establish(rig, trunk, phone, &[]);
            for dir in ["sendonly", "sendrecv"] {
                rig.advance(secs(5));
                trunk.reinvite(rig, &mut call, dir, &[]);
                rig.expect_response(trunk.addr, 200, Method::Invite);
                trunk.ack_reinvite(rig, &call);
            }
            trunk_hangs_up(rig, trunk, phone, &mut call);
        }
        // the phone hangs up before the trunk's ACK
        _ => {
            let (mut call, mut leg) = ring(rig, trunk, phone, &[]);
            phone.answer(rig, &leg, 200);
            let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
            phone.bye(rig, &mut leg);
            rig.expect_response(phone.addr, 200, Method::Bye);
            rig.advance(Duration::from_millis(50));
            trunk.ack(rig, &mut call, &ok);
            let bye = rig.wait_for_request(trunk.addr, Method::Bye, secs(1));
            trunk.respond(rig, &bye, 200);
        }
    }
}

#[test]
fn seeded_mix_of_calls_leaves_nothing_behind() {
    let mut rig = Rig::new();
    rig.ladder_limit = Some(300);
    let mut phone = Phone::new(&mut rig, "201", "127.0.0.1:5061", "phone1");
    let trunk = Caller::trunk(&mut rig);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut registered_at: Option<Duration> = None;
    let mut counts = [0u32; 12];
    for i in 0..600 {
        if registered_at.is_none_or(|t| rig.elapsed - t > secs(1800)) {
            phone.register(&mut rig, 3600);
            registered_at = Some(rig.elapsed);
        }
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let kind = ((state >> 33) % 12) as u32;
        counts[kind as usize] += 1;
        rig.ladder.push(format!("---- call {i}: kind {kind}"));
        play(&mut rig, &trunk, &phone, kind);
        rig.advance(rig::SETTLE);
        assert_eq!(rig.sb.n_calls(), 0, "call {i} (kind {kind}) left a call");
        assert_eq!(
            rig.sb.n_transactions(),
            0,
            "call {i} (kind {kind}) left transactions"
        );
        assert_eq!(
            rig.sb.media_ports_in_use(),
            0,
            "call {i} (kind {kind}) left media ports"
        );
        rig.clear_inboxes();
    }
    assert!(
        counts.iter().all(|&c| c > 20),
        "every kind played: {counts:?}"
    );
    rig.assert_no_leaks();
}

/// One fork answers with an unusable SDP while another still rings: that fork is hung up and
/// the call goes on with the other; the trunk gets one 200 with a real answer.
#[test]
fn forking_unusable_answer_then_good_answer() {
    let mut rig = Rig::new();
    let mut p1 = Phone::new(&mut rig, "201", "127.0.0.1:5061", "phone1");
    let mut p2 = Phone::new(&mut rig, "201", "127.0.0.1:5062", "phone2");
    p1.register(&mut rig, 3600);
    p2.register(&mut rig, 3600);
    let trunk = Caller::trunk(&mut rig);
    let mut call = trunk.invite(&mut rig, DIRECT, &[]);
    let leg1 = p1.expect_invite(&mut rig);
    let leg2 = p2.expect_invite(&mut rig);
    p2.answer(&mut rig, &leg2, 180);
    let mut resp = leg1.invite.make_response(200, "OK", Some(&leg1.tag));
    resp.headers
        .push(HeaderName::Contact, "<sip:201@127.0.0.1:5061>");
    resp.headers
        .push(HeaderName::ContentType, "application/sdp");
    resp.body = b"v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n".to_vec();
    rig.send(p1.addr, resp.to_bytes());
    rig.expect_request(p1.addr, Method::Ack);
    let bye = rig.expect_request(p1.addr, Method::Bye);
    p1.respond(&mut rig, &bye, 200);
    assert!(
        rig.take(
            trunk.addr,
            |m| matches!(m, Message::Response(r) if r.status >= 200)
        )
        .is_none(),
        "the other fork still rings"
    );
    rig.advance(secs(2));
    p2.answer(&mut rig, &leg2, 200);
    rig.expect_request(p2.addr, Method::Ack);
    let ok = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(ok.status, 200);
    assert!(!ok.body.is_empty(), "200 with an SDP answer");
    trunk.ack(&mut rig, &mut call, &ok);
    trunk_hangs_up(&mut rig, &trunk, &p2, &mut call);
    rig.assert_no_leaks();
}

/// RFC 4028 §10: only a timeout, 408 or 481 to our refresh ends the session; any other error
/// (here 500) leaves it up until it expires or a later refresh works.
#[test]
fn refresh_answered_500_keeps_session() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, _leg, _) = establish(
        &mut rig,
        &trunk,
        &phone,
        &[
            ("Session-Expires", "120;refresher=uas"),
            ("Supported", "timer"),
        ],
    );
    let refresh = rig.wait_for_request(trunk.addr, Method::Invite, secs(70));
    trunk.respond(&mut rig, &refresh, 500);
    rig.expect_request(trunk.addr, Method::Ack);
    rig.advance(secs(1));
    assert_eq!(
        rig.sb.n_calls(),
        1,
        "a 500 to a refresh does not end the session (RFC 4028 §10)"
    );
    assert!(
        rig.take(phone.addr, |m| is_request(m, &Method::Bye))
            .is_none()
    );
    // The session then either gets refreshed again or expires at 120 s: both end cleanly.
    let next = rig.wait_for(trunk.addr, secs(61), |m| {
        is_request(m, &Method::Invite) || is_request(m, &Method::Bye)
    });
    match next {
        Some(Message::Request(again)) if again.method == Method::Invite => {
            trunk.answer_refresh(&mut rig, &call, &again);
            rig.expect_request(trunk.addr, Method::Ack);
            assert_eq!(rig.sb.n_calls(), 1);
            let mut call = call;
            trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
        }
        Some(Message::Request(bye)) => {
            assert!(rig.elapsed <= secs(120), "expired late: {:?}", rig.elapsed);
            trunk.respond(&mut rig, &bye, 200);
            let bye_b = rig.expect_request(phone.addr, Method::Bye);
            phone.respond(&mut rig, &bye_b, 200);
        }
        other => panic!("neither a new refresh nor expiry: {other:?}"),
    }
    rig.assert_no_leaks();
}

/// Glare: the trunk's re-INVITE arrives while the switch's own refresh re-INVITE on the same
/// dialog is still pending: RFC 3261 §14.2 says answer 491; the pending one then completes.
#[test]
fn reinvite_glare_gets_491() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, _leg, _) = establish(
        &mut rig,
        &trunk,
        &phone,
        &[
            ("Session-Expires", "120;refresher=uas"),
            ("Supported", "timer"),
        ],
    );
    let refresh = rig.wait_for_request(trunk.addr, Method::Invite, secs(70));
    let ours = trunk.reinvite(&mut rig, &mut call, "sendonly", &[]);
    let glare = rig.expect_final(trunk.addr, Method::Invite);
    if glare.status == 491 {
        // ACK for a non-2xx: same branch, hop by hop (RFC 3261 §17.1.1.3).
        rig.send(
            trunk.addr,
            sip_core::build_ack_for_non_2xx(&ours, &glare).to_bytes(),
        );
    } else {
        trunk.ack_reinvite(&mut rig, &call);
    }
    trunk.answer_refresh(&mut rig, &call, &refresh);
    rig.expect_request(trunk.addr, Method::Ack);
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
    assert_eq!(
        glare.status, 491,
        "re-INVITE glare answered {} {}",
        glare.status, glare.reason
    );
}

// ---------------------------------------------------------------------------------------------
// Hunt groups (the example's groups, reached by pointing the emergency number at them)
// ---------------------------------------------------------------------------------------------

/// A number that reaches a group directly, added to the example by [`rig_routing_to`].
const GROUP_NUMBER: &str = "800222";

/// The example plus number 800222 routed straight to `target` while open. The groups lose
/// their `no_answer` targets, so these tests see how the phones ring and what the caller gets
/// when nobody answers (`tests/ivr.rs` covers `no_answer`: the switch answers and serves it).
fn rig_routing_to(target: &str) -> Rig {
    let example: String = Rig::example_text()
        .lines()
        .filter(|l| !l.starts_with("no_answer = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = format!(
        "{example}\n[[numbers]]\nnumber = \"{GROUP_NUMBER}\"\ntrunk = \"provider\"\nopen = \"{target}\"\nclosed = \"voicemail:general\"\n",
    );
    Rig::with_config(&text, 7)
}

fn registered(rig: &mut Rig, ext: &str, at: &str) -> Phone {
    let mut p = Phone::new(rig, ext, at, &format!("phone{ext}"));
    p.register(rig, 3600);
    p
}

/// ring-all group `spesa` (201, 202): both ring; while 201 is in a call only 202 rings; once
/// that call ends, both ring again (the busy count goes back down).
#[test]
fn ring_all_group_skips_busy_member_and_recovers() {
    let mut rig = rig_routing_to("group:spesa");
    let p201 = registered(&mut rig, "201", "127.0.0.1:5061");
    let p202 = registered(&mut rig, "202", "127.0.0.1:5062");
    let trunk = Caller::trunk(&mut rig);

    let mut first = trunk.invite(&mut rig, GROUP_NUMBER, &[]);
    let a = p201.expect_invite(&mut rig);
    let b = p202.expect_invite(&mut rig);
    p202.answer(&mut rig, &b, 180);
    p201.answer(&mut rig, &a, 200);
    rig.expect_request(p201.addr, Method::Ack);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    trunk.ack(&mut rig, &mut first, &ok);
    let cancel = rig.expect_request(p202.addr, Method::Cancel);
    p202.respond(&mut rig, &cancel, 200);
    p202.answer(&mut rig, &b, 487);
    rig.expect_request(p202.addr, Method::Ack);

    rig.advance(secs(5));
    let second = trunk.invite(&mut rig, GROUP_NUMBER, &[]);
    let b2 = p202.expect_invite(&mut rig);
    assert!(
        rig.take(p201.addr, |m| is_request(m, &Method::Invite))
            .is_none(),
        "201 is busy: only 202 rings"
    );
    p202.answer(&mut rig, &b2, 486);
    rig.expect_request(p202.addr, Method::Ack);
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    trunk.ack_failure(&mut rig, &second, &fin);

    trunk_hangs_up(&mut rig, &trunk, &p201, &mut first);
    rig.advance(secs(5));
    let third = trunk.invite(&mut rig, GROUP_NUMBER, &[]);
    let a3 = p201.expect_invite(&mut rig);
    let b3 = p202.expect_invite(&mut rig);
    for (p, l) in [(&p201, &a3), (&p202, &b3)] {
        p.answer(&mut rig, l, 486);
        rig.expect_request(p.addr, Method::Ack);
    }
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(fin.status, 486);
    trunk.ack_failure(&mut rig, &third, &fin);
    rig.assert_no_leaks();
}

/// `ring_timeout = 25` for the ring-all group `spesa`: after 25 s nobody answering, the phones
/// stop ringing (CANCEL), instead of the switch's fixed 60 s.
#[test]
fn group_ring_timeout_is_honoured() {
    let mut rig = rig_routing_to("group:spesa");
    let p201 = registered(&mut rig, "201", "127.0.0.1:5061");
    let p202 = registered(&mut rig, "202", "127.0.0.1:5062");
    let trunk = Caller::trunk(&mut rig);
    let call = trunk.invite(&mut rig, GROUP_NUMBER, &[]);
    let a = p201.expect_invite(&mut rig);
    let b = p202.expect_invite(&mut rig);
    p201.answer(&mut rig, &a, 180);
    p202.answer(&mut rig, &b, 180);
    let started = rig.elapsed;
    let cancel = rig.wait_for_request(p201.addr, Method::Cancel, secs(61));
    let rang = rig.elapsed - started;
    p201.respond(&mut rig, &cancel, 200);
    p201.answer(&mut rig, &a, 487);
    if let Some(Message::Request(c)) = rig.take(p202.addr, |m| is_request(m, &Method::Cancel)) {
        p202.respond(&mut rig, &c, 200);
        p202.answer(&mut rig, &b, 487);
    }
    if let Some(Message::Response(fin)) = rig.wait_for(
        trunk.addr,
        secs(60),
        |m| matches!(m, Message::Response(r) if r.status >= 200),
    ) {
        trunk.ack_failure(&mut rig, &call, &fin);
    }
    rig.assert_no_leaks();
    assert!(
        rang <= secs(26),
        "the group rang {rang:?}; its ring_timeout is 25 s"
    );
}

/// `assistenza` is `least-recent` (not ring-all): the router orders the members, and they
/// should ring one after the other, not all at once.
#[test]
fn hunt_group_rings_one_member_at_a_time() {
    let mut rig = rig_routing_to("group:assistenza");
    let p202 = registered(&mut rig, "202", "127.0.0.1:5062");
    let p203 = registered(&mut rig, "203", "127.0.0.1:5063");
    let trunk = Caller::trunk(&mut rig);
    let call = trunk.invite(&mut rig, GROUP_NUMBER, &[]);
    let rung: Vec<Option<Leg>> = [&p202, &p203]
        .iter()
        .map(|p| {
            rig.take(p.addr, |m| is_request(m, &Method::Invite))
                .map(|m| match m {
                    Message::Request(r) => Leg {
                        invite: r,
                        tag: format!("h-{}", p.ext),
                        cseq: 0,
                        rtp_port: 30100,
                    },
                    _ => unreachable!(),
                })
        })
        .collect();
    let n = rung.iter().filter(|l| l.is_some()).count();
    for (p, l) in [&p202, &p203].iter().zip(&rung) {
        if let Some(l) = l {
            p.answer(&mut rig, l, 486);
            rig.expect_request(p.addr, Method::Ack);
        }
    }
    // Whoever rings next is refused too, until the caller gets a final answer.
    for _ in 0..4 {
        if let Some(Message::Response(fin)) = rig.take(
            trunk.addr,
            |m| matches!(m, Message::Response(r) if r.status >= 200),
        ) {
            trunk.ack_failure(&mut rig, &call, &fin);
            break;
        }
        for p in [&p202, &p203] {
            if let Some(Message::Request(inv)) =
                rig.take(p.addr, |m| is_request(m, &Method::Invite))
            {
                let l = Leg {
                    invite: inv,
                    tag: format!("h2-{}", p.ext),
                    cseq: 0,
                    rtp_port: 30102,
                };
                p.answer(&mut rig, &l, 486);
                rig.expect_request(p.addr, Method::Ack);
            }
        }
    }
    rig.assert_no_leaks();
    assert_eq!(n, 1, "a least-recent group rang {n} members at once");
}

// ---------------------------------------------------------------------------------------------
// Registration and configuration changes during calls, counters
// ---------------------------------------------------------------------------------------------

/// The phone's registration expires in the middle of a call: the call is unaffected; a new
/// call then finds nobody (480).
#[test]
fn registration_expires_during_call() {
    let mut rig = Rig::new();
    let mut phone = Phone::new(&mut rig, "201", "127.0.0.1:5061", "phone1");
    phone.register(&mut rig, 60);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, _leg, _) = establish(&mut rig, &trunk, &phone, &[]);
    rig.advance(secs(90));
    assert_eq!(rig.sb.n_bindings(), 0);
    assert_eq!(rig.sb.n_calls(), 1, "the call outlives the binding");
    let second = trunk.invite(&mut rig, DIRECT, &[]);
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(fin.status, 480);
    trunk.ack_failure(&mut rig, &second, &fin);
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    rig.assert_no_leaks();
}

/// A reload swaps the configuration: the call in progress keeps going and ends normally; new
/// calls follow the new plan (here: the trunk's address is gone, so the trunk is challenged).
#[test]
fn reload_during_call() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, _leg, _) = establish(&mut rig, &trunk, &phone, &[]);
    let text =
        Rig::example_text().replace("addresses = [\"127.0.0.2\"]", "addresses = [\"127.0.0.3\"]");
    let (config, _) = b2bua::Config::compile("reloaded.toml", &text).expect("still valid");
    rig.sb.reload(std::sync::Arc::new(config));
    rig.advance(secs(10));
    trunk_hangs_up(&mut rig, &trunk, &phone, &mut call);
    let next = trunk.invite(&mut rig, DIRECT, &[]);
    let fin = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(fin.status, 407, "127.0.0.2 is no longer a trunk");
    trunk.ack_failure(&mut rig, &next, &fin);
    rig.assert_no_leaks();
}

/// The counters add up after a run of mixed calls.
#[test]
fn stats_add_up() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    for kind in 0..12 {
        play(&mut rig, &trunk, &phone, kind);
        rig.advance(secs(40));
        rig.clear_inboxes(); // retransmissions the script did not need to take
    }
    rig.assert_no_leaks();
    let stats = rig.sb.stats().clone();
    assert_eq!(stats.calls_started, 12);
    assert_eq!(
        stats.calls_ended, stats.calls_started,
        "every call that started ended: {stats:?}"
    );
    assert!(stats.calls_answered <= stats.calls_started);
    assert_eq!(
        stats.calls_answered, 6,
        "answered: kinds 0, 1, 8, 9, 10, 11 ({stats:?})"
    );
    assert_eq!(stats.dropped, 0, "{stats:?}");
}

/// Hunting one member at a time (`assistenza`: least-recent, 202 and 203, 20 s each): the
/// first member rings for its ring timeout, is CANCELled, and the next one rings and answers.
#[test]
fn hunt_moves_on_after_member_ring_timeout() {
    let mut rig = rig_routing_to("group:assistenza");
    let p202 = registered(&mut rig, "202", "127.0.0.1:5062");
    let p203 = registered(&mut rig, "203", "127.0.0.1:5063");
    let trunk = Caller::trunk(&mut rig);
    let mut call = trunk.invite(&mut rig, GROUP_NUMBER, &[]);
    let (first, second) = if rig.pending(p202.addr).is_empty() {
        (&p203, &p202)
    } else {
        (&p202, &p203)
    };
    let leg1 = first.expect_invite(&mut rig);
    assert!(
        rig.pending(second.addr).is_empty(),
        "only one member rings at first"
    );
    first.answer(&mut rig, &leg1, 180);
    rig.expect_response(trunk.addr, 180, Method::Invite);
    let start = rig.elapsed;
    let cancel = rig.wait_for_request(first.addr, Method::Cancel, secs(30));
    let rang = rig.elapsed - start;
    assert!(
        rang >= secs(19) && rang <= secs(21),
        "first member rang {rang:?}, its ring timeout is 20 s"
    );
    first.respond(&mut rig, &cancel, 200);
    first.answer(&mut rig, &leg1, 487);
    rig.expect_request(first.addr, Method::Ack);
    let leg2 = second.expect_invite(&mut rig);
    second.answer(&mut rig, &leg2, 180);
    second.answer(&mut rig, &leg2, 200);
    rig.expect_request(second.addr, Method::Ack);
    let ok = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(ok.status, 200);
    trunk.ack(&mut rig, &mut call, &ok);
    assert!(
        rig.received(
            trunk.addr,
            |m| matches!(m, Message::Response(r) if r.status >= 300)
        )
        .is_empty(),
        "no failure to the trunk while hunting"
    );
    trunk_hangs_up(&mut rig, &trunk, second, &mut call);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |m| {
        is_response(m, 100, &Method::Invite) || is_response(m, 180, &Method::Invite)
    });
    rig.assert_quiet(first.addr, |_| false);
    rig.assert_quiet(second.addr, |_| false);
}

/// A busy member hands over to the next at once; the trunk sees the busy only when every member
/// refused.
#[test]
fn hunt_moves_on_after_busy_then_all_busy() {
    let mut rig = rig_routing_to("group:assistenza");
    let p202 = registered(&mut rig, "202", "127.0.0.1:5062");
    let p203 = registered(&mut rig, "203", "127.0.0.1:5063");
    let trunk = Caller::trunk(&mut rig);
    let call = trunk.invite(&mut rig, GROUP_NUMBER, &[]);
    let (first, second) = if rig.pending(p202.addr).is_empty() {
        (&p203, &p202)
    } else {
        (&p202, &p203)
    };
    let leg1 = first.expect_invite(&mut rig);
    first.answer(&mut rig, &leg1, 486);
    rig.expect_request(first.addr, Method::Ack);
    assert!(
        rig.take(
            trunk.addr,
            |m| matches!(m, Message::Response(r) if r.status >= 300)
        )
        .is_none(),
        "one busy member is not the end"
    );
    let leg2 = second.expect_invite(&mut rig);
    second.answer(&mut rig, &leg2, 486);
    rig.expect_request(second.addr, Method::Ack);
    let fin = rig.wait_for(
        trunk.addr,
        secs(61),
        |m| matches!(m, Message::Response(r) if r.status >= 200),
    );
    let Some(Message::Response(fin)) = fin else {
        panic!("no final response after every member refused")
    };
    assert!(
        fin.status == 486 || fin.status == 480,
        "all busy: {}",
        fin.status
    );
    trunk.ack_failure(&mut rig, &call, &fin);
    rig.assert_no_leaks();
}

/// The whole group rings at most its `timeout` (60 s for assistenza) however members rotate.
#[test]
fn hunt_stops_at_group_timeout() {
    let mut rig = rig_routing_to("group:assistenza");
    let p202 = registered(&mut rig, "202", "127.0.0.1:5062");
    let p203 = registered(&mut rig, "203", "127.0.0.1:5063");
    let trunk = Caller::trunk(&mut rig);
    let call = trunk.invite(&mut rig, GROUP_NUMBER, &[]);
    let start = rig.elapsed;
    // Every member rings (180) and never answers; each CANCEL is answered with 487.
    let mut fin = None;
    for _ in 0..200 {
        for p in [&p202, &p203] {
            while let Some(Message::Request(r)) = rig.take(p.addr, |m| {
                is_request(m, &Method::Invite) || is_request(m, &Method::Cancel)
            }) {
                if r.method == Method::Invite {
                    let leg = Leg {
                        invite: r,
                        tag: format!("g-{}", rig.unique()),
                        cseq: 0,
                        rtp_port: 30200,
                    };
                    p.answer(&mut rig, &leg, 180);
                    rig.ladder.push(format!("(phone {} rings)", p.ext));
                    // Stash the leg in the INVITE's Call-ID for the CANCEL below.
                    LEGS.with(|l| l.borrow_mut().push(leg));
                } else {
                    p.respond(&mut rig, &r, 200);
                    let cid = r.call_id().unwrap_or_default().to_owned();
                    let leg = LEGS.with(|l| {
                        l.borrow()
                            .iter()
                            .find(|g| g.invite.call_id() == Some(cid.as_str()))
                            .cloned()
                    });
                    if let Some(leg) = leg {
                        p.answer(&mut rig, &leg, 487);
                    }
                }
            }
        }
        rig.take_all(p202.addr, |m| is_request(m, &Method::Ack));
        rig.take_all(p203.addr, |m| is_request(m, &Method::Ack));
        if let Some(Message::Response(r)) = rig.take(
            trunk.addr,
            |m| matches!(m, Message::Response(r) if r.status >= 200),
        ) {
            fin = Some((r, rig.elapsed - start));
            break;
        }
        rig.wait_for(trunk.addr, Duration::from_millis(500), |_| false);
    }
    let (fin, after) = fin.expect("a final response to the trunk");
    trunk.ack_failure(&mut rig, &call, &fin);
    rig.assert_no_leaks();
    assert!(
        after <= secs(61),
        "the group rang {after:?}; its timeout is 60 s"
    );
}

thread_local! {
    static LEGS: std::cell::RefCell<Vec<Leg>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// RFC 3581 / RFC 3261 §18.2.1: a request whose Via sent-by is a private address behind NAT
/// is answered with `received` and `rport` filled in with the real source.
#[test]
fn via_received_and_rport_filled_in() {
    let mut rig = Rig::new();
    rig.name(addr("127.0.0.1:40000"), "natphone");
    let bytes = rig::message(
        "REGISTER sip:centralino.example SIP/2.0",
        &[
            (
                "Via",
                "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-nat-1;rport".to_owned(),
            ),
            ("Max-Forwards", "70".to_owned()),
            ("From", "<sip:201@centralino.example>;tag=n".to_owned()),
            ("To", "<sip:201@centralino.example>".to_owned()),
            ("Call-ID", "nat-1".to_owned()),
            ("CSeq", "1 REGISTER".to_owned()),
            ("Contact", "<sip:201@10.0.0.5:5060>".to_owned()),
        ],
        "",
    );
    rig.send(addr("127.0.0.1:40000"), bytes);
    let r = rig.expect_response(addr("127.0.0.1:40000"), 401, Method::Register);
    let via = r.top_via().expect("Via");
    assert_eq!(via.param("received"), Some("127.0.0.1"));
    assert_eq!(via.param("rport"), Some("40000"));
    rig.assert_no_leaks();
}

/// Lost CANCEL and lost 487: the switch retransmits the CANCEL (Timer E) and the 487
/// (Timer G) until they get through.
#[test]
fn lost_cancel_and_lost_487() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 180);
    rig.expect_response(trunk.addr, 180, Method::Invite);
    rig.drop_next(phone.addr, "CANCEL", 1);
    rig.drop_responses(trunk.addr, 487, Method::Invite, 1);
    trunk.cancel(&mut rig, &call);
    rig.expect_response(trunk.addr, 200, Method::Cancel);
    assert!(rig.pending(phone.addr).is_empty(), "the CANCEL was lost");
    let cancel = rig.wait_for_request(phone.addr, Method::Cancel, secs(1));
    phone.respond(&mut rig, &cancel, 200);
    phone.answer(&mut rig, &leg, 487);
    rig.expect_request(phone.addr, Method::Ack);
    let t = rig.wait_for(trunk.addr, secs(1), |m| {
        is_response(m, 487, &Method::Invite)
    });
    let Some(Message::Response(t)) = t else {
        panic!("487 not retransmitted")
    };
    trunk.ack_failure(&mut rig, &call, &t);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// Lost BYE to the phone, and a lost 200 for the trunk's BYE: the switch retransmits its BYE,
/// and answers the trunk's retransmitted BYE again from the transaction.
#[test]
fn lost_bye_and_lost_200_for_bye() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, _leg, _) = establish(&mut rig, &trunk, &phone, &[]);
    rig.drop_next(phone.addr, "BYE", 1);
    rig.drop_responses(trunk.addr, 200, Method::Bye, 1);
    let bye = trunk.bye(&mut rig, &mut call);
    assert!(rig.pending(trunk.addr).is_empty(), "the 200 was lost");
    rig.advance(Duration::from_millis(500));
    rig.send(trunk.addr, bye.to_bytes()); // the trunk retransmits its BYE (Timer E)
    rig.expect_response(trunk.addr, 200, Method::Bye);
    let bye_b = rig.wait_for_request(phone.addr, Method::Bye, secs(1));
    phone.respond(&mut rig, &bye_b, 200);
    rig.assert_no_leaks();
    rig.assert_quiet(trunk.addr, |_| false);
    rig.assert_quiet(phone.addr, |_| false);
}

/// CANCEL wins the race against the phone's 200, and the switch's ACK for that 200 is lost:
/// the phone retransmits its 200, and every retransmission must be ACKed again
/// (RFC 3261 §13.2.2.4), even though the call is gone (the fork is an orphan).
#[test]
fn orphan_200_retransmission_is_reacked() {
    let mut rig = Rig::new();
    let phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    let (call, leg) = ring(&mut rig, &trunk, &phone, &[]);
    phone.answer(&mut rig, &leg, 180);
    trunk.cancel(&mut rig, &call);
    rig.expect_response(trunk.addr, 200, Method::Cancel);
    let t = rig.expect_response(trunk.addr, 487, Method::Invite);
    trunk.ack_failure(&mut rig, &call, &t);
    let cancel = rig.expect_request(phone.addr, Method::Cancel);
    rig.drop_next(phone.addr, "ACK", 1);
    phone.answer(&mut rig, &leg, 200);
    let bye = rig.expect_request(phone.addr, Method::Bye);
    phone.respond(&mut rig, &cancel, 200);
    phone.respond(&mut rig, &bye, 200);
    rig.advance(Duration::from_millis(500));
    phone.answer(&mut rig, &leg, 200);
    let acks = rig.take_all(phone.addr, |m| is_request(m, &Method::Ack));
    rig.assert_no_leaks();
    assert_eq!(
        acks.len(),
        1,
        "the orphan fork's 200 retransmission was not ACKed"
    );
}

// ---------------------------------------------------------------------------------------------
// Random loss both ways, with peers that retransmit like RFC 3261 user agents
// ---------------------------------------------------------------------------------------------

/// Sends `bytes` from `from` and resends them on T1, 2*T1 … T2 (Timers A/E, or a UAS's 2xx
/// and 3xx-6xx retransmissions) until something `pred` accepts reaches `from`.
fn until_answered(
    rig: &mut Rig,
    from: std::net::SocketAddr,
    bytes: &[u8],
    pred: impl Fn(&Message) -> bool,
) -> Message {
    let start = rig.elapsed;
    let mut interval = Duration::from_millis(500);
    loop {
        rig.send(from, bytes);
        if let Some(m) = rig.wait_for(from, interval, &pred) {
            return m;
        }
        interval = (interval * 2).min(secs(4));
        assert!(
            rig.elapsed - start < secs(32),
            "{from}: no answer within 64*T1"
        );
    }
}

/// Answers a request the switch retransmits until the answer gets through: `respond` again
/// whenever another copy arrives within T2 + 1 s.
fn answer_until_quiet(
    rig: &mut Rig,
    at: std::net::SocketAddr,
    pred: impl Fn(&Message) -> bool,
    bytes: &[u8],
) {
    loop {
        rig.take_all(at, &pred);
        rig.send(at, bytes);
        if rig.wait_for(at, secs(5), &pred).is_none() {
            return;
        }
    }
}

fn wait_message(
    rig: &mut Rig,
    at: std::net::SocketAddr,
    what: &str,
    pred: impl Fn(&Message) -> bool,
) -> Message {
    rig.wait_for(at, secs(40), pred)
        .unwrap_or_else(|| panic!("{at} never got {what}"))
}

/// One call over a lossy network: answered then hung up by either side, or refused busy.
fn lossy_call(rig: &mut Rig, trunk: &Caller, phone: &Phone, kind: u32) {
    let mut call = trunk.prepare_invite(rig, DIRECT, &[]);
    let invite = call.invite.to_bytes();
    until_answered(rig, trunk.addr, &invite, |m| {
        rig::cseq_method(m) == Some(Method::Invite) && matches!(m, Message::Response(_))
    });
    let Message::Request(inv) = wait_message(rig, phone.addr, "the INVITE", |m| {
        is_request(m, &Method::Invite)
    }) else {
        unreachable!()
    };
    let leg = Leg {
        invite: inv,
        tag: format!("lossy-{}", rig.unique()),
        cseq: 0,
        rtp_port: 30300,
    };
    phone.answer(rig, &leg, 180);
    if kind == 3 || kind == 4 {
        return lossy_cancel(rig, trunk, phone, &mut call, &leg, kind == 4);
    }
    if kind == 2 {
        let busy = phone.answer_bytes(&leg, 486);
        until_answered(rig, phone.addr, &busy, |m| is_request(m, &Method::Ack));
        let Message::Response(fin) = wait_message(rig, trunk.addr, "486", |m| {
            is_response(m, 486, &Method::Invite)
        }) else {
            unreachable!()
        };
        let ack = sip_core::build_ack_for_non_2xx(&call.invite, &fin).to_bytes();
        answer_until_quiet(
            rig,
            trunk.addr,
            |m| is_response(m, 486, &Method::Invite),
            &ack,
        );
        return;
    }
    let ok_bytes = phone.answer_bytes(&leg, 200);
    until_answered(rig, phone.addr, &ok_bytes, |m| is_request(m, &Method::Ack));
    let Message::Response(ok) = wait_message(rig, trunk.addr, "200", |m| {
        is_response(m, 200, &Method::Invite)
    }) else {
        unreachable!()
    };
    call.to_tag = rig::to_tag(&ok.headers);
    call.remote_target = rig::contact_uri(&ok.headers);
    let ack = trunk
        .in_dialog(rig, &call, Method::Ack, 1, &[], "")
        .to_bytes();
    answer_until_quiet(
        rig,
        trunk.addr,
        |m| is_response(m, 200, &Method::Invite),
        &ack,
    );
    rig.advance(secs(10));
    // The phone keeps re-ACKed 200s quiet by now; forget retransmissions it saw.
    rig.take_all(phone.addr, |m| {
        is_request(m, &Method::Ack) || is_request(m, &Method::Invite)
    });
    if kind == 0 {
        call.cseq += 1;
        let bye = trunk
            .in_dialog(rig, &call, Method::Bye, call.cseq, &[], "")
            .to_bytes();
        until_answered(rig, trunk.addr, &bye, |m| is_response(m, 200, &Method::Bye));
        let Message::Request(bye_b) =
            wait_message(rig, phone.addr, "BYE", |m| is_request(m, &Method::Bye))
        else {
            unreachable!()
        };
        let ok = bye_b.make_response(200, "OK", None).to_bytes();
        answer_until_quiet(rig, phone.addr, |m| is_request(m, &Method::Bye), &ok);
    } else {
        let target = rig::contact_uri(&leg.invite.headers).expect("Contact");
        let headers = vec![
            (
                "Via",
                format!(
                    "SIP/2.0/UDP {};branch=z9hG4bK-lb-{};rport",
                    phone.addr,
                    rig.unique()
                ),
            ),
            ("Max-Forwards", "70".to_owned()),
            (
                "From",
                format!(
                    "{};tag={}",
                    leg.invite.headers.get(&HeaderName::To).unwrap(),
                    leg.tag
                ),
            ),
            (
                "To",
                leg.invite
                    .headers
                    .get(&HeaderName::From)
                    .unwrap()
                    .to_owned(),
            ),
            ("Call-ID", leg.invite.call_id().unwrap().to_owned()),
            ("CSeq", "1 BYE".to_owned()),
        ];
        let bye = rig::message(&format!("BYE {target} SIP/2.0"), &headers, "");
        until_answered(rig, phone.addr, &bye, |m| is_response(m, 200, &Method::Bye));
        let Message::Request(bye_a) =
            wait_message(rig, trunk.addr, "BYE", |m| is_request(m, &Method::Bye))
        else {
            unreachable!()
        };
        let ok = bye_a.make_response(200, "OK", None).to_bytes();
        answer_until_quiet(rig, trunk.addr, |m| is_request(m, &Method::Bye), &ok);
    }
}

/// The trunk CANCELs a ringing call over the lossy network; with `crossing`, the phone answers
/// 200 right away, so either the CANCEL wins (487 to the trunk, the phone is ACKed and BYEd) or
/// the 200 does (the trunk gets 200 and hangs up with BYE).
fn lossy_cancel(
    rig: &mut Rig,
    trunk: &Caller,
    phone: &Phone,
    call: &mut Placed,
    leg: &Leg,
    crossing: bool,
) {
    let cancel = sip_core::build_cancel(&call.invite).to_bytes();
    rig.send(trunk.addr, &cancel);
    let mut early_bye = None;
    if crossing {
        // The phone resends its 200 until the ACK; a BYE also tells it the 200 arrived (see
        // `orphan_200_retransmission_is_reacked` for the missing re-ACK this tolerates).
        let ok = phone.answer_bytes(leg, 200);
        if let Message::Request(r) = until_answered(rig, phone.addr, &ok, |m| {
            is_request(m, &Method::Ack) || is_request(m, &Method::Bye)
        }) && r.method == Method::Bye
        {
            early_bye = Some(r);
        }
    } else {
        // Until the switch has a provisional it may not CANCEL (RFC 3261 §9.1); a phone answers
        // INVITE retransmissions with its 180 again, and the CANCEL with 200 and 487.
        // If every 180 is lost the switch may never CANCEL (RFC 3261 §9.1 needs a provisional):
        // once its INVITE transaction ended (Timer B, 32 s) the phone is left to give up alone.
        let mut cancelled = false;
        for _attempt in 0..10 {
            match rig.wait_for(phone.addr, secs(5), |m| {
                is_request(m, &Method::Invite) || is_request(m, &Method::Cancel)
            }) {
                Some(Message::Request(r)) if r.method == Method::Invite => {
                    phone.answer(rig, leg, 180)
                }
                Some(_) => {
                    cancelled = true;
                    break;
                }
                None => rig.send(trunk.addr, &cancel),
            }
        }
        if cancelled {
            rig.take_all(phone.addr, |m| is_request(m, &Method::Cancel));
            let mut cancel_ok = leg.invite.make_response(200, "OK", None);
            cancel_ok.headers.set(
                HeaderName::CSeq,
                format!("{} CANCEL", leg.invite.cseq().map_or(1, |c| c.seq)),
            );
            rig.send(phone.addr, cancel_ok.to_bytes());
            let terminated = phone.answer_bytes(leg, 487);
            until_answered(rig, phone.addr, &terminated, |m| {
                is_request(m, &Method::Ack)
            });
        } else {
            rig.ladder
                .push("(every 180 was lost: the switch could never CANCEL the phone)".to_owned());
        }
    }
    until_answered(rig, trunk.addr, &cancel, |m| {
        rig::cseq_method(m) == Some(Method::Cancel)
            && matches!(m, Message::Response(r) if r.status >= 200)
    });
    let Message::Response(fin) = wait_message(
        rig,
        trunk.addr,
        "a final response",
        |m| matches!(m, Message::Response(r) if r.status >= 200 && rig::cseq_method(m) == Some(Method::Invite)),
    ) else {
        unreachable!()
    };
    match fin.status {
        487 => {
            let ack = sip_core::build_ack_for_non_2xx(&call.invite, &fin).to_bytes();
            answer_until_quiet(
                rig,
                trunk.addr,
                |m| is_response(m, 487, &Method::Invite),
                &ack,
            );
        }
        200 => {
            assert!(
                crossing,
                "a 200 for a CANCELled INVITE the phone never answered"
            );
            call.to_tag = rig::to_tag(&fin.headers);
            call.remote_target = rig::contact_uri(&fin.headers);
            let ack = trunk
                .in_dialog(rig, call, Method::Ack, 1, &[], "")
                .to_bytes();
            answer_until_quiet(
                rig,
                trunk.addr,
                |m| is_response(m, 200, &Method::Invite),
                &ack,
            );
            call.cseq += 1;
            let bye = trunk
                .in_dialog(rig, call, Method::Bye, call.cseq, &[], "")
                .to_bytes();
            until_answered(rig, trunk.addr, &bye, |m| is_response(m, 200, &Method::Bye));
        }
        other => panic!("CANCEL answered {other}"),
    }
    if crossing {
        // Either way the phone, which answered, is hung up; CANCELs that reach it get 200.
        while early_bye.is_none() {
            match rig.wait_for(phone.addr, secs(40), |m| {
                is_request(m, &Method::Cancel) || is_request(m, &Method::Bye)
            }) {
                Some(Message::Request(r)) if r.method == Method::Cancel => {
                    let ok = r.make_response(200, "OK", None).to_bytes();
                    rig.send(phone.addr, ok);
                }
                Some(Message::Request(bye)) => early_bye = Some(bye),
                _ => panic!("the phone that answered was never hung up"),
            }
        }
        if let Some(bye) = early_bye {
            let ok = bye.make_response(200, "OK", None).to_bytes();
            answer_until_quiet(rig, phone.addr, |m| is_request(m, &Method::Bye), &ok);
        }
    }
    // CANCEL retransmissions whose 200 was lost still get answered.
    while let Some(Message::Request(c)) =
        rig.wait_for(phone.addr, secs(5), |m| is_request(m, &Method::Cancel))
    {
        rig.send(phone.addr, c.make_response(200, "OK", None).to_bytes());
    }
}

#[test]
fn calls_over_a_lossy_network() {
    for (per_mille, seed) in [(100, 42), (250, 7), (300, 99)] {
        lossy_run(per_mille, seed);
    }
}

fn lossy_run(per_mille: u64, seed: u64) {
    let mut rig = Rig::new();
    rig.ladder_limit = Some(400);
    let mut phone = phone_201(&mut rig);
    let trunk = Caller::trunk(&mut rig);
    rig.set_loss(per_mille, seed);
    let mut registered_at = rig.elapsed;
    for i in 0..150 {
        if rig.elapsed - registered_at > secs(1800) {
            // Registration is not what this test is about: refresh it on a clean network.
            let loss = rig.loss.take();
            phone.register(&mut rig, 3600);
            rig.loss = loss;
            registered_at = rig.elapsed;
        }
        rig.ladder.push(format!(
            "---- loss {per_mille}/1000 seed {seed}, call {i}: kind {}",
            i % 5
        ));
        lossy_call(&mut rig, &trunk, &phone, i % 5);
        rig.advance(rig::SETTLE);
        assert_eq!(rig.sb.n_calls(), 0, "call {i} left a call");
        assert_eq!(rig.sb.n_transactions(), 0, "call {i} left transactions");
        assert_eq!(rig.sb.media_ports_in_use(), 0, "call {i} left media ports");
        rig.clear_inboxes();
    }
    assert!(
        rig.n_lost > 2 * per_mille,
        "the network lost {} datagrams",
        rig.n_lost
    );
    let stats = rig.sb.stats().clone();
    assert_eq!(stats.calls_started, 150, "{stats:?}");
    assert_eq!(stats.calls_ended, 150, "{stats:?}");
    rig.assert_no_leaks();
}
