//! Differential test: every message our verdict tables call valid must also parse with an
//! independent SIP parser (`sipx-sip`, pinned in Cargo.toml), and both must agree on the fields
//! that routing and transaction matching depend on. Known, explained differences are listed in
//! `EXCEPTIONS`; an exception that no longer triggers fails the test so the list stays honest.

mod common;

use std::collections::BTreeSet;

use bytes::Bytes;
use common::{read_entry, read_table, shared_dir};
use sip_msg::{Framing, HeaderName, Message, parse};
use sipx_sip::headers::{CSeq, CallId, From, To, Via};
use sipx_sip::{Limits, parse_datagram, validate};

/// `(corpus entry, field, why the oracle differs)`. `field` is `parse` when the oracle rejects
/// the whole message.
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "rfc4475/lwsstart.dat",
        "parse",
        "oracle requires exactly one SP between request-line elements; RFC 4475 §3.1.2.9 lets us tolerate it",
    ),
    (
        "rfc4475/trws.dat",
        "parse",
        "oracle rejects trailing SP on the request line; RFC 4475 §3.1.2.10 lets us tolerate it",
    ),
    (
        "rfc4475/baddn.dat",
        "parse",
        "the file has no empty line after the headers; we end the header section at the end of the datagram (DEVIATION in parse)",
    ),
    (
        "rfc5118/archive-variant-ipv6-bug-abnf-3-colons.lf.dat",
        "parse",
        "LF-only line ends: the oracle needs CRLF CRLF (shared/crates.md §2.4), RFC 3261 §7.5 asks us to accept LF",
    ),
];

/// The fields both parsers must agree on, as comparable strings.
fn ours(bytes: &[u8]) -> Result<Vec<(&'static str, String)>, String> {
    let msg = parse(bytes, Framing::Datagram).map_err(|e| e.to_string())?;
    let h = msg.headers();
    let mut f = Vec::new();
    match &msg {
        Message::Request(r) => {
            f.push(("start", format!("{} {}", r.method, r.uri_raw)));
        }
        Message::Response(r) => f.push(("start", format!("{}", r.status))),
    }
    f.push((
        "call-id",
        h.get(&HeaderName::CallId).unwrap_or_default().to_owned(),
    ));
    let cseq = match &msg {
        Message::Request(r) => r.cseq(),
        Message::Response(r) => r.cseq(),
    };
    f.push(("cseq", cseq.map(|c| c.to_string()).unwrap_or_default()));
    let via = match &msg {
        Message::Request(r) => r.top_via(),
        Message::Response(r) => r.top_via(),
    };
    f.push((
        "via-branch",
        via.as_ref()
            .and_then(|v| v.branch())
            .unwrap_or_default()
            .to_owned(),
    ));
    let (from, to) = match &msg {
        Message::Request(r) => (r.from(), r.to()),
        Message::Response(r) => (r.from(), r.to()),
    };
    f.push((
        "from-tag",
        from.as_ref()
            .and_then(|a| a.tag())
            .unwrap_or_default()
            .to_owned(),
    ));
    f.push((
        "to-tag",
        to.as_ref()
            .and_then(|a| a.tag())
            .unwrap_or_default()
            .to_owned(),
    ));
    let body = match &msg {
        Message::Request(r) => r.body.len(),
        Message::Response(r) => r.body.len(),
    };
    f.push(("body-len", body.to_string()));
    Ok(f)
}

fn theirs(bytes: &[u8]) -> Result<Vec<(&'static str, String)>, String> {
    let msg = parse_datagram(Bytes::copy_from_slice(bytes), &Limits::datagram())
        .map_err(|e| e.to_string())?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let h = msg.headers();
    let mut f = Vec::new();
    match &msg {
        sipx_sip::Message::Request(r) => f.push(("start", format!("{} {}", r.method, r.uri))),
        sipx_sip::Message::Response(r) => f.push(("start", format!("{}", r.status.code()))),
    }
    f.push((
        "call-id",
        h.typed::<CallId>()
            .and_then(Result::ok)
            .map(|c| text(&c.0))
            .unwrap_or_default(),
    ));
    f.push((
        "cseq",
        h.typed::<CSeq>()
            .and_then(Result::ok)
            .map(|c| format!("{} {}", c.sequence, c.method))
            .unwrap_or_default(),
    ));
    let via = h.typed::<Via>().and_then(Result::ok);
    f.push((
        "via-branch",
        via.as_ref()
            .and_then(|v| v.branch())
            .map(text)
            .unwrap_or_default(),
    ));
    f.push((
        "from-tag",
        h.typed::<From>()
            .and_then(Result::ok)
            .and_then(|a| a.0.tag().map(text))
            .unwrap_or_default(),
    ));
    f.push((
        "to-tag",
        h.typed::<To>()
            .and_then(Result::ok)
            .and_then(|a| a.0.tag().map(text))
            .unwrap_or_default(),
    ));
    f.push(("body-len", msg.body().len().to_string()));
    Ok(f)
}

/// Compares one message; returns `(field, description)` for each disagreement.
fn check(bytes: &[u8]) -> Vec<(String, String)> {
    match (ours(bytes), theirs(bytes)) {
        (Err(e), _) => vec![("parse".into(), format!("we reject: {e}"))],
        (Ok(_), Err(e)) => vec![("parse".into(), format!("oracle rejects: {e}"))],
        (Ok(a), Ok(b)) => a
            .into_iter()
            .zip(b)
            .filter(|(x, y)| x.1 != y.1)
            .map(|(x, y)| (x.0.to_owned(), format!("ours {:?} oracle {:?}", x.1, y.1)))
            .collect(),
    }
}

#[test]
fn agrees_with_independent_parser() {
    let Some(shared) = shared_dir() else { return };
    let mut entries = Vec::new();
    for (table, dir) in [
        ("torture_verdicts.txt", "sip-torture"),
        ("realmsgs_verdicts.txt", "sip-realmsgs"),
    ] {
        for row in read_table(table) {
            let verdict = row.cols.get(1).map(String::as_str).unwrap_or_default();
            if verdict.starts_with("accept") || verdict.starts_with("app-") {
                entries.push((shared.join(dir), row.cols[0].clone()));
            }
        }
    }
    let mut failures = Vec::new();
    let mut used = BTreeSet::new();
    let mut agreed = 0;
    for (dir, entry) in &entries {
        let bytes = match read_entry(dir, entry) {
            Ok((b, _)) => b,
            Err(e) => {
                failures.push(format!("{entry}: {e}"));
                continue;
            }
        };
        let diffs = check(&bytes);
        if diffs.is_empty() {
            agreed += 1;
        }
        for (field, what) in diffs {
            match EXCEPTIONS
                .iter()
                .position(|(e, f, _)| e == entry && *f == field)
            {
                Some(i) => {
                    used.insert(i);
                }
                None => failures.push(format!("{entry}: {field}: {what}")),
            }
        }
    }
    for (i, (e, f, why)) in EXCEPTIONS.iter().enumerate() {
        if !used.contains(&i) {
            failures.push(format!(
                "stale exception {e} {f} ({why}): the parsers now agree"
            ));
        }
    }
    eprintln!(
        "oracle: {} valid messages, {agreed} agree on every field, {} known exceptions",
        entries.len(),
        EXCEPTIONS.len()
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `(corpus entry, why)`: messages where the oracle's accept/reject verdict differs from ours.
const VERDICT_EXCEPTIONS: &[(&str, &str)] = &[
    (
        "rfc4475/lwsstart.dat",
        "RFC 4475 §3.1.2.9 tolerate: we accept extra SP in the request line, the oracle rejects",
    ),
    (
        "rfc4475/trws.dat",
        "RFC 4475 §3.1.2.10 tolerate: we accept trailing SP, the oracle rejects",
    ),
    (
        "rfc4475/escruri.dat",
        "RFC 4475 §3.1.2.11 tolerate: we accept and keep the escaped headers inside the URI, the oracle rejects",
    ),
    (
        "rfc4475/baddate.dat",
        "RFC 4475 §3.1.2.12: we check Date (GMT only) and answer 400, the oracle ignores Date",
    ),
    (
        "rfc4475/regbadct.dat",
        "RFC 4475 §3.1.2.13: we refuse `?` in an addr-spec Contact (RFC 3261 §20.10), the oracle accepts",
    ),
    (
        "rfc4475/badaspec.dat",
        "RFC 4475 §3.1.2.14 liberal: we accept spaces inside <>, the oracle rejects the To",
    ),
    (
        "rfc4475/baddn.dat",
        "no empty line after the headers: we end the header section at the end of the datagram, the oracle cannot frame it",
    ),
    (
        "rfc4475/unkscm.dat",
        "RFC 4475 §3.3.2: our validate answers 416 for an unknown scheme, the oracle leaves that to the application",
    ),
    (
        "rfc4475/novelsc.dat",
        "RFC 4475 §3.3.3: as unkscm (416), the oracle leaves it to the application",
    ),
    (
        "rfc4475/inv2543.dat",
        "RFC 4475 §3.4.1 back-compat: we accept the RFC 2543 request without Max-Forwards, the oracle requires it",
    ),
    (
        "rfc5118/archive-variant-ipv6-bug-abnf-3-colons.lf.dat",
        "LF-only line ends: we accept (RFC 3261 §7.5), the oracle needs CRLF",
    ),
];

/// Accept or reject, as the oracle sees it: parse, then its RFC 3261 §8 checks.
fn oracle_verdict(bytes: &[u8]) -> Result<(), String> {
    let msg = parse_datagram(Bytes::copy_from_slice(bytes), &Limits::datagram())
        .map_err(|e| e.to_string())?;
    let findings = validate(&msg);
    if findings.is_empty() {
        Ok(())
    } else {
        Err(format!("{findings:?}"))
    }
}

#[test]
fn agrees_on_accept_or_reject() {
    let Some(shared) = shared_dir() else { return };
    let mut failures = Vec::new();
    let mut used = BTreeSet::new();
    let mut n = 0;
    for (table, dir) in [
        ("torture_verdicts.txt", "sip-torture"),
        ("realmsgs_verdicts.txt", "sip-realmsgs"),
    ] {
        for row in read_table(table) {
            let entry = &row.cols[0];
            let verdict = row.cols.get(1).map(String::as_str).unwrap_or_default();
            if verdict == "keepalive" {
                continue;
            }
            let ours_accepts = verdict.starts_with("accept") || verdict.starts_with("app-");
            let bytes = match read_entry(&shared.join(dir), entry) {
                Ok((b, _)) => b,
                Err(e) => {
                    failures.push(format!("{entry}: {e}"));
                    continue;
                }
            };
            n += 1;
            let theirs = oracle_verdict(&bytes);
            if ours_accepts != theirs.is_ok() {
                match VERDICT_EXCEPTIONS.iter().position(|(e, _)| e == entry) {
                    Some(i) => {
                        used.insert(i);
                    }
                    None => {
                        failures.push(format!("{entry}: we say {verdict}, oracle says {theirs:?}"))
                    }
                }
            }
        }
    }
    for (i, (e, why)) in VERDICT_EXCEPTIONS.iter().enumerate() {
        if !used.contains(&i) {
            failures.push(format!(
                "stale verdict exception {e} ({why}): the parsers now agree"
            ));
        }
    }
    eprintln!(
        "oracle verdicts: {n} messages, {} known differences",
        VERDICT_EXCEPTIONS.len()
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
