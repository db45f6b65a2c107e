//! The frontend's HTTP API: `query_range` split, cached and hedged; every
//! other request passed to a querier as it is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use tracing::info;

use super::cache::{Extent, Key, ResultsCache, HITS_TOTAL, MISSES_TOTAL};
use super::changes::Change;
use super::downstream::{Downstream, Reply};
use super::matrix::{self, SeriesData};
use super::scope::Scope;
use super::shared::SharedCache;
use super::split::{pieces, splittable_expr, Piece};
use crate::api::prom::params::{parse_duration, parse_time};
use crate::model::time::now_ms;

/// Largest request body the frontend reads.
const MAX_BODY: usize = 4 << 20;

pub const QUERIES_TOTAL: &str = "skein_frontend_queries_total";
pub const PIECES_TOTAL: &str = "skein_frontend_split_queries_total";
pub const QUERY_SECONDS: &str = "skein_frontend_query_duration_seconds";

/// The frontend's settings (from `skein frontend`'s flags).
#[derive(Debug, Clone)]
pub struct Settings {
    pub split_interval: Duration,
    pub align_range_with_step: bool,
    pub max_freshness: Duration,
    pub max_parallelism: usize,
    pub log_queries_longer_than: Duration,
    /// The queriers' lookback delta, for what a cached step depends on.
    pub lookback_delta: Duration,
    /// How long after a change of data answers it can alter are not cached.
    pub change_settle_time: Duration,
}

pub struct Frontend {
    pub down: Downstream,
    pub cache: ResultsCache,
    pub settings: Settings,
    gate: tokio::sync::Semaphore,
    /// Changes of data seen lately: answers they can alter are not cached
    /// until the queriers have surely taken them in.
    recent: std::sync::Mutex<Vec<(Instant, Change)>>,
    /// The cache frontends share (memcached), behind this one's own.
    shared: Option<Arc<SharedCache>>,
}

impl Frontend {
    pub fn new(
        down: Downstream,
        cache: ResultsCache,
        settings: Settings,
        shared: Option<Arc<SharedCache>>,
    ) -> Self {
        let gate = tokio::sync::Semaphore::new(settings.max_parallelism.max(1));
        Self {
            down,
            cache,
            settings,
            gate,
            recent: std::sync::Mutex::new(Vec::new()),
            shared,
        }
    }

    /// A change of data: the cached answers it can alter are dropped, and
    /// for the settle time no answer it can alter is cached (a querier
    /// takes a new store in after its first health check).
    pub fn data_changed(&self, c: Change) -> usize {
        let dropped = self.cache.invalidate(&c.label_sets, c.min, c.max);
        if let Some(shared) = &self.shared {
            shared.note(&c);
        }
        if let Ok(mut r) = self.recent.lock() {
            let settle = self.settings.change_settle_time;
            r.retain(|(at, _)| at.elapsed() < settle);
            r.push((Instant::now(), c));
        }
        dropped
    }

    /// Whether a change seen within the settle time can alter steps
    /// `start..=end` of an answer of `scope`.
    fn unsettled(&self, scope: &Scope, start: i64, end: i64) -> bool {
        let settle = self.settings.change_settle_time;
        self.recent.lock().is_ok_and(|r| {
            r.iter().any(|(at, c)| {
                at.elapsed() < settle && scope.affected(&c.label_sets, c.min, c.max, start, end)
            })
        })
    }
}

pub fn router(fe: Arc<Frontend>) -> Router {
    Router::new()
        .route("/api/v1/query_range", any(query_range))
        .fallback(pass)
        .with_state(fe)
}

/// The request's parameters (URL and urlencoded body), in order.
fn params(query: Option<&str>, body: &[u8], form: bool) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    if form {
        out.extend(form_urlencoded::parse(body).into_owned());
    }
    out
}

fn get<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    // The body's value wins over the URL's, as in Prometheus.
    p.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn encode(p: &[(String, String)], start: i64, end: i64) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in p {
        if k != "start" && k != "end" {
            s.append_pair(k, v);
        }
    }
    s.append_pair("start", &seconds(start));
    s.append_pair("end", &seconds(end));
    s.finish()
}

fn seconds(ms: i64) -> String {
    let mut out = Vec::new();
    crate::api::prom::json::write_sample_time(&mut out, ms);
    String::from_utf8(out).unwrap_or_default()
}

fn reply(r: Reply) -> Response {
    let mut resp = (
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY),
        r.body,
    )
        .into_response();
    if let Some(ct) = r.content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp
}

fn unavailable(why: &str) -> Response {
    let body =
        crate::api::prom::json::error_body("unavailable", &format!("no querier answered: {why}"));
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn read(req: Request) -> Result<(Method, String, Option<String>, Bytes, bool), Response> {
    let method = req.method().clone();
    let pq = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let no_store = req
        .headers()
        .get_all(header::CACHE_CONTROL)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("no-store")));
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| {
            (StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}")).into_response()
        })?;
    Ok((method, pq, ct, body, no_store))
}

/// Any other request: to a querier, hedged, as it is.
async fn pass(State(fe): State<Arc<Frontend>>, req: Request) -> Response {
    let (method, pq, ct, body, _) = match read(req).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let body = (!body.is_empty()).then(|| (ct.unwrap_or_default(), body));
    match fe.down.call(method, &pq, body).await {
        Ok(r) => reply(r),
        Err(e) => unavailable(&e),
    }
}

/// A range query that can be split: its parameters and grid.
struct Plan {
    params: Vec<(String, String)>,
    query: String,
    start: i64,
    end: i64,
    step: i64,
    /// Everything that shapes the answer but the time range.
    key: Arc<str>,
    scope: Arc<Scope>,
}

fn plan(p: Vec<(String, String)>, align: bool, lookback: Duration) -> Option<Plan> {
    let query = get(&p, "query")?.to_string();
    let mut start = parse_time(get(&p, "start")?).ok()?;
    let mut end = parse_time(get(&p, "end")?).ok()?;
    let step_ns = parse_duration(get(&p, "step")?).ok()?;
    let step = step_ns / 1_000_000;
    // Statistics are per request; sub-second steps are left to the querier.
    if step <= 0 || step_ns % 1_000_000 != 0 || end < start || get(&p, "stats").is_some() {
        return None;
    }
    let expr = promql_parser::parser::parse(&query).ok()?;
    if !splittable_expr(&expr) {
        return None;
    }
    let scope = Arc::new(Scope::of(&expr, lookback.as_millis() as i64)?);
    if align {
        start -= start.rem_euclid(step);
        end -= end.rem_euclid(step);
    }
    let mut shaping: Vec<&(String, String)> = p
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "start" | "end" | "timeout"))
        .collect();
    shaping.sort();
    let key = format!("{:?} phase={}", shaping, start.rem_euclid(step));
    Some(Plan {
        params: p,
        query,
        start,
        end,
        step,
        key: key.into(),
        scope,
    })
}

/// `/api/v1/query_range`: split at the split interval and at the
/// freshness limit, each piece from the cache when it holds it, the others
/// asked of the queriers at once (bounded), the answers joined.
async fn query_range(State(fe): State<Arc<Frontend>>, req: Request) -> Response {
    let started = Instant::now();
    let (method, pq, ct, body, no_store) = match read(req).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let form = ct
        .as_deref()
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let query_string = pq.split_once('?').map(|(_, q)| q);
    let p = params(query_string, &body, method == Method::POST && form);
    let Some(plan) = plan(
        p,
        fe.settings.align_range_with_step,
        fe.settings.lookback_delta,
    ) else {
        // Not one to split (or not valid): the querier answers it whole,
        // with Prometheus' errors.
        metrics::counter!(QUERIES_TOTAL, "split" => "no").increment(1);
        let body = (!body.is_empty()).then(|| (ct.unwrap_or_default(), body));
        return match fe.down.call(method, &pq, body).await {
            Ok(r) => reply(r),
            Err(e) => unavailable(&e),
        };
    };
    metrics::counter!(QUERIES_TOTAL, "split" => "yes").increment(1);
    let fresh_from = now_ms().saturating_sub(fe.settings.max_freshness.as_millis() as i64);
    let interval = fe.settings.split_interval.as_millis() as i64;
    let ps = pieces(
        plan.start,
        plan.end,
        plan.step,
        interval,
        &[fresh_from.saturating_add(1)],
    );
    let use_cache = fe.cache.enabled() && !no_store;
    let mut from_cache = 0usize;
    let results = futures::future::join_all(ps.iter().map(|piece| {
        let fe = fe.clone();
        let plan = &plan;
        let cacheable = use_cache && piece.end <= fresh_from;
        async move {
            let key = Key {
                query: plan.key.clone(),
                window: piece.window,
            };
            // What the cache holds of this piece: all of it (a hit), a
            // part (only the steps before and after it are asked), or none.
            let mut cached = if cacheable { fe.cache.get(&key) } else { None };
            // Not whole here: maybe in the cache frontends share.
            let covered = |e: &Option<Extent>| {
                e.as_ref()
                    .is_some_and(|e| e.start <= piece.start && piece.end <= e.end)
            };
            if cacheable && !covered(&cached) {
                if let Some(shared) = &fe.shared {
                    if let Some(e) = shared.get(&key, &plan.scope).await {
                        fe.cache.put(key.clone(), e, plan.step);
                        cached = fe.cache.get(&key);
                    }
                }
            }
            if let Some(hit) = cached
                .as_ref()
                .and_then(|e| e.answer(piece.start, piece.end))
            {
                metrics::counter!(HITS_TOTAL).increment(1);
                return Ok((true, hit, Vec::new()));
            }
            if cacheable {
                metrics::counter!(MISSES_TOTAL).increment(1);
            }
            let held = cached.filter(|e| e.start <= piece.end && e.end >= piece.start);
            let asks: Vec<Piece> = match &held {
                Some(e) => [
                    (piece.start, e.start.saturating_sub(plan.step)),
                    (e.end.saturating_add(plan.step), piece.end),
                ]
                .into_iter()
                .filter(|(a, b)| a <= b)
                .map(|(start, end)| Piece {
                    window: piece.window,
                    start,
                    end,
                })
                .collect(),
                None => vec![*piece],
            };
            let mut answer = matrix::Matrix::default();
            let mut fetched = Vec::with_capacity(asks.len() + 1);
            for ask in &asks {
                let a = fetch(&fe, plan, ask).await?;
                answer.warnings.extend(a.warnings);
                fetched.push((*ask, a.series));
            }
            if cacheable
                && answer.warnings.is_empty()
                && !fe.unsettled(&plan.scope, piece.start, piece.end)
            {
                for (ask, series) in &fetched {
                    fe.cache.put(
                        key.clone(),
                        Extent::new(ask.start, ask.end, series.clone(), plan.scope.clone()),
                        plan.step,
                    );
                }
                if let (Some(shared), Some(e)) = (&fe.shared, fe.cache.get(&key)) {
                    shared.put(&key, &e);
                }
            }
            let mut parts: Vec<Vec<SeriesData>> = fetched.into_iter().map(|(_, s)| s).collect();
            if let Some(e) = &held {
                parts.push(matrix::slice(
                    &e.series,
                    piece.start.max(e.start),
                    piece.end.min(e.end),
                ));
            }
            answer.series = matrix::merge(parts);
            Ok::<_, Response>((false, answer.series, answer.warnings))
        }
    }))
    .await;
    metrics::counter!(PIECES_TOTAL).increment(ps.len() as u64);
    let mut parts: Vec<Vec<SeriesData>> = Vec::with_capacity(results.len());
    let mut warnings: Vec<String> = Vec::new();
    for r in results {
        match r {
            Ok((hit, series, w)) => {
                from_cache += usize::from(hit);
                parts.push(series);
                for w in w {
                    if !warnings.contains(&w) {
                        warnings.push(w);
                    }
                }
            }
            Err(resp) => return resp,
        }
    }
    let merged = matrix::merge(parts);
    let out = matrix::write(&merged, &warnings);
    let took = started.elapsed();
    metrics::histogram!(QUERY_SECONDS).record(took.as_secs_f64());
    let slow = fe.settings.log_queries_longer_than;
    if !slow.is_zero() && took > slow {
        info!(query = %plan.query, start = plan.start, end = plan.end, step = plan.step,
              pieces = ps.len(), from_cache, took = ?took, "slow query");
    }
    let mut r = (StatusCode::OK, out).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// One piece from the queriers; an answer other than a matrix ends the
/// whole query with it.
async fn fetch(fe: &Frontend, plan: &Plan, piece: &Piece) -> Result<matrix::Matrix, Response> {
    let _slot = fe
        .gate
        .acquire()
        .await
        .map_err(|_| unavailable("shutting down"))?;
    let body = encode(&plan.params, piece.start, piece.end);
    let r = fe
        .down
        .call(
            Method::POST,
            "/api/v1/query_range",
            Some((
                "application/x-www-form-urlencoded".to_string(),
                Bytes::from(body),
            )),
        )
        .await
        .map_err(|e| unavailable(&e))?;
    if r.status != 200 {
        return Err(reply(r));
    }
    matrix::parse(&r.body).map_err(|e| {
        let body = crate::api::prom::json::error_body(
            "internal",
            &format!("a querier's answer could not be read: {e}"),
        );
        (StatusCode::BAD_GATEWAY, Body::from(body)).into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Duration = Duration::from_secs(300);

    fn pl(v: Vec<(String, String)>, align: bool) -> Option<Plan> {
        plan(v, align, L)
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plans_key_on_what_shapes_the_answer() {
        let a = pl(
            p(&[
                ("query", "up"),
                ("start", "0"),
                ("end", "600"),
                ("step", "60"),
            ]),
            false,
        )
        .unwrap();
        let b = pl(
            p(&[
                ("step", "60"),
                ("end", "900"),
                ("start", "120"),
                ("query", "up"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(a.key, b.key, "same query, step and phase");
        let c = pl(
            p(&[
                ("query", "up"),
                ("start", "30"),
                ("end", "600"),
                ("step", "60"),
            ]),
            false,
        )
        .unwrap();
        assert_ne!(a.key, c.key, "another phase of the grid");
        let d = pl(
            p(&[
                ("query", "up"),
                ("start", "0"),
                ("end", "600"),
                ("step", "60"),
                ("dedup", "false"),
            ]),
            false,
        )
        .unwrap();
        assert_ne!(a.key, d.key);
        assert!(pl(
            p(&[
                ("query", "up @ start()"),
                ("start", "0"),
                ("end", "600"),
                ("step", "60")
            ]),
            false
        )
        .is_none());
        assert!(pl(
            p(&[
                ("query", "up"),
                ("start", "0"),
                ("end", "600"),
                ("step", "0.0005")
            ]),
            false
        )
        .is_none());
        assert!(pl(
            p(&[
                ("query", "up"),
                ("start", "x"),
                ("end", "600"),
                ("step", "60")
            ]),
            false
        )
        .is_none());
        let e = pl(
            p(&[
                ("query", "up"),
                ("start", "30"),
                ("end", "610"),
                ("step", "60"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!((e.start, e.end), (0, 600_000));
    }

    #[test]
    fn sub_queries_keep_every_other_parameter() {
        let q = encode(
            &p(&[
                ("query", "a b"),
                ("start", "1"),
                ("end", "2"),
                ("step", "15"),
                ("dedup", "true"),
            ]),
            60_000,
            120_500,
        );
        assert_eq!(q, "query=a+b&step=15&dedup=true&start=60&end=120.500");
    }
}
