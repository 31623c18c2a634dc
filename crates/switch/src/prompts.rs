//! Loading the prompt files a dialplan names: every reference is decoded once, when the
//! configuration is loaded (start, `check`, reload), into ready G.711 frames. A missing or
//! undecodable file refuses the configuration with the position of its first reference, so
//! a caller never meets silence where a prompt should be.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file extensions tried for a prompt name, in order.
const EXTENSIONS: &[&str] = &["wav", "flac", "mp3", "ogg"];

/// The prompt directory of `config`, loaded from `dialplan`.
fn prompt_dir(config: &b2bua::Config, dialplan: &Path) -> PathBuf {
    let base = dialplan.parent().unwrap_or(Path::new("."));
    match &config.prompts_dir {
        Some(dir) => base.join(dir),
        None => base.join("..").join("prompts").join(&config.language),
    }
}

/// Decodes every prompt `config`'s dialplan names into `config.prompts`; on failure, one
/// message per bad prompt, at its first reference (`file:line:col: error: ...`).
pub fn load(config: &mut b2bua::Config, dialplan: &Path) -> Result<(), Vec<String>> {
    let dir = prompt_dir(config, dialplan);
    let mut loaded: BTreeMap<String, Arc<media::Prompt>> = BTreeMap::new();
    let mut errors = Vec::new();
    let refs = config.plan.prompt_refs().to_vec();
    for r in &refs {
        if loaded.contains_key(&r.name) || errors.iter().any(|(n, _)| n == &r.name) {
            continue;
        }
        match load_one(&dir, &r.name) {
            Ok(p) => {
                loaded.insert(r.name.clone(), Arc::new(p));
            }
            Err(why) => errors.push((
                r.name.clone(),
                format!(
                    "{}:{}:{}: error: prompt `{}` ({}): {why}",
                    config.file, r.line, r.col, r.name, r.what
                ),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors.into_iter().map(|(_, m)| m).collect());
    }
    // Optional: the voicemail beep and hold music, when the set has them.
    for name in ["beep", "hold-music"] {
        if !loaded.contains_key(name)
            && let Ok(p) = load_one(&dir, name)
        {
            loaded.insert(name.to_owned(), Arc::new(p));
        }
    }
    config.prompts = loaded;
    Ok(())
}

fn load_one(dir: &Path, name: &str) -> Result<media::Prompt, String> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err("a prompt name is a file name without directory".to_owned());
    }
    for ext in EXTENSIONS {
        let path = dir.join(format!("{name}.{ext}"));
        match std::fs::read(&path) {
            Ok(bytes) => {
                return media::decode_prompt(name, &bytes, Some(ext))
                    .map_err(|e| format!("{}: {e}", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Err(format!(
        "no file {name}.wav, .flac, .mp3 or .ogg in {}",
        dir.display()
    ))
}
