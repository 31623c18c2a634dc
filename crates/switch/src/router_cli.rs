//! `centralino route` and `centralino duty`: read the dialplan, ask the router, print.
//! All logic and rendering live in the `router` crate; this file is only glue.

use std::path::Path;

use anyhow::{Context, bail};

/// Reads and compiles a dialplan; prints every diagnostic to stderr on failure.
fn load(config: &Path) -> anyhow::Result<router::Plan> {
    let source =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    match router::compile(&config.display().to_string(), &source) {
        Ok(compiled) => {
            for warning in &compiled.warnings {
                eprintln!("{warning}");
            }
            Ok(compiled.plan)
        }
        Err(diagnostics) => {
            for diagnostic in &diagnostics.0 {
                eprintln!("{diagnostic}");
            }
            bail!(
                "{} has {} error(s)",
                config.display(),
                diagnostics.errors().count()
            )
        }
    }
}

fn parse_at(at: &str) -> anyhow::Result<router::Timestamp> {
    at.parse()
        .with_context(|| format!("--at {at}: expected RFC 3339, e.g. 2026-03-02T10:00:00+01:00"))
}

fn parse_emergency(emergency: Option<&str>) -> anyhow::Result<bool> {
    match emergency {
        None | Some("off") => Ok(false),
        Some("on") => Ok(true),
        Some(other) => bail!("--emergency {other}: expected on or off"),
    }
}

/// `centralino route`: prints the decision for a call and why, as text or JSON.
pub fn route_command(
    config: &Path,
    at: &str,
    from: Option<&str>,
    digits: Option<&str>,
    dialled: Option<&str>,
    emergency: Option<&str>,
    format: &str,
) -> anyhow::Result<()> {
    let plan = load(config)?;
    let at = parse_at(at)?;
    let facts = router::CallFacts {
        dialled: dialled
            .or(plan.primary_number())
            .unwrap_or("800840840")
            .to_owned(),
        caller: from.map(str::to_owned),
        digits: digits.unwrap_or_default().to_owned(),
        emergency: parse_emergency(emergency)?,
        ..Default::default()
    };
    let decision = router::route(&plan, &facts, at, &mut router::StrategyState::default());
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&decision.to_json())?),
        "text" => print!("{}", decision.explain_text()),
        other => bail!("--format {other}: expected text or json"),
    }
    Ok(())
}

/// `centralino duty`: prints who is on duty in each group at an instant, as text or JSON.
pub fn duty_command(config: &Path, at: &str, format: &str) -> anyhow::Result<()> {
    let plan = load(config)?;
    let report = plan.duty_report(parse_at(at)?, false);
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&report.to_json())?),
        "text" => print!("{}", report.to_text()),
        other => bail!("--format {other}: expected text or json"),
    }
    Ok(())
}
