//! The Jobs panel (`J`): recipe runs of this session, newest first, each stage with a
//! gauge and the runner's progress line, then the per-endpoint usage when it ends.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::centered;
use crate::stages::runner::progress_line;
use crate::tui::state::{AppState, RunOutcome, RunView};
use crate::tui::theme::Theme;

fn gauge(done: usize, total: usize, width: usize) -> String {
    let filled = (done * width).checked_div(total).unwrap_or(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

fn run_lines(run: &RunView, t: &Theme, out: &mut Vec<Line<'static>>) {
    let (label, color) = match &run.outcome {
        RunOutcome::Running => ("running".to_string(), t.accent),
        RunOutcome::Cancelling => ("stopping after the requests in flight…".to_string(), t.key),
        RunOutcome::Done => ("done".to_string(), t.accent),
        RunOutcome::Interrupted => ("stopped: run it again to resume".to_string(), t.key),
        RunOutcome::Failed(e) => (format!("failed: {e}"), t.error),
    };
    out.push(Line::from(vec![
        Span::styled(
            format!("▌ {} ", run.recipe),
            Style::default().fg(t.fg).add_modifier(Modifier::BOLD),
        ),
        Span::styled(label, Style::default().fg(color)),
    ]));
    for note in run.notes.iter().rev().take(3).rev() {
        out.push(Line::from(Span::styled(
            format!("  {note}"),
            Style::default().fg(t.muted),
        )));
    }
    for stage in &run.stages {
        let p = &stage.progress;
        out.push(Line::from(vec![
            Span::styled(
                format!("  {} ", gauge(p.done, p.total, 20)),
                Style::default().fg(t.accent),
            ),
            Span::styled(
                progress_line(&stage.name, p, stage.elapsed),
                Style::default().fg(t.fg),
            ),
        ]));
        if let Some(sum) = &stage.summary {
            for e in &sum.endpoints {
                out.push(Line::from(Span::styled(
                    format!(
                        "      {} · {}: {} requests, {} failures, {} + {} tokens, peak {} in flight",
                        e.role,
                        e.endpoint,
                        e.requests,
                        e.failures,
                        e.prompt_tokens,
                        e.completion_tokens,
                        e.max_in_flight
                    ),
                    Style::default().fg(t.muted),
                )));
            }
        }
    }
    out.push(Line::from(""));
}

pub fn draw(f: &mut Frame, body: Rect, s: &AppState) {
    let t = &s.theme;
    let area = centered(body, 90, 80);
    f.render_widget(Clear, area);
    let mut lines = Vec::new();
    if s.runs.is_empty() {
        lines.push(Line::from(Span::styled(
            "No recipe has run in this session. Press r and give a recipe file, e.g. assets/demo/recipe.toml.",
            Style::default().fg(t.muted),
        )));
        lines.push(Line::from(Span::styled(
            "Scores land in new columns of the table when a stage finishes; F on one shows its distribution.",
            Style::default().fg(t.muted),
        )));
    }
    for run in s.runs.iter().rev() {
        run_lines(run, t, &mut lines);
    }
    let hints: Vec<String> = s
        .keymap
        .hints("jobs")
        .into_iter()
        .map(|(k, d)| format!("{k} {d}"))
        .collect();
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(t.accent))
        .title(Span::styled(" jobs ", Style::default().fg(t.accent)))
        .title_bottom(Line::from(Span::styled(
            format!(" {} ", hints.join(" · ")),
            Style::default().fg(t.muted),
        )))
        .style(Style::default().fg(t.fg).bg(t.bg));
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}
