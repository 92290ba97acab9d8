//! Embedder throughput (issue: ONNX models, performance): the demo set repeated to
//! 2,048 texts, max length 256, MiniLM, the same thread count for everyone, measured
//! in one run against Python `onnxruntime` and PyTorch `transformers`
//! (benches/embed_peer.py, run with PEER_PYTHON, the models venv). Reports texts/s,
//! the ratio to the faster peer (target ≥ 1.5×) and peak memory.
//! `GLEANER_DEVICE=cuda` measures the CUDA provider instead (on a GPU machine).

use std::time::Instant;

use gleaner::data::LoadOptions;
use gleaner::data::load_dataset;
use gleaner::models::embedder::{EmbedOptions, Embedder};
use gleaner::models::runtime::{Device, SessionOptions};
use gleaner::stages::embed::text_of;
use gleaner::stages::recipe::TextField;

fn peak_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let models = std::env::var_os("GLEANER_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dirs::cache_dir().unwrap().join("gleaner/models"));
    let dir = models.join("minilm");
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2048);
    let device =
        Device::parse(&std::env::var("GLEANER_DEVICE").unwrap_or_else(|_| "cpu".into())).unwrap();
    let records = load_dataset(
        &root.join("assets/demo/demo.jsonl"),
        &LoadOptions::default(),
    )
    .unwrap()
    .records;
    let base: Vec<String> = records
        .iter()
        .map(|r| text_of(r, TextField::Conversation))
        .collect();
    let texts: Vec<String> = base.iter().cycle().take(n).cloned().collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch: usize = std::env::var("BATCH")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let mut e = Embedder::load(
        &dir,
        SessionOptions { device, threads },
        EmbedOptions {
            max_length: 256,
            batch_size: batch,
            token_budget: std::env::var("TOKEN_BUDGET")
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0),
            lanes: std::env::var("LANES")
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0),
            ..EmbedOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{}: run `make models` first", e.message));
    let (batch, budget, lanes) = (e.opts.batch_size, e.opts.token_budget, e.opts.lanes);
    let provider = e.provider();
    e.embed(&refs[..64]).unwrap(); // warm up
    let mut measure = || {
        let t = Instant::now();
        let (v, tokens) = e.embed_counted(&refs).unwrap();
        assert_eq!(v.len(), n);
        (t.elapsed().as_secs_f64(), tokens)
    };
    let (secs, tokens) = measure();
    let ours = n as f64 / secs;
    let flops = forward_flops(&dir, &tokens);
    println!(
        "== embedder: {n} texts (demo conversations repeated), max length 256, batch {batch} / {budget} tokens (python peers 32), {threads} threads in {lanes} lane(s), {provider}"
    );
    println!(
        "gleaner                  {ours:8.1} texts/s   peak RSS {:.0} MB",
        peak_mb()
    );
    let Ok(py) = std::env::var("PEER_PYTHON") else {
        println!(
            "python peers skipped: set PEER_PYTHON to the models venv's python (make bench does)"
        );
        return;
    };
    let file = std::env::temp_dir().join("gleaner-embed-bench.json");
    std::fs::write(&file, serde_json::to_string(&texts).unwrap()).unwrap();
    // The peers as a plain script runs them (batches of 32 in input order), then as
    // sentence-transformers does (sorted by length first). This machine's speed drifts
    // by a fifth over minutes, so gleaner runs again just before each peer and each
    // ratio is that pair's.
    let mut worst = std::collections::BTreeMap::new();
    for (peer, order) in [
        ("onnxruntime", "input"),
        ("torch", "input"),
        ("onnxruntime", "sorted"),
        ("torch", "sorted"),
    ] {
        let ours = n as f64 / measure().0;
        let Some(r) = peer_run(&py, root, &file, &dir, threads, peer, order) else {
            continue;
        };
        let rate = r["texts_per_s"].as_f64().unwrap();
        let ratio = ours / rate;
        let w: &mut f64 = worst.entry(order).or_insert(f64::INFINITY);
        *w = w.min(ratio);
        let peer = format!("{peer} ({order} order)");
        println!(
            "python {peer:<26} {rate:8.1} texts/s   peak RSS {:>4.0} MB   gleaner just before {ours:.1}: {ratio:.2}×",
            r["peak_mb"].as_f64().unwrap()
        );
    }
    if let Some(w) = worst.get("input") {
        println!(
            "ratio to the faster peer  {w:.2}× (target ≥ 1.5×; peers batching in input order)"
        );
    }
    if let Some(w) = worst.get("sorted") {
        println!("ratio to the faster length-sorted peer  {w:.2}× (for reference)");
    }
    // How close to the machine all this is: the forward passes' multiply-adds against
    // what the CPU's BLAS does at this thread count.
    if let Some(flops) = flops
        && let Some(r) = peer_run(&py, root, &file, &dir, threads, "gemm", "input")
    {
        let gemm = r["gflops"].as_f64().unwrap();
        let per_text = flops / n as f64;
        println!(
            "forward passes {:.2} GFLOP/text: gleaner {:.0} GFLOP/s; fp32 matrix multiply here (PyTorch BLAS, {threads} threads) {gemm:.0} GFLOP/s = at most {:.1} texts/s",
            per_text / 1e9,
            flops / secs / 1e9,
            gemm * 1e9 / per_text
        );
    }
}

/// One run of benches/embed_peer.py; its JSON line, or `None` (said) if it failed.
fn peer_run(
    py: &str,
    root: &std::path::Path,
    file: &std::path::Path,
    dir: &std::path::Path,
    threads: usize,
    peer: &str,
    order: &str,
) -> Option<serde_json::Value> {
    let out = std::process::Command::new(py)
        .arg(root.join("benches/embed_peer.py"))
        .args([
            file.to_str().unwrap(),
            dir.to_str().unwrap(),
            &threads.to_string(),
            "32",
            peer,
            order,
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        println!(
            "{peer} peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Multiply-adds ×2 of a BERT encoder's forward passes over texts of `tokens` tokens
/// (no padding): per token and layer the four attention projections and the two
/// feed-forward matrices, plus scores and weighted values over the text's own length.
fn forward_flops(dir: &std::path::Path, tokens: &[usize]) -> Option<f64> {
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).ok()?).ok()?;
    let get = |k: &str| config[k].as_f64();
    let (d, f, layers) = (
        get("hidden_size")?,
        get("intermediate_size")?,
        get("num_hidden_layers")?,
    );
    Some(
        tokens
            .iter()
            .map(|&t| {
                let t = t as f64;
                layers * (t * 2.0 * (4.0 * d * d + 2.0 * d * f) + 4.0 * t * t * d)
            })
            .sum(),
    )
}
