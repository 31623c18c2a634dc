//! Over-the-wire robustness of the real binary on loopback:
//!
//! * the PROTOS c07-sip suite (4,527 malformed INVITEs) over UDP and over TCP, with an OPTIONS
//!   probe every 50 cases that must be answered, from the trunk address (never penalised, so a
//!   ban cannot hide a crash) and once more over UDP from an untrusted address (penalised);
//! * the RFC 4475 / RFC 5118 torture messages and real phones' messages, each answered with the
//!   status the RFC (or common sense) expects, checked against the table in this file;
//! * abuse: a thousand wrong passwords and a flood of junk datagrams while a trunk call to a
//!   registered phone goes through and the switch keeps answering OPTIONS.
//!
//! Third-party data is read from `CENTRALINO_SHARED` (see `common::shared`) and never copied
//! into the repository. Addresses: 127.0.0.1 probes and the phone, 127.0.0.2 is the example's
//! trunk, 127.0.0.3/.4/.5 are untrusted sources that end up penalised.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{Switch, args, options_ping, port_block, register, shared, sipp};

const SALT: u16 = 3;
/// The trunk `provider` of the example dialplan: trusted, never penalised.
const TRUNK: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Untrusted source of the second PROTOS pass.
const UNTRUSTED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// Source of the junk flood.
const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
/// Source of the wrong passwords.
const GUESSER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
/// Failures within 60 s after which the switch ignores a source (b2bua's PENALTY_THRESHOLD).
const PENALTY_THRESHOLD: usize = 20;
/// Largest UDP payload over IPv4; bigger PROTOS cases go over TCP only.
const MAX_DATAGRAM: usize = 65_507;
/// Number of files in the PROTOS c07-sip archive.
const PROTOS_CASES: usize = 4_527;

/// The first of 100 RTP ports for the switch on `base`: a range of its own, so that two of
/// this file's switches that bind media at the same time never collide (`base + 10_000`,
/// as elsewhere, overlaps the next block's range: blocks are 40 ports apart).
///
/// The ranges start at 61,000: above Linux's ephemeral ports (32,768-60,999, which this
/// file's thousands of client sockets use) and above the 20,000-59,999 a local benchmark
/// switch may hold.
fn rtp_ports(base: u16) -> u16 {
    let first_base = 20_000 + SALT * 2_000;
    let first = 61_000 + (base - first_base) / 40 * 100;
    assert!(first < 65_400, "out of RTP ranges for block {base}");
    first
}

// ---------------------------------------------------------------------------------------------
// Small wire helpers
// ---------------------------------------------------------------------------------------------

/// A value no other message in this process uses (branches, Call-IDs, tags).
fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}x{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_007
    )
}

fn bind_udp(ip: Ipv4Addr) -> UdpSocket {
    UdpSocket::bind(SocketAddr::new(IpAddr::V4(ip), 0))
        .unwrap_or_else(|e| panic!("bind UDP on {ip}: {e}"))
}

/// The status code of a response datagram, `None` for anything else.
fn status_of(bytes: &[u8]) -> Option<u16> {
    let rest = bytes.strip_prefix(b"SIP/2.0 ")?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

/// The value of the first header with one of `names` (say the full and the compact form),
/// compared case-insensitively.
fn header<'a>(text: &'a str, names: &[&str]) -> Option<&'a str> {
    let head = text.split("\r\n\r\n").next().unwrap_or(text);
    let head = head.split("\n\n").next().unwrap_or(head); // a bare-LF message (RFC 5118 archive variant)
    head.split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .skip(1)
        .find_map(|line| {
            let (n, v) = line.split_once(':')?;
            names
                .iter()
                .any(|x| n.trim().eq_ignore_ascii_case(x))
                .then(|| v.trim())
        })
}

/// The method named in a response's CSeq.
fn cseq_method(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    header(&text, &["CSeq"])
        .and_then(|v| v.split_whitespace().nth(1))
        .map(str::to_owned)
}

/// The ACK for a non-2xx final response to an INVITE (RFC 3261 §17.1.1.3), so the switch stops
/// retransmitting it; `None` for anything else.
fn ack_for(response: &[u8], request_uri: &str) -> Option<Vec<u8>> {
    if status_of(response)? < 300 {
        return None;
    }
    let text = String::from_utf8_lossy(response);
    let (seq, method) = header(&text, &["CSeq"])?.split_once(' ')?;
    if method.trim() != "INVITE" {
        return None;
    }
    let via = header(&text, &["Via", "v"])?;
    let via = via.split(',').next().unwrap_or(via);
    let (from, to, call_id) = (
        header(&text, &["From", "f"])?,
        header(&text, &["To", "t"])?,
        header(&text, &["Call-ID", "i"])?,
    );
    Some(
        format!(
            "ACK {request_uri} SIP/2.0\r\nVia: {via}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            seq.trim()
        )
        .into_bytes(),
    )
}

/// One OPTIONS over UDP from `ip`; true if a 200 for it came back within `timeout`.
fn options_from(ip: Ipv4Addr, to: SocketAddr, timeout: Duration) -> bool {
    let sock = bind_udp(ip);
    let port = sock.local_addr().map_or(0, |a| a.port());
    let branch = format!("z9hG4bKprobe{}", unique());
    let msg = format!(
        "OPTIONS sip:ping@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{port};branch={branch}\r\nFrom: <sip:probe@{ip}>;tag=p{port}\r\nTo: <sip:ping@{to}>\r\nCall-ID: {branch}@{ip}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    if sock.send_to(msg.as_bytes(), to).is_err() {
        return false;
    }
    wait_for(&sock, timeout, |bytes| {
        status_of(bytes) == Some(200) && String::from_utf8_lossy(bytes).contains(&branch)
    })
    .is_some()
}

/// Reads from `sock` until a datagram satisfies `want` or `timeout` passes.
fn wait_for(sock: &UdpSocket, timeout: Duration, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65_536];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let _ = sock.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match sock.recv_from(&mut buf) {
            Ok((n, _)) if want(&buf[..n]) => return Some(buf[..n].to_vec()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(_) => {}
        }
    }
}

/// Every datagram that arrives on `sock` within `window`.
fn drain(sock: &UdpSocket, window: Duration) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let deadline = Instant::now() + window;
    let mut buf = vec![0u8; 65_536];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let _ = sock.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => got.push(buf[..n].to_vec()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(_) => {}
        }
    }
    got
}

/// OPTIONS from 127.0.0.1 (`common::options_ping`), with the two retransmissions a real UAC
/// would send: a UDP datagram lost under load is not a hang.
fn probe(sw: &Switch) -> bool {
    (0..3).any(|_| options_ping(sw.sip, Duration::from_millis(1000)))
}

/// `None` while the switch runs, else how it ended.
fn exited(sw: &mut Switch) -> Option<std::process::ExitStatus> {
    sw.child.try_wait().ok().flatten()
}

fn log_tail(sw: &Switch, n: usize) -> String {
    let log = sw.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| plain(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A log line without its ANSI colour codes.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Panics with the switch's state and log when it stopped answering.
fn fail_unresponsive(sw: &mut Switch, what: &str) -> ! {
    let state = match exited(sw) {
        Some(status) => format!("the switch process EXITED ({status})"),
        None => "the switch process is still running (hang or overload)".to_owned(),
    };
    panic!(
        "{what}: {state}\n--- last switch log lines ---\n{}",
        log_tail(sw, 60)
    );
}

/// Also fails on a panic in the log: tokio catches a panic in a connection task, so the
/// process lives on while that connection hangs.
fn assert_alive_and_answering(sw: &mut Switch, what: &str) {
    if exited(sw).is_some() || !probe(sw) {
        fail_unresponsive(sw, what);
    }
    let log = sw.log();
    let panics: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("panicked"))
        .take(5)
        .collect();
    assert!(
        panics.is_empty(),
        "{what}: the switch log shows a panic:\n{}",
        panics.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// PROTOS c07-sip
// ---------------------------------------------------------------------------------------------

/// One PROTOS case: the malformed INVITE and the teardown request, both with placeholders.
struct ProtosCase {
    number: usize,
    invite: Vec<u8>,
    teardown: Vec<u8>,
}

/// Unpacks the archive once into the temp dir, keyed by its size, so repeated runs reuse it.
fn unpack_protos() -> PathBuf {
    let archive = shared().join("protos").join("protos-c07-sip-cases.tar.xz");
    let size = std::fs::metadata(&archive)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (set CENTRALINO_SHARED to the shared test-data directory)",
                archive.display()
            )
        })
        .len();
    let dir = std::env::temp_dir().join(format!("centralino-protos-c07-{size}"));
    if dir.join(".complete").exists() {
        return dir;
    }
    let tmp = std::env::temp_dir().join(format!(
        "centralino-protos-c07-{size}.partial-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("temp dir for PROTOS");
    let status = std::process::Command::new("tar")
        .arg("xJf")
        .arg(&archive)
        .arg("-C")
        .arg(&tmp)
        .status()
        .expect("run tar");
    assert!(
        status.success(),
        "tar xJf {} failed: {status}",
        archive.display()
    );
    std::fs::write(tmp.join(".complete"), b"").expect("marker");
    // Another test process may have won the race: then its copy is as good as ours.
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(
            dir.join(".complete").exists(),
            "cannot move the unpacked PROTOS cases to {}",
            dir.display()
        );
    }
    dir
}

/// Splits a case file: `<decimal length> <that many bytes>`, twice (README of the archive).
fn split_length_prefixed(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let space = bytes[at..]
            .iter()
            .position(|&b| b == b' ')
            .ok_or("no length prefix")?
            + at;
        let len: usize = std::str::from_utf8(&bytes[at..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("bad length prefix")?;
        let end = space + 1 + len;
        out.push(
            bytes
                .get(space + 1..end)
                .ok_or("record longer than the file")?
                .to_vec(),
        );
        at = end;
    }
    Ok(out)
}

fn protos_cases() -> &'static [ProtosCase] {
    static CASES: OnceLock<Vec<ProtosCase>> = OnceLock::new();
    CASES.get_or_init(|| {
        let dir = unpack_protos().join("cases");
        let mut cases = Vec::with_capacity(PROTOS_CASES);
        for number in 0..PROTOS_CASES {
            let path = dir.join(format!("{number:07}"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let records =
                split_length_prefixed(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let [invite, teardown]: [Vec<u8>; 2] =
                records.try_into().unwrap_or_else(|r: Vec<Vec<u8>>| {
                    panic!("{}: {} records, expected 2", path.display(), r.len())
                });
            cases.push(ProtosCase {
                number,
                invite,
                teardown,
            });
        }
        assert!(
            !dir.join(format!("{PROTOS_CASES:07}")).exists(),
            "more PROTOS cases than the {PROTOS_CASES} expected"
        );
        cases
    })
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut at = 0;
    while at < haystack.len() {
        if haystack[at..].starts_with(needle) {
            out.extend_from_slice(with);
            at += needle.len();
        } else {
            out.push(haystack[at]);
            at += 1;
        }
    }
    out
}

/// The values PROTOS substitutes into its templates.
struct Placeholders {
    /// `user@host:port` of the target: extension 201 at the switch. Over UDP a busy phone is
    /// registered as 201, so a well-formed case becomes a call; over TCP nobody is, so it is
    /// routed and refused (480).
    to: String,
    /// `user@host` of the sender.
    from: String,
    /// The sender's address.
    from_ip: Ipv4Addr,
    /// The sender's port.
    port: u16,
    /// Marks the pass, so Call-IDs and branches differ between passes.
    pass: &'static str,
}

impl Placeholders {
    fn fill(&self, template: &[u8], case: usize) -> Vec<u8> {
        let ip = self.from_ip.to_string();
        let subs: [(&str, String); 9] = [
            ("<To>", self.to.clone()),
            ("<From>", self.from.clone()),
            ("<From-Address>", ip.clone()),
            ("<From-IP>", ip),
            ("<Local-Port>", self.port.to_string()),
            ("<Call-ID>", format!("protos{case}{}", self.pass)),
            ("<Branch-ID>", format!("{case:07}{}", self.pass)),
            ("<CSeq>", (case + 1).to_string()),
            ("<Teardown-Method>", "CANCEL".to_owned()),
        ];
        let mut out = template.to_vec();
        for (k, v) in subs {
            out = replace_all(&out, k.as_bytes(), v.as_bytes());
        }
        let body = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(0, |p| out.len() - p - 4);
        replace_all(&out, b"<Content-Length>", body.to_string().as_bytes())
    }
}

#[derive(Default, Debug)]
struct PassReport {
    cases: usize,
    datagrams_sent: usize,
    too_big_for_udp: usize,
    send_errors: usize,
    responses: BTreeMap<u16, usize>,
    acks_sent: usize,
    /// Answers from the switch that `sip_msg` itself refuses, by reason, and a few examples.
    /// Mostly a 400 that copies the malformed Via it refuses (RFC 3261 §8.2.6.2 copies Via).
    malformed_responses_by_reason: BTreeMap<String, usize>,
    malformed_response_examples: Vec<String>,
    elapsed: Duration,
}

/// Sends every PROTOS case (INVITE, then its CANCEL teardown) over UDP from `from`, paced at
/// `per_case`, with an OPTIONS probe from 127.0.0.1 every 50 cases.
fn protos_udp_pass(
    sw: &mut Switch,
    from: Ipv4Addr,
    pass: &'static str,
    per_case: Duration,
) -> PassReport {
    let cases = protos_cases();
    let sock = bind_udp(from);
    let port = sock.local_addr().expect("local address").port();
    let fill = Placeholders {
        to: format!("201@{}", sw.sip),
        from: format!("protos@{from}"),
        from_ip: from,
        port,
        pass,
    };
    let request_uri = format!("sip:{}", fill.to);

    // Reader: counts answers and ACKs final INVITE responses so retransmissions stop.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let sock = sock.try_clone().expect("clone socket");
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut responses = BTreeMap::<u16, usize>::new();
            let mut acks = 0;
            let mut malformed = (BTreeMap::<String, usize>::new(), Vec::<String>::new());
            let mut buf = vec![0u8; 65_536];
            let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, src)) = sock.recv_from(&mut buf) {
                    if let Some(code) = status_of(&buf[..n]) {
                        *responses.entry(code).or_default() += 1;
                    }
                    let problem = match sip_msg::parse(&buf[..n], sip_msg::Framing::Datagram) {
                        Ok(sip_msg::Message::Response(r)) => r
                            .validate()
                            .err()
                            .map(|e| format!("invalid ({})", e.reason)),
                        Ok(sip_msg::Message::Request(_)) => Some("a request".to_owned()),
                        Err(e) => Some(format!("unparseable ({})", e.reason)),
                    };
                    if let Some(problem) = problem {
                        *malformed.0.entry(problem.clone()).or_default() += 1;
                        if malformed.1.len() < 3 {
                            malformed.1.push(format!(
                                "{problem}: {:.400}",
                                String::from_utf8_lossy(&buf[..n])
                            ));
                        }
                    }
                    if let Some(ack) = ack_for(&buf[..n], &request_uri)
                        && sock.send_to(&ack, src).is_ok()
                    {
                        acks += 1;
                    }
                }
            }
            (responses, acks, malformed)
        })
    };

    let mut report = PassReport {
        cases: cases.len(),
        ..PassReport::default()
    };
    let start = Instant::now();
    for (idx, case) in cases.iter().enumerate() {
        if let Some(wait) = (start + per_case * idx as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for template in [&case.invite, &case.teardown] {
            let bytes = fill.fill(template, case.number);
            if bytes.len() > MAX_DATAGRAM {
                report.too_big_for_udp += 1;
                continue;
            }
            match sock.send_to(&bytes, sw.sip) {
                Ok(_) => report.datagrams_sent += 1,
                Err(_) => report.send_errors += 1,
            }
        }
        if (idx + 1) % 50 == 0 && !probe(sw) {
            stop.store(true, Ordering::Relaxed);
            fail_unresponsive(
                sw,
                &format!(
                    "PROTOS UDP pass from {from}: no answer to OPTIONS after case {:07}",
                    case.number
                ),
            );
        }
    }
    if exited(sw).is_some() || !probe(sw) {
        stop.store(true, Ordering::Relaxed);
        fail_unresponsive(
            sw,
            &format!("PROTOS UDP pass from {from}: after the last case"),
        );
    }
    report.elapsed = start.elapsed();
    // Late answers (the CANCELs of the last cases) still count.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (responses, acks, malformed) = reader.join().expect("reader thread");
    report.responses = responses;
    report.acks_sent = acks;
    (
        report.malformed_responses_by_reason,
        report.malformed_response_examples,
    ) = malformed;
    report
}

/// What the phone of [`busy_phone`] saw.
#[derive(Debug, Default)]
struct PhoneReport {
    /// Requests by method.
    requests: BTreeMap<String, usize>,
    /// Requests from the switch that `sip_msg` refuses (first few, and how many in all).
    malformed: Vec<String>,
    n_malformed: usize,
}

/// Registers extension `ext` from a socket on 127.0.0.1 with a correct digest (MD5, qop=auth).
fn register_raw(sock: &UdpSocket, to: SocketAddr, ext: &str, password: &str) {
    let port = sock.local_addr().expect("local address").port();
    let call_id = format!("phone{}", unique());
    let uri = format!("sip:{to}");
    let send = |cseq: u32, auth: &str| {
        let branch = format!("z9hG4bKreg{}", unique());
        let msg = format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\nFrom: <sip:{ext}@{to}>;tag=ph{port}\r\nTo: <sip:{ext}@{to}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{ext}@127.0.0.1:{port}>\r\n{auth}Max-Forwards: 70\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n"
        );
        sock.send_to(msg.as_bytes(), to).expect("send REGISTER");
        wait_for(sock, Duration::from_secs(2), |b| {
            String::from_utf8_lossy(b).contains(&branch)
        })
        .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let challenge = send(1, "")
        .and_then(|r| md5_challenge(&r))
        .expect("an MD5 challenge to the phone's REGISTER");
    let (realm, nonce) = (&challenge["realm"], &challenge["nonce"]);
    let ha1 = registrar::ha1_md5(ext, realm, password);
    let response = registrar::compute_response(
        registrar::Algorithm::Md5,
        &ha1,
        nonce,
        "REGISTER",
        &uri,
        Some(registrar::QopAuth {
            nc: "00000001",
            cnonce: "0a4f113b",
        }),
    );
    let opaque = challenge
        .get("opaque")
        .map(|o| format!(", opaque=\"{o}\""))
        .unwrap_or_default();
    let auth = format!(
        "Authorization: Digest username=\"{ext}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"{opaque}\r\n"
    );
    let answer = send(2, &auth).unwrap_or_default();
    assert_eq!(
        status_of(answer.as_bytes()),
        Some(200),
        "phone registration of {ext}: {answer}"
    );
}

/// A phone registered as `ext` on 127.0.0.1 that answers every INVITE 180 then 486 Busy Here
/// at once (so calls end without holding media ports; the 486 is retransmitted until the
/// ACK), 200 to anything else but ACK, and
/// checks that every request the switch sends it is well formed: malformed input from the
/// trunk must never turn into a malformed B-leg request.
fn busy_phone(
    sw: &Switch,
    ext: &str,
    password: &str,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<PhoneReport>) {
    let sock = bind_udp(Ipv4Addr::LOCALHOST);
    register_raw(&sock, sw.sip, ext, password);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_thread = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        use sip_msg::{Framing, Message, Method, parse};
        let mut report = PhoneReport::default();
        let mut buf = vec![0u8; 65_536];
        // RFC 3261 §17.2.1: the 486 goes again (Timer G, doubling to T2) until the ACK comes
        // (or Timer H, 32 s): under load the switch may lose a datagram, as a real phone knows.
        struct Unacked {
            call_id: String,
            cseq: u32,
            bytes: Vec<u8>,
            to: SocketAddr,
            next: Instant,
            interval: Duration,
            give_up: Instant,
        }
        let mut unacked: Vec<Unacked> = Vec::new();
        let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
        while !stop_thread.load(Ordering::Relaxed) {
            let now = Instant::now();
            unacked.retain(|u| u.give_up > now);
            for u in unacked.iter_mut().filter(|u| u.next <= now) {
                let _ = sock.send_to(&u.bytes, u.to);
                u.interval = (u.interval * 2).min(Duration::from_secs(4));
                u.next = now + u.interval;
            }
            let Ok((n, src)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let bytes = &buf[..n];
            let req = match parse(bytes, Framing::Datagram) {
                Ok(Message::Request(req)) => req,
                Ok(Message::Response(_)) => continue,
                Err(e) => {
                    report.n_malformed += 1;
                    if report.malformed.len() < 5 {
                        report.malformed.push(format!(
                            "unparseable ({}): {:.300}",
                            e.reason,
                            String::from_utf8_lossy(bytes)
                        ));
                    }
                    continue;
                }
            };
            if let Err(e) = req.validate() {
                report.n_malformed += 1;
                if report.malformed.len() < 5 {
                    report.malformed.push(format!(
                        "invalid ({} {}): {:.300}",
                        e.status,
                        e.reason,
                        String::from_utf8_lossy(bytes)
                    ));
                }
            }
            *report
                .requests
                .entry(req.method.as_str().to_owned())
                .or_default() += 1;
            let (call_id, cseq) = (
                req.call_id().unwrap_or_default().to_owned(),
                req.cseq().map_or(0, |c| c.seq),
            );
            let tag = "busyphone";
            match req.method {
                Method::Invite => {
                    let _ = sock.send_to(
                        &req.make_response(180, "Ringing", Some(tag)).to_bytes(),
                        src,
                    );
                    let busy = req.make_response(486, "Busy Here", Some(tag)).to_bytes();
                    let _ = sock.send_to(&busy, src);
                    if !unacked
                        .iter()
                        .any(|u| u.call_id == call_id && u.cseq == cseq)
                    {
                        let interval = Duration::from_millis(500);
                        unacked.push(Unacked {
                            call_id,
                            cseq,
                            bytes: busy,
                            to: src,
                            next: now + interval,
                            interval,
                            give_up: now + Duration::from_secs(32),
                        });
                    }
                }
                Method::Ack => unacked.retain(|u| !(u.call_id == call_id && u.cseq == cseq)),
                _ => {
                    let _ = sock.send_to(&req.make_response(200, "OK", Some(tag)).to_bytes(), src);
                }
            }
        }
        report
    });
    (stop, thread)
}

/// Waits until the switch holds no call and no media port: 40 s at most, as a B-leg whose
/// answers were all lost ends legitimately only at Timer B (64*T1 = 32 s).
fn wait_idle(sw: &Switch) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (calls, ports) = (
            sw.metric("centralino_calls_active"),
            sw.metric("centralino_media_ports_in_use"),
        );
        if calls == Some(0.0) && ports == Some(0.0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "calls_active={calls:?} media_ports_in_use={ports:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn protos_c07_over_udp_from_the_trunk_then_from_a_penalised_source() {
    let base = port_block(SALT);
    let mut sw = Switch::start("protos-udp", base, rtp_ports(base), &[]);
    let _ = protos_cases(); // unpack and load before the clock starts
    // Extension 201 is a registered (busy) phone: a well-formed case rings it, so the call
    // path (B-leg INVITE built from the mutated one, media ports, CANCEL) is exercised too.
    let (phone_stop, phone) = busy_phone(&sw, "201", "pw201");

    let trunk = protos_udp_pass(&mut sw, TRUNK, "t", Duration::from_millis(5));
    phone_stop.store(true, Ordering::Relaxed);
    let phone = phone.join().expect("phone thread");
    eprintln!(
        "PROTOS UDP from the trunk {TRUNK}: {trunk:?}\nthe phone saw {:?}, {} malformed",
        phone.requests, phone.n_malformed
    );
    assert!(
        phone.malformed.is_empty(),
        "the switch sent the phone {} malformed request(s), e.g.:\n{}",
        phone.n_malformed,
        phone.malformed.join("\n")
    );
    assert!(
        phone.requests.get("INVITE").copied().unwrap_or(0) > 1_000,
        "few PROTOS INVITEs reached the phone: {:?}",
        phone.requests
    );
    let idle_wait = Instant::now();
    if let Err(e) = wait_idle(&sw) {
        panic!(
            "calls or media ports left 40 s after the PROTOS calls: {e}\n{}",
            sw.metrics_text()
        );
    }
    let too_long = sw
        .log()
        .lines()
        .filter(|l| l.contains("Message too long"))
        .count();
    eprintln!(
        "idle {:.1?} after the pass; {too_long} UDP sends failed as too long (see the test below)",
        idle_wait.elapsed()
    );
    assert!(
        trunk.elapsed < Duration::from_secs(60),
        "the trunk pass took {:?}",
        trunk.elapsed
    );
    // The trunk is never penalised: the switch answered throughout, most cases with 400.
    let answered: usize = trunk.responses.values().sum();
    assert!(
        answered >= trunk.cases,
        "only {answered} answers to {} cases from the trunk: {:?}",
        trunk.cases,
        trunk.responses
    );
    assert!(
        trunk.responses.get(&400).copied().unwrap_or(0) > 1_000,
        "expected many 400s: {:?}",
        trunk.responses
    );

    let untrusted = protos_udp_pass(&mut sw, UNTRUSTED, "u", Duration::from_millis(3));
    eprintln!("PROTOS UDP from the untrusted {UNTRUSTED}: {untrusted:?}");
    // 127.0.0.3 is penalised now: it is ignored, while 127.0.0.1 is still answered.
    assert!(
        !options_from(UNTRUSTED, sw.sip, Duration::from_millis(800)),
        "{UNTRUSTED} was not penalised after {} malformed requests",
        untrusted.cases
    );
    let answered: usize = untrusted.responses.values().sum();
    assert!(
        answered < 200,
        "{UNTRUSTED} got {answered} answers although penalised after {PENALTY_THRESHOLD} failures: {:?}",
        untrusted.responses
    );
    assert!(
        sw.metric("centralino_sip_penalised_total")
            .is_some_and(|v| v > 1_000.0),
        "{}",
        sw.metrics_text()
    );
    assert!(
        options_from(TRUNK, sw.sip, Duration::from_secs(2)),
        "the trunk {TRUNK} is not answered after the passes"
    );
    assert_alive_and_answering(&mut sw, "after both UDP passes");
}

/// PROTOS case 657 carries a 63 KB From display name of Latin-1 bytes. Found by the PROTOS
/// pass: the switch's copies of it (responses to the trunk, the B-leg INVITE) come out about
/// three times larger (sip-msg keeps non-UTF-8 header bytes as U+FFFD, three bytes each),
/// beyond the 65,507 bytes of a UDP datagram, so they are never sent: the phone never rings,
/// the trunk gets no answer at all, and the B-leg retransmits into the void until Timer B.
/// Here the display name is 25,000 such bytes: the INVITE itself is a 25 KB datagram.
#[test]
fn trunk_invite_with_a_long_non_utf8_display_name_gets_an_answer() {
    let base = port_block(SALT);
    let mut sw = Switch::start("bigname", base, rtp_ports(base), &[]);
    let (phone_stop, phone) = busy_phone(&sw, "201", "pw201");
    let sock = bind_udp(TRUNK);
    let port = sock.local_addr().expect("local address").port();
    let branch = format!("z9hG4bKbig{}", unique());
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {TRUNK}\r\ns=-\r\nc=IN IP4 {TRUNK}\r\nt=0 0\r\nm=audio 9876 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    );
    let mut invite = format!(
        "INVITE sip:201@{0} SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK}:{port};branch={branch}\r\nFrom: ",
        sw.sip
    )
    .into_bytes();
    invite.extend(std::iter::repeat_n(0xE5u8, 25_000));
    invite.extend(
        format!(
            " <sip:caller@{TRUNK}>;tag=big\r\nTo: <sip:201@{0}>\r\nCall-ID: {branch}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{TRUNK}:{port}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {1}\r\n\r\n{sdp}",
            sw.sip,
            sdp.len()
        )
        .into_bytes(),
    );
    sock.send_to(&invite, sw.sip).expect("send the INVITE");
    let answer = wait_for(&sock, Duration::from_secs(5), |b| {
        status_of(b).is_some_and(|c| c >= 200)
    });
    if let Some(final_response) = &answer
        && let Some(ack) = ack_for(final_response, &format!("sip:201@{}", sw.sip))
    {
        let _ = sock.send_to(&ack, sw.sip);
    }
    phone_stop.store(true, Ordering::Relaxed);
    let phone = phone.join().expect("phone thread");
    let too_long: Vec<String> = sw
        .log()
        .lines()
        .filter(|l| l.contains("Message too long"))
        .take(3)
        .map(plain)
        .collect();
    assert_alive_and_answering(&mut sw, "after the INVITE with a long display name");
    assert!(
        answer.is_some() && phone.requests.contains_key("INVITE"),
        "a {} byte INVITE with a 25,000 byte non-UTF-8 display name: final response to the trunk within 5 s: {:?}; the phone saw {:?}; switch log:\n{}",
        invite.len(),
        answer.as_deref().and_then(status_of),
        phone.requests,
        too_long.join("\n"),
    );
}

/// Connects from `local` (std cannot bind before connecting; tokio can).
fn connect_from(
    rt: &tokio::runtime::Runtime,
    local: Ipv4Addr,
    to: SocketAddr,
) -> std::io::Result<TcpStream> {
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::new(IpAddr::V4(local), 0))?;
        let stream = tokio::time::timeout(Duration::from_secs(2), socket.connect(to))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TCP connect timed out")
            })??;
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    })
}

#[test]
fn protos_c07_over_tcp_from_the_trunk() {
    let base = port_block(SALT);
    let mut sw = Switch::start("protos-tcp", base, rtp_ports(base), &[]);
    let cases = protos_cases();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let per_case = Duration::from_millis(5);
    let (mut written, mut closed_by_switch, mut connect_failures) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    for (idx, case) in cases.iter().enumerate() {
        if let Some(wait) = (start + per_case * idx as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // A fresh connection per case: the switch closes a connection it cannot frame, and a
        // case whose Content-Length exceeds its body would otherwise swallow the next case.
        let mut stream = match connect_from(&rt, TRUNK, sw.sip) {
            Ok(s) => s,
            Err(e) => {
                connect_failures += 1;
                if connect_failures > 3 {
                    fail_unresponsive(
                        &mut sw,
                        &format!(
                            "PROTOS TCP: cannot connect for case {:07}: {e}",
                            case.number
                        ),
                    );
                }
                continue;
            }
        };
        let port = stream.local_addr().map_or(0, |a| a.port());
        let fill = Placeholders {
            to: format!("201@{}", sw.sip),
            from: format!("protos@{TRUNK}"),
            from_ip: TRUNK,
            port,
            pass: "c",
        };
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        let mut ok = true;
        for template in [&case.invite, &case.teardown] {
            if stream.write_all(&fill.fill(template, case.number)).is_err() {
                ok = false;
                break;
            }
        }
        if ok {
            written += 1;
        } else {
            closed_by_switch += 1;
        }
        let _ = stream.shutdown(std::net::Shutdown::Write);
        drop(stream);
        if (idx + 1) % 50 == 0 && !probe(&sw) {
            fail_unresponsive(
                &mut sw,
                &format!(
                    "PROTOS TCP pass: no answer to OPTIONS after case {:07}",
                    case.number
                ),
            );
        }
    }
    let elapsed = start.elapsed();
    eprintln!(
        "PROTOS TCP from {TRUNK}: {} cases in {elapsed:?}, {written} written whole, {closed_by_switch} cut short by the switch, {connect_failures} connect failures",
        cases.len()
    );
    assert!(
        elapsed < Duration::from_secs(60),
        "the TCP pass took {elapsed:?}"
    );
    assert_alive_and_answering(&mut sw, "after the TCP pass");
    // The cases were read and judged, not just accepted by the kernel.
    let rejected = sw
        .metric("centralino_sip_rejected_malformed_total")
        .unwrap_or(0.0);
    let received = sw
        .metric("centralino_sip_messages_received_total")
        .unwrap_or(0.0);
    eprintln!("PROTOS TCP: switch received {received} messages, rejected {rejected} as malformed");
    assert!(
        rejected > 1_000.0 && received > 4_000.0,
        "the switch processed too few TCP cases:\n{}",
        sw.metrics_text()
    );
    // Every connection we closed is gone (no leaked connection tasks).
    let deadline = Instant::now() + Duration::from_secs(5);
    while sw.metric("centralino_tcp_connections").unwrap_or(f64::MAX) > 0.0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        sw.metric("centralino_tcp_connections"),
        Some(0.0),
        "TCP connections left open after the pass"
    );
    // TCP itself still works: an OPTIONS on a new connection is answered on it.
    let mut stream = connect_from(&rt, TRUNK, sw.sip)
        .unwrap_or_else(|e| panic!("TCP connect after the pass: {e}"));
    let port = stream.local_addr().map_or(0, |a| a.port());
    let branch = format!("z9hG4bKtcp{}", unique());
    let msg = format!(
        "OPTIONS sip:ping@{0} SIP/2.0\r\nVia: SIP/2.0/TCP {TRUNK}:{port};branch={branch}\r\nFrom: <sip:probe@{TRUNK}>;tag=t\r\nTo: <sip:ping@{0}>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        sw.sip
    );
    stream
        .write_all(msg.as_bytes())
        .expect("write OPTIONS over TCP");
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        match std::io::Read::read(&mut stream, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(
        status_of(&got),
        Some(200),
        "OPTIONS over TCP after the pass: {}",
        String::from_utf8_lossy(&got)
    );
}

// ---------------------------------------------------------------------------------------------
// Torture messages and real phones' messages
// ---------------------------------------------------------------------------------------------

/// What the switch must answer to one message.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// A final response with one of these codes.
    Status(&'static [u16]),
    /// A well-formed request the switch processes: any final response that is not a refusal
    /// of its syntax or an internal error (not 400, 416, 500, 505).
    Processed,
    /// The RFC allows rejecting or accepting: any final response (never silence).
    AnyFinal,
    /// A response or a keep-alive: nothing comes back.
    Silence,
}

use Expect::{AnyFinal, Processed, Silence, Status};

/// RFC 4475 (bit-exact) and RFC 5118 (§4) messages, sent unchanged from the trunk address.
/// Expectations from the RFC text as summarised in the corpus README; the switch is a B2BUA
/// that answers OPTIONS and REGISTER itself and routes INVITEs (here to nobody).
const TORTURE: &[(&str, Expect, &str)] = &[
    ("rfc4475/wsinv.dat", Processed, "3.1.1.1 valid"),
    (
        "rfc4475/intmeth.dat",
        Status(&[405, 501]),
        "3.1.1.2 unknown method",
    ),
    ("rfc4475/esc01.dat", Processed, "3.1.1.3 valid"),
    (
        "rfc4475/escnull.dat",
        Status(&[401]),
        "3.1.1.4 valid REGISTER, no credentials",
    ),
    (
        "rfc4475/esc02.dat",
        Status(&[405, 501]),
        "3.1.1.5 RE%47IST%45R is not REGISTER",
    ),
    (
        "rfc4475/lwsdisp.dat",
        Status(&[200]),
        "3.1.1.6 valid OPTIONS",
    ),
    ("rfc4475/longreq.dat", Processed, "3.1.1.7 valid"),
    (
        "rfc4475/dblreq.dat",
        Status(&[401]),
        "3.1.1.8 the REGISTER only; the trailing INVITE is ignored",
    ),
    (
        "rfc4475/semiuri.dat",
        Status(&[200]),
        "3.1.1.9 valid OPTIONS",
    ),
    (
        "rfc4475/transports.dat",
        Status(&[200]),
        "3.1.1.10 valid OPTIONS",
    ),
    (
        "rfc4475/mpart01.dat",
        Status(&[405]),
        "3.1.1.11 valid MESSAGE, a method the switch does not serve",
    ),
    ("rfc4475/unreason.dat", Silence, "3.1.1.12 response"),
    ("rfc4475/noreason.dat", Silence, "3.1.1.13 response"),
    ("rfc4475/badinv01.dat", Status(&[400]), "3.1.2.1"),
    (
        "rfc4475/clerr.dat",
        Status(&[400]),
        "3.1.2.2 Content-Length larger than the datagram",
    ),
    ("rfc4475/ncl.dat", Status(&[400]), "3.1.2.3"),
    ("rfc4475/scalar02.dat", Status(&[400]), "3.1.2.4"),
    ("rfc4475/scalarlg.dat", Silence, "3.1.2.5 response"),
    ("rfc4475/quotbal.dat", Status(&[400]), "3.1.2.6"),
    ("rfc4475/ltgtruri.dat", Status(&[400]), "3.1.2.7"),
    ("rfc4475/lwsruri.dat", Status(&[400]), "3.1.2.8"),
    ("rfc4475/lwsstart.dat", AnyFinal, "3.1.2.9 tolerate"),
    ("rfc4475/trws.dat", Status(&[200, 400]), "3.1.2.10 tolerate"),
    ("rfc4475/escruri.dat", AnyFinal, "3.1.2.11 tolerate"),
    (
        "rfc4475/baddate.dat",
        AnyFinal,
        "3.1.2.12 400, or a liberal element ignores Date",
    ),
    ("rfc4475/regbadct.dat", Status(&[400]), "3.1.2.13"),
    (
        "rfc4475/badaspec.dat",
        Status(&[200, 400]),
        "3.1.2.14 400, or liberal",
    ),
    (
        "rfc4475/baddn.dat",
        Status(&[200, 400]),
        "3.1.2.15 400, or liberal",
    ),
    ("rfc4475/badvers.dat", Status(&[505]), "3.1.2.16"),
    ("rfc4475/mismatch01.dat", Status(&[400]), "3.1.2.17"),
    ("rfc4475/mismatch02.dat", Status(&[400]), "3.1.2.18"),
    ("rfc4475/bigcode.dat", Silence, "3.1.2.19 response"),
    (
        "rfc4475/badbranch.dat",
        Status(&[200]),
        "3.2.1 valid OPTIONS",
    ),
    ("rfc4475/insuf.dat", Status(&[400]), "3.3.1"),
    ("rfc4475/unkscm.dat", Status(&[416]), "3.3.2"),
    ("rfc4475/novelsc.dat", Status(&[416]), "3.3.3"),
    (
        "rfc4475/unksm2.dat",
        Status(&[400, 401]),
        "3.3.4 a registrar refuses a non-SIP To with 400 (or challenges first)",
    ),
    (
        "rfc4475/bext01.dat",
        Status(&[420]),
        "3.3.5 Require: an unknown extension -> 420 + Unsupported",
    ),
    ("rfc4475/invut.dat", Status(&[415]), "3.3.6"),
    (
        "rfc4475/regaut01.dat",
        Status(&[401]),
        "3.3.7 own Digest challenge",
    ),
    ("rfc4475/multi01.dat", Status(&[400]), "3.3.8"),
    ("rfc4475/mcl01.dat", Status(&[400]), "3.3.9"),
    (
        "rfc4475/bcast.dat",
        Silence,
        "3.3.10 response; never send to broadcast",
    ),
    (
        "rfc4475/zeromf.dat",
        Status(&[200, 483]),
        "3.3.11 OPTIONS to a UAS: answered (a proxy: 483)",
    ),
    (
        "rfc4475/cparam01.dat",
        Status(&[401]),
        "3.3.12 valid REGISTER",
    ),
    (
        "rfc4475/cparam02.dat",
        Status(&[401]),
        "3.3.13 valid REGISTER",
    ),
    (
        "rfc4475/regescrt.dat",
        Status(&[401]),
        "3.3.14 valid REGISTER",
    ),
    ("rfc4475/sdp01.dat", Status(&[406]), "3.3.15"),
    ("rfc4475/inv2543.dat", Processed, "3.4.1 RFC 2543 syntax"),
    (
        "rfc5118/ipv6-good.sip",
        Status(&[401]),
        "4.1 valid REGISTER",
    ),
    (
        "rfc5118/ipv6-bad.sip",
        Status(&[400]),
        "4.2 IPv6 Request-URI without brackets",
    ),
    (
        "rfc5118/port-ambiguous.sip",
        Status(&[401]),
        "4.3 valid REGISTER",
    ),
    (
        "rfc5118/port-unambiguous.sip",
        Status(&[401]),
        "4.4 valid REGISTER",
    ),
    (
        "rfc5118/via-received-param-with-delim.sip",
        Status(&[481]),
        "4.5 valid BYE, no such dialog",
    ),
    (
        "rfc5118/via-received-param-no-delim.sip",
        Status(&[200]),
        "4.5 valid OPTIONS",
    ),
    ("rfc5118/ipv6-in-sdp.sip", Processed, "4.6 valid INVITE"),
    (
        "rfc5118/mult-ip-in-header.sip",
        Status(&[481]),
        "4.7 valid BYE, no such dialog",
    ),
    ("rfc5118/mult-ip-in-sdp.sip", Processed, "4.8 valid INVITE"),
    (
        "rfc5118/ipv4-mapped-ipv6.sip",
        Processed,
        "4.9 valid INVITE",
    ),
    (
        "rfc5118/ipv6-bug-abnf-3-colons.sip",
        Status(&[200]),
        "4.10 must tolerate",
    ),
    (
        "rfc5118/ipv6-correct-abnf-2-colons.sip",
        Status(&[200]),
        "4.10 valid OPTIONS",
    ),
    (
        "rfc5118/archive-variant-ipv6-bug-abnf-3-colons.lf.dat",
        Status(&[200]),
        "4.10 archive variant, must tolerate",
    ),
];

/// Real phones' messages (sip-realmsgs/SOURCES.md): requests get their Request-URI host and
/// top Via rewritten to loopback; responses and the keep-alive are sent as they are.
const REAL: &[(&str, Expect, &str)] = &[
    (
        "3com-phone_register_compact-headers.sip",
        Status(&[401]),
        "REGISTER, compact headers, no Content-Length",
    ),
    (
        "cisco-ios12-gateway_invite_isdn-ds0num.sip",
        Processed,
        "gateway INVITE",
    ),
    (
        "cisco-ios15.5-gateway_invite_repeated-allow-supported.sip",
        Processed,
        "gateway INVITE, repeated Allow/Supported",
    ),
    (
        "cisco-tandberg-ex60_register_multipart-remotecc.sip",
        Status(&[401]),
        "REGISTER with a multipart body",
    ),
    (
        "freeswitch-dcm_200-compact-headers.sip",
        Silence,
        "stray 200",
    ),
    (
        "freeswitch-dcm_401-compact-headers.sip",
        Silence,
        "stray 401",
    ),
    (
        "imagecom-crash_options_tcp.sip",
        Status(&[200]),
        "minimal OPTIONS",
    ),
    ("cisco-c60-crash_4xCRLF.bin", Silence, "CRLF keep-alive"),
    (
        "polycom-realpresence-group500_register_tcp-ms-headers.sip",
        Status(&[401]),
        "REGISTER, underscore header names",
    ),
    ("polycom-vvx350_401-challenge.sip", Silence, "stray 401"),
    (
        "polycom-vvx350_register-authorized.sip",
        Status(&[401]),
        "REGISTER with another registrar's credentials",
    ),
    (
        "polycom-vvx350_register-with-stale-auth.sip",
        Status(&[401]),
        "REGISTER with a foreign stale nonce",
    ),
    (
        "polycom-vvx450_invite_HEADERS-ONLY_body-missing.sip",
        Status(&[400]),
        "Content-Length 352, no body",
    ),
    (
        "yealink-t27g_register-initial.sip",
        Status(&[401]),
        "REGISTER",
    ),
    (
        "yealink-t27g_register-authorized.sip",
        Status(&[401]),
        "REGISTER with another registrar's credentials",
    ),
    // IMS/VoLTE flow: the REGISTERs carry `Require: path`, which a registrar without Path
    // support may refuse with 420 instead of challenging; in-dialog requests find no dialog.
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_reg_register",
        Status(&[401, 420]),
        "IMS REGISTER, Require: path",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_reg_register_100",
        Silence,
        "response",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_reg_register_401",
        Silence,
        "response",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_reg_register_auth",
        Status(&[401, 420]),
        "IMS REGISTER with AKA-style credentials",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_reg_register_auth_100",
        Silence,
        "response",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_reg_register_auth_200",
        Silence,
        "response",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_sub_subscribe",
        Status(&[400, 405, 489, 501]),
        "SUBSCRIBE (Request-URI `sip:sip:...`)",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_sub_subscribe_200",
        Silence,
        "response",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_sub_notify",
        Status(&[481]),
        "NOTIFY in an unknown dialog",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_sub_notify_200",
        Silence,
        "response",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_call_invite",
        Processed,
        "VoLTE INVITE",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_call_invite_100",
        Silence,
        "response",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_call_invite_183",
        Silence,
        "response",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_call_183_prack",
        Status(&[481]),
        "PRACK in an unknown dialog",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_call_183_prack_200",
        Silence,
        "response",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_call_update",
        Status(&[481]),
        "UPDATE in an unknown dialog",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_call_update_200",
        Silence,
        "response",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_call_invite_180",
        Silence,
        "response",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_call_180_prack",
        Status(&[481]),
        "PRACK in an unknown dialog",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_call_180_prack_200",
        Silence,
        "response",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_call_invite_200",
        Silence,
        "response",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_call_ack",
        Silence,
        "ACK is never answered",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_call_bye",
        Status(&[481]),
        "BYE in an unknown dialog",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_call_bye_200",
        Silence,
        "response",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_reg_message",
        Status(&[405]),
        "MESSAGE, a method the switch does not serve",
    ),
    (
        "lioneagle-sipparser_ims-volte-flows.txt:sip_flow_reg_message_200",
        Silence,
        "response",
    ),
];

/// What came back for one message: every datagram, in order.
struct Answer {
    datagrams: Vec<Vec<u8>>,
}

impl Answer {
    /// The first final status, or the provisional ones, or `silence`.
    fn summary(&self) -> String {
        let codes: Vec<u16> = self.datagrams.iter().filter_map(|d| status_of(d)).collect();
        match codes.iter().find(|&&c| c >= 200) {
            Some(c) => c.to_string(),
            None if codes.is_empty() && self.datagrams.is_empty() => "silence".to_owned(),
            None if codes.is_empty() => format!("{} non-SIP datagram(s)", self.datagrams.len()),
            None => format!("only provisional {codes:?}"),
        }
    }

    fn final_status(&self) -> Option<u16> {
        self.datagrams
            .iter()
            .filter_map(|d| status_of(d))
            .find(|&c| c >= 200)
    }

    /// Headers the final response must carry and does not: RFC 3261 §21.4 (401
    /// WWW-Authenticate, 405 Allow, 407 Proxy-Authenticate, 415 Accept, 420 Unsupported) and
    /// the switch's own rule that a syntax 400 says why in a Warning.
    fn missing_headers(&self, expect: Expect) -> Vec<&'static str> {
        let Some(last) = self
            .datagrams
            .iter()
            .find(|d| status_of(d).is_some_and(|c| c >= 200))
        else {
            return Vec::new();
        };
        let text = String::from_utf8_lossy(last);
        let required: &[&'static str] = match status_of(last) {
            Some(400) if matches!(expect, Status(&[400])) => &["Warning"],
            Some(401) => &["WWW-Authenticate"],
            Some(405) => &["Allow"],
            Some(407) => &["Proxy-Authenticate"],
            Some(415) => &["Accept"],
            Some(420) => &["Unsupported"],
            _ => &[],
        };
        required
            .iter()
            .copied()
            .filter(|h| header(&text, &[h]).is_none())
            .collect()
    }

    fn matches(&self, expect: Expect) -> bool {
        match expect {
            Status(codes) => self.final_status().is_some_and(|c| codes.contains(&c)),
            Processed => self
                .final_status()
                .is_some_and(|c| !matches!(c, 400 | 416 | 500 | 505)),
            AnyFinal => self.final_status().is_some(),
            Silence => self.datagrams.is_empty(),
        }
    }
}

/// Sends each message from its own socket on the trunk address, 10 ms apart, then collects
/// what came back to each socket.
fn send_all(sw: &Switch, messages: &[&[u8]], want_final: &[bool]) -> Vec<Answer> {
    let sockets: Vec<UdpSocket> = messages.iter().map(|_| bind_udp(TRUNK)).collect();
    for (sock, msg) in sockets.iter().zip(messages) {
        sock.send_to(msg, sw.sip)
            .unwrap_or_else(|e| panic!("send {} bytes: {e}", msg.len()));
        std::thread::sleep(Duration::from_millis(10));
    }
    collect_answers(&sockets, want_final)
}

/// Reads every socket until each that `want_final` names has a final response (3 s at most),
/// and for at least 400 ms: long enough for an immediate answer to anything, short of the
/// first retransmission of a request.
fn collect_answers(sockets: &[UdpSocket], want_final: &[bool]) -> Vec<Answer> {
    let quiet = Instant::now() + Duration::from_millis(400);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut answers: Vec<Answer> = sockets
        .iter()
        .map(|_| Answer {
            datagrams: Vec::new(),
        })
        .collect();
    let mut buf = vec![0u8; 65_536];
    loop {
        for (sock, answer) in sockets.iter().zip(&mut answers) {
            let _ = sock.set_nonblocking(true);
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                answer.datagrams.push(buf[..n].to_vec());
            }
        }
        let pending = answers
            .iter()
            .zip(want_final)
            .any(|(a, &w)| w && a.final_status().is_none());
        let now = Instant::now();
        if now >= deadline || (!pending && now >= quiet) {
            return answers;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The RFC 3261 §17.2.3 server-transaction key of a request sent unchanged: top Via branch,
/// sent-by and method (ACK as INVITE). Several torture messages share one (e.g. RFC 5118's
/// `z9hG4bKas3-111` from `[2001:db8::9:1]`), and the switch rightly takes the second for a
/// retransmission of the first, answered to the first's source. Such messages go to
/// different switches.
fn transaction_key(msg: &[u8]) -> Option<(String, String, String)> {
    let text = String::from_utf8_lossy(msg);
    let method = text.split_whitespace().next()?;
    let method = if method == "ACK" { "INVITE" } else { method };
    let via = header(&text, &["Via", "v"])?;
    let after_protocol = via.split_once(char::is_whitespace)?.1.trim_start();
    let sent_by = after_protocol
        .split([';', ','])
        .next()?
        .trim()
        .to_ascii_lowercase();
    let branch = via
        .split([';', ','])
        .find_map(|p| p.trim().strip_prefix("branch="))?
        .to_owned();
    Some((branch, sent_by, method.to_owned()))
}

/// Groups message indices into rounds in which no two share a transaction key.
fn rounds_without_shared_transactions(messages: &[Vec<u8>]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<(Vec<usize>, Vec<(String, String, String)>)> = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let key = transaction_key(msg);
        match rounds
            .iter_mut()
            .find(|(_, keys)| key.as_ref().is_none_or(|k| !keys.contains(k)))
        {
            Some((idx, keys)) => {
                idx.push(i);
                keys.extend(key);
            }
            None => rounds.push((vec![i], key.into_iter().collect())),
        }
    }
    rounds.into_iter().map(|(idx, _)| idx).collect()
}

fn describe(expect: Expect) -> String {
    match expect {
        Status(codes) => codes
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" or "),
        Processed => "a final response (processed: not 400/416/500/505)".to_owned(),
        AnyFinal => "any final response".to_owned(),
        Silence => "no answer".to_owned(),
    }
}

#[test]
fn torture_messages_get_the_rfc_answer_over_udp() {
    let base = port_block(SALT);
    let mut sw = Switch::start("torture", base, rtp_ports(base), &[]);
    let root = shared().join("sip-torture");
    // Every corpus file is in the table.
    let mut problems = Vec::new();
    for sub in ["rfc4475", "rfc5118"] {
        let entries = std::fs::read_dir(root.join(sub))
            .unwrap_or_else(|e| panic!("{}: {e} (CENTRALINO_SHARED?)", root.join(sub).display()));
        for entry in entries.flatten() {
            let name = format!("{sub}/{}", entry.file_name().to_string_lossy());
            if !TORTURE.iter().any(|(f, ..)| *f == name) {
                problems.push(format!("{name}: not in the expected-status table"));
            }
        }
    }
    let messages: Vec<Vec<u8>> = TORTURE
        .iter()
        .map(|(f, ..)| std::fs::read(root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")))
        .collect();
    let mut answers: Vec<Option<Answer>> = messages.iter().map(|_| None).collect();
    let rounds = rounds_without_shared_transactions(&messages);
    for (n, round) in rounds.iter().enumerate() {
        let mut round_sw;
        let sw = if n == 0 {
            &mut sw
        } else {
            let base = port_block(SALT);
            round_sw = Switch::start(&format!("torture{n}"), base, rtp_ports(base), &[]);
            &mut round_sw
        };
        let batch: Vec<&[u8]> = round.iter().map(|&i| messages[i].as_slice()).collect();
        let want_final: Vec<bool> = round
            .iter()
            .map(|&i| !matches!(TORTURE[i].1, Silence))
            .collect();
        for (&i, answer) in round.iter().zip(send_all(sw, &batch, &want_final)) {
            answers[i] = Some(answer);
        }
        if sw.log().lines().any(|l| l.contains("to=255.255.255.255")) {
            problems
                .push("rfc4475/bcast.dat: the switch tried to send to 255.255.255.255".to_owned());
        }
        assert_alive_and_answering(sw, &format!("after the torture messages (round {n})"));
    }
    let mut table = String::new();
    for ((file, expect, why), answer) in TORTURE.iter().zip(answers.iter().flatten()) {
        table.push_str(&format!("  {file:<55} {}\n", answer.summary()));
        if !answer.matches(*expect) {
            problems.push(format!(
                "{file}: expected {}, got {} ({why})",
                describe(*expect),
                answer.summary()
            ));
        }
        for missing in answer.missing_headers(*expect) {
            problems.push(format!(
                "{file}: the {} has no {missing} header ({why})",
                answer.summary()
            ));
        }
        // dblreq: the INVITE after the REGISTER's body is trailing junk, never a request.
        if file.ends_with("dblreq.dat")
            && answer
                .datagrams
                .iter()
                .any(|d| cseq_method(d).as_deref() == Some("INVITE"))
        {
            problems.push(format!("{file}: the trailing INVITE was answered ({why})"));
        }
    }
    eprintln!(
        "torture over UDP ({} switches, one per set of messages with distinct transaction keys), first final status per message:\n{table}",
        rounds.len()
    );
    assert!(
        problems.is_empty(),
        "{} torture message(s) answered differently from the RFC:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// How a torture message fares over TCP where framing, not the datagram, delimits it
/// (RFC 4475's stream remarks; the rest behave as over UDP).
#[derive(Clone, Copy, Debug, PartialEq)]
enum OverTcp {
    /// As over UDP.
    Same,
    /// Content-Length promises more bytes: no answer, the connection stays open.
    Waits,
    /// Unframeable: the connection is closed (a 400 first is fine).
    Closes,
    /// No stream behaviour is required (no Content-Length or bare LF): anything but a crash.
    Tolerated,
}

fn over_tcp(file: &str) -> OverTcp {
    match file {
        "rfc4475/clerr.dat" => OverTcp::Waits,
        "rfc4475/baddn.dat" => OverTcp::Waits, // no empty line after the headers
        "rfc4475/ncl.dat" | "rfc4475/mcl01.dat" => OverTcp::Closes,
        "rfc4475/inv2543.dat" | "rfc5118/archive-variant-ipv6-bug-abnf-3-colons.lf.dat" => {
            OverTcp::Tolerated
        }
        _ => OverTcp::Same,
    }
}

/// What came back on a TCP connection: the responses (split at each `SIP/2.0 ` that starts
/// a line) and whether the switch closed it.
fn tcp_answer(bytes: &[u8], closed: bool) -> (Answer, bool) {
    let starts: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i..].starts_with(b"SIP/2.0 ") && (i == 0 || bytes[i - 1] == b'\n'))
        .collect();
    let mut datagrams = Vec::new();
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(bytes.len());
        datagrams.push(bytes[start..end].to_vec());
    }
    if starts.is_empty() && !bytes.is_empty() {
        datagrams.push(bytes.to_vec()); // e.g. a CRLF pong
    }
    (Answer { datagrams }, closed)
}

#[test]
fn torture_messages_over_tcp_are_framed_or_refused() {
    let root = shared().join("sip-torture");
    let messages: Vec<Vec<u8>> = TORTURE
        .iter()
        .map(|(f, ..)| std::fs::read(root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut problems = Vec::new();
    let mut table = String::new();
    for (n, round) in rounds_without_shared_transactions(&messages)
        .iter()
        .enumerate()
    {
        let base = port_block(SALT);
        let mut sw = Switch::start(&format!("torture-tcp{n}"), base, rtp_ports(base), &[]);
        let mut streams = Vec::new();
        for &i in round {
            let mut stream = connect_from(&rt, TRUNK, sw.sip)
                .unwrap_or_else(|e| panic!("connect for {}: {e}", TORTURE[i].0));
            stream
                .write_all(&messages[i])
                .unwrap_or_else(|e| panic!("write {}: {e}", TORTURE[i].0));
            let _ = stream.set_nonblocking(true);
            streams.push((i, stream, Vec::new(), false));
        }
        // Read until every message that needs an answer has one (3 s at most), and 600 ms
        // at least, so that a connection that should wait is seen waiting.
        let quiet = Instant::now() + Duration::from_millis(600);
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 16_384];
        loop {
            for (_, stream, got, closed) in streams.iter_mut().filter(|s| !s.3) {
                loop {
                    match std::io::Read::read(stream, &mut buf) {
                        Ok(0) => {
                            *closed = true;
                            break;
                        }
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            *closed = true;
                            break;
                        }
                    }
                }
            }
            let pending = streams.iter().any(|(i, _, got, closed)| {
                !closed
                    && over_tcp(TORTURE[*i].0) == OverTcp::Same
                    && !matches!(TORTURE[*i].1, Silence)
                    && tcp_answer(got, false).0.final_status().is_none()
            });
            let now = Instant::now();
            if now >= deadline || (!pending && now >= quiet) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for (i, _, got, closed) in &streams {
            let (file, expect, why) = TORTURE[*i];
            let (answer, closed) = tcp_answer(got, *closed);
            let summary = format!(
                "{}{}",
                answer.summary(),
                if closed { ", closed" } else { "" }
            );
            table.push_str(&format!("  {file:<55} {summary}\n"));
            let ok = match over_tcp(file) {
                OverTcp::Same => answer.matches(expect),
                OverTcp::Waits => answer.final_status().is_none() && !closed,
                OverTcp::Closes => closed,
                OverTcp::Tolerated => true,
            };
            if !ok {
                let wanted = match over_tcp(file) {
                    OverTcp::Same => describe(expect),
                    OverTcp::Waits => {
                        "no answer and the connection kept open (waiting for the body)".to_owned()
                    }
                    OverTcp::Closes => "the connection closed".to_owned(),
                    OverTcp::Tolerated => unreachable!("always ok"),
                };
                problems.push(format!(
                    "{file} over TCP: expected {wanted}, got {summary} ({why})"
                ));
            }
        }
        assert_alive_and_answering(
            &mut sw,
            &format!("after the torture messages over TCP (round {n})"),
        );
    }
    eprintln!("torture over TCP, first final status per message:\n{table}");
    assert!(
        problems.is_empty(),
        "{} torture message(s) over TCP handled differently from the RFC:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Splits the lioneagle file into `(name, message)`: line ends normalised to CRLF, records
/// separated by lines of `=`, each `name = "..."`, empty lines, then the message lines.
fn lioneagle_records(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let text = String::from_utf8_lossy(bytes)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    let flush = |current: &mut Option<(String, Vec<&str>)>, out: &mut Vec<(String, Vec<u8>)>| {
        if let Some((name, mut lines)) = current.take() {
            let start = lines
                .iter()
                .position(|l| !l.is_empty())
                .unwrap_or(lines.len());
            lines.drain(..start);
            out.push((name, lines.join("\r\n").into_bytes()));
        }
    };
    for line in text.split('\n') {
        if line.len() >= 3 && line.bytes().all(|b| b == b'=') {
            flush(&mut current, &mut out);
        } else if let Some(name) = line
            .strip_prefix("name = \"")
            .and_then(|r| r.strip_suffix('"'))
            .filter(|_| current.is_none())
        {
            current = Some((name.to_owned(), Vec::new()));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    flush(&mut current, &mut out);
    out
}

/// `scheme:user@host;params` with the host (and port) replaced by `host`.
fn rewrite_uri_host(uri: &str, host: &str) -> String {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return uri.to_owned();
    };
    let (user, hostport) = match rest.rfind('@') {
        Some(at) => (&rest[..=at], &rest[at + 1..]),
        None => ("", rest),
    };
    let end = if hostport.starts_with('[') {
        let close = hostport.find(']').map_or(hostport.len(), |i| i + 1);
        close
            + hostport[close..]
                .find([';', '?', '>'])
                .unwrap_or(hostport.len() - close)
    } else {
        hostport.find([';', '?', '>']).unwrap_or(hostport.len())
    };
    format!("{scheme}:{user}{host}{}", &hostport[end..])
}

/// A request with its Request-URI host set to the switch and its top Via sent-by to
/// `sent_by` over UDP (SOURCES.md: never send to the published addresses).
fn rewrite_request(msg: &[u8], switch: SocketAddr, sent_by: &str) -> Vec<u8> {
    let split = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(msg.len(), |p| p + 2);
    let (head, rest) = msg.split_at(split);
    let head = String::from_utf8_lossy(head);
    let mut lines: Vec<String> = head.split("\r\n").map(str::to_owned).collect();
    if let Some(first) = lines.first_mut() {
        let parts: Vec<&str> = first.splitn(3, ' ').collect();
        if let [method, uri, version] = parts[..] {
            *first = format!(
                "{method} {} {version}",
                rewrite_uri_host(uri, &switch.to_string())
            );
        }
    }
    if let Some(via) = lines.iter_mut().skip(1).find(|l| {
        l.split_once(':').is_some_and(|(n, _)| {
            n.trim().eq_ignore_ascii_case("via") || n.trim().eq_ignore_ascii_case("v")
        })
    }) {
        let (name, value) = via.split_once(':').expect("checked above");
        // value: ` SIP/2.0/UDP host:port;params[,more]`
        let value = value.trim_start();
        let after_protocol = value.find(char::is_whitespace).map_or(value.len(), |i| i);
        let sent_by_start = after_protocol + value[after_protocol..].len()
            - value[after_protocol..].trim_start().len();
        let tail = &value[sent_by_start..];
        let sent_by_end = tail.find([';', ',']).unwrap_or(tail.len());
        *via = format!("{name}: SIP/2.0/UDP {sent_by}{}", &tail[sent_by_end..]);
    }
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(rest);
    out
}

#[test]
fn real_phone_messages_get_sensible_answers_over_udp() {
    let base = port_block(SALT);
    let mut sw = Switch::start("realmsgs", base, rtp_ports(base), &[]);
    let dir = shared().join("sip-realmsgs");
    let lioneagle = lioneagle_records(
        &std::fs::read(dir.join("lioneagle-sipparser_ims-volte-flows.txt"))
            .expect("lioneagle file"),
    );
    let mut problems = Vec::new();
    for (name, _) in &lioneagle {
        if !REAL
            .iter()
            .any(|(f, ..)| f.split_once(':').is_some_and(|(_, r)| r == name))
        {
            problems.push(format!(
                "lioneagle record {name}: not in the expected-answer table"
            ));
        }
    }
    // Each message goes out from its own socket; the Via names it, although the switch
    // answers the source address anyway.
    let sockets: Vec<UdpSocket> = REAL.iter().map(|_| bind_udp(TRUNK)).collect();
    let mut messages = Vec::new();
    for ((entry, ..), sock) in REAL.iter().zip(&sockets) {
        let bytes = match entry.split_once(':') {
            Some((_, record)) => lioneagle
                .iter()
                .find(|(n, _)| n == record)
                .map(|(_, m)| m.clone())
                .unwrap_or_else(|| panic!("no record {record}")),
            None => std::fs::read(dir.join(entry)).unwrap_or_else(|e| panic!("{entry}: {e}")),
        };
        let is_request =
            status_of(&bytes).is_none() && bytes.first().is_some_and(u8::is_ascii_alphabetic);
        let sent_by = sock.local_addr().expect("local address").to_string();
        messages.push(if is_request {
            rewrite_request(&bytes, sw.sip, &sent_by)
        } else {
            bytes
        });
    }
    for (sock, msg) in sockets.iter().zip(&messages) {
        sock.send_to(msg, sw.sip)
            .unwrap_or_else(|e| panic!("send: {e}"));
        std::thread::sleep(Duration::from_millis(10));
    }
    let want_final: Vec<bool> = REAL.iter().map(|(_, e, _)| !matches!(e, Silence)).collect();
    let answers = collect_answers(&sockets, &want_final);
    let mut table = String::new();
    for ((entry, expect, why), answer) in REAL.iter().zip(&answers) {
        table.push_str(&format!("  {entry:<75} {}\n", answer.summary()));
        if !answer.matches(*expect) {
            problems.push(format!(
                "{entry}: expected {}, got {} ({why})",
                describe(*expect),
                answer.summary()
            ));
        }
        for missing in answer.missing_headers(*expect) {
            problems.push(format!(
                "{entry}: the {} has no {missing} header ({why})",
                answer.summary()
            ));
        }
    }
    eprintln!("real phones' messages over UDP, first final status per message:\n{table}");
    assert_alive_and_answering(&mut sw, "after the real phones' messages");
    assert!(
        problems.is_empty(),
        "{} real message(s) answered unexpectedly:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Abuse: wrong passwords and a junk flood while a trunk call goes through
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct GuessReport {
    attempts: usize,
    /// Wrong passwords answered (401) before the source was penalised.
    refused: usize,
    /// Attempt at which the switch went silent.
    silent_from: Option<usize>,
    /// Answers that arrived after the switch went silent.
    answered_after: usize,
    /// Any answer other than 401 to a wrong password.
    odd: Vec<String>,
}

/// The MD5 challenge's parameters from a 401.
fn md5_challenge(response: &str) -> Option<BTreeMap<String, String>> {
    let head = response.split("\r\n\r\n").next().unwrap_or(response);
    let value = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find_map(|(n, v)| {
            (n.trim().eq_ignore_ascii_case("WWW-Authenticate") && v.contains("algorithm=MD5"))
                .then_some(v.trim())
        })?;
    let params = value.strip_prefix("Digest")?;
    Some(
        params
            .split(',')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| {
                (
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_owned(),
                )
            })
            .collect(),
    )
}

/// `n` REGISTERs for extension 202 from `from`, each with a real MD5 digest computed with a
/// wrong password against a fresh challenge (or, once the switch stays silent, the last one).
fn guess_passwords(to: SocketAddr, from: Ipv4Addr, n: usize) -> GuessReport {
    let sock = bind_udp(from);
    let port = sock.local_addr().expect("local address").port();
    let call_id = format!("guess{}", unique());
    let uri = format!("sip:{to}");
    let mut report = GuessReport {
        attempts: n,
        ..GuessReport::default()
    };
    let mut challenge: Option<BTreeMap<String, String>> = None;
    let mut cseq = 0u32;
    let register = |auth: Option<String>, cseq: u32| -> String {
        let branch = format!("z9hG4bKguess{}", unique());
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let msg = format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {from}:{port};branch={branch}\r\nFrom: <sip:202@{to}>;tag=g{port}\r\nTo: <sip:202@{to}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:202@{from}:{port}>\r\n{auth}Max-Forwards: 70\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = sock.send_to(msg.as_bytes(), to);
        branch
    };
    let answer = |branch: &str| {
        wait_for(&sock, Duration::from_secs(2), |b| {
            String::from_utf8_lossy(b).contains(branch)
        })
        .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    for attempt in 0..n {
        let silent = report.silent_from.is_some();
        if !silent {
            cseq += 1;
            let branch = register(None, cseq);
            match answer(&branch) {
                Some(resp) => match md5_challenge(&resp) {
                    Some(c) => challenge = Some(c),
                    None => report.odd.push(format!(
                        "attempt {attempt}: unauthenticated REGISTER answered {}",
                        resp.lines().next().unwrap_or("")
                    )),
                },
                None => report.silent_from = Some(attempt),
            }
        }
        let Some(c) = challenge.as_ref() else {
            panic!("no MD5 challenge to a REGISTER from {from} (attempt {attempt})")
        };
        let (realm, nonce) = (
            c.get("realm").cloned().unwrap_or_default(),
            c.get("nonce").cloned().unwrap_or_default(),
        );
        let cnonce = format!("{attempt:08x}");
        let ha1 = registrar::ha1_md5("202", &realm, "certainly-not-pw202");
        let qop = registrar::QopAuth {
            nc: "00000001",
            cnonce: &cnonce,
        };
        let response = registrar::compute_response(
            registrar::Algorithm::Md5,
            &ha1,
            &nonce,
            "REGISTER",
            &uri,
            Some(qop),
        );
        let opaque = c
            .get("opaque")
            .map(|o| format!(", opaque=\"{o}\""))
            .unwrap_or_default();
        let auth = format!(
            "Digest username=\"202\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\"{opaque}"
        );
        cseq += 1;
        let branch = register(Some(auth), cseq);
        if report.silent_from.is_none() {
            match answer(&branch) {
                Some(resp) if status_of(resp.as_bytes()) == Some(401) => report.refused += 1,
                Some(resp) => report.odd.push(format!(
                    "attempt {attempt}: wrong password answered {}",
                    resp.lines().next().unwrap_or("")
                )),
                None => report.silent_from = Some(attempt),
            }
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    report.answered_after = drain(&sock, Duration::from_millis(300)).len();
    report
}

/// Junk for the flood: datagram `i` of phase `penalisable` (malformed requests the switch
/// answers 400 and counts against the source) or not (garbage and broken responses, which it
/// only drops, so it keeps parsing them).
fn junk(i: usize, port: u16, to: SocketAddr, penalisable: bool, rng: &mut u64) -> Vec<u8> {
    let mut next = || {
        // xorshift64: deterministic junk
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    if penalisable {
        return match i % 3 {
            0 => format!("INVITE sip:201@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {FLOODER}:{port};branch=z9hG4bKfl{i}\r\nContent-Length: -7\r\n\r\n").into_bytes(),
            1 => format!("OPTIONS sip:x@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {FLOODER}:{port};branch=z9hG4bKfl{i}\r\nCSeq: 1 REGISTER\r\n\r\n").into_bytes(),
            _ => format!("REGISTER <sip:{to}> SIP/2.0\r\nVia: SIP/2.0/UDP {FLOODER}:{port};branch=z9hG4bKfl{i}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: fl{i}\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n").into_bytes(),
        };
    }
    match i % 4 {
        0 => (0..(next() % 1_200 + 1)).map(|_| next() as u8).collect(),
        1 => format!(
            "SIP/2.0 4294967301 flood\r\nVia: SIP/2.0/UDP {to};branch=z9hG4bK{i}\r\nCSeq: x\r\n\r\n"
        )
        .into_bytes(),
        2 => {
            let mut b = format!("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {to};branch=z9hG4bKfl{i}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: fl{i}\r\nCSeq: 1 INVITE\r\nContent-Length: 5000\r\n\r\n").into_bytes();
            b.extend((0..(next() % 200)).map(|_| next() as u8));
            b
        }
        _ => {
            let mut b = b"\r\n\r\n\xff\xfe INVITE\x00sip:".to_vec();
            b.extend((0..(next() % 600)).map(|_| next() as u8 | 0x80));
            b
        }
    }
}

#[derive(Debug, Default)]
struct FloodReport {
    sent: usize,
    send_errors: usize,
    elapsed: Duration,
}

/// `rate` datagrams a second for `duration` from FLOODER: garbage and broken responses for the
/// first half, malformed requests for the second (the switch then penalises the source).
fn flood(to: SocketAddr, rate: usize, duration: Duration) -> FloodReport {
    let sock = bind_udp(FLOODER);
    let _ = sock.set_nonblocking(true);
    let port = sock.local_addr().expect("local address").port();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut report = FloodReport::default();
    let total = rate * duration.as_secs() as usize;
    let start = Instant::now();
    let tick = Duration::from_millis(5);
    let per_tick = rate * tick.as_millis() as usize / 1000;
    let mut buf = [0u8; 2048];
    while report.sent + report.send_errors < total
        && start.elapsed() < duration + Duration::from_secs(5)
    {
        let due =
            ((start.elapsed().as_millis() as usize / tick.as_millis() as usize) + 1) * per_tick;
        while report.sent + report.send_errors < due.min(total) {
            let i = report.sent + report.send_errors;
            let bytes = junk(i, port, to, i >= total / 2, &mut rng);
            match sock.send_to(&bytes, to) {
                Ok(_) => report.sent += 1,
                Err(_) => report.send_errors += 1,
            }
        }
        while sock.recv_from(&mut buf).is_ok() {} // the 400s, unread otherwise
        std::thread::sleep(tick);
    }
    report.elapsed = start.elapsed();
    report
}

#[test]
fn abuse_wrong_passwords_and_a_junk_flood_do_not_stop_a_trunk_call() {
    let base = port_block(SALT);
    let mut sw = Switch::start("abuse", base, rtp_ports(base), &[]);
    let (phone_port, trunk_port) = (base + 2, base + 3);
    let reg = register(&sw, "201", "pw201", base + 4, phone_port);
    assert!(
        reg.success,
        "phone registration failed:\n{}\n--- switch log ---\n{}",
        reg.output,
        log_tail(&sw, 40)
    );

    // The phone answers two calls; the trunk places one early in each half of the flood.
    let phone_args = args(&[
        "-sn",
        "uas",
        "-p",
        &phone_port.to_string(),
        "-i",
        "127.0.0.1",
        "-mp",
        &(base + 6).to_string(),
        "-m",
        "2",
        "-timeout",
        "30",
    ]);
    let phone = std::thread::spawn(move || sipp(&phone_args, Duration::from_secs(35)));
    std::thread::sleep(Duration::from_millis(300));

    let flood_secs = Duration::from_secs(10);
    let done = Arc::new(AtomicBool::new(false));
    let flood_started = Instant::now();
    let flooder = {
        let to = sw.sip;
        std::thread::spawn(move || flood(to, 2_000, flood_secs))
    };
    let guesser = {
        let to = sw.sip;
        std::thread::spawn(move || guess_passwords(to, GUESSER, 1_000))
    };
    // Probes from 127.0.0.1 and from the trunk every 250 ms while the abuse lasts.
    let missed = Arc::new(Mutex::new(Vec::<String>::new()));
    let prober = {
        let (to, done, missed) = (sw.sip, Arc::clone(&done), Arc::clone(&missed));
        std::thread::spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                let t = flood_started.elapsed();
                if !(0..3).any(|_| options_ping(to, Duration::from_millis(1000))) {
                    missed
                        .lock()
                        .expect("lock")
                        .push(format!("127.0.0.1 at {t:.1?}"));
                }
                if !(0..3).any(|_| options_from(TRUNK, to, Duration::from_millis(1000))) {
                    missed
                        .lock()
                        .expect("lock")
                        .push(format!("trunk {TRUNK} at {t:.1?}"));
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
            n
        })
    };
    let call = |port: u16, media: u16, sw: &Switch| {
        sipp(
            &args(&[
                "-sn",
                "uac",
                "-d",
                "500",
                "-s",
                "201",
                "-i",
                &TRUNK.to_string(),
                "-p",
                &port.to_string(),
                "-mp",
                &media.to_string(),
                "-m",
                "1",
                "-timeout",
                "15",
                &sw.sip.to_string(),
            ]),
            Duration::from_secs(20),
        )
    };
    std::thread::sleep(Duration::from_secs(2));
    let call1 = call(trunk_port, base + 8, &sw);
    let call1_done = flood_started.elapsed();
    if let Some(wait) =
        (flood_started + Duration::from_millis(6_500)).checked_duration_since(Instant::now())
    {
        std::thread::sleep(wait);
    }
    let call2 = call(trunk_port + 10, base + 18, &sw);
    let call2_done = flood_started.elapsed();

    let flood = flooder.join().expect("flood thread");
    let guesses = guesser.join().expect("guess thread");
    done.store(true, Ordering::Relaxed);
    let probes = prober.join().expect("probe thread");
    let phone = phone.join().expect("phone thread");
    eprintln!(
        "abuse: flood {flood:?}; wrong passwords {guesses:?}; {probes} probe rounds; calls done at {call1_done:.1?} and {call2_done:.1?}"
    );

    let missed = missed.lock().expect("lock").clone();
    let mut problems = Vec::new();
    if let Some(status) = exited(&mut sw) {
        problems.push(format!("the switch EXITED during the abuse: {status}"));
    }
    if !call1.success {
        problems.push(format!(
            "trunk call during the junk flood failed:\n{}",
            call1.output
        ));
    }
    if !call2.success {
        problems.push(format!(
            "trunk call during the malformed-request flood failed:\n{}",
            call2.output
        ));
    }
    if !phone.success {
        problems.push(format!(
            "the phone (SIPp uas) did not see both calls through:\n{}",
            phone.output
        ));
    }
    if !missed.is_empty() {
        problems.push(format!(
            "OPTIONS probes unanswered (3 tries of 1 s each): {missed:?}"
        ));
    }
    if flood.sent < 19_000 {
        problems.push(format!(
            "the flood sent only {} of 20000 datagrams",
            flood.sent
        ));
    }
    if guesses.refused != PENALTY_THRESHOLD
        || guesses.silent_from.is_none()
        || guesses.answered_after != 0
        || !guesses.odd.is_empty()
    {
        problems.push(format!("wrong passwords from {GUESSER}: expected {PENALTY_THRESHOLD} answered with 401, then silence; got {guesses:?}"));
    }
    if options_from(GUESSER, sw.sip, Duration::from_millis(800)) {
        problems.push(format!(
            "{GUESSER} is not penalised after {} wrong passwords",
            guesses.attempts
        ));
    }
    if options_from(FLOODER, sw.sip, Duration::from_millis(800)) {
        problems.push(format!(
            "{FLOODER} is not penalised after its malformed requests"
        ));
    }
    if exited(&mut sw).is_none() && !probe(&sw) {
        problems.push("the switch does not answer OPTIONS after the abuse".to_owned());
    }
    eprintln!(
        "abuse metrics: dropped={:?} rejected_malformed={:?} penalised={:?} auth_failures={:?} calls_answered={:?}",
        sw.metric("centralino_sip_dropped_total"),
        sw.metric("centralino_sip_rejected_malformed_total"),
        sw.metric("centralino_sip_penalised_total"),
        sw.metric("centralino_auth_failures_total"),
        sw.metric("centralino_calls_answered_total"),
    );
    assert!(
        problems.is_empty(),
        "{}\n--- last switch log lines ---\n{}",
        problems.join("\n"),
        log_tail(&sw, 60)
    );
}

#[test]
fn protos_case_files_split_into_an_invite_and_a_teardown() {
    // The format this file relies on, checked on a hand-made case.
    let case = b"5 ab cd3 xyz";
    assert_eq!(
        split_length_prefixed(case),
        Ok(vec![b"ab cd".to_vec(), b"xyz".to_vec()])
    );
    assert!(split_length_prefixed(b"9 short").is_err());
    let fill = Placeholders {
        to: "201@127.0.0.1:5060".into(),
        from: "p@127.0.0.2".into(),
        from_ip: TRUNK,
        port: 7,
        pass: "t",
    };
    let out = fill.fill(b"INVITE sip:<To> SIP/2.0\r\nVia: SIP/2.0/UDP <From-Address>:<Local-Port>\r\nContent-Length: <Content-Length>\r\n\r\nabc", 3);
    assert_eq!(out, b"INVITE sip:201@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:7\r\nContent-Length: 3\r\n\r\nabc".to_vec());
    assert_eq!(
        rewrite_uri_host("sip:123@[2409:8805::1]:1388;transport=udp", "127.0.0.1:9"),
        "sip:123@127.0.0.1:9;transport=udp"
    );
    assert_eq!(
        rewrite_uri_host(
            "sip:pierrefouquet.babblevoice.com;transport=udp",
            "127.0.0.1:9"
        ),
        "sip:127.0.0.1:9;transport=udp"
    );
    let req = rewrite_request(
        b"REGISTER sip:10.1.1.11 SIP/2.0\r\nv:SIP/2.0/TCP 10.1.1.5:5060;branch=z9hG4bKx\r\n\r\n",
        "127.0.0.1:9".parse().expect("address"),
        "127.0.0.2:8",
    );
    assert_eq!(
        String::from_utf8_lossy(&req),
        "REGISTER sip:127.0.0.1:9 SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.2:8;branch=z9hG4bKx\r\n\r\n"
    );
}
