//! Sentence embeddings from a `feature-extraction` export (e.g. all-MiniLM-L6-v2):
//! tokenize with special tokens, truncate to `max_length`, sort by length and batch so
//! each batch pads only to its own longest text, run once per batch, pool the last
//! hidden state (attention-masked mean, or the first token), L2-normalize. Results come
//! back in input order and do not depend on what else was in the batch.

use std::path::Path;

use rayon::prelude::*;

use super::model_dir::{Batch, LoadedModel, length_batches};
use super::runtime::{Provider, SessionOptions};
use crate::error::UserError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean over the tokens the attention mask keeps (sentence-transformers).
    #[default]
    Mean,
    /// The first token's state (`[CLS]`, e.g. bge).
    Cls,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmbedOptions {
    pub max_length: usize,
    /// Texts per forward pass at most (0: by provider, 64 on the CPU, 256 on CUDA).
    pub batch_size: usize,
    /// Tokens (rows × longest row) per forward pass at most: long texts go in small
    /// batches, short ones in large (0: by provider, 1,024 on the CPU, 16,384 on CUDA;
    /// each measured fastest there by benches/embed.rs and benches/cuda-check.sh).
    pub token_budget: usize,
    pub pooling: Pooling,
    pub normalize: bool,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            max_length: 256,
            batch_size: 0,
            token_budget: 0,
            pooling: Pooling::Mean,
            normalize: true,
        }
    }
}

pub struct Embedder {
    model: LoadedModel,
    pub opts: EmbedOptions,
    pad_id: u32,
    pub dim: usize,
}

impl Embedder {
    pub fn load(
        dir: &Path,
        session: SessionOptions,
        opts: EmbedOptions,
    ) -> Result<Self, UserError> {
        let model = LoadedModel::load(dir, session)?;
        model.require(
            "embedding",
            &["input_ids", "attention_mask"],
            "last_hidden_state",
        )?;
        let pad_id = model
            .tokenizer
            .token_to_id("[PAD]")
            .or_else(|| {
                model
                    .config
                    .get("pad_token_id")
                    .and_then(|v| v.as_u64())
                    .map(|v| v as u32)
            })
            .unwrap_or(0);
        let (batch, budget) = match model.provider {
            Provider::Cpu => (64, 1024),
            Provider::Cuda(_) => (256, 16_384),
        };
        let opts = EmbedOptions {
            batch_size: if opts.batch_size == 0 {
                batch
            } else {
                opts.batch_size
            },
            token_budget: if opts.token_budget == 0 {
                budget
            } else {
                opts.token_budget
            },
            ..opts
        };
        let dim = model
            .config
            .get("hidden_size")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as usize;
        Ok(Self {
            model,
            opts,
            pad_id,
            dim,
        })
    }

    pub fn provider(&self) -> Provider {
        self.model.provider
    }

    /// A name for the model, for cache keys: its directory and the options that change
    /// the vectors.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{:?}|{}",
            self.model.dir.display(),
            self.opts.max_length,
            self.opts.pooling,
            self.opts.normalize
        )
    }

    /// Token ids of one text: special tokens added, truncated to `max_length` keeping
    /// the final special token (as the tokenizer's own truncation does).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        let enc = self
            .model
            .tokenizer
            .encode(text, true)
            .map_err(|e| format!("tokenizer: {e}"))?;
        let mut ids = enc.get_ids().to_vec();
        let max = self.opts.max_length.max(2);
        if ids.len() > max {
            let specials: Vec<bool> = enc
                .get_special_tokens_mask()
                .iter()
                .map(|m| *m == 1)
                .collect();
            let last_special = specials.last().copied().unwrap_or(false);
            let tail = ids[ids.len() - 1];
            ids.truncate(max);
            if last_special {
                ids[max - 1] = tail;
            }
        }
        Ok(ids)
    }

    /// One vector per text, in order.
    pub fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        Ok(self.embed_counted(texts)?.0)
    }

    /// One vector per text and the number of tokens it was cut to, in order.
    pub fn embed_counted(&mut self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, Vec<usize>), String> {
        // Tokenizing in parallel matters on a GPU, where it would otherwise take
        // longer than the forward passes.
        let encoded: Vec<Vec<u32>> = texts
            .par_iter()
            .map(|t| self.encode(t))
            .collect::<Result<_, _>>()?;
        let lens: Vec<usize> = encoded.iter().map(Vec::len).collect();
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in length_batches(&lens, self.opts.batch_size, self.opts.token_budget) {
            let rows: Vec<&[u32]> = chunk.iter().map(|&i| encoded[i].as_slice()).collect();
            let vectors = self.run(&rows)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok((out, lens))
    }

    fn run(&mut self, rows: &[&[u32]]) -> Result<Vec<Vec<f32>>, String> {
        let batch = Batch::new(rows, self.pad_id);
        let inputs = batch.inputs(&self.model)?;
        let outputs = self.model.session.run(inputs).map_err(|e| e.to_string())?;
        let (shape, data) = outputs["last_hidden_state"]
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?;
        let (b, t, h) = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
        if b != batch.rows || t != batch.len {
            return Err(format!(
                "model returned shape {shape:?} for a {}×{} batch",
                batch.rows, batch.len
            ));
        }
        self.dim = h;
        let mut vectors = Vec::with_capacity(b);
        for r in 0..b {
            let mut v = vec![0f32; h];
            match self.opts.pooling {
                Pooling::Cls => v.copy_from_slice(&data[r * t * h..r * t * h + h]),
                Pooling::Mean => {
                    let n = rows[r].len().max(1);
                    for tok in 0..rows[r].len() {
                        let s = &data[(r * t + tok) * h..(r * t + tok + 1) * h];
                        for (a, x) in v.iter_mut().zip(s) {
                            *a += x;
                        }
                    }
                    for a in &mut v {
                        *a /= n as f32;
                    }
                }
            }
            if self.opts.normalize {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                for a in &mut v {
                    *a /= norm;
                }
            }
            vectors.push(v);
        }
        Ok(vectors)
    }
}
