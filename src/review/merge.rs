//! `aido.merge` (shared/docs/methods/aido.md §3.4): the final dataset. Rows in the
//! stage's scope stay as they are, except rows the refine stage revised: an approved
//! revision replaces the row, an edited one replaces it with the person's text, a
//! rejected one keeps the original or drops the row (`on_rejected`), and one nobody
//! reviewed follows `on_pending` (default: refuse to merge, with a count). Revisions the
//! stage did not propose (lost every round) keep the original unless a person approved
//! them. No dedup, input order — as the reference.

use std::collections::HashMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::ReviewItem;
use crate::data::record::Record;
use crate::store::decisions::ReviewState;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRejected {
    #[default]
    Original,
    Drop,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnPending {
    #[default]
    Refuse,
    Original,
    Revision,
    Drop,
}

/// One row of the merged dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedRow {
    pub id: String,
    pub included: bool,
    /// `original`, `revised` or `edited`.
    pub provenance: &'static str,
    pub instruction: Option<String>,
    pub input: Option<String>,
    pub output: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MergeCounts {
    pub rows: usize,
    pub original: usize,
    pub revised: usize,
    pub edited: usize,
    pub dropped: usize,
    pub pending: usize,
}

/// Merge `records` (the stage's scope) with the reviewed revisions `items`.
pub fn merge(
    records: &[Record],
    items: &[ReviewItem],
    on_rejected: OnRejected,
    on_pending: OnPending,
) -> Result<(Vec<MergedRow>, MergeCounts), String> {
    let by_id: HashMap<&str, &ReviewItem> = items.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut counts = MergeCounts::default();
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let original = MergedRow {
            id: r.id.clone(),
            included: true,
            provenance: "original",
            instruction: r.instruction.clone(),
            input: r.input.clone(),
            output: r.output.clone(),
        };
        let take = |item: &ReviewItem, provenance| {
            let t = item.revised();
            MergedRow {
                provenance,
                instruction: Some(t.instruction.clone()),
                input: Some(t.input.clone()),
                output: Some(t.output.clone()),
                ..original.clone()
            }
        };
        let dropped = MergedRow {
            included: false,
            ..original.clone()
        };
        let row = match by_id.get(r.id.as_str()) {
            None => original,
            Some(item) => match item.state() {
                ReviewState::Approved => take(item, "revised"),
                ReviewState::Edited => take(item, "edited"),
                ReviewState::Rejected => match on_rejected {
                    OnRejected::Original => original,
                    OnRejected::Drop => dropped,
                },
                ReviewState::Pending if !item.proposed => original,
                ReviewState::Pending => {
                    counts.pending += 1;
                    match on_pending {
                        OnPending::Refuse | OnPending::Original => original,
                        OnPending::Revision => take(item, "revised"),
                        OnPending::Drop => dropped,
                    }
                }
            },
        };
        match (row.included, row.provenance) {
            (false, _) => counts.dropped += 1,
            (true, "revised") => counts.revised += 1,
            (true, "edited") => counts.edited += 1,
            _ => counts.original += 1,
        }
        out.push(row);
    }
    counts.rows = out.iter().filter(|r| r.included).count();
    if on_pending == OnPending::Refuse && counts.pending > 0 {
        return Err(format!(
            "{} revision(s) still pending review; nothing merged",
            counts.pending
        ));
    }
    Ok((out, counts))
}

/// The merge stage's sidecar: id, included, provenance and the final texts.
pub fn sidecar_frame(rows: &[MergedRow]) -> PolarsResult<DataFrame> {
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "id".into(),
                rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "included".into(),
                rows.iter().map(|r| r.included).collect::<Vec<_>>(),
            ),
            Column::new(
                "provenance".into(),
                rows.iter().map(|r| r.provenance).collect::<Vec<_>>(),
            ),
            Column::new(
                "instruction".into(),
                rows.iter()
                    .map(|r| r.instruction.as_deref())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "input".into(),
                rows.iter().map(|r| r.input.as_deref()).collect::<Vec<_>>(),
            ),
            Column::new(
                "output".into(),
                rows.iter().map(|r| r.output.as_deref()).collect::<Vec<_>>(),
            ),
        ],
    )
}
