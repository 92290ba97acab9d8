//! `judge.rubric`: a team's own quality definition. The recipe names the criteria, the
//! integer scale and how the overall score is formed; the judge answers one JSON object
//! with an integer per criterion and a `reason`, constrained by a JSON schema built from
//! the rubric when the server supports it, else read with the tolerant cascade.
//!
//! ```toml
//! [[stage]]
//! id = "judge.rubric"
//! name = "rubric.support"          # sidecar / column prefix (default: the stage id)
//! endpoint = "rater"
//! [stage.rubric]
//! scale = [1, 5]
//! overall = "mean"                 # mean | min | max | a criterion's name
//! criteria = [
//!   { name = "accuracy", description = "Every claim in the answer is correct." },
//!   { name = "tone", description = "Polite and matches a support agent's voice." },
//! ]
//! ```

use serde::Deserialize;

use super::ds2_rate::{SchemaStyle, serialize_conversation};
use super::judging::{Cell, ColType, JudgeStage, Judged, RowStatus};
use crate::data::record::Record;
use crate::judge::parse::{extract_json, py_int};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rubric {
    pub criteria: Vec<Criterion>,
    #[serde(default = "default_scale")]
    pub scale: [i64; 2],
    #[serde(default = "default_overall")]
    pub overall: String,
}

fn default_scale() -> [i64; 2] {
    [1, 5]
}

fn default_overall() -> String {
    "mean".into()
}

/// Names the stage writes besides the criteria (plus the shared reply columns).
const OWN_COLUMNS: &[&str] = &["overall", "reason", "id"];

impl Rubric {
    /// Why the rubric cannot be used, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.criteria.is_empty() {
            return Err("the rubric has no criteria".into());
        }
        let [lo, hi] = self.scale;
        if lo >= hi {
            return Err(format!(
                "scale [{lo}, {hi}]: the first number must be smaller"
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.criteria {
            let ok = !c.name.is_empty()
                && c.name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-'));
            if !ok {
                return Err(format!(
                    "criterion name `{}`: use letters, digits, '_' and '-'",
                    c.name
                ));
            }
            if OWN_COLUMNS.contains(&c.name.as_str())
                || super::judging::REPLY_COLUMNS.contains(&c.name.as_str())
            {
                return Err(format!("criterion name `{}` is reserved", c.name));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(format!("criterion `{}` appears twice", c.name));
            }
        }
        if !matches!(self.overall.as_str(), "mean" | "min" | "max")
            && !self.criteria.iter().any(|c| c.name == self.overall)
        {
            return Err(format!(
                "overall = \"{}\": use mean, min, max or a criterion's name",
                self.overall
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JudgeRubric {
    pub rubric: Rubric,
    pub structured: bool,
    pub schema_style: SchemaStyle,
}

impl JudgeRubric {
    fn cells(&self, scores: Option<&[i64]>, reason: Option<String>) -> Vec<Cell> {
        let mut out: Vec<Cell> = match scores {
            Some(s) => s.iter().map(|v| Cell::Int(Some(*v))).collect(),
            None => self
                .rubric
                .criteria
                .iter()
                .map(|_| Cell::Int(None))
                .collect(),
        };
        out.push(Cell::Float(scores.map(|s| self.overall(s))));
        out.push(Cell::Str(reason));
        out
    }

    fn overall(&self, scores: &[i64]) -> f64 {
        match self.rubric.overall.as_str() {
            "mean" => scores.iter().sum::<i64>() as f64 / scores.len() as f64,
            "min" => *scores.iter().min().expect("criteria exist") as f64,
            "max" => *scores.iter().max().expect("criteria exist") as f64,
            name => {
                let k = self
                    .rubric
                    .criteria
                    .iter()
                    .position(|c| c.name == name)
                    .expect("validated");
                scores[k] as f64
            }
        }
    }
}

impl JudgeStage for JudgeRubric {
    fn columns(&self) -> Vec<(String, ColType)> {
        let mut cols: Vec<(String, ColType)> = self
            .rubric
            .criteria
            .iter()
            .map(|c| (c.name.clone(), ColType::Int))
            .collect();
        cols.push(("overall".into(), ColType::Float));
        cols.push(("reason".into(), ColType::Str));
        cols
    }

    fn vars(&self, record: &Record) -> serde_json::Value {
        serde_json::json!({
            "conversation": serialize_conversation(record),
            "criteria": self.rubric.criteria.iter()
                .map(|c| serde_json::json!({"name": c.name, "description": c.description}))
                .collect::<Vec<_>>(),
            "scale_min": self.rubric.scale[0],
            "scale_max": self.rubric.scale[1],
        })
    }

    fn response_format(&self) -> Option<serde_json::Value> {
        if !self.structured {
            return None;
        }
        let [lo, hi] = self.rubric.scale;
        let mut props = serde_json::Map::new();
        for c in &self.rubric.criteria {
            props.insert(
                c.name.clone(),
                serde_json::json!({"type": "integer", "minimum": lo, "maximum": hi}),
            );
        }
        props.insert("reason".into(), serde_json::json!({"type": "string"}));
        let mut required: Vec<&str> = self
            .rubric
            .criteria
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        required.push("reason");
        Some(self.schema_style.wrap(
            "rubric",
            serde_json::json!({
                "type": "object", "properties": props, "required": required,
                "additionalProperties": false
            }),
        ))
    }

    fn judge(&self, reply: &str) -> Judged {
        let unparsed = |error: String| Judged {
            status: RowStatus::Unparsed,
            error: Some(error),
            parsed_by: None,
            values: self.cells(None, None),
        };
        let Some((obj, by)) = extract_json(reply) else {
            return unparsed("no JSON object in the reply".into());
        };
        let [lo, hi] = self.rubric.scale;
        let mut scores = Vec::with_capacity(self.rubric.criteria.len());
        for c in &self.rubric.criteria {
            let Some(value) = obj.get(&c.name) else {
                return unparsed(format!("missing key \"{}\"", c.name));
            };
            match py_int(value) {
                Some(v) if (lo..=hi).contains(&v) => scores.push(v),
                Some(v) => {
                    return unparsed(format!("\"{}\" = {v} is outside [{lo}, {hi}]", c.name));
                }
                None => return unparsed(format!("\"{}\" is not an integer: {value}", c.name)),
            }
        }
        let reason = obj
            .get("reason")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        Judged {
            status: RowStatus::Ok,
            error: None,
            parsed_by: Some(by),
            values: self.cells(Some(&scores), reason),
        }
    }

    fn on_failure(&self) -> Vec<Cell> {
        self.cells(None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(overall: &str) -> JudgeRubric {
        JudgeRubric {
            rubric: Rubric {
                criteria: vec![
                    Criterion {
                        name: "accuracy".into(),
                        description: "correct".into(),
                    },
                    Criterion {
                        name: "tone".into(),
                        description: "polite".into(),
                    },
                ],
                scale: [1, 5],
                overall: overall.into(),
            },
            structured: true,
            schema_style: SchemaStyle::JsonSchema,
        }
    }

    #[test]
    fn scores_each_criterion_and_forms_the_overall() {
        let reply =
            "Here you go:\n```json\n{\"accuracy\": 4, \"tone\": \"2\", \"reason\": \"curt\"}\n```";
        let j = stage("mean").judge(reply);
        assert_eq!(j.status, RowStatus::Ok);
        assert_eq!(
            j.values,
            vec![
                Cell::Int(Some(4)),
                Cell::Int(Some(2)),
                Cell::Float(Some(3.0)),
                Cell::Str(Some("curt".into()))
            ]
        );
        assert_eq!(stage("min").judge(reply).values[2], Cell::Float(Some(2.0)));
        assert_eq!(
            stage("accuracy").judge(reply).values[2],
            Cell::Float(Some(4.0))
        );
    }

    #[test]
    fn out_of_scale_missing_or_prose_replies_are_unparsed() {
        for reply in [
            "{\"accuracy\": 9, \"tone\": 2}",
            "{\"accuracy\": 3}",
            "{\"accuracy\": \"good\", \"tone\": 2}",
            "Accuracy is fine, tone is fine.",
        ] {
            let j = stage("mean").judge(reply);
            assert_eq!(j.status, RowStatus::Unparsed, "{reply}");
            assert!(j.error.is_some());
            assert!(
                j.values
                    .iter()
                    .all(|c| matches!(c, Cell::Int(None) | Cell::Float(None) | Cell::Str(None)))
            );
        }
    }

    #[test]
    fn the_schema_follows_the_rubric() {
        let f = stage("mean").response_format().unwrap();
        let schema = &f["json_schema"]["schema"];
        assert_eq!(
            schema["required"],
            serde_json::json!(["accuracy", "tone", "reason"])
        );
        assert_eq!(schema["properties"]["tone"]["maximum"], 5);
    }

    #[test]
    fn bad_rubrics_are_refused_with_the_reason() {
        let mut r = stage("mean").rubric;
        r.overall = "median".into();
        assert!(r.validate().unwrap_err().contains("median"));
        let mut r = stage("mean").rubric;
        r.criteria[1].name = "overall".into();
        assert!(r.validate().unwrap_err().contains("reserved"));
        let mut r = stage("mean").rubric;
        r.scale = [5, 1];
        assert!(r.validate().is_err());
        let mut r = stage("mean").rubric;
        r.criteria[1].name = "accuracy".into();
        assert!(r.validate().unwrap_err().contains("twice"));
        assert!(stage("tone").rubric.validate().is_ok());
    }
}
