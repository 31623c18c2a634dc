//! The public API end to end: a phone on leg A sends a DTMF digit and G.711 audio through the
//! relay; leg B's phone decodes what arrives. Time and sockets are simulated.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media::g711::Law;
use media::telephone_event::{Receiver, Sender, symbol_event};
use media::{Channel, Forward, LegId, Relay, RelayConfig, RtpPacket, inspect, write_rtp};

const TELEPHONE_EVENT: u8 = 101;

#[test]
fn digit_and_audio_cross_the_relay_unchanged() {
    let phone_a: SocketAddr = "203.0.113.10:4000".parse().unwrap();
    let phone_b: SocketAddr = "198.51.100.20:5000".parse().unwrap();
    let mut now = Instant::now();
    let mut relay = Relay::new(RelayConfig::default(), now);
    relay.set_remote(LegId::A, Some(phone_a), None);
    relay.set_remote(LegId::B, Some(phone_b), None);
    let mut receiver = Receiver::default();
    let mut buf = [0u8; 200];
    let mut seq = 1000u16;
    let mut heard = Vec::new();

    // Send one datagram from phone A; return what phone B receives.
    let mut send = |payload_type: u8, marker: bool, timestamp: u32, payload: &[u8], now| {
        seq = seq.wrapping_add(1);
        let packet = RtpPacket {
            payload_type,
            marker,
            sequence_number: seq,
            timestamp,
            ssrc: 0x1234_5678,
            payload,
        };
        let n = write_rtp(&packet, &mut buf).unwrap();
        let forward = relay.on_datagram(LegId::A, Channel::Rtp, phone_a, &buf[..n], now);
        assert_eq!(
            forward,
            Forward::To {
                leg: LegId::B,
                channel: Channel::Rtp,
                addr: phone_b
            }
        );
        // The switch sends the same bytes: parse them as phone B would.
        match inspect(&buf[..n]).unwrap() {
            media::Packet::Rtp(received) => {
                assert_eq!(received, packet);
                buf[..n].to_vec()
            }
            media::Packet::Rtcp(_) => unreachable!("we sent RTP"),
        }
    };

    // 100 ms of a tone as PCMU, then the digit '#', then more audio.
    let samples: Vec<i16> = (0..160).map(|i| ((i % 16) * 1000 - 8000) as i16).collect();
    let mut frame = [0u8; 160];
    Law::Pcmu.encode(&samples, &mut frame);
    let mut timestamp = 0u32;
    for _ in 0..5 {
        let bytes = send(0, false, timestamp, &frame, now);
        let mut decoded = [0i16; 160];
        Law::Pcmu.decode(&bytes[12..], &mut decoded);
        for (d, s) in decoded.iter().zip(&samples) {
            assert!((i32::from(*d) - i32::from(*s)).abs() <= 256, "{d} vs {s}");
        }
        timestamp += 160;
        now += Duration::from_millis(20);
    }
    let event = symbol_event('#').unwrap();
    for packet in Sender::new(event, 10, timestamp, 800, 160) {
        let payload = packet.payload.to_bytes();
        let bytes = send(
            TELEPHONE_EVENT,
            packet.marker,
            packet.timestamp,
            &payload,
            now,
        );
        let received = media::packet::parse_rtp(&bytes).unwrap();
        receiver.on_packet(&received, now);
        while let Some(digit) = receiver.poll_digit() {
            heard.push(digit.symbol().unwrap());
        }
        now += Duration::from_millis(20);
    }
    assert_eq!(heard, ['#']);
    let stats = relay.stats(LegId::A);
    assert_eq!((stats.forwarded_packets, stats.lost), (5 + 7, 0));
    assert_eq!(
        relay.poll_timeout(),
        Some(now - Duration::from_millis(20) + Duration::from_secs(60))
    );
}
