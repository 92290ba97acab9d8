//! `stages`: one module per method step (`<method>.<stage>` ids, shared/docs/methods).
//! Judge-backed stages implement [`judging::JudgeStage`]; `runner` executes a recipe's
//! stages over a workspace.

pub mod aido_classify;
pub mod aido_refine;
pub mod ds2_rate;
pub mod embed;
pub mod judge_rubric;
pub mod judging;
pub mod model_stage;
pub mod recipe;
pub mod refine_stage;
pub mod runner;
pub mod score_ppl;
