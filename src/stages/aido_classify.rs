//! `aido.classify`: AIDO's coarse two-step judge (shared/docs/methods/aido.md §3.1, §5
//! rows 2 and 15, §8). One call per row: the judge first decides whether the sample
//! needs logical reasoning (if not it answers `RESPONSE: No.`), then gives a binary
//! quality score, 2 (good) or 1 (weaker somewhere), with a short justification.
//!
//! The released code deletes rejected and unparseable rows. gleaner keeps every row
//! and marks it: `excluded = true` with `dropped_reason` `non_reasoning`, `unparsed`,
//! `error` or `missing_input`, so the rows stay visible and can be re-run.
//!
//! Parsing: `compat` is the reference's exact rule (substring `RESPONSE: No`, then the
//! first `Score:\s*(\d+)`); `paper` reads the same answer tolerantly (markdown emphasis,
//! `Score - 2`, a restated final score).

use std::sync::LazyLock;

use regex::Regex;

use super::judging::{Cell, ColType, JudgeStage, Judged, RowStatus};
use crate::data::record::Record;
use crate::judge::parse::{ParsedBy, labelled_number};

#[derive(Debug, Clone, PartialEq)]
pub struct AidoClassify {
    pub compat: bool,
    /// Exclude rows the judge says need no logical reasoning (§5 row 2; default true).
    pub drop_non_reasoning: bool,
}

impl AidoClassify {
    pub fn preset(compat: bool) -> Self {
        Self {
            compat,
            drop_non_reasoning: true,
        }
    }

    /// (temperature, max_tokens, attempts): §4, stage 1a. The reference never retries.
    pub fn sampling(compat: bool) -> (f64, u32, u32) {
        (0.6, 2000, if compat { 1 } else { 5 })
    }

    fn row(
        score: Option<i64>,
        reasoning: Option<bool>,
        reason: Option<&str>,
        why: Option<String>,
    ) -> Vec<Cell> {
        vec![
            Cell::Int(score),
            Cell::Bool(reasoning),
            Cell::Bool(Some(reason.is_some())),
            Cell::Str(reason.map(str::to_string)),
            Cell::Str(why),
        ]
    }
}

static SCORE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"Score:\s*(\d+)").expect("regex"));

/// The text after `Justification:`, when the judge wrote one.
fn justification(reply: &str) -> Option<String> {
    let at = reply.find("Justification:")?;
    let text = reply[at + "Justification:".len()..].trim();
    (!text.is_empty()).then(|| text.to_string())
}

impl JudgeStage for AidoClassify {
    fn columns(&self) -> Vec<(String, ColType)> {
        [
            ("score", ColType::Int),
            ("reasoning", ColType::Bool),
            ("excluded", ColType::Bool),
            ("dropped_reason", ColType::Str),
            ("justification", ColType::Str),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect()
    }

    fn precheck(&self, record: &Record) -> Option<Judged> {
        // §5 row 15: the reference reads `item["input"]` and loses rows without it.
        (self.compat && record.instruction.is_some() && record.input.is_none()).then(|| Judged {
            status: RowStatus::Ok,
            error: None,
            parsed_by: None,
            values: Self::row(None, None, Some("missing_input"), None),
        })
    }

    fn vars(&self, record: &Record) -> serde_json::Value {
        let (instruction, input, output) = match &record.instruction {
            Some(instruction) => (
                instruction.as_str(),
                record.input.as_deref().unwrap_or(""),
                record.output.as_deref().unwrap_or(""),
            ),
            None => (record.first_user(), "", record.first_assistant()),
        };
        // The reference glues instruction and input with no separator (§3.1 step 1).
        let question = if self.compat || input.is_empty() {
            format!("{instruction}{input}")
        } else {
            format!("{instruction}\n\n{input}")
        };
        serde_json::json!({"question": question, "answer": output})
    }

    fn response_format(&self) -> Option<serde_json::Value> {
        None
    }

    fn judge(&self, reply: &str) -> Judged {
        let unparsed = |error: String| Judged {
            status: RowStatus::Unparsed,
            error: Some(error),
            parsed_by: None,
            values: Self::row(None, None, Some("unparsed"), None),
        };
        if reply.contains("RESPONSE: No") {
            let reason = self.drop_non_reasoning.then_some("non_reasoning");
            return Judged {
                status: RowStatus::Ok,
                error: None,
                parsed_by: Some(ParsedBy::Pattern),
                values: Self::row(None, Some(false), reason, justification(reply)),
            };
        }
        let (score, by) = if self.compat {
            match SCORE.captures(reply).and_then(|c| c[1].parse::<i64>().ok()) {
                Some(s) => (s, ParsedBy::Pattern),
                None => return unparsed("no `Score: N` in the reply".into()),
            }
        } else {
            match labelled_number(reply, &["Score"]) {
                Some(s) if s.fract() == 0.0 => (s as i64, ParsedBy::Pattern),
                Some(s) => return unparsed(format!("score {s} is not 1 or 2")),
                None => return unparsed("no `Score: N` in the reply".into()),
            }
        };
        if !matches!(score, 1 | 2) {
            return unparsed(format!("score {score} is not 1 or 2"));
        }
        Judged {
            status: RowStatus::Ok,
            error: None,
            parsed_by: Some(by),
            values: Self::row(Some(score), Some(true), None, justification(reply)),
        }
    }

    fn on_failure(&self) -> Vec<Cell> {
        Self::row(None, None, Some("error"), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(j: &Judged) -> (Option<i64>, Option<bool>, Option<String>) {
        let score = match &j.values[0] {
            Cell::Int(v) => *v,
            _ => unreachable!(),
        };
        let excluded = match &j.values[2] {
            Cell::Bool(v) => *v,
            _ => unreachable!(),
        };
        let reason = match &j.values[3] {
            Cell::Str(v) => v.clone(),
            _ => unreachable!(),
        };
        (score, excluded, reason)
    }

    #[test]
    fn non_reasoning_rows_are_kept_but_excluded() {
        let j = AidoClassify::preset(true).judge("RESPONSE: No.");
        assert_eq!(j.status, RowStatus::Ok);
        assert_eq!(values(&j), (None, Some(true), Some("non_reasoning".into())));
        let keep = AidoClassify {
            drop_non_reasoning: false,
            ..AidoClassify::preset(false)
        };
        assert_eq!(
            values(&keep.judge("RESPONSE: No.")),
            (None, Some(false), None)
        );
    }

    #[test]
    fn reads_the_binary_score_and_justification() {
        let reply = "RESPONSE:\nScore: 2\nJustification: Correct and well argued.";
        for compat in [true, false] {
            let j = AidoClassify::preset(compat).judge(reply);
            assert_eq!(values(&j), (Some(2), Some(false), None), "compat={compat}");
            assert_eq!(
                j.values[4],
                Cell::Str(Some("Correct and well argued.".into()))
            );
        }
    }

    #[test]
    fn compat_takes_the_first_score_and_paper_reads_markdown() {
        let reply = "RESPONSE:\n**Score: 1**\nJustification: shallow.";
        // The reference regex needs `Score:` right before the digits; `**` breaks nothing here.
        assert_eq!(values(&AidoClassify::preset(true).judge(reply)).0, Some(1));
        let markdown = "RESPONSE:\n**Score:** 2\nJustification: fine.";
        assert_eq!(
            AidoClassify::preset(true).judge(markdown).status,
            RowStatus::Unparsed
        );
        assert_eq!(
            values(&AidoClassify::preset(false).judge(markdown)).0,
            Some(2)
        );
    }

    #[test]
    fn out_of_scale_and_missing_scores_are_unparsed_not_dropped() {
        for reply in ["RESPONSE:\nScore: 7", "I think this is fine.", ""] {
            for compat in [true, false] {
                let j = AidoClassify::preset(compat).judge(reply);
                assert_eq!(j.status, RowStatus::Unparsed, "{reply:?}");
                assert_eq!(values(&j), (None, Some(true), Some("unparsed".into())));
                assert!(j.error.is_some());
            }
        }
    }

    #[test]
    fn compat_marks_rows_without_input_and_paper_asks_them() {
        let mut r = Record {
            instruction: Some("Why is the sky blue?".into()),
            output: Some("Rayleigh scattering.".into()),
            ..Record::default()
        };
        let j = AidoClassify::preset(true).precheck(&r).unwrap();
        assert_eq!(values(&j).2.as_deref(), Some("missing_input"));
        assert!(AidoClassify::preset(false).precheck(&r).is_none());
        r.input = Some("Answer briefly.".into());
        assert!(AidoClassify::preset(true).precheck(&r).is_none());
        assert_eq!(
            AidoClassify::preset(true).vars(&r)["question"],
            "Why is the sky blue?Answer briefly."
        );
        assert_eq!(
            AidoClassify::preset(false).vars(&r)["question"],
            "Why is the sky blue?\n\nAnswer briefly."
        );
    }
}
