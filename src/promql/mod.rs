//! PromQL over the cluster: queries are parsed by `promql-parser` and
//! evaluated here, with Prometheus 2.42's semantics, on the series the query
//! path returns (merged and deduplicated across stores).

mod aggr;
mod binop;
pub mod depth;
mod eval;
mod funcs;
mod par;
pub use par::{parallel_parts, set_eval_threads};
mod plan;
mod pool;
pub mod source;
pub mod value;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::error::ErrorCode;
use crate::series::SeriesOptions;
use eval::{Evaluator, Grid, Limits};
use metrics_names::{QUERIES_TOTAL, QUERY_DURATION_SECONDS};
pub use source::Source;

/// The matchers of a vector selector, its metric name as a `__name__`
/// matcher, as the engine asks stores for them.
pub fn selector_matchers(
    vs: &promql_parser::parser::VectorSelector,
) -> Result<Vec<crate::model::Matcher>, PromqlError> {
    plan::matchers(vs)
}

/// The matchers of every vector selector of `query` (in matrix selectors
/// and subqueries too), in the order they appear: what an exemplar query
/// asks for. A query that does not parse is the error Prometheus gives.
pub fn exemplar_selectors(query: &str) -> Result<Vec<Vec<crate::model::Matcher>>, PromqlError> {
    use promql_parser::parser::Expr;
    fn walk<'e>(e: &'e Expr, out: &mut Vec<&'e promql_parser::parser::VectorSelector>) {
        match e {
            Expr::VectorSelector(vs) => out.push(vs),
            Expr::MatrixSelector(ms) => out.push(&ms.vs),
            Expr::Aggregate(a) => {
                walk(&a.expr, out);
                if let Some(p) = &a.param {
                    walk(p, out);
                }
            }
            Expr::Binary(b) => {
                walk(&b.lhs, out);
                walk(&b.rhs, out);
            }
            Expr::Paren(p) => walk(&p.expr, out),
            Expr::Unary(u) => walk(&u.expr, out),
            Expr::Subquery(s) => walk(&s.expr, out),
            Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, out)),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }
    if query.trim().is_empty() {
        return Err(PromqlError::bad_data(
            "parse error: no expression found in input",
        ));
    }
    let expr =
        depth::parse_expr(query).map_err(|e| PromqlError::bad_data(format!("parse error: {e}")))?;
    let mut found = Vec::new();
    walk(&expr, &mut found);
    found.into_iter().map(plan::matchers).collect()
}
pub use value::{QueryOutput, RangeSeries, Value, VectorSample};

/// Limits and defaults of query evaluation.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How far back an instant vector selector looks for a sample.
    pub lookback_delta_ms: i64,
    /// Most samples a query may hold in memory at once; 0 for no limit.
    pub max_samples: usize,
    /// Most bytes of series data (labels and compressed chunks) one query
    /// may fetch from the stores; 0 for no limit.
    pub max_fetched_bytes: usize,
    /// Longest a query may run.
    pub timeout: Duration,
    /// Queries evaluated at once; more wait for a slot (within the timeout).
    pub max_concurrent: usize,
    /// Series and label requests of the HTTP API answered at once, apart
    /// from PromQL's slots; more wait (within the timeout).
    pub max_concurrent_metadata: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            max_fetched_bytes: 1 << 30,
            timeout: Duration::from_secs(120),
            max_concurrent: 20,
            max_concurrent_metadata: 20,
        }
    }
}

/// An error of a query, with the code that picks its HTTP status and
/// `errorType`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct PromqlError {
    pub code: ErrorCode,
    pub message: String,
}

impl PromqlError {
    pub fn bad_data(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::BadData,
            message: message.into(),
        }
    }

    pub fn execution(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::Execution,
            message: message.into(),
        }
    }
}

/// Evaluates PromQL queries against a [`Source`].
#[derive(Clone)]
pub struct Engine {
    source: Arc<dyn Source>,
    cfg: Arc<EngineConfig>,
    gate: Arc<Semaphore>,
    /// Syntax trees of recent query texts: dashboards ask the same texts
    /// again and again, with new times.
    parsed: Arc<std::sync::Mutex<lru::LruCache<Box<str>, Arc<promql_parser::parser::Expr>>>>,
}

/// Query texts whose syntax trees are kept, and the longest text kept.
const PARSED_ENTRIES: usize = 512;
const PARSED_MAX_LEN: usize = 4096;

impl Engine {
    pub fn new(source: Arc<dyn Source>, cfg: EngineConfig) -> Self {
        let gate = Arc::new(Semaphore::new(cfg.max_concurrent.max(1)));
        let entries =
            std::num::NonZeroUsize::new(PARSED_ENTRIES).unwrap_or(std::num::NonZeroUsize::MIN);
        Self {
            source,
            cfg: Arc::new(cfg),
            gate,
            parsed: Arc::new(std::sync::Mutex::new(lru::LruCache::new(entries))),
        }
    }

    /// The syntax tree of `query`, parsed and checked once per text.
    fn parse(&self, query: &str) -> Result<Arc<promql_parser::parser::Expr>, PromqlError> {
        let cached = query.len() <= PARSED_MAX_LEN;
        if cached {
            if let Some(e) = self
                .parsed
                .lock()
                .ok()
                .and_then(|mut c| c.get(query).cloned())
            {
                return Ok(e);
            }
        }
        let expr = Arc::new(plan::parse(query)?);
        if cached {
            if let Ok(mut c) = self.parsed.lock() {
                c.put(query.into(), Arc::clone(&expr));
            }
        }
        Ok(expr)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Evaluates `query` at `time_ms` (an instant query).
    pub async fn instant(
        &self,
        query: &str,
        time_ms: i64,
        opts: SeriesOptions,
    ) -> Result<QueryOutput, PromqlError> {
        self.range(query, time_ms, time_ms, 0, opts).await
    }

    /// Evaluates `query` at every `step_ms` from `start_ms` to `end_ms`
    /// (a range query). A step of 0 means an instant query at `start_ms`.
    pub async fn range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        opts: SeriesOptions,
    ) -> Result<QueryOutput, PromqlError> {
        let started = Instant::now();
        let deadline = started + self.cfg.timeout;
        let kind = if step_ms == 0 { "instant" } else { "range" };
        let result = self
            .run(query, start_ms, end_ms, step_ms, opts, deadline)
            .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        };
        ::metrics::counter!(QUERIES_TOTAL, "kind" => kind, "result" => outcome).increment(1);
        ::metrics::histogram!(QUERY_DURATION_SECONDS, "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn run(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        opts: SeriesOptions,
        deadline: Instant,
    ) -> Result<QueryOutput, PromqlError> {
        // Parse and check before waiting for a slot: bad queries fail fast.
        let expr = self.parse(query)?;
        let range_query = step_ms > 0;
        if range_query {
            plan::check_range_type(&expr)?;
        }
        let (grid, end_ms) = if range_query {
            // In i128: the span of two times near the ends of i64 does
            // not fit i64. A count past usize is refused with the grid.
            let steps = (i128::from(end_ms) - i128::from(start_ms)) / i128::from(step_ms) + 1;
            let n = usize::try_from(steps.max(0)).unwrap_or(usize::MAX);
            (
                Grid {
                    start: start_ms,
                    step: step_ms,
                    n,
                },
                end_ms,
            )
        } else {
            (
                Grid {
                    start: start_ms,
                    step: 0,
                    n: 1,
                },
                start_ms,
            )
        };
        let timed_out = || PromqlError {
            code: ErrorCode::Timeout,
            message: "query timed out in query execution".into(),
        };
        let _permit = tokio::time::timeout_at(deadline.into(), self.gate.clone().acquire_owned())
            .await
            .map_err(|_| PromqlError {
                code: ErrorCode::Timeout,
                message: "query timed out waiting for a free query slot (--query.max-concurrent)"
                    .into(),
            })?
            .map_err(|_| PromqlError::execution("query engine is shutting down"))?;

        let ctx = plan::Ctx {
            start: start_ms,
            end: end_ms,
            lookback: opts
                .lookback_ms
                .filter(|l| *l > 0)
                .unwrap_or(self.cfg.lookback_delta_ms),
            default_step: DEFAULT_SUBQUERY_STEP_MS,
            max_samples: self.cfg.max_samples,
        };
        let selectors = plan::selectors(&expr, grid, &ctx)?;
        // Requests to stores carry the earlier of the caller's deadline and
        // the engine's own.
        let mut opts = opts;
        opts.deadline = Some(opts.deadline.map_or(deadline, |d| d.min(deadline)));
        let fetched = tokio::time::timeout_at(
            deadline.into(),
            plan::fetch(
                self.source.as_ref(),
                selectors,
                &opts,
                &plan::FetchBudget::new(self.cfg.max_fetched_bytes),
            ),
        )
        .await
        .map_err(|_| timed_out())??;
        let warnings = fetched.warnings;
        let data = fetched.series;

        // Evaluation is CPU work: off the async threads, and stopped when
        // the caller goes away.
        let cancel = Arc::new(AtomicBool::new(false));
        let _guard = CancelOnDrop(cancel.clone());
        let max_samples = self.cfg.max_samples;
        let lookback = opts
            .lookback_ms
            .filter(|l| *l > 0)
            .unwrap_or(self.cfg.lookback_delta_ms);
        let weighted_counts = opts.max_resolution_ms > 0;
        // A small query is evaluated here, on the async thread: its work is
        // bounded by the data fetched (no subquery), its recursion is
        // shallow, and handing it to an evaluation thread and back would
        // cost more than evaluating it.
        let data_bytes: usize = data
            .values()
            .flatten()
            .map(|s| s.chunks.iter().map(|c| c.data.len()).sum::<usize>())
            .sum();
        let series: usize = data.values().map(Vec::len).sum();
        let small = data_bytes <= INLINE_MAX_BYTES
            && grid.n.saturating_mul(series.max(1)) <= INLINE_MAX_POINTS
            && depth::depth_bound(query) <= INLINE_MAX_DEPTH
            && !plan::has_subquery(&expr);
        let evaluate = move || {
            let mut ev = Evaluator {
                data: &data,
                lookback,
                start: start_ms,
                end: end_ms,
                default_step: DEFAULT_SUBQUERY_STEP_MS,
                limits: Limits {
                    max_samples,
                    held: 0,
                    deadline,
                    cancel: &cancel,
                },
                buf: Vec::new(),
                weighted_counts,
            };
            let v = ev.eval(&expr, grid)?;
            Ok(plan::to_value(v, grid, range_query))
        };
        let value = if small {
            pool::evaluate_here(evaluate)?
        } else {
            pool::evaluate(evaluate).await?
        };
        Ok(QueryOutput { value, warnings })
    }
}

/// Largest query evaluated on the async thread that fetched its data: chunk
/// bytes, output points (steps times series), syntax tree depth.
const INLINE_MAX_BYTES: usize = 64 << 10;
const INLINE_MAX_POINTS: usize = 20_000;
const INLINE_MAX_DEPTH: usize = 24;

/// Step of subqueries without one: Prometheus' default evaluation interval.
const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

pub mod metrics_names {
    pub const QUERIES_TOTAL: &str = "skein_promql_queries_total";
    pub const QUERY_DURATION_SECONDS: &str = "skein_promql_query_duration_seconds";
    pub const PARALLEL_PARTS_TOTAL: &str = "skein_promql_parallel_parts_total";

    pub fn describe() {
        metrics::describe_counter!(
            QUERIES_TOTAL,
            "PromQL queries evaluated, by kind (instant, range) and result."
        );
        metrics::describe_histogram!(
            QUERY_DURATION_SECONDS,
            metrics::Unit::Seconds,
            "Time to evaluate a PromQL query, from parsing to the last value."
        );
        metrics::describe_counter!(
            PARALLEL_PARTS_TOTAL,
            "Parts of large selectors evaluated on helper threads (series split across cores)."
        );
    }
}
