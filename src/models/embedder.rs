//! Sentence embeddings from a `feature-extraction` export (e.g. all-MiniLM-L6-v2):
//! tokenize with special tokens, truncate to `max_length`, sort by length and batch so
//! each batch pads only to its own longest text, run once per batch, pool the last
//! hidden state (attention-masked mean, or the first token), L2-normalize. Results come
//! back in input order and do not depend on what else was in the batch.

use std::path::Path;

use rayon::prelude::*;

use ort::session::Session;

use super::model_dir::{Batch, LoadedModel, length_batches};
use super::runtime::{Device, Provider, SessionOptions, session};
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
    /// batches, short ones in large (0: by provider, 512 on the CPU, 16,384 on CUDA;
    /// each measured fastest there by benches/embed.rs and benches/cuda-check.sh).
    pub token_budget: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    /// Sessions run side by side on the CPU, one thread each (0: one per thread for a
    /// model file up to 256 MB, else 1). Each lane holds its own copy of the weights.
    pub lanes: usize,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            max_length: 256,
            batch_size: 0,
            token_budget: 0,
            pooling: Pooling::Mean,
            normalize: true,
            lanes: 0,
        }
    }
}

pub struct Embedder {
    model: LoadedModel,
    /// More sessions of the model on the CPU, each running its own batches: MiniLM's
    /// operators are small, and one session's threads spend much of each waiting for
    /// one another (two 1-thread lanes: +5–10% texts/s on 2 cores, benches/embed.rs).
    lanes: Vec<Session>,
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
        let lanes = cpu_lanes(dir, &session, opts.lanes);
        let one_thread = SessionOptions {
            threads: 1,
            ..session
        };
        let mut model = if lanes > 1 && session.device == Device::Cpu {
            LoadedModel::load(dir, one_thread)?
        } else {
            LoadedModel::load(dir, session)?
        };
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
            Provider::Cpu => (64, 512),
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
        let mut extra = Vec::new();
        if lanes > 1 && model.provider == Provider::Cpu {
            if session.device != Device::Cpu {
                // `auto` fell back to the CPU: the first session has every thread.
                model.session = session_for(dir, one_thread)?;
            }
            for _ in 1..lanes {
                extra.push(session_for(dir, one_thread)?);
            }
        }
        let dim = model
            .config
            .get("hidden_size")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as usize;
        Ok(Self {
            model,
            opts: EmbedOptions {
                lanes: extra.len() + 1,
                ..opts
            },
            lanes: extra,
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
        let batches = length_batches(&lens, self.opts.batch_size, self.opts.token_budget);
        let Self {
            model,
            lanes,
            opts,
            pad_id,
            ..
        } = self;
        let (names, opts, pad_id) = (&model.inputs, &*opts, *pad_id);
        let run = |session: &mut Session, chunk: &[usize]| {
            let rows: Vec<&[u32]> = chunk.iter().map(|&i| encoded[i].as_slice()).collect();
            embed_batch(session, names, &rows, pad_id, opts)
        };
        // Each lane takes the next batch as it finishes one: the batches are sorted by
        // length, so the lanes stay busy until the last one.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let lane = |session: &mut Session| {
            let mut done = Vec::new();
            loop {
                let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(chunk) = batches.get(b) else {
                    return Ok(done);
                };
                match run(session, chunk) {
                    Ok(vectors) => done.push((b, vectors)),
                    Err(e) => {
                        // The other lanes stop at their next batch.
                        next.store(batches.len(), std::sync::atomic::Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
        };
        let mut sessions = vec![&mut model.session];
        sessions.extend(lanes.iter_mut());
        let results: Vec<Result<Vec<(usize, Vec<Vec<f32>>)>, String>> = if sessions.len() == 1 {
            vec![lane(sessions.remove(0))]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = sessions
                    .into_iter()
                    .map(|s| scope.spawn(|| lane(s)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err("an embedding lane failed".into()))
                    })
                    .collect()
            })
        };
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for done in results {
            for (b, vectors) in done? {
                for (&i, v) in batches[b].iter().zip(vectors) {
                    out[i] = v;
                }
            }
        }
        if let Some(v) = out.iter().find(|v| !v.is_empty()) {
            self.dim = v.len();
        }
        Ok((out, lens))
    }
}

/// Pooled (and normalized) vectors of one padded batch.
fn embed_batch(
    session: &mut Session,
    names: &[String],
    rows: &[&[u32]],
    pad_id: u32,
    opts: &EmbedOptions,
) -> Result<Vec<Vec<f32>>, String> {
    let batch = Batch::new(rows, pad_id);
    let inputs = batch.inputs(names)?;
    let outputs = session.run(inputs).map_err(|e| e.to_string())?;
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
    let mut vectors = Vec::with_capacity(b);
    for r in 0..b {
        let mut v = vec![0f32; h];
        match opts.pooling {
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
        if opts.normalize {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            for a in &mut v {
                *a /= norm;
            }
        }
        vectors.push(v);
    }
    Ok(vectors)
}

/// A session of the model in `dir` (for a lane).
fn session_for(dir: &Path, opts: SessionOptions) -> Result<Session, UserError> {
    Ok(session(&dir.join("model.onnx"), opts)?.0)
}

/// How many CPU lanes: `asked`, or one per thread for a model file up to 256 MB (each
/// lane holds its own weights; a large model's operators keep the threads busy anyway).
fn cpu_lanes(dir: &Path, session: &SessionOptions, asked: usize) -> usize {
    if asked > 0 {
        return asked;
    }
    if matches!(session.device, Device::Cuda(_)) {
        return 1;
    }
    let small = std::fs::metadata(dir.join("model.onnx")).is_ok_and(|m| m.len() <= 256 << 20);
    let threads = match session.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if small { threads } else { 1 }
}
