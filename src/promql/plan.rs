//! From query text to data: parsing with Prometheus 2.42's rules, finding
//! every selector and the time range it needs, fetching those series
//! through the query path, and shaping the final value.

use std::collections::HashMap;

use futures::StreamExt;
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::token::{T_LIMITK, T_LIMIT_RATIO};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Expr, VectorSelector};

use super::eval::{
    at_ms, check_points, duration_ms, offset_ms, selector_key, subquery_grid, Grid, Val,
};
use super::funcs::FUNCTIONS;
use super::value::{RangeSeries, Value, VectorSample};
use super::{PromqlError, Source};
use crate::model::chunk::aggr::AggrChoice;
use crate::model::labels::METRIC_NAME;
use crate::model::matcher::{MatchOp, Matcher};
use crate::model::{Labels, Series};
use crate::series::{is_counter_func, SeriesOptions};
use crate::store::{SeriesFrame, SeriesRequest, StoreError};

/// Parses a query and rejects what Prometheus 2.42 does not know.
pub(crate) fn parse(query: &str) -> Result<Expr, PromqlError> {
    register_functions();
    if query.trim().is_empty() {
        return Err(PromqlError::bad_data(
            "parse error: no expression found in input",
        ));
    }
    let expr = super::depth::parse_expr(query)
        .map_err(|e| PromqlError::bad_data(format!("parse error: {e}")))?;
    check(&expr)?;
    Ok(expr)
}

/// `holt_winters` is 2.42's name of what the parser knows as
/// `double_exponential_smoothing`.
fn register_functions() {
    use promql_parser::parser::function::{register_extra_functions, Function};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let f = Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        );
        if let Err(e) = register_extra_functions(vec![f]) {
            tracing::error!(error = %e, "cannot register holt_winters with the PromQL parser");
        }
    });
}

fn check(e: &Expr) -> Result<(), PromqlError> {
    match e {
        Expr::Call(c) => {
            if !FUNCTIONS.contains(&c.func.name) {
                return Err(PromqlError::bad_data(format!(
                    "parse error: unknown function with name \"{}\"",
                    c.func.name
                )));
            }
            c.args.args.iter().try_for_each(|a| check(a))
        }
        Expr::Aggregate(a) => {
            if matches!(a.op.id(), T_LIMITK | T_LIMIT_RATIO) {
                return Err(PromqlError::bad_data(format!(
                    "parse error: unknown aggregation operator {}",
                    a.op
                )));
            }
            check(&a.expr)?;
            a.param.as_deref().map_or(Ok(()), check)
        }
        Expr::Binary(b) => {
            check(&b.lhs)?;
            check(&b.rhs)
        }
        Expr::Paren(p) => check(&p.expr),
        Expr::Unary(u) => check(&u.expr),
        Expr::Subquery(s) => check(&s.expr),
        Expr::VectorSelector(vs) => check_selector(vs),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::Extension(_) => Err(PromqlError::bad_data("parse error: unsupported expression")),
    }
}

fn check_selector(vs: &VectorSelector) -> Result<(), PromqlError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(PromqlError::bad_data(
            "parse error: unexpected \"or\" in label matching",
        ));
    }
    matchers(vs)?;
    Ok(())
}

/// Range queries evaluate to a scalar or an instant vector only.
pub(crate) fn check_range_type(e: &Expr) -> Result<(), PromqlError> {
    let t = e.value_type();
    if matches!(t, ValueType::Vector | ValueType::Scalar) {
        return Ok(());
    }
    let name = match t {
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
        _ => "unknown",
    };
    Err(PromqlError::bad_data(format!(
        "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
    )))
}

/// The selector's matchers in skein's form, the metric name included.
pub(crate) fn matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, PromqlError> {
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        let op = match m.op {
            PMatchOp::Equal => MatchOp::Equal,
            PMatchOp::NotEqual => MatchOp::NotEqual,
            PMatchOp::Re(_) => MatchOp::Regex,
            PMatchOp::NotRe(_) => MatchOp::NotRegex,
        };
        out.push(
            Matcher::new(op, m.name.clone(), m.value.clone())
                .map_err(|e| PromqlError::bad_data(format!("parse error: {e}")))?,
        );
    }
    if out.iter().all(|m| m.matches_empty()) {
        return Err(PromqlError::bad_data(
            "parse error: vector selector must contain at least one non-empty matcher",
        ));
    }
    Ok(out)
}

pub(crate) struct Ctx {
    pub start: i64,
    pub end: i64,
    pub lookback: i64,
    pub default_step: i64,
    /// `--query.max-samples`: also the most steps one grid may have.
    pub max_samples: usize,
}

/// What one selector needs from the stores.
pub(crate) struct Need<'e> {
    pub selector: &'e VectorSelector,
    pub min: i64,
    pub max: i64,
    pub range: i64,
    pub step: i64,
    pub func: String,
}

/// Every selector of the query with the time range its evaluation reads.
pub(crate) fn selectors<'e>(
    expr: &'e Expr,
    grid: Grid,
    ctx: &Ctx,
) -> Result<Vec<Need<'e>>, PromqlError> {
    let mut out = Vec::new();
    check_points(grid.n, ctx.max_samples)?;
    walk(expr, grid.start, grid.end(), grid.step, ctx, "", &mut out)?;
    Ok(out)
}

fn walk<'e>(
    e: &'e Expr,
    lo: i64,
    hi: i64,
    step: i64,
    ctx: &Ctx,
    func: &str,
    out: &mut Vec<Need<'e>>,
) -> Result<(), PromqlError> {
    // Reference times of a node with `@` and offset, over [lo, hi].
    let refs = |at, off: i64| match at_ms(at, ctx.start, ctx.end) {
        Some(t) => (t.saturating_sub(off), t.saturating_sub(off)),
        None => (lo.saturating_sub(off), hi.saturating_sub(off)),
    };
    match e {
        Expr::VectorSelector(vs) => {
            let (a, b) = refs(&vs.at, offset_ms(&vs.offset));
            out.push(Need {
                selector: vs,
                min: a.saturating_sub(ctx.lookback),
                max: b,
                range: 0,
                step,
                func: func.to_string(),
            });
        }
        Expr::MatrixSelector(ms) => {
            let range = duration_ms(&ms.range);
            let (a, b) = refs(&ms.vs.at, offset_ms(&ms.vs.offset));
            out.push(Need {
                selector: &ms.vs,
                min: a.saturating_sub(range),
                max: b,
                range,
                step,
                func: func.to_string(),
            });
        }
        Expr::Subquery(sq) => {
            let range = duration_ms(&sq.range);
            let sstep = sq
                .step
                .map(|d| duration_ms(&d))
                .filter(|s| *s > 0)
                .unwrap_or(ctx.default_step);
            let (a, b) = refs(&sq.at, offset_ms(&sq.offset));
            let g = subquery_grid(a.saturating_sub(range), b, sstep);
            check_points(g.n, ctx.max_samples)?;
            if g.n > 0 {
                walk(&sq.expr, g.start, g.end(), sstep, ctx, func, out)?;
            }
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, lo, hi, step, ctx, c.func.name, out)?;
            }
        }
        Expr::Aggregate(a) => {
            // As Prometheus' hints: the nearest function or aggregation
            // above a selector, through anything but a binary operation.
            let op = a.op.to_string();
            walk(&a.expr, lo, hi, step, ctx, &op, out)?;
            if let Some(p) = &a.param {
                walk(p, lo, hi, step, ctx, &op, out)?;
            }
        }
        Expr::Binary(b) => {
            walk(&b.lhs, lo, hi, step, ctx, "", out)?;
            walk(&b.rhs, lo, hi, step, ctx, "", out)?;
        }
        Expr::Paren(p) => walk(&p.expr, lo, hi, step, ctx, func, out)?,
        Expr::Unary(u) => walk(&u.expr, lo, hi, step, ctx, func, out)?,
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
    Ok(())
}

/// The coarsest downsampled data a selector may read: a function that
/// needs two samples in its range must get at least two windows there
/// (Thanos' rule), so `rate(x[5m])` reads nothing coarser than 2.5m.
/// `resets` and `changes` read raw data only: the counter aggregate has
/// the resets inside a window taken out, and window averages change where
/// raw values do not, so either would answer wrongly without a word; a
/// stretch held only downsampled gets the gateway's warning instead.
fn max_resolution(requested: i64, need: &Need<'_>) -> i64 {
    if matches!(need.func.as_str(), "resets" | "changes") {
        return 0;
    }
    let two_samples = matches!(
        need.func.as_str(),
        "rate"
            | "irate"
            | "increase"
            | "delta"
            | "idelta"
            | "deriv"
            | "predict_linear"
            | "holt_winters"
            | "double_exponential_smoothing"
    );
    if need.range > 0 && two_samples {
        requested.min(need.range / 2)
    } else {
        requested
    }
}

/// Whether `e` holds a subquery anywhere: a subquery's grid makes work
/// that the data fetched does not bound.
pub(crate) fn has_subquery(e: &Expr) -> bool {
    match e {
        Expr::Subquery(_) => true,
        Expr::Aggregate(a) => has_subquery(&a.expr) || a.param.as_deref().is_some_and(has_subquery),
        Expr::Unary(u) => has_subquery(&u.expr),
        Expr::Binary(b) => has_subquery(&b.lhs) || has_subquery(&b.rhs),
        Expr::Paren(p) => has_subquery(&p.expr),
        Expr::Call(c) => c.args.args.iter().any(|a| has_subquery(a)),
        Expr::Extension(_) => true,
        _ => false,
    }
}

pub(crate) struct Fetched {
    pub series: HashMap<usize, Vec<Series>>,
    pub warnings: Vec<String>,
}

fn store_error(e: StoreError) -> PromqlError {
    PromqlError {
        code: e.code(),
        message: e.to_string(),
    }
}

/// Bytes of series data one query may hold as fetched (labels and
/// compressed chunks), counted as frames arrive.
pub(crate) struct FetchBudget {
    limit: usize,
    used: std::sync::atomic::AtomicUsize,
}

impl FetchBudget {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            used: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn take(&self, s: &Series) -> Result<(), PromqlError> {
        if self.limit == 0 {
            return Ok(());
        }
        let labels: usize = s.labels.iter().map(|l| l.name.len() + l.value.len()).sum();
        let chunks: usize = s.chunks.iter().map(|c| c.data.len() + 24).sum();
        let n = labels + chunks + 64;
        let used = self
            .used
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed)
            .saturating_add(n);
        if used > self.limit {
            return Err(PromqlError::execution(format!(
                "query processing would load too many samples into memory in query execution: the series it selects hold more than {} bytes (--query.max-fetched-bytes)",
                self.limit
            )));
        }
        Ok(())
    }
}

/// Fetches the series of every selector at once; chunks stay compressed.
pub(crate) async fn fetch(
    source: &dyn Source,
    needs: Vec<Need<'_>>,
    opts: &SeriesOptions,
    budget: &FetchBudget,
) -> Result<Fetched, PromqlError> {
    let calls = needs.into_iter().map(|need| async move {
        let mut req = SeriesRequest::new(need.min, need.max, matchers(need.selector)?);
        req.step_ms = need.step;
        req.range_ms = need.range;
        req.func = need.func.clone();
        req.deadline = opts.deadline;
        if opts.max_resolution_ms > 0 {
            req.max_resolution_ms = max_resolution(opts.max_resolution_ms, &need);
            req.aggregates = AggrChoice::for_func(&need.func).aggregates();
        }
        let mut opts = opts.clone();
        opts.counter = is_counter_func(&need.func);
        opts.weigh_counts = req.max_resolution_ms > 0 && need.func == "count_over_time";
        let mut stream = source.select(req, &opts).await.map_err(store_error)?;
        let mut series = Vec::new();
        let mut warnings = Vec::new();
        while let Some(frame) = stream.next().await {
            match frame.map_err(store_error)? {
                SeriesFrame::Series(s) => {
                    budget.take(&s)?;
                    series.push(s)
                }
                SeriesFrame::Warning(w) => warnings.push(w),
            }
        }
        Ok::<_, PromqlError>((selector_key(need.selector), series, warnings))
    });
    let results = futures::future::try_join_all(calls).await?;
    let mut out = Fetched {
        series: HashMap::with_capacity(results.len()),
        warnings: Vec::new(),
    };
    for (key, series, warnings) in results {
        out.series.insert(key, series);
        for w in warnings {
            if !out.warnings.contains(&w) {
                out.warnings.push(w);
            }
        }
    }
    Ok(out)
}

/// The value of the whole query in the API's shape.
pub(crate) fn to_value(v: Val, grid: Grid, range_query: bool) -> Value {
    let t = grid.start;
    match v {
        Val::Scalar(vals) if !range_query => Value::Scalar {
            t_ms: t,
            v: vals.first().copied().unwrap_or(f64::NAN),
        },
        Val::Scalar(vals) => Value::Matrix(vec![RangeSeries {
            labels: Labels::empty(),
            points: vals
                .into_iter()
                .enumerate()
                .map(|(i, v)| (grid.ts(i), v))
                .collect(),
        }]),
        Val::String(s) => Value::String { t_ms: t, v: s },
        Val::Matrix(m) => Value::Matrix(m),
        Val::Vector(series) if !range_query => Value::Vector(
            series
                .into_iter()
                .filter_map(|s| {
                    let v = s.vals.first().copied().flatten()?;
                    Some(VectorSample {
                        labels: s.labels,
                        t_ms: t,
                        v,
                    })
                })
                .collect(),
        ),
        Val::Vector(series) => {
            let mut m: Vec<RangeSeries> = series
                .into_iter()
                .filter_map(|s| {
                    let points: Vec<(i64, f64)> = s
                        .vals
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.map(|v| (grid.ts(i), v)))
                        .collect();
                    (!points.is_empty()).then_some(RangeSeries {
                        labels: s.labels,
                        points,
                    })
                })
                .collect();
            m.sort_by(|a, b| a.labels.cmp(&b.labels));
            Value::Matrix(m)
        }
    }
}
