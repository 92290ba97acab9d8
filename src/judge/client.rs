//! One OpenAI-compatible endpoint (`/v1/chat/completions`): bounded concurrency,
//! per-request timeout, retries with exponential backoff and full jitter on connect
//! errors, timeouts, 429 (honouring `Retry-After`) and 5xx. Works with vLLM, llama.cpp
//! server, SGLang and OpenAI. The API key comes from the environment and is never logged.
//!
//! Every failure is a [`JudgeError`] that keeps the raw reply when there was one, so a
//! stage can record it per row; nothing here writes error text into data.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
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

#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    /// One text per choice (`n > 1` gives several).
    pub choices: Vec<String>,
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
    #[error("malformed reply: {reason}")]
    Malformed { reason: String, raw: String },
    #[error("reply has no choices")]
    EmptyChoices { raw: String },
}

impl JudgeError {
    /// Worth another attempt: the server or the network may recover.
    pub fn retryable(&self) -> bool {
        match self {
            JudgeError::Http { status, .. } => *status == 429 || *status >= 500,
            JudgeError::Timeout(_) | JudgeError::Connect(_) | JudgeError::Malformed { .. } => true,
            JudgeError::EmptyChoices { .. } => false,
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
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

pub struct Endpoint {
    pub config: EndpointConfig,
    http: reqwest::Client,
    permits: Arc<Semaphore>,
    api_key: Option<String>,
    pub stats: EndpointStats,
    jitter: AtomicU64,
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Result<Self, String> {
        let timeout = Duration::from_secs_f64(config.timeout_s.max(0.001));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
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
            config,
            http,
            api_key,
            stats: EndpointStats::default(),
            jitter: AtomicU64::new(0x2545_F491_4F6C_DD1D),
        })
    }

    fn url(&self) -> String {
        format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        )
    }

    /// Full jitter: a uniform delay in `[0, min(max, base·2^attempt))`.
    fn backoff(&self, policy: &RetryPolicy, attempt: u32) -> Duration {
        let cap = policy
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(policy.max_delay);
        let mut x = self.jitter.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter.store(x, Ordering::Relaxed);
        cap.mul_f64((x % 10_000) as f64 / 10_000.0)
    }

    pub async fn chat(
        &self,
        req: &ChatRequest,
        policy: &RetryPolicy,
    ) -> Result<ChatReply, JudgeError> {
        let mut body = serde_json::to_value(req).expect("request serializes");
        body["model"] = json!(self.config.model);
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.once(&body).await;
            match result {
                Ok(mut reply) => {
                    reply.attempts = attempt;
                    reply.latency = started.elapsed();
                    return Ok(reply);
                }
                Err((err, retry_after)) => {
                    if !err.retryable() || attempt >= policy.max_attempts {
                        return Err(err);
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = retry_after.unwrap_or_else(|| self.backoff(policy, attempt - 1));
                    tracing::debug!(endpoint = %self.config.name, attempt, ?wait, error = %err, "retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn once(&self, body: &Value) -> Result<ChatReply, (JudgeError, Option<Duration>)> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("semaphore never closes");
        let now = self.stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let out = self.send(body).await;
        self.stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        out
    }

    async fn send(&self, body: &Value) -> Result<ChatReply, (JudgeError, Option<Duration>)> {
        let mut request = self.http.post(self.url()).json(body);
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
            ..reply
        })
    }
}

fn classify(e: &reqwest::Error, timeout: Duration) -> JudgeError {
    if e.is_timeout() {
        JudgeError::Timeout(timeout)
    } else if e.is_connect() {
        JudgeError::Connect(e.to_string())
    } else {
        // A reset mid-body and similar: the connection, not the request, failed.
        JudgeError::Connect(e.to_string())
    }
}

/// Read a `/chat/completions` body into choices and token counts.
pub fn parse_reply(raw: &str) -> Result<ChatReply, JudgeError> {
    let malformed = |reason: String| JudgeError::Malformed {
        reason,
        raw: raw.to_string(),
    };
    let v: Value = serde_json::from_str(raw).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let choices = v
        .get("choices")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no `choices` list".into()))?;
    if choices.is_empty() {
        return Err(JudgeError::EmptyChoices {
            raw: raw.to_string(),
        });
    }
    let texts = choices
        .iter()
        .map(|c| {
            c.pointer("/message/content")
                .or_else(|| c.get("text"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| malformed("a choice has no message content".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let usage = |k: &str| {
        v.pointer(&format!("/usage/{k}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Ok(ChatReply {
        choices: texts,
        prompt_tokens: usage("prompt_tokens"),
        completion_tokens: usage("completion_tokens"),
        latency: Duration::ZERO,
        attempts: 0,
        endpoint: String::new(),
        raw: raw.to_string(),
    })
}
