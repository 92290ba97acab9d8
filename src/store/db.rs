//! The workspace database: runs, decisions, votes and an audit log in SQLite.
//!
//! WAL with `synchronous=FULL`: a committed transaction survives a crash or power loss,
//! which is what "durable the moment the UI acknowledges it" needs. The schema version
//! lives in `PRAGMA user_version`; `MIGRATIONS[i]` moves a database from version i to i+1.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{UserError, file_error};

/// Each entry upgrades the schema by one version. Never edit a shipped entry; append.
pub const MIGRATIONS: &[&str] = &[
    // v1: the foundation tables.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        stage       TEXT NOT NULL,
        recipe      TEXT,
        params      TEXT,
        status      TEXT NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE TABLE decisions (
        id             INTEGER PRIMARY KEY,
        item_id        TEXT NOT NULL,
        kind           TEXT NOT NULL,
        state          TEXT NOT NULL,
        previous_state TEXT,
        who            TEXT NOT NULL,
        at             TEXT NOT NULL,
        seconds_spent  REAL,
        payload        TEXT
    );
    CREATE INDEX decisions_item ON decisions(item_id, kind, id);
    CREATE TABLE votes (
        session   TEXT NOT NULL,
        item_id   TEXT NOT NULL,
        annotator TEXT NOT NULL,
        aspect    TEXT NOT NULL,
        choice    TEXT NOT NULL,
        comment   TEXT,
        at        TEXT NOT NULL,
        seconds_spent REAL,
        PRIMARY KEY (session, item_id, annotator, aspect)
    );
    CREATE TABLE audit_log (
        id     INTEGER PRIMARY KEY,
        at     TEXT NOT NULL,
        who    TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT
    );
    "#,
    // v2: content-addressed cache of judge replies (judge/cache.rs).
    r#"
    CREATE TABLE judge_cache (
        key               TEXT PRIMARY KEY,
        model             TEXT NOT NULL,
        reply             TEXT NOT NULL,
        prompt_tokens     INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        created_at        TEXT NOT NULL
    );
    "#,
    // v3: embeddings computed once per (model, text) (stages/embed.rs).
    r#"
    CREATE TABLE embedding_cache (
        model     TEXT NOT NULL,
        text_hash TEXT NOT NULL,
        dim       INTEGER NOT NULL,
        vector    BLOB NOT NULL,
        PRIMARY KEY (model, text_hash)
    );
    "#,
    // v4: blinded human evaluation (eval/). Votes go in `votes` (v1) as the annotator
    // pressed them (left / tie / right); which version was on the left is only here.
    r#"
    CREATE TABLE eval_sessions (
        name        TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL,
        config      TEXT NOT NULL,
        fingerprint TEXT NOT NULL
    );
    CREATE TABLE eval_items (
        session  TEXT NOT NULL,
        item_id  TEXT NOT NULL,
        position INTEGER NOT NULL,
        a        TEXT NOT NULL,
        b        TEXT NOT NULL,
        stratum  TEXT,
        PRIMARY KEY (session, item_id)
    );
    CREATE TABLE eval_assignments (
        session   TEXT NOT NULL,
        annotator TEXT NOT NULL,
        item_id   TEXT NOT NULL,
        position  INTEGER NOT NULL,
        a_on_left INTEGER NOT NULL,
        PRIMARY KEY (session, annotator, item_id)
    );
    CREATE TABLE eval_submissions (
        session       TEXT NOT NULL,
        item_id       TEXT NOT NULL,
        annotator     TEXT NOT NULL,
        submitted_at  TEXT NOT NULL,
        seconds_spent REAL,
        comment       TEXT,
        PRIMARY KEY (session, item_id, annotator)
    );
    CREATE TABLE eval_adjudications (
        session    TEXT NOT NULL,
        item_id    TEXT NOT NULL,
        aspect     TEXT NOT NULL,
        verdict    TEXT NOT NULL,
        adjudicator TEXT NOT NULL,
        at         TEXT NOT NULL,
        PRIMARY KEY (session, item_id, aspect)
    );
    "#,
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub struct Db {
    pub conn: Connection,
}

impl Db {
    pub fn open(path: &Path) -> Result<Self, UserError> {
        let conn = Connection::open(path)
            .map_err(|e| file_error(path, format!("cannot open the workspace database: {e}")))?;
        let db = Self { conn };
        db.configure()
            .and_then(|()| db.migrate())
            .map_err(|e| file_error(path, e))?;
        Ok(db)
    }

    fn configure(&self) -> Result<(), String> {
        self.conn
            .busy_timeout(Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| e.to_string())?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("could not switch the database to WAL (got {mode})"));
        }
        self.conn
            .execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(|e| e.to_string())
    }

    pub fn version(&self) -> rusqlite::Result<i64> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))
    }

    fn migrate(&self) -> Result<(), String> {
        let current = self.version().map_err(|e| e.to_string())?;
        if current > SCHEMA_VERSION {
            return Err(format!(
                "database schema version {current} is newer than this gleaner supports ({SCHEMA_VERSION}); upgrade gleaner"
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let to = i as i64 + 1;
            let tx = self
                .conn
                .unchecked_transaction()
                .map_err(|e| e.to_string())?;
            tx.execute_batch(sql)
                .map_err(|e| format!("migration to schema version {to} failed: {e}"))?;
            tx.pragma_update(None, "user_version", to)
                .map_err(|e| e.to_string())?;
            tx.commit().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// A transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so one
    /// that reads and then writes never fails on a snapshot another process moved on
    /// from; with several annotators or reviewers writing, the busy timeout waits.
    pub fn write_tx(&self) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)
    }

    pub fn audit(&self, who: &str, action: &str, detail: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO audit_log(at, who, action, detail) VALUES (?1, ?2, ?3, ?4)",
            params![crate::util::now_rfc3339(), who, action, detail],
        )?;
        Ok(())
    }

    pub fn set_meta(&self, key: &str, value: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> rusqlite::Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
    }
}
