//! Recipes: TOML naming the judge endpoints by role (`[llm.<role>]`, or several
//! `[[llm.<role>]]` replicas to scale out) and the stages to run in order
//! (`[[stage]]`), each with its preset, parameters and which rows it reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ds2_rate::SchemaStyle;
use super::judge_rubric::Rubric;
use crate::error::{UserError, file_error, io_context};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeEndpoint {
    /// e.g. `http://gpu-1:8000/v1`. With `command`, may be left out (gleaner picks
    /// the port) or contain `{port}`.
    #[serde(default)]
    pub base_url: Option<String>,
    pub model: String,
    /// A local server gleaner starts, health-checks and stops (`{port}` is filled in).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub startup_timeout_s: Option<f64>,
    /// Label in logs and summaries (default: role, or role#k for replicas).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub timeout_s: Option<f64>,
    /// Share of the role's requests relative to the other replicas (default 1).
    #[serde(default)]
    pub weight: Option<f64>,
    /// Requests per second at most.
    #[serde(default)]
    pub rps: Option<f64>,
    /// Tokens (prompt + completion) per minute at most.
    #[serde(default)]
    pub tpm: Option<u64>,
    /// `json_schema` (OpenAI, vLLM, SGLang; default) or `json_object` (llama-cpp-python).
    #[serde(default)]
    pub schema_style: SchemaStyle,
}

/// `[llm.role]` (one endpoint) or `[[llm.role]]` (replicas).
#[derive(Debug, Clone)]
pub enum Replicas {
    One(RecipeEndpoint),
    Many(Vec<RecipeEndpoint>),
}

impl<'de> Deserialize<'de> for Replicas {
    // By hand rather than `untagged`, so a typo in a table gets the field's own error
    // instead of "did not match any variant".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| v.try_into::<RecipeEndpoint>())
                .collect::<Result<Vec<_>, _>>()
                .map(Replicas::Many)
                .map_err(|e| D::Error::custom(e.message())),
            v => v
                .try_into::<RecipeEndpoint>()
                .map(Replicas::One)
                .map_err(|e| D::Error::custom(e.message())),
        }
    }
}

impl Replicas {
    pub fn list(&self) -> &[RecipeEndpoint] {
        match self {
            Replicas::One(e) => std::slice::from_ref(e),
            Replicas::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub id: String,
    /// Sidecar and column prefix (default: the stage id). Lets one recipe run a stage
    /// twice, e.g. two rubrics.
    #[serde(default)]
    pub name: Option<String>,
    pub endpoint: String,
    #[serde(default)]
    pub preset: Option<String>,
    /// Filter expression choosing the rows this stage reads.
    #[serde(default)]
    pub rows: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    /// A user prompt template file instead of the built-in one.
    #[serde(default)]
    pub prompt: Option<PathBuf>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Attempts per request beyond the first.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Ask for schema-constrained JSON (`response_format`).
    #[serde(default)]
    pub structured: Option<bool>,
    /// `ds2.rate`: store unparsed/failed rows as `[0,0,0,0]` like the reference code.
    #[serde(default)]
    pub unparsed_as_zero: Option<bool>,
    /// `aido.classify`: exclude rows the judge says need no reasoning (default true).
    #[serde(default)]
    pub drop_non_reasoning: Option<bool>,
    /// `judge.rubric`: criteria, scale and overall.
    #[serde(default)]
    pub rubric: Option<Rubric>,
}

impl StageSpec {
    /// Sidecar name and column prefix.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    pub fn compat(&self) -> bool {
        self.preset.as_deref() == Some("compat")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    #[serde(default)]
    pub llm: BTreeMap<String, Replicas>,
    #[serde(default)]
    pub stage: Vec<StageSpec>,
    /// Folder of the recipe file: relative paths in it (prompts, commands) start here.
    #[serde(skip)]
    pub dir: PathBuf,
}

pub const STAGES: &[&str] = &["ds2.rate", "aido.classify", "judge.rubric"];

impl Recipe {
    pub fn load(path: &Path) -> Result<Self, UserError> {
        let text = std::fs::read_to_string(path).map_err(|e| io_context(path, e))?;
        let mut recipe: Recipe = toml::from_str(&text)
            .map_err(|e| file_error(path, format!("invalid recipe: {}", e.message())))?;
        recipe.dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        recipe.dir = recipe.dir.canonicalize().unwrap_or(recipe.dir);
        recipe.validate().map_err(|e| file_error(path, e))?;
        Ok(recipe)
    }

    fn validate(&self) -> Result<(), String> {
        if self.stage.is_empty() {
            return Err("the recipe has no [[stage]]".into());
        }
        for (role, replicas) in &self.llm {
            if replicas.list().is_empty() {
                return Err(format!("[llm.{role}] has no endpoint"));
            }
            for e in replicas.list() {
                if e.base_url.is_none() && e.command.is_none() {
                    return Err(format!(
                        "[llm.{role}] needs base_url, or a command gleaner starts"
                    ));
                }
                if e.weight.is_some_and(|w| !(w > 0.0 && w.is_finite())) {
                    return Err(format!("[llm.{role}] weight must be a positive number"));
                }
                if e.command.as_ref().is_some_and(|c| c.is_empty()) {
                    return Err(format!("[llm.{role}] command is empty"));
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.stage {
            if !STAGES.contains(&s.id.as_str()) {
                return Err(format!(
                    "unknown stage `{}` (available: {})",
                    s.id,
                    STAGES.join(", ")
                ));
            }
            if !self.llm.contains_key(&s.endpoint) {
                return Err(format!(
                    "stage `{}` names endpoint `{}`, which has no [llm.{}] table",
                    s.id, s.endpoint, s.endpoint
                ));
            }
            if let Some(p) = s
                .preset
                .as_deref()
                .filter(|p| !matches!(*p, "paper" | "compat"))
            {
                return Err(format!(
                    "stage `{}`: preset `{p}` is not \"paper\" or \"compat\"",
                    s.id
                ));
            }
            if !names.insert(s.name()) {
                return Err(format!(
                    "two stages write `{}`: give one of them another `name`",
                    s.name()
                ));
            }
            match (&s.rubric, s.id.as_str()) {
                (None, "judge.rubric") => {
                    return Err(
                        "stage `judge.rubric` needs a [stage.rubric] table with criteria".into(),
                    );
                }
                (Some(r), "judge.rubric") => r
                    .validate()
                    .map_err(|e| format!("stage `{}`: {e}", s.name()))?,
                (Some(_), id) => return Err(format!("stage `{id}` takes no rubric")),
                (None, _) => {}
            }
            if s.drop_non_reasoning.is_some() && s.id != "aido.classify" {
                return Err(format!("stage `{}` takes no drop_non_reasoning", s.id));
            }
            if s.unparsed_as_zero.is_some() && s.id != "ds2.rate" {
                return Err(format!("stage `{}` takes no unparsed_as_zero", s.id));
            }
        }
        Ok(())
    }
}
