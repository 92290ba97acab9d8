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
