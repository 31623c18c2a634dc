//! [`route`]: the pure decision. Plan + call facts + instant + strategy state in, a
//! [`Decision`] with its reasons out. No clock, no I/O, no randomness.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::plan::{HuntGroup, Local, NumberRule, Plan, Strategy, Target};

/// What the switch knows about one member extension right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberState {
    /// The extension has a live registration.
    pub registered: bool,
    /// The extension is on a call.
    pub busy: bool,
}

impl Default for MemberState {
    /// Registered and idle: what the router assumes for a member missing from
    /// [`CallFacts::members`] (e.g. in `centralino route` what-if runs).
    fn default() -> Self {
        MemberState {
            registered: true,
            busy: false,
        }
    }
}

/// The facts of one call, as the switch sees them.
#[derive(Clone, Debug, Default)]
pub struct CallFacts {
    /// The dialled number (request URI user part).
    pub dialled: String,
    /// The caller's number, if known.
    pub caller: Option<String>,
    /// The trunk the call arrived from; `None` for internal calls.
    pub trunk: Option<String>,
    /// Menu digits the caller has pressed so far, walked from the number's entry menu.
    pub digits: String,
    /// The runtime emergency switch (scheduled windows are in the plan).
    pub emergency: bool,
    /// Member states by extension; a missing extension counts as registered and idle.
    pub members: BTreeMap<String, MemberState>,
}

/// Per-group strategy memory, kept by the caller and passed back on each decision.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StrategyState {
    /// State by group name.
    pub groups: BTreeMap<String, GroupState>,
}

/// Strategy memory for one group.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupState {
    /// Round-robin: index (into the group's member list) where the next call starts.
    pub next_idx: usize,
    /// Least-recent: when each member was last offered a call.
    pub last_call: BTreeMap<String, Timestamp>,
    /// Fewest-calls: how many calls each member has been offered.
    pub n_calls: BTreeMap<String, u64>,
}

impl StrategyState {
    /// Records that `member` of `group` took a call at `at` (the switch may call this when a
    /// call is answered by someone other than the first member offered).
    pub fn record_call(&mut self, group: &str, member: &str, at: Timestamp) {
        let state = self.groups.entry(group.to_owned()).or_default();
        state.last_call.insert(member.to_owned(), at);
        *state.n_calls.entry(member.to_owned()).or_default() += 1;
    }
}

/// The router's answer: where the call goes, whom to ring, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// Where the call goes (`group:salute`, `voicemail:general`, `menu:main` …).
    pub target: Target,
    /// Extensions to ring, in order (empty unless the target is a group, queue or extension).
    pub ring: Vec<String>,
    /// Ring all of `ring` at once (ring-all), rather than one after the other.
    pub ring_all: bool,
    /// Seconds each member rings, for groups.
    pub ring_timeout_secs: Option<u32>,
    /// Seconds the whole group (or queue) rings before `no_answer`.
    pub timeout_secs: Option<u32>,
    /// Where the call goes when nobody in `ring` answers.
    pub no_answer: Option<Target>,
    /// For `external:` targets: the number and trunk to dial.
    pub external: Option<crate::plan::External>,
    /// Emergency mode was on for this decision.
    pub emergency: bool,
    /// The matched `[[numbers]]` entry, if any.
    pub number: Option<String>,
    /// Every rule, shift and holiday that led here, in order.
    pub reasons: Vec<String>,
}

impl Decision {
    fn new(
        target: Target,
        emergency: bool,
        number: Option<String>,
        reasons: Vec<String>,
    ) -> Decision {
        Decision {
            target,
            ring: Vec::new(),
            ring_all: false,
            ring_timeout_secs: None,
            timeout_secs: None,
            no_answer: None,
            external: None,
            emergency,
            number,
            reasons,
        }
    }
}

/// Longest chain of no-answer/overflow hops followed in one decision (validation rejects loops;
/// this only bounds the work).
const MAX_HOPS: usize = 16;

/// Decides where a call goes at instant `at`. Pure: the same inputs give the same decision;
/// `state` is read for the group strategies and updated as if the first member rung takes the
/// call (round-robin moves on, least-recent and fewest-calls count it).
pub fn route(plan: &Plan, facts: &CallFacts, at: Timestamp, state: &mut StrategyState) -> Decision {
    let mut reasons = Vec::new();
    let local = Local::new(&plan.tz, at);
    let emergency = preamble(plan, facts, at, &mut reasons);

    let number = match_number(plan, facts);
    let entry = match number {
        Some(rule) => {
            let label = rule
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            reasons.push(format!(
                "dialled {} matches number {}{label} ({})",
                facts.dialled, rule.number, rule.origin
            ));
            entry_target(plan, rule, at, emergency, &mut reasons)
        }
        None if plan.direct_dial && plan.extensions.contains(&facts.dialled) => {
            reasons.push(format!(
                "dialled {0} is extension {0}: direct inward dialling rings it at any hour ([service] direct_dial)",
                facts.dialled
            ));
            Target::Extension(facts.dialled.clone())
        }
        None => {
            reasons.push(format!(
                "dialled {} matches no [[numbers]] entry and no extension",
                facts.dialled
            ));
            return Decision::new(
                Target::Hangup("not-in-service".to_owned()),
                emergency,
                None,
                reasons,
            );
        }
    };
    let number = number.map(|r| r.number.clone());

    // Walk the menu tree with the digits pressed so far.
    let mut target = entry;
    let mut digits = facts.digits.chars();
    for digit in digits.by_ref() {
        let Target::Menu(menu_name) = &target else {
            reasons.push(format!(
                "digits `{digit}{}` ignored: {target} is not a menu",
                digits.as_str()
            ));
            break;
        };
        let Some(menu) = plan.menus.get(menu_name) else {
            break;
        };
        match menu.option(digit) {
            Some(option) => {
                reasons.push(format!(
                    "digit {digit} in menu `{}` → {} ({})",
                    menu.name, option.target, option.origin
                ));
                target = option.target.clone();
            }
            None => {
                reasons.push(format!(
                    "digit {digit} is not an option of menu `{}`: the IVR replays it (up to {} retries), then goes to {}",
                    menu.name, menu.retries, menu.default
                ));
                break;
            }
        }
    }
    if let Target::Menu(menu_name) = &target
        && let Some(menu) = plan.menus.get(menu_name)
    {
        reasons.push(format!(
            "menu `{}` ({}) plays {} and waits {} s for a digit ({} retries, then {})",
            menu.name,
            menu.origin,
            menu.prompts.join(", "),
            menu.timeout_secs,
            menu.retries,
            menu.default
        ));
    }
    resolve(
        plan, target, facts, &local, at, emergency, number, reasons, state,
    )
}

/// The decision for a target the IVR chose (e.g. `group:salute` after the caller pressed 4):
/// resolved exactly as [`route`] resolves the end of its menu walk (shifts, emergency mode,
/// ring lists, `no_answer` fall-through). [`Decision::number`] is the `[[numbers]]` entry
/// `facts.dialled` matches, if any; `facts.digits` is ignored. Menu, message, hangup and
/// voicemail targets come back unchanged with nobody to ring. Pure, like [`route`]; `state`
/// is updated in the same way.
pub fn route_target(
    plan: &Plan,
    target: &Target,
    facts: &CallFacts,
    at: Timestamp,
    state: &mut StrategyState,
) -> Decision {
    let mut reasons = vec![format!("the IVR chose {target}")];
    let local = Local::new(&plan.tz, at);
    let emergency = preamble(plan, facts, at, &mut reasons);
    let number = match_number(plan, facts).map(|r| r.number.clone());
    resolve(
        plan,
        target.clone(),
        facts,
        &local,
        at,
        emergency,
        number,
        reasons,
        state,
    )
}

/// The first reasons of every decision (the instant, the caller, emergency mode); returns
/// whether emergency mode is on.
fn preamble(plan: &Plan, facts: &CallFacts, at: Timestamp, reasons: &mut Vec<String>) -> bool {
    reasons.push(format!(
        "at {} ({}){}",
        crate::render::local_label(&plan.tz, at),
        plan.tz_name,
        facts
            .caller
            .as_deref()
            .map(|c| format!(", call from {c}"))
            .unwrap_or_default()
    ));
    let emergency = plan.emergency_at(at, facts.emergency);
    if facts.emergency {
        reasons.push("emergency mode is on (runtime switch)".to_owned());
    } else if let Some(window) = plan.emergency_window(at) {
        reasons.push(format!(
            "emergency mode is on: scheduled window `{}` ({})",
            window.label, window.origin
        ));
    }
    emergency
}

fn match_number<'p>(plan: &'p Plan, facts: &CallFacts) -> Option<&'p NumberRule> {
    // A number pinned to a trunk matches calls from that trunk, and internal calls (no trunk).
    plan.numbers.iter().find(|rule| {
        rule.number == facts.dialled
            && match (&rule.trunk, &facts.trunk) {
                (Some(want), Some(got)) => want == got,
                _ => true,
            }
    })
}

fn entry_target(
    plan: &Plan,
    rule: &NumberRule,
    at: Timestamp,
    emergency: bool,
    reasons: &mut Vec<String>,
) -> Target {
    let Some(calendar) = rule.calendar.as_ref().and_then(|c| plan.calendars.get(c)) else {
        reasons.push(format!(
            "number {} has no calendar: always open",
            rule.number
        ));
        return if emergency {
            rule.emergency.clone().unwrap_or_else(|| rule.open.clone())
        } else {
            rule.open.clone()
        };
    };
    let (open, why) = calendar.status(at, emergency);
    reasons.push(why);
    match (open, emergency) {
        (true, true) => {
            let target = rule.emergency.clone().unwrap_or_else(|| rule.open.clone());
            reasons.push(format!("open in emergency mode → {target}"));
            target
        }
        (true, false) => {
            reasons.push(format!("open → {}", rule.open));
            rule.open.clone()
        }
        (false, _) => {
            // Validation guarantees `closed` when a calendar is set; fall back to open anyway.
            let target = rule.closed.clone().unwrap_or_else(|| rule.open.clone());
            reasons.push(format!("closed → {target}"));
            target
        }
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "internal; the pieces of one decision"
)]
fn resolve(
    plan: &Plan,
    mut target: Target,
    facts: &CallFacts,
    local: &Local,
    at: Timestamp,
    emergency: bool,
    number: Option<String>,
    mut reasons: Vec<String>,
    state: &mut StrategyState,
) -> Decision {
    for _ in 0..MAX_HOPS {
        match &target {
            Target::Group(name) => {
                let Some(group) = plan.groups.get(name) else {
                    break;
                };
                let ring = ring_list(group, facts, local, emergency, at, state, &mut reasons);
                if ring.is_empty()
                    && let Some(next) = &group.no_answer
                {
                    reasons.push(format!(
                        "nobody in group `{name}` can take the call → {next} (no_answer)"
                    ));
                    target = next.clone();
                    continue;
                }
                if ring.is_empty() {
                    reasons.push(format!(
                        "nobody in group `{name}` can take the call and it has no no_answer target"
                    ));
                }
                let mut decision = Decision::new(target.clone(), emergency, number, reasons);
                decision.ring = ring;
                decision.ring_all = group.strategy == Strategy::RingAll;
                decision.ring_timeout_secs = Some(group.ring_timeout_secs);
                decision.timeout_secs = Some(group.timeout_secs);
                decision.no_answer = group.no_answer.clone();
                return decision;
            }
            Target::Queue(name) => {
                let Some(queue) = plan.queues.get(name) else {
                    break;
                };
                let mut ring = Vec::new();
                if let Some(group) = plan.groups.get(&queue.group) {
                    // Queue callers wait for busy members too: only shift and registration count.
                    let roster = group.roster(emergency);
                    for member in &group.members {
                        let on = roster.is_none_or(|(r, _)| {
                            r.members
                                .get(member)
                                .is_some_and(|s| s.on_shift(local).is_some())
                        });
                        let registered = facts
                            .members
                            .get(member)
                            .copied()
                            .unwrap_or_default()
                            .registered;
                        if on && registered {
                            ring.push(member.clone());
                        }
                    }
                }
                reasons.push(format!(
                    "queue `{name}` waits up to {} s for group `{}` ({} on duty){}",
                    queue.max_wait_secs,
                    queue.group,
                    if ring.is_empty() {
                        "nobody".to_owned()
                    } else {
                        ring.join(", ")
                    },
                    queue
                        .overflow
                        .as_ref()
                        .map(|o| format!(", then {o}"))
                        .unwrap_or_default()
                ));
                let mut decision = Decision::new(target.clone(), emergency, number, reasons);
                decision.ring = ring;
                decision.timeout_secs = Some(queue.max_wait_secs);
                decision.no_answer = queue.overflow.clone();
                return decision;
            }
            Target::Extension(ext) => {
                let member = facts.members.get(ext).copied().unwrap_or_default();
                let mut decision = Decision::new(target.clone(), emergency, number, reasons);
                if !member.registered {
                    decision
                        .reasons
                        .push(format!("extension {ext} is not registered"));
                } else {
                    if member.busy {
                        decision.reasons.push(format!("extension {ext} is busy (rung anyway: call waiting is the phone's choice)"));
                    }
                    decision.ring = vec![ext.clone()];
                }
                return decision;
            }
            Target::External(name) => {
                let mut decision = Decision::new(target.clone(), emergency, number, reasons);
                if let Some(external) = plan.external.get(name) {
                    decision.reasons.push(format!(
                        "external `{name}`: dial {}{}",
                        external.number,
                        external
                            .trunk
                            .as_deref()
                            .map(|t| format!(" through trunk {t}"))
                            .unwrap_or_default()
                    ));
                    decision.external = Some(external.clone());
                }
                return decision;
            }
            Target::Voicemail(name) => {
                let mut decision = Decision::new(target.clone(), emergency, number, reasons);
                if let Some(prompt) = plan.voicemail.get(name).and_then(|v| v.prompt.as_deref()) {
                    decision.reasons.push(format!(
                        "voicemail box `{name}` greets with prompt `{prompt}`"
                    ));
                }
                return decision;
            }
            Target::Menu(_) | Target::Message(_) | Target::Hangup(_) => break,
        }
    }
    Decision::new(target, emergency, number, reasons)
}

/// The ordered members to ring: on shift, registered, idle, ordered by the group's strategy.
fn ring_list(
    group: &HuntGroup,
    facts: &CallFacts,
    local: &Local,
    emergency: bool,
    at: Timestamp,
    state: &mut StrategyState,
    reasons: &mut Vec<String>,
) -> Vec<String> {
    let roster = group.roster(emergency);
    let mut available: Vec<usize> = Vec::with_capacity(group.members.len());
    let mut notes: Vec<String> = Vec::new();
    for (idx, member) in group.members.iter().enumerate() {
        if let Some((roster, roster_name)) = roster {
            match roster.members.get(member).and_then(|s| s.on_shift(local)) {
                Some(shift) => notes.push(format!(
                    "{member} on shift `{}` ({roster_name}, {})",
                    shift.label, shift.origin
                )),
                None => {
                    notes.push(format!("{member} off shift ({roster_name})"));
                    continue;
                }
            }
        }
        let member_state = facts.members.get(member).copied().unwrap_or_default();
        if !member_state.registered {
            notes.push(format!("{member} not registered"));
            continue;
        }
        if member_state.busy {
            notes.push(format!("{member} busy"));
            continue;
        }
        available.push(idx);
    }
    if !state.groups.contains_key(&group.name) {
        state.groups.insert(group.name.clone(), Default::default());
    }
    // Inserted just above when missing.
    let group_state = state
        .groups
        .get_mut(&group.name)
        .expect("group state exists");
    let n_members = group.members.len().max(1);
    match group.strategy {
        Strategy::RingAll | Strategy::Sequential => {}
        Strategy::RoundRobin => {
            let start = group_state.next_idx % n_members;
            available.sort_by_key(|&idx| (idx + n_members - start) % n_members);
        }
        Strategy::LeastRecent => {
            available
                .sort_by_key(|&idx| (group_state.last_call.get(&group.members[idx]).copied(), idx));
        }
        Strategy::FewestCalls => {
            available.sort_by_key(|&idx| {
                (
                    group_state
                        .n_calls
                        .get(&group.members[idx])
                        .copied()
                        .unwrap_or(0),
                    idx,
                )
            });
        }
    }
    if let Some(&first) = available.first() {
        group_state.next_idx = (first + 1) % n_members;
        let member = &group.members[first];
        group_state.last_call.insert(member.clone(), at);
        *group_state.n_calls.entry(member.clone()).or_default() += 1;
    }
    let ring: Vec<String> = available
        .iter()
        .map(|&idx| group.members[idx].clone())
        .collect();
    reasons.push(format!(
        "group `{}` ({}, {}{}): {}",
        group.name,
        group.origin,
        group.strategy.as_str(),
        match roster {
            Some((_, name)) => format!(", {name}"),
            None => ", no shifts: all members on duty".to_owned(),
        },
        if notes.is_empty() {
            "all members available".to_owned()
        } else {
            notes.join("; ")
        }
    ));
    if !ring.is_empty() {
        reasons.push(format!("ring {}", ring.join(", ")));
    }
    ring
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Plan {
        let source = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../dialplans/example.toml"
        ))
        .expect("example");
        crate::compile("example.toml", &source)
            .expect("the example compiles")
            .plan
    }

    fn chosen(plan: &Plan, target: Target, at: &str) -> Decision {
        let facts = CallFacts {
            dialled: "800840840".into(),
            trunk: Some("provider".into()),
            ..Default::default()
        };
        route_target(
            plan,
            &target,
            &facts,
            at.parse().expect("RFC 3339"),
            &mut StrategyState::default(),
        )
    }

    #[test]
    fn route_target_rings_the_member_on_shift() {
        let plan = example();
        // Monday 2 March 2026, Europe/Rome (UTC+1).
        let morning = chosen(
            &plan,
            Target::Group("salute".into()),
            "2026-03-02T10:00:00+01:00",
        );
        assert_eq!(morning.target, Target::Group("salute".into()));
        assert_eq!(morning.ring, vec!["204".to_owned()]);
        assert_eq!(morning.number.as_deref(), Some("800840840"));
        assert_eq!(morning.reasons[0], "the IVR chose group:salute");
        assert_eq!(morning.no_answer, Some(Target::Voicemail("general".into())));
        let afternoon = chosen(
            &plan,
            Target::Group("salute".into()),
            "2026-03-02T15:00:00+01:00",
        );
        assert_eq!(afternoon.ring, vec!["205".to_owned()]);
    }

    #[test]
    fn route_target_matches_route_after_the_menu_walk() {
        let plan = example();
        let at: Timestamp = "2026-03-02T10:00:00+01:00".parse().expect("RFC 3339");
        let facts = CallFacts {
            dialled: "800840840".into(),
            trunk: Some("provider".into()),
            digits: "2".into(),
            ..Default::default()
        };
        let walked = route(&plan, &facts, at, &mut StrategyState::default());
        let chosen = route_target(
            &plan,
            &Target::Group("spesa".into()),
            &facts,
            at,
            &mut StrategyState::default(),
        );
        assert_eq!(
            (
                &walked.target,
                &walked.ring,
                walked.ring_all,
                &walked.number
            ),
            (
                &chosen.target,
                &chosen.ring,
                chosen.ring_all,
                &chosen.number
            )
        );
    }

    #[test]
    fn route_target_falls_through_no_answer_when_nobody_is_on_shift() {
        let plan = example();
        // Saturday: nobody of `salute` has a shift outside emergency mode.
        let d = chosen(
            &plan,
            Target::Group("salute".into()),
            "2026-03-07T10:00:00+01:00",
        );
        assert_eq!(d.target, Target::Voicemail("general".into()));
        assert!(d.ring.is_empty());
    }

    #[test]
    fn route_target_leaves_voicemail_and_messages_alone() {
        let plan = example();
        for target in [
            Target::Voicemail("general".into()),
            Target::Message("info".into()),
            Target::Hangup("goodbye".into()),
            Target::Menu("main".into()),
        ] {
            let d = chosen(&plan, target.clone(), "2026-03-02T10:00:00+01:00");
            assert_eq!(d.target, target);
            assert!(d.ring.is_empty(), "{target}: {:?}", d.ring);
        }
    }
}
