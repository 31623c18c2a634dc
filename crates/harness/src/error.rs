//! The one error type of the harness.

use std::time::Duration;

/// What went wrong in a scripted exchange. Every variant names the agent and, for waits,
/// what it waited for, so a failing test reads like the step that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// A bounded wait ran out.
    #[error("{agent}: timed out after {after:?} waiting for {what}")]
    Timeout {
        /// The agent that waited.
        agent: String,
        /// What it waited for.
        what: String,
        /// How long it waited.
        after: Duration,
    },
    /// Something arrived, but not what the script expects (e.g. 480 where a 200 was due).
    #[error("{agent}: expected {expected}, got {got}")]
    Unexpected {
        /// The agent.
        agent: String,
        /// What the script expected.
        expected: String,
        /// What arrived instead.
        got: String,
    },
    /// A message or body could not be used (bad SDP, missing header ...).
    #[error("{agent}: {why}")]
    Protocol {
        /// The agent.
        agent: String,
        /// Why.
        why: String,
    },
    /// A socket operation failed.
    #[error("{agent}: socket error: {source}")]
    Io {
        /// The agent.
        agent: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}
