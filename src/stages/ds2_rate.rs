//! `ds2.rate` reply parsing and score compression, as in ds2.md §3.1.4–§3.1.5.
//!
//! The rater answers with `{"Rarity", "Complexity", "Informativeness", "Overall rating"}`
//! (1–10 each). The released code takes the *last* balanced `{…}` span, decodes it, and
//! applies Python `int()` to each key; any failure becomes `[0,0,0,0]`. gleaner keeps
//! that value for compatibility but also reports the failure, so unparsed rows are
//! visible and can be re-run instead of silently scoring 0 (`paper` preset).

use serde::Serialize;

use crate::judge::parse::{ParsedBy, balanced_objects, extract_json, py_int};

pub const KEYS: [&str; 4] = ["Rarity", "Complexity", "Informativeness", "Overall rating"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rating {
    pub rarity: i64,
    pub complexity: i64,
    pub informativeness: i64,
    pub overall: i64,
}

/// How a reply is read: exactly like the reference code, or with gleaner's cascade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseMode {
    /// Last balanced `{…}` only; a decode error is a failure (`compat`).
    Compat,
    /// Whole reply, fenced block, then the last balanced `{…}` that decodes (`paper`).
    Cascade,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parsed {
    pub rating: Rating,
    pub by: ParsedBy,
}

/// Parse a rater reply. `Err` carries why; the caller stores it with the raw reply.
pub fn parse_rating(reply: &str, mode: ParseMode) -> Result<Parsed, String> {
    let (obj, by) = match mode {
        ParseMode::Compat => {
            let last = balanced_objects(reply)
                .pop()
                .ok_or_else(|| "no JSON object in the reply".to_string())?;
            match serde_json::from_str::<serde_json::Value>(last) {
                Ok(serde_json::Value::Object(m)) => (m, ParsedBy::Balanced),
                Ok(_) => return Err("the last {…} is not a JSON object".into()),
                Err(e) => return Err(format!("the last {{…}} is not valid JSON: {e}")),
            }
        }
        ParseMode::Cascade => {
            extract_json(reply).ok_or_else(|| "no JSON object in the reply".to_string())?
        }
    };
    let mut v = [0i64; 4];
    for (slot, key) in v.iter_mut().zip(KEYS) {
        let value = obj
            .get(key)
            .ok_or_else(|| format!("missing key \"{key}\""))?;
        *slot = py_int(value).ok_or_else(|| format!("\"{key}\" is not an integer: {value}"))?;
    }
    Ok(Parsed {
        rating: Rating {
            rarity: v[0],
            complexity: v[1],
            informativeness: v[2],
            overall: v[3],
        },
        by,
    })
}

/// The 6-class compressed score: `clamp(overall, 4, 9) − 4`; unrated (0) → 0.
pub fn compress(overall: i64) -> u8 {
    (overall.clamp(4, 9) - 4) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "The sample is a common question.\n{\"Rarity\": 3, \"Complexity\": \"4\", \"Informativeness\": 6.9, \"Overall rating\": 7}";

    #[test]
    fn reads_the_four_scores_with_python_int_rules() {
        let p = parse_rating(GOOD, ParseMode::Compat).unwrap();
        assert_eq!(
            p.rating,
            Rating {
                rarity: 3,
                complexity: 4,
                informativeness: 6,
                overall: 7
            }
        );
        assert_eq!(p.by, ParsedBy::Balanced);
    }

    #[test]
    fn last_object_wins_even_with_nested_braces() {
        let reply = "Example format: {\"Rarity\": 1, \"Complexity\": 1, \"Informativeness\": 1, \"Overall rating\": 1}\nMy answer: {\"Rarity\": 8, \"Complexity\": 9, \"Informativeness\": 7, \"Overall rating\": 9, \"notes\": {\"k\": 1}}";
        let p = parse_rating(reply, ParseMode::Compat).unwrap();
        assert_eq!(p.rating.overall, 9);
    }

    #[test]
    fn failures_name_the_reason() {
        let missing = "{\"Rarity\": 3, \"Complexity\": 4, \"Overall rating\": 7}";
        assert_eq!(
            parse_rating(missing, ParseMode::Compat).unwrap_err(),
            "missing key \"Informativeness\""
        );
        let float_string = "{\"Rarity\": 3, \"Complexity\": 4, \"Informativeness\": 5, \"Overall rating\": \"7.5\"}";
        assert!(
            parse_rating(float_string, ParseMode::Compat)
                .unwrap_err()
                .contains("not an integer")
        );
        assert!(
            parse_rating("I refuse.", ParseMode::Compat)
                .unwrap_err()
                .contains("no JSON object")
        );
    }

    #[test]
    fn cascade_recovers_what_compat_rejects() {
        // A trailing brace in prose breaks the reference's "last {…}" rule.
        let reply = "```json\n{\"Rarity\": 2, \"Complexity\": 3, \"Informativeness\": 4, \"Overall rating\": 5}\n```\nNote: scores use the {1-10} scale";
        assert!(parse_rating(reply, ParseMode::Compat).is_err());
        let p = parse_rating(reply, ParseMode::Cascade).unwrap();
        assert_eq!((p.rating.overall, p.by), (5, ParsedBy::Fenced));
    }

    #[test]
    fn compression_table() {
        let table: Vec<u8> = (0..=10).map(compress).collect();
        assert_eq!(table, vec![0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 5]);
    }

    /// The real DS2 rater files hold already-compressed scores 0..5 (ds2.md §7.1);
    /// compression must be a fixed point on them and reproduce their histogram.
    #[test]
    fn real_rater_scores_are_fixed_points_of_compression() {
        // shared/ sits beside the repository (CI lays it there); GLEANER_SHARED overrides.
        let shared = std::env::var_os("GLEANER_SHARED")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
        let path = shared.join("data/ds2_rater_scores/gpt-4o-mini.txt");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (set GLEANER_SHARED to the shared/ folder)",
                path.display()
            )
        });
        let mut hist = [0usize; 6];
        for line in text.lines() {
            let s: i64 = line.trim().parse().unwrap();
            // A compressed c in 1..=5 came from overall = c + 4; 0 came from ≤ 4.
            let overall = if s == 0 { 4 } else { s + 4 };
            assert_eq!(i64::from(compress(overall)), s);
            hist[s as usize] += 1;
        }
        assert_eq!(hist, [18_626, 44_401, 86_132, 87_975, 59_969, 3_829]);
    }
}

// ---------------------------------------------------------------------------------
// Running the stage: render → cache → judge → parse, one result per row.
// ---------------------------------------------------------------------------------

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use polars::prelude::*;

use crate::data::record::Record;
use crate::judge::cache::{CacheKeyParts, Cached, JudgeCache, cache_key};
use crate::judge::client::{ChatRequest, Endpoint, JudgeError, RetryPolicy};
use crate::judge::prompt::PromptTemplate;

/// `ds2.rate` settings (ds2.md §3.1.3, §8). `compat` mirrors the released code.
#[derive(Debug, Clone, PartialEq)]
pub struct RateOptions {
    pub mode: ParseMode,
    pub temperature: f64,
    pub max_tokens: u32,
    /// Ask the server for JSON matching the four keys (`response_format`).
    pub structured: bool,
    /// How this server spells schema-constrained output.
    pub schema_style: SchemaStyle,
    pub retry: RetryPolicy,
}

impl RateOptions {
    pub fn preset(compat: bool) -> Self {
        Self {
            mode: if compat {
                ParseMode::Compat
            } else {
                ParseMode::Cascade
            },
            temperature: if compat { 1.2 } else { 0.0 },
            max_tokens: 128,
            structured: !compat,
            schema_style: SchemaStyle::JsonSchema,
            retry: RetryPolicy::default(),
        }
    }
}

/// The two spellings of schema-constrained output in OpenAI-compatible servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaStyle {
    /// `{"type": "json_schema", "json_schema": {"schema": …}}`: OpenAI, vLLM, SGLang.
    #[default]
    JsonSchema,
    /// `{"type": "json_object", "schema": …}`: llama-cpp-python's server.
    JsonObject,
}

/// The JSON schema the rater's reply must follow, as `response_format`.
pub fn response_schema(style: SchemaStyle) -> serde_json::Value {
    let int = serde_json::json!({"type": "integer", "minimum": 1, "maximum": 10});
    let schema = serde_json::json!({
        "type": "object",
        "properties": {KEYS[0]: int, KEYS[1]: int, KEYS[2]: int, KEYS[3]: int},
        "required": KEYS,
        "additionalProperties": false
    });
    match style {
        SchemaStyle::JsonSchema => serde_json::json!({
            "type": "json_schema",
            "json_schema": {"name": "ds2_rating", "schema": schema}
        }),
        SchemaStyle::JsonObject => serde_json::json!({"type": "json_object", "schema": schema}),
    }
}

/// `### role: content` lines, as the reference serializes a conversation (§3.1.1).
pub fn serialize_conversation(r: &Record) -> String {
    r.messages
        .iter()
        .map(|m| format!("### {}: {}\n", m.role, m.content))
        .collect()
}

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

#[derive(Debug, Clone, PartialEq)]
pub struct RowResult {
    pub id: String,
    pub status: RowStatus,
    pub rating: Option<Rating>,
    pub parsed_by: Option<ParsedBy>,
    pub raw: Option<String>,
    pub error: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: f64,
    pub cached: bool,
    pub endpoint: String,
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

fn judged(
    id: String,
    endpoint: &str,
    reply: &str,
    opts: &RateOptions,
    tokens: (u64, u64),
    latency_ms: f64,
    cached: bool,
) -> RowResult {
    let (status, rating, parsed_by, error) = match parse_rating(reply, opts.mode) {
        Ok(p) => (RowStatus::Ok, Some(p.rating), Some(p.by), None),
        Err(e) => (RowStatus::Unparsed, None, None, Some(e)),
    };
    RowResult {
        id,
        status,
        rating,
        parsed_by,
        raw: Some(reply.to_string()),
        error,
        prompt_tokens: tokens.0,
        completion_tokens: tokens.1,
        latency_ms,
        cached,
        endpoint: endpoint.to_string(),
    }
}

/// Rate `records`. Cached replies are reused; new replies are cached the moment they
/// arrive, so an interrupted run resumes without asking again. Rows left when
/// `cancel` is set are missing from the result (and are asked on the next run).
pub async fn rate(
    records: &[Record],
    endpoint: Arc<Endpoint>,
    role: &str,
    template: &PromptTemplate,
    cache: &JudgeCache<'_>,
    opts: &RateOptions,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<RowResult>, String> {
    let mut results: Vec<Option<RowResult>> = vec![None; records.len()];
    let mut p = Progress {
        total: records.len(),
        ..Progress::default()
    };
    let mut pending = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let vars = serde_json::json!({"conversation": serialize_conversation(r)});
        let request = ChatRequest {
            messages: template.render(&vars)?,
            temperature: Some(opts.temperature),
            max_tokens: Some(opts.max_tokens),
            response_format: opts.structured.then(|| response_schema(opts.schema_style)),
            ..ChatRequest::default()
        };
        let key = cache_key(&CacheKeyParts {
            model: &endpoint.config.model,
            role,
            template_id: &template.id,
            template_version: template.version,
            request: &request,
        });
        match cache.get(&key).map_err(|e| e.to_string())? {
            Some(hit) => {
                let row = judged(
                    r.id.clone(),
                    &endpoint.config.name,
                    &hit.reply,
                    opts,
                    (hit.prompt_tokens, hit.completion_tokens),
                    0.0,
                    true,
                );
                tally(&mut p, &row);
                results[i] = Some(row);
            }
            None => pending.push((i, key, request)),
        }
    }
    progress(p);
    let window = endpoint.config.concurrency.max(1) * 4;
    let mut queue = pending.into_iter();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        while tasks.len() < window && !cancel.load(Ordering::Relaxed) {
            let Some((i, key, request)) = queue.next() else {
                break;
            };
            let (endpoint, retry) = (endpoint.clone(), opts.retry.clone());
            tasks.spawn(async move { (i, key, endpoint.chat(&request, &retry).await) });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (i, key, outcome) = joined.map_err(|e| e.to_string())?;
        let id = records[i].id.clone();
        let row = match outcome {
            Ok(reply) => {
                let text = reply.choices.first().cloned().unwrap_or_default();
                let value = Cached {
                    reply: text.clone(),
                    prompt_tokens: reply.prompt_tokens,
                    completion_tokens: reply.completion_tokens,
                };
                cache
                    .put(&key, &endpoint.config.model, &value)
                    .map_err(|e| e.to_string())?;
                judged(
                    id,
                    &reply.endpoint,
                    &text,
                    opts,
                    (reply.prompt_tokens, reply.completion_tokens),
                    reply.latency.as_secs_f64() * 1000.0,
                    false,
                )
            }
            Err(e) => failed(id, &endpoint.config.name, &e),
        };
        tally(&mut p, &row);
        results[i] = Some(row);
        progress(p);
        if cancel.load(Ordering::Relaxed) {
            tasks.abort_all();
        }
    }
    Ok(results.into_iter().flatten().collect())
}

fn failed(id: String, endpoint: &str, e: &JudgeError) -> RowResult {
    RowResult {
        id,
        status: RowStatus::Failed,
        rating: None,
        parsed_by: None,
        raw: e.raw().map(str::to_string),
        error: Some(e.to_string()),
        prompt_tokens: 0,
        completion_tokens: 0,
        latency_ms: 0.0,
        cached: false,
        endpoint: endpoint.to_string(),
    }
}

fn tally(p: &mut Progress, row: &RowResult) {
    p.done += 1;
    p.tokens += row.prompt_tokens + row.completion_tokens;
    match row.status {
        RowStatus::Ok => {}
        RowStatus::Unparsed => p.unparsed += 1,
        RowStatus::Failed => p.failed += 1,
    }
    if row.cached {
        p.cached += 1;
    }
}

/// The sidecar frame: scores, compressed score, status, raw reply, tokens, latency.
/// With `unparsed_as_zero` (compat) failed rows get `[0,0,0,0]` and score 0 as the
/// reference does; otherwise their scores are null and only the status says why.
pub fn sidecar_frame(rows: &[RowResult], unparsed_as_zero: bool) -> PolarsResult<DataFrame> {
    let zero = unparsed_as_zero.then_some(Rating {
        rarity: 0,
        complexity: 0,
        informativeness: 0,
        overall: 0,
    });
    let rating = |r: &RowResult| r.rating.or(zero);
    let col = |f: fn(&Rating) -> i64| -> Vec<Option<i64>> {
        rows.iter().map(|r| rating(r).map(|x| f(&x))).collect()
    };
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "id".into(),
                rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ),
            Column::new("rarity".into(), col(|x| x.rarity)),
            Column::new("complexity".into(), col(|x| x.complexity)),
            Column::new("informativeness".into(), col(|x| x.informativeness)),
            Column::new("overall".into(), col(|x| x.overall)),
            Column::new("score".into(), col(|x| i64::from(compress(x.overall)))),
            Column::new(
                "status".into(),
                rows.iter().map(|r| r.status.name()).collect::<Vec<_>>(),
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
                    .map(|r| r.parsed_by.map(|b| format!("{b:?}").to_lowercase()))
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
        ],
    )
}
