//! One parsed JSON row → one canonical [`Record`], with field-level errors.

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::mapping::{Format, Formatting, Mapping};
use super::record::{Message, Record};
use crate::error::RowError;

/// Turns rows into records according to a [`Mapping`].
pub struct Normalizer<'a> {
    pub mapping: &'a Mapping,
    consumed: Vec<&'a str>,
    /// Mapped columns named by more than one role: their text is copied, not moved.
    shared: Vec<&'a str>,
    compact: bool,
}

impl<'a> Normalizer<'a> {
    pub fn new(mapping: &'a Mapping) -> Self {
        let c = &mapping.columns;
        let consumed = [
            &c.id,
            &c.prompt,
            &c.query,
            &c.response,
            &c.system,
            &c.history,
            &c.messages,
            &c.chosen,
            &c.rejected,
            &c.tools,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect::<Vec<_>>();
        let shared = consumed
            .iter()
            .enumerate()
            .filter(|(i, c)| consumed[..*i].contains(c) || consumed[i + 1..].contains(c))
            .map(|(_, c)| *c)
            .collect();
        let mut consumed = consumed;
        if mapping.formatting == Formatting::Sharegpt {
            // gleaner's own JSONL export writes these beside `messages`.
            consumed.extend(["instruction", "input", "output"]);
        }
        Self {
            mapping,
            consumed,
            shared,
            compact: false,
        }
    }

    /// Leave a single-turn record's `messages` empty where instruction, input and
    /// output rebuild it (`Record::conversation_in_fields`), without building it first.
    pub fn compact(mut self, compact: bool) -> Self {
        self.compact = compact;
        self
    }

    /// One row as a record. Its `id` is the row's own id value, or empty when it has
    /// none (the loader then assigns a content hash).
    pub fn normalize(&self, line: usize, raw: &str) -> Result<Record, RowError> {
        let parsed: Parsed = serde_json::from_str(raw).map_err(|e| {
            let msg = super::reader::strip_serde_position(&e.to_string());
            let msg = if e.is_eof() {
                format!("invalid JSON: {msg} (the row is cut short; is the file truncated?)")
            } else {
                format!("invalid JSON: {msg}")
            };
            RowError::new(line, None, msg)
        })?;
        let obj = match parsed {
            Parsed::Object(fields) => fields,
            Parsed::Other(found) => {
                return Err(RowError::new(
                    line,
                    None,
                    format!("expected a JSON object, found {found}"),
                ));
            }
        };
        let mut row = Row {
            line,
            obj,
            shared: &self.shared,
        };
        let mut record = match self.mapping.formatting {
            Formatting::Alpaca => self.flat(&mut row)?,
            Formatting::Sharegpt => self.turns(&mut row)?,
        };
        record.line = line;
        if let Some(col) = &self.mapping.columns.id {
            record.id = row.id(col)?.unwrap_or_default();
        }
        record.extras = row
            .obj
            .into_iter()
            .filter(|(k, v)| !self.consumed.contains(&k.as_ref()) && is_scalar(v))
            .map(|(k, v)| (k.into_owned(), v))
            .collect();
        // Collected in place into the parse's room for eight fields: give it back, or a
        // million records hold 400 MB of spare capacity.
        record.extras.shrink_to_fit();
        Ok(record)
    }

    /// Alpaca, Dolly, prompt/completion and preference rows.
    fn flat(&self, row: &mut Row) -> Result<Record, RowError> {
        let c = &self.mapping.columns;
        let preference = self.mapping.format == Format::Preference;
        let system = match &c.system {
            Some(col) => row.opt_str(col)?,
            None => None,
        };
        let history = match &c.history {
            Some(col) => row.history(col)?,
            None => Vec::new(),
        };
        let (instruction, prompt_turns) = match &c.prompt {
            Some(col) if preference => row.text_or_turns(col, true, &self.mapping.tags)?,
            Some(col) => (Some(row.req_str(col)?), Vec::new()),
            None => (None, Vec::new()),
        };
        let input = match &c.query {
            Some(col) => row.opt_str(col)?,
            None => None,
        };
        let (chosen, rejected) = if preference {
            let chosen = self.answer(row, c.chosen.as_deref())?;
            let rejected = self.answer(row, c.rejected.as_deref())?;
            (chosen, rejected)
        } else {
            (None, None)
        };
        let response = match (&c.response, preference) {
            (Some(col), _) if self.mapping.response_required && !preference => {
                Some(row.req_str(col)?)
            }
            (Some(col), _) => row.opt_str(col)?,
            (None, true) => chosen.clone(),
            (None, false) => None,
        };
        if self.compact && history.is_empty() && prompt_turns.is_empty() {
            // The common single-turn row: its conversation would be exactly what
            // instruction/input/output rebuild (`Record::conversation_is_derived`), so
            // it is not built at all.
            if instruction.is_some() && response.is_some() {
                return Ok(Record {
                    system,
                    instruction,
                    input: Some(input.unwrap_or_default()),
                    output: response,
                    chosen,
                    rejected,
                    conversation_in_fields: true,
                    ..Record::default()
                });
            }
        }
        let mut messages = Vec::new();
        if let Some(s) = &system {
            messages.push(Message::new("system", s.clone()));
        }
        messages.extend(history);
        if prompt_turns.is_empty() {
            let mut user = instruction.clone().unwrap_or_default();
            if let Some(i) = input.as_deref().filter(|i| !i.is_empty()) {
                if !user.is_empty() {
                    user.push('\n');
                }
                user.push_str(i);
            }
            messages.push(Message::new("user", user));
        } else {
            messages.extend(prompt_turns);
        }
        if let Some(r) = &response {
            messages.push(Message::new("assistant", r.clone()));
        }
        let mut record = Record {
            system,
            messages,
            chosen,
            rejected,
            ..Record::default()
        };
        record.fill_single_turn(instruction, input);
        Ok(record)
    }

    fn answer(&self, row: &mut Row, col: Option<&str>) -> Result<Option<String>, RowError> {
        let Some(col) = col else { return Ok(None) };
        let (text, turns) = row.text_or_turns(col, true, &self.mapping.tags)?;
        Ok(text.or_else(|| {
            turns
                .iter()
                .rev()
                .find(|m| m.role == "assistant")
                .or(turns.last())
                .map(|m| m.content.clone())
        }))
    }

    /// ShareGPT and OpenAI-messages rows.
    fn turns(&self, row: &mut Row) -> Result<Record, RowError> {
        let c = &self.mapping.columns;
        let Some(col) = c.messages.as_deref() else {
            return Err(RowError::new(
                row.line,
                None,
                "mapping has no `messages` column for a turn-based format",
            ));
        };
        let system = match &c.system {
            Some(sys) => row.opt_str(sys)?,
            None => None,
        };
        let value = row.get(col).ok_or_else(|| row.missing(col))?;
        let turns = parse_turns(row.line, col, value, &self.mapping.tags)?;
        let mut messages = Vec::with_capacity(turns.len() + 1);
        // A separate system field only adds a turn when the conversation has none.
        if let Some(s) = system
            .as_ref()
            .filter(|_| !turns.iter().any(|m| m.role == "system"))
        {
            messages.push(Message::new("system", s.clone()));
        }
        messages.extend(turns);
        if messages.iter().all(|m| m.role == "system") {
            return Err(RowError::new(
                row.line,
                Some(col),
                "conversation has no user or assistant turn",
            ));
        }
        let system = system.or_else(|| {
            messages
                .iter()
                .find(|m| m.role == "system")
                .map(|m| m.content.clone())
        });
        let mut record = Record {
            system,
            messages,
            ..Record::default()
        };
        // Keep an instruction/input split written by gleaner's export, if it matches.
        let instruction = row.opt_str("instruction").ok().flatten();
        let input = row.opt_str("input").ok().flatten();
        let split_matches = match (&instruction, &input) {
            (Some(i), inp) => {
                let mut joined = i.clone();
                if let Some(x) = inp.as_deref().filter(|x| !x.is_empty()) {
                    if !joined.is_empty() {
                        joined.push('\n');
                    }
                    joined.push_str(x);
                }
                record.first_user() == joined
            }
            _ => false,
        };
        if split_matches {
            record.fill_single_turn(instruction, input);
        } else {
            record.fill_single_turn(None, None);
        }
        Ok(record)
    }
}

/// A row as parsed: a JSON object's fields in file order (a repeated key keeps its first
/// place and its last value, as serde_json's map does), or what else the row was. Keys
/// are borrowed from the row's text and not hashed: rows have a handful of fields, and
/// allocating and SipHashing each key was a tenth of the parse.
enum Parsed<'a> {
    Object(Vec<(Cow<'a, str>, Value)>),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Parsed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParsedVisitor)
    }
}

struct ParsedVisitor;

impl<'de> Visitor<'de> for ParsedVisitor {
    type Value = Parsed<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'de>, A::Error> {
        let mut fields: Vec<(Cow<'de, str>, Value)> = Vec::with_capacity(8);
        while let Some(Key(key)) = map.next_key()? {
            let value: Value = map.next_value()?;
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => fields.push((key, value)),
            }
        }
        Ok(Parsed::Object(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Parsed::Other("a list"))
    }

    fn visit_unit<E>(self) -> Result<Parsed<'de>, E> {
        Ok(Parsed::Other("null"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Parsed<'de>, E> {
        Ok(Parsed::Other("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Parsed<'de>, E> {
        Ok(Parsed::Other("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Parsed<'de>, E> {
        Ok(Parsed::Other("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Parsed<'de>, E> {
        Ok(Parsed::Other("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Parsed<'de>, E> {
        Ok(Parsed::Other("a string"))
    }
}

/// An object key, borrowed unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// A parsed row. Text fields are moved out of it (`take_text`) rather than copied,
/// except for columns that more than one role reads (`shared`).
struct Row<'a> {
    line: usize,
    obj: Vec<(Cow<'a, str>, Value)>,
    shared: &'a [&'a str],
}

impl Row<'_> {
    fn get(&self, col: &str) -> Option<&Value> {
        self.obj.iter().find(|(k, _)| k == col).map(|(_, v)| v)
    }

    fn missing(&self, col: &str) -> RowError {
        RowError::new(self.line, Some(col), "missing required field")
    }

    /// The string at `col` (checked to be one), moved out unless another role reads it.
    fn take_text(&mut self, col: &str) -> String {
        let shared = self.shared.contains(&col);
        match self.obj.iter_mut().find(|(k, _)| k == col).map(|(_, v)| v) {
            Some(Value::String(s)) if shared => s.clone(),
            Some(Value::String(s)) => std::mem::take(s),
            _ => String::new(),
        }
    }

    /// Text fields must be JSON strings: a number where text belongs usually means the
    /// columns are mapped wrong, and silently stringifying it would hide that.
    fn req_str(&mut self, col: &str) -> Result<String, RowError> {
        match self.get(col) {
            None | Some(Value::Null) => Err(self.missing(col)),
            Some(Value::String(_)) => Ok(self.take_text(col)),
            Some(v) => Err(wrong_type(self.line, col, "a string", v)),
        }
    }

    fn opt_str(&mut self, col: &str) -> Result<Option<String>, RowError> {
        match self.get(col) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(_)) => Ok(Some(self.take_text(col))),
            Some(v) => Err(wrong_type(self.line, col, "a string", v)),
        }
    }

    fn id(&mut self, col: &str) -> Result<Option<String>, RowError> {
        match self.get(col) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(_)) => Ok(Some(self.take_text(col))),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
            Some(v) => Err(wrong_type(self.line, col, "a string or integer id", v)),
        }
    }

    /// `[[question, answer], ...]` as in Alpaca's `history`.
    fn history(&self, col: &str) -> Result<Vec<Message>, RowError> {
        let pairs = match self.get(col) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(a)) => a,
            Some(v) => {
                return Err(wrong_type(
                    self.line,
                    col,
                    "a list of [question, answer] pairs",
                    v,
                ));
            }
        };
        let mut out = Vec::with_capacity(pairs.len() * 2);
        for (i, pair) in pairs.iter().enumerate() {
            let field = format!("{col}[{i}]");
            match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(q), Value::String(a)]) => {
                    out.push(Message::new("user", q.clone()));
                    out.push(Message::new("assistant", a.clone()));
                }
                _ => {
                    return Err(wrong_type(
                        self.line,
                        &field,
                        "a [question, answer] pair of strings",
                        pair,
                    ));
                }
            }
        }
        Ok(out)
    }

    /// A field that may be a plain string or a list of turns (TRL conversational form).
    fn text_or_turns(
        &mut self,
        col: &str,
        required: bool,
        tags: &super::mapping::Tags,
    ) -> Result<(Option<String>, Vec<Message>), RowError> {
        match self.get(col) {
            None | Some(Value::Null) if required => Err(self.missing(col)),
            None | Some(Value::Null) => Ok((None, Vec::new())),
            Some(Value::String(_)) => Ok((Some(self.take_text(col)), Vec::new())),
            Some(v @ Value::Array(_)) => Ok((None, parse_turns(self.line, col, v, tags)?)),
            Some(v) => Err(wrong_type(
                self.line,
                col,
                "a string or a list of messages",
                v,
            )),
        }
    }
}

fn parse_turns(
    line: usize,
    col: &str,
    value: &Value,
    tags: &super::mapping::Tags,
) -> Result<Vec<Message>, RowError> {
    let Value::Array(items) = value else {
        return Err(wrong_type(line, col, "a list of messages", value));
    };
    if items.is_empty() {
        return Err(RowError::new(line, Some(col), "conversation is empty"));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(turn) = item else {
            return Err(wrong_type(
                line,
                &format!("{col}[{i}]"),
                "a message object",
                item,
            ));
        };
        let role_field = format!("{col}[{i}].{}", tags.role_tag);
        let role = match turn.get(&tags.role_tag) {
            Some(Value::String(r)) => r.as_str(),
            None | Some(Value::Null) => {
                return Err(RowError::new(
                    line,
                    Some(&role_field),
                    "missing required field",
                ));
            }
            Some(v) => return Err(wrong_type(line, &role_field, "a string", v)),
        };
        let role = canonical_role(role, tags).ok_or_else(|| {
            RowError::new(
                line,
                Some(&role_field),
                format!(
                    "unknown role \"{role}\" (expected one of {}, {}, {}, {}, {})",
                    tags.user_tag,
                    tags.assistant_tag,
                    tags.system_tag,
                    tags.observation_tag,
                    tags.function_tag
                ),
            )
        })?;
        let content_field = format!("{col}[{i}].{}", tags.content_tag);
        let content = match turn.get(&tags.content_tag) {
            // Assistant turns that only call tools carry no content.
            None | Some(Value::Null) if turn.contains_key("tool_calls") => String::new(),
            None | Some(Value::Null) => {
                return Err(RowError::new(
                    line,
                    Some(&content_field),
                    "missing required field",
                ));
            }
            Some(v) => {
                content_text(v).ok_or_else(|| wrong_type(line, &content_field, "a string", v))?
            }
        };
        out.push(Message::new(role, content));
    }
    Ok(out)
}

fn canonical_role(role: &str, tags: &super::mapping::Tags) -> Option<&'static str> {
    let r = role;
    if r == tags.user_tag || r == "user" || r == "human" {
        Some("user")
    } else if r == tags.assistant_tag || r == "assistant" || r == "gpt" {
        Some("assistant")
    } else if r == tags.system_tag || r == "system" {
        Some("system")
    } else if r == tags.observation_tag || r == "tool" || r == "observation" {
        Some("tool")
    } else if r == tags.function_tag || r == "function_call" || r == "function" {
        Some("function_call")
    } else {
        None
    }
}

/// Content is a string, or OpenAI's list of parts (`[{"type":"text","text":...}]`).
fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Option<Vec<&str>> = parts
                .iter()
                .map(|p| match p {
                    Value::Object(o) => o.get("text").and_then(Value::as_str),
                    Value::String(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            texts.map(|t| t.join("\n"))
        }
        _ => None,
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn wrong_type(line: usize, field: &str, expected: &str, found: &Value) -> RowError {
    RowError::new(
        line,
        Some(field),
        format!("expected {expected}, found {}", type_name(found)),
    )
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
