//! Content-addressed cache of judge replies in the workspace database, so a rerun (or a
//! run after a crash or Ctrl-C) sends no request whose reply is already known.
//!
//! Key = xxh3-128 over (model, endpoint role, prompt template id and version, the
//! rendered messages, sampling parameters). Anything that changes the request changes
//! the key; nothing else does (not the endpoint URL, so replicas share a cache).

use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::client::ChatRequest;
use crate::store::Db;

/// Everything that identifies a request for caching.
#[derive(Debug, Clone, Serialize)]
pub struct CacheKeyParts<'a> {
    pub model: &'a str,
    pub role: &'a str,
    pub template_id: &'a str,
    pub template_version: u32,
    pub request: &'a ChatRequest,
}

pub fn cache_key(parts: &CacheKeyParts) -> String {
    // Serialization is deterministic: struct fields in declaration order.
    let bytes = serde_json::to_vec(parts).expect("key parts serialize");
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub reply: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Cache reads and writes against one workspace database, with hit/miss counters.
pub struct JudgeCache<'a> {
    db: &'a Db,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    pub entries: u64,
    pub hits: u64,
    pub misses: u64,
}

impl<'a> JudgeCache<'a> {
    pub fn new(db: &'a Db, enabled: bool) -> Self {
        Self {
            db,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            enabled,
        }
    }

    pub fn get(&self, key: &str) -> rusqlite::Result<Option<Cached>> {
        if !self.enabled {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let found = self
            .db
            .conn
            .query_row(
                "SELECT reply, prompt_tokens, completion_tokens FROM judge_cache WHERE key = ?1",
                [key],
                |r| {
                    Ok(Cached {
                        reply: r.get(0)?,
                        prompt_tokens: r.get::<_, i64>(1)? as u64,
                        completion_tokens: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()?;
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(found)
    }

    /// Store a reply; committed (and, with `synchronous=FULL`, durable) on return.
    pub fn put(&self, key: &str, model: &str, value: &Cached) -> rusqlite::Result<()> {
        self.db.conn.execute(
            "INSERT INTO judge_cache(key, model, reply, prompt_tokens, completion_tokens, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(key) DO UPDATE SET reply = excluded.reply,
                 prompt_tokens = excluded.prompt_tokens,
                 completion_tokens = excluded.completion_tokens",
            params![
                key,
                model,
                value.reply,
                value.prompt_tokens as i64,
                value.completion_tokens as i64,
                crate::util::now_rfc3339()
            ],
        )?;
        Ok(())
    }

    pub fn stats(&self) -> rusqlite::Result<CacheStats> {
        let entries: i64 = self
            .db
            .conn
            .query_row("SELECT count(*) FROM judge_cache", [], |r| r.get(0))?;
        Ok(CacheStats {
            entries: entries as u64,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        })
    }
}

/// What the cache holds for one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelCacheStats {
    pub model: String,
    pub entries: u64,
    /// Tokens the cached replies cost when they were asked: what a rerun saves.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub reply_bytes: u64,
    pub oldest: String,
    pub newest: String,
}

/// Entries per model, most first.
pub fn cache_report(db: &Db) -> rusqlite::Result<Vec<ModelCacheStats>> {
    let mut stmt = db.conn.prepare(
        "SELECT model, count(*), sum(prompt_tokens), sum(completion_tokens),
                sum(length(CAST(reply AS BLOB))), min(created_at), max(created_at)
         FROM judge_cache GROUP BY model ORDER BY count(*) DESC, model",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ModelCacheStats {
            model: r.get(0)?,
            entries: r.get::<_, i64>(1)? as u64,
            prompt_tokens: r.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
            completion_tokens: r.get::<_, Option<i64>>(3)?.unwrap_or(0) as u64,
            reply_bytes: r.get::<_, Option<i64>>(4)?.unwrap_or(0) as u64,
            oldest: r.get(5)?,
            newest: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// Delete cached replies (of one model, or all); returns how many.
pub fn clear_cache(db: &Db, model: Option<&str>) -> rusqlite::Result<usize> {
    match model {
        Some(m) => db
            .conn
            .execute("DELETE FROM judge_cache WHERE model = ?1", [m]),
        None => db.conn.execute("DELETE FROM judge_cache", []),
    }
}
