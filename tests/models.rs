//! ONNX Runtime models against references computed by PyTorch (shared/fixtures):
//! MiniLM embeddings and SmolLM2 perplexities/IFD; batching that changes nothing;
//! device selection; wrong models refused; the classifier's labels. The models are
//! exported by scripts/setup-models.sh, which `make test` runs (GLEANER_MODELS and
//! ORT_DYLIB_PATH point at them).

mod common;

use common::*;

use gleaner::models::causal::{OnnxScorer, Span, SpanScorer, ifd};
use gleaner::models::classifier::Classifier;
use gleaner::models::embedder::{EmbedOptions, Embedder};
use gleaner::models::runtime::{Device, Provider, SessionOptions};

/// The CPU, or the device named by `GLEANER_TEST_DEVICE` (e.g. `cuda`) to run the
/// same golden checks on a GPU machine; CI never sets it.
fn cpu() -> SessionOptions {
    let device = std::env::var("GLEANER_TEST_DEVICE")
        .map(|d| Device::parse(&d).expect("GLEANER_TEST_DEVICE: auto, cpu, cuda or cuda:N"))
        .unwrap_or(Device::Cpu);
    SessionOptions { device, threads: 2 }
}

fn embedder() -> Embedder {
    Embedder::load(&models().join("minilm"), cpu(), EmbedOptions::default()).unwrap()
}

#[test]
fn minilm_embeddings_match_pytorch() {
    let reference = fixture("minilm_reference.json");
    let items = reference["items"].as_array().unwrap();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let mut e = embedder();
    let got = e.embed(&texts).unwrap();
    for (item, v) in items.iter().zip(&got) {
        let want: Vec<f32> = item["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(v.len(), want.len());
        let text = item["text"].as_str().unwrap();
        assert_eq!(
            e.encode(text).unwrap().len() as u64,
            item["n_tokens"].as_u64().unwrap(),
            "{text:?}"
        );
        let worst = v
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-4, "{text:?}: max abs diff {worst}");
        let cos: f32 = v.iter().zip(&want).map(|(a, b)| a * b).sum::<f32>()
            / (v.iter().map(|a| a * a).sum::<f32>().sqrt()
                * want.iter().map(|b| b * b).sum::<f32>().sqrt());
        assert!(cos >= 0.99999, "{text:?}: cosine {cos}");
    }
}

/// The texts of the MiniLM fixture, in order.
fn fixture_texts(reference: &serde_json::Value) -> Vec<&str> {
    reference["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["text"].as_str().unwrap())
        .collect()
}

#[test]
fn batching_changes_no_vector() {
    let reference = fixture("minilm_reference.json");
    let texts = fixture_texts(&reference);
    assert!(texts.contains(&""), "the fixture has an empty text");
    let mut batched = embedder();
    let together = batched.embed(&texts).unwrap();
    let mut single = Embedder::load(
        &models().join("minilm"),
        cpu(),
        EmbedOptions {
            batch_size: 1,
            ..EmbedOptions::default()
        },
    )
    .unwrap();
    for (t, v) in texts.iter().zip(&together) {
        let alone = single.embed(&[t]).unwrap().remove(0);
        let worst = v
            .iter()
            .zip(&alone)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "{t:?}: {worst}");
    }
    // The long text was cut at 256 tokens, its last one [SEP].
    let long = texts.iter().find(|t| t.len() > 1000).unwrap();
    let ids = batched.encode(long).unwrap();
    assert_eq!(ids.len(), 256);
    assert_eq!(ids[255], 102);
}

#[test]
fn lanes_change_no_vector_and_keep_the_order() {
    let reference = fixture("minilm_reference.json");
    let texts = fixture_texts(&reference);
    // Batches of two: eight batches shared by three lanes, each taking the next.
    let load = |lanes| {
        let opts = SessionOptions {
            device: Device::Cpu,
            threads: 1,
        };
        let batch = EmbedOptions {
            batch_size: 2,
            lanes,
            ..EmbedOptions::default()
        };
        Embedder::load(&models().join("minilm"), opts, batch).unwrap()
    };
    let mut one = load(1);
    let mut three = load(3);
    assert_eq!((one.opts.lanes, three.opts.lanes), (1, 3));
    let want = one.embed(&texts).unwrap();
    let got = three.embed(&texts).unwrap();
    assert_eq!(got.len(), texts.len());
    let items = reference["items"].as_array().unwrap();
    for (((t, a), b), item) in texts.iter().zip(&want).zip(&got).zip(items) {
        // One thread per session either way: the same operations in the same order.
        assert_eq!(a, b, "{t:?}");
        // And each vector is its own text's (PyTorch's reference).
        let worst = b
            .iter()
            .zip(item["embedding"].as_array().unwrap())
            .map(|(x, y)| (x - y.as_f64().unwrap() as f32).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-4, "{t:?}: {worst}");
    }
    // The default on a CPU: one lane per thread for a model this small.
    let two = Embedder::load(
        &models().join("minilm"),
        SessionOptions {
            device: Device::Cpu,
            threads: 2,
        },
        EmbedOptions::default(),
    )
    .unwrap();
    assert_eq!(two.opts.lanes, 2);
}

#[test]
fn smollm2_perplexities_and_ifd_match_pytorch() {
    let mut scorer = OnnxScorer::load(&models().join("smollm2"), cpu()).unwrap();
    let (items, pairs) = ifd_reference();
    let got = ifd(&mut scorer, &pairs, "### Response:\n").unwrap();
    let close = |a: f64, b: f64| ((a - b) / b).abs() < 0.005;
    for (item, g) in items.iter().zip(&got) {
        let f = |k: &str| item[k].as_f64().unwrap();
        assert_eq!(
            g.answer_tokens as u64,
            item["answer_tokens"].as_u64().unwrap()
        );
        assert!(
            close(
                g.ppl_answer_given_prompt.unwrap(),
                f("ppl_answer_given_prompt")
            ),
            "{g:?} vs {item}"
        );
        assert!(
            close(
                g.ppl_answer_alone.unwrap(),
                f("ppl_answer_alone_after_response_marker")
            ),
            "{g:?} vs {item}"
        );
        assert!(close(g.ifd.unwrap(), f("ifd")), "{g:?} vs {item}");
    }
    // A span scored in a batch of mixed lengths equals the same span alone.
    let spans: Vec<Span> = pairs
        .iter()
        .map(|(p, a)| Span {
            context: p.clone(),
            target: a.clone(),
        })
        .collect();
    let batch = scorer.score(&spans).unwrap();
    let alone = scorer.score(&spans[2..3]).unwrap();
    assert!(
        (batch[2].nll - alone[0].nll).abs() < 1e-3,
        "{:?} vs {:?}",
        batch[2],
        alone[0]
    );
}

#[test]
fn devices_and_wrong_models_get_clear_answers() {
    let dir = models();
    assert!(Device::parse("cuda:x").is_err());
    assert_eq!(Device::parse("cuda:1").unwrap(), Device::Cuda(1));
    // `auto` runs wherever it can; on a machine without a GPU that is the CPU.
    let auto = Embedder::load(
        &dir.join("minilm"),
        SessionOptions::default(),
        EmbedOptions::default(),
    )
    .unwrap();
    let has_gpu = std::path::Path::new("/dev/nvidia0").exists();
    if cpu().device != Device::Cpu {
        // A GPU run of these tests (GLEANER_TEST_DEVICE=cuda): `auto` must find it.
        assert_eq!(auto.provider(), Provider::Cuda(0));
    }
    if !has_gpu {
        assert_eq!(auto.provider(), Provider::Cpu);
        let err = Embedder::load(
            &dir.join("minilm"),
            SessionOptions {
                device: Device::Cuda(0),
                threads: 1,
            },
            EmbedOptions::default(),
        )
        .err()
        .expect("cuda without a GPU is an error");
        assert!(
            err.message
                .contains("CUDA execution provider did not register"),
            "{}",
            err.message
        );
    }
    let err = OnnxScorer::load(&dir.join("minilm"), cpu())
        .err()
        .expect("an encoder is no causal LM");
    assert!(
        err.message.contains("not a causal language model"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("last_hidden_state"),
        "names what it found: {}",
        err.message
    );
    let err = Embedder::load(&dir.join("does-not-exist"), cpu(), EmbedOptions::default())
        .err()
        .unwrap();
    assert!(err.message.contains("not found"), "{}", err.message);
}

#[test]
fn the_classifier_names_labels_from_the_config() {
    let mut c = Classifier::load(&models().join("nli-plumbing"), cpu()).unwrap();
    assert_eq!(c.labels, vec!["entailment", "neutral", "contradiction"]);
    let probs = c
        .classify(&[
            ("A man is eating food.", "Someone eats."),
            ("", ""),
            ("The sky is blue.", "It is night."),
        ])
        .unwrap();
    assert_eq!(probs.len(), 3);
    for p in &probs {
        assert_eq!(p.len(), 3);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // The same pair alone gives the same probabilities as in the batch.
    let alone = c.classify(&[("The sky is blue.", "It is night.")]).unwrap();
    assert!(
        alone[0]
            .iter()
            .zip(&probs[2])
            .all(|(a, b)| (a - b).abs() < 1e-5)
    );
}
