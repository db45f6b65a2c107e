//! The evaluator. Every node is evaluated once over all steps of its grid
//! (the query's steps, or a subquery's), so chunks are decoded once per
//! series and windows slide over the samples instead of being re-scanned per
//! step. Series of a selector are decoded one at a time into a reused
//! buffer; the rest stays compressed until the evaluator reaches it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

use super::value::RangeSeries;
use super::{aggr, binop, funcs, PromqlError};
use crate::error::ErrorCode;
use crate::model::{Labels, Sample, Series};
use crate::series::merge::decode_series;

/// Values of one series over the steps of a grid; `None` where it has none.
pub(crate) type Points = Vec<Option<f64>>;

#[derive(Debug, Clone)]
pub(crate) struct StepSeries {
    pub labels: Labels,
    pub vals: Points,
}

impl StepSeries {
    pub fn is_empty(&self) -> bool {
        self.vals.iter().all(Option::is_none)
    }
}

/// The value of a node over its grid.
#[derive(Debug)]
pub(crate) enum Val {
    Scalar(Vec<f64>),
    Vector(Vec<StepSeries>),
    String(String),
    /// Raw samples of a range vector: only as the result of an instant query.
    Matrix(Vec<RangeSeries>),
}

impl Val {
    fn points(&self) -> usize {
        match self {
            Val::Scalar(v) => v.len(),
            Val::Vector(s) => s
                .iter()
                .map(|s| s.vals.iter().filter(|v| v.is_some()).count())
                .sum(),
            Val::String(_) => 1,
            Val::Matrix(m) => m.iter().map(|s| s.points.len()).sum(),
        }
    }
}

/// Series of a selector evaluated and handed on together when the output
/// is folded as it comes (an aggregation over a selector or a range
/// function): memory for a batch, not for the whole selector.
const BATCH_SERIES: usize = 2_048;

/// Whether a selector selects one metric name (a name, or an equality
/// matcher on `__name__`): its series then differ in other labels, and so
/// do they once a function drops the name.
pub(crate) fn one_metric_name(vs: &VectorSelector) -> bool {
    vs.name.is_some()
        || vs
            .matchers
            .matchers
            .iter()
            .any(|m| m.name == "__name__" && matches!(m.op, promql_parser::label::MatchOp::Equal))
}

/// Evaluation times: `start + i * step` for `i` in `0..n`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    pub start: i64,
    pub step: i64,
    pub n: usize,
}

impl Grid {
    pub fn ts(&self, i: usize) -> i64 {
        self.start
            .saturating_add((i as i64).saturating_mul(self.step))
    }

    pub fn end(&self) -> i64 {
        self.ts(self.n.saturating_sub(1))
    }
}

/// Identifies a selector node of the parsed query (the AST does not move
/// while a query runs).
pub(crate) fn selector_key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
        None => 0,
    }
}

/// A duration of the query text in milliseconds, saturating: `[300000000y]`
/// is a long range, not a negative one.
pub(crate) fn duration_ms(d: &std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(e) => -duration_ms(&e.duration()),
    }
}

/// `@` of a node: a fixed evaluation time, or `None` to follow the steps.
pub(crate) fn at_ms(at: &Option<AtModifier>, start: i64, end: i64) -> Option<i64> {
    match at {
        None => None,
        Some(AtModifier::Start) => Some(start),
        Some(AtModifier::End) => Some(end),
        Some(AtModifier::At(t)) => Some(system_time_ms(*t)),
    }
}

/// Removes parentheses around an expression.
pub(crate) fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

pub(crate) fn same_labelset_error() -> PromqlError {
    PromqlError::execution("vector cannot contain metrics with the same labelset")
}

/// Merges series with equal label sets; two values at one step are an error.
pub(crate) fn merge_same_labels(series: Vec<StepSeries>) -> Result<Vec<StepSeries>, PromqlError> {
    let mut seen: HashSet<&Labels> = HashSet::with_capacity(series.len());
    if series.iter().all(|s| seen.insert(&s.labels)) {
        return Ok(series);
    }
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            Some(&i) => {
                let dst = &mut out[i].vals;
                for (d, v) in dst.iter_mut().zip(s.vals) {
                    if v.is_some() {
                        if d.is_some() {
                            return Err(same_labelset_error());
                        }
                        *d = v;
                    }
                }
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Fails on two series with one label set.
pub(crate) fn check_unique(series: &[StepSeries]) -> Result<(), PromqlError> {
    let mut seen: HashSet<&Labels> = HashSet::with_capacity(series.len());
    if series.iter().all(|s| seen.insert(&s.labels)) {
        Ok(())
    } else {
        Err(same_labelset_error())
    }
}

/// Samples held, time and cancellation.
pub(crate) struct Limits<'a> {
    pub max_samples: usize,
    pub held: usize,
    pub deadline: Instant,
    pub cancel: &'a AtomicBool,
}

impl Limits<'_> {
    pub fn take(&mut self, n: usize) -> Result<(), PromqlError> {
        self.held += n;
        if self.max_samples > 0 && self.held > self.max_samples {
            return Err(PromqlError::execution(
                "query processing would load too many samples into memory in query execution",
            ));
        }
        Ok(())
    }

    pub fn give(&mut self, n: usize) {
        self.held = self.held.saturating_sub(n);
    }

    pub fn check(&self) -> Result<(), PromqlError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(PromqlError {
                code: ErrorCode::Canceled,
                message: "query was canceled in expression evaluation".into(),
            });
        }
        if Instant::now() >= self.deadline {
            return Err(PromqlError {
                code: ErrorCode::Timeout,
                message: "query timed out in expression evaluation".into(),
            });
        }
        Ok(())
    }
}

/// The window of a range-vector argument, relative to each step.
pub(crate) struct MatrixArg<'e> {
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
    pub source: MatrixSource<'e>,
}

pub(crate) enum MatrixSource<'e> {
    Selector(&'e VectorSelector),
    /// A subquery's inner expression, evaluated on its own grid.
    Subquery {
        expr: &'e Expr,
        step: i64,
    },
}

pub(crate) struct Evaluator<'a> {
    pub data: &'a HashMap<usize, Vec<Series>>,
    pub lookback: i64,
    /// The query's start and end, for `@ start()` / `@ end()`.
    pub start: i64,
    pub end: i64,
    /// Step of subqueries that give none.
    pub default_step: i64,
    pub limits: Limits<'a>,
    pub buf: Vec<Sample>,
    /// Selectors may read downsampled data (`max_source_resolution`):
    /// a sample under `count_over_time` is then a count of raw samples
    /// (a window's, or 1 for a raw one), which the function adds up.
    pub weighted_counts: bool,
}

impl<'a> Evaluator<'a> {
    pub fn at(&self, at: &Option<AtModifier>) -> Option<i64> {
        at_ms(at, self.start, self.end)
    }

    pub fn eval(&mut self, expr: &Expr, grid: Grid) -> Result<Val, PromqlError> {
        self.limits.check()?;
        let v = match expr {
            Expr::NumberLiteral(n) => Val::Scalar(vec![n.val; grid.n]),
            Expr::StringLiteral(s) => Val::String(s.val.clone()),
            Expr::Paren(p) => return self.eval(&p.expr, grid),
            Expr::Unary(u) => match self.eval(&u.expr, grid)? {
                Val::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Val::Scalar(v)
                }
                Val::Vector(mut series) => {
                    for s in &mut series {
                        s.labels = s.labels.without_name();
                        s.vals.iter_mut().flatten().for_each(|x| *x = -*x);
                    }
                    check_unique(&series)?;
                    Val::Vector(series)
                }
                _ => {
                    return Err(PromqlError::bad_data(
                        "unary expression only allowed on expressions of type scalar or vector",
                    ))
                }
            },
            Expr::VectorSelector(vs) => Val::Vector(self.vector_selector(vs, grid, false)?),
            Expr::MatrixSelector(ms) => {
                let arg = MatrixArg {
                    range: duration_ms(&ms.range),
                    offset: offset_ms(&ms.vs.offset),
                    at: self.at(&ms.vs.at),
                    source: MatrixSource::Selector(&ms.vs),
                };
                Val::Matrix(self.raw_matrix(&arg, grid)?)
            }
            Expr::Subquery(sq) => {
                let arg = self.subquery_arg(sq);
                Val::Matrix(self.raw_matrix(&arg, grid)?)
            }
            Expr::Call(call) => funcs::call(self, call, grid)?,
            Expr::Aggregate(a) => aggr::eval(self, a, grid)?,
            Expr::Binary(b) => binop::eval(self, b, grid)?,
            Expr::Extension(_) => {
                return Err(PromqlError::bad_data("unsupported expression"));
            }
        };
        self.limits.take(v.points())?;
        Ok(v)
    }

    /// Releases the sample budget of a consumed child value.
    pub fn release(&mut self, v: &Val) {
        self.limits.give(v.points());
    }

    pub fn eval_vector(&mut self, expr: &Expr, grid: Grid) -> Result<Vec<StepSeries>, PromqlError> {
        match self.eval(expr, grid)? {
            Val::Vector(v) => {
                let n = v.iter().map(|s| s.vals.iter().flatten().count()).sum();
                self.limits.give(n);
                Ok(v)
            }
            other => Err(PromqlError::bad_data(format!(
                "expected instant vector, got {}",
                type_name(&other)
            ))),
        }
    }

    pub fn eval_scalar(&mut self, expr: &Expr, grid: Grid) -> Result<Vec<f64>, PromqlError> {
        match self.eval(expr, grid)? {
            Val::Scalar(v) => {
                self.limits.give(v.len());
                Ok(v)
            }
            other => Err(PromqlError::bad_data(format!(
                "expected scalar, got {}",
                type_name(&other)
            ))),
        }
    }

    pub fn eval_string(&mut self, expr: &Expr) -> Result<String, PromqlError> {
        match unparen(expr) {
            Expr::StringLiteral(s) => Ok(s.val.clone()),
            _ => Err(PromqlError::bad_data("expected string literal")),
        }
    }

    fn decode(&mut self, s: &Series) -> Result<(), PromqlError> {
        self.buf.clear();
        decode_series(&s.chunks, &mut self.buf)
            .map_err(|e| PromqlError::execution(format!("series {}: {e}", s.labels)))
    }

    fn selected(&self, vs: &VectorSelector) -> Result<&'a [Series], PromqlError> {
        self.data
            .get(&selector_key(vs))
            .map(Vec::as_slice)
            .ok_or_else(|| PromqlError::execution("selector was not planned"))
    }

    /// An instant vector selector at every step: the newest sample within
    /// the lookback window, unless it is a staleness marker. With
    /// `timestamps`, the sample's time in seconds instead of its value.
    pub fn vector_selector(
        &mut self,
        vs: &VectorSelector,
        grid: Grid,
        timestamps: bool,
    ) -> Result<Vec<StepSeries>, PromqlError> {
        let mut out = Vec::new();
        self.vector_selector_batched(vs, grid, timestamps, &mut |batch| {
            out.extend(batch);
            Ok(())
        })?;
        Ok(out)
    }

    /// [`Self::vector_selector`], its series handed to `sink` in batches,
    /// in series order.
    pub fn vector_selector_batched(
        &mut self,
        vs: &VectorSelector,
        grid: Grid,
        timestamps: bool,
        sink: &mut dyn FnMut(Vec<StepSeries>) -> Result<(), PromqlError>,
    ) -> Result<(), PromqlError> {
        let at = self.at(&vs.at);
        let off = offset_ms(&vs.offset);
        let lookback = self.lookback;
        self.map_selected_batched(
            vs,
            |s, buf| {
                let mut vals: Points = vec![None; grid.n];
                let mut any = false;
                let mut j = 0;
                for (i, slot) in vals.iter_mut().enumerate() {
                    let r = at.unwrap_or_else(|| grid.ts(i)).saturating_sub(off);
                    while j < buf.len() && buf[j].t <= r {
                        j += 1;
                    }
                    if j > 0 {
                        let smp = buf[j - 1];
                        if smp.t >= r.saturating_sub(lookback) && !smp.is_stale() {
                            *slot = Some(if timestamps {
                                smp.t as f64 / 1000.0
                            } else {
                                smp.v
                            });
                            any = true;
                        }
                    }
                }
                let series = any.then(|| StepSeries {
                    labels: s.labels.clone(),
                    vals,
                });
                Ok(Some((series, 0)))
            },
            sink,
        )
    }

    /// Like [`Self::map_selected`] for `f` returning an output series (if
    /// any) and the samples it held at once: outputs go to `sink` in
    /// batches, in series order, so only a batch is held at a time.
    pub fn map_selected_batched(
        &mut self,
        vs: &VectorSelector,
        f: impl Fn(
                &Series,
                &mut Vec<Sample>,
            ) -> Result<Option<(Option<StepSeries>, usize)>, PromqlError>
            + Sync,
        sink: &mut dyn FnMut(Vec<StepSeries>) -> Result<(), PromqlError>,
    ) -> Result<(), PromqlError> {
        let series = self.selected(vs)?;
        for batch in series.chunks(BATCH_SERIES) {
            let done = {
                let limits = &self.limits;
                super::par::map_items(
                    batch,
                    |s| s.chunks.len(),
                    Vec::new,
                    |buf: &mut Vec<Sample>, s| {
                        limits.check()?;
                        buf.clear();
                        decode_series(&s.chunks, buf).map_err(|e| {
                            PromqlError::execution(format!("series {}: {e}", s.labels))
                        })?;
                        f(s, buf)
                    },
                )?
            };
            let held = done.iter().map(|d| d.1).max().unwrap_or(0);
            self.limits.take(held)?;
            self.limits.give(held);
            let out: Vec<StepSeries> = done.into_iter().filter_map(|d| d.0).collect();
            let points: usize = out.iter().map(|s| s.vals.iter().flatten().count()).sum();
            self.limits.take(points)?;
            sink(out)?;
            self.limits.give(points);
        }
        Ok(())
    }

    pub fn subquery_arg<'e>(&self, sq: &'e promql_parser::parser::SubqueryExpr) -> MatrixArg<'e> {
        let step = sq
            .step
            .map(|d| duration_ms(&d))
            .filter(|s| *s > 0)
            .unwrap_or(self.default_step);
        MatrixArg {
            range: duration_ms(&sq.range),
            offset: offset_ms(&sq.offset),
            at: self.at(&sq.at),
            source: MatrixSource::Subquery {
                expr: &sq.expr,
                step,
            },
        }
    }

    /// Calls `f` with each series of a range-vector argument: its labels and
    /// its samples (staleness markers removed), sorted by time and covering
    /// every window of `grid`.
    pub fn for_each_matrix_series(
        &mut self,
        arg: &MatrixArg<'_>,
        grid: Grid,
        mut f: impl FnMut(&mut Limits<'a>, &Labels, &[Sample]) -> Result<(), PromqlError>,
    ) -> Result<(), PromqlError> {
        match &arg.source {
            MatrixSource::Selector(vs) => {
                let series = self.selected(vs)?;
                for s in series {
                    self.limits.check()?;
                    self.decode(s)?;
                    self.buf.retain(|s| !s.is_stale());
                    f(&mut self.limits, &s.labels, &self.buf)?;
                }
            }
            MatrixSource::Subquery { expr, step } => {
                let refs = (0..grid.n).map(|i| {
                    arg.at
                        .unwrap_or_else(|| grid.ts(i))
                        .saturating_sub(arg.offset)
                });
                let (lo, hi) = refs.fold((i64::MAX, i64::MIN), |(a, b), r| (a.min(r), b.max(r)));
                if grid.n == 0 {
                    return Ok(());
                }
                let inner = subquery_grid(lo.saturating_sub(arg.range), hi, *step);
                check_points(inner.n, self.limits.max_samples)?;
                let series = self.eval_vector(expr, inner)?;
                let mut samples = Vec::new();
                for s in &series {
                    samples.clear();
                    samples.extend(
                        s.vals
                            .iter()
                            .enumerate()
                            .filter_map(|(i, v)| v.map(|v| Sample { t: inner.ts(i), v })),
                    );
                    f(&mut self.limits, &s.labels, &samples)?;
                }
            }
        }
        Ok(())
    }

    /// A range vector as the result of an instant query: the samples of
    /// each series in the window.
    fn raw_matrix(
        &mut self,
        arg: &MatrixArg<'_>,
        grid: Grid,
    ) -> Result<Vec<RangeSeries>, PromqlError> {
        if grid.n != 1 {
            return Err(PromqlError::bad_data(
                "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector",
            ));
        }
        let r = arg.at.unwrap_or(grid.start).saturating_sub(arg.offset);
        let lo = r.saturating_sub(arg.range);
        let mut out = Vec::new();
        self.for_each_matrix_series(arg, grid, |_, labels, samples| {
            let points: Vec<(i64, f64)> = samples
                .iter()
                .filter(|s| s.t >= lo && s.t <= r)
                .map(|s| (s.t, s.v))
                .collect();
            if !points.is_empty() {
                out.push(RangeSeries {
                    labels: labels.clone(),
                    points,
                });
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// The inner grid of a subquery covering `[from, to]`: steps at multiples
/// of `step` since the epoch. Times near the ends of the `i64` range
/// saturate instead of wrapping.
pub(crate) fn subquery_grid(from: i64, to: i64, step: i64) -> Grid {
    let step = step.max(1);
    let mut start = from.div_euclid(step).saturating_mul(step);
    if start < from {
        start = start.saturating_add(step);
    }
    let n = if to < start {
        0
    } else {
        usize::try_from(to.saturating_sub(start) / step).map_or(usize::MAX, |n| n.saturating_add(1))
    };
    Grid { start, step, n }
}

/// Points per series when `--query.max-samples` is 0 (no limit): beyond
/// it one series' steps would not fit in memory anyway.
pub(crate) const MAX_POINTS_UNLIMITED: usize = 100_000_000;

/// Refuses a grid of more steps than one series may hold: every step is a
/// sample in memory for each series evaluated on it, so a grid over
/// `--query.max-samples` cannot be answered, and is refused before any of
/// it is allocated.
pub(crate) fn check_points(n: usize, max_samples: usize) -> Result<(), PromqlError> {
    let (limit, flag) = if max_samples > 0 {
        (max_samples, "--query.max-samples")
    } else {
        (
            MAX_POINTS_UNLIMITED,
            "the limit without --query.max-samples",
        )
    };
    if n > limit {
        return Err(PromqlError::execution(format!(
            "query processing would load too many samples into memory in query execution: {n} steps in one evaluation, {flag} is {limit}"
        )));
    }
    Ok(())
}

pub(crate) fn type_name(v: &Val) -> &'static str {
    match v {
        Val::Scalar(_) => "scalar",
        Val::Vector(_) => "instant vector",
        Val::String(_) => "string",
        Val::Matrix(_) => "range vector",
    }
}

/// For each step, the window `[ref - range, ref]` of `samples` as index
/// bounds, where `ref` is the step's time (or `@`) minus the offset.
pub(crate) struct Windows<'s> {
    samples: &'s [Sample],
    lo: usize,
    hi: usize,
}

impl<'s> Windows<'s> {
    pub fn new(samples: &'s [Sample]) -> Self {
        Self {
            samples,
            lo: 0,
            hi: 0,
        }
    }

    /// The samples in `[from, to]`; `from` and `to` must not decrease
    /// between calls.
    pub fn window(&mut self, from: i64, to: i64) -> &'s [Sample] {
        let s = self.samples;
        while self.hi < s.len() && s[self.hi].t <= to {
            self.hi += 1;
        }
        while self.lo < self.hi && s[self.lo].t < from {
            self.lo += 1;
        }
        &s[self.lo..self.hi]
    }
}
