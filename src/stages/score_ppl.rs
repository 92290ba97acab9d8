//! Stage `score.ppl`: perplexities from a causal LM (shared/docs/methods/aido.md
//! §3.2.2, §5 row 1): `instr_ppl` (the filled instruction prompt, AIDO's released
//! ranking metric), `ppl_answer_given_prompt`, `ppl_answer_alone` (after
//! `### Response:\n`) and `ifd` = their ratio (the paper's metric). Backends: a local
//! ONNX export, or a judge endpoint's `/v1/completions` with echo + logprobs.

use std::sync::atomic::{AtomicBool, Ordering};

use polars::prelude::*;

use super::judging::Progress;
use crate::data::record::Record;
use crate::models::causal::{Span, SpanScorer};

/// The Stanford Alpaca prompt (aido.md §3.2.1), with and without input.
const ALPACA_INPUT: &str = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n";
const ALPACA: &str = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n";

/// The filled prompt of a record: `alpaca`, `wiz`, or a template with `{instruction}`
/// and `{input}`.
pub fn prompt_for(r: &Record, template: &str) -> String {
    let instruction = r
        .instruction
        .clone()
        .unwrap_or_else(|| r.first_user().to_string());
    let input = r.input.clone().unwrap_or_default();
    let t = match template {
        "alpaca" if input.is_empty() => ALPACA,
        "alpaca" => ALPACA_INPUT,
        "wiz" if input.is_empty() => "{instruction}\n\n### Response:",
        "wiz" => "{instruction}\nInput:{input}\n\n### Response:",
        custom => custom,
    };
    t.replace("{instruction}", &instruction)
        .replace("{input}", &input)
}

#[derive(Debug, Clone, PartialEq)]
pub struct PplRow {
    pub id: String,
    pub instr_ppl: Option<f64>,
    pub ppl_given_prompt: Option<f64>,
    pub ppl_alone: Option<f64>,
    pub ifd: Option<f64>,
    pub answer_tokens: usize,
    pub error: Option<String>,
}

/// Score every record in chunks (progress and cancel between them). A chunk the
/// scorer fails on marks its rows failed with the error; it does not stop the run.
pub fn score_rows(
    records: &[Record],
    scorer: &mut dyn SpanScorer,
    template: &str,
    alone_prefix: &str,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Vec<PplRow> {
    let mut p = Progress {
        total: records.len(),
        ..Progress::default()
    };
    progress(p);
    let mut out = Vec::with_capacity(records.len());
    for chunk in records.chunks(32) {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        // Two passes per row: prompt + answer (the prompt's own tokens give instr_ppl
        // in the same pass), and the answer after the alone prefix.
        let mut spans = Vec::with_capacity(chunk.len() * 2);
        for r in chunk {
            let prompt = prompt_for(r, template);
            let answer = r
                .output
                .clone()
                .unwrap_or_else(|| r.first_assistant().to_string());
            spans.push(Span {
                context: prompt,
                target: answer.clone(),
            });
            spans.push(Span {
                context: alone_prefix.to_string(),
                target: answer,
            });
        }
        match scorer.score(&spans) {
            Ok(scores) => {
                for (r, s) in chunk.iter().zip(scores.chunks(2)) {
                    let (instr, cond, alone) = (
                        s[0].context_perplexity(),
                        s[0].perplexity(),
                        s[1].perplexity(),
                    );
                    p.tokens += (s[0].context_tokens + s[0].tokens + s[1].tokens) as u64;
                    let error = cond.is_none().then(|| "the answer is empty".to_string());
                    if error.is_some() {
                        p.unparsed += 1;
                    }
                    out.push(PplRow {
                        id: r.id.clone(),
                        instr_ppl: instr,
                        ppl_given_prompt: cond,
                        ppl_alone: alone,
                        ifd: cond.zip(alone).map(|(a, b)| a / b),
                        answer_tokens: s[0].tokens,
                        error,
                    });
                }
            }
            Err(e) => {
                p.failed += chunk.len();
                out.extend(chunk.iter().map(|r| PplRow {
                    id: r.id.clone(),
                    instr_ppl: None,
                    ppl_given_prompt: None,
                    ppl_alone: None,
                    ifd: None,
                    answer_tokens: 0,
                    error: Some(e.clone()),
                }));
            }
        }
        p.done += chunk.len();
        progress(p);
    }
    out
}

pub fn sidecar_frame(rows: &[PplRow]) -> PolarsResult<DataFrame> {
    let status = |r: &PplRow| match (&r.error, r.ppl_given_prompt) {
        (None, _) => "ok",
        (Some(_), None) if r.instr_ppl.is_some() => "unparsed",
        _ => "failed",
    };
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "id".into(),
                rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "instr_ppl".into(),
                rows.iter().map(|r| r.instr_ppl).collect::<Vec<_>>(),
            ),
            Column::new(
                "ppl_answer_given_prompt".into(),
                rows.iter().map(|r| r.ppl_given_prompt).collect::<Vec<_>>(),
            ),
            Column::new(
                "ppl_answer_alone".into(),
                rows.iter().map(|r| r.ppl_alone).collect::<Vec<_>>(),
            ),
            Column::new("ifd".into(), rows.iter().map(|r| r.ifd).collect::<Vec<_>>()),
            Column::new(
                "answer_tokens".into(),
                rows.iter()
                    .map(|r| r.answer_tokens as i64)
                    .collect::<Vec<_>>(),
            ),
            Column::new("status".into(), rows.iter().map(status).collect::<Vec<_>>()),
            Column::new(
                "error".into(),
                rows.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>(),
            ),
        ],
    )
}
