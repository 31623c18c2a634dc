//! Property tests for issue 5's promise: "a caller who presses nothing is never left in silence
//! or in a loop".
//!
//! For any plan (the example, the test plans, and random menu graphs the router accepts,
//! loops through messages included), any `max_steps`, and any sequence of keys, playback ends
//! and clock moves, then a caller who goes silent:
//! - while the IVR runs, `poll_timeout` is a deadline in the future (time always advances);
//! - the IVR makes at most `max_steps` plays, whatever the caller does;
//! - once silent, it ends within `2 * max_steps + 4` moves of the silent driver, with exactly
//!   one `Transfer` or `Hangup`, the last action, after which nothing more comes;
//! - `StopPlayback` only ever stops a playback that is running, and events carry the current
//!   time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ivr::{Ivr, IvrAction, IvrConfig, IvrInput};
use proptest::prelude::*;
use router::{Plan, Target};

fn compile(name: &str, source: &str) -> Result<Plan, String> {
    router::compile(name, source)
        .map(|c| c.plan)
        .map_err(|d| d.to_string())
}

fn fixed_plan(name: &str) -> Plan {
    let path = if name == "example" {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../dialplans/example.toml").to_owned()
    } else {
        format!("{}/test_data/{name}.toml", env!("CARGO_MANIFEST_DIR"))
    };
    let source = std::fs::read_to_string(&path).expect("plan file");
    compile(name, &source).expect("fixed plans compile")
}

/// What the test does next.
#[derive(Clone, Debug)]
enum Op {
    Digit(char),
    Finished,
    /// Move the clock by this many milliseconds, firing deadlines on the way.
    Wait(u64),
    /// Jump to the next deadline and fire it.
    Timeout,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::sample::select("0123456789*#ABDx".chars().collect::<Vec<_>>()).prop_map(Op::Digit),
        3 => Just(Op::Finished),
        2 => (0u64..20_000).prop_map(Op::Wait),
        2 => Just(Op::Timeout),
    ]
}

/// Drives one IVR and checks every action it emits.
struct Driver {
    ivr: Ivr,
    now: Instant,
    n_plays: u32,
    /// The latest `Play`, while it runs.
    playing: bool,
    ended: bool,
    max_steps: u32,
}

impl Driver {
    fn drain(&mut self) -> Result<(), TestCaseError> {
        while let Some(action) = self.ivr.poll_action() {
            prop_assert!(!self.ended, "{action} after the final action");
            match &action {
                IvrAction::Play { prompts, .. } => {
                    prop_assert!(!prompts.is_empty(), "an empty Play");
                    self.n_plays += 1;
                    self.playing = true;
                }
                IvrAction::StopPlayback => {
                    prop_assert!(self.playing, "StopPlayback with nothing playing");
                    self.playing = false;
                }
                IvrAction::Event(event) => prop_assert_eq!(event.at, self.now),
                IvrAction::Transfer(target) => {
                    prop_assert!(
                        !matches!(target, Target::Menu(_) | Target::Message(_)),
                        "transfer to {target}"
                    );
                    self.ended = true;
                }
                IvrAction::Hangup { .. } => self.ended = true,
            }
        }
        prop_assert!(
            self.n_plays <= self.max_steps,
            "{} plays > max_steps {}",
            self.n_plays,
            self.max_steps
        );
        prop_assert_eq!(self.ivr.is_ended(), self.ended);
        match self.ivr.poll_timeout() {
            None => prop_assert!(self.ended, "running with no deadline"),
            Some(deadline) => {
                prop_assert!(!self.ended, "a deadline after the end");
                prop_assert!(deadline > self.now, "a deadline not in the future");
            }
        }
        Ok(())
    }

    fn fire(&mut self, deadline: Instant) -> Result<(), TestCaseError> {
        self.now = deadline;
        self.ivr.handle_timeout(deadline);
        self.drain()
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Digit(d) => self.ivr.handle(IvrInput::Digit(*d), self.now),
            Op::Finished => {
                // The switch reports the end of the latest Play only; a stale report is the
                // switch's bug, but the IVR must survive it too, so send it either way.
                self.playing = false;
                self.ivr.handle(IvrInput::PlaybackFinished, self.now);
            }
            Op::Wait(ms) => {
                let until = self.now + Duration::from_millis(*ms);
                while let Some(deadline) = self.ivr.poll_timeout().filter(|&t| t <= until) {
                    self.fire(deadline)?;
                }
                self.now = until;
            }
            Op::Timeout => {
                if let Some(deadline) = self.ivr.poll_timeout() {
                    self.fire(deadline)?;
                }
            }
        }
        self.drain()
    }

    /// The caller says nothing more: playbacks end after a second, deadlines fire.
    fn go_silent(&mut self) -> Result<(), TestCaseError> {
        let bound = 2 * self.max_steps + 4;
        for _ in 0..bound {
            if self.ended {
                return Ok(());
            }
            if self.playing {
                self.now += Duration::from_secs(1);
                self.step(&Op::Finished)?;
            } else {
                self.step(&Op::Timeout)?;
            }
        }
        prop_assert!(self.ended, "still running after {bound} silent moves");
        Ok(())
    }
}

fn check(
    plan: Arc<Plan>,
    entry: Target,
    max_steps: u32,
    watchdog_secs: u64,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let config = IvrConfig {
        max_steps,
        playback_watchdog: Duration::from_secs(watchdog_secs),
        ..IvrConfig::default()
    };
    let now = Instant::now();
    let ivr = Ivr::new(plan, entry, config, now).expect("entry exists");
    let mut driver = Driver {
        ivr,
        now,
        n_plays: 0,
        playing: false,
        ended: false,
        max_steps,
    };
    driver.drain()?;
    for op in ops {
        driver.step(op)?;
    }
    driver.go_silent()?;
    // Ended for good: nothing more, whatever comes.
    for op in [Op::Digit('1'), Op::Finished, Op::Timeout, Op::Wait(600_000)] {
        driver.step(&op)?;
    }
    Ok(())
}

/// Random menu graphs: menus `m0..mN` with random prompts, timeouts, retries and targets
/// (menus, messages, hang-ups and transfers), each menu reachable through its own number.
#[derive(Clone, Debug)]
struct MenuSpec {
    n_prompts: usize,
    timeout: u32,
    retries: u32,
    invalid: bool,
    timeout_prompt: bool,
    default: (u8, usize),
    options: Vec<(char, (u8, usize))>,
}

fn target_text((kind, idx): (u8, usize), n_menus: usize) -> String {
    match kind {
        0..=2 => format!("menu:m{}", idx % n_menus),
        3 => "message:msg".into(),
        4 => "hangup:bye".into(),
        5 => "extension:201".into(),
        6 => "group:g".into(),
        7 => "voicemail:vm".into(),
        _ => "external:ext".into(),
    }
}

fn menu_spec() -> impl Strategy<Value = MenuSpec> {
    let target = (0u8..9, 0usize..4);
    (
        0usize..3,
        0u32..8,
        0u32..4,
        any::<bool>(),
        any::<bool>(),
        target.clone(),
        prop::collection::vec(
            (
                prop::sample::select("0123456789*#".chars().collect::<Vec<_>>()),
                target,
            ),
            0..5,
        ),
    )
        .prop_map(
            |(n_prompts, timeout, retries, invalid, timeout_prompt, default, options)| MenuSpec {
                n_prompts,
                timeout,
                retries,
                invalid,
                timeout_prompt,
                default,
                options,
            },
        )
}

fn plan_source(menus: &[MenuSpec]) -> String {
    let n = menus.len();
    let mut toml = String::from(
        "[[extensions]]\nnumber = \"201\"\n\n[groups.g]\nmembers = [\"201\"]\n\n\
         [voicemail.vm]\nprompt = \"closed\"\n\n[external.ext]\nnumber = \"+390000\"\n\n",
    );
    for idx in 0..n {
        toml += &format!("[[numbers]]\nnumber = \"80{idx}\"\nopen = \"menu:m{idx}\"\n\n");
    }
    for (idx, menu) in menus.iter().enumerate() {
        let prompts: Vec<String> = (0..menu.n_prompts)
            .map(|p| format!("\"m{idx}-p{p}\""))
            .collect();
        toml += &format!(
            "[menus.m{idx}]\nprompts = [{}]\ntimeout = {}\nretries = {}\ndefault = \"{}\"\n",
            prompts.join(", "),
            menu.timeout,
            menu.retries,
            target_text(menu.default, n)
        );
        if menu.invalid {
            toml += "invalid = \"invalid\"\n";
        }
        if menu.timeout_prompt {
            toml += "timeout_prompt = \"no-input\"\n";
        }
        toml += &format!("\n[menus.m{idx}.options]\n");
        let mut used = Vec::new();
        for (digit, target) in &menu.options {
            if used.contains(digit) {
                continue;
            }
            used.push(*digit);
            toml += &format!(
                "\"{digit}\" = {{ prompt = \"m{idx}-o{digit}\", target = \"{}\" }}\n",
                target_text(*target, n)
            );
        }
        toml += "\n";
    }
    toml
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn fixed_plans_always_end(
        plan_idx in 0usize..3,
        max_steps in 0u32..40,
        watchdog_secs in 0u64..400,
        ops in prop::collection::vec(op(), 0..80),
    ) {
        let (name, entry) = [("example", "main"), ("nested", "main"), ("loop", "a")][plan_idx];
        let plan = Arc::new(fixed_plan(name));
        check(plan, Target::Menu(entry.into()), max_steps, watchdog_secs, &ops)?;
    }

    #[test]
    fn random_plans_always_end(
        menus in prop::collection::vec(menu_spec(), 1..5),
        entry_idx in 0usize..4,
        max_steps in 0u32..25,
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let source = plan_source(&menus);
        // The router rejects menu loops with no exit at all; those never reach the IVR.
        let plan = compile("random.toml", &source);
        prop_assume!(plan.is_ok());
        let plan = Arc::new(plan.expect("checked above"));
        let entry = Target::Menu(format!("m{}", entry_idx % menus.len()));
        check(plan, entry, max_steps, 300, &ops)?;
    }

    #[test]
    fn default_config_ends_a_silent_call_on_random_plans(
        menus in prop::collection::vec(menu_spec(), 1..5),
    ) {
        let source = plan_source(&menus);
        let plan = compile("random.toml", &source);
        prop_assume!(plan.is_ok());
        let plan = Arc::new(plan.expect("checked above"));
        check(plan, Target::Menu("m0".into()), IvrConfig::default().max_steps, 300, &[])?;
    }
}

/// Non-menu entries end at once, with no deadline.
#[test]
fn non_menu_entries_end_at_once() {
    let plan = Arc::new(fixed_plan("example"));
    for entry in [
        Target::Group("salute".into()),
        Target::Queue("spesa".into()),
        Target::Extension("201".into()),
        Target::Voicemail("general".into()),
        Target::External("roma".into()),
        Target::Message("closed".into()),
        Target::Hangup("bye".into()),
    ] {
        let mut ivr = Ivr::new(
            Arc::clone(&plan),
            entry.clone(),
            IvrConfig::default(),
            Instant::now(),
        )
        .expect("non-menu entries always start");
        let actions: Vec<IvrAction> = std::iter::from_fn(|| ivr.poll_action()).collect();
        assert!(ivr.is_ended() && ivr.poll_timeout().is_none(), "{entry}");
        assert!(
            matches!(
                actions.last(),
                Some(IvrAction::Transfer(_) | IvrAction::Hangup { .. })
            ),
            "{entry}: {actions:?}"
        );
    }
}

/// Random plans compile often enough for the property above to mean something.
#[test]
fn random_plan_generator_compiles() {
    let spec = MenuSpec {
        n_prompts: 1,
        timeout: 0,
        retries: 1,
        invalid: true,
        timeout_prompt: true,
        default: (0, 1),
        options: vec![('*', (3, 0)), ('#', (4, 0)), ('1', (0, 0))],
    };
    let other = MenuSpec {
        default: (5, 0),
        options: vec![('1', (1, 0))],
        ..spec.clone()
    };
    let source = plan_source(&[spec, other]);
    compile("random.toml", &source).unwrap_or_else(|e| panic!("{e}\n{source}"));
}
