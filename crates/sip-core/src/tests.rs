//! Behaviour tests in virtual time. Single-layer tests record a *ladder* (what the layer sent
//! and told the TU, with the virtual time) and compare it with one `check`; UAC↔UAS tests run
//! two layers through [`Pair`], which steps both and jumps time to the earliest wake-up.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_msg::{Framing, HeaderName, Message, Method, Request, Response, parse};

use crate::{
    ClientTxId, Peer, ServerTxId, TimerConfig, TransactionLayer, Transport, TxEvent, TxOutput,
    build_cancel,
};

fn peer(transport: Transport, addr: &str) -> Peer {
    Peer {
        transport,
        addr: addr.parse::<SocketAddr>().expect("test address"),
    }
}

fn uac(transport: Transport) -> Peer {
    peer(transport, "10.0.0.1:5060")
}

fn uas(transport: Transport) -> Peer {
    peer(transport, "10.0.0.2:5060")
}

fn via_transport(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
    }
}

/// A request as a UAC at 10.0.0.1 would send it; `branch` is appended to the magic cookie.
fn request(method: &str, branch: &str, transport: Transport) -> Request {
    let text = format!(
        "{method} sip:bob@10.0.0.2 SIP/2.0\r\n\
         Via: SIP/2.0/{t} 10.0.0.1:5060;branch=z9hG4bK{branch};rport\r\n\
         Via: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKdeeper\r\n\
         Max-Forwards: 70\r\n\
         Route: <sip:proxy.example.com;lr>\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: call-{branch}\r\n\
         CSeq: 7 {method}\r\n\
         Contact: <sip:alice@10.0.0.1>\r\n\
         Content-Length: 0\r\n\r\n",
        t = via_transport(transport)
    );
    match parse(text.as_bytes(), Framing::Datagram) {
        Ok(Message::Request(r)) => r,
        other => panic!("test request does not parse: {other:?}"),
    }
}

fn response_to(request: &Request, status: u16) -> Response {
    request.make_response(status, "Reason", Some("b1"))
}

fn summary(bytes: &[u8]) -> String {
    match parse(bytes, Framing::Datagram) {
        Ok(Message::Request(r)) => r.method.to_string(),
        Ok(Message::Response(r)) => format!(
            "{} {}",
            r.status,
            r.cseq().map(|c| c.method.to_string()).unwrap_or_default()
        ),
        Err(e) => format!("unparseable: {e}"),
    }
}

fn event_summary(event: &TxEvent) -> String {
    match event {
        TxEvent::Request { id, request, .. } => format!("Request {} s{}", request.method, id.0),
        TxEvent::Ack { .. } => "Ack".into(),
        TxEvent::Cancelled { invite } => format!("Cancelled s{}", invite.0),
        TxEvent::Response { id, response } => format!("Response {} c{}", response.status, id.0),
        TxEvent::Timeout { id } => format!("Timeout c{}", id.0),
        TxEvent::StrayResponse { response, .. } => format!("StrayResponse {}", response.status),
        TxEvent::AckTimeout { id, after_2xx } => {
            format!("AckTimeout s{} after_2xx={after_2xx}", id.0)
        }
    }
}

/// One layer driven by hand in virtual time, recording a ladder of its outputs.
struct Rig {
    layer: TransactionLayer,
    t0: Instant,
    now: Instant,
    ladder: Vec<String>,
    /// Every output, for tests that look inside messages.
    outputs: Vec<TxOutput>,
    n_last: usize,
}

impl Rig {
    fn new() -> Self {
        let t0 = Instant::now();
        Rig {
            layer: TransactionLayer::new(TimerConfig::default()),
            t0,
            now: t0,
            ladder: Vec::new(),
            outputs: Vec::new(),
            n_last: 0,
        }
    }

    fn at(&mut self, millis: u64) -> Instant {
        self.run_until(millis);
        self.now
    }

    fn stamp(&self) -> String {
        format!("{:7.3}", (self.now - self.t0).as_secs_f64())
    }

    fn drain(&mut self) {
        while let Some(output) = self.layer.poll_output() {
            let line = match &output {
                TxOutput::Transmit { to, bytes } => {
                    format!("{} send {} to {}", self.stamp(), summary(bytes), to.addr)
                }
                TxOutput::Event(e) => format!("{} event {}", self.stamp(), event_summary(e)),
            };
            self.ladder.push(line);
            self.outputs.push(output);
        }
        let n = self.layer.n_transactions();
        if n != self.n_last {
            self.ladder
                .push(format!("{} n_transactions={n}", self.stamp()));
            self.n_last = n;
        }
    }

    /// Runs every timer up to `millis` after t0, then sets the clock there.
    fn run_until(&mut self, millis: u64) {
        let end = self.t0 + Duration::from_millis(millis);
        assert!(end >= self.now, "virtual time only moves forward");
        self.drain();
        while let Some(deadline) = self.layer.poll_timeout().filter(|d| *d <= end) {
            assert!(deadline >= self.now, "deadline in the past");
            self.now = deadline;
            self.layer.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
    }

    fn send_request(&mut self, millis: u64, request: Request, to: Peer) -> ClientTxId {
        let now = self.at(millis);
        let id = self.layer.send_request(request, to, now);
        self.drain();
        id
    }

    fn receive_request(&mut self, millis: u64, request: Request, from: Peer) {
        let now = self.at(millis);
        self.layer.handle_request(request, from, now);
        self.drain();
    }

    fn receive_response(&mut self, millis: u64, response: Response, from: Peer) {
        let now = self.at(millis);
        self.layer.handle_response(response, from, now);
        self.drain();
    }

    fn send_response(&mut self, millis: u64, id: ServerTxId, response: Response) {
        let now = self.at(millis);
        self.layer.send_response(id, response, now);
        self.drain();
    }

    /// Checks the ladder so far, and that nothing leaked once `n_transactions` is 0.
    fn check(&self, expect: &str) {
        let expect: Vec<&str> = expect
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let actual: Vec<String> = self.ladder.iter().map(|l| l.trim().to_owned()).collect();
        assert_eq!(
            actual,
            expect,
            "\nactual ladder:\n{}\n",
            self.ladder.join("\n")
        );
        if self.layer.n_transactions() == 0 {
            assert_eq!(
                self.layer.n_timers(),
                0,
                "timers left after every transaction ended"
            );
        }
    }

    fn transmitted(&self) -> Vec<(Peer, Message)> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                TxOutput::Transmit { to, bytes } => Some((
                    *to,
                    parse(bytes, Framing::Datagram).expect("we send parseable messages"),
                )),
                TxOutput::Event(_) => None,
            })
            .collect()
    }
}

const S1: ServerTxId = ServerTxId(1);

// ---------------------------------------------------------------- client INVITE

#[test]
fn timer_a_doubles_until_timer_b_gives_408() {
    let mut rig = Rig::new();
    rig.send_request(
        0,
        request("INVITE", "a", Transport::Udp),
        uas(Transport::Udp),
    );
    rig.run_until(60_000);
    // RFC 3261 §17.1.1.2: A = 500 ms, 1 s, 2 s, ... (no cap); B = 64*T1 = 32 s.
    rig.check(
        "0.000 send INVITE to 10.0.0.2:5060
         0.000 n_transactions=1
         0.500 send INVITE to 10.0.0.2:5060
         1.500 send INVITE to 10.0.0.2:5060
         3.500 send INVITE to 10.0.0.2:5060
         7.500 send INVITE to 10.0.0.2:5060
        15.500 send INVITE to 10.0.0.2:5060
        31.500 send INVITE to 10.0.0.2:5060
        32.000 event Timeout c1
        32.000 n_transactions=0",
    );
}

#[test]
fn invite_over_tcp_is_not_retransmitted() {
    let mut rig = Rig::new();
    rig.send_request(
        0,
        request("INVITE", "a", Transport::Tcp),
        uas(Transport::Tcp),
    );
    rig.run_until(60_000);
    rig.check(
        "0.000 send INVITE to 10.0.0.2:5060
         0.000 n_transactions=1
        32.000 event Timeout c1
        32.000 n_transactions=0",
    );
}

#[test]
fn provisional_stops_timers_a_and_b() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Udp);
    rig.send_request(0, invite.clone(), uas(Transport::Udp));
    rig.receive_response(700, response_to(&invite, 180), uas(Transport::Udp));
    rig.run_until(100_000);
    // RFC 3261 §17.1.1.2: Proceeding has no timeout of its own (the TU CANCELs).
    rig.check(
        "0.000 send INVITE to 10.0.0.2:5060
         0.000 n_transactions=1
         0.500 send INVITE to 10.0.0.2:5060
         0.700 event Response 180 c1",
    );
    assert_eq!(rig.layer.poll_timeout(), None);
}

#[test]
fn non_2xx_is_acked_and_timer_d_absorbs_retransmissions() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Udp);
    rig.send_request(0, invite.clone(), uas(Transport::Udp));
    rig.receive_response(100, response_to(&invite, 100), uas(Transport::Udp));
    rig.receive_response(1_000, response_to(&invite, 486), uas(Transport::Udp));
    rig.receive_response(1_500, response_to(&invite, 486), uas(Transport::Udp));
    rig.run_until(60_000);
    // RFC 3261 §17.1.1.2: ACK, deliver once, resend the ACK for retransmissions; D = 32 s.
    rig.check(
        "0.000 send INVITE to 10.0.0.2:5060
         0.000 n_transactions=1
         0.100 event Response 100 c1
         1.000 send ACK to 10.0.0.2:5060
         1.000 event Response 486 c1
         1.500 send ACK to 10.0.0.2:5060
        33.000 n_transactions=0",
    );
}

#[test]
fn non_2xx_over_tcp_ends_at_once() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Tcp);
    rig.send_request(0, invite.clone(), uas(Transport::Tcp));
    rig.receive_response(1_000, response_to(&invite, 603), uas(Transport::Tcp));
    rig.check(
        "0.000 send INVITE to 10.0.0.2:5060
         0.000 n_transactions=1
         1.000 send ACK to 10.0.0.2:5060
         1.000 event Response 603 c1
         1.000 n_transactions=0",
    );
}

#[test]
fn ack_for_non_2xx_follows_17_1_1_3() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Udp);
    rig.send_request(0, invite.clone(), uas(Transport::Udp));
    let busy = response_to(&invite, 486);
    rig.receive_response(1_000, busy.clone(), uas(Transport::Udp));
    let sent = rig.transmitted();
    let Some((to, Message::Request(ack))) = sent.last() else {
        panic!("no ACK sent")
    };
    assert_eq!(*to, uas(Transport::Udp));
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri_raw, invite.uri_raw);
    let h =
        |r: &Request, n: HeaderName| r.headers.get_all(&n).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        h(ack, HeaderName::Via),
        vec!["SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;rport"]
    );
    assert_eq!(h(ack, HeaderName::CallId), h(&invite, HeaderName::CallId));
    assert_eq!(h(ack, HeaderName::From), h(&invite, HeaderName::From));
    assert_eq!(h(ack, HeaderName::To), vec!["<sip:bob@example.com>;tag=b1"]);
    assert_eq!(h(ack, HeaderName::CSeq), vec!["7 ACK"]);
    assert_eq!(h(ack, HeaderName::Route), h(&invite, HeaderName::Route));
    assert!(ack.validate().is_ok(), "{:?}", ack.validate());
}

#[test]
fn every_2xx_is_delivered_until_timer_m() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Udp);
    rig.send_request(0, invite.clone(), uas(Transport::Udp));
    rig.receive_response(1_000, response_to(&invite, 200), uas(Transport::Udp));
    rig.receive_response(1_500, response_to(&invite, 200), uas(Transport::Udp));
    rig.receive_response(1_600, response_to(&invite, 486), uas(Transport::Udp));
    rig.run_until(60_000);
    // RFC 6026 §8.4: Accepted delivers every 2xx (the TU re-ACKs), M = 64*T1; no ACK from us.
    rig.check(
        "0.000 send INVITE to 10.0.0.2:5060
         0.000 n_transactions=1
         0.500 send INVITE to 10.0.0.2:5060
         1.000 event Response 200 c1
         1.500 event Response 200 c1
        33.000 n_transactions=0",
    );
}

#[test]
fn stray_2xx_is_reported_and_other_strays_dropped() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "x", Transport::Udp);
    let from = peer(Transport::Udp, "192.0.2.7:5060");
    rig.receive_response(0, response_to(&invite, 200), from);
    rig.receive_response(0, response_to(&invite, 180), from);
    rig.receive_response(0, response_to(&invite, 486), from);
    rig.receive_response(
        0,
        response_to(&request("BYE", "y", Transport::Udp), 200),
        from,
    );
    rig.check("0.000 event StrayResponse 200");
    let Some(TxOutput::Event(TxEvent::StrayResponse { from: f, .. })) = rig.outputs.first() else {
        panic!()
    };
    assert_eq!(*f, from);
}

#[test]
fn a_2xx_after_a_non_2xx_is_stray() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Udp);
    rig.send_request(0, invite.clone(), uas(Transport::Udp));
    rig.receive_response(100, response_to(&invite, 486), uas(Transport::Udp));
    rig.receive_response(200, response_to(&invite, 200), uas(Transport::Udp));
    rig.check(
        "0.000 send INVITE to 10.0.0.2:5060
         0.000 n_transactions=1
         0.100 send ACK to 10.0.0.2:5060
         0.100 event Response 486 c1
         0.200 event StrayResponse 200",
    );
}

#[test]
fn rfc_2543_requests_match_without_magic_cookie() {
    let mut rig = Rig::new();
    let mut invite = request("INVITE", "a", Transport::Udp);
    invite.headers.remove(&HeaderName::Via);
    invite
        .headers
        .push_front(HeaderName::Via, "SIP/2.0/UDP 10.0.0.1:5060;branch=old2543");
    let from = uac(Transport::Udp);
    rig.receive_request(0, invite.clone(), from);
    rig.receive_request(100, invite.clone(), from);
    let busy = response_to(&invite, 486);
    rig.send_response(150, S1, busy.clone());
    rig.receive_request(200, crate::build_ack_for_non_2xx(&invite, &busy), from);
    rig.run_until(60_000);
    rig.check(
        "0.000 event Request INVITE s1
         0.000 n_transactions=1
         0.100 send 100 INVITE to 10.0.0.1:5060
         0.150 send 486 INVITE to 10.0.0.1:5060
         5.200 n_transactions=0",
    );
}

#[test]
fn zero_timer_config_does_not_spin() {
    let t0 = Instant::now();
    let zero = TimerConfig {
        t1: Duration::ZERO,
        t2: Duration::ZERO,
        t4: Duration::ZERO,
    };
    let mut layer = TransactionLayer::new(zero);
    layer.send_request(
        request("OPTIONS", "a", Transport::Udp),
        uas(Transport::Udp),
        t0,
    );
    let mut n_wakeups = 0;
    while let Some(t) = layer.poll_timeout() {
        layer.handle_timeout(t);
        while layer.poll_output().is_some() {}
        n_wakeups += 1;
        assert!(n_wakeups < 1_000, "livelock");
    }
    assert_eq!(layer.n_transactions(), 0);
}

#[test]
fn response_with_other_method_does_not_match() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Tcp);
    rig.send_request(0, invite.clone(), uas(Transport::Tcp));
    // Same branch, CSeq method CANCEL: RFC 3261 §17.1.3 needs both to match.
    let mut other = response_to(&invite, 200);
    other.headers.set(HeaderName::CSeq, "7 CANCEL");
    rig.receive_response(100, other, uas(Transport::Tcp));
    rig.check(
        "0.000 send INVITE to 10.0.0.2:5060
         0.000 n_transactions=1",
    );
}

#[test]
fn cancel_guard_ends_invite_64_t1_after_cancel() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Tcp);
    rig.send_request(0, invite.clone(), uas(Transport::Tcp));
    rig.receive_response(100, response_to(&invite, 180), uas(Transport::Tcp));
    rig.send_request(10_000, build_cancel(&invite), uas(Transport::Tcp));
    rig.receive_response(
        10_100,
        response_to(&build_cancel(&invite), 200),
        uas(Transport::Tcp),
    );
    rig.run_until(100_000);
    // RFC 3261 §9.1: no final response 64*T1 after the CANCEL → the INVITE is given up.
    rig.check(
        "0.000 send INVITE to 10.0.0.2:5060
         0.000 n_transactions=1
         0.100 event Response 180 c1
        10.000 send CANCEL to 10.0.0.2:5060
        10.000 n_transactions=2
        10.100 event Response 200 c2
        10.100 n_transactions=1
        42.000 event Timeout c1
        42.000 n_transactions=0",
    );
}

#[test]
fn cancel_sent_in_calling_guards_a_later_proceeding() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Tcp);
    rig.send_request(0, invite.clone(), uas(Transport::Tcp));
    rig.send_request(1_000, build_cancel(&invite), uas(Transport::Tcp));
    rig.receive_response(2_000, response_to(&invite, 180), uas(Transport::Tcp));
    rig.run_until(100_000);
    rig.check(
        "0.000 send INVITE to 10.0.0.2:5060
         0.000 n_transactions=1
         1.000 send CANCEL to 10.0.0.2:5060
         1.000 n_transactions=2
         2.000 event Response 180 c1
        33.000 event Timeout c2
        33.000 event Timeout c1
        33.000 n_transactions=0",
    );
}

#[test]
fn request_without_branch_is_refused() {
    let mut rig = Rig::new();
    let mut bad = request("OPTIONS", "a", Transport::Udp);
    bad.headers.remove(&HeaderName::Via);
    bad.headers
        .push_front(HeaderName::Via, "SIP/2.0/UDP 10.0.0.1");
    rig.send_request(0, bad, uas(Transport::Udp));
    let good = request("OPTIONS", "b", Transport::Tcp);
    rig.send_request(0, good.clone(), uas(Transport::Tcp));
    rig.send_request(0, good, uas(Transport::Tcp));
    rig.check(
        "0.000 event Timeout c1
         0.000 send OPTIONS to 10.0.0.2:5060
         0.000 n_transactions=1
         0.000 event Timeout c3",
    );
}

#[test]
fn transport_error_ends_client_transaction() {
    let mut rig = Rig::new();
    let id = rig.send_request(
        0,
        request("INVITE", "a", Transport::Tcp),
        uas(Transport::Tcp),
    );
    rig.at(10);
    rig.layer.handle_transport_error(id);
    rig.drain();
    rig.check(
        "0.000 send INVITE to 10.0.0.2:5060
         0.000 n_transactions=1
         0.010 event Timeout c1
         0.010 n_transactions=0",
    );
}

// ---------------------------------------------------------------- client non-INVITE

#[test]
fn timer_e_caps_at_t2_until_timer_f() {
    let mut rig = Rig::new();
    rig.send_request(
        0,
        request("OPTIONS", "a", Transport::Udp),
        uas(Transport::Udp),
    );
    rig.run_until(60_000);
    // RFC 3261 §17.1.2.2: E = 500 ms, 1 s, 2 s, 4 s, 4 s, ...; F = 64*T1.
    rig.check(
        "0.000 send OPTIONS to 10.0.0.2:5060
         0.000 n_transactions=1
         0.500 send OPTIONS to 10.0.0.2:5060
         1.500 send OPTIONS to 10.0.0.2:5060
         3.500 send OPTIONS to 10.0.0.2:5060
         7.500 send OPTIONS to 10.0.0.2:5060
        11.500 send OPTIONS to 10.0.0.2:5060
        15.500 send OPTIONS to 10.0.0.2:5060
        19.500 send OPTIONS to 10.0.0.2:5060
        23.500 send OPTIONS to 10.0.0.2:5060
        27.500 send OPTIONS to 10.0.0.2:5060
        31.500 send OPTIONS to 10.0.0.2:5060
        32.000 event Timeout c1
        32.000 n_transactions=0",
    );
}

#[test]
fn timer_e_is_t2_in_proceeding_and_timer_k_is_t4() {
    let mut rig = Rig::new();
    let bye = request("BYE", "a", Transport::Udp);
    rig.send_request(0, bye.clone(), uas(Transport::Udp));
    rig.receive_response(600, response_to(&bye, 100), uas(Transport::Udp));
    rig.receive_response(6_000, response_to(&bye, 200), uas(Transport::Udp));
    rig.receive_response(7_000, response_to(&bye, 200), uas(Transport::Udp));
    rig.run_until(60_000);
    rig.check(
        "0.000 send BYE to 10.0.0.2:5060
         0.000 n_transactions=1
         0.500 send BYE to 10.0.0.2:5060
         0.600 event Response 100 c1
         1.500 send BYE to 10.0.0.2:5060
         5.500 send BYE to 10.0.0.2:5060
         6.000 event Response 200 c1
        11.000 n_transactions=0",
    );
}

#[test]
fn non_invite_over_tcp_has_zero_timer_k() {
    let mut rig = Rig::new();
    let bye = request("BYE", "a", Transport::Tcp);
    rig.send_request(0, bye.clone(), uas(Transport::Tcp));
    rig.receive_response(50, response_to(&bye, 200), uas(Transport::Tcp));
    rig.check(
        "0.000 send BYE to 10.0.0.2:5060
         0.000 n_transactions=1
         0.050 event Response 200 c1
         0.050 n_transactions=0",
    );
}

// ---------------------------------------------------------------- server INVITE

#[test]
fn server_sends_100_at_200ms_and_absorbs_retransmissions() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Udp);
    let from = uac(Transport::Udp);
    rig.receive_request(0, invite.clone(), from);
    rig.receive_request(500, invite.clone(), from);
    rig.send_response(600, S1, response_to(&invite, 180));
    rig.receive_request(1_500, invite.clone(), from);
    rig.send_response(2_000, S1, response_to(&invite, 486));
    rig.receive_request(3_000, invite.clone(), from);
    rig.run_until(60_000);
    // RFC 3261 §17.2.1: 100 if the TU is silent for 200 ms; retransmissions get the last
    // provisional, then the final; G = 500 ms doubling up to T2; H = 64*T1 after the final.
    rig.check(
        "0.000 event Request INVITE s1
         0.000 n_transactions=1
         0.200 send 100 INVITE to 10.0.0.1:5060
         0.500 send 100 INVITE to 10.0.0.1:5060
         0.600 send 180 INVITE to 10.0.0.1:5060
         1.500 send 180 INVITE to 10.0.0.1:5060
         2.000 send 486 INVITE to 10.0.0.1:5060
         2.500 send 486 INVITE to 10.0.0.1:5060
         3.000 send 486 INVITE to 10.0.0.1:5060
         3.500 send 486 INVITE to 10.0.0.1:5060
         5.500 send 486 INVITE to 10.0.0.1:5060
         9.500 send 486 INVITE to 10.0.0.1:5060
        13.500 send 486 INVITE to 10.0.0.1:5060
        17.500 send 486 INVITE to 10.0.0.1:5060
        21.500 send 486 INVITE to 10.0.0.1:5060
        25.500 send 486 INVITE to 10.0.0.1:5060
        29.500 send 486 INVITE to 10.0.0.1:5060
        33.500 send 486 INVITE to 10.0.0.1:5060
        34.000 event AckTimeout s1 after_2xx=false
        34.000 n_transactions=0",
    );
}

#[test]
fn no_100_when_tu_answers_within_200ms_and_ack_confirms() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Udp);
    let from = uac(Transport::Udp);
    rig.receive_request(0, invite.clone(), from);
    let busy = response_to(&invite, 486);
    rig.send_response(100, S1, busy.clone());
    let ack = crate::build_ack_for_non_2xx(&invite, &busy);
    rig.receive_request(300, ack.clone(), from);
    rig.receive_request(1_000, ack.clone(), from);
    rig.receive_request(1_100, invite.clone(), from);
    rig.run_until(60_000);
    // RFC 3261 §17.2.1: the ACK stops G and H (absorbed, not for the TU); I = T4 = 5 s.
    rig.check(
        "0.000 event Request INVITE s1
         0.000 n_transactions=1
         0.100 send 486 INVITE to 10.0.0.1:5060
         5.300 n_transactions=0",
    );
}

#[test]
fn tcp_server_invite_has_no_g_and_zero_timer_i() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Tcp);
    let from = uac(Transport::Tcp);
    rig.receive_request(0, invite.clone(), from);
    let busy = response_to(&invite, 486);
    rig.send_response(1_000, S1, busy.clone());
    rig.receive_request(1_100, crate::build_ack_for_non_2xx(&invite, &busy), from);
    rig.check(
        "0.000 event Request INVITE s1
         0.000 n_transactions=1
         0.200 send 100 INVITE to 10.0.0.1:5060
         1.000 send 486 INVITE to 10.0.0.1:5060
         1.100 n_transactions=0",
    );
}

#[test]
fn server_2xx_is_retransmitted_until_ack_received_then_timer_l() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Udp);
    let from = uac(Transport::Udp);
    rig.receive_request(0, invite.clone(), from);
    rig.send_response(100, S1, response_to(&invite, 200));
    rig.receive_request(400, invite.clone(), from); // absorbed in Accepted (RFC 6026 §8.6)
    // The ACK for a 2xx has its own branch: it matches no transaction and goes to the TU.
    rig.receive_request(9_000, request("ACK", "ack", Transport::Udp), from);
    let id = rig.layer.find_invite_server("call-a", 7);
    assert_eq!(id, Some(S1));
    rig.layer.ack_received(S1);
    rig.run_until(60_000);
    rig.check(
        "0.000 event Request INVITE s1
         0.000 n_transactions=1
         0.100 send 200 INVITE to 10.0.0.1:5060
         0.600 send 200 INVITE to 10.0.0.1:5060
         1.600 send 200 INVITE to 10.0.0.1:5060
         3.600 send 200 INVITE to 10.0.0.1:5060
         7.600 send 200 INVITE to 10.0.0.1:5060
         9.000 event Ack
        32.100 n_transactions=0",
    );
    assert_eq!(rig.layer.find_invite_server("call-a", 7), None);
}

#[test]
fn unacknowledged_2xx_reports_ack_timeout_after_timer_l() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Tcp);
    rig.receive_request(0, invite.clone(), uac(Transport::Tcp));
    rig.send_response(100, S1, response_to(&invite, 200));
    rig.run_until(60_000);
    // Reliable: no 2xx retransmissions, but the ACK is still awaited for 64*T1.
    rig.check(
        "0.000 event Request INVITE s1
         0.000 n_transactions=1
         0.100 send 200 INVITE to 10.0.0.1:5060
        32.100 event AckTimeout s1 after_2xx=true
        32.100 n_transactions=0",
    );
}

#[test]
fn unacknowledged_2xx_over_udp_is_retransmitted_capped_at_t2() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Udp);
    rig.receive_request(0, invite.clone(), uac(Transport::Udp));
    rig.send_response(100, S1, response_to(&invite, 200));
    rig.run_until(60_000);
    // RFC 3261 §13.3.1.4: T1 doubling up to T2 until 64*T1; then the TU should BYE.
    rig.check(
        "0.000 event Request INVITE s1
         0.000 n_transactions=1
         0.100 send 200 INVITE to 10.0.0.1:5060
         0.600 send 200 INVITE to 10.0.0.1:5060
         1.600 send 200 INVITE to 10.0.0.1:5060
         3.600 send 200 INVITE to 10.0.0.1:5060
         7.600 send 200 INVITE to 10.0.0.1:5060
        11.600 send 200 INVITE to 10.0.0.1:5060
        15.600 send 200 INVITE to 10.0.0.1:5060
        19.600 send 200 INVITE to 10.0.0.1:5060
        23.600 send 200 INVITE to 10.0.0.1:5060
        27.600 send 200 INVITE to 10.0.0.1:5060
        31.600 send 200 INVITE to 10.0.0.1:5060
        32.100 event AckTimeout s1 after_2xx=true
        32.100 n_transactions=0",
    );
}

#[test]
fn ack_reusing_invite_branch_in_accepted_goes_to_tu() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Tcp);
    rig.receive_request(0, invite.clone(), uac(Transport::Tcp));
    rig.send_response(100, S1, response_to(&invite, 200));
    rig.receive_request(
        200,
        request("ACK", "a", Transport::Tcp),
        uac(Transport::Tcp),
    );
    rig.check(
        "0.000 event Request INVITE s1
         0.000 n_transactions=1
         0.100 send 200 INVITE to 10.0.0.1:5060
         0.200 event Ack",
    );
}

#[test]
fn responses_go_to_the_request_source_not_the_via() {
    // Symmetric response routing (RFC 3581): the phone is behind NAT at 203.0.113.5:40001.
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Udp);
    let natted = peer(Transport::Udp, "203.0.113.5:40001");
    rig.receive_request(0, invite.clone(), natted);
    rig.send_response(10, S1, response_to(&invite, 180));
    assert!(rig.transmitted().iter().all(|(to, _)| *to == natted));
    assert_eq!(rig.transmitted().len(), 1);
}

#[test]
fn late_or_unknown_responses_from_tu_are_dropped() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Tcp);
    rig.receive_request(0, invite.clone(), uac(Transport::Tcp));
    rig.send_response(100, S1, response_to(&invite, 486));
    rig.send_response(100, S1, response_to(&invite, 180));
    rig.send_response(100, ServerTxId(99), response_to(&invite, 200));
    rig.check(
        "0.000 event Request INVITE s1
         0.000 n_transactions=1
         0.100 send 486 INVITE to 10.0.0.1:5060",
    );
}

// ---------------------------------------------------------------- server non-INVITE

#[test]
fn non_invite_server_timer_j_and_retransmissions() {
    let mut rig = Rig::new();
    let options = request("OPTIONS", "a", Transport::Udp);
    let from = uac(Transport::Udp);
    rig.receive_request(0, options.clone(), from);
    rig.receive_request(500, options.clone(), from); // Trying: absorbed silently
    rig.send_response(700, S1, response_to(&options, 100));
    rig.receive_request(1_500, options.clone(), from);
    rig.send_response(2_000, S1, response_to(&options, 200));
    rig.receive_request(3_500, options.clone(), from);
    rig.run_until(60_000);
    // RFC 3261 §17.2.2: J = 64*T1 after the final response.
    rig.check(
        "0.000 event Request OPTIONS s1
         0.000 n_transactions=1
         0.700 send 100 OPTIONS to 10.0.0.1:5060
         1.500 send 100 OPTIONS to 10.0.0.1:5060
         2.000 send 200 OPTIONS to 10.0.0.1:5060
         3.500 send 200 OPTIONS to 10.0.0.1:5060
        34.000 n_transactions=0",
    );
}

#[test]
fn non_invite_server_over_tcp_has_zero_timer_j() {
    let mut rig = Rig::new();
    let options = request("OPTIONS", "a", Transport::Tcp);
    rig.receive_request(0, options.clone(), uac(Transport::Tcp));
    rig.send_response(10, S1, response_to(&options, 200));
    rig.check(
        "0.000 event Request OPTIONS s1
         0.000 n_transactions=1
         0.010 send 200 OPTIONS to 10.0.0.1:5060
         0.010 n_transactions=0",
    );
}

#[test]
fn same_branch_other_sent_by_is_another_transaction() {
    let mut rig = Rig::new();
    let options = request("OPTIONS", "a", Transport::Tcp);
    let mut other = options.clone();
    other.headers.remove(&HeaderName::Via);
    other
        .headers
        .push_front(HeaderName::Via, "SIP/2.0/TCP 10.0.0.3:5060;branch=z9hG4bKa");
    rig.receive_request(0, options, uac(Transport::Tcp));
    rig.receive_request(0, other, peer(Transport::Tcp, "10.0.0.3:5060"));
    rig.check(
        "0.000 event Request OPTIONS s1
         0.000 n_transactions=1
         0.000 event Request OPTIONS s2
         0.000 n_transactions=2",
    );
}

// ---------------------------------------------------------------- CANCEL (RFC 3261 §9.2)

#[test]
fn cancel_matching_proceeding_invite() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Udp);
    let from = uac(Transport::Udp);
    rig.receive_request(0, invite.clone(), from);
    rig.send_response(50, S1, response_to(&invite, 180));
    let cancel = build_cancel(&invite);
    rig.receive_request(3_000, cancel.clone(), from);
    rig.receive_request(3_500, cancel.clone(), from);
    rig.send_response(3_600, S1, response_to(&invite, 487));
    rig.receive_request(
        3_700,
        crate::build_ack_for_non_2xx(&invite, &response_to(&invite, 487)),
        from,
    );
    rig.run_until(60_000);
    rig.check(
        "0.000 event Request INVITE s1
         0.000 n_transactions=1
         0.050 send 180 INVITE to 10.0.0.1:5060
         3.000 send 200 CANCEL to 10.0.0.1:5060
         3.000 event Cancelled s1
         3.000 n_transactions=2
         3.500 send 200 CANCEL to 10.0.0.1:5060
         3.600 send 487 INVITE to 10.0.0.1:5060
         8.700 n_transactions=1
        35.000 n_transactions=0",
    );
    // RFC 3261 §9.2: the CANCEL's 200 carries the To tag of the INVITE's responses.
    let ok = rig.transmitted().into_iter().find_map(|(_, m)| match m {
        Message::Response(r) if r.cseq().map(|c| c.method) == Some(Method::Cancel) => Some(r),
        _ => None,
    });
    assert_eq!(
        ok.and_then(|r| r.to())
            .and_then(|t| t.tag().map(str::to_owned))
            .as_deref(),
        Some("b1")
    );
}

#[test]
fn cancel_racing_200_is_answered_200_without_effect() {
    let mut rig = Rig::new();
    let invite = request("INVITE", "a", Transport::Tcp);
    let from = uac(Transport::Tcp);
    rig.receive_request(0, invite.clone(), from);
    rig.send_response(100, S1, response_to(&invite, 200));
    rig.receive_request(150, build_cancel(&invite), from);
    rig.check(
        "0.000 event Request INVITE s1
         0.000 n_transactions=1
         0.100 send 200 INVITE to 10.0.0.1:5060
         0.150 send 200 CANCEL to 10.0.0.1:5060",
    );
}

#[test]
fn cancel_for_unknown_transaction_gets_481() {
    let mut rig = Rig::new();
    let cancel = build_cancel(&request("INVITE", "nope", Transport::Udp));
    rig.receive_request(0, cancel.clone(), uac(Transport::Udp));
    rig.receive_request(500, cancel, uac(Transport::Udp));
    rig.run_until(60_000);
    rig.check(
        "0.000 send 481 CANCEL to 10.0.0.1:5060
         0.000 n_transactions=1
         0.500 send 481 CANCEL to 10.0.0.1:5060
        32.000 n_transactions=0",
    );
    let sent = rig.transmitted();
    let Some((_, Message::Response(r))) = sent.first() else {
        panic!()
    };
    assert!(
        r.to().and_then(|t| t.tag().map(str::to_owned)).is_some(),
        "481 needs a To tag"
    );
}

#[test]
fn build_cancel_follows_9_1() {
    let invite = request("INVITE", "a", Transport::Udp);
    let cancel = build_cancel(&invite);
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.uri_raw, invite.uri_raw);
    let h =
        |r: &Request, n: HeaderName| r.headers.get_all(&n).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        h(&cancel, HeaderName::Via),
        vec!["SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;rport"]
    );
    for name in [
        HeaderName::CallId,
        HeaderName::From,
        HeaderName::To,
        HeaderName::Route,
    ] {
        assert_eq!(h(&cancel, name.clone()), h(&invite, name));
    }
    assert_eq!(h(&cancel, HeaderName::CSeq), vec!["7 CANCEL"]);
    assert!(cancel.validate().is_ok());
}

// ---------------------------------------------------------------- UAC ↔ UAS pairs

type Tu = Box<dyn FnMut(&mut TransactionLayer, &TxEvent, Instant)>;

/// A client layer (UAC at 10.0.0.1) and a server layer (UAS at 10.0.0.2) joined by a network
/// that can lose datagrams; each side's TU is a closure. As quinn's `tests/util.rs` `Pair`:
/// deliver everything pending, then jump to the earliest wake-up; `drive` caps the steps.
struct Pair {
    t0: Instant,
    now: Instant,
    client: TransactionLayer,
    server: TransactionLayer,
    transport: Transport,
    client_tu: Tu,
    server_tu: Tu,
    client_events: Vec<(Duration, TxEvent)>,
    server_events: Vec<(Duration, TxEvent)>,
    /// Decides, by datagram number (0-based, both directions), whether the network drops it.
    lose: Box<dyn FnMut(usize) -> bool>,
    n_datagrams: usize,
    n_dropped: usize,
}

impl Pair {
    fn new(transport: Transport) -> Self {
        let t0 = Instant::now();
        Pair {
            t0,
            now: t0,
            client: TransactionLayer::new(TimerConfig::default()),
            server: TransactionLayer::new(TimerConfig::default()),
            transport,
            client_tu: Box::new(|_, _, _| {}),
            server_tu: Box::new(|_, _, _| {}),
            client_events: Vec::new(),
            server_events: Vec::new(),
            lose: Box::new(|_| false),
            n_datagrams: 0,
            n_dropped: 0,
        }
    }

    /// Drops the first `n` datagrams.
    fn lossy(mut self, n: usize) -> Self {
        self.lose = Box::new(move |i| i < n);
        self
    }

    /// Moves every pending output across; true if anything moved.
    fn step(&mut self) -> bool {
        let mut moved = false;
        for from_client in [true, false] {
            loop {
                let output = if from_client {
                    self.client.poll_output()
                } else {
                    self.server.poll_output()
                };
                let Some(output) = output else { break };
                moved = true;
                match output {
                    TxOutput::Transmit { to, bytes } => {
                        let i = self.n_datagrams;
                        self.n_datagrams += 1;
                        if (self.lose)(i) {
                            self.n_dropped += 1;
                            continue;
                        }
                        let (receiver, source) = if from_client {
                            assert_eq!(to, uas(self.transport));
                            (&mut self.server, uac(self.transport))
                        } else {
                            assert_eq!(to, uac(self.transport));
                            (&mut self.client, uas(self.transport))
                        };
                        match parse(&bytes, Framing::Datagram)
                            .expect("layers send parseable messages")
                        {
                            Message::Request(r) => receiver.handle_request(r, source, self.now),
                            Message::Response(r) => receiver.handle_response(r, source, self.now),
                        }
                    }
                    TxOutput::Event(event) => {
                        let (layer, tu, log) = if from_client {
                            (
                                &mut self.client,
                                &mut self.client_tu,
                                &mut self.client_events,
                            )
                        } else {
                            (
                                &mut self.server,
                                &mut self.server_tu,
                                &mut self.server_events,
                            )
                        };
                        tu(layer, &event, self.now);
                        log.push((self.now - self.t0, event));
                    }
                }
            }
        }
        moved
    }

    /// Runs until both layers are idle with no timer left, at most `max_steps` steps.
    fn drive(&mut self, max_steps: usize) {
        for _ in 0..max_steps {
            if self.step() {
                continue;
            }
            let next = match (self.client.poll_timeout(), self.server.poll_timeout()) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => return,
                },
            };
            assert!(next >= self.now);
            self.now = next;
            self.client.handle_timeout(next);
            self.server.handle_timeout(next);
        }
        panic!("no quiescence after {max_steps} steps: livelock?");
    }

    fn settled(&self) -> bool {
        self.client.n_transactions() == 0
            && self.server.n_transactions() == 0
            && self.client.n_timers() == 0
            && self.server.n_timers() == 0
    }
}

fn names(events: &[(Duration, TxEvent)]) -> Vec<String> {
    events.iter().map(|(_, e)| event_summary(e)).collect()
}

/// The UAS TU answers every INVITE with 180 then `status`, every other request 200, and
/// reports 2xx ACKs to the layer.
fn answering_tu(status: u16) -> Tu {
    Box::new(move |layer, event, now| match event {
        TxEvent::Request { id, request, .. } => {
            if request.method == Method::Invite {
                layer.send_response(*id, response_to(request, 180), now);
            }
            let final_status = if request.method == Method::Invite {
                status
            } else {
                200
            };
            layer.send_response(*id, response_to(request, final_status), now);
        }
        TxEvent::Ack { request, .. } => {
            let found = request
                .call_id()
                .zip(request.cseq())
                .and_then(|(c, s)| layer.find_invite_server(c, s.seq));
            if let Some(id) = found {
                layer.ack_received(id);
            }
        }
        _ => {}
    })
}

/// The UAC TU ACKs every 2xx to INVITE (a fresh branch per ACK would be the dialog layer's
/// job; one per INVITE is enough here).
fn acking_tu(transport: Transport) -> Tu {
    Box::new(move |layer, event, _| {
        if let TxEvent::Response { response, .. } = event
            && (200..300).contains(&response.status)
            && response.cseq().map(|c| c.method) == Some(Method::Invite)
        {
            let call_id = response.call_id().unwrap_or_default().to_owned();
            let mut ack = request("ACK", &format!("{call_id}-ack"), transport);
            ack.headers.set(HeaderName::CallId, call_id);
            layer.send_stateless(uas(transport), ack.to_bytes());
        }
    })
}

#[test]
fn pair_invite_200_ack_settles() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut pair = Pair::new(transport);
        pair.server_tu = answering_tu(200);
        pair.client_tu = acking_tu(transport);
        pair.client
            .send_request(request("INVITE", "p", transport), uas(transport), pair.now);
        pair.drive(1_000);
        assert_eq!(
            names(&pair.client_events),
            ["Response 180 c1", "Response 200 c1"]
        );
        assert_eq!(names(&pair.server_events), ["Request INVITE s1", "Ack"]);
        assert!(pair.settled());
        assert_eq!(
            pair.now - pair.t0,
            Duration::from_secs(32),
            "Timers L and M are 64*T1"
        );
        assert_eq!(pair.n_datagrams, 4, "INVITE, 180, 200, ACK");
    }
}

#[test]
fn pair_invite_486_settles_after_timer_d() {
    let mut pair = Pair::new(Transport::Udp);
    pair.server_tu = answering_tu(486);
    pair.client.send_request(
        request("INVITE", "p", Transport::Udp),
        uas(Transport::Udp),
        pair.now,
    );
    pair.drive(1_000);
    assert_eq!(
        names(&pair.client_events),
        ["Response 180 c1", "Response 486 c1"]
    );
    assert_eq!(names(&pair.server_events), ["Request INVITE s1"]);
    assert!(pair.settled());
    assert_eq!(pair.now - pair.t0, Duration::from_secs(32), "Timer D");
}

#[test]
fn pair_lossy_invite_recovers() {
    // Drops the INVITE, its first retransmission... every datagram until the 3rd.
    for n_lost in 0..6 {
        let mut pair = Pair::new(Transport::Udp).lossy(n_lost);
        pair.server_tu = answering_tu(200);
        pair.client_tu = acking_tu(Transport::Udp);
        pair.client.send_request(
            request("INVITE", "p", Transport::Udp),
            uas(Transport::Udp),
            pair.now,
        );
        pair.drive(10_000);
        let client = names(&pair.client_events);
        assert!(
            client.iter().any(|e| e == "Response 200 c1"),
            "n_lost={n_lost}: {client:?}"
        );
        assert!(
            !client.iter().any(|e| e.starts_with("Timeout")),
            "n_lost={n_lost}: {client:?}"
        );
        let server = names(&pair.server_events);
        assert_eq!(
            server.first().map(String::as_str),
            Some("Request INVITE s1"),
            "n_lost={n_lost}"
        );
        assert!(
            server.iter().any(|e| e == "Ack"),
            "n_lost={n_lost}: {server:?}"
        );
        assert!(
            !server.iter().any(|e| e.starts_with("AckTimeout")),
            "n_lost={n_lost}: {server:?}"
        );
        assert!(pair.settled(), "n_lost={n_lost}");
        assert_eq!(pair.n_dropped, n_lost);
    }
}

#[test]
fn pair_lossy_non_2xx_ack_is_recovered_by_timer_g() {
    // Datagrams: 0 INVITE, 1 180, 2 486, 3 ACK (lost), 4 486 (Timer G), 5 ACK.
    let mut pair = Pair::new(Transport::Udp);
    pair.lose = Box::new(|i| i == 3);
    pair.server_tu = answering_tu(486);
    pair.client.send_request(
        request("INVITE", "p", Transport::Udp),
        uas(Transport::Udp),
        pair.now,
    );
    pair.drive(1_000);
    assert_eq!(
        names(&pair.client_events),
        ["Response 180 c1", "Response 486 c1"]
    );
    assert_eq!(
        names(&pair.server_events),
        ["Request INVITE s1"],
        "no AckTimeout: the resent ACK arrived"
    );
    assert_eq!(pair.n_datagrams, 6);
    assert!(pair.settled());
}

#[test]
fn pair_cancel() {
    let mut pair = Pair::new(Transport::Udp);
    // The UAS TU rings and waits; on Cancelled it answers 487.
    let invite_seen: std::rc::Rc<std::cell::RefCell<Option<Request>>> = Default::default();
    let seen = invite_seen.clone();
    pair.server_tu = Box::new(move |layer, event, now| match event {
        TxEvent::Request { id, request, .. } => {
            layer.send_response(*id, response_to(request, 180), now);
            *seen.borrow_mut() = Some(request.clone());
        }
        TxEvent::Cancelled { invite } => {
            let request = seen.borrow().clone().expect("INVITE before CANCEL");
            layer.send_response(*invite, response_to(&request, 487), now);
        }
        _ => {}
    });
    let invite = request("INVITE", "p", Transport::Udp);
    pair.client
        .send_request(invite.clone(), uas(Transport::Udp), pair.now);
    pair.step();
    pair.step();
    pair.client
        .send_request(build_cancel(&invite), uas(Transport::Udp), pair.now);
    pair.drive(1_000);
    assert_eq!(
        names(&pair.client_events),
        ["Response 180 c1", "Response 200 c2", "Response 487 c1"]
    );
    assert_eq!(
        names(&pair.server_events),
        ["Request INVITE s1", "Cancelled s1"]
    );
    assert!(pair.settled());
}

#[test]
fn pair_many_transactions_settle_with_loss() {
    // Every 7th datagram is lost; INVITEs get 200 (ACKed), 486 or a CANCEL race, and OPTIONS.
    let mut pair = Pair::new(Transport::Udp);
    pair.lose = Box::new(|i| i % 7 == 3);
    pair.server_tu = answering_tu(200);
    pair.client_tu = acking_tu(Transport::Udp);
    for i in 0..2_000 {
        let method = if i % 2 == 0 { "INVITE" } else { "OPTIONS" };
        pair.client.send_request(
            request(method, &format!("m{i}"), Transport::Udp),
            uas(Transport::Udp),
            pair.now,
        );
        if i % 100 == 0 {
            pair.step();
        }
    }
    pair.drive(1_000_000);
    assert!(
        pair.settled(),
        "client {} server {}",
        pair.client.n_transactions(),
        pair.server.n_transactions()
    );
    let n_final = pair
        .client_events
        .iter()
        .filter(|(_, e)| matches!(e, TxEvent::Response { response, .. } if response.status >= 200))
        .count();
    assert!(n_final >= 2_000);
    assert!(
        pair.client_events
            .iter()
            .all(|(_, e)| !matches!(e, TxEvent::Timeout { .. }))
    );
    assert!(pair.n_dropped > 0);
}

// ---------------------------------------------------------------- property: no leaks, no panics

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        /// The TU sends an INVITE or OPTIONS on branch `branch`.
        Send { invite: bool, branch: u8, tcp: bool },
        /// The TU sends a CANCEL for the INVITE on `branch`.
        SendCancel { branch: u8 },
        /// A response arrives for our request on `branch`.
        Respond {
            invite: bool,
            branch: u8,
            status: u16,
        },
        /// A request arrives from the network.
        Receive { method: u8, branch: u8, tcp: bool },
        /// The TU answers the `which`-th server transaction seen so far.
        Answer { which: usize, status: u16 },
        /// The TU reports the ACK of the `which`-th server transaction.
        AckReceived { which: usize },
        /// The transport fails for the `which`-th client transaction.
        TransportError { which: usize },
        /// Virtual time passes.
        Wait { millis: u64 },
    }

    fn status() -> impl Strategy<Value = u16> {
        prop_oneof![
            Just(100),
            Just(180),
            Just(200),
            Just(302),
            Just(486),
            Just(503)
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<bool>(), 0u8..6, any::<bool>()).prop_map(|(invite, branch, tcp)| Op::Send {
                invite,
                branch,
                tcp
            }),
            (0u8..6).prop_map(|branch| Op::SendCancel { branch }),
            (any::<bool>(), 0u8..6, status()).prop_map(|(invite, branch, status)| Op::Respond {
                invite,
                branch,
                status
            }),
            (0u8..4, 0u8..6, any::<bool>()).prop_map(|(method, branch, tcp)| Op::Receive {
                method,
                branch,
                tcp
            }),
            (0usize..8, status()).prop_map(|(which, status)| Op::Answer { which, status }),
            (0usize..8).prop_map(|which| Op::AckReceived { which }),
            (0usize..8).prop_map(|which| Op::TransportError { which }),
            prop_oneof![0u64..600, 0u64..40_000].prop_map(|millis| Op::Wait { millis }),
        ]
    }

    fn transport(tcp: bool) -> Transport {
        if tcp { Transport::Tcp } else { Transport::Udp }
    }

    struct World {
        layer: TransactionLayer,
        now: Instant,
        servers: Vec<(ServerTxId, Request)>,
        clients: Vec<ClientTxId>,
    }

    impl World {
        fn drain(&mut self) {
            while let Some(output) = self.layer.poll_output() {
                match output {
                    TxOutput::Transmit { bytes, .. } => {
                        assert!(
                            parse(&bytes, Framing::Datagram).is_ok(),
                            "unparseable output"
                        );
                    }
                    TxOutput::Event(TxEvent::Request { id, request, .. }) => {
                        self.servers.push((id, request))
                    }
                    TxOutput::Event(_) => {}
                }
            }
        }

        fn wait(&mut self, millis: u64) {
            let end = self.now + Duration::from_millis(millis);
            while let Some(deadline) = self.layer.poll_timeout().filter(|d| *d <= end) {
                self.now = self.now.max(deadline);
                self.layer.handle_timeout(self.now);
                self.drain();
                assert!(
                    self.layer.poll_timeout().is_none_or(|d| d > self.now),
                    "due timer left after handle_timeout"
                );
            }
            self.now = end;
        }
    }

    proptest! {
        #[test]
        fn every_transaction_ends_once_the_tu_answers(ops in proptest::collection::vec(op(), 0..60)) {
            let mut w = World { layer: TransactionLayer::new(TimerConfig::default()), now: Instant::now(), servers: Vec::new(), clients: Vec::new() };
            let from = |tcp| uac(transport(tcp));
            for op in ops {
                let now = w.now;
                match op {
                    Op::Send { invite, branch, tcp } => {
                        let method = if invite { "INVITE" } else { "OPTIONS" };
                        let id = w.layer.send_request(request(method, &format!("c{branch}"), transport(tcp)), uas(transport(tcp)), now);
                        w.clients.push(id);
                    }
                    Op::SendCancel { branch } => {
                        let cancel = build_cancel(&request("INVITE", &format!("c{branch}"), Transport::Udp));
                        let id = w.layer.send_request(cancel, uas(Transport::Udp), now);
                        w.clients.push(id);
                    }
                    Op::Respond { invite, branch, status } => {
                        let method = if invite { "INVITE" } else { "OPTIONS" };
                        let r = response_to(&request(method, &format!("c{branch}"), Transport::Udp), status);
                        w.layer.handle_response(r, uas(Transport::Udp), now);
                    }
                    Op::Receive { method, branch, tcp } => {
                        let invite = request("INVITE", &format!("s{branch}"), transport(tcp));
                        let r = match method {
                            0 => invite,
                            1 => request("OPTIONS", &format!("s{branch}"), transport(tcp)),
                            2 => crate::build_ack_for_non_2xx(&invite, &response_to(&invite, 486)),
                            _ => build_cancel(&invite),
                        };
                        w.layer.handle_request(r, from(tcp), now);
                    }
                    Op::Answer { which, status } => {
                        if let Some((id, req)) = w.servers.get(which).cloned() {
                            w.layer.send_response(id, response_to(&req, status), now);
                        }
                    }
                    Op::AckReceived { which } => {
                        if let Some((id, _)) = w.servers.get(which) {
                            w.layer.ack_received(*id);
                        }
                    }
                    Op::TransportError { which } => {
                        if let Some(id) = w.clients.get(which) {
                            w.layer.handle_transport_error(*id);
                        }
                    }
                    Op::Wait { millis } => w.wait(millis),
                }
                w.drain();
            }
            // The TU finally answers everything it was given; nothing may outlive the timers.
            for (id, req) in w.servers.clone() {
                let now = w.now;
                w.layer.send_response(id, response_to(&req, 500), now);
                w.drain();
            }
            // A client INVITE in Proceeding waits for its final response: the peer sends it.
            for branch in 0..6 {
                let now = w.now;
                let invite = request("INVITE", &format!("c{branch}"), Transport::Udp);
                w.layer.handle_response(response_to(&invite, 487), uas(Transport::Udp), now);
                w.drain();
            }
            w.wait(10 * 60 * 1000);
            prop_assert_eq!(w.layer.n_transactions(), 0);
            prop_assert_eq!(w.layer.n_timers(), 0);
            prop_assert!(w.layer.poll_timeout().is_none());
        }
    }
}
