//! End-to-end tests with real SIP peers (SIPp, Debian's `sip-tester`) against the real binary on
//! loopback: registration with digest, a trunk call bridged to a registered phone, CANCEL, and
//! hang-ups from either side. The trunk `provider` sends from 127.0.0.2 as the example says.

mod common;

use std::time::Duration;

use common::{Switch, args, port_block, register, scenario, sipp};

const SALT: u16 = 0;

fn register_refused(sw: &Switch, ext: &str, password: &str, port: u16) -> common::SippRun {
    sipp(
        &args(&[
            "-sf",
            &scenario("register_wrong.xml"),
            "-s",
            ext,
            "-au",
            ext,
            "-ap",
            password,
            "-m",
            "1",
            "-p",
            &port.to_string(),
            "-i",
            "127.0.0.1",
            "-timeout",
            "10",
            &sw.sip.to_string(),
        ]),
        Duration::from_secs(15),
    )
}

/// Runs a phone (UAS scenario) on `port` in the background while `caller` runs.
fn call_with_phone(uas: Vec<String>, caller: Vec<String>) -> (common::SippRun, common::SippRun) {
    let phone = std::thread::spawn(move || sipp(&uas, Duration::from_secs(25)));
    std::thread::sleep(Duration::from_millis(300));
    let trunk = sipp(&caller, Duration::from_secs(25));
    let phone = phone.join().expect("phone thread");
    (trunk, phone)
}

fn uas(scn: Option<&str>, port: u16, media_port: u16) -> Vec<String> {
    let mut a = match scn {
        Some(s) => args(&["-sf", &scenario(s)]),
        None => args(&["-sn", "uas"]),
    };
    a.extend(args(&[
        "-p",
        &port.to_string(),
        "-i",
        "127.0.0.1",
        "-mp",
        &media_port.to_string(),
        "-m",
        "1",
        "-timeout",
        "20",
    ]));
    a
}

fn trunk(scn: Option<&str>, dialled: &str, port: u16, media_port: u16, sw: &Switch) -> Vec<String> {
    let mut a = match scn {
        Some(s) => args(&["-sf", &scenario(s)]),
        None => args(&["-sn", "uac", "-d", "500"]),
    };
    a.extend(args(&[
        "-s",
        dialled,
        "-i",
        "127.0.0.2",
        "-p",
        &port.to_string(),
        "-mp",
        &media_port.to_string(),
        "-m",
        "1",
        "-timeout",
        "20",
        &sw.sip.to_string(),
    ]));
    a
}

fn assert_ok(what: &str, run: &common::SippRun, sw: &Switch) {
    assert!(
        run.success,
        "{what} failed (exit {:?}):\n{}\n--- switch log ---\n{}",
        run.code,
        run.output,
        tail(&sw.log())
    );
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Waits until the switch reports no calls and no media ports (leak check), 10 s at most.
fn assert_idle(sw: &Switch) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let calls = sw.metric("centralino_calls_active");
        let ports = sw.metric("centralino_media_ports_in_use");
        if calls == Some(0.0) && ports == Some(0.0) {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "switch not idle after the call: calls={calls:?} ports={ports:?}\n{}",
                sw.metrics_text()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn register_with_digest_right_wrong_and_unknown_user() {
    let base = port_block(SALT);
    let sw = Switch::start("reg", base, base + 10_000, &[]);
    let ok = register(&sw, "202", "pw202", base + 2, base + 2);
    assert_ok("REGISTER with the right password", &ok, &sw);
    let wrong = register_refused(&sw, "202", "not-the-password", base + 3);
    assert_ok("REGISTER with a wrong password answered 401", &wrong, &sw);
    let unknown = register_refused(&sw, "299", "whatever", base + 4);
    assert_ok(
        "REGISTER of an unknown extension answered 401 like a wrong password",
        &unknown,
        &sw,
    );
    assert_eq!(
        sw.wait_metric("centralino_registrations_active", 1.0),
        Some(1.0),
        "{}",
        sw.metrics_text()
    );
}

#[test]
fn stale_nonce_is_rechallenged_and_unregister_removes_the_binding() {
    let base = port_block(SALT);
    let sw = Switch::start(
        "stale",
        base,
        base + 10_000,
        &[("nonce_lifetime_secs", "1".into())],
    );
    let run = sipp(
        &args(&[
            "-sf",
            &scenario("register_stale.xml"),
            "-s",
            "203",
            "-au",
            "203",
            "-ap",
            "pw203",
            "-m",
            "1",
            "-p",
            &(base + 2).to_string(),
            "-i",
            "127.0.0.1",
            "-timeout",
            "15",
            &sw.sip.to_string(),
        ]),
        Duration::from_secs(20),
    );
    assert_ok("stale nonce then unregister", &run, &sw);
    // Unregistered: a call to 203 finds nobody.
    let call = sipp(
        &trunk(None, "203", base + 5, base + 6, &sw),
        Duration::from_secs(10),
    );
    assert!(
        !call.success,
        "a call to an unregistered extension must fail"
    );
    assert!(
        call.output.contains("480"),
        "expected 480 Temporarily Unavailable:\n{}",
        call.output
    );
}

#[test]
fn trunk_call_is_bridged_to_the_registered_phone_and_the_caller_hangs_up() {
    let base = port_block(SALT);
    let sw = Switch::start("call", base, base + 10_000, &[]);
    let (phone_port, trunk_port) = (base + 2, base + 3);
    assert_ok(
        "phone registration",
        &register(&sw, "201", "pw201", base + 4, phone_port),
        &sw,
    );
    let (t, p) = call_with_phone(
        uas(None, phone_port, base + 20),
        trunk(None, "201", trunk_port, base + 8, &sw),
    );
    assert_ok("trunk (SIPp uac) call", &t, &sw);
    assert_ok("phone (SIPp uas) answer", &p, &sw);
    assert_idle(&sw);
    assert_eq!(
        sw.wait_metric("centralino_calls_answered_total", 1.0),
        Some(1.0)
    );
}

#[test]
fn direct_inward_dialling_rings_the_extension_and_the_phone_hangs_up() {
    let base = port_block(SALT);
    let sw = Switch::start("did", base, base + 10_000, &[]);
    let (phone_port, trunk_port) = (base + 2, base + 3);
    assert_ok(
        "phone registration",
        &register(&sw, "204", "pw204", base + 4, phone_port),
        &sw,
    );
    let (t, p) = call_with_phone(
        uas(Some("uas_answer_bye.xml"), phone_port, base + 20),
        trunk(Some("uac_wait_bye.xml"), "204", trunk_port, base + 8, &sw),
    );
    assert_ok("trunk waits for the callee's BYE", &t, &sw);
    assert_ok("phone answers then hangs up", &p, &sw);
    assert_idle(&sw);
}

#[test]
fn caller_cancels_while_the_phone_rings() {
    let base = port_block(SALT);
    let sw = Switch::start("cancel", base, base + 10_000, &[]);
    let (phone_port, trunk_port) = (base + 2, base + 3);
    assert_ok(
        "phone registration",
        &register(&sw, "201", "pw201", base + 4, phone_port),
        &sw,
    );
    let (t, p) = call_with_phone(
        uas(Some("uas_ring_cancelled.xml"), phone_port, base + 20),
        trunk(Some("uac_cancel.xml"), "201", trunk_port, base + 8, &sw),
    );
    assert_ok("trunk CANCEL gets 200 and 487", &t, &sw);
    assert_ok("phone receives the CANCEL", &p, &sw);
    assert_idle(&sw);
}

#[test]
fn untrusted_source_is_challenged_not_bridged() {
    let base = port_block(SALT);
    let sw = Switch::start("untrusted", base, base + 10_000, &[]);
    // SIPp's uac from 127.0.0.1 (not the trunk's 127.0.0.2) gets 407, never a call.
    let run = sipp(
        &args(&[
            "-sn",
            "uac",
            "-s",
            "201",
            "-i",
            "127.0.0.1",
            "-p",
            &(base + 3).to_string(),
            "-mp",
            &(base + 34).to_string(),
            "-m",
            "1",
            "-timeout",
            "10",
            &sw.sip.to_string(),
        ]),
        Duration::from_secs(15),
    );
    assert!(!run.success);
    assert!(
        run.output.contains("407"),
        "expected a 407 challenge:\n{}",
        run.output
    );
}

#[test]
fn registration_over_tcp_with_digest() {
    let base = port_block(SALT);
    let sw = Switch::start("tcp", base, base + 10_000, &[]);
    let run = common::register_via(
        &sw,
        "203",
        "pw203",
        base + 2,
        base + 2,
        "127.0.0.1",
        &["-t", "t1"],
    );
    assert_ok("REGISTER over TCP", &run, &sw);
    assert_eq!(
        sw.wait_metric("centralino_registrations_active", 1.0),
        Some(1.0)
    );
}

#[test]
fn ipv6_registration_and_call() {
    let base = port_block(SALT);
    let dir =
        std::env::temp_dir().join(format!("centralino-test-v6-{}-{base}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    // The example's trunk also accepts ::1 here, so SIPp can be the trunk over IPv6.
    let example = common::example_config().replace(
        "addresses = [\"127.0.0.2\"]",
        "addresses = [\"127.0.0.2\", \"::1\"]",
    );
    assert!(
        example.contains("\"::1\""),
        "the example's trunk addresses line changed; update this test"
    );
    std::fs::write(dir.join("example-v6.toml"), example).expect("write");
    let sw = Switch::start_listen(dir, "[::1]", base, base + 10_000, Some("example-v6.toml"));
    let (phone_port, trunk_port) = (base + 2, base + 3);
    let target = sw.sip.to_string();
    let reg = common::register_via(&sw, "201", "pw201", base + 4, phone_port, "::1", &[]);
    assert_ok("REGISTER over IPv6", &reg, &sw);
    let phone = args(&[
        "-sn",
        "uas",
        "-p",
        &phone_port.to_string(),
        "-i",
        "::1",
        "-mp",
        &(base + 20).to_string(),
        "-m",
        "1",
        "-timeout",
        "20",
    ]);
    let caller = args(&[
        "-sn",
        "uac",
        "-d",
        "500",
        "-s",
        "201",
        "-i",
        "::1",
        "-p",
        &trunk_port.to_string(),
        "-mp",
        &(base + 30).to_string(),
        "-m",
        "1",
        "-timeout",
        "20",
        &target,
    ]);
    let (t, p) = call_with_phone(phone, caller);
    assert_ok("trunk call over IPv6", &t, &sw);
    assert_ok("phone answers over IPv6", &p, &sw);
    assert_idle(&sw);
}

#[test]
fn a_media_port_taken_by_another_program_fails_one_call_then_is_set_aside() {
    let base = port_block(SALT);
    let rtp = base + 10_000;
    // Four RTP pairs only, and another program sits on the first two (a stray process did so
    // during the benchmarks). Freed pairs are reused last, so without setting the taken ones
    // aside the third call would draw them again.
    let sw = Switch::start(
        "taken",
        base,
        rtp,
        &[("rtp_ports", format!("\"{rtp}-{}\"", rtp + 7))],
    );
    let squatters: Vec<std::net::UdpSocket> = (rtp..rtp + 4)
        .filter_map(|p| std::net::UdpSocket::bind(("127.0.0.1", p)).ok())
        .collect();
    assert_eq!(squatters.len(), 4, "test setup: could not take the ports");
    let (phone_port, trunk_port) = (base + 2, base + 3);
    assert_ok(
        "phone registration",
        &register(&sw, "201", "pw201", base + 4, phone_port),
        &sw,
    );
    let first = sipp(
        &trunk(None, "201", trunk_port, base + 8, &sw),
        Duration::from_secs(15),
    );
    assert!(
        !first.success && first.output.contains("480"),
        "the call that drew the taken ports fails cleanly with 480:\n{}",
        first.output
    );
    for n in 2..=3 {
        let (t, p) = call_with_phone(
            uas(None, phone_port, base + 20),
            trunk(None, "201", trunk_port, base + 8, &sw),
        );
        assert_ok(&format!("call {n}, on the ports left"), &t, &sw);
        assert_ok(&format!("phone answers call {n}"), &p, &sw);
    }
    assert!(
        sw.log().contains("set aside"),
        "the switch says what it did:\n{}",
        sw.log()
    );
    drop(squatters);
    assert_idle(&sw);
}

#[test]
fn tcp_phone_is_reached_at_its_contact_after_the_registration_connection_closed() {
    let base = port_block(SALT);
    let sw = Switch::start("tcp-contact", base, base + 10_000, &[]);
    let (phone_port, trunk_port) = (base + 2, base + 3);
    // One SIPp registers over TCP and exits (its connection closes); another listens on the
    // Contact's port over TCP, as a desk phone does after reconnecting.
    let reg = common::register_via(
        &sw,
        "202",
        "pw202",
        base + 4,
        phone_port,
        "127.0.0.1",
        &["-t", "t1"],
    );
    assert_ok("REGISTER over TCP", &reg, &sw);
    let mut phone = uas(None, phone_port, base + 20);
    phone.extend(args(&["-t", "t1"]));
    let (t, p) = call_with_phone(phone, trunk(None, "202", trunk_port, base + 8, &sw));
    assert_ok("trunk call to the TCP phone", &t, &sw);
    assert_ok("TCP phone answers at its Contact", &p, &sw);
    assert_idle(&sw);
}

#[test]
fn sighup_reloads_a_good_configuration_and_refuses_a_bad_one() {
    let base = port_block(SALT);
    let sw = Switch::start("reload", base, base + 10_000, &[]);
    let good = std::fs::read_to_string(&sw.config_path).expect("config");
    let hup = |sw: &Switch| {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &sw.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    let wait_log = |sw: &Switch, needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !sw.log().contains(needle) {
            assert!(
                std::time::Instant::now() < deadline,
                "no `{needle}` in the log:\n{}",
                sw.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // A broken file is refused with its position, and the switch keeps serving.
    std::fs::write(&sw.config_path, good.replace("[switch]", "[switch\n")).expect("write");
    hup(&sw);
    wait_log(&sw, "reload refused");
    assert!(
        sw.log().contains("centralino.toml:"),
        "the refusal names file and line:\n{}",
        sw.log()
    );
    assert!(
        common::options_ping(sw.sip, Duration::from_secs(2)),
        "still answering after a refused reload"
    );
    // So is a dialplan naming a prompt that has no file: at the reference's position.
    std::fs::write(
        &sw.config_path,
        good.replace(
            r#""welcome", "main-menu""#,
            r#""welcome", "no-such-prompt""#,
        ),
    )
    .expect("write");
    hup(&sw);
    wait_log(&sw, "prompt `no-such-prompt`");
    assert_eq!(
        sw.log().matches("reload refused").count(),
        2,
        "the prompt error refuses the reload:\n{}",
        sw.log()
    );
    // A good one is taken: a new extension 206 can register from now on.
    let with_206 = good.replacen(
        "[[extensions]]",
        "[[extensions]]\nnumber = \"206\"\npassword = \"pw206\"\n\n[[extensions]]",
        1,
    );
    assert_ne!(
        with_206, good,
        "the example has no [[extensions]]; update this test"
    );
    assert!(
        !register(&sw, "206", "pw206", base + 5, base + 5).success,
        "206 is unknown before the reload"
    );
    std::fs::write(&sw.config_path, with_206).expect("write");
    hup(&sw);
    wait_log(&sw, "configuration reloaded");
    assert_ok(
        "206 registers after the reload",
        &register(&sw, "206", "pw206", base + 4, base + 4),
        &sw,
    );
}
