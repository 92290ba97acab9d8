//! Describe statistics, histograms and frequency tables of one column.
//! Shared by `gleaner stats` and the TUI's `F` view.

use polars::prelude::*;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Describe {
    pub n: usize,
    pub nulls: usize,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub min: Option<f64>,
    pub q25: Option<f64>,
    pub median: Option<f64>,
    pub q75: Option<f64>,
    pub max: Option<f64>,
}

/// Linear-interpolated quantile of sorted values (numpy's default method).
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

pub fn describe_values(values: &[Option<f64>]) -> Describe {
    let mut v: Vec<f64> = values
        .iter()
        .flatten()
        .copied()
        .filter(|x| !x.is_nan())
        .collect();
    let nulls = values.len() - v.len();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mean = (n > 0).then(|| v.iter().sum::<f64>() / n as f64);
    let std = match (mean, n) {
        (Some(m), n) if n > 1 => {
            Some((v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt())
        }
        _ => None,
    };
    Describe {
        n,
        nulls,
        mean,
        std,
        min: v.first().copied(),
        q25: quantile(&v, 0.25),
        median: quantile(&v, 0.5),
        q75: quantile(&v, 0.75),
        max: v.last().copied(),
    }
}

pub fn is_numeric(dtype: &DataType) -> bool {
    dtype.is_primitive_numeric() || dtype.is_bool()
}

/// A numeric column as f64 (booleans as 0/1).
pub fn numeric_values(column: &Column) -> PolarsResult<Vec<Option<f64>>> {
    let s = column.as_materialized_series().cast(&DataType::Float64)?;
    Ok(s.f64()?.iter().collect())
}

pub fn describe_column(column: &Column) -> PolarsResult<Describe> {
    Ok(describe_values(&numeric_values(column)?))
}

/// One bar of a histogram or one value of a frequency table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bin {
    pub label: String,
    pub count: usize,
    /// A filter expression selecting exactly the rows of this bin.
    pub filter: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distribution {
    pub column: String,
    pub numeric: bool,
    pub describe: Option<Describe>,
    pub bins: Vec<Bin>,
    pub nulls: usize,
    pub distinct: Option<usize>,
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.3}")
    }
}

/// Histogram (numeric) or frequency table (anything else) of `values`.
pub fn distribution(name: &str, column: &Column, max_bins: usize) -> PolarsResult<Distribution> {
    let quoted = super::filter::quote_name(name);
    if is_numeric(column.dtype()) {
        let values = numeric_values(column)?;
        let describe = describe_values(&values);
        let bins = numeric_bins(&quoted, &values, &describe, max_bins);
        return Ok(Distribution {
            column: name.to_string(),
            numeric: true,
            nulls: describe.nulls,
            describe: Some(describe),
            bins,
            distinct: None,
        });
    }
    let s = column.as_materialized_series().cast(&DataType::String)?;
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut nulls = 0;
    let ca = s.str()?;
    for v in ca.iter() {
        match v {
            Some(v) => *counts.entry(v).or_default() += 1,
            None => nulls += 1,
        }
    }
    let distinct = counts.len();
    let mut pairs: Vec<(&str, usize)> = counts.into_iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    pairs.truncate(max_bins.max(1) * 5);
    let bins = pairs
        .into_iter()
        .map(|(v, c)| Bin {
            label: super::record::preview(v, 60),
            count: c,
            filter: format!("{quoted} == {}", quote_str(v)),
        })
        .collect();
    Ok(Distribution {
        column: name.to_string(),
        numeric: false,
        describe: None,
        bins,
        nulls,
        distinct: Some(distinct),
    })
}

pub fn quote_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn numeric_bins(quoted: &str, values: &[Option<f64>], d: &Describe, max_bins: usize) -> Vec<Bin> {
    let (Some(min), Some(max)) = (d.min, d.max) else {
        return Vec::new();
    };
    let all_int = values.iter().flatten().all(|x| x.fract() == 0.0);
    // Few distinct integers (scores 1..10, turn counts): one bin per value.
    if all_int && max - min < max_bins as f64 {
        let n = (max - min) as usize + 1;
        let mut counts = vec![0usize; n];
        for x in values.iter().flatten() {
            counts[(x - min) as usize] += 1;
        }
        return counts
            .into_iter()
            .enumerate()
            .map(|(i, count)| {
                let v = min + i as f64;
                Bin {
                    label: fmt_num(v),
                    count,
                    filter: format!("{quoted} == {}", fmt_num(v)),
                }
            })
            .collect();
    }
    let n = max_bins.max(1);
    let mut width = (max - min) / n as f64;
    if all_int {
        width = width.ceil().max(1.0);
    }
    if width <= 0.0 {
        width = 1.0;
    }
    let mut counts = vec![0usize; n];
    for x in values.iter().flatten() {
        let i = (((x - min) / width) as usize).min(n - 1);
        counts[i] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .filter_map(|(i, count)| {
            let lo = min + width * i as f64;
            let hi = min + width * (i + 1) as f64;
            if lo > max {
                return None;
            }
            let last = i == n - 1 || hi > max;
            let (label, filter) = if last {
                (
                    format!("[{}, {}]", fmt_num(lo), fmt_num(max)),
                    format!("{quoted} >= {lo} and {quoted} <= {max}"),
                )
            } else {
                (
                    format!("[{}, {})", fmt_num(lo), fmt_num(hi)),
                    format!("{quoted} >= {lo} and {quoted} < {hi}"),
                )
            };
            Some(Bin {
                label,
                count,
                filter,
            })
        })
        .collect()
}
