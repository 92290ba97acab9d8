//! One OpenAI-compatible endpoint (`/v1/chat/completions` and `/v1/completions`):
//! bounded concurrency, optional requests-per-second and tokens-per-minute limits,
//! per-request timeout, and one attempt per call. Retries, backoff and failover across
//! replicas live in [`super::pool`]. Works with vLLM, llama.cpp server, SGLang and
//! OpenAI. The API key comes from the environment and is never logged.
//!
//! Every failure is a [`JudgeError`] that keeps the raw reply when there was one, so a
//! stage can record it per row; nothing here writes error text into data.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::data::record::Message;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    pub name: String,
    /// e.g. `http://127.0.0.1:8000/v1`
    pub base_url: String,
    pub model: String,
    /// Environment variable holding the API key (default `OPENAI_API_KEY`, if set).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Requests in flight at most.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// Share of a role's requests relative to its other replicas.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Requests per second at most.
    #[serde(default)]
    pub rps: Option<f64>,
    /// Prompt + completion tokens per minute at most.
    #[serde(default)]
    pub tpm: Option<u64>,
}

impl EndpointConfig {
    pub fn new(name: &str, base_url: &str, model: &str) -> Self {
        Self {
            name: name.to_string(),
            base_url: base_url.to_string(),
            model: model.to_string(),
            api_key_env: None,
            concurrency: default_concurrency(),
            timeout_s: default_timeout_s(),
            weight: default_weight(),
            rps: None,
            tpm: None,
        }
    }
}

fn default_weight() -> f64 {
    1.0
}

fn default_concurrency() -> usize {
    8
}

fn default_timeout_s() -> f64 {
    120.0
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// OpenAI `response_format`, e.g. a JSON schema for structured output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
}

/// A `/v1/completions` request: raw prompt text, optionally echoed with per-token
/// log-probabilities (prompt scoring) or sampled `n` times.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompletionRequest {
    pub prompt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Return the prompt with the completion (with `logprobs`, the prompt's tokens too).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub echo: bool,
    /// Top-k log-probabilities per token; `Some(0)` asks for the chosen token's only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
}

/// Per-token log-probabilities of one completion choice (OpenAI legacy shape, which
/// vLLM and llama.cpp's server both speak). The first prompt token has none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenLogprobs {
    pub tokens: Vec<String>,
    pub logprobs: Vec<Option<f64>>,
    /// Character offset of each token in the returned text.
    pub offsets: Vec<usize>,
    /// The top alternatives at each position (with `logprobs = k`), when sent.
    pub top: Vec<Option<std::collections::HashMap<String, f64>>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    /// One text per choice (`n > 1` gives several).
    pub choices: Vec<String>,
    /// Per choice, the token log-probabilities when the request asked for them.
    pub logprobs: Vec<Option<TokenLogprobs>>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency: Duration,
    pub attempts: u32,
    pub endpoint: String,
    /// The response body as received.
    pub raw: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JudgeError {
    #[error("HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection broke mid-request (a reset, a truncated body).
    #[error("connection failed: {0}")]
    Network(String),
    #[error("malformed reply: {reason}")]
    Malformed { reason: String, raw: String },
    #[error("reply has no choices")]
    EmptyChoices { raw: String },
    /// The run was stopped before this request was sent.
    #[error("cancelled before sending")]
    Cancelled,
}

impl JudgeError {
    /// Worth another attempt: the server or the network may recover.
    pub fn retryable(&self) -> bool {
        match self {
            JudgeError::Http { status, .. } => *status == 429 || *status >= 500,
            JudgeError::Timeout(_)
            | JudgeError::Connect(_)
            | JudgeError::Network(_)
            | JudgeError::Malformed { .. } => true,
            JudgeError::EmptyChoices { .. } | JudgeError::Cancelled => false,
        }
    }

    /// The reply body, when the server sent one.
    pub fn raw(&self) -> Option<&str> {
        match self {
            JudgeError::Http { body, .. } => Some(body),
            JudgeError::Malformed { raw, .. } | JudgeError::EmptyChoices { raw } => Some(raw),
            _ => None,
        }
    }
}

/// Counters for one endpoint; `max_in_flight` shows the concurrency limit holding.
#[derive(Debug, Default)]
pub struct EndpointStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    pub failures: AtomicU64,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

impl EndpointStats {
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}

pub struct Endpoint {
    pub config: EndpointConfig,
    http: reqwest::Client,
    permits: Arc<Semaphore>,
    api_key: Option<String>,
    limiter: RateLimiter,
    pub stats: EndpointStats,
}

/// What one attempt gives: a reply, or an error with the server's `Retry-After`.
pub type Attempt = Result<ChatReply, (JudgeError, Option<Duration>)>;

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Result<Self, String> {
        if !(config.weight > 0.0 && config.weight.is_finite()) {
            return Err(format!(
                "endpoint `{}`: weight must be a positive number",
                config.name
            ));
        }
        let timeout = Duration::from_secs_f64(config.timeout_s.max(0.001));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(config.concurrency.max(1))
            .build()
            .map_err(|e| e.to_string())?;
        let api_key = config
            .api_key_env
            .as_deref()
            .map(std::env::var)
            .unwrap_or_else(|| std::env::var("OPENAI_API_KEY"))
            .ok()
            .filter(|k| !k.is_empty());
        Ok(Self {
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            limiter: RateLimiter::new(config.rps, config.tpm),
            config,
            http,
            api_key,
            stats: EndpointStats::default(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.base_url.trim_end_matches('/'))
    }

    /// One `/chat/completions` attempt, no retry. `go` is asked once a concurrency slot
    /// is free; `false` gives up the slot unsent (`None`), e.g. when the pool took this
    /// endpoint out while the request waited.
    pub async fn attempt_chat(
        &self,
        req: &ChatRequest,
        go: &(dyn Fn() -> bool + Sync),
    ) -> Option<Attempt> {
        self.attempt("chat/completions", self.body(req), go).await
    }

    /// One `/completions` attempt, no retry; `go` as for [`Self::attempt_chat`].
    pub async fn attempt_complete(
        &self,
        req: &CompletionRequest,
        go: &(dyn Fn() -> bool + Sync),
    ) -> Option<Attempt> {
        self.attempt("completions", self.body(req), go).await
    }

    /// The JSON body: `{"model": …, <request fields>}`, serialized once.
    fn body(&self, req: &impl Serialize) -> Vec<u8> {
        let fields = serde_json::to_vec(req).expect("request serializes");
        let mut out = Vec::with_capacity(fields.len() + self.config.model.len() + 16);
        out.extend_from_slice(b"{\"model\":");
        serde_json::to_writer(&mut out, &self.config.model).expect("string serializes");
        if fields.len() > 2 {
            out.push(b',');
        }
        out.extend_from_slice(&fields[1..]);
        out
    }

    async fn attempt(
        &self,
        path: &str,
        body: Vec<u8>,
        go: &(dyn Fn() -> bool + Sync),
    ) -> Option<Attempt> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("semaphore never closes");
        if !go() {
            return None;
        }
        self.limiter.wait().await;
        let now = self.stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let out = self.send(path, body).await;
        self.stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        Some(match out {
            Ok(mut reply) => {
                reply.latency = started.elapsed();
                self.limiter
                    .used(reply.prompt_tokens + reply.completion_tokens);
                Ok(reply)
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        })
    }

    async fn send(&self, path: &str, body: Vec<u8>) -> Attempt {
        let mut request = self
            .http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let timeout = Duration::from_secs_f64(self.config.timeout_s.max(0.001));
        let response = request
            .send()
            .await
            .map_err(|e| (classify(&e, timeout), None))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|s| Duration::from_secs_f64(s.clamp(0.0, 600.0)));
        let raw = response
            .text()
            .await
            .map_err(|e| (classify(&e, timeout), None))?;
        if !(200..300).contains(&status) {
            return Err((JudgeError::Http { status, body: raw }, retry_after));
        }
        let reply = parse_reply(&raw).map_err(|e| (e, None))?;
        self.stats
            .prompt_tokens
            .fetch_add(reply.prompt_tokens, Ordering::Relaxed);
        self.stats
            .completion_tokens
            .fetch_add(reply.completion_tokens, Ordering::Relaxed);
        Ok(ChatReply {
            endpoint: self.config.name.clone(),
            attempts: 1,
            ..reply
        })
    }
}

/// Optional requests-per-second pacing and a tokens-per-minute window.
struct RateLimiter {
    interval: Option<Duration>,
    next_slot: std::sync::Mutex<Instant>,
    tpm: Option<u64>,
    /// The tokens-per-minute window (a minute; shorter in tests).
    minute: Duration,
    window: std::sync::Mutex<std::collections::VecDeque<(Instant, u64)>>,
}

impl RateLimiter {
    fn new(rps: Option<f64>, tpm: Option<u64>) -> Self {
        Self {
            interval: rps
                .filter(|r| *r > 0.0 && r.is_finite())
                .map(|r| Duration::from_secs_f64(1.0 / r)),
            next_slot: std::sync::Mutex::new(Instant::now()),
            tpm: tpm.filter(|t| *t > 0),
            minute: Duration::from_secs(60),
            window: std::sync::Mutex::new(Default::default()),
        }
    }

    async fn wait(&self) {
        if let Some(interval) = self.interval {
            let slot = {
                let mut next = self.next_slot.lock().expect("limiter lock");
                let slot = (*next).max(Instant::now());
                *next = slot + interval;
                slot
            };
            tokio::time::sleep_until(slot.into()).await;
        }
        let Some(limit) = self.tpm else { return };
        let minute = self.minute;
        loop {
            let wait = {
                let mut w = self.window.lock().expect("limiter lock");
                while w.front().is_some_and(|(t, _)| t.elapsed() >= minute) {
                    w.pop_front();
                }
                let used: u64 = w.iter().map(|(_, n)| n).sum();
                if used < limit {
                    return;
                }
                w.front().map(|(t, _)| minute.saturating_sub(t.elapsed()))
            };
            tokio::time::sleep(wait.unwrap_or(Duration::from_millis(10))).await;
        }
    }

    fn used(&self, tokens: u64) {
        if self.tpm.is_some() && tokens > 0 {
            self.window
                .lock()
                .expect("limiter lock")
                .push_back((Instant::now(), tokens));
        }
    }
}

fn classify(e: &reqwest::Error, timeout: Duration) -> JudgeError {
    if e.is_timeout() {
        JudgeError::Timeout(timeout)
    } else if e.is_connect() {
        JudgeError::Connect(e.to_string())
    } else {
        // A reset mid-body and similar: the connection, not the request, failed.
        JudgeError::Network(e.to_string())
    }
}

/// Read a `/chat/completions` or `/completions` body into choices, log-probabilities
/// and token counts. Typed and borrowing: this runs once per request.
pub fn parse_reply(raw: &str) -> Result<ChatReply, JudgeError> {
    let malformed = |reason: String| JudgeError::Malformed {
        reason,
        raw: raw.to_string(),
    };
    let wire: Wire = serde_json::from_str(raw).map_err(|e| {
        if serde_json::from_str::<serde::de::IgnoredAny>(raw).is_ok() {
            malformed(format!("unexpected shape: {e}"))
        } else {
            malformed(format!("not JSON: {e}"))
        }
    })?;
    let choices = wire
        .choices
        .ok_or_else(|| malformed("no `choices` list".into()))?;
    if choices.is_empty() {
        return Err(JudgeError::EmptyChoices {
            raw: raw.to_string(),
        });
    }
    let mut texts = Vec::with_capacity(choices.len());
    let mut logprobs = Vec::with_capacity(choices.len());
    for c in choices {
        let text = c
            .message
            .and_then(|m| m.content)
            .or(c.text)
            .ok_or_else(|| malformed("a choice has no message content".into()))?;
        texts.push(text.into_owned());
        logprobs.push(
            c.logprobs
                .filter(|l| !l.tokens.is_empty())
                .map(|l| TokenLogprobs {
                    tokens: l.tokens,
                    logprobs: l.token_logprobs,
                    offsets: l.text_offset,
                    top: l.top_logprobs,
                }),
        );
    }
    let usage = wire.usage.unwrap_or_default();
    Ok(ChatReply {
        choices: texts,
        logprobs,
        prompt_tokens: usage.prompt_tokens.unwrap_or(0),
        completion_tokens: usage.completion_tokens.unwrap_or(0),
        latency: Duration::ZERO,
        attempts: 0,
        endpoint: String::new(),
        raw: raw.to_string(),
    })
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<WireChoice<'a>>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice<'a> {
    #[serde(default, borrow)]
    message: Option<WireMessage<'a>>,
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    /// The legacy completions shape; chat's `{"content": [...]}` reads as empty.
    #[serde(default)]
    logprobs: Option<WireLogprobs>,
}

#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireLogprobs {
    #[serde(default)]
    tokens: Vec<String>,
    #[serde(default)]
    token_logprobs: Vec<Option<f64>>,
    #[serde(default)]
    text_offset: Vec<usize>,
    #[serde(default)]
    top_logprobs: Vec<Option<std::collections::HashMap<String, f64>>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_token_window_holds_requests_until_old_usage_expires() {
        let mut limiter = RateLimiter::new(None, Some(30));
        limiter.minute = Duration::from_millis(300);
        let t = Instant::now();
        limiter.wait().await;
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "under the limit: no wait"
        );
        limiter.used(18);
        limiter.wait().await;
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "18 of 30 used: no wait"
        );
        limiter.used(18);
        limiter.wait().await;
        // 36 ≥ 30 tokens in the window: wait until the first use leaves it.
        assert!(
            t.elapsed() >= Duration::from_millis(290),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn the_body_carries_the_model_first_and_every_request_field() {
        let e =
            Endpoint::new(EndpointConfig::new("e", "http://127.0.0.1:1/v1", "m \"q\"")).unwrap();
        let body = e.body(&ChatRequest {
            messages: vec![Message::new("user", "hi")],
            max_tokens: Some(5),
            ..ChatRequest::default()
        });
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["model"], "m \"q\"");
        assert_eq!(v["messages"][0]["content"], "hi");
        assert_eq!(v["max_tokens"], 5);
        let empty = e.body(&serde_json::json!({}));
        assert_eq!(
            serde_json::from_slice::<Value>(&empty).unwrap(),
            serde_json::json!({"model": "m \"q\""})
        );
    }
}
