//! Readers for the strong judge's replies in `aido.refine` (shared/docs/methods/aido.md
//! §3.3: parse_refine, parse_review, parse_align, and §7 item 4).

use std::sync::LazyLock;

use regex::Regex;

/// `instruction_new:` / `input_new:` from a rewrite. `None` when either label is missing.
/// `$` without multi-line mode: the instruction runs to `\ninput_new:` or the very end.
pub fn parse_rewrite(reply: &str) -> Option<(String, String)> {
    static INSTR: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"instruction_new:\s*([\s\S]*?)(?:\r?\ninput_new:|\z)").expect("valid")
    });
    static INPUT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"input_new:\s*([\s\S]*)").expect("valid"));
    let instruction = INSTR.captures(reply)?.get(1)?.as_str().trim().to_string();
    let input = INPUT.captures(reply)?.get(1)?.as_str().trim().to_string();
    Some((instruction, input))
}

/// A comparison's winner as the judge named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Winner {
    A,
    B,
    Tie,
}

/// `{"winner": …, "explanation": …}`: the first such object (lazy up to the first `}`
/// after `"explanation"`), JSON-decoded. `None` when it is missing or does not decode,
/// or the winner is not A, B or Tie.
pub fn parse_review(reply: &str) -> Option<(Winner, String)> {
    static OBJ: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?s)\{\s*"winner"\s*:\s*.*?"explanation"\s*:\s*.*?\}"#).expect("valid")
    });
    let m = OBJ.find(reply)?;
    let v: serde_json::Value = serde_json::from_str(m.as_str()).ok()?;
    let winner = match v.get("winner")?.as_str()?.trim() {
        "A" => Winner::A,
        "B" => Winner::B,
        "Tie" | "tie" | "TIE" => Winner::Tie,
        _ => return None,
    };
    let explanation = match v.get("explanation")? {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some((winner, explanation))
}

/// `output_new:` from an alignment reply; a missing label or an empty value gives the
/// whole reply (trimmed), as the reference code does.
pub fn parse_align(reply: &str) -> String {
    static OUT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"output_new:\s*([\s\S]*)").expect("valid"));
    match OUT.captures(reply).and_then(|c| c.get(1)) {
        Some(m) if !m.as_str().trim().is_empty() => m.as_str().trim().to_string(),
        _ => reply.trim().to_string(),
    }
}

/// The 1–10 score at the head of an evaluation (`Score: 7`); `None` when absent or out
/// of range. The reference code never reads it; gleaner keeps it for the trace.
pub fn parse_eval_score(reply: &str) -> Option<i64> {
    static SCORE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)score\s*:\s*\**\s*(\d{1,2})\b").expect("valid"));
    let n: i64 = SCORE.captures(reply)?.get(1)?.as_str().parse().ok()?;
    (1..=10).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_stops_at_input_label_and_allows_empty_input() {
        let r =
            parse_rewrite("instruction_new: Sum the list.\nMore.\ninput_new: [1, 2]\n").unwrap();
        assert_eq!(r, ("Sum the list.\nMore.".into(), "[1, 2]".into()));
        let r = parse_rewrite("instruction_new: Say hi.\r\ninput_new:").unwrap();
        assert_eq!(r, ("Say hi.".into(), "".into()));
        assert_eq!(parse_rewrite("instruction_new: only this"), None);
        assert_eq!(parse_rewrite("input_new: x"), None);
        // `input_new:` mid-line is not the label boundary; `$` anchors at the end only.
        let r = parse_rewrite("instruction_new: a input_new: b").unwrap();
        assert_eq!(r.0, "a input_new: b");
        assert_eq!(r.1, "b");
    }

    #[test]
    fn review_takes_the_first_object_and_rejects_bad_winners() {
        let r = parse_review(
            "Sure.\n{\"winner\": \"B\", \"explanation\": \"clearer\"} trailing {\"x\": 1}",
        );
        assert_eq!(r, Some((Winner::B, "clearer".into())));
        assert_eq!(
            parse_review(r#"{"winner":"Tie","explanation":"same"}"#),
            Some((Winner::Tie, "same".into()))
        );
        assert_eq!(parse_review(r#"{"winner": "C", "explanation": "?"}"#), None);
        assert_eq!(parse_review("A is better"), None);
        // Lazy: stops at the first `}` after "explanation", so a brace inside the text
        // breaks the JSON, as in the reference parser.
        assert_eq!(
            parse_review(r#"{"winner": "A", "explanation": "use {x} here"}"#),
            None
        );
    }

    #[test]
    fn align_falls_back_to_the_whole_reply() {
        assert_eq!(parse_align("output_new: 42\n"), "42");
        assert_eq!(parse_align("output_new:   "), "output_new:");
        assert_eq!(parse_align("just text"), "just text");
    }

    #[test]
    fn evaluation_score() {
        assert_eq!(parse_eval_score("Score: 7\n\nEvaluation: ok"), Some(7));
        assert_eq!(parse_eval_score("**Score:** 10"), Some(10));
        assert_eq!(parse_eval_score("Score: 11"), None);
        assert_eq!(parse_eval_score("no score"), None);
    }
}
