//! Aggregation operators. Series are assigned to groups once; values are
//! then folded per group and step into flat accumulators, with no
//! allocation per sample.

use std::collections::HashMap;

use promql_parser::parser::token::{
    TokenId, T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_MAX, T_MIN, T_QUANTILE,
    T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::eval::{unparen, Evaluator, Grid, Points, StepSeries, Val};
use super::funcs::{self, quantile};
use super::value::format_float;
use super::PromqlError;
use crate::model::labels::METRIC_NAME;
use crate::model::Labels;

/// The grouping of an aggregation: `by` keeps the listed labels, `without`
/// drops them and the metric name.
pub(crate) fn group_labels(labels: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::empty(),
        Some(LabelModifier::Include(by)) => labels.keep(&by.labels),
        Some(LabelModifier::Exclude(without)) => labels.without(&without.labels).without_name(),
    }
}

/// The labels [`group_labels`] keeps, written into `out` as bytes that
/// tell groups apart (0xff, which UTF-8 never holds, between the parts).
fn group_key(labels: &Labels, modifier: &Option<LabelModifier>, out: &mut Vec<u8>) {
    out.clear();
    let mut put = |l: &crate::model::Label| {
        out.extend_from_slice(l.name.as_bytes());
        out.push(0xff);
        out.extend_from_slice(l.value.as_bytes());
        out.push(0xff);
    };
    match modifier {
        None => {}
        Some(LabelModifier::Include(by)) => labels
            .iter()
            .filter(|l| by.labels.contains(&l.name))
            .for_each(&mut put),
        Some(LabelModifier::Exclude(without)) => labels
            .iter()
            .filter(|l| l.name != METRIC_NAME && !without.labels.contains(&l.name))
            .for_each(&mut put),
    }
}

pub(crate) fn eval(
    ev: &mut Evaluator<'_>,
    a: &AggregateExpr,
    grid: Grid,
) -> Result<Val, PromqlError> {
    let op = a.op.id();
    let param = match (&a.param, op) {
        (Some(p), T_TOPK | T_BOTTOMK | T_QUANTILE) => Some(ev.eval_scalar(p, grid)?),
        _ => None,
    };
    let value_label = match (&a.param, op) {
        (Some(p), T_COUNT_VALUES) => {
            let l = ev.eval_string(p)?;
            if !valid_label(&l) {
                return Err(PromqlError::execution(format!("invalid label name {l:?}")));
            }
            Some(l)
        }
        _ => None,
    };
    if !matches!(
        op,
        T_SUM
            | T_AVG
            | T_COUNT
            | T_MIN
            | T_MAX
            | T_GROUP
            | T_STDDEV
            | T_STDVAR
            | T_TOPK
            | T_BOTTOMK
            | T_QUANTILE
            | T_COUNT_VALUES
    ) {
        return Err(PromqlError::bad_data(format!(
            "unknown aggregation operator {}",
            a.op
        )));
    }
    if accumulates(op) {
        if let Some(out) = accumulate_streamed(ev, a, op, grid)? {
            return Ok(Val::Vector(out));
        }
    }
    let series = ev.eval_vector(&a.expr, grid)?;
    if op == T_COUNT_VALUES {
        let dst = value_label.unwrap_or_default();
        return Ok(Val::Vector(count_values(
            &series,
            &a.modifier,
            &dst,
            grid.n,
        )?));
    }

    // Group of every series.
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut keys: Vec<Labels> = Vec::new();
    let group_of: Vec<usize> = series
        .iter()
        .map(|s| {
            let k = group_labels(&s.labels, &a.modifier);
            *index.entry(k).or_insert_with_key(|k| {
                keys.push(k.clone());
                keys.len() - 1
            })
        })
        .collect();
    let groups = keys.len();
    let n = grid.n;

    match op {
        T_TOPK | T_BOTTOMK => {
            let k = param.unwrap_or_default();
            return Ok(Val::Vector(top_k(
                series,
                &group_of,
                groups,
                &k,
                op == T_TOPK,
                n,
            )?));
        }
        T_QUANTILE => {
            let q = param.unwrap_or_default();
            return Ok(Val::Vector(quantiles(&series, &group_of, &keys, &q, n)));
        }
        _ => {}
    }

    Ok(Val::Vector(accumulate(op, &series, &group_of, keys, n)))
}

/// `quantile`: per group and step, the φ-quantile of the members' values.
fn quantiles(
    series: &[StepSeries],
    group_of: &[usize],
    keys: &[Labels],
    q: &[f64],
    n: usize,
) -> Vec<StepSeries> {
    let groups = keys.len();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); groups];
    for (i, g) in group_of.iter().enumerate() {
        members[*g].push(i);
    }
    let mut vals = Vec::new();
    let mut out = Vec::with_capacity(groups);
    for (g, m) in members.iter().enumerate() {
        let mut points: Points = vec![None; n];
        for (i, p) in points.iter_mut().enumerate() {
            vals.clear();
            vals.extend(m.iter().filter_map(|&s| series[s].vals[i]));
            if !vals.is_empty() {
                *p = Some(quantile(q[i], &mut vals));
            }
        }
        out.push(StepSeries {
            labels: keys[g].clone(),
            vals: points,
        });
    }
    out
}

/// `count_values`: one series per group and distinct value, counting the
/// members that have that value at each step. As in Prometheus, each
/// member's value is written into the value label before it is grouped:
/// the value label is grouped on with `by` (and with no modifier), kept
/// with `without` unless listed, and it replaces a label of that name, so
/// members that differed only there count together.
fn count_values(
    series: &[StepSeries],
    modifier: &Option<LabelModifier>,
    dst: &str,
    n: usize,
) -> Result<Vec<StepSeries>, PromqlError> {
    // The output series of each (member, value) seen, so a member's steps
    // with one value are grouped once.
    let mut seen: HashMap<(usize, String), usize> = HashMap::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<StepSeries> = Vec::new();
    let by_with_dst: Option<Vec<String>> = match modifier {
        Some(LabelModifier::Include(by)) => {
            let mut l = by.labels.clone();
            l.push(dst.to_string());
            Some(l)
        }
        _ => None,
    };
    for (si, s) in series.iter().enumerate() {
        for (i, v) in s.vals.iter().enumerate() {
            let Some(v) = v else { continue };
            let value = format_float(*v);
            let slot = match seen.get(&(si, value.clone())) {
                Some(&slot) => slot,
                None => {
                    let labels = s.labels.with(dst, &value);
                    let key = match (modifier, &by_with_dst) {
                        (Some(LabelModifier::Include(_)), Some(by)) => labels.keep(by),
                        (Some(LabelModifier::Exclude(without)), _) => {
                            labels.without(&without.labels).without_name()
                        }
                        _ => labels.keep(&[dst.to_string()]),
                    };
                    let slot = *index.entry(key).or_insert_with_key(|key| {
                        out.push(StepSeries {
                            labels: key.clone(),
                            vals: vec![None; n],
                        });
                        out.len() - 1
                    });
                    seen.insert((si, value), slot);
                    slot
                }
            };
            let c = &mut out[slot].vals[i];
            *c = Some(c.unwrap_or(0.0) + 1.0);
        }
    }
    Ok(out)
}

/// The aggregations that keep one running value per group and step: sum,
/// avg, count, min, max, group, stddev, stdvar.
fn accumulate(
    op: TokenId,
    series: &[StepSeries],
    group_of: &[usize],
    keys: Vec<Labels>,
    n: usize,
) -> Vec<StepSeries> {
    let mut acc = Acc::new(op, n);
    for _ in 0..keys.len() {
        acc.add_group();
    }
    for (s, &g) in series.iter().zip(group_of) {
        acc.add(s, g);
    }
    acc.finish(keys)
}

fn accumulates(op: TokenId) -> bool {
    matches!(
        op,
        T_SUM | T_AVG | T_COUNT | T_MIN | T_MAX | T_GROUP | T_STDDEV | T_STDVAR
    )
}

/// An accumulating aggregation over a selector, or over a range function
/// of a selector of one metric name, folded batch by batch as the series
/// are evaluated, in the order the whole input would have had: the same
/// answer without holding every input series at every step. None: the
/// input is another expression.
fn accumulate_streamed(
    ev: &mut Evaluator<'_>,
    a: &AggregateExpr,
    op: TokenId,
    grid: Grid,
) -> Result<Option<Vec<StepSeries>>, PromqlError> {
    let mut acc = Acc::new(op, grid.n);
    // Groups by the bytes of their labels, written into one buffer: a
    // series of a known group costs no allocation.
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut keys: Vec<Labels> = Vec::new();
    let mut key = Vec::new();
    let mut sink = |batch: Vec<StepSeries>| -> Result<(), PromqlError> {
        for s in &batch {
            group_key(&s.labels, &a.modifier, &mut key);
            let g = match index.get(key.as_slice()) {
                Some(g) => *g,
                None => {
                    acc.add_group();
                    keys.push(group_labels(&s.labels, &a.modifier));
                    index.insert(key.clone(), keys.len() - 1);
                    keys.len() - 1
                }
            };
            acc.add(s, g);
        }
        Ok(())
    };
    let done = match unparen(&a.expr) {
        Expr::VectorSelector(vs) => {
            ev.vector_selector_batched(vs, grid, false, &mut sink)?;
            true
        }
        Expr::Call(c) => funcs::call_batched(ev, c, grid, &mut sink)?,
        _ => false,
    };
    Ok(done.then(|| acc.finish(keys)))
}

/// Running values of an accumulating aggregation: flat, `[group * n + step]`.
struct Acc {
    op: TokenId,
    n: usize,
    value: Vec<f64>,
    mean: Vec<f64>,
    count: Vec<u32>,
}

impl Acc {
    fn new(op: TokenId, n: usize) -> Self {
        Self {
            op,
            n,
            value: Vec::new(),
            mean: Vec::new(),
            count: Vec::new(),
        }
    }

    fn add_group(&mut self) {
        let len = self.count.len() + self.n;
        self.value.resize(len, 0.0);
        if matches!(self.op, T_AVG | T_STDDEV | T_STDVAR) {
            self.mean.resize(len, 0.0);
        }
        self.count.resize(len, 0);
    }

    fn add(&mut self, s: &StepSeries, g: usize) {
        let (op, value, mean, count) = (self.op, &mut self.value, &mut self.mean, &mut self.count);
        let base = g * self.n;
        for (i, v) in s.vals.iter().enumerate() {
            let Some(v) = *v else { continue };
            let at = base + i;
            let c = count[at];
            count[at] = c + 1;
            if c == 0 {
                match op {
                    T_AVG => mean[at] = v,
                    T_STDDEV | T_STDVAR => {
                        mean[at] = v;
                        value[at] = 0.0;
                    }
                    T_GROUP | T_COUNT => {}
                    _ => value[at] = v,
                }
                continue;
            }
            match op {
                T_SUM => value[at] += v,
                T_MIN if value[at] > v || value[at].is_nan() => value[at] = v,
                T_MAX if value[at] < v || value[at].is_nan() => value[at] = v,
                T_AVG => {
                    let m = mean[at];
                    let cnt = (c + 1) as f64;
                    if m.is_infinite() {
                        if v.is_infinite() && (m > 0.0) == (v > 0.0) {
                            continue;
                        }
                        if !v.is_infinite() && !v.is_nan() {
                            continue;
                        }
                    }
                    mean[at] = m + (v / cnt - m / cnt);
                }
                T_STDDEV | T_STDVAR => {
                    let cnt = (c + 1) as f64;
                    let delta = v - mean[at];
                    mean[at] += delta / cnt;
                    value[at] += delta * (v - mean[at]);
                }
                _ => {}
            }
        }
    }

    fn finish(self, keys: Vec<Labels>) -> Vec<StepSeries> {
        let (op, n) = (self.op, self.n);
        let mut out = Vec::with_capacity(keys.len());
        for (g, labels) in keys.into_iter().enumerate() {
            let base = g * n;
            let vals: Points = (0..n)
                .map(|i| {
                    let at = base + i;
                    let c = self.count[at];
                    (c > 0).then(|| match op {
                        T_COUNT => c as f64,
                        T_GROUP => 1.0,
                        T_AVG => self.mean[at],
                        T_STDVAR => self.value[at] / c as f64,
                        T_STDDEV => (self.value[at] / c as f64).sqrt(),
                        _ => self.value[at],
                    })
                })
                .collect();
            out.push(StepSeries { labels, vals });
        }
        out
    }
}

fn valid_label(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `topk`/`bottomk`: per group and step, the k largest (smallest) values.
/// Ties are broken as Prometheus 2.42 breaks them: series arrive in order
/// and go through the same binary heap (smallest kept value on top; NaN
/// ranks below every number); a better value pops the top and is pushed.
fn top_k(
    series: Vec<StepSeries>,
    group_of: &[usize],
    groups: usize,
    k: &[f64],
    top: bool,
    n: usize,
) -> Result<Vec<StepSeries>, PromqlError> {
    let mut keep: Vec<Points> = vec![vec![None; n]; series.len()];
    // `a` ranks below `b`: closer to the top of the heap.
    let below = |a: f64, b: f64| -> bool {
        if a.is_nan() {
            return true;
        }
        if top {
            a < b
        } else {
            a > b
        }
    };
    let mut heaps: Vec<Vec<(f64, usize)>> = vec![Vec::new(); groups];
    #[allow(clippy::needless_range_loop)]
    for step in 0..n {
        let kf = k.get(step).copied().unwrap_or(0.0);
        if !(-9.223_372_036_854_776e18..=9.223_372_036_854_776e18).contains(&kf) {
            return Err(PromqlError::execution(format!(
                "Scalar value {} overflows int64",
                format_float(kf)
            )));
        }
        let kk = kf as i64;
        if kk < 1 {
            continue;
        }
        let kk = usize::try_from(kk).unwrap_or(usize::MAX);
        heaps.iter_mut().for_each(Vec::clear);
        for (idx, s) in series.iter().enumerate() {
            let Some(v) = s.vals[step] else { continue };
            let heap = &mut heaps[group_of[idx]];
            if heap.len() < kk {
                heap.push((v, idx));
                let last = heap.len() - 1;
                sift_up(heap, last, &below);
                continue;
            }
            let h0 = heap[0].0;
            let better = if top { h0 < v } else { h0 > v };
            if better || h0.is_nan() {
                // Pop the least kept value, then push the new one, as
                // Go's container/heap does: which of several equal values
                // stays depends on exactly these moves.
                let last = heap.len() - 1;
                heap.swap(0, last);
                sift_down(&mut heap[..last], 0, &below);
                heap[last] = (v, idx);
                sift_up(heap, last, &below);
            }
        }
        for heap in &heaps {
            for &(v, idx) in heap {
                keep[idx][step] = Some(v);
            }
        }
    }
    let mut ranked: Vec<(StepSeries, f64)> = series
        .into_iter()
        .zip(keep)
        .filter_map(|(s, vals)| {
            let first = vals.iter().flatten().next().copied()?;
            Some((
                StepSeries {
                    labels: s.labels,
                    vals,
                },
                first,
            ))
        })
        .collect();
    if n == 1 {
        // Instant queries list each group's choice best first.
        ranked.sort_by(|a, b| {
            let o = a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal);
            if top {
                o.reverse()
            } else {
                o
            }
        });
    }
    Ok(ranked.into_iter().map(|(s, _)| s).collect())
}

fn sift_up(h: &mut [(f64, usize)], mut j: usize, below: &impl Fn(f64, f64) -> bool) {
    while j > 0 {
        let i = (j - 1) / 2;
        if !below(h[j].0, h[i].0) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

fn sift_down(h: &mut [(f64, usize)], mut i: usize, below: &impl Fn(f64, f64) -> bool) {
    let n = h.len();
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        if j1 + 1 < n && below(h[j1 + 1].0, h[j1].0) {
            j = j1 + 1;
        }
        if !below(h[j].0, h[i].0) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
}
