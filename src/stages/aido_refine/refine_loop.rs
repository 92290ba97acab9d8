//! One row through AIDO's evaluate → rewrite → probe → review loop and output alignment
//! (shared/docs/methods/aido.md §3.3 steps 1–6), with gleaner's fixes to the released
//! code (§5 items 3–7) and its position-bias and consistency options (§8 presets).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::asker::{AskError, Asker, Templates, Usage, Who};
use super::parse::{Winner, parse_align, parse_eval_score, parse_review, parse_rewrite};
use super::{RefineOptions, RefineState};
use crate::data::record::Record;

/// A comparison's result, in terms of the revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The original is better: refine again.
    Original,
    Revision,
    Tie,
}

impl Verdict {
    /// The reference code's letters: A is the original, B the revision.
    pub fn letter(self) -> &'static str {
        match self {
            Verdict::Original => "A",
            Verdict::Revision => "B",
            Verdict::Tie => "Tie",
        }
    }

    /// Both readings must agree for a win; a reading that prefers the original wins out.
    fn combine(first: Verdict, second: Verdict) -> Verdict {
        match (first, second) {
            (a, b) if a == b => a,
            (Verdict::Original, _) | (_, Verdict::Original) => Verdict::Original,
            _ => Verdict::Tie,
        }
    }
}

/// Everything one round asked and heard, kept in the sidecar's `trace`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Round {
    pub round: u32,
    /// The feedback the rewrite was given (from round 2 on).
    pub feedback: Option<String>,
    pub rewrite_raw: String,
    /// `None` when the rewrite could not be read (the round is used up).
    pub instruction: Option<String>,
    pub input: Option<String>,
    pub probe_output: Option<String>,
    /// Original (A) against revision (B), as the judge named it.
    pub winner_ab: Option<Winner>,
    pub explanation_ab: Option<String>,
    pub review_raw_ab: Option<String>,
    /// Revision shown as A, original as B (with `swap_review_order`).
    pub winner_ba: Option<Winner>,
    pub explanation_ba: Option<String>,
    pub review_raw_ba: Option<String>,
    pub orders_disagree: bool,
    /// The round's outcome: "A" (original better), "B" (revision) or "Tie".
    pub winner: Option<String>,
    pub note: Option<String>,
}

impl Round {
    /// What the next rewrite is told: the explanation of the reading that preferred
    /// the original (with the swapped reading's labels spelled out), else the first.
    pub fn feedback_for_next(&self) -> Option<String> {
        if self.winner_ab != Some(Winner::A) && self.winner_ba == Some(Winner::B) {
            return self.explanation_ba.as_ref().map(|e| {
                format!(
                    "(in this comparison the revision was shown as A and the original as B) {e}"
                )
            });
        }
        self.explanation_ab.clone()
    }
}

/// The final word on one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub state: RefineState,
    /// Goes to review (and into the merged dataset once approved).
    pub proposed: bool,
    pub error: Option<String>,
    pub probe_output: Option<String>,
    pub evaluation: Option<String>,
    pub eval_score: Option<i64>,
    pub rounds: Vec<Round>,
    /// The revision when one exists, else the original (compat: with an empty output).
    pub instruction: String,
    pub input: String,
    pub output: String,
    pub usage: Usage,
}

impl Outcome {
    /// A row whose task died: failed, original kept.
    pub fn crashed(r: &Record, why: &str) -> Self {
        Self {
            state: RefineState::Failed,
            proposed: false,
            error: Some(format!("internal error: {why}")),
            probe_output: None,
            evaluation: None,
            eval_score: None,
            rounds: Vec::new(),
            instruction: r.instruction.clone().unwrap_or_default(),
            input: r.input.clone().unwrap_or_default(),
            output: r.output.clone().unwrap_or_default(),
            usage: Usage::default(),
        }
    }

    pub fn order_disagreements(&self) -> i64 {
        self.rounds.iter().filter(|r| r.orders_disagree).count() as i64
    }
}

/// The user message of the probe: instruction, then input on its own line when given.
fn question(instruction: &str, input: &str) -> String {
    if input.is_empty() {
        instruction.to_string()
    } else {
        format!("{instruction}\n{input}")
    }
}

fn describe(e: &AskError) -> (String, Option<String>) {
    match e {
        AskError::Failed(j) => (j.to_string(), j.raw().map(str::to_string)),
        AskError::Unreadable { raw, attempts } => (
            format!("no readable reply in {attempts} attempts"),
            Some(raw.clone()),
        ),
        AskError::Cancelled => ("cancelled".into(), None),
    }
}

/// Stopped before finishing: the row is left for the next run.
pub struct Cancelled;

struct RowRun<'a> {
    asker: &'a Asker,
    t: &'a Templates,
    o: &'a RefineOptions,
    usage: Usage,
}

impl RowRun<'_> {
    async fn ask(
        &mut self,
        who: Who,
        which: fn(&Templates) -> &crate::judge::prompt::PromptTemplate,
        vars: serde_json::Value,
        max_tokens: u32,
        reasks: u32,
        readable: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<String, AskError> {
        self.ask_seeded(who, which, vars, max_tokens, reasks, None, readable)
            .await
    }

    /// With a `seed`: requests that would otherwise be identical (a rewrite in round 3
    /// with the same feedback as round 2) are different requests, not one cache hit.
    #[allow(clippy::too_many_arguments)]
    async fn ask_seeded(
        &mut self,
        who: Who,
        which: fn(&Templates) -> &crate::judge::prompt::PromptTemplate,
        vars: serde_json::Value,
        max_tokens: u32,
        reasks: u32,
        seed: Option<u64>,
        readable: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<String, AskError> {
        self.asker
            .ask(
                who,
                which(self.t),
                &vars,
                max_tokens,
                reasks,
                seed,
                readable,
                &mut self.usage,
            )
            .await
    }

    /// One reading of the comparison; `swapped` shows the revision as A.
    async fn review(
        &mut self,
        original: &serde_json::Value,
        revision: &serde_json::Value,
        swapped: bool,
    ) -> Result<(Winner, String, String), AskError> {
        let (a, b) = if swapped {
            (revision, original)
        } else {
            (original, revision)
        };
        let vars = json!({"a": a.to_string(), "b": b.to_string()});
        let raw = self
            .ask(
                Who::Strong,
                |t| &t.review,
                vars,
                self.o.review_max_tokens,
                self.o.review_retries,
                &|r| parse_review(r).is_some(),
            )
            .await?;
        let (w, e) = parse_review(&raw).expect("readable means parsed");
        Ok((w, e, raw))
    }
}

fn verdict_of(w: Winner, swapped: bool) -> Verdict {
    match (w, swapped) {
        (Winner::Tie, _) => Verdict::Tie,
        (Winner::A, false) | (Winner::B, true) => Verdict::Original,
        (Winner::B, false) | (Winner::A, true) => Verdict::Revision,
    }
}

/// Run the loop for one single-turn record.
pub async fn refine_row(
    asker: &Asker,
    templates: &Templates,
    o: &RefineOptions,
    record: &Record,
) -> Result<Outcome, Cancelled> {
    let i0 = record.instruction.clone().unwrap_or_default();
    let n0 = record.input.clone().unwrap_or_default();
    let o0 = record.output.clone().unwrap_or_default();
    // §5 item 3: the released code passes an empty reference (and emits an empty output
    // when nothing was revised); gleaner passes the row's real output unless asked not to.
    let reference = if o.reference_bug_compat {
        String::new()
    } else {
        o0.clone()
    };
    let mut out = Outcome {
        state: RefineState::Unchanged,
        proposed: false,
        error: None,
        probe_output: None,
        evaluation: None,
        eval_score: None,
        rounds: Vec::new(),
        instruction: i0.clone(),
        input: n0.clone(),
        output: reference.clone(),
        usage: Usage::default(),
    };
    if record.instruction.is_none() {
        out.state = RefineState::Skipped;
        out.output = o0;
        out.error = Some(
            "not a single-turn sample: aido.refine rewrites instruction, input and output".into(),
        );
        return Ok(out);
    }
    let mut run = RowRun {
        asker,
        t: templates,
        o,
        usage: Usage::default(),
    };
    let result = refine_inner(&mut run, &mut out, &i0, &n0, &reference).await;
    out.usage = run.usage;
    match result {
        Ok(()) => Ok(out),
        Err(AskError::Cancelled) => Err(Cancelled),
        Err(e) => {
            // §5 items 6–7: a failed call never becomes data; the row keeps its original.
            let (msg, raw) = describe(&e);
            out.state = RefineState::Failed;
            out.proposed = false;
            out.error = Some(match raw.filter(|r| !r.is_empty()) {
                Some(raw) => format!("{msg}; raw reply: {raw}"),
                None => msg,
            });
            out.instruction = i0;
            out.input = n0;
            out.output = o0;
            Ok(out)
        }
    }
}

async fn refine_inner(
    run: &mut RowRun<'_>,
    out: &mut Outcome,
    i0: &str,
    n0: &str,
    reference: &str,
) -> Result<(), AskError> {
    let o = run.o;
    let always = |_: &str| true;
    // Step 1: the backbone answers the original.
    let m0 = run
        .ask(
            Who::Probe,
            |t| &t.probe,
            json!({"question": question(i0, n0)}),
            o.probe_max_tokens,
            0,
            &always,
        )
        .await?;
    out.probe_output = Some(m0.clone());
    // Step 2: the strong judge grades it; the score is kept for the trace.
    let e0 = run
        .ask(
            Who::Strong,
            |t| &t.evaluate,
            json!({"instruction": i0, "input": n0, "reference": reference, "candidate": m0}),
            o.evaluate_max_tokens,
            0,
            &always,
        )
        .await?;
    out.eval_score = parse_eval_score(&e0);
    out.evaluation = Some(e0.clone());
    let original = json!({"instruction": i0, "input": n0, "output": m0});
    let mut last: Option<(String, String)> = None;
    let mut accepted = false;
    for r in 1..=o.max_rounds {
        // §5 item 8: every round starts from the round-0 material; from round 2 on it
        // carries the newest feedback there is (an older one when a round failed).
        let feedback = (r > 1).then(|| {
            out.rounds
                .iter()
                .rev()
                .find_map(Round::feedback_for_next)
                .unwrap_or_else(|| e0.clone())
        });
        let raw = run
            .ask_seeded(
                Who::Strong,
                |t| &t.rewrite,
                json!({
                    "instruction": i0, "input": n0, "reference": reference,
                    "probe_output": m0, "evaluation": e0,
                    "feedback": feedback.clone().unwrap_or_default(),
                }),
                o.rewrite_max_tokens,
                0,
                Some(u64::from(r)),
                &always,
            )
            .await?;
        let mut round = Round {
            round: r,
            feedback,
            rewrite_raw: raw.clone(),
            ..Round::default()
        };
        let Some((i_new, n_new)) = parse_rewrite(&raw) else {
            round.note = Some("rewrite has no instruction_new/input_new: round used up".into());
            out.rounds.push(round);
            continue;
        };
        round.instruction = Some(i_new.clone());
        round.input = Some(n_new.clone());
        out.rounds.push(round);
        let m_new = run
            .ask(
                Who::Probe,
                |t| &t.probe,
                json!({"question": question(&i_new, &n_new)}),
                o.probe_max_tokens,
                0,
                &always,
            )
            .await?;
        out.rounds.last_mut().expect("pushed").probe_output = Some(m_new.clone());
        let revision = json!({"instruction": i_new, "input": n_new, "output": m_new});
        last = Some((i_new, n_new));
        let first = run.review(&original, &revision, false).await;
        let second = if o.swap_review_order && first.is_ok() {
            Some(run.review(&original, &revision, true).await)
        } else {
            None
        };
        let round = out.rounds.last_mut().expect("pushed");
        let mut unreadable = None;
        let mut verdicts = Vec::new();
        match first {
            Ok((w, e, raw)) => {
                (round.winner_ab, round.explanation_ab, round.review_raw_ab) =
                    (Some(w), Some(e), Some(raw));
                verdicts.push(verdict_of(w, false));
            }
            Err(AskError::Unreadable { raw, attempts }) => {
                round.review_raw_ab = Some(raw);
                unreadable = Some(attempts);
            }
            Err(e) => return Err(e),
        }
        match second {
            Some(Ok((w, e, raw))) => {
                (round.winner_ba, round.explanation_ba, round.review_raw_ba) =
                    (Some(w), Some(e), Some(raw));
                verdicts.push(verdict_of(w, true));
            }
            Some(Err(AskError::Unreadable { raw, attempts })) => {
                round.review_raw_ba = Some(raw);
                unreadable = Some(attempts);
            }
            Some(Err(e)) => return Err(e),
            None => {}
        }
        if let Some(attempts) = unreadable {
            round.note = Some(format!("no readable verdict in {attempts} attempts"));
            if o.accept_on_review_parse_failure {
                // §5 item 5 (compat): the released code stops and keeps the revision.
                accepted = true;
                break;
            }
            out.state = RefineState::ReviewUnparsed;
            out.error = round.note.clone();
            return Ok(());
        }
        let verdict = match verdicts[..] {
            [v] => v,
            [a, b] => {
                round.orders_disagree = a != b;
                Verdict::combine(a, b)
            }
            _ => unreachable!("one or two readings"),
        };
        round.winner = Some(verdict.letter().to_string());
        if verdict != Verdict::Original {
            accepted = true;
            break;
        }
    }
    let Some((i_last, n_last)) = last else {
        // No round produced a readable rewrite: the original stays.
        out.state = RefineState::Unchanged;
        return Ok(());
    };
    // Step 6: output alignment for the final instruction and input.
    let aligned = run
        .ask(
            Who::Strong,
            |t| &t.align,
            json!({"instruction": i_last, "input": n_last, "reference": reference}),
            o.align_max_tokens,
            0,
            &always,
        )
        .await?;
    out.instruction = i_last;
    out.input = n_last;
    out.output = parse_align(&aligned);
    if accepted {
        out.state = RefineState::Revised;
        out.proposed = true;
    } else {
        // §5 item 4: the revision lost every round.
        out.state = RefineState::AllRoundsLost;
        out.proposed = !o.keep_original_if_all_lose;
    }
    Ok(())
}
