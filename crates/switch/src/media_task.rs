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
    /// The switch answered the caller: detect its keys (RFC 4733 with `telephone_event`, else
    /// in-band tones in `encoding`).
    Listen {
        encoding: media::Encoding,
        payload_type: u8,
        telephone_event: Option<u8>,
        /// Give the player a duplicate of the caller's RTP socket (the call loop had none).
        share_socket: bool,
    },
    /// The caller's telephone-event payload type changed (`None`: in-band keys only).
    Dtmf(Option<u8>),
    /// Record the caller for voicemail.
    Record {
        max: Duration,
        meta: crate::voicemail::MessageMeta,
    },
    /// End the recording now and store it.
    StopRecording,
    /// Leave the IVR: no more detection; relay between the legs.
    Bridge,
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

/// What a call's media task reports besides its end.
#[derive(Debug)]
pub enum MediaEvent {
    /// The caller pressed a key (RFC 4733 or in-band).
    Digit(char),
    /// The playback with this id ended.
    PlaybackFinished(u32),
    /// The voicemail recording ended; true if stored durably.
    Recorded(bool),
}

/// How the caller's audio decodes to 8 kHz samples.
enum CallerAudio {
    G711(media::g711::Law),
    /// The caller's G.722 stream state (its low band).
    G722(Box<media::g722::Decoder>),
}

impl CallerAudio {
    fn new(encoding: media::Encoding) -> CallerAudio {
        match encoding {
            media::Encoding::Pcmu => CallerAudio::G711(media::g711::Law::Pcmu),
            media::Encoding::Pcma => CallerAudio::G711(media::g711::Law::Pcma),
            media::Encoding::G722 => CallerAudio::G722(Box::new(media::g722::Decoder::new())),
        }
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        match self {
            CallerAudio::G711(law) => law.decode(payload, out),
            CallerAudio::G722(decoder) => decoder.decode(payload, out),
        }
    }
}

/// The caller's side while the switch answers it: key detection and recording.
struct Listening {
    audio: CallerAudio,
    payload_type: u8,
    telephone_event: Option<u8>,
    events: media::telephone_event::Receiver,
    tones: media::DtmfDetector,
    recording: Option<(media::recorder::Recorder, crate::voicemail::MessageMeta)>,
    pcm: Box<[i16; 2048]>,
    /// The caller's address as last told to the player.
    told: Option<SocketAddr>,
}

/// Where stored messages go, and how the task reports.
pub struct MediaContext {
    /// The data directory (voicemail files and database).
    pub data_dir: std::path::PathBuf,
    /// Reports digits, playback ends and recordings.
    pub events: std::sync::Arc<dyn Fn(MediaEvent) + Send + Sync>,
    /// The call, as the player knows it.
    pub call: b2bua::CallKey,
    /// The shard's prompt player: told where the caller is (after latching too).
    pub player: mpsc::UnboundedSender<crate::player::PlayerCommand>,
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
    context: MediaContext,
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
    let timed_out = run(&mut relay, &sockets, commands, &context).await;
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
    context: &MediaContext,
) -> bool {
    let mut bufs = [[0u8; 2048]; 4];
    let mut listening: Option<Listening> = None;
    let legs = [
        (LegId::A, Channel::Rtp),
        (LegId::A, Channel::Rtcp),
        (LegId::B, Channel::Rtp),
        (LegId::B, Channel::Rtcp),
    ];
    loop {
        if let Some(l) = listening.as_mut() {
            // Prompts go where the relay sends the caller's media: the SDP address, or the
            // one it latched onto (a caller behind NAT).
            let to = relay.remote(LegId::A, Channel::Rtp);
            if to != l.told {
                l.told = to;
                let _ = context.player.send(crate::player::PlayerCommand::Remote {
                    call: context.call,
                    rtp: to,
                });
            }
        }
        let event_end = listening.as_ref().and_then(|l| l.events.poll_timeout());
        let deadline = match (relay.poll_timeout(), event_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(tokio::time::Instant::from_std);
        let [b0, b1, b2, b3] = &mut bufs;
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(MediaCommand::Remote { leg, rtp, rtcp }) => relay.set_remote(leg, rtp, rtcp),
                Some(MediaCommand::Hold(on_hold)) => relay.set_hold(on_hold, std::time::Instant::now()),
                Some(MediaCommand::Listen { encoding, payload_type, telephone_event, share_socket }) => {
                    if share_socket {
                        match socket2::SockRef::from(&sockets[0]).try_clone() {
                            Ok(s) => {
                                let socket = std::net::UdpSocket::from(s);
                                let _ = context.player.send(crate::player::PlayerCommand::Socket { call: context.call, socket });
                            }
                            Err(e) => tracing::warn!(call = context.call.0, error = %e, "cannot share the caller's socket with the player"),
                        }
                    }
                    listening = Some(Listening {
                        audio: CallerAudio::new(encoding),
                        payload_type,
                        telephone_event,
                        events: media::telephone_event::Receiver::new(Duration::from_millis(200)),
                        tones: media::DtmfDetector::new(),
                        recording: None,
                        pcm: Box::new([0; 2048]),
                        told: None,
                    });
                }
                Some(MediaCommand::Record { max, meta }) => {
                    if let Some(l) = listening.as_mut() {
                        let config = media::recorder::RecorderConfig { max, ..Default::default() };
                        l.recording = Some((media::recorder::Recorder::new(config), meta));
                    }
                }
                Some(MediaCommand::Dtmf(pt)) => {
                    if let Some(l) = listening.as_mut() {
                        l.telephone_event = pt;
                    }
                }
                Some(MediaCommand::StopRecording) => {
                    if let Some(l) = listening.as_mut() {
                        finish_recording(l, context);
                    }
                }
                Some(MediaCommand::Bridge) => listening = None,
                Some(MediaCommand::Close) | None => {
                    // A caller who hangs up while recording has left a message: keep it.
                    if let Some(l) = listening.as_mut() {
                        finish_recording(l, context);
                    }
                    return false;
                }
            },
            r = sockets[0].recv_from(b0) => {
                if let (Some(l), Ok((n, _))) = (listening.as_mut(), &r) {
                    listen(l, &b0[..*n], context);
                }
                forward(relay, sockets, legs[0], r, b0)
            }
            r = sockets[1].recv_from(b1) => forward(relay, sockets, legs[1], r, b1),
            r = sockets[2].recv_from(b2) => forward(relay, sockets, legs[2], r, b2),
            r = sockets[3].recv_from(b3) => forward(relay, sockets, legs[3], r, b3),
            _ = sleep_until(deadline) => {
                let now = tokio::time::Instant::now().into_std();
                if let Some(l) = listening.as_mut() {
                    l.events.handle_timeout(now);
                    while let Some(d) = l.events.poll_digit() {
                        if let Some(c) = d.symbol() {
                            (context.events)(MediaEvent::Digit(c));
                        }
                    }
                }
                if relay.handle_timeout(now).is_some() {
                    // A line gone quiet mid-message still leaves the message.
                    if let Some(l) = listening.as_mut() {
                        finish_recording(l, context);
                    }
                    return true;
                }
            }
        }
    }
}

/// One RTP datagram from the caller while the switch answers it: RFC 4733 events when
/// agreed, else in-band tones in the audio; the audio also feeds a voicemail recording.
fn listen(l: &mut Listening, bytes: &[u8], context: &MediaContext) {
    let Ok(packet) = media::packet::parse_rtp(bytes) else {
        return;
    };
    let now = std::time::Instant::now();
    if Some(packet.payload_type) == l.telephone_event {
        l.events.on_packet(&packet, now);
        while let Some(d) = l.events.poll_digit() {
            if let Some(c) = d.symbol() {
                (context.events)(MediaEvent::Digit(c));
            }
        }
        return;
    }
    if packet.payload_type != l.payload_type {
        return;
    }
    // Audio is decoded only when something listens to it: in-band keys (a caller without
    // RFC 4733) or a voicemail recording. (A G.722 decoder resumed at the recording's start
    // re-converges within a few milliseconds, under the beep's echo.)
    if l.telephone_event.is_some() && l.recording.is_none() {
        return;
    }
    let n = packet.payload.len().min(l.pcm.len());
    let n = l.audio.decode(&packet.payload[..n], &mut l.pcm[..n]);
    if l.telephone_event.is_none() {
        // In-band detection only for callers that cannot send RFC 4733 (chosen from the
        // SDP): a trunk that sends both would otherwise report every key twice.
        for c in l.tones.push(&l.pcm[..n]) {
            (context.events)(MediaEvent::Digit(c));
        }
    }
    if let Some((recorder, _)) = l.recording.as_mut()
        && recorder.push(&l.pcm[..n]).is_some()
    {
        finish_recording(l, context);
    }
}

/// Stores the recording (if one runs) off the media thread and reports when it is durable.
fn finish_recording(l: &mut Listening, context: &MediaContext) {
    let Some((recorder, meta)) = l.recording.take() else {
        return;
    };
    let samples = recorder.samples().to_vec();
    let data_dir = context.data_dir.clone();
    let events = std::sync::Arc::clone(&context.events);
    // A thread of its own, so the relay loop never waits on the disk.
    std::thread::spawn(move || {
        let stored = match crate::voicemail::store(&data_dir, &meta, &samples) {
            Ok(path) => {
                tracing::info!(path = %path.display(), mailbox = %meta.mailbox, seconds = samples.len() / 8000, "voicemail stored");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, mailbox = %meta.mailbox, "voicemail could not be stored");
                false
            }
        };
        events(MediaEvent::Recorded(stored));
    });
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
