//! Reviewing revisions (issue: AIDO refinement review): the items a refine stage
//! proposed, each with its original, its revision, the round trace and the consistency
//! scores; and a [`ReviewSession`] that records approve / reject / edit / bulk decisions
//! in the workspace database, with undo and redo as new events. The TUI's review screen
//! and the tests drive this; it knows nothing about terminals.

pub mod edit_file;
pub mod merge;

use std::collections::HashMap;

use polars::prelude::*;

use crate::error::{UserError, file_error};
use crate::stages::aido_refine::refine_loop::Round;
use crate::store::decisions::{self, Change, Current, ReviewState, Texts};
use crate::store::{Db, Workspace};

/// One revision to review.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewItem {
    pub id: String,
    pub original: Texts,
    pub revision: Texts,
    /// The refine stage's state: `revised` or `all_rounds_lost`.
    pub refine_state: String,
    pub proposed: bool,
    pub drifted: bool,
    pub eval_score: Option<i64>,
    pub instruction_similarity: Option<f64>,
    pub output_similarity: Option<f64>,
    pub order_disagreements: i64,
    pub rounds: Vec<Round>,
    /// The person's decision so far.
    pub current: Current,
}

impl ReviewItem {
    pub fn state(&self) -> ReviewState {
        self.current.state()
    }

    /// The revised text as it stands: a person's edit, or the stage's revision.
    pub fn revised(&self) -> &Texts {
        self.current.edit.as_ref().unwrap_or(&self.revision)
    }
}

/// The review queue's filters (cycled with one key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewFilter {
    All,
    Pending,
    Approved,
    Rejected,
    Edited,
    Drifted,
    AllRoundsLost,
}

impl ReviewFilter {
    pub const CYCLE: [ReviewFilter; 7] = [
        ReviewFilter::All,
        ReviewFilter::Pending,
        ReviewFilter::Approved,
        ReviewFilter::Rejected,
        ReviewFilter::Edited,
        ReviewFilter::Drifted,
        ReviewFilter::AllRoundsLost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ReviewFilter::All => "all",
            ReviewFilter::Pending => "pending",
            ReviewFilter::Approved => "approved",
            ReviewFilter::Rejected => "rejected",
            ReviewFilter::Edited => "edited",
            ReviewFilter::Drifted => "drifted",
            ReviewFilter::AllRoundsLost => "all_rounds_lost",
        }
    }

    pub fn next(self) -> Self {
        let i = Self::CYCLE.iter().position(|f| *f == self).unwrap_or(0);
        Self::CYCLE[(i + 1) % Self::CYCLE.len()]
    }

    pub fn matches(self, item: &ReviewItem) -> bool {
        match self {
            ReviewFilter::All => true,
            ReviewFilter::Pending => item.state() == ReviewState::Pending,
            ReviewFilter::Approved => item.state() == ReviewState::Approved,
            ReviewFilter::Rejected => item.state() == ReviewState::Rejected,
            ReviewFilter::Edited => item.state() == ReviewState::Edited,
            ReviewFilter::Drifted => item.drifted,
            ReviewFilter::AllRoundsLost => item.refine_state == "all_rounds_lost",
        }
    }
}

fn str_at(col: &Column, i: usize) -> Option<String> {
    col.str().ok()?.get(i).map(str::to_string)
}

/// The revisions of refine stage `stage` in snapshot order, with their decisions.
pub fn load_items(ws: &Workspace, db: &Db, stage: &str) -> Result<Vec<ReviewItem>, UserError> {
    let path = ws.sidecar_path(stage);
    if !path.exists() {
        return Err(
            UserError::new(format!("no `{stage}` results in {}", ws.dir.display())).with_hint(
                "run a recipe with an aido.refine stage first (gleaner run RECIPE -w WORKSPACE)",
            ),
        );
    }
    let frame = ws.read_frame(Some(&["id", "instruction", "input", "output"]))?;
    let ids = frame
        .column("id")
        .and_then(|c| c.str().cloned())
        .map_err(|e| UserError::new(e.to_string()))?;
    let side = crate::store::sidecar::aligned_columns(&path, &ids)?;
    let col = |name: &str| -> Result<&Column, UserError> {
        let full = format!("{stage}.{name}");
        side.iter()
            .find(|c| c.name().as_str() == full)
            .ok_or_else(|| file_error(&path, format!("has no column {full}: not a refine stage")))
    };
    let text = |name: &str| {
        frame
            .column(name)
            .map_err(|e| UserError::new(e.to_string()))
    };
    let (state, proposed, drifted) = (col("state")?, col("proposed")?, col("drifted")?);
    let (ri, rn, ro) = (col("instruction")?, col("input")?, col("output")?);
    let (score, isim, osim) = (
        col("eval_score")?,
        col("instruction_similarity")?,
        col("output_similarity")?,
    );
    let (disagree, trace) = (col("order_disagreements")?, col("trace")?);
    let (oi, on, oo) = (text("instruction")?, text("input")?, text("output")?);
    let current = decisions::current(db, &decisions::review_kind(stage))
        .map_err(|e| file_error(&ws.db_path(), e))?;
    let mut items = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let Some(id) = id else { continue };
        let Some(st) = str_at(state, i) else { continue };
        if st != "revised" && st != "all_rounds_lost" {
            continue;
        }
        let b = |c: &Column| c.bool().ok().and_then(|c| c.get(i)).unwrap_or(false);
        let f = |c: &Column| c.f64().ok().and_then(|c| c.get(i));
        let n = |c: &Column| c.i64().ok().and_then(|c| c.get(i));
        items.push(ReviewItem {
            id: id.to_string(),
            original: Texts {
                instruction: str_at(oi, i).unwrap_or_default(),
                input: str_at(on, i).unwrap_or_default(),
                output: str_at(oo, i).unwrap_or_default(),
            },
            revision: Texts {
                instruction: str_at(ri, i).unwrap_or_default(),
                input: str_at(rn, i).unwrap_or_default(),
                output: str_at(ro, i).unwrap_or_default(),
            },
            refine_state: st,
            proposed: b(proposed),
            drifted: b(drifted),
            eval_score: n(score),
            instruction_similarity: f(isim),
            output_similarity: f(osim),
            order_disagreements: n(disagree).unwrap_or(0),
            rounds: str_at(trace, i)
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default(),
            current: current.get(id).cloned().unwrap_or_default(),
        });
        // A decision about another text of this item (the stage ran again since) does
        // not count for this one: it goes back to pending.
        let item = items.last_mut().expect("pushed");
        if item
            .current
            .revision
            .as_ref()
            .is_some_and(|k| *k != decisions::revision_key(&item.revision))
        {
            item.current = Current::default();
        }
    }
    Ok(items)
}

/// One undoable step: the items it changed, each from → to.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    changes: Vec<(usize, Current, Current)>,
}

/// Decisions on a list of items, written to the database before they count.
pub struct ReviewSession {
    pub db: Db,
    pub kind: String,
    pub who: String,
    undo: Vec<Step>,
    redo: Vec<Step>,
}

/// The items a write changed, with their new state, for the screen to apply.
pub type Applied = Vec<(usize, Current)>;

impl ReviewSession {
    pub fn new(db: Db, stage: &str, who: &str) -> Self {
        Self {
            db,
            kind: decisions::review_kind(stage),
            who: who.to_string(),
            undo: Vec::new(),
            redo: Vec::new(),
        }
    }

    fn write(
        &self,
        items: &[ReviewItem],
        targets: &[(usize, Current)],
        action: &str,
        seconds: Option<f64>,
    ) -> Result<(), String> {
        let changes: Vec<Change> = targets
            .iter()
            .map(|(i, to)| Change {
                item_id: items[*i].id.clone(),
                state: to.state(),
                edit: to.edit.clone(),
                action: action.to_string(),
                seconds_spent: seconds,
                revision: Some(decisions::revision_key(&items[*i].revision)),
            })
            .collect();
        decisions::record(&self.db, &self.kind, &self.who, &changes)
            .map(|_| ())
            .map_err(|e| format!("cannot save the decision: {e}"))
    }

    /// Set `indices` to `state` (with `edit` when edited) as one undoable step.
    pub fn decide(
        &mut self,
        items: &[ReviewItem],
        indices: &[usize],
        state: ReviewState,
        edit: Option<Texts>,
        action: &str,
        seconds: Option<f64>,
    ) -> Result<Applied, String> {
        let targets: Vec<(usize, Current)> = indices
            .iter()
            .map(|i| {
                let to = Current {
                    state: Some(state),
                    edit: if state == ReviewState::Edited {
                        edit.clone()
                    } else {
                        None
                    },
                    revision: Some(decisions::revision_key(&items[*i].revision)),
                };
                (*i, to)
            })
            .collect();
        self.write(items, &targets, action, seconds)?;
        self.undo.push(Step {
            changes: targets
                .iter()
                .map(|(i, to)| (*i, items[*i].current.clone(), to.clone()))
                .collect(),
        });
        self.redo.clear();
        Ok(targets)
    }

    /// Refuse to undo or redo over a decision someone else made since.
    fn unchanged_since(
        &self,
        items: &[ReviewItem],
        expected: &[(usize, &Current)],
    ) -> Result<(), String> {
        for (i, want) in expected {
            let now = decisions::current_one(&self.db, &self.kind, &items[*i].id)
                .map_err(|e| e.to_string())?;
            if now.state() != want.state() || now.edit != want.edit {
                return Err(format!(
                    "{} was changed since (now {}); nothing undone",
                    items[*i].id,
                    now.state().name()
                ));
            }
        }
        Ok(())
    }

    /// Put back what the last step changed (a new event per item).
    pub fn undo(&mut self, items: &[ReviewItem]) -> Result<Option<Applied>, String> {
        let Some(step) = self.undo.pop() else {
            return Ok(None);
        };
        let expected: Vec<(usize, &Current)> =
            step.changes.iter().map(|(i, _, to)| (*i, to)).collect();
        self.unchanged_since(items, &expected)?;
        let targets: Vec<(usize, Current)> = step
            .changes
            .iter()
            .map(|(i, from, _)| (*i, from.clone()))
            .collect();
        if let Err(e) = self.write(items, &targets, "undo", None) {
            self.undo.push(step);
            return Err(e);
        }
        self.redo.push(step);
        Ok(Some(targets))
    }

    pub fn redo(&mut self, items: &[ReviewItem]) -> Result<Option<Applied>, String> {
        let Some(step) = self.redo.pop() else {
            return Ok(None);
        };
        let expected: Vec<(usize, &Current)> =
            step.changes.iter().map(|(i, from, _)| (*i, from)).collect();
        self.unchanged_since(items, &expected)?;
        let targets: Vec<(usize, Current)> = step
            .changes
            .iter()
            .map(|(i, _, to)| (*i, to.clone()))
            .collect();
        if let Err(e) = self.write(items, &targets, "redo", None) {
            self.redo.push(step);
            return Err(e);
        }
        self.undo.push(step);
        Ok(Some(targets))
    }
}

/// Counts by decision, for progress lines and merge messages.
pub fn tally(items: &[ReviewItem]) -> HashMap<ReviewState, usize> {
    let mut out = HashMap::new();
    for it in items {
        *out.entry(it.state()).or_insert(0) += 1;
    }
    out
}
