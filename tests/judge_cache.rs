//! The judge reply cache in the workspace database.

use gleaner::data::record::Message;
use gleaner::judge::cache::{CacheKeyParts, Cached, JudgeCache, cache_key};
use gleaner::judge::client::ChatRequest;
use gleaner::store::db::{Db, SCHEMA_VERSION};

fn req(text: &str, temperature: f64) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new("user", text)],
        temperature: Some(temperature),
        ..ChatRequest::default()
    }
}

fn key(model: &str, role: &str, template: &str, version: u32, r: &ChatRequest) -> String {
    cache_key(&CacheKeyParts {
        model,
        role,
        template_id: template,
        template_version: version,
        request: r,
    })
}

#[test]
fn key_changes_with_every_part_and_only_with_them() {
    let r = req("rate this", 0.0);
    let base = key("m", "rater", "ds2.rate", 1, &r);
    assert_eq!(
        base,
        key("m", "rater", "ds2.rate", 1, &req("rate this", 0.0)),
        "stable"
    );
    assert_eq!(base.len(), 32);
    for other in [
        key("m2", "rater", "ds2.rate", 1, &r),
        key("m", "strong", "ds2.rate", 1, &r),
        key("m", "rater", "aido.classify", 1, &r),
        key("m", "rater", "ds2.rate", 2, &r),
        key("m", "rater", "ds2.rate", 1, &req("rate that", 0.0)),
        key("m", "rater", "ds2.rate", 1, &req("rate this", 0.7)),
    ] {
        assert_ne!(base, other);
    }
}

#[test]
fn replies_persist_across_reopening_and_count_hits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gleaner.db");
    let value = Cached {
        reply: "{\"score\": 5}".into(),
        prompt_tokens: 10,
        completion_tokens: 3,
    };
    {
        let db = Db::open(&path).unwrap();
        let cache = JudgeCache::new(&db, true);
        assert_eq!(cache.get("k1").unwrap(), None);
        cache.put("k1", "m", &value).unwrap();
    }
    let db = Db::open(&path).unwrap();
    let cache = JudgeCache::new(&db, true);
    assert_eq!(cache.get("k1").unwrap(), Some(value.clone()));
    let stats = cache.stats().unwrap();
    assert_eq!((stats.entries, stats.hits, stats.misses), (1, 1, 0));
    // --no-cache: never read, still counted as misses.
    let off = JudgeCache::new(&db, false);
    assert_eq!(off.get("k1").unwrap(), None);
    assert_eq!(off.stats().unwrap().misses, 1);
}

#[test]
fn a_version_one_database_gains_the_cache_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(gleaner::store::db::MIGRATIONS[0])
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO audit_log(at, who, action) VALUES ('t', 'me', 'import')",
            [],
        )
        .unwrap();
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(db.version().unwrap(), SCHEMA_VERSION);
    assert!(SCHEMA_VERSION >= 2);
    let n: i64 = db
        .conn
        .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "existing rows kept");
    JudgeCache::new(&db, true)
        .put(
            "k",
            "m",
            &Cached {
                reply: "r".into(),
                prompt_tokens: 0,
                completion_tokens: 0,
            },
        )
        .unwrap();
}
