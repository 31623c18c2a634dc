//! Data-driven IVR scenarios: `test_data/*.scn`, one call each, checked by one runner.
//!
//! A scenario names a plan and an entry target, then lists inputs (`> ...`), each followed by
//! the actions the IVR emits in answer (`< TIME ACTION`, TIME since `start`). The runner
//! replays the inputs in virtual time, renders what the IVR does in the same format and
//! compares the whole file. `UPDATE_EXPECT=1 cargo test -p ivr --test scenarios` rewrites the
//! files with what the IVR does now (review the diff!).
//!
//! Header lines: `plan NAME` (`example` = `dialplans/example.toml`, else
//! `test_data/NAME.toml`), `entry TARGET` (`menu:main`), optional `max_steps N` and
//! `watchdog SECONDS`. Inputs: `start` (builds the IVR), `finished` (the playback ended),
//! `digit D`, `wait DURATION` (moves the clock, firing every deadline on the way, e.g. `6s`,
//! `500ms`) and `timeout` (jumps to the next deadline and fires it). Lines starting with `#`
//! are comments.
//!
//! After every input the runner also checks the run-loop contract: while the IVR runs,
//! `poll_timeout` is a deadline in the future; the last action is the only `Transfer` or
//! `Hangup`, and nothing follows it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ivr::{Ivr, IvrAction, IvrConfig, IvrInput};
use router::{Plan, Target};

fn test_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data")
}

fn load_plan(name: &str) -> Plan {
    let path = if name == "example" {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dialplans/example.toml")
    } else {
        test_data().join(format!("{name}.toml"))
    };
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    router::compile(&format!("{name}.toml"), &source)
        .map_err(|d| d.to_string())
        .unwrap_or_else(|e| panic!("{name}.toml does not compile:\n{e}"))
        .plan
}

fn parse_target(text: &str) -> Target {
    let (kind, name) = text
        .split_once(':')
        .unwrap_or_else(|| panic!("target `{text}` is not kind:name"));
    let name = name.to_owned();
    match kind {
        "menu" => Target::Menu(name),
        "group" => Target::Group(name),
        "queue" => Target::Queue(name),
        "extension" => Target::Extension(name),
        "voicemail" => Target::Voicemail(name),
        "external" => Target::External(name),
        "message" => Target::Message(name),
        "hangup" => Target::Hangup(name),
        _ => panic!("unknown target kind `{kind}`"),
    }
}

fn parse_duration(text: &str) -> Duration {
    if let Some(ms) = text.strip_suffix("ms") {
        Duration::from_millis(ms.parse().expect("milliseconds"))
    } else if let Some(s) = text.strip_suffix('s') {
        Duration::from_secs(s.parse().expect("seconds"))
    } else {
        panic!("duration `{text}` needs a unit: 6s or 500ms")
    }
}

fn render_offset(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
    }
}

/// One call in virtual time.
struct Run {
    start: Instant,
    now: Instant,
    ivr: Option<Ivr>,
    ended: bool,
    out: Vec<String>,
}

impl Run {
    fn drain(&mut self, context: &str) {
        let ivr = self.ivr.as_mut().expect("`start` comes first");
        while let Some(action) = ivr.poll_action() {
            assert!(!self.ended, "{context}: `{action}` after the final action");
            let at = match &action {
                IvrAction::Event(event) => event.at,
                _ => self.now,
            };
            if matches!(action, IvrAction::Transfer(_) | IvrAction::Hangup { .. }) {
                self.ended = true;
            }
            self.out.push(format!(
                "< {:>5} {action}",
                render_offset(at.duration_since(self.start))
            ));
        }
        assert_eq!(ivr.is_ended(), self.ended, "{context}: is_ended");
        match ivr.poll_timeout() {
            None => assert!(self.ended, "{context}: running with no deadline"),
            Some(deadline) => {
                assert!(!self.ended, "{context}: a deadline after the end");
                assert!(deadline > self.now, "{context}: deadline not in the future");
            }
        }
    }

    fn ivr(&mut self) -> &mut Ivr {
        self.ivr.as_mut().expect("`start` comes first")
    }
}

/// Replays the scenario's inputs and returns the file as it should read.
fn run(text: &str, file: &str) -> String {
    let mut plan = None;
    let mut entry = None;
    let mut config = IvrConfig::default();
    let start = Instant::now();
    let mut run = Run {
        start,
        now: start,
        ivr: None,
        ended: false,
        out: Vec::new(),
    };
    for (idx, line) in text.lines().enumerate() {
        let context = format!("{file}:{}", idx + 1);
        if line.starts_with('<') {
            continue; // expected output: regenerated below
        }
        run.out.push(line.to_owned());
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(input) = line.strip_prefix('>') {
            let mut words = input.split_whitespace();
            match (words.next(), words.next()) {
                (Some("start"), None) => {
                    let plan = Arc::new(plan.take().expect("`plan` before `start`"));
                    let entry = entry.take().expect("`entry` before `start`");
                    run.ivr = Some(Ivr::new(plan, entry, config, start).expect("entry exists"));
                }
                (Some("finished"), None) => {
                    let now = run.now;
                    run.ivr().handle(IvrInput::PlaybackFinished, now);
                }
                (Some("digit"), Some(d)) => {
                    let digit = d.chars().next().expect("a digit");
                    let now = run.now;
                    run.ivr().handle(IvrInput::Digit(digit), now);
                }
                (Some("wait"), Some(d)) => {
                    let until = run.now + parse_duration(d);
                    while let Some(deadline) = run.ivr().poll_timeout().filter(|&t| t <= until) {
                        run.now = deadline;
                        run.ivr().handle_timeout(deadline);
                        run.drain(&context);
                    }
                    run.now = until;
                }
                (Some("timeout"), None) => {
                    let deadline = run
                        .ivr()
                        .poll_timeout()
                        .unwrap_or_else(|| panic!("{context}: no deadline"));
                    run.now = deadline;
                    run.ivr().handle_timeout(deadline);
                }
                _ => panic!("{context}: unknown input `{input}`"),
            }
            run.drain(&context);
            continue;
        }
        match line.split_once(' ') {
            Some(("plan", name)) => plan = Some(load_plan(name.trim())),
            Some(("entry", target)) => entry = Some(parse_target(target.trim())),
            Some(("max_steps", n)) => config.max_steps = n.trim().parse().expect("a number"),
            Some(("watchdog", d)) => config.playback_watchdog = parse_duration(d.trim()),
            _ => panic!("{context}: unknown line `{line}`"),
        }
    }
    let mut rendered = run.out.join("\n");
    rendered.push('\n');
    rendered
}

#[test]
fn scenarios() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(test_data())
        .expect("test_data")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "scn"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenarios in test_data");
    let mut failed = Vec::new();
    for path in &files {
        let name = path.file_name().expect("file name").to_string_lossy();
        let text = std::fs::read_to_string(path).expect("scenario");
        let actual = run(&text, &name);
        if actual != text {
            if update {
                std::fs::write(path, &actual).expect("write scenario");
            } else {
                eprintln!("--- {name}: expected (file)\n{text}\n--- {name}: actual\n{actual}");
                failed.push(name.into_owned());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "scenarios differ (UPDATE_EXPECT=1 to accept): {failed:?}"
    );
}
