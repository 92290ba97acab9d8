//! Running the local-model stages (`embed`, `score.ppl`) inside a recipe: load the
//! model named by `[model.<name>]` (or, for `score.ppl`, use a judge endpoint's
//! logprobs), process the selected rows with progress and cancel, write the sidecar.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::embed;
use super::judging::Progress;
use super::recipe::{Recipe, RecipeModel, StageSpec};
use super::runner::{
    RunContext, RunEvent, StageSummary, build_pool, finish_run, merge_rows, start_run,
    write_stage_sidecar,
};
use super::score_ppl;
use crate::data::record::Record;
use crate::error::UserError;
use crate::judge::client::RetryPolicy;
use crate::models::causal::{OnnxScorer, ServerScorer, SpanScorer};
use crate::models::embedder::{EmbedOptions, Embedder};
use crate::models::runtime::{Device, SessionOptions};

/// `[model.<name>]`'s directory: its `path` (relative to the recipe), else
/// `$GLEANER_MODELS/<name>`, else the cache's `models/<name>` (`make models`).
pub fn model_dir(recipe: &Recipe, name: &str, m: &RecipeModel) -> PathBuf {
    if let Some(p) = &m.path {
        return recipe.dir.join(p);
    }
    let root = std::env::var_os("GLEANER_MODELS")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("gleaner/models")))
        .unwrap_or_else(|| PathBuf::from("models"));
    root.join(name)
}

fn session_options(m: &RecipeModel) -> Result<SessionOptions, UserError> {
    Ok(SessionOptions {
        device: m
            .device
            .as_deref()
            .map(Device::parse)
            .transpose()
            .map_err(UserError::new)?
            .unwrap_or_default(),
        threads: m.threads.unwrap_or(0),
    })
}

/// The embedder of `[model.<name>]`, L2-normalized.
pub fn load_embedder(recipe: &Recipe, name: &str) -> Result<Embedder, UserError> {
    let table = &recipe.model[name];
    let eo = EmbedOptions {
        max_length: table.max_length.unwrap_or(256),
        batch_size: table.batch_size.unwrap_or(0),
        lanes: table.lanes.unwrap_or(0),
        pooling: table.pooling.unwrap_or_default(),
        normalize: true,
        ..EmbedOptions::default()
    };
    Embedder::load(&model_dir(recipe, name, table), session_options(table)?, eo)
}

pub(crate) fn run(
    cx: &RunContext,
    spec: &StageSpec,
    records: &[Record],
    report: &mut dyn FnMut(&RunEvent),
    started: Instant,
) -> Result<StageSummary, UserError> {
    let RunContext {
        ws,
        db,
        recipe,
        urls,
        opts,
        runtime,
        cancel,
    } = *cx;
    let name = spec.name().to_string();
    let mut summary = StageSummary::new(spec, records.len(), opts);
    let model = spec.model.as_deref().map(|m| (m, &recipe.model[m]));
    if opts.dry_run {
        let what = match model {
            Some((m, table)) => format!("model {m} at {}", model_dir(recipe, m, table).display()),
            None => format!("endpoint {}", spec.endpoint.as_deref().unwrap_or_default()),
        };
        report(&RunEvent::Note(format!(
            "{name}: {} rows selected; {what}",
            records.len()
        )));
        return Ok(summary);
    }
    report(&RunEvent::Started {
        stage: name.clone(),
        rows: records.len(),
    });
    let run_id = start_run(db, spec, opts)?;
    let mut last = Progress::default();
    let mut on_progress = |p: Progress| {
        last = p;
        report(&RunEvent::Progress {
            stage: name.clone(),
            progress: p,
            elapsed: started.elapsed(),
        });
    };
    // The endpoint pool of a server-backed `score.ppl`, for usage in the summary.
    let mut server_pool: Option<Arc<crate::judge::pool::Pool>> = None;
    let (fresh, done) = match spec.id.as_str() {
        "embed" => {
            let (m, _) = model.expect("validated: embed names a model");
            let mut embedder = load_embedder(recipe, m)?;
            tracing::info!(model = m, provider = %embedder.provider(), "embedding");
            let rows = embed::embed_rows(
                records,
                spec.text.unwrap_or_default(),
                &mut embedder,
                db,
                cancel,
                &mut on_progress,
            )
            .map_err(UserError::new)?;
            if rows.len() == records.len() {
                let vectors =
                    embed::vectors_frame(&rows).map_err(|e| UserError::new(e.to_string()))?;
                let path = ws.dir.join("embeddings").join(format!("{name}.parquet"));
                let merged = merge_rows(&path, vectors)?;
                ws.write_parquet_atomic(&path, &merged)?;
            }
            (
                embed::sidecar_frame(&rows).map_err(|e| UserError::new(e.to_string()))?,
                rows.len(),
            )
        }
        "score.ppl" => {
            let template = spec.prompt_template.as_deref().unwrap_or("alpaca");
            let alone = spec.alone_prefix.as_deref().unwrap_or("### Response:\n");
            let mut scorer: Box<dyn SpanScorer> = match (model, spec.endpoint.as_deref()) {
                (Some((m, table)), _) => {
                    let mut s =
                        OnnxScorer::load(&model_dir(recipe, m, table), session_options(table)?)?;
                    if let Some(n) = table.max_length {
                        s.max_length = n;
                    }
                    Box::new(s)
                }
                (None, Some(role)) => Box::new(ServerScorer {
                    pool: {
                        let pool =
                            Arc::new(build_pool(recipe, role, urls)?.with_cancel(cancel.clone()));
                        server_pool = Some(pool.clone());
                        pool
                    },
                    runtime: runtime.handle().clone(),
                    retry: RetryPolicy::default(),
                    alignment: spec.logprob_alignment.unwrap_or_default(),
                    top_k: 1000,
                }),
                (None, None) => unreachable!("validated"),
            };
            let rows = score_ppl::score_rows(
                records,
                scorer.as_mut(),
                template,
                alone,
                cancel,
                &mut on_progress,
            );
            let n = rows.len();
            (
                score_ppl::sidecar_frame(&rows).map_err(|e| UserError::new(e.to_string()))?,
                n,
            )
        }
        other => unreachable!("not a model stage: {other}"),
    };
    summary.interrupted = done < records.len();
    let status = fresh
        .column("status")
        .and_then(|c| c.str().cloned())
        .map_err(|e| UserError::new(e.to_string()))?;
    let count = |s: &str| status.iter().filter(|x| *x == Some(s)).count();
    summary.ok = count("ok");
    summary.unparsed = count("unparsed");
    summary.failed = count("failed");
    summary.cached = last.cached;
    summary.tokens = last.tokens;
    if let Some(pool) = &server_pool {
        summary.endpoints = pool.usage();
        summary.requests = summary.endpoints.iter().map(|e| e.requests).sum();
    }
    if !summary.interrupted {
        summary.sidecar = Some(write_stage_sidecar(ws, &name, fresh, opts.shard)?);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    finish_run(db, run_id, &summary)?;
    Ok(summary)
}
