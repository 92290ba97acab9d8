//! Themes as data: `themes/*.toml` compiled in, user themes in
//! `<config dir>/themes/NAME.toml`, and per-colour overrides in `<config dir>/config.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ratatui::style::Color;
use serde::Deserialize;

use crate::error::{UserError, file_error};

pub const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub fg: Color,
    pub bg: Color,
    pub muted: Color,
    pub accent: Color,
    pub header_fg: Color,
    pub header_bg: Color,
    pub focus_header_bg: Color,
    pub selected_fg: Color,
    pub selected_bg: Color,
    pub marked: Color,
    pub match_fg: Color,
    pub match_bg: Color,
    pub user: Color,
    pub assistant: Color,
    pub system: Color,
    pub tool: Color,
    pub code_fg: Color,
    pub code_bg: Color,
    pub bar_fg: Color,
    pub bar_bg: Color,
    pub key: Color,
    pub error: Color,
    pub ok: Color,
    pub hist_bar: Color,
}

/// The user's `config.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub theme: Option<String>,
    #[serde(default)]
    pub colors: BTreeMap<String, String>,
}

/// `$GLEANER_CONFIG_DIR`, else the XDG config dir + `gleaner`.
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os("GLEANER_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::config_dir().map(|d| d.join("gleaner")))
}

impl UserConfig {
    pub fn load(dir: Option<&Path>) -> Result<Self, UserError> {
        let Some(path) = dir.map(|d| d.join("config.toml")).filter(|p| p.is_file()) else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(&path).map_err(|e| file_error(&path, e))?;
        toml::from_str(&text)
            .map_err(|e| file_error(&path, format!("invalid config: {}", e.message())))
    }
}

fn parse_theme(text: &str, origin: &Path) -> Result<Theme, UserError> {
    let map: BTreeMap<String, String> = toml::from_str(text)
        .map_err(|e| file_error(origin, format!("invalid theme: {}", e.message())))?;
    let base = match map.get("inherits") {
        Some(parent) if parent != map.get("name").unwrap_or(&String::new()) => {
            Some(Theme::builtin(parent).ok_or_else(|| {
                file_error(origin, format!("unknown theme `{parent}` to inherit"))
            })?)
        }
        _ => None,
    };
    let mut theme = base.unwrap_or_else(Theme::fallback);
    theme.apply(&map, origin)?;
    Ok(theme)
}

impl Theme {
    fn fallback() -> Self {
        Self {
            name: "fallback".into(),
            fg: Color::Reset,
            bg: Color::Reset,
            muted: Color::Gray,
            accent: Color::Blue,
            header_fg: Color::White,
            header_bg: Color::DarkGray,
            focus_header_bg: Color::Blue,
            selected_fg: Color::Black,
            selected_bg: Color::Cyan,
            marked: Color::Yellow,
            match_fg: Color::Black,
            match_bg: Color::Yellow,
            user: Color::Blue,
            assistant: Color::Green,
            system: Color::Magenta,
            tool: Color::Yellow,
            code_fg: Color::White,
            code_bg: Color::Black,
            bar_fg: Color::White,
            bar_bg: Color::DarkGray,
            key: Color::Yellow,
            error: Color::Red,
            ok: Color::Green,
            hist_bar: Color::Blue,
        }
    }

    pub fn builtin(name: &str) -> Option<Self> {
        BUILTIN.iter().find(|(n, _)| *n == name).map(|(n, text)| {
            parse_theme(text, Path::new(&format!("themes/{n}.toml")))
                .expect("built-in themes are valid")
        })
    }

    fn apply(&mut self, map: &BTreeMap<String, String>, origin: &Path) -> Result<(), UserError> {
        for (key, value) in map {
            if key == "name" {
                self.name = value.clone();
                continue;
            }
            if key == "inherits" {
                continue;
            }
            let color = Color::from_str(value)
                .map_err(|_| file_error(origin, format!("`{key}`: not a colour: \"{value}\"")))?;
            let slot = match key.as_str() {
                "fg" => &mut self.fg,
                "bg" => &mut self.bg,
                "muted" => &mut self.muted,
                "accent" => &mut self.accent,
                "header_fg" => &mut self.header_fg,
                "header_bg" => &mut self.header_bg,
                "focus_header_bg" => &mut self.focus_header_bg,
                "selected_fg" => &mut self.selected_fg,
                "selected_bg" => &mut self.selected_bg,
                "marked" => &mut self.marked,
                "match_fg" => &mut self.match_fg,
                "match_bg" => &mut self.match_bg,
                "user" => &mut self.user,
                "assistant" => &mut self.assistant,
                "system" => &mut self.system,
                "tool" => &mut self.tool,
                "code_fg" => &mut self.code_fg,
                "code_bg" => &mut self.code_bg,
                "bar_fg" => &mut self.bar_fg,
                "bar_bg" => &mut self.bar_bg,
                "key" => &mut self.key,
                "error" => &mut self.error,
                "ok" => &mut self.ok,
                "hist_bar" => &mut self.hist_bar,
                other => {
                    return Err(file_error(
                        origin,
                        format!("unknown theme colour `{other}`"),
                    ));
                }
            };
            *slot = color;
        }
        Ok(())
    }

    /// Resolve the theme: `requested` (name or path) > config `theme` > dark,
    /// then the config's `[colors]` overrides.
    pub fn resolve(requested: Option<&str>, config_dir: Option<&Path>) -> Result<Self, UserError> {
        let config = UserConfig::load(config_dir)?;
        let name = requested
            .map(str::to_string)
            .or(config.theme.clone())
            .unwrap_or_else(|| "dark".into());
        let mut theme = if let Some(t) = Self::builtin(&name) {
            t
        } else {
            let candidates = [
                Some(PathBuf::from(&name)),
                config_dir.map(|d| d.join("themes").join(format!("{name}.toml"))),
            ];
            let path =
                candidates
                    .into_iter()
                    .flatten()
                    .find(|p| p.is_file())
                    .ok_or_else(|| {
                        UserError::new(format!("unknown theme `{name}`")).with_hint(format!(
                    "built-in themes: {}; or put NAME.toml in the config dir's themes/ folder",
                    BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ))
                    })?;
            let text = std::fs::read_to_string(&path).map_err(|e| file_error(&path, e))?;
            parse_theme(&text, &path)?
        };
        if !config.colors.is_empty() {
            let origin = config_dir
                .map(|d| d.join("config.toml"))
                .unwrap_or_default();
            theme.apply(&config.colors, &origin)?;
        }
        Ok(theme)
    }

    pub fn role_color(&self, role: &str) -> Color {
        match role {
            "user" => self.user,
            "assistant" => self.assistant,
            "system" => self.system,
            _ => self.tool,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_builtin_themes_load() {
        for (name, _) in BUILTIN {
            let t = Theme::builtin(name).unwrap();
            assert_eq!(&t.name, name);
        }
        assert_ne!(Theme::builtin("dark"), Theme::builtin("light"));
    }

    #[test]
    fn config_overrides_colours_and_picks_theme() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            "theme = \"light\"\n[colors]\naccent = \"#ff0000\"\n",
        )
        .unwrap();
        let t = Theme::resolve(None, Some(dir.path())).unwrap();
        assert_eq!(t.name, "light");
        assert_eq!(t.accent, Color::Rgb(255, 0, 0));
        assert_eq!(t.user, Theme::builtin("light").unwrap().user);
    }

    #[test]
    fn bad_colour_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            "[colors]\nuser = \"blurple\"\n",
        )
        .unwrap();
        let err = Theme::resolve(None, Some(dir.path())).unwrap_err();
        assert!(
            err.message.contains("`user`: not a colour"),
            "{}",
            err.message
        );
    }
}
