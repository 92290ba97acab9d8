//! `ds2.rate` reply parsing and score compression, as in ds2.md §3.1.4–§3.1.5.
//!
//! The rater answers with `{"Rarity", "Complexity", "Informativeness", "Overall rating"}`
//! (1–10 each). The released code takes the *last* balanced `{…}` span, decodes it, and
//! applies Python `int()` to each key; any failure becomes `[0,0,0,0]`. gleaner keeps
//! that value for compatibility but also reports the failure, so unparsed rows are
//! visible and can be re-run instead of silently scoring 0 (`paper` preset).

use serde::Serialize;

use crate::judge::parse::{ParsedBy, balanced_objects, extract_json, py_int};

pub const KEYS: [&str; 4] = ["Rarity", "Complexity", "Informativeness", "Overall rating"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rating {
    pub rarity: i64,
    pub complexity: i64,
    pub informativeness: i64,
    pub overall: i64,
}

/// How a reply is read: exactly like the reference code, or with gleaner's cascade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseMode {
    /// Last balanced `{…}` only; a decode error is a failure (`compat`).
    Compat,
    /// Whole reply, fenced block, then the last balanced `{…}` that decodes (`paper`).
    Cascade,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parsed {
    pub rating: Rating,
    pub by: ParsedBy,
}

/// Parse a rater reply. `Err` carries why; the caller stores it with the raw reply.
pub fn parse_rating(reply: &str, mode: ParseMode) -> Result<Parsed, String> {
    let (obj, by) = match mode {
        ParseMode::Compat => {
            let last = balanced_objects(reply)
                .pop()
                .ok_or_else(|| "no JSON object in the reply".to_string())?;
            match serde_json::from_str::<serde_json::Value>(last) {
                Ok(serde_json::Value::Object(m)) => (m, ParsedBy::Balanced),
                Ok(_) => return Err("the last {…} is not a JSON object".into()),
                Err(e) => return Err(format!("the last {{…}} is not valid JSON: {e}")),
            }
        }
        ParseMode::Cascade => {
            extract_json(reply).ok_or_else(|| "no JSON object in the reply".to_string())?
        }
    };
    let mut v = [0i64; 4];
    for (slot, key) in v.iter_mut().zip(KEYS) {
        let value = obj
            .get(key)
            .ok_or_else(|| format!("missing key \"{key}\""))?;
        *slot = py_int(value).ok_or_else(|| format!("\"{key}\" is not an integer: {value}"))?;
        // The reference keeps any integer (compress clamps it); a 78 on a 1–10 scale is
        // not a rating, so the cascade calls it unparsed.
        if mode == ParseMode::Cascade && !(1..=10).contains(slot) {
            return Err(format!("\"{key}\" = {slot} is outside 1–10"));
        }
    }
    Ok(Parsed {
        rating: Rating {
            rarity: v[0],
            complexity: v[1],
            informativeness: v[2],
            overall: v[3],
        },
        by,
    })
}

/// The 6-class compressed score: `clamp(overall, 4, 9) − 4`; unrated (0) → 0.
pub fn compress(overall: i64) -> u8 {
    (overall.clamp(4, 9) - 4) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "The sample is a common question.\n{\"Rarity\": 3, \"Complexity\": \"4\", \"Informativeness\": 6.9, \"Overall rating\": 7}";

    #[test]
    fn out_of_scale_ratings_are_unparsed_in_the_cascade_and_kept_in_compat() {
        let reply =
            "{\"Rarity\": 3, \"Complexity\": 4, \"Informativeness\": 6, \"Overall rating\": 78}";
        let err = parse_rating(reply, ParseMode::Cascade).unwrap_err();
        assert!(err.contains("78 is outside 1–10"), "{err}");
        let p = parse_rating(reply, ParseMode::Compat).unwrap();
        assert_eq!((p.rating.overall, compress(p.rating.overall)), (78, 5));
    }

    #[test]
    fn reads_the_four_scores_with_python_int_rules() {
        let p = parse_rating(GOOD, ParseMode::Compat).unwrap();
        assert_eq!(
            p.rating,
            Rating {
                rarity: 3,
                complexity: 4,
                informativeness: 6,
                overall: 7
            }
        );
        assert_eq!(p.by, ParsedBy::Balanced);
    }

    #[test]
    fn last_object_wins_even_with_nested_braces() {
        let reply = "Example format: {\"Rarity\": 1, \"Complexity\": 1, \"Informativeness\": 1, \"Overall rating\": 1}\nMy answer: {\"Rarity\": 8, \"Complexity\": 9, \"Informativeness\": 7, \"Overall rating\": 9, \"notes\": {\"k\": 1}}";
        let p = parse_rating(reply, ParseMode::Compat).unwrap();
        assert_eq!(p.rating.overall, 9);
    }

    #[test]
    fn failures_name_the_reason() {
        let missing = "{\"Rarity\": 3, \"Complexity\": 4, \"Overall rating\": 7}";
        assert_eq!(
            parse_rating(missing, ParseMode::Compat).unwrap_err(),
            "missing key \"Informativeness\""
        );
        let float_string = "{\"Rarity\": 3, \"Complexity\": 4, \"Informativeness\": 5, \"Overall rating\": \"7.5\"}";
        assert!(
            parse_rating(float_string, ParseMode::Compat)
                .unwrap_err()
                .contains("not an integer")
        );
        assert!(
            parse_rating("I refuse.", ParseMode::Compat)
                .unwrap_err()
                .contains("no JSON object")
        );
    }

    #[test]
    fn cascade_recovers_what_compat_rejects() {
        // A trailing brace in prose breaks the reference's "last {…}" rule.
        let reply = "```json\n{\"Rarity\": 2, \"Complexity\": 3, \"Informativeness\": 4, \"Overall rating\": 5}\n```\nNote: scores use the {1-10} scale";
        assert!(parse_rating(reply, ParseMode::Compat).is_err());
        let p = parse_rating(reply, ParseMode::Cascade).unwrap();
        assert_eq!((p.rating.overall, p.by), (5, ParsedBy::Fenced));
    }

    #[test]
    fn compression_table() {
        let table: Vec<u8> = (0..=10).map(compress).collect();
        assert_eq!(table, vec![0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 5]);
    }

    /// The real DS2 rater files hold already-compressed scores 0..5 (ds2.md §7.1);
    /// compression must be a fixed point on them and reproduce their histogram.
    #[test]
    fn real_rater_scores_are_fixed_points_of_compression() {
        // shared/ sits beside the repository (CI lays it there); GLEANER_SHARED overrides.
        let shared = std::env::var_os("GLEANER_SHARED")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
        let path = shared.join("data/ds2_rater_scores/gpt-4o-mini.txt");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (set GLEANER_SHARED to the shared/ folder)",
                path.display()
            )
        });
        let mut hist = [0usize; 6];
        for line in text.lines() {
            let s: i64 = line.trim().parse().unwrap();
            // A compressed c in 1..=5 came from overall = c + 4; 0 came from ≤ 4.
            let overall = if s == 0 { 4 } else { s + 4 };
            assert_eq!(i64::from(compress(overall)), s);
            hist[s as usize] += 1;
        }
        assert_eq!(hist, [18_626, 44_401, 86_132, 87_975, 59_969, 3_829]);
    }
}

// ---------------------------------------------------------------------------------
// The stage: how a row becomes a question and a reply becomes columns.
// ---------------------------------------------------------------------------------

use super::judging::{Cell, ColType, JudgeStage, Judged, RowStatus};
use crate::data::record::Record;

/// `ds2.rate` settings (ds2.md §3.1.3, §8). `compat` mirrors the released code.
#[derive(Debug, Clone, PartialEq)]
pub struct Ds2Rate {
    pub mode: ParseMode,
    /// Ask the server for JSON matching the four keys (`response_format`).
    pub structured: bool,
    /// How this server spells schema-constrained output.
    pub schema_style: SchemaStyle,
    /// Store unparsed/failed rows as `[0,0,0,0]` like the reference code.
    pub unparsed_as_zero: bool,
}

impl Ds2Rate {
    pub fn preset(compat: bool) -> Self {
        Self {
            mode: if compat {
                ParseMode::Compat
            } else {
                ParseMode::Cascade
            },
            structured: !compat,
            schema_style: SchemaStyle::JsonSchema,
            unparsed_as_zero: compat,
        }
    }

    /// (temperature, max_tokens) of the preset.
    pub fn sampling(compat: bool) -> (f64, u32) {
        (if compat { 1.2 } else { 0.0 }, 128)
    }

    fn scores(&self, r: Option<Rating>) -> Vec<Cell> {
        let r = r.or(self.unparsed_as_zero.then_some(Rating {
            rarity: 0,
            complexity: 0,
            informativeness: 0,
            overall: 0,
        }));
        let f = |get: fn(&Rating) -> i64| Cell::Int(r.as_ref().map(get));
        vec![
            f(|x| x.rarity),
            f(|x| x.complexity),
            f(|x| x.informativeness),
            f(|x| x.overall),
            f(|x| i64::from(compress(x.overall))),
        ]
    }
}

impl JudgeStage for Ds2Rate {
    fn columns(&self) -> Vec<(String, ColType)> {
        [
            ("rarity", ColType::Int),
            ("complexity", ColType::Int),
            ("informativeness", ColType::Int),
            ("overall", ColType::Int),
            ("score", ColType::Int),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect()
    }

    fn vars(&self, record: &Record) -> serde_json::Value {
        serde_json::json!({"conversation": serialize_conversation(record)})
    }

    fn response_format(&self) -> Option<serde_json::Value> {
        self.structured.then(|| response_schema(self.schema_style))
    }

    fn judge(&self, reply: &str) -> Judged {
        match parse_rating(reply, self.mode) {
            Ok(p) => Judged {
                status: RowStatus::Ok,
                error: None,
                parsed_by: Some(p.by),
                values: self.scores(Some(p.rating)),
            },
            Err(e) => Judged {
                status: RowStatus::Unparsed,
                error: Some(e),
                parsed_by: None,
                values: self.scores(None),
            },
        }
    }

    fn on_failure(&self) -> Vec<Cell> {
        self.scores(None)
    }
}

/// The two spellings of schema-constrained output in OpenAI-compatible servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaStyle {
    /// `{"type": "json_schema", "json_schema": {"schema": …}}`: OpenAI, vLLM, SGLang.
    #[default]
    JsonSchema,
    /// `{"type": "json_object", "schema": …}`: llama-cpp-python's server.
    JsonObject,
}

impl SchemaStyle {
    /// `response_format` asking for JSON that follows `schema`.
    pub fn wrap(self, name: &str, schema: serde_json::Value) -> serde_json::Value {
        match self {
            SchemaStyle::JsonSchema => serde_json::json!({
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema}
            }),
            SchemaStyle::JsonObject => serde_json::json!({"type": "json_object", "schema": schema}),
        }
    }
}

/// The JSON schema the rater's reply must follow, as `response_format`.
pub fn response_schema(style: SchemaStyle) -> serde_json::Value {
    let int = serde_json::json!({"type": "integer", "minimum": 1, "maximum": 10});
    let schema = serde_json::json!({
        "type": "object",
        "properties": {KEYS[0]: int, KEYS[1]: int, KEYS[2]: int, KEYS[3]: int},
        "required": KEYS,
        "additionalProperties": false
    });
    style.wrap("ds2_rating", schema)
}

/// `### role: content` lines, as the reference serializes a conversation (§3.1.1).
pub fn serialize_conversation(r: &Record) -> String {
    r.messages
        .iter()
        .map(|m| format!("### {}: {}\n", m.role, m.content))
        .collect()
}
