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
    /// `messages` is left empty because it is exactly [`single_turn_messages`] of
    /// system/instruction/input/output. Only import asks for such records
    /// (`LoadOptions::compact_conversations`), to hold each text once; everything else
    /// gets full ones.
    pub conversation_in_fields: bool,
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
        self.messages.retain(|m| m.role == "system");
        self.messages
            .push(Message::new("user", user_turn(instruction, input)));
        self.messages.push(Message::new("assistant", output));
        self.instruction = Some(instruction.to_string());
        self.input = Some(input.to_string());
        self.output = Some(output.to_string());
    }

    /// Drop `messages` when the other fields rebuild it (see `conversation_in_fields`).
    pub fn compact_conversation(&mut self) {
        if self.conversation_is_derived() {
            self.messages = Vec::new();
            self.conversation_in_fields = true;
        }
    }

    /// The user turn of a single-turn record as the three pieces [`user_turn`] joins:
    /// instruction, the newline between (if both are non-empty), input.
    pub fn user_turn_parts(&self) -> [&str; 3] {
        let instruction = self.instruction.as_deref().unwrap_or("");
        let input = self.input.as_deref().unwrap_or("");
        let join = if instruction.is_empty() || input.is_empty() {
            ""
        } else {
            "\n"
        };
        [instruction, join, input]
    }

    /// Whether `messages` is exactly what [`single_turn_messages`] rebuilds from the
    /// other fields, so the snapshot need not store the conversation a second time.
    pub fn conversation_is_derived(&self) -> bool {
        if self.conversation_in_fields {
            return true;
        }
        let (Some(instruction), Some(output)) = (&self.instruction, &self.output) else {
            return false;
        };
        let input = self.input.as_deref().unwrap_or("");
        let mut turns = self.messages.iter();
        if let Some(system) = &self.system {
            match turns.next() {
                Some(m) if m.role == "system" && &m.content == system => {}
                _ => return false,
            }
        }
        let user_matches = |m: &Message| {
            m.role == "user" && {
                let c = m.content.as_str();
                match (instruction.is_empty(), input.is_empty()) {
                    (_, true) => c == instruction,
                    (true, false) => c == input,
                    (false, false) => {
                        c.len() == instruction.len() + 1 + input.len()
                            && c.starts_with(instruction.as_str())
                            && c.ends_with(input)
                            && c.as_bytes()[instruction.len()] == b'\n'
                    }
                }
            }
        };
        matches!(
            (turns.next(), turns.next(), turns.next()),
            (Some(u), Some(a), None) if user_matches(u) && a.role == "assistant" && &a.content == output
        )
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

/// The user turn of a single-turn sample: instruction, a newline, input (either may
/// be empty, and then there is no newline).
pub fn user_turn(instruction: &str, input: &str) -> String {
    let mut user = String::with_capacity(instruction.len() + 1 + input.len());
    user.push_str(instruction);
    if !input.is_empty() {
        if !user.is_empty() {
            user.push('\n');
        }
        user.push_str(input);
    }
    user
}

/// The conversation import builds for a single-turn sample (see
/// [`Record::conversation_is_derived`]).
pub fn single_turn_messages(
    system: Option<&str>,
    instruction: &str,
    input: &str,
    output: &str,
) -> Vec<Message> {
    let mut messages = Vec::with_capacity(3);
    if let Some(s) = system {
        messages.push(Message::new("system", s));
    }
    messages.push(Message::new("user", user_turn(instruction, input)));
    messages.push(Message::new("assistant", output));
    messages
}

/// A one-line preview: newlines shown as ¶, other control characters as spaces, runs
/// of spaces squeezed to one, cut at `max` characters (then ending in …).
pub fn preview(text: &str, max: usize) -> String {
    preview_parts(&[text], max)
}

/// [`preview`] of the concatenation of `parts`, without building it: the snapshot
/// previews a single-turn user turn (instruction, newline, input) straight from its
/// fields.
pub fn preview_parts(parts: &[&str], max: usize) -> String {
    let mut out = String::with_capacity(max.min(parts.iter().map(|p| p.len()).sum()) + 4);
    let mut n = 0;
    let mut last_space = false;
    for part in parts {
        let mut rest = *part;
        while let Some(&b) = rest.as_bytes().first() {
            if n >= max {
                out.push('…');
                return out;
            }
            // Most text is runs of printable ASCII with single spaces: each run is
            // found in one pass over its bytes and copied whole.
            let run = plain_run(&rest.as_bytes()[..rest.len().min(max - n)], last_space);
            if run > 0 {
                out.push_str(&rest[..run]);
                n += run;
                last_space = rest.as_bytes()[run - 1] == b' ';
                rest = &rest[run..];
                continue;
            }
            // Anything else one char at a time: ASCII without decoding.
            let ch = if b.is_ascii() {
                rest = &rest[1..];
                match b {
                    b'\n' => '¶',
                    b if b.is_ascii_control() => ' ',
                    b => b as char,
                }
            } else {
                let c = rest.chars().next().expect("non-empty");
                rest = &rest[c.len_utf8()..];
                if c.is_control() { ' ' } else { c }
            };
            if ch == ' ' && last_space {
                continue;
            }
            last_space = ch == ' ';
            out.push(ch);
            n += 1;
        }
    }
    out
}

/// How many leading bytes of `bytes` a preview copies as they are: printable ASCII, no
/// space after a space (`after_space`: the byte before the first was one).
fn plain_run(bytes: &[u8], mut after_space: bool) -> usize {
    for (i, &b) in bytes.iter().enumerate() {
        if !(0x20..0x7f).contains(&b) || (b == b' ' && after_space) {
            return i;
        }
        after_space = b == b' ';
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::{preview, preview_parts};

    /// The definition, one char at a time: newlines as ¶, control characters as
    /// spaces, a space after a space dropped, … once `max` chars are out and any text
    /// is left.
    fn reference_preview(text: &str, max: usize) -> String {
        let mut out = String::new();
        let mut n = 0;
        let mut last_space = false;
        for c in text.chars() {
            if n >= max {
                out.push('…');
                break;
            }
            let c = match c {
                '\n' => '¶',
                c if c.is_control() => ' ',
                c => c,
            };
            if c == ' ' && last_space {
                continue;
            }
            last_space = c == ' ';
            out.push(c);
            n += 1;
        }
        out
    }

    #[test]
    fn preview_of_parts_is_the_preview_of_their_concatenation() {
        let pieces = [
            "",
            "a",
            " ",
            "  ",
            "\n",
            "\t",
            "é",
            "日本",
            "x y",
            "\u{85}",
            "word ",
            "ab  cd\u{7f}e",
        ];
        // Every ordered triple of pieces, at several cut points.
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for max in [0, 1, 2, 3, 5, 8, 13] {
                        let whole = format!("{a}{b}{c}");
                        let expected = reference_preview(&whole, max);
                        assert_eq!(preview_parts(&[a, b, c], max), expected, "{whole:?} {max}");
                        assert_eq!(preview(&whole, max), expected, "{whole:?} at {max}");
                    }
                }
            }
        }
    }

    #[test]
    fn preview_marks_newlines_squeezes_spaces_and_cuts() {
        assert_eq!(preview("a\n\tb  c\r\u{7f}é\u{85}x", 100), "a¶ b c é x");
        assert_eq!(preview("héllo wörld", 5), "héllo…");
        assert_eq!(preview("héllo", 5), "héllo");
        assert_eq!(preview("", 5), "");
        // The ASCII fast path cuts and marks the same way.
        assert_eq!(preview("hello world", 5), "hello…");
        assert_eq!(preview("hello", 5), "hello");
        assert_eq!(preview("a b", 5), "a b");
        assert_eq!(preview("a  b\tc", 9), "a b c");
    }
}
