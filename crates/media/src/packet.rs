//! Validate and classify one datagram as RTP or RTCP (RFC 3550, RFC 5761).
//!
//! Nothing here copies or allocates: a parsed [`RtpPacket`] borrows the datagram, and
//! [`RtcpCompound`] is a few integers. Every length is checked before it is used, so any byte
//! string yields `Ok` or `Err`, never a panic (a property test below feeds arbitrary bytes).

use std::ops::RangeInclusive;

/// RFC 5761 §4: a second octet in this range (RTP marker bit plus payload types 64–95, which
/// covers RTCP packet types 200–204 = "RTP payload types 72–76 with the marker set") is RTCP.
pub const RTCP_MUX_OCTET: RangeInclusive<u8> = 192..=223;

/// The fixed RTP header length (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;

/// The RTCP common header length (RFC 3550 §6.4.1).
pub const RTCP_HEADER_LEN: usize = 4;

/// Why a datagram is neither valid RTP nor valid RTCP; the relay counts these, never returns them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// Shorter than the fixed header it claims to be.
    #[error("datagram too short: need {needed} bytes, have {actual}")]
    TooShort {
        /// Bytes the headers announce.
        needed: usize,
        /// Bytes present.
        actual: usize,
    },
    /// The version field is not 2.
    #[error("unsupported RTP/RTCP version {0}")]
    UnsupportedVersion(u8),
    /// The padding count is zero or reaches back into the header.
    #[error("invalid padding")]
    InvalidPadding,
    /// An RTCP length field does not add up to the datagram length (RFC 3550 §A.2).
    #[error("RTCP length fields do not match the datagram length")]
    InvalidRtcpLength,
    /// An RTCP packet type outside the range RFC 5761 §4 reserves for RTCP.
    #[error("RTCP packet type {0} outside 192..=223")]
    InvalidRtcpType(u8),
}

/// Which protocol a datagram carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// An RTP data packet.
    Rtp,
    /// An RTCP (compound) control packet.
    Rtcp,
}

/// The header fields of a valid RTP packet, borrowing its payload from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub sequence_number: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Payload after CSRCs and header extension, without padding.
    pub payload: &'a [u8],
}

/// A summary of a valid RTCP compound packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcpCompound {
    /// Packet type of the first packet (200 = SR, 201 = RR, …).
    pub first_packet_type: u8,
    /// The SSRC that follows the first header, when the first packet is long enough to hold it.
    pub sender_ssrc: Option<u32>,
    /// Number of RTCP packets in the compound.
    pub n_packets: usize,
}

/// A datagram that validated as RTP or as RTCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Valid RTP.
    Rtp(RtpPacket<'a>),
    /// Valid RTCP.
    Rtcp(RtcpCompound),
}

impl Packet<'_> {
    /// Which protocol this packet is.
    pub fn kind(&self) -> PacketKind {
        match self {
            Packet::Rtp(_) => PacketKind::Rtp,
            Packet::Rtcp(_) => PacketKind::Rtcp,
        }
    }
}

/// Demultiplex by RFC 5761 §4 without validating: `None` unless the version is 2.
#[inline]
pub fn classify(bytes: &[u8]) -> Option<PacketKind> {
    let first = *bytes.first()?;
    let second = *bytes.get(1)?;
    if first >> 6 != 2 {
        return None;
    }
    Some(if RTCP_MUX_OCTET.contains(&second) {
        PacketKind::Rtcp
    } else {
        PacketKind::Rtp
    })
}

/// Classify (RFC 5761 §4) and then fully validate a datagram as RTP or RTCP.
#[inline]
pub fn inspect(bytes: &[u8]) -> Result<Packet<'_>, InspectError> {
    match bytes.get(1) {
        Some(second) if RTCP_MUX_OCTET.contains(second) => parse_rtcp(bytes).map(Packet::Rtcp),
        _ => parse_rtp(bytes).map(Packet::Rtp),
    }
}

/// Validate an RTP packet: version 2, CSRC list, extension and padding inside the datagram.
#[inline]
pub fn parse_rtp(bytes: &[u8]) -> Result<RtpPacket<'_>, InspectError> {
    use rtp_types::RtpParseError;
    // rtp-types validates (version, CSRCs, extension, padding); we then read the few fields we
    // need ourselves, which is several times faster than its per-field accessors.
    rtp_types::RtpPacket::parse(bytes).map_err(|err| match err {
        RtpParseError::UnsupportedVersion(version) => InspectError::UnsupportedVersion(version),
        // rtp-types reports padding that reaches back into the header as truncation too.
        RtpParseError::Truncated { expected, actual } => match rtp_header_len(bytes) {
            Some(header_len) if header_len <= actual => InspectError::InvalidPadding,
            _ => InspectError::TooShort {
                needed: expected,
                actual,
            },
        },
        RtpParseError::PaddingInvalid(_) => InspectError::InvalidPadding,
    })?;
    let too_short = InspectError::TooShort {
        needed: RTP_HEADER_LEN,
        actual: bytes.len(),
    };
    let &[b0, b1, s0, s1, t0, t1, t2, t3, c0, c1, c2, c3] =
        bytes.first_chunk::<RTP_HEADER_LEN>().ok_or(too_short)?;
    let header_len = rtp_header_len(bytes).ok_or(too_short)?;
    let padding = if b0 & 0x20 != 0 {
        bytes.last().map_or(0, |&count| usize::from(count))
    } else {
        0
    };
    let payload_end = bytes
        .len()
        .checked_sub(padding)
        .ok_or(InspectError::InvalidPadding)?;
    Ok(RtpPacket {
        payload_type: b1 & 0x7f,
        marker: b1 & 0x80 != 0,
        sequence_number: u16::from_be_bytes([s0, s1]),
        timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
        ssrc: u32::from_be_bytes([c0, c1, c2, c3]),
        payload: bytes
            .get(header_len..payload_end)
            .ok_or(InspectError::InvalidPadding)?,
    })
}

/// The output buffer given to [`write_rtp`] cannot hold the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("buffer of {actual} bytes cannot hold a {needed}-byte RTP packet")]
pub struct BufferTooSmall {
    /// Bytes the packet needs.
    pub needed: usize,
    /// Bytes the buffer has.
    pub actual: usize,
}

/// Write a plain RTP packet (no CSRC, extension or padding) with `packet`'s fields and payload
/// into `out`, without allocating; returns its length.
pub fn write_rtp(packet: &RtpPacket<'_>, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let needed = RTP_HEADER_LEN.saturating_add(packet.payload.len());
    let actual = out.len();
    let Some(out) = out.get_mut(..needed) else {
        return Err(BufferTooSmall { needed, actual });
    };
    let (header, payload) = out.split_at_mut(RTP_HEADER_LEN);
    let [s0, s1] = packet.sequence_number.to_be_bytes();
    let [t0, t1, t2, t3] = packet.timestamp.to_be_bytes();
    let [c0, c1, c2, c3] = packet.ssrc.to_be_bytes();
    let second = (packet.payload_type & 0x7f) | if packet.marker { 0x80 } else { 0 };
    header.copy_from_slice(&[0x80, second, s0, s1, t0, t1, t2, t3, c0, c1, c2, c3]);
    payload.copy_from_slice(packet.payload);
    Ok(needed)
}

/// The RTP header length (fixed part, CSRCs, extension) that the first bytes announce.
fn rtp_header_len(bytes: &[u8]) -> Option<usize> {
    let first = *bytes.first()?;
    let csrc_end = RTP_HEADER_LEN + 4 * usize::from(first & 0x0f);
    if first & 0x10 == 0 {
        return Some(csrc_end);
    }
    // RFC 3550 §5.3.1: a 4-byte extension header whose second half counts 32-bit words.
    let &[hi, lo] = bytes.get(csrc_end + 2..)?.first_chunk::<2>()?;
    Some(csrc_end + 4 + 4 * usize::from(u16::from_be_bytes([hi, lo])))
}

/// Validate an RTCP compound packet (RFC 3550 §A.2, relaxed for RFC 5506 reduced size).
///
/// Every packet must be version 2 with a type in 192..=223, the length fields must add up to
/// the datagram exactly, and only the last packet may be padded. The first packet need not be
/// SR/RR: RFC 5506 allows reduced-size RTCP.
/// DEVIATION(RFC 3711 §3.4): SRTCP trailers (index and tag) make the lengths disagree, so SRTCP
/// is rejected; SRTP is out of scope for now.
#[inline]
pub fn parse_rtcp(bytes: &[u8]) -> Result<RtcpCompound, InspectError> {
    let mut offset = 0usize;
    let mut n_packets = 0usize;
    let mut first_packet_type = 0u8;
    let mut sender_ssrc = None;
    loop {
        let rest = bytes.get(offset..).unwrap_or_default();
        let Some(&[b0, packet_type, len_hi, len_lo]) = rest.first_chunk::<RTCP_HEADER_LEN>() else {
            return Err(if offset == 0 {
                InspectError::TooShort {
                    needed: RTCP_HEADER_LEN,
                    actual: bytes.len(),
                }
            } else {
                // Trailing bytes after the last whole packet.
                InspectError::InvalidRtcpLength
            });
        };
        if b0 >> 6 != 2 {
            return Err(InspectError::UnsupportedVersion(b0 >> 6));
        }
        if !RTCP_MUX_OCTET.contains(&packet_type) {
            return Err(InspectError::InvalidRtcpType(packet_type));
        }
        // RFC 3550 §6.4.1: length is in 32-bit words minus one, including the header.
        let packet_len = (usize::from(u16::from_be_bytes([len_hi, len_lo])) + 1) * 4;
        let Some(packet) = rest.get(..packet_len) else {
            return Err(InspectError::InvalidRtcpLength);
        };
        if n_packets == 0 {
            first_packet_type = packet_type;
            sender_ssrc = packet
                .get(4..8)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes);
        }
        n_packets += 1;
        offset += packet_len;
        let is_last = offset == bytes.len();
        if b0 & 0x20 != 0 {
            // RFC 3550 §6.4.1: the padding count is the last octet and includes itself; only the
            // last packet of a compound may be padded (§A.2).
            let count = packet.last().map_or(0, |&b| usize::from(b));
            if !is_last || count == 0 || count > packet_len - RTCP_HEADER_LEN {
                return Err(InspectError::InvalidPadding);
            }
        }
        if is_last {
            return Ok(RtcpCompound {
                first_packet_type,
                sender_ssrc,
                n_packets,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Build an RTP datagram by hand: no CSRC, optional extension words and padding.
    pub(crate) fn rtp(
        pt: u8,
        marker: bool,
        seq: u16,
        ts: u32,
        ssrc: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut out = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&ts.to_be_bytes());
        out.extend_from_slice(&ssrc.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn receiver_report(ssrc: u32) -> Vec<u8> {
        let mut out = vec![0x80, 201, 0, 1];
        out.extend_from_slice(&ssrc.to_be_bytes());
        out
    }

    fn check(bytes: &[u8], expect: &str) {
        let got = match inspect(bytes) {
            Ok(Packet::Rtp(p)) => format!(
                "rtp pt={} m={} seq={} ts={} ssrc={:#x} payload={:?}",
                p.payload_type, p.marker, p.sequence_number, p.timestamp, p.ssrc, p.payload
            ),
            Ok(Packet::Rtcp(c)) => format!(
                "rtcp first={} ssrc={:?} n={}",
                c.first_packet_type, c.sender_ssrc, c.n_packets
            ),
            Err(e) => format!("err {e:?}"),
        };
        assert_eq!(got, expect, "input {bytes:02x?}");
    }

    #[test]
    fn rtp_cases() {
        check(
            &rtp(0, true, 7, 160, 0xabcd, &[1, 2, 3]),
            "rtp pt=0 m=true seq=7 ts=160 ssrc=0xabcd payload=[1, 2, 3]",
        );
        check(&[0x80, 0], "err TooShort { needed: 12, actual: 2 }");
        check(&[], "err TooShort { needed: 12, actual: 0 }");
        let mut v1 = rtp(0, false, 1, 1, 1, &[]);
        v1[0] = 0x40;
        check(&v1, "err UnsupportedVersion(1)");
        // One CSRC announced but absent.
        let mut csrc = rtp(8, false, 1, 1, 1, &[]);
        csrc[0] = 0x81;
        check(&csrc, "err TooShort { needed: 16, actual: 12 }");
        csrc.extend_from_slice(&[0, 0, 0, 9, 0xee]);
        check(&csrc, "rtp pt=8 m=false seq=1 ts=1 ssrc=0x1 payload=[238]");
        // Extension header of one word, then one payload byte.
        let mut ext = rtp(8, false, 1, 1, 1, &[0xbe, 0xde, 0, 1, 1, 2, 3, 4, 0x55]);
        ext[0] = 0x90;
        check(&ext, "rtp pt=8 m=false seq=1 ts=1 ssrc=0x1 payload=[85]");
        ext.truncate(16);
        check(&ext, "err TooShort { needed: 20, actual: 16 }");
        // Padding: two bytes, the last one the count.
        let mut pad = rtp(0, false, 1, 1, 1, &[9, 0, 2]);
        pad[0] = 0xa0;
        check(&pad, "rtp pt=0 m=false seq=1 ts=1 ssrc=0x1 payload=[9]");
        *pad.last_mut().unwrap() = 0;
        check(&pad, "err InvalidPadding");
        *pad.last_mut().unwrap() = 40;
        check(&pad, "err InvalidPadding");
        // Padding bit set, but it is the CSRC list that is missing.
        let mut pad_csrc = rtp(0, false, 1, 1, 1, &[]);
        pad_csrc[0] = 0xa2;
        pad_csrc.push(1);
        check(&pad_csrc, "err TooShort { needed: 20, actual: 13 }");
    }

    #[test]
    fn rtcp_cases() {
        check(
            &receiver_report(0x1234),
            "rtcp first=201 ssrc=Some(4660) n=1",
        );
        // RR + SDES(empty chunk list, one word) compound.
        let mut compound = receiver_report(5);
        compound.extend_from_slice(&[0x80, 202, 0, 1, 0, 0, 0, 5]);
        check(&compound, "rtcp first=201 ssrc=Some(5) n=2");
        // Length field claims more than present.
        check(&[0x80, 200, 0, 6, 0, 0, 0, 1], "err InvalidRtcpLength");
        // Trailing garbage after a valid packet.
        let mut trailing = receiver_report(5);
        trailing.push(0);
        check(&trailing, "err InvalidRtcpLength");
        // Padding on a non-last packet.
        let mut bad_pad = receiver_report(5);
        bad_pad[0] |= 0x20;
        bad_pad.extend_from_slice(&receiver_report(6));
        check(&bad_pad, "err InvalidPadding");
        // Padding on the last packet: count 4 covers the whole second word.
        let padded = [0xa0, 201, 0, 1, 0, 0, 0, 4];
        check(&padded, "rtcp first=201 ssrc=Some(4) n=1");
        // Muxed demux: octet 200 is RTCP; with the wrong version it is rejected as such.
        check(&[0x40, 200, 0, 0], "err UnsupportedVersion(1)");
        // Second packet of a compound with a non-RTCP type.
        let mut bad_type = receiver_report(5);
        bad_type.extend_from_slice(&[0x80, 100, 0, 0]);
        check(&bad_type, "err InvalidRtcpType(100)");
    }

    #[test]
    fn classify_follows_rfc5761() {
        for octet in 0..=255u8 {
            let kind = classify(&[0x80, octet]);
            let expect = if (192..=223).contains(&octet) {
                PacketKind::Rtcp
            } else {
                PacketKind::Rtp
            };
            assert_eq!(kind, Some(expect), "octet {octet}");
        }
        // RTCP SR..APP are RTP payload types 72..76 with the marker bit set.
        for pt in 72..=76u8 {
            assert_eq!(classify(&[0x80, 0x80 | pt]), Some(PacketKind::Rtcp));
        }
        assert_eq!(classify(&[0x00, 0]), None);
        assert_eq!(classify(&[0x80]), None);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = inspect(&bytes);
            let _ = parse_rtp(&bytes);
            let _ = parse_rtcp(&bytes);
            let _ = classify(&bytes);
        }

        #[test]
        fn never_panics_on_version_2(mut bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Some(b) = bytes.first_mut() { *b = (*b & 0x3f) | 0x80; }
            if let Ok(Packet::Rtp(p)) = inspect(&bytes) {
                prop_assert!(p.payload.len() + RTP_HEADER_LEN <= bytes.len());
            }
            let _ = parse_rtcp(&bytes);
        }

        /// Our field extraction agrees with rtp-types' accessors on any version-2 bytes.
        #[test]
        fn agrees_with_rtp_types(mut bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Some(b) = bytes.first_mut() { *b = (*b & 0x3f) | 0x80; }
            let ours = parse_rtp(&bytes);
            match rtp_types::RtpPacket::parse(&bytes) {
                Ok(theirs) => {
                    let ours = ours.unwrap();
                    prop_assert_eq!(ours.payload, theirs.payload());
                    prop_assert_eq!(ours.ssrc, theirs.ssrc());
                    prop_assert_eq!(ours.sequence_number, theirs.sequence_number());
                    prop_assert_eq!(ours.timestamp, theirs.timestamp());
                    prop_assert_eq!((ours.payload_type, ours.marker),
                                    (theirs.payload_type(), theirs.marker_bit()));
                }
                Err(_) => prop_assert!(ours.is_err()),
            }
        }

        #[test]
        fn write_then_parse(pt in 0u8..128, m: bool, seq: u16, ts: u32, ssrc: u32,
                            payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let packet = RtpPacket { payload_type: pt, marker: m, sequence_number: seq,
                                     timestamp: ts, ssrc, payload: &payload };
            let mut out = [0u8; 80];
            let n = write_rtp(&packet, &mut out).unwrap();
            prop_assert_eq!(n, 12 + payload.len());
            prop_assert_eq!(&out[..n], &rtp(pt, m, seq, ts, ssrc, &payload)[..]);
            prop_assert_eq!(parse_rtp(&out[..n]), Ok(packet));
            let short = write_rtp(&packet, &mut out[..n - 1]);
            prop_assert_eq!(short, Err(BufferTooSmall { needed: n, actual: n - 1 }));
        }

        #[test]
        fn rtp_header_round_trips(pt in 0u8..128, m: bool, seq: u16, ts: u32, ssrc: u32,
                                  payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let bytes = rtp(pt, m, seq, ts, ssrc, &payload);
            let p = parse_rtp(&bytes).unwrap();
            prop_assert_eq!((p.payload_type, p.marker, p.sequence_number, p.timestamp, p.ssrc),
                            (pt, m, seq, ts, ssrc));
            prop_assert_eq!(p.payload, &payload[..]);
        }
    }
}
