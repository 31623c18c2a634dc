//! The Switchboard: Centralino's call core, sans-IO.
//!
//! It is fed `(Input, Now)` and returns [`Output`]s: bytes to send, media to open or close,
//! registrations to persist. It owns the transaction layer, the registrar, every call's two
//! dialogs and their SDP, and asks the router where each call goes.
//!
//! Architecture invariant: no tokio, no sockets, no clock reads, no OS randomness. The driver
//! (the `centralino` binary, or a test) calls [`Switchboard::handle`], drains
//! [`Switchboard::poll_output`] until `None`, then sleeps until [`Switchboard::poll_timeout`].

mod call;
pub mod config;
mod rng;
mod switchboard;

pub use config::{Config, ConfigError, Extension, Trunk};
pub use registrar::BindingRecord;
pub use rng::Rng;
pub use switchboard::{
    CallKey, Input, LegSide, Now, Output, Stats, Switchboard, SwitchboardConfig,
};
