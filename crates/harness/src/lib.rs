//! Scripted SIP user agents for tests and call replay: a [`Phone`] that registers with digest
//! and answers calls, a [`Trunk`] that places them, each with its own RTP leg ([`RtpLeg`]),
//! and a shared [`Transcript`] that prints the SIP ladder when a test fails.
//!
//! # Shape
//!
//! Unlike the core crates this one is an edge crate: it owns tokio UDP sockets and reads the
//! clock. Every wait is bounded by the agent's timeout ([`UserAgent::set_timeout`]) and fails
//! with [`HarnessError::Timeout`] naming what it waited for. Retransmissions are handled
//! minimally (RFC 3261 §17 in spirit, not to the letter): requests other than ACK are resent
//! every 500 ms until a response arrives; our 2xx to an INVITE is resent until the ACK;
//! duplicate responses are absorbed (a repeated 2xx or failure to an INVITE gets the ACK again);
//! a retransmitted request gets our last response again; a CANCEL arriving after our final
//! response is answered 200 (RFC 3261 §9.2).
//!
//! Each agent is driven by the test's own task: it reads its socket only while a method of it
//! is waiting, so the transcript's times are when a message was handled, not when it arrived.
//! Messages that arrive while the agent waits for something else are kept and offered to
//! later waits. Each [`RtpLeg`] collects on a background task, so RTP is never lost to that.
//!
//! # Roles and dialogs
//!
//! - [`Phone`]: `register` (digest MD5 or SHA-256, `qop=auth`, re-answers `stale=true`),
//!   `register_ok`, `register_raw`; `wait_invite` gives an incoming [`Call`] whose SDP answer is
//!   ready; then `ring`, `early_media` (183 + SDP), `answer` (200 + SDP, waits for the ACK),
//!   `answer_after`, `reject`, `wait_cancel` (200 to CANCEL, 487, waits for the ACK). `call`
//!   places a call as the extension, answering the switch's 407 with digest.
//! - [`Trunk`]: `invite`/`invite_with` (offer PCMU 0, PCMA 8, telephone-event 101; trusted by
//!   source address) gives an outgoing [`Call`].
//! - Both, through the [`UserAgent`] they deref to: for outgoing calls `wait_ringing`
//!   (180/183, applies early SDP), `wait_answer` (ACKs the 2xx, applies the SDP answer),
//!   `wait_final`, `cancel`; in any dialog `hangup` (BYE), `wait_bye`, `reinvite`
//!   (hold/resume), `send_info_dtmf`, `request_in_dialog`; and `options`, `idle`, `lose_next`
//!   (fault injection), plus the raw `send_request`/`send_response`/`send_bytes`/`wait_for`/
//!   `wait_final_response` for replaying odd traffic.
//! - [`Call::rtp`] ([`RtpLeg`]): `send_pattern`, `send_tone` (1 kHz PCMU), `send_stream`,
//!   `send_dtmf` (RFC 4733 via the media crate's sender), `received`, `wait_received`,
//!   `received_digits`; [`StreamReport::compare`] checks a relayed stream packet by packet.
//!
//! # Typical use
//!
//! ```no_run
//! # async fn demo(switch: std::net::SocketAddr) -> Result<(), harness::HarnessError> {
//! use harness::{Phone, Trunk, Transcript};
//! let transcript = Transcript::new();
//! let _ladder = transcript.print_on_panic();
//! let mut phone = Phone::bind("201", "pw201", "127.0.0.1".parse().unwrap(), switch, "centralino.example", &transcript).await?;
//! phone.register_ok().await?;
//! let mut trunk = Trunk::bind("127.0.0.2".parse().unwrap(), switch, "centralino.example", &transcript).await?;
//! let mut out = trunk.invite("800840840").await?;
//! let mut inc = phone.wait_invite().await?;
//! phone.ring(&mut inc).await?;
//! phone.answer(&mut inc).await?;
//! trunk.wait_answer(&mut out).await?;
//! trunk.hangup(&mut out).await?;
//! phone.wait_bye(&mut inc).await?;
//! # Ok(()) }
//! ```
//!
//! Must not: be used by production code.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod digest;
mod error;
mod phone;
mod rtp;
mod transcript;
mod trunk;
mod uac;

/// The SDP crate the harness builds offers and answers with, for tests that inspect them.
pub use sdp;

pub use agent::{Call, UserAgent, random_hex};
pub use digest::{Challenge, authorization};
pub use error::HarnessError;
pub use phone::Phone;
pub use rtp::{
    PCMU_PAYLOAD_TYPE, PTIME, RtpLeg, RtpRecord, SAMPLES_PER_PACKET, StreamReport, build_rtp,
    pattern_payload, pcmu_sine,
};
pub use transcript::{Direction, Entry, LadderOnPanic, Transcript};
pub use trunk::Trunk;
