//! Recipes through the binary against the scripted stub: `aido.classify`,
//! `judge.rubric`, replicas in a recipe, `--shard` + `merge-shards`, the cache command,
//! and `kill -9` in the middle of a run.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::fake_openai::Reply;
use common::*;

/// A reply that depends only on the request, so every run (and order) agrees.
fn rating_for(body: &str) -> Reply {
    let n = user_text(body).len();
    Reply::ok(&format!(
        "{{\"Rarity\": {}, \"Complexity\": {}, \"Informativeness\": {}, \"Overall rating\": {}}}",
        1 + n % 10,
        1 + n / 7 % 10,
        1 + n / 3 % 10,
        1 + n / 11 % 10
    ))
}

fn workspace(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let ws = dir.join("demo.gleaner");
    assert_cmd::Command::cargo_bin("gleaner")
        .unwrap()
        .args([
            "import",
            demo_path().to_str().unwrap(),
            "-w",
            ws.to_str().unwrap(),
        ])
        .assert()
        .success();
    ws
}

#[test]
fn aido_classify_marks_rejected_rows_and_deletes_none() {
    let rt = runtime();
    let s = server(&rt, |body| {
        let reply = match user_text(body).len() % 4 {
            0 => "RESPONSE: No.",
            1 => "RESPONSE:\nScore: 1\nJustification: shallow reasoning.",
            2 => "RESPONSE:\n**Score: 2**\nJustification: correct and clear.",
            _ => "This pair is interesting.",
        };
        Reply::ok(reply)
    });
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let recipe = write(
        dir.path(),
        "classify.toml",
        format!(
            "[llm.judge]\nbase_url = \"{}\"\nmodel = \"stub\"\n\n[[stage]]\nid = \"aido.classify\"\nendpoint = \"judge\"\nlimit = 30\n",
            s.url
        ),
    );
    let (summary, _) = run_recipe_json(&ws, &recipe);
    assert_eq!(summary["rows"], 30);
    let bodies = s.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 30);
    let expect = |k: usize| {
        bodies
            .iter()
            .filter(|b| user_text(b).len() % 4 == k)
            .count()
    };
    let side = read(&ws.join("sidecars/aido.classify.parquet"));
    assert_eq!(side.height(), 30, "no row is deleted");
    let reason = strs(&side, "aido.classify.dropped_reason");
    let count = |r: &str| reason.iter().filter(|x| x.as_deref() == Some(r)).count();
    assert_eq!(count("non_reasoning"), expect(0));
    assert_eq!(count("unparsed"), expect(3));
    let score = side
        .column("aido.classify.score")
        .unwrap()
        .i64()
        .unwrap()
        .clone();
    assert_eq!(score.iter().filter(|s| *s == Some(1)).count(), expect(1));
    assert_eq!(score.iter().filter(|s| *s == Some(2)).count(), expect(2));
    let excluded = side
        .column("aido.classify.excluded")
        .unwrap()
        .bool()
        .unwrap()
        .clone();
    assert_eq!(
        excluded.iter().filter(|e| *e == Some(true)).count(),
        expect(0) + expect(3)
    );
    let raw = strs(&side, "aido.classify.raw");
    assert!(raw.iter().all(|r| r.is_some()), "raw replies are kept");
    // The prompt carries the method's labelled fields.
    assert!(user_text(&bodies[0]).contains("Question: "));
    let b: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(
        (b["temperature"].as_f64(), b["max_tokens"].as_u64()),
        (Some(0.6), Some(2000))
    );
}

#[test]
fn judge_rubric_scores_the_recipe_criteria_with_a_schema() {
    let rt = runtime();
    let s = server(&rt, |body| {
        let n = user_text(body).len() as i64;
        Reply::ok(&format!(
            "{{\"accuracy\": {}, \"tone\": {}, \"reason\": \"len {n}\"}}",
            1 + n % 5,
            1 + n / 5 % 5
        ))
    });
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let recipe = write(
        dir.path(),
        "rubric.toml",
        format!(
            r#"[llm.rater]
base_url = "{}"
model = "stub"

[[stage]]
id = "judge.rubric"
name = "rubric.support"
endpoint = "rater"
limit = 12
[stage.rubric]
scale = [1, 5]
overall = "min"
criteria = [
  {{ name = "accuracy", description = "Every claim is correct." }},
  {{ name = "tone", description = "Polite, like a support agent." }},
]
"#,
            s.url
        ),
    );
    let (summary, _) = run_recipe_json(&ws, &recipe);
    assert_eq!(
        (summary["name"].as_str(), summary["ok"].as_u64()),
        (Some("rubric.support"), Some(12))
    );
    let side = read(&ws.join("sidecars/rubric.support.parquet"));
    let acc = side
        .column("rubric.support.accuracy")
        .unwrap()
        .i64()
        .unwrap()
        .clone();
    let tone = side
        .column("rubric.support.tone")
        .unwrap()
        .i64()
        .unwrap()
        .clone();
    let overall = side
        .column("rubric.support.overall")
        .unwrap()
        .f64()
        .unwrap()
        .clone();
    for i in 0..12 {
        let (a, t) = (acc.get(i).unwrap(), tone.get(i).unwrap());
        assert!((1..=5).contains(&a) && (1..=5).contains(&t));
        assert_eq!(overall.get(i), Some(a.min(t) as f64));
    }
    let body: serde_json::Value = serde_json::from_str(&s.bodies.lock().unwrap()[0]).unwrap();
    let schema = &body["response_format"]["json_schema"]["schema"];
    assert_eq!(
        schema["required"],
        serde_json::json!(["accuracy", "tone", "reason"])
    );
    assert!(user_text(&s.bodies.lock().unwrap()[0]).contains("Polite, like a support agent."));
    // The stats command sees the new columns.
    let out = gleaner(&["stats", ws.to_str().unwrap(), "--json"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("rubric.support.overall"));
}

#[test]
fn a_recipe_with_two_replicas_survives_one_dead_and_reports_usage_per_endpoint() {
    let rt = runtime();
    let s = server(&rt, rating_for);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let recipe = write(
        dir.path(),
        "replicas.toml",
        format!(
            "[[llm.rater]]\nname = \"gpu-1\"\nbase_url = \"{dead}\"\nmodel = \"stub\"\n\n\
             [[llm.rater]]\nname = \"gpu-2\"\nbase_url = \"{}\"\nmodel = \"stub\"\nweight = 2\n\n\
             [[stage]]\nid = \"ds2.rate\"\nendpoint = \"rater\"\nlimit = 20\n",
            s.url
        ),
    );
    let (summary, stderr) = run_recipe_json(&ws, &recipe);
    assert_eq!(
        (summary["ok"].as_u64(), summary["failed"].as_u64()),
        (Some(20), Some(0))
    );
    let eps = summary["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 2);
    assert_eq!(eps[1]["endpoint"], "gpu-2");
    assert_eq!(eps[1]["requests"], 20);
    assert!(eps[0]["ejections"].as_u64().unwrap() >= 1);
    assert_eq!(eps[1]["prompt_tokens"], 20 * 11, "token usage per endpoint");
    assert!(stderr.contains("gpu-2: 20 requests"), "{stderr}");
}

#[test]
fn shards_split_the_rows_and_merge_into_the_unsharded_result() {
    let rt = runtime();
    let s = server(&rt, rating_for);
    let dir = tempfile::tempdir().unwrap();
    let recipe = write(
        dir.path(),
        "rate.toml",
        format!(
            "[llm.rater]\nbase_url = \"{}\"\nmodel = \"stub\"\n\n[[stage]]\nid = \"ds2.rate\"\nendpoint = \"rater\"\nlimit = 40\n",
            s.url
        ),
    );
    let whole = workspace(&dir.path().join("whole"));
    run_recipe_json(&whole, &recipe);
    let sharded = workspace(&dir.path().join("sharded"));
    let mut rows = 0;
    for shard in ["1/3", "2/3", "3/3"] {
        let out = gleaner(&[
            "run",
            recipe.to_str().unwrap(),
            "-w",
            sharded.to_str().unwrap(),
            "--shard",
            shard,
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        rows += summary[0]["rows"].as_u64().unwrap();
    }
    assert_eq!(rows, 40, "the shards partition the selected rows");
    assert!(
        !sharded.join("sidecars/ds2.rate.parquet").exists(),
        "shards do not touch the sidecar"
    );
    let out = gleaner(&["merge-shards", "-w", sharded.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ds2.rate: merged 40 rows"));
    let cols = [
        "id",
        "ds2.rate.overall",
        "ds2.rate.score",
        "ds2.rate.status",
        "ds2.rate.raw",
    ];
    let a = read(&whole.join("sidecars/ds2.rate.parquet"))
        .select(cols)
        .unwrap();
    let b = read(&sharded.join("sidecars/ds2.rate.parquet"))
        .select(cols)
        .unwrap();
    assert!(a.equals_missing(&b), "{a}\n{b}");
    let bad = gleaner(&[
        "run",
        recipe.to_str().unwrap(),
        "-w",
        sharded.to_str().unwrap(),
        "--shard",
        "4/3",
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected i/n"));
}

#[test]
fn cache_command_reports_and_clears_entries() {
    let rt = runtime();
    let s = server(&rt, rating_for);
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let recipe = write(
        dir.path(),
        "rate.toml",
        format!(
            "[llm.rater]\nbase_url = \"{}\"\nmodel = \"stub\"\n\n[[stage]]\nid = \"ds2.rate\"\nendpoint = \"rater\"\nlimit = 15\n",
            s.url
        ),
    );
    run_recipe_json(&ws, &recipe);
    let w = ws.to_str().unwrap();
    let out = gleaner(&["cache", "-w", w, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report[0]["model"], "stub");
    assert_eq!(report[0]["entries"], 15);
    assert_eq!(report[0]["prompt_tokens"], 15 * 11);
    let out = gleaner(&["cache", "-w", w, "--clear"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted 15"));
    let (again, _) = run_recipe_json(&ws, &recipe);
    assert_eq!(again["requests"], 15, "a cleared cache asks again");
}

#[test]
fn kill_9_midway_then_rerun_asks_only_the_missing_rows_and_ends_like_an_uninterrupted_run() {
    let rt = runtime();
    let s = server(&rt, |body| {
        rating_for(body).delayed(Duration::from_millis(60))
    });
    let dir = tempfile::tempdir().unwrap();
    let recipe = write(
        dir.path(),
        "rate.toml",
        format!(
            "[llm.rater]\nbase_url = \"{}\"\nmodel = \"stub\"\nconcurrency = 2\n\n[[stage]]\nid = \"ds2.rate\"\nendpoint = \"rater\"\nlimit = 40\n",
            s.url
        ),
    );
    let ws = workspace(&dir.path().join("killed"));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("gleaner"))
        .args(["run", recipe.to_str().unwrap(), "-w", ws.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while s.answered.load(Ordering::SeqCst) < 12 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the run never got going"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    assert!(!ws.join("sidecars/ds2.rate.parquet").exists());
    let cached: i64 = rusqlite::Connection::open(ws.join("gleaner.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM judge_cache", [], |r| r.get(0))
        .unwrap();
    assert!(
        (10..40).contains(&cached),
        "{cached} replies were cached before the kill"
    );
    let before = s.requests.load(Ordering::SeqCst);
    let (summary, _) = run_recipe_json(&ws, &recipe);
    let asked = s.requests.load(Ordering::SeqCst) - before;
    assert_eq!(
        asked as i64,
        40 - cached,
        "only rows without a cached reply are asked"
    );
    assert_eq!(summary["cached"].as_i64(), Some(cached));
    let rerun_bodies: Vec<String> = s.bodies.lock().unwrap()[before..].to_vec();
    let distinct: std::collections::HashSet<&String> = rerun_bodies.iter().collect();
    assert_eq!(distinct.len(), rerun_bodies.len(), "no row is asked twice");

    let fresh = workspace(&dir.path().join("fresh"));
    run_recipe_json(&fresh, &recipe);
    let cols = [
        "id",
        "ds2.rate.rarity",
        "ds2.rate.complexity",
        "ds2.rate.informativeness",
        "ds2.rate.overall",
        "ds2.rate.score",
        "ds2.rate.status",
        "ds2.rate.raw",
    ];
    let a = read(&ws.join("sidecars/ds2.rate.parquet"))
        .select(cols)
        .unwrap();
    let b = read(&fresh.join("sidecars/ds2.rate.parquet"))
        .select(cols)
        .unwrap();
    assert_eq!(a.height(), 40);
    assert!(a.equals_missing(&b), "{a}\n{b}");
}

#[test]
fn ctrl_c_stops_cleanly_after_the_requests_in_flight_and_a_rerun_resumes() {
    let rt = runtime();
    let s = server(&rt, |body| {
        rating_for(body).delayed(Duration::from_millis(80))
    });
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let recipe = write(
        dir.path(),
        "rate.toml",
        format!(
            "[llm.rater]\nbase_url = \"{}\"\nmodel = \"stub\"\nconcurrency = 2\n\n[[stage]]\nid = \"ds2.rate\"\nendpoint = \"rater\"\nlimit = 40\n",
            s.url
        ),
    );
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("gleaner"))
        .args(["run", recipe.to_str().unwrap(), "-w", ws.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while s.answered.load(Ordering::SeqCst) < 6 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the run never got going"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("stopping after the requests in flight"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rerun the same command to resume"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("interrupted"), "{stdout}");
    assert!(!ws.join("sidecars/ds2.rate.parquet").exists());
    let sent = s.requests.load(Ordering::SeqCst);
    assert!(sent < 40, "stopped early: {sent} requests");
    // Every request sent was answered and kept: the rerun asks only the rest.
    let (summary, _) = run_recipe_json(&ws, &recipe);
    assert_eq!(s.requests.load(Ordering::SeqCst) - sent, 40 - sent);
    assert_eq!(summary["cached"].as_u64(), Some(sent as u64));
    assert_eq!(summary["ok"], 40);
}

/// `/v1/completions` echo: the prompt split at spaces, every token but the first at
/// log-probability −1, so every span's perplexity is e.
fn echo_logprobs(body: &str) -> Reply {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let prompt = v["prompt"].as_str().unwrap_or_default();
    assert_eq!(v["echo"], true, "score.ppl asks for the prompt back");
    let (mut tokens, mut offsets, mut logprobs) = (vec![], vec![], vec![]);
    let mut start = 0;
    for (k, piece) in prompt.split_inclusive(' ').enumerate() {
        tokens.push(piece.to_string());
        offsets.push(start);
        logprobs.push(if k == 0 {
            serde_json::Value::Null
        } else {
            serde_json::json!(-1.0)
        });
        start += piece.len();
    }
    Reply::ok("").then_body(
        &serde_json::json!({
            "choices": [{"index": 0, "text": prompt, "logprobs": {
                "tokens": tokens, "token_logprobs": logprobs, "text_offset": offsets}}],
            "usage": {"prompt_tokens": tokens.len(), "completion_tokens": 1}
        })
        .to_string(),
    )
}

#[test]
fn score_ppl_through_an_endpoint_reads_echoed_logprobs() {
    let rt = runtime();
    let s = server(&rt, echo_logprobs);
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let recipe = write(
        dir.path(),
        "ppl.toml",
        format!(
            "[llm.lm]\nbase_url = \"{}\"\nmodel = \"stub\"\n\n[[stage]]\nid = \"score.ppl\"\nendpoint = \"lm\"\nrows = \"n_turns == 1\"\nlimit = 5\n",
            s.url
        ),
    );
    let (summary, _) = run_recipe_json(&ws, &recipe);
    assert_eq!(
        (summary["ok"].as_u64(), summary["requests"].as_u64()),
        (Some(5), Some(10))
    );
    assert!(
        s.paths
            .lock()
            .unwrap()
            .iter()
            .all(|p| p.ends_with("/v1/completions"))
    );
    let side = read(&ws.join("sidecars/score.ppl.parquet"));
    let e = std::f64::consts::E;
    for col in [
        "score.ppl.instr_ppl",
        "score.ppl.ppl_answer_given_prompt",
        "score.ppl.ppl_answer_alone",
    ] {
        for v in side.column(col).unwrap().f64().unwrap().iter() {
            assert!((v.unwrap() - e).abs() < 1e-9, "{col}: {v:?}");
        }
    }
    for v in side.column("score.ppl.ifd").unwrap().f64().unwrap().iter() {
        assert!((v.unwrap() - 1.0).abs() < 1e-9);
    }
}
