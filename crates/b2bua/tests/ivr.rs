//! The switch answering the emergency number itself (issue 5), in virtual time: the example's
//! menu, digits from the media side and from SIP INFO, transfer to the group on shift, the
//! default target for a caller who presses nothing, voicemail when closed, `no_answer`.

mod rig;

use std::time::Duration;

use b2bua::{CallKey, Input};
use rig::{Caller, Phone, Rig};
use sip_msg::Method;

const EMERGENCY: &str = "800840840";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn phone(rig: &mut Rig, ext: &str, port: u16) -> Phone {
    let mut p = Phone::new(rig, ext, &format!("127.0.0.1:{port}"), &format!("ph{ext}"));
    p.register(rig, 7 * 24 * 3600);
    p
}

/// The trunk calls the emergency number; the switch answers itself. Returns the call key.
fn answered_call(rig: &mut Rig, trunk: &Caller) -> (rig::Placed, CallKey) {
    let mut call = trunk.invite(rig, EMERGENCY, &[]);
    rig.expect_response(trunk.addr, 100, Method::Invite);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    let (ip, port, _) = rig::sdp_summary(&ok.body);
    assert_eq!(ip, Some(rig::SWITCH_IP.parse().unwrap()));
    assert!(rig::RTP_PORTS.contains(&port));
    let body = String::from_utf8_lossy(&ok.body).into_owned();
    assert!(
        body.contains("telephone-event"),
        "answer keeps RFC 4733: {body}"
    );
    trunk.ack(rig, &mut call, &ok);
    let key = rig.opened.last().expect("media opened").0;
    (call, key)
}

/// At 20:00, with the closed number hanging up after the `closed` prompt: the switch has
/// answered the trunk's call and plays `closed`.
fn closed_call_that_hangs_up(seed: u8) -> (Rig, Caller, CallKey) {
    let text = Rig::example_text().replace(
        r#"closed = "voicemail:general""#,
        r#"closed = "hangup:closed""#,
    );
    let mut rig = Rig::with_config(&text, seed);
    rig.advance(secs(10 * 3600)); // 20:00: closed
    let trunk = Caller::trunk(&mut rig);
    let (_call, key) = answered_call(&mut rig, &trunk);
    assert_eq!(rig.last_play(key), ["closed"]);
    (rig, trunk, key)
}

/// A weekday caller presses 4; 204 rings (180) and never answers; after salute's 20 s the
/// switch CANCELs it (and the caller goes to salute's no_answer, voicemail:general).
fn caller_whose_transfer_to_204_rings_out() -> (Rig, Phone, rig::Leg, CallKey) {
    let mut rig = Rig::new();
    let p204 = phone(&mut rig, "204", 5064);
    let trunk = Caller::trunk(&mut rig);
    let (_call, key) = answered_call(&mut rig, &trunk);
    rig.input(Input::Digit {
        call: key,
        digit: '4',
    });
    let leg = p204.expect_invite(&mut rig);
    p204.answer(&mut rig, &leg, 180);
    // salute: ring_timeout 20 s; 205 is off shift.
    rig.advance(secs(21));
    let cancel = rig.expect_request(p204.addr, Method::Cancel);
    p204.respond(&mut rig, &cancel, 200);
    (rig, p204, leg, key)
}

#[test]
fn weekday_morning_menu_then_4_rings_204_not_205() {
    let mut rig = Rig::new();
    let p204 = phone(&mut rig, "204", 5064);
    let p205 = phone(&mut rig, "205", 5065);
    let trunk = Caller::trunk(&mut rig);
    let (mut call, key) = answered_call(&mut rig, &trunk);
    assert_eq!(
        rig.ivr_media.first().map(String::as_str),
        Some(&*format!("ivr {} Pcmu", key.0))
    );
    let menu = rig.last_play(key);
    assert_eq!(&menu[..2], ["welcome", "main-menu"], "{menu:?}");
    assert!(menu.contains(&"option-salute".to_owned()));

    // Barge-in: the caller presses 4 during the prompt.
    rig.advance(secs(2));
    rig.input(Input::Digit {
        call: key,
        digit: '4',
    });
    assert!(
        rig.ivr_media
            .iter()
            .any(|m| m == &format!("stop {}", key.0))
    );
    assert!(
        rig.ivr_media
            .iter()
            .any(|m| m == &format!("loop {} ringback", key.0))
    );
    let leg = p204.expect_invite(&mut rig);
    assert!(
        rig.pending(p205.addr).is_empty(),
        "205 is off shift at 10:00"
    );
    // The phone is offered only the codec the caller uses (no transcoding).
    let offer = String::from_utf8_lossy(&leg.invite.body).into_owned();
    assert!(offer.contains("PCMU") && !offer.contains("PCMA"), "{offer}");
    p204.answer_with_sdp(&mut rig, &leg, 200);
    rig.expect_request(p204.addr, Method::Ack);
    assert!(rig.ivr_media.last().unwrap().starts_with("bridge"));
    assert!(
        rig.remotes
            .iter()
            .any(|r| r.call == key && r.leg == b2bua::LegSide::B)
    );

    trunk.bye(&mut rig, &mut call);
    rig.expect_response(trunk.addr, 200, Method::Bye);
    rig.expect_request(p204.addr, Method::Bye);
    rig.advance(secs(40));
    rig.assert_no_leaks();
}

#[test]
fn sip_info_digit_selects_the_option() {
    for (ctype, body) in [
        ("application/dtmf-relay", "Signal=4\r\nDuration=160\r\n"),
        ("application/dtmf", "4"),
    ] {
        let mut rig = Rig::new();
        let p204 = phone(&mut rig, "204", 5064);
        let trunk = Caller::trunk(&mut rig);
        let (call, key) = answered_call(&mut rig, &trunk);
        rig.finish_play(key);
        let info = trunk.in_dialog(
            &mut rig,
            &call,
            Method::Info,
            2,
            &[("Content-Type", ctype)],
            body,
        );
        rig.send(trunk.addr, info.to_bytes());
        rig.expect_response(trunk.addr, 200, Method::Info);
        p204.expect_invite(&mut rig);
    }
}

#[test]
fn caller_who_presses_nothing_reaches_the_default_group() {
    let mut rig = Rig::new();
    let p203 = phone(&mut rig, "203", 5063);
    let p205 = phone(&mut rig, "205", 5065);
    let trunk = Caller::trunk(&mut rig);
    let (_call, key) = answered_call(&mut rig, &trunk);
    // First play, then two retries (timeout 6 s each), then the default: group:ascolto.
    for round in 0..3 {
        rig.finish_play(key);
        rig.advance(secs(7));
        if round < 2 {
            assert!(
                rig.last_play(key).contains(&"main-menu".to_owned()),
                "retry {round} replays the menu"
            );
        }
    }
    let rung = rig.pending(p203.addr).len() + rig.pending(p205.addr).len();
    assert!(rung > 0, "a member of ascolto rings");
    assert!(rig.plays.len() >= 3);
}

#[test]
fn wrong_key_plays_invalid_then_the_menu() {
    let mut rig = Rig::new();
    let trunk = Caller::trunk(&mut rig);
    let (_call, key) = answered_call(&mut rig, &trunk);
    rig.finish_play(key);
    rig.input(Input::Digit {
        call: key,
        digit: '9',
    });
    let again = rig.last_play(key);
    assert_eq!(again.first().map(String::as_str), Some("invalid-choice"));
    assert!(again.contains(&"main-menu".to_owned()));
}

#[test]
fn evening_goes_to_voicemail_and_hash_ends_the_recording() {
    let mut rig = Rig::new();
    rig.advance(secs(10 * 3600)); // Monday 20:00 in Rome: closed.
    let trunk = Caller::trunk(&mut rig);
    let (_call, key) = answered_call(&mut rig, &trunk);
    assert_eq!(rig.last_play(key)[0], "closed");
    assert_eq!(rig.last_play(key).len(), 2, "greeting, then the beep");
    rig.finish_play(key);
    assert!(
        rig.ivr_media
            .iter()
            .any(|m| m == &format!("record {} general", key.0))
    );
    rig.input(Input::Digit {
        call: key,
        digit: '#',
    });
    assert!(
        rig.ivr_media
            .iter()
            .any(|m| m == &format!("stop-record {}", key.0))
    );
    // The media side stored the message durably: only now the switch hangs up.
    rig.input(Input::RecordingDone {
        call: key,
        stored: true,
    });
    let bye = rig.expect_request(trunk.addr, Method::Bye);
    trunk.respond(&mut rig, &bye, 200);
    rig.advance(secs(40));
    rig.assert_no_leaks();
}

#[test]
fn nobody_on_shift_answers_then_voicemail() {
    let (mut rig, p204, leg, key) = caller_whose_transfer_to_204_rings_out();
    p204.answer(&mut rig, &leg, 487);
    assert_eq!(rig.last_play(key)[0], "closed");
    rig.finish_play(key);
    assert!(rig.ivr_media.iter().any(|m| m.starts_with("record")));
}

#[test]
fn caller_hangs_up_in_the_menu_nothing_leaks() {
    let mut rig = Rig::new();
    let trunk = Caller::trunk(&mut rig);
    let (mut call, key) = answered_call(&mut rig, &trunk);
    rig.advance(secs(1));
    trunk.bye(&mut rig, &mut call);
    rig.expect_response(trunk.addr, 200, Method::Bye);
    assert!(rig.closed.contains(&key));
    // A late playback end finds no call.
    rig.finish_play(key);
    rig.advance(secs(60));
    rig.assert_no_leaks();
}

#[test]
fn a_silent_line_cannot_keep_the_recording_open() {
    let mut rig = Rig::new();
    rig.advance(secs(10 * 3600)); // closed
    let trunk = Caller::trunk(&mut rig);
    let (_call, key) = answered_call(&mut rig, &trunk);
    rig.finish_play(key);
    assert!(
        rig.ivr_media
            .iter()
            .any(|m| m == &format!("record {} general", key.0))
    );
    // No RTP at all: past the box's 180 s the switch stops the recording itself.
    rig.advance(secs(182));
    assert!(!rig.ivr_media.iter().any(|m| m.starts_with("stop-record")));
    rig.advance(secs(2));
    assert!(
        rig.ivr_media
            .iter()
            .any(|m| m == &format!("stop-record {}", key.0))
    );
}

#[test]
fn hangup_target_plays_its_prompt_then_byes() {
    let (mut rig, trunk, key) = closed_call_that_hangs_up(1);
    assert!(
        rig.pending(trunk.addr).is_empty(),
        "no BYE before the prompt ends"
    );
    rig.finish_play(key);
    let bye = rig.expect_request(trunk.addr, Method::Bye);
    trunk.respond(&mut rig, &bye, 200);
    rig.advance(secs(40));
    rig.assert_no_leaks();
}

#[test]
fn a_late_answer_after_the_caller_moved_on_is_hung_up() {
    let (mut rig, p204, leg, key) = caller_whose_transfer_to_204_rings_out();
    // The phone's 200 crosses our CANCEL: it is ACKed and hung up, not bridged.
    p204.answer_with_sdp(&mut rig, &leg, 200);
    rig.expect_request(p204.addr, Method::Ack);
    rig.expect_request(p204.addr, Method::Bye);
    assert!(!rig.ivr_media.iter().any(|m| m.starts_with("bridge")));
    assert_eq!(rig.last_play(key)[0], "closed");
}

/// The example with the emergency number ringing `salute` directly (no menu).
fn direct_group_rig() -> Rig {
    let text = Rig::example_text().replace(r#"open = "menu:main""#, r#"open = "group:salute""#);
    // The menu stays reachable through a second number.
    let text = text.replace(
        "[menus.main]",
        "[[numbers]]\nnumber = \"800000001\"\nopen = \"menu:main\"\nclosed = \"voicemail:general\"\n\n[menus.main]",
    );
    Rig::with_config(&text, 2)
}

#[test]
fn a_group_dialled_directly_that_nobody_answers_goes_to_its_no_answer_target() {
    let mut rig = direct_group_rig();
    let p204 = phone(&mut rig, "204", 5064);
    let trunk = Caller::trunk(&mut rig);
    let mut call = trunk.invite(&mut rig, EMERGENCY, &[]);
    rig.expect_response(trunk.addr, 100, Method::Invite);
    let leg = p204.expect_invite(&mut rig);
    p204.answer(&mut rig, &leg, 180);
    rig.expect_response(trunk.addr, 180, Method::Invite);
    // salute rings 20 s per member; 205 is off shift; then voicemail:general.
    rig.advance(secs(21));
    let cancel = rig.expect_request(p204.addr, Method::Cancel);
    p204.respond(&mut rig, &cancel, 200);
    p204.answer(&mut rig, &leg, 487);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    trunk.ack(&mut rig, &mut call, &ok);
    let key = rig.opened.last().expect("media").0;
    assert_eq!(rig.last_play(key)[0], "closed");
}

#[test]
fn a_group_dialled_directly_whose_members_are_busy_goes_to_voicemail_not_busy_tone() {
    let mut rig = direct_group_rig();
    let p204 = phone(&mut rig, "204", 5064);
    let trunk = Caller::trunk(&mut rig);
    trunk.invite(&mut rig, EMERGENCY, &[]);
    rig.expect_response(trunk.addr, 100, Method::Invite);
    let leg = p204.expect_invite(&mut rig);
    p204.answer(&mut rig, &leg, 486);
    rig.expect_request(p204.addr, Method::Ack);
    let ok = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(ok.status, 200, "answered by voicemail, not 486");
}

/// 300 callers in virtual time doing whatever callers do (keys, INFO, `#`, silence, hanging up
/// in the menu, during a message or while recording; playbacks that end or not) on a switch
/// where nobody is registered, so every transfer falls through to voicemail. Afterwards no
/// call, transaction, port or timer is left.
#[test]
fn soak_ivr_callers_leave_nothing_behind() {
    let mut rig = Rig::new();
    rig.ladder_limit = Some(200);
    let trunk = Caller::trunk(&mut rig);
    let mut seed: u64 = 0x5eed;
    let mut rand = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut live: Vec<(rig::Placed, CallKey)> = Vec::new();
    let keys = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#'];
    for _ in 0..300 {
        live.push(answered_call(&mut rig, &trunk));
        for _ in 0..3 {
            if live.is_empty() {
                break;
            }
            let i = rand(live.len() as u64) as usize;
            let key = live[i].1;
            match rand(10) {
                0..=2 => {
                    if rig.plays.iter().any(|(c, _, _)| *c == key) {
                        rig.finish_play(key);
                    }
                }
                3..=5 => rig.input(Input::Digit {
                    call: key,
                    digit: keys[rand(keys.len() as u64) as usize],
                }),
                6 => {
                    let call = &mut live[i].0;
                    call.cseq += 1;
                    let info = trunk.in_dialog(
                        &mut rig,
                        call,
                        Method::Info,
                        call.cseq,
                        &[("Content-Type", "application/dtmf-relay")],
                        &format!("Signal={}\r\nDuration=100\r\n", keys[rand(12) as usize]),
                    );
                    rig.send(trunk.addr, info.to_bytes());
                }
                7 => rig.input(Input::RecordingDone {
                    call: key,
                    stored: true,
                }),
                _ => {
                    let (mut call, _) = live.swap_remove(i);
                    trunk.bye(&mut rig, &mut call);
                }
            }
        }
        // The trunk answers whatever the switch asks of it (BYE after a message or a recording).
        for m in rig.take_all(trunk.addr, |m| matches!(m, sip_msg::Message::Request(_))) {
            if let sip_msg::Message::Request(r) = m
                && r.method != Method::Ack
            {
                trunk.respond(&mut rig, &r, 200);
            }
        }
        rig.advance(Duration::from_millis(rand(3000)));
    }
    for (mut call, _) in live.drain(..) {
        trunk.bye(&mut rig, &mut call);
    }
    rig.advance(secs(5));
    for m in rig.take_all(trunk.addr, |m| matches!(m, sip_msg::Message::Request(_))) {
        if let sip_msg::Message::Request(r) = m
            && r.method != Method::Ack
        {
            trunk.respond(&mut rig, &r, 200);
        }
    }
    rig.advance(secs(120));
    assert_eq!(rig.sb.stats().calls_ivr, 300);
    // The soak went where it should: many keys, recordings started and stored, plays cut.
    let records = rig
        .ivr_media
        .iter()
        .filter(|m| m.starts_with("record"))
        .count();
    assert!(rig.sb.stats().ivr_digits > 200, "{:?}", rig.sb.stats());
    assert!(
        records > 10 && rig.sb.stats().voicemails > 5,
        "{records} {:?}",
        rig.sb.stats()
    );
    rig.assert_no_leaks();
}

#[test]
fn a_lost_end_of_playback_does_not_keep_the_caller_waiting() {
    let (mut rig, trunk, _key) = closed_call_that_hangs_up(3);
    // The media side never reports the end of the 1 s prompt: 5 s later the switch goes on.
    rig.advance(secs(5));
    assert!(
        rig.pending(trunk.addr).is_empty(),
        "not before the prompt's length + margin"
    );
    rig.advance(secs(2));
    let bye = rig.expect_request(trunk.addr, Method::Bye);
    trunk.respond(&mut rig, &bye, 200);
    rig.advance(secs(40));
    rig.assert_no_leaks();
}

#[test]
fn media_failing_before_the_callers_ack_waits_for_the_ack_to_bye() {
    let mut rig = Rig::new();
    let trunk = Caller::trunk(&mut rig);
    let mut call = trunk.invite(&mut rig, EMERGENCY, &[]);
    rig.expect_response(trunk.addr, 100, Method::Invite);
    let ok = rig.expect_response(trunk.addr, 200, Method::Invite);
    let key = rig.opened.last().expect("media").0;
    rig.input(Input::MediaFailed { call: key });
    assert!(
        rig.take(trunk.addr, |m| rig::is_request(m, &Method::Bye))
            .is_none(),
        "RFC 3261 §15: no BYE before the ACK"
    );
    trunk.ack(&mut rig, &mut call, &ok);
    let bye = rig.expect_request(trunk.addr, Method::Bye);
    trunk.respond(&mut rig, &bye, 200);
    rig.advance(secs(40));
    rig.assert_no_leaks();
}

#[test]
fn a_reinvite_during_the_ivr_keeps_the_law_the_prompts_use() {
    let mut rig = Rig::new();
    let trunk = Caller::trunk(&mut rig);
    let (mut call, _key) = answered_call(&mut rig, &trunk);
    // The trunk now prefers A-law; the prompts are being sent in µ-law.
    call.cseq += 1;
    let body = rig::sdp("127.0.0.2", call.rtp_port, "sendrecv")
        .replace("RTP/AVP 0 8 101", "RTP/AVP 8 0 101")
        .replace("o=peer 1000 1", "o=peer 1000 2");
    let req = trunk.in_dialog(&mut rig, &call, Method::Invite, call.cseq, &[], &body);
    rig.send(trunk.addr, req.to_bytes());
    let ok = rig.expect_final(trunk.addr, Method::Invite);
    assert_eq!(ok.status, 200);
    let answer = String::from_utf8_lossy(&ok.body).into_owned();
    assert!(
        answer.contains("RTP/AVP 0") && !answer.contains("PCMA"),
        "the answer keeps PCMU: {answer}"
    );
    trunk.ack_reinvite(&mut rig, &call);
}

#[test]
fn a_reinvite_with_another_telephone_event_type_retunes_the_detector() {
    let mut rig = Rig::new();
    let trunk = Caller::trunk(&mut rig);
    let (mut call, key) = answered_call(&mut rig, &trunk);
    call.cseq += 1;
    let body = rig::sdp("127.0.0.2", call.rtp_port, "sendrecv")
        .replace(" 101", " 96")
        .replace(":101", ":96")
        .replace("o=peer 1000 1", "o=peer 1000 2");
    let req = trunk.in_dialog(&mut rig, &call, Method::Invite, call.cseq, &[], &body);
    rig.send(trunk.addr, req.to_bytes());
    let ok = rig.expect_final(trunk.addr, Method::Invite);
    assert!(String::from_utf8_lossy(&ok.body).contains("telephone-event"));
    trunk.ack_reinvite(&mut rig, &call);
    assert!(
        rig.ladder.iter().any(|l| l.contains(&format!(
            "MediaDtmf {{ call: CallKey({}), telephone_event: Some(96) }}",
            key.0
        ))),
        "the media side is told the new payload type"
    );
}

#[test]
fn the_media_timeout_waits_while_the_switch_serves_the_caller_and_resumes_once_bridged() {
    let mut rig = Rig::new();
    let p204 = phone(&mut rig, "204", 5064);
    let trunk = Caller::trunk(&mut rig);
    let (_call, key) = answered_call(&mut rig, &trunk);
    // A trunk with voice activity detection may send nothing while its caller listens.
    assert_eq!(rig.holds.last(), Some(&(key, true)));
    rig.input(Input::Digit {
        call: key,
        digit: '4',
    });
    let leg = p204.expect_invite(&mut rig);
    p204.answer_with_sdp(&mut rig, &leg, 200);
    rig.expect_request(p204.addr, Method::Ack);
    assert_eq!(
        rig.holds.last(),
        Some(&(key, false)),
        "bridged: dead media ends the call again"
    );
}
