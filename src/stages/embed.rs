//! Stage `embed`: one vector per row from a local embedding model (models::embedder),
//! of the text the recipe names (instruction, instruction + input, the conversation or
//! the response). Vectors are computed once per (model, text): they are kept in the
//! workspace database by a hash of the text, so a rerun, another stage or another
//! workspace row with the same text costs nothing. The stage writes
//! `embeddings/<name>.parquet` (`id`, `vector`) and a sidecar with `dim`, `tokens`,
//! `cached` and `status`.

use std::sync::atomic::{AtomicBool, Ordering};

use polars::prelude::*;
use rusqlite::{OptionalExtension, params};

use super::judging::Progress;
use super::recipe::TextField;
use crate::data::record::Record;
use crate::models::embedder::Embedder;
use crate::store::Db;

/// The text of a sample a model stage reads.
pub fn text_of(r: &Record, field: TextField) -> String {
    match field {
        TextField::Instruction => r
            .instruction
            .clone()
            .unwrap_or_else(|| r.first_user().to_string()),
        TextField::InstructionInput => match (&r.instruction, r.input.as_deref()) {
            (Some(i), Some(input)) if !input.is_empty() => format!("{i}\n\n{input}"),
            (Some(i), _) => i.clone(),
            (None, _) => r.first_user().to_string(),
        },
        TextField::Conversation => r
            .messages
            .iter()
            .map(|m| format!("{}: {}", m.role, m.content))
            .collect::<Vec<_>>()
            .join("\n"),
        TextField::Response => r
            .output
            .clone()
            .unwrap_or_else(|| r.first_assistant().to_string()),
    }
}

pub struct EmbedRow {
    pub id: String,
    pub vector: Vec<f32>,
    pub tokens: usize,
    pub cached: bool,
}

fn text_hash(text: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
}

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Embed every record (cache first); rows left when `cancel` is set are missing.
pub fn embed_rows(
    records: &[Record],
    field: TextField,
    embedder: &mut Embedder,
    db: &Db,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<EmbedRow>, String> {
    let model = embedder.key();
    let texts: Vec<String> = records.iter().map(|r| text_of(r, field)).collect();
    let mut out: Vec<Option<EmbedRow>> = (0..records.len()).map(|_| None).collect();
    let mut p = Progress {
        total: records.len(),
        ..Progress::default()
    };
    let mut missing = Vec::new();
    {
        let mut get = db
            .conn
            .prepare_cached(
                "SELECT vector FROM embedding_cache WHERE model = ?1 AND text_hash = ?2",
            )
            .map_err(|e| e.to_string())?;
        for (i, t) in texts.iter().enumerate() {
            let hit: Option<Vec<u8>> = get
                .query_row(params![model, text_hash(t)], |r| r.get(0))
                .optional()
                .map_err(|e| e.to_string())?;
            match hit {
                Some(blob) => {
                    out[i] = Some(EmbedRow {
                        id: records[i].id.clone(),
                        vector: from_blob(&blob),
                        tokens: 0,
                        cached: true,
                    });
                    p.done += 1;
                    p.cached += 1;
                }
                None => missing.push(i),
            }
        }
    }
    progress(p);
    // Chunks bound the work lost to a cancel and keep progress moving.
    for chunk in missing.chunks(256) {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
        let (vectors, lens) = embedder.embed_counted(&batch)?;
        let tx = db.conn.unchecked_transaction().map_err(|e| e.to_string())?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO embedding_cache(model, text_hash, dim, vector) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(|e| e.to_string())?;
            for (&i, v) in chunk.iter().zip(&vectors) {
                put.execute(params![
                    model,
                    text_hash(&texts[i]),
                    v.len() as i64,
                    to_blob(v)
                ])
                .map_err(|e| e.to_string())?;
            }
        }
        tx.commit().map_err(|e| e.to_string())?;
        for ((&i, v), tokens) in chunk.iter().zip(vectors).zip(lens) {
            p.tokens += tokens as u64;
            out[i] = Some(EmbedRow {
                id: records[i].id.clone(),
                vector: v,
                tokens,
                cached: false,
            });
            p.done += 1;
        }
        progress(p);
    }
    Ok(out.into_iter().flatten().collect())
}

/// `id` + `vector` (list of f32), for `embeddings/<name>.parquet`.
pub fn vectors_frame(rows: &[EmbedRow]) -> PolarsResult<DataFrame> {
    let vectors: ListChunked = rows
        .iter()
        .map(|r| Some(Series::new("".into(), r.vector.as_slice())))
        .collect();
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "id".into(),
                rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ),
            vectors.with_name("vector".into()).into_series().into(),
        ],
    )
}

/// The sidecar: `dim`, `tokens` (0 when cached), `cached`, `status`.
pub fn sidecar_frame(rows: &[EmbedRow]) -> PolarsResult<DataFrame> {
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "id".into(),
                rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "dim".into(),
                rows.iter()
                    .map(|r| r.vector.len() as i64)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "tokens".into(),
                rows.iter().map(|r| r.tokens as i64).collect::<Vec<_>>(),
            ),
            Column::new(
                "cached".into(),
                rows.iter().map(|r| r.cached).collect::<Vec<_>>(),
            ),
            Column::new(
                "status".into(),
                rows.iter().map(|_| "ok").collect::<Vec<_>>(),
            ),
        ],
    )
}
