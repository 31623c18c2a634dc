//! Media for Centralino: RTP/RTCP inspection and relay, G.711, RFC 4733 telephone-events and
//! RTP port allocation.
//!
//! # What this crate owns
//!
//! - [`packet`]: validate a datagram as RTP or RTCP and read its header (RFC 3550, RFC 5761).
//! - [`relay`]: the sans-IO per-call [`Relay`] between two legs, with symmetric-RTP latching,
//!   counters and the media timeout.
//! - [`ports`]: the [`PortAllocator`] that hands out even RTP ports and their RTCP neighbours.
//! - [`g711`]: table-driven PCMU/PCMA encode and decode.
//! - [`telephone_event`]: the RFC 4733 payload, a digit receiver and a digit sender.
//! - [`prompt`]: audio file bytes (WAV, FLAC, MP3, Ogg/Vorbis) to a [`Prompt`] of ready 20 ms
//!   PCMU/PCMA frames, decoded, downmixed and resampled to 8 kHz once at load.
//! - [`dtmf_detect`]: the in-band [`DtmfDetector`] (Goertzel with level, twist, purity,
//!   harmonic, frequency and timing checks) and the [`dtmf_tone`] generator.
//! - [`playout`]: the per-call [`Playout`] that sends prompts as RTP, one packet per 20 ms
//!   tick given from outside.
//! - [`recorder`]: the voicemail [`Recorder`] (ends on silence or length) and [`wav_bytes`].
//!
//! # What it must not do
//!
//! It opens no sockets and no files, knows nothing of SIP or SDP text, and reads no clock: time
//! comes in as an [`std::time::Instant`] argument, and the switch binary owns the UDP sockets
//! and calls [`Relay::on_datagram`] once per datagram. The per-packet path allocates nothing
//! and never copies or rewrites the packet: SSRC, sequence number and timestamp pass through.
//! Peer misbehaviour (garbage datagrams, strangers sending to our ports) is dropped and counted,
//! never returned as an error and never a panic.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dtmf_detect;
pub mod g711;
pub mod g722;
pub mod packet;
pub mod playout;
pub mod ports;
pub mod prompt;
pub mod recorder;
pub mod relay;
mod sequence;
pub mod telephone_event;

pub use dtmf_detect::{DtmfConfig, DtmfDetector, dtmf_tone};
pub use packet::{
    BufferTooSmall, InspectError, Packet, PacketKind, RtcpCompound, RtpPacket, inspect, write_rtp,
};
pub use playout::Playout;
pub use ports::{PortAllocator, PortError, PortPair};
pub use prompt::{Encoding, Prompt, PromptError, decode_prompt};
pub use recorder::{RecordEnd, Recorder, RecorderConfig, wav_bytes};
pub use relay::{
    Channel, DropCounts, DropReason, Forward, LegId, LegStats, MediaEvent, Relay, RelayConfig,
};
