//! `judge` layer: talking to LLM judges over OpenAI-compatible HTTP. `client` is one
//! endpoint, `pool` the replicas of a role (spread, failover, retries), `managed` a
//! local server gleaner starts itself, `cache` the reply cache in the workspace
//! database, `prompt` the templates in `prompts/`, `parse` the tolerant reply parser.

pub mod cache;
pub mod client;
pub mod managed;
pub mod parse;
pub mod pool;
pub mod prompt;
