//! Helpers shared by the integration tests: where the third-party corpora live, the verdict
//! tables, and the one `outcome` function that says what the message layer did with some bytes.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use sip_msg::{Frame, Framing, HeaderName, Message, ParseErrorKind, StreamFramer, parse};

/// The shared test-data directory (`$CENTRALINO_SHARED`, default `../../../shared` from this
/// crate). Third-party data is read from there and never copied into the repository.
///
/// Returns `None` only when the directory is missing and `CENTRALINO_SHARED_OPTIONAL=1`;
/// otherwise a missing directory fails the test with an explanation.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CENTRALINO_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    if dir.join("sip-torture").is_dir() {
        return Some(dir);
    }
    if std::env::var("CENTRALINO_SHARED_OPTIONAL").as_deref() == Ok("1") {
        eprintln!(
            "SKIPPED: shared test data not found at {} (CENTRALINO_SHARED_OPTIONAL=1)",
            dir.display()
        );
        return None;
    }
    panic!(
        "shared test data not found at {} (expected sip-torture/ and sip-realmsgs/ there).\n\
         Set CENTRALINO_SHARED to the directory holding them, or CENTRALINO_SHARED_OPTIONAL=1 to skip.",
        dir.display()
    );
}

/// One line of a verdict table: `file verdict [more columns] [# note]`.
#[derive(Debug)]
pub struct Row {
    /// 1-based line number in the table, for error messages.
    pub line: usize,
    /// Whitespace-separated columns before any `#`.
    pub cols: Vec<String>,
    /// The comment after `#`, if any.
    pub note: String,
}

/// Reads a committed verdict table from `crates/sip-msg/test_data/`.
pub fn read_table(name: &str) -> Vec<Row> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/test_data")).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let (body, note) = line.split_once('#').unwrap_or((line, ""));
        let cols: Vec<String> = body.split_whitespace().map(str::to_owned).collect();
        if !cols.is_empty() {
            rows.push(Row {
                line: i + 1,
                cols,
                note: note.trim().to_owned(),
            });
        }
    }
    rows
}

/// What the message layer did with one datagram, in the vocabulary of the verdict tables
/// (`accept`, `reject-NNN`, `drop`, or a description of anything else), plus details.
pub fn datagram_outcome(bytes: &[u8]) -> (String, String) {
    match parse(bytes, Framing::Datagram) {
        Ok(Message::Request(r)) => match r.validate() {
            Ok(()) => ("accept".into(), String::new()),
            Err(e) => (format!("reject-{}", e.status), e.reason),
        },
        Ok(Message::Response(r)) => match r.validate() {
            Ok(()) => ("accept".into(), String::new()),
            Err(e) => ("drop".into(), format!("Response::validate: {e}")),
        },
        Err(e)
            if e.kind == ParseErrorKind::Incomplete
                && bytes.iter().all(|&b| b == b'\r' || b == b'\n') =>
        {
            ("keepalive".into(), String::new())
        }
        Err(e) => match e.partial.as_deref() {
            Some(Message::Request(_)) => (
                "reject-400".into(),
                format!("parse error with partial: {}", e.reason),
            ),
            Some(Message::Response(_)) => (
                "drop".into(),
                format!("parse error with partial: {}", e.reason),
            ),
            None if looks_like_response(bytes) => {
                ("drop".into(), format!("parse error: {}", e.reason))
            }
            None => (
                format!("unanswerable-parse-error({:?})", e.kind),
                e.reason.to_string(),
            ),
        },
    }
}

fn looks_like_response(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    bytes[start..].starts_with(b"SIP/")
}

/// What one `StreamFramer` does with `bytes` pushed at once: `frame`, `ping`, `wait` or `close`,
/// and the framed bytes if any.
pub fn stream_outcome(bytes: &[u8]) -> (&'static str, Option<Vec<u8>>) {
    let mut framer = StreamFramer::default();
    if framer.push(bytes).is_err() {
        return ("close", None);
    }
    match framer.next_frame() {
        Ok(Some(Frame::Message(m))) => ("frame", Some(m)),
        Ok(Some(Frame::Ping)) => ("ping", None),
        Ok(None) => ("wait", None),
        Err(_) => ("close", None),
    }
}

/// Prints `msg`, re-parses the print, and returns every difference that matters: the start
/// line must be canonical, the re-parsed message must validate the same way and equal the
/// original (Content-Length aside, which the printer recomputes), and printing is idempotent.
pub fn round_trip_problems(msg: &Message) -> Vec<String> {
    let mut problems = Vec::new();
    let printed = msg.to_bytes();
    let first_line = printed.split(|&b| b == b'\n').next().unwrap_or_default();
    let first_line = String::from_utf8_lossy(first_line);
    if let Message::Request(r) = msg {
        let canonical = format!("{} {} SIP/2.0\r", r.method, r.uri_raw);
        if first_line != canonical || r.uri_raw.contains(|c: char| c.is_ascii_whitespace()) {
            problems.push(format!(
                "printed request line {first_line:?} is not canonical"
            ));
        }
    }
    let again = match parse(&printed, Framing::Datagram) {
        Ok(m) => m,
        Err(e) => {
            problems.push(format!("re-parse of the printed message failed: {e}"));
            return problems;
        }
    };
    let validity = |m: &Message| match m {
        Message::Request(r) => r.validate().map_err(|e| e.status),
        Message::Response(r) => r.validate().map_err(|e| e.status),
    };
    if validity(msg) != validity(&again) {
        problems.push(format!(
            "validate() changed after round trip: {:?} -> {:?}",
            validity(msg),
            validity(&again)
        ));
    }
    let strip = |m: &Message| {
        let mut m = m.clone();
        match &mut m {
            Message::Request(r) => r.headers.remove(&HeaderName::ContentLength),
            Message::Response(r) => r.headers.remove(&HeaderName::ContentLength),
        }
        m
    };
    let (a, b) = (strip(msg), strip(&again));
    if a != b {
        match (&a, &b) {
            (Message::Request(x), Message::Request(y))
                if x.method != y.method || x.uri_raw != y.uri_raw =>
            {
                problems.push(format!(
                    "start line changed: {} {} -> {} {}",
                    x.method, x.uri_raw, y.method, y.uri_raw
                ))
            }
            _ => {}
        }
        let (ha, hb) = (&a.headers().0, &b.headers().0);
        for (i, (x, y)) in ha.iter().zip(hb.iter()).enumerate() {
            if x != y {
                problems.push(format!("header {i} changed: {x:?} -> {y:?}"));
            }
        }
        if ha.len() != hb.len() {
            problems.push(format!(
                "header count changed: {} -> {}",
                ha.len(),
                hb.len()
            ));
        }
        if problems.is_empty() {
            problems.push(format!("message changed in round trip:\n  {a:?}\n  {b:?}"));
        }
    }
    if again.to_bytes() != printed {
        problems.push("printing is not idempotent".into());
    }
    problems
}

/// Reads one corpus entry named in a verdict table: `FILE` under `dir`, or `FILE:RECORD` for a
/// record of the lioneagle multi-message file. Returns the message bytes and, for a record,
/// whether its Content-Length had to be recomputed (`cl=as-sent` / `cl=recomputed`).
pub fn read_entry(dir: &Path, entry: &str) -> Result<(Vec<u8>, Option<&'static str>), String> {
    let (file, record) = match entry.split_once(':') {
        Some((f, r)) => (f, Some(r)),
        None => (entry, None),
    };
    let bytes = std::fs::read(dir.join(file)).map_err(|e| format!("cannot read {file}: {e}"))?;
    let Some(record) = record else {
        return Ok((bytes, None));
    };
    let records = split_records(&bytes);
    let msg = records
        .iter()
        .find(|(n, _)| n == record)
        .ok_or_else(|| format!("no record named {record:?}"))?;
    let (fixed, note) = fix_content_length(&msg.1);
    Ok((fixed, Some(note)))
}

/// Every record name in a lioneagle-style file, in order.
pub fn record_names(path: &Path) -> Vec<String> {
    std::fs::read(path)
        .map(|b| split_records(&b).into_iter().map(|(n, _)| n).collect())
        .unwrap_or_default()
}

/// Splits a lioneagle-style file into `(name, message)`: line ends normalised to CRLF, records
/// separated by lines of `=`, each `name = "..."`, empty lines, then the message lines joined
/// by CRLF.
fn split_records(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let text = String::from_utf8_lossy(bytes)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    let mut flush = |current: &mut Option<(String, Vec<&str>)>| {
        if let Some((name, mut lines)) = current.take() {
            // Empty lines between `name = ...` and the message are record layout (three
            // records have two), not keep-alive CRLFs.
            let start = lines
                .iter()
                .position(|l| !l.is_empty())
                .unwrap_or(lines.len());
            lines.drain(..start);
            out.push((name, lines.join("\r\n").into_bytes()));
        }
    };
    for line in text.split('\n') {
        if line.len() >= 3 && line.bytes().all(|b| b == b'=') {
            flush(&mut current);
        } else if let Some(name) = line
            .strip_prefix("name = \"")
            .and_then(|r| r.strip_suffix('"'))
            .filter(|_| current.is_none())
        {
            current = Some((name.to_owned(), Vec::new()));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    flush(&mut current);
    out
}

/// Rewrites a `Content-Length` that does not match the body after normalisation.
fn fix_content_length(msg: &[u8]) -> (Vec<u8>, &'static str) {
    let Some(split) = msg.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (msg.to_vec(), "cl=as-sent");
    };
    let (head, body) = (&msg[..split + 2], &msg[split + 4..]);
    let head = String::from_utf8_lossy(head);
    let mut changed = false;
    let mut lines = Vec::new();
    for line in head.split_terminator("\r\n") {
        let is_length = line.split_once(':').is_some_and(|(n, _)| {
            n.trim().eq_ignore_ascii_case("content-length") || n.trim().eq_ignore_ascii_case("l")
        });
        if is_length
            && line
                .split_once(':')
                .is_some_and(|(_, v)| v.trim() != body.len().to_string())
        {
            changed = true;
            lines.push(format!("Content-Length: {}", body.len()));
        } else {
            lines.push(line.to_owned());
        }
    }
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    (
        out,
        if changed {
            "cl=recomputed"
        } else {
            "cl=as-sent"
        },
    )
}

/// Compares `actual` with the committed golden file `test_data/NAME`; with `UPDATE_EXPECT=1`
/// rewrites the file instead. Returns a description of the difference, if any.
pub fn check_golden(name: &str, actual: &str) -> Option<String> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/test_data")).join(name);
    if std::env::var("UPDATE_EXPECT").as_deref() == Ok("1") {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return None;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected == actual {
        return None;
    }
    let diff: Vec<String> = expected
        .lines()
        .zip(actual.lines())
        .filter(|(e, a)| e != a)
        .map(|(e, a)| format!("  expected: {e}\n  actual:   {a}"))
        .collect();
    Some(format!(
        "{name} differs (UPDATE_EXPECT=1 refreshes it after review):\n{}{}",
        diff.join("\n"),
        if expected.lines().count() != actual.lines().count() {
            "\n  (line counts differ)"
        } else {
            ""
        }
    ))
}

/// One line of an outcome dump: what happened and why, in our own words (no third-party
/// content), so a change of reason shows up in review even when the verdict stays the same.
pub fn outcome_line(entry: &str, bytes: &[u8]) -> String {
    let (datagram, reason) = datagram_outcome(bytes);
    let (stream, _) = stream_outcome(bytes);
    let reason = if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    };
    format!("{entry}: {datagram}{reason}; stream {stream}\n")
}
