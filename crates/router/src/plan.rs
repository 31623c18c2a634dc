//! The compiled, immutable dialplan ([`Plan`]) and its parts.
//!
//! A `Plan` is built once by [`crate::compile`] (references resolved, shift tables compiled into
//! per-member, per-weekday interval lists plus date exceptions) and then only read. It is
//! `Send + Sync`; the switch shares it behind an `Arc` and swaps in a new one on reload.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::time::{DAY_MINUTES, MinuteRange, day_idx, easter_sunday, italian_holiday};

/// Where a call goes. Renders as `kind:name`, e.g. `group:salute`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// A voice menu (`menu:main`).
    Menu(String),
    /// A hunt group (`group:salute`).
    Group(String),
    /// A waiting queue in front of a group (`queue:spesa`).
    Queue(String),
    /// One extension (`extension:201`).
    Extension(String),
    /// A voicemail box (`voicemail:general`).
    Voicemail(String),
    /// A named external destination reached through a trunk (`external:roma`).
    External(String),
    /// Play a recorded message, then return to the menu that led here (or hang up).
    Message(String),
    /// Play a prompt, then hang up (`hangup:goodbye`).
    Hangup(String),
}

impl Target {
    /// The kind before the colon (`group`).
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Menu(_) => "menu",
            Target::Group(_) => "group",
            Target::Queue(_) => "queue",
            Target::Extension(_) => "extension",
            Target::Voicemail(_) => "voicemail",
            Target::External(_) => "external",
            Target::Message(_) => "message",
            Target::Hangup(_) => "hangup",
        }
    }

    /// The name after the colon (`salute`).
    pub fn name(&self) -> &str {
        match self {
            Target::Menu(n)
            | Target::Group(n)
            | Target::Queue(n)
            | Target::Extension(n)
            | Target::Voicemail(n)
            | Target::External(n)
            | Target::Message(n)
            | Target::Hangup(n) => n,
        }
    }

    /// The target kinds, as written in the dialplan.
    pub const KINDS: &'static [&'static str] = &[
        "menu",
        "group",
        "queue",
        "extension",
        "voicemail",
        "external",
        "message",
        "hangup",
    ];
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.name())
    }
}

impl serde::Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// How a hunt group orders its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Ring every available member at once.
    RingAll,
    /// Ring members one after the other, in the order listed.
    Sequential,
    /// Like sequential, but start after the member who was offered the previous call.
    RoundRobin,
    /// The member whose last call is oldest first (never called = oldest).
    LeastRecent,
    /// The member with the fewest calls first.
    FewestCalls,
}

impl Strategy {
    /// Names as written in the dialplan.
    pub const NAMES: &'static [&'static str] = &[
        "ring-all",
        "sequential",
        "round-robin",
        "least-recent",
        "fewest-calls",
    ];

    pub(crate) fn parse(text: &str) -> Option<Strategy> {
        Some(match text {
            "ring-all" => Strategy::RingAll,
            "sequential" => Strategy::Sequential,
            "round-robin" => Strategy::RoundRobin,
            "least-recent" => Strategy::LeastRecent,
            "fewest-calls" => Strategy::FewestCalls,
            _ => return None,
        })
    }

    /// The name as written in the dialplan.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RingAll => "ring-all",
            Strategy::Sequential => "sequential",
            Strategy::RoundRobin => "round-robin",
            Strategy::LeastRecent => "least-recent",
            Strategy::FewestCalls => "fewest-calls",
        }
    }
}

/// A number the switch answers (`[[numbers]]`).
#[derive(Clone, Debug)]
pub struct NumberRule {
    /// The dialled number, digits as they arrive (`800840840`).
    pub number: String,
    /// A label for explanations.
    pub name: Option<String>,
    /// When set, only calls from this trunk (or internal calls, with no trunk) match.
    pub trunk: Option<String>,
    /// The calendar deciding open/closed; `None` means always open.
    pub calendar: Option<String>,
    /// Where calls go while open.
    pub open: Target,
    /// Where calls go while closed.
    pub closed: Option<Target>,
    /// Where calls go in emergency mode (default: `open`, with the emergency hours).
    pub emergency: Option<Target>,
    pub(crate) origin: String,
}

/// One option of a menu: a digit, what the caller hears, where it leads.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MenuOption {
    /// The DTMF key: 0-9, `*` or `#`.
    pub digit: char,
    /// The prompt announcing the option, if it has its own.
    pub prompt: Option<String>,
    /// Where the option leads.
    pub target: Target,
    #[serde(skip)]
    pub(crate) origin: String,
}

/// A voice menu: what the IVR plays and how it treats digits, timeouts and mistakes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Menu {
    /// The menu's name (`main`).
    pub name: String,
    /// Prompts played in order on entry (`welcome`, `main-menu`).
    pub prompts: Vec<String>,
    /// The options, in file order.
    pub options: Vec<MenuOption>,
    /// Seconds to wait for a digit after the prompts.
    pub timeout_secs: u32,
    /// How many times the menu is replayed after a timeout or an invalid digit.
    pub retries: u32,
    /// Prompt played after an invalid digit.
    pub invalid_prompt: Option<String>,
    /// Prompt played after a timeout.
    pub timeout_prompt: Option<String>,
    /// Where the call goes when the retries are used up.
    pub default: Target,
    #[serde(skip)]
    pub(crate) origin: String,
}

impl Menu {
    /// The option for a digit, if there is one.
    pub fn option(&self, digit: char) -> Option<&MenuOption> {
        self.options.iter().find(|o| o.digit == digit)
    }
}

/// A hunt group of extensions.
#[derive(Clone, Debug)]
pub struct HuntGroup {
    /// The group's name (`salute`).
    pub name: String,
    /// Member extensions, in priority order.
    pub members: Vec<String>,
    /// How members are ordered.
    pub strategy: Strategy,
    /// Seconds each member rings (sequential strategies).
    pub ring_timeout_secs: u32,
    /// Seconds the whole group rings before `no_answer`.
    pub timeout_secs: u32,
    /// Where the call goes when nobody answers (or nobody is available).
    pub no_answer: Option<Target>,
    pub(crate) calendar: Option<String>,
    pub(crate) shifts: Option<Roster>,
    pub(crate) emergency_shifts: Option<Roster>,
    pub(crate) origin: String,
}

impl HuntGroup {
    /// The roster in force: the emergency roster in emergency mode if there is one, else the
    /// normal one; `None` when the group has no shifts (all members always on duty).
    pub(crate) fn roster(&self, emergency: bool) -> Option<(&Roster, &'static str)> {
        match (&self.emergency_shifts, &self.shifts) {
            (Some(roster), _) if emergency => Some((roster, "emergency roster")),
            (_, Some(roster)) => Some((roster, "shifts")),
            _ => None,
        }
    }
}

/// A queue: callers wait with announcements until a member of `group` is free.
#[derive(Clone, Debug)]
pub struct Queue {
    /// The queue's name.
    pub name: String,
    /// The group whose members answer the queue.
    pub group: String,
    /// The waiting announcement.
    pub prompt: Option<String>,
    /// Longest wait before `overflow`, in seconds.
    pub max_wait_secs: u32,
    /// Where callers go after `max_wait_secs`.
    pub overflow: Option<Target>,
}

/// A voicemail box.
#[derive(Clone, Debug)]
pub struct VoicemailBox {
    /// The box's name.
    pub name: String,
    /// The greeting played before the beep.
    pub prompt: Option<String>,
    /// Longest message, in seconds.
    pub max_message_secs: u32,
}

/// An external destination: a number dialled through a trunk (e.g. the second site).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct External {
    /// The name used in targets.
    pub name: String,
    /// The number to dial.
    pub number: String,
    /// The trunk to dial through.
    pub trunk: Option<String>,
}

/// One labelled wall-clock interval of a shift or of office hours.
#[derive(Clone, Debug)]
pub(crate) struct Interval {
    pub(crate) range: MinuteRange,
    /// The text as written (`Mon-Fri 09:00-13:30`), for explanations. Shared by every day
    /// and date the text expands to.
    pub(crate) label: Arc<str>,
    pub(crate) origin: Arc<str>,
}

/// Weekly wall-clock hours, indexed by the weekday on which each interval starts.
#[derive(Clone, Debug, Default)]
pub(crate) struct WeeklyHours {
    pub(crate) by_start_day: [Vec<Interval>; 7],
}

impl WeeklyHours {
    /// The interval covering this wall-clock reading: one starting today, or one that started
    /// yesterday and crosses midnight.
    pub(crate) fn covering(
        &self,
        local: &Local,
        skip_today: bool,
        skip_yesterday: bool,
    ) -> Option<&Interval> {
        if !skip_today
            && let Some(i) = self.by_start_day[local.day_idx]
                .iter()
                .find(|i| i.range.contains(local.minute))
        {
            return Some(i);
        }
        if !skip_yesterday {
            let yesterday = (local.day_idx + 6) % 7;
            return self.by_start_day[yesterday]
                .iter()
                .find(|i| i.range.contains(local.minute + DAY_MINUTES));
        }
        None
    }
}

/// A local wall-clock reading, computed once per decision.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Local {
    pub(crate) date: Date,
    pub(crate) yesterday: Date,
    pub(crate) day_idx: usize,
    pub(crate) minute: u16,
}

impl Local {
    pub(crate) fn new(tz: &TimeZone, at: Timestamp) -> Local {
        let dt = tz.to_datetime(at);
        let date = dt.date();
        // hour and minute are 0..=23 and 0..=59.
        let minute = dt.hour() as u16 * 60 + dt.minute() as u16;
        Local {
            date,
            yesterday: date.yesterday().unwrap_or(date),
            day_idx: day_idx(date.weekday()),
            minute,
        }
    }
}

/// A multiply-rotate hasher for the small keys of the date tables (`Date` hashes as three
/// small integers). SipHash's flooding resistance buys nothing for dates from our own config,
/// and it dominated both compile and route profiles.
#[derive(Default)]
pub(crate) struct DateHasher(u64);

impl Hasher for DateHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_i8(&mut self, n: i8) {
        self.write_u64(n as u64);
    }

    fn write_i16(&mut self, n: i16) {
        self.write_u64(n as u64);
    }

    fn write_i32(&mut self, n: i32) {
        self.write_u64(n as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A map keyed by local date.
pub(crate) type DateMap<V> = HashMap<Date, V, BuildHasherDefault<DateHasher>>;
/// A set of local dates.
pub(crate) type DateSet = HashSet<Date, BuildHasherDefault<DateHasher>>;

/// The shifts of one member in one group (one roster).
#[derive(Clone, Debug, Default)]
pub(crate) struct MemberShifts {
    pub(crate) weekly: WeeklyHours,
    pub(crate) extra: DateMap<Vec<Interval>>,
    /// Whole-day absences: the weekly shifts starting on these dates do not happen.
    pub(crate) off_days: DateSet,
    /// Timed absences, by the date on which they start.
    pub(crate) off_ranges: DateMap<Vec<MinuteRange>>,
}

impl MemberShifts {
    /// The shift this member is on at this reading, if any. Absences win over shifts.
    pub(crate) fn on_shift(&self, local: &Local) -> Option<&Interval> {
        if !self.off_ranges.is_empty() {
            let today = self
                .off_ranges
                .get(&local.date)
                .is_some_and(|rs| rs.iter().any(|r| r.contains(local.minute)));
            let yesterday = self
                .off_ranges
                .get(&local.yesterday)
                .is_some_and(|rs| rs.iter().any(|r| r.contains(local.minute + DAY_MINUTES)));
            if today || yesterday {
                return None;
            }
        }
        if !self.extra.is_empty() {
            if let Some(i) = self
                .extra
                .get(&local.date)
                .and_then(|is| is.iter().find(|i| i.range.contains(local.minute)))
            {
                return Some(i);
            }
            if let Some(i) = self.extra.get(&local.yesterday).and_then(|is| {
                is.iter()
                    .find(|i| i.range.contains(local.minute + DAY_MINUTES))
            }) {
                return Some(i);
            }
        }
        let (skip_today, skip_yesterday) = if self.off_days.is_empty() {
            (false, false)
        } else {
            (
                self.off_days.contains(&local.date),
                self.off_days.contains(&local.yesterday),
            )
        };
        self.weekly.covering(local, skip_today, skip_yesterday)
    }
}

/// The shift table of a group: members without an entry are never on duty.
#[derive(Clone, Debug, Default)]
pub(crate) struct Roster {
    pub(crate) members: BTreeMap<String, MemberShifts>,
}

/// A date rule for holidays in a calendar.
#[derive(Clone, Debug)]
pub(crate) enum HolidayDate {
    /// Every year on this month and day (`06-24`).
    Yearly { month: i8, day: i8 },
    /// Days after Easter Sunday (`easter = 1` is Easter Monday).
    Easter(i16),
    /// Once (`2026-12-24`).
    Once(Date),
}

#[derive(Clone, Debug)]
pub(crate) struct Holiday {
    pub(crate) when: HolidayDate,
    pub(crate) name: String,
}

/// Office hours in a named time zone, with holidays and emergency hours.
#[derive(Clone, Debug)]
pub(crate) struct Calendar {
    pub(crate) name: String,
    pub(crate) tz: TimeZone,
    pub(crate) tz_name: String,
    pub(crate) open: WeeklyHours,
    pub(crate) emergency_open: Option<WeeklyHours>,
    pub(crate) national_holidays: bool,
    pub(crate) holidays: Vec<Holiday>,
}

impl Calendar {
    /// The holiday on a date, configured ones first (so the patron saint keeps its name).
    pub(crate) fn holiday(&self, date: Date) -> Option<String> {
        for holiday in &self.holidays {
            let hit = match holiday.when {
                HolidayDate::Yearly { month, day } => date.month() == month && date.day() == day,
                HolidayDate::Once(d) => d == date,
                HolidayDate::Easter(offset) => {
                    let easter = easter_sunday(date.year());
                    easter
                        .checked_add(jiff::Span::new().days(offset))
                        .is_ok_and(|d| d == date)
                }
            };
            if hit {
                return Some(holiday.name.clone());
            }
        }
        if self.national_holidays {
            return italian_holiday(date).map(|name| format!("{name} (national holiday)"));
        }
        None
    }

    /// Whether the calendar is open at `at`, and why.
    pub(crate) fn status(&self, at: Timestamp, emergency: bool) -> (bool, String) {
        let local = Local::new(&self.tz, at);
        if emergency && let Some(hours) = &self.emergency_open {
            return match hours.covering(&local, false, false) {
                Some(i) => (
                    true,
                    format!(
                        "calendar `{}` is open: emergency hours `{}` ({})",
                        self.name, i.label, i.origin
                    ),
                ),
                None => (
                    false,
                    format!(
                        "calendar `{}` is closed: outside its emergency hours",
                        self.name
                    ),
                ),
            };
        }
        if let Some(name) = self.holiday(local.date) {
            return (
                false,
                format!(
                    "calendar `{}` is closed: {} is a holiday, {}",
                    self.name, local.date, name
                ),
            );
        }
        match self.open.covering(&local, false, false) {
            Some(i) => (
                true,
                format!(
                    "calendar `{}` is open: hours `{}` in {} ({})",
                    self.name, i.label, self.tz_name, i.origin
                ),
            ),
            None => {
                let hours: Vec<&str> = self
                    .open
                    .by_start_day
                    .iter()
                    .flatten()
                    .map(|i| &*i.label)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                (
                    false,
                    format!(
                        "calendar `{}` is closed: outside its hours `{}`",
                        self.name,
                        hours.join("`, `")
                    ),
                )
            }
        }
    }
}

/// A scheduled emergency window (local wall times, resolved to instants at compile time).
#[derive(Clone, Debug)]
pub(crate) struct EmergencyWindow {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    pub(crate) label: String,
    pub(crate) origin: String,
}

/// One place in the dialplan that names a prompt: a menu's `prompts`, `invalid` or
/// `timeout_prompt`, an option's `prompt`, a queue's or voicemail box's `prompt`, or a
/// `message:NAME` / `hangup:NAME` target. The switch loads `NAME` from its prompts directory
/// and reports a missing file here.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PromptRef {
    /// The prompt's name (the file name without extension): `welcome`.
    pub name: String,
    /// 1-based line of the string in the file.
    pub line: usize,
    /// 1-based column of the string (its opening quote), in characters.
    pub col: usize,
    /// Where it is used, for messages: "`prompts` of [menus.main]".
    pub what: String,
}

/// The compiled dialplan: immutable, `Send + Sync`, cheap to share behind an `Arc`.
#[derive(Clone, Debug)]
pub struct Plan {
    pub(crate) file: String,
    pub(crate) service_name: Option<String>,
    pub(crate) tz: TimeZone,
    pub(crate) tz_name: String,
    pub(crate) numbers: Vec<NumberRule>,
    pub(crate) direct_dial: bool,
    pub(crate) extensions: BTreeSet<String>,
    pub(crate) menus: BTreeMap<String, Menu>,
    pub(crate) groups: BTreeMap<String, HuntGroup>,
    pub(crate) queues: BTreeMap<String, Queue>,
    pub(crate) voicemail: BTreeMap<String, VoicemailBox>,
    pub(crate) external: BTreeMap<String, External>,
    pub(crate) calendars: BTreeMap<String, Calendar>,
    pub(crate) emergency_windows: Vec<EmergencyWindow>,
    pub(crate) prompt_refs: Vec<PromptRef>,
}

impl Plan {
    /// Every prompt reference of the plan, in file order (a name may appear several times).
    /// The router's own `hangup:not-in-service` for unknown numbers is not among them.
    pub fn prompt_refs(&self) -> &[PromptRef] {
        &self.prompt_refs
    }

    /// The file the plan was compiled from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The service's name, from `[service] name`.
    pub fn service_name(&self) -> Option<&str> {
        self.service_name.as_deref()
    }

    /// The service's time zone (IANA name).
    pub fn time_zone(&self) -> &str {
        &self.tz_name
    }

    /// The numbers the switch answers, in file order.
    pub fn numbers(&self) -> &[NumberRule] {
        &self.numbers
    }

    /// The primary number: the first `[[numbers]]` entry.
    pub fn primary_number(&self) -> Option<&str> {
        self.numbers.first().map(|n| n.number.as_str())
    }

    /// A menu by name, for the IVR.
    pub fn menu(&self, name: &str) -> Option<&Menu> {
        self.menus.get(name)
    }

    /// A hunt group by name.
    pub fn group(&self, name: &str) -> Option<&HuntGroup> {
        self.groups.get(name)
    }

    /// Group names, sorted.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// A queue by name.
    pub fn queue(&self, name: &str) -> Option<&Queue> {
        self.queues.get(name)
    }

    /// A voicemail box by name.
    pub fn voicemail_box(&self, name: &str) -> Option<&VoicemailBox> {
        self.voicemail.get(name)
    }

    /// Voicemail box names, sorted.
    pub fn voicemail_names(&self) -> impl Iterator<Item = &str> {
        self.voicemail.keys().map(String::as_str)
    }

    /// An external destination by name.
    pub fn external(&self, name: &str) -> Option<&External> {
        self.external.get(name)
    }

    /// Where digit string `digits` leads from menu `menu`: `Ok(target)` of the last digit, or
    /// `Err(digit)` for the first digit that is not an option. Walks nested menus; digits left
    /// after a non-menu target are ignored.
    pub fn follow_digits(&self, menu: &str, digits: &str) -> Result<Target, char> {
        let mut target = Target::Menu(menu.to_owned());
        for digit in digits.chars() {
            let Target::Menu(name) = &target else { break };
            let option = self
                .menus
                .get(name)
                .and_then(|m| m.option(digit))
                .ok_or(digit)?;
            target = option.target.clone();
        }
        Ok(target)
    }

    /// Whether emergency mode is on: the runtime switch or a scheduled window.
    pub fn emergency_at(&self, at: Timestamp, runtime: bool) -> bool {
        runtime
            || self
                .emergency_windows
                .iter()
                .any(|w| w.start <= at && at < w.end)
    }

    pub(crate) fn emergency_window(&self, at: Timestamp) -> Option<&EmergencyWindow> {
        self.emergency_windows
            .iter()
            .find(|w| w.start <= at && at < w.end)
    }
}
