//! The sans-IO RTP/RTCP relay for one call: two legs, symmetric-RTP latching, counters and the
//! media timeout.
//!
//! # Contract with the switch
//!
//! The switch binds, per leg, one RTP and one RTCP socket (see [`crate::PortAllocator`]). For
//! every datagram that arrives on a leg's socket it calls [`Relay::on_datagram`] and gets a
//! [`Forward`]: either "send these same bytes from the *other* leg's `channel` socket to `addr`"
//! or "drop, for this reason". The relay never copies or rewrites a packet, so SSRC, sequence
//! number and timestamp pass through untouched. After every input the switch re-reads
//! [`Relay::poll_timeout`] and calls [`Relay::handle_timeout`] when it is reached.
//!
//! # Where packets go
//!
//! Each leg has a *signalled* remote per channel, set from SDP with [`Relay::set_remote`], and
//! (with [`RelayConfig::latch`]) a *latched* one, learnt from the packets the leg's phone sends
//! us (symmetric RTP, RFC 4961; "comedia"). A packet from leg A goes to leg B's latched address
//! if B has one, else to B's signalled address. While SDP gives B no address (held with
//! `c=0.0.0.0`, or not yet known) packets for B are dropped as [`DropReason::NoRemote`]; B's
//! last address and latch are kept for checking what B itself sends, and come back into use
//! when SDP gives the same address again.
//!
//! RTCP goes to the other leg's RTCP address over its RTCP socket, unless that leg multiplexes
//! RTCP on its RTP port (RFC 5761), which the caller signals by passing the same address for
//! RTP and RTCP. On the RTP socket, RTCP is told apart from RTP by RFC 5761 §4 (second octet in
//! 192..=223). RTP arriving on an RTCP socket is dropped as [`DropReason::WrongChannel`].
//!
//! # Latching rule (hijack protection)
//!
//! A source may only send media into a leg if it is *eligible*:
//!
//! - If the leg's signalled address for that channel has an IP that cannot be behind a NAT we
//!   do not see (anything but RFC 1918, RFC 6598 shared space, link-local, IPv6 unique-local and
//!   unspecified), the source IP must equal it. Only the port may differ (a NAT rebinding).
//! - Otherwise (private or unknown address) we cannot check, and any source IP is eligible.
//!
//! With latching on, the first valid packet from an eligible source latches that exact
//! address; later packets from any other address are dropped as
//! [`DropReason::UnexpectedSource`]. (Before SDP gave the leg any address, eligible packets
//! are relayed but nothing is learnt.) The latch moves only when:
//!
//! - SDP changes the signalled address ([`Relay::set_remote`] with a different value): the
//!   latch is cleared and the next eligible packet latches again, or
//! - the latched source has sent nothing for [`RELATCH_QUIET`] and a single new eligible source
//!   then sends [`RELATCH_PACKETS`] valid packets in a row (phone roamed or NAT rebinding);
//!   those packets are dropped, the one that completes the run is forwarded and latched.
//!
//! So a stranger can only race the very first packet, and only when SDP gave a private or no
//! address. With latching off, destinations are only ever the signalled ones, but the
//! eligibility check still applies to sources.
//!
//! # Media timeout
//!
//! [`MediaEvent::Timeout`] fires once when no admitted RTP (RTCP does not count) arrived on
//! either leg for [`RelayConfig::media_timeout`], counted from the later of creation, the last
//! RTP packet and the last [`Relay::set_hold`]. On hold the limit is
//! [`RelayConfig::hold_timeout`] instead, and `None` suspends it. RTP arriving again re-arms it.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::packet::{self, Packet};
use crate::sequence::SequenceTracker;

/// How long a latched source must be silent before another source may take its place.
pub const RELATCH_QUIET: Duration = Duration::from_secs(2);

/// How many valid packets in a row a new source must send, after the quiet period, to re-latch.
pub const RELATCH_PACKETS: u32 = 10;

/// One of the two legs of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LegId {
    /// The calling side.
    A,
    /// The called side.
    B,
}

impl LegId {
    /// The opposite leg.
    pub fn other(self) -> LegId {
        match self {
            LegId::A => LegId::B,
            LegId::B => LegId::A,
        }
    }
}

/// Which of a leg's two sockets a datagram used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The even port: RTP, and RTCP too when multiplexed (RFC 5761).
    Rtp,
    /// The odd port: RTCP.
    Rtcp,
}

/// Relay settings, fixed for the life of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// Silence on both legs after which [`MediaEvent::Timeout`] fires.
    pub media_timeout: Duration,
    /// The silence limit while on hold; `None` suspends the timeout during hold.
    pub hold_timeout: Option<Duration>,
    /// Learn each leg's remote address from the packets it sends (symmetric RTP).
    pub latch: bool,
}

impl Default for RelayConfig {
    /// 60 s of silence, no timeout on hold, latching on.
    fn default() -> Self {
        RelayConfig {
            media_timeout: Duration::from_secs(60),
            hold_timeout: None,
            latch: true,
        }
    }
}

/// What the switch must do with a datagram it handed to [`Relay::on_datagram`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the switch must send or drop the datagram"]
pub enum Forward {
    /// Send the unchanged datagram from `leg`'s `channel` socket to `addr`.
    To {
        /// The leg whose socket sends (always the other leg).
        leg: LegId,
        /// Which of that leg's sockets sends.
        channel: Channel,
        /// The destination.
        addr: SocketAddr,
    },
    /// Do not send it; the reason has been counted.
    Drop(DropReason),
}

/// Why a datagram was not forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Not valid RTP or RTCP.
    Malformed,
    /// RTP on the RTCP socket.
    WrongChannel,
    /// From a source that is not eligible or not the latched one.
    UnexpectedSource,
    /// The other leg has no address to send to (held or not yet known).
    NoRemote,
}

/// Dropped datagrams of one leg, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// See [`DropReason::Malformed`].
    pub malformed: u64,
    /// See [`DropReason::WrongChannel`].
    pub wrong_channel: u64,
    /// See [`DropReason::UnexpectedSource`].
    pub unexpected_source: u64,
    /// See [`DropReason::NoRemote`].
    pub no_remote: u64,
}

impl DropCounts {
    /// The sum over all reasons.
    pub fn total(&self) -> u64 {
        self.malformed + self.wrong_channel + self.unexpected_source + self.no_remote
    }

    fn count(&mut self, reason: DropReason) {
        let counter = match reason {
            DropReason::Malformed => &mut self.malformed,
            DropReason::WrongChannel => &mut self.wrong_channel,
            DropReason::UnexpectedSource => &mut self.unexpected_source,
            DropReason::NoRemote => &mut self.no_remote,
        };
        *counter += 1;
    }
}

/// Counters for the datagrams that arrived on one leg; `received = forwarded + dropped`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LegStats {
    /// Datagrams that arrived on either socket of this leg, valid or not.
    pub received_packets: u64,
    /// Bytes of those datagrams.
    pub received_bytes: u64,
    /// Datagrams forwarded to the other leg.
    pub forwarded_packets: u64,
    /// Bytes of those datagrams.
    pub forwarded_bytes: u64,
    /// Admitted RTCP packets (a subset of those received).
    pub rtcp_packets: u64,
    /// Datagrams dropped, by reason.
    pub dropped: DropCounts,
    /// RTP packets lost upstream of us, from sequence gaps (RFC 3550 §A.3), over all SSRCs.
    pub lost: u64,
    /// SSRC of the last admitted RTP packet.
    pub last_ssrc: Option<u32>,
}

/// Something the switch must act on, reported by [`Relay::handle_timeout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// No RTP arrived on either leg for the configured time; the call is presumably dead.
    Timeout,
}

/// Where one channel of one leg sends and from whom it accepts.
#[derive(Clone, Copy, Debug, Default)]
struct Path {
    /// The last address SDP gave; kept while held, so the source check goes on.
    signalled: Option<SocketAddr>,
    /// The IP every source must have: the signalled one unless it may be behind a NAT.
    required_ip: Option<IpAddr>,
    /// SDP currently gives no address (hold or unknown): send nothing.
    held: bool,
    /// Learnt from the first eligible packet.
    latched: Option<SocketAddr>,
    /// When the latched source last sent.
    latched_seen: Option<Instant>,
    /// A source trying to replace a quiet latched one, and its run of packets.
    candidate: Option<(SocketAddr, u32)>,
}

impl Path {
    /// Apply an SDP address: `None` holds, a changed address clears the latch.
    fn set_signalled(&mut self, addr: Option<SocketAddr>) {
        match addr.filter(|a| !a.ip().is_unspecified() && a.port() != 0) {
            None => self.held = true,
            Some(addr) if self.signalled == Some(addr) => self.held = false,
            Some(addr) => {
                let ip = addr.ip().to_canonical();
                *self = Path {
                    signalled: Some(addr),
                    required_ip: (!may_be_behind_nat(ip)).then_some(ip),
                    ..Path::default()
                }
            }
        }
    }

    /// Where to send packets for this leg, if anywhere.
    fn destination(&self) -> Option<SocketAddr> {
        if self.held {
            return None;
        }
        self.signalled.map(|s| self.latched.unwrap_or(s))
    }

    /// Decide whether `from` may send into this leg, latching it if allowed.
    fn admit(&mut self, from: SocketAddr, latch: bool, now: Instant) -> Result<(), DropReason> {
        if self
            .required_ip
            .is_some_and(|ip| ip != from.ip().to_canonical())
        {
            return Err(DropReason::UnexpectedSource);
        }
        if !latch || self.signalled.is_none() {
            return Ok(());
        }
        match self.latched {
            Some(latched) if same_address(latched, from) => {
                self.latched_seen = Some(now);
                self.candidate = None;
                Ok(())
            }
            Some(latched) => {
                let quiet = self
                    .latched_seen
                    .is_none_or(|seen| now.saturating_duration_since(seen) >= RELATCH_QUIET);
                if !quiet {
                    return Err(DropReason::UnexpectedSource);
                }
                let run = match self.candidate {
                    Some((candidate, run)) if same_address(candidate, from) => run + 1,
                    _ => 1,
                };
                if run < RELATCH_PACKETS {
                    self.candidate = Some((from, run));
                    return Err(DropReason::UnexpectedSource);
                }
                tracing::debug!(old = %latched, new = %from, "media source re-latched");
                self.latch(from, now);
                Ok(())
            }
            None => {
                tracing::debug!(%from, "media source latched");
                self.latch(from, now);
                Ok(())
            }
        }
    }

    fn latch(&mut self, from: SocketAddr, now: Instant) {
        self.latched = Some(from);
        self.latched_seen = Some(now);
        self.candidate = None;
    }
}

/// Equal addresses, treating IPv4-mapped IPv6 as IPv4 (dual-stack sockets report those).
fn same_address(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// Whether an SDP address may be one a NAT rewrites, so the source IP cannot be checked.
fn may_be_behind_nat(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                // RFC 6598 shared address space (carrier-grade NAT), 100.64.0.0/10.
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_unspecified()
                // RFC 4193 unique local fc00::/7 and link-local fe80::/10.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// One side of the call: its two paths, its counters and its sequence tracking.
#[derive(Clone, Debug, Default)]
struct Leg {
    rtp: Path,
    rtcp: Path,
    stats: LegStats,
    sequence: SequenceTracker,
}

impl Leg {
    /// RFC 5761: the caller signals rtcp-mux by giving the same address for RTP and RTCP.
    fn rtcp_muxed(&self) -> bool {
        self.rtp.signalled.is_some()
            && self.rtp.signalled == self.rtcp.signalled
            && self.rtp.held == self.rtcp.held
    }

    /// Where RTCP for this leg goes, and over which of its sockets.
    fn rtcp_destination(&self) -> Option<(Channel, SocketAddr)> {
        if self.rtcp_muxed() {
            self.rtp.destination().map(|a| (Channel::Rtp, a))
        } else {
            self.rtcp.destination().map(|a| (Channel::Rtcp, a))
        }
    }
}

/// The media relay of one call between leg A and leg B; see the module docs for the rules.
#[derive(Clone, Debug)]
pub struct Relay {
    config: RelayConfig,
    a: Leg,
    b: Leg,
    on_hold: bool,
    /// The timeout counts from here: creation, last admitted RTP or last hold change.
    idle_since: Instant,
    /// Set once the timeout fired; cleared by RTP.
    timed_out: bool,
}

impl Relay {
    /// A relay with no remote addresses yet; the media timeout counts from `now`.
    pub fn new(config: RelayConfig, now: Instant) -> Relay {
        Relay {
            config,
            a: Leg::default(),
            b: Leg::default(),
            on_hold: false,
            idle_since: now,
            timed_out: false,
        }
    }

    /// The configuration this relay was built with.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    fn leg(&self, id: LegId) -> &Leg {
        match id {
            LegId::A => &self.a,
            LegId::B => &self.b,
        }
    }

    /// The leg `id` mutably and the other leg shared.
    fn legs_mut(&mut self, id: LegId) -> (&mut Leg, &Leg) {
        match id {
            LegId::A => (&mut self.a, &self.b),
            LegId::B => (&mut self.b, &self.a),
        }
    }

    /// Set a leg's remote RTP and RTCP addresses from SDP; `None` means held or unknown.
    ///
    /// Pass the RTP address as `rtcp` too for rtcp-mux (RFC 5761); otherwise the caller works
    /// out the RTCP address (`a=rtcp`, RFC 3605, or the RTP port plus one, RFC 3550 §11). An
    /// unspecified IP (`0.0.0.0`, RFC 3264 §8.4 hold) or port 0 counts as `None`. While `None`
    /// nothing is sent to the leg, but what it sends is still checked against the last address
    /// and latch; a later, different address clears that channel's latch, the same one keeps it.
    pub fn set_remote(&mut self, leg: LegId, rtp: Option<SocketAddr>, rtcp: Option<SocketAddr>) {
        let (leg, _) = self.legs_mut(leg);
        leg.rtp.set_signalled(rtp);
        leg.rtcp.set_signalled(rtcp);
    }

    /// Where this relay currently sends a leg's packets on `channel`, if anywhere.
    pub fn remote(&self, leg: LegId, channel: Channel) -> Option<SocketAddr> {
        let leg = self.leg(leg);
        match channel {
            Channel::Rtp => leg.rtp.destination(),
            Channel::Rtcp => leg.rtcp_destination().map(|(_, addr)| addr),
        }
    }

    /// Whether a leg's `channel` has latched onto a source address.
    pub fn is_latched(&self, leg: LegId, channel: Channel) -> bool {
        let leg = self.leg(leg);
        match channel {
            Channel::Rtp => leg.rtp.latched.is_some(),
            Channel::Rtcp => leg.rtcp.latched.is_some(),
        }
    }

    /// Put the call on or off hold, which switches between the two media timeouts.
    pub fn set_hold(&mut self, on_hold: bool, now: Instant) {
        if on_hold != self.on_hold {
            self.on_hold = on_hold;
            self.idle_since = self.idle_since.max(now);
            self.timed_out = false;
        }
    }

    /// Whether the call is on hold.
    pub fn is_on_hold(&self) -> bool {
        self.on_hold
    }

    /// A snapshot of one leg's counters.
    pub fn stats(&self, leg: LegId) -> LegStats {
        let leg = self.leg(leg);
        LegStats {
            lost: leg.sequence.lost(),
            ..leg.stats
        }
    }

    /// Decide what to do with one datagram that arrived on `leg`'s `channel` socket from `from`.
    ///
    /// Allocates nothing and does not modify the bytes; the switch sends them as they are.
    pub fn on_datagram(
        &mut self,
        leg: LegId,
        channel: Channel,
        from: SocketAddr,
        bytes: &[u8],
        now: Instant,
    ) -> Forward {
        let latch = self.config.latch;
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let (this, other) = self.legs_mut(leg);
        this.stats.received_packets += 1;
        this.stats.received_bytes = this.stats.received_bytes.saturating_add(len);

        let (forward, admitted_rtp) =
            route(this, other, leg.other(), channel, from, bytes, now, latch);
        match forward {
            Forward::To { .. } => {
                this.stats.forwarded_packets += 1;
                this.stats.forwarded_bytes = this.stats.forwarded_bytes.saturating_add(len);
            }
            Forward::Drop(reason) => this.stats.dropped.count(reason),
        }
        if admitted_rtp {
            self.idle_since = self.idle_since.max(now);
            self.timed_out = false;
        }
        forward
    }

    /// When [`Relay::handle_timeout`] next needs calling, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.timed_out {
            return None;
        }
        let limit = if self.on_hold {
            self.config.hold_timeout?
        } else {
            self.config.media_timeout
        };
        self.idle_since.checked_add(limit)
    }

    /// Advance time; reports [`MediaEvent::Timeout`] once when the silence limit is reached.
    #[must_use = "a timeout means the call's media is dead"]
    pub fn handle_timeout(&mut self, now: Instant) -> Option<MediaEvent> {
        let deadline = self.poll_timeout()?;
        if now < deadline {
            return None;
        }
        self.timed_out = true;
        tracing::debug!("media timeout");
        Some(MediaEvent::Timeout)
    }
}

/// The per-datagram decision; also says whether it was admitted RTP (for the media timeout).
#[allow(clippy::too_many_arguments)] // reason: one flat hot-path helper, called from one place
fn route(
    this: &mut Leg,
    other: &Leg,
    other_id: LegId,
    channel: Channel,
    from: SocketAddr,
    bytes: &[u8],
    now: Instant,
    latch: bool,
) -> (Forward, bool) {
    let packet = match (channel, packet::inspect(bytes)) {
        (_, Err(_)) => return (Forward::Drop(DropReason::Malformed), false),
        (Channel::Rtcp, Ok(Packet::Rtp(_))) => {
            return (Forward::Drop(DropReason::WrongChannel), false);
        }
        (_, Ok(packet)) => packet,
    };
    // RTCP on the RTP socket is rtcp-mux and shares the RTP path's latch.
    let path = match channel {
        Channel::Rtp => &mut this.rtp,
        Channel::Rtcp => &mut this.rtcp,
    };
    if let Err(reason) = path.admit(from, latch, now) {
        return (Forward::Drop(reason), false);
    }
    let destination = match packet {
        Packet::Rtp(rtp) => {
            if this.stats.last_ssrc != Some(rtp.ssrc) {
                this.stats.last_ssrc = Some(rtp.ssrc);
                this.sequence.new_source(rtp.sequence_number);
            }
            this.sequence.update(rtp.sequence_number);
            other.rtp.destination().map(|addr| (Channel::Rtp, addr))
        }
        Packet::Rtcp(_) => {
            this.stats.rtcp_packets += 1;
            other.rtcp_destination()
        }
    };
    let admitted_rtp = matches!(packet, Packet::Rtp(_));
    let forward = match destination {
        Some((channel, addr)) => Forward::To {
            leg: other_id,
            channel,
            addr,
        },
        None => Forward::Drop(DropReason::NoRemote),
    };
    (forward, admitted_rtp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fmt::Write;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test addresses are valid")
    }

    fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
        let mut out = vec![0x80, 0];
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        out.extend_from_slice(&ssrc.to_be_bytes());
        out.extend_from_slice(&[0xff; 160]);
        out
    }

    fn rtcp_rr(ssrc: u32) -> Vec<u8> {
        let mut out = vec![0x80, 201, 0, 1];
        out.extend_from_slice(&ssrc.to_be_bytes());
        out
    }

    /// One scripted input to the relay.
    enum Step<'a> {
        Remote(LegId, Option<&'a str>, Option<&'a str>),
        /// Datagram: leg, channel, source, bytes.
        Packet(LegId, Channel, &'a str, Vec<u8>),
        /// Move the clock forward by this many milliseconds.
        Wait(u64),
        Hold(bool),
        Timeout,
    }
    use Channel::{Rtcp, Rtp};
    use LegId::{A, B};
    use Step::*;

    fn describe(forward: Forward) -> String {
        match forward {
            Forward::To { leg, channel, addr } => format!("via {leg:?}/{channel:?} to {addr}"),
            Forward::Drop(reason) => format!("drop {reason:?}"),
        }
    }

    /// Run a script and compare the transcript, one line per packet or timeout step.
    fn check(config: RelayConfig, steps: Vec<Step>, expect: &str) -> Relay {
        let start = Instant::now();
        let mut now = start;
        let mut relay = Relay::new(config, now);
        let mut transcript = String::new();
        for step in steps {
            match step {
                Remote(leg, rtp, rtcp) => relay.set_remote(leg, rtp.map(addr), rtcp.map(addr)),
                Packet(leg, channel, from, bytes) => {
                    let forward = relay.on_datagram(leg, channel, addr(from), &bytes, now);
                    writeln!(
                        transcript,
                        "{leg:?}/{channel:?} from {from}: {}",
                        describe(forward)
                    )
                    .unwrap();
                }
                Wait(ms) => now += Duration::from_millis(ms),
                Hold(on) => relay.set_hold(on, now),
                Timeout => {
                    let deadline = relay.poll_timeout().map(|d| d.duration_since(start));
                    let event = relay.handle_timeout(now);
                    writeln!(
                        transcript,
                        "at {:?}: deadline {deadline:?} event {event:?}",
                        now.duration_since(start)
                    )
                    .unwrap();
                }
            }
        }
        assert_eq!(transcript.trim_end(), expect.trim(), "\n{transcript}");
        for leg in [A, B] {
            let stats = relay.stats(leg);
            assert_eq!(
                stats.received_packets,
                stats.forwarded_packets + stats.dropped.total(),
                "{leg:?}"
            );
        }
        relay
    }

    const PHONE_A: &str = "203.0.113.10:4000";
    const PHONE_A_RTCP: &str = "203.0.113.10:4001";
    const PHONE_B: &str = "198.51.100.20:5000";
    const PHONE_B_RTCP: &str = "198.51.100.20:5001";

    fn both_remotes() -> Vec<Step<'static>> {
        vec![
            Remote(A, Some(PHONE_A), Some(PHONE_A_RTCP)),
            Remote(B, Some(PHONE_B), Some(PHONE_B_RTCP)),
        ]
    }

    #[test]
    fn relays_both_ways_and_counts() {
        let mut steps = both_remotes();
        steps.extend([
            Packet(A, Rtp, PHONE_A, rtp(1, 0xa)),
            Packet(B, Rtp, PHONE_B, rtp(1, 0xb)),
            Packet(A, Rtcp, PHONE_A_RTCP, rtcp_rr(0xa)),
            Packet(B, Rtcp, PHONE_B_RTCP, rtcp_rr(0xb)),
            Packet(A, Rtp, PHONE_A, rtp(2, 0xa)),
            Packet(A, Rtp, PHONE_A, rtp(5, 0xa)),
        ]);
        let relay = check(
            RelayConfig::default(),
            steps,
            "
A/Rtp from 203.0.113.10:4000: via B/Rtp to 198.51.100.20:5000
B/Rtp from 198.51.100.20:5000: via A/Rtp to 203.0.113.10:4000
A/Rtcp from 203.0.113.10:4001: via B/Rtcp to 198.51.100.20:5001
B/Rtcp from 198.51.100.20:5001: via A/Rtcp to 203.0.113.10:4001
A/Rtp from 203.0.113.10:4000: via B/Rtp to 198.51.100.20:5000
A/Rtp from 203.0.113.10:4000: via B/Rtp to 198.51.100.20:5000",
        );
        let a = relay.stats(A);
        assert_eq!(
            (
                a.received_packets,
                a.forwarded_packets,
                a.rtcp_packets,
                a.lost,
                a.last_ssrc
            ),
            (4, 4, 1, 2, Some(0xa))
        );
        assert_eq!(a.received_bytes, 3 * 172 + 8);
        assert_eq!(a.forwarded_bytes, a.received_bytes);
        assert!(relay.is_latched(A, Rtp) && relay.is_latched(A, Rtcp));
    }

    #[test]
    fn drops_malformed_wrong_channel_and_unknown_peer() {
        let steps = vec![
            Remote(A, Some(PHONE_A), Some(PHONE_A_RTCP)),
            Packet(A, Rtp, PHONE_A, rtp(1, 1)),
            Packet(A, Rtp, PHONE_A, vec![0x16, 0xfe, 0xff]),
            Packet(A, Rtcp, PHONE_A_RTCP, rtp(2, 1)),
            Remote(B, Some(PHONE_B), Some(PHONE_B_RTCP)),
            Packet(A, Rtp, PHONE_A, rtp(3, 1)),
            // RFC 3264 §8.4 hold: c=0.0.0.0.
            Remote(B, Some("0.0.0.0:5000"), None),
            Packet(A, Rtp, PHONE_A, rtp(4, 1)),
            Packet(A, Rtcp, PHONE_A_RTCP, rtcp_rr(1)),
        ];
        let relay = check(
            RelayConfig::default(),
            steps,
            "
A/Rtp from 203.0.113.10:4000: drop NoRemote
A/Rtp from 203.0.113.10:4000: drop Malformed
A/Rtcp from 203.0.113.10:4001: drop WrongChannel
A/Rtp from 203.0.113.10:4000: via B/Rtp to 198.51.100.20:5000
A/Rtp from 203.0.113.10:4000: drop NoRemote
A/Rtcp from 203.0.113.10:4001: drop NoRemote",
        );
        assert_eq!(
            relay.stats(A).dropped,
            DropCounts {
                malformed: 1,
                wrong_channel: 1,
                unexpected_source: 0,
                no_remote: 3,
            }
        );
    }

    #[test]
    fn latches_behind_nat_and_refuses_strangers() {
        let steps = vec![
            Remote(A, Some(PHONE_A), Some(PHONE_A_RTCP)),
            // B is behind a NAT: its SDP shows a private address.
            Remote(B, Some("192.168.1.50:5000"), Some("192.168.1.50:5001")),
            Packet(A, Rtp, PHONE_A, rtp(1, 1)),
            Packet(B, Rtp, "198.51.100.99:61000", rtp(1, 2)),
            Packet(A, Rtp, PHONE_A, rtp(2, 1)),
            // A stranger cannot take over, on either leg.
            Packet(B, Rtp, "198.51.100.66:7000", rtp(9, 9)),
            Packet(A, Rtp, "192.0.2.7:4000", rtp(9, 9)),
            // Same IP as A's public SDP, another port, but A is latched already.
            Packet(A, Rtp, "203.0.113.10:4002", rtp(3, 1)),
            Packet(A, Rtp, PHONE_A, rtp(4, 1)),
        ];
        let relay = check(
            RelayConfig::default(),
            steps,
            "
A/Rtp from 203.0.113.10:4000: via B/Rtp to 192.168.1.50:5000
B/Rtp from 198.51.100.99:61000: via A/Rtp to 203.0.113.10:4000
A/Rtp from 203.0.113.10:4000: via B/Rtp to 198.51.100.99:61000
B/Rtp from 198.51.100.66:7000: drop UnexpectedSource
A/Rtp from 192.0.2.7:4000: drop UnexpectedSource
A/Rtp from 203.0.113.10:4002: drop UnexpectedSource
A/Rtp from 203.0.113.10:4000: via B/Rtp to 198.51.100.99:61000",
        );
        assert_eq!(relay.remote(B, Rtp), Some(addr("198.51.100.99:61000")));
        assert_eq!(relay.remote(B, Rtcp), Some(addr("192.168.1.50:5001")));
        assert!(!relay.is_latched(B, Rtcp));
    }

    #[test]
    fn public_sdp_address_pins_the_source_ip_but_not_the_port() {
        let steps = vec![
            Remote(A, Some(PHONE_A), Some(PHONE_A_RTCP)),
            Remote(B, Some(PHONE_B), Some(PHONE_B_RTCP)),
            Packet(B, Rtp, "192.0.2.1:5000", rtp(1, 2)),
            Packet(B, Rtp, "198.51.100.20:6000", rtp(2, 2)),
            Packet(A, Rtp, PHONE_A, rtp(1, 1)),
            // An IPv4-mapped IPv6 source (dual-stack socket) is the same host.
            Packet(A, Rtp, "[::ffff:203.0.113.10]:4000", rtp(2, 1)),
        ];
        check(
            RelayConfig::default(),
            steps,
            "
B/Rtp from 192.0.2.1:5000: drop UnexpectedSource
B/Rtp from 198.51.100.20:6000: via A/Rtp to 203.0.113.10:4000
A/Rtp from 203.0.113.10:4000: via B/Rtp to 198.51.100.20:6000
A/Rtp from [::ffff:203.0.113.10]:4000: via B/Rtp to 198.51.100.20:6000",
        );
    }

    #[test]
    fn relatches_only_after_quiet_and_a_run_of_packets() {
        let mut steps = vec![
            Remote(A, Some(PHONE_A), Some(PHONE_A_RTCP)),
            Remote(B, Some("10.0.0.5:5000"), Some("10.0.0.5:5001")),
            Packet(B, Rtp, "198.51.100.99:61000", rtp(1, 2)),
            Wait(1000),
            // Not quiet long enough yet.
            Packet(B, Rtp, "198.51.100.99:62000", rtp(2, 2)),
            Wait(1000),
        ];
        for seq in 3..3 + u16::try_from(RELATCH_PACKETS).unwrap() {
            steps.push(Packet(B, Rtp, "198.51.100.99:62000", rtp(seq, 2)));
        }
        steps.push(Packet(B, Rtp, "198.51.100.99:61000", rtp(20, 2)));
        steps.push(Packet(A, Rtp, PHONE_A, rtp(1, 1)));
        let mut expect = String::from(
            "B/Rtp from 198.51.100.99:61000: via A/Rtp to 203.0.113.10:4000\n\
             B/Rtp from 198.51.100.99:62000: drop UnexpectedSource\n",
        );
        for _ in 1..RELATCH_PACKETS {
            expect.push_str("B/Rtp from 198.51.100.99:62000: drop UnexpectedSource\n");
        }
        expect.push_str("B/Rtp from 198.51.100.99:62000: via A/Rtp to 203.0.113.10:4000\n");
        // The old source is now the stranger.
        expect.push_str("B/Rtp from 198.51.100.99:61000: drop UnexpectedSource\n");
        expect.push_str("A/Rtp from 203.0.113.10:4000: via B/Rtp to 198.51.100.99:62000\n");
        check(RelayConfig::default(), steps, &expect);
    }

    #[test]
    fn relatch_run_restarts_when_sources_interleave() {
        let mut steps = vec![
            Remote(B, Some("10.0.0.5:5000"), None),
            Remote(A, Some(PHONE_A), None),
            Packet(B, Rtp, "198.51.100.99:61000", rtp(1, 2)),
            Wait(5000),
        ];
        let mut expect =
            String::from("B/Rtp from 198.51.100.99:61000: via A/Rtp to 203.0.113.10:4000\n");
        for i in 0..2 * RELATCH_PACKETS {
            let from = if i % 2 == 0 {
                "192.0.2.1:1000"
            } else {
                "192.0.2.2:1000"
            };
            steps.push(Packet(B, Rtp, from, rtp(2, 2)));
            writeln!(expect, "B/Rtp from {from}: drop UnexpectedSource").unwrap();
        }
        check(RelayConfig::default(), steps, &expect);
    }

    #[test]
    fn new_sdp_address_clears_the_latch() {
        let steps = vec![
            Remote(A, Some(PHONE_A), None),
            Remote(B, Some("10.0.0.5:5000"), None),
            Packet(B, Rtp, "198.51.100.99:61000", rtp(1, 2)),
            Packet(A, Rtp, PHONE_A, rtp(1, 1)),
            // Same SDP again (a re-INVITE that changes nothing) keeps the latch.
            Remote(B, Some("10.0.0.5:5000"), None),
            Packet(A, Rtp, PHONE_A, rtp(2, 1)),
            Remote(B, Some("10.0.0.6:5002"), None),
            Packet(A, Rtp, PHONE_A, rtp(3, 1)),
            Packet(B, Rtp, "198.51.100.98:40000", rtp(1, 3)),
            Packet(A, Rtp, PHONE_A, rtp(4, 1)),
        ];
        check(
            RelayConfig::default(),
            steps,
            "
B/Rtp from 198.51.100.99:61000: via A/Rtp to 203.0.113.10:4000
A/Rtp from 203.0.113.10:4000: via B/Rtp to 198.51.100.99:61000
A/Rtp from 203.0.113.10:4000: via B/Rtp to 198.51.100.99:61000
A/Rtp from 203.0.113.10:4000: via B/Rtp to 10.0.0.6:5002
B/Rtp from 198.51.100.98:40000: via A/Rtp to 203.0.113.10:4000
A/Rtp from 203.0.113.10:4000: via B/Rtp to 198.51.100.98:40000",
        );
    }

    #[test]
    fn hold_keeps_the_latch_and_the_source_check() {
        let steps = vec![
            Remote(A, Some(PHONE_A), None),
            Remote(B, Some("10.0.0.5:5000"), None),
            Packet(B, Rtp, "198.51.100.99:61000", rtp(1, 2)),
            // B holds with c=0.0.0.0 (RFC 3264 §8.4) but still sends music.
            Remote(B, Some("0.0.0.0:5000"), None),
            Packet(A, Rtp, PHONE_A, rtp(1, 1)),
            Packet(B, Rtp, "198.51.100.99:61000", rtp(2, 2)),
            Packet(B, Rtp, "198.51.100.66:7000", rtp(3, 9)),
            // Resumed with the same address: the latch is still good.
            Remote(B, Some("10.0.0.5:5000"), None),
            Packet(A, Rtp, PHONE_A, rtp(2, 1)),
        ];
        check(
            RelayConfig::default(),
            steps,
            "
B/Rtp from 198.51.100.99:61000: via A/Rtp to 203.0.113.10:4000
A/Rtp from 203.0.113.10:4000: drop NoRemote
B/Rtp from 198.51.100.99:61000: via A/Rtp to 203.0.113.10:4000
B/Rtp from 198.51.100.66:7000: drop UnexpectedSource
A/Rtp from 203.0.113.10:4000: via B/Rtp to 198.51.100.99:61000",
        );
    }

    #[test]
    fn without_latching_destinations_stay_signalled() {
        let config = RelayConfig {
            latch: false,
            ..RelayConfig::default()
        };
        let steps = vec![
            Remote(A, Some(PHONE_A), None),
            Remote(B, Some("10.0.0.5:5000"), None),
            Packet(B, Rtp, "198.51.100.99:61000", rtp(1, 2)),
            Packet(B, Rtp, "198.51.100.98:61000", rtp(2, 2)),
            Packet(A, Rtp, PHONE_A, rtp(1, 1)),
            // The source-IP check still applies to a public SDP address.
            Packet(A, Rtp, "192.0.2.1:4000", rtp(2, 1)),
        ];
        let relay = check(
            config,
            steps,
            "
B/Rtp from 198.51.100.99:61000: via A/Rtp to 203.0.113.10:4000
B/Rtp from 198.51.100.98:61000: via A/Rtp to 203.0.113.10:4000
A/Rtp from 203.0.113.10:4000: via B/Rtp to 10.0.0.5:5000
A/Rtp from 192.0.2.1:4000: drop UnexpectedSource",
        );
        assert!(!relay.is_latched(B, Rtp));
    }

    #[test]
    fn rtcp_mux_both_ways() {
        let steps = vec![
            // A multiplexes (same address twice); B does not.
            Remote(A, Some(PHONE_A), Some(PHONE_A)),
            Remote(B, Some(PHONE_B), Some(PHONE_B_RTCP)),
            Packet(A, Rtp, PHONE_A, rtcp_rr(1)),
            Packet(B, Rtcp, PHONE_B_RTCP, rtcp_rr(2)),
            Packet(B, Rtp, PHONE_B, rtp(1, 2)),
            // B's RTCP sent to its RTP port (not negotiated) still reaches A.
            Packet(B, Rtp, PHONE_B, rtcp_rr(2)),
        ];
        let relay = check(
            RelayConfig::default(),
            steps,
            "
A/Rtp from 203.0.113.10:4000: via B/Rtcp to 198.51.100.20:5001
B/Rtcp from 198.51.100.20:5001: via A/Rtp to 203.0.113.10:4000
B/Rtp from 198.51.100.20:5000: via A/Rtp to 203.0.113.10:4000
B/Rtp from 198.51.100.20:5000: via A/Rtp to 203.0.113.10:4000",
        );
        assert_eq!(relay.remote(A, Rtcp), Some(addr(PHONE_A)));
        assert_eq!(relay.stats(B).rtcp_packets, 2);
    }

    #[test]
    fn media_timeout_fires_once_and_rearms() {
        let config = RelayConfig {
            media_timeout: Duration::from_secs(30),
            hold_timeout: None,
            latch: true,
        };
        let mut steps = both_remotes();
        steps.extend([
            Timeout,
            Wait(10_000),
            Packet(A, Rtp, PHONE_A, rtp(1, 1)),
            // RTCP keeps nothing alive.
            Wait(10_000),
            Packet(B, Rtcp, PHONE_B_RTCP, rtcp_rr(2)),
            Timeout,
            Wait(20_000),
            Timeout,
            Timeout,
            Wait(5_000),
            Packet(B, Rtp, PHONE_B, rtp(1, 2)),
            Timeout,
        ]);
        check(
            config,
            steps,
            "
at 0ns: deadline Some(30s) event None
A/Rtp from 203.0.113.10:4000: via B/Rtp to 198.51.100.20:5000
B/Rtcp from 198.51.100.20:5001: via A/Rtcp to 203.0.113.10:4001
at 20s: deadline Some(40s) event None
at 40s: deadline Some(40s) event Some(Timeout)
at 40s: deadline None event None
B/Rtp from 198.51.100.20:5000: via A/Rtp to 203.0.113.10:4000
at 45s: deadline Some(75s) event None",
        );
    }

    #[test]
    fn hold_suspends_or_lengthens_the_timeout() {
        let steps = vec![
            Hold(true),
            Timeout,
            Wait(100_000),
            Timeout,
            Hold(false),
            Timeout,
        ];
        let config = RelayConfig {
            media_timeout: Duration::from_secs(30),
            hold_timeout: None,
            latch: true,
        };
        check(
            config,
            steps,
            "
at 0ns: deadline None event None
at 100s: deadline None event None
at 100s: deadline Some(130s) event None",
        );
        let config = RelayConfig {
            hold_timeout: Some(Duration::from_secs(3600)),
            ..config
        };
        let steps = vec![Wait(10_000), Hold(true), Wait(3_600_000), Timeout];
        check(
            config,
            steps,
            "at 3610s: deadline Some(3610s) event Some(Timeout)",
        );
    }

    #[test]
    fn which_sdp_addresses_cannot_be_checked() {
        let cases = [
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.32.0.1", false),
            ("192.168.0.10", true),
            ("100.64.0.1", true),
            ("100.128.0.1", false),
            ("169.254.1.1", true),
            ("0.0.0.0", true),
            ("127.0.0.1", false),
            ("203.0.113.10", false),
            ("fd00::1", true),
            ("fe80::1", true),
            ("2001:db8::1", false),
            ("::ffff:192.168.1.1", true),
            ("::ffff:203.0.113.10", false),
            ("::", true),
        ];
        for (ip, expect) in cases {
            assert_eq!(may_be_behind_nat(ip.parse().unwrap()), expect, "{ip}");
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Packet {
            leg: bool,
            rtcp_socket: bool,
            source: usize,
            kind: u8,
            seq: u16,
            garbage: Vec<u8>,
        },
        Remote {
            leg: bool,
            rtp: Option<usize>,
            rtcp: Option<usize>,
        },
        Wait(u16),
        Hold(bool),
    }

    const ADDRESSES: [&str; 6] = [
        "203.0.113.10:4000",
        "203.0.113.10:4001",
        "10.0.0.5:5000",
        "198.51.100.99:61000",
        "0.0.0.0:0",
        "[2001:db8::1]:7000",
    ];

    fn op() -> impl Strategy<Value = Op> {
        let source = 0..ADDRESSES.len();
        prop_oneof![
            8 => (any::<bool>(), any::<bool>(), source.clone(), 0u8..4, any::<u16>(),
                  proptest::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(leg, rtcp_socket, source, kind, seq, garbage)| Op::Packet {
                    leg, rtcp_socket, source, kind, seq, garbage
                }),
            2 => (any::<bool>(), proptest::option::of(source.clone()),
                  proptest::option::of(source))
                .prop_map(|(leg, rtp, rtcp)| Op::Remote { leg, rtp, rtcp }),
            2 => any::<u16>().prop_map(Op::Wait),
            1 => any::<bool>().prop_map(Op::Hold),
        ]
    }

    proptest! {
        /// Any interleaving: no panic, forward always goes to the other leg at an address the
        /// relay reports for it, counters add up, and the deadline is never in the past after
        /// handling it.
        #[test]
        fn invariants(latch: bool, ops in proptest::collection::vec(op(), 0..150)) {
            let mut now = Instant::now();
            let config = RelayConfig { latch, ..RelayConfig::default() };
            let mut relay = Relay::new(config, now);
            for op in ops {
                match op {
                    Op::Packet { leg, rtcp_socket, source, kind, seq, garbage } => {
                        let leg = if leg { A } else { B };
                        let channel = if rtcp_socket { Rtcp } else { Rtp };
                        let bytes = match kind {
                            0 | 1 => rtp(seq, u32::from(kind)),
                            2 => rtcp_rr(7),
                            _ => garbage,
                        };
                        let from = addr(ADDRESSES[source]);
                        match relay.on_datagram(leg, channel, from, &bytes, now) {
                            Forward::To { leg: to, channel, addr } => {
                                prop_assert_eq!(to, leg.other());
                                prop_assert_eq!(Some(addr), relay.remote(to, channel)
                                    .filter(|_| channel == Rtp)
                                    .or_else(|| relay.remote(to, Rtcp)));
                            }
                            Forward::Drop(_) => {}
                        }
                    }
                    Op::Remote { leg, rtp, rtcp } => relay.set_remote(
                        if leg { A } else { B },
                        rtp.map(|i| addr(ADDRESSES[i])),
                        rtcp.map(|i| addr(ADDRESSES[i])),
                    ),
                    Op::Wait(ms) => now += Duration::from_millis(u64::from(ms) * 10),
                    Op::Hold(on) => relay.set_hold(on, now),
                }
                let _ = relay.handle_timeout(now);
                if let Some(deadline) = relay.poll_timeout() {
                    prop_assert!(deadline > now);
                }
                for leg in [A, B] {
                    let s = relay.stats(leg);
                    prop_assert_eq!(s.received_packets, s.forwarded_packets + s.dropped.total());
                }
            }
        }
    }
}
