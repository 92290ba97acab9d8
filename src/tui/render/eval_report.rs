//! `gleaner eval report --tui`: the same numbers as the text report, with a stacked
//! win/tie/lose bar per aspect.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::eval::report::{Rate, Report};
use crate::tui::state::AppState;

fn pct(r: &Rate) -> String {
    format!(
        "{:>4} {:>5.1}% [{:>4.1}–{:>4.1}]",
        r.count,
        r.rate * 100.0,
        r.ci_low * 100.0,
        r.ci_high * 100.0
    )
}

fn opt(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3}"))
}

pub fn lines(r: &Report, width: usize, s: &AppState) -> Vec<Line<'static>> {
    let t = &s.theme;
    let head = Style::default().fg(t.accent).add_modifier(Modifier::BOLD);
    let muted = Style::default().fg(t.muted);
    let mut out = vec![
        Line::from(Span::styled(
            format!(
                "{} items · annotators {} · B = {} vs A = {} · win = B better",
                r.items,
                r.annotators.join(", "),
                r.b,
                r.a
            ),
            muted,
        )),
        Line::from(""),
    ];
    let bar_w = width.saturating_sub(24).clamp(10, 60);
    for a in &r.aspects {
        out.push(Line::from(Span::styled(a.aspect.clone(), head)));
        let mut bar = vec![Span::raw("  ")];
        let mut used = 0;
        for (count, color) in [
            (a.win.count, t.ok),
            (a.tie.count, t.muted),
            (a.lose.count, t.error),
            (a.disputed, t.key),
        ] {
            let w = (count * bar_w).checked_div(a.items).unwrap_or(0);
            used += w;
            bar.push(Span::styled("█".repeat(w), Style::default().fg(color)));
        }
        bar.push(Span::raw(" ".repeat(bar_w.saturating_sub(used))));
        out.push(Line::from(bar));
        for (label, rate) in [("win ", &a.win), ("tie ", &a.tie), ("lose", &a.lose)] {
            out.push(Line::from(format!("  {label} {}", pct(rate))));
        }
        out.push(Line::from(format!(
            "  no majority {} ({} missing votes) · adjudicated {}",
            a.disputed, a.incomplete, a.adjudicated
        )));
        out.push(Line::from(Span::styled(
            format!(
                "  Fleiss κ {} · α nominal {} · α ordinal {} · pairwise {}",
                opt(a.fleiss_kappa),
                opt(a.alpha_nominal),
                opt(a.alpha_ordinal),
                opt(a.pairwise_agreement)
            ),
            muted,
        )));
        let with: Vec<String> = a
            .agreement_with_majority
            .iter()
            .map(|(w, v)| format!("{w} {}", opt(*v)))
            .collect();
        out.push(Line::from(Span::styled(
            format!("  with the majority: {}", with.join(" · ")),
            muted,
        )));
        out.push(Line::from(""));
    }
    out.push(Line::from(Span::styled("AIDO rates", head)));
    for (label, rate) in [
        ("lose probability (overall)    ", &r.lose_probability),
        (
            "instruction/input failure rate",
            &r.instruction_input_failure_rate,
        ),
        ("output failure rate           ", &r.output_failure_rate),
    ] {
        if let Some(rate) = rate {
            out.push(Line::from(format!("  {label} {}", pct(rate))));
        }
    }
    out.push(Line::from(""));
    out.push(Line::from(Span::styled(
        "time per item (s): submitted · mean · median · p90",
        head,
    )));
    for tm in &r.time {
        out.push(Line::from(format!(
            "  {:<14} {:>4} · {} · {} · {}",
            tm.annotator,
            tm.submitted,
            opt(tm.mean_s),
            opt(tm.median_s),
            opt(tm.p90_s)
        )));
    }
    out
}

pub fn draw(f: &mut Frame, body: Rect, s: &AppState) {
    let Some(r) = &s.eval_report else { return };
    let lines = lines(r, body.width as usize, s);
    let max = lines.len().saturating_sub(body.height as usize);
    f.render_widget(
        Paragraph::new(lines).scroll((s.help_scroll.min(max) as u16, 0)),
        body,
    );
}
