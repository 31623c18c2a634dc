//! Errors for parsing SDP.

use std::fmt;

/// A session description that cannot be parsed, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SdpError {
    line: Option<usize>,
    kind: SdpErrorKind,
}

impl SdpError {
    pub(crate) fn new(line: Option<usize>, kind: SdpErrorKind) -> SdpError {
        SdpError { line, kind }
    }

    /// The 1-based line number of the offending line, or `None` for a missing line.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// What is wrong.
    pub fn kind(&self) -> &SdpErrorKind {
        &self.kind
    }
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "SDP line {line}: {}", self.kind),
            None => write!(f, "SDP: {}", self.kind),
        }
    }
}

/// The kinds of broken SDP the parser refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpErrorKind {
    /// A line that is not `<letter>=<value>`.
    #[error("not a `<type>=<value>` line")]
    NotATypeLine,
    /// A required line (`v=`, `o=`, `s=` or `t=`) is absent.
    #[error("missing {line_type}= line")]
    Missing {
        /// The missing line's type letter.
        line_type: char,
    },
    /// A line that may appear once appears again.
    #[error("duplicate {line_type}= line")]
    Duplicate {
        /// The repeated line's type letter.
        line_type: char,
    },
    /// A line whose value does not follow its grammar.
    #[error("malformed {line_type}= line: {reason}")]
    Malformed {
        /// The line's type letter.
        line_type: char,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A line in a place it may not appear.
    #[error("misplaced {line_type}= line: {reason}")]
    Misplaced {
        /// The line's type letter.
        line_type: char,
        /// Where it was and why that is wrong.
        reason: &'static str,
    },
}
