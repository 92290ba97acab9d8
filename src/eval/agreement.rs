//! Agreement between annotators on one aspect. Votes are coded on the ordered scale
//! lose (0) < tie (1) < win (2); a table has one row per annotator and one column per
//! item, `None` where a vote is missing. Checked against statsmodels and krippendorff
//! (tests/fixtures/agreement.json, made by scripts/eval_agreement_fixtures.py).

pub type Table = Vec<Vec<Option<u8>>>;

const K: usize = 3;

fn columns(t: &Table) -> usize {
    t.first().map_or(0, Vec::len)
}

/// The code that more than half of the item's annotators chose, if any.
pub fn majority(t: &Table, item: usize) -> Option<u8> {
    let mut counts = [0usize; K];
    for row in t {
        if let Some(v) = row[item] {
            counts[v as usize] += 1;
        }
    }
    (0..K as u8).find(|c| counts[*c as usize] * 2 > t.len())
}

/// Fleiss' kappa over the items every annotator voted on; `None` when undefined (no such
/// item, or all votes in one category).
pub fn fleiss_kappa(t: &Table) -> Option<f64> {
    let n = t.len();
    if n < 2 {
        return None;
    }
    let mut counts = Vec::new();
    for j in 0..columns(t) {
        let col: Vec<u8> = t.iter().filter_map(|r| r[j]).collect();
        if col.len() == n {
            let mut c = [0f64; K];
            for v in col {
                c[v as usize] += 1.0;
            }
            counts.push(c);
        }
    }
    if counts.is_empty() {
        return None;
    }
    let (items, n) = (counts.len() as f64, n as f64);
    let p: Vec<f64> = (0..K)
        .map(|k| counts.iter().map(|c| c[k]).sum::<f64>() / (items * n))
        .collect();
    let p_bar = counts
        .iter()
        .map(|c| (c.iter().map(|x| x * x).sum::<f64>() - n) / (n * (n - 1.0)))
        .sum::<f64>()
        / items;
    let p_e: f64 = p.iter().map(|x| x * x).sum();
    (1.0 - p_e > 1e-12).then(|| (p_bar - p_e) / (1.0 - p_e))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Nominal,
    /// lose < tie < win
    Ordinal,
}

/// Krippendorff's alpha via the coincidence matrix; items with fewer than two votes do
/// not count. `None` when there is no disagreement to expect (a single value used).
pub fn krippendorff_alpha(t: &Table, level: Level) -> Option<f64> {
    let mut o = [[0f64; K]; K];
    for j in 0..columns(t) {
        let vals: Vec<u8> = t.iter().filter_map(|r| r[j]).collect();
        let m = vals.len();
        if m < 2 {
            continue;
        }
        for (a, x) in vals.iter().enumerate() {
            for (b, y) in vals.iter().enumerate() {
                if a != b {
                    o[*x as usize][*y as usize] += 1.0 / (m as f64 - 1.0);
                }
            }
        }
    }
    let n_c: Vec<f64> = (0..K).map(|c| o[c].iter().sum()).collect();
    let n: f64 = n_c.iter().sum();
    if n <= 1.0 {
        return None;
    }
    let delta = |c: usize, k: usize| -> f64 {
        match level {
            Level::Nominal => f64::from(u8::from(c != k)),
            Level::Ordinal => {
                let (lo, hi) = (c.min(k), c.max(k));
                let between: f64 = n_c[lo..=hi].iter().sum();
                let d = between - (n_c[c] + n_c[k]) / 2.0;
                d * d
            }
        }
    };
    let mut observed = 0.0;
    let mut expected = 0.0;
    for c in 0..K {
        for k in 0..K {
            observed += o[c][k] * delta(c, k);
            expected += n_c[c] * n_c[k] * delta(c, k);
        }
    }
    (expected > 1e-12).then(|| 1.0 - (n - 1.0) * observed / expected)
}

/// Share of annotator pairs, over items both voted on, that chose the same.
pub fn pairwise_agreement(t: &Table) -> Option<f64> {
    let (mut agree, mut total) = (0usize, 0usize);
    for a in 0..t.len() {
        for b in a + 1..t.len() {
            for (x, y) in t[a].iter().zip(&t[b]) {
                if let (Some(x), Some(y)) = (x, y) {
                    total += 1;
                    agree += usize::from(x == y);
                }
            }
        }
    }
    (total > 0).then(|| agree as f64 / total as f64)
}

/// Per annotator: how often their vote equals the majority, over items with one.
pub fn agreement_with_majority(t: &Table) -> Vec<Option<f64>> {
    let majorities: Vec<Option<u8>> = (0..columns(t)).map(|j| majority(t, j)).collect();
    t.iter()
        .map(|row| {
            let (mut agree, mut total) = (0usize, 0usize);
            for (v, m) in row.iter().zip(&majorities) {
                if let (Some(v), Some(m)) = (v, m) {
                    total += 1;
                    agree += usize::from(v == m);
                }
            }
            (total > 0).then(|| agree as f64 / total as f64)
        })
        .collect()
}

/// 95% Wilson score interval for `x` successes out of `n`.
pub fn wilson(x: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (n, p) = (n as f64, x as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let center = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((center - half).max(0.0), (center + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_the_textbook_values() {
        // statsmodels proportion_confint(x, n, method="wilson"), e.g. 14 of 200 (AIDO's
        // Alpaca overall lose count) and 157 of 200 (its wins).
        for (x, n, lo_ref, hi_ref) in [
            (14, 200, 0.042_152_171_828_342_8, 0.114_054_808_856_106_47),
            (157, 200, 0.722_976_926_510_033_9, 0.836_281_237_454_924_2),
            (0, 10, 0.0, 0.277_532_799_862_889_26),
        ] {
            let (lo, hi) = wilson(x, n);
            assert!(
                (lo - lo_ref).abs() < 1e-12 && (hi - hi_ref).abs() < 1e-12,
                "{x}/{n}: {lo} {hi}"
            );
        }
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }
}
