//! The binary, end to end: commands, exit codes, messages, files written.

mod common;

use assert_cmd::Command;
use common::*;
use predicates::prelude::*;

fn gleaner() -> Command {
    let mut c = Command::cargo_bin("gleaner").unwrap();
    c.env(
        "GLEANER_LOG",
        std::env::temp_dir().join("gleaner-cli-test.log"),
    );
    c
}

#[test]
fn help_has_examples_on_every_command() {
    gleaner()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"));
    for cmd in ["open", "import", "stats", "export"] {
        gleaner().args([cmd, "--help"]).assert().success().stdout(
            predicate::str::contains("Examples:").and(predicate::str::contains("gleaner ")),
        );
    }
}

#[test]
fn import_then_stats_json() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "demo.jsonl",
        std::fs::read(demo_path()).unwrap(),
    );
    gleaner()
        .arg("import")
        .arg(&p)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "imported 104 of 104 rows (messages format, jsonl)",
        ));
    let out = gleaner()
        .arg("stats")
        .arg(dir.path().join("demo.gleaner"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], 104);
    assert_eq!(v["format"], "messages");
    // Every row has a conversation, though the snapshot stores single-turn ones once.
    let fields = v["fields"].as_array().unwrap();
    let messages = fields.iter().find(|f| f["name"] == "messages").unwrap();
    assert_eq!(messages["nulls"], 0, "{messages}");
    let category = fields.iter().find(|f| f["name"] == "category").unwrap();
    assert!(category["nulls"].is_u64());
    let records = load(&p).records;
    let mean = records.iter().map(|r| r.turns() as f64).sum::<f64>() / records.len() as f64;
    let got = v["numeric"]["n_turns"]["mean"].as_f64().unwrap();
    assert!((got - mean).abs() < 1e-9, "{got} vs {mean}");
    let outputs: Vec<f64> = records
        .iter()
        .filter_map(|r| r.output.as_ref())
        .map(|o| o.chars().count() as f64)
        .collect();
    assert_eq!(v["lengths"]["output"]["n"], outputs.len());
    assert_eq!(
        v["lengths"]["output"]["max"].as_f64().unwrap(),
        outputs.iter().cloned().fold(0.0, f64::max)
    );
    // Text output has the describe table.
    gleaner().arg("stats").arg(&p).assert().success().stdout(
        predicate::str::contains("lengths (characters)").and(predicate::str::contains("category")),
    );
}

#[test]
fn stats_on_a_plain_dataset_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "a.jsonl",
        "{\"instruction\":\"a\",\"output\":\"bb\",\"score\":3}\n{\"instruction\":\"c\",\"output\":\"dddd\",\"score\":5}\n",
    );
    let out = gleaner()
        .arg("stats")
        .arg(&p)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["numeric"]["score"]["mean"], 4.0);
    assert_eq!(v["lengths"]["output"]["mean"], 3.0);
    assert_eq!(tree(dir.path()), vec!["a.jsonl".to_string()]);
}

#[test]
fn bad_input_is_one_line_plus_hint_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "bad.jsonl",
        "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"c\",\"output\":[1]}\n",
    );
    let out = gleaner().arg("import").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("bad.jsonl: line 2: field `output`"),
        "{err}"
    );
    assert!(
        lines[1].contains("hint:") && lines[1].contains("--skip-bad-rows"),
        "{err}"
    );
    assert!(!dir.path().join("bad.gleaner").exists());
    gleaner()
        .arg("import")
        .arg(&p)
        .arg("--skip-bad-rows")
        .assert()
        .success()
        .stdout(predicate::str::contains("skipped 1 bad rows"));
    assert!(dir.path().join("bad.gleaner/rejects.jsonl").is_file());
}

#[test]
fn missing_file_and_unknown_flags() {
    gleaner()
        .arg("/nonexistent/data.jsonl")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no such file"));
    gleaner().args(["import", "--bogus"]).assert().code(2);
    gleaner()
        .arg("open")
        .arg("/nonexistent/x.jsonl")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn export_filtered_alpaca_with_dataset_info() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("w");
    gleaner()
        .arg("import")
        .arg(demo_path())
        .arg("-w")
        .arg(&ws)
        .assert()
        .success();
    let out = dir.path().join("sft/train.jsonl");
    gleaner()
        .arg("export")
        .arg(&ws)
        .arg("-o")
        .arg(&out)
        .args([
            "--format",
            "alpaca",
            "--filter",
            "category == \"coding\" and n_turns == 1",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("LLaMA-Factory entry"));
    let expected = load(&demo_path())
        .records
        .into_iter()
        .filter(|r| {
            r.turns() == 1
                && r.extras
                    .iter()
                    .any(|(k, v)| k == "category" && v == "coding")
        })
        .count();
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), expected);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["instruction"].is_string() && v["output"].is_string() && v["input"].is_string());
    }
    assert!(dir.path().join("sft/dataset_info.json").is_file());
    gleaner()
        .arg("export")
        .arg(&ws)
        .arg("-o")
        .arg(dir.path().join("x.jsonl"))
        .args(["--filter", "len(outptu) > 1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown column `outptu`"));
    assert!(!dir.path().join("x.jsonl").exists());
}

#[test]
fn export_never_overwrites_the_source_or_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "d.jsonl",
        "{\"instruction\":\"a\",\"output\":\"b\"}\n",
    );
    let before = std::fs::read(&p).unwrap();
    gleaner().arg("import").arg(&p).assert().success();
    let ws = dir.path().join("d.gleaner");
    gleaner()
        .arg("export")
        .arg(&ws)
        .arg("-o")
        .arg(&p)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "refusing to overwrite the source dataset",
        ));
    assert_eq!(std::fs::read(&p).unwrap(), before);
    gleaner()
        .arg("export")
        .arg(&ws)
        .arg("-o")
        .arg(ws.join("snapshot.parquet"))
        .args(["--format", "parquet"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("belongs to the workspace"));
    gleaner()
        .arg("export")
        .arg(&ws)
        .arg("-o")
        .arg(ws.join("exports/ok.jsonl"))
        .assert()
        .success();
}
