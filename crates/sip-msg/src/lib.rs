//! SIP message syntax for Centralino: parse and print requests, responses, URIs and headers.
//!
//! Accepts everything RFC 3261, RFC 4475 and RFC 5118 call valid (folding, compact forms, LWS
//! around separators, escaped URIs, `tel:` and `sips:`, IPv6 references, unknown methods and
//! headers, several values per line, non-UTF-8 bytes in header values) and rejects what they
//! call invalid with a reason and the status to answer.
//!
//! Architecture invariant: this crate knows no transactions, no time and no sockets, and never
//! panics or allocates without bound on any input (see `MAX_MESSAGE_SIZE`, `MAX_HEADERS`).
//!
//! Header values that are not UTF-8 are kept with each invalid byte replaced by `?` (size
//! preserving, so an answer that copies such a header never outgrows a datagram): the B2BUA
//! never relays a header from one leg to the other byte for byte, so nothing is lost that
//! matters.

mod framing;
mod header;
mod message;
mod method;
pub mod syntax;
mod uri;

pub use framing::{Frame, FrameError, StreamFramer};
pub use header::{
    BRANCH_MAGIC, CSeq, Header, HeaderError, HeaderName, Headers, NameAddr, Via, parse_u32,
};
pub use message::{
    Framing, Invalid, MAX_HEADERS, MAX_MESSAGE_SIZE, Message, ParseError, ParseErrorKind, Request,
    Response, parse,
};
pub use method::Method;
pub use syntax::Param;
pub use uri::{SipUri, TelUri, Uri, UriError};
