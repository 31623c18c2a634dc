//! Voicemail storage: the recorded message as a WAV file under `DATA_DIR/voicemail/`, and
//! its metadata as a row of the `voicemail` table, both durable (file and directory synced,
//! row committed with `synchronous=FULL`) before the call is reported done.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

/// What is known of a message besides its audio.
#[derive(Clone, Debug)]
pub struct MessageMeta {
    /// The voicemail box.
    pub mailbox: String,
    /// The caller's number.
    pub caller: String,
    /// The number dialled.
    pub dialled: String,
    /// The caller's SIP Call-ID.
    pub call_id: String,
    /// When recording started (Unix seconds).
    pub started_unix: u64,
    /// The switch's call number (unique while it runs).
    pub call: u64,
}

/// Writes the message and its metadata durably; returns the file's path.
pub fn store(data_dir: &Path, meta: &MessageMeta, samples: &[i16]) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join("voicemail");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = format!(
        "{}-{}-{}.wav",
        sanitize(&meta.mailbox),
        meta.started_unix,
        meta.call
    );
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.part"));
    {
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(&media::recorder::wav_bytes(samples))?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(&dir)?.sync_all()?;
    let duration_ms = samples.len() as u64 / 8;
    let conn = rusqlite::Connection::open(data_dir.join("centralino.db"))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch("PRAGMA synchronous=FULL;")?;
    conn.execute(
        "INSERT INTO voicemail (mailbox, caller, dialled, call_id, started_unix, duration_ms, path)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        rusqlite::params![
            meta.mailbox,
            meta.caller,
            meta.dialled,
            meta.call_id,
            meta.started_unix as i64,
            duration_ms as i64,
            path.display().to_string()
        ],
    )?;
    Ok(path)
}

/// A file-name-safe form of a box name.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}
