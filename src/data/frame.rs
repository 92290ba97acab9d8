//! Canonical records ⇄ the snapshot DataFrame.
//!
//! Snapshot columns: `id`, `source_line`, `system`, `instruction`, `input`, `output`,
//! `chosen`, `rejected` (preference data only), `messages` (list of {role, content};
//! null where it is exactly the single-turn conversation that instruction, input and
//! output rebuild, so that text is stored once: see `Record::conversation_is_derived`),
//! `n_turns`, `prompt_chars`, `response_chars`, `preview_prompt`, `preview_response`,
//! then the dataset's own scalar fields (e.g. `category`), then `raw_offset`/`raw_len`
//! (where the row, verbatim, sits in the workspace's `source.raw`).

use polars::prelude::*;
use polars_arrow::array::ListArray;
use polars_arrow::offset::OffsetsBuffer;
use serde_json::Value;

use super::record::{Message, Record, preview, preview_parts, single_turn_messages};

/// Enough for the widest table cell; longer text is read in the reader pane.
pub const PREVIEW_CHARS: usize = 120;

/// Snapshot columns that rebuild a [`Record`] (all but `raw` and the browse helpers).
pub const RECORD_COLUMNS: &[&str] = &[
    "id",
    "source_line",
    "system",
    "instruction",
    "input",
    "output",
    "chosen",
    "rejected",
    "messages",
];

/// Columns gleaner derives for browsing and for finding the verbatim row.
pub const DERIVED_COLUMNS: &[&str] = &[
    "n_turns",
    "prompt_chars",
    "response_chars",
    "preview_prompt",
    "preview_response",
    "raw_offset",
    "raw_len",
];

/// Whether gleaner itself defines a column of this name (a dataset field with such a
/// name is stored as `source.<name>`).
pub fn is_reserved(name: &str) -> bool {
    RECORD_COLUMNS.contains(&name) || DERIVED_COLUMNS.contains(&name)
}

/// Name under which a dataset's own field is stored.
pub fn extra_column_name(field: &str) -> String {
    if is_reserved(field) {
        format!("source.{field}")
    } else {
        field.to_string()
    }
}

pub fn records_to_frame(records: &[Record]) -> PolarsResult<DataFrame> {
    let extras = extra_specs(records);
    records_to_frame_with(records, &extras)
}

/// Build the frame for `records`, typing the dataset's own fields as `extras` says (so
/// that the chunks of one import share a schema). Every row has its `messages`.
pub fn records_to_frame_with(records: &[Record], extras: &[ExtraSpec]) -> PolarsResult<DataFrame> {
    build_frame(records, extras, false)
}

/// The snapshot's form of [`records_to_frame_with`]: `messages` is null where the
/// other fields rebuild it (see the module comment).
pub fn snapshot_frame(records: &[Record], extras: &[ExtraSpec]) -> PolarsResult<DataFrame> {
    build_frame(records, extras, true)
}

fn build_frame(records: &[Record], extras: &[ExtraSpec], compact: bool) -> PolarsResult<DataFrame> {
    let n = records.len();
    let str_col = |name: &str, f: &dyn Fn(&Record) -> Option<&str>| {
        Column::new(name.into(), records.iter().map(f).collect::<Vec<_>>())
    };
    let mut columns = vec![
        Column::new(
            "id".into(),
            records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "source_line".into(),
            records.iter().map(|r| r.line as u32).collect::<Vec<_>>(),
        ),
        str_col("system", &|r| r.system.as_deref()),
        str_col("instruction", &|r| r.instruction.as_deref()),
        str_col("input", &|r| r.input.as_deref()),
        str_col("output", &|r| r.output.as_deref()),
    ];
    if records
        .iter()
        .any(|r| r.chosen.is_some() || r.rejected.is_some())
    {
        columns.push(str_col("chosen", &|r| r.chosen.as_deref()));
        columns.push(str_col("rejected", &|r| r.rejected.as_deref()));
    }
    // A record import left compact gets its conversation back, unless the frame is the
    // snapshot (which stores such rows' `messages` as null).
    let rebuilt: Vec<Option<Vec<Message>>> = records
        .iter()
        .map(|r| {
            (r.conversation_in_fields && !compact).then(|| {
                single_turn_messages(
                    r.system.as_deref(),
                    r.instruction.as_deref().unwrap_or(""),
                    r.input.as_deref().unwrap_or(""),
                    r.output.as_deref().unwrap_or(""),
                )
            })
        })
        .collect();
    columns.push(messages_column(records.iter().zip(&rebuilt).map(
        |(r, rebuilt)| match rebuilt {
            Some(turns) => Some(turns.as_slice()),
            None if compact && r.conversation_is_derived() => None,
            None => Some(r.messages.as_slice()),
        },
    ))?);
    let browse: Vec<BrowseColumns> = records.iter().map(browse_columns).collect();
    columns.push(Column::new(
        "n_turns".into(),
        browse.iter().map(|b| b.turns).collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "prompt_chars".into(),
        browse.iter().map(|b| b.prompt_chars).collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "response_chars".into(),
        browse.iter().map(|b| b.response_chars).collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "preview_prompt".into(),
        browse
            .iter()
            .map(|b| b.preview_prompt.as_str())
            .collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "preview_response".into(),
        browse
            .iter()
            .map(|b| b.preview_response.as_str())
            .collect::<Vec<_>>(),
    ));
    columns.extend(extra_columns(records, extras));
    columns.push(Column::new(
        "raw_offset".into(),
        records
            .iter()
            .map(|r| r.raw_span.map(|(a, _)| a as u64))
            .collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "raw_len".into(),
        records
            .iter()
            .map(|r| r.raw_span.map(|(a, b)| (b - a) as u32))
            .collect::<Vec<_>>(),
    ));
    DataFrame::new(n, columns)
}

/// One row's length and preview columns.
struct BrowseColumns {
    turns: u32,
    prompt_chars: u32,
    response_chars: u32,
    preview_prompt: String,
    preview_response: String,
}

fn browse_columns(r: &Record) -> BrowseColumns {
    if r.conversation_in_fields {
        // The user turn is read from the fields in place.
        let answer = r.output.as_deref().unwrap_or("");
        let user = r.user_turn_parts();
        return BrowseColumns {
            turns: 1,
            prompt_chars: user.iter().map(|p| p.chars().count()).sum::<usize>() as u32,
            response_chars: answer.chars().count() as u32,
            preview_prompt: preview_parts(&user, PREVIEW_CHARS),
            preview_response: preview(answer, PREVIEW_CHARS),
        };
    }
    BrowseColumns {
        turns: r.turns() as u32,
        prompt_chars: r.chars_of_role("user") as u32,
        response_chars: r.chars_of_role("assistant") as u32,
        preview_prompt: preview(r.first_user(), PREVIEW_CHARS),
        preview_response: preview(r.first_assistant(), PREVIEW_CHARS),
    }
}

/// The `messages` list column; `None` rows are null.
fn messages_column<'a>(rows: impl Iterator<Item = Option<&'a [Message]>>) -> PolarsResult<Column> {
    let mut roles = Vec::new();
    let mut contents = Vec::new();
    let mut offsets = vec![0i64];
    let mut stored = Vec::new();
    for turns in rows {
        stored.push(turns.is_some());
        for m in turns.unwrap_or_default() {
            roles.push(m.role.as_str());
            contents.push(m.content.as_str());
        }
        offsets.push(roles.len() as i64);
    }
    let total = roles.len();
    let role = Series::new("role".into(), roles);
    let content = Series::new("content".into(), contents);
    let item = StructChunked::from_series("item".into(), total, [role, content].iter())?
        .into_series()
        .rechunk();
    let values = item.to_arrow(0, CompatLevel::newest());
    let dtype = ArrowDataType::LargeList(Box::new(ArrowField::new(
        "item".into(),
        values.dtype().clone(),
        true,
    )));
    let offsets: OffsetsBuffer<i64> = offsets.try_into()?;
    let validity = stored
        .iter()
        .any(|s| !s)
        .then(|| polars_arrow::bitmap::Bitmap::from_iter(stored.iter().copied()));
    let list = ListArray::<i64>::new(dtype, offsets, values, validity);
    Ok(Series::from_arrow("messages".into(), Box::new(list))?.into_column())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraKind {
    Bool,
    Int,
    Float,
    Text,
}

/// A dataset field kept as a column, typed from every row that has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraSpec {
    pub name: String,
    pub kind: ExtraKind,
}

/// The dataset's own scalar fields, in first-seen order, with one type each.
pub fn extra_specs(records: &[Record]) -> Vec<ExtraSpec> {
    let mut specs: Vec<ExtraSpec> = Vec::new();
    for r in records {
        for (k, v) in &r.extras {
            let kind = match v {
                Value::Bool(_) => ExtraKind::Bool,
                Value::Number(n) if n.is_i64() => ExtraKind::Int,
                Value::Number(_) => ExtraKind::Float,
                _ => ExtraKind::Text,
            };
            match specs.iter_mut().find(|s| &s.name == k) {
                Some(s) => {
                    s.kind = match (s.kind, kind) {
                        (a, b) if a == b => a,
                        (ExtraKind::Int, ExtraKind::Float) | (ExtraKind::Float, ExtraKind::Int) => {
                            ExtraKind::Float
                        }
                        _ => ExtraKind::Text,
                    }
                }
                None => specs.push(ExtraSpec {
                    name: k.clone(),
                    kind,
                }),
            }
        }
    }
    specs
}

fn extra_columns(records: &[Record], specs: &[ExtraSpec]) -> Vec<Column> {
    specs
        .iter()
        .map(|spec| {
            let name = spec.name.as_str();
            let values = records
                .iter()
                .map(|r| r.extras.iter().find(|(k, _)| k == name).map(|(_, v)| v));
            let col_name = extra_column_name(name);
            match spec.kind {
                ExtraKind::Bool => Column::new(
                    col_name.into(),
                    values
                        .map(|v| v.and_then(Value::as_bool))
                        .collect::<Vec<_>>(),
                ),
                ExtraKind::Int => Column::new(
                    col_name.into(),
                    values
                        .map(|v| v.and_then(Value::as_i64))
                        .collect::<Vec<_>>(),
                ),
                ExtraKind::Float => Column::new(
                    col_name.into(),
                    values
                        .map(|v| v.and_then(Value::as_f64))
                        .collect::<Vec<_>>(),
                ),
                ExtraKind::Text => Column::new(
                    col_name.into(),
                    values
                        .map(|v| {
                            v.map(|v| match v {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        })
        .collect()
}

/// Columns of a snapshot frame that hold the dataset's own fields.
pub fn extra_names(df: &DataFrame) -> Vec<String> {
    df.get_column_names()
        .into_iter()
        .filter(|n| !is_reserved(n.as_str()))
        .map(|n| n.to_string())
        .collect()
}

/// Read records back from (a slice of) the snapshot.
pub fn frame_to_records(df: &DataFrame) -> PolarsResult<Vec<Record>> {
    let opt_str = |name: &str| -> PolarsResult<Option<StringChunked>> {
        match df.column(name) {
            Ok(c) => Ok(Some(c.str()?.clone())),
            Err(_) => Ok(None),
        }
    };
    let ids = df.column("id")?.str()?.clone();
    let lines = df.column("source_line")?.u32()?.clone();
    let system = opt_str("system")?;
    let instruction = opt_str("instruction")?;
    let input = opt_str("input")?;
    let output = opt_str("output")?;
    let chosen = opt_str("chosen")?;
    let rejected = opt_str("rejected")?;
    let raw_offset = df
        .column("raw_offset")
        .ok()
        .map(|c| c.cast(&DataType::UInt64))
        .transpose()?;
    let raw_len = df
        .column("raw_len")
        .ok()
        .map(|c| c.cast(&DataType::UInt64))
        .transpose()?;
    let messages = df.column("messages")?.list()?.clone();
    let extras: Vec<(String, &Column)> = extra_names(df)
        .into_iter()
        .map(|n| {
            let c = df.column(&n).expect("listed");
            (n.strip_prefix("source.").unwrap_or(&n).to_string(), c)
        })
        .collect();
    let get = |ca: &Option<StringChunked>, i: usize| -> Option<String> {
        ca.as_ref().and_then(|c| c.get(i)).map(str::to_owned)
    };
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let mut record = Record {
            id: ids.get(i).unwrap_or_default().to_string(),
            line: lines.get(i).unwrap_or(0) as usize,
            system: get(&system, i),
            instruction: get(&instruction, i),
            input: get(&input, i),
            output: get(&output, i),
            chosen: get(&chosen, i),
            rejected: get(&rejected, i),
            raw_span: match (&raw_offset, &raw_len) {
                (Some(o), Some(l)) => o
                    .u64()?
                    .get(i)
                    .zip(l.u64()?.get(i))
                    .map(|(o, l)| (o as usize, (o + l) as usize)),
                _ => None,
            },
            ..Record::default()
        };
        match messages.get_as_series(i) {
            Some(turns) => record.messages = messages_of(&turns)?,
            None => {
                if let (Some(instruction), Some(output)) = (&record.instruction, &record.output) {
                    record.messages = single_turn_messages(
                        record.system.as_deref(),
                        instruction,
                        record.input.as_deref().unwrap_or(""),
                        output,
                    );
                }
            }
        }
        for (name, col) in &extras {
            let value = super::reader::any_to_json(&col.get(i)?);
            if !value.is_null() {
                record.extras.push((name.clone(), value));
            }
        }
        out.push(record);
    }
    Ok(out)
}

/// `df` with every row's `messages` filled in (a snapshot leaves single-turn rows null),
/// for writing it anywhere but the snapshot.
pub fn with_full_messages(df: &DataFrame) -> PolarsResult<DataFrame> {
    let Ok(column) = df.column("messages") else {
        return Ok(df.clone());
    };
    if column.null_count() == 0 {
        return Ok(df.clone());
    }
    let records = frame_to_records(
        &df.select(
            RECORD_COLUMNS
                .iter()
                .copied()
                .filter(|c| df.column(c).is_ok()),
        )?,
    )?;
    let full = messages_column(records.iter().map(|r| Some(r.messages.as_slice())))?;
    let mut out = df.clone();
    out.with_column(full)?;
    Ok(out)
}

/// The turns of one row's `messages` value.
pub fn messages_of(turns: &Series) -> PolarsResult<Vec<Message>> {
    let st = turns.struct_()?;
    let roles = st.field_by_name("role")?;
    let contents = st.field_by_name("content")?;
    Ok(roles
        .str()?
        .iter()
        .zip(contents.str()?.iter())
        .map(|(r, c)| Message::new(r.unwrap_or(""), c.unwrap_or("")))
        .collect())
}
