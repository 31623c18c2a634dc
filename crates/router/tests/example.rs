//! The example service's facts (acceptance tests rely on them).

use router::{CallFacts, StrategyState, compile, route};

fn decide(at: &str, digits: &str, emergency: bool) -> (String, Vec<String>) {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dialplans/example.toml"
    ))
    .expect("example");
    let plan = compile("example.toml", &source)
        .map_err(|d| d.to_string())
        .expect("compiles")
        .plan;
    let facts = CallFacts {
        dialled: "800840840".into(),
        trunk: Some("provider".into()),
        digits: digits.into(),
        emergency,
        ..Default::default()
    };
    let d = route(
        &plan,
        &facts,
        at.parse().expect("RFC 3339"),
        &mut StrategyState::default(),
    );
    (d.target.to_string(), d.ring)
}

#[test]
fn example_service() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        decide("2026-03-02T10:00:00+01:00", "", false),
        ("menu:main".into(), s(&[]))
    );
    assert_eq!(
        decide("2026-03-02T10:00:00+01:00", "4", false),
        ("group:salute".into(), s(&["204"]))
    );
    assert_eq!(
        decide("2026-03-02T09:00:00Z", "4", false),
        ("group:salute".into(), s(&["204"]))
    );
    assert_eq!(
        decide("2026-03-02T13:30:00+01:00", "4", false),
        ("group:salute".into(), s(&["205"]))
    );
    assert_eq!(
        decide("2026-03-02T10:00:00+01:00", "2", false),
        ("group:spesa".into(), s(&["201", "202"]))
    );
    assert_eq!(
        decide("2026-03-02T10:00:00+01:00", "3", false),
        ("group:assistenza".into(), s(&["202", "203"]))
    );
    assert_eq!(
        decide("2026-03-02T10:00:00+01:00", "5", false),
        ("group:ascolto".into(), s(&["203", "205"]))
    );
    assert_eq!(
        decide("2026-03-02T10:00:00+01:00", "1", false),
        ("message:info".into(), s(&[]))
    );
    assert_eq!(
        decide("2026-03-02T20:00:00+01:00", "", false).0,
        "voicemail:general"
    );
    assert_eq!(
        decide("2026-03-02T20:00:00+01:00", "4", false).0,
        "voicemail:general"
    );
    assert_eq!(
        decide("2026-03-02T18:00:00+01:00", "", false).0,
        "voicemail:general"
    );
    assert_eq!(
        decide("2026-06-24T10:00:00+02:00", "", false).0,
        "voicemail:general"
    ); // patron saint
    assert_eq!(
        decide("2026-04-06T10:00:00+02:00", "", false).0,
        "voicemail:general"
    ); // Easter Monday
    assert_eq!(
        decide("2026-12-25T10:00:00+01:00", "", false).0,
        "voicemail:general"
    );
    // Emergency: H24, every day, emergency roster for salute.
    assert_eq!(
        decide("2026-03-01T23:00:00+01:00", "4", true),
        ("group:salute".into(), s(&["204"]))
    );
    assert_eq!(
        decide("2026-03-01T05:59:00+01:00", "4", true),
        ("group:salute".into(), s(&["204"]))
    );
    assert_eq!(
        decide("2026-03-01T06:00:00+01:00", "4", true),
        ("group:salute".into(), s(&["205"]))
    );
    assert_eq!(
        decide("2026-12-25T21:59:00+01:00", "4", true),
        ("group:salute".into(), s(&["205"]))
    );
    assert_eq!(decide("2026-03-02T20:00:00+01:00", "", true).0, "menu:main");
}

#[test]
fn direct_inward_dialling_ignores_hours() {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dialplans/example.toml"
    ))
    .expect("example");
    let plan = compile("example.toml", &source)
        .map_err(|d| d.to_string())
        .expect("compiles")
        .plan;
    for ext in ["201", "202", "203", "204", "205"] {
        for at in [
            "2026-03-02T10:00:00+01:00",
            "2026-03-02T23:00:00+01:00",
            "2026-12-25T03:00:00+01:00",
        ] {
            let facts = CallFacts {
                dialled: ext.into(),
                trunk: Some("provider".into()),
                ..Default::default()
            };
            let d = route(
                &plan,
                &facts,
                at.parse().expect("RFC 3339"),
                &mut StrategyState::default(),
            );
            assert_eq!(d.target.to_string(), format!("extension:{ext}"));
            assert_eq!(d.ring, [ext]);
        }
    }
}

#[test]
fn menu_and_duty_queries_for_the_ivr() {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dialplans/example.toml"
    ))
    .expect("example");
    let plan = compile("example.toml", &source)
        .map_err(|d| d.to_string())
        .expect("compiles")
        .plan;
    let main = plan.menu("main").expect("main menu");
    assert_eq!(main.prompts, ["welcome", "main-menu"]);
    assert_eq!(main.options.len(), 5);
    assert_eq!(
        main.option('4').map(|o| o.target.to_string()),
        Some("group:salute".into())
    );
    assert_eq!(
        plan.follow_digits("main", "4").map(|t| t.to_string()),
        Ok("group:salute".into())
    );
    assert_eq!(plan.follow_digits("main", "7"), Err('7'));
    assert_eq!(plan.primary_number(), Some("800840840"));
    let at = "2026-03-02T10:00:00+01:00".parse().expect("RFC 3339");
    assert_eq!(plan.on_duty("salute", at, false), ["204"]);
    assert_eq!(
        plan.next_duty_change("salute", at, false),
        Some("2026-03-02T13:30:00+01:00".parse().expect("RFC 3339"))
    );
    // Coming week from Monday 00:00: salute is covered whenever the office is open.
    let monday = "2026-03-02T00:00:00+01:00".parse().expect("RFC 3339");
    assert!(plan.uncovered_hours("salute", monday, false).is_empty());
    let json = plan.duty_report(at, false).to_json();
    assert_eq!(json["groups"][2]["group"], "salute");
    assert_eq!(json["groups"][2]["on_duty"][0], "204");
    assert!(router::TOP_LEVEL_KEYS.contains(&"groups"));
}

#[test]
fn example_prompt_references_have_their_positions() {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dialplans/example.toml"
    ))
    .expect("example");
    let compiled = compile("example.toml", &source)
        .map_err(|d| d.to_string())
        .expect("compiles");
    let refs: Vec<(&str, usize, usize)> = compiled
        .plan
        .prompt_refs()
        .iter()
        .map(|r| (r.name.as_str(), r.line, r.col))
        .collect();
    assert_eq!(
        refs,
        vec![
            ("welcome", 96, 12),
            ("main-menu", 96, 23),
            ("invalid-choice", 99, 11),
            ("option-info", 104, 16),
            ("info", 104, 40),
            ("option-spesa", 105, 16),
            ("option-assistenza", 106, 16),
            ("option-salute", 107, 16),
            ("option-ascolto", 108, 16),
            ("please-wait", 152, 10),
            ("closed", 157, 10),
        ]
    );
    assert_eq!(compiled.prompt_refs, compiled.plan.prompt_refs());
    // Every reference's position points at the quoted name in the file.
    let lines: Vec<&str> = source.lines().collect();
    for r in compiled.plan.prompt_refs() {
        let line: Vec<char> = lines[r.line - 1].chars().collect();
        let at: String = line[r.col - 1..].iter().collect();
        assert!(
            at.starts_with(&format!("\"{}\"", r.name))
                || at.starts_with(&format!("\"message:{}\"", r.name))
                || at.starts_with(&format!("\"hangup:{}\"", r.name)),
            "{r:?} points at {at}"
        );
    }
    let info = &compiled.plan.prompt_refs()[4];
    assert!(info.what.contains("option 1"), "{info:?}");
}

#[test]
fn message_and_hangup_targets_anywhere_are_prompt_references() {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dialplans/example.toml"
    ))
    .expect("example")
    .replace(
        "closed = \"voicemail:general\"",
        "closed = \"hangup:closed-today\"",
    )
    .replace(
        "no_answer = \"external:roma\"",
        "no_answer = \"message:sorry\"",
    )
    .replace("overflow = \"external:roma\"", "overflow = \"hangup:bye\"")
    .replace(
        "invalid = \"invalid-choice\"",
        "invalid = \"invalid-choice\"\ntimeout_prompt = \"no-input\"",
    );
    let plan = compile("example.toml", &source)
        .map_err(|d| d.to_string())
        .expect("compiles")
        .plan;
    let names: Vec<&str> = plan.prompt_refs().iter().map(|r| r.name.as_str()).collect();
    for name in ["closed-today", "sorry", "bye", "no-input"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(!names.contains(&"not-in-service"), "{names:?}");
    let bad = source.replace("prompt = \"please-wait\"", "prompt = \"../please-wait\"");
    let err = compile("example.toml", &bad).expect_err("a path is not a prompt name");
    assert!(err.to_string().contains("is not a prompt name"), "{err}");
}
