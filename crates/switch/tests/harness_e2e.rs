//! End-to-end: the real `centralino` binary on loopback, driven by the harness's scripted
//! trunk (127.0.0.2, trusted by address) and phones (127.0.0.1, digest). Each test runs its
//! own switch with its own SIP, metrics and RTP ports, and prints the SIP ladder and the
//! switch's log when it fails.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use harness::{Call, Phone, RtpLeg, StreamReport, Transcript, Trunk, UserAgent};
use sip_msg::{HeaderName, Response};

const DOMAIN: &str = "centralino.example";
const EXAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../dialplans/example.toml"
));
/// Packets each way in a media check: one second of 20 ms packets.
const N_PACKETS: u16 = 50;

/// The Italian prompt set of the repository.
const PROMPTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../prompts/it");

const PHONE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const TRUNK_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A free loopback port usable for both UDP and TCP (the switch binds both).
fn free_sip_port() -> u16 {
    for _ in 0..100 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral UDP port");
        let port = udp
            .local_addr()
            .expect("bound socket has an address")
            .port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral TCP port");
    l.local_addr().expect("bound socket has an address").port()
}

/// The switch's RTP range for test `index`: 40 ports in 30000-32759, below Linux's ephemeral
/// range (32768+) so the harness's own sockets never take them. Tests of one process get
/// distinct blocks (index < 69); the process id spreads concurrent test processes.
fn rtp_range(index: u32) -> (u16, u16) {
    assert!(index < 69, "more switches than RTP blocks: widen rtp_range");
    let block = (std::process::id() % 69 + index) % 69;
    let base = 30_000 + block * 40;
    (base as u16, (base + 39) as u16)
}

/// One running switch: its files, its address and its process, killed on drop.
struct Switch {
    dir: PathBuf,
    config: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    listen: SocketAddr,
    child: Option<Child>,
    /// `--start-time`, if the test sets the clock.
    start_time: Option<String>,
}

impl Switch {
    /// Writes a config derived from the example dialplan and starts the switch; waits until it
    /// answers OPTIONS.
    async fn start() -> Switch {
        Switch::start_with("").await
    }

    /// [`Switch::start`] with `extra` lines added to the `[switch]` table.
    async fn start_with(extra: &str) -> Switch {
        Switch::start_full(extra, None, EXAMPLE).await
    }

    /// A switch whose clock starts at `start_time` (RFC 3339), running `dialplan`.
    async fn start_at(start_time: &str, dialplan: &str) -> Switch {
        Switch::start_full("", Some(start_time), dialplan).await
    }

    async fn start_full(extra: &str, start_time: Option<&str>, dialplan: &str) -> Switch {
        // Each switch of this process gets its own RTP block (see `rtp_range`).
        static NEXT_INDEX: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let index = NEXT_INDEX.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "centralino-e2e-{}-{index}-{}",
            std::process::id(),
            harness::random_hex()
        ));
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let (lo, hi) = rtp_range(index);
        let metrics_port = free_tcp_port();
        let mut config_text = String::new();
        let (mut saw_rtp, mut saw_metrics) = (false, false);
        // The prompts of the repository (the config is written elsewhere).
        let extra = format!("prompts = \"{PROMPTS_DIR}\"\n{extra}");
        for line in dialplan.lines() {
            let key = line.split('=').next().unwrap_or_default().trim();
            match key {
                "rtp_ports" => {
                    saw_rtp = true;
                    config_text.push_str(&format!("rtp_ports = \"{lo}-{hi}\"\n"));
                }
                "metrics" => {
                    saw_metrics = true;
                    config_text.push_str(&format!("metrics = \"127.0.0.1:{metrics_port}\"\n"));
                }
                _ => {
                    config_text.push_str(line);
                    config_text.push('\n');
                    if line.trim() == "[switch]" {
                        config_text.push_str(&extra);
                    }
                }
            }
        }
        assert!(
            saw_rtp && saw_metrics,
            "the example dialplan no longer sets rtp_ports and metrics in [switch]"
        );
        let config = dir.join("centralino.toml");
        std::fs::write(&config, config_text).expect("write the config");
        let mut switch = Switch {
            data_dir: dir.join("data"),
            log: dir.join("switch.log"),
            config,
            dir,
            listen: SocketAddr::new(PHONE_IP, free_sip_port()),
            child: None,
            start_time: start_time.map(str::to_owned),
        };
        switch.spawn().await;
        switch
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the switch log");
        let child = Command::new(env!("CARGO_BIN_EXE_centralino"))
            .args(["run", "--config"])
            .arg(&self.config)
            .args(["--listen", &self.listen.to_string(), "--data-dir"])
            .arg(&self.data_dir)
            .args(
                self.start_time
                    .as_deref()
                    .map(|t| vec!["--start-time", t])
                    .unwrap_or_default(),
            )
            .env("RUST_LOG", "info,b2bua=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start centralino");
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let probe_log = Transcript::new();
        let mut probe = UserAgent::bind("probe", PHONE_IP, self.listen, DOMAIN, &probe_log)
            .await
            .expect("bind the probe");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "centralino exited early with {status}:\n{}",
                    self.log_text()
                );
            }
            match probe.options(Duration::from_millis(300)).await {
                Ok(r) if r.status == 200 => return,
                _ if Instant::now() > deadline => panic!(
                    "centralino did not answer OPTIONS within 15 s:\n{}",
                    self.log_text()
                ),
                _ => {}
            }
        }
    }

    /// SIGTERM, then the exit status (bounded wait).
    fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the switch is running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("wait for centralino") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "centralino did not exit within 10 s of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .take(80)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            eprintln!(
                "---- centralino log (last 80 lines; all in {}) ----\n{}",
                self.log.display(),
                tail.join("\n")
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A registered phone for `extension` (password `pw<extension>` in the example dialplan).
async fn registered_phone(switch: &Switch, transcript: &Transcript, extension: &str) -> Phone {
    let mut phone = Phone::bind(
        extension,
        &format!("pw{extension}"),
        PHONE_IP,
        switch.listen,
        DOMAIN,
        transcript,
    )
    .await
    .expect("bind the phone");
    phone.register_ok().await.expect("the phone registers");
    phone
}

/// Trunk dials `number`; `phone` rings (180) and answers; the trunk sees 180 then 200 and ACKs.
async fn bridged_call(
    switch: &Switch,
    transcript: &Transcript,
    phone: &mut Phone,
    number: &str,
) -> (Trunk, Call, Call) {
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite(number).await.expect("send INVITE");
    let mut inc = phone
        .wait_invite()
        .await
        .expect("the phone gets the INVITE");
    phone.ring(&mut inc).await.expect("send 180");
    assert_eq!(
        trunk
            .wait_ringing(&mut out)
            .await
            .expect("the trunk hears ringing"),
        180
    );
    phone
        .answer(&mut inc)
        .await
        .expect("answer and get the ACK");
    trunk
        .wait_answer(&mut out)
        .await
        .expect("the trunk gets 200");
    (trunk, out, inc)
}

/// RTP both ways at once for one second; each side must receive exactly what the other sent.
async fn check_media(out: &mut Call, inc: &mut Call) {
    assert!(
        out.rtp.remote().is_some_and(|a| a.ip() == PHONE_IP),
        "the switch's SDP answer names its own address: {:?}",
        out.rtp.remote()
    );
    assert_ne!(
        out.rtp.remote(),
        Some(inc.rtp.local_addr()),
        "media must go through the relay, not end to end"
    );
    let (a, b) = tokio::join!(
        out.rtp.send_pattern(1, N_PACKETS),
        inc.rtp.send_pattern(2, N_PACKETS)
    );
    a.expect("the trunk sends RTP");
    b.expect("the phone sends RTP");
    let n = usize::from(N_PACKETS);
    let at_phone = inc
        .rtp
        .wait_received(n, Duration::from_secs(3))
        .await
        // Short of n: the report below shows which packets are missing.
        .unwrap_or_else(|_| inc.rtp.received());
    let at_trunk = out
        .rtp
        .wait_received(n, Duration::from_secs(3))
        .await
        // Short of n: the report below shows which packets are missing.
        .unwrap_or_else(|_| out.rtp.received());
    let to_phone = StreamReport::compare(out.rtp.sent(), &at_phone);
    let to_trunk = StreamReport::compare(inc.rtp.sent(), &at_trunk);
    assert!(
        to_phone.is_exact(),
        "trunk -> phone through the relay: {to_phone:#?}"
    );
    assert!(
        to_trunk.is_exact(),
        "phone -> trunk through the relay: {to_trunk:#?}"
    );
    assert!(
        at_phone.iter().all(|r| r.ssrc == out.rtp.ssrc())
            && at_trunk.iter().all(|r| r.ssrc == inc.rtp.ssrc()),
        "SSRCs pass through untouched"
    );
}

#[tokio::test]
async fn trunk_dials_201_media_both_ways_trunk_hangs_up() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let (mut trunk, mut out, mut inc) = bridged_call(&switch, &transcript, &mut phone, "201").await;
    check_media(&mut out, &mut inc).await;
    trunk
        .hangup(&mut out)
        .await
        .expect("the trunk's BYE gets 200");
    phone.wait_bye(&mut inc).await.expect("the phone gets BYE");
}

#[tokio::test]
async fn trunk_dials_201_phone_hangs_up() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let (mut trunk, mut out, mut inc) = bridged_call(&switch, &transcript, &mut phone, "201").await;
    check_media(&mut out, &mut inc).await;
    phone
        .hangup(&mut inc)
        .await
        .expect("the phone's BYE gets 200");
    trunk.wait_bye(&mut out).await.expect("the trunk gets BYE");
}

#[tokio::test]
async fn direct_inward_dial_203_with_sha256_digest() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = Phone::bind("203", "pw203", PHONE_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the phone")
        .with_algorithm(registrar::Algorithm::Sha256);
    phone
        .register_ok()
        .await
        .expect("203 registers with SHA-256 digest");
    let (mut trunk, mut out, mut inc) = bridged_call(&switch, &transcript, &mut phone, "203").await;
    assert!(
        inc.invite.to().is_some_and(|t| t.uri.user() == Some("203")),
        "the INVITE is for 203"
    );
    check_media(&mut out, &mut inc).await;
    trunk
        .hangup(&mut out)
        .await
        .expect("the trunk's BYE gets 200");
    phone.wait_bye(&mut inc).await.expect("the phone gets BYE");
}

#[tokio::test]
async fn nobody_registered_gets_480() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("201").await.expect("send INVITE");
    let resp = trunk
        .wait_final(&mut out)
        .await
        .expect("a final response, never a hang");
    assert_eq!(
        resp.status, 480,
        "nobody registered: {} {}",
        resp.status, resp.reason
    );
    // The failure is ACKed by the harness; the switch must not keep retransmitting it.
    trunk.idle(Duration::from_millis(700)).await.expect("idle");
    let repeats = transcript
        .entries()
        .iter()
        .filter(|e| e.first_line.starts_with("SIP/2.0 480"))
        .count();
    assert_eq!(repeats, 1, "the 480 was ACKed, so it is not retransmitted");
}

#[tokio::test]
async fn trunk_cancels_while_phone_rings() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("201").await.expect("send INVITE");
    let mut inc = phone
        .wait_invite()
        .await
        .expect("the phone gets the INVITE");
    phone.ring(&mut inc).await.expect("send 180");
    assert_eq!(
        trunk
            .wait_ringing(&mut out)
            .await
            .expect("the trunk hears ringing"),
        180
    );
    let (cancel_resp, invite_resp) = trunk.cancel(&mut out).await.expect("CANCEL is answered");
    assert_eq!(cancel_resp.status, 200, "200 for the CANCEL");
    assert_eq!(invite_resp.status, 487, "487 for the INVITE");
    phone
        .wait_cancel(&mut inc)
        .await
        .expect("the phone gets CANCEL, answers 200 + 487 and gets the ACK");
}

/// What a 401 says, minus what differs by construction (the request's own headers, the nonce).
fn challenge_shape(resp: &Response) -> (u16, String, Vec<String>, Vec<String>, Vec<u8>) {
    let names = resp
        .headers
        .0
        .iter()
        .map(|h| h.name.as_str().to_ascii_lowercase())
        .collect();
    let challenges = resp
        .headers
        .get_all(&HeaderName::WwwAuthenticate)
        .map(|c| {
            c.split(',')
                .map(|p| {
                    if p.trim_start().starts_with("nonce=") {
                        " nonce=\"*\"".to_owned()
                    } else {
                        p.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    (
        resp.status,
        resp.reason.clone(),
        names,
        challenges,
        resp.body.clone(),
    )
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut wrong = Phone::bind(
        "201",
        "not-pw201",
        PHONE_IP,
        switch.listen,
        DOMAIN,
        &transcript,
    )
    .await
    .expect("bind");
    let bad_password = wrong
        .register()
        .await
        .expect("a final response to REGISTER");
    assert_eq!(
        bad_password.status, 401,
        "a wrong password is refused with 401, never 200"
    );
    let mut stranger = Phone::bind("299", "pw299", PHONE_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind");
    let unknown_user = stranger
        .register()
        .await
        .expect("a final response to REGISTER");
    assert_eq!(
        unknown_user.status, 401,
        "an unknown user is refused with 401"
    );
    assert_eq!(
        challenge_shape(&bad_password),
        challenge_shape(&unknown_user),
        "a wrong password and an unknown user must look alike"
    );
    // The same with SHA-256.
    let mut wrong256 = Phone::bind("202", "nope", PHONE_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind")
        .with_algorithm(registrar::Algorithm::Sha256);
    let refused = wrong256
        .register()
        .await
        .expect("a final response to REGISTER");
    assert_eq!(
        refused.status, 401,
        "a wrong SHA-256 digest is refused with 401"
    );
    // The right password still works from the same address afterwards.
    registered_phone(&switch, &transcript, "201").await;
}

#[tokio::test]
async fn registrations_survive_a_restart() {
    let mut switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let status = switch.stop();
    assert!(
        status.success(),
        "SIGTERM ends the switch with exit code 0, got {status}"
    );
    switch.spawn().await;
    let (mut trunk, mut out, mut inc) = bridged_call(&switch, &transcript, &mut phone, "201").await;
    trunk
        .hangup(&mut out)
        .await
        .expect("the trunk's BYE gets 200");
    phone.wait_bye(&mut inc).await.expect("the phone gets BYE");
    let registers = transcript
        .entries()
        .iter()
        .filter(|e| e.first_line.starts_with("REGISTER"))
        .count();
    assert_eq!(
        registers, 2,
        "one REGISTER and its digest retry, none after the restart"
    );
}

#[tokio::test]
async fn phone_rejects_busy_and_the_trunk_gets_486() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("201").await.expect("send INVITE");
    let mut inc = phone
        .wait_invite()
        .await
        .expect("the phone gets the INVITE");
    phone
        .reject(&mut inc, 486, "Busy Here")
        .await
        .expect("486 is ACKed by the switch");
    let resp = trunk.wait_final(&mut out).await.expect("a final response");
    assert_eq!(resp.status, 486, "the phone's busy reaches the caller");
}

#[tokio::test]
async fn phone_answers_late_without_ringing() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("201").await.expect("send INVITE");
    let mut inc = phone
        .wait_invite()
        .await
        .expect("the phone gets the INVITE");
    // No provisional: the switch retransmits its INVITE (Timer A) while the phone waits.
    phone
        .answer_after(&mut inc, Duration::from_millis(1200))
        .await
        .expect("answer late and get the ACK");
    trunk
        .wait_answer(&mut out)
        .await
        .expect("the trunk gets 200");
    let invites_to_phone = transcript
        .entries()
        .iter()
        .filter(|e| e.agent == "phone 201" && e.first_line.starts_with("INVITE"))
        .count();
    assert!(
        invites_to_phone >= 2,
        "the switch retransmits an unanswered INVITE (Timer A)"
    );
    check_media(&mut out, &mut inc).await;
    phone
        .hangup(&mut inc)
        .await
        .expect("the phone's BYE gets 200");
    trunk.wait_bye(&mut out).await.expect("the trunk gets BYE");
}

#[tokio::test]
async fn dtmf_rfc4733_crosses_the_relay_and_info_is_answered() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let (mut trunk, mut out, mut inc) = bridged_call(&switch, &transcript, &mut phone, "201").await;
    assert_eq!(
        out.rtp.telephone_event_payload_type,
        Some(101),
        "telephone-event negotiated with the trunk"
    );
    out.rtp.send_tone(5).await.expect("some audio first");
    let events = out
        .rtp
        .send_dtmf('4', 800)
        .await
        .expect("send RFC 4733 digit 4");
    let received = inc
        .rtp
        .wait_received(5 + events.len(), Duration::from_secs(3))
        .await
        .expect("the phone receives tone and events");
    let report = StreamReport::compare(out.rtp.sent(), &received);
    assert!(
        report.is_exact(),
        "tone and DTMF through the relay: {report:#?}"
    );
    let at_phone: Vec<_> = received
        .iter()
        .filter(|r| Some(r.payload_type) == inc.rtp.telephone_event_payload_type)
        .collect();
    assert_eq!(
        at_phone.len(),
        events.len(),
        "every telephone-event packet arrives"
    );
    assert!(
        at_phone
            .first()
            .is_some_and(|r| r.marker && r.payload.first() == Some(&4)),
        "the first event packet has the marker and event 4"
    );
    assert_eq!(
        inc.rtp.received_digits(),
        "4",
        "the phone decodes one digit 4"
    );
    let info = trunk
        .send_info_dtmf(&mut out, '4', 160)
        .await
        .expect("INFO gets a final response");
    assert_eq!(
        info.status, 200,
        "INFO dtmf-relay in the dialog is accepted"
    );
    trunk
        .hangup(&mut out)
        .await
        .expect("the trunk's BYE gets 200");
    phone.wait_bye(&mut inc).await.expect("the phone gets BYE");
}

/// RFC 3261 §9.1: a CANCEL that arrives before the phone's first provisional response must be
/// sent to the phone once that response comes.
#[tokio::test]
async fn cancel_before_the_phone_rings_still_reaches_the_phone() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    phone.set_timeout(Duration::from_secs(3));
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("201").await.expect("send INVITE");
    let mut inc = phone
        .wait_invite()
        .await
        .expect("the phone gets the INVITE");
    let (cancel_resp, invite_resp) = trunk.cancel(&mut out).await.expect("CANCEL is answered");
    assert_eq!((cancel_resp.status, invite_resp.status), (200, 487));
    phone
        .ring(&mut inc)
        .await
        .expect("send 180 after the caller gave up");
    phone
        .wait_cancel(&mut inc)
        .await
        .expect("the phone gets CANCEL once it has rung");
}

/// RFC 3261 §15 / §13.2.2.4: when the phone's 200 crosses the switch's CANCEL, the switch must
/// ACK that 200 and end the phone's dialog with BYE.
#[tokio::test]
async fn answer_crossing_cancel_is_acked_and_hung_up() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    phone.set_timeout(Duration::from_secs(3));
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("201").await.expect("send INVITE");
    let mut inc = phone
        .wait_invite()
        .await
        .expect("the phone gets the INVITE");
    phone.ring(&mut inc).await.expect("send 180");
    trunk
        .wait_ringing(&mut out)
        .await
        .expect("the trunk hears ringing");
    let (cancel_resp, invite_resp) = trunk.cancel(&mut out).await.expect("CANCEL is answered");
    assert_eq!((cancel_resp.status, invite_resp.status), (200, 487));
    // The phone answers as if its 200 left before the CANCEL arrived.
    phone
        .answer(&mut inc)
        .await
        .expect("the switch ACKs the phone's 200");
    phone
        .wait_bye(&mut inc)
        .await
        .expect("the switch hangs the phone up");
}

#[tokio::test]
async fn early_media_from_the_phone_reaches_the_trunk_before_the_answer() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("201").await.expect("send INVITE");
    let mut inc = phone
        .wait_invite()
        .await
        .expect("the phone gets the INVITE");
    phone
        .early_media(&mut inc)
        .await
        .expect("send 183 with SDP");
    assert_eq!(
        trunk
            .wait_ringing(&mut out)
            .await
            .expect("the trunk gets 183"),
        183
    );
    assert!(
        out.remote_sdp.is_some(),
        "the 183 to the trunk carries the switch's SDP answer"
    );
    inc.rtp
        .send_tone(10)
        .await
        .expect("early media from the phone");
    let got = out
        .rtp
        .wait_received(10, Duration::from_secs(3))
        .await
        .expect("the trunk hears early media");
    let report = StreamReport::compare(inc.rtp.sent(), &got);
    assert!(
        report.is_exact(),
        "early media through the relay: {report:#?}"
    );
    let early_sdp = out.remote_sdp.clone();
    phone
        .answer(&mut inc)
        .await
        .expect("answer and get the ACK");
    trunk
        .wait_answer(&mut out)
        .await
        .expect("the trunk gets 200");
    assert_eq!(
        out.remote_sdp, early_sdp,
        "the 200 repeats the early answer (RFC 3261 §13.2.1)"
    );
    trunk
        .hangup(&mut out)
        .await
        .expect("the trunk's BYE gets 200");
    phone.wait_bye(&mut inc).await.expect("the phone gets BYE");
}

/// The media timeout is about dead calls: a phone that rings longer than it must still be
/// answerable (no RTP flows while ringing).
#[tokio::test]
async fn ringing_longer_than_the_media_timeout_is_not_cut_off() {
    let switch = Switch::start_with("media_timeout_secs = 1\n").await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    phone.set_timeout(Duration::from_secs(3));
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("201").await.expect("send INVITE");
    let mut inc = phone
        .wait_invite()
        .await
        .expect("the phone gets the INVITE");
    phone.ring(&mut inc).await.expect("send 180");
    assert_eq!(
        trunk
            .wait_ringing(&mut out)
            .await
            .expect("the trunk hears ringing"),
        180
    );
    phone
        .answer_after(&mut inc, Duration::from_millis(1600))
        .await
        .expect("answer after 1.6 s of ringing");
    trunk
        .wait_answer(&mut out)
        .await
        .expect("the trunk gets 200, not a media-timeout failure");
    trunk
        .hangup(&mut out)
        .await
        .expect("the trunk's BYE gets 200");
    phone.wait_bye(&mut inc).await.expect("the phone gets BYE");
}

#[tokio::test]
async fn silent_answered_call_ends_on_media_timeout() {
    let switch = Switch::start_with("media_timeout_secs = 1\n").await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let (mut trunk, mut out, mut inc) = bridged_call(&switch, &transcript, &mut phone, "201").await;
    trunk
        .wait_bye(&mut out)
        .await
        .expect("no RTP for 1 s: the switch hangs up the trunk");
    phone
        .wait_bye(&mut inc)
        .await
        .expect("no RTP for 1 s: the switch hangs up the phone");
}

#[tokio::test]
async fn two_phones_on_201_ring_and_the_loser_is_cancelled() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut desk = registered_phone(&switch, &transcript, "201").await;
    let mut softphone = registered_phone(&switch, &transcript, "201").await;
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("201").await.expect("send INVITE");
    let mut on_desk = desk
        .wait_invite()
        .await
        .expect("the desk phone gets the INVITE");
    let mut on_soft = softphone
        .wait_invite()
        .await
        .expect("the softphone gets the INVITE");
    desk.ring(&mut on_desk).await.expect("desk rings");
    softphone.ring(&mut on_soft).await.expect("softphone rings");
    trunk
        .wait_ringing(&mut out)
        .await
        .expect("the trunk hears ringing");
    softphone
        .answer(&mut on_soft)
        .await
        .expect("the softphone answers and gets the ACK");
    desk.wait_cancel(&mut on_desk)
        .await
        .expect("the desk phone is cancelled");
    trunk
        .wait_answer(&mut out)
        .await
        .expect("the trunk gets 200");
    check_media(&mut out, &mut on_soft).await;
    assert!(
        on_desk.rtp.received().is_empty(),
        "the cancelled phone gets no media"
    );
    trunk
        .hangup(&mut out)
        .await
        .expect("the trunk's BYE gets 200");
    softphone
        .wait_bye(&mut on_soft)
        .await
        .expect("the softphone gets BYE");
}

#[tokio::test]
async fn unregistering_makes_calls_fail_and_too_brief_expiry_gets_423() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    phone.set_expires(30);
    let brief = phone
        .register()
        .await
        .expect("a final response to REGISTER");
    assert_eq!(brief.status, 423, "30 s is below min_expires (60 s)");
    assert_eq!(
        brief.headers.get(&HeaderName::MinExpires),
        Some("60"),
        "423 names Min-Expires"
    );
    phone.set_expires(0);
    phone
        .register_ok()
        .await
        .expect("Expires: 0 removes the binding");
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("201").await.expect("send INVITE");
    let resp = trunk.wait_final(&mut out).await.expect("a final response");
    assert_eq!(resp.status, 480, "the only binding was removed");
}

#[tokio::test]
async fn phone_holds_and_resumes_and_media_still_flows() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let (mut trunk, mut out, mut inc) = bridged_call(&switch, &transcript, &mut phone, "201").await;
    let hold = phone
        .reinvite(&mut inc, harness::sdp::Direction::SendOnly)
        .await
        .expect("hold is answered");
    assert_eq!(hold.status, 200, "hold re-INVITE accepted");
    let answered = inc
        .remote_sdp
        .as_ref()
        .and_then(|s| s.media.first().map(|m| s.direction_of(m)));
    assert_eq!(
        answered,
        Some(harness::sdp::Direction::RecvOnly),
        "the switch answers sendonly with recvonly"
    );
    let resume = phone
        .reinvite(&mut inc, harness::sdp::Direction::SendRecv)
        .await
        .expect("resume is answered");
    assert_eq!(resume.status, 200, "resume re-INVITE accepted");
    check_media(&mut out, &mut inc).await;
    trunk
        .hangup(&mut out)
        .await
        .expect("the trunk's BYE gets 200");
    phone.wait_bye(&mut inc).await.expect("the phone gets BYE");
}

/// Symmetric RTP: a phone behind NAT sends from another port than its SDP names; the relay
/// latches to where the phone's RTP really comes from, and ignores a stranger sending to the
/// same relay port.
#[tokio::test]
async fn relay_latches_to_a_phone_behind_nat_and_ignores_strangers() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("201").await.expect("send INVITE");
    let mut inc = phone
        .wait_invite()
        .await
        .expect("the phone gets the INVITE");
    // The SDP names a port the phone does not send from (its NAT's mapping differs).
    let decoy = RtpLeg::bind("decoy", PHONE_IP)
        .await
        .expect("bind the decoy");
    if let Some(m) = inc.local_sdp.as_mut().and_then(|s| s.media.first_mut()) {
        m.port = decoy.local_addr().port();
    }
    phone.ring(&mut inc).await.expect("send 180");
    phone
        .answer(&mut inc)
        .await
        .expect("answer and get the ACK");
    trunk
        .wait_answer(&mut out)
        .await
        .expect("the trunk gets 200");
    // The phone speaks first, so the relay learns its real address.
    inc.rtp
        .send_pattern(2, 5)
        .await
        .expect("the phone's first packets");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut stranger = RtpLeg::bind("stranger", PHONE_IP)
        .await
        .expect("bind the stranger");
    stranger.set_remote(inc.rtp.remote());
    let (a, b, c) = tokio::join!(
        out.rtp.send_pattern(1, N_PACKETS),
        inc.rtp.send_pattern(3, N_PACKETS - 5),
        stranger.send_pattern(9, 20)
    );
    a.expect("the trunk sends RTP");
    b.expect("the phone sends RTP");
    c.expect("the stranger sends RTP");
    let n = usize::from(N_PACKETS);
    let at_phone = inc
        .rtp
        .wait_received(n, Duration::from_secs(3))
        .await
        // Short of n: the report below shows which packets are missing.
        .unwrap_or_else(|_| inc.rtp.received());
    let _ = out.rtp.wait_received(n, Duration::from_secs(3)).await;
    // A little longer, so a stranger's late packets would show up too.
    let at_trunk = out.rtp.settle(Duration::from_millis(100)).await;
    assert!(
        at_trunk.iter().all(|r| r.ssrc != stranger.ssrc()),
        "the stranger's RTP must not reach the trunk"
    );
    let to_trunk = StreamReport::compare(inc.rtp.sent(), &at_trunk);
    let to_phone = StreamReport::compare(out.rtp.sent(), &at_phone);
    assert!(to_trunk.is_exact(), "phone -> trunk: {to_trunk:#?}");
    assert!(to_phone.is_exact(), "trunk -> phone: {to_phone:#?}");
    assert!(
        decoy.received().is_empty(),
        "after latching nothing goes to the SDP address"
    );
    trunk
        .hangup(&mut out)
        .await
        .expect("the trunk's BYE gets 200");
    phone.wait_bye(&mut inc).await.expect("the phone gets BYE");
}

/// RFC 3261 §13.3.1.4: the switch resends its 2xx until the ACK comes; a lost ACK is recovered
/// by the trunk ACKing the retransmission, and the call goes on.
#[tokio::test]
async fn lost_ack_from_the_trunk_is_recovered_by_the_2xx_retransmission() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("201").await.expect("send INVITE");
    let mut inc = phone
        .wait_invite()
        .await
        .expect("the phone gets the INVITE");
    phone
        .answer(&mut inc)
        .await
        .expect("answer and get the ACK");
    trunk.lose_next("ACK");
    trunk
        .wait_answer(&mut out)
        .await
        .expect("the trunk gets 200 (its ACK is lost)");
    trunk
        .idle(Duration::from_millis(1200))
        .await
        .expect("idle while the switch resends the 200");
    let oks = transcript
        .entries()
        .iter()
        .filter(|e| {
            e.agent == "trunk"
                && e.first_line.starts_with("SIP/2.0 200")
                && e.cseq.ends_with("INVITE")
        })
        .count();
    assert!(
        oks >= 2,
        "the switch retransmits its 200 while no ACK arrives"
    );
    check_media(&mut out, &mut inc).await;
    trunk
        .hangup(&mut out)
        .await
        .expect("the trunk's BYE gets 200");
    phone.wait_bye(&mut inc).await.expect("the phone gets BYE");
}

/// A lost 200 to BYE: the switch resends the BYE (Timer E) and takes the repeated 200.
#[tokio::test]
async fn lost_200_to_bye_is_recovered_by_the_bye_retransmission() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let (mut trunk, mut out, mut inc) = bridged_call(&switch, &transcript, &mut phone, "201").await;
    phone.lose_next("SIP/2.0 200");
    trunk
        .hangup(&mut out)
        .await
        .expect("the trunk's BYE gets 200");
    phone
        .wait_bye(&mut inc)
        .await
        .expect("the phone gets BYE (its 200 is lost)");
    phone
        .idle(Duration::from_millis(1200))
        .await
        .expect("idle while the switch resends the BYE");
    let byes = transcript
        .entries()
        .iter()
        .filter(|e| e.agent == "phone 201" && e.first_line.starts_with("BYE"))
        .count();
    assert!(
        byes >= 2,
        "the switch retransmits its BYE while no response arrives"
    );
}

/// A retransmitted INVITE (same branch) is the same call, not a second one.
#[tokio::test]
async fn retransmitted_invite_does_not_start_a_second_call() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("201").await.expect("send INVITE");
    let again = out.invite.to_bytes();
    trunk
        .send_bytes(&again, switch.listen)
        .await
        .expect("send the INVITE again");
    let mut inc = phone
        .wait_invite()
        .await
        .expect("the phone gets the INVITE");
    phone.ring(&mut inc).await.expect("send 180");
    phone.idle(Duration::from_millis(700)).await.expect("idle");
    let calls: std::collections::BTreeSet<String> = transcript
        .entries()
        .iter()
        .filter(|e| e.agent == "phone 201" && e.first_line.starts_with("INVITE"))
        .filter_map(|e| {
            e.text
                .lines()
                .find_map(|l| l.strip_prefix("Call-ID: ").map(str::to_owned))
        })
        .collect();
    assert_eq!(
        calls.len(),
        1,
        "one call reaches the phone, not two: {calls:?}"
    );
    phone
        .answer(&mut inc)
        .await
        .expect("answer and get the ACK");
    trunk
        .wait_answer(&mut out)
        .await
        .expect("the trunk gets 200");
    trunk
        .hangup(&mut out)
        .await
        .expect("the trunk's BYE gets 200");
    phone.wait_bye(&mut inc).await.expect("the phone gets BYE");
}

/// An extension calls another one: the switch challenges with 407, the phone answers the
/// challenge, and the call is bridged like a trunk call.
#[tokio::test]
async fn extension_202_calls_extension_201_after_a_407_challenge() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut callee = registered_phone(&switch, &transcript, "201").await;
    let mut caller = registered_phone(&switch, &transcript, "202").await;
    let mut out = caller
        .call("201")
        .await
        .expect("INVITE, 407, INVITE with credentials");
    assert_eq!(
        out.statuses.first(),
        Some(&407),
        "the switch challenges an extension's INVITE"
    );
    let mut inc = callee.wait_invite().await.expect("201 gets the INVITE");
    assert!(
        inc.invite
            .from()
            .is_some_and(|f| f.uri.user() == Some("202")),
        "the callee sees 202 calling"
    );
    callee.ring(&mut inc).await.expect("send 180");
    assert_eq!(
        caller
            .wait_ringing(&mut out)
            .await
            .expect("202 hears ringing"),
        180
    );
    callee
        .answer(&mut inc)
        .await
        .expect("answer and get the ACK");
    caller.wait_answer(&mut out).await.expect("202 gets 200");
    check_media(&mut out, &mut inc).await;
    caller.hangup(&mut out).await.expect("202's BYE gets 200");
    callee.wait_bye(&mut inc).await.expect("201 gets BYE");
}

/// INVITEs the switch cannot serve get a final answer at once, never silence.
#[tokio::test]
async fn unserviceable_invites_get_final_answers() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    registered_phone(&switch, &transcript, "201").await;
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let cases: [(&str, &str, fn(&mut sip_msg::Request), u16); 4] = [
        (
            "Max-Forwards: 0",
            "201",
            |r| r.headers.set(HeaderName::MaxForwards, "0"),
            483,
        ),
        (
            "Require: an unknown extension",
            "201",
            |r| r.headers.push(HeaderName::Require, "100rel-foo"),
            420,
        ),
        (
            "no SDP offer",
            "201",
            |r| {
                r.body.clear();
                r.headers.remove(&HeaderName::ContentType);
            },
            488,
        ),
        ("a number nobody serves", "999999", |_| {}, 404),
    ];
    for (what, number, edit, expected) in cases {
        let mut out = trunk.invite_with(number, edit).await.expect("send INVITE");
        let resp = trunk
            .wait_final(&mut out)
            .await
            .unwrap_or_else(|e| panic!("{what}: no final answer: {e}"));
        assert_eq!(
            resp.status, expected,
            "{what}: {} {}",
            resp.status, resp.reason
        );
        if expected == 420 {
            assert_eq!(
                resp.headers.get(&HeaderName::Unsupported),
                Some("100rel-foo"),
                "420 lists the unsupported option"
            );
        }
    }
}

/// Refreshing a registration (same Call-ID, higher CSeq) keeps one binding: one INVITE.
#[tokio::test]
async fn refreshed_registration_keeps_one_binding() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let refreshed = phone.register_ok().await.expect("refresh");
    assert_eq!(
        refreshed.headers.get_all(&HeaderName::Contact).count(),
        1,
        "one contact bound after the refresh"
    );
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("201").await.expect("send INVITE");
    let mut inc = phone
        .wait_invite()
        .await
        .expect("the phone gets the INVITE");
    phone.ring(&mut inc).await.expect("send 180");
    phone.idle(Duration::from_millis(300)).await.expect("idle");
    let invites = transcript
        .entries()
        .iter()
        .filter(|e| e.agent == "phone 201" && e.first_line.starts_with("INVITE"))
        .count();
    assert_eq!(invites, 1, "one binding, one fork");
    let (cancel_resp, _) = trunk.cancel(&mut out).await.expect("CANCEL");
    assert_eq!(cancel_resp.status, 200);
    phone
        .wait_cancel(&mut inc)
        .await
        .expect("the phone is cancelled");
}

/// A phone that speaks only A-law: the switch answers the trunk with PCMA too (no
/// transcoding), and the relay passes payload type 8 through.
#[tokio::test]
async fn pcma_only_phone_gets_pcma_end_to_end() {
    use harness::sdp::{Codec, CodecPolicy};
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let policy =
        CodecPolicy::new(vec![Codec::Pcma, Codec::TelephoneEvent]).expect("a policy with audio");
    let mut phone = Phone::bind("201", "pw201", PHONE_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the phone")
        .with_codecs(policy);
    phone.register_ok().await.expect("the phone registers");
    let (mut trunk, mut out, mut inc) = bridged_call(&switch, &transcript, &mut phone, "201").await;
    assert_eq!(inc.rtp.payload_type, 8, "the phone chose PCMA");
    assert_eq!(
        out.rtp.payload_type, 8,
        "the switch answered the trunk with the phone's codec"
    );
    check_media(&mut out, &mut inc).await;
    assert!(
        inc.rtp.received().iter().all(|r| r.payload_type == 8),
        "PCMA arrives as PCMA"
    );
    trunk
        .hangup(&mut out)
        .await
        .expect("the trunk's BYE gets 200");
    phone.wait_bye(&mut inc).await.expect("the phone gets BYE");
}

/// A captured Authorization replayed as is (same nonce, nc and cnonce) must not register
/// again (RFC 7616 §3.3: the server should check nc to stop replays).
#[tokio::test]
async fn replayed_authorization_is_refused() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = Phone::bind("201", "pw201", PHONE_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the phone");
    let challenge_resp = phone.register_raw(None).await.expect("a 401");
    assert_eq!(challenge_resp.status, 401);
    let challenge = phone
        .pick_challenge(&challenge_resp)
        .expect("a digest challenge");
    let auth = harness::authorization(
        &challenge,
        "201",
        "pw201",
        "REGISTER",
        &format!("sip:{}", switch.listen),
        1,
        "0a4f113b",
    );
    let first = phone
        .register_raw(Some(&auth))
        .await
        .expect("a final response");
    assert_eq!(first.status, 200, "the genuine REGISTER succeeds");
    let mut attacker = Phone::bind(
        "201",
        "unknown",
        PHONE_IP,
        switch.listen,
        DOMAIN,
        &transcript,
    )
    .await
    .expect("bind the attacker");
    let replay = attacker
        .register_raw(Some(&auth))
        .await
        .expect("a final response");
    assert_ne!(
        replay.status, 200,
        "a replayed Authorization (same nc and cnonce) must not register the attacker's contact"
    );
}

/// Five calls at once, one per extension, each with media both ways: calls and relays do not
/// mix up their legs.
#[tokio::test]
async fn five_concurrent_calls_keep_their_media_apart() {
    let switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let listen = switch.listen;
    let mut tasks = Vec::new();
    for extension in ["201", "202", "203", "204", "205"] {
        let transcript = transcript.clone();
        tasks.push(tokio::spawn(async move {
            let mut phone = Phone::bind(
                extension,
                &format!("pw{extension}"),
                PHONE_IP,
                listen,
                DOMAIN,
                &transcript,
            )
            .await
            .expect("bind the phone");
            phone.register_ok().await.expect("the phone registers");
            let mut trunk = Trunk::bind(TRUNK_IP, listen, DOMAIN, &transcript)
                .await
                .expect("bind the trunk");
            let mut out = trunk.invite(extension).await.expect("send INVITE");
            let mut inc = phone
                .wait_invite()
                .await
                .expect("the phone gets the INVITE");
            assert!(
                inc.invite
                    .to()
                    .is_some_and(|t| t.uri.user() == Some(extension)),
                "{extension} gets its own call"
            );
            phone.ring(&mut inc).await.expect("send 180");
            phone.answer(&mut inc).await.expect("answer");
            trunk
                .wait_answer(&mut out)
                .await
                .expect("the trunk gets 200");
            check_media(&mut out, &mut inc).await;
            trunk
                .hangup(&mut out)
                .await
                .expect("the trunk's BYE gets 200");
            phone.wait_bye(&mut inc).await.expect("the phone gets BYE");
        }));
    }
    for task in tasks {
        task.await.expect("a call's script panicked (see above)");
    }
}

/// SIGTERM with a call up still ends the switch cleanly (exit code 0).
#[tokio::test]
async fn sigterm_with_a_call_up_exits_cleanly() {
    let mut switch = Switch::start().await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut phone = registered_phone(&switch, &transcript, "201").await;
    let (_trunk, _out, _inc) = bridged_call(&switch, &transcript, &mut phone, "201").await;
    let status = switch.stop();
    assert!(
        status.success(),
        "SIGTERM during a call ends the switch with exit code 0, got {status}"
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 5: the switch answers the emergency number with the IVR.
// ---------------------------------------------------------------------------------------------

/// Monday 2 March 2026, 10:00 in Rome (office open; 204 on shift in `salute`, 205 not).
const WEEKDAY_10: &str = "2026-03-02T09:00:00Z";
/// The same Monday, 20:00 in Rome: closed.
const WEEKDAY_20: &str = "2026-03-02T19:00:00Z";

/// How the caller presses its key.
#[derive(Clone, Copy, Debug)]
enum Press {
    Rfc4733,
    Info,
    InBand,
}

/// How many packets with `payload` `leg` has received, waiting up to 3 s for the first.
async fn arrivals(leg: &RtpLeg, payload: &[u8]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let n = leg
            .received()
            .iter()
            .filter(|r| r.payload == payload)
            .count();
        if n > 0 || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A prompt file of the repository, decoded as the switch decodes it.
fn prompt(name: &str) -> media::Prompt {
    let path = format!("{PROMPTS_DIR}/{name}.wav");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    media::decode_prompt(name, &bytes, Some("wav")).expect("the prompt decodes")
}

fn rms(pcm: &[i16]) -> f64 {
    let sum: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / pcm.len().max(1) as f64).sqrt()
}

/// The caller's received audio, decoded by payload type (G.711 µ-law or A-law, G.722's low
/// band), at 8 kHz.
fn decoded(records: &[harness::RtpRecord]) -> Vec<i16> {
    let mut g722 = media::g722::Decoder::new();
    let mut out = Vec::new();
    for r in records {
        let mut pcm = vec![0i16; r.payload.len()];
        let n = match r.payload_type {
            0 => media::g711::Law::Pcmu.decode(&r.payload, &mut pcm),
            8 => media::g711::Law::Pcma.decode(&r.payload, &mut pcm),
            // The low band, at 8 kHz like the prompt files' samples.
            9 => g722.decode(&r.payload, &mut pcm),
            _ => continue,
        };
        out.extend_from_slice(&pcm[..n]);
    }
    out
}

/// Rewrites the SDP offer of `req`: each `(from, to)` replaced, then the lines starting with
/// any of `drop` removed.
fn edit_offer(req: &mut sip_msg::Request, replace: &[(&str, &str)], drop: &[&str]) {
    let mut body = String::from_utf8_lossy(&req.body).into_owned();
    for (from, to) in replace {
        body = body.replace(from, to);
    }
    req.body = body
        .lines()
        .filter(|l| !drop.iter().any(|d| l.starts_with(d)))
        .map(|l| format!("{l}\r\n"))
        .collect::<String>()
        .into_bytes();
}

/// What the trunk offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offer {
    /// PCMU, PCMA, telephone-event (the harness's default).
    Full,
    /// PCMU and PCMA, no telephone-event (in-band keys only).
    NoTelephoneEvent,
    /// PCMA and telephone-event, as Italian trunks often do.
    PcmaOnly,
}

/// The trunk calls 800840840; the switch answers itself and plays the welcome prompt, which
/// the caller hears as the file says (level and length, sample by sample within G.711's
/// error), with RTP paced by sequence, timestamp and one SSRC, marker on the first packet.
async fn call_and_hear_welcome(
    switch: &Switch,
    transcript: &Transcript,
    offer: Offer,
) -> (Trunk, Call) {
    let offer_telephone_event = offer != Offer::NoTelephoneEvent;
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk
        .invite_with("800840840", |req| {
            if offer == Offer::PcmaOnly {
                edit_offer(
                    req,
                    &[("RTP/AVP 0 8 101", "RTP/AVP 8 101")],
                    &["a=rtpmap:0 "],
                );
            }
            if !offer_telephone_event {
                edit_offer(
                    req,
                    &[(" 101\r\n", "\r\n")],
                    &["a=rtpmap:101", "a=fmtp:101"],
                );
            }
        })
        .await
        .expect("send INVITE");
    let ok = trunk
        .wait_answer(&mut out)
        .await
        .expect("the switch answers the emergency number itself");
    let answer = String::from_utf8_lossy(&ok.body).into_owned();
    assert_eq!(
        answer.contains("telephone-event"),
        offer_telephone_event,
        "{answer}"
    );
    let welcome = prompt("welcome");
    let n = welcome.n_frames();
    let got = out
        .rtp
        .wait_received(n, Duration::from_secs(10))
        .await
        .expect("the welcome prompt arrives");
    let got = &got[..n];
    assert!(
        got[0].marker,
        "the first packet of a prompt carries the marker bit"
    );
    for w in got.windows(2) {
        assert_eq!(w[1].ssrc, w[0].ssrc, "one SSRC");
        assert_eq!(w[1].sequence_number, w[0].sequence_number.wrapping_add(1));
        assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(160));
        assert!(!w[1].marker);
    }
    let heard = decoded(got);
    let file = welcome.pcm();
    assert!(heard.len() >= file.len());
    let heard = &heard[..file.len()];
    let (a, b) = (rms(heard), rms(file));
    let db = 20.0 * (a / b).log10();
    assert!(db.abs() < 0.5, "level {db:.2} dB off the prompt file");
    let err: Vec<i16> = heard
        .iter()
        .zip(file)
        .map(|(h, f)| h.saturating_sub(*f))
        .collect();
    let snr = 20.0 * (b / rms(&err).max(1.0)).log10();
    assert!(
        snr > 30.0,
        "what the caller hears is the prompt (SNR {snr:.1} dB)"
    );
    (trunk, out)
}

async fn press(trunk: &mut Trunk, out: &mut Call, how: Press, digit: char) {
    match how {
        Press::Rfc4733 => {
            out.rtp.send_dtmf(digit, 800).await.expect("send RFC 4733");
        }
        Press::Info => {
            let r = trunk
                .send_info_dtmf(out, digit, 100)
                .await
                .expect("send INFO");
            assert_eq!(r.status, 200);
        }
        Press::InBand => {
            let mut tone = media::dtmf_tone(digit, 120, -10.0);
            tone.resize(tone.len() + 8 * 200, 0); // then 200 ms of silence
            let payloads: Vec<Vec<u8>> = tone
                .chunks(160)
                .map(|c| {
                    let mut code = vec![0u8; c.len()];
                    media::g711::Law::Pcmu.encode(c, &mut code);
                    code
                })
                .collect();
            out.rtp.send_stream(payloads).await.expect("send the tones");
        }
    }
}

async fn menu_4_reaches_204(how: Press) {
    let switch = Switch::start_at(WEEKDAY_10, EXAMPLE).await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut p204 = registered_phone(&switch, &transcript, "204").await;
    let mut p205 = registered_phone(&switch, &transcript, "205").await;
    let (mut trunk, mut out) = call_and_hear_welcome(
        &switch,
        &transcript,
        if matches!(how, Press::InBand) {
            Offer::NoTelephoneEvent
        } else {
            Offer::Full
        },
    )
    .await;
    press(&mut trunk, &mut out, how, '4').await;
    let mut inc = p204
        .wait_invite()
        .await
        .unwrap_or_else(|e| panic!("{how:?}: 4 leads to 204: {e}"));
    p204.answer(&mut inc).await.expect("204 answers");
    // 205 is off shift at 10:00: it never rings.
    p205.set_timeout(Duration::from_millis(500));
    assert!(p205.wait_invite().await.is_err(), "205 must not ring");
    // Bridged: what the phone sends reaches the caller.
    inc.rtp.send_pattern(7, 10).await.expect("the phone sends");
    let from_phone = arrivals(&out.rtp, &harness::pattern_payload(7, 0)).await;
    assert_eq!(from_phone, 1, "the phone's audio reaches the caller");
    trunk.hangup(&mut out).await.expect("the trunk hangs up");
    p204.wait_bye(&mut inc).await.expect("204 gets BYE");
}

#[tokio::test]
async fn ivr_menu_4_by_rfc4733_reaches_204() {
    menu_4_reaches_204(Press::Rfc4733).await;
}

#[tokio::test]
async fn ivr_menu_4_by_sip_info_reaches_204() {
    menu_4_reaches_204(Press::Info).await;
}

#[tokio::test]
async fn ivr_menu_4_in_band_reaches_204() {
    menu_4_reaches_204(Press::InBand).await;
}

#[tokio::test]
async fn ivr_evening_voicemail_records_the_callers_tone() {
    let switch = Switch::start_at(WEEKDAY_20, EXAMPLE).await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("800840840").await.expect("send INVITE");
    trunk
        .wait_answer(&mut out)
        .await
        .expect("the switch answers");
    // The closed message, then the beep; then silence: recording runs.
    let closed = prompt("closed");
    out.rtp
        .wait_received(closed.n_frames(), Duration::from_secs(25))
        .await
        .expect("the closed message plays");
    let all = out.rtp.settle(Duration::from_millis(400)).await;
    assert!(all.len() > closed.n_frames(), "a beep follows the message");
    out.rtp.send_tone(100).await.expect("two seconds of 1 kHz");
    trunk.hangup(&mut out).await.expect("the caller hangs up");
    // The message is on disk with its metadata before long.
    let dir = switch.data_dir.join("voicemail");
    let deadline = Instant::now() + Duration::from_secs(5);
    let wav = loop {
        let found = std::fs::read_dir(&dir).ok().and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "wav"))
        });
        if let Some(p) = found {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no WAV file in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let bytes = std::fs::read(&wav).expect("read the message");
    let message = media::decode_prompt("message", &bytes, Some("wav")).expect("a valid WAV");
    let pcm = message.pcm();
    assert!(
        pcm.len() >= 8000,
        "at least a second recorded, got {}",
        pcm.len()
    );
    // The caller's 1 kHz tone dominates: its Goertzel power against 700 Hz and 1400 Hz.
    let power = |f: f64| {
        let k = 2.0 * (2.0 * std::f64::consts::PI * f / 8000.0).cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in pcm {
            let s = f64::from(x) + k * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        s1 * s1 + s2 * s2 - k * s1 * s2
    };
    let (p1000, p700, p1400) = (power(1000.0), power(700.0), power(1400.0));
    assert!(
        p1000 > 100.0 * p700 && p1000 > 100.0 * p1400,
        "recording is the caller's 1 kHz tone: {p1000:e} vs {p700:e}/{p1400:e}"
    );
    let db = std::fs::read(switch.data_dir.join("centralino.db")).expect("the database");
    assert!(!db.is_empty());
    let conn = rusqlite::Connection::open(switch.data_dir.join("centralino.db")).expect("open db");
    let (mailbox, path): (String, String) = conn
        .query_row("SELECT mailbox, path FROM voicemail", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("the message's metadata");
    assert_eq!(mailbox, "general");
    assert_eq!(std::path::Path::new(&path), wav.as_path());
}

#[tokio::test]
async fn ivr_caller_who_presses_nothing_reaches_the_default_group() {
    // The example's menu, shortened so the test takes seconds: the welcome prompt only, a
    // 1 s timeout and one retry; the default stays group:ascolto (203, 205).
    let dialplan = EXAMPLE
        .replace(
            r#"prompts = ["welcome", "main-menu"]"#,
            r#"prompts = ["welcome"]"#,
        )
        .replace("timeout = 6\n", "timeout = 1\n")
        .replace("retries = 2\n", "retries = 1\n")
        .lines()
        .map(|l| match l.find("{ prompt = ") {
            Some(i) => {
                let target = &l[l.find("target").expect("an option with a target")..];
                format!("{}{{ {target}", &l[..i])
            }
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let switch = Switch::start_at(WEEKDAY_10, &dialplan).await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut p203 = registered_phone(&switch, &transcript, "203").await;
    let mut p205 = registered_phone(&switch, &transcript, "205").await;
    let (_trunk, _out) = call_and_hear_welcome(&switch, &transcript, Offer::Full).await;
    p203.set_timeout(Duration::from_secs(15));
    p205.set_timeout(Duration::from_secs(15));
    let rang = tokio::select! {
        r = p203.wait_invite() => r.map(|_| "203"),
        r = p205.wait_invite() => r.map(|_| "205"),
    };
    let who = rang.expect("after the retries the default group rings");
    assert!(who == "203" || who == "205");
}

#[tokio::test]
async fn ivr_a_law_caller_hears_the_welcome_and_reaches_204() {
    let switch = Switch::start_at(WEEKDAY_10, EXAMPLE).await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut p204 = registered_phone(&switch, &transcript, "204").await;
    let (mut trunk, mut out) = call_and_hear_welcome(&switch, &transcript, Offer::PcmaOnly).await;
    assert!(
        out.rtp.received().iter().all(|r| r.payload_type == 8),
        "A-law only"
    );
    press(&mut trunk, &mut out, Press::Rfc4733, '4').await;
    let mut inc = p204.wait_invite().await.expect("4 leads to 204");
    let offer = String::from_utf8_lossy(&inc.invite.body).into_owned();
    assert!(
        offer.contains("PCMA") && !offer.contains("PCMU"),
        "the phone is offered the caller's codec: {offer}"
    );
    p204.answer(&mut inc).await.expect("204 answers");
    trunk.hangup(&mut out).await.expect("the trunk hangs up");
    p204.wait_bye(&mut inc).await.expect("204 gets BYE");
}

/// A group rung directly (no menu) that nobody answers: the switch answers the caller itself
/// for the group's `no_answer` target (voicemail), whose greeting the caller hears from the
/// port of the media opened when the phones started ringing, and the message is stored.
#[tokio::test]
async fn ivr_unanswered_group_dialled_directly_reaches_voicemail_with_audio() {
    // 800840840 rings `salute` directly; it rings 2 s; the greeting is a 2.3 s prompt.
    let dialplan = EXAMPLE
        .replace(r#"open = "menu:main""#, r#"open = "group:salute""#)
        .replace("ring_timeout = 20\ntimeout = 60\nno_answer = \"voicemail:general\"\n\n[groups.salute.shifts]",
                 "ring_timeout = 2\ntimeout = 2\nno_answer = \"voicemail:general\"\n\n[groups.salute.shifts]")
        .replace("[voicemail.general]\nprompt = \"closed\"", "[voicemail.general]\nprompt = \"invalid-choice\"")
        .replace("[menus.main]", "[[numbers]]\nnumber = \"800000001\"\nopen = \"menu:main\"\nclosed = \"voicemail:general\"\n\n[menus.main]");
    assert!(
        dialplan.contains("ring_timeout = 2\n"),
        "the example's salute group changed"
    );
    let switch = Switch::start_at(WEEKDAY_10, &dialplan).await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let mut p204 = registered_phone(&switch, &transcript, "204").await;
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk.invite("800840840").await.expect("send INVITE");
    let mut inc = p204.wait_invite().await.expect("204 rings");
    p204.ring(&mut inc).await.expect("180");
    trunk
        .wait_answer(&mut out)
        .await
        .expect("after 2 s the switch answers for voicemail");
    let greeting = prompt("invalid-choice");
    let got = out
        .rtp
        .wait_received(greeting.n_frames(), Duration::from_secs(10))
        .await
        .expect("the voicemail greeting is heard");
    assert!(got[0].marker);
    let heard = decoded(&got[..greeting.n_frames()]);
    let db = 20.0 * (rms(&heard[..greeting.pcm().len()]) / rms(greeting.pcm())).log10();
    assert!(db.abs() < 0.5, "greeting level off by {db:.2} dB");
    out.rtp.settle(Duration::from_millis(400)).await; // the beep
    out.rtp.send_tone(50).await.expect("one second of tone");
    trunk.hangup(&mut out).await.expect("the caller hangs up");
    let dir = switch.data_dir.join("voicemail");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_dir(&dir).is_ok_and(|d| {
        d.filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "wav"))
    }) {
        assert!(
            Instant::now() < deadline,
            "no message stored in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A caller that offers only G.722 (and telephone-event): the IVR answers in G.722, the
/// welcome decodes (low band) at the prompt's level, a key reaches 204, which is offered
/// G.722 only (passed through, no transcoding).
#[tokio::test]
async fn ivr_g722_caller_hears_the_welcome_and_reaches_204() {
    use harness::sdp::{Codec, CodecPolicy};
    let switch = Switch::start_at(WEEKDAY_10, EXAMPLE).await;
    let transcript = Transcript::new();
    let _ladder = transcript.print_on_panic();
    let wideband =
        CodecPolicy::new(vec![Codec::G722, Codec::Pcmu, Codec::TelephoneEvent]).expect("policy");
    let mut p204 = Phone::bind("204", "pw204", PHONE_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the phone")
        .with_codecs(wideband);
    p204.register_ok().await.expect("204 registers");
    let mut trunk = Trunk::bind(TRUNK_IP, switch.listen, DOMAIN, &transcript)
        .await
        .expect("bind the trunk");
    let mut out = trunk
        .invite_with("800840840", |req| {
            edit_offer(
                req,
                &[
                    ("RTP/AVP 0 8 101", "RTP/AVP 9 101"),
                    ("a=rtpmap:101", "a=rtpmap:9 G722/8000\r\na=rtpmap:101"),
                ],
                &["a=rtpmap:0 ", "a=rtpmap:8 "],
            );
        })
        .await
        .expect("send INVITE");
    let ok = trunk
        .wait_answer(&mut out)
        .await
        .expect("the IVR answers in G.722");
    let answer = String::from_utf8_lossy(&ok.body).into_owned();
    assert!(
        answer.contains("RTP/AVP 9") && answer.contains("G722/8000"),
        "{answer}"
    );
    let welcome = prompt("welcome");
    let got = out
        .rtp
        .wait_received(welcome.n_frames(), Duration::from_secs(10))
        .await
        .expect("the welcome arrives");
    assert!(
        got.iter()
            .all(|r| r.payload_type == 9 && r.payload.len() == 160)
    );
    let heard = decoded(&got[..welcome.n_frames()]);
    let n = welcome.pcm().len().min(heard.len());
    let db = 20.0 * (rms(&heard[..n]) / rms(&welcome.pcm()[..n])).log10();
    assert!(
        db.abs() < 2.0,
        "the G.722 welcome is {db:.2} dB off the prompt file"
    );
    press(&mut trunk, &mut out, Press::Rfc4733, '4').await;
    let mut inc = p204.wait_invite().await.expect("4 leads to 204");
    let offer = String::from_utf8_lossy(&inc.invite.body).into_owned();
    assert!(
        offer.contains("G722") && !offer.contains("PCMU") && !offer.contains("PCMA"),
        "204 is offered the caller's G.722 only: {offer}"
    );
    p204.answer(&mut inc).await.expect("204 answers");
    inc.rtp.send_pattern(9, 5).await.expect("the phone sends");
    assert_eq!(
        arrivals(&out.rtp, &harness::pattern_payload(9, 0)).await,
        1,
        "the phone's G.722 reaches the caller untouched"
    );
    trunk.hangup(&mut out).await.expect("the trunk hangs up");
    p204.wait_bye(&mut inc).await.expect("204 gets BYE");
}
