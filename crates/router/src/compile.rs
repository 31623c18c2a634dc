//! TOML → [`Plan`]: reads the spanned TOML tree, checks every reference and reports every
//! problem at once with file, line and column.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, Diagnostics, Sink, suggest};
use crate::plan::{
    Calendar, EmergencyWindow, External, Holiday, HolidayDate, HuntGroup, Interval, MemberShifts,
    Menu, MenuOption, NumberRule, Plan, PromptRef, Queue, Roster, Strategy, Target, VoicemailBox,
    WeeklyHours,
};
use crate::time::{
    DAY_MINUTES, DAY_NAMES, MinuteRange, ShiftSpec, dates, day_idx, fmt_hhmm, parse_shift,
};

type Span = Range<usize>;
type Value<'i> = Spanned<DeValue<'i>>;

/// Top-level keys the router owns. The switch rejects keys in neither its set nor this one.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "service",
    "numbers",
    "calendars",
    "menus",
    "groups",
    "queues",
    "voicemail",
    "external",
    "emergency",
];

/// The default time zone of a service.
pub const DEFAULT_TIME_ZONE: &str = "Europe/Rome";

/// A plan that passed validation, with the warnings found on the way.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The plan, ready for [`crate::route`].
    pub plan: Plan,
    /// Non-fatal findings, e.g. hours with nobody on duty.
    pub warnings: Vec<Diagnostic>,
    /// Every prompt the plan names, with its position (the same list as
    /// [`Plan::prompt_refs`]).
    pub prompt_refs: Vec<PromptRef>,
}

/// Compiles a dialplan. On failure every error (and warning) is returned at once.
pub fn compile(file_name: &str, source: &str) -> Result<Compiled, Diagnostics> {
    let mut sink = Sink::new(file_name, source);
    let (doc, syntax_errors) = DeTable::parse_recoverable(source);
    if !syntax_errors.is_empty() {
        for error in syntax_errors {
            let span = error.span().unwrap_or(0..0);
            let message = error.message().trim().to_owned();
            sink.error(&span, format!("TOML syntax: {message}"), None);
        }
        return Err(Diagnostics(sink.into_sorted()));
    }
    let plan = Compiler {
        sink: &mut sink,
        names: Names::default(),
        prompt_refs: Vec::new(),
    }
    .run(doc.get_ref());
    if sink.has_errors() {
        return Err(Diagnostics(sink.into_sorted()));
    }
    let warnings = sink.into_sorted();
    // compile() only returns no plan when it reported an error, checked just above.
    let plan = plan.expect("no errors implies a plan");
    Ok(Compiled {
        prompt_refs: plan.prompt_refs.clone(),
        plan,
        warnings,
    })
}

/// Names defined in the file, collected before anything refers to them.
#[derive(Default)]
struct Names {
    menus: BTreeMap<String, Span>,
    groups: BTreeMap<String, Span>,
    queues: BTreeMap<String, Span>,
    voicemail: BTreeMap<String, Span>,
    external: BTreeMap<String, Span>,
    calendars: BTreeMap<String, Span>,
    extensions: BTreeSet<String>,
}

struct Compiler<'a, 's> {
    sink: &'a mut Sink<'s>,
    names: Names,
    prompt_refs: Vec<PromptRef>,
}

/// Entries of a table in file order.
fn entries<'t, 'i>(table: &'t DeTable<'i>) -> Vec<(&'t str, Span, &'t Value<'i>)> {
    let mut out: Vec<_> = table
        .iter()
        .map(|(k, v)| (k.get_ref().as_ref(), k.span(), v))
        .collect();
    out.sort_by_key(|(_, span, _)| span.start);
    out
}

fn get<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Value<'i>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

/// One dated extra shift, with its place in the file.
struct ExtraSpec {
    first: Date,
    last: Date,
    range: MinuteRange,
    label: String,
    span: Span,
}

/// One weekly pattern to compile into [`WeeklyHours`], with its place in the file.
struct WeeklySpec {
    days: u8,
    range: MinuteRange,
    label: String,
    span: Span,
}

impl<'s> Compiler<'_, 's> {
    fn table<'t, 'i>(&mut self, value: &'t Value<'i>, what: &str) -> Option<&'t DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            other => {
                self.sink.error(
                    &value.span(),
                    format!("{what} must be a table, not {}", other.type_str()),
                    None,
                );
                None
            }
        }
    }

    fn check_keys(&mut self, table: &DeTable<'_>, what: &str, allowed: &[&str]) {
        for (key, span, _) in entries(table) {
            if !allowed.contains(&key) {
                self.sink.error(
                    &span,
                    format!("unknown key `{key}` in {what}"),
                    suggest(key, allowed.iter().copied()),
                );
            }
        }
    }

    /// Records a prompt reference (file name without extension, so no path separators).
    fn prompt_ref(&mut self, name: &str, span: &Span, what: &str) {
        if name.is_empty() || name.contains(['/', '\\']) {
            self.sink.error(
                span,
                format!("`{name}` in {what} is not a prompt name"),
                Some(
                    "name a file of the prompts directory without its extension, e.g. \"welcome\""
                        .to_owned(),
                ),
            );
            return;
        }
        let (line, col) = self.sink.line_col(span.start);
        self.prompt_refs.push(PromptRef {
            name: name.to_owned(),
            line,
            col,
            what: what.to_owned(),
        });
    }

    /// An optional prompt-name string, recorded as a reference.
    fn opt_prompt(&mut self, table: &DeTable<'_>, key: &str, what: &str) -> Option<String> {
        let (name, span) = self.opt_string(table, key, what)?;
        self.prompt_ref(&name, &span, &format!("`{key}` of {what}"));
        Some(name)
    }

    fn string(&mut self, value: &Value<'_>, what: &str) -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                self.sink.error(
                    &value.span(),
                    format!("{what} must be a string, not {}", other.type_str()),
                    None,
                );
                None
            }
        }
    }

    fn opt_string(&mut self, table: &DeTable<'_>, key: &str, what: &str) -> Option<(String, Span)> {
        let value = get(table, key)?;
        self.string(value, &format!("`{key}` in {what}"))
            .map(|s| (s, value.span()))
    }

    fn uint(&mut self, table: &DeTable<'_>, key: &str, what: &str, default: u32, max: u32) -> u32 {
        let Some(value) = get(table, key) else {
            return default;
        };
        let parsed = value
            .get_ref()
            .as_integer()
            .and_then(|i| i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok());
        match parsed {
            Some(n) if (0..=i64::from(max)).contains(&n) => u32::try_from(n).unwrap_or(default),
            _ => {
                self.sink.error(
                    &value.span(),
                    format!("`{key}` in {what} must be a whole number from 0 to {max}"),
                    Some(format!("e.g. {key} = {default}")),
                );
                default
            }
        }
    }

    fn boolean(&mut self, table: &DeTable<'_>, key: &str, what: &str, default: bool) -> bool {
        let Some(value) = get(table, key) else {
            return default;
        };
        match value.get_ref().as_bool() {
            Some(b) => b,
            None => {
                self.sink.error(
                    &value.span(),
                    format!("`{key}` in {what} must be true or false"),
                    None,
                );
                default
            }
        }
    }

    /// A string or an array of strings.
    fn strings<'t>(&mut self, value: &'t Value<'_>, what: &str) -> Vec<(&'t str, Span)> {
        match value.get_ref() {
            DeValue::String(s) => vec![(s.as_ref(), value.span())],
            DeValue::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item.get_ref() {
                        DeValue::String(s) => out.push((s.as_ref(), item.span())),
                        other => {
                            self.sink.error(
                                &item.span(),
                                format!("{what} must be a string, not {}", other.type_str()),
                                None,
                            );
                        }
                    }
                }
                out
            }
            other => {
                self.sink.error(
                    &value.span(),
                    format!("{what} must be a list of strings, not {}", other.type_str()),
                    None,
                );
                Vec::new()
            }
        }
    }

    fn target(&mut self, text: &str, span: &Span, what: &str) -> Option<Target> {
        let Some((kind, name)) = text.split_once(':') else {
            self.sink.error(
                span,
                format!("`{text}` in {what} is not a target"),
                Some(format!(
                    "write kind:name, e.g. group:salute; kinds are {}",
                    Target::KINDS.join(", ")
                )),
            );
            return None;
        };
        let (kind, name) = (kind.trim(), name.trim());
        let known: Option<(&BTreeMap<String, Span>, &str)> = match kind {
            "menu" => Some((&self.names.menus, "menus")),
            "group" => Some((&self.names.groups, "groups")),
            "queue" => Some((&self.names.queues, "queues")),
            "voicemail" => Some((&self.names.voicemail, "voicemail")),
            "external" => Some((&self.names.external, "external")),
            _ => None,
        };
        if let Some((names, table)) = known
            && !names.contains_key(name)
        {
            let hint = suggest(name, names.keys().map(String::as_str))
                .map(|h| format!("{h} (or define [{table}.{name}])"))
                .or_else(|| Some(format!("define it in [{table}.{name}]")));
            self.sink
                .error(span, format!("unknown {kind} `{name}` in {what}"), hint);
            return None;
        }
        let name = name.to_owned();
        Some(match kind {
            "menu" => Target::Menu(name),
            "group" => Target::Group(name),
            "queue" => Target::Queue(name),
            "voicemail" => Target::Voicemail(name),
            "external" => Target::External(name),
            "extension" => {
                if !self.names.extensions.contains(&name) {
                    let hint = suggest(&name, self.names.extensions.iter().map(String::as_str))
                        .or_else(|| {
                            Some(format!(
                                "declare it in an [[extensions]] entry with number = \"{name}\""
                            ))
                        });
                    self.sink
                        .error(span, format!("unknown extension `{name}` in {what}"), hint);
                    return None;
                }
                Target::Extension(name)
            }
            "message" | "hangup" => {
                if name.is_empty() || name.contains(['/', '\\', ' ']) {
                    self.sink.error(
                        span,
                        format!("`{text}` in {what} needs a prompt name"),
                        Some(format!("e.g. {kind}:goodbye")),
                    );
                    return None;
                }
                self.prompt_ref(&name, span, what);
                if kind == "message" {
                    Target::Message(name)
                } else {
                    Target::Hangup(name)
                }
            }
            other => {
                let hint = suggest(other, Target::KINDS.iter().copied());
                self.sink.error(
                    span,
                    format!("unknown target kind `{other}` in {what}"),
                    hint,
                );
                return None;
            }
        })
    }

    fn opt_target(&mut self, table: &DeTable<'_>, key: &str, what: &str) -> Option<Target> {
        let (text, span) = self.opt_string(table, key, what)?;
        self.target(&text, &span, &format!("`{key}` of {what}"))
    }

    fn time_zone(&mut self, name: &str, span: &Span) -> Option<TimeZone> {
        match TimeZone::get(name) {
            Ok(tz) => Some(tz),
            Err(_) => {
                let db = jiff::tz::db();
                let names: Vec<String> = db.available().map(|n| n.as_str().to_owned()).collect();
                let hint = crate::diagnostic::closest(name, names.iter().map(String::as_str))
                    .map(|best| {
                        format!("did you mean `{best}`? (zones are IANA names; never silently UTC)")
                    })
                    .or_else(|| Some("use an IANA zone name such as Europe/Rome".to_owned()));
                self.sink
                    .error(span, format!("unknown time zone `{name}`"), hint);
                None
            }
        }
    }

    fn weekly_specs(&mut self, value: &Value<'_>, what: &str) -> Vec<WeeklySpec> {
        let mut out = Vec::new();
        for (text, span) in self.strings(value, what) {
            match parse_shift(text) {
                Ok(ShiftSpec::Weekly { days, range }) => out.push(WeeklySpec {
                    days,
                    range,
                    label: text.trim().to_owned(),
                    span,
                }),
                Ok(_) => self.sink.error(
                    &span,
                    format!("`{text}` in {what} is not a weekly pattern"),
                    Some(
                        "hours are weekly, e.g. `Mon-Fri 09:00-18:00`; closures go in `holidays`"
                            .to_owned(),
                    ),
                ),
                Err((message, hint)) => {
                    self.sink.error(&span, format!("{message} in {what}"), hint)
                }
            }
        }
        out
    }

    fn weekly_hours(&self, specs: &[WeeklySpec]) -> WeeklyHours {
        let mut hours = WeeklyHours::default();
        for spec in specs {
            let label: Arc<str> = spec.label.as_str().into();
            let origin: Arc<str> = self.sink.origin(&spec.span).into();
            for day in 0..7 {
                if spec.days & (1 << day) != 0 {
                    hours.by_start_day[day].push(Interval {
                        range: spec.range,
                        label: label.clone(),
                        origin: origin.clone(),
                    });
                }
            }
        }
        hours
    }

    fn run(mut self, doc: &DeTable<'_>) -> Option<Plan> {
        // Pass 1: split the top level, learn every name so references can point forward.
        let mut own: HashMap<&str, (&Value<'_>, Span)> = HashMap::new();
        for (key, span, value) in entries(doc) {
            if TOP_LEVEL_KEYS.contains(&key) {
                own.insert(key, (value, span));
            } else if key == "extensions" {
                self.read_extensions(value);
            }
            // Other keys (`switch`, `trunks`) are the switch's, and so is rejecting keys in
            // neither set: it reports them once, with both lists.
            let _ = span;
        }
        let mut tables: HashMap<&str, Vec<(String, Span, &Value<'_>)>> = HashMap::new();
        for key in [
            "menus",
            "groups",
            "queues",
            "voicemail",
            "external",
            "calendars",
        ] {
            let Some((value, _)) = own.get(key) else {
                continue;
            };
            let Some(table) = self.table(value, &format!("[{key}]")) else {
                continue;
            };
            let items: Vec<(String, Span, &Value<'_>)> = entries(table)
                .into_iter()
                .map(|(k, s, v)| (k.to_owned(), s, v))
                .collect();
            let names: BTreeMap<String, Span> = items
                .iter()
                .map(|(k, s, _)| (k.clone(), s.clone()))
                .collect();
            match key {
                "menus" => self.names.menus = names,
                "groups" => self.names.groups = names,
                "queues" => self.names.queues = names,
                "voicemail" => self.names.voicemail = names,
                "external" => self.names.external = names,
                _ => self.names.calendars = names,
            }
            tables.insert(key, items);
        }

        // [service]
        let mut service_name = None;
        let mut tz_name = DEFAULT_TIME_ZONE.to_owned();
        let mut tz_span = 0..0;
        let mut default_calendar: Option<String> = None;
        let mut direct_dial = true;
        if let Some((value, _)) = own.get("service")
            && let Some(table) = self.table(value, "[service]")
        {
            self.check_keys(
                table,
                "[service]",
                &["name", "timezone", "calendar", "direct_dial"],
            );
            service_name = self.opt_string(table, "name", "[service]").map(|(s, _)| s);
            if let Some((name, span)) = self.opt_string(table, "timezone", "[service]") {
                tz_name = name;
                tz_span = span;
            }
            if let Some((name, span)) = self.opt_string(table, "calendar", "[service]") {
                if self.names.calendars.contains_key(&name) {
                    default_calendar = Some(name);
                } else {
                    let hint = suggest(&name, self.names.calendars.keys().map(String::as_str))
                        .or_else(|| Some(format!("define it in [calendars.{name}]")));
                    self.sink.error(
                        &span,
                        format!("unknown calendar `{name}` in [service]"),
                        hint,
                    );
                }
            }
            direct_dial = self.boolean(table, "direct_dial", "[service]", true);
        }
        let tz = self.time_zone(&tz_name, &tz_span);
        if default_calendar.is_none() && self.names.calendars.len() == 1 {
            default_calendar = self.names.calendars.keys().next().cloned();
        }

        // [calendars.NAME]
        let mut calendars = BTreeMap::new();
        for (name, span, value) in tables.remove("calendars").unwrap_or_default() {
            if let Some(calendar) = self.calendar(&name, &span, value, tz.as_ref(), &tz_name) {
                calendars.insert(name, calendar);
            }
        }

        // [[numbers]]
        let mut numbers: Vec<NumberRule> = Vec::new();
        let mut number_spans: Vec<Span> = Vec::new();
        if let Some((value, span)) = own.get("numbers") {
            match value.get_ref() {
                DeValue::Array(items) => {
                    for item in items {
                        if let Some(rule) = self.number(item, default_calendar.as_deref(), &numbers)
                        {
                            numbers.push(rule);
                            number_spans.push(item.span());
                        }
                    }
                }
                _ => self.sink.error(
                    span,
                    "`numbers` must be an array of tables: write [[numbers]]",
                    None,
                ),
            }
        }

        // [menus.NAME]
        let mut menus = BTreeMap::new();
        for (name, span, value) in tables.remove("menus").unwrap_or_default() {
            if let Some(menu) = self.menu(&name, &span, value) {
                menus.insert(name, menu);
            }
        }

        // [groups.NAME]
        let mut groups = BTreeMap::new();
        let mut group_spans = BTreeMap::new();
        for (name, span, value) in tables.remove("groups").unwrap_or_default() {
            if let Some(group) = self.group(&name, &span, value, default_calendar.as_deref()) {
                group_spans.insert(name.clone(), span);
                groups.insert(name, group);
            }
        }

        // [queues.NAME]
        let mut queues = BTreeMap::new();
        for (name, span, value) in tables.remove("queues").unwrap_or_default() {
            let what = format!("[queues.{name}]");
            let Some(table) = self.table(value, &what) else {
                continue;
            };
            self.check_keys(table, &what, &["group", "prompt", "max_wait", "overflow"]);
            let group = match self.opt_string(table, "group", &what) {
                Some((group, gspan)) => {
                    if !self.names.groups.contains_key(&group) {
                        let hint = suggest(&group, self.names.groups.keys().map(String::as_str));
                        self.sink
                            .error(&gspan, format!("unknown group `{group}` in {what}"), hint);
                    }
                    group
                }
                None => {
                    self.sink.error(
                        &span,
                        format!("{what} needs a `group` whose members answer it"),
                        Some("e.g. group = \"spesa\"".to_owned()),
                    );
                    String::new()
                }
            };
            let prompt = self.opt_prompt(table, "prompt", &what);
            let max_wait_secs = self.uint(table, "max_wait", &what, 300, 86_400);
            let overflow = self.opt_target(table, "overflow", &what);
            queues.insert(
                name.clone(),
                Queue {
                    name,
                    group,
                    prompt,
                    max_wait_secs,
                    overflow,
                },
            );
        }

        // [voicemail.NAME]
        let mut voicemail = BTreeMap::new();
        for (name, _, value) in tables.remove("voicemail").unwrap_or_default() {
            let what = format!("[voicemail.{name}]");
            let Some(table) = self.table(value, &what) else {
                continue;
            };
            self.check_keys(table, &what, &["prompt", "max_message"]);
            let prompt = self.opt_prompt(table, "prompt", &what);
            let max_message_secs = self.uint(table, "max_message", &what, 120, 3600);
            voicemail.insert(
                name.clone(),
                VoicemailBox {
                    name,
                    prompt,
                    max_message_secs,
                },
            );
        }

        // [external.NAME]
        let mut external = BTreeMap::new();
        for (name, span, value) in tables.remove("external").unwrap_or_default() {
            let what = format!("[external.{name}]");
            let Some(table) = self.table(value, &what) else {
                continue;
            };
            self.check_keys(table, &what, &["number", "trunk"]);
            let number = self.opt_string(table, "number", &what).map(|(s, _)| s);
            if number.is_none() {
                self.sink
                    .error(&span, format!("{what} needs a `number` to dial"), None);
            }
            let trunk = self.opt_string(table, "trunk", &what).map(|(s, _)| s);
            external.insert(
                name.clone(),
                External {
                    name,
                    number: number.unwrap_or_default(),
                    trunk,
                },
            );
        }

        // [emergency]
        let mut emergency_windows = Vec::new();
        if let Some((value, _)) = own.get("emergency")
            && let Some(table) = self.table(value, "[emergency]")
        {
            self.check_keys(table, "[emergency]", &["windows"]);
            if let Some(windows) = get(table, "windows") {
                for (text, span) in self.strings(windows, "`windows` in [emergency]") {
                    if let Some(tz) = &tz
                        && let Some(window) = self.emergency_window(text, &span, tz)
                    {
                        emergency_windows.push(window);
                    }
                }
            }
        }

        self.check_graph(
            &numbers,
            &number_spans,
            &menus,
            &groups,
            &group_spans,
            &queues,
        );
        self.check_coverage(&groups, &group_spans, &calendars);

        let tz = tz?;
        Some(Plan {
            file: self.sink.file().to_owned(),
            service_name,
            tz,
            tz_name,
            numbers,
            direct_dial,
            extensions: self.names.extensions.clone(),
            menus,
            groups,
            queues,
            voicemail,
            external,
            calendars,
            emergency_windows,
            prompt_refs: {
                let mut refs = std::mem::take(&mut self.prompt_refs);
                refs.sort_by_key(|r| (r.line, r.col));
                refs
            },
        })
    }

    fn read_extensions(&mut self, value: &Value<'_>) {
        // The switch validates this table; we only learn the numbers.
        let DeValue::Array(items) = value.get_ref() else {
            return;
        };
        for item in items {
            if let DeValue::Table(table) = item.get_ref()
                && let Some(DeValue::String(number)) = get(table, "number").map(|v| v.get_ref())
            {
                self.names.extensions.insert(number.to_string());
            }
        }
    }

    fn calendar(
        &mut self,
        name: &str,
        span: &Span,
        value: &Value<'_>,
        service_tz: Option<&TimeZone>,
        service_tz_name: &str,
    ) -> Option<Calendar> {
        let what = format!("[calendars.{name}]");
        let table = self.table(value, &what)?;
        self.check_keys(
            table,
            &what,
            &[
                "timezone",
                "open",
                "emergency_open",
                "national_holidays",
                "holidays",
            ],
        );
        let (tz, tz_name) = match self.opt_string(table, "timezone", &what) {
            Some((tz_name, tz_span)) => (self.time_zone(&tz_name, &tz_span), tz_name),
            None => (service_tz.cloned(), service_tz_name.to_owned()),
        };
        let open = match get(table, "open") {
            Some(v) => {
                let specs = self.weekly_specs(v, &format!("`open` of {what}"));
                self.weekly_hours(&specs)
            }
            None => {
                self.sink.error(
                    span,
                    format!("{what} needs `open` hours"),
                    Some("e.g. open = [\"Mon-Fri 09:00-18:00\"]".to_owned()),
                );
                WeeklyHours::default()
            }
        };
        let emergency_open = get(table, "emergency_open").map(|v| {
            let specs = self.weekly_specs(v, &format!("`emergency_open` of {what}"));
            self.weekly_hours(&specs)
        });
        let national_holidays = match self.opt_string(table, "national_holidays", &what) {
            None => true,
            Some((s, _)) if s == "it" => true,
            Some((s, _)) if s == "none" => false,
            Some((s, sspan)) => {
                self.sink.error(
                    &sspan,
                    format!("unknown national holiday set `{s}` in {what}"),
                    Some("use \"it\" (Italy) or \"none\"".to_owned()),
                );
                true
            }
        };
        let mut holidays = Vec::new();
        if let Some(list) = get(table, "holidays") {
            let hwhat = format!("`holidays` of {what}");
            let items: Vec<&Value<'_>> = match list.get_ref() {
                DeValue::Array(items) => items.iter().collect(),
                _ => {
                    self.sink.error(
                        &list.span(),
                        format!("{hwhat} must be a list of {{ date = ..., name = ... }}"),
                        None,
                    );
                    Vec::new()
                }
            };
            for item in items {
                if let Some(holiday) = self.holiday(item, &hwhat) {
                    holidays.push(holiday);
                }
            }
        }
        Some(Calendar {
            name: name.to_owned(),
            tz: tz?,
            tz_name,
            open,
            emergency_open,
            national_holidays,
            holidays,
        })
    }

    fn holiday(&mut self, item: &Value<'_>, what: &str) -> Option<Holiday> {
        let table = self.table(item, &format!("an entry of {what}"))?;
        self.check_keys(
            table,
            &format!("a holiday of {what}"),
            &["date", "easter", "name"],
        );
        let name = self.opt_string(table, "name", what).map(|(s, _)| s);
        let hint = "write { date = \"06-24\", name = \"...\" } (every year), { date = \"2026-12-24\", name = \"...\" } (once) or { easter = 1, name = \"...\" } (days after Easter Sunday)";
        let when = match (get(table, "date"), get(table, "easter")) {
            (Some(date), None) => {
                let text = self.string(date, "`date`")?;
                if let Ok(d) = text.parse::<Date>() {
                    HolidayDate::Once(d)
                } else if let Some((m, d)) = text.split_once('-')
                    && let (Ok(month), Ok(day)) = (m.parse::<i8>(), d.parse::<i8>())
                    && Date::new(2024, month, day).is_ok()
                {
                    HolidayDate::Yearly { month, day }
                } else {
                    self.sink.error(
                        &date.span(),
                        format!("`{text}` is not a date in {what}"),
                        Some(hint.to_owned()),
                    );
                    return None;
                }
            }
            (None, Some(offset)) => {
                let offset = match offset
                    .get_ref()
                    .as_integer()
                    .and_then(|i| i.as_str().parse::<i16>().ok())
                {
                    Some(n) if (-100..=100).contains(&n) => n,
                    _ => {
                        self.sink.error(
                            &offset.span(),
                            format!("`easter` in {what} must be a day offset from -100 to 100"),
                            Some(hint.to_owned()),
                        );
                        return None;
                    }
                };
                HolidayDate::Easter(offset)
            }
            _ => {
                self.sink.error(
                    &item.span(),
                    format!("a holiday in {what} needs exactly one of `date` or `easter`"),
                    Some(hint.to_owned()),
                );
                return None;
            }
        };
        let name = name.unwrap_or_else(|| "holiday".to_owned());
        Some(Holiday { when, name })
    }

    fn number(
        &mut self,
        item: &Value<'_>,
        default_calendar: Option<&str>,
        earlier: &[NumberRule],
    ) -> Option<NumberRule> {
        let table = self.table(item, "[[numbers]]")?;
        self.check_keys(
            table,
            "[[numbers]]",
            &[
                "number",
                "name",
                "trunk",
                "calendar",
                "open",
                "closed",
                "emergency",
            ],
        );
        let Some((number, nspan)) = self.opt_string(table, "number", "[[numbers]]") else {
            self.sink.error(
                &item.span(),
                "[[numbers]] entry needs a `number`",
                Some("e.g. number = \"800840840\"".to_owned()),
            );
            return None;
        };
        let what = format!("number {number}");
        let name = self.opt_string(table, "name", &what).map(|(s, _)| s);
        let trunk = self.opt_string(table, "trunk", &what).map(|(s, _)| s);
        if earlier
            .iter()
            .any(|n| n.number == number && n.trunk == trunk)
        {
            self.sink.error(
                &nspan,
                format!("number {number} is defined twice"),
                Some("merge the two [[numbers]] entries".to_owned()),
            );
        }
        let calendar = match self.opt_string(table, "calendar", &what) {
            Some((cal, _)) if cal == "always" => None,
            Some((cal, cspan)) => {
                if !self.names.calendars.contains_key(&cal) {
                    let hint = suggest(&cal, self.names.calendars.keys().map(String::as_str))
                        .or_else(|| {
                            Some(format!(
                                "define it in [calendars.{cal}], or write calendar = \"always\""
                            ))
                        });
                    self.sink
                        .error(&cspan, format!("unknown calendar `{cal}` in {what}"), hint);
                }
                Some(cal)
            }
            None => default_calendar.map(str::to_owned),
        };
        let open = self.opt_target(table, "open", &what);
        if get(table, "open").is_none() {
            self.sink.error(
                &nspan,
                format!("{what} needs an `open` target"),
                Some("e.g. open = \"menu:main\"".to_owned()),
            );
        }
        let closed = self.opt_target(table, "closed", &what);
        if calendar.is_some() && get(table, "closed").is_none() {
            self.sink.error(
                &nspan,
                format!(
                    "{what} follows calendar `{}` but has no `closed` target",
                    calendar.as_deref().unwrap_or("")
                ),
                Some("e.g. closed = \"voicemail:general\", or calendar = \"always\"".to_owned()),
            );
        }
        let emergency = self.opt_target(table, "emergency", &what);
        Some(NumberRule {
            number,
            name,
            trunk,
            calendar,
            open: open?,
            closed,
            emergency,
            origin: self.sink.origin(&nspan),
        })
    }

    fn menu(&mut self, name: &str, span: &Span, value: &Value<'_>) -> Option<Menu> {
        let what = format!("[menus.{name}]");
        let table = self.table(value, &what)?;
        self.check_keys(
            table,
            &what,
            &[
                "prompts",
                "options",
                "timeout",
                "retries",
                "invalid",
                "timeout_prompt",
                "default",
            ],
        );
        let prompts = get(table, "prompts")
            .map(|v| self.strings(v, &format!("`prompts` of {what}")))
            .unwrap_or_default();
        let prompts_what = format!("`prompts` of {what}");
        let prompts = prompts
            .into_iter()
            .map(|(s, span)| {
                self.prompt_ref(s, &span, &prompts_what);
                s.to_owned()
            })
            .collect();
        let timeout_secs = self.uint(table, "timeout", &what, 5, 120);
        let retries = self.uint(table, "retries", &what, 2, 10);
        let invalid_prompt = self.opt_prompt(table, "invalid", &what);
        let timeout_prompt = self.opt_prompt(table, "timeout_prompt", &what);
        let default = self.opt_target(table, "default", &what);
        if get(table, "default").is_none() {
            self.sink.error(
                span,
                format!("{what} has no `default` target for when the retries run out"),
                Some("e.g. default = \"voicemail:general\"".to_owned()),
            );
        }
        let mut options = Vec::new();
        match get(table, "options") {
            None => self.sink.error(
                span,
                format!("{what} has no `options`"),
                Some("add [menus.NAME.options] with 1 = \"group:...\"".to_owned()),
            ),
            Some(value) => {
                let owhat = format!("[menus.{name}.options]");
                if let Some(otable) = self.table(value, &owhat) {
                    for (key, kspan, ovalue) in entries(otable) {
                        let mut chars = key.chars();
                        let digit = match (chars.next(), chars.next()) {
                            (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => c,
                            _ => {
                                self.sink.error(
                                    &kspan,
                                    format!("menu option `{key}` in {owhat} is not one key"),
                                    Some("options are single keys: 0-9, \"*\" or \"#\"".to_owned()),
                                );
                                continue;
                            }
                        };
                        let opt_what = format!("option {digit} of menu `{name}`");
                        let (target, prompt) = match ovalue.get_ref() {
                            DeValue::String(text) => {
                                (self.target(text, &ovalue.span(), &opt_what), None)
                            }
                            DeValue::Table(t) => {
                                self.check_keys(t, &opt_what, &["target", "prompt"]);
                                let prompt = self.opt_prompt(t, "prompt", &opt_what);
                                if get(t, "target").is_none() {
                                    self.sink.error(
                                        &ovalue.span(),
                                        format!("{opt_what} has no `target`"),
                                        None,
                                    );
                                }
                                (self.opt_target(t, "target", &opt_what), prompt)
                            }
                            other => {
                                self.sink.error(&ovalue.span(), format!("{opt_what} must be a target string or {{ prompt, target }}, not {}", other.type_str()), None);
                                (None, None)
                            }
                        };
                        if let Some(target) = target {
                            options.push(MenuOption {
                                digit,
                                prompt,
                                target,
                                origin: self.sink.origin(&kspan),
                            });
                        }
                    }
                }
            }
        }
        Some(Menu {
            name: name.to_owned(),
            prompts,
            options,
            timeout_secs,
            retries,
            invalid_prompt,
            timeout_prompt,
            default: default?,
            origin: self.sink.origin(span),
        })
    }

    fn group(
        &mut self,
        name: &str,
        span: &Span,
        value: &Value<'_>,
        default_calendar: Option<&str>,
    ) -> Option<HuntGroup> {
        let what = format!("[groups.{name}]");
        let table = self.table(value, &what)?;
        self.check_keys(
            table,
            &what,
            &[
                "members",
                "strategy",
                "ring_timeout",
                "timeout",
                "no_answer",
                "calendar",
                "shifts",
                "emergency_shifts",
            ],
        );
        let mut members: Vec<String> = Vec::new();
        match get(table, "members") {
            Some(v) => {
                for (member, mspan) in self.strings(v, &format!("`members` of {what}")) {
                    let member = member.to_owned();
                    if !self.names.extensions.contains(&member) {
                        let hint = suggest(
                            &member,
                            self.names.extensions.iter().map(String::as_str),
                        )
                        .or_else(|| {
                            Some(format!(
                                "declare it in an [[extensions]] entry with number = \"{member}\""
                            ))
                        });
                        self.sink.error(
                            &mspan,
                            format!("unknown extension `{member}` in {what}"),
                            hint,
                        );
                    } else if members.contains(&member) {
                        self.sink.error(
                            &mspan,
                            format!("extension `{member}` is listed twice in {what}"),
                            None,
                        );
                    } else {
                        members.push(member);
                    }
                }
            }
            None => self.sink.error(
                span,
                format!("{what} has no `members`"),
                Some("e.g. members = [\"201\", \"202\"]".to_owned()),
            ),
        }
        let strategy = match self.opt_string(table, "strategy", &what) {
            None => Strategy::Sequential,
            Some((text, sspan)) => Strategy::parse(&text).unwrap_or_else(|| {
                self.sink.error(
                    &sspan,
                    format!("unknown strategy `{text}` in {what}"),
                    suggest(&text, Strategy::NAMES.iter().copied()),
                );
                Strategy::Sequential
            }),
        };
        let ring_timeout_secs = self.uint(table, "ring_timeout", &what, 20, 600);
        let timeout_secs = self.uint(table, "timeout", &what, 60, 3600);
        let no_answer = self.opt_target(table, "no_answer", &what);
        let calendar = match self.opt_string(table, "calendar", &what) {
            Some((cal, cspan)) => {
                if !self.names.calendars.contains_key(&cal) {
                    let hint = suggest(&cal, self.names.calendars.keys().map(String::as_str));
                    self.sink
                        .error(&cspan, format!("unknown calendar `{cal}` in {what}"), hint);
                }
                Some(cal)
            }
            None => default_calendar.map(str::to_owned),
        };
        let shifts = get(table, "shifts").and_then(|v| self.roster(name, "shifts", v, &members));
        let emergency_shifts = get(table, "emergency_shifts")
            .and_then(|v| self.roster(name, "emergency_shifts", v, &members));
        Some(HuntGroup {
            name: name.to_owned(),
            members,
            strategy,
            ring_timeout_secs,
            timeout_secs,
            no_answer,
            calendar,
            shifts,
            emergency_shifts,
            origin: self.sink.origin(span),
        })
    }

    fn roster(
        &mut self,
        group: &str,
        key: &str,
        value: &Value<'_>,
        members: &[String],
    ) -> Option<Roster> {
        let what = format!("[groups.{group}.{key}]");
        let table = self.table(value, &what)?;
        let mut roster = Roster::default();
        for (member, mspan, list) in entries(table) {
            if !members.iter().any(|m| m == member) {
                let hint = if self.names.extensions.contains(member) {
                    Some(format!("add \"{member}\" to `members` of [groups.{group}]"))
                } else {
                    suggest(member, members.iter().map(String::as_str))
                };
                self.sink.error(
                    &mspan,
                    format!("`{member}` in {what} is not a member of group `{group}`"),
                    hint,
                );
                continue;
            }
            let mut shifts = MemberShifts::default();
            let mut weekly: Vec<WeeklySpec> = Vec::new();
            let mut extras: Vec<ExtraSpec> = Vec::new();
            for (text, span) in self.strings(list, &format!("shifts of {member} in {what}")) {
                match parse_shift(text) {
                    Ok(ShiftSpec::Weekly { days, range }) => {
                        weekly.push(WeeklySpec {
                            days,
                            range,
                            label: text.trim().to_owned(),
                            span,
                        });
                    }
                    Ok(ShiftSpec::Extra { first, last, range }) => {
                        extras.push(ExtraSpec {
                            first,
                            last,
                            range,
                            label: text.trim().to_owned(),
                            span: span.clone(),
                        });
                        let label: Arc<str> = text.trim().into();
                        let origin: Arc<str> = self.sink.origin(&span).into();
                        for date in dates(first, last) {
                            shifts.extra.entry(date).or_default().push(Interval {
                                range,
                                label: label.clone(),
                                origin: origin.clone(),
                            });
                        }
                    }
                    Ok(ShiftSpec::Off { first, last, range }) => {
                        for date in dates(first, last) {
                            match range {
                                None => {
                                    shifts.off_days.insert(date);
                                }
                                Some(range) => {
                                    shifts.off_ranges.entry(date).or_default().push(range)
                                }
                            }
                        }
                    }
                    Err((message, hint)) => self.sink.error(
                        &span,
                        format!("{message} (shift of {member} in {what})"),
                        hint,
                    ),
                }
            }
            self.check_overlaps(member, &what, &weekly);
            self.check_extra_overlaps(member, &what, &weekly, &extras, &shifts.off_days);
            shifts.weekly = self.weekly_hours(&weekly);
            roster.members.insert(member.to_owned(), shifts);
        }
        Some(roster)
    }

    /// Two weekly shifts of one member in one roster must not overlap.
    fn check_overlaps(&mut self, member: &str, what: &str, specs: &[WeeklySpec]) {
        const WEEK: u32 = 7 * DAY_MINUTES as u32;
        let mut pieces: Vec<(u32, u32, usize)> = Vec::new();
        for (idx, spec) in specs.iter().enumerate() {
            for day in 0..7u32 {
                if spec.days & (1 << day) == 0 {
                    continue;
                }
                let start = day * u32::from(DAY_MINUTES) + u32::from(spec.range.start);
                let end = day * u32::from(DAY_MINUTES) + u32::from(spec.range.end);
                if end > WEEK {
                    pieces.push((start, WEEK, idx));
                    pieces.push((0, end - WEEK, idx));
                } else {
                    pieces.push((start, end, idx));
                }
            }
        }
        pieces.sort();
        let mut reported: Vec<(usize, usize)> = Vec::new();
        for (i, a) in pieces.iter().enumerate() {
            for b in &pieces[i + 1..] {
                if b.0 >= a.1 {
                    break;
                }
                let pair = (a.2.min(b.2), a.2.max(b.2));
                if reported.contains(&pair) {
                    continue;
                }
                reported.push(pair);
                let (first, second) = (&specs[pair.0], &specs[pair.1]);
                let at = b.0.max(a.0);
                let day = DAY_NAMES[(at / u32::from(DAY_MINUTES)) as usize % 7];
                let minute = (at % u32::from(DAY_MINUTES)) as u16;
                let message = if pair.0 == pair.1 {
                    format!(
                        "shift `{}` of {member} in {what} overlaps itself (at {day} {})",
                        first.label,
                        fmt_hhmm(minute)
                    )
                } else {
                    format!(
                        "shift `{}` of {member} in {what} overlaps `{}` (both on {day} {})",
                        second.label,
                        first.label,
                        fmt_hhmm(minute)
                    )
                };
                self.sink.error(
                    &second.span,
                    message,
                    Some("shorten one of them, or merge them into one range".to_owned()),
                );
            }
        }
    }

    /// A dated extra shift must not overlap another extra shift or a weekly shift of the same
    /// member (unless a whole-day absence cancels that weekly shift).
    fn check_extra_overlaps(
        &mut self,
        member: &str,
        what: &str,
        weekly: &[WeeklySpec],
        extras: &[ExtraSpec],
        off_days: &crate::plan::DateSet,
    ) {
        if extras.is_empty() {
            return;
        }
        let epoch = Date::constant(2000, 1, 1);
        let day_number = |d: Date| i64::from(epoch.until(d).map(|s| s.get_days()).unwrap_or(0));
        let minutes = |d: Date, r: MinuteRange| {
            let base = day_number(d) * i64::from(DAY_MINUTES);
            (base + i64::from(r.start), base + i64::from(r.end))
        };
        // (start, end, date, extra index) of every dated occurrence, sorted by start.
        let mut occurrences: Vec<(i64, i64, Date, usize)> = Vec::new();
        for (idx, extra) in extras.iter().enumerate() {
            for date in dates(extra.first, extra.last) {
                let (start, end) = minutes(date, extra.range);
                occurrences.push((start, end, date, idx));
            }
        }
        occurrences.sort();
        let mut reported: std::collections::HashSet<(usize, usize)> =
            std::collections::HashSet::new();
        for (i, &(start, end, date, idx)) in occurrences.iter().enumerate() {
            for &(other_start, _, _, other_idx) in &occurrences[i + 1..] {
                if other_start >= end {
                    break;
                }
                let pair = (idx.min(other_idx), idx.max(other_idx));
                if reported.insert(pair) {
                    let (a, b) = (&extras[pair.0], &extras[pair.1]);
                    self.sink.error(
                        &b.span,
                        format!(
                            "extra shift `{}` of {member} in {what} overlaps `{}` on {date}",
                            b.label, a.label
                        ),
                        Some("shorten one of them, or merge them into one range".to_owned()),
                    );
                }
            }
            let mut day = date.yesterday().unwrap_or(date);
            for _ in 0..3 {
                if !off_days.contains(&day) {
                    let weekday = day_idx(day.weekday());
                    for (widx, spec) in weekly.iter().enumerate() {
                        if spec.days & (1 << weekday) == 0 {
                            continue;
                        }
                        let (wstart, wend) = minutes(day, spec.range);
                        if wstart < end && start < wend && reported.insert((usize::MAX - widx, idx))
                        {
                            self.sink.error(
                                &extras[idx].span,
                                format!(
                                    "extra shift `{}` of {member} in {what} overlaps the weekly shift `{}` on {date}",
                                    extras[idx].label, spec.label
                                ),
                                Some("move it outside the weekly shift, or add `off DATE` for that day".to_owned()),
                            );
                        }
                    }
                }
                day = day.tomorrow().unwrap_or(day);
            }
        }
    }

    fn emergency_window(
        &mut self,
        text: &str,
        span: &Span,
        tz: &TimeZone,
    ) -> Option<EmergencyWindow> {
        let hint = || {
            Some(
                "write \"2026-03-01 08:00..2026-03-08 20:00\" (local time of the service)"
                    .to_owned(),
            )
        };
        let Some((a, b)) = text.split_once("..") else {
            self.sink
                .error(span, format!("`{text}` is not an emergency window"), hint());
            return None;
        };
        let parse = |s: &str| {
            s.trim()
                .replacen(' ', "T", 1)
                .parse::<jiff::civil::DateTime>()
                .ok()
        };
        let (Some(start), Some(end)) = (parse(a), parse(b)) else {
            self.sink
                .error(span, format!("`{text}` is not an emergency window"), hint());
            return None;
        };
        if end <= start {
            self.sink.error(
                span,
                format!("inverted emergency window `{text}`: it ends before it starts"),
                hint(),
            );
            return None;
        }
        let start = tz.to_ambiguous_timestamp(start).compatible().ok()?;
        let end = tz.to_ambiguous_timestamp(end).compatible().ok()?;
        Some(EmergencyWindow {
            start,
            end,
            label: text.to_owned(),
            origin: self.sink.origin(span),
        })
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one call site; the parts of the plan being checked"
    )]
    fn check_graph(
        &mut self,
        numbers: &[NumberRule],
        number_spans: &[Span],
        menus: &BTreeMap<String, Menu>,
        groups: &BTreeMap<String, HuntGroup>,
        group_spans: &BTreeMap<String, Span>,
        queues: &BTreeMap<String, Queue>,
    ) {
        let _ = number_spans;
        // Reachable menus: from every number, overflow and no-answer target, through menus.
        let mut roots: Vec<&Target> = Vec::new();
        for n in numbers {
            roots.push(&n.open);
            roots.extend(n.closed.iter());
            roots.extend(n.emergency.iter());
        }
        roots.extend(groups.values().filter_map(|g| g.no_answer.as_ref()));
        roots.extend(queues.values().filter_map(|q| q.overflow.as_ref()));
        let mut reached: BTreeSet<&str> = BTreeSet::new();
        let mut stack: Vec<&str> = roots
            .iter()
            .filter_map(|t| {
                if let Target::Menu(m) = t {
                    Some(m.as_str())
                } else {
                    None
                }
            })
            .collect();
        while let Some(name) = stack.pop() {
            if !reached.insert(name) {
                continue;
            }
            if let Some(menu) = menus.get(name) {
                for t in menu
                    .options
                    .iter()
                    .map(|o| &o.target)
                    .chain(std::iter::once(&menu.default))
                {
                    if let Target::Menu(next) = t {
                        stack.push(next);
                    }
                }
            }
        }
        for name in menus.keys() {
            if !reached.contains(name.as_str()) {
                let span = self.names.menus.get(name).cloned().unwrap_or(0..0);
                self.sink.error(
                    &span,
                    format!(
                        "menu `{name}` is unreachable: no number, menu, group or queue leads to it"
                    ),
                    Some(format!(
                        "point an option or a number at menu:{name}, or delete it"
                    )),
                );
            }
        }
        // Menu loops with no exit: a menu exits if some option or its default leaves the menus,
        // or leads to a menu that exits.
        let mut exits: BTreeSet<&str> = BTreeSet::new();
        loop {
            let before = exits.len();
            for (name, menu) in menus {
                let leaves = menu
                    .options
                    .iter()
                    .map(|o| &o.target)
                    .chain(std::iter::once(&menu.default))
                    .any(|t| match t {
                        Target::Menu(next) => {
                            exits.contains(next.as_str()) || !menus.contains_key(next)
                        }
                        _ => true,
                    });
                if leaves {
                    exits.insert(name);
                }
            }
            if exits.len() == before {
                break;
            }
        }
        for name in menus.keys() {
            if !exits.contains(name.as_str()) {
                let span = self.names.menus.get(name).cloned().unwrap_or(0..0);
                self.sink.error(
                    &span,
                    format!("menu `{name}` is part of a loop with no exit: every option and the default lead only to menus"),
                    Some("give one of these menus an option or a default that is not a menu (a group, voicemail, hangup...)".to_owned()),
                );
            }
        }
        // Overflow loops: no_answer / overflow chains through groups and queues must end.
        for (name, group) in groups {
            let mut chain = vec![format!("group:{name}")];
            let mut next = group.no_answer.clone();
            while let Some(target) = next {
                let label = target.to_string();
                if chain.contains(&label) {
                    // Report each loop once: from the group with the smallest name in it.
                    let loop_start = chain.iter().position(|l| *l == label).unwrap_or(0);
                    let smallest = chain[loop_start..]
                        .iter()
                        .filter_map(|l| l.strip_prefix("group:"))
                        .min();
                    if chain[0] != label || smallest != Some(name.as_str()) {
                        break;
                    }
                    chain.push(label);
                    let span = group_spans.get(name).cloned().unwrap_or(0..0);
                    self.sink.error(
                        &span,
                        format!("overflow loop with no exit: {}", chain.join(" → ")),
                        Some("end the chain at a voicemail box, an external number, an extension or hangup".to_owned()),
                    );
                    break;
                }
                chain.push(label);
                next = match &target {
                    Target::Group(g) => groups.get(g).and_then(|g| g.no_answer.clone()),
                    Target::Queue(q) => queues.get(q).and_then(|q| q.overflow.clone()),
                    _ => None,
                };
            }
        }
    }

    /// Warnings: weekly hours in which a group with a roster has nobody on duty although its
    /// calendar is open (normal roster vs `open`, emergency roster vs `emergency_open`).
    fn check_coverage(
        &mut self,
        groups: &BTreeMap<String, HuntGroup>,
        group_spans: &BTreeMap<String, Span>,
        calendars: &BTreeMap<String, Calendar>,
    ) {
        const WEEK: usize = 7 * DAY_MINUTES as usize;
        fn paint(hours: &WeeklyHours, minutes: &mut [bool]) {
            for (day, intervals) in hours.by_start_day.iter().enumerate() {
                for interval in intervals {
                    let start = day * DAY_MINUTES as usize + interval.range.start as usize;
                    let end = day * DAY_MINUTES as usize + interval.range.end as usize;
                    if end > WEEK {
                        minutes[start..].fill(true);
                        minutes[..end - WEEK].fill(true);
                    } else {
                        minutes[start..end].fill(true);
                    }
                }
            }
        }
        for (name, group) in groups {
            let Some(calendar) = group.calendar.as_ref().and_then(|c| calendars.get(c)) else {
                continue;
            };
            let span = group_spans.get(name).cloned().unwrap_or(0..0);
            for (roster, hours, label) in [
                (group.shifts.as_ref(), Some(&calendar.open), "open"),
                (
                    group.emergency_shifts.as_ref(),
                    calendar.emergency_open.as_ref().or(Some(&calendar.open)),
                    "open in emergency mode",
                ),
            ] {
                let (Some(roster), Some(hours)) = (roster, hours) else {
                    continue;
                };
                let mut open = vec![false; WEEK];
                paint(hours, &mut open);
                let mut covered = vec![false; WEEK];
                for member in group.members.iter() {
                    if let Some(shifts) = roster.members.get(member) {
                        paint(&shifts.weekly, &mut covered);
                    }
                }
                let mut gaps: Vec<String> = Vec::new();
                let mut m = 0;
                while m < WEEK {
                    if open[m] && !covered[m] {
                        let start = m;
                        while m < WEEK
                            && open[m]
                            && !covered[m]
                            && (m == start || m % DAY_MINUTES as usize != 0)
                        {
                            m += 1;
                        }
                        let day = DAY_NAMES[start / DAY_MINUTES as usize];
                        let from = fmt_hhmm((start % DAY_MINUTES as usize) as u16);
                        let to_minute = m - (start / DAY_MINUTES as usize) * DAY_MINUTES as usize;
                        gaps.push(format!("{day} {from}-{}", fmt_hhmm(to_minute as u16)));
                    } else {
                        m += 1;
                    }
                }
                if !gaps.is_empty() {
                    let roster_name = if label == "open" {
                        "shifts"
                    } else {
                        "emergency_shifts"
                    };
                    let shown: Vec<&str> = gaps.iter().take(14).map(String::as_str).collect();
                    let more = if gaps.len() > 14 {
                        format!(" and {} more", gaps.len() - 14)
                    } else {
                        String::new()
                    };
                    self.sink.warning(
                        &span,
                        format!(
                            "group `{name}` has nobody on duty ({roster_name}) while calendar `{}` is {label}: {}{more}",
                            calendar.name,
                            shown.join(", ")
                        ),
                        Some("add shifts for these hours, or make sure `no_answer` covers them".to_owned()),
                    );
                }
                for member in &group.members {
                    if !roster.members.contains_key(member) {
                        self.sink.warning(
                            &span,
                            format!("member {member} of group `{name}` has no {roster_name_plain} and is never rung while they apply", roster_name_plain = if label == "open" { "shifts" } else { "emergency shifts" }),
                            Some(format!("add \"{member}\" = [\"Mon-Fri 09:00-18:00\"] or remove it from the group")),
                        );
                    }
                }
            }
        }
    }
}
