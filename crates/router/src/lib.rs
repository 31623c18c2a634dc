//! The router: dialplan, validation, shifts, holidays and `route()` with its explanation.
#![forbid(unsafe_code)]

mod compile;
mod diagnostic;
mod duty;
mod plan;
mod render;
mod route;
mod time;

pub use compile::{Compiled, DEFAULT_TIME_ZONE, TOP_LEVEL_KEYS, compile};
pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use plan::{External, HuntGroup, Menu, MenuOption, NumberRule, Plan, Queue, Strategy, Target, VoicemailBox};
pub use time::{easter_sunday, italian_holiday};
pub use duty::{DutyReport, GroupDuty, OnDuty};
pub use route::{CallFacts, Decision, GroupState, MemberState, StrategyState, route};
pub use jiff::Timestamp;
