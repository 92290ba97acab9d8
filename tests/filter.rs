//! The filter language against a real polars frame.

use gleaner::data::filter::{compile, matching_rows};
use polars::prelude::*;

fn frame() -> DataFrame {
    df!(
        "output" => ["short", "a much longer answer here", "Sorry, I can't", "ok"],
        "category" => ["open_qa", "open_qa", "chat", "math"],
        "n_turns" => [1u32, 3, 1, 2],
        "ds2.rate.score" => [Some(4.5), Some(2.0), None, Some(5.0)],
    )
    .unwrap()
}

fn rows(expr: &str) -> Vec<u32> {
    let df = frame();
    let f = compile(expr, &df.schema()).unwrap_or_else(|e| panic!("{expr}: {e}"));
    matching_rows(&df, &f).unwrap()
}

#[test]
fn the_documented_example() {
    assert_eq!(
        rows("len(output) < 20 and category == \"open_qa\""),
        vec![0]
    );
}

#[test]
fn operators_functions_and_precedence() {
    assert_eq!(rows("n_turns >= 2 or category == 'chat'"), vec![1, 2, 3]);
    assert_eq!(rows("not (n_turns >= 2 or category == 'chat')"), vec![0]);
    assert_eq!(rows("contains(lower(output), \"sorry\")"), vec![2]);
    assert_eq!(rows("output ~ \"^(?i)sorry\""), vec![2]);
    assert_eq!(
        rows("startswith(output, \"a \") or endswith(output, \"ok\")"),
        vec![1, 3]
    );
    assert_eq!(rows("`ds2.rate.score` >= 4.5"), vec![0, 3]);
    assert_eq!(rows("is_null(`ds2.rate.score`)"), vec![2]);
    assert_eq!(rows("n_turns * 2 - 1 == 5"), vec![1]);
    assert_eq!(rows("category != \"open_qa\" && n_turns < 2"), vec![2]);
}

#[test]
fn errors_point_at_the_problem() {
    let df = frame();
    let e = compile("len(outptu) < 3", &df.schema()).unwrap_err();
    assert!(e.message.contains("unknown column `outptu`"), "{e}");
    assert_eq!(e.at, 4);
    let e = compile("n_turns >", &df.schema()).unwrap_err();
    assert!(e.message.contains("ends too early"), "{e}");
    let e = compile("output ~ \"(\"", &df.schema()).unwrap_err();
    assert!(e.message.contains("bad regular expression"), "{e}");
    let e = compile("frob(output)", &df.schema()).unwrap_err();
    assert!(e.message.contains("unknown function `frob`"), "{e}");
    let e = compile("category == \"open", &df.schema()).unwrap_err();
    assert!(e.message.contains("unterminated string"), "{e}");
}
