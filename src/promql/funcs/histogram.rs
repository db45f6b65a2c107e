//! `histogram_quantile` over classic buckets.

use std::collections::HashMap;

use promql_parser::parser::Expr;

use super::*;
use crate::model::Labels;
use crate::promql::eval::{Evaluator, Grid, Points, StepSeries, Val};
use crate::promql::PromqlError;

pub(super) fn histogram_quantile(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    grid: Grid,
) -> Result<Val, PromqlError> {
    let q = ev.eval_scalar(arg(args, 0, "histogram_quantile")?, grid)?;
    let series = ev.eval_vector(arg(args, 1, "histogram_quantile")?, grid)?;
    // Buckets per group of series equal but for `le`: the metric name
    // tells groups apart too (as in Prometheus), though the output drops
    // it, so two metrics that differ only in name give two outputs with
    // one label set, which is an error below, never a merged quantile.
    let mut groups: HashMap<Labels, usize> = HashMap::new();
    let mut members: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    for (idx, s) in series.iter().enumerate() {
        let Some(le) = s.labels.get("le").and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let key = s.labels.without(&["le".to_string()]);
        let g = *groups.entry(key).or_insert_with_key(|key| {
            members.push((key.without_name(), Vec::new()));
            members.len() - 1
        });
        members[g].1.push((le, idx));
    }
    let mut out = Vec::with_capacity(members.len());
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for (labels, m) in members {
        let mut vals: Points = vec![None; grid.n];
        for (i, o) in vals.iter_mut().enumerate() {
            buckets.clear();
            buckets.extend(
                m.iter()
                    .filter_map(|&(le, idx)| series[idx].vals[i].map(|v| (le, v))),
            );
            if !buckets.is_empty() {
                *o = Some(bucket_quantile(q[i], &mut buckets));
            }
        }
        let s = StepSeries { labels, vals };
        if !s.is_empty() {
            out.push(s);
        }
    }
    Ok(Val::Vector(crate::promql::eval::merge_same_labels(out)?))
}

/// The quantile of classic histogram buckets `(upper bound, cumulative
/// count)`, interpolating linearly within the bucket.
pub(super) fn bucket_quantile(q: f64, b: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    if !b.last().is_some_and(|l| l.0 == f64::INFINITY) {
        return f64::NAN;
    }
    // Equal bounds add up.
    b.dedup_by(|cur, prev| {
        if cur.0 == prev.0 {
            prev.1 += cur.1;
            true
        } else {
            false
        }
    });
    // Counts must not decrease.
    let mut max = f64::NEG_INFINITY;
    for x in b.iter_mut() {
        if x.1 > max {
            max = x.1;
        } else if x.1 < max {
            x.1 = max;
        }
    }
    if b.len() < 2 {
        return f64::NAN;
    }
    let observations = b[b.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let idx = b[..b.len() - 1]
        .iter()
        .position(|x| x.1 >= rank)
        .unwrap_or(b.len() - 1);
    if idx == b.len() - 1 {
        return b[b.len() - 2].0;
    }
    if idx == 0 && b[0].0 <= 0.0 {
        return b[0].0;
    }
    let (mut start, end, mut count) = (0.0, b[idx].0, b[idx].1);
    if idx > 0 {
        start = b[idx - 1].0;
        count -= b[idx - 1].1;
        rank -= b[idx - 1].1;
    }
    start + (end - start) * (rank / count)
}
