//! `aido.refine` and `aido.merge` through the binary against a scripted judge: every
//! branch of the loop (win in round 1, win in round 3, all rounds lost, an unreadable
//! verdict, a failed call, the two orders disagreeing, unreadable rewrites, drift) and
//! what each leaves in the sidecar; the compat switches; merge policies and export.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::aido_judge::*;
use common::*;
use polars::prelude::*;

fn row(df: &DataFrame, id: &str) -> HashMap<String, AnyValue<'static>> {
    let ids = strs(df, "id");
    let i = ids.iter().position(|x| x.as_deref() == Some(id)).unwrap();
    df.columns()
        .iter()
        .map(|c| {
            (
                c.name().trim_start_matches("aido.refine.").to_string(),
                c.get(i).unwrap().into_static(),
            )
        })
        .collect()
}

fn s(v: &AnyValue) -> String {
    match v {
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Null => String::new(),
        other => other.to_string(),
    }
}

fn trace(r: &HashMap<String, AnyValue<'static>>) -> Vec<serde_json::Value> {
    serde_json::from_str(&s(&r["trace"])).unwrap()
}

/// Requests of one prompt kind for one row.
fn asked(bodies: &[String], prompt: &str, tag: &str) -> Vec<String> {
    bodies
        .iter()
        .filter(|b| system_text(b).contains(prompt) && tag_of(&user_text(b)) == tag)
        .map(|b| user_text(b))
        .collect()
}

#[test]
fn every_branch_of_the_loop_leaves_its_documented_fields() {
    let (_dir, _ws, run) = run_refine(ROWS, "");
    let side = &run.side;
    assert_eq!(side.height(), ROWS.len(), "{}", run.stderr);

    // Round 1 win: one round, both orders say the revision, proposed, aligned output.
    let r = row(side, "WIN1");
    assert_eq!(s(&r["state"]), "revised");
    assert_eq!(r["proposed"], AnyValue::Boolean(true));
    assert_eq!(r["rounds_used"], AnyValue::Int64(1));
    assert_eq!(r["eval_score"], AnyValue::Int64(4));
    assert!(s(&r["instruction"]).ends_with("Answer in two sentences. (revised r1)"));
    assert_eq!(
        s(&r["output"]),
        "Sunlight scatters off air molecules; blue light scatters most. In short: yes."
    );
    assert!(s(&r["probe_output"]).starts_with("Probe answer to: WIN1"));
    assert!(s(&r["evaluation"]).contains("Suggestions"));
    let t = trace(&r);
    assert_eq!(t[0]["winner"], "B");
    assert_eq!(
        (t[0]["winner_ab"].as_str(), t[0]["winner_ba"].as_str()),
        (Some("B"), Some("A"))
    );
    assert_eq!(t[0]["orders_disagree"], false);
    assert!(
        t[0]["probe_output"]
            .as_str()
            .unwrap()
            .contains("(revised r1)")
    );
    // The reference answer is the row's real output (not the released code's empty one).
    let eval = asked(&run.bodies, "strict, objective evaluator", "WIN1");
    assert!(
        eval[0].contains("Reference Answer: Sunlight scatters"),
        "{}",
        eval[0]
    );

    // Round 3 win: rounds 2 and 3 restart from the original with the last feedback.
    let r = row(side, "WIN3");
    assert_eq!(
        (s(&r["state"]), r["rounds_used"].clone()),
        ("revised".into(), AnyValue::Int64(3))
    );
    let t = trace(&r);
    let winners: Vec<_> = t.iter().map(|x| x["winner"].as_str().unwrap()).collect();
    assert_eq!(winners, ["A", "A", "B"]);
    assert!(s(&r["instruction"]).contains("(revised r3)"));
    let rewrites = asked(&run.bodies, "You improve instruction-tuning data", "WIN3");
    assert_eq!(rewrites.len(), 3);
    // Each round's rewrite is its own request (seeded by round), so a repeated
    // feedback never turns round 3 into a cache hit of round 2.
    let seeds: Vec<u64> = run
        .bodies
        .iter()
        .filter(|b| system_text(b).contains("You improve") && tag_of(&user_text(b)) == "GARBLED")
        .map(|b| {
            serde_json::from_str::<serde_json::Value>(b).unwrap()["seed"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seeds, [1, 2, 3]);
    assert!(!rewrites[0].contains("Additional information"));
    assert!(
        rewrites[1].contains("WIN3 round 1 feedback"),
        "{}",
        rewrites[1]
    );
    assert!(
        rewrites[2].contains("WIN3 round 2 feedback"),
        "{}",
        rewrites[2]
    );
    for rw in &rewrites {
        assert!(rw.contains("Original instruction: WIN3: List three uses of copper."));
        assert!(
            !rw.contains("(revised r"),
            "every round starts from round 0: {rw}"
        );
    }

    // All rounds lost: marked, not proposed (paper), the lost revision kept for review.
    let r = row(side, "LOSE");
    assert_eq!(s(&r["state"]), "all_rounds_lost");
    assert_eq!(r["proposed"], AnyValue::Boolean(false));
    assert_eq!(r["rounds_used"], AnyValue::Int64(3));
    assert!(s(&r["instruction"]).contains("(revised r3)"));

    // Unreadable verdict: asked 1 + 2 more times, then marked; never a win.
    let r = row(side, "BADVERDICT");
    assert_eq!(s(&r["state"]), "review_unparsed");
    assert_eq!(s(&r["status"]), "unparsed");
    assert_eq!(r["proposed"], AnyValue::Boolean(false));
    assert_eq!(
        s(&r["instruction"]),
        "BADVERDICT: Give a synonym for quick."
    );
    assert_eq!(
        asked(&run.bodies, "impartial evaluator", "BADVERDICT").len(),
        3
    );
    let t = trace(&r);
    assert_eq!(t[0]["review_raw_ab"], "I would say B is nicer overall.");
    assert!(t[0]["note"].as_str().unwrap().contains("3 attempts"));

    // A failed call: the row is marked failed, keeps its original, and the error is kept.
    let r = row(side, "FAIL");
    assert_eq!(
        (s(&r["state"]), s(&r["status"])),
        ("failed".into(), "failed".into())
    );
    assert_eq!(s(&r["instruction"]), "FAIL: Translate hello into French.");
    assert_eq!(s(&r["output"]), "bonjour");
    assert!(s(&r["error"]).contains("HTTP 500"), "{}", s(&r["error"]));
    assert!(s(&r["error"]).contains("backbone crashed"));

    // The orders disagree in round 1: no win, another round; counted.
    let r = row(side, "DISAGREE");
    assert_eq!(r["order_disagreements"], AnyValue::Int64(1));
    assert_eq!(r["rounds_used"], AnyValue::Int64(2));
    let t = trace(&r);
    assert_eq!(t[0]["orders_disagree"], true);
    // Round 2 hears from the reading that preferred the original.
    let rw = asked(
        &run.bodies,
        "You improve instruction-tuning data",
        "DISAGREE",
    );
    assert!(
        rw[1].contains("(in this comparison the revision was shown as A and the original as B) DISAGREE round 1 feedback"),
        "{}",
        rw[1]
    );
    assert_eq!(t[0]["winner"], "A");
    assert_eq!(t[1]["winner"], "B");
    assert_eq!(s(&r["state"]), "revised");

    // No readable rewrite in any round: unchanged, original output kept.
    let r = row(side, "GARBLED");
    assert_eq!(s(&r["state"]), "unchanged");
    assert_eq!(r["rounds_used"], AnyValue::Int64(3));
    assert_eq!(s(&r["output"]), "4");
    assert!(
        trace(&r)
            .iter()
            .all(|x| x["instruction"].is_null() && !x["note"].is_null())
    );

    // The probe role answered the probes, the strong role everything else.
    for b in &run.bodies {
        let model = serde_json::from_str::<serde_json::Value>(b).unwrap()["model"].clone();
        let probe = system_text(b).contains("helpful assistant");
        assert_eq!(model, if probe { "backbone-8b" } else { "strong-70b" });
    }
    assert!(run.stderr.contains("orders disagreed 1×"), "{}", run.stderr);
}

#[test]
fn compat_switches_reproduce_the_released_code() {
    let rows = &[ROWS[0], ROWS[2], ROWS[3], ROWS[6]];
    let (_dir, _ws, run) = run_refine(rows, "preset = \"compat\"");
    let side = &run.side;
    // Empty reference answer everywhere (§5 item 3).
    let eval = asked(&run.bodies, "strict, objective evaluator", "WIN1");
    assert!(eval[0].contains("Reference Answer: \n"), "{}", eval[0]);
    // One order only.
    assert_eq!(asked(&run.bodies, "impartial evaluator", "WIN1").len(), 1);
    // A revision that lost every round is still proposed (§5 item 4, compat).
    let r = row(side, "LOSE");
    assert_eq!(s(&r["state"]), "all_rounds_lost");
    assert_eq!(r["proposed"], AnyValue::Boolean(true));
    // An unreadable verdict accepts the revision, asked once (§5 item 5).
    let r = row(side, "BADVERDICT");
    assert_eq!(s(&r["state"]), "revised");
    assert_eq!(
        asked(&run.bodies, "impartial evaluator", "BADVERDICT").len(),
        1
    );
    // Nothing revised: the released code emits an empty output.
    let r = row(side, "GARBLED");
    assert_eq!(
        (s(&r["state"]), s(&r["output"])),
        ("unchanged".into(), String::new())
    );
}

#[test]
fn a_rerun_asks_nothing_again() {
    let dir = tempfile::tempdir().unwrap();
    let ws = import(dir.path(), &ROWS[..3]);
    let rt = runtime();
    let rewrites = Arc::new(Mutex::new(HashMap::new()));
    let r = rewrites.clone();
    let stub = server(&rt, move |body| respond(body, &r));
    let recipe = recipe(dir.path(), &stub.url, "");
    run_recipe_json(&ws, &recipe);
    let first = stub.bodies.lock().unwrap().len();
    let before = read(&ws.join("sidecars/aido.refine.parquet"));
    let (summary, _) = run_recipe_json(&ws, &recipe);
    assert_eq!(
        stub.bodies.lock().unwrap().len(),
        first,
        "everything came from the cache"
    );
    assert_eq!(summary["cached"], 3);
    // The same results; only the request and token counts differ (none were sent).
    let usage = ["aido.refine.requests", "aido.refine.tokens"];
    let after = read(&ws.join("sidecars/aido.refine.parquet")).drop_many(usage);
    assert!(after.equals_missing(&before.drop_many(usage)));
}

#[test]
fn a_revision_that_drifts_from_the_original_is_flagged() {
    let rows = &[
        ROWS[0],
        (
            "DRIFT",
            "DRIFT: Explain how compound interest grows a savings account.",
            "Interest is added to the balance, so later interest is earned on earlier interest.",
        ),
    ];
    let models = models();
    let extra = format!(
        "consistency_model = \"minilm\"\n\n[model.minilm]\npath = \"{}\"\n",
        models.join("minilm").display()
    );
    let (_dir, _ws, run) = run_refine(rows, &extra);
    let drift = row(&run.side, "DRIFT");
    let keep = row(&run.side, "WIN1");
    let f = |v: &AnyValue| match v {
        AnyValue::Float64(x) => *x,
        other => panic!("{other:?}"),
    };
    assert_eq!(drift["drifted"], AnyValue::Boolean(true));
    assert_eq!(keep["drifted"], AnyValue::Boolean(false));
    assert!(f(&drift["instruction_similarity"]) < 0.5);
    assert!(
        f(&keep["instruction_similarity"]) > 0.8,
        "{:?}",
        keep["instruction_similarity"]
    );
    assert!(f(&keep["output_similarity"]) > 0.8);
    assert!(run.stderr.contains("drifted 1"), "{}", run.stderr);
}
