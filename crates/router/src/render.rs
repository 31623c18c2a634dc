//! Text and JSON renderings of decisions and duty reports, shared by `centralino route` and
//! `centralino duty` (the switch's CLI only prints them).

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::duty::DutyReport;
use crate::route::Decision;

/// `Mon 2026-03-02 10:00 +01:00`: a wall-clock reading with its offset.
pub(crate) fn local_label(tz: &TimeZone, at: Timestamp) -> String {
    at.to_zoned_datetime(tz.clone())
        .strftime("%a %Y-%m-%d %H:%M %:z")
        .to_string()
}

impl Decision {
    /// The decision as JSON: at least `target` (string), `ring` (array) and `reasons` (array).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "target": self.target.to_string(),
            "ring": self.ring,
            "ring_all": self.ring_all,
            "ring_timeout_secs": self.ring_timeout_secs,
            "timeout_secs": self.timeout_secs,
            "no_answer": self.no_answer.as_ref().map(ToString::to_string),
            "external": self.external,
            "emergency": self.emergency,
            "number": self.number,
            "reasons": self.reasons,
        })
    }

    /// The decision and why, for people.
    pub fn explain_text(&self) -> String {
        let mut out = format!("target: {}\n", self.target);
        let ring = if self.ring.is_empty() {
            "(nobody)".to_owned()
        } else {
            self.ring.join(", ")
        };
        out.push_str(&format!(
            "ring: {ring}{}\n",
            if self.ring_all && self.ring.len() > 1 {
                " (all at once)"
            } else {
                ""
            }
        ));
        if let Some(no_answer) = &self.no_answer {
            out.push_str(&format!("no answer: {no_answer}\n"));
        }
        out.push_str("why:\n");
        for reason in &self.reasons {
            out.push_str(&format!("  - {reason}\n"));
        }
        out
    }
}

impl DutyReport {
    /// The report as JSON: `at`, `time_zone`, `emergency`, `groups[{group, roster, on_duty, next_change}]`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "at": self.at.to_string(),
            "time_zone": self.time_zone,
            "emergency": self.emergency,
            "groups": self.groups.iter().map(|g| serde_json::json!({
                "group": g.group,
                "roster": g.roster,
                "on_duty": g.on_duty.iter().map(|d| d.member.clone()).collect::<Vec<_>>(),
                "shifts": g.on_duty.iter().map(|d| d.shift.clone()).collect::<Vec<_>>(),
                "next_change": g.next_change.map(|t| t.to_string()),
                "uncovered": g.uncovered.iter().map(|(a, b)| [a.to_string(), b.to_string()]).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// The report as text, one group per line, times in the service's zone.
    pub fn to_text(&self) -> String {
        let tz = TimeZone::get(&self.time_zone).unwrap_or(TimeZone::UTC);
        let mut out = format!(
            "on duty at {} ({}){}\n",
            local_label(&tz, self.at),
            self.time_zone,
            if self.emergency {
                ", emergency mode"
            } else {
                ""
            }
        );
        for g in &self.groups {
            let members = if g.on_duty.is_empty() {
                "nobody".to_owned()
            } else {
                g.on_duty
                    .iter()
                    .map(|d| match &d.shift {
                        Some(shift) => format!("{} ({shift})", d.member),
                        None => d.member.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let next = g
                .next_change
                .map(|t| format!("; changes {}", local_label(&tz, t)))
                .unwrap_or_default();
            out.push_str(&format!("{}: {members} [{}]{next}\n", g.group, g.roster));
            if !g.uncovered.is_empty() {
                let gaps: Vec<String> = g
                    .uncovered
                    .iter()
                    .map(|(a, b)| format!("{} to {}", local_label(&tz, *a), local_label(&tz, *b)))
                    .collect();
                out.push_str(&format!(
                    "  nobody on duty while open in the coming week: {}\n",
                    gaps.join("; ")
                ));
            }
        }
        out
    }
}
