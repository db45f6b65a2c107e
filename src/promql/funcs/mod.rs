//! PromQL functions, as Prometheus 2.42 evaluates them: the dispatch here,
//! the families in submodules.

mod histogram;
mod labels;
mod math;
mod range;

use histogram::*;
use labels::*;
use math::*;
pub(crate) use math::{go_max, go_min, quantile};
use range::*;

use promql_parser::parser::{Call, Expr};

use super::eval::{
    merge_same_labels, offset_ms, unparen, Evaluator, Grid, MatrixArg, MatrixSource, Points,
    StepSeries, Val, Windows,
};
use super::PromqlError;
use crate::model::Labels;

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

fn matrix_arg<'e>(ev: &Evaluator<'_>, e: &'e Expr) -> Result<MatrixArg<'e>, PromqlError> {
    match unparen(e) {
        Expr::MatrixSelector(ms) => Ok(MatrixArg {
            range: crate::promql::eval::duration_ms(&ms.range),
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

/// A range function's call, its arguments evaluated: the function, its
/// range-vector argument and its scalar parameters.
struct RangeCall<'e> {
    f: RangeFn,
    marg: MatrixArg<'e>,
    p1: Vec<f64>,
    p2: Vec<f64>,
}

fn range_call_args<'e>(
    ev: &mut Evaluator<'_>,
    c: &'e Call,
    f: RangeFn,
    grid: Grid,
) -> Result<RangeCall<'e>, PromqlError> {
    let name = c.func.name;
    let args = &c.args.args;
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
    Ok(RangeCall { f, marg, p1, p2 })
}

/// For an aggregation that folds its input series one by one: a range
/// function over a selector of one metric name (so the function's
/// output series keep distinct labels) passes its output to `sink` in
/// batches, in series order, instead of holding all of it. `Ok(false)`:
/// not such a call, and nothing was evaluated.
pub(crate) fn call_batched(
    ev: &mut Evaluator<'_>,
    c: &Call,
    grid: Grid,
    sink: &mut dyn FnMut(Vec<StepSeries>) -> Result<(), PromqlError>,
) -> Result<bool, PromqlError> {
    let name = c.func.name;
    let Some(f) = range_fn(name) else {
        return Ok(false);
    };
    let m = usize::from(name == "quantile_over_time");
    let Some(Expr::MatrixSelector(ms)) = c.args.args.get(m).map(|a| unparen(a)) else {
        return Ok(false);
    };
    if !crate::promql::eval::one_metric_name(&ms.vs) {
        return Ok(false);
    }
    let rc = range_call_args(ev, c, f, grid)?;
    range_batched(ev, name, rc.f, &rc.marg, &rc.p1, &rc.p2, grid, sink)?;
    Ok(true)
}

pub(crate) fn call(ev: &mut Evaluator<'_>, c: &Call, grid: Grid) -> Result<Val, PromqlError> {
    let name = c.func.name;
    let args = &c.args.args;
    if let Some(f) = range_fn(name) {
        let rc = range_call_args(ev, c, f, grid)?;
        return range_call(ev, name, rc.f, &rc.marg, &rc.p1, &rc.p2, grid);
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
        "scalar" => scalar(ev, args, grid),
        "absent" => absent(ev, args, grid),
        "absent_over_time" => absent_over_time(ev, args, grid),
        "timestamp" => timestamp(ev, args, grid),
        "sort" | "sort_desc" => sort(ev, name, args, grid),
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
        "clamp" => clamp(ev, args, grid),
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

fn scalar(ev: &mut Evaluator<'_>, args: &[Box<Expr>], grid: Grid) -> Result<Val, PromqlError> {
    let name = "scalar";
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

fn absent(ev: &mut Evaluator<'_>, args: &[Box<Expr>], grid: Grid) -> Result<Val, PromqlError> {
    let name = "absent";
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

fn absent_over_time(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    grid: Grid,
) -> Result<Val, PromqlError> {
    let name = "absent_over_time";
    let marg = matrix_arg(ev, arg(args, 0, name)?)?;
    let mut vals: Points = vec![Some(1.0); grid.n];
    let (at, offset, range) = (marg.at, marg.offset, marg.range);
    ev.for_each_matrix_series(&marg, grid, |_, _, samples| {
        let mut w = Windows::new(samples);
        for (i, o) in vals.iter_mut().enumerate() {
            let end = at.unwrap_or_else(|| grid.ts(i)).saturating_sub(offset);
            if !w.window(end.saturating_sub(range), end).is_empty() {
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

fn timestamp(ev: &mut Evaluator<'_>, args: &[Box<Expr>], grid: Grid) -> Result<Val, PromqlError> {
    let name = "timestamp";
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

fn sort(
    ev: &mut Evaluator<'_>,
    name: &str,
    args: &[Box<Expr>],
    grid: Grid,
) -> Result<Val, PromqlError> {
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

fn clamp(ev: &mut Evaluator<'_>, args: &[Box<Expr>], grid: Grid) -> Result<Val, PromqlError> {
    let name = "clamp";
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
