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

/// The server backend of the causal scorer (completions with echo + logprobs) against
/// llama.cpp serving the same GGUF: the IFD order of the reference pairs holds.
#[test]
fn server_logprobs_rank_ifd_like_pytorch() {
    use gleaner::judge::client::{Endpoint, EndpointConfig, RetryPolicy};
    use gleaner::judge::managed::ManagedServer;
    use gleaner::judge::pool::Pool;
    use gleaner::models::causal::{LogprobAlignment, ServerScorer, ifd};
    let command: Vec<String> = serde_json::from_str(&judge_command()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = ManagedServer::start(
        "ranker",
        &command,
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        dir.path().join("judge.log"),
        std::time::Duration::from_secs(120),
    )
    .unwrap();
    let mut config = EndpointConfig::new("ranker", &server.base_url, "smollm2");
    config.timeout_s = 120.0;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut scorer = ServerScorer {
        pool: std::sync::Arc::new(Pool::single(Endpoint::new(config).unwrap())),
        runtime: runtime.handle().clone(),
        retry: RetryPolicy::default(),
        // llama-cpp-python reports echoed log-probabilities one position late.
        alignment: LogprobAlignment::Shifted,
        top_k: 1000,
    };
    let (items, pairs) = ifd_reference();
    let got = ifd(&mut scorer, &pairs, "### Response:\n").unwrap();
    let order = |v: Vec<f64>| {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
        idx
    };
    let ours = order(got.iter().map(|g| g.ifd.unwrap()).collect());
    let want = order(items.iter().map(|i| i["ifd"].as_f64().unwrap()).collect());
    assert_eq!(ours, want, "server IFDs {got:?}");
    drop(server);
}

#[test]
fn aido_refine_on_5_demo_rows_with_llama_cpp_gives_every_row_a_final_state() {
    let (dir, ws) = demo_workspace();
    let recipe = write(
        dir.path(),
        "refine.toml",
        format!(
            "[llm.strong]\ncommand = {}\nmodel = \"smollm2\"\nconcurrency = 2\ntimeout_s = 300\n\n\
             [[stage]]\nid = \"aido.refine\"\nendpoint = \"strong\"\nrows = \"n_turns == 1 and len(output) < 400\"\nlimit = 5\nmax_tokens = 96\ntemperature = 0.0\n",
            judge_command()
        ),
    );
    let summary = run(&ws.dir, &recipe);
    assert_eq!(summary["rows"], 5, "{summary}");
    let log = std::fs::read_to_string(ws.dir.join("logs/judge-strong-0.log")).unwrap();
    assert_eq!(
        log.matches("\"POST /v1/chat/completions").count() as u64,
        summary["requests"].as_u64().unwrap(),
        "the server saw every request the stage counted"
    );
    let file = std::fs::File::open(ws.sidecar_path("aido.refine")).unwrap();
    let side = ParquetReader::new(file).finish().unwrap();
    assert_eq!(side.height(), 5);
    let col = |n: &str| {
        side.column(&format!("aido.refine.{n}"))
            .unwrap()
            .str()
            .unwrap()
            .clone()
    };
    let (state, trace, instruction, output) = (
        col("state"),
        col("trace"),
        col("instruction"),
        col("output"),
    );
    for i in 0..5 {
        let s = state.get(i).unwrap();
        assert!(
            ["revised", "all_rounds_lost", "unchanged", "review_unparsed"].contains(&s),
            "row {i}: {s} (a 135M judge still answers; only a failed call would be `failed`)"
        );
        let rounds: Vec<serde_json::Value> = serde_json::from_str(trace.get(i).unwrap()).unwrap();
        assert!(!rounds.is_empty() && rounds.len() <= 3);
        for text in [instruction.get(i), output.get(i)] {
            assert!(!text.unwrap_or_default().starts_with("ERROR:"));
        }
        if s == "revised" {
            assert!(!instruction.get(i).unwrap().trim().is_empty());
        }
    }
}
