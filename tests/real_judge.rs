//! `ds2.rate` against a real OpenAI-compatible server: llama.cpp's server with
//! SmolLM2-135M-Instruct, started by `make test` (scripts/with-judge.sh), which passes
//! its URL in GLEANER_TEST_JUDGE_URL.

mod common;

use common::*;
use polars::prelude::*;

fn judge_url() -> String {
    std::env::var("GLEANER_TEST_JUDGE_URL").expect(
        "GLEANER_TEST_JUDGE_URL is not set: run the tests through `make test`, which starts the llama.cpp judge",
    )
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
            "[llm.rater]\nbase_url = \"{}\"\nmodel = \"smollm2\"\nconcurrency = 2\ntimeout_s = 300\nschema_style = \"json_object\"\n\n\
             [[stage]]\nid = \"ds2.rate\"\nendpoint = \"rater\"\nrows = \"prompt_chars + response_chars < 1200\"\nlimit = 20\nmax_tokens = 64\n",
            judge_url()
        ),
    );
    let first = run(&ws.dir, &recipe);
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
}
