//! One RTP leg per call side: a UDP socket that sends paced G.711 (or RFC 4733 events) to the
//! peer's SDP address and collects everything that arrives, so a test can compare what one
//! side sent with what the other received.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::error::HarnessError;

/// G.711 µ-law (RFC 3551).
pub const PCMU_PAYLOAD_TYPE: u8 = 0;
/// Samples (and bytes of G.711) in one 20 ms packet at 8 kHz.
pub const SAMPLES_PER_PACKET: usize = 160;
/// Packetisation time of the streams we send.
pub const PTIME: Duration = Duration::from_millis(20);

/// One RTP packet, sent or received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpRecord {
    /// Payload type.
    pub payload_type: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub sequence_number: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Destination (sent) or source (received).
    pub peer: SocketAddr,
}

/// Prints a 12-byte RTP header (version 2, no CSRC, no extension, no padding) and `payload`.
pub fn build_rtp(
    payload_type: u8,
    marker: bool,
    sequence_number: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + payload.len());
    out.push(0x80);
    out.push((u8::from(marker) << 7) | (payload_type & 0x7f));
    out.extend_from_slice(&sequence_number.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// `n` samples of a full-scale/2 sine at `frequency_hz`, starting at sample `offset`, µ-law coded.
pub fn pcmu_sine(frequency_hz: f64, offset: u64, n: usize) -> Vec<u8> {
    (0..n as u64)
        .map(|i| {
            let t = (offset + i) as f64 / 8000.0;
            let sample = (16_000.0 * (2.0 * std::f64::consts::PI * frequency_hz * t).sin()) as i16;
            media::g711::pcmu_encode(sample)
        })
        .collect()
}

/// A 160-byte payload that differs for every `(seed, index)`, so a relayed packet can be told
/// from any other one.
pub fn pattern_payload(seed: u8, index: u16) -> Vec<u8> {
    let [hi, lo] = index.to_be_bytes();
    (0..SAMPLES_PER_PACKET)
        .map(|j| match j {
            0 => seed,
            1 => hi,
            2 => lo,
            _ => (j as u8)
                .wrapping_mul(31)
                .wrapping_add(seed)
                .wrapping_add(lo),
        })
        .collect()
}

/// One side's RTP: its socket, its outgoing stream state and what it sent and received.
#[derive(Debug)]
pub struct RtpLeg {
    agent: String,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    remote: Option<SocketAddr>,
    /// Payload type of the audio we send.
    pub payload_type: u8,
    /// Payload type for RFC 4733 events, if negotiated.
    pub telephone_event_payload_type: Option<u8>,
    ssrc: u32,
    next_sequence: u16,
    next_timestamp: u32,
    started: bool,
    sent: Vec<RtpRecord>,
    received: Arc<Mutex<Vec<RtpRecord>>>,
    collector: JoinHandle<()>,
}

impl Drop for RtpLeg {
    fn drop(&mut self) {
        self.collector.abort();
    }
}

fn lock(m: &Mutex<Vec<RtpRecord>>) -> std::sync::MutexGuard<'_, Vec<RtpRecord>> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RtpLeg {
    /// Binds an RTP socket on `ip` (any port) and starts collecting what arrives on it.
    pub async fn bind(agent: &str, ip: IpAddr) -> Result<RtpLeg, HarnessError> {
        let io = |source| HarnessError::Io {
            agent: agent.to_owned(),
            source,
        };
        let socket = Arc::new(UdpSocket::bind(SocketAddr::new(ip, 0)).await.map_err(io)?);
        let local = socket.local_addr().map_err(io)?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let collector = tokio::spawn(collect(Arc::clone(&socket), Arc::clone(&received)));
        let seed = u64::from_str_radix(&crate::agent::random_hex()[..16], 16).unwrap_or(1);
        Ok(RtpLeg {
            agent: agent.to_owned(),
            socket,
            local,
            remote: None,
            payload_type: PCMU_PAYLOAD_TYPE,
            telephone_event_payload_type: None,
            ssrc: seed as u32,
            next_sequence: (seed >> 32) as u16,
            next_timestamp: (seed >> 16) as u32,
            started: false,
            sent: Vec::new(),
            received,
            collector,
        })
    }

    /// Where this leg receives RTP.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Where this leg sends RTP (from the peer's SDP), if known.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// Sets where to send RTP.
    pub fn set_remote(&mut self, remote: Option<SocketAddr>) {
        self.remote = remote;
    }

    /// This leg's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sends one audio packet now (marker on the first), advancing sequence and timestamp.
    pub async fn send_payload(&mut self, payload: &[u8]) -> Result<RtpRecord, HarnessError> {
        let marker = !self.started;
        let record = self
            .send_raw(self.payload_type, marker, self.next_timestamp, payload)
            .await?;
        self.started = true;
        self.next_timestamp = self.next_timestamp.wrapping_add(payload.len() as u32);
        Ok(record)
    }

    async fn send_raw(
        &mut self,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<RtpRecord, HarnessError> {
        let Some(remote) = self.remote else {
            return Err(HarnessError::Protocol {
                agent: self.agent.clone(),
                why: "no remote RTP address (no SDP from the peer yet)".into(),
            });
        };
        let sequence_number = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        let bytes = build_rtp(
            payload_type,
            marker,
            sequence_number,
            timestamp,
            self.ssrc,
            payload,
        );
        self.socket
            .send_to(&bytes, remote)
            .await
            .map_err(|source| HarnessError::Io {
                agent: self.agent.clone(),
                source,
            })?;
        let record = RtpRecord {
            payload_type,
            marker,
            sequence_number,
            timestamp,
            ssrc: self.ssrc,
            payload: payload.to_vec(),
            peer: remote,
        };
        self.sent.push(record.clone());
        Ok(record)
    }

    /// Sends each payload, one every [`PTIME`], and returns the packets sent.
    pub async fn send_stream(
        &mut self,
        payloads: impl IntoIterator<Item = Vec<u8>>,
    ) -> Result<Vec<RtpRecord>, HarnessError> {
        let mut tick = tokio::time::interval(PTIME);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut out = Vec::new();
        for payload in payloads {
            tick.tick().await;
            out.push(self.send_payload(&payload).await?);
        }
        Ok(out)
    }

    /// Sends `n` packets of a 1 kHz tone (continuing the phase across calls), paced at 20 ms.
    pub async fn send_tone(&mut self, n: usize) -> Result<Vec<RtpRecord>, HarnessError> {
        let start = self
            .sent
            .iter()
            .filter(|r| Some(r.payload_type) != self.telephone_event_payload_type)
            .count() as u64;
        let payloads: Vec<Vec<u8>> = (0..n as u64)
            .map(|k| {
                pcmu_sine(
                    1000.0,
                    (start + k) * SAMPLES_PER_PACKET as u64,
                    SAMPLES_PER_PACKET,
                )
            })
            .collect();
        self.send_stream(payloads).await
    }

    /// Sends `n` packets of [`pattern_payload`] with `seed`, paced at 20 ms.
    pub async fn send_pattern(&mut self, seed: u8, n: u16) -> Result<Vec<RtpRecord>, HarnessError> {
        self.send_stream((0..n).map(|k| pattern_payload(seed, k)))
            .await
    }

    /// Sends one RFC 4733 event (`0-9`, `*`, `#`, `A-D`) lasting `duration` timestamp units
    /// (160 = 20 ms), paced in real time, with the media crate's sender; audio resumes after it.
    pub async fn send_dtmf(
        &mut self,
        digit: char,
        duration: u32,
    ) -> Result<Vec<RtpRecord>, HarnessError> {
        let agent = self.agent.clone();
        let Some(pt) = self.telephone_event_payload_type else {
            return Err(HarnessError::Protocol {
                agent,
                why: "telephone-event was not negotiated".into(),
            });
        };
        let Some(event) = media::telephone_event::symbol_event(digit) else {
            return Err(HarnessError::Protocol {
                agent,
                why: format!("{digit:?} is not a DTMF symbol"),
            });
        };
        let start_ts = self.next_timestamp;
        let start = tokio::time::Instant::now();
        let mut out = Vec::new();
        for p in media::telephone_event::Sender::new(
            event,
            10,
            start_ts,
            duration,
            SAMPLES_PER_PACKET as u16,
        ) {
            tokio::time::sleep_until(start + Duration::from_micros(u64::from(p.send_at) * 125))
                .await;
            out.push(
                self.send_raw(pt, p.marker, p.timestamp, &p.payload.to_bytes())
                    .await?,
            );
        }
        self.next_timestamp = self.next_timestamp.wrapping_add(duration);
        Ok(out)
    }

    /// Every packet sent so far.
    pub fn sent(&self) -> &[RtpRecord] {
        &self.sent
    }

    /// Every RTP packet received so far (RTCP and garbage are not kept).
    pub fn received(&self) -> Vec<RtpRecord> {
        lock(&self.received).clone()
    }

    /// Waits until at least `n` packets have arrived (or `timeout` passes) and returns all of them.
    pub async fn wait_received(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RtpRecord>, HarnessError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return Ok(got);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    agent: self.agent.clone(),
                    what: format!("{n} RTP packets on {} (got {})", self.local, got.len()),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The DTMF digits received as RFC 4733 events (one per event timestamp, in arrival order).
    pub fn received_digits(&self) -> String {
        let Some(pt) = self.telephone_event_payload_type else {
            return String::new();
        };
        let mut seen = Vec::new();
        let mut digits = String::new();
        for r in lock(&self.received).iter().filter(|r| r.payload_type == pt) {
            let Ok(event) = media::telephone_event::TelephoneEvent::parse(&r.payload) else {
                continue;
            };
            if seen.contains(&(r.ssrc, r.timestamp)) {
                continue;
            }
            seen.push((r.ssrc, r.timestamp));
            digits.extend(media::telephone_event::event_symbol(event.event));
        }
        digits
    }

    /// Waits `quiet` and returns everything received by then (for "nothing more arrives" checks).
    pub async fn settle(&self, quiet: Duration) -> Vec<RtpRecord> {
        tokio::time::sleep(quiet).await;
        self.received()
    }
}

async fn collect(socket: Arc<UdpSocket>, into: Arc<Mutex<Vec<RtpRecord>>>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            // ICMP errors surface here on some systems; keep listening.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let Some(bytes) = buf.get(..n) else { continue };
        if let Ok(media::Packet::Rtp(p)) = media::inspect(bytes) {
            let record = RtpRecord {
                payload_type: p.payload_type,
                marker: p.marker,
                sequence_number: p.sequence_number,
                timestamp: p.timestamp,
                ssrc: p.ssrc,
                payload: p.payload.to_vec(),
                peer: from,
            };
            lock(&into).push(record);
        }
    }
}

/// How a received stream compares with the sent one, packet by packet (matched on sequence
/// number; everything else must be untouched by a relay).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamReport {
    /// Packets sent.
    pub n_sent: usize,
    /// Packets received.
    pub n_received: usize,
    /// Sent packets that never arrived.
    pub n_lost: usize,
    /// Sequence numbers of the lost packets, in sending order.
    pub lost: Vec<u16>,
    /// Packets that arrived more than once.
    pub n_duplicated: usize,
    /// Arrivals out of sequence order.
    pub n_reordered: usize,
    /// Every difference found: changed SSRC, timestamp, marker, payload type or payload, or a
    /// sequence number nobody sent.
    pub mismatches: Vec<String>,
}

impl StreamReport {
    /// Compares `received` with `sent`.
    pub fn compare(sent: &[RtpRecord], received: &[RtpRecord]) -> StreamReport {
        let by_seq: HashMap<u16, &RtpRecord> =
            sent.iter().map(|r| (r.sequence_number, r)).collect();
        let mut seen: HashMap<u16, usize> = HashMap::new();
        let mut report = StreamReport {
            n_sent: sent.len(),
            n_received: received.len(),
            ..StreamReport::default()
        };
        let mut last_index = None;
        for r in received {
            let Some(s) = by_seq.get(&r.sequence_number) else {
                report.mismatches.push(format!(
                    "received seq {} (ssrc {:#010x}) that was never sent",
                    r.sequence_number, r.ssrc
                ));
                continue;
            };
            *seen.entry(r.sequence_number).or_default() += 1;
            let index = sent
                .iter()
                .position(|x| x.sequence_number == r.sequence_number);
            if let (Some(i), Some(last)) = (index, last_index)
                && i < last
            {
                report.n_reordered += 1;
            }
            last_index = index.or(last_index);
            let seq = r.sequence_number;
            if r.ssrc != s.ssrc {
                report.mismatches.push(format!(
                    "seq {seq}: ssrc {:#010x} sent, {:#010x} received",
                    s.ssrc, r.ssrc
                ));
            }
            if r.timestamp != s.timestamp {
                report.mismatches.push(format!(
                    "seq {seq}: timestamp {} sent, {} received",
                    s.timestamp, r.timestamp
                ));
            }
            if r.payload_type != s.payload_type || r.marker != s.marker {
                report.mismatches.push(format!(
                    "seq {seq}: pt/marker {}/{} sent, {}/{} received",
                    s.payload_type, s.marker, r.payload_type, r.marker
                ));
            }
            if r.payload != s.payload {
                report.mismatches.push(format!(
                    "seq {seq}: payload differs ({} bytes sent, {} received)",
                    s.payload.len(),
                    r.payload.len()
                ));
            }
        }
        report.lost = sent
            .iter()
            .filter(|s| !seen.contains_key(&s.sequence_number))
            .map(|s| s.sequence_number)
            .collect();
        report.n_lost = report.lost.len();
        report.n_duplicated = seen.values().filter(|&&n| n > 1).count();
        report
    }

    /// True when every packet arrived once, in order, byte for byte.
    pub fn is_exact(&self) -> bool {
        self.n_lost == 0
            && self.n_duplicated == 0
            && self.n_reordered == 0
            && self.mismatches.is_empty()
            && self.n_sent == self.n_received
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packets_parse_back() {
        let bytes = build_rtp(
            0,
            true,
            65535,
            0xdead_beef,
            0x1234_5678,
            &pattern_payload(7, 3),
        );
        let Ok(media::Packet::Rtp(p)) = media::inspect(&bytes) else {
            panic!("not RTP")
        };
        assert_eq!(
            (
                p.payload_type,
                p.marker,
                p.sequence_number,
                p.timestamp,
                p.ssrc
            ),
            (0, true, 65535, 0xdead_beef, 0x1234_5678)
        );
        assert_eq!(p.payload, &pattern_payload(7, 3)[..]);
        assert_ne!(pattern_payload(7, 3), pattern_payload(7, 4));
        assert_ne!(pattern_payload(7, 3), pattern_payload(8, 3));
        assert_eq!(pcmu_sine(1000.0, 0, 160).len(), 160);
    }

    #[test]
    fn report_finds_loss_and_changes() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let sent: Vec<RtpRecord> = (0..3u16)
            .map(|k| RtpRecord {
                payload_type: 0,
                marker: k == 0,
                sequence_number: k,
                timestamp: u32::from(k) * 160,
                ssrc: 1,
                payload: pattern_payload(1, k),
                peer,
            })
            .collect();
        assert!(StreamReport::compare(&sent, &sent).is_exact());
        let mut got = vec![sent[0].clone(), sent[2].clone()];
        got[1].ssrc = 2;
        let r = StreamReport::compare(&sent, &got);
        assert_eq!(r.n_lost, 1);
        assert_eq!(r.mismatches.len(), 1);
        assert!(!r.is_exact());
    }
}
