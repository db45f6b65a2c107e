//! The Prometheus HTTP API of a querier, served in-process on loopback over
//! a real querier: two replicas of a Prometheus HA pair (and, where a test
//! needs partial answers, a store that fails), served over gRPC, found
//! through the registry. Checks what a client sees: status codes, JSON
//! bytes, Prometheus' messages and caching headers, over GET and POST.
//!
//! Nothing here depends on PromQL evaluation, which lives elsewhere.

use std::sync::Arc;
use std::time::Duration;

#[path = "support/registry.rs"]
mod registry_support;

use actix::Actor;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use skein::actors::registry::SubscribeTopology;
use skein::actors::system::ActorSystem;
use skein::actors::{RegistryConfig, StoreRegistry};
use skein::api::prom::PromApi;
use skein::model::{Chunk, Labels, Sample, Series};
use skein::promql::{Engine, EngineConfig};
use skein::query::{Querier, QueryConfig};
use skein::store::{Fault, FaultyStore, MemStore, PeerType, StoreInfo};

/// Data ends here; every series has a sample a minute for ten minutes.
const T: i64 = 1_700_000_000_000;

fn series(labels: &[(&str, &str)]) -> Series {
    let samples: Vec<Sample> = (0..10)
        .map(|i| Sample {
            t: T - 540_000 + i * 60_000,
            v: i as f64,
        })
        .collect();
    Series {
        labels: Labels::from_pairs(labels.iter().copied()).unwrap(),
        chunks: Chunk::encode_xor(&samples, 120).unwrap(),
    }
}

/// One replica's series, carrying its external label as Prometheus'
/// remote read does.
fn replica(name: &str) -> Vec<Series> {
    [
        vec![("__name__", "up"), ("job", "api"), ("instance", "a:1")],
        vec![("__name__", "up"), ("job", "db"), ("instance", "b:1")],
        vec![
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("code", "200"),
        ],
        vec![
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("code", "500"),
        ],
    ]
    .into_iter()
    .map(|mut l| {
        l.push(("replica", name));
        series(&l)
    })
    .collect()
}

async fn serve_store(
    external: (&str, &str),
    data: Vec<Series>,
    fault: Fault,
    stop: &CancellationToken,
) -> String {
    let info = StoreInfo {
        label_sets: vec![Labels::from_pairs([external]).unwrap()],
        min_time: T - 600_000,
        max_time: T,
        peer_type: PeerType::Source,
        store_group_id: String::new(),
        component: "sidecar".into(),
        supports_without_replica_labels: true,
    };
    let store = FaultyStore::new(MemStore::new(info, data).unwrap(), fault);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(skein::store::serve(listener, Arc::new(store), stop.clone()));
    addr
}

struct Api {
    base: String,
    http: reqwest::Client,
    stop: CancellationToken,
    _system: ActorSystem,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A response: status, `Cache-Control`, body.
struct Answer {
    status: u16,
    cache: Option<String>,
    content_type: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A Prometheus error: status, `errorType`, message, and `no-store`.
    fn assert_error(&self, status: u16, error_type: &str, message: &str) {
        assert_eq!(
            (self.status, self.json()),
            (
                status,
                json!({"status": "error", "errorType": error_type, "error": message})
            ),
            "{}",
            self.body
        );
        assert_eq!(self.cache.as_deref(), Some("no-store"));
        assert_eq!(self.content_type.as_deref(), Some("application/json"));
    }

    /// A success with `data` and no warnings (so cacheable).
    fn assert_data(&self, data: Value) {
        assert_eq!(
            (self.status, self.json()),
            (200, json!({"status": "success", "data": data})),
            "{}",
            self.body
        );
        assert_eq!(self.cache, None);
    }
}

fn encode(params: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

impl Api {
    /// A querier over two replicas (`replica` is the replica label) and,
    /// with `broken`, a third store whose Series calls fail.
    async fn start(broken: bool) -> Api {
        Self::start_with(broken, EngineConfig::default(), Fault::None).await
    }

    /// Like `start`, with engine limits and a fault on replica b.
    async fn start_with(broken: bool, cfg: EngineConfig, fault_b: Fault) -> Api {
        let stop = CancellationToken::new();
        let mut endpoints = vec![
            serve_store(("replica", "a"), replica("a"), Fault::None, &stop).await,
            serve_store(("replica", "b"), replica("b"), fault_b, &stop).await,
        ];
        if broken {
            let data = vec![series(&[("__name__", "up"), ("job", "batch")])];
            endpoints.push(serve_store(("region", "far"), data, Fault::Fail, &stop).await);
        }
        let n = endpoints.len();
        let mut rc = RegistryConfig::for_test();
        rc.endpoints = endpoints;
        let rt = tokio::runtime::Handle::current();
        let (system, registry) =
            ActorSystem::start(move || StoreRegistry::new(rc, rt).start()).unwrap();
        let querier = Querier::new(
            registry.send(SubscribeTopology).await.unwrap(),
            QueryConfig {
                replica_labels: vec!["replica".into()],
                ..Default::default()
            },
        );
        registry_support::wait_healthy(&registry, n).await;
        let engine = Engine::new(Arc::new(querier.clone()), cfg);
        let flags = [("query.timeout".to_string(), "2m".to_string())].into();
        let router = PromApi::new(engine, querier).with_flags(flags).router();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(skein::api::serve(listener, router, stop.clone()));
        Api {
            base,
            http: reqwest::Client::new(),
            stop,
            _system: system,
        }
    }

    async fn answer(&self, req: reqwest::RequestBuilder) -> Answer {
        let r = req.timeout(Duration::from_secs(10)).send().await.unwrap();
        let header = |name| {
            r.headers()
                .get(name)
                .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_string())
        };
        let (cache, content_type) = (header(CACHE_CONTROL), header(CONTENT_TYPE));
        Answer {
            status: r.status().as_u16(),
            cache,
            content_type,
            body: r.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Answer {
        let url = format!("{}{path}?{}", self.base, encode(params));
        self.answer(self.http.get(url)).await
    }

    async fn post(&self, path: &str, params: &[(&str, &str)]) -> Answer {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(encode(params));
        self.answer(req).await
    }

    /// The same request over GET and POST must give the same answer.
    async fn both(&self, path: &str, params: &[(&str, &str)]) -> Answer {
        let g = self.get(path, params).await;
        let p = self.post(path, params).await;
        assert_eq!(
            (g.status, &g.body, &g.cache),
            (p.status, &p.body, &p.cache),
            "GET and POST differ for {path} {params:?}"
        );
        g
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_endpoint() {
    let api = Api::start(false).await;
    let up = json!([
        {"__name__": "up", "instance": "a:1", "job": "api"},
        {"__name__": "up", "instance": "b:1", "job": "db"},
    ]);

    // Replicas deduplicated: the replica label is gone, each series once.
    let a = api.both("/api/v1/series", &[("match[]", "up")]).await;
    a.assert_data(up.clone());
    // The exact bytes Prometheus would send.
    assert_eq!(
        a.body,
        r#"{"status":"success","data":[{"__name__":"up","instance":"a:1","job":"api"},{"__name__":"up","instance":"b:1","job":"db"}]}"#
    );

    // Several match[]: the union, sorted, each series once.
    api.both(
        "/api/v1/series",
        &[
            ("match[]", r#"up{job="db"}"#),
            ("match[]", r#"{job=~"api|db", __name__="up"}"#),
            ("match[]", r#"{__name__="http_requests_total",code=~"5.."}"#),
        ],
    )
    .await
    .assert_data(json!([
        {"__name__": "http_requests_total", "code": "500", "job": "api"},
        {"__name__": "up", "instance": "a:1", "job": "api"},
        {"__name__": "up", "instance": "b:1", "job": "db"},
    ]));

    // Thanos' parameters: without dedup every replica shows.
    let all = api
        .both(
            "/api/v1/series",
            &[("match[]", r#"up{job="db"}"#), ("dedup", "false")],
        )
        .await;
    all.assert_data(json!([
        {"__name__": "up", "instance": "b:1", "job": "db", "replica": "a"},
        {"__name__": "up", "instance": "b:1", "job": "db", "replica": "b"},
    ]));
    // A request's replica labels replace the configured ones: with only
    // `region`, the replicas are told apart again.
    let other = api
        .get(
            "/api/v1/series",
            &[
                ("match[]", r#"up{job="db"}"#),
                ("replicaLabels[]", "region"),
            ],
        )
        .await;
    assert_eq!(other.body, all.body);

    // Time range: data ends at T.
    let after = ((T + 3_600_000) / 1000).to_string();
    api.get(
        "/api/v1/series",
        &[("match[]", "up"), ("start", &after), ("end", &after)],
    )
    .await
    .assert_data(json!([]));
    api.get(
        "/api/v1/series",
        &[
            ("match[]", "up"),
            ("start", "2023-11-14T22:00:00Z"),
            ("end", "2023-11-14T22:13:20.000Z"),
        ],
    )
    .await
    .assert_data(up.clone());
    // Start after end is an empty answer, as in Prometheus.
    api.get(
        "/api/v1/series",
        &[("match[]", "up"), ("start", "20"), ("end", "10")],
    )
    .await
    .assert_data(json!([]));

    // A limit cuts the answer and says so; a partial answer is not cached.
    let cut = api
        .both("/api/v1/series", &[("match[]", "up"), ("limit", "1")])
        .await;
    assert_eq!(
        cut.json(),
        json!({"status": "success",
               "data": [{"__name__": "up", "instance": "a:1", "job": "api"}],
               "warnings": ["results truncated due to limit"]})
    );
    assert_eq!(cut.cache.as_deref(), Some("no-store"));
    api.get("/api/v1/series", &[("match[]", "up"), ("limit", "2")])
        .await
        .assert_data(up.clone());

    // Errors, with Prometheus' messages.
    for (params, message) in [
        (vec![], "no match[] parameter provided"),
        (vec![("start", "1")], "no match[] parameter provided"),
        (
            vec![("match[]", "{}")],
            r#"invalid parameter "match[]": match[] must contain at least one non-empty matcher"#,
        ),
        (
            vec![("match[]", r#"{job=~".*"}"#)],
            r#"invalid parameter "match[]": match[] must contain at least one non-empty matcher"#,
        ),
        (
            vec![("match[]", "up"), ("match[]", r#"{job=""}"#)],
            r#"invalid parameter "match[]": match[] must contain at least one non-empty matcher"#,
        ),
        (
            vec![("match[]", "up"), ("start", "x")],
            r#"invalid parameter "start": Invalid time value for 'start': cannot parse "x" to a valid timestamp"#,
        ),
        (
            vec![("match[]", "up"), ("end", "2023-11-14 22:13:20")],
            r#"invalid parameter "end": Invalid time value for 'end': cannot parse "2023-11-14 22:13:20" to a valid timestamp"#,
        ),
        (
            vec![("match[]", "up"), ("dedup", "maybe")],
            r#"invalid parameter "dedup": cannot parse "maybe" to a valid boolean"#,
        ),
        (
            vec![("match[]", "up"), ("partial_response", "2")],
            r#"invalid parameter "partial_response": cannot parse "2" to a valid boolean"#,
        ),
        (
            vec![("match[]", "up"), ("limit", "-1")],
            r#"invalid parameter "limit": cannot parse "-1" to a valid limit"#,
        ),
    ] {
        api.both("/api/v1/series", &params)
            .await
            .assert_error(400, "bad_data", message);
    }
    // Parse errors carry the parser's words; the prefix is Prometheus'.
    for bad in [
        "up{",
        "rate(up[5m])",
        "up[5m]",
        "up offset 5m",
        r#"{a="b" or c="d"}"#,
        r#"{job=~"("}"#,
    ] {
        let a = api.get("/api/v1/series", &[("match[]", bad)]).await;
        let v = a.json();
        assert_eq!(
            (a.status, &v["status"], &v["errorType"]),
            (400, &json!("error"), &json!("bad_data")),
            "{bad}: {}",
            a.body
        );
        let msg = v["error"].as_str().unwrap();
        assert!(
            msg.starts_with(r#"invalid parameter "match[]": "#),
            "{bad}: {msg}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_endpoints() {
    let api = Api::start(false).await;

    // Replica labels are hidden while deduplicating, as in series.
    api.both("/api/v1/labels", &[])
        .await
        .assert_data(json!(["__name__", "code", "instance", "job"]));
    api.both("/api/v1/labels", &[("dedup", "false")])
        .await
        .assert_data(json!(["__name__", "code", "instance", "job", "replica"]));
    api.both("/api/v1/labels", &[("match[]", "up")])
        .await
        .assert_data(json!(["__name__", "instance", "job"]));
    // Several match[]: the union.
    api.both(
        "/api/v1/labels",
        &[
            ("match[]", r#"up{job="db"}"#),
            ("match[]", "http_requests_total"),
        ],
    )
    .await
    .assert_data(json!(["__name__", "code", "instance", "job"]));
    api.get("/api/v1/labels", &[("match[]", "nothing_here")])
        .await
        .assert_data(json!([]));
    let cut = api.get("/api/v1/labels", &[("limit", "2")]).await;
    assert_eq!(
        cut.json(),
        json!({"status": "success", "data": ["__name__", "code"],
               "warnings": ["results truncated due to limit"]})
    );
    assert_eq!(cut.cache.as_deref(), Some("no-store"));

    api.both("/api/v1/label/__name__/values", &[])
        .await
        .assert_data(json!(["http_requests_total", "up"]));
    api.both("/api/v1/label/job/values", &[("match[]", "up")])
        .await
        .assert_data(json!(["api", "db"]));
    api.both(
        "/api/v1/label/code/values",
        &[
            ("match[]", r#"{code="200"}"#),
            ("match[]", r#"{code="500"}"#),
        ],
    )
    .await
    .assert_data(json!(["200", "500"]));
    api.get("/api/v1/label/replica/values", &[])
        .await
        .assert_data(json!([]));
    api.get("/api/v1/label/replica/values", &[("dedup", "0")])
        .await
        .assert_data(json!(["a", "b"]));
    api.get("/api/v1/label/missing/values", &[])
        .await
        .assert_data(json!([]));
    // Outside the data's time range.
    api.get(
        "/api/v1/label/job/values",
        &[("start", "1000"), ("end", "2000")],
    )
    .await
    .assert_data(json!([]));

    for (path, params, message) in [
        (
            "/api/v1/label/1x/values",
            vec![],
            r#"invalid label name: "1x""#,
        ),
        (
            "/api/v1/labels",
            vec![("match[]", "{}")],
            "match[] must contain at least one non-empty matcher",
        ),
        (
            "/api/v1/label/job/values",
            vec![("match[]", r#"{job!~".+"}"#)],
            "match[] must contain at least one non-empty matcher",
        ),
        (
            "/api/v1/labels",
            vec![("start", "soon")],
            r#"invalid parameter "start": Invalid time value for 'start': cannot parse "soon" to a valid timestamp"#,
        ),
        (
            "/api/v1/label/job/values",
            vec![("end", "x")],
            r#"invalid parameter "end": Invalid time value for 'end': cannot parse "x" to a valid timestamp"#,
        ),
    ] {
        api.both(path, &params)
            .await
            .assert_error(400, "bad_data", message);
    }
    let a = api.get("/api/v1/labels", &[("match[]", "up{")]).await;
    assert_eq!(
        (a.status, &a.json()["errorType"]),
        (400, &json!("bad_data"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_parameters_are_checked_like_prometheus() {
    let api = Api::start(false).await;
    let range = "/api/v1/query_range";
    let q = ("query", "up");
    for (params, message) in [
        (vec![q], r#"invalid parameter "start": cannot parse "" to a valid timestamp"#),
        (
            vec![q, ("start", "1")],
            r#"invalid parameter "end": cannot parse "" to a valid timestamp"#,
        ),
        (
            vec![q, ("start", "x"), ("end", "1"), ("step", "1")],
            r#"invalid parameter "start": cannot parse "x" to a valid timestamp"#,
        ),
        (
            vec![q, ("start", "10"), ("end", "1"), ("step", "1")],
            r#"invalid parameter "end": end timestamp must not be before start time"#,
        ),
        (
            vec![q, ("start", "1"), ("end", "10")],
            r#"invalid parameter "step": cannot parse "" to a valid duration"#,
        ),
        (
            vec![q, ("start", "1"), ("end", "10"), ("step", "fast")],
            r#"invalid parameter "step": cannot parse "fast" to a valid duration"#,
        ),
        (
            vec![q, ("start", "1"), ("end", "10"), ("step", "1e300")],
            r#"invalid parameter "step": cannot parse "1e300" to a valid duration. It overflows int64"#,
        ),
        (
            vec![q, ("start", "1"), ("end", "10"), ("step", "0")],
            r#"invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer"#,
        ),
        (
            vec![q, ("start", "1"), ("end", "10"), ("step", "-15s")],
            r#"invalid parameter "step": cannot parse "-15s" to a valid duration"#,
        ),
        (
            vec![q, ("start", "1"), ("end", "10"), ("step", "-1")],
            r#"invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer"#,
        ),
        (
            vec![q, ("start", "0"), ("end", "11001"), ("step", "1")],
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ),
        (
            vec![
                q,
                ("start", "2023-11-14T00:00:00Z"),
                ("end", "2023-11-21T00:00:00Z"),
                ("step", "30s"),
            ],
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ),
        (
            vec![q, ("start", "0"), ("end", "10"), ("step", "1"), ("timeout", "x")],
            r#"invalid parameter "timeout": cannot parse "x" to a valid duration"#,
        ),
        (
            vec![("start", "0"), ("end", "10"), ("step", "1")],
            "1:1: parse error: no expression found in input",
        ),
        (
            vec![q, ("start", "0"), ("end", "10"), ("step", "1"), ("dedup", "x")],
            r#"invalid parameter "dedup": cannot parse "x" to a valid boolean"#,
        ),
    ] {
        api.both(range, &params)
            .await
            .assert_error(400, "bad_data", message);
    }

    let instant = "/api/v1/query";
    for (params, message) in [
        (
            vec![q, ("time", "x")],
            r#"invalid parameter "time": Invalid time value for 'time': cannot parse "x" to a valid timestamp"#,
        ),
        (
            vec![q, ("time", "2023-11-14T22:13:20")],
            r#"invalid parameter "time": Invalid time value for 'time': cannot parse "2023-11-14T22:13:20" to a valid timestamp"#,
        ),
        (
            vec![q, ("timeout", "1x")],
            r#"invalid parameter "timeout": cannot parse "1x" to a valid duration"#,
        ),
        (
            vec![("time", "1")],
            r#"invalid parameter "query": 1:1: parse error: no expression found in input"#,
        ),
        (
            vec![("query", "  ")],
            r#"invalid parameter "query": 1:1: parse error: no expression found in input"#,
        ),
    ] {
        api.both(instant, &params)
            .await
            .assert_error(400, "bad_data", message);
    }

    // A deadline already passed times out before evaluation, as in
    // Prometheus.
    api.both(instant, &[q, ("timeout", "-1")])
        .await
        .assert_error(503, "timeout", "query timed out in query queue");
    api.both(
        range,
        &[
            q,
            ("start", "0"),
            ("end", "10"),
            ("step", "1"),
            ("timeout", "0s"),
        ],
    )
    .await
    .assert_error(503, "timeout", "query timed out in query queue");

    // Evaluation: the replicas are deduplicated, values as Prometheus
    // writes them.
    let a = api
        .both(instant, &[("query", "up"), ("time", "1700000000")])
        .await;
    a.assert_data(json!({
        "resultType": "vector",
        "result": [
            {"metric": {"__name__": "up", "instance": "a:1", "job": "api"},
             "value": [1700000000, "9"]},
            {"metric": {"__name__": "up", "instance": "b:1", "job": "db"},
             "value": [1700000000, "9"]},
        ]
    }));
    let a = api
        .both(
            range,
            &[
                ("query", "sum(up)"),
                ("start", "1699999880"),
                ("end", "1700000000"),
                ("step", "60"),
            ],
        )
        .await;
    a.assert_data(json!({
        "resultType": "matrix",
        "result": [{"metric": {}, "values": [
            [1699999880, "14"], [1699999940, "16"], [1700000000, "18"]
        ]}]
    }));

    // Evaluation errors: Prometheus' types and statuses.
    for (query, status, error_type) in [
        ("sum(up", 400, "bad_data"),
        ("nope(up)", 400, "bad_data"),
        ("rate(up[5x])", 400, "bad_data"),
        ("up + on(job) {job=~\".+\"}", 422, "execution"),
    ] {
        let a = api
            .both(instant, &[("query", query), ("time", "1700000000")])
            .await;
        assert_eq!(a.status, status, "{query}: {}", a.body);
        assert_eq!(a.json()["errorType"], error_type, "{query}: {}", a.body);
        assert_eq!(a.cache.as_deref(), Some("no-store"), "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_limits_are_errors() {
    let instant = "/api/v1/query";
    let small = EngineConfig {
        max_samples: 5,
        ..EngineConfig::default()
    };
    let api = Api::start_with(false, small, Fault::None).await;
    let a = api
        .both(
            "/api/v1/query_range",
            &[
                ("query", "up"),
                ("start", "1699999460"),
                ("end", "1700000000"),
                ("step", "60"),
            ],
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.json()["errorType"], "execution");
    assert!(a.body.contains("too many samples"), "{}", a.body);

    // A store slower than the query's timeout.
    let slow = Fault::Delay(Duration::from_secs(3));
    let api = Api::start_with(false, EngineConfig::default(), slow).await;
    let a = api
        .get(
            instant,
            &[
                ("query", "up"),
                ("time", "1700000000"),
                ("timeout", "300ms"),
            ],
        )
        .await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.json()["errorType"], "timeout", "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_stub_endpoints() {
    let api = Api::start(false).await;

    let b = api.get("/api/v1/status/buildinfo", &[]).await;
    assert_eq!((b.status, b.cache.as_deref()), (200, None));
    let v = b.json();
    assert_eq!(v["status"], "success");
    // Grafana reads `version` as a Prometheus version.
    assert_eq!(v["data"]["version"], "2.42.0");
    assert_eq!(v["data"]["application"], "skein");
    for field in ["revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(v["data"][field].is_string(), "{field}: {}", b.body);
    }
    assert!(v["data"].get("features").is_none());

    api.get("/api/v1/metadata", &[])
        .await
        .assert_data(json!({}));
    api.get("/api/v1/metadata", &[("metric", "up"), ("limit", "1")])
        .await
        .assert_data(json!({}));
    api.get("/api/v1/rules", &[])
        .await
        .assert_data(json!({"groups": []}));
    api.get("/api/v1/alerts", &[])
        .await
        .assert_data(json!({"alerts": []}));
    api.both("/api/v1/query_exemplars", &[("query", "up")])
        .await
        .assert_data(json!([]));
    api.get("/api/v1/query_exemplars", &[]).await.assert_error(
        400,
        "bad_data",
        "1:1: parse error: no expression found in input",
    );
    api.get("/api/v1/status/flags", &[])
        .await
        .assert_data(json!({"query.timeout": "2m"}));

    let r = api.get("/api/v1/status/runtimeinfo", &[]).await;
    let v = r.json();
    assert_eq!(v["status"], "success");
    for field in ["startTime", "CWD", "lastConfigTime", "storageRetention"] {
        assert!(v["data"][field].is_string(), "{field}: {}", r.body);
    }
    assert!(v["data"]["GOMAXPROCS"].as_u64().unwrap() >= 1);

    // Pretty-printing, byte for byte as Prometheus 2.42 prints this query.
    let f = api
        .both(
            "/api/v1/format_query",
            &[(
                "query",
                r#"sum(rate(http_requests_total{job="a",code=~"5.."}[5m])) by (job) / on(job) group_left sum by (job) (rate(http_requests_total[5m])) > 0.1"#,
            )],
        )
        .await;
    assert_eq!(
        f.body,
        r#"{"status":"success","data":"    sum by (job) (rate(http_requests_total{code=~\"5..\",job=\"a\"}[5m]))\n  / on (job) group_left ()\n    sum by (job) (rate(http_requests_total[5m]))\n\u003e\n  0.1"}"#
    );
    api.get("/api/v1/format_query", &[]).await.assert_error(
        400,
        "bad_data",
        r#"invalid parameter "query": 1:1: parse error: no expression found in input"#,
    );

    let nf = api.get("/api/v1/nonexistent", &[]).await;
    assert_eq!((nf.status, nf.body.as_str()), (404, "404 page not found\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_answers_are_marked_and_not_cached() {
    let api = Api::start(true).await;

    // The failing store's group becomes a warning; the rest is answered.
    let a = api.both("/api/v1/series", &[("match[]", "up")]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.cache.as_deref(), Some("no-store"));
    let v = a.json();
    assert_eq!(
        v["data"],
        json!([
            {"__name__": "up", "instance": "a:1", "job": "api"},
            {"__name__": "up", "instance": "b:1", "job": "db"},
        ])
    );
    let warnings = v["warnings"].as_array().expect("warnings");
    assert!(!warnings.is_empty() && warnings.iter().all(Value::is_string));

    // Without partial responses the same request fails, uncached.
    let e = api
        .get(
            "/api/v1/series",
            &[("match[]", "up"), ("partial_response", "false")],
        )
        .await;
    let v = e.json();
    assert!(e.status >= 500, "{}", e.body);
    assert_eq!(v["status"], "error");
    assert!(v["error"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(e.cache.as_deref(), Some("no-store"));

    // Label lookups still reach every store: a complete answer is
    // cacheable.
    api.get("/api/v1/label/job/values", &[])
        .await
        .assert_data(json!(["api", "batch", "db"]));
}

/// Series and label requests run within `--query.timeout` and their
/// answers within `--query.max-fetched-bytes`, each error naming its flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_and_label_requests_are_bounded() {
    let tiny = EngineConfig {
        max_fetched_bytes: 20,
        ..EngineConfig::default()
    };
    let api = Api::start_with(false, tiny, Fault::None).await;
    for (path, params) in [
        ("/api/v1/series", vec![("match[]", "{job=~\".+\"}")]),
        ("/api/v1/label/__name__/values", vec![]),
        ("/api/v1/labels", vec![]),
    ] {
        let a = api.get(path, &params).await;
        assert_eq!(a.status, 422, "{path}: {}", a.body);
        assert_eq!(a.json()["errorType"], "execution", "{path}");
        assert!(
            a.body.contains("--query.max-fetched-bytes"),
            "{path}: {}",
            a.body
        );
    }
    // A narrow request fits.
    let a = api
        .get("/api/v1/label/job/values", &[("match[]", "up{job=\"db\"}")])
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["data"], json!(["db"]));

    let short = EngineConfig {
        timeout: Duration::from_millis(500),
        ..EngineConfig::default()
    };
    let api = Api::start_with(false, short, Fault::Delay(Duration::from_secs(3))).await;
    let started = std::time::Instant::now();
    let a = api.get("/api/v1/series", &[("match[]", "up")]).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.json()["errorType"], "timeout", "{}", a.body);
    assert!(a.body.contains("--query.timeout"), "{}", a.body);
    assert!(started.elapsed() < Duration::from_secs(2));
}
