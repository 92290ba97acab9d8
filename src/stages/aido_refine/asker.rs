//! The calls `aido.refine` makes, each through a role's pool and the workspace's judge
//! cache: a reply is cached the moment it arrives (so a killed run resumes without
//! asking again), except a reply the caller cannot read, which is asked again instead.

use std::sync::{Arc, Mutex};

use crate::judge::cache::{CacheKeyParts, Cached, JudgeCache, cache_key};
use crate::judge::client::{ChatRequest, JudgeError, RetryPolicy};
use crate::judge::pool::Pool;
use crate::judge::prompt::PromptTemplate;
use crate::store::Db;

/// The five prompts of the loop (`prompts/aido.*.toml`, or the recipe's own files).
#[derive(Debug, Clone)]
pub struct Templates {
    pub probe: PromptTemplate,
    pub evaluate: PromptTemplate,
    pub rewrite: PromptTemplate,
    pub review: PromptTemplate,
    pub align: PromptTemplate,
}

impl Templates {
    pub fn builtin() -> Self {
        let t = |id| PromptTemplate::builtin(id).expect("aido prompts are built in");
        Self {
            probe: t("aido.probe"),
            evaluate: t("aido.evaluate"),
            rewrite: t("aido.rewrite"),
            review: t("aido.review"),
            align: t("aido.align"),
        }
    }
}

/// Which model answers: the strong judge or the small backbone probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Strong,
    Probe,
}

/// Requests, tokens and cache use of one row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub requests: u64,
    pub tokens: u64,
    pub cached: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AskError {
    /// The request failed after the pool's retries.
    Failed(JudgeError),
    /// Every reply was unreadable; the last one is kept.
    Unreadable { raw: String, attempts: u32 },
    /// The run was stopped before the request was sent.
    Cancelled,
}

pub struct Asker {
    pub strong: Arc<Pool>,
    pub probe: Arc<Pool>,
    pub db: Arc<Mutex<Db>>,
    pub use_cache: bool,
    pub retry: RetryPolicy,
    pub temperature: f64,
}

impl Asker {
    /// Ask once (plus `reasks` more when `readable` refuses the reply).
    #[allow(clippy::too_many_arguments)]
    pub async fn ask(
        &self,
        who: Who,
        template: &PromptTemplate,
        vars: &serde_json::Value,
        max_tokens: u32,
        reasks: u32,
        seed: Option<u64>,
        readable: &(dyn Fn(&str) -> bool + Sync),
        usage: &mut Usage,
    ) -> Result<String, AskError> {
        let pool = match who {
            Who::Strong => &self.strong,
            Who::Probe => &self.probe,
        };
        let messages = template.render(vars).map_err(|e| {
            AskError::Failed(JudgeError::Malformed {
                reason: format!("prompt {}: {e}", template.id),
                raw: String::new(),
            })
        })?;
        let request = ChatRequest {
            messages,
            temperature: Some(self.temperature),
            max_tokens: Some(max_tokens),
            seed,
            ..ChatRequest::default()
        };
        let model = pool.model_key();
        let key = cache_key(&CacheKeyParts {
            model: &model,
            role: &pool.role,
            template_id: &template.id,
            template_version: template.version,
            request: &request,
        });
        let hit = {
            let db = self.db.lock().expect("db lock");
            JudgeCache::new(&db, self.use_cache).get(&key)
        };
        if let Ok(Some(hit)) = hit
            && readable(&hit.reply)
        {
            usage.cached += 1;
            return Ok(hit.reply);
        }
        let mut last = String::new();
        for _ in 0..=reasks {
            let reply = match pool.chat(&request, &self.retry).await {
                Ok(r) => r,
                Err(JudgeError::Cancelled) => return Err(AskError::Cancelled),
                Err(e) => return Err(AskError::Failed(e)),
            };
            usage.requests += u64::from(reply.attempts.max(1));
            usage.tokens += reply.prompt_tokens + reply.completion_tokens;
            let text = reply.choices.first().cloned().unwrap_or_default();
            if readable(&text) {
                let value = Cached {
                    reply: text.clone(),
                    prompt_tokens: reply.prompt_tokens,
                    completion_tokens: reply.completion_tokens,
                };
                let db = self.db.lock().expect("db lock");
                JudgeCache::new(&db, self.use_cache)
                    .put(&key, &model, &value)
                    .map_err(|e| {
                        AskError::Failed(JudgeError::Network(format!("cannot cache: {e}")))
                    })?;
                return Ok(text);
            }
            last = text;
        }
        Err(AskError::Unreadable {
            raw: last,
            attempts: reasks + 1,
        })
    }
}
