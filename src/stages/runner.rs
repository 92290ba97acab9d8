//! Recipes and the headless runner: `gleaner run RECIPE -w WORKSPACE`.
//!
//! A recipe names endpoints (`[llm.<name>]`) and stages in order (`[[stage]]`), each
//! with its parameters, preset, and which rows it reads (`rows = "<filter>"`, `limit`).
//! Replies are cached per request as they arrive, so an interrupted run resumes where
//! it stopped; each stage writes its sidecar when it completes.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::ds2_rate::{self, Progress, RateOptions};
use crate::data::filter;
use crate::data::frame::frame_to_records;
use crate::error::{UserError, file_error, io_context};
use crate::judge::cache::JudgeCache;
use crate::judge::client::{Endpoint, EndpointConfig};
use crate::judge::prompt::PromptTemplate;
use crate::store::Workspace;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeEndpoint {
    pub base_url: String,
    pub model: String,
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub timeout_s: Option<f64>,
    /// `json_schema` (OpenAI, vLLM, SGLang; default) or `json_object` (llama-cpp-python).
    #[serde(default)]
    pub schema_style: ds2_rate::SchemaStyle,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub id: String,
    pub endpoint: String,
    #[serde(default)]
    pub preset: Option<String>,
    /// Filter expression choosing the rows this stage reads.
    #[serde(default)]
    pub rows: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    /// A user prompt template file instead of the built-in one.
    #[serde(default)]
    pub prompt: Option<PathBuf>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Ask for schema-constrained JSON (`response_format`).
    #[serde(default)]
    pub structured: Option<bool>,
    /// Store unparsed/failed rows as `[0,0,0,0]` like the reference code.
    #[serde(default)]
    pub unparsed_as_zero: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    #[serde(default)]
    pub llm: BTreeMap<String, RecipeEndpoint>,
    #[serde(default)]
    pub stage: Vec<StageSpec>,
}

pub const STAGES: &[&str] = &["ds2.rate"];

impl Recipe {
    pub fn load(path: &Path) -> Result<Self, UserError> {
        let text = std::fs::read_to_string(path).map_err(|e| io_context(path, e))?;
        let recipe: Recipe = toml::from_str(&text)
            .map_err(|e| file_error(path, format!("invalid recipe: {}", e.message())))?;
        if recipe.stage.is_empty() {
            return Err(file_error(path, "the recipe has no [[stage]]"));
        }
        for s in &recipe.stage {
            if !STAGES.contains(&s.id.as_str()) {
                return Err(file_error(
                    path,
                    format!(
                        "unknown stage `{}` (available: {})",
                        s.id,
                        STAGES.join(", ")
                    ),
                ));
            }
            if !recipe.llm.contains_key(&s.endpoint) {
                return Err(file_error(
                    path,
                    format!(
                        "stage `{}` names endpoint `{}`, which has no [llm.{}] table",
                        s.id, s.endpoint, s.endpoint
                    ),
                ));
            }
            if let Some(p) = s
                .preset
                .as_deref()
                .filter(|p| !matches!(*p, "paper" | "compat"))
            {
                return Err(file_error(
                    path,
                    format!(
                        "stage `{}`: preset `{p}` is not \"paper\" or \"compat\"",
                        s.id
                    ),
                ));
            }
        }
        Ok(recipe)
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub no_cache: bool,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub stage: String,
    pub rows: usize,
    pub ok: usize,
    pub unparsed: usize,
    pub failed: usize,
    pub cached: usize,
    pub requests: u64,
    pub tokens: u64,
    pub seconds: f64,
    pub interrupted: bool,
    pub sidecar: Option<PathBuf>,
}

fn line(stage: &str, p: &Progress, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    let rate = p.done as f64 / secs;
    let eta = if rate > 0.0 {
        (p.total - p.done) as f64 / rate
    } else {
        0.0
    };
    format!(
        "{stage:<12} {}/{} rows  unparsed {}  failed {}  cached {}  tokens {}  {:.1} rows/s  ETA {:.0}s",
        p.done, p.total, p.unparsed, p.failed, p.cached, p.tokens, rate, eta
    )
}

/// Run every stage of `recipe` on the workspace, reporting progress on stderr.
pub fn run_recipe(
    ws: &Workspace,
    recipe: &Recipe,
    opts: &RunOptions,
) -> Result<Vec<StageSummary>, UserError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| UserError::new(format!("cannot start the async runtime: {e}")))?;
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nstopping after the requests in flight (Ctrl-C again to kill)…");
                cancel.store(true, Ordering::SeqCst);
                let _ = tokio::signal::ctrl_c().await;
                std::process::exit(130);
            }
        });
    }
    let db = ws.db()?;
    let mut out = Vec::new();
    for spec in &recipe.stage {
        let summary = run_stage(ws, &db, recipe, spec, opts, &runtime, &cancel)?;
        let interrupted = summary.interrupted;
        out.push(summary);
        if interrupted {
            break;
        }
    }
    Ok(out)
}

fn select_rows(ws: &Workspace, spec: &StageSpec) -> Result<DataFrame, UserError> {
    let mut frame = ws.read_frame_with_sidecars(None)?;
    if let Some(expr) = &spec.rows {
        let f = filter::compile(expr, &frame.schema())
            .map_err(|e| UserError::new(format!("stage `{}` rows: {e}", spec.id)))?;
        let idx = filter::matching_rows(&frame, &f)
            .map_err(|e| UserError::new(format!("stage `{}` rows: {e}", spec.id)))?;
        frame = frame
            .take(&IdxCa::from_vec("idx".into(), idx))
            .map_err(|e| UserError::new(e.to_string()))?;
    }
    if let Some(n) = spec.limit {
        frame = frame.head(Some(n));
    }
    Ok(frame)
}

fn run_stage(
    ws: &Workspace,
    db: &crate::store::Db,
    recipe: &Recipe,
    spec: &StageSpec,
    opts: &RunOptions,
    runtime: &tokio::runtime::Runtime,
    cancel: &Arc<AtomicBool>,
) -> Result<StageSummary, UserError> {
    let started = Instant::now();
    let frame = select_rows(ws, spec)?;
    let records = frame_to_records(&frame).map_err(|e| UserError::new(e.to_string()))?;
    let ep = &recipe.llm[&spec.endpoint];
    let endpoint = Arc::new(
        Endpoint::new(EndpointConfig {
            name: spec.endpoint.clone(),
            base_url: ep.base_url.clone(),
            model: ep.model.clone(),
            api_key_env: ep.api_key_env.clone(),
            concurrency: ep.concurrency.unwrap_or(8),
            timeout_s: ep.timeout_s.unwrap_or(120.0),
        })
        .map_err(UserError::new)?,
    );
    let template = match &spec.prompt {
        Some(p) => PromptTemplate::load(p)?,
        None => PromptTemplate::builtin(&spec.id).expect("every stage ships a prompt"),
    };
    let compat = spec.preset.as_deref() == Some("compat");
    let mut rate_opts = RateOptions::preset(compat);
    if let Some(t) = spec.temperature {
        rate_opts.temperature = t;
    }
    if let Some(m) = spec.max_tokens {
        rate_opts.max_tokens = m;
    }
    if let Some(s) = spec.structured {
        rate_opts.structured = s;
    }
    rate_opts.schema_style = ep.schema_style;
    if opts.dry_run {
        eprintln!(
            "{}: {} rows selected; endpoint {} ({}); prompt {} v{}",
            spec.id,
            records.len(),
            spec.endpoint,
            ep.model,
            template.id,
            template.version
        );
        if let Some(first) = records.first() {
            let vars = serde_json::json!({"conversation": ds2_rate::serialize_conversation(first)});
            for m in template.render(&vars).map_err(UserError::new)? {
                eprintln!("--- {} ---\n{}", m.role, m.content);
            }
        }
        return Ok(StageSummary {
            stage: spec.id.clone(),
            rows: records.len(),
            ok: 0,
            unparsed: 0,
            failed: 0,
            cached: 0,
            requests: 0,
            tokens: 0,
            seconds: 0.0,
            interrupted: false,
            sidecar: None,
        });
    }
    let run_id = start_run(db, spec)?;
    let cache = JudgeCache::new(db, !opts.no_cache);
    let mut last_print = Instant::now();
    let mut last = Progress::default();
    let results = runtime
        .block_on(ds2_rate::rate(
            &records,
            endpoint.clone(),
            &spec.endpoint,
            &template,
            &cache,
            &rate_opts,
            cancel,
            &mut |p| {
                last = p;
                if last_print.elapsed().as_millis() >= 500 || p.done == p.total {
                    eprintln!("{}", line(&spec.id, &p, started));
                    last_print = Instant::now();
                }
            },
        ))
        .map_err(UserError::new)?;
    let interrupted = results.len() < records.len();
    let sidecar = if interrupted {
        None
    } else {
        let unparsed_as_zero = spec.unparsed_as_zero.unwrap_or(compat);
        let fresh = ds2_rate::sidecar_frame(&results, unparsed_as_zero)
            .map_err(|e| UserError::new(e.to_string()))?;
        Some(merge_sidecar(ws, &spec.id, fresh)?)
    };
    let count = |s| results.iter().filter(|r| r.status == s).count();
    let summary = StageSummary {
        stage: spec.id.clone(),
        rows: records.len(),
        ok: count(ds2_rate::RowStatus::Ok),
        unparsed: count(ds2_rate::RowStatus::Unparsed),
        failed: count(ds2_rate::RowStatus::Failed),
        cached: last.cached,
        requests: endpoint.stats.requests.load(Ordering::Relaxed),
        tokens: last.tokens,
        seconds: started.elapsed().as_secs_f64(),
        interrupted,
        sidecar,
    };
    finish_run(db, run_id, &summary)?;
    Ok(summary)
}

/// Replace this run's rows in the stage's sidecar, keeping rows of earlier runs that
/// this run did not select.
fn merge_sidecar(ws: &Workspace, stage: &str, fresh: DataFrame) -> Result<PathBuf, UserError> {
    let path = ws.sidecar_path(stage);
    let prefix = format!("{stage}.");
    let mut fresh = fresh;
    for name in fresh.get_column_names_owned() {
        if name != "id" {
            fresh
                .rename(&name, format!("{prefix}{name}").into())
                .map_err(|e| UserError::new(e.to_string()))?;
        }
    }
    let merged = match std::fs::File::open(&path) {
        Ok(file) => {
            let old = ParquetReader::new(file)
                .finish()
                .map_err(|e| file_error(&path, e))?;
            let new_ids: HashSet<&str> = fresh
                .column("id")
                .and_then(|c| c.str())
                .map_err(|e| UserError::new(e.to_string()))?
                .iter()
                .flatten()
                .collect();
            let keep: BooleanChunked = old
                .column("id")
                .and_then(|c| c.str())
                .map_err(|e| file_error(&path, e))?
                .iter()
                .map(|id| Some(!id.is_some_and(|id| new_ids.contains(id))))
                .collect();
            let kept = old.filter(&keep).map_err(|e| file_error(&path, e))?;
            if kept.height() > 0 && kept.schema() == fresh.schema() {
                kept.vstack(&fresh).map_err(|e| file_error(&path, e))?
            } else {
                fresh
            }
        }
        Err(_) => fresh,
    };
    ws.write_sidecar(stage, &merged)
}

fn start_run(db: &crate::store::Db, spec: &StageSpec) -> Result<i64, UserError> {
    let params = serde_json::json!({
        "endpoint": spec.endpoint, "preset": spec.preset, "rows": spec.rows, "limit": spec.limit,
    });
    db.conn
        .execute(
            "INSERT INTO runs(stage, params, status, started_at) VALUES (?1, ?2, 'running', ?3)",
            rusqlite::params![spec.id, params.to_string(), crate::util::now_rfc3339()],
        )
        .map_err(|e| UserError::new(format!("cannot record the run: {e}")))?;
    Ok(db.conn.last_insert_rowid())
}

fn finish_run(db: &crate::store::Db, id: i64, s: &StageSummary) -> Result<(), UserError> {
    let status = if s.interrupted { "interrupted" } else { "done" };
    db.conn
        .execute(
            "UPDATE runs SET status = ?1, finished_at = ?2, recipe = ?3 WHERE id = ?4",
            rusqlite::params![
                status,
                crate::util::now_rfc3339(),
                serde_json::to_string(s).unwrap_or_default(),
                id
            ],
        )
        .map_err(|e| UserError::new(format!("cannot record the run: {e}")))?;
    Ok(())
}
