//! Calendar and shift rules across DST changes, midnight, the year end, and Easter.

use jiff::Timestamp;
use jiff::civil::Date;
use router::{CallFacts, StrategyState, compile, easter_sunday, italian_holiday, route};

fn ts(text: &str) -> Timestamp {
    text.parse().expect("RFC 3339 in test")
}

const EXTENSIONS: &str = "
[[extensions]]
number = \"201\"
[[extensions]]
number = \"202\"
";

/// A plan whose group `g` has the given shifts for 201 and 202 and no calendar (always open).
fn plan_with_shifts(shifts_201: &str, shifts_202: &str) -> router::Plan {
    let source = format!(
        "{EXTENSIONS}
[[numbers]]
number = \"100\"
open = \"group:g\"

[groups.g]
members = [\"201\", \"202\"]
no_answer = \"hangup:nobody\"

[groups.g.shifts]
201 = {shifts_201}
202 = {shifts_202}
"
    );
    match compile("t.toml", &source) {
        Ok(c) => c.plan,
        Err(d) => panic!("{d}"),
    }
}

fn ring(plan: &router::Plan, at: &str) -> Vec<String> {
    let facts = CallFacts {
        dialled: "100".into(),
        ..Default::default()
    };
    route(plan, &facts, ts(at), &mut StrategyState::default()).ring
}

#[test]
fn spring_forward_skipped_hour_shortens_a_shift() {
    // Europe/Rome, 29 March 2026: 02:00 CET jumps to 03:00 CEST. A 02:00-03:00 shift never happens.
    let plan = plan_with_shifts("[\"daily 02:00-03:00\"]", "[\"daily 03:00-04:00\"]");
    assert_eq!(ring(&plan, "2026-03-29T00:59:00Z"), Vec::<String>::new()); // 01:59 CET
    assert_eq!(ring(&plan, "2026-03-29T01:00:00Z"), vec!["202"]); // 03:00 CEST
    assert_eq!(ring(&plan, "2026-03-28T01:30:00Z"), vec!["201"]); // 02:30 CET the day before
    assert!(
        plan.on_duty("g", ts("2026-03-29T00:30:00Z"), false)
            .is_empty()
    );
    // Duty goes from nobody (01:59 CET) straight to 202 at the jump.
    assert_eq!(
        plan.next_duty_change("g", ts("2026-03-29T00:00:00Z"), false),
        Some(ts("2026-03-29T01:00:00Z"))
    );
}

#[test]
fn fall_back_repeated_hour_is_on_duty_at_each_reading() {
    // 25 October 2026: 03:00 CEST goes back to 02:00 CET; 02:00-03:00 is read twice.
    // Rule: duty follows the wall-clock reading, so a 02:00-03:00 shift lasts two real hours.
    let plan = plan_with_shifts("[\"daily 02:00-03:00\"]", "[\"daily 03:00-04:00\"]");
    assert_eq!(ring(&plan, "2026-10-25T00:30:00Z"), vec!["201"]); // 02:30 CEST
    assert_eq!(ring(&plan, "2026-10-25T01:30:00Z"), vec!["201"]); // 02:30 CET
    assert_eq!(ring(&plan, "2026-10-25T02:00:00Z"), vec!["202"]); // 03:00 CET
    let gaps = plan.uncovered_hours("g", ts("2026-10-24T22:00:00Z"), false);
    // 00:00-02:00 CEST uncovered (22:00Z-00:00Z), then covered 00:00Z-03:00Z, then uncovered.
    assert_eq!(
        gaps.first(),
        Some(&(ts("2026-10-24T22:00:00Z"), ts("2026-10-25T00:00:00Z")))
    );
    assert_eq!(gaps.get(1).map(|g| g.0), Some(ts("2026-10-25T03:00:00Z")));
}

#[test]
fn night_shifts_on_dst_nights() {
    // 22:00-06:00 lasts 7 hours on the spring night and 9 on the autumn night.
    let plan = plan_with_shifts("[\"daily 22:00-06:00\"]", "[\"daily 06:00-22:00\"]");
    assert_eq!(ring(&plan, "2026-03-28T21:00:00Z"), vec!["201"]); // 22:00 CET
    assert_eq!(ring(&plan, "2026-03-29T03:59:00Z"), vec!["201"]); // 05:59 CEST
    assert_eq!(ring(&plan, "2026-03-29T04:00:00Z"), vec!["202"]); // 06:00 CEST
    assert_eq!(
        plan.next_duty_change("g", ts("2026-03-28T21:00:00Z"), false),
        Some(ts("2026-03-29T04:00:00Z"))
    );
    assert_eq!(
        plan.next_duty_change("g", ts("2026-10-24T20:00:00Z"), false),
        Some(ts("2026-10-25T05:00:00Z"))
    );
    assert_eq!(ring(&plan, "2026-10-25T04:59:00Z"), vec!["201"]); // 05:59 CET
}

#[test]
fn shifts_crossing_midnight_and_the_year_end() {
    // 31 December 2026 is a Thursday.
    let plan = plan_with_shifts(
        "[\"Thu 22:00-06:00\", \"2027-01-01 22:00-02:00\"]",
        "[\"daily 06:00-22:00\", \"off 2026-12-31\", \"off 2027-01-01 10:00-12:00\"]",
    );
    assert_eq!(ring(&plan, "2026-12-31T22:30:00Z"), vec!["201"]); // 23:30 Thu
    assert_eq!(ring(&plan, "2027-01-01T02:00:00Z"), vec!["201"]); // 03:00 Fri 1 Jan
    assert_eq!(ring(&plan, "2026-12-31T10:00:00Z"), Vec::<String>::new()); // 202 off on the 31st
    assert_eq!(ring(&plan, "2027-01-01T08:00:00Z"), vec!["202"]); // 09:00 on the 1st
    assert_eq!(ring(&plan, "2027-01-01T09:30:00Z"), Vec::<String>::new()); // 10:30, timed absence
    assert_eq!(ring(&plan, "2027-01-02T00:30:00Z"), vec!["201"]); // 01:30 Sat, extra shift from Fri 22:00
    assert_eq!(ring(&plan, "2027-01-02T01:30:00Z"), Vec::<String>::new()); // 02:30 Sat
    // A whole-day absence cancels the night shift that starts that day, past midnight too.
    let plan = plan_with_shifts(
        "[\"Thu 22:00-06:00\", \"off 2026-12-31\"]",
        "[\"Sun 10:00-11:00\"]",
    );
    assert_eq!(ring(&plan, "2027-01-01T02:00:00Z"), Vec::<String>::new());
    assert_eq!(ring(&plan, "2027-01-08T02:00:00Z"), vec!["201"]);
}

/// Easter by the Meeus/Jones/Butcher ("anonymous Gregorian") algorithm, independent of the
/// library's Gauss implementation.
fn easter_meeus(year: i16) -> Date {
    let y = i32::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    Date::new(year, month as i8, day as i8).expect("valid Easter")
}

#[test]
fn easter_table_1900_2100_and_known_dates() {
    let table: Vec<(i16, Date)> = (1900..=2100).map(|y| (y, easter_meeus(y))).collect();
    for (year, expected) in &table {
        assert_eq!(easter_sunday(*year), *expected, "Easter {year}");
    }
    for year in 1583..=4099 {
        assert_eq!(easter_sunday(year), easter_meeus(year), "Easter {year}");
    }
    // Known dates, including both of Gauss's exception cases (1954, 1981, 2049, 2076).
    let known = [
        (1900, 4, 15),
        (1943, 4, 25),
        (1954, 4, 18),
        (1961, 4, 2),
        (1981, 4, 19),
        (2000, 4, 23),
        (2008, 3, 23),
        (2011, 4, 24),
        (2019, 4, 21),
        (2024, 3, 31),
        (2025, 4, 20),
        (2026, 4, 5),
        (2027, 3, 28),
        (2038, 4, 25),
        (2049, 4, 18),
        (2076, 4, 19),
        (2100, 3, 28),
    ];
    for (y, m, d) in known {
        assert_eq!(
            easter_sunday(y),
            Date::new(y, m, d).expect("valid"),
            "Easter {y}"
        );
    }
}

#[test]
fn italian_holidays() {
    let d = |y, m, day| Date::new(y, m, day).expect("valid");
    assert!(italian_holiday(d(2026, 4, 6)).is_some_and(|n| n.contains("Angelo"))); // Easter Monday
    assert!(italian_holiday(d(2025, 4, 21)).is_some()); // Easter Monday 2025
    assert!(italian_holiday(d(2026, 4, 7)).is_none());
    for (m, day) in [
        (1, 1),
        (1, 6),
        (4, 25),
        (5, 1),
        (6, 2),
        (8, 15),
        (11, 1),
        (12, 8),
        (12, 25),
        (12, 26),
    ] {
        assert!(italian_holiday(d(2030, m, day)).is_some(), "{m}-{day}");
    }
    assert!(italian_holiday(d(2025, 10, 4)).is_none()); // St Francis: national again from 2026
    assert!(italian_holiday(d(2026, 10, 4)).is_some());
    assert!(italian_holiday(d(2026, 6, 24)).is_none()); // patron saint: configuration, not built in
}

#[test]
fn easter_relative_and_one_off_holidays_from_config() {
    let source = format!(
        "{EXTENSIONS}
[calendars.office]
open = [\"daily 00:00-24:00\"]
national_holidays = \"none\"
holidays = [{{ easter = 50, name = \"Lunedì di Pentecoste\" }}, {{ date = \"2026-12-24\", name = \"Chiusura\" }}]

[[numbers]]
number = \"100\"
open = \"extension:201\"
closed = \"hangup:closed\"
"
    );
    let plan = compile("t.toml", &source)
        .map_err(|d| d.to_string())
        .expect("valid")
        .plan;
    let target = |at: &str| {
        let facts = CallFacts {
            dialled: "100".into(),
            ..Default::default()
        };
        route(&plan, &facts, ts(at), &mut StrategyState::default())
            .target
            .to_string()
    };
    assert_eq!(target("2026-05-25T10:00:00Z"), "hangup:closed"); // Easter 5 April + 50 days
    assert_eq!(target("2027-05-17T10:00:00Z"), "hangup:closed"); // Easter 28 March + 50 days
    assert_eq!(target("2026-12-24T10:00:00Z"), "hangup:closed");
    assert_eq!(target("2027-12-24T10:00:00Z"), "extension:201");
    assert_eq!(target("2026-04-06T10:00:00Z"), "extension:201"); // national holidays off
}

#[test]
fn scheduled_emergency_window() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dialplans/example.toml"
    ))
    .expect("example");
    let source = example.replace(
        "windows = []",
        "windows = [\"2026-03-07 08:00..2026-03-09 00:00\"]",
    );
    let plan = compile("example.toml", &source)
        .map_err(|d| d.to_string())
        .expect("valid")
        .plan;
    let facts = CallFacts {
        dialled: "800840840".into(),
        digits: "4".into(),
        ..Default::default()
    };
    let decision = route(
        &plan,
        &facts,
        ts("2026-03-07T10:00:00+01:00"),
        &mut StrategyState::default(),
    );
    assert_eq!(
        (decision.target.to_string(), decision.ring.clone()),
        ("group:salute".into(), vec!["205".to_owned()])
    );
    assert!(decision.emergency);
    let decision = route(
        &plan,
        &facts,
        ts("2026-03-07T07:00:00+01:00"),
        &mut StrategyState::default(),
    );
    assert_eq!(decision.target.to_string(), "voicemail:general");
}
