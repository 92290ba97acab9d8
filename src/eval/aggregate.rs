//! From votes to outcomes: each vote mapped back from left/right to A/B with the
//! annotator's placement, the majority per item and aspect (more than half of the
//! session's annotators), adjudications for the rest, and the tie policy.

use std::collections::HashMap;

use super::agreement::Table;
use super::session::{Session, TiePolicy};
use super::votes::{Verdict, Vote};

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub item_id: String,
    pub aspect: String,
    /// One per annotator, in the session's order.
    pub votes: Vec<Option<Verdict>>,
    pub majority: Option<Verdict>,
    pub adjudicated: Option<Verdict>,
}

impl Outcome {
    /// Majority, else the adjudicator, else the tie policy (which only rules on items
    /// every annotator voted on); `None` = disputed.
    pub fn verdict(&self, policy: TiePolicy) -> Option<Verdict> {
        let complete = self.votes.iter().all(Option::is_some);
        self.majority.or(self.adjudicated).or(match policy {
            TiePolicy::Tie if complete => Some(Verdict::Tie),
            _ => None,
        })
    }
}

/// `(annotator, item) → a_on_left` for every placement of the session.
pub type Placements = HashMap<(String, String), bool>;

pub fn outcomes(
    session: &Session,
    votes: &[Vote],
    placements: &Placements,
    adjudications: &HashMap<(String, String), Verdict>,
) -> Vec<Outcome> {
    let cfg = &session.config;
    let mut by_key: HashMap<(&str, &str, &str), Verdict> = HashMap::new();
    for v in votes {
        if let Some(a_on_left) = placements.get(&(v.annotator.clone(), v.item_id.clone())) {
            by_key.insert(
                (&v.item_id, &v.annotator, &v.aspect),
                Verdict::from_side(v.choice, *a_on_left),
            );
        }
    }
    let mut out = Vec::new();
    for item in &session.items {
        for aspect in &cfg.aspects {
            let votes: Vec<Option<Verdict>> = cfg
                .annotators
                .iter()
                .map(|a| {
                    by_key
                        .get(&(item.id.as_str(), a.as_str(), aspect.as_str()))
                        .copied()
                })
                .collect();
            let majority = [Verdict::Lose, Verdict::Tie, Verdict::Win]
                .into_iter()
                .find(|v| votes.iter().filter(|x| **x == Some(*v)).count() * 2 > votes.len());
            out.push(Outcome {
                item_id: item.id.clone(),
                aspect: aspect.clone(),
                votes,
                majority,
                adjudicated: adjudications
                    .get(&(item.id.clone(), aspect.clone()))
                    .copied(),
            });
        }
    }
    out
}

/// The aspect's vote table for the agreement statistics (annotators × items).
pub fn table(outcomes: &[Outcome], aspect: &str, annotators: usize) -> Table {
    let mut t: Table = vec![Vec::new(); annotators];
    for o in outcomes.iter().filter(|o| o.aspect == aspect) {
        for (row, v) in t.iter_mut().zip(&o.votes) {
            row.push(v.map(Verdict::code));
        }
    }
    t
}

/// Items and aspects no majority decided and no adjudicator resolved yet.
pub fn disputed(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes
        .iter()
        .filter(|o| o.majority.is_none() && o.adjudicated.is_none())
        .collect()
}
