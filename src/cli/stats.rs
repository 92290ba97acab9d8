//! `gleaner stats`: a dataset's shape at a glance, as text or JSON.

use std::path::Path;

use polars::prelude::*;
use serde_json::{Value, json};

use super::LoadArgs;
use crate::data::frame::records_to_frame;
use crate::data::load_dataset;
use crate::data::stats::{Describe, describe_column, describe_values, is_numeric};
use crate::error::UserError;
use crate::store::{Target, Workspace, classify};

pub fn run(path: &Path, as_json: bool, load: &LoadArgs) -> Result<(), UserError> {
    let (frame, header) = match classify(path, load.workspace.as_deref())? {
        Target::Workspace(dir) => from_workspace(&dir)?,
        Target::Dataset { workspace, .. } if Workspace::is_workspace(&workspace) => {
            from_workspace(&workspace)?
        }
        Target::Dataset { file, .. } => {
            // No workspace: read the file in memory and write nothing.
            let loaded = load_dataset(&file, &load.options()?)?;
            let frame = records_to_frame(&loaded.records)
                .map_err(|e| UserError::new(format!("cannot build the frame: {e}")))?;
            let header = json!({
                "path": file,
                "workspace": null,
                "format": loaded.mapping.format.name(),
                "file_kind": loaded.kind.name(),
                "rows_in_file": loaded.total_rows,
                "rejected": loaded.rejects.len(),
                "id_source": loaded.id_source,
            });
            (frame, header)
        }
    };
    let report = build(&frame, header).map_err(|e| UserError::new(format!("stats: {e}")))?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    } else {
        print!("{}", render_text(&report));
    }
    Ok(())
}

fn from_workspace(dir: &Path) -> Result<(DataFrame, Value), UserError> {
    let ws = Workspace::open(dir)?;
    let frame = ws.read_frame_with_sidecars(None)?;
    let s = &ws.config.source;
    let header = json!({
        "path": s.path,
        "workspace": ws.dir,
        "format": ws.config.mapping.format.name(),
        "file_kind": s.kind.name(),
        "rows_in_file": s.rows,
        "rejected": s.rejected,
        "id_source": s.id_source,
    });
    Ok((frame, header))
}

fn describe_json(d: &Describe) -> Value {
    serde_json::to_value(d).expect("json")
}

fn build(frame: &DataFrame, mut report: Value) -> PolarsResult<Value> {
    report["rows"] = json!(frame.height());
    let fields: Vec<Value> = frame
        .columns()
        .iter()
        .filter(|c| {
            !matches!(
                c.name().as_str(),
                "raw_offset" | "raw_len" | "preview_prompt" | "preview_response"
            )
        })
        .map(|c| {
            // A snapshot leaves single-turn conversations to instruction/input/output
            // (data/frame.rs); every record has one, so none counts as missing.
            let nulls = match c.name().as_str() {
                "messages" => 0,
                _ => c.null_count(),
            };
            json!({"name": c.name().as_str(), "dtype": c.dtype().to_string(), "nulls": nulls})
        })
        .collect();
    report["fields"] = json!(fields);
    let mut lengths = serde_json::Map::new();
    for name in ["instruction", "input", "output", "system"] {
        if let Ok(c) = frame.column(name) {
            let values: Vec<Option<f64>> = c
                .str()?
                .iter()
                .map(|s| s.map(|s| s.chars().count() as f64))
                .collect();
            if values.iter().any(Option::is_some) {
                lengths.insert(name.into(), describe_json(&describe_values(&values)));
            }
        }
    }
    for (label, name) in [
        ("prompt (all user turns)", "prompt_chars"),
        ("response (all assistant turns)", "response_chars"),
        ("user turns", "n_turns"),
    ] {
        if let Ok(c) = frame.column(name) {
            lengths.insert(label.into(), describe_json(&describe_column(c)?));
        }
    }
    report["lengths"] = Value::Object(lengths);
    let mut numeric = serde_json::Map::new();
    for c in frame.columns() {
        let name = c.name().as_str();
        if is_numeric(c.dtype()) && !matches!(name, "source_line" | "raw_offset" | "raw_len") {
            numeric.insert(name.into(), describe_json(&describe_column(c)?));
        }
    }
    report["numeric"] = Value::Object(numeric);
    Ok(report)
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 => format!("{}", x as i64),
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

fn render_text(r: &Value) -> String {
    let mut out = String::new();
    let s = |k: &str| {
        r[k].as_str()
            .map(str::to_string)
            .unwrap_or_else(|| r[k].to_string())
    };
    out.push_str(&format!("source      {}\n", s("path")));
    if !r["workspace"].is_null() {
        out.push_str(&format!("workspace   {}\n", s("workspace")));
    }
    out.push_str(&format!(
        "format      {} ({})\nrows        {} ({} in file, {} rejected)\nids         {}\n\nfields\n",
        s("format"),
        s("file_kind"),
        r["rows"],
        r["rows_in_file"],
        r["rejected"],
        s("id_source")
    ));
    for f in r["fields"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<24} {:<40} nulls {}\n",
            f["name"].as_str().unwrap_or(""),
            f["dtype"].as_str().unwrap_or(""),
            f["nulls"]
        ));
    }
    let table = |title: &str, obj: &Value, out: &mut String| {
        out.push_str(&format!(
            "\n{title}\n  {:<32} {:>8} {:>6} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>8}\n",
            "", "n", "nulls", "mean", "std", "min", "25%", "50%", "75%", "max"
        ));
        for (name, d) in obj.as_object().into_iter().flatten() {
            out.push_str(&format!(
                "  {:<32} {:>8} {:>6} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>8}\n",
                name,
                num(&d["n"]),
                num(&d["nulls"]),
                num(&d["mean"]),
                num(&d["std"]),
                num(&d["min"]),
                num(&d["q25"]),
                num(&d["median"]),
                num(&d["q75"]),
                num(&d["max"])
            ));
        }
    };
    table("lengths (characters)", &r["lengths"], &mut out);
    table("numeric columns", &r["numeric"], &mut out);
    out
}
