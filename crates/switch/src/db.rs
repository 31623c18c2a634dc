//! The embedded SQLite database: registrations survive a restart. Writes go through one
//! dedicated thread so the call loop never waits on the disk.

use std::path::Path;
use std::sync::mpsc;

use anyhow::Context;
use b2bua::BindingRecord;
use rusqlite::{Connection, params};

/// A write for the database thread.
pub enum DbWrite {
    /// Insert or refresh a binding.
    Save(BindingRecord),
    /// Remove a binding.
    Delete(BindingRecord),
}

/// The database once opened: what it held, and the writer thread.
pub struct Opened {
    /// Bindings stored before the restart.
    pub bindings: Vec<BindingRecord>,
    /// Where to send batches of writes.
    pub writer: mpsc::Sender<Vec<DbWrite>>,
    /// The writer thread; it ends once every sender is dropped.
    pub thread: std::thread::JoinHandle<()>,
}

/// Opens (creating if needed) the database and returns the stored bindings and a writer.
pub fn open(data_dir: &Path) -> anyhow::Result<Opened> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let path = data_dir.join("centralino.db");
    let conn = Connection::open(&path)
        .with_context(|| format!("cannot open database {}", path.display()))?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         PRAGMA synchronous=NORMAL;
         CREATE TABLE IF NOT EXISTS bindings (
             aor TEXT NOT NULL,
             contact TEXT NOT NULL,
             expires_unix INTEGER NOT NULL,
             source TEXT NOT NULL,
             transport TEXT NOT NULL,
             call_id TEXT NOT NULL,
             cseq INTEGER NOT NULL,
             q INTEGER,
             instance TEXT,
             PRIMARY KEY (aor, contact)
         );
         CREATE TABLE IF NOT EXISTS voicemail (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             mailbox TEXT NOT NULL,
             caller TEXT NOT NULL,
             dialled TEXT NOT NULL,
             call_id TEXT NOT NULL,
             started_unix INTEGER NOT NULL,
             duration_ms INTEGER NOT NULL,
             path TEXT NOT NULL
         );",
    )
    .context("cannot initialise the database schema")?;
    let mut records = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT aor, contact, expires_unix, source, transport, call_id, cseq, q, instance FROM bindings")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ),
                (
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, u32>(6)?,
                    r.get::<_, Option<u16>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ),
            ))
        })?;
        for row in rows {
            let ((aor, contact_uri, expires, source), (transport, call_id, cseq, q, instance)) =
                row?;
            if let Ok(received_from) = source.parse() {
                records.push(BindingRecord {
                    aor,
                    contact_uri,
                    expires_at_unix: u64::try_from(expires).unwrap_or(0),
                    call_id,
                    cseq,
                    q: q.and_then(registrar::QValue::from_thousandths),
                    received_from,
                    transport,
                    instance,
                });
            }
        }
    }
    let (tx, rx) = mpsc::channel::<Vec<DbWrite>>();
    let handle = std::thread::Builder::new()
        .name("db".into())
        .spawn(move || writer(conn, rx))?;
    Ok(Opened {
        bindings: records,
        writer: tx,
        thread: handle,
    })
}

/// The writer thread: the call loop hands over a batch per loop turn (one wake-up, not one
/// per binding); whatever else is queued joins the same transaction.
fn writer(conn: Connection, rx: mpsc::Receiver<Vec<DbWrite>>) {
    while let Ok(mut batch) = rx.recv() {
        while let Ok(more) = rx.try_recv() {
            batch.extend(more);
        }
        let result = (|| -> rusqlite::Result<()> {
            conn.execute_batch("BEGIN")?;
            for w in &batch {
                match w {
                    DbWrite::Save(b) => {
                        conn.prepare_cached(
                            "INSERT INTO bindings (aor, contact, expires_unix, source, transport, call_id, cseq, q, instance)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                             ON CONFLICT (aor, contact) DO UPDATE SET expires_unix = excluded.expires_unix,
                               source = excluded.source, transport = excluded.transport,
                               call_id = excluded.call_id, cseq = excluded.cseq, q = excluded.q,
                               instance = excluded.instance",
                        )?
                        .execute(params![
                            b.aor,
                            b.contact_uri,
                            i64::try_from(b.expires_at_unix).unwrap_or(i64::MAX),
                            b.received_from.to_string(),
                            b.transport,
                            b.call_id,
                            b.cseq,
                            b.q.map(|q| q.thousandths()),
                            b.instance
                        ])?;
                    }
                    DbWrite::Delete(b) => {
                        conn.prepare_cached(
                            "DELETE FROM bindings WHERE aor = ?1 AND contact = ?2",
                        )?
                        .execute(params![b.aor, b.contact_uri])?;
                    }
                }
            }
            conn.execute_batch("COMMIT")
        })();
        if let Err(e) = result {
            tracing::error!(error = %e, "database write failed");
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}
