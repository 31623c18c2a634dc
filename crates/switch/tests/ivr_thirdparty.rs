//! Issue 5 through real third-party callers: a SIPp UAC playing RFC 2833 DTMF `4` from
//! Debian's pcap (`/usr/share/sip-tester/dtmf_2833_4.pcap`), and `baresip` sending RFC 4733
//! through its control socket, each call the emergency number from the trunk address on a
//! weekday at 10:00 (`--start-time`), navigate the example's menu and reach extension 204 (a
//! registered SIPp UAS), never 205 (off shift).

mod common;

use std::time::Duration;

use common::baresip_caller::BaresipCaller;
use common::{Switch, args, port_block, register, scenario, sipp};

const SALT: u16 = 7;
/// Monday 2 March 2026, 10:00 in Rome.
const WEEKDAY_10: &str = "2026-03-02T09:00:00Z";

/// A switch at 10:00 on a weekday with 204 registered and answered by a SIPp UAS that waits
/// for BYE; returns the switch and the UAS thread.
fn switch_with_204(
    name: &str,
    base: u16,
    rtp: u16,
) -> (Switch, std::thread::JoinHandle<common::SippRun>) {
    let sw = Switch::start(name, base, rtp, &[("--start-time", WEEKDAY_10.to_owned())]);
    let phone_port = base + 6;
    let reg = register(&sw, "204", "pw204", base + 4, phone_port);
    assert!(reg.success, "204 registers:\n{}", reg.output);
    let uas_args = args(&[
        "-sf",
        &scenario("uas_media_wait_bye.xml"),
        "-key",
        "rtp_port",
        &(base + 30).to_string(),
        "-i",
        "127.0.0.1",
        "-p",
        &phone_port.to_string(),
        "-mp",
        &(base + 8).to_string(),
        "-m",
        "1",
        "-timeout",
        "40",
    ]);
    let uas = std::thread::spawn(move || sipp(&uas_args, Duration::from_secs(45)));
    std::thread::sleep(Duration::from_millis(300));
    (sw, uas)
}

#[test]
fn sipp_uac_with_rfc2833_pcap_reaches_204() {
    let base = port_block(SALT);
    let (sw, uas) = switch_with_204("ivr-sipp-pcap", base, 62_000);
    // The caller waits 2 s into the welcome prompt, plays `4`, stays 3 s, hangs up.
    let caller = sipp(
        &args(&[
            "-sf",
            &scenario("uac_ivr_dtmf.xml"),
            "-key",
            "pcap",
            "/usr/share/sip-tester/dtmf_2833_4.pcap",
            "-s",
            "800840840",
            "-i",
            "127.0.0.2",
            "-mi",
            "127.0.0.2",
            "-p",
            &(base + 10).to_string(),
            "-mp",
            &(base + 12).to_string(),
            "-d",
            "3000",
            "-m",
            "1",
            "-timeout",
            "30",
            &sw.sip.to_string(),
        ]),
        Duration::from_secs(35),
    );
    let uas = uas.join().expect("uas thread");
    assert!(
        caller.success,
        "SIPp caller failed:\n{}\n{}",
        caller.output,
        sw.log()
    );
    assert!(
        uas.success,
        "204 (SIPp UAS) was not called and hung up:\n{}\n{}",
        uas.output,
        sw.log()
    );
    assert!(
        sw.log().contains("transferred call answered"),
        "{}",
        sw.log()
    );
    // The pcap's one key, detected once (its three end packets are one press).
    assert_eq!(
        sw.wait_metric("centralino_ivr_digits_total", 1.0),
        Some(1.0)
    );
    assert_eq!(sw.metric("centralino_calls_ivr_total"), Some(1.0));
}

#[test]
fn baresip_caller_navigates_the_menu_to_204() {
    let base = port_block(SALT);
    let (sw, uas) = switch_with_204("ivr-baresip", base, 62_100);
    let dir = std::env::temp_dir().join(format!(
        "centralino-test-ivr-baresip-{}-{base}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut caller = BaresipCaller::start(&dir, base + 12, Duration::from_secs(30));
    let result = caller.call_and_press(
        &format!("sip:800840840@{}", sw.sip),
        Duration::from_secs(5),
        Duration::from_millis(1500),
        "4",
        Duration::from_secs(3),
    );
    let uas = uas.join().expect("uas thread");
    if let Err(e) = result {
        panic!("baresip: {e}\n--- switch ---\n{}", sw.log());
    }
    assert!(
        uas.success,
        "204 (SIPp UAS) was not called and hung up:\n{}\n{}",
        uas.output,
        sw.log()
    );
}
