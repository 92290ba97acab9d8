//! `?`: every binding of every mode, generated from the keymap.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::centered;
use crate::tui::keymap::MODES;
use crate::tui::state::AppState;

pub fn help_lines(s: &AppState) -> Vec<Line<'static>> {
    let t = &s.theme;
    let mut lines = Vec::new();
    // The screen help was opened from comes first.
    let first = if s.vote.is_some() {
        Some("vote")
    } else if s.review.as_ref().is_some_and(|r| r.active) {
        Some("review")
    } else {
        None
    };
    let modes = first
        .into_iter()
        .chain(MODES.iter().copied().filter(|m| Some(*m) != first));
    for mode in modes {
        let bindings = s.keymap.bindings(mode);
        if bindings.is_empty() {
            continue;
        }
        lines.push(Line::from(Span::styled(
            mode.to_string(),
            Style::default().fg(t.accent).add_modifier(Modifier::BOLD),
        )));
        for b in bindings {
            lines.push(Line::from(vec![
                Span::styled(
                    format!("  {:<26}", b.on.join(", ")),
                    Style::default().fg(t.key),
                ),
                Span::styled(b.desc.clone(), Style::default().fg(t.fg)),
            ]));
        }
        lines.push(Line::from(""));
    }
    lines.push(Line::from(Span::styled(
        "filter: len(x) lower(x) contains(x,\"s\") startswith endswith is_null · == != < <= > >= ~regex · and or not",
        Style::default().fg(t.muted),
    )));
    lines
}

pub fn draw(f: &mut Frame, body: Rect, s: &AppState) {
    let t = &s.theme;
    let area = centered(body, 80, 90);
    f.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(t.accent))
        .title(Span::styled(
            " help · keys (edit ~/.config/gleaner/keymap.toml) ",
            Style::default().fg(t.accent),
        ))
        .style(Style::default().fg(t.fg).bg(t.bg));
    let lines = help_lines(s);
    let inner_h = block.inner(area).height as usize;
    let scroll = s.help_scroll.min(lines.len().saturating_sub(inner_h));
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .scroll((scroll as u16, 0)),
        area,
    );
}
