//! Registrar for Centralino: bindings per address of record (RFC 3261 §10.3), their expiry,
//! and server-side digest authentication (RFC 3261 §22, RFC 7616, RFC 8760).
//!
//! # Owns
//!
//! - [`DigestAuthority`]: challenges, stateless HMAC nonces, verification of `Authorization`
//!   values into an [`Authenticated`] proof that nothing else can forge.
//! - [`Registrar`]: the binding table, driven by REGISTER facts the caller extracted.
//!
//! # Must not
//!
//! This crate is sans-IO. It must not open sockets, read a clock (`now` is always an argument),
//! use the OS RNG (randomness comes in as a caller's `[u8; 32]` secret), or persist anything:
//! every change comes back as a [`Change`] for the caller to store. It must not depend on the
//! SIP message crate either: it works on header value strings and plain data.
//!
//! # Flow of one REGISTER
//!
//! ```
//! use std::time::{Duration, Instant};
//! use registrar::*;
//!
//! let t0 = Instant::now(); // in production, the switch's clock reading
//! let mut authority = DigestAuthority::new("pbx.example", [42; 32], Duration::from_secs(300));
//! let users = [("1013", Credentials::ha1(
//!     Some(&ha1_md5("1013", "pbx.example", "secret")),
//!     Some(&ha1_sha256("1013", "pbx.example", "secret")),
//! ).unwrap())];
//! let lookup = |user: &str| users.iter().find(|(u, _)| *u == user).map(|(_, c)| c);
//!
//! // 1. No Authorization header: answer 401 with these WWW-Authenticate values.
//! let challenge = authority.challenge(t0, false);
//! assert!(challenge[0].contains("algorithm=SHA-256"));
//! # let param = |name: &str| {
//! #     let key = format!(" {name}=\"");
//! #     let start = challenge[0].find(&key).unwrap() + key.len();
//! #     let len = challenge[0][start..].find('"').unwrap();
//! #     challenge[0][start..start + len].to_owned()
//! # };
//! # let (nonce, opaque) = (param("nonce"), param("opaque"));
//! # let ha1 = ha1_sha256("1013", "pbx.example", "secret");
//! # let qop = QopAuth { nc: "00000001", cnonce: "xyz" };
//! # let response = compute_response(Algorithm::Sha256, &ha1, &nonce, "REGISTER", "sip:pbx.example", Some(qop));
//! # let authorization = format!("Digest username=\"1013\", realm=\"pbx.example\", \
//! #     nonce=\"{nonce}\", uri=\"sip:pbx.example\", response=\"{response}\", \
//! #     algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"xyz\", opaque=\"{opaque}\"");
//!
//! // 2. The phone retries with an Authorization header: verify it.
//! // On `Err(AuthFailure::Stale)` answer 401 with `authority.challenge(now, true)`, on
//! // `Err(AuthFailure::Malformed)` 400, on any other error 401 with a fresh challenge.
//! let proof = authority.verify(&authorization, "REGISTER", lookup, t0).expect("the digest above is right");
//!
//! // 3. Apply the REGISTER; persist `changes`, answer 200 OK with `contacts`.
//! let mut registrar = Registrar::new(RegistrarConfig::default());
//! let request = RegisterRequest {
//!     call_id: "c7f6bc72".into(),
//!     cseq: 3,
//!     contacts: vec![ContactSpec::new("sip:1013@192.0.2.7:52917;transport=udp")],
//!     star: false,
//!     expires_header: Some(3600),
//!     source: "192.0.2.7:52917".parse().unwrap(),
//!     transport: "UDP".into(),
//! };
//! let outcome = registrar.apply_register("1013", &proof, request, t0, 1_800_000_000).unwrap();
//! assert_eq!(outcome.contacts[0].header_value(),
//!            "<sip:1013@192.0.2.7:52917;transport=udp>;expires=3600");
//! assert_eq!(outcome.changes.len(), 1);
//!
//! // 4. Routing looks bindings up; a timer at `next_expiry` sweeps expired ones.
//! assert_eq!(registrar.lookup("1013", t0).count(), 1);
//! let later = registrar.next_expiry().unwrap();
//! assert_eq!(registrar.expire(later).len(), 1);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod authority;
mod bindings;
mod digest;
mod header;

pub use authority::{AuthFailure, Authenticated, DEFAULT_NONCE_CAPACITY, DigestAuthority};
pub use bindings::{
    Binding, BindingRecord, Change, ContactSpec, CurrentContact, QValue, RegisterError,
    RegisterOutcome, RegisterRequest, Registrar, RegistrarConfig,
};
pub use digest::{
    Algorithm, Credentials, CredentialsError, QopAuth, compute_response, ha1_md5, ha1_sha256,
};
