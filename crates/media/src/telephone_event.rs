//! RFC 4733 telephone-events: the 4-byte payload, a [`Receiver`] that turns a stream of event
//! packets into each digit exactly once, and a [`Sender`] that produces the packets for one
//! digit (used by the test harness and by IVR prompts that send DTMF).
//!
//! The caller demultiplexes by payload type (the telephone-event type negotiated in SDP) and
//! assigns RTP sequence numbers; this module deals in timestamps and payloads only.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::packet::RtpPacket;

/// Length of one event block (RFC 4733 §2.3).
pub const PAYLOAD_LEN: usize = 4;

/// RFC 4733 §2.5.1.4: the final packet of an event is sent three times.
pub const END_REPEATS: u8 = 3;

/// The largest duration one segment can express (RFC 4733 §2.5.1.3).
pub const MAX_SEGMENT_DURATION: u16 = u16::MAX;

/// How long [`Receiver`] waits for more packets of an event whose end it has not seen.
pub const DEFAULT_END_TIMEOUT: Duration = Duration::from_millis(500);

/// A payload too short to hold an event block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("telephone-event payload of {0} bytes, need 4")]
pub struct PayloadTooShort(pub usize);

/// One telephone-event block (RFC 4733 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TelephoneEvent {
    /// Event code: 0–9, 10 `*`, 11 `#`, 12–15 `A`–`D`, 16 flash (RFC 4733 §3.2).
    pub event: u8,
    /// The E bit: this packet reports the end of the event.
    pub end: bool,
    /// Power level in −dBm0, 0–63 (6 bits).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units, from the packet's timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Read the first block of a payload; the R bit is ignored as §2.3.4 requires.
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, PayloadTooShort> {
        let Some(&[event, flags, hi, lo]) = payload.first_chunk::<PAYLOAD_LEN>() else {
            return Err(PayloadTooShort(payload.len()));
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([hi, lo]),
        })
    }

    /// The wire form; R is sent as zero and the volume is cut to 6 bits.
    pub fn to_bytes(self) -> [u8; PAYLOAD_LEN] {
        let [hi, lo] = self.duration.to_be_bytes();
        let flags = if self.end { 0x80 } else { 0 } | (self.volume & 0x3f);
        [self.event, flags, hi, lo]
    }
}

/// The keypad symbol of a DTMF event code (RFC 4733 §3.2), or `None` for other events.
pub fn event_symbol(event: u8) -> Option<char> {
    match event {
        0..=9 => char::from_digit(u32::from(event), 10),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + (event - 12))),
        _ => None,
    }
}

/// The DTMF event code of a keypad symbol (`0`–`9`, `*`, `#`, `A`–`D`, case-insensitive).
pub fn symbol_event(symbol: char) -> Option<u8> {
    match symbol.to_ascii_uppercase() {
        '*' => Some(10),
        '#' => Some(11),
        c @ 'A'..='D' => Some(c as u8 - b'A' + 12),
        c => c.to_digit(10).and_then(|d| u8::try_from(d).ok()),
    }
}

/// One event reported by [`Receiver`], exactly once per key press.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digit {
    /// The event code; see [`Digit::symbol`].
    pub event: u8,
    /// RTP timestamp of the event's first segment (its start).
    pub timestamp: u32,
    /// Total duration in timestamp units, summed over segments, as far as received.
    pub duration: u32,
    /// Whether an end packet was seen; `false` if it was reported because a newer event
    /// began or [`Receiver::handle_timeout`] gave up waiting.
    pub end_seen: bool,
}

impl Digit {
    /// The keypad symbol, if the event is a DTMF digit.
    pub fn symbol(&self) -> Option<char> {
        event_symbol(self.event)
    }
}

/// The event the receiver is following and has not reported yet.
#[derive(Clone, Copy, Debug)]
struct Current {
    event: u8,
    /// Timestamp of the first segment.
    start: u32,
    /// Timestamp of the segment now running.
    segment: u32,
    /// Duration reported in the running segment so far.
    segment_duration: u16,
    /// Sum of the finished segments.
    prior_duration: u32,
    last_packet: Instant,
}

/// Turns telephone-event packets into [`Digit`]s, each exactly once (RFC 4733 §2.5.2).
///
/// Packets are keyed by RTP timestamp:
///
/// - Packets with the timestamp of the event being followed update it; the first end packet
///   reports it, and the redundant ends after it are ignored.
/// - The start packet (marker bit) is not needed; any packet of an event begins it.
/// - A packet with a newer timestamp reports an unfinished event first (its end was lost),
///   unless it continues it: the same code at most 0xFFFF later, after a segment that had
///   reached at least half the maximum duration (§2.5.1.3 long events; an ordinary key press
///   never runs that long, so two presses of one key are not merged). Segments that continue
///   an event already reported (E bit set at a segment end by some senders) are absorbed.
/// - Packets with a timestamp at or before the last reported event are late and ignored.
/// - A new SSRC starts afresh, as timestamps of different sources cannot be compared.
/// - [`Receiver::handle_timeout`] reports an event whose packets stopped without an end.
#[derive(Clone, Debug)]
pub struct Receiver {
    end_timeout: Duration,
    ssrc: Option<u32>,
    current: Option<Current>,
    /// The last reported event: its last segment's timestamp, code and duration.
    last_reported: Option<Segment>,
    digits: VecDeque<Digit>,
}

/// One segment of an event: where it starts and how long it has run.
#[derive(Clone, Copy, Debug)]
struct Segment {
    timestamp: u32,
    event: u8,
    duration: u16,
}

impl Segment {
    /// RFC 4733 §2.5.1.3: whether a packet for `event` at `timestamp` starts the next segment
    /// of this long event rather than a new press. The next segment starts at most 0xFFFF
    /// later, and this one must have reached half the maximum: ordinary presses never run
    /// that long, so two presses of one key are never merged.
    fn continued_by(&self, timestamp: u32, event: u8) -> bool {
        let gap = timestamp.wrapping_sub(self.timestamp);
        event == self.event
            && gap != 0
            && gap <= u32::from(MAX_SEGMENT_DURATION)
            && self.duration >= MAX_SEGMENT_DURATION / 2
    }
}

/// Whether timestamp `a` comes after `b` in RTP serial-number order.
fn is_after(a: u32, b: u32) -> bool {
    let diff = a.wrapping_sub(b);
    diff != 0 && diff < 1 << 31
}

impl Receiver {
    /// A receiver that reports an unfinished event after `end_timeout` without packets.
    pub fn new(end_timeout: Duration) -> Receiver {
        Receiver {
            end_timeout,
            ssrc: None,
            current: None,
            last_reported: None,
            // Two reports are the most one packet can cause; reserve so the steady state
            // never allocates.
            digits: VecDeque::with_capacity(4),
        }
    }

    /// Feed one RTP packet whose payload type is telephone-event.
    pub fn on_packet(&mut self, packet: &RtpPacket<'_>, now: Instant) {
        let Ok(block) = TelephoneEvent::parse(packet.payload) else {
            return; // Malformed payload: peer misbehaviour, dropped.
        };
        if self.ssrc != Some(packet.ssrc) {
            self.flush();
            self.ssrc = Some(packet.ssrc);
            self.last_reported = None;
        }
        let timestamp = packet.timestamp;
        if let Some(last) = &mut self.last_reported {
            if !is_after(timestamp, last.timestamp) {
                return; // Late or redundant packet of an event already reported.
            }
            if self.current.is_none() && last.continued_by(timestamp, block.event) {
                // More segments of a long event already reported (a sender that set the E bit
                // at a segment end): absorb them.
                last.timestamp = timestamp;
                last.duration = block.duration;
                return;
            }
        }
        if let Some(current) = &mut self.current {
            if timestamp == current.segment {
                if block.event != current.event {
                    return; // One timestamp, two codes: malformed, ignored.
                }
                current.segment_duration = current.segment_duration.max(block.duration);
                current.last_packet = now;
                if block.end {
                    self.report(true);
                }
                return;
            }
            if !is_after(timestamp, current.segment) {
                return; // A late packet from before the running segment.
            }
            let running = Segment {
                timestamp: current.segment,
                event: current.event,
                duration: current.segment_duration,
            };
            if running.continued_by(timestamp, block.event) {
                let gap = timestamp.wrapping_sub(current.segment);
                // RFC 4733 §2.5.1.3: the next segment of a long event.
                current.prior_duration = current.prior_duration.saturating_add(gap);
                current.segment = timestamp;
                current.segment_duration = block.duration;
                current.last_packet = now;
                if block.end {
                    self.report(true);
                }
                return;
            }
            // A new event began before we saw the end of this one.
            self.report(false);
        }
        self.current = Some(Current {
            event: block.event,
            start: timestamp,
            segment: timestamp,
            segment_duration: block.duration,
            prior_duration: 0,
            last_packet: now,
        });
        if block.end {
            self.report(true);
        }
    }

    /// Move the event being followed to the output queue.
    fn report(&mut self, end_seen: bool) {
        if let Some(current) = self.current.take() {
            self.last_reported = Some(Segment {
                timestamp: current.segment,
                event: current.event,
                duration: current.segment_duration,
            });
            self.digits.push_back(Digit {
                event: current.event,
                timestamp: current.start,
                duration: current
                    .prior_duration
                    .saturating_add(u32::from(current.segment_duration)),
                end_seen,
            });
        }
    }

    /// Report the event being followed now, without waiting (e.g. when the call ends).
    pub fn flush(&mut self) {
        self.report(false);
    }

    /// The next reported digit, oldest first.
    #[must_use]
    pub fn poll_digit(&mut self) -> Option<Digit> {
        self.digits.pop_front()
    }

    /// When [`Receiver::handle_timeout`] should run, if an unfinished event is pending.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let current = self.current.as_ref()?;
        current.last_packet.checked_add(self.end_timeout)
    }

    /// Report a pending event whose packets stopped arriving without an end packet.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|deadline| now >= deadline) {
            self.report(false);
        }
    }
}

impl Default for Receiver {
    /// A receiver with [`DEFAULT_END_TIMEOUT`].
    fn default() -> Receiver {
        Receiver::new(DEFAULT_END_TIMEOUT)
    }
}

/// One packet to send, as produced by [`Sender`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventPacket {
    /// The RTP marker bit: set on the first packet of the event only (§2.5.1.1).
    pub marker: bool,
    /// The RTP timestamp: the start of the event's current segment.
    pub timestamp: u32,
    /// The payload block.
    pub payload: TelephoneEvent,
    /// When to send it, in timestamp units after the event's start.
    pub send_at: u32,
}

/// The packets that report one event (RFC 4733 §2.5.1), as an iterator.
///
/// Packet `k` goes out `k` intervals after the start and reports the duration so far; the
/// first has the marker bit. The last reports the full duration with the E bit and is sent
/// [`END_REPEATS`] times, one interval apart. Events longer than 0xFFFF units are split into
/// segments (§2.5.1.3): each segment ends at duration 0xFFFF without the E bit, and the next
/// one has the timestamp advanced by 0xFFFF and no marker.
#[derive(Clone, Debug)]
pub struct Sender {
    event: u8,
    volume: u8,
    start: u32,
    total: u32,
    interval: u32,
    /// Timestamp units reported so far.
    elapsed: u32,
    /// Offset of the running segment from the start.
    segment_start: u32,
    started: bool,
    ends_sent: u8,
}

impl Sender {
    /// Packets for `event` lasting `duration` units from `start`, one every `interval` units
    /// (at least 1; 160 is 20 ms at 8 kHz).
    pub fn new(event: u8, volume: u8, start: u32, duration: u32, interval: u16) -> Sender {
        Sender {
            event,
            volume: volume & 0x3f,
            start,
            total: duration,
            interval: u32::from(interval.max(1)),
            elapsed: 0,
            segment_start: 0,
            started: false,
            ends_sent: 0,
        }
    }

    fn packet(&self, marker: bool, end: bool, send_at: u32) -> EventPacket {
        let segment_duration = self.elapsed - self.segment_start;
        EventPacket {
            marker,
            timestamp: self.start.wrapping_add(self.segment_start),
            payload: TelephoneEvent {
                event: self.event,
                end,
                volume: self.volume,
                // Within one segment by construction.
                duration: u16::try_from(segment_duration).unwrap_or(MAX_SEGMENT_DURATION),
            },
            send_at,
        }
    }
}

impl Iterator for Sender {
    type Item = EventPacket;

    fn next(&mut self) -> Option<EventPacket> {
        if self.ends_sent >= END_REPEATS {
            return None;
        }
        if self.ends_sent > 0 {
            let send_at = self
                .total
                .saturating_add(u32::from(self.ends_sent) * self.interval);
            self.ends_sent += 1;
            return Some(self.packet(false, true, send_at));
        }
        let boundary = self
            .segment_start
            .saturating_add(u32::from(MAX_SEGMENT_DURATION));
        self.elapsed = self
            .elapsed
            .saturating_add(self.interval)
            .min(self.total)
            .min(boundary);
        let end = self.elapsed >= self.total;
        let packet = self.packet(!self.started, end, self.elapsed);
        self.started = true;
        if end {
            self.ends_sent = 1;
        } else if self.elapsed == boundary {
            self.segment_start = boundary;
        }
        Some(packet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fmt::Write;

    #[test]
    fn payload_round_trip_and_fields() {
        let block = TelephoneEvent::parse(&[0x0b, 0x8a, 0x03, 0x20]).unwrap();
        assert_eq!(
            block,
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(block.to_bytes(), [0x0b, 0x8a, 0x03, 0x20]);
        // The R bit is ignored on receipt and sent as zero.
        let with_r = TelephoneEvent::parse(&[1, 0x4a, 0, 160]).unwrap();
        assert_eq!((with_r.end, with_r.volume), (false, 10));
        assert_eq!(with_r.to_bytes(), [1, 0x0a, 0, 160]);
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), Err(PayloadTooShort(3)));
        let symbols: String = (0..=17).filter_map(event_symbol).collect();
        assert_eq!(symbols, "0123456789*#ABCD");
        for event in 0..16 {
            assert_eq!(symbol_event(event_symbol(event).unwrap()), Some(event));
        }
        assert_eq!(symbol_event('d'), Some(15));
        assert_eq!(symbol_event('x'), None);
    }

    fn describe(packets: impl Iterator<Item = EventPacket>) -> String {
        let mut out = String::new();
        for p in packets {
            writeln!(
                out,
                "@{} ts={} m={} {}{} dur={}",
                p.send_at,
                p.timestamp,
                u8::from(p.marker),
                p.payload.event,
                if p.payload.end { " E" } else { "" },
                p.payload.duration
            )
            .unwrap();
        }
        out
    }

    #[test]
    fn sender_packet_sequence() {
        assert_eq!(
            describe(Sender::new(5, 10, 1000, 560, 160)),
            "\
@160 ts=1000 m=1 5 dur=160
@320 ts=1000 m=0 5 dur=320
@480 ts=1000 m=0 5 dur=480
@560 ts=1000 m=0 5 E dur=560
@720 ts=1000 m=0 5 E dur=560
@880 ts=1000 m=0 5 E dur=560
"
        );
        // A long event crosses a segment boundary at 0xFFFF (§2.5.1.3).
        let long = describe(Sender::new(1, 0, u32::MAX - 10, 65535 + 300, 16000));
        assert_eq!(
            long,
            "\
@16000 ts=4294967285 m=1 1 dur=16000
@32000 ts=4294967285 m=0 1 dur=32000
@48000 ts=4294967285 m=0 1 dur=48000
@64000 ts=4294967285 m=0 1 dur=64000
@65535 ts=4294967285 m=0 1 dur=65535
@65835 ts=65524 m=0 1 E dur=300
@81835 ts=65524 m=0 1 E dur=300
@97835 ts=65524 m=0 1 E dur=300
"
        );
        assert_eq!(Sender::new(1, 0, 0, 0, 160).count(), 3);
    }

    /// A packet as the receiver sees it, and how long after the previous one it arrives.
    #[derive(Clone)]
    struct Arrival {
        ssrc: u32,
        timestamp: u32,
        block: Vec<u8>,
        after_ms: u64,
    }

    fn arrival(timestamp: u32, event: u8, end: bool, duration: u16) -> Arrival {
        Arrival {
            ssrc: 1,
            timestamp,
            block: TelephoneEvent {
                event,
                end,
                volume: 10,
                duration,
            }
            .to_bytes()
            .to_vec(),
            after_ms: 20,
        }
    }

    /// Feed arrivals (running timeouts as time passes); return the digits as a string.
    fn receive(arrivals: impl IntoIterator<Item = Arrival>) -> String {
        let mut now = Instant::now();
        let mut receiver = Receiver::default();
        let mut out = Vec::new();
        let drain = |receiver: &mut Receiver, out: &mut Vec<String>| {
            while let Some(d) = receiver.poll_digit() {
                out.push(format!(
                    "{}@{}/{}{}",
                    d.symbol().unwrap_or('?'),
                    d.timestamp,
                    d.duration,
                    if d.end_seen { "" } else { " (no end)" }
                ));
            }
        };
        for a in arrivals {
            now += Duration::from_millis(a.after_ms);
            receiver.handle_timeout(now);
            let packet = RtpPacket {
                payload_type: 101,
                marker: false,
                sequence_number: 0,
                timestamp: a.timestamp,
                ssrc: a.ssrc,
                payload: &a.block,
            };
            receiver.on_packet(&packet, now);
            drain(&mut receiver, &mut out);
        }
        // Let any pending event time out.
        if let Some(deadline) = receiver.poll_timeout() {
            receiver.handle_timeout(deadline);
        }
        drain(&mut receiver, &mut out);
        out.join(" ")
    }

    fn press(event: u8, start: u32, duration: u32) -> Vec<Arrival> {
        Sender::new(event, 10, start, duration, 160)
            .map(|p| Arrival {
                ssrc: 1,
                timestamp: p.timestamp,
                block: p.payload.to_bytes().to_vec(),
                after_ms: 20,
            })
            .collect()
    }

    #[test]
    fn receiver_reports_each_press_once() {
        // Plain press with three end packets.
        assert_eq!(receive(press(1, 1000, 800)), "1@1000/800");
        // Two presses back to back, then a late redundant end of the first.
        let mut arrivals = press(1, 1000, 800);
        arrivals.extend(press(2, 3000, 640));
        arrivals.push(arrival(1000, 1, true, 800));
        assert_eq!(receive(arrivals), "1@1000/800 2@3000/640");
        // Start packet lost: the first update begins the event.
        let mut arrivals = press(3, 1000, 800);
        arrivals.remove(0);
        assert_eq!(receive(arrivals), "3@1000/800");
        // All end packets lost, next press reports the first without an end.
        let mut arrivals = press(4, 1000, 800);
        arrivals.truncate(4);
        arrivals.extend(press(4, 3000, 800));
        assert_eq!(receive(arrivals), "4@1000/640 (no end) 4@3000/800");
        // All end packets lost and nothing follows: the timeout reports it.
        let mut arrivals = press(5, 1000, 800);
        arrivals.truncate(4);
        assert_eq!(receive(arrivals), "5@1000/640 (no end)");
        // Only the end packets arrive.
        let arrivals: Vec<_> = press(6, 1000, 800).into_iter().skip(5).collect();
        assert_eq!(receive(arrivals), "6@1000/800");
        // An update arriving after the timeout reported the event is ignored.
        let mut arrivals = press(7, 1000, 800);
        arrivals.truncate(3);
        arrivals.push(Arrival {
            after_ms: 2000,
            ..arrival(1000, 7, false, 640)
        });
        arrivals.push(arrival(1000, 7, true, 800));
        assert_eq!(receive(arrivals), "7@1000/480 (no end)");
        // Same timestamp, different code: ignored.
        let mut arrivals = press(8, 1000, 800);
        arrivals.insert(2, arrival(1000, 9, false, 400));
        assert_eq!(receive(arrivals), "8@1000/800");
        // Too-short payloads are ignored.
        let mut arrivals = press(9, 1000, 320);
        arrivals.insert(
            1,
            Arrival {
                block: vec![9, 0x80, 0],
                ..arrival(1000, 9, true, 1)
            },
        );
        assert_eq!(receive(arrivals), "9@1000/320");
    }

    #[test]
    fn receiver_joins_long_press_segments() {
        // 20 s at 8 kHz: three segments, timestamps wrap past u32::MAX too.
        let start = u32::MAX - 100_000;
        assert_eq!(
            receive(press(0, start, 160_000)),
            format!("0@{start}/160000")
        );
        // The packet that closes the first segment (duration 0xFFFF) is lost.
        let arrivals: Vec<_> = press(0, 50, 70_000)
            .into_iter()
            .filter(|a| TelephoneEvent::parse(&a.block).unwrap().duration != u16::MAX)
            .collect();
        assert_eq!(receive(arrivals), "0@50/70000");
    }

    #[test]
    fn receiver_absorbs_segments_after_an_early_end_bit() {
        // A sender that sets E at the end of the first segment too.
        let arrivals: Vec<_> = press(0, 50, 70_000)
            .into_iter()
            .map(|mut a| {
                if TelephoneEvent::parse(&a.block).unwrap().duration == u16::MAX {
                    a.block[1] |= 0x80;
                }
                a
            })
            .collect();
        assert_eq!(receive(arrivals), "0@50/65535");
    }

    #[test]
    fn new_ssrc_starts_afresh() {
        let mut arrivals = press(1, 90_000, 320);
        // The new source's timestamps are "older" but must not be ignored.
        arrivals.extend(
            press(2, 10, 320)
                .into_iter()
                .map(|a| Arrival { ssrc: 2, ..a }),
        );
        assert_eq!(receive(arrivals), "1@90000/320 2@10/320");
    }

    proptest! {
        /// Any digits, any loss that leaves at least one packet per press, duplicates and
        /// swapped neighbours: every press is reported once, in order.
        #[test]
        fn every_press_once(
            presses in proptest::collection::vec((0u8..16, 1u32..4000, 0u32..4000), 1..8),
            start: u32,
            keep in proptest::collection::vec(any::<bool>(), 0..400),
            dup in proptest::collection::vec(any::<bool>(), 0..400),
            swap in proptest::collection::vec(any::<bool>(), 0..400),
        ) {
            let mut expect = Vec::new();
            let mut arrivals = Vec::new();
            let mut ts = start;
            let mut i = 0;
            for (event, duration, pause) in presses {
                let mut packets = press(event, ts, duration);
                let n = packets.len();
                let mut kept = Vec::new();
                for (j, p) in packets.drain(..).enumerate() {
                    let keep_it = keep.get(i).copied().unwrap_or(true) || (j + 1 == n && kept.is_empty());
                    if keep_it {
                        if dup.get(i).copied().unwrap_or(false) {
                            kept.push(Arrival { after_ms: 0, ..p.clone() });
                        }
                        kept.push(p);
                    }
                    i += 1;
                }
                for k in 1..kept.len() {
                    if swap.get(i + k).copied().unwrap_or(false) {
                        kept.swap(k - 1, k);
                    }
                }
                arrivals.extend(kept);
                expect.push(event_symbol(event).unwrap());
                ts = ts.wrapping_add(duration + 160 + pause);
            }
            let got: String = receive(arrivals)
                .split(' ')
                .filter(|token| token.contains('@'))
                .filter_map(|d| d.chars().next())
                .collect();
            prop_assert_eq!(got, expect.into_iter().collect::<String>());
        }
    }
}
