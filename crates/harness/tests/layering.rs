//! Architecture invariants (style guide, "How this maps onto Centralino"): the core crates
//! use no async runtime, read no clock and draw no OS randomness; only `switch` and `harness`
//! are the edge. Checked on `cargo metadata` (the resolved normal-dependency graph) and on
//! the core crates' non-test sources.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Crates that must stay sans-IO. Names not (yet) in the workspace are skipped.
const CORE: &[&str] = &[
    "sip-msg",
    "sdp",
    "sip-core",
    "registrar",
    "media",
    "router",
    "ivr",
    "events",
    "b2bua",
];
/// Crates no core crate may pull in, directly or not.
const FORBIDDEN_DEPENDENCIES: &[&str] = &["tokio", "async-std", "smol", "mio", "getrandom"];
/// Calls that read a clock or the OS RNG.
const FORBIDDEN_CALLS: &[&str] = &[
    "Instant::now(",
    "SystemTime::now(",
    "Timestamp::now(",
    "Zoned::now(",
    "OsRng",
    "thread_rng(",
    "rand::random",
    "from_entropy(",
    "/dev/urandom",
];

fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn core_crates_depend_on_no_async_runtime() {
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    let name_of: HashMap<&str, &str> = packages
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let workspace: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let nodes = meta["resolve"]["nodes"].as_array().expect("resolve.nodes");
    // Normal (non-dev, non-build) dependency edges only.
    let normal: HashMap<&str, Vec<&str>> = nodes
        .iter()
        .filter_map(|n| {
            let id = n["id"].as_str()?;
            let deps = n["deps"]
                .as_array()?
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
                })
                .filter_map(|d| d["pkg"].as_str())
                .collect();
            Some((id, deps))
        })
        .collect();
    let mut problems = Vec::new();
    for &id in &workspace {
        let Some(&name) = name_of.get(id) else {
            continue;
        };
        if !CORE.contains(&name) {
            continue;
        }
        // Depth-first walk, remembering one path to each crate for the message.
        let mut stack = vec![(id, vec![name])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            if !seen.insert(at) {
                continue;
            }
            for &dep in normal.get(at).map(Vec::as_slice).unwrap_or_default() {
                let dep_name = name_of.get(dep).copied().unwrap_or(dep);
                let mut next = path.clone();
                next.push(dep_name);
                if FORBIDDEN_DEPENDENCIES.contains(&dep_name) {
                    problems.push(next.join(" -> "));
                } else {
                    stack.push((dep, next));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "core crates must stay sans-IO; forbidden dependencies:\n{}",
        problems.join("\n")
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            // Test-only module directories (`mod tests;` with files below) are exempt.
            if path.file_name().is_some_and(|n| n != "tests") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

#[test]
fn core_crates_read_no_clock_and_no_os_randomness() {
    let crates_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut problems = Vec::new();
    for name in CORE {
        let mut files = Vec::new();
        rust_files(&crates_dir.join(name).join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for (idx, line) in text.lines().enumerate() {
                let code = line.trim_start();
                // Unit tests sit at the end of a file behind #[cfg(test)] (style guide).
                if code.starts_with("#[cfg(test)]") {
                    break;
                }
                if code.starts_with("//") {
                    continue;
                }
                for call in FORBIDDEN_CALLS.iter().filter(|c| code.contains(*c)) {
                    problems.push(format!("{}:{}: {call}", file.display(), idx + 1));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "core crates get time and randomness as arguments; found:\n{}",
        problems.join("\n")
    );
}
