//! `judge` layer: talking to LLM judges. So far: the tolerant reply parser that every
//! judge-backed stage shares. The OpenAI-compatible gateway, endpoint pool and cache
//! arrive with the judge-gateway issue.

pub mod cache;
pub mod client;
pub mod parse;
pub mod prompt;
