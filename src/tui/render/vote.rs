//! The voting screen: Left and Right (never their sources), the aspects with the
//! annotator's choices, progress, and for an adjudicator the annotators' votes as they
//! appear from this side. Reads only [`VoteView`].

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::centered;
use super::review::draw_pair;
use crate::eval::votes::Side;
use crate::tui::state::AppState;
use crate::tui::theme::Theme;
use crate::tui::vote::VoteView;

pub fn title_spans(v: &VoteView, bar: Style, t: &Theme) -> Vec<Span<'static>> {
    let width = 20usize;
    let filled = (v.submitted * width)
        .checked_div(v.total)
        .unwrap_or(width)
        .min(width);
    let role = if v.adjudicator {
        "adjudicating"
    } else {
        "annotating"
    };
    vec![
        Span::styled(
            format!("eval {} ", v.session),
            bar.add_modifier(Modifier::BOLD),
        ),
        Span::styled(format!("│ {role} as {} ", v.annotator), bar),
        Span::styled(
            format!(
                "│ [{}{}] {} of {} submitted ",
                "█".repeat(filled),
                "░".repeat(width.saturating_sub(filled)),
                v.submitted,
                v.total
            ),
            bar.fg(t.ok),
        ),
    ]
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Left => "Left",
        Side::Tie => "Tie",
        Side::Right => "Right",
    }
}

fn aspect_lines(v: &VoteView, t: &Theme) -> Vec<Line<'static>> {
    let Some(item) = v.item() else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for (k, aspect) in item.aspects.iter().enumerate() {
        let focused = k == v.aspect;
        let mut spans = vec![Span::styled(
            format!("{} {:<20}", if focused { "▸" } else { " " }, aspect),
            if focused {
                Style::default().fg(t.accent).add_modifier(Modifier::BOLD)
            } else {
                Style::default().fg(t.fg)
            },
        )];
        for side in [Side::Left, Side::Tie, Side::Right] {
            let chosen = v.choices.get(k).copied().flatten() == Some(side);
            let label = match side {
                Side::Left => "◀ Left better",
                Side::Tie => "= Tie",
                Side::Right => "Right better ▶",
            };
            // Brackets as well as colour, so the choice shows on any terminal.
            let label = if chosen {
                format!("[{label}]")
            } else {
                format!(" {label} ")
            };
            spans.push(Span::styled(
                label,
                if chosen {
                    Style::default()
                        .fg(t.selected_fg)
                        .bg(t.selected_bg)
                        .add_modifier(Modifier::BOLD)
                } else {
                    Style::default().fg(t.muted)
                },
            ));
            spans.push(Span::raw(" "));
        }
        if let Some(others) = item.others.get(k) {
            let votes: Vec<String> = others
                .iter()
                .map(|(who, s)| format!("{who}: {}", s.map_or("–", side_name)))
                .collect();
            spans.push(Span::styled(
                format!("  votes: {}", votes.join(", ")),
                Style::default().fg(t.key),
            ));
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::from(vec![
        Span::styled("  comment: ", Style::default().fg(t.muted)),
        Span::raw(if v.comment.is_empty() {
            "–".to_string()
        } else {
            v.comment.clone()
        }),
    ]));
    lines
}

pub fn draw(f: &mut Frame, body: Rect, s: &AppState) {
    let Some(v) = &s.vote else { return };
    let t = &s.theme;
    let Some(item) = v.item() else {
        f.render_widget(
            Paragraph::new(vec![
                Line::from(""),
                Line::from(Span::styled(
                    format!(
                        "  All done: {} of {} submitted. Every vote is saved; q quits.",
                        v.submitted, v.total
                    ),
                    Style::default().fg(t.ok).add_modifier(Modifier::BOLD),
                )),
            ]),
            body,
        );
        return;
    };
    let panel_h = item.aspects.len() as u16 + 3;
    let [texts, panel] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(panel_h)]).areas(body);
    draw_pair(
        f,
        texts,
        (" Left ", &item.left),
        (" Right ", &item.right),
        v.diff.then_some(" Left → Right (word diff) "),
        v.scroll,
        t,
    );
    let border = Style::default().fg(t.muted);
    let block = Block::default()
        .borders(Borders::TOP)
        .border_style(border)
        .title(Span::styled(
            " which is better? 1 left · 2 tie · 3 right · enter submits ",
            Style::default().fg(t.accent),
        ));
    f.render_widget(Paragraph::new(aspect_lines(v, t)).block(block), panel);
    if v.show_guidelines {
        let area = centered(body, 70, 60);
        f.render_widget(Clear, area);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(Style::default().fg(t.accent))
            .title(" guidelines (any key closes; g shows them again) ")
            .style(Style::default().fg(t.fg).bg(t.bg));
        f.render_widget(
            Paragraph::new(v.guidelines.clone())
                .block(block)
                .wrap(Wrap { trim: false }),
            area,
        );
    }
}
