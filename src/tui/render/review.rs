//! The revision review screen: original and revision side by side (or one inline word
//! diff), scrolling together; the round trace and consistency scores below; a bulk
//! confirmation on top. Reads only [`ReviewView`].

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use similar::{ChangeTag, TextDiff};

use super::centered;
use crate::review::ReviewItem;
use crate::store::decisions::{ReviewState, Texts};
use crate::tui::review::ReviewView;
use crate::tui::state::AppState;
use crate::tui::theme::Theme;

/// A field's heading and how to read it from a sample.
type Field = (&'static str, fn(&Texts) -> &str);

const FIELDS: [Field; 3] = [
    ("INSTRUCTION", |t| &t.instruction),
    ("INPUT", |t| &t.input),
    ("OUTPUT", |t| &t.output),
];

/// The title bar's review part: progress is always in view.
pub fn title_spans(v: &ReviewView, bar: Style, t: &Theme) -> Vec<Span<'static>> {
    let mut spans = vec![
        Span::styled(
            format!("review {} ", v.stage),
            bar.add_modifier(Modifier::BOLD),
        ),
        Span::styled(
            format!("│ reviewed {} of {} ", v.reviewed(), v.items.len()),
            bar.fg(t.ok),
        ),
        Span::styled(
            format!("│ filter: {} ({}) ", v.filter.name(), v.visible.len()),
            bar.fg(t.key),
        ),
    ];
    if let Some(item) = v.item() {
        spans.push(Span::styled(
            format!(
                "│ item {} of {} · {} ",
                v.cursor + 1,
                v.visible.len(),
                item.id
            ),
            bar,
        ));
    }
    spans.push(Span::styled(format!("│ as {} ", v.who), bar.fg(t.muted)));
    spans
}

fn state_style(state: ReviewState, t: &Theme) -> Style {
    let c = match state {
        ReviewState::Pending => t.key,
        ReviewState::Approved | ReviewState::Edited => t.ok,
        ReviewState::Rejected => t.error,
    };
    Style::default().fg(c).add_modifier(Modifier::BOLD)
}

/// `PENDING · revised · eval 4/10 · 1 round · instruction cos 0.93 · …`
fn status_line(item: &ReviewItem, t: &Theme) -> Line<'static> {
    let muted = Style::default().fg(t.muted);
    let mut spans = vec![
        Span::styled(
            format!(" {} ", item.state().name().to_uppercase()),
            state_style(item.state(), t),
        ),
        Span::styled(format!("· refine: {} ", item.refine_state), muted),
    ];
    if !item.proposed {
        spans.push(Span::styled(
            "(not proposed) ",
            Style::default().fg(t.error),
        ));
    }
    if let Some(s) = item.eval_score {
        spans.push(Span::styled(format!("· eval {s}/10 "), muted));
    }
    let rounds = item.rounds.len();
    spans.push(Span::styled(
        format!("· {rounds} round{} ", if rounds == 1 { "" } else { "s" }),
        muted,
    ));
    if let Some(c) = item.instruction_similarity {
        spans.push(Span::styled(format!("· instruction cos {c:.2} "), muted));
    }
    if let Some(c) = item.output_similarity {
        spans.push(Span::styled(format!("· output cos {c:.2} "), muted));
    }
    if item.drifted {
        spans.push(Span::styled(
            "· DRIFTED ",
            Style::default().fg(t.error).add_modifier(Modifier::BOLD),
        ));
    }
    if item.current.edit.is_some() {
        spans.push(Span::styled("· human-edited ", Style::default().fg(t.ok)));
    }
    Line::from(spans)
}

fn side_lines(texts: &Texts, t: &Theme) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for (name, get) in FIELDS {
        lines.push(Line::from(Span::styled(
            name,
            Style::default().fg(t.accent).add_modifier(Modifier::BOLD),
        )));
        let text = get(texts);
        if text.is_empty() {
            lines.push(Line::from(Span::styled(
                "(empty)",
                Style::default().fg(t.muted),
            )));
        } else {
            lines.extend(text.lines().map(|l| Line::from(l.to_string())));
        }
        lines.push(Line::from(""));
    }
    lines
}

/// Word-level diff of original → revised, field by field.
pub fn diff_lines(old: &Texts, new: &Texts, t: &Theme) -> Vec<Line<'static>> {
    let del = Style::default()
        .fg(t.error)
        .add_modifier(Modifier::CROSSED_OUT);
    let ins = Style::default().fg(t.ok).add_modifier(Modifier::UNDERLINED);
    let mut lines = Vec::new();
    for (name, get) in FIELDS {
        lines.push(Line::from(Span::styled(
            name,
            Style::default().fg(t.accent).add_modifier(Modifier::BOLD),
        )));
        if get(old).is_empty() && get(new).is_empty() {
            lines.push(Line::from(Span::styled(
                "(empty)",
                Style::default().fg(t.muted),
            )));
            lines.push(Line::from(""));
            continue;
        }
        let mut line: Vec<Span<'static>> = Vec::new();
        for (tag, value) in word_runs(get(old), get(new)) {
            // git's --word-diff=plain marks as well as colour, so the diff reads on a
            // terminal without colours too.
            let (style, open, close) = match tag {
                ChangeTag::Equal => (Style::default().fg(t.fg), "", ""),
                ChangeTag::Delete => (del, "[-", "-]"),
                ChangeTag::Insert => (ins, "{+", "+}"),
            };
            let value = value.as_str();
            let marked = if open.is_empty() || value.trim().is_empty() {
                value.to_string()
            } else {
                format!("{open}{value}{close}")
            };
            let mut parts = marked.split('\n').peekable();
            while let Some(part) = parts.next() {
                if !part.is_empty() {
                    line.push(Span::styled(part.to_string(), style));
                }
                if parts.peek().is_some() {
                    lines.push(Line::from(std::mem::take(&mut line)));
                }
            }
        }
        lines.push(Line::from(line));
        lines.push(Line::from(""));
    }
    lines
}

/// The word diff as runs: consecutive changes of one kind, and the spaces between
/// them, joined so `{+three new words+}` reads as one insertion.
fn word_runs(old: &str, new: &str) -> Vec<(ChangeTag, String)> {
    let diff = TextDiff::from_words(old, new);
    let changes: Vec<(ChangeTag, &str)> = diff
        .iter_all_changes()
        .map(|c| (c.tag(), c.value()))
        .collect();
    let mut runs: Vec<(ChangeTag, String)> = Vec::new();
    for (i, (tag, value)) in changes.iter().enumerate() {
        // A space between two changes of the same kind belongs to them.
        let tag = match (i.checked_sub(1).map(|p| changes[p].0), changes.get(i + 1)) {
            (Some(before), Some((after, _)))
                if *tag == ChangeTag::Equal
                    && value.trim().is_empty()
                    && !value.contains('\n')
                    && before == *after
                    && before != ChangeTag::Equal =>
            {
                before
            }
            _ => *tag,
        };
        match runs.last_mut() {
            Some((t, text)) if *t == tag => text.push_str(value),
            _ => runs.push((tag, value.to_string())),
        }
    }
    runs
}

fn trace_lines(item: &ReviewItem, width: usize, t: &Theme) -> Vec<Line<'static>> {
    let muted = Style::default().fg(t.muted);
    let cut = |s: &str, n: usize| -> String {
        let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
        if one.chars().count() > n {
            one.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
        } else {
            one
        }
    };
    let mut lines = Vec::new();
    if item.rounds.is_empty() {
        lines.push(Line::from(Span::styled("no rounds recorded", muted)));
    }
    for r in &item.rounds {
        let verdict = r.winner.as_deref().unwrap_or("–");
        let mut spans = vec![
            Span::styled(format!("r{} ", r.round), Style::default().fg(t.key)),
            Span::styled(
                format!("{verdict:<3} "),
                Style::default()
                    .fg(if verdict == "A" { t.error } else { t.ok })
                    .add_modifier(Modifier::BOLD),
            ),
        ];
        let letter = |w: Option<crate::stages::aido_refine::parse::Winner>| {
            w.map(|w| format!("{w:?}")).unwrap_or_else(|| "?".into())
        };
        let orders = if r.review_raw_ba.is_some() || r.winner_ba.is_some() {
            format!(
                "(orig|rev {} · rev|orig {}{}) ",
                letter(r.winner_ab),
                letter(r.winner_ba),
                if r.orders_disagree { " ≠" } else { "" }
            )
        } else {
            format!("(orig|rev {}) ", letter(r.winner_ab))
        };
        spans.push(Span::styled(orders, muted));
        let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
        let text = r
            .explanation_ab
            .as_deref()
            .or(r.note.as_deref())
            .unwrap_or_default();
        spans.push(Span::raw(cut(text, width.saturating_sub(used))));
        lines.push(Line::from(spans));
    }
    lines
}

/// Two versions side by side, scrolling together, or (with `diff_title`) one inline
/// word diff of the first into the second. The review and voting screens share it.
pub fn draw_pair(
    f: &mut Frame,
    area: Rect,
    first: (&str, &Texts),
    second: (&str, &Texts),
    diff_title: Option<&str>,
    scroll: usize,
    t: &Theme,
) {
    let scroll = (scroll.min(u16::MAX as usize) as u16, 0);
    let pane = |title: &str| {
        Block::default()
            .borders(Borders::ALL)
            .border_style(Style::default().fg(t.muted))
            .title(Span::styled(
                title.to_string(),
                Style::default().fg(t.accent),
            ))
    };
    if let Some(title) = diff_title {
        f.render_widget(
            Paragraph::new(diff_lines(first.1, second.1, t))
                .block(pane(title))
                .wrap(Wrap { trim: false })
                .scroll(scroll),
            area,
        );
        return;
    }
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    for (area, (title, texts)) in [(left, first), (right, second)] {
        f.render_widget(
            Paragraph::new(side_lines(texts, t))
                .block(pane(title))
                .wrap(Wrap { trim: false })
                .scroll(scroll),
            area,
        );
    }
}

pub fn draw(f: &mut Frame, body: Rect, s: &AppState) {
    let Some(v) = &s.review else { return };
    let t = &s.theme;
    let Some(item) = v.item() else {
        f.render_widget(
            Paragraph::new(format!(
                "No items in filter `{}`. f changes the filter.",
                v.filter.name()
            ))
            .style(Style::default().fg(t.muted)),
            body,
        );
        return;
    };
    let trace_h = if v.trace {
        (item.rounds.len().max(1) as u16 + 2).min(body.height / 3)
    } else {
        0
    };
    let [status, texts, trace] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(trace_h),
    ])
    .areas(body);
    f.render_widget(Paragraph::new(status_line(item, t)), status);
    let border = Style::default().fg(t.muted);
    let revised_title = if item.current.edit.is_some() {
        " revised (human-edited) "
    } else {
        " revised "
    };
    draw_pair(
        f,
        texts,
        (" original ", &item.original),
        (revised_title, item.revised()),
        v.diff.then_some(" original → revised (word diff) "),
        v.scroll,
        t,
    );
    if v.trace {
        let block = Block::default()
            .borders(Borders::TOP)
            .border_style(border)
            .title(Span::styled(
                format!(
                    " round trace · verdicts: A original better, B revision better{} ",
                    if item.order_disagreements > 0 {
                        format!(" · orders disagreed {}×", item.order_disagreements)
                    } else {
                        String::new()
                    }
                ),
                Style::default().fg(t.accent),
            ));
        f.render_widget(
            Paragraph::new(trace_lines(item, trace.width as usize, t)).block(block),
            trace,
        );
    }
    if let Some((state, items)) = &v.confirm {
        let area = centered(body, 60, 30);
        f.render_widget(Clear, area);
        let verb = if *state == ReviewState::Approved {
            "Approve"
        } else {
            "Reject"
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(Style::default().fg(t.accent))
            .title(" confirm ")
            .style(Style::default().fg(t.fg).bg(t.bg));
        f.render_widget(
            Paragraph::new(vec![
                Line::from(""),
                Line::from(Span::styled(
                    format!(
                        " {verb} all {} items in filter `{}`?",
                        items.len(),
                        v.filter.name()
                    ),
                    Style::default().add_modifier(Modifier::BOLD),
                )),
                Line::from(""),
                Line::from(Span::styled(
                    " enter confirms · esc cancels · u undoes it afterwards",
                    Style::default().fg(t.muted),
                )),
            ])
            .block(block)
            .wrap(Wrap { trim: false }),
            area,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_runs_join_a_replacement_into_one_deletion_and_one_insertion() {
        let runs = word_runs("Sum the list of numbers.", "Add up the list of numbers.");
        let shown: Vec<(ChangeTag, &str)> = runs.iter().map(|(t, s)| (*t, s.as_str())).collect();
        assert_eq!(
            shown,
            [
                (ChangeTag::Delete, "Sum"),
                (ChangeTag::Insert, "Add up"),
                (ChangeTag::Equal, " the list of numbers."),
            ]
        );
    }
}
