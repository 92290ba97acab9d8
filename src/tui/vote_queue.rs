//! The database side of the voting screen: building an annotator's (or adjudicator's)
//! queue with Left/Right as placed for them, and writing a submission — mapping the
//! adjudicator's sides back to verdicts here, so the screen never learns the mapping.

use std::collections::HashMap;
use std::path::Path;

use super::vote::{VoteItem, VoteView};
use crate::eval::report;
use crate::eval::session::{self, Role};
use crate::eval::votes::{self, Side, Verdict};
use crate::store::Workspace;

fn db(dir: &Path) -> Result<crate::store::Db, String> {
    Workspace::open(dir)
        .and_then(|ws| ws.db())
        .map_err(|e| e.message)
}

/// The queue, and the connection the screen's submissions go through.
pub fn load(dir: &Path, name: &str, who: &str) -> Result<(crate::store::Db, VoteView), String> {
    let db = db(dir)?;
    let s = session::load(&db, name)?;
    let role = s.config.role(who).ok_or_else(|| {
        format!(
            "`{who}` is not in session `{name}` (annotators: {}; adjudicators: {})",
            s.config.annotators.join(", "),
            s.config.adjudicators.join(", ")
        )
    })?;
    let items: HashMap<&str, &session::NewItem> =
        s.items.iter().map(|i| (i.id.as_str(), i)).collect();
    let placed = session::placements(&db, name, who)?;
    let side_by_side = |id: &str, a_on_left: bool| {
        let it = items[id];
        if a_on_left {
            (it.a.clone(), it.b.clone())
        } else {
            (it.b.clone(), it.a.clone())
        }
    };
    let (queue, total, done) = match role {
        Role::Annotator => {
            let submitted = votes::submitted(&db, name, who)?;
            let queue: Vec<VoteItem> = placed
                .iter()
                .filter(|(id, _)| !submitted.contains(id))
                .map(|(id, p)| {
                    let (left, right) = side_by_side(id, p.a_on_left);
                    VoteItem {
                        item_id: id.clone(),
                        left,
                        right,
                        aspects: s.config.aspects.clone(),
                        others: Vec::new(),
                    }
                })
                .collect();
            (queue, placed.len(), submitted.len())
        }
        Role::Adjudicator => {
            let (_, outcomes) = report::gather(&db, name)?;
            let mut disputed: HashMap<&str, Vec<&crate::eval::aggregate::Outcome>> = HashMap::new();
            // Only what the annotators finished without a majority: an item still
            // missing votes may yet get one.
            for o in crate::eval::aggregate::disputed(&outcomes)
                .into_iter()
                .filter(|o| o.votes.iter().all(Option::is_some))
            {
                disputed.entry(o.item_id.as_str()).or_default().push(o);
            }
            let resolved: usize = outcomes
                .iter()
                .filter(|o| o.majority.is_none() && o.adjudicated.is_some())
                .map(|o| o.item_id.as_str())
                .collect::<std::collections::HashSet<_>>()
                .len();
            let queue: Vec<VoteItem> = placed
                .iter()
                .filter_map(|(id, p)| {
                    let open = disputed.get(id.as_str())?;
                    let (left, right) = side_by_side(id, p.a_on_left);
                    Some(VoteItem {
                        item_id: id.clone(),
                        left,
                        right,
                        aspects: open.iter().map(|o| o.aspect.clone()).collect(),
                        others: open
                            .iter()
                            .map(|o| {
                                s.config
                                    .annotators
                                    .iter()
                                    .cloned()
                                    .zip(o.votes.iter().map(|v| v.map(|v| v.to_side(p.a_on_left))))
                                    .collect()
                            })
                            .collect(),
                    })
                })
                .collect();
            let total = queue.len() + resolved;
            (queue, total, resolved)
        }
    };
    let view = VoteView::new(
        name,
        who,
        role == Role::Adjudicator,
        &s.config.guidelines,
        queue,
        total,
        done,
    );
    Ok((db, view))
}

pub fn submit(
    db: &crate::store::Db,
    view: &VoteView,
    item_id: &str,
    cast: &[(String, Side)],
    comment: Option<&str>,
    seconds: f64,
) -> Result<(), String> {
    if !view.adjudicator {
        return votes::submit(
            db,
            &view.session,
            &view.annotator,
            item_id,
            cast,
            comment,
            seconds,
        );
    }
    let a_on_left = session::placements(db, &view.session, &view.annotator)?
        .into_iter()
        .find(|(id, _)| id == item_id)
        .map(|(_, p)| p.a_on_left)
        .ok_or_else(|| format!("item {item_id} is not placed for {}", view.annotator))?;
    let verdicts: Vec<(String, Verdict)> = cast
        .iter()
        .map(|(aspect, side)| (aspect.clone(), Verdict::from_side(*side, a_on_left)))
        .collect();
    votes::adjudicate(db, &view.session, item_id, &verdicts, &view.annotator)
}
