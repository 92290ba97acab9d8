//! The reader: a sample's turns with role colours, wrapped to the pane, code blocks
//! kept readable, search matches highlighted. Only the visible lines are built, so a
//! 10 MB field costs a width pass, not a 10 MB render.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use unicode_width::UnicodeWidthChar;

use super::highlight_spans;
use crate::data::record::Record;
use crate::tui::state::{AppState, Mode};
use crate::tui::theme::Theme;

/// One wrapped display line before styling.
enum Piece<'a> {
    Header { role: &'a str, turn: usize },
    Text { text: &'a str, code: bool },
    Blank,
}

/// Split `text` into pieces no wider than `width`, breaking at spaces when possible.
fn wrap<'a>(text: &'a str, width: usize, out: &mut dyn FnMut(&'a str)) {
    let width = width.max(1);
    let mut start = 0;
    let mut cols = 0;
    let mut last_space: Option<usize> = None;
    let mut i = 0;
    let bytes = text.len();
    while i < bytes {
        let ch = text[i..].chars().next().expect("in bounds");
        let w = ch.width().unwrap_or(0);
        if cols + w > width && i > start {
            let cut = match last_space {
                Some(sp) if sp > start => sp + 1,
                _ => i,
            };
            out(&text[start..cut]);
            start = cut;
            last_space = None;
            cols = text[start..i].chars().map(|c| c.width().unwrap_or(0)).sum();
        }
        if ch == ' ' {
            last_space = Some(i);
        }
        cols += w;
        i += ch.len_utf8();
    }
    if start < bytes || bytes == 0 {
        out(&text[start..]);
    }
}

/// Plain text wrapped to `width`, line by line; false once `go` wants no more.
fn plain<'a>(text: &'a str, width: usize, go: &mut dyn FnMut(Piece<'a>) -> bool) -> bool {
    for raw in text.split('\n') {
        let mut more = true;
        wrap(raw, width, &mut |piece| {
            if more {
                more = go(Piece::Text {
                    text: piece,
                    code: false,
                });
            }
        });
        if !more {
            return false;
        }
    }
    true
}

/// Walk every display line of a record; `visit` gets the line index and its piece.
/// `fields` are the row's stage outputs (`name: value`), shown after the conversation.
fn walk<'a>(
    record: &'a Record,
    fields: &'a [String],
    width: usize,
    visit: &mut dyn FnMut(usize, Piece<'a>) -> bool,
) {
    let mut n = 0;
    let mut turn = 0;
    let mut go = |n: &mut usize, p: Piece<'a>| -> bool {
        let more = visit(*n, p);
        *n += 1;
        more
    };
    for m in &record.messages {
        if m.role == "user" {
            turn += 1;
        }
        if !go(
            &mut n,
            Piece::Header {
                role: &m.role,
                turn,
            },
        ) {
            return;
        }
        let mut in_code = false;
        for raw in m.content.split('\n') {
            let fence = raw.trim_start().starts_with("```");
            let code = in_code || fence;
            let avail = if code { width.saturating_sub(2) } else { width };
            let mut stop = false;
            wrap(raw, avail, &mut |piece| {
                if !stop && !go(&mut n, Piece::Text { text: piece, code }) {
                    stop = true;
                }
            });
            if stop {
                return;
            }
            if fence {
                in_code = !in_code;
            }
        }
        if !go(&mut n, Piece::Blank) {
            return;
        }
    }
    if let (Some(c), Some(r)) = (&record.chosen, &record.rejected) {
        for (label, text) in [("chosen", c), ("rejected", r)] {
            if !go(
                &mut n,
                Piece::Header {
                    role: label,
                    turn: 0,
                },
            ) {
                return;
            }
            if !plain(text, width, &mut |p| go(&mut n, p)) {
                return;
            }
        }
    }
    if fields.is_empty() {
        return;
    }
    if !go(
        &mut n,
        Piece::Header {
            role: "stage outputs",
            turn: 0,
        },
    ) {
        return;
    }
    for field in fields {
        if !plain(field, width, &mut |p| go(&mut n, p)) {
            return;
        }
    }
}

/// Total display lines of a record at this width.
pub fn line_count(record: &Record, fields: &[String], width: usize) -> usize {
    let mut total = 0;
    walk(record, fields, width, &mut |i, _| {
        total = i + 1;
        true
    });
    total
}

/// The styled lines `[skip, skip + take)`.
pub fn visible_lines(
    record: &Record,
    fields: &[String],
    width: usize,
    skip: usize,
    take: usize,
    theme: &Theme,
    query: Option<&str>,
) -> Vec<Line<'static>> {
    let mut out = Vec::with_capacity(take);
    walk(record, fields, width, &mut |i, piece| {
        if i < skip {
            return true;
        }
        if out.len() >= take {
            return false;
        }
        out.push(match piece {
            Piece::Header { role, turn } => {
                let label = if turn > 0 && role == "user" {
                    format!("▌ {role} · turn {turn}")
                } else {
                    format!("▌ {role}")
                };
                Line::from(Span::styled(
                    label,
                    Style::default()
                        .fg(theme.role_color(role))
                        .add_modifier(Modifier::BOLD),
                ))
            }
            Piece::Text { text, code: true } => {
                let style = Style::default().fg(theme.code_fg).bg(theme.code_bg);
                let mut spans = vec![Span::styled(
                    "│ ",
                    Style::default().fg(theme.muted).bg(theme.code_bg),
                )];
                spans.extend(highlight_spans(text, query, style, theme));
                Line::from(spans)
            }
            Piece::Text { text, code: false } => Line::from(highlight_spans(
                text,
                query,
                Style::default().fg(theme.fg),
                theme,
            )),
            Piece::Blank => Line::from(""),
        });
        true
    });
    out
}

pub fn draw(f: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let focused = s.mode == Mode::Reader;
    let border = Style::default().fg(if focused { t.accent } else { t.muted });
    let title = match (&s.reader.record, s.current_row()) {
        (Some(r), _) => {
            let marked = if s.current_row().is_some_and(|row| s.marks.contains(&row)) {
                " ● marked"
            } else {
                ""
            };
            format!(
                " {} · line {} · {} turn{}{marked} ",
                r.id,
                r.line,
                r.turns(),
                if r.turns() == 1 { "" } else { "s" }
            )
        }
        (None, Some(_)) => " loading… ".to_string(),
        (None, None) => " no row ".to_string(),
    };
    let mut block = Block::default()
        .borders(Borders::ALL)
        .border_style(border)
        .title(Span::styled(title, Style::default().fg(t.accent)));
    let inner = block.inner(area);
    let query = s
        .search
        .as_ref()
        .map(|x| x.query.as_str())
        .filter(|q| !q.is_empty());
    let lines = match (&s.reader.record, &s.reader.error) {
        (_, Some(e)) => vec![Line::from(Span::styled(
            format!("cannot load: {e}"),
            Style::default().fg(t.error),
        ))],
        (Some(r), None) => {
            let width = inner.width.saturating_sub(1) as usize;
            let total = match s.reader.lines {
                Some((w, n)) if w == width => n,
                _ => line_count(r, &s.reader.fields, width),
            };
            let height = inner.height as usize;
            let skip = s.reader.scroll.min(total.saturating_sub(height));
            let lines = visible_lines(r, &s.reader.fields, width, skip, height, t, query);
            if total > height {
                let pct = ((skip + height) * 100 / total).min(100);
                block = block.title_bottom(
                    Line::from(Span::styled(
                        format!(" [{pct}%] "),
                        Style::default().fg(t.muted),
                    ))
                    .right_aligned(),
                );
            }
            lines
        }
        (None, None) => vec![],
    };
    f.render_widget(Paragraph::new(lines).block(block), area);
}
