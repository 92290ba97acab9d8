//! A model is a directory as `optimum-cli export onnx` writes it: `model.onnx`,
//! `tokenizer.json`, and usually `config.json`. gleaner reads the model's input and
//! output names from the session, never assumes them, and refuses a model that lacks
//! what a role needs with the names it found.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::ValueType;
use tokenizers::Tokenizer;

use super::runtime::{Provider, SessionOptions, session};
use crate::error::{UserError, file_error, io_context};

pub struct LoadedModel {
    pub dir: PathBuf,
    pub session: Session,
    pub tokenizer: Tokenizer,
    pub config: serde_json::Value,
    pub provider: Provider,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

impl LoadedModel {
    pub fn load(dir: &Path, opts: SessionOptions) -> Result<Self, UserError> {
        if !dir.is_dir() {
            return Err(UserError::new(format!("model directory {} not found", dir.display()))
                .with_hint("point the recipe at a folder with model.onnx and tokenizer.json (optimum-cli export onnx writes one)"));
        }
        let onnx = dir.join("model.onnx");
        let tok = dir.join("tokenizer.json");
        for f in [&onnx, &tok] {
            if !f.is_file() {
                return Err(file_error(
                    dir,
                    format!(
                        "no {} in the model directory",
                        f.file_name().unwrap_or_default().to_string_lossy()
                    ),
                ));
            }
        }
        let config = match std::fs::read_to_string(dir.join("config.json")) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| file_error(&dir.join("config.json"), format!("invalid JSON: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Value::Null,
            Err(e) => return Err(io_context(&dir.join("config.json"), e)),
        };
        let mut tokenizer = Tokenizer::from_file(&tok)
            .map_err(|e| file_error(&tok, format!("cannot read the tokenizer: {e}")))?;
        // Batches are padded by gleaner to each batch's longest row; an exported
        // tokenizer's fixed padding/truncation would change the results.
        tokenizer.with_padding(None);
        let _ = tokenizer.with_truncation(None);
        let (session, provider) = session(&onnx, opts)?;
        let inputs = session
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        let outputs = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        for o in session.inputs() {
            if let ValueType::Tensor { ty, .. } = o.dtype()
                && *ty != ort::value::TensorElementType::Int64
            {
                return Err(file_error(
                    &onnx,
                    format!(
                        "input `{}` is {ty:?}; gleaner feeds int64 token ids, masks and positions",
                        o.name()
                    ),
                ));
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            session,
            tokenizer,
            config,
            provider,
            inputs,
            outputs,
        })
    }

    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|i| i == name)
    }

    /// The input names a role needs, or an error naming what the model has.
    pub fn require(&self, role: &str, inputs: &[&str], output: &str) -> Result<(), UserError> {
        let missing: Vec<&&str> = inputs.iter().filter(|i| !self.has_input(i)).collect();
        if !missing.is_empty() || !self.outputs.iter().any(|o| o == output) {
            return Err(file_error(
                &self.dir.join("model.onnx"),
                format!(
                    "not a {role} model: it needs inputs {inputs:?} and output `{output}`, it has inputs {:?} and outputs {:?}",
                    self.inputs, self.outputs
                ),
            )
            .with_hint(format!(
                "export it with optimum-cli export onnx --task {}",
                match role {
                    "embedding" => "feature-extraction",
                    "causal language" => "text-generation",
                    _ => "text-classification",
                }
            )));
        }
        let unknown: Vec<&String> = self
            .inputs
            .iter()
            .filter(|i| {
                !matches!(
                    i.as_str(),
                    "input_ids" | "attention_mask" | "token_type_ids" | "position_ids"
                )
            })
            .collect();
        if !unknown.is_empty() {
            return Err(file_error(
                &self.dir.join("model.onnx"),
                format!(
                    "inputs {unknown:?} are not ones gleaner can fill (a model exported with past key values? use --task text-generation, not -with-past)"
                ),
            ));
        }
        Ok(())
    }
}

/// Indices of `lens` in batches: sorted by length (so a batch pads only to its own
/// longest row), each batch at most `max_rows` rows and `budget` tokens (rows × its
/// longest row). Long texts go in small batches, short ones in large: on CPU this is
/// faster than a fixed batch size and bounds memory (benches/embed.rs).
pub fn length_batches(lens: &[usize], max_rows: usize, budget: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| lens[i]);
    let mut out = Vec::new();
    let mut k = 0;
    while k < order.len() {
        let mut end = k + 1;
        while end < order.len()
            && end - k < max_rows.max(1)
            && (end - k + 1) * lens[order[end]] <= budget.max(1)
        {
            end += 1;
        }
        out.push(order[k..end].to_vec());
        k = end;
    }
    out
}

/// Row-major int64 batch tensors, padded to the longest row.
pub struct Batch {
    pub rows: usize,
    pub len: usize,
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
}

impl Batch {
    pub fn new(rows: &[&[u32]], pad_id: u32) -> Self {
        let len = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![i64::from(pad_id); rows.len() * len];
        let mut mask = vec![0i64; rows.len() * len];
        for (r, row) in rows.iter().enumerate() {
            for (t, id) in row.iter().enumerate() {
                ids[r * len + t] = i64::from(*id);
                mask[r * len + t] = 1;
            }
        }
        Self {
            rows: rows.len(),
            len,
            ids,
            mask,
        }
    }

    /// The inputs the session declares (`names`), in a form `Session::run` takes.
    pub fn inputs(
        &self,
        names: &[String],
    ) -> Result<
        Vec<(
            std::borrow::Cow<'static, str>,
            ort::session::SessionInputValue<'static>,
        )>,
        String,
    > {
        let shape = [self.rows as i64, self.len as i64];
        let tensor = |v: Vec<i64>| {
            ort::value::Tensor::from_array((shape, v))
                .map(|t| ort::session::SessionInputValue::from(t.into_dyn()))
                .map_err(|e| e.to_string())
        };
        let mut out = Vec::new();
        for name in names {
            let value = match name.as_str() {
                "input_ids" => self.ids.clone(),
                "attention_mask" => self.mask.clone(),
                "token_type_ids" => vec![0; self.ids.len()],
                // Right padding: positions count from 0 on every row.
                "position_ids" => (0..self.rows).flat_map(|_| 0..self.len as i64).collect(),
                other => return Err(format!("cannot fill input `{other}`")),
            };
            out.push((std::borrow::Cow::Owned(name.clone()), tensor(value)?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::length_batches;

    #[test]
    fn batches_are_sorted_and_kept_in_budget() {
        let lens = [100, 3, 50, 3, 100, 4];
        let b = length_batches(&lens, 3, 200);
        assert_eq!(b, vec![vec![1, 3, 5], vec![2, 0], vec![4]]);
        // A row longer than the budget still gets a batch of its own.
        assert_eq!(length_batches(&[500], 8, 100), vec![vec![0]]);
        assert!(length_batches(&[], 8, 100).is_empty());
    }
}
