//! Golden tests: `test_data/check/*.toml` → `*.expected` (what `centralino check` prints) and
//! `test_data/route/*.calls` → `*.expected` (decisions and their explanations).
//! `UPDATE_EXPECT=1 cargo test -p router --test golden` rewrites the expected files.

use std::path::{Path, PathBuf};

fn test_data(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("test_data dir exists")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    files
}

/// The one comparison: actual output against the stored expected file.
fn check(expected_path: &Path, actual: &str) -> Result<(), String> {
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(expected_path, actual).expect("writable test_data");
        return Ok(());
    }
    let expected = std::fs::read_to_string(expected_path).unwrap_or_default();
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{}: mismatch\n--- expected\n{expected}\n--- actual\n{actual}",
            expected_path.display()
        ))
    }
}

fn check_output(file_name: &str, source: &str) -> String {
    match router::compile(file_name, source) {
        Ok(compiled) => {
            let mut out = String::from("ok\n");
            for warning in compiled.warnings {
                out.push_str(&format!("{warning}\n"));
            }
            out
        }
        Err(diagnostics) => format!("{diagnostics}\n"),
    }
}

#[test]
fn check_messages() {
    let mut failures = Vec::new();
    for path in test_data("check")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
    {
        let source = std::fs::read_to_string(&path).expect("readable fixture");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name");
        if let Err(e) = check(
            &path.with_extension("expected"),
            &check_output(name, &source),
        ) {
            failures.push(e);
        }
    }
    // The shipped example must stay clean.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dialplans/example.toml");
    let source = std::fs::read_to_string(&example).expect("example dialplan");
    assert_eq!(check_output("example.toml", &source), "ok\n");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One call per line: `at=RFC3339 [digits=D] [dialled=N] [trunk=T] [from=N] [emergency=on]
/// [busy=EXT,..] [unregistered=EXT,..]`. A first line `plan: PATH` (relative to the .calls
/// file) names the dialplan; otherwise `NAME.toml` beside it. Strategy state carries over
/// from line to line, as in the switch.
fn route_output(calls_path: &Path) -> String {
    let text = std::fs::read_to_string(calls_path).expect("readable calls");
    let mut lines = text.lines().peekable();
    let plan_path = match lines.peek().and_then(|l| l.strip_prefix("plan: ")) {
        Some(rel) => {
            let p = calls_path.parent().expect("has a dir").join(rel.trim());
            lines.next();
            p
        }
        None => calls_path.with_extension("toml"),
    };
    let source = std::fs::read_to_string(&plan_path).expect("readable plan");
    let name = plan_path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 name");
    let plan = match router::compile(name, &source) {
        Ok(compiled) => compiled.plan,
        Err(d) => return format!("plan refused:\n{d}\n"),
    };
    let mut state = router::StrategyState::default();
    let mut out = String::new();
    for line in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut facts = router::CallFacts {
            dialled: plan.primary_number().unwrap_or_default().to_owned(),
            ..Default::default()
        };
        let mut at = None;
        let mut json = false;
        for word in line.split_whitespace() {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            match key {
                "at" => at = Some(value.parse::<jiff::Timestamp>().expect("RFC 3339 at=")),
                "digits" => facts.digits = value.to_owned(),
                "dialled" => facts.dialled = value.to_owned(),
                "trunk" => facts.trunk = Some(value.to_owned()),
                "from" => facts.caller = Some(value.to_owned()),
                "emergency" => facts.emergency = value == "on",
                "json" => json = true,
                "busy" | "unregistered" => {
                    for ext in value.split(',') {
                        let state = facts.members.entry(ext.to_owned()).or_default();
                        if key == "busy" {
                            state.busy = true
                        } else {
                            state.registered = false
                        }
                    }
                }
                other => panic!("unknown call field {other}"),
            }
        }
        let decision = router::route(&plan, &facts, at.expect("every call has at="), &mut state);
        out.push_str(&format!("## {line}\n"));
        if json {
            out.push_str(&serde_json::to_string_pretty(&decision.to_json()).expect("json"));
            out.push('\n');
        } else {
            out.push_str(&decision.explain_text());
        }
        out.push('\n');
    }
    out
}

#[test]
fn route_explanations() {
    let mut failures = Vec::new();
    for path in test_data("route")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "calls"))
    {
        if let Err(e) = check(&path.with_extension("expected"), &route_output(&path)) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `EXAMPLES.md`: a table of decisions on the example service, regenerated with UPDATE_EXPECT=1.
#[test]
fn examples_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(root.join("test_data/route/example.toml"))
        .expect("example fixture");
    let plan = router::compile("example.toml", &source)
        .map_err(|d| d.to_string())
        .expect("compiles")
        .plan;
    let cases: &[(&str, &str, &str, &str, bool)] = &[
        // (situation, at, dialled, digits, emergency)
        (
            "weekday morning, no digits yet",
            "2026-03-02T10:00:00+01:00",
            "800840840",
            "",
            false,
        ),
        (
            "weekday morning, 1 information",
            "2026-03-02T10:00:00+01:00",
            "800840840",
            "1",
            false,
        ),
        (
            "weekday morning, 2 grocery/medicine",
            "2026-03-02T10:00:00+01:00",
            "800840840",
            "2",
            false,
        ),
        (
            "weekday morning, 3 home assistance",
            "2026-03-02T10:00:00+01:00",
            "800840840",
            "3",
            false,
        ),
        (
            "weekday morning, 4 health",
            "2026-03-02T10:00:00+01:00",
            "800840840",
            "4",
            false,
        ),
        (
            "weekday afternoon, 4 health",
            "2026-03-02T14:00:00+01:00",
            "800840840",
            "4",
            false,
        ),
        (
            "weekday morning, 5 emotional support",
            "2026-03-02T10:00:00+01:00",
            "800840840",
            "5",
            false,
        ),
        (
            "weekday evening",
            "2026-03-02T20:00:00+01:00",
            "800840840",
            "4",
            false,
        ),
        (
            "Saturday morning",
            "2026-03-07T10:00:00+01:00",
            "800840840",
            "",
            false,
        ),
        (
            "patron saint (June 24)",
            "2026-06-24T10:00:00+02:00",
            "800840840",
            "",
            false,
        ),
        (
            "Easter Monday 2026",
            "2026-04-06T10:00:00+02:00",
            "800840840",
            "",
            false,
        ),
        (
            "St Francis, Oct 4 2027",
            "2027-10-04T10:00:00+02:00",
            "800840840",
            "",
            false,
        ),
        (
            "emergency, Sunday 23:00, 4 health",
            "2026-03-01T23:00:00+01:00",
            "800840840",
            "4",
            true,
        ),
        (
            "emergency, Saturday 10:00, 4 health",
            "2026-03-07T10:00:00+01:00",
            "800840840",
            "4",
            true,
        ),
        (
            "emergency, spring-forward night 03:30",
            "2026-03-29T03:30:00+02:00",
            "800840840",
            "4",
            true,
        ),
        (
            "emergency, fall-back night 02:30 (2nd)",
            "2026-10-25T02:30:00+01:00",
            "800840840",
            "4",
            true,
        ),
        (
            "direct dial 201 at night",
            "2026-03-02T23:00:00+01:00",
            "201",
            "",
            false,
        ),
        (
            "unknown number",
            "2026-03-02T10:00:00+01:00",
            "555",
            "",
            false,
        ),
    ];
    let mut out = String::from(
        "# Example decisions\n\nProduced by `route` on the example service (`test_data/route/example.toml`, a copy of `dialplans/example.toml`; regenerated by \
         `UPDATE_EXPECT=1 cargo test -p router --test golden`). Times are Europe/Rome; all members \
         registered and idle.\n\n| situation | at | dialled | digits | emergency | target | ring | deciding reason |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (situation, at, dialled, digits, emergency) in cases {
        let facts = router::CallFacts {
            dialled: (*dialled).to_owned(),
            trunk: Some("provider".to_owned()),
            digits: (*digits).to_owned(),
            emergency: *emergency,
            ..Default::default()
        };
        let decision = router::route(
            &plan,
            &facts,
            at.parse().expect("RFC 3339"),
            &mut router::StrategyState::default(),
        );
        let reason = decision
            .reasons
            .iter()
            .rev()
            .find(|r| {
                r.starts_with("group")
                    || r.starts_with("calendar")
                    || r.starts_with("dialled")
                    || r.starts_with("digit ")
            })
            .cloned()
            .unwrap_or_default();
        let reason = reason.replace('|', "\\|");
        out.push_str(&format!(
            "| {situation} | {at} | {dialled} | {} | {} | `{}` | {} | {reason} |\n",
            if digits.is_empty() { "–" } else { digits },
            if *emergency { "on" } else { "off" },
            decision.target,
            if decision.ring.is_empty() {
                "–".to_owned()
            } else {
                decision.ring.join(", ")
            },
        ));
    }
    check(&root.join("EXAMPLES.md"), &out).expect("EXAMPLES.md is current");
}

/// `test_data/duty/*.at` (one RFC 3339 instant per line, optional ` emergency`) against the
/// plan `NAME.toml` beside it: the text of `centralino duty`.
#[test]
fn duty_reports() {
    let mut failures = Vec::new();
    for path in test_data("duty")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "at"))
    {
        let source = std::fs::read_to_string(path.with_extension("toml")).expect("plan beside .at");
        let plan = router::compile("plan.toml", &source)
            .map_err(|d| d.to_string())
            .expect("compiles")
            .plan;
        let mut out = String::new();
        for line in std::fs::read_to_string(&path)
            .expect("readable")
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let mut words = line.split_whitespace();
            let at: jiff::Timestamp = words.next().expect("instant").parse().expect("RFC 3339");
            let emergency = words.next() == Some("emergency");
            out.push_str(&format!(
                "## {line}\n{}\n",
                plan.duty_report(at, emergency).to_text()
            ));
        }
        if let Err(e) = check(&path.with_extension("expected"), &out) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
