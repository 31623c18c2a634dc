//! The IVR: a per-call, sans-IO interpreter of the router's voice menus (issue 5).
//!
//! One [`Ivr`] runs on one answered call. It reads the menus of a compiled [`router::Plan`]
//! ([`router::Plan::menu`]), takes the caller's key presses and the end of each playback as
//! [`IvrInput`]s, and answers with [`IvrAction`]s: play these prompts, stop playing, transfer
//! the call to a target, hang up after a prompt, and [`IvrEvent`]s for the call's ticket.
//!
//! **Architecture invariant:** the IVR touches neither media nor SIP, does no I/O, reads no
//! clock (every method takes `now`) and uses no randomness. The same inputs at the same
//! instants always give the same actions, so tests drive it in virtual time.
//!
//! **API boundary:** [`Ivr`] ([`Ivr::new`], [`Ivr::handle`], [`Ivr::poll_action`],
//! [`Ivr::poll_timeout`], [`Ivr::handle_timeout`], [`Ivr::is_ended`], [`Ivr::current_menu`]),
//! [`IvrConfig`],
//! [`IvrInput`], [`IvrAction`], [`IvrEvent`] / [`IvrEventKind`] and [`IvrError`].
//!
//! # The run loop
//!
//! The quinn/str0m shape, like every Centralino machine: after [`Ivr::new`] and after every
//! [`Ivr::handle`] or [`Ivr::handle_timeout`], drain [`Ivr::poll_action`] until `None`, then
//! sleep until [`Ivr::poll_timeout`]. `poll_timeout` is `Some` for as long as the IVR runs and
//! `None` once it has emitted its last action ([`IvrAction::Transfer`] or
//! [`IvrAction::Hangup`]); after that every input is ignored.
//!
//! ```
//! # use std::{sync::Arc, time::{Duration, Instant}};
//! # use ivr::{Ivr, IvrAction, IvrConfig, IvrInput};
//! # let toml = "[[numbers]]\nnumber = \"800\"\nopen = \"menu:main\"\n[[extensions]]\nnumber = \"201\"\n\
//! #   [menus.main]\nprompts = [\"welcome\"]\ndefault = \"extension:201\"\n[menus.main.options]\n1 = \"extension:201\"\n";
//! # let plan = Arc::new(router::compile("doc.toml", toml).map_err(|d| d.to_string()).unwrap().plan);
//! let start = Instant::now(); // the switch reads the clock, never the IVR
//! let entry = router::Target::Menu("main".into());
//! let mut ivr = Ivr::new(plan, entry, IvrConfig::default(), start)?;
//! assert!(matches!(ivr.poll_action(), Some(IvrAction::Event(_)))); // menu entered
//! assert!(matches!(ivr.poll_action(), Some(IvrAction::Play { .. }))); // welcome
//! assert_eq!(ivr.poll_action(), None);
//! // The prompt ends, the caller presses 1.
//! ivr.handle(IvrInput::PlaybackFinished, start + Duration::from_secs(3));
//! ivr.handle(IvrInput::Digit('1'), start + Duration::from_secs(4));
//! let actions: Vec<IvrAction> = std::iter::from_fn(|| ivr.poll_action()).collect();
//! assert_eq!(
//!     actions.last(),
//!     Some(&IvrAction::Transfer(router::Target::Extension("201".into())))
//! );
//! assert!(ivr.is_ended() && ivr.poll_timeout().is_none());
//! # Ok::<(), ivr::IvrError>(())
//! ```
//!
//! # Behaviour
//!
//! Issue 5 asks that the IVR "plays, collects digits …, retries invalid input, moves through
//! nested menus, then hands the call to the target", and that "a caller who presses nothing is
//! never left in silence or in a loop: after the retries the menu's default target takes the
//! call". In detail:
//!
//! - **Entering a menu** plays one sequence: the menu's `prompts`, then the announcement prompt
//!   of each option that has one, in file order (`MenuOption::prompt` is "the prompt announcing
//!   the option"). Menu playback allows barge-in: a digit during it emits
//!   [`IvrAction::StopPlayback`] and is then acted on at once. A menu with nothing to play
//!   waits for a digit straight away.
//! - **After the playback** ([`IvrInput::PlaybackFinished`]) the IVR waits the menu's
//!   `timeout_secs` for a digit. A `timeout = 0` in the dialplan is waited as 1 s, so that the
//!   caller always has a moment to answer and virtual time always moves forward.
//! - **A valid digit** (an option of the menu) takes its target:
//!   - `menu:NAME`: enter that menu (its failure count starts at zero);
//!   - `message:PROMPT`: play the prompt without barge-in (digits during it are ignored, so an
//!     echoed or repeated key cannot cut the information short), then return to the menu the
//!     message was chosen from and play that menu again from the start;
//!   - `hangup:PROMPT`: [`IvrAction::Hangup`] with that prompt;
//!   - anything else (group, queue, extension, voicemail, external):
//!     [`IvrAction::Transfer`]; the switch takes the call over.
//! - **`*`**, unless an option uses it, replays the current menu from the start (the common
//!   convention for "repeat"); it is not a failure. **`#`**, unless an option uses it, is
//!   ignored (it does not even stop the playback): many callers end their input with `#`.
//!   `A`-`D` (RFC 4733 events 12-15) and any other digit without an option are invalid.
//!   Characters that are not DTMF keys at all are dropped (logged at `debug`).
//! - **An invalid digit** plays the menu's `invalid` prompt (if any) followed by the menu again,
//!   as one barge-in sequence. **A timeout** does the same with `timeout_prompt`.
//! - **Retries:** as in the router (`retries`: "replays after timeout/invalid digit"), a menu is
//!   replayed after each of its first `retries` failures (invalid digits and timeouts count
//!   together); the next failure takes the menu's `default` target, like a valid choice of it,
//!   at once: the failure prompt is not played then, since there is no retry to invite.
//!   `retries = 2` means: the first play, two replays, then the default.
//! - **Loop guard:** every menu play (first entry, replay, retry, return after a message) and
//!   every message counts as a step. Once [`IvrConfig::max_steps`] steps are used, the next one
//!   is not taken: the IVR leaves the menus instead (event [`IvrEventKind::StepLimit`]). It
//!   follows the `default` chain from the menu it was about to play until a target that is not
//!   a menu or a message; failing that, the first such option of any menu reachable from
//!   there; failing that, it hangs up without a prompt. This ends plans whose defaults loop
//!   through messages (which the router's loop check counts as exits) and callers who press
//!   `*` or choose a message forever. So a call makes at most `max_steps` plays.
//! - **The entry** may be any target: `menu:NAME` starts that menu; `message:PROMPT` hangs up
//!   after the prompt (there is no menu to return to, as the router's docs say);
//!   `hangup:PROMPT` likewise; anything else is an immediate [`IvrAction::Transfer`].
//! - **Playback watchdog:** the IVR never waits for [`IvrInput::PlaybackFinished`] for ever. If
//!   it does not come within [`IvrConfig::playback_watchdog`], the IVR emits
//!   [`IvrAction::StopPlayback`] and goes on as if the playback had ended (logged at `warn`:
//!   the switch lost an event or a prompt is far too long).
//! - **Late inputs:** a deadline fires only through [`Ivr::handle_timeout`]; a digit handed in
//!   before that call counts even if its `now` is past the deadline (the caller pressed in
//!   time as far as the switch could tell).
//!
//! # Events for the ticket
//!
//! Each step is an [`IvrAction::Event`], in the order it happened: [`IvrEventKind::MenuEntered`]
//! (first entry, `*` replay or return from a message; retries are not entries),
//! [`IvrEventKind::Digit`] (every key received while the IVR runs, including ignored ones),
//! [`IvrEventKind::Choice`], [`IvrEventKind::Invalid`], [`IvrEventKind::Timeout`],
//! [`IvrEventKind::DefaultTaken`], [`IvrEventKind::Played`] (a `message:` target started) and
//! [`IvrEventKind::StepLimit`].
//!
//! # What the switch does
//!
//! Answer the call, build the `Ivr` with the call's `Arc<Plan>` snapshot and the routed
//! target, then run the loop above. [`IvrAction::Play`] replaces whatever is playing with the
//! prompts in order; when that whole sequence has been sent, feed
//! [`IvrInput::PlaybackFinished`]. The completion of a sequence that was stopped
//! ([`IvrAction::StopPlayback`]) or replaced by a newer `Play` must be dropped, because
//! `PlaybackFinished` always means "the latest `Play` ended". Feed every detected key as
//! [`IvrInput::Digit`], whatever its source (RFC 4733, SIP INFO or in-band); `barge_in` tells
//! the media side whether a key may cut the prompt short (the IVR decides either way, so a
//! digit is fed in both cases). On [`IvrAction::Transfer`] hand the call to the router's
//! target (e.g. ring the group with `router::route`'s ordering); on [`IvrAction::Hangup`] play
//! the prompts to the end, then send BYE. Forward [`IvrAction::Event`]s to the call's ticket.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod machine;

use std::fmt;
use std::time::{Duration, Instant};

pub use machine::Ivr;
pub use router::Target;

/// Settings shared by every IVR call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IvrConfig {
    /// Longest pause between the keys of a multi-digit entry. Reserved: today every menu
    /// option is one key ([`router::MenuOption::digit`]), so each digit is decided at once.
    pub inter_digit_timeout: Duration,
    /// The loop guard: the most menu plays and messages one call may go through before the
    /// IVR leaves the menus (see the crate docs).
    pub max_steps: u32,
    /// How long the IVR waits for [`IvrInput::PlaybackFinished`] before it stops the playback
    /// and goes on by itself, so that a lost event never leaves the caller in silence.
    /// Anything under 1 s is taken as 1 s, so that the deadline is always in the future.
    pub playback_watchdog: Duration,
}

impl Default for IvrConfig {
    fn default() -> Self {
        IvrConfig {
            inter_digit_timeout: Duration::from_secs(3),
            // The example's main menu uses 3 steps when nobody presses anything and 2 per
            // message heard; 32 leaves room for deep menus and curious callers.
            max_steps: 32,
            // Longer than any sensible information message.
            playback_watchdog: Duration::from_secs(300),
        }
    }
}

/// What happens on the call, fed to [`Ivr::handle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IvrInput {
    /// The caller pressed a key (`0`-`9`, `*`, `#`, `A`-`D`), by RFC 4733, SIP INFO or in-band:
    /// the IVR does not care which.
    Digit(char),
    /// The whole sequence of the latest [`IvrAction::Play`] has been played.
    PlaybackFinished,
}

/// What the switch must do, drained from [`Ivr::poll_action`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IvrAction {
    /// Play these prompts, in order, replacing anything playing; `barge_in` says whether a key
    /// may cut them short.
    Play {
        /// Prompt names, played in order.
        prompts: Vec<String>,
        /// Whether a key press stops the playback (menus: yes; messages: no).
        barge_in: bool,
    },
    /// Stop the current playback at once (a key cut it short); do not report its end.
    StopPlayback,
    /// The caller goes to this target (group, extension, queue, voicemail box, external
    /// number): the switch takes over. The IVR's last action.
    Transfer(Target),
    /// Play these prompts (possibly none) to the end, then hang up. The IVR's last action.
    Hangup {
        /// Prompt names, played in order before the BYE.
        prompts: Vec<String>,
    },
    /// A step of the call, for its ticket.
    Event(IvrEvent),
}

/// A step of the call, kept for the ticket: what happened and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IvrEvent {
    /// What happened.
    pub kind: IvrEventKind,
    /// When it happened (the `now` of the input or timeout that caused it).
    pub at: Instant,
}

/// The kinds of [`IvrEvent`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IvrEventKind {
    /// The caller entered (or re-entered) a menu; its prompts start.
    MenuEntered {
        /// The menu's name.
        menu: String,
    },
    /// The caller pressed a key.
    Digit {
        /// The key.
        digit: char,
    },
    /// A key chose an option of a menu.
    Choice {
        /// The menu.
        menu: String,
        /// The key.
        digit: char,
        /// Where the option leads.
        target: Target,
    },
    /// A key that is no option of the menu.
    Invalid {
        /// The menu.
        menu: String,
        /// The key.
        digit: char,
    },
    /// No key within the menu's timeout.
    Timeout {
        /// The menu.
        menu: String,
    },
    /// The retries ran out; the menu's default target takes the call.
    DefaultTaken {
        /// The menu.
        menu: String,
        /// Its default target.
        target: Target,
    },
    /// A `message:` target started playing.
    Played {
        /// The message's prompt.
        prompt: String,
    },
    /// The loop guard ([`IvrConfig::max_steps`]) ended the menus.
    StepLimit {
        /// The menu the IVR was about to play.
        menu: String,
        /// Where the call goes; `None` means a hang-up without a prompt.
        target: Option<Target>,
    },
}

/// Errors from building an [`Ivr`] (local misuse, never the caller's doing).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IvrError {
    /// The entry target names a menu the plan does not have.
    #[error("the plan has no menu `{0}`")]
    UnknownMenu(String),
}

impl fmt::Display for IvrAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IvrAction::Play { prompts, barge_in } => {
                write!(f, "play {}", prompts.join(", "))?;
                if *barge_in {
                    f.write_str(" (barge-in)")?;
                }
                Ok(())
            }
            IvrAction::StopPlayback => f.write_str("stop-playback"),
            IvrAction::Transfer(target) => write!(f, "transfer {target}"),
            IvrAction::Hangup { prompts } if prompts.is_empty() => f.write_str("hangup"),
            IvrAction::Hangup { prompts } => write!(f, "hangup after {}", prompts.join(", ")),
            IvrAction::Event(event) => write!(f, "event {}", event.kind),
        }
    }
}

impl fmt::Display for IvrEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IvrEventKind::MenuEntered { menu } => write!(f, "menu-entered {menu}"),
            IvrEventKind::Digit { digit } => write!(f, "digit {digit}"),
            IvrEventKind::Choice {
                menu,
                digit,
                target,
            } => write!(f, "choice {menu} {digit} -> {target}"),
            IvrEventKind::Invalid { menu, digit } => write!(f, "invalid {menu} {digit}"),
            IvrEventKind::Timeout { menu } => write!(f, "timeout {menu}"),
            IvrEventKind::DefaultTaken { menu, target } => {
                write!(f, "default-taken {menu} -> {target}")
            }
            IvrEventKind::Played { prompt } => write!(f, "played {prompt}"),
            IvrEventKind::StepLimit { menu, target } => match target {
                Some(target) => write!(f, "step-limit {menu} -> {target}"),
                None => write!(f, "step-limit {menu} -> hangup"),
            },
        }
    }
}
