//! Prompt playback as RTP: one [`Playout`] per call, driven by a 20 ms tick from outside.
//!
//! The switch keeps one timer per media shard and, on each tick, calls [`Playout::tick`] for
//! every call that plays something; there is no task, sleep or clock read per call. A tick
//! copies one ready frame of a [`Prompt`] (decoded and encoded at load) behind a 12-byte RTP
//! header into the caller's buffer and allocates nothing.
//!
//! Timing follows RFC 3550/3551 for a sender that goes quiet between prompts: the RTP
//! timestamp advances by 160 (20 ms at 8 kHz) on every tick, whether a packet goes out or
//! not, so a gap in sending shows as a timestamp jump; the sequence number advances only per
//! packet sent, so the receiver sees no loss. The first packet of every new sequence
//! ([`Playout::play`], [`Playout::play_looped`]) carries the marker bit, the start of a
//! talkspurt (RFC 3551 §4.1); a prompt that follows another within one sequence does not.

use std::sync::Arc;
use std::time::Duration;

use crate::packet::{RTP_HEADER_LEN, RtpPacket, write_rtp};
use crate::prompt::Encoding;
use crate::prompt::{FRAME_DURATION, FRAME_SAMPLES, Prompt};

/// The length of every packet [`Playout::tick`] writes: header and one 20 ms G.711 frame.
pub const PACKET_LEN: usize = RTP_HEADER_LEN + FRAME_SAMPLES;

/// What a [`Playout`] is playing and where it is.
#[derive(Clone, Debug)]
enum Source {
    /// Nothing plays.
    Idle,
    /// A one-shot sequence of prompts. Invariant: `prompts` holds only prompts with frames,
    /// and `prompts[prompt]` has a frame at `frame`.
    Sequence {
        prompts: Vec<Arc<Prompt>>,
        prompt: usize,
        frame: usize,
    },
    /// Music on hold, with an announcement every `every_frames` frames of music.
    /// Invariant: `music` has frames; `announcement`, when set, has frames too.
    Looped {
        music: Arc<Prompt>,
        announcement: Option<Arc<Prompt>>,
        every_frames: u64,
        /// The next music frame (music resumes here after an announcement).
        music_frame: usize,
        /// Music frames sent since the last announcement (or the start).
        music_since: u64,
        /// The next announcement frame while an announcement plays.
        announcing: Option<usize>,
    },
}

/// An RTP packetiser for prompt playback on one call (see the module docs).
#[derive(Clone, Debug)]
pub struct Playout {
    ssrc: u32,
    /// The sequence number of the next packet sent.
    sequence_number: u16,
    /// The RTP timestamp of the next tick.
    timestamp: u32,
    law: Encoding,
    payload_type: u8,
    source: Source,
    /// The next packet sent starts a sequence and carries the marker bit.
    marker: bool,
    /// A one-shot sequence sent its last frame and nobody has asked yet.
    finished: bool,
}

impl Playout {
    /// A silent playout for one call's stream: `ssrc`, the first sequence number and the
    /// timestamp of the first tick, and the law (with its negotiated payload type) to send.
    pub fn new(
        ssrc: u32,
        first_seq: u16,
        first_timestamp: u32,
        law: impl Into<Encoding>,
        payload_type: u8,
    ) -> Playout {
        Playout {
            ssrc,
            sequence_number: first_seq,
            timestamp: first_timestamp,
            law: law.into(),
            payload_type,
            source: Source::Idle,
            marker: false,
            finished: false,
        }
    }

    /// Replace whatever plays with these prompts, in order. Prompts without frames are
    /// skipped; a list with no frame at all is [`Playout::stop`]. The first packet carries
    /// the marker bit, and [`Playout::take_finished`] reports the end of this sequence once
    /// its last frame was sent. A finished report not yet taken is dropped.
    pub fn play(&mut self, mut prompts: Vec<Arc<Prompt>>) {
        prompts.retain(|p| p.n_frames() > 0);
        if prompts.is_empty() {
            self.stop();
            return;
        }
        self.source = Source::Sequence {
            prompts,
            prompt: 0,
            frame: 0,
        };
        self.marker = true;
        self.finished = false;
    }

    /// Loop `music` for ever, playing `announcement` whole after every `every` of music (at
    /// least one frame; music resumes where it was): music on hold and queue announcements.
    /// The first announcement comes after the first `every` of music. Music without frames is
    /// [`Playout::stop`]; an announcement without frames is none. Never reports finished.
    pub fn play_looped(
        &mut self,
        music: Arc<Prompt>,
        announcement: Option<Arc<Prompt>>,
        every: Duration,
    ) {
        if music.n_frames() == 0 {
            self.stop();
            return;
        }
        let every_frames = (every.as_nanos().div_ceil(FRAME_DURATION.as_nanos())).max(1);
        self.source = Source::Looped {
            music,
            announcement: announcement.filter(|a| a.n_frames() > 0),
            every_frames: u64::try_from(every_frames).unwrap_or(u64::MAX),
            music_frame: 0,
            music_since: 0,
            announcing: None,
        };
        self.marker = true;
        self.finished = false;
    }

    /// Nothing plays from the next tick on; the stopped sequence reports no finish (and a
    /// finished report not yet taken is dropped).
    pub fn stop(&mut self) {
        self.source = Source::Idle;
        self.marker = false;
        self.finished = false;
    }

    /// Whether the next tick sends a packet.
    pub fn is_playing(&self) -> bool {
        !matches!(self.source, Source::Idle)
    }

    /// Send the next packets in `law` with `payload_type` (after a re-INVITE changed the
    /// codec); the position in the prompts is kept.
    pub fn set_law(&mut self, law: impl Into<Encoding>, payload_type: u8) {
        self.law = law.into();
        self.payload_type = payload_type;
    }

    /// The encoding packets are sent in.
    pub fn law(&self) -> Encoding {
        self.law
    }

    /// One 20 ms tick: writes the next RTP packet (12-byte header and 160 bytes of G.711)
    /// into `out` and returns its length ([`PACKET_LEN`]), or `None` when nothing plays.
    /// The timestamp advances by 160 on every tick, the sequence number per packet sent.
    /// Allocates nothing.
    pub fn tick(&mut self, out: &mut [u8; PACKET_LEN]) -> Option<usize> {
        let timestamp = self.timestamp;
        self.timestamp = self.timestamp.wrapping_add(FRAME_SAMPLES as u32);
        let law = self.law;
        let (frame, last) = match &mut self.source {
            Source::Idle => return None,
            Source::Sequence {
                prompts,
                prompt,
                frame,
            } => {
                let current = prompts.get(*prompt)?;
                let bytes = current.frame(law, *frame)?;
                *frame += 1;
                if *frame >= current.n_frames() {
                    *frame = 0;
                    *prompt += 1;
                }
                (bytes, *prompt >= prompts.len())
            }
            Source::Looped {
                music,
                announcement,
                every_frames,
                music_frame,
                music_since,
                announcing,
            } => match (announcing.as_mut(), announcement.as_ref()) {
                (Some(next), Some(ann)) => {
                    let bytes = ann.frame(law, *next)?;
                    *next += 1;
                    if *next >= ann.n_frames() {
                        *announcing = None;
                    }
                    (bytes, false)
                }
                _ => {
                    let bytes = music.frame(law, *music_frame)?;
                    *music_frame = (*music_frame + 1) % music.n_frames();
                    *music_since += 1;
                    if announcement.is_some() && *music_since >= *every_frames {
                        *music_since = 0;
                        *announcing = Some(0);
                    }
                    (bytes, false)
                }
            },
        };
        let packet = RtpPacket {
            payload_type: self.payload_type,
            marker: self.marker,
            sequence_number: self.sequence_number,
            timestamp,
            ssrc: self.ssrc,
            payload: frame,
        };
        // 172 bytes always hold a 12-byte header and a 160-byte frame.
        let len = write_rtp(&packet, out).ok()?;
        self.sequence_number = self.sequence_number.wrapping_add(1);
        self.marker = false;
        if last {
            self.source = Source::Idle;
            self.finished = true;
        }
        Some(len)
    }

    /// True once after the last frame of a [`Playout::play`] sequence was sent.
    pub fn take_finished(&mut self) -> bool {
        std::mem::take(&mut self.finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711::Law;
    use crate::packet::parse_rtp;

    /// A prompt of `n_frames` frames whose samples encode the frame number (so frames differ).
    fn prompt(name: &str, n_frames: usize, base: i16) -> Arc<Prompt> {
        let pcm = (0..n_frames * FRAME_SAMPLES)
            .map(|i| {
                base.wrapping_add((i / FRAME_SAMPLES) as i16 * 97)
                    .wrapping_add((i % 7) as i16)
            })
            .collect();
        Arc::new(Prompt::from_pcm(name, pcm))
    }

    struct Sent {
        seq: u16,
        ts: u32,
        ssrc: u32,
        marker: bool,
        pt: u8,
        payload: Vec<u8>,
    }

    /// Tick once; the parsed packet, if one was sent.
    fn tick(playout: &mut Playout) -> Option<Sent> {
        let mut buf = [0u8; PACKET_LEN];
        let len = playout.tick(&mut buf)?;
        assert_eq!(len, PACKET_LEN);
        let p = parse_rtp(&buf[..len]).expect("valid RTP");
        Some(Sent {
            seq: p.sequence_number,
            ts: p.timestamp,
            ssrc: p.ssrc,
            marker: p.marker,
            pt: p.payload_type,
            payload: p.payload.to_vec(),
        })
    }

    #[test]
    fn header_fields_seq_ts_ssrc_and_marker() {
        let mut playout = Playout::new(0xdead_beef, 65_534, u32::MAX - 159, Law::Pcmu, 0);
        assert!(!playout.is_playing());
        // Silence: no packet, but the timestamp moves on.
        assert!(tick(&mut playout).is_none());
        playout.play(vec![prompt("a", 3, 0)]);
        assert!(playout.is_playing());
        let sent: Vec<Sent> = std::iter::from_fn(|| tick(&mut playout)).collect();
        assert_eq!(sent.len(), 3);
        assert_eq!(
            sent.iter().map(|s| s.seq).collect::<Vec<_>>(),
            [65_534, 65_535, 0]
        );
        assert_eq!(
            sent.iter().map(|s| s.ts).collect::<Vec<_>>(),
            [0, 160, 320],
            "one silent tick already advanced the timestamp (wrapping)"
        );
        assert!(sent.iter().all(|s| s.ssrc == 0xdead_beef && s.pt == 0));
        assert_eq!(
            sent.iter().map(|s| s.marker).collect::<Vec<_>>(),
            [true, false, false]
        );
        // Three silent ticks (the one that ended the collect above, and two more), then a new
        // sequence:
        // the sequence number continues, the timestamp shows the gap, the marker is set again.
        assert!(tick(&mut playout).is_none());
        assert!(tick(&mut playout).is_none());
        playout.play(vec![prompt("b", 2, 10)]);
        let next = tick(&mut playout).expect("playing");
        assert_eq!((next.seq, next.ts, next.marker), (1, 320 + 4 * 160, true));
        let next = tick(&mut playout).expect("playing");
        assert_eq!((next.seq, next.ts, next.marker), (2, 320 + 5 * 160, false));
    }

    #[test]
    fn replacing_a_sequence_marks_its_first_packet() {
        let mut playout = Playout::new(1, 0, 0, Law::Pcma, 8);
        playout.play(vec![prompt("a", 5, 0)]);
        assert!(tick(&mut playout).expect("sent").marker);
        assert!(!tick(&mut playout).expect("sent").marker);
        playout.play(vec![prompt("b", 5, 0)]);
        let first = tick(&mut playout).expect("sent");
        assert!(first.marker);
        assert_eq!((first.seq, first.ts, first.pt), (2, 320, 8));
    }

    #[test]
    fn three_prompts_send_every_frame_once_then_report_finished_once() {
        let prompts = vec![
            prompt("a", 4, 0),
            prompt("b", 1, 1000),
            prompt("c", 7, -3000),
        ];
        let total: usize = prompts.iter().map(|p| p.n_frames()).sum();
        let expected: Vec<Vec<u8>> = prompts
            .iter()
            .flat_map(|p| p.frames(Law::Pcmu).iter().map(|f| f.to_vec()))
            .collect();
        let mut playout = Playout::new(7, 100, 0, Law::Pcmu, 0);
        playout.play(prompts);
        let mut payloads = Vec::new();
        for i in 0..total {
            assert!(
                !playout.take_finished(),
                "finished early, before packet {i}"
            );
            payloads.push(tick(&mut playout).expect("still playing").payload);
        }
        assert_eq!(payloads.len(), total);
        assert_eq!(
            payloads, expected,
            "payloads are the prompts' PCMU frames, in order"
        );
        assert!(!playout.is_playing());
        assert!(playout.take_finished());
        assert!(!playout.take_finished(), "reported once");
        for _ in 0..10 {
            assert!(tick(&mut playout).is_none());
        }
        assert!(!playout.take_finished());
    }

    #[test]
    fn payload_follows_the_law_and_set_law() {
        let p = prompt("a", 4, 500);
        let mut playout = Playout::new(7, 0, 0, Law::Pcma, 8);
        playout.play(vec![p.clone()]);
        let first = tick(&mut playout).expect("sent");
        assert_eq!(first.payload, p.frames(Law::Pcma)[0]);
        assert_eq!(first.pt, 8);
        playout.set_law(Law::Pcmu, 0);
        assert_eq!(playout.law(), Encoding::Pcmu);
        let second = tick(&mut playout).expect("sent");
        assert_eq!(second.payload, p.frames(Law::Pcmu)[1]);
        assert_eq!(second.pt, 0);
        assert_ne!(p.frames(Law::Pcma)[1], p.frames(Law::Pcmu)[1]);
    }

    #[test]
    fn stop_reports_no_finish() {
        let mut playout = Playout::new(7, 0, 0, Law::Pcmu, 0);
        playout.play(vec![prompt("a", 3, 0)]);
        tick(&mut playout).expect("sent");
        tick(&mut playout).expect("sent");
        playout.stop();
        assert!(!playout.is_playing());
        for _ in 0..5 {
            assert!(tick(&mut playout).is_none());
            assert!(!playout.take_finished());
        }
        // A finish not yet taken is dropped by stop, and by a new play.
        playout.play(vec![prompt("a", 1, 0)]);
        tick(&mut playout).expect("sent");
        playout.stop();
        assert!(!playout.take_finished());
        playout.play(vec![prompt("a", 1, 0)]);
        tick(&mut playout).expect("sent");
        playout.play(vec![prompt("b", 2, 0)]);
        assert!(!playout.take_finished());
    }

    #[test]
    fn empty_sequences_play_nothing() {
        let mut playout = Playout::new(7, 0, 0, Law::Pcmu, 0);
        playout.play(vec![]);
        assert!(!playout.is_playing());
        playout.play(vec![Arc::new(Prompt::from_pcm("empty", Vec::new()))]);
        assert!(!playout.is_playing());
        assert!(tick(&mut playout).is_none());
        assert!(!playout.take_finished());
        // Empty prompts inside a sequence are skipped.
        let a = prompt("a", 2, 0);
        playout.play(vec![
            Arc::new(Prompt::from_pcm("empty", Vec::new())),
            a.clone(),
            Arc::new(Prompt::from_pcm("empty", Vec::new())),
        ]);
        let sent: Vec<Sent> = std::iter::from_fn(|| tick(&mut playout)).collect();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].payload, a.frames(Law::Pcmu)[1]);
        assert!(playout.take_finished());
    }

    #[test]
    fn looped_music_inserts_the_announcement_every_interval_and_resumes() {
        let music = prompt("music", 7, 0);
        let ann = prompt("ann", 3, 20_000);
        let mut playout = Playout::new(7, 0, 0, Law::Pcmu, 0);
        // 100 ms = 5 frames of music between announcements.
        playout.play_looped(music.clone(), Some(ann.clone()), Duration::from_millis(100));
        let m = |i: usize| music.frames(Law::Pcmu)[i % 7].to_vec();
        let a = |i: usize| ann.frames(Law::Pcmu)[i].to_vec();
        let mut expected = Vec::new();
        let mut music_idx = 0;
        for _ in 0..6 {
            for _ in 0..5 {
                expected.push(m(music_idx));
                music_idx += 1;
            }
            expected.extend((0..3).map(a));
        }
        let sent: Vec<Sent> = (0..expected.len())
            .map(|_| tick(&mut playout).expect("loops for ever"))
            .collect();
        let payloads: Vec<Vec<u8>> = sent.iter().map(|s| s.payload.clone()).collect();
        assert_eq!(payloads, expected);
        assert_eq!(sent.iter().filter(|s| s.marker).count(), 1);
        assert!(sent[0].marker);
        // Consecutive sequence numbers and timestamps throughout.
        for (i, s) in sent.iter().enumerate() {
            assert_eq!((usize::from(s.seq), s.ts as usize), (i, i * 160));
        }
        assert!(playout.is_playing());
        assert!(!playout.take_finished(), "a loop never finishes");
    }

    #[test]
    fn looped_interval_rounds_up_to_frames_and_music_alone_loops() {
        let music = prompt("music", 2, 0);
        let ann = prompt("ann", 1, 20_000);
        let mut playout = Playout::new(7, 0, 0, Law::Pcmu, 0);
        // 50 ms → 3 frames of music; 0 s → 1 frame.
        playout.play_looped(music.clone(), Some(ann.clone()), Duration::from_millis(50));
        let kinds: String = (0..12)
            .map(|_| {
                let s = tick(&mut playout).expect("sent");
                if s.payload == ann.frames(Law::Pcmu)[0] {
                    'A'
                } else {
                    'm'
                }
            })
            .collect();
        assert_eq!(kinds, "mmmAmmmAmmmA");
        playout.play_looped(music.clone(), Some(ann.clone()), Duration::ZERO);
        let kinds: String = (0..6)
            .map(|_| {
                let s = tick(&mut playout).expect("sent");
                if s.payload == ann.frames(Law::Pcmu)[0] {
                    'A'
                } else {
                    'm'
                }
            })
            .collect();
        assert_eq!(kinds, "mAmAmA");
        playout.play_looped(music.clone(), None, Duration::from_millis(20));
        for i in 0..9 {
            let s = tick(&mut playout).expect("sent");
            assert_eq!(s.payload, music.frames(Law::Pcmu)[i % 2]);
        }
        playout.stop();
        assert!(tick(&mut playout).is_none());
    }
}
