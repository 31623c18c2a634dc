//! SDP for Centralino: the session description model (RFC 8866), a tolerant parser, a
//! deterministic printer, and RFC 3264 offer/answer for a B2BUA that anchors media.
//!
//! This crate owns the bytes of an SDP body and the codec, address and direction decisions
//! made from them. It must not know SIP (no headers, status codes or dialogs: the caller maps
//! [`NegotiationError`] to 488) and must not touch sockets, clocks or randomness: addresses,
//! ports and session ids come in as values.
//!
//! - [`SessionDescription::parse`] accepts what real desk phones send (LF-only, trailing
//!   blanks, empty `s=`, IPv6, `c=0.0.0.0` hold) and reports truly broken input as an
//!   [`SdpError`] with a line number. It never panics and its work is linear in the input.
//! - [`SessionDescription::to_bytes`] prints CRLF lines in RFC order.
//! - [`answer`], [`offer`], [`offer_from`], [`reoffer`] and [`accept_answer`] implement
//!   offer/answer with a [`CodecPolicy`] (G.711, optional G.722, RFC 4733 telephone-event)
//!   and report the outcome as [`Negotiated`]. Every description we send carries an
//!   [`Origin`] whose version grows by one per offer or answer (RFC 3264 §8).
//!
//! A typical call: A's INVITE body goes through [`offer_from`] to make B's offer; B's answer
//! through [`accept_answer`]; then [`answer`] answers A, with a policy of just B's codec to
//! avoid transcoding. Hold is [`reoffer`] with [`Direction::SendOnly`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod model;
mod negotiate;
mod parse;
mod print;

#[cfg(test)]
mod tests;

pub use error::{SdpError, SdpErrorKind};
pub use model::{
    Attribute, Bandwidth, Connection, Direction, Fmtp, MediaDescription, Origin, Rtcp, RtpMap,
    SessionDescription, Timing,
};
pub use negotiate::{
    Codec, CodecPolicy, DEFAULT_PTIME, DEFAULT_TELEPHONE_EVENT_PAYLOAD_TYPE, MediaAddress,
    Negotiated, NegotiatedCodec, NegotiationError, PolicyError, accept_answer, answer, offer,
    offer_from, reoffer,
};

impl SessionDescription {
    /// Parses SDP bytes, tolerating what real phones send; see the crate docs.
    pub fn parse(input: &[u8]) -> Result<SessionDescription, SdpError> {
        parse::parse(input)
    }
}

impl std::str::FromStr for SessionDescription {
    type Err = SdpError;

    /// Parses SDP text; the same as [`SessionDescription::parse`].
    fn from_str(s: &str) -> Result<SessionDescription, SdpError> {
        parse::parse(s.as_bytes())
    }
}
