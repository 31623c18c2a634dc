//! RFC 4475 and RFC 5118 torture messages against the committed verdict table
//! `test_data/torture_verdicts.txt`. One `check` runs every file and reports every mismatch.

mod common;

use std::collections::BTreeSet;

use common::{Row, datagram_outcome, read_table, round_trip_problems, shared_dir, stream_outcome};
use sip_msg::{Framing, HeaderName, Message, parse};

/// Checks one file against its row; returns the mismatches (empty when it behaves as expected).
fn check(row: &Row, bytes: &[u8]) -> Vec<String> {
    let [file, verdict, stream] = &row.cols[..] else {
        return vec![format!("line {}: expected `file verdict stream`", row.line)];
    };
    let mut problems = Vec::new();
    let (got, detail) = datagram_outcome(bytes);
    // app-NNN: the message layer accepts; the application answers later.
    let expect = match verdict.as_str() {
        v if v.starts_with("app-") || v == "accept-first" => "accept",
        v => v,
    };
    if got != expect {
        problems.push(format!(
            "datagram: expected {verdict}, got {got} ({detail})"
        ));
    }
    if got == "accept" {
        // parse succeeded above, so this cannot fail
        let msg = parse(bytes, Framing::Datagram).expect("accepted above");
        problems.extend(
            round_trip_problems(&msg)
                .into_iter()
                .map(|p| format!("round trip: {p}")),
        );
        if verdict == "accept-first" {
            match &msg {
                Message::Request(r) if r.method.as_str() == "REGISTER" && r.body.is_empty() => {}
                _ => {
                    problems.push("accept-first: expected only the first (REGISTER) request".into())
                }
            }
        }
        if file.ends_with("escruri.dat") && msg.headers().count(&HeaderName::Route) > 0 {
            problems.push("escaped URI headers became a real Route header".into());
        }
    }
    let (got_stream, framed) = stream_outcome(bytes);
    if got_stream != stream {
        problems.push(format!("stream: expected {stream}, got {got_stream}"));
    }
    if let Some(framed) = framed {
        let datagram = parse(bytes, Framing::Datagram);
        let has_length = datagram
            .as_ref()
            .is_ok_and(|m| m.headers().count(&HeaderName::ContentLength) == 1);
        if has_length && parse(&framed, Framing::Stream) != datagram {
            problems.push("stream: the framed message parses differently from the datagram".into());
        }
    }
    problems
        .into_iter()
        .map(|p| format!("{file}: {p}"))
        .collect()
}

#[test]
fn torture_messages() {
    let Some(shared) = shared_dir() else { return };
    let root = shared.join("sip-torture");
    let rows = read_table("torture_verdicts.txt");
    let mut failures = Vec::new();
    let mut listed = BTreeSet::new();
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    let mut dump = String::new();
    for row in &rows {
        let file = &row.cols[0];
        listed.insert(file.clone());
        match std::fs::read(root.join(file)) {
            Ok(bytes) => {
                dump.push_str(&common::outcome_line(file, &bytes));
                let f = check(row, &bytes);
                if f.is_empty() {
                    *tally
                        .entry(row.cols.get(1).cloned().unwrap_or_default())
                        .or_default() += 1;
                }
                failures.extend(f);
            }
            Err(e) => failures.push(format!("{file}: cannot read: {e}")),
        }
    }
    // Every corpus file has a verdict.
    for sub in ["rfc4475", "rfc5118"] {
        let dir = root.join(sub);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries.flatten() {
            let name = format!("{sub}/{}", entry.file_name().to_string_lossy());
            if !listed.contains(&name) {
                failures.push(format!("{name}: no verdict in torture_verdicts.txt"));
            }
        }
    }
    failures.extend(common::check_golden("torture_outcomes.txt", &dump));
    eprintln!("torture: {} files, as expected: {tally:?}", rows.len());
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
