//! Review decisions: an append-only event log in the workspace database (`decisions`).
//! An item's state is its newest event; undo and redo append events, so history is
//! never rewritten. Each call commits before it returns (WAL, `synchronous=FULL`), which
//! is what lets a screen show a decision as done only once it is durable.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::Db;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Pending,
    Approved,
    Rejected,
    /// Approved with a person's own text.
    Edited,
}

impl ReviewState {
    pub fn name(self) -> &'static str {
        match self {
            ReviewState::Pending => "pending",
            ReviewState::Approved => "approved",
            ReviewState::Rejected => "rejected",
            ReviewState::Edited => "edited",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ReviewState::Pending,
            "approved" => ReviewState::Approved,
            "rejected" => ReviewState::Rejected,
            "edited" => ReviewState::Edited,
            _ => return None,
        })
    }
}

/// A sample's three texts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Texts {
    pub instruction: String,
    pub input: String,
    pub output: String,
}

/// What an item is now: its state, and a person's text when edited.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Current {
    pub state: Option<ReviewState>,
    pub edit: Option<Texts>,
    /// [`revision_key`] of the revision the decision was about (none in old logs).
    pub revision: Option<String>,
}

/// A short content key of a revision, so a decision about one text never carries over
/// to a different revision of the same item (after a rerun with other settings).
pub fn revision_key(t: &Texts) -> String {
    let bytes = serde_json::to_vec(t).expect("texts serialize");
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes))
}

impl Current {
    pub fn state(&self) -> ReviewState {
        self.state.unwrap_or(ReviewState::Pending)
    }
}

/// One change to append: the item goes to `state` (with `edit` when edited).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub item_id: String,
    pub state: ReviewState,
    pub edit: Option<Texts>,
    /// approve, reject, edit, bulk_approve, undo, redo, …
    pub action: String,
    pub seconds_spent: Option<f64>,
    /// [`revision_key`] of the revision decided on.
    pub revision: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Payload {
    action: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    edit: Option<Texts>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    revision: Option<String>,
}

/// One row of the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: i64,
    pub item_id: String,
    pub state: String,
    pub previous_state: Option<String>,
    pub who: String,
    pub at: String,
    pub seconds_spent: Option<f64>,
    pub action: String,
}

/// Append `changes` for `kind` (e.g. `review:aido.refine`) in one transaction; returns
/// each item's state before the change.
pub fn record(
    db: &Db,
    kind: &str,
    who: &str,
    changes: &[Change],
) -> rusqlite::Result<Vec<Current>> {
    let tx = db.write_tx()?;
    let mut before = Vec::with_capacity(changes.len());
    for c in changes {
        let prev = current_of(&tx, kind, &c.item_id)?;
        let payload = serde_json::to_string(&Payload {
            action: c.action.clone(),
            edit: c.edit.clone(),
            revision: c.revision.clone(),
        })
        .expect("payload serializes");
        tx.execute(
            "INSERT INTO decisions(item_id, kind, state, previous_state, who, at, seconds_spent, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                c.item_id,
                kind,
                c.state.name(),
                prev.state.map(ReviewState::name),
                who,
                crate::util::now_rfc3339(),
                c.seconds_spent,
                payload
            ],
        )?;
        before.push(prev);
    }
    tx.commit()?;
    Ok(before)
}

fn current_of(conn: &rusqlite::Connection, kind: &str, item: &str) -> rusqlite::Result<Current> {
    conn.query_row(
        "SELECT state, payload FROM decisions WHERE kind = ?1 AND item_id = ?2
         ORDER BY id DESC LIMIT 1",
        params![kind, item],
        |r| {
            Ok(to_current(
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
            ))
        },
    )
    .optional()
    .map(Option::unwrap_or_default)
}

fn to_current(state: String, payload: Option<String>) -> Current {
    let payload = payload.and_then(|p| serde_json::from_str::<Payload>(&p).ok());
    let (edit, revision) = payload.map_or((None, None), |p| (p.edit, p.revision));
    Current {
        state: ReviewState::parse(&state),
        edit,
        revision,
    }
}

/// One item's current state for `kind`.
pub fn current_one(db: &Db, kind: &str, item: &str) -> rusqlite::Result<Current> {
    current_of(&db.conn, kind, item)
}

/// Every item's current state for `kind`.
pub fn current(db: &Db, kind: &str) -> rusqlite::Result<HashMap<String, Current>> {
    let mut stmt = db.conn.prepare(
        "SELECT d.item_id, d.state, d.payload FROM decisions d
         JOIN (SELECT item_id, MAX(id) AS id FROM decisions WHERE kind = ?1 GROUP BY item_id) last
           ON d.id = last.id",
    )?;
    let rows = stmt.query_map([kind], |r| {
        Ok((r.get::<_, String>(0)?, to_current(r.get(1)?, r.get(2)?)))
    })?;
    rows.collect()
}

/// The full log of one item, oldest first.
pub fn history(db: &Db, kind: &str, item: &str) -> rusqlite::Result<Vec<Event>> {
    let mut stmt = db.conn.prepare(
        "SELECT id, item_id, state, previous_state, who, at, seconds_spent, payload
         FROM decisions WHERE kind = ?1 AND item_id = ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![kind, item], |r| {
        let payload: Option<String> = r.get(7)?;
        Ok(Event {
            id: r.get(0)?,
            item_id: r.get(1)?,
            state: r.get(2)?,
            previous_state: r.get(3)?,
            who: r.get(4)?,
            at: r.get(5)?,
            seconds_spent: r.get(6)?,
            action: payload
                .and_then(|p| serde_json::from_str::<Payload>(&p).ok())
                .map(|p| p.action)
                .unwrap_or_default(),
        })
    })?;
    rows.collect()
}

/// The newest review event's id (0 when there is none): a merge records it, and an
/// export of that merge can tell whether decisions were made since.
pub fn last_id(db: &Db) -> rusqlite::Result<i64> {
    db.conn.query_row(
        "SELECT COALESCE(MAX(id), 0) FROM decisions WHERE kind LIKE 'review:%'",
        [],
        |r| r.get(0),
    )
}

/// The meta key under which merge stage `name` records [`last_id`].
pub fn merged_at_key(name: &str) -> String {
    format!("merge:{name}:last_decision")
}

/// The decision kind of a refine stage's review.
pub fn review_kind(stage: &str) -> String {
    format!("review:{stage}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_event_wins_and_history_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("g.db")).unwrap();
        let change = |id: &str, state, edit: Option<Texts>, action: &str| Change {
            item_id: id.into(),
            state,
            edit,
            action: action.into(),
            seconds_spent: Some(1.5),
            revision: None,
        };
        let edit = Texts {
            instruction: "mine".into(),
            ..Texts::default()
        };
        let before = record(
            &db,
            "review:x",
            "ann",
            &[
                change("a", ReviewState::Approved, None, "approve"),
                change("b", ReviewState::Edited, Some(edit.clone()), "edit"),
            ],
        )
        .unwrap();
        assert_eq!(before, vec![Current::default(), Current::default()]);
        let before = record(
            &db,
            "review:x",
            "ann",
            &[change("a", ReviewState::Rejected, None, "reject")],
        )
        .unwrap();
        assert_eq!(before[0].state, Some(ReviewState::Approved));
        let now = current(&db, "review:x").unwrap();
        assert_eq!(now["a"].state(), ReviewState::Rejected);
        assert_eq!(now["b"].edit.as_ref(), Some(&edit));
        assert!(current(&db, "review:other").unwrap().is_empty());
        let h = history(&db, "review:x", "a").unwrap();
        let states: Vec<_> = h
            .iter()
            .map(|e| {
                (
                    e.state.as_str(),
                    e.previous_state.as_deref(),
                    e.action.as_str(),
                )
            })
            .collect();
        assert_eq!(
            states,
            vec![
                ("approved", None, "approve"),
                ("rejected", Some("approved"), "reject")
            ]
        );
    }
}
