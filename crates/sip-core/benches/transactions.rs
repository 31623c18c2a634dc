//! Hot paths of the transaction layer in steady state: one transaction per iteration while
//! virtual time advances 1 ms per iteration, so about 32,000 transactions (64*T1 of traffic)
//! stay alive and every timer path (Timer L, J, K) runs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sip_core::{Peer, TimerConfig, TransactionLayer, Transport, TxEvent, TxOutput};
use sip_msg::{Framing, HeaderName, Message, Request, parse};

fn template(method: &str) -> Request {
    let text = format!(
        "{method} sip:bob@10.0.0.2 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: bench\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match parse(text.as_bytes(), Framing::Datagram) {
        Ok(Message::Request(r)) => r,
        _ => unreachable!("the template parses"),
    }
}

fn with_branch(template: &Request, i: u64) -> Request {
    let mut r = template.clone();
    r.headers.set(
        HeaderName::Via,
        format!("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{i};rport"),
    );
    r.headers.set(HeaderName::CallId, format!("bench-{i}"));
    r
}

fn drain(layer: &mut TransactionLayer) -> Option<TxEvent> {
    let mut event = None;
    while let Some(o) = layer.poll_output() {
        match o {
            TxOutput::Transmit { bytes, .. } => {
                black_box(bytes);
            }
            TxOutput::Event(e) => event = Some(e),
        }
    }
    event
}

fn transactions(c: &mut Criterion) {
    let peer = Peer {
        transport: Transport::Udp,
        addr: "10.0.0.1:5060".parse().expect("address"),
    };
    let mut group = c.benchmark_group("transactions");
    group.throughput(Throughput::Elements(1));

    // UAS: INVITE in, 200 out, ACK in (TU reports it), Timer L ends it.
    let invite = template("INVITE");
    let ack = template("ACK");
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let mut now = Instant::now();
    let mut i = 0u64;
    group.bench_function("uas_invite_200_ack", |bench| {
        bench.iter(|| {
            i += 1;
            now += Duration::from_millis(1);
            layer.handle_timeout(now);
            drain(&mut layer);
            let request = with_branch(&invite, i);
            let response = request.make_response(200, "OK", Some("t"));
            layer.handle_request(request, peer, now);
            let Some(TxEvent::Request { id, .. }) = drain(&mut layer) else {
                unreachable!("new INVITE")
            };
            layer.send_response(id, response, now);
            drain(&mut layer);
            layer.handle_request(with_branch(&ack, i + (1 << 40)), peer, now);
            drain(&mut layer);
            if let Some(id) = layer.find_invite_server(&format!("bench-{i}"), 1) {
                layer.ack_received(id);
            }
            black_box(layer.n_transactions())
        })
    });

    // UAC: OPTIONS out, 200 in, Timer K ends it.
    let options = template("OPTIONS");
    let mut layer = TransactionLayer::new(TimerConfig::default());
    group.bench_function("uac_options_200", |bench| {
        bench.iter(|| {
            i += 1;
            now += Duration::from_millis(1);
            layer.handle_timeout(now);
            drain(&mut layer);
            let request = with_branch(&options, i);
            let response = request.make_response(200, "OK", Some("t"));
            layer.send_request(request, peer, now);
            drain(&mut layer);
            layer.handle_response(response, peer, now);
            drain(&mut layer);
            black_box(layer.n_transactions())
        })
    });
    group.finish();
}

criterion_group!(benches, transactions);
criterion_main!(benches);
