//! Property tests: one well-formed decision for any call at any instant; a member off shift is
//! never rung; strategies are fair.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use proptest::prelude::*;
use router::{CallFacts, MemberState, Plan, StrategyState, Target, compile, route};

fn example() -> Plan {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dialplans/example.toml"
    ))
    .expect("example");
    compile("example.toml", &source)
        .map_err(|d| d.to_string())
        .expect("example compiles")
        .plan
}

/// Instants from 1990 to 2100, biased towards the DST nights of Europe/Rome by the generator
/// below.
fn instant() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        (631_152_000i64..4_102_444_800).prop_map(|s| Timestamp::from_second(s).expect("in range")),
        // Around the last Sunday of March and October 2026, minute by minute.
        (0i64..(3 * 24 * 60))
            .prop_map(|m| Timestamp::from_second(1_774_656_000 + m * 60).expect("in range")),
        (0i64..(3 * 24 * 60))
            .prop_map(|m| Timestamp::from_second(1_792_108_800 + m * 60).expect("in range")),
    ]
}

fn member_states() -> impl Strategy<Value = BTreeMap<String, MemberState>> {
    proptest::collection::vec((any::<bool>(), any::<bool>()), 5).prop_map(|states| {
        states
            .into_iter()
            .enumerate()
            .map(|(idx, (registered, busy))| {
                (format!("20{}", idx + 1), MemberState { registered, busy })
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn example_decisions_are_well_formed(
        at in instant(),
        emergency in any::<bool>(),
        digits in "[0-9*#]{0,3}",
        members in member_states(),
        dialled in prop_oneof![Just("800840840".to_owned()), Just("203".to_owned()), Just("555".to_owned())],
    ) {
        let plan = example();
        let facts = CallFacts { dialled, digits, emergency, members: members.clone(), ..Default::default() };
        let mut state = StrategyState::default();
        let decision = route(&plan, &facts, at, &mut state.clone());
        // Pure: the same inputs give the same decision.
        prop_assert_eq!(&decision, &route(&plan, &facts, at, &mut state));
        prop_assert!(!decision.reasons.is_empty());
        if let Target::Group(group) = &decision.target {
            let on_duty = plan.on_duty(group, at, emergency);
            for member in &decision.ring {
                // Never ring a member who is off shift, unregistered or busy.
                prop_assert!(on_duty.contains(member), "{} rung off shift: {:?}", member, decision.reasons);
                let state = members.get(member).copied().unwrap_or_default();
                prop_assert!(state.registered && !state.busy);
            }
        }
        if let Target::Extension(ext) = &decision.target {
            prop_assert_eq!(ext, &facts.dialled);
        }
    }

    /// Shifts generated at random (including ones crossing midnight), checked against an
    /// independent oracle that reads the wall clock through `ZonedDateTime`.
    #[test]
    fn member_off_shift_is_never_rung(
        shifts in proptest::collection::vec((1u8..128, 0u16..96, 1u16..96), 3),
        instants in proptest::collection::vec(instant(), 20),
        emergency in any::<bool>(),
    ) {
        const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let mut source = String::new();
        for ext in ["201", "202", "203"] {
            source.push_str(&format!("[[extensions]]\nnumber = \"{ext}\"\n"));
        }
        source.push_str("[[numbers]]\nnumber = \"100\"\nopen = \"group:g\"\n\n[groups.g]\nmembers = [\"201\", \"202\", \"203\"]\nstrategy = \"round-robin\"\n\n[groups.g.shifts]\n");
        let mut spec = Vec::new();
        for (idx, (mask, start_q, len_q)) in shifts.iter().enumerate() {
            let days: Vec<&str> = (0..7).filter(|d| mask & (1 << d) != 0).map(|d| DAYS[d]).collect();
            let start = start_q * 15;
            let end = (start + len_q * 15) % 1440;
            let end_text = if end == 0 { "24:00".to_owned() } else { format!("{:02}:{:02}", end / 60, end % 60) };
            source.push_str(&format!(
                "20{} = [\"{} {:02}:{:02}-{}\"]\n",
                idx + 1, days.join(","), start / 60, start % 60, end_text
            ));
            let end_abs = if end == 0 { 1440 } else if end <= start { end + 1440 } else { end };
            spec.push((*mask, start, end_abs));
        }
        let plan = compile("gen.toml", &source).map_err(|d| d.to_string()).expect("generated plan compiles").plan;
        let tz = TimeZone::get("Europe/Rome").expect("tzdata");
        let mut state = StrategyState::default();
        for at in instants {
            let zoned = at.to_zoned_datetime(tz.clone());
            let minute = zoned.hour() as u16 * 60 + zoned.minute() as u16;
            let today = zoned.weekday().to_monday_zero_offset() as u8;
            let yesterday = (today + 6) % 7;
            let facts = CallFacts { dialled: "100".into(), emergency, ..Default::default() };
            let decision = route(&plan, &facts, at, &mut state);
            for (idx, (mask, start, end)) in spec.iter().enumerate() {
                let on = (mask & (1 << today) != 0 && *start <= minute && minute < *end)
                    || (mask & (1 << yesterday) != 0 && *end > 1440 && minute + 1440 < *end);
                let ext = format!("20{}", idx + 1);
                prop_assert_eq!(decision.ring.contains(&ext), on, "{} at {} ({})", ext, zoned, source);
            }
        }
    }

    /// `next_duty_change` finds the first change: duty is constant before it and differs at it,
    /// across DST nights and midnight-crossing shifts.
    #[test]
    fn next_duty_change_is_the_first_change(
        shifts in proptest::collection::vec((1u8..128, 0u16..96, 1u16..96), 3),
        at in instant(),
    ) {
        let plan = generated_plan(&shifts, "");
        let now = plan.on_duty("g", at, false);
        let until = match plan.next_duty_change("g", at, false) {
            Some(next) => {
                prop_assert!(next > at);
                prop_assert_ne!(plan.on_duty("g", next, false), now.clone());
                next
            }
            None => Timestamp::from_second(at.as_second() + 8 * 86_400).expect("in range"),
        };
        let span = until.as_second() - at.as_second();
        for k in 0..60 {
            let t = Timestamp::from_second(at.as_second() + span * k / 60).expect("in range");
            prop_assert_eq!(plan.on_duty("g", t, false), now.clone(), "at {}", t);
        }
        // The uncovered hours are exactly the sampled instants with nobody on duty.
        let gaps = plan.uncovered_hours("g", at, false);
        for k in 0..200 {
            let t = Timestamp::from_second(at.as_second() + 7 * 86_400 * k / 200).expect("in range");
            let in_gap = gaps.iter().any(|(a, b)| *a <= t && t < *b);
            prop_assert_eq!(in_gap, plan.on_duty("g", t, false).is_empty(), "at {}", t);
        }
    }

    /// Round-robin never offers a call first to an unavailable member and, among available
    /// members, starts with the next one after the previous first.
    #[test]
    fn round_robin_rotates(busy_masks in proptest::collection::vec(0u8..16, 1..200)) {
        let plan = fair_plan("round-robin", 4);
        let mut state = StrategyState::default();
        let mut previous_first: Option<usize> = None;
        for mask in busy_masks {
            let members = (0..4).map(|i| (format!("30{i}"), MemberState { registered: true, busy: mask & (1 << i) != 0 })).collect();
            let facts = CallFacts { dialled: "100".into(), members, ..Default::default() };
            let decision = route(&plan, &facts, Timestamp::UNIX_EPOCH, &mut state);
            let available: Vec<usize> = (0..4).filter(|i| mask & (1 << i) == 0).collect();
            prop_assert_eq!(decision.ring.len(), available.len());
            if let Some(first) = decision.ring.first() {
                let first: usize = first[2..].parse().expect("30N");
                let start = previous_first.map_or(0, |p| (p + 1) % 4);
                let expected = available.iter().copied().min_by_key(|i| (i + 4 - start) % 4).expect("non-empty");
                prop_assert_eq!(first, expected);
                previous_first = Some(first);
            }
        }
    }
}

fn fair_plan(strategy: &str, n: usize) -> Plan {
    let mut source = String::new();
    let members: Vec<String> = (0..n).map(|i| format!("30{i}")).collect();
    for m in &members {
        source.push_str(&format!("[[extensions]]\nnumber = \"{m}\"\n"));
    }
    source.push_str(&format!(
        "[[numbers]]\nnumber = \"100\"\nopen = \"group:g\"\n[groups.g]\nmembers = [{}]\nstrategy = \"{strategy}\"\n",
        members.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", ")
    ));
    compile("fair.toml", &source)
        .map_err(|d| d.to_string())
        .expect("compiles")
        .plan
}

#[test]
fn strategies_are_fair_over_many_calls() {
    for strategy in ["round-robin", "least-recent", "fewest-calls"] {
        let plan = fair_plan(strategy, 5);
        let mut state = StrategyState::default();
        let mut firsts: BTreeMap<String, usize> = BTreeMap::new();
        for call in 0..10_000i64 {
            let facts = CallFacts {
                dialled: "100".into(),
                ..Default::default()
            };
            let at = Timestamp::from_second(call).expect("in range");
            let decision = route(&plan, &facts, at, &mut state);
            assert_eq!(decision.ring.len(), 5);
            *firsts.entry(decision.ring[0].clone()).or_default() += 1;
        }
        assert_eq!(firsts.len(), 5, "{strategy}: {firsts:?}");
        assert!(
            firsts.values().all(|&n| n == 2000),
            "{strategy}: {firsts:?}"
        );
    }
}

#[test]
fn ring_all_and_sequential_keep_member_order() {
    for strategy in ["ring-all", "sequential"] {
        let plan = fair_plan(strategy, 3);
        let mut state = StrategyState::default();
        for _ in 0..3 {
            let facts = CallFacts {
                dialled: "100".into(),
                ..Default::default()
            };
            let decision = route(&plan, &facts, Timestamp::UNIX_EPOCH, &mut state);
            assert_eq!(decision.ring, ["300", "301", "302"]);
            assert_eq!(decision.ring_all, strategy == "ring-all");
        }
    }
}

/// A plan whose group `g` has one generated weekly shift per member (201-203) and no calendar.
fn generated_plan(shifts: &[(u8, u16, u16)], extra: &str) -> Plan {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let mut source = String::new();
    for ext in ["201", "202", "203"] {
        source.push_str(&format!("[[extensions]]\nnumber = \"{ext}\"\n"));
    }
    source.push_str("[[numbers]]\nnumber = \"100\"\nopen = \"group:g\"\n\n[groups.g]\nmembers = [\"201\", \"202\", \"203\"]\n\n[groups.g.shifts]\n");
    for (idx, (mask, start_q, len_q)) in shifts.iter().enumerate() {
        let days: Vec<&str> = (0..7)
            .filter(|d| mask & (1 << d) != 0)
            .map(|d| DAYS[d])
            .collect();
        let start = start_q * 15;
        let end = (start + len_q * 15) % 1440;
        let end_text = if end == 0 {
            "24:00".to_owned()
        } else {
            format!("{:02}:{:02}", end / 60, end % 60)
        };
        source.push_str(&format!(
            "20{} = [\"{} {:02}:{:02}-{}\"]\n",
            idx + 1,
            days.join(","),
            start / 60,
            start % 60,
            end_text
        ));
    }
    source.push_str(extra);
    compile("gen.toml", &source)
        .map_err(|d| d.to_string())
        .expect("generated plan compiles")
        .plan
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Config input never panics the compiler: the example with random bytes replaced,
    /// deleted or inserted either compiles or reports diagnostics with valid positions.
    #[test]
    fn compile_never_panics_on_mutated_config(
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), 0u8..3, proptest::sample::select(&b"\"[]=.,-:0129 \nabc#{}"[..])), 1..8),
    ) {
        let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../dialplans/example.toml")).expect("example");
        let mut bytes = source.into_bytes();
        for (idx, op, byte) in edits {
            let at = idx.index(bytes.len().max(1));
            match op {
                0 => bytes[at] = byte,
                1 => { bytes.remove(at); }
                _ => bytes.insert(at, byte),
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let n_lines = text.lines().count() + 1;
        if let Err(diagnostics) = compile("mutated.toml", &text) {
            prop_assert!(diagnostics.errors().count() > 0);
            for d in &diagnostics.0 {
                prop_assert!(d.line >= 1 && d.line <= n_lines && d.col >= 1, "{}", d);
            }
        }
    }

    /// Any instant jiff can represent gets a decision (no panic at the ends of time).
    #[test]
    fn route_never_panics_at_any_instant(
        second in Timestamp::MIN.as_second()..=Timestamp::MAX.as_second(),
        emergency in any::<bool>(),
        digits in "[0-9]{0,2}",
    ) {
        let plan = example();
        let at = Timestamp::from_second(second).expect("in range");
        let facts = CallFacts { dialled: "800840840".into(), digits, emergency, ..Default::default() };
        let decision = route(&plan, &facts, at, &mut StrategyState::default());
        prop_assert!(!decision.reasons.is_empty());
        let _ = plan.next_duty_change("salute", at, emergency);
        let _ = plan.uncovered_hours("salute", at, emergency);
    }
}
