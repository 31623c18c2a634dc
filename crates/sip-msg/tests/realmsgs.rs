//! Real-world captures (desk phones, gateways, IMS) against the committed verdict table
//! `test_data/realmsgs_verdicts.txt`. One `check` runs every message and reports every mismatch.

mod common;

use std::collections::BTreeSet;

use common::{
    Row, datagram_outcome, read_entry, read_table, record_names, round_trip_problems, shared_dir,
    stream_outcome,
};
use sip_msg::{Framing, HeaderName, parse};

/// Checks one message against its row; returns the mismatches.
fn check(row: &Row, bytes: &[u8], cl_note: Option<&str>) -> Vec<String> {
    let [entry, verdict, stream, checks @ ..] = &row.cols[..] else {
        return vec![format!(
            "line {}: expected `file verdict stream [checks]`",
            row.line
        )];
    };
    let mut problems = Vec::new();
    let (got, detail) = datagram_outcome(bytes);
    let expect = if verdict.starts_with("app-") {
        "accept"
    } else {
        verdict.as_str()
    };
    if got != expect {
        problems.push(format!(
            "datagram: expected {verdict}, got {got} ({detail})"
        ));
    }
    let parsed = parse(bytes, Framing::Datagram);
    if got == "accept"
        && let Ok(msg) = &parsed
    {
        problems.extend(
            round_trip_problems(msg)
                .into_iter()
                .map(|p| format!("round trip: {p}")),
        );
    }
    for c in checks {
        let ok = match (c.split_once('='), &parsed) {
            (Some(("cl", want)), _) => cl_note.is_some_and(|n| n == format!("cl={want}")),
            (Some((what, n)), Ok(msg)) => {
                let n: usize = n.parse().unwrap_or(usize::MAX);
                let body = match msg {
                    sip_msg::Message::Request(r) => &r.body,
                    sip_msg::Message::Response(r) => &r.body,
                };
                match what.split_once(':') {
                    None if what == "body" => body.len() == n,
                    Some(("count", name)) => msg.headers().count(&HeaderName::parse(name)) == n,
                    Some(("values", name)) => {
                        msg.headers()
                            .values(&HeaderName::parse(name))
                            .map(|v| v.len())
                            == Some(n)
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        if !ok {
            problems.push(format!(
                "check {c} does not hold (Content-Length note: {cl_note:?})"
            ));
        }
    }
    let (got_stream, framed) = stream_outcome(bytes);
    if got_stream != stream {
        problems.push(format!("stream: expected {stream}, got {got_stream}"));
    }
    if let Some(framed) = framed {
        let has_length = parsed
            .as_ref()
            .is_ok_and(|m| m.headers().count(&HeaderName::ContentLength) == 1);
        if has_length && parse(&framed, Framing::Stream) != parsed {
            problems.push("stream: the framed message parses differently from the datagram".into());
        }
    }
    problems
        .into_iter()
        .map(|p| format!("{entry}: {p}"))
        .collect()
}

#[test]
fn real_messages() {
    let Some(shared) = shared_dir() else { return };
    let dir = shared.join("sip-realmsgs");
    let rows = read_table("realmsgs_verdicts.txt");
    let mut failures = Vec::new();
    let mut listed = BTreeSet::new();
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    let mut dump = String::new();
    for row in &rows {
        let entry = &row.cols[0];
        listed.insert(entry.clone());
        match read_entry(&dir, entry) {
            Ok((bytes, cl_note)) => {
                dump.push_str(&common::outcome_line(entry, &bytes));
                let f = check(row, &bytes, cl_note);
                if f.is_empty() {
                    *tally
                        .entry(row.cols.get(1).cloned().unwrap_or_default())
                        .or_default() += 1;
                }
                failures.extend(f);
            }
            Err(e) => failures.push(format!("{entry}: {e}")),
        }
    }
    // Every file (and every record of the multi-message file) has a verdict.
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "SOURCES.md" {
            continue;
        }
        let records = record_names(&e.path());
        let names: Vec<String> = if name.ends_with(".txt") {
            records.iter().map(|r| format!("{name}:{r}")).collect()
        } else {
            vec![name]
        };
        for n in names {
            if !listed.contains(&n) {
                failures.push(format!("{n}: no verdict in realmsgs_verdicts.txt"));
            }
        }
    }
    failures.extend(common::check_golden("realmsgs_outcomes.txt", &dump));
    eprintln!("realmsgs: {} messages, as expected: {tally:?}", rows.len());
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
