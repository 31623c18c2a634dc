//! Duty queries: who is on duty in a group at an instant, when that next changes, and the hours
//! of the coming week with nobody on duty.

use std::collections::BTreeSet;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};

use crate::plan::{HuntGroup, Local, Plan};
use crate::time::{DAY_MINUTES, dates};

/// One member on duty and the shift that puts them there.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OnDuty {
    /// The extension.
    pub member: String,
    /// The shift as written (`Mon-Fri 09:00-13:30`), or `None` when the group has no shifts.
    pub shift: Option<String>,
}

/// Who is on duty in one group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GroupDuty {
    /// The group.
    pub group: String,
    /// `shifts`, `emergency roster` or `no shifts`.
    pub roster: String,
    /// Members on duty, in member order.
    pub on_duty: Vec<OnDuty>,
    /// When the set of members on duty next changes (within 8 days).
    pub next_change: Option<Timestamp>,
    /// The coming week's intervals in which the group's calendar is open and nobody is on duty.
    pub uncovered: Vec<(Timestamp, Timestamp)>,
}

/// Who is on duty in every group at one instant (`centralino duty`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DutyReport {
    /// The instant asked about.
    pub at: Timestamp,
    /// The service time zone.
    pub time_zone: String,
    /// Whether emergency mode applied.
    pub emergency: bool,
    /// One entry per group, by name.
    pub groups: Vec<GroupDuty>,
}

impl Plan {
    /// Members of `group` on duty at `at` (shift table only: registration and busy state are
    /// the switch's). A group without shifts has every member on duty. `emergency` is the
    /// runtime switch; scheduled windows apply too.
    pub fn on_duty(&self, group: &str, at: Timestamp, emergency: bool) -> Vec<String> {
        self.on_duty_detail(group, at, emergency)
            .into_iter()
            .map(|d| d.member)
            .collect()
    }

    fn on_duty_detail(&self, group: &str, at: Timestamp, emergency: bool) -> Vec<OnDuty> {
        let Some(group) = self.groups.get(group) else {
            return Vec::new();
        };
        let local = Local::new(&self.tz, at);
        let emergency = self.emergency_at(at, emergency);
        match group.roster(emergency) {
            None => group
                .members
                .iter()
                .map(|m| OnDuty {
                    member: m.clone(),
                    shift: None,
                })
                .collect(),
            Some((roster, _)) => group
                .members
                .iter()
                .filter_map(|m| {
                    let shift = roster.members.get(m)?.on_shift(&local)?;
                    Some(OnDuty {
                        member: m.clone(),
                        shift: Some(shift.label.to_string()),
                    })
                })
                .collect(),
        }
    }

    /// The first instant after `at` (within 8 days) at which the members on duty in `group`
    /// change, or `None`.
    pub fn next_duty_change(
        &self,
        group: &str,
        at: Timestamp,
        emergency: bool,
    ) -> Option<Timestamp> {
        let g = self.groups.get(group)?;
        let until = at.checked_add(SignedDuration::from_hours(24 * 8)).ok()?;
        let now = self.on_duty(group, at, emergency);
        self.boundaries(g, at, until)
            .into_iter()
            .find(|&t| self.on_duty(group, t, emergency) != now)
    }

    /// The intervals of the week starting at `from` during which `group` has nobody on duty
    /// although its calendar is open (or at all, when the group has no calendar).
    pub fn uncovered_hours(
        &self,
        group: &str,
        from: Timestamp,
        emergency: bool,
    ) -> Vec<(Timestamp, Timestamp)> {
        let Some(g) = self.groups.get(group) else {
            return Vec::new();
        };
        let Ok(until) = from.checked_add(SignedDuration::from_hours(24 * 7)) else {
            return Vec::new();
        };
        let mut points = vec![from];
        points.extend(self.boundaries(g, from, until));
        points.push(until);
        let calendar = g.calendar.as_ref().and_then(|c| self.calendars.get(c));
        let mut out: Vec<(Timestamp, Timestamp)> = Vec::new();
        for pair in points.windows(2) {
            let (start, end) = (pair[0], pair[1]);
            let staffed =
                calendar.is_none_or(|c| c.status(start, self.emergency_at(start, emergency)).0);
            if staffed && self.on_duty(group, start, emergency).is_empty() {
                match out.last_mut() {
                    Some(last) if last.1 == start => last.1 = end,
                    _ => out.push((start, end)),
                }
            }
        }
        out
    }

    /// Who is on duty in every group at `at`.
    pub fn duty_report(&self, at: Timestamp, emergency: bool) -> DutyReport {
        let emergency_on = self.emergency_at(at, emergency);
        let groups = self
            .groups
            .values()
            .map(|g| GroupDuty {
                group: g.name.clone(),
                roster: g
                    .roster(emergency_on)
                    .map_or("no shifts", |(_, name)| name)
                    .to_owned(),
                on_duty: self.on_duty_detail(&g.name, at, emergency),
                next_change: if g.shifts.is_some() || g.emergency_shifts.is_some() {
                    self.next_duty_change(&g.name, at, emergency)
                } else {
                    None
                },
                uncovered: self.uncovered_hours(&g.name, at, emergency),
            })
            .collect();
        DutyReport {
            at,
            time_zone: self.tz_name.clone(),
            emergency: emergency_on,
            groups,
        }
    }

    /// Every instant in `(from, until)` at which duty in `group` (or its calendar) may change:
    /// each wall-clock boundary resolved both ways through a fold, the zone's transitions, and
    /// the emergency windows. Sorted, without duplicates.
    fn boundaries(&self, group: &HuntGroup, from: Timestamp, until: Timestamp) -> Vec<Timestamp> {
        let mut minutes: BTreeSet<u16> = BTreeSet::from([0]);
        let rosters = group.shifts.iter().chain(group.emergency_shifts.iter());
        for roster in rosters.clone() {
            for shifts in roster.members.values() {
                for interval in shifts.weekly.by_start_day.iter().flatten() {
                    minutes.insert(interval.range.start % DAY_MINUTES);
                    minutes.insert(interval.range.end % DAY_MINUTES);
                }
            }
        }
        if let Some(calendar) = group.calendar.as_ref().and_then(|c| self.calendars.get(c)) {
            for interval in calendar
                .open
                .by_start_day
                .iter()
                .chain(
                    calendar
                        .emergency_open
                        .iter()
                        .flat_map(|h| h.by_start_day.iter()),
                )
                .flatten()
            {
                minutes.insert(interval.range.start % DAY_MINUTES);
                minutes.insert(interval.range.end % DAY_MINUTES);
            }
        }
        let first = self
            .tz
            .to_datetime(from)
            .date()
            .yesterday()
            .unwrap_or(Date::MIN);
        let last = self
            .tz
            .to_datetime(until)
            .date()
            .tomorrow()
            .unwrap_or(Date::MAX);
        let mut out: Vec<Timestamp> = Vec::new();
        for date in dates(first, last) {
            let mut day_minutes = minutes.clone();
            let yesterday = date.yesterday().unwrap_or(date);
            for roster in rosters.clone() {
                for shifts in roster.members.values() {
                    for d in [date, yesterday] {
                        for i in shifts.extra.get(&d).into_iter().flatten() {
                            day_minutes.insert(i.range.start % DAY_MINUTES);
                            day_minutes.insert(i.range.end % DAY_MINUTES);
                        }
                        for r in shifts.off_ranges.get(&d).into_iter().flatten() {
                            day_minutes.insert(r.start % DAY_MINUTES);
                            day_minutes.insert(r.end % DAY_MINUTES);
                        }
                    }
                }
            }
            for minute in day_minutes {
                // minute < 1440, so hour and minute fit an i8.
                let dt = date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
                let ambiguous = self.tz.to_ambiguous_timestamp(dt);
                out.extend(ambiguous.earlier().ok());
                out.extend(ambiguous.later().ok());
            }
        }
        out.extend(
            self.tz
                .following(from)
                .map(|t| t.timestamp())
                .take_while(|&t| t < until),
        );
        for window in &self.emergency_windows {
            out.push(window.start);
            out.push(window.end);
        }
        out.retain(|&t| from < t && t < until);
        out.sort();
        out.dedup();
        out
    }
}
