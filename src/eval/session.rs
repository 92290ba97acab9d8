//! Evaluation sessions: two versions (A and B) of the same items, a seeded sample of
//! them, and per annotator a shuffled order and a left/right coin per item — recorded
//! in the database, which is the only place that says which version was on the left.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::sample::{Rng, sample};
use crate::store::Db;
use crate::store::decisions::Texts;

/// What to do with an item/aspect no majority decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TiePolicy {
    /// To the adjudicator's queue (default).
    #[default]
    Dispute,
    /// Counted as a tie.
    Tie,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionConfig {
    pub name: String,
    /// Where A and B came from (shown in reports, never to annotators).
    pub source: String,
    pub a_label: String,
    pub b_label: String,
    pub annotators: Vec<String>,
    pub adjudicators: Vec<String>,
    pub aspects: Vec<String>,
    pub guidelines: String,
    pub sample_size: Option<usize>,
    pub seed: u64,
    pub stratify: Option<String>,
    pub tie_policy: TiePolicy,
}

pub const DEFAULT_ASPECTS: &[&str] = &["overall", "instruction_input", "output"];

/// An item as created: its two versions and its stratum.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub id: String,
    pub a: Texts,
    pub b: Texts,
    pub stratum: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub config: SessionConfig,
    pub items: Vec<NewItem>,
    pub fingerprint: String,
}

/// Where an item sits for one annotator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub position: usize,
    pub a_on_left: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Annotator,
    Adjudicator,
}

impl SessionConfig {
    pub fn role(&self, who: &str) -> Option<Role> {
        if self.annotators.iter().any(|a| a == who) {
            Some(Role::Annotator)
        } else if self.adjudicators.iter().any(|a| a == who) {
            Some(Role::Adjudicator)
        } else {
            None
        }
    }
}

fn fingerprint(
    config: &SessionConfig,
    items: &[NewItem],
    placements: &[(String, String, Placement)],
) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(
        serde_json::to_string(&(&config.aspects, &config.annotators))
            .expect("json")
            .as_bytes(),
    );
    for it in items {
        h.update(
            serde_json::to_string(&(&it.id, &it.a, &it.b))
                .expect("json")
                .as_bytes(),
        );
    }
    for (who, id, p) in placements {
        h.update(format!("{who}\0{id}\0{}\0{}", p.position, p.a_on_left).as_bytes());
    }
    format!("{:032x}", h.digest128())
}

/// Sample the items, place them for every annotator and adjudicator, and store it all
/// in one transaction. Refuses an existing name.
pub fn create(db: &Db, config: SessionConfig, all: Vec<NewItem>) -> Result<Session, String> {
    if all.is_empty() {
        return Err("no items to evaluate".into());
    }
    if config.annotators.is_empty() {
        return Err("a session needs at least one annotator".into());
    }
    if config.aspects.is_empty() {
        return Err("a session needs at least one aspect".into());
    }
    let mut aspects: Vec<&String> = config.aspects.iter().collect();
    aspects.sort();
    if aspects.windows(2).any(|w| w[0] == w[1]) || aspects.iter().any(|a| a.trim().is_empty()) {
        return Err("aspects must be distinct and non-empty".into());
    }
    let mut ids: Vec<&str> = all.iter().map(|i| i.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!(
            "item id `{}` appears twice; ids must be unique",
            w[0]
        ));
    }
    let mut names: Vec<&String> = config
        .annotators
        .iter()
        .chain(&config.adjudicators)
        .collect();
    names.sort();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err("annotator and adjudicator names must be distinct".into());
    }
    let strata: Vec<Option<String>> = all.iter().map(|i| i.stratum.clone()).collect();
    let size = config.sample_size.unwrap_or(all.len());
    let picked = sample(&strata, size, config.seed, config.stratify.is_some());
    let items: Vec<NewItem> = picked.into_iter().map(|i| all[i].clone()).collect();
    let mut placements = Vec::new();
    for who in config.annotators.iter().chain(&config.adjudicators) {
        let mut rng = Rng::derived(config.seed, who);
        let mut order: Vec<usize> = (0..items.len()).collect();
        rng.shuffle(&mut order);
        for (position, i) in order.into_iter().enumerate() {
            placements.push((
                who.clone(),
                items[i].id.clone(),
                Placement {
                    position,
                    a_on_left: rng.coin(),
                },
            ));
        }
    }
    let fp = fingerprint(&config, &items, &placements);
    let tx = db.write_tx().map_err(|e| e.to_string())?;
    let exists: Option<String> = tx
        .query_row(
            "SELECT name FROM eval_sessions WHERE name = ?1",
            [&config.name],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| e.to_string())?;
    if exists.is_some() {
        return Err(format!("a session named `{}` already exists", config.name));
    }
    let run = || -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO eval_sessions(name, created_at, config, fingerprint) VALUES (?1, ?2, ?3, ?4)",
            params![
                config.name,
                crate::util::now_rfc3339(),
                serde_json::to_string(&config).expect("json"),
                fp
            ],
        )?;
        for (k, it) in items.iter().enumerate() {
            tx.execute(
                "INSERT INTO eval_items(session, item_id, position, a, b, stratum) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    config.name,
                    it.id,
                    k as i64,
                    serde_json::to_string(&it.a).expect("json"),
                    serde_json::to_string(&it.b).expect("json"),
                    it.stratum
                ],
            )?;
        }
        for (who, id, p) in &placements {
            tx.execute(
                "INSERT INTO eval_assignments(session, annotator, item_id, position, a_on_left) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![config.name, who, id, p.position as i64, p.a_on_left],
            )?;
        }
        Ok(())
    };
    run().map_err(|e| format!("cannot store the session: {e}"))?;
    tx.commit().map_err(|e| e.to_string())?;
    Ok(Session {
        config,
        items,
        fingerprint: fp,
    })
}

pub fn load(db: &Db, name: &str) -> Result<Session, String> {
    let row: Option<(String, String)> = db
        .conn
        .query_row(
            "SELECT config, fingerprint FROM eval_sessions WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(|e| e.to_string())?;
    let Some((config, fingerprint)) = row else {
        let known = list(db).unwrap_or_default().join(", ");
        return Err(format!(
            "no evaluation session `{name}` (sessions: {})",
            if known.is_empty() { "none" } else { &known }
        ));
    };
    let config: SessionConfig =
        serde_json::from_str(&config).map_err(|e| format!("session `{name}` config: {e}"))?;
    let mut stmt = db
        .conn
        .prepare(
            "SELECT item_id, a, b, stratum FROM eval_items WHERE session = ?1 ORDER BY position",
        )
        .map_err(|e| e.to_string())?;
    let items = stmt
        .query_map([name], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })
        .map_err(|e| e.to_string())?
        .map(|row| {
            let (id, a, b, stratum) = row.map_err(|e| e.to_string())?;
            Ok(NewItem {
                id,
                a: serde_json::from_str(&a).map_err(|e| e.to_string())?,
                b: serde_json::from_str(&b).map_err(|e| e.to_string())?,
                stratum,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Session {
        config,
        items,
        fingerprint,
    })
}

pub fn list(db: &Db) -> Result<Vec<String>, String> {
    let mut stmt = db
        .conn
        .prepare("SELECT name FROM eval_sessions ORDER BY created_at")
        .map_err(|e| e.to_string())?;
    let names = stmt
        .query_map([], |r| r.get(0))
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| e.to_string())?;
    Ok(names)
}

/// Every item of the session placed for `who`, in their order: (item id, placement).
pub fn placements(db: &Db, session: &str, who: &str) -> Result<Vec<(String, Placement)>, String> {
    let mut stmt = db
        .conn
        .prepare(
            "SELECT item_id, position, a_on_left FROM eval_assignments
             WHERE session = ?1 AND annotator = ?2 ORDER BY position",
        )
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map(params![session, who], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Placement {
                    position: r.get::<_, i64>(1)? as usize,
                    a_on_left: r.get(2)?,
                },
            ))
        })
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok(rows)
}
