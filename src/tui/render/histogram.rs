//! The `F` overlay: bins (or value counts) with bars, and describe statistics.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::centered;
use crate::tui::state::AppState;

fn fmt(x: Option<f64>) -> String {
    match x {
        Some(v) if v.fract() == 0.0 && v.abs() < 1e12 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
        None => "-".into(),
    }
}

pub fn draw(f: &mut Frame, body: Rect, s: &AppState) {
    let Some(h) = &s.hist else { return };
    let t = &s.theme;
    let area = centered(body, 90, 90);
    f.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(t.accent))
        .title(Span::styled(
            format!(" {} · {} rows in view ", h.column, s.view.rows.len()),
            Style::default().fg(t.accent).add_modifier(Modifier::BOLD),
        ))
        .style(Style::default().fg(t.fg).bg(t.bg));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let Some(d) = &h.dist else {
        let msg = match &h.error {
            Some(e) => Span::styled(format!("cannot compute: {e}"), Style::default().fg(t.error)),
            None => Span::styled("computing…", Style::default().fg(t.muted)),
        };
        f.render_widget(Paragraph::new(msg), inner);
        return;
    };
    let [bins_area, stats_area] =
        Layout::horizontal([Constraint::Min(30), Constraint::Length(24)]).areas(inner);
    let label_w = d
        .bins
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 28);
    let max = d.bins.iter().map(|b| b.count).max().unwrap_or(1).max(1);
    let count_w = max.to_string().len().max(5);
    let bar_w = (bins_area.width as usize).saturating_sub(label_w + count_w + 4);
    let height = bins_area.height as usize;
    let first = h.selected.saturating_sub(height.saturating_sub(1));
    let lines: Vec<Line> = d
        .bins
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(i, b)| {
            let n = (b.count * bar_w).div_ceil(max);
            let label: String = b.label.chars().take(label_w).collect();
            let selected = i == h.selected;
            let base = if selected {
                Style::default()
                    .fg(t.selected_fg)
                    .bg(t.selected_bg)
                    .add_modifier(Modifier::BOLD)
            } else {
                Style::default().fg(t.fg)
            };
            Line::from(vec![
                Span::styled(format!("{label:>label_w$} "), base),
                Span::styled(format!("{:>count_w$} ", b.count), base),
                Span::styled("█".repeat(n), Style::default().fg(t.hist_bar)),
            ])
        })
        .collect();
    f.render_widget(Paragraph::new(lines), bins_area);
    let mut stats = vec![Line::from(Span::styled(
        "describe",
        Style::default().fg(t.accent).add_modifier(Modifier::BOLD),
    ))];
    match &d.describe {
        Some(x) => {
            for (k, v) in [
                ("n", Some(x.n as f64)),
                ("nulls", Some(x.nulls as f64)),
                ("mean", x.mean),
                ("std", x.std),
                ("min", x.min),
                ("25%", x.q25),
                ("50%", x.median),
                ("75%", x.q75),
                ("max", x.max),
            ] {
                stats.push(Line::from(vec![
                    Span::styled(format!("{k:<6}"), Style::default().fg(t.muted)),
                    Span::raw(format!("{:>14}", fmt(v))),
                ]));
            }
        }
        None => {
            stats.push(Line::from(format!(
                "distinct {:>11}",
                d.distinct.unwrap_or(0)
            )));
            stats.push(Line::from(format!("nulls    {:>11}", d.nulls)));
            stats.push(Line::from(format!("shown    {:>11}", d.bins.len())));
        }
    }
    stats.push(Line::from(""));
    stats.push(Line::from(Span::styled(
        "enter: filter to bin",
        Style::default().fg(t.muted),
    )));
    f.render_widget(Paragraph::new(stats), stats_area);
}
