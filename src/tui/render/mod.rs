//! Drawing: a pure function of [`AppState`]. Layout: title bar, table, reader pane,
//! bottom bar (input, status or key hints), with histogram and help as overlays.

mod eval_report;
mod help;
mod histogram;
mod jobs;
pub mod reader;
pub mod review;
mod table;
pub mod vote;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::state::{AppState, InputKind, Level, Mode};
use super::theme::Theme;

pub fn draw(f: &mut Frame, s: &AppState) {
    let area = f.area();
    let t = &s.theme;
    f.render_widget(
        Block::default().style(Style::default().fg(t.fg).bg(t.bg)),
        area,
    );
    let [title, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_title(f, title, s);
    let reviewing = s.review.as_ref().is_some_and(|r| r.active);
    if s.eval_report.is_some() && s.mode == Mode::Browse {
        eval_report::draw(f, body, s);
    } else if s.vote.is_some() {
        vote::draw(f, body, s);
    } else if reviewing {
        review::draw(f, body, s);
    } else if s.zoom {
        reader::draw(f, body, s);
    } else if s.show_reader {
        let [top, rest] =
            Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(body);
        table::draw(f, top, s);
        reader::draw(f, rest, s);
    } else {
        table::draw(f, body, s);
    }
    draw_bottom(f, bottom, s);
    match s.mode {
        Mode::Histogram => histogram::draw(f, body, s),
        Mode::Help => help::draw(f, body, s),
        Mode::Jobs => jobs::draw(f, body, s),
        Mode::Input if s.input.as_ref().is_some_and(|i| i.from == Mode::Jobs) => {
            jobs::draw(f, body, s)
        }
        _ => {}
    }
}

fn draw_title(f: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let bar = Style::default().fg(t.bar_fg).bg(t.bar_bg);
    if let Some(r) = s.eval_report.as_ref().filter(|_| s.mode == Mode::Browse) {
        let spans = vec![
            Span::styled(" gleaner ", bar.fg(t.accent).add_modifier(Modifier::BOLD)),
            Span::styled(
                format!("eval report {} ", r.session),
                bar.add_modifier(Modifier::BOLD),
            ),
            Span::styled("│ j/k scroll · esc back · q quit ", bar.fg(t.muted)),
        ];
        f.render_widget(Paragraph::new(Line::from(spans)).style(bar), area);
        return;
    }
    if let Some(v) = &s.vote {
        let mut spans = vec![Span::styled(
            " gleaner ",
            bar.fg(t.accent).add_modifier(Modifier::BOLD),
        )];
        spans.extend(vote::title_spans(v, bar, t));
        f.render_widget(Paragraph::new(Line::from(spans)).style(bar), area);
        return;
    }
    if let Some(v) = s.review.as_ref().filter(|r| r.active) {
        let mut spans = vec![Span::styled(
            " gleaner ",
            bar.fg(t.accent).add_modifier(Modifier::BOLD),
        )];
        spans.extend(review::title_spans(v, bar, t));
        f.render_widget(Paragraph::new(Line::from(spans)).style(bar), area);
        return;
    }
    let mut spans = vec![
        Span::styled(" gleaner ", bar.fg(t.accent).add_modifier(Modifier::BOLD)),
        Span::styled(format!("{} ", s.title), bar.add_modifier(Modifier::BOLD)),
        Span::styled(
            format!("│ {} of {} rows ", s.view.rows.len(), s.total_rows),
            bar,
        ),
    ];
    if s.loading {
        spans.push(Span::styled("│ loading… ", bar.fg(t.key)));
    }
    if let Some(filter) = &s.view.filter {
        spans.push(Span::styled(format!("│ filter: {filter} "), bar.fg(t.key)));
    }
    if s.view_pending {
        spans.push(Span::styled("│ working… (esc cancels) ", bar.fg(t.key)));
    }
    if let Some((col, desc)) = &s.view.sort {
        spans.push(Span::styled(
            format!("│ sort: {col} {} ", if *desc { "▼" } else { "▲" }),
            bar,
        ));
    }
    if let Some(search) = &s.search {
        let state = match (&search.matches, search.progress) {
            (Some(m), _) => format!("{} rows", m.len()),
            (None, Some((done, total))) => format!("{}%", done * 100 / total.max(1)),
            (None, None) => "…".into(),
        };
        spans.push(Span::styled(format!("│ /{} {state} ", search.query), bar));
    }
    if !s.marks.is_empty() {
        spans.push(Span::styled(
            format!("│ ● {} marked ", s.marks.len()),
            bar.fg(t.marked),
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)).style(bar), area);
}

fn draw_bottom(f: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let bar = Style::default().fg(t.bar_fg).bg(t.bar_bg);
    if let (Mode::Input, Some(inp)) = (s.mode, &s.input) {
        let prompt = match inp.kind {
            InputKind::Search => "/",
            InputKind::Filter => "filter: ",
            InputKind::Recipe => "run recipe: ",
            InputKind::Comment => "comment: ",
        };
        let mut spans = vec![
            Span::styled(prompt, bar.fg(t.key).add_modifier(Modifier::BOLD)),
            Span::styled(inp.text.clone(), bar),
            Span::styled("█", bar.fg(t.accent)),
        ];
        match &inp.error {
            Some(e) => spans.push(Span::styled(format!("  {e}"), bar.fg(t.error))),
            None if inp.kind == InputKind::Recipe => spans.push(Span::styled(
                "  a recipe TOML path (relative to where gleaner started)",
                bar.fg(t.muted),
            )),
            None if inp.kind == InputKind::Filter => spans.push(Span::styled(
                "  e.g. len(output) < 20 and category == \"open_qa\"",
                bar.fg(t.muted),
            )),
            None => {}
        }
        f.render_widget(Paragraph::new(Line::from(spans)).style(bar), area);
        return;
    }
    if let Some((msg, level)) = &s.status {
        let color = if *level == Level::Error {
            t.error
        } else {
            t.ok
        };
        f.render_widget(
            Paragraph::new(Span::styled(format!(" {msg}"), bar.fg(color))).style(bar),
            area,
        );
        return;
    }
    let mut spans = Vec::new();
    for (key, desc) in s.keymap.hints(s.mode.keymap_name()) {
        spans.push(Span::styled(
            format!(" {key}"),
            bar.fg(t.key).add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::styled(format!(" {desc} "), bar));
    }
    if let Some(c) = s.focused_column().filter(|_| s.mode == Mode::Browse) {
        spans.push(Span::styled(
            format!(" │ column: {}", c.title),
            bar.fg(t.muted),
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)).style(bar), area);
}

/// Split `text` into spans, highlighting case-insensitive matches of `query`.
pub fn highlight_spans(
    text: &str,
    query: Option<&str>,
    base: Style,
    t: &Theme,
) -> Vec<Span<'static>> {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return vec![Span::styled(text.to_string(), base)];
    };
    let smart = q.chars().any(char::is_uppercase);
    let (hay, needle) = if smart {
        (text.to_string(), q.to_string())
    } else {
        (text.to_lowercase(), q.to_lowercase())
    };
    // Lowercasing can change byte lengths (rare scripts); highlight only when it did not.
    if hay.len() != text.len() {
        return vec![Span::styled(text.to_string(), base)];
    }
    let hit = base
        .fg(t.match_fg)
        .bg(t.match_bg)
        .add_modifier(Modifier::BOLD);
    let mut spans = Vec::new();
    let mut last = 0;
    for (start, m) in hay.match_indices(&needle) {
        if start > last {
            spans.push(Span::styled(text[last..start].to_string(), base));
        }
        spans.push(Span::styled(text[start..start + m.len()].to_string(), hit));
        last = start + m.len();
    }
    if last < text.len() || spans.is_empty() {
        spans.push(Span::styled(text[last..].to_string(), base));
    }
    spans
}

/// A rectangle centred in `area`, `pct_x`/`pct_y` percent of its size.
pub fn centered(area: Rect, pct_x: u16, pct_y: u16) -> Rect {
    let w = area.width * pct_x / 100;
    let h = area.height * pct_y / 100;
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}
