//! Prompt playout: one 20 ms tick per media shard walks every call the switch is playing to
//! and sends each its next frame (`media::Playout`), so thousands of playouts cost one timer,
//! not a task and a sleep per call. Nothing is allocated per packet: the frames were encoded
//! when the prompts were loaded, and one packet buffer serves the whole shard.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use b2bua::CallKey;
use media::{Encoding, Playout, Prompt};
use tokio::sync::mpsc;

use crate::media_task::MediaEvent;

/// Commands from the call loop (and the call's media task) to its shard's player.
pub enum PlayerCommand {
    /// A call the switch answered: send its prompts from `socket` (a duplicate of the call's
    /// A-leg RTP socket, so they leave from the port in our SDP). Without a socket yet (the
    /// call's media task already owns it), nothing plays until [`PlayerCommand::Socket`].
    Open {
        call: CallKey,
        socket: Option<std::net::UdpSocket>,
        encoding: Encoding,
        payload_type: u8,
        ssrc: u32,
    },
    /// The socket of a call opened without one, from its media task.
    Socket {
        call: CallKey,
        socket: std::net::UdpSocket,
    },
    /// Where the caller receives RTP (from SDP, or where the relay latched onto it).
    Remote {
        call: CallKey,
        rtp: Option<SocketAddr>,
    },
    /// Play these prompts, replacing anything playing.
    Play {
        call: CallKey,
        id: u32,
        prompts: Vec<Arc<Prompt>>,
    },
    /// Loop music with announcements.
    Loop {
        call: CallKey,
        music: Arc<Prompt>,
        announcement: Option<Arc<Prompt>>,
        every: Duration,
    },
    /// Stop playing (no end report).
    Stop { call: CallKey },
    /// Forget the call.
    Close { call: CallKey },
}

struct Entry {
    socket: Option<std::net::UdpSocket>,
    remote: Option<SocketAddr>,
    playout: Playout,
    id: Option<u32>,
}

/// Reports a call's media events to the call loop.
pub type Report = Arc<dyn Fn(CallKey, MediaEvent) + Send + Sync>;

/// The shard's player loop: commands in, one tick every 20 ms.
pub async fn run(mut commands: mpsc::UnboundedReceiver<PlayerCommand>, report: Report) {
    let mut calls: HashMap<CallKey, Entry> = HashMap::new();
    let mut tick = tokio::time::interval(media::prompt::FRAME_DURATION);
    // A late tick is sent at once and the next ones keep the original cadence, so the
    // caller's jitter buffer sees 20 ms on average.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut packet = [0u8; 172];
    loop {
        tokio::select! {
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { return };
                let was_idle = calls.is_empty();
                apply(&mut calls, cmd);
                if was_idle && !calls.is_empty() {
                    // The interval was not polled while idle: without this, every tick missed
                    // since would fire at once and the first prompt would leave in a burst.
                    tick.reset();
                }
            }
            _ = tick.tick(), if !calls.is_empty() => {
                for (call, e) in calls.iter_mut() {
                    // Until the call has a socket and an address, its playback waits rather
                    // than runs unheard.
                    let (Some(socket), Some(to)) = (&e.socket, e.remote) else {
                        continue;
                    };
                    if let Some(n) = e.playout.tick(&mut packet) {
                        // A full socket buffer drops the frame, as the network would.
                        let _ = socket.send_to(&packet[..n], to);
                    }
                    if e.playout.take_finished()
                        && let Some(id) = e.id.take()
                    {
                        report(*call, MediaEvent::PlaybackFinished(id));
                    }
                }
            }
        }
    }
}

fn apply(calls: &mut HashMap<CallKey, Entry>, cmd: PlayerCommand) {
    match cmd {
        PlayerCommand::Open {
            call,
            socket,
            encoding,
            payload_type,
            ssrc,
        } => {
            // The first sequence number and timestamp are random (RFC 3550 §5.1); the SSRC
            // already is.
            let seq = (ssrc >> 16) as u16 ^ 0x5a5a;
            let ts = ssrc.rotate_left(13);
            calls.insert(
                call,
                Entry {
                    socket,
                    remote: None,
                    playout: Playout::new(ssrc, seq, ts, encoding, payload_type),
                    id: None,
                },
            );
        }
        PlayerCommand::Socket { call, socket } => {
            if let Some(e) = calls.get_mut(&call) {
                e.socket = Some(socket);
            }
        }
        PlayerCommand::Remote { call, rtp } => {
            if let Some(e) = calls.get_mut(&call) {
                e.remote = rtp;
            }
        }
        PlayerCommand::Play { call, id, prompts } => {
            if let Some(e) = calls.get_mut(&call) {
                e.playout.play(prompts);
                e.id = Some(id);
            }
        }
        PlayerCommand::Loop {
            call,
            music,
            announcement,
            every,
        } => {
            if let Some(e) = calls.get_mut(&call) {
                e.playout.play_looped(music, announcement, every);
                e.id = None;
            }
        }
        PlayerCommand::Stop { call } => {
            if let Some(e) = calls.get_mut(&call) {
                e.playout.stop();
                e.id = None;
            }
        }
        PlayerCommand::Close { call } => {
            calls.remove(&call);
        }
    }
}
