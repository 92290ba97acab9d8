//! The revision review screen's state and its part of the reducer. Decisions are not
//! applied here: the reducer asks the app to write them ([`ReviewOp`]), and only the
//! write's result ([`Action::ReviewApplied`]) changes what the screen shows, so nothing
//! appears done before it is in the database.

use std::time::Instant;

use super::action::Action;
use super::reducer::Effect;
use super::state::{AppState, Level, Mode};
use crate::review::{Applied, ReviewFilter, ReviewItem};
use crate::store::decisions::ReviewState;

#[derive(Debug, Clone)]
pub struct ReviewView {
    pub stage: String,
    pub who: String,
    pub items: Vec<ReviewItem>,
    pub filter: ReviewFilter,
    /// Indices into `items` that pass the filter.
    pub visible: Vec<usize>,
    pub cursor: usize,
    /// Inline word diff instead of side by side.
    pub diff: bool,
    pub trace: bool,
    /// Both sides scroll together.
    pub scroll: usize,
    /// A bulk decision waiting for confirmation: (state, items).
    pub confirm: Option<(ReviewState, Vec<usize>)>,
    /// When the current item was shown (time spent is recorded with the decision).
    pub shown_at: Instant,
    /// The screen is up (help returns to it).
    pub active: bool,
}

impl ReviewView {
    pub fn new(stage: &str, who: &str, items: Vec<ReviewItem>) -> Self {
        let mut v = Self {
            stage: stage.to_string(),
            who: who.to_string(),
            items,
            filter: ReviewFilter::All,
            visible: Vec::new(),
            cursor: 0,
            diff: false,
            trace: true,
            scroll: 0,
            confirm: None,
            shown_at: Instant::now(),
            active: true,
        };
        v.refilter(None);
        v
    }

    pub fn current(&self) -> Option<usize> {
        self.visible.get(self.cursor).copied()
    }

    pub fn item(&self) -> Option<&ReviewItem> {
        self.current().map(|i| &self.items[i])
    }

    /// Items with any decision but pending.
    pub fn reviewed(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.state() != ReviewState::Pending)
            .count()
    }

    /// Recompute the visible list, staying on `keep` when it still passes.
    fn refilter(&mut self, keep: Option<usize>) {
        self.visible = (0..self.items.len())
            .filter(|i| self.filter.matches(&self.items[*i]))
            .collect();
        if let Some(k) = keep
            && let Some(pos) = self.visible.iter().position(|i| *i >= k)
        {
            self.cursor = pos;
        }
        self.cursor = self.cursor.min(self.visible.len().saturating_sub(1));
    }

    fn moved(&mut self) {
        self.scroll = 0;
        self.shown_at = Instant::now();
    }
}

/// A write the app performs on the review session.
#[derive(Debug, Clone, PartialEq)]
pub enum ReviewOp {
    Decide {
        indices: Vec<usize>,
        state: ReviewState,
        action: String,
        seconds: Option<f64>,
        /// Move to the next item once written.
        advance: bool,
    },
    /// Open the current revision in `$EDITOR`; a changed text is saved as edited.
    Edit {
        index: usize,
        seconds: f64,
    },
    Undo,
    Redo,
}

pub fn review_keys(s: &mut AppState, action: Action, fx: &mut Vec<Effect>) {
    let action = match action {
        Action::ReviewFailed(msg) => {
            s.status = Some((msg, Level::Error));
            return;
        }
        Action::ReviewLoaded { stage, who, items } => {
            s.review = Some(ReviewView::new(&stage, &who, items));
            s.mode = Mode::Review;
            return;
        }
        other => other,
    };
    let Some(v) = s.review.as_mut() else {
        s.mode = Mode::Browse;
        return;
    };
    if let Some((state, indices)) = v.confirm.clone() {
        match action {
            Action::Confirm => {
                v.confirm = None;
                fx.push(Effect::Review(ReviewOp::Decide {
                    action: format!("bulk_{}", verb(state)),
                    indices,
                    state,
                    seconds: None,
                    advance: false,
                }));
            }
            Action::Back => v.confirm = None,
            Action::Quit => s.quit = true,
            _ => {}
        }
        return;
    }
    let page = s.height.saturating_sub(8).max(1) as usize;
    let seconds = v.shown_at.elapsed().as_secs_f64();
    match action {
        Action::Quit => s.quit = true,
        Action::Back => {
            v.active = false;
            s.mode = Mode::Browse;
        }
        Action::Help => s.mode = Mode::Help,
        Action::NextItem if v.cursor + 1 < v.visible.len() => {
            v.cursor += 1;
            v.moved();
        }
        Action::PrevItem if v.cursor > 0 => {
            v.cursor -= 1;
            v.moved();
        }
        Action::Down | Action::ReaderDown | Action::ScrollDown => v.scroll += 1,
        Action::Up | Action::ReaderUp | Action::ScrollUp => v.scroll = v.scroll.saturating_sub(1),
        Action::PageDown | Action::ReaderPageDown => v.scroll += page,
        Action::PageUp | Action::ReaderPageUp => v.scroll = v.scroll.saturating_sub(page),
        Action::ToggleDiff => v.diff = !v.diff,
        Action::ToggleTrace => v.trace = !v.trace,
        Action::CycleReviewFilter => {
            let keep = v.current();
            v.filter = v.filter.next();
            v.refilter(keep);
            v.moved();
        }
        Action::SetReviewFilter(f) => {
            let keep = v.current();
            v.filter = f;
            v.refilter(keep);
            v.moved();
        }
        Action::Approve if v.item().is_some_and(|i| i.state() == ReviewState::Edited) => {
            // Approving what is shown: the edit already is. Writing `approved` would
            // drop the person's text.
            s.status = Some((
                "already approved with your edit (x rejects it, u undoes the edit)".into(),
                Level::Info,
            ));
        }
        Action::Approve | Action::Reject => {
            if let Some(i) = v.current() {
                let state = if action == Action::Approve {
                    ReviewState::Approved
                } else {
                    ReviewState::Rejected
                };
                fx.push(Effect::Review(ReviewOp::Decide {
                    indices: vec![i],
                    state,
                    action: verb(state).into(),
                    seconds: Some(seconds),
                    advance: true,
                }));
            }
        }
        Action::EditRevision => {
            if let Some(index) = v.current() {
                fx.push(Effect::Review(ReviewOp::Edit { index, seconds }));
            }
        }
        Action::BulkApprove | Action::BulkReject => {
            let state = if action == Action::BulkApprove {
                ReviewState::Approved
            } else {
                ReviewState::Rejected
            };
            // Bulk decisions leave human edits alone (approval: they are approved
            // already; rejection would throw the text away) unless the filter is
            // `edited`, where rejecting them all is what was asked.
            let targets: Vec<usize> = v
                .visible
                .iter()
                .copied()
                .filter(|i| {
                    v.items[*i].state() != ReviewState::Edited
                        || (state == ReviewState::Rejected && v.filter == ReviewFilter::Edited)
                })
                .collect();
            if targets.is_empty() {
                s.status = Some(("nothing in this filter to change".into(), Level::Error));
            } else {
                v.confirm = Some((state, targets));
            }
        }
        Action::Undo => fx.push(Effect::Review(ReviewOp::Undo)),
        Action::Redo => fx.push(Effect::Review(ReviewOp::Redo)),
        Action::ReviewApplied { changes, advance } => applied(s, changes, advance),
        _ => {}
    }
}

fn verb(state: ReviewState) -> &'static str {
    match state {
        ReviewState::Approved => "approve",
        ReviewState::Rejected => "reject",
        ReviewState::Edited => "edit",
        ReviewState::Pending => "reset",
    }
}

/// A write landed: show it, then move on when asked.
fn applied(s: &mut AppState, changes: Applied, advance: bool) {
    let Some(v) = s.review.as_mut() else { return };
    let n = changes.len();
    let last = changes.last().map(|(i, c)| (*i, c.state()));
    for (i, current) in changes {
        if let Some(item) = v.items.get_mut(i) {
            item.current = current;
        }
    }
    let here = v.current();
    v.refilter(here);
    if let Some((i, state)) = last {
        if advance {
            // With a state filter the decided item leaves the list and the next slides
            // in under the cursor; otherwise step forward.
            if v.visible.contains(&i) && v.cursor + 1 < v.visible.len() {
                v.cursor += 1;
            }
        } else if let Some(pos) = v.visible.iter().position(|x| *x == i) {
            v.cursor = pos;
        }
        v.moved();
        let what = if n == 1 {
            format!("{} {}", v.items[i].id, state.name())
        } else {
            format!("{n} items {}", state.name())
        };
        s.status = Some((format!("saved: {what}"), Level::Info));
    }
}
