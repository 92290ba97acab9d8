//! Agreement statistics against values computed independently by statsmodels (Fleiss'
//! kappa) and krippendorff (alpha, nominal and ordinal) on fixed vote tables, including
//! perfect agreement, all ties (undefined: None on both sides) and missing votes.
//! Fixture and the script that made it: tests/fixtures/agreement.json,
//! scripts/eval_agreement_fixtures.py.

use gleaner::eval::agreement::{self, Level, Table};

fn fixtures() -> serde_json::Map<String, serde_json::Value> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agreement.json"),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn table(v: &serde_json::Value) -> Table {
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().map(|x| x as u8))
                .collect()
        })
        .collect()
}

fn close(name: &str, what: &str, ours: Option<f64>, theirs: &serde_json::Value) {
    match (ours, theirs.as_f64()) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{name} {what}: {a} vs {b}"),
        (None, None) => {}
        (a, _) => panic!("{name} {what}: gleaner {a:?}, reference {theirs}"),
    }
}

#[test]
fn every_statistic_matches_the_python_reference_on_every_table() {
    let all = fixtures();
    assert!(all.len() >= 6);
    for (name, case) in &all {
        let t = table(&case["votes"]);
        close(
            name,
            "fleiss",
            agreement::fleiss_kappa(&t),
            &case["fleiss_kappa"],
        );
        close(
            name,
            "alpha nominal",
            agreement::krippendorff_alpha(&t, Level::Nominal),
            &case["alpha_nominal"],
        );
        close(
            name,
            "alpha ordinal",
            agreement::krippendorff_alpha(&t, Level::Ordinal),
            &case["alpha_ordinal"],
        );
        close(
            name,
            "pairwise",
            agreement::pairwise_agreement(&t),
            &case["pairwise_agreement"],
        );
        let with = agreement::agreement_with_majority(&t);
        for (k, v) in with.iter().enumerate() {
            close(
                name,
                "with majority",
                *v,
                &case["agreement_with_majority"][k],
            );
        }
        let majorities: Vec<Option<u64>> = (0..t[0].len())
            .map(|j| agreement::majority(&t, j).map(u64::from))
            .collect();
        let reference: Vec<Option<u64>> = case["majority"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64())
            .collect();
        assert_eq!(majorities, reference, "{name} majority");
    }
}

#[test]
fn the_edge_cases_are_the_ones_we_think() {
    let all = fixtures();
    let t = table(&all["perfect"]["votes"]);
    assert_eq!(agreement::fleiss_kappa(&t), Some(1.0));
    let t = table(&all["all_ties"]["votes"]);
    assert_eq!(agreement::krippendorff_alpha(&t, Level::Nominal), None);
    assert_eq!(agreement::pairwise_agreement(&t), Some(1.0));
    let t = table(&all["missing"]["votes"]);
    assert!(t.iter().flatten().any(Option::is_none));
}
