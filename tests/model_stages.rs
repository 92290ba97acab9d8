//! The local-model stages through the binary: `embed` (vectors stored once per model
//! and text, reused on rerun) and `score.ppl` (perplexities and IFD with SmolLM2).

mod common;

use common::*;
use gleaner::models::embedder::{EmbedOptions, Embedder};
use gleaner::models::runtime::{Device, SessionOptions};
use polars::prelude::*;

fn read(path: &std::path::Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

#[test]
fn embed_writes_vectors_once_and_a_rerun_reuses_them() {
    let m = models();
    let (dir, ws) = demo_workspace();
    let recipe = write(
        dir.path(),
        "embed.toml",
        format!(
            "[model.minilm]\npath = \"{}\"\ndevice = \"cpu\"\nthreads = 2\n\n[[stage]]\nid = \"embed\"\nmodel = \"minilm\"\ntext = \"instruction\"\nlimit = 30\n",
            m.join("minilm").display()
        ),
    );
    let (first, _) = run_recipe_json(&ws.dir, &recipe);
    assert_eq!(
        (
            first["rows"].as_u64(),
            first["ok"].as_u64(),
            first["cached"].as_u64()
        ),
        (Some(30), Some(30), Some(0))
    );
    let vectors = read(&ws.dir.join("embeddings/embed.parquet"));
    assert_eq!(vectors.height(), 30);
    let side = read(&ws.dir.join("sidecars/embed.parquet"));
    assert!(
        side.column("embed.dim")
            .unwrap()
            .i64()
            .unwrap()
            .iter()
            .all(|d| d == Some(384))
    );
    // The stored vector is the embedder's own for that row's instruction.
    let records = load(&demo_path()).records;
    let id0 = vectors
        .column("id")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .to_string();
    let rec = records.iter().find(|r| r.id == id0).unwrap();
    let mut e = Embedder::load(
        &m.join("minilm"),
        SessionOptions {
            device: Device::Cpu,
            threads: 2,
        },
        EmbedOptions::default(),
    )
    .unwrap();
    let want = e
        .embed(&[rec.instruction.as_deref().unwrap()])
        .unwrap()
        .remove(0);
    let got: Vec<f32> = vectors
        .column("vector")
        .unwrap()
        .list()
        .unwrap()
        .get_as_series(0)
        .unwrap()
        .f32()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(got.len(), 384);
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5));
    let (again, _) = run_recipe_json(&ws.dir, &recipe);
    assert_eq!(
        again["cached"].as_u64(),
        Some(30),
        "every vector comes from the store"
    );
    assert_eq!(read(&ws.dir.join("embeddings/embed.parquet")).height(), 30);
}

#[test]
fn score_ppl_writes_perplexities_and_ifd() {
    let m = models();
    let (dir, ws) = demo_workspace();
    let recipe = write(
        dir.path(),
        "ppl.toml",
        format!(
            "[model.smollm2]\npath = \"{}\"\ndevice = \"cpu\"\nthreads = 2\nmax_length = 512\n\n[[stage]]\nid = \"score.ppl\"\nmodel = \"smollm2\"\nrows = \"n_turns == 1 and response_chars < 400\"\nlimit = 8\n",
            m.join("smollm2").display()
        ),
    );
    let (summary, _) = run_recipe_json(&ws.dir, &recipe);
    assert_eq!(
        (summary["rows"].as_u64(), summary["ok"].as_u64()),
        (Some(8), Some(8))
    );
    let side = read(&ws.dir.join("sidecars/score.ppl.parquet"));
    let f = |c: &str| side.column(c).unwrap().f64().unwrap().clone();
    let (instr, cond, alone, ifd) = (
        f("score.ppl.instr_ppl"),
        f("score.ppl.ppl_answer_given_prompt"),
        f("score.ppl.ppl_answer_alone"),
        f("score.ppl.ifd"),
    );
    let tok = tokenizers::Tokenizer::from_file(m.join("smollm2/tokenizer.json")).unwrap();
    let records = load(&demo_path()).records;
    let ids = side.column("id").unwrap().str().unwrap().clone();
    let answer_tokens = side
        .column("score.ppl.answer_tokens")
        .unwrap()
        .i64()
        .unwrap()
        .clone();
    for i in 0..8 {
        let (c, a) = (cond.get(i).unwrap(), alone.get(i).unwrap());
        assert!(instr.get(i).unwrap() > 1.0 && c > 1.0 && a > 1.0);
        assert!((ifd.get(i).unwrap() - c / a).abs() < 1e-9);
        // The count is the answer's own tokens, not the prompt's.
        let r = records
            .iter()
            .find(|r| Some(r.id.as_str()) == ids.get(i))
            .unwrap();
        let want = tok
            .encode(r.output.as_deref().unwrap(), false)
            .unwrap()
            .get_ids()
            .len();
        assert_eq!(answer_tokens.get(i), Some(want as i64), "{}", r.id);
    }
}

#[test]
fn model_recipes_are_checked_before_anything_runs() {
    let (dir, ws) = demo_workspace();
    for (body, want) in [
        (
            "[[stage]]\nid = \"embed\"\nmodel = \"nope\"\n",
            "has no [model.nope] table",
        ),
        (
            "[model.m]\ndevice = \"gpu\"\n[[stage]]\nid = \"embed\"\nmodel = \"m\"\n",
            "use auto, cpu, cuda or cuda:N",
        ),
        (
            "[model.m]\n[[stage]]\nid = \"score.ppl\"\n",
            "needs either model",
        ),
        (
            "[model.m]\npath = \"/nonexistent/model\"\n[[stage]]\nid = \"embed\"\nmodel = \"m\"\n",
            "model directory /nonexistent/model not found",
        ),
    ] {
        let r = write(dir.path(), "bad.toml", body);
        let out = assert_cmd::Command::cargo_bin("gleaner")
            .unwrap()
            .args(["run", r.to_str().unwrap(), "-w", ws.dir.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "{body}: {err}");
    }
}
