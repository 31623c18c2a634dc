//! `cargo run -p router --example explain -- FILE RFC3339 [DIGITS] [on]`: a what-if without the
//! switch binary.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let file = args.get(1).map_or("dialplans/example.toml", String::as_str);
    let source = std::fs::read_to_string(file).expect("readable dialplan");
    let compiled = match router::compile(file, &source) {
        Ok(c) => c,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            std::process::exit(1);
        }
    };
    for w in &compiled.warnings {
        eprintln!("{w}");
    }
    let at: jiff::Timestamp = args
        .get(2)
        .map_or("2026-03-02T10:00:00+01:00", String::as_str)
        .parse()
        .expect("RFC 3339");
    let facts = router::CallFacts {
        dialled: compiled
            .plan
            .primary_number()
            .unwrap_or_default()
            .to_owned(),
        digits: args.get(3).cloned().unwrap_or_default(),
        emergency: args.get(4).is_some_and(|a| a == "on"),
        ..Default::default()
    };
    let decision = router::route(
        &compiled.plan,
        &facts,
        at,
        &mut router::StrategyState::default(),
    );
    print!("{}", decision.explain_text());
    print!(
        "{}",
        compiled.plan.duty_report(at, facts.emergency).to_text()
    );
}
