//! Tolerant parsing of LLM judge replies: the fallback cascade used when a server
//! cannot constrain its output (ANCHORS.md §5.2; ds2.md §3.1.4).
//!
//! Cascade: fenced ```json blocks → the last balanced `{…}` that decodes → a
//! method's own pattern (e.g. "Score: 9"). Every step reports which rule matched, so a
//! row keeps not only its value but how it was read.

use serde_json::{Map, Value};

/// Which rule of the cascade produced a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParsedBy {
    /// The whole reply was a JSON object.
    Json,
    /// A ```json fenced block.
    Fenced,
    /// The last balanced `{…}` span that decodes as an object.
    Balanced,
    /// A labelled number in prose ("Score: 9").
    Pattern,
}

/// Top-level balanced `{…}` spans, left to right. Like the reference code's recursive
/// regex `\{(?:[^{}]|(?R))*\}`, braces inside strings are counted too.
pub fn balanced_objects(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, ch) in text.char_indices() {
        match ch {
            '{' => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(&text[start..=i]);
                }
            }
            _ => {}
        }
    }
    out
}

/// Contents of ``` fenced blocks whose info string is empty or `json`.
pub fn fenced_blocks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let Some(nl) = after.find('\n') else { break };
        let info = after[..nl].trim().to_lowercase();
        let body = &after[nl + 1..];
        let Some(close) = body.find("```") else { break };
        if info.is_empty() || info == "json" || info == "jsonc" {
            out.push(body[..close].trim());
        }
        rest = &body[close + 3..];
    }
    out
}

fn as_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The JSON object a reply carries, by the cascade's JSON rules.
pub fn extract_json(reply: &str) -> Option<(Map<String, Value>, ParsedBy)> {
    if let Some(m) = as_object(reply.trim()) {
        return Some((m, ParsedBy::Json));
    }
    if let Some(m) = fenced_blocks(reply).into_iter().rev().find_map(as_object) {
        return Some((m, ParsedBy::Fenced));
    }
    balanced_objects(reply)
        .into_iter()
        .rev()
        .find_map(as_object)
        .map(|m| (m, ParsedBy::Balanced))
}

/// Python's `int()` as the reference parsers apply it to a decoded JSON value:
/// `7` and `"7"` work, the float `7.5` truncates to 7, the string `"7.5"` fails.
pub fn py_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.trunc() as i64)
        }),
        Value::String(s) => {
            let t = s.trim().replace('_', "");
            t.parse::<i64>().ok()
        }
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// A number after one of `labels` in prose: "**Score: 9**", "Overall rating - 7/10",
/// "score: 5.0 (Excellent)". Case-insensitive; markdown emphasis is ignored. The last
/// labelled number wins, as judges often restate the final score at the end.
pub fn labelled_number(reply: &str, labels: &[&str]) -> Option<f64> {
    let clean: String = reply.chars().filter(|c| *c != '*' && *c != '_').collect();
    // ASCII lowercase keeps byte offsets equal between `lower` and `clean`.
    let lower = clean.to_ascii_lowercase();
    let mut found = None;
    for label in labels {
        let label = label.to_ascii_lowercase();
        let mut from = 0;
        while let Some(pos) = lower[from..].find(&label) {
            let after = from + pos + label.len();
            let tail = &clean[after..];
            let tail = tail.trim_start_matches(|c: char| {
                c.is_whitespace() || matches!(c, ':' | '=' | '-' | '#')
            });
            let num: String = tail
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let num = num.trim_end_matches('.');
            if let Ok(v) = num.parse::<f64>() {
                found = Some((after, v));
            }
            from = after;
        }
    }
    found.map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn last_balanced_object_wins_and_nesting_is_kept() {
        let reply = "First {\"a\": 1} then {\"b\": {\"c\": 2}} done";
        assert_eq!(
            balanced_objects(reply),
            vec!["{\"a\": 1}", "{\"b\": {\"c\": 2}}"]
        );
        let (m, by) = extract_json(reply).unwrap();
        assert_eq!(by, ParsedBy::Balanced);
        assert_eq!(m["b"]["c"], 2);
    }

    #[test]
    fn json_inside_prose_and_fences() {
        let reply = "Sure! Here is my evaluation:\n```json\n{\"Overall rating\": 8}\n```\nHope it helps {not json}";
        let (m, by) = extract_json(reply).unwrap();
        assert_eq!(by, ParsedBy::Fenced);
        assert_eq!(m["Overall rating"], 8);
        let (m, by) = extract_json("  {\"x\": [1, 2]}  ").unwrap();
        assert_eq!((by, &m["x"]), (ParsedBy::Json, &json!([1, 2])));
    }

    #[test]
    fn two_objects_where_the_last_does_not_decode_falls_back_to_the_earlier() {
        let reply = "{\"score\": 4} and then {score: five}";
        let (m, _) = extract_json(reply).unwrap();
        assert_eq!(m["score"], 4);
        assert!(extract_json("no braces at all").is_none());
        assert!(extract_json("{unclosed").is_none());
    }

    #[test]
    fn python_int_semantics() {
        assert_eq!(py_int(&json!(7)), Some(7));
        assert_eq!(py_int(&json!("7")), Some(7));
        assert_eq!(py_int(&json!(" 7 ")), Some(7));
        assert_eq!(py_int(&json!(7.5)), Some(7));
        assert_eq!(py_int(&json!(-2.9)), Some(-2));
        assert_eq!(py_int(&json!("7.5")), None);
        assert_eq!(py_int(&json!("seven")), None);
        assert_eq!(py_int(&json!(null)), None);
        assert_eq!(py_int(&json!([7])), None);
    }

    #[test]
    fn labelled_numbers_in_real_reply_shapes() {
        assert_eq!(labelled_number("**Score: 9**", &["score"]), Some(9.0));
        assert_eq!(
            labelled_number("Score: 5.0 (Excellent)", &["score"]),
            Some(5.0)
        );
        assert_eq!(
            labelled_number("Overall rating - 7/10.", &["overall rating"]),
            Some(7.0)
        );
        assert_eq!(
            labelled_number(
                "Score: 3 at first, but on reflection the final score: 6.",
                &["score"]
            ),
            Some(6.0)
        );
        assert_eq!(labelled_number("no score given", &["score"]), None);
        assert_eq!(labelled_number("Score: N/A", &["score"]), None);
    }
}
