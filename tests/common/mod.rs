//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod aido_judge;
pub mod fake_openai;
pub mod tmux;

use std::path::{Path, PathBuf};

use fake_openai::{FakeServer, Reply, start_with};
use gleaner::data::{LoadOptions, Loaded, load_dataset};
use polars::prelude::*;

pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

pub fn load(path: &Path) -> Loaded {
    match load_dataset(path, &LoadOptions::default()) {
        Ok(l) => l,
        Err(e) => panic!("load failed: {} / {:?}", e.message, e.hint),
    }
}

pub fn load_err(path: &Path) -> String {
    match load_dataset(path, &LoadOptions::default()) {
        Ok(l) => panic!("expected an error, loaded {} records", l.records.len()),
        Err(e) => e.message,
    }
}

pub fn skip_bad(path: &Path) -> Loaded {
    let opts = LoadOptions {
        skip_bad_rows: true,
        ..LoadOptions::default()
    };
    load_dataset(path, &opts).unwrap_or_else(|e| panic!("{}", e.message))
}

/// A temporary directory holding the demo imported as `demo.gleaner`.
pub fn demo_workspace() -> (tempfile::TempDir, gleaner::store::Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let (ws, _) = gleaner::store::Workspace::import(
        &demo_path(),
        Some(&dir.path().join("demo.gleaner")),
        &LoadOptions::default(),
        false,
    )
    .unwrap();
    (dir, ws)
}

/// The demo dataset shipped in assets/.
pub fn demo_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/demo.jsonl")
}

/// Every file under `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        if let Ok(entries) = std::fs::read_dir(d) {
            for e in entries.flatten() {
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap().display().to_string());
                if p.is_dir() {
                    walk(base, &p, out);
                }
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `gleaner run RECIPE -w WS --json`, asserting success; (first stage summary, stderr).
pub fn run_recipe_json(ws: &Path, recipe: &Path) -> (serde_json::Value, String) {
    let out = assert_cmd::Command::cargo_bin("gleaner")
        .unwrap()
        .env(
            "GLEANER_LOG",
            std::env::temp_dir().join("gleaner-run-test.log"),
        )
        .arg("run")
        .arg(recipe)
        .arg("-w")
        .arg(ws)
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let summary = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()[0].clone();
    (summary, stderr)
}

/// The exported ONNX models (`make models`; `GLEANER_MODELS` overrides).
pub fn models() -> PathBuf {
    let dir = std::env::var_os("GLEANER_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs::cache_dir().unwrap().join("gleaner/models"));
    assert!(
        dir.join("minilm/model.onnx").is_file(),
        "no exported models in {}: run the tests through `make test` (scripts/setup-models.sh)",
        dir.display()
    );
    dir
}

/// A reference file of ../shared/fixtures (`GLEANER_SHARED` overrides the folder).
pub fn fixture(name: &str) -> serde_json::Value {
    let root = std::env::var_os("GLEANER_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let path = root.join("fixtures").join(name);
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// The IFD reference items and their (filled prompt, response) pairs.
pub fn ifd_reference() -> (Vec<serde_json::Value>, Vec<(String, String)>) {
    let reference = fixture("smollm2_ifd_reference.json");
    let items = reference["items"].as_array().unwrap().clone();
    let pairs = items
        .iter()
        .map(|i| {
            let prompt = i["prompt_template"]
                .as_str()
                .unwrap()
                .replace("{instruction}", i["instruction"].as_str().unwrap());
            (prompt, i["response"].as_str().unwrap().to_string())
        })
        .collect();
    (items, pairs)
}

/// A two-thread runtime for the in-process stub while the binary runs.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The stub, answering each request with `respond(body)`.
pub fn server(
    rt: &tokio::runtime::Runtime,
    respond: impl Fn(&str) -> Reply + Send + Sync + 'static,
) -> FakeServer {
    rt.block_on(start_with(respond))
}

/// The user message the stub received, from a chat request body.
pub fn user_text(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// A Parquet file, sorted by id.
pub fn read(path: &Path) -> DataFrame {
    let df = ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap();
    df.sort(["id"], Default::default()).unwrap()
}

/// A string column as owned values.
pub fn strs(df: &DataFrame, col: &str) -> Vec<Option<String>> {
    df.column(col)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

/// The binary with `args`, its log kept out of the way.
pub fn gleaner(args: &[&str]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("gleaner")
        .unwrap()
        .env("GLEANER_LOG", std::env::temp_dir().join("gleaner-test.log"))
        .args(args)
        .output()
        .unwrap()
}

/// `gleaner args`, asserting success; its stdout.
pub fn gleaner_ok(args: &[&str]) -> String {
    let out = gleaner(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `gleaner args`, asserting failure; its stderr.
pub fn gleaner_err(args: &[&str]) -> String {
    let out = gleaner(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The app's screen as text (ratatui TestBackend at the app's size).
pub fn screen(app: &gleaner::tui::app::App) -> String {
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(
        app.state.width,
        app.state.height,
    ))
    .unwrap();
    app.draw(&mut t).unwrap();
    format!("{}", t.backend())
}
