//! Sequence classification (NLI for AutoIF): premise/hypothesis pairs → label
//! probabilities, labels read from `config.json`'s `id2label`. Any
//! `text-classification` export works; for NLI export e.g. an mDeBERTa XNLI model:
//! `optimum-cli export onnx --task text-classification --model
//! MoritzLaurer/mDeBERTa-v3-base-xnli-multilingual-nli-2mil7 nli/`.

use std::path::Path;

use super::model_dir::{Batch, LoadedModel};
use super::runtime::SessionOptions;
use crate::error::{UserError, file_error};

pub struct Classifier {
    model: LoadedModel,
    pub labels: Vec<String>,
    pub max_length: usize,
    pub batch_size: usize,
    pad_id: u32,
}

impl Classifier {
    pub fn load(dir: &Path, session: SessionOptions) -> Result<Self, UserError> {
        let model = LoadedModel::load(dir, session)?;
        model.require(
            "sequence classification",
            &["input_ids", "attention_mask"],
            "logits",
        )?;
        let id2label = model
            .config
            .get("id2label")
            .and_then(|v| v.as_object())
            .ok_or_else(|| {
                file_error(
                    &dir.join("config.json"),
                    "no `id2label`: gleaner cannot name the classes",
                )
            })?;
        let mut labels = vec![String::new(); id2label.len()];
        for (k, v) in id2label {
            let i: usize = k
                .parse()
                .ok()
                .filter(|i| *i < labels.len())
                .ok_or_else(|| {
                    file_error(
                        &dir.join("config.json"),
                        format!("id2label key `{k}` is not an index"),
                    )
                })?;
            labels[i] = v.as_str().unwrap_or_default().to_string();
        }
        let pad_id = model.tokenizer.token_to_id("[PAD]").unwrap_or(0);
        Ok(Self {
            model,
            labels,
            max_length: 512,
            batch_size: 16,
            pad_id,
        })
    }

    /// Label probabilities (softmax over the logits) per (premise, hypothesis) pair.
    pub fn classify(&mut self, pairs: &[(&str, &str)]) -> Result<Vec<Vec<f32>>, String> {
        let mut encoded = Vec::with_capacity(pairs.len());
        for (p, h) in pairs {
            let enc = self
                .model
                .tokenizer
                .encode((*p, *h), true)
                .map_err(|e| format!("tokenizer: {e}"))?;
            let mut ids = enc.get_ids().to_vec();
            ids.truncate(self.max_length);
            encoded.push(ids);
        }
        let mut out = Vec::with_capacity(pairs.len());
        for chunk in encoded.chunks(self.batch_size.max(1)) {
            let rows: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
            let batch = Batch::new(&rows, self.pad_id);
            let inputs = batch.inputs(&self.model.inputs)?;
            let outputs = self.model.session.run(inputs).map_err(|e| e.to_string())?;
            let (shape, logits) = outputs["logits"]
                .try_extract_tensor::<f32>()
                .map_err(|e| e.to_string())?;
            let n = shape[1] as usize;
            if n != self.labels.len() {
                return Err(format!(
                    "the model gives {n} logits but config.json names {} labels",
                    self.labels.len()
                ));
            }
            for row in logits.chunks(n) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exp: Vec<f32> = row.iter().map(|x| (x - max).exp()).collect();
                let sum: f32 = exp.iter().sum();
                out.push(exp.into_iter().map(|e| e / sum).collect());
            }
        }
        Ok(out)
    }
}
