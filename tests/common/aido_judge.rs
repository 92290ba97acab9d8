//! A scripted strong judge and backbone for `aido.refine`: each row's tag (its id and
//! the start of its instruction) picks a branch of the loop. Prompts are told apart by
//! their system message.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::fake_openai::Reply;
use super::*;
use polars::prelude::*;

/// Row tags: each one scripts a branch (see `respond`).
pub const ROWS: &[(&str, &str, &str)] = &[
    (
        "WIN1",
        "WIN1: Explain why the sky looks blue during the day.",
        "Sunlight scatters off air molecules; blue light scatters most.",
    ),
    (
        "WIN3",
        "WIN3: List three uses of copper.",
        "Wiring, plumbing pipes and coins.",
    ),
    ("LOSE", "LOSE: Name a prime number.", "7"),
    (
        "BADVERDICT",
        "BADVERDICT: Give a synonym for quick.",
        "fast",
    ),
    ("FAIL", "FAIL: Translate hello into French.", "bonjour"),
    (
        "DISAGREE",
        "DISAGREE: Describe how a bicycle gear works.",
        "Gears trade pedalling force for speed.",
    ),
    ("GARBLED", "GARBLED: Say what 2 + 2 is.", "4"),
];

pub fn dataset(dir: &Path, rows: &[(&str, &str, &str)]) -> PathBuf {
    let text: String = rows
        .iter()
        .map(|(tag, i, o)| {
            serde_json::json!({"id": tag, "instruction": i, "input": "", "output": o}).to_string()
                + "\n"
        })
        .collect();
    write(dir, "data.jsonl", text)
}

pub fn import(dir: &Path, rows: &[(&str, &str, &str)]) -> PathBuf {
    let data = dataset(dir, rows);
    let ws = dir.join("data.gleaner");
    assert_cmd::Command::cargo_bin("gleaner")
        .unwrap()
        .args(["import", data.to_str().unwrap(), "-w", ws.to_str().unwrap()])
        .assert()
        .success();
    ws
}

pub fn system_text(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn tag_of(text: &str) -> &'static str {
    ROWS.iter()
        .map(|r| r.0)
        .chain(["DRIFT"])
        .find(|t| text.contains(&format!("{t}:")) || text.contains(&format!("{t} ")))
        .unwrap_or("?")
}

/// The round a revision came from (`… (revised rK)`).
pub fn round_of(sample: &str) -> Option<u32> {
    let at = sample.find("(revised r")? + "(revised r".len();
    sample[at..].chars().next()?.to_digit(10)
}

/// The scripted judge. Prompts are told apart by their system message.
pub fn respond(body: &str, rewrites: &Mutex<HashMap<String, u32>>) -> Reply {
    let (system, user) = (system_text(body), user_text(body));
    let tag = tag_of(&user);
    if system.contains("helpful assistant") {
        if tag == "FAIL" {
            return Reply::raw(500, "{\"error\": \"backbone crashed\"}");
        }
        return Reply::ok(&format!(
            "Probe answer to: {}",
            user.lines().next().unwrap_or("")
        ));
    }
    if system.contains("strict, objective evaluator") {
        return Reply::ok("Score: 4\n\nEvaluation: Too vague.\n\nSuggestions:\n1. Say how long.");
    }
    if system.contains("You improve instruction-tuning data") {
        let k = {
            let mut m = rewrites.lock().unwrap();
            let k = m.entry(tag.to_string()).or_insert(0);
            *k += 1;
            *k
        };
        if tag == "GARBLED" {
            return Reply::ok("Here is a better version of the task, I think.");
        }
        let original = user
            .lines()
            .find_map(|l| l.strip_prefix("Original instruction: "))
            .unwrap_or_default();
        let instruction = if tag == "DRIFT" {
            "Write a cheerful limerick about penguins going on holiday to Spain.".to_string()
        } else {
            format!("{original} Answer in two sentences. (revised r{k})")
        };
        return Reply::ok(&format!("instruction_new: {instruction}\ninput_new:"));
    }
    if system.contains("impartial evaluator") {
        let a = user
            .lines()
            .find(|l| l.starts_with("Sample A:"))
            .unwrap_or("");
        let b = user
            .lines()
            .find(|l| l.starts_with("Sample B:"))
            .unwrap_or("");
        let (revision_is_b, k) = match (round_of(a), round_of(b)) {
            (None, Some(k)) => (true, k),
            (Some(k), None) => (false, k),
            _ => (true, 1), // DRIFT: the revision does not carry a round mark
        };
        let revision_wins = match tag {
            "WIN1" | "DRIFT" => true,
            "WIN3" => k >= 3,
            "LOSE" => false,
            "BADVERDICT" => return Reply::ok("I would say B is nicer overall."),
            // Round 1: "B" in both orders, so the orders disagree; round 2 agrees.
            "DISAGREE" if k == 1 => revision_is_b,
            "DISAGREE" => true,
            _ => true,
        };
        let letter = if revision_wins == revision_is_b {
            "B"
        } else {
            "A"
        };
        return Reply::ok(&format!(
            "{{\"winner\": \"{letter}\", \"explanation\": \"{tag} round {k} feedback\"}}"
        ));
    }
    if system.contains("You align an answer") {
        let reference = user
            .lines()
            .find_map(|l| l.strip_prefix("Original reference output: "))
            .unwrap_or_default();
        return Reply::ok(&format!("output_new: {reference} In short: yes."));
    }
    Reply::raw(400, "{\"error\": \"unknown prompt\"}")
}

pub fn recipe(dir: &Path, url: &str, extra: &str) -> PathBuf {
    write(
        dir,
        "refine.toml",
        format!(
            r#"
[llm.strong]
base_url = "{url}"
model = "strong-70b"
concurrency = 4

[llm.backbone]
base_url = "{url}"
model = "backbone-8b"
concurrency = 4

[[stage]]
id = "aido.refine"
endpoint = "strong"
probe_endpoint = "backbone"
retries = 0
{extra}
"#
        ),
    )
}

pub struct Run {
    pub side: DataFrame,
    pub bodies: Vec<String>,
    pub stderr: String,
}

pub fn run_refine(rows: &[(&str, &str, &str)], extra: &str) -> (tempfile::TempDir, PathBuf, Run) {
    let dir = tempfile::tempdir().unwrap();
    let ws = import(dir.path(), rows);
    let rt = runtime();
    let rewrites = Arc::new(Mutex::new(HashMap::new()));
    let r = rewrites.clone();
    let stub = server(&rt, move |body| respond(body, &r));
    let recipe = recipe(dir.path(), &stub.url, extra);
    let (_, stderr) = run_recipe_json(&ws, &recipe);
    let side = read(&ws.join("sidecars/aido.refine.parquet"));
    let bodies = stub.bodies.lock().unwrap().clone();
    (
        dir,
        ws,
        Run {
            side,
            bodies,
            stderr,
        },
    )
}
