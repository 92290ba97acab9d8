//! `eval`: blinded human evaluation (shared/docs/methods/aido.md §3.5, §8 "Human
//! evaluation"; what Argilla / Label Studio users ask for in shared/docs/ANCHORS.md).
//! Two versions of the same items (A and B) are shown to each annotator as Left/Right in
//! a seeded order, votes are stored as cast, and reports map them back, take the
//! majority, send the rest to adjudication, and measure agreement.

pub mod aggregate;
pub mod agreement;
pub mod chart_png;
pub mod report;
pub mod sample;
pub mod session;
pub mod sources;
pub mod votes;
