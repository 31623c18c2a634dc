//! The per-call state machine. The rules it follows are in the crate docs.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use router::{Plan, Target};
use tracing::{debug, error, warn};

use crate::{IvrAction, IvrConfig, IvrError, IvrEvent, IvrEventKind, IvrInput};

/// One call's IVR: feed it inputs and timeouts, drain its actions (see the crate docs).
#[derive(Debug)]
pub struct Ivr {
    /// The call's snapshot of the dialplan: a reload never changes a call in progress.
    plan: Arc<Plan>,
    config: IvrConfig,
    state: State,
    /// Menu plays and messages started so far; the loop guard compares it with `max_steps`.
    n_steps: u32,
    /// Invalid digits and timeouts in the current menu since it was entered.
    n_failures: u32,
    out: VecDeque<IvrAction>,
}

/// What the IVR waits for. Every state but `Ended` has a deadline, so the caller is never
/// left waiting on an event that may not come.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// A menu's prompts are playing (barge-in): a digit, the playback's end, or the watchdog.
    ExpectMenuPlaybackEnd { menu: String, watchdog: Instant },
    /// The prompts are over: a digit before `deadline`, else a timeout.
    ExpectDigit { menu: String, deadline: Instant },
    /// A message is playing (no barge-in); then back to `return_to`.
    ExpectMessageEnd {
        return_to: String,
        watchdog: Instant,
    },
    /// Transfer or Hangup emitted: nothing more will happen.
    Ended,
}

/// How a menu is (re)played.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Play<'a> {
    /// First entry, `*` or the return from a message: a `MenuEntered` event.
    Enter,
    /// After a failure, with the menu's invalid or timeout prompt first (if it has one).
    Retry(Option<&'a str>),
}

/// Why the caller failed to choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    Invalid,
    Timeout,
}

impl Ivr {
    /// Starts the IVR on a call at `entry` (usually the routed `menu:NAME`) and queues the
    /// first actions. Fails only if `entry` names a menu the plan lacks.
    pub fn new(
        plan: Arc<Plan>,
        entry: Target,
        config: IvrConfig,
        now: Instant,
    ) -> Result<Ivr, IvrError> {
        if let Target::Menu(name) = &entry
            && plan.menu(name).is_none()
        {
            return Err(IvrError::UnknownMenu(name.clone()));
        }
        let mut ivr = Ivr {
            plan,
            config,
            state: State::Ended,
            n_steps: 0,
            n_failures: 0,
            out: VecDeque::new(),
        };
        ivr.go_to(entry, None, now);
        Ok(ivr)
    }

    /// Takes one input (a key or the end of the playback) at `now`.
    pub fn handle(&mut self, input: IvrInput, now: Instant) {
        match input {
            IvrInput::Digit(digit) => self.on_digit(digit, now),
            IvrInput::PlaybackFinished => self.on_playback_end(now),
        }
    }

    /// The next action for the switch, in order; `None` when there is nothing more for now.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<IvrAction> {
        self.out.pop_front()
    }

    /// When [`Ivr::handle_timeout`] must be called next; `None` once the IVR has ended.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::ExpectMenuPlaybackEnd { watchdog, .. }
            | State::ExpectMessageEnd { watchdog, .. } => Some(*watchdog),
            State::ExpectDigit { deadline, .. } => Some(*deadline),
            State::Ended => None,
        }
    }

    /// Fires the deadline if `now` has reached it (a digit timeout or the playback watchdog);
    /// an early call does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &self.state {
            State::ExpectDigit { menu, deadline } if now >= *deadline => {
                let menu = menu.clone();
                self.event(IvrEventKind::Timeout { menu: menu.clone() }, now);
                self.fail(menu, Failure::Timeout, now);
            }
            State::ExpectMenuPlaybackEnd { watchdog, .. }
            | State::ExpectMessageEnd { watchdog, .. }
                if now >= *watchdog =>
            {
                warn!("no end of playback within the watchdog; going on without it");
                self.out.push_back(IvrAction::StopPlayback);
                self.on_playback_end(now);
            }
            _ => {}
        }
    }

    /// Whether the IVR has emitted its last action (a transfer or a hang-up).
    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// The menu the caller is in, if any (for logs and the switch's status pages).
    pub fn current_menu(&self) -> Option<&str> {
        match &self.state {
            State::ExpectMenuPlaybackEnd { menu, .. } | State::ExpectDigit { menu, .. } => {
                Some(menu)
            }
            State::ExpectMessageEnd { return_to, .. } => Some(return_to),
            State::Ended => None,
        }
    }

    fn on_digit(&mut self, digit: char, now: Instant) {
        let digit = digit.to_ascii_uppercase();
        if !matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D') {
            debug!(?digit, "not a DTMF key; dropped");
            return;
        }
        let (menu_name, playing) = match &self.state {
            State::Ended => {
                debug!(%digit, "digit after the IVR ended; ignored");
                return;
            }
            State::ExpectMessageEnd { .. } => {
                self.event(IvrEventKind::Digit { digit }, now);
                debug!(%digit, "digit during a message (no barge-in); ignored");
                return;
            }
            State::ExpectMenuPlaybackEnd { menu, .. } => (menu.clone(), true),
            State::ExpectDigit { menu, .. } => (menu.clone(), false),
        };
        self.event(IvrEventKind::Digit { digit }, now);
        let plan = Arc::clone(&self.plan);
        let Some(menu) = plan.menu(&menu_name) else {
            // The state only ever names menus found in this plan.
            return self.lost_menu(&menu_name);
        };
        if let Some(option) = menu.option(digit) {
            self.stop_if(playing);
            self.event(
                IvrEventKind::Choice {
                    menu: menu_name.clone(),
                    digit,
                    target: option.target.clone(),
                },
                now,
            );
            self.go_to(option.target.clone(), Some(menu_name), now);
        } else if digit == '*' {
            // Common convention: `*` repeats the menu. Not a failure.
            self.stop_if(playing);
            self.play_menu(menu_name, Play::Enter, now);
        } else if digit == '#' {
            // Often pressed to "end" an entry; harmless, so it changes nothing.
            debug!("`#` without an option; ignored");
        } else {
            self.stop_if(playing);
            self.event(
                IvrEventKind::Invalid {
                    menu: menu_name.clone(),
                    digit,
                },
                now,
            );
            self.fail(menu_name, Failure::Invalid, now);
        }
    }

    fn on_playback_end(&mut self, now: Instant) {
        match &self.state {
            State::ExpectMenuPlaybackEnd { menu, .. } => {
                let menu = menu.clone();
                self.wait_for_digit(menu, now);
            }
            State::ExpectMessageEnd { return_to, .. } => {
                let menu = return_to.clone();
                self.play_menu(menu, Play::Enter, now);
            }
            State::ExpectDigit { .. } | State::Ended => {
                debug!("end of a playback the IVR no longer waits for; ignored");
            }
        }
    }

    /// Sends the call to `target`, chosen in menu `from` (`None` for the entry).
    fn go_to(&mut self, target: Target, from: Option<String>, now: Instant) {
        match target {
            Target::Menu(name) => self.play_menu(name, Play::Enter, now),
            Target::Message(prompt) => match from {
                Some(menu) => {
                    if !self.take_step(&menu, now) {
                        return;
                    }
                    self.event(
                        IvrEventKind::Played {
                            prompt: prompt.clone(),
                        },
                        now,
                    );
                    self.out.push_back(IvrAction::Play {
                        prompts: vec![prompt],
                        barge_in: false,
                    });
                    self.state = State::ExpectMessageEnd {
                        return_to: menu,
                        watchdog: now + self.watchdog(),
                    };
                }
                // router docs: a message plays, "then back to the menu that led here, or hang
                // up": with no menu behind it, hang up after it.
                None => {
                    self.event(
                        IvrEventKind::Played {
                            prompt: prompt.clone(),
                        },
                        now,
                    );
                    self.end(IvrAction::Hangup {
                        prompts: vec![prompt],
                    });
                }
            },
            Target::Hangup(prompt) => self.end(IvrAction::Hangup {
                prompts: vec![prompt],
            }),
            other => self.end(IvrAction::Transfer(other)),
        }
    }

    /// Plays menu `name` (entering it, or retrying it after a failure).
    fn play_menu(&mut self, name: String, how: Play<'_>, now: Instant) {
        let plan = Arc::clone(&self.plan);
        let Some(menu) = plan.menu(&name) else {
            return self.lost_menu(&name);
        };
        if !self.take_step(&name, now) {
            return;
        }
        let mut prompts = Vec::new();
        match how {
            Play::Enter => {
                self.n_failures = 0;
                self.event(IvrEventKind::MenuEntered { menu: name.clone() }, now);
            }
            Play::Retry(prompt) => prompts.extend(prompt.map(str::to_owned)),
        }
        prompts.extend(menu.prompts.iter().cloned());
        prompts.extend(menu.options.iter().filter_map(|o| o.prompt.clone()));
        if prompts.is_empty() {
            return self.wait_for_digit(name, now);
        }
        self.out.push_back(IvrAction::Play {
            prompts,
            barge_in: true,
        });
        self.state = State::ExpectMenuPlaybackEnd {
            menu: name,
            watchdog: now + self.watchdog(),
        };
    }

    fn wait_for_digit(&mut self, name: String, now: Instant) {
        let Some(menu) = self.plan.menu(&name) else {
            return self.lost_menu(&name);
        };
        // DEVIATION(router `timeout = 0`): waited as 1 s, so the caller has a moment to press
        // and every wait moves time forward.
        let wait = Duration::from_secs(u64::from(menu.timeout_secs.max(1)));
        self.state = State::ExpectDigit {
            menu: name,
            deadline: now + wait,
        };
    }

    /// An invalid digit or a timeout in menu `name`: retry, or the default once the retries
    /// are used up.
    fn fail(&mut self, name: String, failure: Failure, now: Instant) {
        let plan = Arc::clone(&self.plan);
        let Some(menu) = plan.menu(&name) else {
            return self.lost_menu(&name);
        };
        self.n_failures = self.n_failures.saturating_add(1);
        if self.n_failures > menu.retries {
            self.event(
                IvrEventKind::DefaultTaken {
                    menu: name.clone(),
                    target: menu.default.clone(),
                },
                now,
            );
            return self.go_to(menu.default.clone(), Some(name), now);
        }
        let prompt = match failure {
            Failure::Invalid => menu.invalid_prompt.as_deref(),
            Failure::Timeout => menu.timeout_prompt.as_deref(),
        };
        self.play_menu(name, Play::Retry(prompt), now);
    }

    /// Counts one more play. When the budget is spent, leaves the menus from `menu` instead
    /// and returns `false`.
    fn take_step(&mut self, menu: &str, now: Instant) -> bool {
        if self.n_steps < self.config.max_steps {
            self.n_steps += 1;
            return true;
        }
        let target = escape_target(&self.plan, menu);
        warn!(%menu, ?target, max_steps = self.config.max_steps, "IVR step limit reached; leaving the menus");
        self.event(
            IvrEventKind::StepLimit {
                menu: menu.to_owned(),
                target: target.clone(),
            },
            now,
        );
        match target {
            Some(Target::Hangup(prompt)) => self.end(IvrAction::Hangup {
                prompts: vec![prompt],
            }),
            Some(target) => self.end(IvrAction::Transfer(target)),
            None => self.end(IvrAction::Hangup {
                prompts: Vec::new(),
            }),
        }
        false
    }

    /// A menu the plan lacks. `compile` resolves every menu reference and `new` checks the
    /// entry, so this is a bug; the caller still gets a clean end rather than silence.
    fn lost_menu(&mut self, name: &str) {
        error!(menu = %name, "menu missing from the plan; hanging up");
        self.end(IvrAction::Hangup {
            prompts: Vec::new(),
        });
    }

    fn watchdog(&self) -> Duration {
        self.config.playback_watchdog.max(Duration::from_secs(1))
    }

    fn stop_if(&mut self, playing: bool) {
        if playing {
            self.out.push_back(IvrAction::StopPlayback);
        }
    }

    fn event(&mut self, kind: IvrEventKind, at: Instant) {
        self.out.push_back(IvrAction::Event(IvrEvent { kind, at }));
    }

    fn end(&mut self, action: IvrAction) {
        self.out.push_back(action);
        self.state = State::Ended;
    }
}

/// Where the loop guard sends a call from menu `from`: the first target that is neither a menu
/// nor a message along the `default` chain, else among the options (file order) of the menus
/// reachable from `from` (breadth first); `None` if there is none.
fn escape_target(plan: &Plan, from: &str) -> Option<Target> {
    let leaves = |t: &Target| !matches!(t, Target::Menu(_) | Target::Message(_));
    let mut seen = BTreeSet::new();
    let mut name = from;
    while seen.insert(name) {
        let Some(menu) = plan.menu(name) else { break };
        match &menu.default {
            Target::Menu(next) => name = next,
            t if leaves(t) => return Some(t.clone()),
            _ => break,
        }
    }
    let mut seen = BTreeSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(name) = queue.pop_front() {
        let Some(menu) = plan.menu(name) else {
            continue;
        };
        let targets = menu
            .options
            .iter()
            .map(|o| &o.target)
            .chain(std::iter::once(&menu.default));
        for target in targets {
            match target {
                Target::Menu(next) => queue.extend(seen.insert(next).then_some(next.as_str())),
                t if leaves(t) => return Some(t.clone()),
                _ => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(toml: &str) -> Plan {
        router::compile("test.toml", toml)
            .map_err(|d| d.to_string())
            .expect("test plan compiles")
            .plan
    }

    const LOOP: &str = r#"
[[extensions]]
number = "201"
[[numbers]]
number = "800"
open = "menu:a"
[menus.a]
prompts = ["a"]
default = "menu:b"
[menus.a.options]
1 = "message:info"
[menus.b]
prompts = ["b"]
default = "message:info"
[menus.b.options]
1 = "menu:a"
2 = "menu:c"
[menus.c]
prompts = ["c"]
default = "menu:a"
[menus.c.options]
1 = "message:x"
2 = "hangup:bye"
3 = "extension:201"
"#;

    #[test]
    fn escape_follows_defaults_then_options() {
        let plan = plan(LOOP);
        // a -> b -> message: no exit on the default chain; options breadth first: a's
        // message, then b (a's default), b's options lead to c, whose first exit is hangup.
        assert_eq!(
            escape_target(&plan, "a"),
            Some(Target::Hangup("bye".into()))
        );
        assert_eq!(
            escape_target(&plan, "c"),
            Some(Target::Hangup("bye".into()))
        );
    }

    #[test]
    fn unknown_entry_menu_is_an_error() {
        let plan = Arc::new(plan(LOOP));
        let err = Ivr::new(
            plan,
            Target::Menu("nope".into()),
            IvrConfig::default(),
            Instant::now(),
        )
        .expect_err("no such menu");
        assert_eq!(err, IvrError::UnknownMenu("nope".into()));
        assert_eq!(err.to_string(), "the plan has no menu `nope`");
    }
}
