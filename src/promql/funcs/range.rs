//! Functions over a range of samples (`rate`, `*_over_time`, `deriv`, ...).

use super::*;
use crate::model::Sample;
use crate::promql::eval::{
    check_unique, Evaluator, Grid, MatrixArg, MatrixSource, Points, StepSeries, Val, Windows,
};
use crate::promql::PromqlError;

/// Context of one window of a range function.
pub(super) struct Win {
    /// End of the window (step time or `@`, minus offset).
    end: i64,
    /// Width of the window.
    range: i64,
    /// The step's own time.
    ts: i64,
    p1: f64,
    p2: f64,
}

pub(super) type RangeFn = fn(&[Sample], &Win) -> Result<Option<f64>, PromqlError>;

pub(super) fn range_fn(name: &str) -> Option<RangeFn> {
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

pub(super) fn nonempty(s: &[Sample]) -> Option<&[Sample]> {
    (!s.is_empty()).then_some(s)
}

/// Welford's running variance with compensated sums, as 2.42 computes it.
pub(super) fn variance(s: &[Sample]) -> f64 {
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
pub(super) fn extrapolated_rate(
    s: &[Sample],
    w: &Win,
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (first, last) = (s[0], s[s.len() - 1]);
    let range_start = w.end.saturating_sub(w.range);
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
    let mut to_start = first.t.saturating_sub(range_start) as f64 / 1000.0;
    let to_end = w.end.saturating_sub(last.t) as f64 / 1000.0;
    let sampled = last.t.saturating_sub(first.t) as f64 / 1000.0;
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
    // One factor, divided by the range first and then applied once, as
    // Prometheus 2.42 does: the order decides the last bits, and those
    // decide which bucket a quantile's rank falls in.
    let mut factor = interval / sampled;
    if per_second {
        factor /= w.range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: from the last two samples.
pub(super) fn instant_value(s: &[Sample], per_second: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (prev, last) = (s[s.len() - 2], s[s.len() - 1]);
    let mut result = if per_second && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    let interval = last.t.saturating_sub(prev.t);
    if interval == 0 {
        return None;
    }
    if per_second {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Least-squares slope and intercept (at `intercept_t`) of the samples.
pub(super) fn linear_regression(s: &[Sample], intercept_t: i64) -> (f64, f64) {
    let init = s[0].v;
    let mut constant = true;
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    for (i, p) in s.iter().enumerate() {
        if constant && i > 0 && p.v != init {
            constant = false;
        }
        n += 1.0;
        let x = p.t.saturating_sub(intercept_t) as f64 / 1e3;
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

pub(super) fn holt_winters(s: &[Sample], w: &Win) -> Result<Option<f64>, PromqlError> {
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

/// One series through a range function: its value at every step, if any,
/// and the most samples one window held.
#[allow(clippy::too_many_arguments)]
fn range_one(
    f: RangeFn,
    samples: &[Sample],
    grid: Grid,
    marg: &MatrixArg<'_>,
    p1: &[f64],
    p2: &[f64],
) -> Result<(Option<Points>, usize), PromqlError> {
    let (at, offset, range) = (marg.at, marg.offset, marg.range);
    let mut w = Windows::new(samples);
    let mut vals: Points = vec![None; grid.n];
    let mut any = false;
    let mut held = 0;
    for (i, o) in vals.iter_mut().enumerate() {
        let ts = grid.ts(i);
        let end = at.unwrap_or(ts).saturating_sub(offset);
        let window = w.window(end.saturating_sub(range), end);
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
    Ok((any.then_some(vals), held))
}

fn out_labels(name: &str, labels: &Labels) -> Labels {
    if name == "last_over_time" {
        labels.clone()
    } else {
        labels.without_name()
    }
}

/// A range function over a selector, its output series handed to `sink`
/// in batches in series order (series of a batch evaluated on several
/// threads when there are many); over a subquery, in one batch.
#[allow(clippy::too_many_arguments)]
pub(super) fn range_batched(
    ev: &mut Evaluator<'_>,
    name: &str,
    f: RangeFn,
    marg: &MatrixArg<'_>,
    p1: &[f64],
    p2: &[f64],
    grid: Grid,
    sink: &mut dyn FnMut(Vec<StepSeries>) -> Result<(), PromqlError>,
) -> Result<(), PromqlError> {
    match &marg.source {
        MatrixSource::Selector(vs) => ev.map_selected_batched(
            vs,
            |s, buf| {
                buf.retain(|x| !x.is_stale());
                let (vals, held) = range_one(f, buf, grid, marg, p1, p2)?;
                Ok(Some((
                    vals.map(|vals| StepSeries {
                        labels: out_labels(name, &s.labels),
                        vals,
                    }),
                    held,
                )))
            },
            sink,
        ),
        MatrixSource::Subquery { .. } => {
            let mut out = Vec::new();
            ev.for_each_matrix_series(marg, grid, |limits, labels, samples| {
                let (vals, held) = range_one(f, samples, grid, marg, p1, p2)?;
                limits.take(held)?;
                limits.give(held);
                if let Some(vals) = vals {
                    out.push(StepSeries {
                        labels: out_labels(name, labels),
                        vals,
                    });
                }
                Ok(())
            })?;
            sink(out)
        }
    }
}

pub(super) fn range_call(
    ev: &mut Evaluator<'_>,
    name: &str,
    f: RangeFn,
    marg: &MatrixArg<'_>,
    p1: &[f64],
    p2: &[f64],
    grid: Grid,
) -> Result<Val, PromqlError> {
    let mut out = Vec::new();
    range_batched(ev, name, f, marg, p1, p2, grid, &mut |batch| {
        out.extend(batch);
        Ok(())
    })?;
    check_unique(&out)?;
    Ok(Val::Vector(out))
}
