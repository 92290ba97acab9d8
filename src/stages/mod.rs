//! `stages`: one module per method step (`<method>.<stage>` ids, shared/docs/methods).
//! So far the reply parsing and scoring rules of `ds2.rate`; the `Stage` trait and the
//! runner that executes stages over a workspace come with the judge-gateway issue.

pub mod ds2_rate;
pub mod runner;
