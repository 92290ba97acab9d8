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

/// A local ONNX model (`[model.<name>]`): a directory with model.onnx + tokenizer.json.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeModel {
    /// Relative to the recipe; default `$GLEANER_MODELS/<name>` (or the cache's models/,
    /// where `make models` exports minilm and smollm2).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `auto` (CUDA when it registers, else CPU), `cpu`, `cuda` or `cuda:N`.
    #[serde(default)]
    pub device: Option<String>,
    /// Intra-op threads (default: one per core).
    #[serde(default)]
    pub threads: Option<usize>,
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Embeddings on the CPU: sessions run side by side, one thread each (default: one
    /// per thread for a model up to 256 MB, else 1); each holds its own weights.
    #[serde(default)]
    pub lanes: Option<usize>,
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Embeddings: `mean` (default) or `cls`.
    #[serde(default)]
    pub pooling: Option<crate::models::embedder::Pooling>,
}

/// Which text of a sample a model stage reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextField {
    #[default]
    Instruction,
    /// Instruction and input, separated by a blank line.
    InstructionInput,
    /// Every turn, as `role: content` lines.
    Conversation,
    Response,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub id: String,
    /// Sidecar and column prefix (default: the stage id). Lets one recipe run a stage
    /// twice, e.g. two rubrics.
    #[serde(default)]
    pub name: Option<String>,
    /// The judge role (`[llm.<role>]`) a judge stage asks; `score.ppl` may use one
    /// instead of a local model (completions with echo + logprobs).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The local model (`[model.<name>]`) of `embed` and `score.ppl`.
    #[serde(default)]
    pub model: Option<String>,
    /// `embed`: which text to embed (default instruction).
    #[serde(default)]
    pub text: Option<TextField>,
    /// `score.ppl`: the prompt the answer is scored after: `alpaca` (default), `wiz`, or
    /// a template with `{instruction}` and `{input}`.
    #[serde(default)]
    pub prompt_template: Option<String>,
    /// `score.ppl`: the context of the answer scored alone (default `### Response:\n`).
    #[serde(default)]
    pub alone_prefix: Option<String>,
    /// `score.ppl` with an endpoint: `next_token` (OpenAI, vLLM; default) or `shifted`
    /// (llama-cpp-python, which reports echoed log-probabilities one position late).
    #[serde(default)]
    pub logprob_alignment: Option<crate::models::causal::LogprobAlignment>,
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
    /// `aido.refine`: the small backbone model that answers instructions (default: the
    /// stage's `endpoint`, the strong judge).
    #[serde(default)]
    pub probe_endpoint: Option<String>,
    /// `aido.refine`: rewrite rounds at most (default 3).
    #[serde(default)]
    pub max_rounds: Option<u32>,
    /// `aido.refine`: ask each comparison in both orders; a win needs both (paper: on).
    #[serde(default)]
    pub swap_review_order: Option<bool>,
    /// `aido.refine`: a revision that lost every round is not proposed (paper: on).
    #[serde(default)]
    pub keep_original_if_all_lose: Option<bool>,
    /// `aido.refine`: pass an empty reference answer like the released code (compat: on).
    #[serde(default)]
    pub reference_bug_compat: Option<bool>,
    /// `aido.refine`: an unreadable verdict accepts the revision (compat: on).
    #[serde(default)]
    pub accept_on_review_parse_failure: Option<bool>,
    /// `aido.refine`: extra asks when a verdict cannot be read (paper: 2, compat: 0).
    #[serde(default)]
    pub review_retries: Option<u32>,
    /// `aido.refine`: the embedding model (`[model.<name>]`) of the consistency check.
    #[serde(default)]
    pub consistency_model: Option<String>,
    /// `aido.refine`: cosine below which a revision is flagged `drifted` (default 0.5).
    #[serde(default)]
    pub consistency_threshold: Option<f64>,
    /// `aido.merge`: the refine stage whose reviewed revisions it takes (default
    /// `aido.refine`).
    #[serde(default)]
    pub refine_stage: Option<String>,
    /// `aido.merge`: a rejected revision keeps the `original` row (default) or `drop`s it.
    #[serde(default)]
    pub on_rejected: Option<crate::review::merge::OnRejected>,
    /// `aido.merge`: revisions nobody reviewed: `refuse` to merge (default), keep the
    /// `original`, take the `revision`, or `drop` the row.
    #[serde(default)]
    pub on_pending: Option<crate::review::merge::OnPending>,
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
    pub model: BTreeMap<String, RecipeModel>,
    #[serde(default)]
    pub stage: Vec<StageSpec>,
    /// Folder of the recipe file: relative paths in it (prompts, commands) start here.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// Stages that ask an LLM judge, and stages that run a local model.
pub const JUDGE_STAGES: &[&str] = &["ds2.rate", "aido.classify", "judge.rubric"];
pub const MODEL_STAGES: &[&str] = &["embed", "score.ppl"];
/// The refinement loop (asks two roles) and the merge that follows review.
pub const REFINE_STAGES: &[&str] = &["aido.refine", "aido.merge"];

impl StageSpec {
    pub fn is_model_stage(&self) -> bool {
        MODEL_STAGES.contains(&self.id.as_str())
    }
}

impl Recipe {
    /// The options only `aido.refine` / `aido.merge` take, and the tables they name.
    fn validate_refine(&self, s: &StageSpec) -> Result<(), String> {
        let refine_only = [
            ("probe_endpoint", s.probe_endpoint.is_some()),
            ("max_rounds", s.max_rounds.is_some()),
            ("swap_review_order", s.swap_review_order.is_some()),
            (
                "keep_original_if_all_lose",
                s.keep_original_if_all_lose.is_some(),
            ),
            ("reference_bug_compat", s.reference_bug_compat.is_some()),
            (
                "accept_on_review_parse_failure",
                s.accept_on_review_parse_failure.is_some(),
            ),
            ("review_retries", s.review_retries.is_some()),
            ("consistency_model", s.consistency_model.is_some()),
            ("consistency_threshold", s.consistency_threshold.is_some()),
        ];
        let merge_only = [
            ("refine_stage", s.refine_stage.is_some()),
            ("on_rejected", s.on_rejected.is_some()),
            ("on_pending", s.on_pending.is_some()),
        ];
        for (only, id, keys) in [
            ("aido.refine", &s.id, &refine_only[..]),
            ("aido.merge", &s.id, &merge_only[..]),
        ] {
            if let Some((key, _)) = keys.iter().find(|(_, set)| *set).filter(|_| id != only) {
                return Err(format!("stage `{id}` takes no {key} (only {only} does)"));
            }
        }
        if let Some(p) = s
            .probe_endpoint
            .as_deref()
            .filter(|p| !self.llm.contains_key(*p))
        {
            return Err(format!(
                "stage `{}` names probe_endpoint `{p}`, which has no [llm.{p}] table",
                s.id
            ));
        }
        if let Some(m) = s
            .consistency_model
            .as_deref()
            .filter(|m| !self.model.contains_key(*m))
        {
            return Err(format!(
                "stage `{}` names consistency_model `{m}`, which has no [model.{m}] table",
                s.id
            ));
        }
        if s.max_rounds == Some(0) {
            return Err(format!("stage `{}`: max_rounds must be at least 1", s.id));
        }
        if s.id == "aido.merge" && s.endpoint.is_some() {
            return Err("stage `aido.merge` asks no judge; it takes no endpoint".into());
        }
        Ok(())
    }

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
            if !JUDGE_STAGES.contains(&s.id.as_str())
                && !s.is_model_stage()
                && !REFINE_STAGES.contains(&s.id.as_str())
            {
                return Err(format!(
                    "unknown stage `{}` (available: {}, {}, {})",
                    s.id,
                    JUDGE_STAGES.join(", "),
                    MODEL_STAGES.join(", "),
                    REFINE_STAGES.join(", ")
                ));
            }
            self.validate_refine(s)?;
            match (&s.endpoint, &s.model, s.id.as_str()) {
                (Some(e), _, _) if !self.llm.contains_key(e) => {
                    return Err(format!(
                        "stage `{}` names endpoint `{e}`, which has no [llm.{e}] table",
                        s.id
                    ));
                }
                (_, Some(m), _) if !self.model.contains_key(m) => {
                    return Err(format!(
                        "stage `{}` names model `{m}`, which has no [model.{m}] table",
                        s.id
                    ));
                }
                (None, _, "aido.refine") => {
                    return Err(
                        "stage `aido.refine` needs endpoint = \"<role>\" (the strong judge)".into(),
                    );
                }
                (_, Some(_), "aido.refine" | "aido.merge") => {
                    return Err(format!(
                        "stage `{}` takes no model (aido.refine: consistency_model)",
                        s.id
                    ));
                }
                (None, _, id) if JUDGE_STAGES.contains(&id) => {
                    return Err(format!("stage `{id}` needs endpoint = \"<role>\""));
                }
                (_, None, "embed") => return Err("stage `embed` needs model = \"<name>\"".into()),
                (None, None, "score.ppl") | (Some(_), Some(_), "score.ppl") => {
                    return Err("stage `score.ppl` needs either model (local ONNX) or endpoint (a server's logprobs)".into());
                }
                (_, Some(_), id) if JUDGE_STAGES.contains(&id) => {
                    return Err(format!(
                        "stage `{id}` asks a judge; it takes endpoint, not model"
                    ));
                }
                _ => {}
            }
            if let Some(d) = self
                .model
                .get(s.model.as_deref().unwrap_or_default())
                .and_then(|m| m.device.as_deref())
            {
                crate::models::runtime::Device::parse(d)?;
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
