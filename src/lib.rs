//! gleaner: a terminal workbench for curating LLM instruction-tuning data.
//!
//! Layers depend one way: `data` ← `store` ← (`tui`, `cli`). The core never knows
//! about the front ends.

pub mod cli;
pub mod data;
pub mod error;
pub mod eval;
pub mod judge;
pub mod logging;
pub mod models;
pub mod review;
pub mod stages;
pub mod store;
pub mod tui;
pub mod util;
