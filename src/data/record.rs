//! The canonical record every dataset is normalized into.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// One sample. `messages` is the OpenAI-style conversation (system first, if any);
/// `instruction`/`input`/`output` are filled only for single-turn samples.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    pub id: String,
    /// Line (or row) of the source file this record came from.
    pub line: usize,
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub instruction: Option<String>,
    pub input: Option<String>,
    pub output: Option<String>,
    pub chosen: Option<String>,
    pub rejected: Option<String>,
    /// Top-level scalar fields the mapping did not consume (category, source, ...).
    pub extras: Vec<(String, Value)>,
    /// Where the source row, exactly as it was read, sits in the workspace's
    /// `source.raw` (byte offset, length). See `Workspace::raw_row`.
    pub raw_span: Option<(usize, usize)>,
}

impl Record {
    /// Number of user turns.
    pub fn turns(&self) -> usize {
        self.messages.iter().filter(|m| m.role == "user").count()
    }

    pub fn first_user(&self) -> &str {
        self.messages
            .iter()
            .find(|m| m.role == "user")
            .map(|m| m.content.as_str())
            .unwrap_or("")
    }

    pub fn first_assistant(&self) -> &str {
        self.messages
            .iter()
            .find(|m| m.role == "assistant")
            .map(|m| m.content.as_str())
            .unwrap_or("")
    }

    pub fn chars_of_role(&self, role: &str) -> usize {
        self.messages
            .iter()
            .filter(|m| m.role == role)
            .map(|m| m.content.chars().count())
            .sum()
    }

    /// Replace a single-turn sample's texts, rebuilding its conversation the way import
    /// builds it (system, then instruction and input as one user turn, then the answer).
    pub fn set_single_turn(&mut self, instruction: &str, input: &str, output: &str) {
        let mut user = instruction.to_string();
        if !input.is_empty() {
            if !user.is_empty() {
                user.push('\n');
            }
            user.push_str(input);
        }
        self.messages.retain(|m| m.role == "system");
        self.messages.push(Message::new("user", user));
        self.messages.push(Message::new("assistant", output));
        self.instruction = Some(instruction.to_string());
        self.input = Some(input.to_string());
        self.output = Some(output.to_string());
    }

    /// Fill instruction/input/output when the conversation is one exchange.
    pub fn fill_single_turn(&mut self, instruction: Option<String>, input: Option<String>) {
        let turns: Vec<&Message> = self
            .messages
            .iter()
            .filter(|m| m.role != "system")
            .collect();
        if turns.len() == 2 && turns[0].role == "user" && turns[1].role == "assistant" {
            let output = turns[1].content.clone();
            self.instruction = Some(instruction.unwrap_or_else(|| turns[0].content.clone()));
            self.input = Some(input.unwrap_or_default());
            self.output = Some(output);
        }
    }
}

/// A one-line preview: newlines shown as ¶, cut at `max` characters.
pub fn preview(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(max.min(text.len()) + 4);
    let mut n = 0;
    let mut last_space = false;
    for ch in text.chars() {
        if n >= max {
            out.push('…');
            break;
        }
        let ch = match ch {
            '\n' => '¶',
            '\t' | '\r' => ' ',
            c if c.is_control() => ' ',
            c => c,
        };
        if ch == ' ' && last_space {
            continue;
        }
        last_space = ch == ' ';
        out.push(ch);
        n += 1;
    }
    out
}
