//! One task per call relays RTP and RTCP between the call's four sockets, using the sans-IO
//! `media::Relay` to decide where each datagram goes. One receive buffer per socket, reused:
//! nothing is allocated per packet.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use media::{Channel, Forward, LegId, Relay, RelayConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Commands from the call loop to a call's media task.
#[derive(Debug)]
pub enum MediaCommand {
    /// New remote addresses for a leg.
    Remote {
        leg: LegId,
        rtp: Option<SocketAddr>,
        rtcp: Option<SocketAddr>,
    },
    /// Suspend (true) or run (false) the media timeout.
    Hold(bool),
    /// Stop and close the sockets.
    Close,
}

/// Binds the four sockets of a call. Fails if any port is taken.
pub fn bind(ip: IpAddr, a_port: u16, b_port: u16) -> std::io::Result<[std::net::UdpSocket; 4]> {
    let b = |port: u16| -> std::io::Result<std::net::UdpSocket> {
        let s = std::net::UdpSocket::bind(SocketAddr::new(ip, port))?;
        s.set_nonblocking(true)?;
        Ok(s)
    };
    Ok([b(a_port)?, b(a_port + 1)?, b(b_port)?, b(b_port + 1)?])
}

/// Registers bound sockets with the current runtime's reactor (call from inside the media
/// runtime, so that reactor drives them).
pub fn register(sockets: [std::net::UdpSocket; 4]) -> std::io::Result<[UdpSocket; 4]> {
    let [a, b, c, d] = sockets;
    Ok([
        UdpSocket::from_std(a)?,
        UdpSocket::from_std(b)?,
        UdpSocket::from_std(c)?,
        UdpSocket::from_std(d)?,
    ])
}

fn index(leg: LegId, channel: Channel) -> usize {
    match (leg, channel) {
        (LegId::A, Channel::Rtp) => 0,
        (LegId::A, Channel::Rtcp) => 1,
        (LegId::B, Channel::Rtp) => 2,
        (LegId::B, Channel::Rtcp) => 3,
    }
}

/// How a call's media ended, with the relay's counters per leg.
#[derive(Debug)]
pub struct MediaSummary {
    /// True if no RTP arrived for the media timeout (the call must be ended).
    pub timed_out: bool,
    /// Counters of the A leg (the caller's side).
    pub a: media::LegStats,
    /// Counters of the B leg (the phone's side).
    pub b: media::LegStats,
}

/// Relays until closed or timed out; then reports the counters through `on_end`.
pub async fn relay(
    sockets: [UdpSocket; 4],
    timeout: Duration,
    commands: mpsc::UnboundedReceiver<MediaCommand>,
    on_end: impl FnOnce(MediaSummary),
) {
    let start = tokio::time::Instant::now().into_std();
    let config = RelayConfig {
        media_timeout: timeout,
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(config, start);
    // Until the call is answered no media is expected: the timeout waits.
    relay.set_hold(true, start);
    let timed_out = run(&mut relay, &sockets, commands).await;
    on_end(MediaSummary {
        timed_out,
        a: relay.stats(LegId::A),
        b: relay.stats(LegId::B),
    });
}

/// The relay loop; true if it ended by media timeout.
async fn run(
    relay: &mut Relay,
    sockets: &[UdpSocket; 4],
    mut commands: mpsc::UnboundedReceiver<MediaCommand>,
) -> bool {
    let mut bufs = [[0u8; 2048]; 4];
    let legs = [
        (LegId::A, Channel::Rtp),
        (LegId::A, Channel::Rtcp),
        (LegId::B, Channel::Rtp),
        (LegId::B, Channel::Rtcp),
    ];
    loop {
        let deadline = relay.poll_timeout().map(tokio::time::Instant::from_std);
        let [b0, b1, b2, b3] = &mut bufs;
        tokio::select! {
            cmd = commands.recv() => match cmd {
                                Some(MediaCommand::Remote { leg, rtp, rtcp }) => relay.set_remote(leg, rtp, rtcp),
                Some(MediaCommand::Hold(on_hold)) => relay.set_hold(on_hold, std::time::Instant::now()),
                Some(MediaCommand::Close) | None => return false,
            },
            r = sockets[0].recv_from(b0) => forward(relay, sockets, legs[0], r, b0),
            r = sockets[1].recv_from(b1) => forward(relay, sockets, legs[1], r, b1),
            r = sockets[2].recv_from(b2) => forward(relay, sockets, legs[2], r, b2),
            r = sockets[3].recv_from(b3) => forward(relay, sockets, legs[3], r, b3),
            _ = sleep_until(deadline) => {
                if relay.handle_timeout(tokio::time::Instant::now().into_std()).is_some() {
                    return true;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn forward(
    relay: &mut Relay,
    sockets: &[UdpSocket; 4],
    (leg, channel): (LegId, Channel),
    r: std::io::Result<(usize, SocketAddr)>,
    buf: &[u8],
) {
    let Ok((n, from)) = r else { return };
    let Some(bytes) = buf.get(..n) else { return };
    let now = std::time::Instant::now();
    if let Forward::To {
        leg: out_leg,
        channel: out_channel,
        addr,
    } = relay.on_datagram(leg, channel, from, bytes, now)
    {
        // A full socket buffer drops the packet, as the network would.
        let _ = sockets[index(out_leg, out_channel)].try_send_to(bytes, addr);
    }
}
