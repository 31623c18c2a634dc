//! RTP load generator for `bench/rtp_relay.sh`.
//!
//! Reads a legs file (one leg a line: `LOCAL_PORT RELAY_PORT`, both on 127.0.0.1): binds each
//! local port, sends 20 ms PCMU packets (172 bytes) to the relay port at `--pps` per leg, paced
//! evenly over time, and counts every datagram that arrives on any leg. The relay forwards what
//! one leg of a call sends to the other, so with every leg sending, received should equal sent.
//!
//! Usage: rtpload LEGS_FILE SECONDS [PPS]
//! Prints: `legs=N seconds=S sent=X received=Y lost=Z loss_pct=P late_drain_ms=D`.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: rtpload LEGS_FILE SECONDS [PPS]");
        std::process::exit(2);
    }
    let legs_text = std::fs::read_to_string(&args[1]).expect("legs file");
    let seconds: f64 = args[2].parse().expect("seconds");
    let pps: f64 = args.get(3).map_or(50.0, |s| s.parse().expect("pps"));

    let mut poll = Poll::new().expect("epoll");
    let mut socks = Vec::new();
    let mut dests = Vec::new();
    for (i, line) in legs_text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let mut it = line.split_whitespace();
        let local: u16 = it.next().and_then(|s| s.parse().ok()).expect("local port");
        let relay: u16 = it.next().and_then(|s| s.parse().ok()).expect("relay port");
        let mut s = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], local))).unwrap_or_else(|e| panic!("bind {local}: {e}"));
        poll.registry().register(&mut s, Token(i), Interest::READABLE).expect("register");
        socks.push(s);
        dests.push(SocketAddr::from(([127, 0, 0, 1], relay)));
    }
    let n = socks.len();
    if n == 0 {
        eprintln!("no legs");
        std::process::exit(2);
    }

    // RTP: V=2, PT=0 (PCMU), 160 bytes of payload (20 ms).
    let mut pkt = [0xffu8; 172];
    pkt[0] = 0x80;
    pkt[1] = 0;
    let period = Duration::from_secs_f64(1.0 / pps);
    let total_rounds = (seconds * pps).round() as u64;
    let start = Instant::now();
    let mut events = Events::with_capacity(4096);
    let mut buf = [0u8; 2048];
    let (mut sent, mut received, mut send_errors) = (0u64, 0u64, 0u64);
    // Leg i sends its k-th packet at start + k*period + i*period/n (evenly spread).
    let mut next_leg = 0usize;
    let mut round = 0u64;
    let slot = period.as_secs_f64() / n as f64;
    let send_end;
    loop {
        let now = Instant::now();
        // Send everything that is due.
        while round < total_rounds {
            let due = start + Duration::from_secs_f64(round as f64 * period.as_secs_f64() + next_leg as f64 * slot);
            if due > now {
                break;
            }
            let seq = round as u16;
            let ts = (round as u32).wrapping_mul(160);
            let ssrc = 0x5000_0000u32 + next_leg as u32;
            pkt[2..4].copy_from_slice(&seq.to_be_bytes());
            pkt[4..8].copy_from_slice(&ts.to_be_bytes());
            pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
            match socks[next_leg].send_to(&pkt, dests[next_leg]) {
                Ok(_) => sent += 1,
                Err(_) => send_errors += 1,
            }
            next_leg += 1;
            if next_leg == n {
                next_leg = 0;
                round += 1;
            }
        }
        if round >= total_rounds {
            send_end = Instant::now();
            break;
        }
        let due = start + Duration::from_secs_f64(round as f64 * period.as_secs_f64() + next_leg as f64 * slot);
        let wait = due.saturating_duration_since(Instant::now()).min(Duration::from_millis(5));
        received += drain(&mut poll, &mut events, &socks, &mut buf, Some(wait));
    }
    // Let the last packets through the relay (up to 1 s, until nothing arrives for 200 ms).
    let mut quiet_since = Instant::now();
    while send_end.elapsed() < Duration::from_secs(1) && quiet_since.elapsed() < Duration::from_millis(200) {
        let got = drain(&mut poll, &mut events, &socks, &mut buf, Some(Duration::from_millis(20)));
        if got > 0 {
            quiet_since = Instant::now();
        }
        received += got;
    }
    let gen_drops = socket_drops(&socks);
    let lost = sent.saturating_sub(received);
    let loss = if sent > 0 { 100.0 * lost as f64 / sent as f64 } else { 0.0 };
    let actual = send_end.duration_since(start).as_secs_f64();
    println!(
        "legs={n} seconds={actual:.2} sent={sent} received={received} lost={lost} loss_pct={loss:.3} send_errors={send_errors} pps_offered={:.0} rtpload_socket_drops={gen_drops}",
        sent as f64 / actual
    );
}

/// Datagrams the kernel dropped on our sockets (full receive buffer): the `drops` column of
/// /proc/net/udp for our local ports. Read before the sockets close.
fn socket_drops(socks: &[UdpSocket]) -> u64 {
    let ports: std::collections::HashSet<u16> = socks.iter().filter_map(|s| s.local_addr().ok()).map(|a| a.port()).collect();
    let Ok(table) = std::fs::read_to_string("/proc/net/udp") else { return 0 };
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            ports.contains(&port).then(|| f.last()?.parse::<u64>().ok()).flatten()
        })
        .sum()
}

fn drain(poll: &mut Poll, events: &mut Events, socks: &[UdpSocket], buf: &mut [u8], timeout: Option<Duration>) -> u64 {
    let mut got = 0;
    if poll.poll(events, timeout).is_err() {
        return 0;
    }
    for ev in events.iter() {
        let s = &socks[ev.token().0];
        loop {
            match s.recv_from(buf) {
                Ok(_) => got += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
    }
    got
}
