//! `stages`: one module per method step (`<method>.<stage>` ids, shared/docs/methods).
//! Judge-backed stages implement [`judging::JudgeStage`]; `runner` executes a recipe's
//! stages over a workspace.

pub mod aido_classify;
pub mod ds2_rate;
pub mod judge_rubric;
pub mod judging;
pub mod recipe;
pub mod runner;
