//! The virtualized browse table: only the rows on screen are built.

use polars::prelude::*;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Row, Table};

use super::highlight_spans;
use crate::tui::state::{AppState, Mode};

fn cell_text(value: AnyValue) -> String {
    match value {
        AnyValue::Null => "·".into(),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Float32(v) => format!("{v:.3}"),
        AnyValue::Float64(v) => {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.3}")
            }
        }
        AnyValue::Boolean(b) => {
            if b {
                "yes".into()
            } else {
                "no".into()
            }
        }
        other => other.to_string(),
    }
}

/// Width a column needs to be readable; text columns that fill the rest get at least 20.
fn need(c: &crate::tui::state::ColumnSpec) -> u16 {
    if c.width == 0 { 20 } else { c.width }
}

/// The columns that fit in `width`: the first (`id`) always, then a window that starts
/// as far left as it can while keeping the focused column on screen. Columns are never
/// squeezed below their width; the rest are reached with h/l.
pub fn visible_columns(s: &AppState, width: u16) -> Vec<usize> {
    let n = s.columns.len();
    if n == 0 {
        return Vec::new();
    }
    let avail = width.saturating_sub(3) as i32; // borders + marker column
    let pinned = need(&s.columns[0]) as i32 + 1;
    let cost = |i: usize| need(&s.columns[i]) as i32 + 1;
    let focus = s.col_focus.min(n - 1);
    let mut start = 1;
    while start < focus && (start..=focus).map(cost).sum::<i32>() + pinned > avail {
        start += 1;
    }
    let mut out = vec![0];
    let mut used = pinned;
    for i in start..n {
        if used + cost(i) > avail && out.len() > 1 {
            break;
        }
        used += cost(i);
        out.push(i);
    }
    out
}

pub fn draw(f: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let focused = s.mode != Mode::Reader;
    let shown = visible_columns(s, area.width);
    let mut block = Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(if focused { t.accent } else { t.muted }));
    if shown.len() < s.columns.len() {
        let left = shown.get(1).is_some_and(|&i| i > 1);
        let right = shown.last().is_some_and(|&i| i + 1 < s.columns.len());
        block = block.title(
            Line::from(Span::styled(
                format!(
                    " {}columns {}–{} of {}{} (h/l) ",
                    if left { "◀ " } else { "" },
                    shown.get(1).map_or(1, |i| i + 1),
                    shown.last().map_or(1, |i| i + 1),
                    s.columns.len(),
                    if right { " ▶" } else { "" },
                ),
                Style::default().fg(t.muted),
            ))
            .right_aligned(),
        );
    }
    let inner_height = block.inner(area).height.saturating_sub(1) as usize;
    let query = s
        .search
        .as_ref()
        .map(|x| x.query.as_str())
        .filter(|q| !q.is_empty());
    let matches = s.search.as_ref().and_then(|x| x.matches.clone());
    let header_style = Style::default()
        .fg(t.header_fg)
        .bg(t.header_bg)
        .add_modifier(Modifier::BOLD);
    let mut header = vec![Cell::from(" ").style(header_style)];
    let mut widths = vec![Constraint::Length(1)];
    for &i in &shown {
        let c = &s.columns[i];
        let mut title = c.title.clone();
        if let Some((col, desc)) = &s.view.sort
            && *col == c.name
        {
            title.push_str(if *desc { " ▼" } else { " ▲" });
        }
        let style = if i == s.col_focus && s.mode == Mode::Browse {
            header_style.bg(t.focus_header_bg)
        } else {
            header_style
        };
        header.push(Cell::from(title).style(style));
        widths.push(if c.width == 0 {
            Constraint::Fill(1)
        } else {
            Constraint::Length(c.width)
        });
    }
    let end = (s.offset + inner_height).min(s.view.rows.len());
    // Gather the visible rows once: random access into a many-chunk column is slow.
    let visible = IdxCa::from_vec("idx".into(), s.view.rows[s.offset.min(end)..end].to_vec());
    let page: Vec<Option<Column>> = shown
        .iter()
        .map(|&i| &s.columns[i])
        .map(|c| {
            s.table
                .column(&c.name)
                .ok()
                .and_then(|col| col.take(&visible).ok())
        })
        .collect();
    let mut rows = Vec::with_capacity(end.saturating_sub(s.offset));
    for pos in s.offset..end {
        let row = s.view.rows[pos];
        let marked = s.marks.contains(&row);
        let is_match = matches
            .as_ref()
            .is_some_and(|m| m.binary_search(&row).is_ok());
        let mut cells = vec![
            Cell::from(if marked {
                "●"
            } else if is_match {
                "›"
            } else {
                " "
            })
            .style(Style::default().fg(if marked { t.marked } else { t.match_bg })),
        ];
        for (spec, col) in shown.iter().map(|&i| &s.columns[i]).zip(&page) {
            let text = col
                .as_ref()
                .and_then(|c| c.get(pos - s.offset).ok())
                .map(cell_text)
                .unwrap_or_default();
            let cell = if spec.numeric {
                Cell::from(Line::from(text).right_aligned())
            } else if spec.width == 0 {
                Cell::from(Line::from(highlight_spans(
                    &text,
                    query,
                    Style::default(),
                    t,
                )))
            } else {
                Cell::from(Span::raw(text))
            };
            cells.push(cell);
        }
        let mut style = Style::default().fg(t.fg);
        if pos == s.view.cursor {
            style = style
                .fg(t.selected_fg)
                .bg(t.selected_bg)
                .add_modifier(Modifier::BOLD);
        } else if marked {
            style = style.fg(t.marked);
        }
        rows.push(Row::new(cells).style(style));
    }
    let empty = rows.is_empty();
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(header_style))
        .column_spacing(1)
        .block(block);
    f.render_widget(table, area);
    if empty {
        let msg = if s.view.filter.is_some() {
            "no rows match the filter (ctrl-l clears it, u undoes)"
        } else {
            "no rows"
        };
        let inner = Block::default().borders(Borders::ALL).inner(area);
        if inner.height > 1 {
            let line = Rect {
                y: inner.y + 1,
                height: 1,
                ..inner
            };
            f.render_widget(
                ratatui::widgets::Paragraph::new(Span::styled(
                    format!("  {msg}"),
                    Style::default().fg(t.muted),
                )),
                line,
            );
        }
    }
}
