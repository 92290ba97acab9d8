//! Writing records out: gleaner JSONL, Parquet, Alpaca, ShareGPT and OpenAI messages,
//! plus a LLaMA-Factory `dataset_info.json` entry for the Alpaca and ShareGPT forms.
//! Files are written to a temporary name and renamed, so a failed export leaves nothing.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde_json::{Map, Value, json};

use super::frame::DERIVED_COLUMNS;
use super::record::Record;
use crate::error::{UserError, file_error, io_context};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// gleaner's canonical JSONL: id, messages, convenience fields, the dataset's own fields
    Jsonl,
    /// The same columns as Parquet (messages as a list of structs)
    Parquet,
    /// Alpaca JSONL (instruction/input/output/system/history) + dataset_info.json
    Alpaca,
    /// ShareGPT JSONL (conversations of from/value) + dataset_info.json
    Sharegpt,
    /// OpenAI/HF messages JSONL (role/content)
    Messages,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportReport {
    pub rows: usize,
    pub output: PathBuf,
    pub dataset_info: Option<PathBuf>,
    /// Rows whose conversation cannot be expressed exactly in the target format.
    pub lossy_rows: usize,
}

pub fn export_frame(
    df: &DataFrame,
    out: &Path,
    format: ExportFormat,
) -> Result<ExportReport, UserError> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io_context(parent, e))?;
    }
    let tmp = tmp_path(out);
    let result = match format {
        ExportFormat::Parquet => super::frame::with_full_messages(df)
            .map_err(|e| file_error(out, format!("cannot read records: {e}")))
            .and_then(|df| write_parquet(&df, &tmp))
            .map(|()| 0),
        _ => {
            let records = super::frame::frame_to_records(df)
                .map_err(|e| file_error(out, format!("cannot read records: {e}")))?;
            write_jsonl(&records, &tmp, format)
        }
    };
    let lossy_rows = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, out).map_err(|e| io_context(out, e))?;
    let dataset_info = match format {
        ExportFormat::Alpaca | ExportFormat::Sharegpt => Some(write_dataset_info(out, format)?),
        _ => None,
    };
    Ok(ExportReport {
        rows: df.height(),
        output: out.to_path_buf(),
        dataset_info,
        lossy_rows,
    })
}

fn tmp_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    out.with_file_name(name)
}

fn write_parquet(df: &DataFrame, path: &Path) -> Result<(), UserError> {
    let keep: Vec<PlSmallStr> = df
        .get_column_names()
        .into_iter()
        .filter(|n| n.as_str() != "source_line" && !DERIVED_COLUMNS.contains(&n.as_str()))
        .cloned()
        .collect();
    let mut out = df
        .select(keep)
        .map_err(|e| file_error(path, format!("cannot select columns: {e}")))?;
    let file = std::fs::File::create(path).map_err(|e| io_context(path, e))?;
    ParquetWriter::new(file)
        .finish(&mut out)
        .map_err(|e| file_error(path, format!("cannot write Parquet: {e}")))?;
    Ok(())
}

fn write_jsonl(records: &[Record], path: &Path, format: ExportFormat) -> Result<usize, UserError> {
    let file = std::fs::File::create(path).map_err(|e| io_context(path, e))?;
    let mut w = BufWriter::new(file);
    let mut lossy = 0;
    for r in records {
        let (value, exact) = match format {
            ExportFormat::Alpaca => to_alpaca(r),
            ExportFormat::Sharegpt => (to_sharegpt(r), true),
            ExportFormat::Messages => (to_messages(r), true),
            _ => (to_canonical(r), true),
        };
        if !exact {
            lossy += 1;
        }
        serde_json::to_writer(&mut w, &value)
            .map_err(|e| file_error(path, format!("cannot write: {e}")))?;
        w.write_all(b"\n").map_err(|e| io_context(path, e))?;
    }
    w.flush().map_err(|e| io_context(path, e))?;
    w.get_ref().sync_all().map_err(|e| io_context(path, e))?;
    Ok(lossy)
}

fn push_extras(obj: &mut Map<String, Value>, r: &Record) {
    for (k, v) in &r.extras {
        obj.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

fn turns_json(r: &Record, role_tag: &str, content_tag: &str, role_of: fn(&str) -> &str) -> Value {
    Value::Array(
        r.messages
            .iter()
            .map(|m| json!({ role_tag: role_of(&m.role), content_tag: m.content }))
            .collect(),
    )
}

/// gleaner JSONL: lossless, re-imports to identical records.
pub fn to_canonical(r: &Record) -> Value {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(r.id));
    if r.chosen.is_some() || r.rejected.is_some() {
        obj.insert("prompt".into(), json!(r.first_user()));
        if let Some(s) = &r.system {
            obj.insert("system".into(), json!(s));
        }
        obj.insert("chosen".into(), json!(r.chosen));
        obj.insert("rejected".into(), json!(r.rejected));
    } else {
        obj.insert("messages".into(), turns_json(r, "role", "content", |x| x));
        for (k, v) in [
            ("instruction", &r.instruction),
            ("input", &r.input),
            ("output", &r.output),
        ] {
            if let Some(v) = v {
                obj.insert(k.into(), json!(v));
            }
        }
    }
    push_extras(&mut obj, r);
    Value::Object(obj)
}

fn to_messages(r: &Record) -> Value {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(r.id));
    obj.insert("messages".into(), turns_json(r, "role", "content", |x| x));
    push_extras(&mut obj, r);
    Value::Object(obj)
}

fn sharegpt_role(role: &str) -> &str {
    match role {
        "user" => "human",
        "assistant" => "gpt",
        "tool" => "observation",
        other => other,
    }
}

fn to_sharegpt(r: &Record) -> Value {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(r.id));
    let turns: Vec<Value> = r
        .messages
        .iter()
        .filter(|m| m.role != "system")
        .map(|m| json!({"from": sharegpt_role(&m.role), "value": m.content}))
        .collect();
    obj.insert("conversations".into(), Value::Array(turns));
    if let Some(s) = &r.system {
        obj.insert("system".into(), json!(s));
    }
    push_extras(&mut obj, r);
    Value::Object(obj)
}

/// Alpaca keeps the last exchange as instruction/output and earlier ones as history.
/// Returns false for conversations it cannot hold exactly (tool turns, odd ordering).
fn to_alpaca(r: &Record) -> (Value, bool) {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(r.id));
    let turns: Vec<_> = r.messages.iter().filter(|m| m.role != "system").collect();
    let mut exact = turns
        .iter()
        .enumerate()
        .all(|(i, m)| m.role == if i % 2 == 0 { "user" } else { "assistant" });
    let (instruction, input, output, history) = match (&r.instruction, &r.output) {
        (Some(i), Some(o)) => (
            i.clone(),
            r.input.clone().unwrap_or_default(),
            o.clone(),
            vec![],
        ),
        _ => {
            let pairs: Vec<(String, String)> = turns
                .chunks(2)
                .map(|c| {
                    (
                        c[0].content.clone(),
                        c.get(1).map(|m| m.content.clone()).unwrap_or_default(),
                    )
                })
                .collect();
            if turns.len() % 2 == 1 {
                exact = false;
            }
            match pairs.split_last() {
                Some(((q, a), rest)) => (q.clone(), String::new(), a.clone(), rest.to_vec()),
                None => (String::new(), String::new(), String::new(), vec![]),
            }
        }
    };
    obj.insert("instruction".into(), json!(instruction));
    obj.insert("input".into(), json!(input));
    obj.insert("output".into(), json!(output));
    if let Some(s) = &r.system {
        obj.insert("system".into(), json!(s));
    }
    if !history.is_empty() {
        obj.insert(
            "history".into(),
            Value::Array(history.into_iter().map(|(q, a)| json!([q, a])).collect()),
        );
    }
    push_extras(&mut obj, r);
    (Value::Object(obj), exact)
}

/// Add (or replace) this file's entry in `dataset_info.json` beside it.
fn write_dataset_info(out: &Path, format: ExportFormat) -> Result<PathBuf, UserError> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let info_path = dir.join("dataset_info.json");
    let file_name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = file_name
        .split('.')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("gleaner")
        .to_string();
    let entry = match format {
        ExportFormat::Alpaca => json!({
            "file_name": file_name,
            "formatting": "alpaca",
            "columns": {"prompt": "instruction", "query": "input", "response": "output",
                        "system": "system", "history": "history"}
        }),
        _ => json!({
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                     "assistant_tag": "gpt", "observation_tag": "observation",
                     "function_tag": "function_call", "system_tag": "system"}
        }),
    };
    let mut info: Map<String, Value> = match std::fs::read_to_string(&info_path) {
        Ok(text) => match serde_json::from_str(&text) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(file_error(
                    &info_path,
                    "exists but is not a JSON object; not overwriting it",
                )
                .with_hint("move it away or fix it, then export again"));
            }
        },
        Err(_) => Map::new(),
    };
    info.insert(name, entry);
    let text = serde_json::to_string_pretty(&Value::Object(info)).expect("json");
    let tmp = tmp_path(&info_path);
    std::fs::write(&tmp, text + "\n").map_err(|e| io_context(&tmp, e))?;
    std::fs::rename(&tmp, &info_path).map_err(|e| io_context(&info_path, e))?;
    Ok(info_path)
}
