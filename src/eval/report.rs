//! `gleaner eval report`: per aspect win/tie/lose counts and rates with 95% Wilson
//! intervals, the AIDO rates (lose probability on overall, instruction/input and output
//! failure rates), agreement (Fleiss' kappa, Krippendorff's alpha nominal and ordinal,
//! pairwise agreement, each annotator against the majority) and time per annotator;
//! as JSON, text, markdown with SVG bar charts, and the TUI report view.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::aggregate::{self, Outcome, Placements};
use super::agreement::{self, Level};
use super::session::{self, Session};
use super::votes::{self, Verdict};
use crate::store::Db;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rate {
    pub count: usize,
    pub rate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

impl Rate {
    fn of(count: usize, n: usize) -> Self {
        let (ci_low, ci_high) = agreement::wilson(count, n);
        Self {
            count,
            rate: if n == 0 { 0.0 } else { count as f64 / n as f64 },
            ci_low,
            ci_high,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AspectReport {
    pub aspect: String,
    pub items: usize,
    pub win: Rate,
    pub tie: Rate,
    pub lose: Rate,
    /// No majority and not adjudicated (with tie_policy = dispute).
    pub disputed: usize,
    /// Of those, items some annotator has not voted on yet.
    pub incomplete: usize,
    pub adjudicated: usize,
    pub fleiss_kappa: Option<f64>,
    pub alpha_nominal: Option<f64>,
    pub alpha_ordinal: Option<f64>,
    pub pairwise_agreement: Option<f64>,
    pub agreement_with_majority: Vec<(String, Option<f64>)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeStats {
    pub annotator: String,
    pub submitted: usize,
    pub mean_s: Option<f64>,
    pub median_s: Option<f64>,
    pub p90_s: Option<f64>,
    pub total_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub session: String,
    pub source: String,
    pub a: String,
    pub b: String,
    pub items: usize,
    pub annotators: Vec<String>,
    pub tie_policy: session::TiePolicy,
    pub aspects: Vec<AspectReport>,
    /// AIDO's "lose probability": lose / items on `overall`.
    pub lose_probability: Option<Rate>,
    pub instruction_input_failure_rate: Option<Rate>,
    pub output_failure_rate: Option<Rate>,
    pub time: Vec<TimeStats>,
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

/// Everything the report needs from the database.
pub fn gather(db: &Db, name: &str) -> Result<(Session, Vec<Outcome>), String> {
    let s = session::load(db, name)?;
    let mut placements: Placements = HashMap::new();
    for who in &s.config.annotators {
        for (item, p) in session::placements(db, name, who)? {
            placements.insert((who.clone(), item), p.a_on_left);
        }
    }
    let outcomes = aggregate::outcomes(
        &s,
        &votes::votes(db, name)?,
        &placements,
        &votes::adjudications(db, name)?,
    );
    Ok((s, outcomes))
}

pub fn build(db: &Db, name: &str) -> Result<Report, String> {
    let (s, outcomes) = gather(db, name)?;
    let cfg = &s.config;
    let n = s.items.len();
    let aspects: Vec<AspectReport> = cfg
        .aspects
        .iter()
        .map(|aspect| {
            let these: Vec<&Outcome> = outcomes.iter().filter(|o| &o.aspect == aspect).collect();
            let count = |v: Verdict| {
                these
                    .iter()
                    .filter(|o| o.verdict(cfg.tie_policy) == Some(v))
                    .count()
            };
            let t = aggregate::table(&outcomes, aspect, cfg.annotators.len());
            AspectReport {
                aspect: aspect.clone(),
                items: n,
                win: Rate::of(count(Verdict::Win), n),
                tie: Rate::of(count(Verdict::Tie), n),
                lose: Rate::of(count(Verdict::Lose), n),
                disputed: these
                    .iter()
                    .filter(|o| o.verdict(cfg.tie_policy).is_none())
                    .count(),
                incomplete: these
                    .iter()
                    .filter(|o| {
                        o.verdict(cfg.tie_policy).is_none() && o.votes.iter().any(Option::is_none)
                    })
                    .count(),
                adjudicated: these
                    .iter()
                    .filter(|o| o.majority.is_none() && o.adjudicated.is_some())
                    .count(),
                fleiss_kappa: agreement::fleiss_kappa(&t),
                alpha_nominal: agreement::krippendorff_alpha(&t, Level::Nominal),
                alpha_ordinal: agreement::krippendorff_alpha(&t, Level::Ordinal),
                pairwise_agreement: agreement::pairwise_agreement(&t),
                agreement_with_majority: cfg
                    .annotators
                    .iter()
                    .cloned()
                    .zip(agreement::agreement_with_majority(&t))
                    .collect(),
            }
        })
        .collect();
    let lose_of = |name: &str| {
        aspects
            .iter()
            .find(|a| a.aspect == name)
            .map(|a| a.lose.clone())
    };
    let mut times = votes::times(db, name)?;
    let time = cfg
        .annotators
        .iter()
        .map(|who| {
            let mut t = times.remove(who).unwrap_or_default();
            t.sort_by(|a, b| a.total_cmp(b));
            TimeStats {
                annotator: who.clone(),
                submitted: t.len(),
                mean_s: (!t.is_empty()).then(|| t.iter().sum::<f64>() / t.len() as f64),
                median_s: quantile(&t, 0.5),
                p90_s: quantile(&t, 0.9),
                total_s: t.iter().sum(),
            }
        })
        .collect();
    Ok(Report {
        session: cfg.name.clone(),
        source: cfg.source.clone(),
        a: cfg.a_label.clone(),
        b: cfg.b_label.clone(),
        items: n,
        annotators: cfg.annotators.clone(),
        tie_policy: cfg.tie_policy,
        lose_probability: lose_of("overall"),
        instruction_input_failure_rate: lose_of("instruction_input"),
        output_failure_rate: lose_of("output"),
        aspects,
        time,
    })
}

fn opt(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3}"))
}

fn pct(r: &Rate) -> String {
    format!(
        "{} ({:.1}%, 95% CI {:.1}–{:.1}%)",
        r.count,
        r.rate * 100.0,
        r.ci_low * 100.0,
        r.ci_high * 100.0
    )
}

/// The plain-text report (the CLI's default output).
pub fn text(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "session {}: {} items, {} annotators ({}); B = {} vs A = {}; win = B better",
        r.session,
        r.items,
        r.annotators.len(),
        r.annotators.join(", "),
        r.b,
        r.a
    );
    for a in &r.aspects {
        let _ = writeln!(s, "\n{}", a.aspect);
        let _ = writeln!(s, "  win  {}", pct(&a.win));
        let _ = writeln!(s, "  tie  {}", pct(&a.tie));
        let _ = writeln!(s, "  lose {}", pct(&a.lose));
        let _ = writeln!(
            s,
            "  no majority {} ({} still missing votes) · adjudicated {}",
            a.disputed, a.incomplete, a.adjudicated
        );
        let _ = writeln!(
            s,
            "  agreement: Fleiss κ {} · Krippendorff α nominal {} ordinal {} · pairwise {}",
            opt(a.fleiss_kappa),
            opt(a.alpha_nominal),
            opt(a.alpha_ordinal),
            opt(a.pairwise_agreement)
        );
        let with: Vec<String> = a
            .agreement_with_majority
            .iter()
            .map(|(w, v)| format!("{w} {}", opt(*v)))
            .collect();
        let _ = writeln!(s, "  with the majority: {}", with.join(" · "));
    }
    let _ = writeln!(s);
    for (label, rate) in [
        ("lose probability (overall)", &r.lose_probability),
        (
            "instruction/input failure rate",
            &r.instruction_input_failure_rate,
        ),
        ("output failure rate", &r.output_failure_rate),
    ] {
        if let Some(rate) = rate {
            let _ = writeln!(s, "{label}: {}", pct(rate));
        }
    }
    let _ = writeln!(
        s,
        "\ntime per item (s): annotator, submitted, mean, median, p90"
    );
    for t in &r.time {
        let _ = writeln!(
            s,
            "  {}  {}  {}  {}  {}",
            t.annotator,
            t.submitted,
            opt(t.mean_s),
            opt(t.median_s),
            opt(t.p90_s)
        );
    }
    s
}

const WIN: &str = "#2e7d32";
const TIE: &str = "#9e9e9e";
const LOSE: &str = "#c62828";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Stacked win/tie/lose bars, one per aspect, with counts.
pub fn svg(r: &Report) -> String {
    let (w, row, left, top) = (640.0, 44.0, 150.0, 50.0);
    let h = top + row * r.aspects.len() as f64 + 40.0;
    let bar_w = w - left - 30.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="DejaVu Sans, Arial, sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
<text x="{left}" y="24" font-size="15" font-weight="bold">{} — {} vs {} ({} items)</text>
"#,
        esc(&r.session),
        esc(&r.b),
        esc(&r.a),
        r.items
    );
    for (k, a) in r.aspects.iter().enumerate() {
        let y = top + row * k as f64;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 10.0,
            y + 19.0,
            esc(&a.aspect)
        );
        let mut x = left;
        for (count, color, label) in [
            (a.win.count, WIN, "win"),
            (a.tie.count, TIE, "tie"),
            (a.lose.count, LOSE, "lose"),
            (a.disputed, "#ffb300", "no majority"),
        ] {
            if count == 0 || a.items == 0 {
                continue;
            }
            let width = bar_w * count as f64 / a.items as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y}" width="{width:.1}" height="28" fill="{color}"><title>{label} {count}</title></rect>"#
            );
            if width > 28.0 {
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{}" text-anchor="middle" fill="white">{count}</text>"#,
                    x + width / 2.0,
                    y + 19.0
                );
            }
            x += width;
        }
    }
    let ly = top + row * r.aspects.len() as f64 + 16.0;
    let mut x = left;
    for (color, label) in [
        (WIN, "win (B better)"),
        (TIE, "tie"),
        (LOSE, "lose (A better)"),
        ("#ffb300", "no majority yet"),
    ] {
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{color}"/><text x="{}" y="{}">{label}</text>"#,
            ly - 10.0,
            x + 16.0,
            ly
        );
        x += 16.0 + 8.0 * label.len() as f64 + 20.0;
    }
    s.push_str("</svg>\n");
    s
}

/// The markdown report; `chart` is the SVG's file name beside it.
pub fn markdown(r: &Report, chart: &str, png: Option<&str>) -> String {
    let mut s = format!(
        "# Human evaluation: {}\n\n{} items · annotators: {} · B = **{}**, A = **{}** (source: {}) · win = B better · no-majority policy: {:?}\n\n![win/tie/lose per aspect]({chart})\n",
        r.session,
        r.items,
        r.annotators.join(", "),
        r.b,
        r.a,
        r.source,
        r.tie_policy
    );
    if let Some(p) = png {
        let _ = writeln!(s, "\n(PNG: [{p}]({p}))");
    }
    s.push_str("\n| aspect | win | tie | lose | no majority (missing votes) | Fleiss κ | α nominal | α ordinal | pairwise |\n|---|---|---|---|---|---|---|---|---|\n");
    for a in &r.aspects {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} |",
            a.aspect,
            pct(&a.win),
            pct(&a.tie),
            pct(&a.lose),
            a.disputed,
            a.incomplete,
            opt(a.fleiss_kappa),
            opt(a.alpha_nominal),
            opt(a.alpha_ordinal),
            opt(a.pairwise_agreement)
        );
    }
    s.push_str("\n| AIDO rate | value |\n|---|---|\n");
    for (label, rate) in [
        ("lose probability (overall)", &r.lose_probability),
        (
            "instruction/input failure rate",
            &r.instruction_input_failure_rate,
        ),
        ("output failure rate", &r.output_failure_rate),
    ] {
        if let Some(rate) = rate {
            let _ = writeln!(s, "| {label} | {} |", pct(rate));
        }
    }
    s.push_str("\n| annotator | submitted | mean s | median s | p90 s |");
    for a in &r.aspects {
        let _ = write!(s, " agrees with majority ({}) |", a.aspect);
    }
    s.push_str("\n|---|---|---|---|---|");
    for _ in &r.aspects {
        s.push_str("---|");
    }
    s.push('\n');
    for (i, t) in r.time.iter().enumerate() {
        let _ = write!(
            s,
            "| {} | {} | {} | {} | {} |",
            t.annotator,
            t.submitted,
            opt(t.mean_s),
            opt(t.median_s),
            opt(t.p90_s)
        );
        for a in &r.aspects {
            let _ = write!(
                s,
                " {} |",
                opt(a.agreement_with_majority.get(i).and_then(|x| x.1))
            );
        }
        s.push('\n');
    }
    s
}
