//! Causal-LM scoring: the mean negative log-likelihood of chosen token spans, from one
//! forward pass per batch. Gives instruction perplexity (AIDO's `instr_ppl`), answer
//! perplexity with and without the prompt, and IFD = PPL(answer | prompt) / PPL(answer)
//! (shared/docs/methods/aido.md §3.2.2). Two backends behind [`SpanScorer`]: a local
//! ONNX `text-generation` export, and a server's `/v1/completions` with `echo` +
//! `logprobs` (for an 8B/70B model on vLLM, or llama.cpp's server).

use std::path::Path;
use std::sync::Arc;

use super::model_dir::{Batch, LoadedModel, length_batches};
use super::runtime::{Provider, SessionOptions};
use crate::error::UserError;
use crate::judge::client::{CompletionRequest, RetryPolicy};
use crate::judge::pool::Pool;

/// Text before the scored span (context only) and the span itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub context: String,
    pub target: String,
}

/// Summed NLL over the scored tokens and how many there were; the context's own
/// tokens are scored in the same pass (a prompt's perplexity comes for free).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SpanScore {
    pub nll: f64,
    pub tokens: usize,
    pub context_nll: f64,
    pub context_tokens: usize,
}

impl SpanScore {
    pub fn mean_nll(&self) -> Option<f64> {
        (self.tokens > 0).then(|| self.nll / self.tokens as f64)
    }

    pub fn perplexity(&self) -> Option<f64> {
        self.mean_nll().map(f64::exp)
    }

    /// Perplexity of the context tokens (its first token has no prediction).
    pub fn context_perplexity(&self) -> Option<f64> {
        (self.context_tokens > 0).then(|| (self.context_nll / self.context_tokens as f64).exp())
    }
}

pub trait SpanScorer {
    /// One score per span: the target's tokens given the context (the sequence's very
    /// first token has no prediction and is never scored).
    fn score(&mut self, spans: &[Span]) -> Result<Vec<SpanScore>, String>;
}

/// The local ONNX backend.
pub struct OnnxScorer {
    model: LoadedModel,
    /// Tokens (rows × longest row) per forward pass: bounds the logits buffer.
    pub token_budget: usize,
    pub max_length: usize,
    pad_id: u32,
}

impl OnnxScorer {
    pub fn load(dir: &Path, session: SessionOptions) -> Result<Self, UserError> {
        let model = LoadedModel::load(dir, session)?;
        model.require(
            "causal language",
            &["input_ids", "attention_mask"],
            "logits",
        )?;
        let pad_id = model
            .config
            .get("pad_token_id")
            .and_then(|v| v.as_u64())
            .or_else(|| model.config.get("eos_token_id").and_then(|v| v.as_u64()))
            .unwrap_or(0) as u32;
        Ok(Self {
            model,
            token_budget: 2048,
            max_length: 2048,
            pad_id,
        })
    }

    pub fn provider(&self) -> Provider {
        self.model.provider
    }

    /// Context and target tokenized apart (no special tokens, no BOS) and joined, so
    /// the target's tokens are exactly its own. Too long: the context is cut from the
    /// left, then the target from the right.
    fn encode(&self, span: &Span) -> Result<(Vec<u32>, usize), String> {
        let enc = |t: &str| {
            self.model
                .tokenizer
                .encode(t, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| format!("tokenizer: {e}"))
        };
        let mut context = if span.context.is_empty() {
            Vec::new()
        } else {
            enc(&span.context)?
        };
        let mut target = enc(&span.target)?;
        let max = self.max_length.max(2);
        if context.len() + target.len() > max {
            let keep = max.saturating_sub(target.len());
            context.drain(..context.len() - keep.min(context.len()));
            target.truncate(max - context.len());
        }
        let start = context.len();
        context.extend(target);
        Ok((context, start))
    }
}

impl SpanScorer for OnnxScorer {
    fn score(&mut self, spans: &[Span]) -> Result<Vec<SpanScore>, String> {
        let encoded: Vec<(Vec<u32>, usize)> = spans
            .iter()
            .map(|s| self.encode(s))
            .collect::<Result<_, _>>()?;
        let lens: Vec<usize> = encoded.iter().map(|e| e.0.len()).collect();
        let mut out = vec![SpanScore::default(); spans.len()];
        for chunk in length_batches(&lens, usize::MAX, self.token_budget) {
            let chunk = chunk.as_slice();
            let rows: Vec<&[u32]> = chunk.iter().map(|&i| encoded[i].0.as_slice()).collect();
            let batch = Batch::new(&rows, self.pad_id);
            let inputs = batch.inputs(&self.model.inputs)?;
            let outputs = self.model.session.run(inputs).map_err(|e| e.to_string())?;
            let (shape, logits) = outputs["logits"]
                .try_extract_tensor::<f32>()
                .map_err(|e| e.to_string())?;
            let (t, v) = (shape[1] as usize, shape[2] as usize);
            for (r, &i) in chunk.iter().enumerate() {
                let (ids, start) = (&encoded[i].0, encoded[i].1);
                let mut score = SpanScore::default();
                for pos in 1..ids.len() {
                    let row = &logits[(r * t + pos - 1) * v..(r * t + pos) * v];
                    let x = nll(row, ids[pos] as usize);
                    if pos < start {
                        score.context_nll += x;
                        score.context_tokens += 1;
                    } else {
                        score.nll += x;
                        score.tokens += 1;
                    }
                }
                out[i] = score;
            }
        }
        Ok(out)
    }
}

/// −log softmax(row)[target], in f64 with the max subtracted.
fn nll(row: &[f32], target: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    -(row[target] as f64 - max - sum.ln())
}

/// How a server aligns echoed prompt log-probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogprobAlignment {
    /// `token_logprobs[k]` = log p(token k | tokens before it): OpenAI, vLLM.
    #[default]
    NextToken,
    /// llama-cpp-python (0.3.x) reports each position's distribution one token late:
    /// log p(token k | before) is read from the alternatives listed at position k−1
    /// (`top_k` of them are asked for; a token outside them counts as the least likely
    /// listed, an upper bound).
    Shifted,
}

/// The server backend: `/v1/completions` with `echo` and `logprobs`, the prompt being
/// context + target; the target's tokens are those whose text offset falls in it.
pub struct ServerScorer {
    pub pool: Arc<Pool>,
    /// Where the requests run; `score` blocks on it, so call it off that runtime.
    pub runtime: tokio::runtime::Handle,
    pub retry: RetryPolicy,
    pub alignment: LogprobAlignment,
    /// Alternatives per position to ask for with [`LogprobAlignment::Shifted`].
    pub top_k: u32,
}

impl SpanScorer for ServerScorer {
    fn score(&mut self, spans: &[Span]) -> Result<Vec<SpanScore>, String> {
        let pool = self.pool.clone();
        let retry = self.retry.clone();
        let spans = spans.to_vec();
        let (alignment, top_k) = (self.alignment, self.top_k);
        self.runtime.block_on(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for (i, span) in spans.into_iter().enumerate() {
                let (pool, retry) = (pool.clone(), retry.clone());
                tasks.spawn(async move {
                    let req = CompletionRequest {
                        prompt: format!("{}{}", span.context, span.target),
                        max_tokens: Some(1),
                        temperature: Some(0.0),
                        echo: true,
                        logprobs: Some(match alignment {
                            LogprobAlignment::NextToken => 1,
                            LogprobAlignment::Shifted => top_k.max(1),
                        }),
                        ..CompletionRequest::default()
                    };
                    let reply = pool
                        .complete(&req, &retry)
                        .await
                        .map_err(|e| e.to_string())?;
                    let lp = reply.logprobs.first().cloned().flatten().ok_or(
                        "the server returned no logprobs (does it support echo + logprobs?)",
                    )?;
                    let (from, to) = (span.context.len(), span.context.len() + span.target.len());
                    let mut s = SpanScore::default();
                    for (k, off) in lp.offsets.iter().enumerate() {
                        if *off >= to || k == 0 {
                            continue;
                        }
                        // A token that straddles the context/target boundary belongs to
                        // the target (it carries the target's first characters).
                        let end = off + lp.tokens.get(k).map_or(0, String::len);
                        let l = match alignment {
                            LogprobAlignment::NextToken => lp.logprobs.get(k).copied().flatten(),
                            LogprobAlignment::Shifted => {
                                lp.top.get(k - 1).and_then(|t| t.as_ref()).and_then(|t| {
                                    t.get(&lp.tokens[k])
                                        .copied()
                                        .or_else(|| t.values().copied().reduce(f64::min))
                                })
                            }
                        };
                        match l {
                            Some(l) if end > from => {
                                s.nll -= l;
                                s.tokens += 1;
                            }
                            Some(l) => {
                                s.context_nll -= l;
                                s.context_tokens += 1;
                            }
                            None => {}
                        }
                    }
                    Ok::<_, String>((i, s))
                });
            }
            let mut out = vec![SpanScore::default(); tasks.len()];
            while let Some(j) = tasks.join_next().await {
                let (i, s) = j.map_err(|e| e.to_string())??;
                out[i] = s;
            }
            Ok(out)
        })
    }
}

/// Perplexities and IFD of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Ifd {
    pub ppl_answer_given_prompt: Option<f64>,
    pub ppl_answer_alone: Option<f64>,
    pub ifd: Option<f64>,
    pub answer_tokens: usize,
}

/// IFD for (prompt, answer) pairs: PPL(answer | prompt) / PPL(answer | alone_prefix).
pub fn ifd(
    scorer: &mut dyn SpanScorer,
    pairs: &[(String, String)],
    alone_prefix: &str,
) -> Result<Vec<Ifd>, String> {
    let mut spans = Vec::with_capacity(pairs.len() * 2);
    for (prompt, answer) in pairs {
        spans.push(Span {
            context: prompt.clone(),
            target: answer.clone(),
        });
        spans.push(Span {
            context: alone_prefix.to_string(),
            target: answer.clone(),
        });
    }
    let scores = scorer.score(&spans)?;
    Ok(scores
        .chunks(2)
        .map(|c| {
            let (cond, alone) = (c[0].perplexity(), c[1].perplexity());
            Ifd {
                ppl_answer_given_prompt: cond,
                ppl_answer_alone: alone,
                ifd: cond.zip(alone).map(|(a, b)| a / b),
                answer_tokens: c[0].tokens,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::nll;

    #[test]
    fn nll_is_minus_log_softmax() {
        let row = [1.0f32, 2.0, 3.0];
        let z: f64 = [1.0f64, 2.0, 3.0].iter().map(|x| x.exp()).sum();
        assert!((nll(&row, 2) - -(3f64.exp() / z).ln()).abs() < 1e-9);
        // Large logits do not overflow.
        assert!(nll(&[1000.0, 0.0], 0) < 1e-9);
    }
}
