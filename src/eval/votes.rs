//! Votes as annotators cast them (left / tie / right, per aspect), one transaction per
//! submitted item; adjudications; and moving votes between machines as files, where an
//! import is idempotent and refuses conflicting duplicates.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::Path;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::store::Db;

/// What an annotator pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Left,
    Tie,
    Right,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Tie => "tie",
            Side::Right => "right",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "left" => Side::Left,
            "tie" => Side::Tie,
            "right" => Side::Right,
            _ => return None,
        })
    }
}

/// An outcome for version B against version A ("Ours vs Raw": win = B better).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Lose,
    Tie,
    Win,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Lose => "lose",
            Verdict::Tie => "tie",
            Verdict::Win => "win",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "lose" => Verdict::Lose,
            "tie" => Verdict::Tie,
            "win" => Verdict::Win,
            _ => return None,
        })
    }

    /// lose < tie < win, for agreement statistics.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// A vote mapped back from the screen to the versions.
    pub fn from_side(side: Side, a_on_left: bool) -> Self {
        match (side, a_on_left) {
            (Side::Tie, _) => Verdict::Tie,
            (Side::Left, true) | (Side::Right, false) => Verdict::Lose,
            (Side::Left, false) | (Side::Right, true) => Verdict::Win,
        }
    }

    /// The side a verdict appears on for a reader whose left holds A when `a_on_left`.
    pub fn to_side(self, a_on_left: bool) -> Side {
        match (self, a_on_left) {
            (Verdict::Tie, _) => Side::Tie,
            (Verdict::Lose, true) | (Verdict::Win, false) => Side::Left,
            (Verdict::Lose, false) | (Verdict::Win, true) => Side::Right,
        }
    }
}

/// One stored vote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    pub session: String,
    pub item_id: String,
    pub annotator: String,
    pub aspect: String,
    pub choice: Side,
    pub at: String,
    pub seconds_spent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Store an item's votes and its submission in one transaction. A second submission of
/// the same item by the same annotator is refused (votes can change until submitted).
#[allow(clippy::too_many_arguments)]
pub fn submit(
    db: &Db,
    session: &str,
    annotator: &str,
    item_id: &str,
    votes: &[(String, Side)],
    comment: Option<&str>,
    seconds: f64,
) -> Result<(), String> {
    let tx = db.write_tx().map_err(|e| e.to_string())?;
    let done: Option<String> = tx
        .query_row(
            "SELECT submitted_at FROM eval_submissions WHERE session = ?1 AND item_id = ?2 AND annotator = ?3",
            params![session, item_id, annotator],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| e.to_string())?;
    if done.is_some() {
        return Err(format!("{annotator} already submitted item {item_id}"));
    }
    let at = crate::util::now_rfc3339();
    for (aspect, side) in votes {
        tx.execute(
            "INSERT INTO votes(session, item_id, annotator, aspect, choice, comment, at, seconds_spent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![session, item_id, annotator, aspect, side.name(), comment, at, seconds],
        )
        .map_err(|e| format!("cannot save the vote: {e}"))?;
    }
    tx.execute(
        "INSERT INTO eval_submissions(session, item_id, annotator, submitted_at, seconds_spent, comment)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![session, item_id, annotator, at, seconds, comment],
    )
    .map_err(|e| format!("cannot save the submission: {e}"))?;
    tx.commit()
        .map_err(|e| format!("cannot save the votes: {e}"))
}

/// Items `annotator` has submitted.
pub fn submitted(db: &Db, session: &str, annotator: &str) -> Result<HashSet<String>, String> {
    let mut stmt = db
        .conn
        .prepare("SELECT item_id FROM eval_submissions WHERE session = ?1 AND annotator = ?2")
        .map_err(|e| e.to_string())?;
    stmt.query_map(params![session, annotator], |r| r.get(0))
        .map_err(|e| e.to_string())?
        .collect::<Result<HashSet<String>, _>>()
        .map_err(|e| e.to_string())
}

pub fn votes(db: &Db, session: &str) -> Result<Vec<Vote>, String> {
    let mut stmt = db
        .conn
        .prepare(
            "SELECT session, item_id, annotator, aspect, choice, at, seconds_spent, comment
             FROM votes WHERE session = ?1 ORDER BY item_id, annotator, aspect",
        )
        .map_err(|e| e.to_string())?;
    stmt.query_map([session], |r| {
        let choice: String = r.get(4)?;
        Ok(Vote {
            session: r.get(0)?,
            item_id: r.get(1)?,
            annotator: r.get(2)?,
            aspect: r.get(3)?,
            choice: Side::parse(&choice).unwrap_or(Side::Tie),
            at: r.get(5)?,
            seconds_spent: r.get(6)?,
            comment: r.get(7)?,
        })
    })
    .map_err(|e| e.to_string())?
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| e.to_string())
}

/// Seconds each annotator spent per submitted item.
pub fn times(db: &Db, session: &str) -> Result<HashMap<String, Vec<f64>>, String> {
    let mut stmt = db
        .conn
        .prepare("SELECT annotator, seconds_spent FROM eval_submissions WHERE session = ?1")
        .map_err(|e| e.to_string())?;
    let mut out: HashMap<String, Vec<f64>> = HashMap::new();
    let rows = stmt
        .query_map([session], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<f64>>(1)?))
        })
        .map_err(|e| e.to_string())?;
    for row in rows {
        let (who, s) = row.map_err(|e| e.to_string())?;
        if let Some(s) = s {
            out.entry(who).or_default().push(s);
        }
    }
    Ok(out)
}

pub fn adjudicate(
    db: &Db,
    session: &str,
    item_id: &str,
    verdicts: &[(String, Verdict)],
    who: &str,
) -> Result<(), String> {
    let tx = db.write_tx().map_err(|e| e.to_string())?;
    for (aspect, v) in verdicts {
        tx.execute(
            "INSERT INTO eval_adjudications(session, item_id, aspect, verdict, adjudicator, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(session, item_id, aspect) DO UPDATE SET verdict = excluded.verdict,
               adjudicator = excluded.adjudicator, at = excluded.at",
            params![
                session,
                item_id,
                aspect,
                v.name(),
                who,
                crate::util::now_rfc3339()
            ],
        )
        .map_err(|e| format!("cannot save the adjudication: {e}"))?;
    }
    tx.commit().map_err(|e| e.to_string())
}

/// (item, aspect) → the adjudicated verdict.
pub fn adjudications(db: &Db, session: &str) -> Result<HashMap<(String, String), Verdict>, String> {
    let mut stmt = db
        .conn
        .prepare("SELECT item_id, aspect, verdict FROM eval_adjudications WHERE session = ?1")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([session], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for row in rows {
        let (item, aspect, v) = row.map_err(|e| e.to_string())?;
        if let Some(v) = Verdict::parse(&v) {
            out.insert((item, aspect), v);
        }
    }
    Ok(out)
}

/// The first line of a votes file: which session, and its fingerprint (same items, same
/// placements), so votes never land in a different session of the same name.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    gleaner_votes: u32,
    session: String,
    fingerprint: String,
}

/// Write the session's votes (optionally one annotator's) as JSONL; returns the count.
pub fn export_votes(
    db: &Db,
    session: &str,
    annotator: Option<&str>,
    out: &Path,
) -> Result<usize, String> {
    let s = super::session::load(db, session)?;
    let rows: Vec<Vote> = votes(db, session)?
        .into_iter()
        .filter(|v| annotator.is_none_or(|a| v.annotator == a))
        .collect();
    let tmp = out.with_extension("tmp");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?,
    );
    let header = Header {
        gleaner_votes: 1,
        session: session.to_string(),
        fingerprint: s.fingerprint,
    };
    let write = |f: &mut std::io::BufWriter<std::fs::File>, line: String| {
        f.write_all(line.as_bytes())
            .and_then(|()| f.write_all(b"\n"))
            .map_err(|e| format!("{}: {e}", tmp.display()))
    };
    write(&mut f, serde_json::to_string(&header).expect("json"))?;
    for v in &rows {
        write(&mut f, serde_json::to_string(v).expect("json"))?;
    }
    f.flush().map_err(|e| e.to_string())?;
    drop(f);
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(rows.len())
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    pub imported: usize,
    /// Already present with the same choice.
    pub unchanged: usize,
    /// Present with a different choice: (item, annotator, aspect, here, in the file).
    pub conflicts: Vec<(String, String, String, String, String)>,
}

/// Read a votes file into this workspace. All or nothing: with any conflict nothing is
/// written and the report lists them. Importing the same file again changes nothing.
pub fn import_votes(db: &Db, path: &Path) -> Result<ImportReport, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let first = lines
        .next()
        .ok_or_else(|| format!("{}: empty file", path.display()))?
        .map_err(|e| e.to_string())?;
    let header: Header = serde_json::from_str(&first)
        .map_err(|e| format!("{}:1: not a gleaner votes file: {e}", path.display()))?;
    let session = super::session::load(db, &header.session)?;
    if session.fingerprint != header.fingerprint {
        return Err(format!(
            "{}: the votes belong to another session `{}` (different items or placements)",
            path.display(),
            header.session
        ));
    }
    let mut incoming = Vec::new();
    for (n, line) in lines.enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Vote = serde_json::from_str(&line)
            .map_err(|e| format!("{}:{}: {e}", path.display(), n + 2))?;
        if v.session != header.session {
            return Err(format!(
                "{}:{}: vote of another session",
                path.display(),
                n + 2
            ));
        }
        let cfg = &session.config;
        if !cfg.annotators.contains(&v.annotator)
            || !cfg.aspects.contains(&v.aspect)
            || !session.items.iter().any(|i| i.id == v.item_id)
        {
            return Err(format!(
                "{}:{}: item {}, annotator {}, aspect {} is not part of session `{}`",
                path.display(),
                n + 2,
                v.item_id,
                v.annotator,
                v.aspect,
                header.session
            ));
        }
        incoming.push(v);
    }
    let existing: HashMap<(String, String, String), Side> = votes(db, &header.session)?
        .into_iter()
        .map(|v| ((v.item_id, v.annotator, v.aspect), v.choice))
        .collect();
    let mut report = ImportReport::default();
    let mut fresh = Vec::new();
    let mut in_file: HashMap<(String, String, String), Side> = HashMap::new();
    for v in incoming {
        let key = (v.item_id.clone(), v.annotator.clone(), v.aspect.clone());
        // The same vote twice in one file counts once; two different ones conflict.
        if let Some(first) = in_file.get(&key) {
            if *first == v.choice {
                report.unchanged += 1;
            } else {
                report.conflicts.push((
                    v.item_id,
                    v.annotator,
                    v.aspect,
                    first.name().into(),
                    v.choice.name().into(),
                ));
            }
            continue;
        }
        in_file.insert(key, v.choice);
        match existing.get(&(v.item_id.clone(), v.annotator.clone(), v.aspect.clone())) {
            Some(here) if *here == v.choice => report.unchanged += 1,
            Some(here) => report.conflicts.push((
                v.item_id,
                v.annotator,
                v.aspect,
                here.name().into(),
                v.choice.name().into(),
            )),
            None => fresh.push(v),
        }
    }
    if !report.conflicts.is_empty() {
        return Ok(report);
    }
    let tx = db.write_tx().map_err(|e| e.to_string())?;
    for v in &fresh {
        tx.execute(
            "INSERT INTO votes(session, item_id, annotator, aspect, choice, comment, at, seconds_spent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![v.session, v.item_id, v.annotator, v.aspect, v.choice.name(), v.comment, v.at, v.seconds_spent],
        )
        .map_err(|e| e.to_string())?;
        tx.execute(
            "INSERT OR IGNORE INTO eval_submissions(session, item_id, annotator, submitted_at, seconds_spent, comment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![v.session, v.item_id, v.annotator, v.at, v.seconds_spent, v.comment],
        )
        .map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())?;
    report.imported = fresh.len();
    Ok(report)
}
