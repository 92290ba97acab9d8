//! The runner: `gleaner run RECIPE -w WORKSPACE [--shard i/n]`, and the TUI's Jobs
//! panel, execute a recipe's stages in order over a workspace.
//!
//! Replies are cached per request as they arrive, so an interrupted run resumes where it
//! stopped; each stage writes its sidecar when it completes. With `--shard i/n` a run
//! takes the rows whose id hashes to shard i and writes `sidecars/shards/<stage>/i-of-n`;
//! `gleaner merge-shards` folds the shards into the stage's sidecar by id.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use polars::prelude::*;
use serde::Serialize;

use super::aido_classify::AidoClassify;
use super::ds2_rate::{Ds2Rate, SchemaStyle};
use super::judge_rubric::JudgeRubric;
use super::judging::{self, AskOptions, JudgeStage, Progress, RowStatus};
use super::recipe::{Recipe, StageSpec};
use crate::data::filter;
use crate::data::frame::frame_to_records;
use crate::error::{UserError, file_error};
use crate::judge::cache::JudgeCache;
use crate::judge::client::{Endpoint, EndpointConfig, RetryPolicy};
use crate::judge::managed::ManagedServer;
use crate::judge::pool::{EndpointUsage, HealthPolicy, Pool};
use crate::judge::prompt::PromptTemplate;
use crate::store::Workspace;

/// Shard `index` of `count` (1-based, as typed: `--shard 2/4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("--shard {text}: expected i/n with 1 ≤ i ≤ n, e.g. 2/4");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }

    /// Whether a row belongs to this shard: a stable hash of its id, so every machine
    /// agrees without talking to the others.
    pub fn owns(&self, id: &str) -> bool {
        xxhash_rust::xxh3::xxh3_64(id.as_bytes()) % u64::from(self.count)
            == u64::from(self.index - 1)
    }

    pub fn label(&self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub no_cache: bool,
    pub dry_run: bool,
    pub shard: Option<Shard>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageSummary {
    pub stage: String,
    pub name: String,
    pub rows: usize,
    pub ok: usize,
    pub unparsed: usize,
    pub failed: usize,
    pub cached: usize,
    pub requests: u64,
    pub tokens: u64,
    pub seconds: f64,
    pub interrupted: bool,
    pub shard: Option<String>,
    pub sidecar: Option<PathBuf>,
    /// Requests and tokens per endpoint of the stage's role.
    pub endpoints: Vec<EndpointUsage>,
}

impl StageSummary {
    /// A summary with nothing counted yet.
    pub fn new(spec: &StageSpec, rows: usize, opts: &RunOptions) -> Self {
        Self {
            stage: spec.id.clone(),
            name: spec.name().to_string(),
            rows,
            ok: 0,
            unparsed: 0,
            failed: 0,
            cached: 0,
            requests: 0,
            tokens: 0,
            seconds: 0.0,
            interrupted: false,
            shard: opts.shard.map(|s| s.label()),
            sidecar: None,
            endpoints: Vec::new(),
        }
    }
}

/// What a run reports as it goes (stderr for the CLI, the Jobs panel in the TUI).
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// A managed local judge is starting or up, or other one-line news.
    Note(String),
    Started {
        stage: String,
        rows: usize,
    },
    Progress {
        stage: String,
        progress: Progress,
        elapsed: Duration,
    },
    Finished(StageSummary),
}

/// One progress line: rows, unparsed, failed, cached, tokens, throughput, ETA.
pub fn progress_line(stage: &str, p: &Progress, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let fresh = p.done.saturating_sub(p.cached);
    let rate = fresh as f64 / secs;
    let eta = if rate > 0.0 {
        format!("{:.0}s", (p.total - p.done) as f64 / rate)
    } else {
        "–".into()
    };
    format!(
        "{stage:<14} {}/{} rows  unparsed {}  failed {}  cached {}  tokens {}  {:.1} rows/s  ETA {eta}",
        p.done, p.total, p.unparsed, p.failed, p.cached, p.tokens, rate
    )
}

/// `[█████░░░░░]`: the share of rows done.
fn bar(p: &Progress, width: usize) -> String {
    let filled = (p.done * width).checked_div(p.total).unwrap_or(width);
    format!("[{}{}]", "█".repeat(filled), "░".repeat(width - filled))
}

/// Run every stage of `recipe`, with progress on stderr and Ctrl-C stopping cleanly.
pub fn run_recipe(
    ws: &Workspace,
    recipe: &Recipe,
    opts: &RunOptions,
) -> Result<Vec<StageSummary>, UserError> {
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        let _ = ctrlc_thread(move || {
            eprintln!("\nstopping after the requests in flight (Ctrl-C again to kill)…");
            cancel.store(true, Ordering::SeqCst);
        });
    }
    // On a terminal one bar redraws in place; in a log, a line every few seconds.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let every = Duration::from_millis(if tty { 200 } else { 5_000 });
    let mut last_print = Instant::now() - every;
    run_recipe_with(ws, recipe, opts, cancel, &mut |event| match event {
        RunEvent::Note(text) => eprintln!("{text}"),
        RunEvent::Started { .. } => {}
        RunEvent::Progress {
            stage,
            progress,
            elapsed,
        } => {
            let last = progress.done == progress.total;
            if last_print.elapsed() >= every || last {
                if tty {
                    eprint!(
                        "\r\x1b[2K{} {}",
                        bar(progress, 24),
                        progress_line(stage, progress, *elapsed)
                    );
                    if last {
                        eprintln!();
                    }
                } else {
                    eprintln!("{}", progress_line(stage, progress, *elapsed));
                }
                last_print = Instant::now();
            }
        }
        RunEvent::Finished(s) => {
            for e in &s.endpoints {
                eprintln!(
                    "  {} {}: {} requests, {} retries, {} failures, {} prompt + {} completion tokens, peak {} in flight",
                    e.role,
                    e.endpoint,
                    e.requests,
                    e.retries,
                    e.failures,
                    e.prompt_tokens,
                    e.completion_tokens,
                    e.max_in_flight
                );
            }
        }
    })
}

/// First Ctrl-C calls `on_first`; a second one exits at once.
fn ctrlc_thread(on_first: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ctrl-c".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    on_first();
                    let _ = tokio::signal::ctrl_c().await;
                    std::process::exit(130);
                }
            });
        })
        .map(|_| ())
}

/// What every stage of one run shares: the workspace and its database, the recipe, the
/// URLs of the local judges, the run's options, the async runtime and the cancel flag.
#[derive(Clone, Copy)]
pub(crate) struct RunContext<'a> {
    pub ws: &'a Workspace,
    pub db: &'a crate::store::Db,
    pub recipe: &'a Recipe,
    pub urls: &'a BTreeMap<(String, usize), String>,
    pub opts: &'a RunOptions,
    pub runtime: &'a tokio::runtime::Runtime,
    pub cancel: &'a Arc<AtomicBool>,
}

/// Run every stage of `recipe`, reporting through `report`, until done or `cancel`.
pub fn run_recipe_with(
    ws: &Workspace,
    recipe: &Recipe,
    opts: &RunOptions,
    cancel: Arc<AtomicBool>,
    report: &mut dyn FnMut(&RunEvent),
) -> Result<Vec<StageSummary>, UserError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| UserError::new(format!("cannot start the async runtime: {e}")))?;
    // Local judges live for the whole run and stop when `_servers` drops.
    let (_servers, urls) = if opts.dry_run {
        (Vec::new(), BTreeMap::new())
    } else {
        start_managed(ws, recipe, report)?
    };
    let db = ws.db()?;
    let mut out = Vec::new();
    for spec in &recipe.stage {
        let cx = RunContext {
            ws,
            db: &db,
            recipe,
            urls: &urls,
            opts,
            runtime: &runtime,
            cancel: &cancel,
        };
        let summary = run_stage(&cx, spec, report)?;
        let interrupted = summary.interrupted;
        report(&RunEvent::Finished(summary.clone()));
        out.push(summary);
        if interrupted {
            break;
        }
    }
    Ok(out)
}

/// Start the local judges the stages use; their URLs by (role, replica).
#[allow(clippy::type_complexity)]
fn start_managed(
    ws: &Workspace,
    recipe: &Recipe,
    report: &mut dyn FnMut(&RunEvent),
) -> Result<(Vec<ManagedServer>, BTreeMap<(String, usize), String>), UserError> {
    let used: BTreeSet<&str> = recipe
        .stage
        .iter()
        .filter_map(|s| s.endpoint.as_deref())
        .collect();
    let mut servers = Vec::new();
    let mut urls = BTreeMap::new();
    for role in used {
        for (k, e) in recipe.llm[role].list().iter().enumerate() {
            let Some(command) = &e.command else { continue };
            report(&RunEvent::Note(format!(
                "starting the local judge `{role}`: {}",
                command.join(" ")
            )));
            let log = ws.log_dir().join(format!("judge-{role}-{k}.log"));
            let timeout = Duration::from_secs_f64(e.startup_timeout_s.unwrap_or(180.0).max(1.0));
            let server = ManagedServer::start(role, command, &recipe.dir, log, timeout)?;
            let url = match &e.base_url {
                Some(u) => u.replace("{port}", &port_of(&server.base_url)),
                None => server.base_url.clone(),
            };
            report(&RunEvent::Note(format!(
                "local judge `{role}` is up at {url}"
            )));
            urls.insert((role.to_string(), k), url);
            servers.push(server);
        }
    }
    Ok((servers, urls))
}

fn port_of(url: &str) -> String {
    url.rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .unwrap_or_default()
        .to_string()
}

/// The role's replicas as a pool.
pub(crate) fn build_pool(
    recipe: &Recipe,
    role: &str,
    urls: &BTreeMap<(String, usize), String>,
) -> Result<Pool, UserError> {
    let replicas = recipe.llm[role].list();
    let mut endpoints = Vec::new();
    for (k, e) in replicas.iter().enumerate() {
        let base_url = urls
            .get(&(role.to_string(), k))
            .cloned()
            .or_else(|| e.base_url.clone())
            // A dry run does not start local judges; nothing is sent to this URL.
            .unwrap_or_else(|| "http://127.0.0.1:0/v1".into());
        let name = e.name.clone().unwrap_or_else(|| {
            if replicas.len() == 1 {
                role.to_string()
            } else {
                format!("{role}#{}", k + 1)
            }
        });
        let mut config = EndpointConfig::new(&name, &base_url, &e.model);
        config.api_key_env = e.api_key_env.clone();
        config.concurrency = e.concurrency.unwrap_or(config.concurrency);
        config.timeout_s = e.timeout_s.unwrap_or(config.timeout_s);
        config.weight = e.weight.unwrap_or(1.0);
        config.rps = e.rps;
        config.tpm = e.tpm;
        endpoints.push(Endpoint::new(config).map_err(UserError::new)?);
    }
    Pool::new(role, endpoints, HealthPolicy::default()).map_err(UserError::new)
}

/// The stage object and its sampling settings, from the spec and its preset.
fn build_stage(spec: &StageSpec, schema_style: SchemaStyle) -> (Arc<dyn JudgeStage>, AskOptions) {
    let compat = spec.compat();
    let mut retry = RetryPolicy::default();
    let (stage, temperature, max_tokens): (Arc<dyn JudgeStage>, f64, u32) = match spec.id.as_str() {
        "ds2.rate" => {
            let mut s = Ds2Rate::preset(compat);
            s.structured = spec.structured.unwrap_or(s.structured);
            s.schema_style = schema_style;
            s.unparsed_as_zero = spec.unparsed_as_zero.unwrap_or(s.unparsed_as_zero);
            let (t, m) = Ds2Rate::sampling(compat);
            (Arc::new(s), t, m)
        }
        "aido.classify" => {
            let mut s = AidoClassify::preset(compat);
            s.drop_non_reasoning = spec.drop_non_reasoning.unwrap_or(true);
            let (t, m, attempts) = AidoClassify::sampling(compat);
            retry.max_attempts = attempts;
            (Arc::new(s), t, m)
        }
        "judge.rubric" => {
            let s = JudgeRubric {
                rubric: spec.rubric.clone().expect("validated"),
                structured: spec.structured.unwrap_or(true),
                schema_style,
            };
            (Arc::new(s), 0.0, 256)
        }
        other => unreachable!("recipe validation knows no stage {other}"),
    };
    if let Some(r) = spec.retries {
        retry.max_attempts = r + 1;
    }
    let opts = AskOptions {
        temperature: spec.temperature.unwrap_or(temperature),
        max_tokens: spec.max_tokens.unwrap_or(max_tokens),
        retry,
    };
    (stage, opts)
}

fn select_rows(
    ws: &Workspace,
    spec: &StageSpec,
    shard: Option<Shard>,
) -> Result<DataFrame, UserError> {
    let mut frame = ws.read_frame_with_sidecars(None)?;
    let take = |frame: &DataFrame, idx: Vec<IdxSize>| {
        frame
            .take(&IdxCa::from_vec("idx".into(), idx))
            .map_err(|e| UserError::new(e.to_string()))
    };
    if let Some(expr) = &spec.rows {
        let f = filter::compile(expr, &frame.schema())
            .map_err(|e| UserError::new(format!("stage `{}` rows: {e}", spec.name())))?;
        let idx = filter::matching_rows(&frame, &f)
            .map_err(|e| UserError::new(format!("stage `{}` rows: {e}", spec.name())))?;
        frame = take(&frame, idx)?;
    }
    if let Some(n) = spec.limit {
        frame = frame.head(Some(n));
    }
    if let Some(shard) = shard {
        let ids = frame
            .column("id")
            .and_then(|c| c.str().cloned())
            .map_err(|e| UserError::new(e.to_string()))?;
        let idx = ids
            .iter()
            .enumerate()
            .filter(|(_, id)| id.is_some_and(|id| shard.owns(id)))
            .map(|(i, _)| i as IdxSize)
            .collect();
        frame = take(&frame, idx)?;
    }
    Ok(frame)
}

fn run_stage(
    cx: &RunContext,
    spec: &StageSpec,
    report: &mut dyn FnMut(&RunEvent),
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
    let started = Instant::now();
    let name = spec.name().to_string();
    let frame = select_rows(ws, spec, opts.shard)?;
    let records = frame_to_records(&frame).map_err(|e| UserError::new(e.to_string()))?;
    if spec.is_model_stage() {
        return super::model_stage::run(cx, spec, &records, report, started);
    }
    match spec.id.as_str() {
        "aido.refine" => {
            return super::refine_stage::run_refine(cx, spec, &records, report, started);
        }
        "aido.merge" => {
            return super::refine_stage::run_merge(cx, spec, &records, report, started);
        }
        _ => {}
    }
    let role = spec
        .endpoint
        .as_deref()
        .expect("validated: judge stages name an endpoint");
    let pool = Arc::new(build_pool(recipe, role, urls)?.with_cancel(cancel.clone()));
    let schema_style = recipe.llm[role].list()[0].schema_style;
    let (stage, ask) = build_stage(spec, schema_style);
    let template = match &spec.prompt {
        Some(p) => PromptTemplate::load(&recipe.dir.join(p))?,
        None => PromptTemplate::builtin(&spec.id).expect("every stage ships a prompt"),
    };
    let mut summary = StageSummary::new(spec, records.len(), opts);
    if opts.dry_run {
        let models: Vec<String> = pool.endpoints().map(|e| e.config.model.clone()).collect();
        report(&RunEvent::Note(format!(
            "{name}: {} rows selected; role {} ({} endpoint(s): {}); prompt {} v{}",
            records.len(),
            role,
            models.len(),
            models.join(", "),
            template.id,
            template.version
        )));
        if let Some(first) = records.first() {
            let request = judging::request_for(stage.as_ref(), &template, first, &ask)
                .map_err(UserError::new)?;
            for m in request.messages {
                report(&RunEvent::Note(format!(
                    "--- {} ---\n{}",
                    m.role, m.content
                )));
            }
        }
        return Ok(summary);
    }
    report(&RunEvent::Started {
        stage: name.clone(),
        rows: records.len(),
    });
    let run_id = start_run(db, spec, opts)?;
    let cache = JudgeCache::new(db, !opts.no_cache);
    let mut last = Progress::default();
    let results = runtime
        .block_on(judging::judge_rows(
            stage.clone(),
            &records,
            pool.clone(),
            &template,
            &cache,
            &ask,
            cancel,
            &mut |p| {
                last = p;
                report(&RunEvent::Progress {
                    stage: name.clone(),
                    progress: p,
                    elapsed: started.elapsed(),
                });
            },
        ))
        .map_err(UserError::new)?;
    summary.interrupted = results.len() < records.len();
    if !summary.interrupted {
        let fresh = judging::sidecar_frame(stage.as_ref(), &results)
            .map_err(|e| UserError::new(e.to_string()))?;
        summary.sidecar = Some(write_stage_sidecar(ws, &name, fresh, opts.shard)?);
    }
    let count = |s| results.iter().filter(|r| r.status() == s).count();
    summary.ok = count(RowStatus::Ok);
    summary.unparsed = count(RowStatus::Unparsed);
    summary.failed = count(RowStatus::Failed);
    summary.cached = last.cached;
    summary.endpoints = pool.usage();
    summary.requests = summary.endpoints.iter().map(|e| e.requests).sum();
    summary.tokens = last.tokens;
    summary.seconds = started.elapsed().as_secs_f64();
    finish_run(db, run_id, &summary)?;
    Ok(summary)
}

/// Write a finished stage's rows: into its sidecar, or its shard file with `--shard`.
pub(crate) fn write_stage_sidecar(
    ws: &Workspace,
    name: &str,
    fresh: DataFrame,
    shard: Option<Shard>,
) -> Result<PathBuf, UserError> {
    match shard {
        None => merge_sidecar(ws, name, fresh),
        Some(shard) => {
            let path = ws.shard_sidecar_path(name, &shard.label());
            let merged = merge_rows(&path, prefixed(name, fresh)?)?;
            ws.write_parquet_atomic(&path, &merged)
        }
    }
}

/// `fresh` with every column but `id` named `<stage>.<column>`.
pub(crate) fn prefixed(stage: &str, mut fresh: DataFrame) -> Result<DataFrame, UserError> {
    for name in fresh.get_column_names_owned() {
        if name != "id" {
            fresh
                .rename(&name, format!("{stage}.{name}").into())
                .map_err(|e| UserError::new(e.to_string()))?;
        }
    }
    Ok(fresh)
}

/// The rows of the file at `path` that `fresh` does not replace, followed by `fresh`.
/// Rows of an older layout (a changed rubric) are dropped with the file's schema.
pub(crate) fn merge_rows(path: &Path, fresh: DataFrame) -> Result<DataFrame, UserError> {
    let Ok(file) = std::fs::File::open(path) else {
        return Ok(fresh);
    };
    let old = ParquetReader::new(file)
        .finish()
        .map_err(|e| file_error(path, e))?;
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
        .map_err(|e| file_error(path, e))?
        .iter()
        .map(|id| Some(!id.is_some_and(|id| new_ids.contains(id))))
        .collect();
    let kept = old.filter(&keep).map_err(|e| file_error(path, e))?;
    if kept.height() > 0 && kept.schema() == fresh.schema() {
        kept.vstack(&fresh).map_err(|e| file_error(path, e))
    } else {
        Ok(fresh)
    }
}

/// Replace this run's rows in the stage's sidecar, keeping rows of earlier runs that
/// this run did not select.
pub(crate) fn merge_sidecar(
    ws: &Workspace,
    stage: &str,
    fresh: DataFrame,
) -> Result<PathBuf, UserError> {
    let merged = merge_rows(&ws.sidecar_path(stage), prefixed(stage, fresh)?)?;
    ws.write_sidecar(stage, &merged)
}

/// Fold every shard sidecar into its stage's sidecar (by id), then set the shard files
/// aside as `*.merged`. Returns (stage, rows merged) per stage.
pub fn merge_shards(ws: &Workspace) -> Result<Vec<(String, usize)>, UserError> {
    let mut out = Vec::new();
    for (stage, files) in ws.shard_sidecars() {
        let mut all: Option<DataFrame> = None;
        for f in &files {
            let file = std::fs::File::open(f).map_err(|e| crate::error::io_context(f, e))?;
            let part = ParquetReader::new(file)
                .finish()
                .map_err(|e| file_error(f, e))?;
            all = Some(match all {
                None => part,
                Some(acc) => acc.vstack(&part).map_err(|e| {
                    file_error(
                        f,
                        format!("shards of `{stage}` have different columns: {e}"),
                    )
                })?,
            });
        }
        let Some(all) = all else { continue };
        let rows = all.height();
        let merged = merge_rows(&ws.sidecar_path(&stage), all)?;
        ws.write_sidecar(&stage, &merged)?;
        for f in &files {
            let done = f.with_extension("parquet.merged");
            std::fs::rename(f, &done).map_err(|e| crate::error::io_context(f, e))?;
        }
        out.push((stage, rows));
    }
    Ok(out)
}

pub(crate) fn start_run(
    db: &crate::store::Db,
    spec: &StageSpec,
    opts: &RunOptions,
) -> Result<i64, UserError> {
    let params = serde_json::json!({
        "name": spec.name(), "endpoint": spec.endpoint, "preset": spec.preset,
        "rows": spec.rows, "limit": spec.limit, "shard": opts.shard,
    });
    db.conn
        .execute(
            "INSERT INTO runs(stage, params, status, started_at) VALUES (?1, ?2, 'running', ?3)",
            rusqlite::params![spec.id, params.to_string(), crate::util::now_rfc3339()],
        )
        .map_err(|e| UserError::new(format!("cannot record the run: {e}")))?;
    Ok(db.conn.last_insert_rowid())
}

pub(crate) fn finish_run(
    db: &crate::store::Db,
    id: i64,
    s: &StageSummary,
) -> Result<(), UserError> {
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
