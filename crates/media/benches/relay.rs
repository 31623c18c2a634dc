//! Hot paths of the media crate: one relayed packet, and G.711 on one 20 ms frame.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use media::g711::Law;
use media::{Channel, LegId, Relay, RelayConfig};

/// A 20 ms PCMU packet: 12-byte header and 160 bytes of payload.
fn packet(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut out = vec![0x80, 0];
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&[0xff; 160]);
    out
}

fn relay(c: &mut Criterion) {
    let a: SocketAddr = "203.0.113.10:4000".parse().unwrap();
    let b: SocketAddr = "198.51.100.20:5000".parse().unwrap();
    let start = Instant::now();
    let mut relay = Relay::new(RelayConfig::default(), start);
    relay.set_remote(LegId::A, Some(a), None);
    relay.set_remote(LegId::B, Some(b), None);
    let mut bytes = packet(0, 0xabcd);
    let mut seq = 0u16;
    let mut now = start;
    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(1));
    group.bench_function("on_datagram_rtp", |bench| {
        bench.iter(|| {
            // Fresh sequence number and time per packet, as in a real stream.
            seq = seq.wrapping_add(1);
            bytes[2..4].copy_from_slice(&seq.to_be_bytes());
            now += Duration::from_micros(20);
            black_box(relay.on_datagram(LegId::A, Channel::Rtp, a, black_box(&bytes), now))
        })
    });
    let stranger: SocketAddr = "192.0.2.66:9999".parse().unwrap();
    group.bench_function("on_datagram_dropped_stranger", |bench| {
        bench.iter(|| {
            black_box(relay.on_datagram(LegId::B, Channel::Rtp, stranger, black_box(&bytes), now))
        })
    });
    group.bench_function("inspect", |bench| {
        bench.iter(|| black_box(media::inspect(black_box(&bytes))))
    });
    group.finish();
}

fn g711(c: &mut Criterion) {
    // A 20 ms frame at 8 kHz: 160 samples of a loud 1 kHz-ish sawtooth.
    let samples: Vec<i16> = (0..160)
        .map(|i| ((i * 1637) % 65536 - 32768) as i16)
        .collect();
    let mut codes = [0u8; 160];
    let mut decoded = [0i16; 160];
    let mut group = c.benchmark_group("g711_frame_160");
    group.throughput(Throughput::Elements(160));
    for law in [Law::Pcmu, Law::Pcma] {
        group.bench_function(format!("{law:?}_encode"), |bench| {
            bench.iter(|| law.encode(black_box(&samples), black_box(&mut codes)))
        });
        law.encode(&samples, &mut codes);
        group.bench_function(format!("{law:?}_decode"), |bench| {
            bench.iter(|| law.decode(black_box(&codes), black_box(&mut decoded)))
        });
    }
    group.finish();
}

criterion_group!(benches, relay, g711);
criterion_main!(benches);
