//! Decisions per second and compile time on a large plan: 50 groups, 500 operators, a year of
//! shift exceptions (generated here).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::Timestamp;
use router::{CallFacts, StrategyState, compile, route};

const STRATEGIES: [&str; 5] = [
    "ring-all",
    "sequential",
    "round-robin",
    "least-recent",
    "fewest-calls",
];

/// A deterministic generator (no RNG crate needed for a fixture).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn big_plan() -> String {
    let mut rng = Lcg(42);
    let mut s = String::new();
    for op in 0..500 {
        s.push_str(&format!("[[extensions]]\nnumber = \"{}\"\n", 1000 + op));
    }
    s.push_str("[service]\ntimezone = \"Europe/Rome\"\ncalendar = \"office\"\n\n");
    s.push_str("[calendars.office]\nopen = [\"Mon-Fri 08:00-20:00\", \"Sat 09:00-13:00\"]\nholidays = [{ date = \"06-24\", name = \"patrono\" }, { easter = 1, name = \"x\" }]\nemergency_open = [\"daily 00:00-24:00\"]\n\n");
    s.push_str("[[numbers]]\nnumber = \"800840840\"\nopen = \"menu:main\"\nclosed = \"voicemail:general\"\n\n[voicemail.general]\nprompt = \"closed\"\n\n");
    // main menu → 5 submenus → 10 groups each (digits 0-9).
    s.push_str("[menus.main]\nprompts = [\"welcome\"]\ndefault = \"voicemail:general\"\n[menus.main.options]\n");
    for sub in 1..=5 {
        s.push_str(&format!("{sub} = \"menu:m{sub}\"\n"));
    }
    for sub in 1..=5 {
        s.push_str(&format!("\n[menus.m{sub}]\nprompts = [\"sub\"]\ndefault = \"menu:main\"\n[menus.m{sub}.options]\n"));
        for digit in 0..10 {
            s.push_str(&format!(
                "{digit} = \"group:g{}\"\n",
                (sub - 1) * 10 + digit
            ));
        }
    }
    let weekly = [
        "Mon-Fri 06:00-14:00",
        "Mon-Fri 14:00-22:00",
        "daily 22:00-06:00",
        "Sat,Sun 06:00-18:00",
    ];
    for g in 0..50 {
        let members: Vec<String> = (0..10)
            .map(|m| format!("\"{}\"", 1000 + g * 10 + m))
            .collect();
        s.push_str(&format!(
            "\n[groups.g{g}]\nmembers = [{}]\nstrategy = \"{}\"\nno_answer = \"voicemail:general\"\n[groups.g{g}.shifts]\n",
            members.join(", "),
            STRATEGIES[g % 5]
        ));
        for m in 0..10 {
            let op = 1000 + g * 10 + m;
            let mut specs = vec![format!("\"{}\"", weekly[m % 4])];
            // A year of exceptions: ~30 days off, ~12 extra shifts, ~12 timed absences.
            for _ in 0..30 {
                let day = jiff::civil::date(2026, 1, 1)
                    .checked_add(jiff::Span::new().days(rng.next(365) as i64))
                    .expect("2026");
                specs.push(format!("\"off {day}\""));
            }
            // Extra shifts outside the member's weekly hours, on distinct days.
            let extra_hours = ["18:00-21:00", "06:00-09:00", "12:00-15:00", "19:00-22:00"][m % 4];
            for month in 0..12 {
                let day = jiff::civil::date(2026, 1, 1)
                    .checked_add(jiff::Span::new().days(month * 30 + rng.next(30) as i64))
                    .expect("2026");
                specs.push(format!("\"{day} {extra_hours}\""));
                let day = jiff::civil::date(2026, 1, 1)
                    .checked_add(jiff::Span::new().days(rng.next(365) as i64))
                    .expect("2026");
                specs.push(format!("\"off {day} 10:00-12:00\""));
            }
            s.push_str(&format!("{op} = [{}]\n", specs.join(", ")));
        }
        if g % 2 == 0 {
            s.push_str(&format!("[groups.g{g}.emergency_shifts]\n"));
            for m in 0..10 {
                let op = 1000 + g * 10 + m;
                let spec = if m % 2 == 0 {
                    "daily 06:00-18:00"
                } else {
                    "daily 18:00-06:00"
                };
                s.push_str(&format!("{op} = [\"{spec}\"]\n"));
            }
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let source = big_plan();
    let plan = match compile("big.toml", &source) {
        Ok(compiled) => compiled.plan,
        Err(d) => panic!("{d}"),
    };
    let mut rng = Lcg(7);
    let start = Timestamp::from_second(1_767_222_000).expect("2026"); // 2026-01-01 CET
    let calls: Vec<(Timestamp, String, bool)> = (0..4096)
        .map(|_| {
            let at = Timestamp::from_second(start.as_second() + rng.next(365 * 86_400) as i64)
                .expect("2026");
            let digits = format!("{}{}", 1 + rng.next(5), rng.next(10));
            (at, digits, rng.next(10) == 0)
        })
        .collect();
    let mut group = c.benchmark_group("router");
    group.throughput(Throughput::Elements(1));
    group.bench_function("route_decision", |b| {
        let mut state = StrategyState::default();
        let mut facts = CallFacts {
            dialled: "800840840".into(),
            ..Default::default()
        };
        let mut idx = 0;
        b.iter(|| {
            let (at, digits, emergency) = &calls[idx % calls.len()];
            idx += 1;
            facts.digits.clone_from(digits);
            facts.emergency = *emergency;
            black_box(route(&plan, &facts, *at, &mut state))
        });
    });
    group.finish();
    let mut group = c.benchmark_group("router");
    group.sample_size(10);
    group.bench_function("compile_50_groups_500_operators", |b| {
        b.iter(|| black_box(compile("big.toml", &source)).is_ok())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
