//! Where a session's two versions come from: a refine run's originals and revisions
//! (edits included), or two datasets matched by id.

use std::collections::HashMap;
use std::path::Path;

use super::session::NewItem;
use crate::data::record::Record;
use crate::error::UserError;
use crate::store::decisions::Texts;
use crate::store::{Db, Workspace};

fn texts(r: &Record) -> Texts {
    Texts {
        instruction: r
            .instruction
            .clone()
            .unwrap_or_else(|| r.first_user().to_string()),
        input: r.input.clone().unwrap_or_default(),
        output: r
            .output
            .clone()
            .unwrap_or_else(|| r.first_assistant().to_string()),
    }
}

fn extra_text(r: &Record, field: &str) -> Option<String> {
    r.extras
        .iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
}

/// A = the original, B = the revision (a reviewer's edit when there is one), for every
/// row the refine stage revised whose revision would ship (approved, edited, or proposed
/// and not yet reviewed). `stratify` names a snapshot or stage column.
pub fn from_refine(
    ws: &Workspace,
    db: &Db,
    stage: &str,
    stratify: Option<&str>,
) -> Result<Vec<NewItem>, UserError> {
    let items = crate::review::load_items(ws, db, stage)?;
    let strata: HashMap<String, String> = match stratify {
        None => HashMap::new(),
        Some(col) => {
            let frame = ws.read_frame_with_sidecars(None)?;
            let ids = frame
                .column("id")
                .and_then(|c| c.str().cloned())
                .map_err(|e| UserError::new(e.to_string()))?;
            let values = frame
                .column(col)
                .map_err(|_| UserError::new(format!("--stratify: no column `{col}`")))?
                .cast(&polars::prelude::DataType::String)
                .map_err(|e| UserError::new(e.to_string()))?;
            let values = values.str().map_err(|e| UserError::new(e.to_string()))?;
            ids.iter()
                .zip(values.iter())
                .filter_map(|(id, v)| Some((id?.to_string(), v.unwrap_or("").to_string())))
                .collect()
        }
    };
    // Compare what would ship: rejected revisions, and revisions the stage did not
    // propose that nobody approved, are not "ours".
    use crate::store::decisions::ReviewState;
    Ok(items
        .into_iter()
        .filter(|it| match it.state() {
            ReviewState::Rejected => false,
            ReviewState::Pending => it.proposed,
            ReviewState::Approved | ReviewState::Edited => true,
        })
        .map(|it| NewItem {
            stratum: strata.get(&it.id).cloned(),
            a: it.original.clone(),
            b: it.revised().clone(),
            id: it.id,
        })
        .collect())
}

/// A from one dataset, B from the other, for the ids both have (in A's order).
pub fn from_files(
    a: &Path,
    b: &Path,
    load: &crate::data::LoadOptions,
    stratify: Option<&str>,
) -> Result<Vec<NewItem>, UserError> {
    let la = crate::data::load_dataset(a, load)?;
    let lb = crate::data::load_dataset(b, load)?;
    let by_id: HashMap<&str, &Record> = lb.records.iter().map(|r| (r.id.as_str(), r)).collect();
    let items: Vec<NewItem> = la
        .records
        .iter()
        .filter_map(|ra| {
            let rb = by_id.get(ra.id.as_str())?;
            Some(NewItem {
                id: ra.id.clone(),
                a: texts(ra),
                b: texts(rb),
                stratum: stratify.and_then(|f| extra_text(ra, f)),
            })
        })
        .collect();
    if items.is_empty() {
        return Err(UserError::new(format!(
            "{} and {} have no ids in common",
            a.display(),
            b.display()
        ))
        .with_hint(
            "both files need the same id column (content-hash ids differ once a text changes)",
        ));
    }
    Ok(items)
}

/// A and B from the workspace itself: each version is the snapshot's texts (`snapshot`)
/// or the `instruction` / `input` / `output` columns a stage wrote (e.g. `aido.merge`),
/// falling back to the snapshot's for a column the stage lacks. Rows where either
/// version has no texts, rows a merge dropped, and identical pairs are left out.
pub fn from_columns(
    ws: &Workspace,
    a: &str,
    b: &str,
    stratify: Option<&str>,
) -> Result<Vec<NewItem>, UserError> {
    let frame = ws.read_frame_with_sidecars(None)?;
    let schema = frame.schema();
    for version in [a, b] {
        if version != "snapshot"
            && !["instruction", "input", "output"]
                .iter()
                .any(|c| schema.contains(&format!("{version}.{c}")))
        {
            return Err(UserError::new(format!(
                "`{version}` has no instruction, input or output columns in this workspace"
            ))
            .with_hint(
                "name `snapshot` or a stage that writes texts, e.g. aido.refine or aido.merge",
            ));
        }
    }
    let text = |name: &str| -> Result<Option<polars::prelude::StringChunked>, UserError> {
        match frame.column(name) {
            Ok(c) => c
                .cast(&polars::prelude::DataType::String)
                .and_then(|c| c.str().cloned())
                .map(Some)
                .map_err(|e| UserError::new(e.to_string())),
            Err(_) => Ok(None),
        }
    };
    let fields = ["instruction", "input", "output"];
    let version = |v: &str| -> Result<Vec<Option<polars::prelude::StringChunked>>, UserError> {
        fields
            .iter()
            .map(|f| {
                if v == "snapshot" {
                    text(f)
                } else {
                    Ok(text(&format!("{v}.{f}"))?.or(text(f)?))
                }
            })
            .collect()
    };
    let (va, vb) = (version(a)?, version(b)?);
    let ids = text("id")?.ok_or_else(|| UserError::new("the snapshot has no id column"))?;
    let strata = match stratify {
        Some(col) => Some(
            text(col)?.ok_or_else(|| UserError::new(format!("--stratify: no column `{col}`")))?,
        ),
        None => None,
    };
    let texts_at = |v: &[Option<polars::prelude::StringChunked>], i: usize| -> Option<Texts> {
        let get = |k: usize| v[k].as_ref().and_then(|c| c.get(i)).map(str::to_string);
        // A stage that did not touch a row leaves its texts null there.
        let output = get(2)?;
        Some(Texts {
            instruction: get(0).unwrap_or_default(),
            input: get(1).unwrap_or_default(),
            output,
        })
    };
    // A merge's dropped rows are not in the dataset; identical pairs tell nothing.
    let dropped = |v: &str, i: usize| {
        frame
            .column(&format!("{v}.included"))
            .ok()
            .and_then(|c| c.bool().ok().and_then(|c| c.get(i)))
            == Some(false)
    };
    let items: Vec<NewItem> = (0..frame.height())
        .filter(|i| !dropped(a, *i) && !dropped(b, *i))
        .filter_map(|i| {
            Some(NewItem {
                id: ids.get(i)?.to_string(),
                a: texts_at(&va, i)?,
                b: texts_at(&vb, i)?,
                stratum: strata.as_ref().and_then(|s| s.get(i)).map(str::to_string),
            })
        })
        .filter(|it| it.a != it.b)
        .collect();
    if items.is_empty() {
        return Err(UserError::new(format!(
            "no row has texts in both `{a}` and `{b}`"
        )));
    }
    Ok(items)
}
