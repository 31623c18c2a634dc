//! The router: dialplan, validation, shifts, holidays and [`route`] with its explanation.
//!
//! Admins describe the whole service in one TOML file (shared with the switch). [`compile`]
//! turns it into an immutable [`Plan`] or reports every problem at once with `file:line:col`
//! and a hint. [`route`] turns a plan, the facts of a call ([`CallFacts`]), an instant and the
//! caller-kept [`StrategyState`] into a [`Decision`]: the target, the ordered extensions to
//! ring, and the reasons (which rule, which shift, which holiday).
//!
//! **Architecture invariant:** the router is pure. It never reads a clock (the instant is an
//! argument), does no I/O (the switch reads the file) and uses no randomness (round-robin and
//! friends keep their memory in [`StrategyState`], which the caller stores and passes back).
//! It knows nothing of SIP.
//!
//! **API boundary:** [`compile`], [`route`], [`Plan`] (with [`Plan::menu`],
//! [`Plan::follow_digits`], [`Plan::on_duty`], [`Plan::next_duty_change`],
//! [`Plan::uncovered_hours`], [`Plan::duty_report`], [`Plan::prompt_refs`]), [`route_target`], [`Decision::to_json`] /
//! [`Decision::explain_text`], [`DutyReport::to_json`] / [`DutyReport::to_text`], and
//! [`TOP_LEVEL_KEYS`].
//!
//! # Why jiff for time zones
//!
//! Shifts and office hours are wall-clock times in a named zone (default `Europe/Rome`), so the
//! router needs the IANA database and explicit handling of DST gaps and folds. `jiff` reads the
//! system tzdata (updated by the OS, no rebuild when Italy or anyone else changes rules) and we
//! enable its bundled copy as a fallback (`tzdb-bundle-always`) so a minimal container still
//! knows `Europe/Rome`. Its API makes gaps and folds explicit (`AmbiguousTimestamp::earlier` /
//! `later` / `compatible`) instead of silently picking one. `chrono-tz` compiles a fixed tzdata
//! snapshot (2025b at the time of writing) into the binary, which goes stale, and chrono's
//! ambiguity handling is less explicit. An unknown zone name is a compile error, never UTC.
//!
//! # Time rules
//!
//! - Every time in the file is local wall time in the service's zone (a calendar may name its
//!   own `timezone`). Precompiled per member: a list of intervals per weekday (minutes after
//!   local midnight, keyed by the day the interval starts) plus date exceptions, so a decision
//!   converts the instant once and does a few comparisons.
//! - `HH:MM-HH:MM` with an end not after the start crosses midnight (`22:00-06:00` ends at
//!   06:00 the next day, also across the year end). `00:00-24:00` is a whole day.
//!   `09:00-09:00` (empty), `Fri-Mon` (inverted days) and inverted date ranges are errors.
//! - **DST rule:** duty and opening follow the *wall-clock reading*. On the spring-forward day
//!   the skipped hour does not exist, so a `02:00-03:00` shift never happens and `22:00-06:00`
//!   lasts 7 hours. On the fall-back day each reading of the repeated hour is judged by its wall
//!   time, so a `02:00-03:00` shift is on duty through both readings (two real hours) and
//!   `22:00-06:00` lasts 9 hours. Scheduled emergency windows resolve ambiguous wall times
//!   "compatibly" (gap → later, fold → earlier).
//! - Holidays are whole local dates. The built-in Italian set: Jan 1, Jan 6, Easter Sunday,
//!   Easter Monday (computed with Gauss's algorithm, never typed in per year), Apr 25, May 1,
//!   Jun 2, Aug 15, Nov 1, Dec 8, Dec 25, Dec 26, and **Oct 4** (St Francis of Assisi and St
//!   Catherine of Siena) **from 2026 on**, since the 2025 law made it a national holiday again
//!   from 2026. The local patron saint's day is configuration (`{ date = "06-24" }`).
//! - Shifts ignore holidays (a holiday closes the *service* through its calendar; the roster
//!   still answers "who would be on duty"). A whole-day absence (`off 2026-03-10`) cancels the
//!   weekly shifts *starting* that day, including the part after midnight; a timed absence
//!   (`off 2026-03-10 09:00-11:00`) removes that wall-clock range. Absences win over shifts.
//!
//! # The dialplan (router's part of the file)
//!
//! The router owns the top-level keys in [`TOP_LEVEL_KEYS`]; it ignores `switch` and `trunks`
//! and reads only `extensions[*].number` (the known extensions). Unknown keys inside its tables
//! are errors with a "did you mean" hint.
//!
//! ```toml
//! [service]
//! name = "Centro Operativo Comunale"
//! timezone = "Europe/Rome"        # default Europe/Rome
//! calendar = "office"             # default calendar of numbers and groups
//! direct_dial = true              # dialling an extension number rings it at any hour
//!
//! [calendars.office]              # optional timezone = "..."
//! open = ["Mon-Fri 09:00-18:00"]  # weekly patterns: Mon-Fri, Sat,Sun, daily
//! national_holidays = "it"        # or "none"
//! holidays = [{ date = "06-24", name = "patrono" },      # every year
//!             { date = "2026-12-24", name = "chiuso" },  # once
//!             { easter = 1, name = "Pasquetta" }]        # days after Easter Sunday
//! emergency_open = ["daily 00:00-24:00"]                 # hours in emergency mode
//!
//! [emergency]
//! windows = ["2026-03-01 08:00..2026-03-08 20:00"]       # scheduled emergency mode
//!
//! [[numbers]]                     # the first one is the primary number
//! number = "800840840"
//! trunk = "provider"              # optional: only from this trunk (or internal calls)
//! calendar = "office"             # default [service] calendar; "always" = no calendar
//! open = "menu:main"
//! closed = "voicemail:general"
//! emergency = "menu:main"         # optional, default = open
//!
//! [menus.main]
//! prompts = ["welcome", "main-menu"]
//! timeout = 6                     # seconds to wait for a digit (default 5)
//! retries = 2                     # replays after timeout/invalid digit (default 2)
//! invalid = "invalid-choice"      # optional prompt; timeout_prompt likewise
//! default = "group:ascolto"       # required: after the retries
//! [menus.main.options]
//! 1 = "message:info"                                      # or
//! 4 = { prompt = "option-salute", target = "group:salute" }
//!
//! [groups.salute]
//! members = ["204", "205"]
//! strategy = "sequential"         # ring-all | sequential | round-robin | least-recent | fewest-calls
//! ring_timeout = 20               # seconds per member
//! timeout = 60                    # seconds for the group
//! no_answer = "voicemail:general" # next group, queue, external (second site), voicemail …
//! calendar = "office"             # the hours the group should be staffed (coverage warnings)
//! [groups.salute.shifts]          # no table = every member always on duty
//! 204 = ["Mon-Fri 09:00-13:30", "2026-03-14 09:00-12:00", "off 2026-08-03..2026-08-14"]
//! [groups.salute.emergency_shifts]
//! 204 = ["daily 22:00-06:00"]
//!
//! [queues.spesa]                  # wait for the group's members, then overflow
//! group = "spesa"
//! prompt = "please-wait"
//! max_wait = 180
//! overflow = "external:roma"
//!
//! [voicemail.general]
//! prompt = "closed"
//!
//! [external.roma]                 # e.g. the second site
//! number = "+390668201"
//! trunk = "provider"
//! ```
//!
//! Targets are `menu:NAME`, `group:NAME`, `queue:NAME`, `extension:NNN`, `voicemail:BOX`,
//! `external:NAME`, `message:PROMPT` (play, then back to the menu that led there, or hang up)
//! and `hangup:PROMPT` (play, then hang up). Prompt names are not checked against files here.
//!
//! # Decisions
//!
//! 1. Emergency mode = the runtime switch in [`CallFacts`] or a scheduled window.
//! 2. The dialled number picks a `[[numbers]]` entry; its calendar picks `open`, `closed` or
//!    `emergency` (in emergency mode a calendar's `emergency_open` hours, if it has them, replace
//!    its office hours and holidays). An extension number
//!    (with `direct_dial`) goes to `extension:NNN` at any hour. Anything else: `hangup:not-in-service`.
//! 3. `digits` walk the menu tree from there; an invalid digit leaves the call in the menu.
//! 4. A group rings members on shift (the emergency roster in emergency mode, if the group has
//!    one), registered and idle, ordered by its strategy. If nobody can take the call, the
//!    decision follows `no_answer` (and queue `overflow`) at once. Validation rejects loops.
//! 5. `route` updates `state` as if the first member rung takes the call (round-robin moves
//!    past them; least-recent and fewest-calls count them). The switch can correct this with
//!    [`StrategyState::record_call`].
//!
//! Deviation from the style guide's `RawDialplan` → `Dialplan` split: the spanned TOML tree
//! (`toml::de::DeTable`) plays the raw role, and `compile` reads it directly into [`Plan`], so
//! that every error is collected (serde stops at the first) with its span.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod compile;
mod diagnostic;
mod duty;
mod plan;
mod render;
mod route;
mod time;

pub use compile::{Compiled, DEFAULT_TIME_ZONE, TOP_LEVEL_KEYS, compile};
pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use duty::{DutyReport, GroupDuty, OnDuty};
pub use jiff::Timestamp;
pub use plan::{
    External, HuntGroup, Menu, MenuOption, NumberRule, Plan, PromptRef, Queue, Strategy, Target,
    VoicemailBox,
};
pub use route::{CallFacts, Decision, GroupState, MemberState, StrategyState, route, route_target};
pub use time::{easter_sunday, italian_holiday};
