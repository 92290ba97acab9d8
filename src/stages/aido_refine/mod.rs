//! `aido.refine`: AIDO's iterative refinement and output alignment
//! (shared/docs/methods/aido.md §3.3, presets in §8, fixes to the released code in §5).
//!
//! Per selected row: the backbone (probe role) answers the instruction; the strong judge
//! scores that answer 1–10 with suggestions; then up to `max_rounds` times the strong
//! judge rewrites instruction and input, the backbone answers the rewrite, and the strong
//! judge compares original (A) and revision (B) — twice, in both orders, with
//! `swap_review_order`. B or Tie stops; A goes round again with the comparison's
//! feedback. Output alignment then rewrites the output for the final instruction and
//! input. With `consistency_model`, original and revision are embedded and a revision
//! whose cosine falls below `consistency_threshold` is flagged `drifted`.
//!
//! The sidecar keeps everything: the round-0 probe answer, evaluation and score, each
//! round's rewrite, probe answer, verdicts in both orders and explanations (`trace`,
//! JSON), the final instruction/input/output, the consistency scores, and the state
//! (`revised`, `all_rounds_lost`, `unchanged`, `review_unparsed`, `failed`, `skipped`).
//! The review screen (`gleaner review`) reads it; `aido.merge` builds the final dataset.

pub mod asker;
pub mod parse;
pub mod refine_loop;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use self::asker::{Asker, Templates};
use self::refine_loop::{Cancelled, Outcome, refine_row};
use super::judging::Progress;
use crate::data::record::Record;
use crate::judge::client::RetryPolicy;

/// Where a row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefineState {
    /// A revision won (or tied) a comparison and is proposed.
    Revised,
    /// The revision lost every round; proposed only with `keep_original_if_all_lose = false`.
    AllRoundsLost,
    /// No round produced a readable rewrite; the original stays.
    Unchanged,
    /// No readable verdict after the retries; the original stays (paper preset).
    ReviewUnparsed,
    /// A call failed; the original stays and the error is kept.
    Failed,
    /// Not a single-turn sample.
    Skipped,
}

impl RefineState {
    pub fn name(self) -> &'static str {
        match self {
            RefineState::Revised => "revised",
            RefineState::AllRoundsLost => "all_rounds_lost",
            RefineState::Unchanged => "unchanged",
            RefineState::ReviewUnparsed => "review_unparsed",
            RefineState::Failed => "failed",
            RefineState::Skipped => "skipped",
        }
    }

    /// The shared reply status (`ok` / `unparsed` / `failed`) other stages use.
    pub fn status(self) -> &'static str {
        match self {
            RefineState::Revised | RefineState::AllRoundsLost | RefineState::Unchanged => "ok",
            RefineState::ReviewUnparsed => "unparsed",
            RefineState::Failed | RefineState::Skipped => "failed",
        }
    }
}

/// The loop's settings; [`RefineOptions::preset`] gives the `paper` or `compat` values
/// of aido.md §8.
#[derive(Debug, Clone, PartialEq)]
pub struct RefineOptions {
    pub max_rounds: u32,
    pub temperature: f64,
    pub probe_max_tokens: u32,
    pub evaluate_max_tokens: u32,
    pub rewrite_max_tokens: u32,
    pub review_max_tokens: u32,
    pub align_max_tokens: u32,
    pub retry: RetryPolicy,
    /// Extra asks when a verdict cannot be read.
    pub review_retries: u32,
    pub reference_bug_compat: bool,
    pub keep_original_if_all_lose: bool,
    pub accept_on_review_parse_failure: bool,
    pub swap_review_order: bool,
    /// Cosine below which a revision is flagged `drifted` (when a model is named).
    pub consistency_threshold: f64,
}

impl RefineOptions {
    pub fn preset(compat: bool) -> Self {
        Self {
            max_rounds: 3,
            temperature: 0.6,
            probe_max_tokens: 2000,
            evaluate_max_tokens: 2048,
            rewrite_max_tokens: 4096,
            review_max_tokens: 4096,
            align_max_tokens: 4096,
            retry: RetryPolicy {
                max_attempts: 3,
                ..RetryPolicy::default()
            },
            review_retries: if compat { 0 } else { 2 },
            reference_bug_compat: compat,
            keep_original_if_all_lose: !compat,
            accept_on_review_parse_failure: compat,
            swap_review_order: !compat,
            consistency_threshold: 0.5,
        }
    }
}

/// One row's outcome plus its consistency scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Refined {
    pub id: String,
    pub outcome: Outcome,
    pub instruction_similarity: Option<f64>,
    pub output_similarity: Option<f64>,
    pub drifted: bool,
}

impl Refined {
    /// Whether the row holds a revision a person can review.
    pub fn has_revision(&self) -> bool {
        matches!(
            self.outcome.state,
            RefineState::Revised | RefineState::AllRoundsLost
        )
    }
}

/// Refine every record, a window of rows at a time. Rows still running when `cancel`
/// is set are left out (their finished calls are cached for the next run).
pub async fn refine_rows(
    records: &[Record],
    asker: Arc<Asker>,
    templates: Arc<Templates>,
    opts: Arc<RefineOptions>,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Vec<Refined> {
    let mut out: Vec<Option<Refined>> = vec![None; records.len()];
    let mut p = Progress {
        total: records.len(),
        ..Progress::default()
    };
    progress(p);
    let window = asker.strong.concurrency().min(asker.probe.concurrency()) * 2 + 2;
    let mut queue = records.iter().cloned().enumerate();
    let mut tasks = tokio::task::JoinSet::new();
    let mut running = std::collections::HashMap::new();
    loop {
        while tasks.len() < window && !cancel.load(Ordering::Relaxed) {
            let Some((i, record)) = queue.next() else {
                break;
            };
            let (asker, templates, opts) = (asker.clone(), templates.clone(), opts.clone());
            let handle = tasks.spawn(async move {
                (
                    i,
                    record.id.clone(),
                    refine_row(&asker, &templates, &opts, &record).await,
                )
            });
            running.insert(handle.id(), i);
        }
        let Some(joined) = tasks.join_next_with_id().await else {
            break;
        };
        let (i, id, result) = match joined {
            Ok((task, done)) => {
                running.remove(&task);
                done
            }
            // A bug in one row must not cost the others their results: the row is
            // recorded as failed, with its original kept.
            Err(e) => {
                let i = running.remove(&e.id()).expect("spawned here");
                let r = &records[i];
                (i, r.id.clone(), Ok(Outcome::crashed(r, &e.to_string())))
            }
        };
        let Ok(outcome): Result<Outcome, Cancelled> = result else {
            continue;
        };
        p.done += 1;
        p.tokens += outcome.usage.tokens;
        match outcome.state.status() {
            "unparsed" => p.unparsed += 1,
            "failed" => p.failed += 1,
            _ => {}
        }
        if outcome.usage.requests == 0 && outcome.usage.cached > 0 {
            p.cached += 1;
        }
        out[i] = Some(Refined {
            id,
            outcome,
            instruction_similarity: None,
            output_similarity: None,
            drifted: false,
        });
        progress(p);
    }
    out.into_iter().flatten().collect()
}

/// Embed original and revision of every row that has one; flag those below the
/// threshold. `originals` are the records, in any order.
pub fn check_consistency(
    rows: &mut [Refined],
    originals: &[Record],
    embedder: &mut crate::models::embedder::Embedder,
    threshold: f64,
) -> Result<(), String> {
    let by_id: std::collections::HashMap<&str, &Record> =
        originals.iter().map(|r| (r.id.as_str(), r)).collect();
    let pair_text = |i: &str, n: &str| {
        if n.is_empty() {
            i.to_string()
        } else {
            format!("{i}\n\n{n}")
        }
    };
    let mut texts: Vec<String> = Vec::new();
    let mut which = Vec::new();
    for (k, row) in rows.iter().enumerate() {
        let Some(orig) = by_id.get(row.id.as_str()) else {
            continue;
        };
        if !row.has_revision() {
            continue;
        }
        texts.push(pair_text(
            orig.instruction.as_deref().unwrap_or_default(),
            orig.input.as_deref().unwrap_or_default(),
        ));
        texts.push(pair_text(&row.outcome.instruction, &row.outcome.input));
        texts.push(orig.output.clone().unwrap_or_default());
        texts.push(row.outcome.output.clone());
        which.push(k);
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = embedder.embed(&refs)?;
    let cos = |a: &[f32], b: &[f32]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    };
    for (j, k) in which.into_iter().enumerate() {
        let v = &vectors[4 * j..4 * j + 4];
        let (si, so) = (cos(&v[0], &v[1]), cos(&v[2], &v[3]));
        let row = &mut rows[k];
        row.instruction_similarity = Some(si);
        row.output_similarity = Some(so);
        row.drifted = si < threshold || so < threshold;
    }
    Ok(())
}

/// The sidecar: one row per refined record (columns documented in the module doc).
pub fn sidecar_frame(rows: &[Refined]) -> PolarsResult<DataFrame> {
    let s = |f: &dyn Fn(&Refined) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let columns = vec![
        Column::new("id".into(), s(&|r| Some(r.id.clone()))),
        Column::new("state".into(), s(&|r| Some(r.outcome.state.name().into()))),
        Column::new(
            "proposed".into(),
            rows.iter().map(|r| r.outcome.proposed).collect::<Vec<_>>(),
        ),
        Column::new(
            "instruction".into(),
            s(&|r| Some(r.outcome.instruction.clone())),
        ),
        Column::new("input".into(), s(&|r| Some(r.outcome.input.clone()))),
        Column::new("output".into(), s(&|r| Some(r.outcome.output.clone()))),
        Column::new(
            "rounds_used".into(),
            rows.iter()
                .map(|r| r.outcome.rounds.len() as i64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "eval_score".into(),
            rows.iter()
                .map(|r| r.outcome.eval_score)
                .collect::<Vec<_>>(),
        ),
        Column::new("evaluation".into(), s(&|r| r.outcome.evaluation.clone())),
        Column::new(
            "probe_output".into(),
            s(&|r| r.outcome.probe_output.clone()),
        ),
        Column::new(
            "order_disagreements".into(),
            rows.iter()
                .map(|r| r.outcome.order_disagreements())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "instruction_similarity".into(),
            rows.iter()
                .map(|r| r.instruction_similarity)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "output_similarity".into(),
            rows.iter().map(|r| r.output_similarity).collect::<Vec<_>>(),
        ),
        Column::new(
            "drifted".into(),
            rows.iter().map(|r| r.drifted).collect::<Vec<_>>(),
        ),
        Column::new(
            "trace".into(),
            s(&|r| serde_json::to_string(&r.outcome.rounds).ok()),
        ),
        Column::new(
            "status".into(),
            s(&|r| Some(r.outcome.state.status().into())),
        ),
        Column::new("error".into(), s(&|r| r.outcome.error.clone())),
        Column::new(
            "requests".into(),
            rows.iter()
                .map(|r| r.outcome.usage.requests)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "tokens".into(),
            rows.iter()
                .map(|r| r.outcome.usage.tokens)
                .collect::<Vec<_>>(),
        ),
    ];
    DataFrame::new(rows.len(), columns)
}
