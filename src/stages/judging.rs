//! What every judge-backed stage shares (`ds2.rate`, `aido.classify`, `judge.rubric`):
//! one templated question per row, asked through a role's [`Pool`], with replies cached
//! the moment they arrive, and one sidecar row per record with the stage's columns plus
//! the reply's raw text, status (`ok` / `unparsed` / `failed`), error, tokens, latency
//! and endpoint. A bad reply marks its row; it never fails the batch, and error text
//! never lands in a score column.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use polars::prelude::*;
use serde::Serialize;

use crate::data::record::Record;
use crate::judge::cache::{CacheKeyParts, Cached, JudgeCache, cache_key};
use crate::judge::client::{ChatRequest, JudgeError, RetryPolicy};
use crate::judge::parse::ParsedBy;
use crate::judge::pool::Pool;
use crate::judge::prompt::PromptTemplate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    Ok,
    Unparsed,
    Failed,
}

impl RowStatus {
    pub fn name(self) -> &'static str {
        match self {
            RowStatus::Ok => "ok",
            RowStatus::Unparsed => "unparsed",
            RowStatus::Failed => "failed",
        }
    }
}

/// The type of one stage column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Int,
    Float,
    Str,
    Bool,
}

/// One value of a stage column; `None` is null.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Int(Option<i64>),
    Float(Option<f64>),
    Str(Option<String>),
    Bool(Option<bool>),
}

/// A stage's reading of one reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub status: RowStatus,
    /// Why the reply could not be read (for `unparsed`).
    pub error: Option<String>,
    pub parsed_by: Option<ParsedBy>,
    /// One value per [`JudgeStage::columns`] entry.
    pub values: Vec<Cell>,
}

/// A stage that asks one question per row and reads the answer.
pub trait JudgeStage: Send + Sync {
    /// The stage's own columns (without the shared reply columns).
    fn columns(&self) -> Vec<(String, ColType)>;
    /// A row decided without asking (e.g. a compat rule that drops it); `None` asks.
    fn precheck(&self, _record: &Record) -> Option<Judged> {
        None
    }
    /// Template variables for a row.
    fn vars(&self, record: &Record) -> serde_json::Value;
    /// `response_format` for schema-constrained output, when asked for.
    fn response_format(&self) -> Option<serde_json::Value>;
    fn judge(&self, reply: &str) -> Judged;
    /// Column values for a row whose request failed.
    fn on_failure(&self) -> Vec<Cell>;
}

#[derive(Debug, Clone, PartialEq)]
pub struct AskOptions {
    pub temperature: f64,
    pub max_tokens: u32,
    pub retry: RetryPolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RowResult {
    pub id: String,
    pub judged: Judged,
    pub raw: Option<String>,
    pub error: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: f64,
    pub cached: bool,
    pub endpoint: String,
}

impl RowResult {
    pub fn status(&self) -> RowStatus {
        self.judged.status
    }
}

/// Counts reported while a run goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub unparsed: usize,
    pub failed: usize,
    pub cached: usize,
    pub tokens: u64,
}

impl Progress {
    fn tally(&mut self, row: &RowResult) {
        self.done += 1;
        self.tokens += row.prompt_tokens + row.completion_tokens;
        match row.status() {
            RowStatus::Ok => {}
            RowStatus::Unparsed => self.unparsed += 1,
            RowStatus::Failed => self.failed += 1,
        }
        if row.cached {
            self.cached += 1;
        }
    }
}

/// The request a stage sends for one row.
pub fn request_for(
    stage: &dyn JudgeStage,
    template: &PromptTemplate,
    record: &Record,
    opts: &AskOptions,
) -> Result<ChatRequest, String> {
    Ok(ChatRequest {
        messages: template.render(&stage.vars(record))?,
        temperature: Some(opts.temperature),
        max_tokens: Some(opts.max_tokens),
        response_format: stage.response_format(),
        ..ChatRequest::default()
    })
}

fn answered(
    stage: &dyn JudgeStage,
    id: String,
    reply: &str,
    endpoint: &str,
    tokens: (u64, u64),
    latency_ms: f64,
    cached: bool,
) -> RowResult {
    let judged = stage.judge(reply);
    RowResult {
        id,
        error: judged.error.clone(),
        judged,
        raw: Some(reply.to_string()),
        prompt_tokens: tokens.0,
        completion_tokens: tokens.1,
        latency_ms,
        cached,
        endpoint: endpoint.to_string(),
    }
}

fn failed(stage: &dyn JudgeStage, id: String, endpoint: &str, e: &JudgeError) -> RowResult {
    RowResult {
        id,
        judged: Judged {
            status: RowStatus::Failed,
            error: Some(e.to_string()),
            parsed_by: None,
            values: stage.on_failure(),
        },
        raw: e.raw().map(str::to_string),
        error: Some(e.to_string()),
        prompt_tokens: 0,
        completion_tokens: 0,
        latency_ms: 0.0,
        cached: false,
        endpoint: endpoint.to_string(),
    }
}

/// Ask the judge about every record. Cached replies are reused; new ones are cached the
/// moment they arrive, so an interrupted run resumes without asking again. Rows left
/// when `cancel` is set are missing from the result (and are asked on the next run).
#[allow(clippy::too_many_arguments)]
pub async fn judge_rows(
    stage: Arc<dyn JudgeStage>,
    records: &[Record],
    pool: Arc<Pool>,
    template: &PromptTemplate,
    cache: &JudgeCache<'_>,
    opts: &AskOptions,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<RowResult>, String> {
    let mut results: Vec<Option<RowResult>> = vec![None; records.len()];
    let mut p = Progress {
        total: records.len(),
        ..Progress::default()
    };
    let model = pool.model_key();
    let mut pending = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if let Some(judged) = stage.precheck(r) {
            let row = RowResult {
                id: r.id.clone(),
                error: judged.error.clone(),
                judged,
                raw: None,
                prompt_tokens: 0,
                completion_tokens: 0,
                latency_ms: 0.0,
                cached: false,
                endpoint: String::new(),
            };
            p.tally(&row);
            results[i] = Some(row);
            continue;
        }
        let request = request_for(stage.as_ref(), template, r, opts)?;
        let key = cache_key(&CacheKeyParts {
            model: &model,
            role: &pool.role,
            template_id: &template.id,
            template_version: template.version,
            request: &request,
        });
        match cache.get(&key).map_err(|e| e.to_string())? {
            Some(hit) => {
                let row = answered(
                    stage.as_ref(),
                    r.id.clone(),
                    &hit.reply,
                    &pool.role,
                    (hit.prompt_tokens, hit.completion_tokens),
                    0.0,
                    true,
                );
                p.tally(&row);
                results[i] = Some(row);
            }
            None => pending.push((i, key, request)),
        }
    }
    progress(p);
    // Enough queued work to keep every replica at its limit, without spawning one task
    // per row of a million-row dataset.
    let window = pool.concurrency() * 2 + 4;
    let mut queue = pending.into_iter();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        while tasks.len() < window && !cancel.load(Ordering::Relaxed) {
            let Some((i, key, request)) = queue.next() else {
                break;
            };
            let (pool, retry) = (pool.clone(), opts.retry.clone());
            tasks.spawn(async move { (i, key, pool.chat(&request, &retry).await) });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (i, key, outcome) = joined.map_err(|e| e.to_string())?;
        let id = records[i].id.clone();
        let row = match outcome {
            // Never sent: the row stays unasked, for the next run.
            Err(JudgeError::Cancelled) => continue,
            Ok(reply) => {
                let text = reply.choices.first().cloned().unwrap_or_default();
                let value = Cached {
                    reply: text.clone(),
                    prompt_tokens: reply.prompt_tokens,
                    completion_tokens: reply.completion_tokens,
                };
                cache.put(&key, &model, &value).map_err(|e| e.to_string())?;
                answered(
                    stage.as_ref(),
                    id,
                    &text,
                    &reply.endpoint,
                    (reply.prompt_tokens, reply.completion_tokens),
                    reply.latency.as_secs_f64() * 1000.0,
                    false,
                )
            }
            Err(e) => failed(stage.as_ref(), id, &pool.role, &e),
        };
        p.tally(&row);
        results[i] = Some(row);
        progress(p);
    }
    Ok(results.into_iter().flatten().collect())
}

fn cell_column(name: &str, ty: ColType, cells: Vec<&Cell>) -> Column {
    match ty {
        ColType::Int => Column::new(
            name.into(),
            cells
                .iter()
                .map(|c| match c {
                    Cell::Int(v) => *v,
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        ColType::Float => Column::new(
            name.into(),
            cells
                .iter()
                .map(|c| match c {
                    Cell::Float(v) => *v,
                    Cell::Int(v) => v.map(|v| v as f64),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        ColType::Str => Column::new(
            name.into(),
            cells
                .iter()
                .map(|c| match c {
                    Cell::Str(v) => v.as_deref(),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        ColType::Bool => Column::new(
            name.into(),
            cells
                .iter()
                .map(|c| match c {
                    Cell::Bool(v) => *v,
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
    }
}

/// The columns every judge stage adds after its own, about the reply itself.
pub const REPLY_COLUMNS: &[&str] = &[
    "status",
    "error",
    "raw",
    "parsed_by",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "cached",
    "endpoint",
];

/// The sidecar frame: `id`, the stage's columns, then status, error, raw reply, how it
/// was parsed, tokens, latency, whether it came from the cache, and the endpoint.
pub fn sidecar_frame(stage: &dyn JudgeStage, rows: &[RowResult]) -> PolarsResult<DataFrame> {
    let mut columns = vec![Column::new(
        "id".into(),
        rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
    )];
    for (k, (name, ty)) in stage.columns().into_iter().enumerate() {
        let missing = Cell::Int(None);
        let cells = rows
            .iter()
            .map(|r| r.judged.values.get(k).unwrap_or(&missing))
            .collect();
        columns.push(cell_column(&name, ty, cells));
    }
    columns.extend([
        Column::new(
            "status".into(),
            rows.iter().map(|r| r.status().name()).collect::<Vec<_>>(),
        ),
        Column::new(
            "error".into(),
            rows.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>(),
        ),
        Column::new(
            "raw".into(),
            rows.iter().map(|r| r.raw.as_deref()).collect::<Vec<_>>(),
        ),
        Column::new(
            "parsed_by".into(),
            rows.iter()
                .map(|r| r.judged.parsed_by.map(|b| format!("{b:?}").to_lowercase()))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "prompt_tokens".into(),
            rows.iter().map(|r| r.prompt_tokens).collect::<Vec<_>>(),
        ),
        Column::new(
            "completion_tokens".into(),
            rows.iter().map(|r| r.completion_tokens).collect::<Vec<_>>(),
        ),
        Column::new(
            "latency_ms".into(),
            rows.iter().map(|r| r.latency_ms).collect::<Vec<_>>(),
        ),
        Column::new(
            "cached".into(),
            rows.iter().map(|r| r.cached).collect::<Vec<_>>(),
        ),
        Column::new(
            "endpoint".into(),
            rows.iter().map(|r| r.endpoint.as_str()).collect::<Vec<_>>(),
        ),
    ]);
    DataFrame::new(rows.len(), columns)
}
