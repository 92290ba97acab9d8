//! `ds2.rate` against a real OpenAI-compatible server: llama.cpp's server with
//! SmolLM2-135M-Instruct, started by gleaner itself as a managed local judge
//! (`command` in the recipe → scripts/local-judge.sh), from the venv `make test` builds
//! and names in GLEANER_JUDGE_VENV. The server's own access log counts its requests.

mod common;

use common::*;
use polars::prelude::*;

fn judge_command() -> String {
    let venv = std::env::var("GLEANER_JUDGE_VENV").expect(
        "GLEANER_JUDGE_VENV is not set: run the tests through `make test`, which builds the llama.cpp judge",
    );
    assert!(
        std::path::Path::new(&venv).join(".ready").exists(),
        "{venv} is not a ready judge venv: run `make judge-setup`"
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/local-judge.sh");
    format!("[\"bash\", \"{}\", \"{{port}}\"]", script.display())
}

/// Chat requests the server itself logged in this workspace's last run.
fn server_side_requests(ws: &std::path::Path) -> usize {
    let log = std::fs::read_to_string(ws.join("logs/judge-rater-0.log")).unwrap();
    log.matches("\"POST /v1/chat/completions").count()
}

fn run(ws: &std::path::Path, recipe: &std::path::Path) -> serde_json::Value {
    run_recipe_json(ws, recipe).0
}

#[test]
fn ds2_rate_on_20_demo_rows_with_llama_cpp_then_a_rerun_sends_nothing() {
    let (dir, ws) = demo_workspace();
    let recipe = write(
        dir.path(),
        "rate.toml",
        format!(
            "[llm.rater]\ncommand = {}\nmodel = \"smollm2\"\nconcurrency = 2\ntimeout_s = 300\nschema_style = \"json_object\"\n\n\
             [[stage]]\nid = \"ds2.rate\"\nendpoint = \"rater\"\nrows = \"prompt_chars + response_chars < 1200\"\nlimit = 20\nmax_tokens = 64\n",
            judge_command()
        ),
    );
    let first = run(&ws.dir, &recipe);
    assert_eq!(
        server_side_requests(&ws.dir),
        first["requests"].as_u64().unwrap() as usize,
        "the server saw what the client sent"
    );
    let n = |k: &str| first[k].as_u64().unwrap();
    assert_eq!(n("rows"), 20);
    assert_eq!(n("ok") + n("unparsed") + n("failed"), 20);
    assert!(
        n("ok") > 0,
        "a schema-constrained small model still answers some rows: {first}"
    );
    let file = std::fs::File::open(ws.sidecar_path("ds2.rate")).unwrap();
    let side = ParquetReader::new(file).finish().unwrap();
    assert_eq!(side.height(), 20);
    let status = side
        .column("ds2.rate.status")
        .unwrap()
        .str()
        .unwrap()
        .clone();
    let raw = side.column("ds2.rate.raw").unwrap().str().unwrap().clone();
    let score = side
        .column("ds2.rate.score")
        .unwrap()
        .i64()
        .unwrap()
        .clone();
    for i in 0..20 {
        match status.get(i).unwrap() {
            "ok" => {
                assert!(raw.get(i).is_some_and(|r| !r.is_empty()));
                assert!(score.get(i).is_some_and(|s| (0..=5).contains(&s)));
            }
            "unparsed" => assert!(raw.get(i).is_some(), "raw reply kept"),
            "failed" => {}
            other => panic!("status {other}"),
        }
    }
    let second = run(&ws.dir, &recipe);
    assert_eq!(
        second["requests"].as_u64(),
        Some(n("failed")),
        "only failed rows are asked again"
    );
    assert_eq!(second["cached"].as_u64(), Some(n("ok") + n("unparsed")));
    assert_eq!(
        server_side_requests(&ws.dir),
        n("failed") as usize,
        "the server's own log shows only the failed rows asked again"
    );
}
