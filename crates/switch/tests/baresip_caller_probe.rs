//! Proves the IVR callers against local stand-ins (no switch involved): a SIPp UAS on 127.0.0.1
//! answers with SDP pointing the media at a UDP socket of this test, which checks that RFC 4733
//! DTMF `4` (telephone-event, payload type 101) arrives (from the trunk address 127.0.0.2 for
//! SIPp; baresip's RTP leaves from 127.0.0.1, see below):
//! - baresip driven by `common::baresip_caller`;
//! - SIPp playing `/usr/share/sip-tester/dtmf_2833_4.pcap` (`tests/sipp/uac_ivr_dtmf.xml`,
//!   the caller hangs up; `uac_ivr_dtmf_wait_bye.xml`, the far side hangs up).

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::baresip_caller::BaresipCaller;
use common::{SippRun, args, port_block, scenario, sipp};

const SALT: u16 = 6;

/// One RTP packet seen by the sink.
#[derive(Debug, Clone)]
struct Rtp {
    from: SocketAddr,
    pt: u8,
    payload: Vec<u8>,
}

/// A UDP socket on 127.0.0.1 recording RTP until stopped (or 20 s).
struct RtpSink {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Rtp>>,
}

impl RtpSink {
    fn start(port: u16) -> RtpSink {
        let sock = UdpSocket::bind(("127.0.0.1", port)).expect("bind the RTP sink");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            let deadline = Instant::now() + Duration::from_secs(20);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Ok((n, from)) = sock.recv_from(&mut buf)
                    && n >= 12
                    && buf[0] >> 6 == 2
                {
                    got.push(Rtp {
                        from,
                        pt: buf[1] & 0x7f,
                        payload: buf[12..n].to_vec(),
                    });
                }
            }
            got
        });
        RtpSink { stop, thread }
    }

    fn finish(self) -> Vec<Rtp> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sink thread")
    }
}

/// Checks that telephone-event packets (PT `pt`) for `event` arrived, with the end bit, from
/// `from_ip` if given; `context` is shown on failure.
fn assert_dtmf(got: &[Rtp], pt: u8, event: u8, from_ip: Option<Ipv4Addr>, context: &str) {
    let summary = || {
        let mut pts: Vec<u8> = got.iter().map(|p| p.pt).collect();
        pts.dedup();
        format!(
            "{} packets, payload types in order {pts:?}, events {:?}\n{context}",
            got.len(),
            got.iter()
                .filter(|p| p.pt == pt)
                .map(|p| (p.from, p.payload.clone()))
                .collect::<Vec<_>>()
        )
    };
    let events: Vec<&Rtp> = got.iter().filter(|p| p.pt == pt).collect();
    assert!(
        !events.is_empty(),
        "no telephone-event packets: {}",
        summary()
    );
    assert!(
        events
            .iter()
            .all(|p| p.payload.len() >= 4 && p.payload[0] == event),
        "telephone-event packets for another event: {}",
        summary()
    );
    assert!(
        events.iter().any(|p| p.payload[1] & 0x80 != 0),
        "no end-of-event packet: {}",
        summary()
    );
    assert!(
        from_ip.is_none_or(|ip| events.iter().all(|p| p.from.ip() == ip)),
        "DTMF not from {from_ip:?}: {}",
        summary()
    );
}

/// The stand-in callee: SIPp UAS on 127.0.0.1:`port` whose SDP sends media to `rtp_sink`.
fn callee(
    scn: &str,
    port: u16,
    rtp_sink: u16,
    hangup_after_ms: Option<u32>,
) -> JoinHandle<SippRun> {
    let mut a = args(&[
        "-sf",
        &scenario(scn),
        "-key",
        "rtp_port",
        &rtp_sink.to_string(),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-mp",
        &(port + 1).to_string(),
        "-m",
        "1",
        "-timeout",
        "15",
    ]);
    if let Some(ms) = hangup_after_ms {
        a.extend(args(&["-d", &ms.to_string()]));
    }
    let h = std::thread::spawn(move || sipp(&a, Duration::from_secs(18)));
    std::thread::sleep(Duration::from_millis(300));
    h
}

#[test]
fn baresip_calls_without_registering_and_sends_rfc4733_dtmf_4() {
    let base = port_block(SALT);
    let (uas_port, sink_port, bs_ports) = (base, base + 4, base + 10);
    let sink = RtpSink::start(sink_port);
    let uas = callee("uas_media_wait_bye.xml", uas_port, sink_port, None);
    let dir = std::env::temp_dir().join(format!(
        "centralino-test-bscaller-{}-{base}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut caller = BaresipCaller::start(&dir, bs_ports, Duration::from_secs(15));
    let result = caller.call_and_press(
        &format!("sip:800840840@127.0.0.1:{uas_port}"),
        Duration::from_secs(5),
        Duration::from_millis(500),
        "4",
        Duration::from_millis(1500),
    );
    let uas = uas.join().expect("uas thread");
    let got = sink.finish();
    if let Err(e) = result {
        panic!("{e}\n--- callee ---\n{}", uas.output);
    }
    assert!(uas.success, "callee SIPp failed:\n{}", uas.output);
    // baresip's offer: m=audio <port> RTP/AVP 0 8 101, a=rtpmap:101 telephone-event/8000, with
    // c=IN IP4 127.0.0.2. Its RTP socket is bound to the wildcard address, so towards 127.0.0.1
    // the kernel sends it from 127.0.0.1 (SIP does come from 127.0.0.2); the port is its own.
    assert_dtmf(&got, 101, 4, None, &caller.log());
    assert!(
        got.iter()
            .all(|p| (bs_ports + 2..=bs_ports + 11).contains(&p.from.port())),
        "RTP not from baresip's rtp_ports: {:?}",
        got.first()
    );
    assert!(
        got.iter().any(|p| p.pt == 0),
        "no PCMU audio from baresip before the DTMF"
    );
}

fn sipp_trunk_dtmf(scn: &str, uas_scn: &str, hangup_after_ms: Option<u32>, hold_ms: u32) {
    let base = port_block(SALT);
    let (uas_port, sink_port, uac_port, uac_media) = (base, base + 4, base + 10, base + 12);
    let sink = RtpSink::start(sink_port);
    let uas = callee(uas_scn, uas_port, sink_port, hangup_after_ms);
    let caller = sipp(
        &args(&[
            "-sf",
            &scenario(scn),
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
            &uac_port.to_string(),
            "-mp",
            &uac_media.to_string(),
            "-d",
            &hold_ms.to_string(),
            "-m",
            "1",
            "-timeout",
            "15",
            &format!("127.0.0.1:{uas_port}"),
        ]),
        Duration::from_secs(18),
    );
    let uas = uas.join().expect("uas thread");
    let got = sink.finish();
    assert!(
        caller.success,
        "SIPp caller failed:\n{}\n--- callee ---\n{}",
        caller.output, uas.output
    );
    assert!(uas.success, "callee SIPp failed:\n{}", uas.output);
    // The pcap: 10 packets, PT 101, event 4, volume 10, the last three with the end bit.
    assert_dtmf(
        &got,
        101,
        4,
        Some(Ipv4Addr::new(127, 0, 0, 2)),
        &caller.output,
    );
    let from = got[0].from;
    assert_eq!(
        from,
        SocketAddr::from(([127, 0, 0, 2], uac_media)),
        "RTP leaves from -mi:-mp"
    );
}

#[test]
fn sipp_pcap_dtmf_4_from_the_trunk_then_caller_hangs_up() {
    sipp_trunk_dtmf("uac_ivr_dtmf.xml", "uas_media_wait_bye.xml", None, 1000);
}

#[test]
fn sipp_pcap_dtmf_4_from_the_trunk_then_far_side_hangs_up() {
    sipp_trunk_dtmf(
        "uac_ivr_dtmf_wait_bye.xml",
        "uas_media_hangup.xml",
        Some(3500),
        0,
    );
}
