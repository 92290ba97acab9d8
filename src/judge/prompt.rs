//! Prompt templates: files in `prompts/` (TOML with `id`, `version`, `system`, `user`),
//! rendered with minijinja. The built-in ones are compiled in; a recipe may point to a
//! user's own file instead. Undefined variables are errors, not empty strings.

use std::path::Path;

use serde::Deserialize;

use crate::data::record::Message;
use crate::error::{UserError, file_error, io_context};

const BUILTIN: &[(&str, &str)] = &[
    ("ds2.rate", include_str!("../../prompts/ds2.rate.toml")),
    (
        "aido.classify",
        include_str!("../../prompts/aido.classify.toml"),
    ),
    (
        "judge.rubric",
        include_str!("../../prompts/judge.rubric.toml"),
    ),
    ("aido.probe", include_str!("../../prompts/aido.probe.toml")),
    (
        "aido.evaluate",
        include_str!("../../prompts/aido.evaluate.toml"),
    ),
    (
        "aido.rewrite",
        include_str!("../../prompts/aido.rewrite.toml"),
    ),
    (
        "aido.review",
        include_str!("../../prompts/aido.review.toml"),
    ),
    ("aido.align", include_str!("../../prompts/aido.align.toml")),
];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplate {
    pub id: String,
    pub version: u32,
    #[serde(default)]
    pub system: Option<String>,
    pub user: String,
}

impl PromptTemplate {
    pub fn builtin(id: &str) -> Option<Self> {
        BUILTIN
            .iter()
            .find(|(name, _)| *name == id)
            .map(|(name, text)| {
                Self::parse(text, Path::new(&format!("prompts/{name}.toml")))
                    .expect("built-in prompts are valid")
            })
    }

    pub fn load(path: &Path) -> Result<Self, UserError> {
        let text = std::fs::read_to_string(path).map_err(|e| io_context(path, e))?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, origin: &Path) -> Result<Self, UserError> {
        let t: Self = toml::from_str(text)
            .map_err(|e| file_error(origin, format!("invalid prompt template: {}", e.message())))?;
        // Compile once here so a broken template fails before any request is sent.
        t.env().map_err(|e| file_error(origin, e))?;
        Ok(t)
    }

    fn env(&self) -> Result<minijinja::Environment<'static>, String> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_template_owned("user", self.user.trim().to_string())
            .map_err(|e| format!("user template: {e}"))?;
        if let Some(system) = &self.system {
            env.add_template_owned("system", system.trim().to_string())
                .map_err(|e| format!("system template: {e}"))?;
        }
        Ok(env)
    }

    /// The chat messages for one row.
    pub fn render(&self, vars: &serde_json::Value) -> Result<Vec<Message>, String> {
        let env = self.env()?;
        let mut out = Vec::with_capacity(2);
        if self.system.is_some() {
            let system = env
                .get_template("system")
                .and_then(|t| t.render(vars))
                .map_err(|e| format!("prompt {} system: {e}", self.id))?;
            out.push(Message::new("system", system));
        }
        let user = env
            .get_template("user")
            .and_then(|t| t.render(vars))
            .map_err(|e| format!("prompt {}: {e}", self.id))?;
        out.push(Message::new("user", user));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_ds2_prompt_renders_the_conversation() {
        let t = PromptTemplate::builtin("ds2.rate").unwrap();
        assert_eq!((t.id.as_str(), t.version), ("ds2.rate", 1));
        let m = t
            .render(&serde_json::json!({"conversation": "### user: hi\n### assistant: hello\n"}))
            .unwrap();
        assert_eq!(m[0].role, "system");
        assert!(m[1].content.contains("\"Overall rating\""));
        assert!(
            m[1].content
                .ends_with("### user: hi\n### assistant: hello\n"),
            "{:?}",
            m[1].content
        );
    }

    #[test]
    fn undefined_variables_and_bad_syntax_are_errors() {
        let t = PromptTemplate::builtin("ds2.rate").unwrap();
        assert!(
            t.render(&serde_json::json!({}))
                .unwrap_err()
                .contains("undefined")
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, "id = \"x\"\nversion = 1\nuser = \"{{ oops\"\n").unwrap();
        assert!(
            PromptTemplate::load(&p)
                .unwrap_err()
                .message
                .contains("user template")
        );
    }
}
