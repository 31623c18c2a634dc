//! The SIP ladder: every message any agent sends or receives, with its time, so a failing test
//! can print who said what to whom.

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Whether an agent sent or received a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The agent sent it.
    Sent,
    /// The agent received it.
    Received,
    /// The agent was told to lose it: recorded, never sent (see `UserAgent::lose_next`).
    Lost,
}

/// One message in the ladder.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Time since the transcript was created.
    pub at: Duration,
    /// The agent's name (`trunk`, `phone 201` ...).
    pub agent: String,
    /// Sent or received.
    pub direction: Direction,
    /// The other end: destination when sent, source when received.
    pub peer: SocketAddr,
    /// The request or status line, or a note when the bytes were not SIP.
    pub first_line: String,
    /// The CSeq value, if the message had one.
    pub cseq: String,
    /// The whole message as text (lossy UTF-8).
    pub text: String,
}

/// A shared, append-only record of SIP messages; clones share the same record.
#[derive(Clone, Debug)]
pub struct Transcript {
    start: Instant,
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Default for Transcript {
    fn default() -> Self {
        Transcript::new()
    }
}

impl Transcript {
    /// An empty transcript whose clock starts now.
    pub fn new() -> Transcript {
        Transcript {
            start: Instant::now(),
            entries: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // A panic while holding the lock leaves a complete Vec: keep using it.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records one datagram.
    pub fn record(&self, agent: &str, direction: Direction, peer: SocketAddr, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let trimmed = text.trim_start_matches(['\r', '\n']);
        let first_line = match trimmed.lines().next() {
            Some(l) if !l.is_empty() => l.trim_end().to_owned(),
            _ => format!("<{} bytes, not SIP>", bytes.len()),
        };
        let cseq = trimmed
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("CSeq")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_default();
        let entry = Entry {
            at: self.start.elapsed(),
            agent: agent.to_owned(),
            direction,
            peer,
            first_line,
            cseq,
            text,
        };
        self.lock().push(entry);
    }

    /// A copy of every entry so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().clone()
    }

    /// The ladder: one line per message (time, agent, arrow, peer, first line, CSeq).
    pub fn ladder(&self) -> String {
        let mut out = String::new();
        for e in self.lock().iter() {
            let arrow = match e.direction {
                Direction::Sent => "-->",
                Direction::Received => "<--",
                Direction::Lost => "-x ",
            };
            let _ = writeln!(
                out,
                "{:>8.3}s  {:<10} {arrow} {:<21} {}   [{}]",
                e.at.as_secs_f64(),
                e.agent,
                e.peer,
                e.first_line,
                e.cseq
            );
        }
        out
    }

    /// The ladder with every message in full, for a close look at headers and bodies.
    pub fn full(&self) -> String {
        let mut out = String::new();
        for e in self.lock().iter() {
            let arrow = match e.direction {
                Direction::Sent => "-->",
                Direction::Received => "<--",
                Direction::Lost => "-x ",
            };
            let _ = writeln!(
                out,
                "=== {:>8.3}s {} {arrow} {}\n{}",
                e.at.as_secs_f64(),
                e.agent,
                e.peer,
                e.text.trim_end()
            );
        }
        out
    }

    /// A guard that prints the ladder to stderr if the thread panics while it lives (a failed
    /// assertion), or always when `HARNESS_LADDER` is set; set `HARNESS_FULL=1` to print every
    /// message in full as well.
    pub fn print_on_panic(&self) -> LadderOnPanic {
        LadderOnPanic(self.clone())
    }
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ladder())
    }
}

/// Prints the transcript's ladder when dropped during a panic; see [`Transcript::print_on_panic`].
#[derive(Debug)]
pub struct LadderOnPanic(Transcript);

impl Drop for LadderOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("HARNESS_LADDER").is_some() {
            if std::env::var_os("HARNESS_FULL").is_some() {
                eprintln!("---- SIP messages ----\n{}", self.0.full());
            }
            eprintln!("---- SIP ladder ----\n{}", self.0.ladder());
        }
    }
}
