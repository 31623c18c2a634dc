//! `centralino check` loads the prompts a dialplan names: the example passes; a missing or
//! undecodable prompt file refuses the configuration at the position of its reference.

use std::process::Command;

const EXAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../dialplans/example.toml"
));
const PROMPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../prompts/it");

fn check(path: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_centralino"))
        .arg("check")
        .arg(path)
        .output()
        .expect("run centralino check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A temp dir with `dialplan.toml` (the example) and `prompts/` holding the repository's
/// prompts except `drop`, plus `extra` files.
fn setup(name: &str, drop: &str, extra: &[(&str, &[u8])]) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("centralino-prompts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("prompts")).expect("mkdir");
    for entry in std::fs::read_dir(PROMPTS).expect("the prompt set") {
        let path = entry.expect("entry").path();
        if path.file_stem().is_some_and(|s| s == drop) {
            continue;
        }
        std::fs::copy(
            &path,
            dir.join("prompts").join(path.file_name().expect("name")),
        )
        .expect("copy");
    }
    for (file, bytes) in extra {
        std::fs::write(dir.join("prompts").join(file), bytes).expect("write");
    }
    let text = EXAMPLE.replace("[switch]\n", "[switch]\nprompts = \"prompts\"\n");
    std::fs::write(dir.join("dialplan.toml"), text).expect("write the dialplan");
    dir
}

#[test]
fn the_example_and_its_prompts_pass() {
    let dir = setup("ok", "", &[]);
    let (ok, stderr) = check(&dir.join("dialplan.toml"));
    assert!(ok, "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_prompt_is_an_error_at_its_reference() {
    let dir = setup("missing", "welcome", &[]);
    let path = dir.join("dialplan.toml");
    let (ok, stderr) = check(&path);
    assert!(!ok, "a missing prompt must refuse the configuration");
    let text = std::fs::read_to_string(&path).expect("the dialplan");
    let line = text
        .lines()
        .position(|l| l.contains("\"welcome\""))
        .expect("the example names welcome")
        + 1;
    let col = text
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("\"welcome\"")
        .unwrap()
        + 1;
    let want = format!("{}:{line}:{col}: error: prompt `welcome`", path.display());
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_undecodable_prompt_is_an_error_naming_the_file() {
    let dir = setup(
        "garbage",
        "closed",
        &[("closed.wav", b"RIFF\x00\x00not really a wave file")],
    );
    let (ok, stderr) = check(&dir.join("dialplan.toml"));
    assert!(!ok, "an undecodable prompt must refuse the configuration");
    assert!(
        stderr.contains("prompt `closed`") && stderr.contains("closed.wav"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_english_set_serves_the_example_too() {
    let dir = std::env::temp_dir().join(format!("centralino-prompts-en-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let en = concat!(env!("CARGO_MANIFEST_DIR"), "/../../prompts/en");
    let text = EXAMPLE.replace("[switch]\n", &format!("[switch]\nprompts = \"{en}\"\n"));
    std::fs::write(dir.join("dialplan.toml"), text).expect("write");
    let (ok, stderr) = check(&dir.join("dialplan.toml"));
    assert!(ok, "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
