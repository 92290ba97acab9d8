//! The replicas that serve one role (`strong`, `backbone`, `rater`, …): requests are
//! spread across healthy endpoints in proportion to their weights, a failing endpoint
//! is taken out and probed back in, and a failed attempt is retried, on another
//! replica when there is one, else after exponential backoff with full jitter (or the
//! server's `Retry-After`). Scaling out is adding `[[llm.<role>]]` tables to a recipe.
//!
//! Health is a small circuit breaker per endpoint: a connection refused takes it out at
//! once, other retryable failures after `eject_after` in a row; once `probe_after` has
//! passed one request is let through as a probe, and its outcome brings the endpoint
//! back or takes it out again for twice as long (capped).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::client::{ChatReply, ChatRequest, CompletionRequest, Endpoint, JudgeError, RetryPolicy};

#[derive(Debug, Clone, PartialEq)]
pub struct HealthPolicy {
    /// Retryable failures in a row that take an endpoint out.
    pub eject_after: u32,
    /// First wait before probing an endpoint that was taken out.
    pub probe_after: Duration,
    pub max_probe_after: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            eject_after: 3,
            probe_after: Duration::from_secs(2),
            max_probe_after: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Default)]
struct Health {
    failures: u32,
    down_until: Option<Instant>,
    /// How long the last ejection lasted (doubles on each failed probe).
    down_for: Duration,
    /// A probe request is out; others wait for its outcome.
    probing: bool,
}

struct Member {
    endpoint: Arc<Endpoint>,
    /// Requests given to this endpoint and not finished (queued or in flight).
    assigned: AtomicUsize,
    ejections: AtomicU64,
    health: Mutex<Health>,
}

pub struct Pool {
    pub role: String,
    members: Vec<Member>,
    health: HealthPolicy,
    turn: AtomicUsize,
    jitter: AtomicU64,
    /// Set when the run stops: requests not yet sent give up with `Cancelled`.
    cancel: Option<Arc<AtomicBool>>,
}

/// Usage of one endpoint, for run summaries.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EndpointUsage {
    pub role: String,
    pub endpoint: String,
    pub base_url: String,
    pub model: String,
    pub requests: u64,
    pub failures: u64,
    pub retries: u64,
    pub ejections: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub max_in_flight: usize,
}

#[derive(Clone, Copy)]
enum Request<'r> {
    Chat(&'r ChatRequest),
    Complete(&'r CompletionRequest),
}

enum Pick {
    Now(usize),
    /// Every endpoint is out: wait, then probe this one.
    After(usize, Duration),
}

impl Pool {
    pub fn new(role: &str, endpoints: Vec<Endpoint>, health: HealthPolicy) -> Result<Self, String> {
        if endpoints.is_empty() {
            return Err(format!("role `{role}` has no endpoint"));
        }
        Ok(Self {
            role: role.to_string(),
            members: endpoints
                .into_iter()
                .map(|e| Member {
                    endpoint: Arc::new(e),
                    assigned: AtomicUsize::new(0),
                    ejections: AtomicU64::new(0),
                    health: Mutex::new(Health::default()),
                })
                .collect(),
            health,
            turn: AtomicUsize::new(0),
            jitter: AtomicU64::new(0x2545_F491_4F6C_DD1D),
            cancel: None,
        })
    }

    pub fn single(endpoint: Endpoint) -> Self {
        Self::new(
            &endpoint.config.name.clone(),
            vec![endpoint],
            HealthPolicy::default(),
        )
        .expect("one endpoint")
    }

    /// Stop sending when `flag` is set; requests already sent still finish.
    pub fn with_cancel(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    pub fn endpoints(&self) -> impl Iterator<Item = &Arc<Endpoint>> {
        self.members.iter().map(|m| &m.endpoint)
    }

    /// The models this role serves, for cache keys: replicas of one model share
    /// replies; a different model never does.
    pub fn model_key(&self) -> String {
        let mut models: Vec<&str> = self
            .members
            .iter()
            .map(|m| m.endpoint.config.model.as_str())
            .collect();
        models.sort_unstable();
        models.dedup();
        models.join("|")
    }

    /// Requests at once the role can take (the sum of its endpoints' limits).
    pub fn concurrency(&self) -> usize {
        self.members
            .iter()
            .map(|m| m.endpoint.config.concurrency.max(1))
            .sum()
    }

    pub fn usage(&self) -> Vec<EndpointUsage> {
        self.members
            .iter()
            .map(|m| {
                let s = &m.endpoint.stats;
                EndpointUsage {
                    role: self.role.clone(),
                    endpoint: m.endpoint.config.name.clone(),
                    base_url: m.endpoint.config.base_url.clone(),
                    model: m.endpoint.config.model.clone(),
                    requests: s.requests.load(Ordering::Relaxed),
                    failures: s.failures.load(Ordering::Relaxed),
                    retries: s.retries.load(Ordering::Relaxed),
                    ejections: m.ejections.load(Ordering::Relaxed),
                    prompt_tokens: s.prompt_tokens.load(Ordering::Relaxed),
                    completion_tokens: s.completion_tokens.load(Ordering::Relaxed),
                    max_in_flight: s.max_in_flight.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Whether endpoint `i` is taken out right now.
    pub fn is_out(&self, i: usize) -> bool {
        let h = self.members[i].health.lock().expect("health lock");
        h.down_until.is_some_and(|t| t > Instant::now()) || h.probing
    }

    pub async fn chat(
        &self,
        req: &ChatRequest,
        policy: &RetryPolicy,
    ) -> Result<ChatReply, JudgeError> {
        self.run(policy, Request::Chat(req)).await
    }

    pub async fn complete(
        &self,
        req: &CompletionRequest,
        policy: &RetryPolicy,
    ) -> Result<ChatReply, JudgeError> {
        self.run(policy, Request::Complete(req)).await
    }

    async fn run(
        &self,
        policy: &RetryPolicy,
        request: Request<'_>,
    ) -> Result<ChatReply, JudgeError> {
        let started = Instant::now();
        let mut avoid = None;
        let mut attempt = 0;
        loop {
            if self.cancelled() {
                return Err(JudgeError::Cancelled);
            }
            attempt += 1;
            let i = match self.pick(avoid) {
                Pick::Now(i) => i,
                Pick::After(i, wait) => {
                    tokio::time::sleep(wait).await;
                    i
                }
            };
            let member = &self.members[i];
            // Sent only if the endpoint was not taken out while this waited for a slot.
            let epoch = member.ejections.load(Ordering::SeqCst);
            let go = move || member.ejections.load(Ordering::SeqCst) == epoch && !self.cancelled();
            member.assigned.fetch_add(1, Ordering::SeqCst);
            let outcome = match request {
                Request::Chat(r) => member.endpoint.attempt_chat(r, &go).await,
                Request::Complete(r) => member.endpoint.attempt_complete(r, &go).await,
            };
            member.assigned.fetch_sub(1, Ordering::SeqCst);
            let Some(outcome) = outcome else {
                attempt -= 1;
                continue;
            };
            match outcome {
                Ok(mut reply) => {
                    self.succeeded(i);
                    reply.attempts = attempt;
                    reply.latency = started.elapsed();
                    return Ok(reply);
                }
                Err((err, retry_after)) => {
                    // A request the server refuses as such (400, 404…) says nothing
                    // about the endpoint's health, and asking again will not help.
                    if !err.retryable() {
                        self.succeeded(i);
                        return Err(err);
                    }
                    self.failed(i, &err, retry_after);
                    if attempt >= policy.max_attempts {
                        return Err(err);
                    }
                    member
                        .endpoint
                        .stats
                        .retries
                        .fetch_add(1, Ordering::Relaxed);
                    avoid = Some(i);
                    if !self.has_healthy_other(i) {
                        let wait = retry_after.unwrap_or_else(|| self.backoff(policy, attempt - 1));
                        tracing::debug!(role = %self.role, attempt, ?wait, error = %err, "retrying");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    }

    fn has_healthy_other(&self, i: usize) -> bool {
        (0..self.members.len()).any(|j| j != i && !self.is_out(j))
    }

    /// The healthy endpoint with the least work per unit of weight (rotating among
    /// equals), avoiding `avoid` when another is healthy.
    fn pick(&self, avoid: Option<usize>) -> Pick {
        let now = Instant::now();
        let n = self.members.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(f64, usize)> = None;
        let mut best_avoided: Option<(f64, usize)> = None;
        let mut soonest: Option<(Instant, usize)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let m = &self.members[i];
            let mut h = m.health.lock().expect("health lock");
            match h.down_until {
                Some(t) if t > now || h.probing => {
                    if !h.probing && soonest.is_none_or(|(s, _)| t < s) {
                        soonest = Some((t, i));
                    }
                    continue;
                }
                Some(_) => {
                    // Out, and its wait is over: this request is the probe.
                    h.probing = true;
                    drop(h);
                    return Pick::Now(i);
                }
                None => {}
            }
            let load = (m.assigned.load(Ordering::SeqCst) + 1) as f64 / m.endpoint.config.weight;
            let slot = if Some(i) == avoid {
                &mut best_avoided
            } else {
                &mut best
            };
            if slot.is_none_or(|(l, _)| load < l) {
                *slot = Some((load, i));
            }
        }
        if let Some((_, i)) = best.or(best_avoided) {
            return Pick::Now(i);
        }
        match soonest {
            Some((t, i)) => {
                let mut h = self.members[i].health.lock().expect("health lock");
                h.probing = true;
                Pick::After(i, t.saturating_duration_since(now))
            }
            // Every endpoint has a probe out: wait a moment and go to the first.
            None => Pick::After(0, self.health.probe_after.min(Duration::from_millis(200))),
        }
    }

    fn succeeded(&self, i: usize) {
        let mut h = self.members[i].health.lock().expect("health lock");
        if h.down_until.is_some() {
            tracing::info!(role = %self.role, endpoint = %self.members[i].endpoint.config.name, "endpoint is back");
        }
        *h = Health::default();
    }

    fn failed(&self, i: usize, err: &JudgeError, retry_after: Option<Duration>) {
        let member = &self.members[i];
        let mut h = member.health.lock().expect("health lock");
        let was_probe = h.probing;
        h.probing = false;
        h.failures += 1;
        let now = Instant::now();
        if let Some(wait) = retry_after {
            // The server says when to come back; that is not a fault.
            h.down_until = Some(now + wait);
            h.failures -= 1;
            return;
        }
        let eject = was_probe
            || matches!(err, JudgeError::Connect(_))
            || h.failures >= self.health.eject_after;
        if eject {
            h.down_for = if was_probe {
                (h.down_for * 2).min(self.health.max_probe_after)
            } else {
                self.health.probe_after
            };
            h.down_until = Some(now + h.down_for);
            member.ejections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                role = %self.role,
                endpoint = %member.endpoint.config.name,
                error = %err,
                probe_in = ?h.down_for,
                "endpoint taken out"
            );
        }
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
}
