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
