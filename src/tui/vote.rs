//! The blinded voting screen (`gleaner eval annotate`): two versions as Left and Right,
//! one key per aspect (left better / tie / right better), an optional comment, skip,
//! submit. The screen never holds which version is which: the app maps sides back from
//! the database when it writes, and only a written submission advances the screen.

use std::time::Instant;

use super::action::Action;
use super::reducer::Effect;
use super::state::{AppState, Input, InputKind, Level, Mode};
use crate::eval::votes::Side;
use crate::store::decisions::Texts;

#[derive(Debug, Clone, PartialEq)]
pub struct VoteItem {
    pub item_id: String,
    pub left: Texts,
    pub right: Texts,
    /// The aspects to vote on (an adjudicator gets only the disputed ones).
    pub aspects: Vec<String>,
    /// Adjudicator only: per aspect, every annotator's vote as it appears to them.
    pub others: Vec<Vec<(String, Option<Side>)>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VoteView {
    pub session: String,
    pub annotator: String,
    pub adjudicator: bool,
    pub guidelines: String,
    pub show_guidelines: bool,
    /// Items still to submit, in this annotator's order (a skipped one goes last).
    pub queue: Vec<VoteItem>,
    pub total: usize,
    pub submitted: usize,
    pub aspect: usize,
    pub choices: Vec<Option<Side>>,
    pub comment: String,
    pub diff: bool,
    pub scroll: usize,
    pub shown_at: Instant,
}

impl VoteView {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        session: &str,
        annotator: &str,
        adjudicator: bool,
        guidelines: &str,
        queue: Vec<VoteItem>,
        total: usize,
        submitted: usize,
    ) -> Self {
        let mut v = Self {
            session: session.into(),
            annotator: annotator.into(),
            adjudicator,
            guidelines: guidelines.into(),
            show_guidelines: !guidelines.trim().is_empty(),
            queue,
            total,
            submitted,
            aspect: 0,
            choices: Vec::new(),
            comment: String::new(),
            diff: false,
            scroll: 0,
            shown_at: Instant::now(),
        };
        v.fresh_item();
        v
    }

    pub fn item(&self) -> Option<&VoteItem> {
        self.queue.first()
    }

    fn fresh_item(&mut self) {
        self.aspect = 0;
        self.choices = vec![None; self.item().map_or(0, |i| i.aspects.len())];
        self.comment.clear();
        self.scroll = 0;
        self.shown_at = Instant::now();
    }
}

pub fn vote_keys(s: &mut AppState, action: Action, fx: &mut Vec<Effect>) {
    let action = match action {
        Action::VoteLoaded(view) => {
            s.vote = Some(*view);
            s.mode = Mode::Vote;
            return;
        }
        Action::VoteFailed(msg) => {
            s.status = Some((msg, Level::Error));
            return;
        }
        other => other,
    };
    let Some(v) = s.vote.as_mut() else {
        return;
    };
    if v.show_guidelines && !matches!(action, Action::Quit | Action::Resize { .. }) {
        v.show_guidelines = false;
        return;
    }
    let page = s.height.saturating_sub(12).max(1) as usize;
    let n_aspects = v.choices.len();
    match action {
        Action::Quit => s.quit = true,
        Action::Help => s.mode = Mode::Help,
        Action::ToggleGuidelines => v.show_guidelines = true,
        Action::VoteLeft | Action::VoteTie | Action::VoteRight if n_aspects > 0 => {
            v.choices[v.aspect] = Some(match action {
                Action::VoteLeft => Side::Left,
                Action::VoteTie => Side::Tie,
                _ => Side::Right,
            });
            // On to the next aspect without a vote, if any.
            if let Some(next) = (1..=n_aspects)
                .map(|k| (v.aspect + k) % n_aspects)
                .find(|k| v.choices[*k].is_none())
            {
                v.aspect = next;
            }
        }
        Action::NextAspect if n_aspects > 0 => v.aspect = (v.aspect + 1) % n_aspects,
        Action::PrevAspect if n_aspects > 0 => v.aspect = (v.aspect + n_aspects - 1) % n_aspects,
        Action::Down | Action::ReaderDown | Action::ScrollDown => v.scroll += 1,
        Action::Up | Action::ReaderUp | Action::ScrollUp => v.scroll = v.scroll.saturating_sub(1),
        Action::PageDown | Action::ReaderPageDown => v.scroll += page,
        Action::PageUp | Action::ReaderPageUp => v.scroll = v.scroll.saturating_sub(page),
        Action::ToggleDiff => v.diff = !v.diff,
        Action::SkipItem if v.queue.len() > 1 => {
            let it = v.queue.remove(0);
            v.queue.push(it);
            v.fresh_item();
            s.status = Some(("skipped; it comes back at the end".into(), Level::Info));
        }
        Action::Comment => {
            s.input = Some(Input {
                kind: InputKind::Comment,
                text: v.comment.clone(),
                error: None,
                from: Mode::Vote,
            });
            s.mode = Mode::Input;
        }
        Action::SetComment(text) => v.comment = text,
        Action::Confirm => {
            let Some(item) = v.item() else { return };
            let missing: Vec<&str> = item
                .aspects
                .iter()
                .zip(&v.choices)
                .filter(|(_, c)| c.is_none())
                .map(|(a, _)| a.as_str())
                .collect();
            if !missing.is_empty() {
                s.status = Some((
                    format!(
                        "vote on every aspect first (missing: {})",
                        missing.join(", ")
                    ),
                    Level::Error,
                ));
                return;
            }
            fx.push(Effect::SubmitVotes {
                item_id: item.item_id.clone(),
                votes: item
                    .aspects
                    .iter()
                    .cloned()
                    .zip(v.choices.iter().map(|c| c.expect("checked")))
                    .collect(),
                comment: Some(v.comment.trim().to_string()).filter(|c| !c.is_empty()),
                seconds: v.shown_at.elapsed().as_secs_f64(),
            });
        }
        Action::VoteSubmitted(item_id) if v.item().is_some_and(|i| i.item_id == item_id) => {
            v.queue.remove(0);
            v.submitted += 1;
            v.fresh_item();
            s.status = Some((
                format!("saved ({} of {})", v.submitted, v.total),
                Level::Info,
            ));
        }
        _ => {}
    }
}
