//! The SIP transaction layer of Centralino: RFC 3261 §17 with the RFC 6026 fixes, sans-IO.
//!
//! [`TransactionLayer`] owns every client and server transaction of the switch: it matches
//! requests and responses to transactions (RFC 3261 §17.1.3, §17.2.3), absorbs and answers
//! retransmissions, retransmits on unreliable transports (Timers A, E, G and the 2xx
//! retransmissions of RFC 3261 §13.3.1.4), builds the ACK for a 3xx-6xx (§17.1.1.3), answers
//! CANCEL (§9.2), and runs every timeout (Timers B, D, F, H, I, J, K, L, M).
//!
//! Architecture invariant: this crate owns no socket, reads no clock, spawns nothing and uses
//! no async runtime. Every input is a `&mut self` method carrying the current [`Instant`](std::time::Instant); the
//! driver then drains [`TransactionLayer::poll_output`] until `None` and sleeps until
//! [`TransactionLayer::poll_timeout`], calling [`TransactionLayer::handle_timeout`] then.
//! It knows nothing about dialogs: the ACK for a 2xx and the 2xx retransmissions of a client
//! INVITE are handed to the transaction user (TU), which is the B2BUA.
//!
//! Run loop, as in str0m and quinn:
//!
//! ```
//! # use std::time::{Duration, Instant};
//! # use sip_core::{TransactionLayer, TimerConfig, TxOutput};
//! let mut layer = TransactionLayer::new(TimerConfig::default());
//! let now = Instant::now(); // the driver's clock; tests use virtual time
//! // layer.handle_request(request, from, now) / handle_response / send_request / ...
//! while let Some(output) = layer.poll_output() {
//!     match output {
//!         TxOutput::Transmit { to: _, bytes: _ } => { /* write to the socket for `to` */ }
//!         TxOutput::Event(_event) => { /* hand to the TU */ }
//!     }
//! }
//! if let Some(deadline) = layer.poll_timeout() {
//!     // sleep until `deadline`, then: layer.handle_timeout(deadline_or_later);
//! #   layer.handle_timeout(deadline);
//! }
//! ```
//!
//! Design choices, each also noted where it is implemented:
//! - Responses of a server transaction go to the source address of the request (the `from`
//!   [`Peer`]), not to the Via sent-by: symmetric response routing, which is what RFC 3581
//!   `rport` asks for and what phones behind NAT need.
//! - An INVITE server transaction sends `100 Trying` itself if the TU has sent no provisional
//!   response 200 ms after the INVITE arrived (RFC 3261 §17.2.1), or at once when the INVITE is
//!   retransmitted before that.
//! - On a reliable transport the zero-length timers (D, I, J, K) end the transaction at once,
//!   and nothing is retransmitted, not even a 2xx (see the DEVIATION note in `server.rs`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod build;
mod client;
mod layer;
mod server;
mod timer;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

use sip_msg::{Request, Response};

pub use build::{build_ack_for_non_2xx, build_cancel};
pub use layer::TransactionLayer;

/// The transport a message travels on; only its reliability matters here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unreliable datagrams: the layer retransmits.
    Udp,
    /// A reliable stream: no retransmissions, zero-length wait timers.
    Tcp,
}

impl Transport {
    /// True for stream transports, which make RFC 3261's retransmissions unnecessary.
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }
}

/// The other end of a hop: where a message came from or goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Transport used for the hop.
    pub transport: Transport,
    /// Remote socket address (source of a received message, destination of a sent one).
    pub addr: SocketAddr,
}

/// Handle of a client transaction (a request we sent), unique for the layer's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(pub u64);

/// Handle of a server transaction (a request we received), unique for the layer's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxId(pub u64);

/// RFC 3261 §17.1.1.1 timer values; every lettered timer derives from these three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// Round-trip estimate (default 500 ms); a zero value is treated as 1 ms.
    pub t1: Duration,
    /// Longest retransmission interval for non-INVITE requests and INVITE responses (4 s);
    /// a value below T1 is treated as T1.
    pub t2: Duration,
    /// Longest time a message stays in the network (5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Something the transaction user (the B2BUA) must know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxEvent {
    /// A new request for the TU (a server transaction now exists; not for ACK).
    Request {
        /// The new server transaction; answer with [`TransactionLayer::send_response`].
        id: ServerTxId,
        /// The request as received.
        request: Request,
        /// Its source; responses go back there.
        from: Peer,
    },
    /// An ACK that matches no transaction (ACK for a 2xx: end to end, dialog layer handles it).
    Ack {
        /// The ACK as received.
        request: Request,
        /// Its source.
        from: Peer,
    },
    /// CANCEL matched an INVITE server transaction in Proceeding: the layer has already answered
    /// the CANCEL 200 (RFC 3261 §9.2); the TU should answer the INVITE 487.
    Cancelled {
        /// The INVITE server transaction that was cancelled.
        invite: ServerTxId,
    },
    /// A response for a client transaction (provisional or final; for INVITE every 2xx
    /// retransmission is delivered too, RFC 6026 Accepted state, so the TU can re-ACK).
    Response {
        /// The client transaction.
        id: ClientTxId,
        /// The response as received.
        response: Response,
    },
    /// Timer B/F fired (or transport error): the TU should act as if it got 408.
    Timeout {
        /// The client transaction that timed out; it no longer exists.
        id: ClientTxId,
    },
    /// A 2xx to INVITE that matched no client transaction (stray): the TU may ACK and BYE it.
    StrayResponse {
        /// The response as received.
        response: Response,
        /// Its source.
        from: Peer,
    },
    /// An INVITE server transaction never saw the ACK for its final response; it no longer
    /// exists. `after_2xx` keeps the two cases apart: `false` is Timer H after a 3xx-6xx
    /// (nothing to do), `true` is Timer L after the TU's 2xx was never ACKed (send BYE).
    AckTimeout {
        /// The INVITE server transaction.
        id: ServerTxId,
        /// True if the unacknowledged final response was a 2xx.
        after_2xx: bool,
    },
}

/// What the driver must do after an input: send bytes, or hand an event to the TU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxOutput {
    /// Send `bytes` to `to` (a whole SIP message).
    Transmit {
        /// Destination.
        to: Peer,
        /// One serialised SIP message.
        bytes: Vec<u8>,
    },
    /// An event for the TU.
    Event(TxEvent),
}
