//! Keymaps as data: `assets/keymap.toml` compiled in, then the user's
//! `<config dir>/keymap.toml` layered on top. Help and the hint bar are generated
//! from the same entries, so they can never disagree with the keys.

use std::collections::BTreeMap;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;

use super::action::Action;
use crate::error::{UserError, file_error};

pub const DEFAULT_KEYMAP: &str = include_str!("../../assets/keymap.toml");

/// The modes keys are looked up in.
pub const MODES: &[&str] = &[
    "browse",
    "reader",
    "histogram",
    "jobs",
    "review",
    "vote",
    "help",
    "input",
];

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Binding {
    pub run: String,
    pub on: Vec<String>,
    #[serde(default)]
    pub desc: String,
    #[serde(default)]
    pub hint: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Keymap {
    pub modes: BTreeMap<String, Vec<Binding>>,
}

fn parse(text: &str, origin: &Path) -> Result<BTreeMap<String, Vec<Binding>>, UserError> {
    let modes: BTreeMap<String, Vec<Binding>> = toml::from_str(text)
        .map_err(|e| file_error(origin, format!("invalid keymap: {}", e.message())))?;
    for (mode, bindings) in &modes {
        if !MODES.contains(&mode.as_str()) {
            return Err(file_error(
                origin,
                format!("unknown keymap mode `{mode}` (modes: {})", MODES.join(", ")),
            ));
        }
        for b in bindings {
            if Action::from_name(&b.run).is_none() {
                return Err(file_error(
                    origin,
                    format!("[{mode}] unknown action `{}`", b.run),
                ));
            }
            for key in &b.on {
                if normalize_key(key).is_none() {
                    return Err(file_error(origin, format!("[{mode}] bad key name `{key}`")));
                }
            }
        }
    }
    Ok(modes)
}

impl Keymap {
    pub fn builtin() -> Self {
        let modes = parse(DEFAULT_KEYMAP, Path::new("assets/keymap.toml"))
            .expect("the built-in keymap is valid");
        Self { modes }
    }

    /// Built-in keys with the user's file layered on top.
    pub fn load(user_file: Option<&Path>) -> Result<Self, UserError> {
        let mut map = Self::builtin();
        if let Some(path) = user_file.filter(|p| p.is_file()) {
            let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
            for (mode, user) in parse(&text, path)? {
                let entry = map.modes.entry(mode).or_default();
                let taken: Vec<String> = user
                    .iter()
                    .flat_map(|b| b.on.iter().filter_map(|k| normalize_key(k)))
                    .collect();
                for b in entry.iter_mut() {
                    b.on.retain(|k| normalize_key(k).is_none_or(|k| !taken.contains(&k)));
                }
                entry.retain(|b| !b.on.is_empty());
                let mut merged = user;
                merged.append(entry);
                *entry = merged;
            }
        }
        Ok(map)
    }

    pub fn action_for(&self, mode: &str, key: &str) -> Option<Action> {
        self.modes
            .get(mode)?
            .iter()
            .find(|b| {
                b.on.iter()
                    .any(|k| normalize_key(k).as_deref() == Some(key))
            })
            .and_then(|b| Action::from_name(&b.run))
    }

    pub fn bindings(&self, mode: &str) -> &[Binding] {
        self.modes.get(mode).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `(keys, description)` pairs for the bottom bar of a mode.
    pub fn hints(&self, mode: &str) -> Vec<(String, String)> {
        self.bindings(mode)
            .iter()
            .filter(|b| b.hint)
            .map(|b| {
                (
                    b.on.first().cloned().unwrap_or_default(),
                    short_desc(&b.desc),
                )
            })
            .collect()
    }
}

fn short_desc(desc: &str) -> String {
    desc.split([' ', '/'])
        .next()
        .unwrap_or(desc)
        .trim_end_matches([':', ','])
        .to_lowercase()
}

const NAMED: &[&str] = &[
    "up",
    "down",
    "left",
    "right",
    "pageup",
    "pagedown",
    "home",
    "end",
    "enter",
    "esc",
    "tab",
    "backtab",
    "backspace",
    "space",
    "delete",
    "insert",
];

/// Canonical form of a key name, or None if it is not one.
pub fn normalize_key(key: &str) -> Option<String> {
    let mut rest = key;
    let mut prefix = String::new();
    loop {
        if let Some(r) = rest.strip_prefix("ctrl-").filter(|r| !r.is_empty()) {
            prefix.push_str("ctrl-");
            rest = r;
        } else if let Some(r) = rest.strip_prefix("alt-").filter(|r| !r.is_empty()) {
            prefix.push_str("alt-");
            rest = r;
        } else {
            break;
        }
    }
    let lower = rest.to_lowercase();
    if NAMED.contains(&lower.as_str()) {
        return Some(format!("{prefix}{lower}"));
    }
    if lower.len() > 1 && lower.starts_with('f') && lower[1..].parse::<u8>().is_ok() {
        return Some(format!("{prefix}{lower}"));
    }
    let mut chars = rest.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(format!("{prefix}{c}")),
        _ => None,
    }
}

/// The canonical name of a key press.
pub fn key_name(ev: &KeyEvent) -> Option<String> {
    let mut prefix = String::new();
    if ev.modifiers.contains(KeyModifiers::CONTROL) {
        prefix.push_str("ctrl-");
    }
    if ev.modifiers.contains(KeyModifiers::ALT) {
        prefix.push_str("alt-");
    }
    let base = match ev.code {
        KeyCode::Char(' ') => "space".to_string(),
        KeyCode::Char(c) if prefix.starts_with("ctrl-") => c.to_ascii_lowercase().to_string(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Up => "up".into(),
        KeyCode::Down => "down".into(),
        KeyCode::Left => "left".into(),
        KeyCode::Right => "right".into(),
        KeyCode::PageUp => "pageup".into(),
        KeyCode::PageDown => "pagedown".into(),
        KeyCode::Home => "home".into(),
        KeyCode::End => "end".into(),
        KeyCode::Enter => "enter".into(),
        KeyCode::Esc => "esc".into(),
        KeyCode::Tab => "tab".into(),
        KeyCode::BackTab => "backtab".into(),
        KeyCode::Backspace => "backspace".into(),
        KeyCode::Delete => "delete".into(),
        KeyCode::Insert => "insert".into(),
        KeyCode::F(n) => format!("f{n}"),
        _ => return None,
    };
    Some(format!("{prefix}{base}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_keymap_parses_and_binds_vim_and_arrows() {
        let k = Keymap::builtin();
        assert_eq!(k.action_for("browse", "j"), Some(Action::Down));
        assert_eq!(k.action_for("browse", "down"), Some(Action::Down));
        assert_eq!(k.action_for("browse", "F"), Some(Action::Histogram));
        assert_eq!(k.action_for("browse", "ctrl-r"), Some(Action::Redo));
        assert_eq!(k.action_for("browse", "z"), None);
    }

    #[test]
    fn user_file_overrides_a_key_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keymap.toml");
        std::fs::write(
            &path,
            "[[browse]]\nrun = \"quit\"\non = [\"x\", \"j\"]\ndesc = \"Leave\"\n",
        )
        .unwrap();
        let k = Keymap::load(Some(&path)).unwrap();
        assert_eq!(k.action_for("browse", "j"), Some(Action::Quit));
        assert_eq!(k.action_for("browse", "down"), Some(Action::Down));
        assert_eq!(k.action_for("browse", "x"), Some(Action::Quit));
    }

    #[test]
    fn bad_user_keymap_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keymap.toml");
        std::fs::write(&path, "[[browse]]\nrun = \"fly\"\non = [\"x\"]\n").unwrap();
        let err = Keymap::load(Some(&path)).unwrap_err();
        assert!(
            err.message.contains("unknown action `fly`"),
            "{}",
            err.message
        );
    }
}
