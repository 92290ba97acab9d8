//! Record schemas and the column/tag map that turns them into canonical records.
//!
//! The map follows LLaMA-Factory's `dataset_info.json` entries (`formatting`, `columns`,
//! `tags`), so a user who already has one can reuse it; gleaner adds `columns.id`.
//! Detection fills the same structure, so an explicit map simply replaces it.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{UserError, file_error, io_context};

/// The record schema a dataset was detected (or declared) as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Alpaca,
    Dolly,
    Sharegpt,
    Messages,
    Preference,
    PromptCompletion,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Alpaca => "alpaca",
            Format::Dolly => "dolly",
            Format::Sharegpt => "sharegpt",
            Format::Messages => "messages",
            Format::Preference => "preference",
            Format::PromptCompletion => "prompt_completion",
        }
    }
}

/// How rows are shaped: flat prompt/response columns, or a list of turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Formatting {
    #[default]
    Alpaca,
    Sharegpt,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tags {
    pub role_tag: String,
    pub content_tag: String,
    pub user_tag: String,
    pub assistant_tag: String,
    pub system_tag: String,
    pub observation_tag: String,
    pub function_tag: String,
}

impl Default for Tags {
    fn default() -> Self {
        Self::sharegpt()
    }
}

impl Tags {
    pub fn sharegpt() -> Self {
        Self {
            role_tag: "from".into(),
            content_tag: "value".into(),
            user_tag: "human".into(),
            assistant_tag: "gpt".into(),
            system_tag: "system".into(),
            observation_tag: "observation".into(),
            function_tag: "function_call".into(),
        }
    }

    pub fn openai() -> Self {
        Self {
            role_tag: "role".into(),
            content_tag: "content".into(),
            user_tag: "user".into(),
            assistant_tag: "assistant".into(),
            system_tag: "system".into(),
            observation_tag: "tool".into(),
            function_tag: "function".into(),
        }
    }
}

/// A complete description of how to read one dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub format: Format,
    pub formatting: Formatting,
    pub columns: Columns,
    pub tags: Tags,
    /// Whether `columns.response` / `chosen` etc. must be present in every row.
    #[serde(default = "yes")]
    pub response_required: bool,
}

fn yes() -> bool {
    true
}

/// The user-written map file: every part optional, detection fills the rest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    pub formatting: Option<Formatting>,
    pub format: Option<Format>,
    #[serde(default)]
    pub columns: Option<Columns>,
    #[serde(default)]
    pub tags: Option<Tags>,
    /// LLaMA-Factory fields that describe where a file lives; accepted and ignored.
    pub file_name: Option<String>,
    pub ranking: Option<bool>,
}

impl MappingFile {
    pub fn load(path: &Path) -> Result<Self, UserError> {
        let text = std::fs::read_to_string(path).map_err(|e| io_context(path, e))?;
        toml::from_str(&text).map_err(|e| {
            file_error(path, format!("invalid mapping: {}", e.message())).with_hint(
                "see README \"Column maps\": [columns] prompt/query/response/messages/..., [tags] role_tag/...",
            )
        })
    }

    /// Build a full mapping; `detected` supplies what the file leaves out.
    pub fn resolve(&self, detected: Option<&Mapping>) -> Result<Mapping, UserError> {
        let columns = self.columns.clone().unwrap_or_default();
        let formatting = self
            .formatting
            .or_else(|| self.format.map(formatting_of))
            .or(if columns.messages.is_some() {
                Some(Formatting::Sharegpt)
            } else if columns.prompt.is_some() || columns.response.is_some() {
                Some(Formatting::Alpaca)
            } else {
                None
            })
            .or(detected.map(|d| d.formatting));
        let Some(formatting) = formatting else {
            return Err(UserError::new(
                "the mapping does not say how rows are shaped and detection failed",
            )
            .with_hint("set formatting = \"alpaca\" or \"sharegpt\" in the mapping file"));
        };
        let mut mapping = match (detected, formatting) {
            (Some(d), f) if d.formatting == f => d.clone(),
            (_, Formatting::Alpaca) => preset(Format::Alpaca),
            (_, Formatting::Sharegpt) => preset(Format::Sharegpt),
        };
        if let Some(format) = self.format {
            mapping.format = format;
        }
        if let Some(cols) = &self.columns {
            merge_columns(&mut mapping.columns, cols);
        }
        if let Some(tags) = &self.tags {
            mapping.tags = tags.clone();
        }
        if self.ranking == Some(true) {
            mapping.format = Format::Preference;
        }
        Ok(mapping)
    }
}

fn merge_columns(into: &mut Columns, from: &Columns) {
    macro_rules! take {
        ($($f:ident),*) => { $( if from.$f.is_some() { into.$f = from.$f.clone(); } )* };
    }
    take!(
        id, prompt, query, response, system, history, messages, chosen, rejected, tools
    );
}

fn formatting_of(format: Format) -> Formatting {
    match format {
        Format::Sharegpt | Format::Messages => Formatting::Sharegpt,
        _ => Formatting::Alpaca,
    }
}

fn col(name: &str) -> Option<String> {
    Some(name.to_string())
}

/// The built-in mapping for each known schema.
pub fn preset(format: Format) -> Mapping {
    let base = Columns {
        id: col("id"),
        ..Columns::default()
    };
    let (formatting, columns, tags) = match format {
        Format::Alpaca => (
            Formatting::Alpaca,
            Columns {
                prompt: col("instruction"),
                query: col("input"),
                response: col("output"),
                system: col("system"),
                history: col("history"),
                ..base
            },
            Tags::sharegpt(),
        ),
        Format::Dolly => (
            Formatting::Alpaca,
            Columns {
                prompt: col("instruction"),
                query: col("context"),
                response: col("response"),
                ..base
            },
            Tags::sharegpt(),
        ),
        Format::PromptCompletion => (
            Formatting::Alpaca,
            Columns {
                prompt: col("prompt"),
                response: col("completion"),
                system: col("system"),
                ..base
            },
            Tags::sharegpt(),
        ),
        Format::Preference => (
            Formatting::Alpaca,
            Columns {
                prompt: col("prompt"),
                chosen: col("chosen"),
                rejected: col("rejected"),
                system: col("system"),
                ..base
            },
            Tags::openai(),
        ),
        Format::Sharegpt => (
            Formatting::Sharegpt,
            Columns {
                messages: col("conversations"),
                system: col("system"),
                tools: col("tools"),
                ..base
            },
            Tags::sharegpt(),
        ),
        Format::Messages => (
            Formatting::Sharegpt,
            Columns {
                messages: col("messages"),
                system: col("system"),
                ..base
            },
            Tags::openai(),
        ),
    };
    Mapping {
        format,
        formatting,
        columns,
        tags,
        response_required: true,
    }
}

/// Guess the schema from the keys seen in the first rows.
pub fn detect(
    keys: &BTreeSet<String>,
    first_messages: Option<&serde_json::Value>,
) -> Option<Mapping> {
    let has = |k: &str| keys.contains(k);
    let format = if has("messages") {
        Format::Messages
    } else if has("conversations") {
        Format::Sharegpt
    } else if has("chosen") && has("rejected") {
        Format::Preference
    } else if has("instruction") && has("response") {
        Format::Dolly
    } else if has("instruction") && has("output") {
        Format::Alpaca
    } else if has("prompt") && has("completion") {
        Format::PromptCompletion
    } else {
        return None;
    };
    let mut mapping = preset(format);
    // A `messages` list in ShareGPT shape, or `conversations` in OpenAI shape, both occur.
    if mapping.formatting == Formatting::Sharegpt
        && let Some(serde_json::Value::Array(turns)) = first_messages
        && let Some(serde_json::Value::Object(first)) = turns.first()
    {
        if first.contains_key("from") && first.contains_key("value") {
            mapping.tags = Tags::sharegpt();
        } else if first.contains_key("role") && first.contains_key("content") {
            mapping.tags = Tags::openai();
        }
    }
    Some(mapping)
}
