//! Load generator for the IVR playout bench (bench/ivr_playout.sh): N concurrent trunk calls
//! from 127.0.0.2 to the IVR number, each receiving the switch's prompts as 20 ms PCMU RTP.
//!
//! Places the calls at a fixed rate (raw SIP over UDP: INVITE, ACK to the 200's Contact, BYE),
//! waits until every call is answered, records the arrival time of every RTP packet, presses
//! `1` (RFC 4733) on every call after a steady window and checks that the switch starts a new
//! playback (marker bit) within 1 s, holds, then hangs up. Prints jitter (|inter-arrival − 20
//! ms| of consecutive packets), loss, digits detected and the switch's CPU (from
//! /proc/PID/stat) as `key=value` lines.
//!
//! Arrival times are taken in user space when the receiving task runs (no kernel timestamps),
//! so the figures include this generator's own scheduling delay: they are an upper bound.
//!
//!     ivr_load --switch 127.0.0.1:5060 --calls 1000 --ramp-per-sec 200 --hold-secs 20 \
//!         [--switch-pid PID] [--number 800840840] [--digit-after-secs 8]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use media::telephone_event::Sender;
use tokio::net::UdpSocket;

const LOCAL_IP: &str = "127.0.0.2";

struct Args {
    switch: SocketAddr,
    calls: usize,
    ramp: f64,
    hold: Duration,
    pid: Option<u32>,
    number: String,
    digit_after: Duration,
    reference: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        switch: "127.0.0.1:5060".parse().expect("addr"),
        calls: 1000,
        ramp: 200.0,
        hold: Duration::from_secs(20),
        pid: None,
        number: "800840840".into(),
        digit_after: Duration::from_secs(8),
        reference: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--switch" => a.switch = v.parse().expect("--switch host:port"),
            "--calls" => a.calls = v.parse().expect("--calls"),
            "--ramp-per-sec" => a.ramp = v.parse().expect("--ramp-per-sec"),
            "--hold-secs" => a.hold = Duration::from_secs_f64(v.parse().expect("--hold-secs")),
            "--switch-pid" => a.pid = Some(v.parse().expect("--switch-pid")),
            "--number" => a.number = v,
            "--reference" => a.reference = v.parse().expect("--reference"),
            "--digit-after-secs" => {
                a.digit_after = Duration::from_secs_f64(v.parse().expect("--digit-after-secs"))
            }
            _ => panic!("unknown argument {k}"),
        }
    }
    a
}

/// SIP and RTP-send state of one call.
#[derive(Default)]
struct CallSip {
    invite: String,
    invite_sent: Option<Instant>,
    retransmits: u32,
    responded: bool,
    answered: Option<Instant>,
    to: String,
    contact: String,
    remote_rtp: Option<SocketAddr>,
    bye_ok: bool,
    bye_from_switch: bool,
    failed: Option<u16>,
    seq: u16,
    ts: u32,
}

/// One received RTP packet.
#[derive(Clone, Copy)]
struct Arrival {
    at: Instant,
    seq: u16,
    ssrc: u32,
    marker: bool,
}

struct Shared {
    sip: UdpSocket,
    local_sip: SocketAddr,
    switch: SocketAddr,
    calls: Vec<Mutex<CallSip>>,
    answered: AtomicUsize,
    tag: u32,
}

fn call_id(tag: u32, i: usize) -> String {
    format!("ivr-{i}-{tag}@{LOCAL_IP}")
}

fn header<'a>(headers: &[(&'a str, &'a str)], names: &[&str]) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| names.iter().any(|m| n.eq_ignore_ascii_case(m)))
        .map(|(_, v)| *v)
}

fn sdp_media(body: &str) -> Option<SocketAddr> {
    let mut ip = None;
    let mut port = None;
    for line in body.lines() {
        if let Some(c) = line.strip_prefix("c=IN IP4 ") {
            ip = Some(c.trim().to_string());
        } else if let Some(m) = line.strip_prefix("m=audio ") {
            port = m
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok());
        }
    }
    format!("{}:{}", ip?, port?).parse().ok()
}

fn uri_of(contact: &str) -> String {
    let c = contact.trim();
    match (c.find('<'), c.find('>')) {
        (Some(a), Some(b)) if b > a => c[a + 1..b].to_string(),
        _ => c.split(';').next().unwrap_or(c).to_string(),
    }
}

async fn sip_receiver(sh: Arc<Shared>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = sh.sip.recv_from(&mut buf).await else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap_or("");
        let headers: Vec<(&str, &str)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim(), v.trim()))
            .collect();
        let Some(cid) = header(&headers, &["Call-ID", "i"]) else {
            continue;
        };
        let Some(idx) = cid
            .strip_prefix("ivr-")
            .and_then(|r| r.split('-').next())
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&i| i < sh.calls.len())
        else {
            continue;
        };
        let cseq = header(&headers, &["CSeq"]).unwrap_or("");
        if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
            let code: u16 = rest.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            let out = {
                let mut c = sh.calls[idx].lock().expect("lock");
                let mut out = None;
                if cseq.ends_with("INVITE") {
                    c.responded = true;
                    if (200..300).contains(&code) {
                        let first_200 = c.answered.is_none();
                        if first_200 {
                            c.answered = Some(Instant::now());
                            c.to = header(&headers, &["To", "t"]).unwrap_or("").to_string();
                            c.contact = uri_of(header(&headers, &["Contact", "m"]).unwrap_or(""));
                            c.remote_rtp = sdp_media(body);
                            sh.answered.fetch_add(1, Ordering::Relaxed);
                        }
                        out = Some(request(&sh, idx, &c, "ACK", 1, "z9hG4bK-ack"));
                    } else if code >= 300 && c.failed.is_none() {
                        c.failed = Some(code);
                        let to = header(&headers, &["To", "t"]).unwrap_or("").to_string();
                        let via = header(&headers, &["Via", "v"]).unwrap_or("").to_string();
                        let ack = format!(
                            "ACK sip:{}@{} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: <sip:caller{idx}@{LOCAL_IP}>;tag=f{idx}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                            "x",
                            sh.switch,
                            call_id(sh.tag, idx)
                        );
                        out = Some(ack);
                    }
                } else if cseq.ends_with("BYE") && code >= 200 {
                    c.bye_ok = true;
                }
                out
            };
            if let Some(m) = out {
                let _ = sh.sip.send_to(m.as_bytes(), sh.switch).await;
            }
        } else {
            // A request from the switch (BYE): answer 200, echoing the dialog headers.
            let method = first.split_whitespace().next().unwrap_or("");
            if method == "ACK" {
                continue;
            }
            let mut resp = String::from("SIP/2.0 200 OK\r\n");
            for (n, v) in &headers {
                let keep = ["Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq"]
                    .iter()
                    .any(|k| n.eq_ignore_ascii_case(k));
                if keep {
                    resp.push_str(&format!("{n}: {v}\r\n"));
                }
            }
            resp.push_str("Content-Length: 0\r\n\r\n");
            if method == "BYE" {
                sh.calls[idx].lock().expect("lock").bye_from_switch = true;
            }
            let _ = sh.sip.send_to(resp.as_bytes(), from).await;
        }
    }
}

fn request(sh: &Shared, idx: usize, c: &CallSip, method: &str, cseq: u32, branch: &str) -> String {
    let target = if c.contact.is_empty() {
        format!("sip:x@{}", sh.switch)
    } else {
        c.contact.clone()
    };
    format!(
        "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={branch}-{idx}-{};rport\r\nMax-Forwards: 70\r\nFrom: <sip:caller{idx}@{LOCAL_IP}>;tag=f{idx}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
        sh.local_sip,
        sh.tag,
        c.to,
        call_id(sh.tag, idx)
    )
}

fn invite(sh: &Shared, number: &str, idx: usize, rtp_port: u16) -> String {
    let sdp = format!(
        "v=0\r\no=- {idx} 1 IN IP4 {LOCAL_IP}\r\ns=-\r\nc=IN IP4 {LOCAL_IP}\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    );
    format!(
        "INVITE sip:{number}@{sw} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK-inv-{idx}-{t};rport\r\nMax-Forwards: 70\r\nFrom: <sip:caller{idx}@{LOCAL_IP}>;tag=f{idx}\r\nTo: <sip:{number}@{sw}>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller{idx}@{l}>\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
        sw = sh.switch,
        l = sh.local_sip,
        t = sh.tag,
        cid = call_id(sh.tag, idx),
        len = sdp.len()
    )
}

fn rtp_packet(marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push(pt | if marker { 0x80 } else { 0 });
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

async fn rtp_receiver(sock: Arc<UdpSocket>, stop: Arc<AtomicBool>) -> Vec<Arrival> {
    let mut out = Vec::with_capacity(2048);
    let mut buf = [0u8; 2048];
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let at = Instant::now();
                if let Ok((n, _)) = r
                    && n >= 12
                    && buf[0] >> 6 == 2
                {
                    out.push(Arrival {
                        at,
                        seq: u16::from_be_bytes([buf[2], buf[3]]),
                        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
                        marker: buf[1] & 0x80 != 0,
                    });
                }
            }
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        if stop.load(Ordering::Relaxed) {
            return out;
        }
    }
}

fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

/// Jitter samples (µs) and lost packets of arrivals within [from, to).
fn jitter(all: &[Vec<Arrival>], from: Instant, to: Instant) -> (Vec<u32>, u64, u64) {
    let mut samples = Vec::new();
    let (mut lost, mut packets) = (0u64, 0u64);
    for arr in all {
        let mut prev: Option<&Arrival> = None;
        for a in arr.iter().filter(|a| a.at >= from && a.at < to) {
            packets += 1;
            if let Some(p) = prev
                && p.ssrc == a.ssrc
            {
                let gap = a.seq.wrapping_sub(p.seq);
                if gap == 1 && !a.marker {
                    let d = a.at.duration_since(p.at).as_micros() as i64 - 20_000;
                    samples.push(d.unsigned_abs() as u32);
                } else if gap > 1 && gap < 1000 {
                    lost += u64::from(gap - 1);
                }
            }
            prev = Some(a);
        }
    }
    samples.sort_unstable();
    (samples, lost, packets)
}

fn report(name: &str, s: &[u32], lost: u64, packets: u64) {
    println!(
        "{name}: packets={packets} deltas={} lost={lost} jitter_ms p50={:.3} p99={:.3} p99.9={:.3} max={:.3}",
        s.len(),
        pct(s, 50.0),
        pct(s, 99.0),
        pct(s, 99.9),
        s.last().map_or(f64::NAN, |&m| f64::from(m) / 1000.0)
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    if args.reference > 0 {
        reference(args.reference, args.hold).await;
        return;
    }
    let sip = UdpSocket::bind((LOCAL_IP, 0)).await.expect("bind SIP");
    let local_sip = sip.local_addr().expect("addr");
    let n = args.calls;
    let sh = Arc::new(Shared {
        sip,
        local_sip,
        switch: args.switch,
        calls: (0..n).map(|_| Mutex::new(CallSip::default())).collect(),
        answered: AtomicUsize::new(0),
        tag: std::process::id(),
    });
    tokio::spawn(sip_receiver(sh.clone()));

    let stop = Arc::new(AtomicBool::new(false));
    let mut rtp = Vec::with_capacity(n);
    let mut recv_tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Arc::new(
            UdpSocket::bind((LOCAL_IP, 0))
                .await
                .expect("bind RTP (ulimit -n?)"),
        );
        recv_tasks.push(tokio::spawn(rtp_receiver(s.clone(), stop.clone())));
        rtp.push(s);
    }

    // Place the calls, ramped; retransmit INVITEs without a response (500 ms doubling).
    let t0 = Instant::now();
    let retrans = {
        let sh = sh.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now = Instant::now();
                for c in &sh.calls {
                    let msg = {
                        let mut c = c.lock().expect("lock");
                        match c.invite_sent {
                            Some(at)
                                if !c.responded
                                    && c.retransmits < 6
                                    && now.duration_since(at)
                                        >= Duration::from_millis(500 << c.retransmits) =>
                            {
                                c.retransmits += 1;
                                Some(c.invite.clone())
                            }
                            _ => None,
                        }
                    };
                    if let Some(m) = msg {
                        let _ = sh.sip.send_to(m.as_bytes(), sh.switch).await;
                    }
                }
            }
        })
    };
    for (i, sock) in rtp.iter().enumerate() {
        let due = t0 + Duration::from_secs_f64(i as f64 / args.ramp);
        tokio::time::sleep_until(due.into()).await;
        let port = sock.local_addr().expect("addr").port();
        let msg = invite(&sh, &args.number, i, port);
        {
            let mut c = sh.calls[i].lock().expect("lock");
            c.invite = msg.clone();
            c.invite_sent = Some(Instant::now());
            c.ssrc_init(i);
        }
        let _ = sh.sip.send_to(msg.as_bytes(), sh.switch).await;
    }
    let ramp_done = Instant::now();
    while sh.answered.load(Ordering::Relaxed) < n && ramp_done.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    retrans.abort();
    let t_all = Instant::now();
    let answered = sh.answered.load(Ordering::Relaxed);
    let failed: Vec<u16> = sh
        .calls
        .iter()
        .filter_map(|c| c.lock().expect("lock").failed)
        .collect();
    println!(
        "setup: calls={n} answered={answered} failed={} ramp_secs={:.2} all_answered_after_secs={:.2}",
        failed.len(),
        ramp_done.duration_since(t0).as_secs_f64(),
        t_all.duration_since(t0).as_secs_f64()
    );

    // Keepalive: one silence packet per call per second, so the switch's media timeout never fires.
    let keep = {
        let sh = sh.clone();
        let rtp = rtp.clone();
        tokio::spawn(async move {
            let silence = [0xffu8; 160];
            loop {
                for (i, s) in rtp.iter().enumerate() {
                    let pkt = {
                        let mut c = sh.calls[i].lock().expect("lock");
                        let Some(to) = c.remote_rtp else { continue };
                        c.seq = c.seq.wrapping_add(1);
                        c.ts = c.ts.wrapping_add(8000);
                        (
                            rtp_packet(false, 0, c.seq, c.ts, 0x1000_0000 + i as u32, &silence),
                            to,
                        )
                    };
                    let _ = s.send_to(&pkt.0, pkt.1).await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    let steady_from = t_all + Duration::from_secs(1);
    let digit_from = t_all + args.digit_after;
    let end = t_all + args.hold.max(args.digit_after + Duration::from_secs(4));
    tokio::time::sleep_until(steady_from.into()).await;
    let cpu0 = cpu_ticks(args.pid);
    tokio::time::sleep_until(digit_from.into()).await;
    let cpu1 = cpu_ticks(args.pid);

    // Press 1 on every answered call, spread over 2 s: 100 ms event, end packet ×3.
    let digit_at: Arc<Vec<Mutex<Option<Instant>>>> =
        Arc::new((0..n).map(|_| Mutex::new(None)).collect());
    let mut digit_tasks = Vec::new();
    for i in 0..n {
        if sh.calls[i].lock().expect("lock").remote_rtp.is_none() {
            continue;
        }
        let (sh, s, digit_at) = (sh.clone(), rtp[i].clone(), digit_at.clone());
        let start = digit_from + Duration::from_secs_f64(2.0 * i as f64 / n as f64);
        digit_tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let (to, ts0) = {
                let mut c = sh.calls[i].lock().expect("lock");
                c.ts = c.ts.wrapping_add(8000);
                (c.remote_rtp.expect("answered"), c.ts)
            };
            let t_start = Instant::now();
            *digit_at[i].lock().expect("lock") = Some(t_start);
            for p in Sender::new(1, 10, ts0, 800, 160) {
                let due = t_start + Duration::from_micros(u64::from(p.send_at - 160) * 125);
                tokio::time::sleep_until(due.into()).await;
                let seq = {
                    let mut c = sh.calls[i].lock().expect("lock");
                    c.seq = c.seq.wrapping_add(1);
                    c.seq
                };
                let pkt = rtp_packet(
                    p.marker,
                    101,
                    seq,
                    p.timestamp,
                    0x1000_0000 + i as u32,
                    &p.payload.to_bytes(),
                );
                let _ = s.send_to(&pkt, to).await;
            }
        }));
    }
    for t in digit_tasks {
        let _ = t.await;
    }
    let cpu2_at = Instant::now();
    let cpu2 = cpu_ticks(args.pid);
    tokio::time::sleep_until(end.into()).await;
    let cpu3 = cpu_ticks(args.pid);
    keep.abort();

    // Hang up; one retransmission after 1 s.
    let t_bye = Instant::now();
    for round in 0..2 {
        for i in 0..n {
            let msg = {
                let c = sh.calls[i].lock().expect("lock");
                if c.answered.is_none() || c.bye_ok || c.bye_from_switch {
                    continue;
                }
                request(&sh, i, &c, "BYE", 2, "z9hG4bK-bye")
            };
            let _ = sh.sip.send_to(msg.as_bytes(), sh.switch).await;
        }
        if round == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::with_capacity(n);
    for t in recv_tasks {
        all.push(t.await.unwrap_or_default());
    }
    let byes_ok = sh
        .calls
        .iter()
        .filter(|c| c.lock().expect("lock").bye_ok)
        .count();
    let ended_by_switch = sh
        .calls
        .iter()
        .filter(|c| c.lock().expect("lock").bye_from_switch)
        .count();

    // Digits: a marker packet within 1 s after the press; control: a marker in the 1 s before.
    let (mut sent, mut detected, mut before) = (0, 0, 0);
    let mut latency = Vec::new();
    for (i, arr) in all.iter().enumerate() {
        let Some(td) = *digit_at[i].lock().expect("lock") else {
            continue;
        };
        sent += 1;
        if let Some(a) = arr
            .iter()
            .find(|a| a.marker && a.at > td && a.at <= td + Duration::from_secs(1))
        {
            detected += 1;
            latency.push(a.at.duration_since(td).as_micros() as u32);
        }
        if arr
            .iter()
            .any(|a| a.marker && a.at > td - Duration::from_secs(1) && a.at <= td)
        {
            before += 1;
        }
    }
    latency.sort_unstable();
    println!(
        "digits: sent={sent} detected={detected} marker_in_1s_before_press={before} latency_ms p50={:.1} p99={:.1} max={:.1}",
        pct(&latency, 50.0),
        pct(&latency, 99.0),
        latency.last().map_or(f64::NAN, |&m| f64::from(m) / 1000.0)
    );

    let (s, lost, pk_steady) = jitter(&all, steady_from, digit_from);
    report("steady", &s, lost, pk_steady);
    let (s, lost, pk_hold) = jitter(&all, t_all, t_bye);
    report("hold", &s, lost, pk_hold);
    let (s, lost, pk_post) = jitter(&all, cpu2_at, end);
    report("after_digits", &s, lost, pk_post);
    let hz = 100.0;
    if let (Some(a), Some(b), Some(c), Some(d)) = (cpu0, cpu1, cpu2, cpu3) {
        let secs1 = digit_from.duration_since(steady_from).as_secs_f64();
        let cpu1s = (b - a) as f64 / hz;
        let secs2 = end.duration_since(cpu2_at).as_secs_f64();
        let cpu2s = (d - c) as f64 / hz;
        println!(
            "switch_cpu: steady_pct_one_core={:.1} steady_us_per_packet={:.2} after_digits_pct_one_core={:.1} after_digits_us_per_packet={:.2}",
            100.0 * cpu1s / secs1,
            cpu1s * 1e6 / pk_steady.max(1) as f64,
            100.0 * cpu2s / secs2,
            cpu2s * 1e6 / pk_post.max(1) as f64
        );
    }
    println!("teardown: byes_ok={byes_ok} ended_by_switch={ended_by_switch}");
}

/// Same-run reference: `n` streams from plain `tokio::time::interval(20 ms)` senders on a
/// current-thread runtime in another thread, received and measured exactly like the switch's.
async fn reference(n: usize, secs: Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut addrs = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Arc::new(UdpSocket::bind((LOCAL_IP, 0)).await.expect("bind"));
        addrs.push(s.local_addr().expect("addr"));
        tasks.push(tokio::spawn(rtp_receiver(s, stop.clone())));
    }
    let t0 = Instant::now();
    let sender = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async move {
            let mut hs = Vec::new();
            for (i, to) in addrs.into_iter().enumerate() {
                hs.push(tokio::spawn(async move {
                    let s = UdpSocket::bind(("127.0.0.1", 0)).await.expect("bind");
                    let start = t0 + Duration::from_micros((20_000 * i / n) as u64);
                    let mut iv = tokio::time::interval_at(start.into(), Duration::from_millis(20));
                    let payload = [0xffu8; 160];
                    let mut seq = 0u16;
                    while t0.elapsed() < secs {
                        iv.tick().await;
                        seq = seq.wrapping_add(1);
                        let pkt =
                            rtp_packet(seq == 1, 0, seq, u32::from(seq) * 160, i as u32, &payload);
                        let _ = s.send_to(&pkt, to).await;
                    }
                }));
            }
            for h in hs {
                let _ = h.await;
            }
        });
    });
    tokio::time::sleep_until((t0 + secs + Duration::from_millis(500)).into()).await;
    let _ = tokio::task::spawn_blocking(move || sender.join()).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.push(t.await.unwrap_or_default());
    }
    let (s, lost, packets) = jitter(&all, t0 + Duration::from_secs(1), t0 + secs);
    report(&format!("reference_tokio_interval_{n}"), &s, lost, packets);
}

impl CallSip {
    fn ssrc_init(&mut self, i: usize) {
        self.seq = (i as u16).wrapping_mul(7919);
        self.ts = (i as u32).wrapping_mul(104_729);
    }
}
