//! HTTP server metrics, recorded by a layer on every component's router.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{describe_counter, describe_histogram, Unit};

pub const HTTP_REQUESTS_TOTAL: &str = "skein_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "skein_http_request_duration_seconds";
pub const CONNECTIONS_REFUSED_TOTAL: &str = "skein_http_connections_refused_total";

pub fn describe() {
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        Unit::Count,
        "HTTP requests served, by route pattern and status code."
    );
    describe_counter!(
        CONNECTIONS_REFUSED_TOTAL,
        Unit::Count,
        "HTTP connections closed at once because the server already had as many as it serves."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request (until its response head), by route pattern."
    );
}

/// Counts and times a request under its route pattern (e.g.
/// `/api/v1/label/{name}/values`), never its raw path.
pub async fn track(req: Request, next: Next) -> Response {
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let began = Instant::now();
    let response = next.run(req).await;
    let code = response.status().as_u16().to_string();
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, "handler" => handler.clone())
        .record(began.elapsed().as_secs_f64());
    metrics::counter!(HTTP_REQUESTS_TOTAL, "handler" => handler, "code" => code).increment(1);
    response
}
