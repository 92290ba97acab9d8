//! `gleaner run` end to end against the scripted OpenAI-compatible stub: statuses,
//! raw replies kept, sidecar columns, resume from the cache with zero new requests.

mod common;

use std::sync::atomic::Ordering;

use assert_cmd::Command;
use common::fake_openai::{FakeServer, Reply, start};
use common::*;
use polars::prelude::*;

const RATING: &str =
    "{\"Rarity\": 6, \"Complexity\": 7, \"Informativeness\": 8, \"Overall rating\": 8}";

fn server(script: Vec<Reply>) -> (tokio::runtime::Runtime, FakeServer) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(start(script, Reply::ok(RATING)));
    (rt, s)
}

fn setup(url: &str, extra: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("demo.gleaner");
    Command::cargo_bin("gleaner")
        .unwrap()
        .arg("import")
        .arg(demo_path())
        .arg("-w")
        .arg(&ws)
        .assert()
        .success();
    let recipe = write(
        dir.path(),
        "rate.toml",
        format!(
            "[llm.rater]\nbase_url = \"{url}\"\nmodel = \"stub\"\nconcurrency = 4\ntimeout_s = 10\n\n[[stage]]\nid = \"ds2.rate\"\nendpoint = \"rater\"\nlimit = 20\n{extra}"
        ),
    );
    (dir, ws, recipe)
}

fn run(ws: &std::path::Path, recipe: &std::path::Path) -> serde_json::Value {
    let (summary, stderr) = run_recipe_json(ws, recipe);
    assert!(
        stderr.contains("ds2.rate") && stderr.contains("20/20 rows"),
        "progress on stderr: {stderr}"
    );
    summary
}

fn sidecar(ws: &std::path::Path) -> DataFrame {
    let file = std::fs::File::open(ws.join("sidecars/ds2.rate.parquet")).unwrap();
    ParquetReader::new(file)
        .finish()
        .unwrap()
        .sort(["id"], Default::default())
        .unwrap()
}

#[test]
fn rating_20_rows_then_a_rerun_sends_no_request() {
    let refusal = "Sorry, I can't rate this sample.";
    let (_rt, s) = server(vec![Reply::ok(refusal), Reply::ok("Overall {great}")]);
    let (_d, ws, recipe) = setup(&s.url, "");
    let first = run(&ws, &recipe);
    assert_eq!(
        (
            first["rows"].as_u64(),
            first["ok"].as_u64(),
            first["unparsed"].as_u64()
        ),
        (Some(20), Some(18), Some(2))
    );
    assert_eq!(s.requests.load(Ordering::SeqCst), 20);
    let side = sidecar(&ws);
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
                assert_eq!(raw.get(i), Some(RATING));
                assert_eq!(score.get(i), Some(4), "overall 8 compresses to 4");
            }
            "unparsed" => {
                assert!(
                    matches!(raw.get(i), Some(r) if r == refusal || r == "Overall {great}"),
                    "raw kept"
                );
                assert_eq!(score.get(i), None, "paper preset: no invented score");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let body: serde_json::Value = serde_json::from_str(&s.bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(
        body["response_format"]["type"], "json_schema",
        "structured output requested"
    );
    assert!(
        body["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("## Data sample (conversation):\n### user: ")
    );

    let second = run(&ws, &recipe);
    assert_eq!(
        s.requests.load(Ordering::SeqCst),
        20,
        "no request reaches the server"
    );
    assert_eq!(
        (second["cached"].as_u64(), second["requests"].as_u64()),
        (Some(20), Some(0))
    );
    let again = sidecar(&ws);
    for col in [
        "id",
        "ds2.rate.status",
        "ds2.rate.score",
        "ds2.rate.raw",
        "ds2.rate.overall",
    ] {
        assert!(
            side.column(col)
                .unwrap()
                .equals_missing(again.column(col).unwrap()),
            "{col} differs after rerun"
        );
    }
    // The stats command sees the new score column.
    let out = Command::cargo_bin("gleaner")
        .unwrap()
        .args(["stats", "--json"])
        .arg(&ws)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["numeric"]["ds2.rate.score"]["n"], 18);
}

#[test]
fn failed_calls_are_recorded_and_retried_on_the_next_run() {
    let (_rt, s) = server(vec![Reply::raw(400, "{\"error\": \"context too long\"}")]);
    let (_d, ws, recipe) = setup(&s.url, "");
    let first = run(&ws, &recipe);
    assert_eq!(
        (first["ok"].as_u64(), first["failed"].as_u64()),
        (Some(19), Some(1))
    );
    let side = sidecar(&ws);
    let errors: Vec<Option<&str>> = side
        .column("ds2.rate.error")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .collect();
    assert!(
        errors
            .iter()
            .flatten()
            .any(|e| e.contains("HTTP 400") && e.contains("context too long"))
    );
    let second = run(&ws, &recipe);
    assert_eq!(
        (
            second["ok"].as_u64(),
            second["failed"].as_u64(),
            second["requests"].as_u64()
        ),
        (Some(20), Some(0), Some(1))
    );
    assert_eq!(
        s.requests.load(Ordering::SeqCst),
        21,
        "only the failed row is asked again"
    );
}

#[test]
fn compat_preset_scores_unparsed_rows_zero_like_the_reference() {
    let (_rt, s) = server(vec![Reply::ok("no json here")]);
    let (_d, ws, recipe) = setup(&s.url, "preset = \"compat\"\n");
    let first = run(&ws, &recipe);
    assert_eq!(first["unparsed"].as_u64(), Some(1));
    let side = sidecar(&ws);
    let scores: Vec<Option<i64>> = side
        .column("ds2.rate.overall")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(scores.iter().filter(|s| **s == Some(0)).count(), 1);
    assert!(scores.iter().all(Option::is_some));
    let body: serde_json::Value = serde_json::from_str(&s.bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(body["temperature"], 1.2);
    assert!(body.get("response_format").is_none());
}

#[test]
fn bad_recipes_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let r = write(
        dir.path(),
        "r.toml",
        "[[stage]]\nid = \"ds2.rate\"\nendpoint = \"nope\"\n",
    );
    Command::cargo_bin("gleaner")
        .unwrap()
        .arg("run")
        .arg(&r)
        .args(["-w", "x"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("has no [llm.nope] table"));
    let r = write(
        dir.path(),
        "s.toml",
        "[llm.a]\nbase_url = \"u\"\nmodel = \"m\"\n[[stage]]\nid = \"ds9.magic\"\nendpoint = \"a\"\n",
    );
    Command::cargo_bin("gleaner")
        .unwrap()
        .arg("run")
        .arg(&r)
        .args(["-w", "x"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("unknown stage `ds9.magic`"));
}
