//! PromQL functions, as Prometheus 2.42 evaluates them.

use std::collections::HashMap;

use promql_parser::parser::{Call, Expr};

use super::eval::{
    check_unique, merge_same_labels, offset_ms, unparen, Evaluator, Grid, MatrixArg, MatrixSource,
    Points, StepSeries, Val, Windows,
};
use super::PromqlError;
use crate::model::{Label, Labels, Sample};

/// Functions of Prometheus 2.42; the parser knows newer ones too.
pub(crate) const FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "deg",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_sum",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
];

/// Context of one window of a range function.
struct Win {
    /// End of the window (step time or `@`, minus offset).
    end: i64,
    /// Width of the window.
    range: i64,
    /// The step's own time.
    ts: i64,
    p1: f64,
    p2: f64,
}

type RangeFn = fn(&[Sample], &Win) -> Result<Option<f64>, PromqlError>;

fn range_fn(name: &str) -> Option<RangeFn> {
    Some(match name {
        "rate" => |s, w| Ok(extrapolated_rate(s, w, true, true)),
        "increase" => |s, w| Ok(extrapolated_rate(s, w, true, false)),
        "delta" => |s, w| Ok(extrapolated_rate(s, w, false, false)),
        "irate" => |s, _| Ok(instant_value(s, true)),
        "idelta" => |s, _| Ok(instant_value(s, false)),
        "deriv" => |s, _| Ok((s.len() >= 2).then(|| linear_regression(s, s[0].t).0)),
        "predict_linear" => |s, w| {
            Ok((s.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(s, w.ts);
                slope * w.p1 + intercept
            }))
        },
        "holt_winters" => holt_winters,
        "changes" => |s, _| {
            Ok(nonempty(s).map(|s| {
                let mut n = 0.0;
                let mut prev = s[0].v;
                for x in &s[1..] {
                    if x.v != prev && !(x.v.is_nan() && prev.is_nan()) {
                        n += 1.0;
                    }
                    prev = x.v;
                }
                n
            }))
        },
        "resets" => |s, _| {
            Ok(nonempty(s).map(|s| {
                let mut n = 0.0;
                let mut prev = s[0].v;
                for x in &s[1..] {
                    if x.v < prev {
                        n += 1.0;
                    }
                    prev = x.v;
                }
                n
            }))
        },
        "avg_over_time" => |s, _| {
            Ok(nonempty(s).map(|s| {
                let (mut mean, mut count) = (0.0f64, 0.0f64);
                for x in s {
                    count += 1.0;
                    if mean.is_infinite() {
                        if x.v.is_infinite() && (mean > 0.0) == (x.v > 0.0) {
                            continue;
                        }
                        if !x.v.is_infinite() && !x.v.is_nan() {
                            continue;
                        }
                    }
                    mean += x.v / count - mean / count;
                }
                mean
            }))
        },
        "sum_over_time" => |s, _| Ok(nonempty(s).map(|s| s.iter().map(|x| x.v).sum())),
        "count_over_time" => |s, _| Ok(nonempty(s).map(|s| s.len() as f64)),
        "last_over_time" => |s, _| Ok(s.last().map(|x| x.v)),
        "present_over_time" => |s, _| Ok(nonempty(s).map(|_| 1.0)),
        "min_over_time" => |s, _| {
            Ok(nonempty(s).map(|s| {
                let mut m = s[0].v;
                for x in s {
                    if x.v < m || m.is_nan() {
                        m = x.v;
                    }
                }
                m
            }))
        },
        "max_over_time" => |s, _| {
            Ok(nonempty(s).map(|s| {
                let mut m = s[0].v;
                for x in s {
                    if x.v > m || m.is_nan() {
                        m = x.v;
                    }
                }
                m
            }))
        },
        "stddev_over_time" => |s, _| Ok(nonempty(s).map(|s| variance(s).sqrt())),
        "stdvar_over_time" => |s, _| Ok(nonempty(s).map(variance)),
        "quantile_over_time" => |s, w| {
            Ok(nonempty(s).map(|s| {
                let mut vals: Vec<f64> = s.iter().map(|x| x.v).collect();
                quantile(w.p1, &mut vals)
            }))
        },
        _ => return None,
    })
}

fn nonempty(s: &[Sample]) -> Option<&[Sample]> {
    (!s.is_empty()).then_some(s)
}

/// Welford's running variance with compensated sums, as 2.42 computes it.
fn variance(s: &[Sample]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
    for x in s {
        count += 1.0;
        let delta = x.v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (x.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// `rate`, `increase` and `delta`: the change over the window, extrapolated
/// to its edges when the samples come close to them.
fn extrapolated_rate(s: &[Sample], w: &Win, counter: bool, per_second: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (first, last) = (s[0], s[s.len() - 1]);
    let range_start = w.end - w.range;
    let mut result = last.v - first.v;
    if counter {
        let mut prev = 0.0;
        for x in s {
            if x.v < prev {
                result += prev;
            }
            prev = x.v;
        }
    }
    let mut to_start = (first.t - range_start) as f64 / 1000.0;
    let to_end = (w.end - last.t) as f64 / 1000.0;
    let sampled = (last.t - first.t) as f64 / 1000.0;
    let avg_gap = sampled / (s.len() - 1) as f64;
    if counter && result > 0.0 && first.v >= 0.0 {
        // A counter is not negative: extrapolate no further back than to
        // where it would have been zero.
        let to_zero = sampled * (first.v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg_gap * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg_gap / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg_gap / 2.0
    };
    result *= interval / sampled;
    if per_second {
        result /= w.range as f64 / 1000.0;
    }
    Some(result)
}

/// `irate` and `idelta`: from the last two samples.
fn instant_value(s: &[Sample], per_second: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (prev, last) = (s[s.len() - 2], s[s.len() - 1]);
    let mut result = if per_second && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    let interval = last.t - prev.t;
    if interval == 0 {
        return None;
    }
    if per_second {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Least-squares slope and intercept (at `intercept_t`) of the samples.
fn linear_regression(s: &[Sample], intercept_t: i64) -> (f64, f64) {
    let init = s[0].v;
    let mut constant = true;
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    for (i, p) in s.iter().enumerate() {
        if constant && i > 0 && p.v != init {
            constant = false;
        }
        n += 1.0;
        let x = (p.t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(p.v, sy, cy);
        (sxy, cxy) = kahan_inc(x * p.v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if constant {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn holt_winters(s: &[Sample], w: &Win) -> Result<Option<f64>, PromqlError> {
    let (sf, tf) = (w.p1, w.p2);
    if sf <= 0.0 || sf >= 1.0 || sf.is_nan() {
        return Err(PromqlError::execution(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        )));
    }
    if tf <= 0.0 || tf >= 1.0 || tf.is_nan() {
        return Err(PromqlError::execution(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        )));
    }
    if s.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, s[0].v);
    let mut b = s[1].v - s[0].v;
    for (i, p) in s.iter().enumerate().skip(1) {
        let x = sf * p.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

/// The φ-quantile of `vals` (sorted in place), interpolating between ranks.
pub(crate) fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(go_float_less);
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    vals[lower as usize] * (1.0 - weight) + vals[upper as usize] * weight
}

/// Go's `sort.Float64s` order: NaNs first, then ascending.
fn go_float_less(a: &f64, b: &f64) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

/// Go's `math.Max` and `math.Min`: an infinity in the direction of the
/// operation wins, then NaN; signed zeros are ordered.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else if a > b {
        a
    } else {
        b
    }
}

pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else if a < b {
        a
    } else {
        b
    }
}

fn matrix_arg<'e>(ev: &Evaluator<'_>, e: &'e Expr) -> Result<MatrixArg<'e>, PromqlError> {
    match unparen(e) {
        Expr::MatrixSelector(ms) => Ok(MatrixArg {
            range: ms.range.as_millis() as i64,
            offset: offset_ms(&ms.vs.offset),
            at: ev.at(&ms.vs.at),
            source: MatrixSource::Selector(&ms.vs),
        }),
        Expr::Subquery(sq) => Ok(ev.subquery_arg(sq)),
        _ => Err(PromqlError::bad_data("expected a range vector argument")),
    }
}

fn arg<'e>(args: &'e [Box<Expr>], i: usize, name: &str) -> Result<&'e Expr, PromqlError> {
    args.get(i)
        .map(|b| b.as_ref())
        .ok_or_else(|| PromqlError::bad_data(format!("missing argument {} of {name}()", i + 1)))
}

pub(crate) fn call(ev: &mut Evaluator<'_>, c: &Call, grid: Grid) -> Result<Val, PromqlError> {
    let name = c.func.name;
    let args = &c.args.args;
    if let Some(f) = range_fn(name) {
        let (m, p1, p2) = match name {
            "quantile_over_time" => (1, Some(0), None),
            "predict_linear" => (0, Some(1), None),
            "holt_winters" => (0, Some(1), Some(2)),
            _ => (0, None, None),
        };
        let p1 = match p1 {
            Some(i) => ev.eval_scalar(arg(args, i, name)?, grid)?,
            None => Vec::new(),
        };
        let p2 = match p2 {
            Some(i) => ev.eval_scalar(arg(args, i, name)?, grid)?,
            None => Vec::new(),
        };
        let marg = matrix_arg(ev, arg(args, m, name)?)?;
        // Counts read from downsampled data are added, not counted
        // (Thanos counts the windows instead, an undercount).
        let f = match (&marg.source, name) {
            (MatrixSource::Selector(_), "count_over_time") if ev.weighted_counts => {
                range_fn("sum_over_time").unwrap_or(f)
            }
            _ => f,
        };
        return range_call(ev, name, f, &marg, &p1, &p2, grid);
    }
    match name {
        "time" => Ok(Val::Scalar(
            (0..grid.n).map(|i| grid.ts(i) as f64 / 1000.0).collect(),
        )),
        "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; grid.n])),
        "vector" => {
            let v = ev.eval_scalar(arg(args, 0, name)?, grid)?;
            Ok(Val::Vector(vec![StepSeries {
                labels: Labels::empty(),
                vals: v.into_iter().map(Some).collect(),
            }]))
        }
        "scalar" => {
            let series = ev.eval_vector(arg(args, 0, name)?, grid)?;
            let mut out = vec![f64::NAN; grid.n];
            let mut count = vec![0u32; grid.n];
            for s in &series {
                for (i, v) in s.vals.iter().enumerate() {
                    if let Some(v) = v {
                        count[i] += 1;
                        out[i] = *v;
                    }
                }
            }
            for (o, c) in out.iter_mut().zip(count) {
                if c != 1 {
                    *o = f64::NAN;
                }
            }
            Ok(Val::Scalar(out))
        }
        "absent" => {
            let a = arg(args, 0, name)?;
            let series = ev.eval_vector(a, grid)?;
            let mut vals: Points = vec![Some(1.0); grid.n];
            for s in &series {
                for (o, v) in vals.iter_mut().zip(&s.vals) {
                    if v.is_some() {
                        *o = None;
                    }
                }
            }
            Ok(Val::Vector(one_series(absent_labels(a), vals)))
        }
        "absent_over_time" => {
            let marg = matrix_arg(ev, arg(args, 0, name)?)?;
            let mut vals: Points = vec![Some(1.0); grid.n];
            let (at, offset, range) = (marg.at, marg.offset, marg.range);
            ev.for_each_matrix_series(&marg, grid, |_, _, samples| {
                let mut w = Windows::new(samples);
                for (i, o) in vals.iter_mut().enumerate() {
                    let end = at.unwrap_or_else(|| grid.ts(i)) - offset;
                    if !w.window(end - range, end).is_empty() {
                        *o = None;
                    }
                }
                Ok(())
            })?;
            let labels = match unparen(arg(args, 0, name)?) {
                Expr::MatrixSelector(ms) => selector_absent_labels(&ms.vs),
                _ => Labels::empty(),
            };
            Ok(Val::Vector(one_series(labels, vals)))
        }
        "timestamp" => {
            let a = arg(args, 0, name)?;
            let series = match unparen(a) {
                Expr::VectorSelector(vs) => ev.vector_selector(vs, grid, true)?,
                other => {
                    let mut s = ev.eval_vector(other, grid)?;
                    for x in &mut s {
                        for (i, v) in x.vals.iter_mut().enumerate() {
                            if v.is_some() {
                                *v = Some(grid.ts(i) as f64 / 1000.0);
                            }
                        }
                    }
                    s
                }
            };
            map_drop_name(series, |v| v)
        }
        "sort" | "sort_desc" => {
            let mut series = ev.eval_vector(arg(args, 0, name)?, grid)?;
            if grid.n == 1 {
                // NaN sorts last either way.
                let desc = name == "sort_desc";
                series.sort_by(|a, b| {
                    let (x, y) = (a.vals[0].unwrap_or(f64::NAN), b.vals[0].unwrap_or(f64::NAN));
                    let o = go_float_less(&x, &y);
                    match (x.is_nan(), y.is_nan(), desc) {
                        (false, false, true) => o.reverse(),
                        (false, false, false) => o,
                        _ => o.reverse(),
                    }
                });
            }
            Ok(Val::Vector(series))
        }
        "round" => {
            let series = ev.eval_vector(arg(args, 0, name)?, grid)?;
            let to = match args.get(1) {
                Some(a) => ev.eval_scalar(a, grid)?,
                None => vec![1.0; grid.n],
            };
            map_steps_drop_name(series, |i, v| {
                let inv = 1.0 / to[i];
                (v * inv + 0.5).floor() / inv
            })
        }
        "clamp" => {
            let series = ev.eval_vector(arg(args, 0, name)?, grid)?;
            let lo = ev.eval_scalar(arg(args, 1, name)?, grid)?;
            let hi = ev.eval_scalar(arg(args, 2, name)?, grid)?;
            let mut out = Vec::with_capacity(series.len());
            for s in series {
                let mut vals = s.vals;
                for (i, v) in vals.iter_mut().enumerate() {
                    if let Some(x) = v {
                        *v = if hi[i] < lo[i] {
                            None
                        } else {
                            Some(go_max(lo[i], go_min(hi[i], *x)))
                        };
                    }
                }
                out.push(StepSeries {
                    labels: s.labels.without_name(),
                    vals,
                });
            }
            out.retain(|s| !s.is_empty());
            Ok(Val::Vector(merge_same_labels(out)?))
        }
        "clamp_max" | "clamp_min" => {
            let series = ev.eval_vector(arg(args, 0, name)?, grid)?;
            let b = ev.eval_scalar(arg(args, 1, name)?, grid)?;
            let max = name == "clamp_max";
            map_steps_drop_name(series, |i, v| {
                if max {
                    go_min(v, b[i])
                } else {
                    go_max(v, b[i])
                }
            })
        }
        "label_replace" => label_replace(ev, args, grid),
        "label_join" => label_join(ev, args, grid),
        "histogram_quantile" => histogram_quantile(ev, args, grid),
        // Native histograms only; float series have no value for them.
        "histogram_count" | "histogram_sum" | "histogram_fraction" => {
            let a = arg(args, args.len().saturating_sub(1), name)?;
            let _ = ev.eval_vector(a, grid)?;
            Ok(Val::Vector(Vec::new()))
        }
        "minute" | "hour" | "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month"
        | "month" | "year" => {
            let series = match args.first() {
                Some(a) => ev.eval_vector(a, grid)?,
                None => vec![StepSeries {
                    labels: Labels::empty(),
                    vals: (0..grid.n)
                        .map(|i| Some(grid.ts(i) as f64 / 1000.0))
                        .collect(),
                }],
            };
            let part = date_part(name);
            map_drop_name(series, part)
        }
        _ => match math_fn(name) {
            Some(f) => {
                let series = ev.eval_vector(arg(args, 0, name)?, grid)?;
                map_drop_name(series, f)
            }
            None => Err(PromqlError::bad_data(format!(
                "unknown function with name \"{name}\""
            ))),
        },
    }
}

fn one_series(labels: Labels, vals: Points) -> Vec<StepSeries> {
    let s = StepSeries { labels, vals };
    if s.is_empty() {
        Vec::new()
    } else {
        vec![s]
    }
}

fn range_call(
    ev: &mut Evaluator<'_>,
    name: &str,
    f: RangeFn,
    marg: &MatrixArg<'_>,
    p1: &[f64],
    p2: &[f64],
    grid: Grid,
) -> Result<Val, PromqlError> {
    let keep_name = name == "last_over_time";
    let (at, offset, range) = (marg.at, marg.offset, marg.range);
    let mut out = Vec::new();
    ev.for_each_matrix_series(marg, grid, |limits, labels, samples| {
        let mut w = Windows::new(samples);
        let mut vals: Points = vec![None; grid.n];
        let mut any = false;
        let mut held = 0;
        for (i, o) in vals.iter_mut().enumerate() {
            let ts = grid.ts(i);
            let end = at.unwrap_or(ts) - offset;
            let window = w.window(end - range, end);
            if window.is_empty() {
                continue;
            }
            held = held.max(window.len());
            let win = Win {
                end,
                range,
                ts,
                p1: p1.get(i).copied().unwrap_or(0.0),
                p2: p2.get(i).copied().unwrap_or(0.0),
            };
            *o = f(window, &win)?;
            any |= o.is_some();
        }
        limits.take(held)?;
        limits.give(held);
        if any {
            out.push(StepSeries {
                labels: if keep_name {
                    labels.clone()
                } else {
                    labels.without_name()
                },
                vals,
            });
        }
        Ok(())
    })?;
    check_unique(&out)?;
    Ok(Val::Vector(out))
}

fn map_drop_name(series: Vec<StepSeries>, f: impl Fn(f64) -> f64) -> Result<Val, PromqlError> {
    map_steps_drop_name(series, |_, v| f(v))
}

fn map_steps_drop_name(
    series: Vec<StepSeries>,
    f: impl Fn(usize, f64) -> f64,
) -> Result<Val, PromqlError> {
    let mut out = Vec::with_capacity(series.len());
    for s in series {
        let mut vals = s.vals;
        for (i, v) in vals.iter_mut().enumerate() {
            if let Some(x) = v {
                *x = f(i, *x);
            }
        }
        out.push(StepSeries {
            labels: s.labels.without_name(),
            vals,
        });
    }
    Ok(Val::Vector(merge_same_labels(out)?))
}

fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "sgn" => |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// Go converts a NaN or out-of-range float to the smallest int64 on amd64.
fn go_i64(v: f64) -> i64 {
    const LIMIT: f64 = 9.223_372_036_854_776e18;
    if v.is_nan() || !(-LIMIT..LIMIT).contains(&v) {
        i64::MIN
    } else {
        v as i64
    }
}

/// A date as Go's `time.Unix(int64(v), 0).UTC()` computes it, including
/// its wrap-around for times out of range (NaN, ±Inf): seconds since
/// year -292277022399 as an unsigned number.
struct GoDate {
    abs: u64,
}

impl GoDate {
    const DAY: u64 = 86_400;
    /// Seconds from Go's absolute zero year to its internal year 1.
    const ABSOLUTE_TO_INTERNAL: i64 = -9_223_371_966_579_724_800;
    const UNIX_TO_INTERNAL: i64 = 62_135_596_800;
    const ABSOLUTE_ZERO_YEAR: i64 = -292_277_022_399;

    fn new(v: f64) -> Self {
        let internal = go_i64(v).wrapping_add(Self::UNIX_TO_INTERNAL);
        Self {
            abs: internal.wrapping_sub(Self::ABSOLUTE_TO_INTERNAL) as u64,
        }
    }

    fn hour(&self) -> u64 {
        (self.abs % Self::DAY) / 3600
    }

    fn minute(&self) -> u64 {
        (self.abs % 3600) / 60
    }

    fn weekday(&self) -> u64 {
        ((self.abs + Self::DAY) % (7 * Self::DAY)) / Self::DAY
    }

    /// (year, month 1-12, day of month, day of year from 0).
    fn date(&self) -> (i64, u32, u32, u32) {
        const PER_400: u64 = 365 * 400 + 97;
        const PER_100: u64 = 365 * 100 + 24;
        const PER_4: u64 = 365 * 4 + 1;
        let mut d = self.abs / Self::DAY;
        let mut n = d / PER_400;
        let mut y = 400 * n;
        d -= PER_400 * n;
        n = d / PER_100;
        n -= n >> 2;
        y += 100 * n;
        d -= PER_100 * n;
        n = d / PER_4;
        y += 4 * n;
        d -= PER_4 * n;
        n = d / 365;
        n -= n >> 2;
        y += n;
        d -= 365 * n;
        let year = (y as i64).wrapping_add(Self::ABSOLUTE_ZERO_YEAR);
        let yday = d as u32;
        let mut day = yday;
        if is_leap(year) {
            if day == 31 + 29 - 1 {
                return (year, 2, 29, yday);
            }
            if day > 31 + 29 - 1 {
                day -= 1;
            }
        }
        const BEFORE: [u32; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
        let mut month = (day / 31) as usize;
        let end = BEFORE[month + 1];
        let begin = if day >= end {
            month += 1;
            end
        } else {
            BEFORE[month]
        };
        (year, month as u32 + 1, day - begin + 1, yday)
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn date_part(name: &str) -> fn(f64) -> f64 {
    match name {
        "minute" => |v| GoDate::new(v).minute() as f64,
        "hour" => |v| GoDate::new(v).hour() as f64,
        "day_of_week" => |v| GoDate::new(v).weekday() as f64,
        "day_of_month" => |v| GoDate::new(v).date().2 as f64,
        "month" => |v| GoDate::new(v).date().1 as f64,
        "year" => |v| GoDate::new(v).date().0 as f64,
        "day_of_year" => |v| (GoDate::new(v).date().3 + 1) as f64,
        _ => |v| {
            let (y, m, _, _) = GoDate::new(v).date();
            month_days(y, m) as f64
        },
    }
}

fn month_days(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

fn selector_absent_labels(vs: &promql_parser::parser::VectorSelector) -> Labels {
    use promql_parser::label::MatchOp;
    let mut out: Vec<Label> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == crate::model::labels::METRIC_NAME {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && !seen.contains(&m.name.as_str()) {
            out.retain(|l| l.name != m.name);
            out.push(Label::new(m.name.clone(), m.value.clone()));
            seen.push(&m.name);
        } else {
            out.retain(|l| l.name != m.name);
        }
    }
    Labels::new(out).unwrap_or_default()
}

fn absent_labels(e: &Expr) -> Labels {
    match e {
        Expr::VectorSelector(vs) => selector_absent_labels(vs),
        Expr::MatrixSelector(ms) => selector_absent_labels(&ms.vs),
        _ => Labels::empty(),
    }
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn relabel(series: Vec<StepSeries>, f: impl Fn(&Labels) -> Labels) -> Result<Val, PromqlError> {
    let out: Vec<StepSeries> = series
        .into_iter()
        .map(|s| StepSeries {
            labels: f(&s.labels),
            vals: s.vals,
        })
        .collect();
    Ok(Val::Vector(merge_same_labels(out)?))
}

fn label_replace(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    grid: Grid,
) -> Result<Val, PromqlError> {
    let name = "label_replace";
    let dst = ev.eval_string(arg(args, 1, name)?)?;
    let repl = ev.eval_string(arg(args, 2, name)?)?;
    let src = ev.eval_string(arg(args, 3, name)?)?;
    let re = ev.eval_string(arg(args, 4, name)?)?;
    let re = regex::Regex::new(&format!(
        "^(?:{})$",
        crate::model::matcher::go_compatible(&re)
    ))
    .map_err(|e| {
        PromqlError::execution(format!(
            "invalid regular expression in label_replace(): {e}"
        ))
    })?;
    if !valid_label_name(&dst) {
        return Err(PromqlError::execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let series = ev.eval_vector(arg(args, 0, name)?, grid)?;
    relabel(series, |l| {
        let value = l.value_or_empty(&src);
        match re.captures(value) {
            Some(caps) => {
                let mut out = String::new();
                caps.expand(&repl, &mut out);
                l.with(&dst, &out)
            }
            None => l.clone(),
        }
    })
}

fn label_join(ev: &mut Evaluator<'_>, args: &[Box<Expr>], grid: Grid) -> Result<Val, PromqlError> {
    let name = "label_join";
    let dst = ev.eval_string(arg(args, 1, name)?)?;
    let sep = ev.eval_string(arg(args, 2, name)?)?;
    let mut srcs = Vec::new();
    for a in args.iter().skip(3) {
        let s = ev.eval_string(a)?;
        if !valid_label_name(&s) {
            return Err(PromqlError::execution(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
        srcs.push(s);
    }
    if !valid_label_name(&dst) {
        return Err(PromqlError::execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let series = ev.eval_vector(arg(args, 0, name)?, grid)?;
    relabel(series, |l| {
        let joined: Vec<&str> = srcs.iter().map(|s| l.value_or_empty(s)).collect();
        l.with(&dst, &joined.join(&sep))
    })
}

fn histogram_quantile(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    grid: Grid,
) -> Result<Val, PromqlError> {
    let q = ev.eval_scalar(arg(args, 0, "histogram_quantile")?, grid)?;
    let series = ev.eval_vector(arg(args, 1, "histogram_quantile")?, grid)?;
    // Buckets per group of series equal but for `le`.
    let mut groups: HashMap<Labels, usize> = HashMap::new();
    let mut members: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    for (idx, s) in series.iter().enumerate() {
        let Some(le) = s.labels.get("le").and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let key = s.labels.without(&["le".to_string()]).without_name();
        let g = *groups.entry(key.clone()).or_insert_with(|| {
            members.push((key, Vec::new()));
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
    Ok(Val::Vector(out))
}

/// The quantile of classic histogram buckets `(upper bound, cumulative
/// count)`, interpolating linearly within the bucket.
fn bucket_quantile(q: f64, b: &mut Vec<(f64, f64)>) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_dates() {
        assert_eq!(GoDate::new(0.0).date(), (1970, 1, 1, 0));
        // 2024-02-29 is day 19782.
        assert_eq!(GoDate::new(19_782.0 * 86_400.0).date(), (2024, 2, 29, 59));
        assert_eq!(date_part("day_of_week")(0.0), 4.0);
        assert_eq!(date_part("day_of_year")(19_782.0 * 86_400.0), 60.0);
        assert_eq!(date_part("days_in_month")(19_782.0 * 86_400.0), 29.0);
        // Out of range, Go wraps around.
        assert_eq!(date_part("hour")(f64::NAN), 15.0);
        assert_eq!(date_part("year")(f64::INFINITY), 292_277_026_596.0);
    }

    #[test]
    fn quantiles() {
        let mut v = vec![1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(0.5, &mut v), 2.5);
        assert_eq!(quantile(-1.0, &mut v), f64::NEG_INFINITY);
        let mut b = vec![(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(bucket_quantile(0.5, &mut b), 1.0);
        let mut b = vec![(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(bucket_quantile(0.75, &mut b), 1.5);
    }

    #[test]
    fn go_min_max_semantics() {
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert!(go_min(f64::NAN, 1.0).is_nan());
        assert!(go_max(-0.0, 0.0).is_sign_positive());
        assert!(go_min(0.0, -0.0).is_sign_negative());
    }
}
