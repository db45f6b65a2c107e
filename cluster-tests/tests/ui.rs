//! The web UI in headless Chromium against real skein processes: a
//! querier (under a route prefix) over a replica pair of SOURCE members and
//! a one-member STORE group, all found by gossip. The test types queries
//! as a user would, checks the graph's lines in the page's model and in
//! the canvas' pixels, flips deduplication, stalls a member, reads the
//! stores, cluster and status pages, and fails on any console error.
//! With `SKEIN_UI_SCREENSHOTS=<dir>` it saves a screenshot of each page
//! there (docs/ui holds the ones the docs show).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use skein_cluster_tests::webdriver::{Browser, ENTER};
use skein_cluster_tests::{
    get_json, healthy_members_under, http_request, start_node, wait_for, Process,
};

const IP: &str = "127.0.37";
const PREFIX: &str = "/skein";
/// The synthetic data ends here (Unix seconds); graphs end here too.
const END: &str = "1700000000";

fn synthetic(name: &str, host: u8, seed: &str, extra: &[&str]) -> Process {
    let ip = format!("{IP}.{host}");
    let mut args = vec!["--seed", seed, "--end", END, "--window", "6h"];
    args.extend_from_slice(extra);
    start_node(
        name,
        "synthetic",
        &ip,
        Some(&format!("{IP}.1:10900")),
        &args,
    )
    .unwrap()
}

/// A range query asked of the API directly: its status and JSON.
fn api_range(http: SocketAddr, params: &[(&str, &str)]) -> (u16, Value) {
    let body = skein_cluster_tests::promql_setup::form(params);
    let (status, out) = http_request(
        http,
        "POST",
        &format!("{PREFIX}/api/v1/query_range"),
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
        Duration::from_secs(30),
    )
    .unwrap();
    (status, serde_json::from_slice(&out).unwrap())
}

/// The count of series a query answers, asked of the API directly.
fn api_series(http: SocketAddr, params: &[(&str, &str)]) -> usize {
    let (status, v) = api_range(http, params);
    assert_eq!(status, 200, "{v}");
    v["data"]["result"].as_array().unwrap().len()
}

fn panel_attr(b: &Browser, attr: &str) -> Value {
    b.eval(
        "const p = document.querySelector('[data-panel=\"0\"]'); return p ? p.getAttribute(arguments[0]) : null;",
        json!([attr]),
    )
    .unwrap()
}

/// Waits for panel 0 to finish a query; its state.
fn settled(b: &Browser) -> String {
    b.wait_until(
        "the query to finish",
        "const p = document.querySelector('[data-panel=\"0\"]'); const s = p && p.dataset.state; return (s === 'done' || s === 'error') ? s : null;",
    )
    .unwrap()
    .as_str()
    .unwrap()
    .to_string()
}

fn no_console_errors(b: &Browser, page: &str) {
    no_console_errors_but(b, page, None);
}

/// Like [`no_console_errors`], allowing messages that contain `expected`
/// (the browser's own line for an HTTP error answer the page asked for).
fn no_console_errors_but(b: &Browser, page: &str, expected: Option<&str>) {
    let bad: Vec<_> = b
        .console()
        .unwrap()
        .into_iter()
        .filter(|(level, _)| level == "SEVERE" || level == "WARNING")
        .filter(|(_, m)| expected.is_none_or(|e| !m.contains(e)))
        .collect();
    assert!(bad.is_empty(), "console on {page}: {bad:?}");
}

fn screenshot(b: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("SKEIN_UI_SCREENSHOTS") {
        let png = b.screenshot().unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

fn run_query(b: &Browser, expr: &str) -> String {
    let sel = "[data-panel=\"0\"] [data-role=expr]";
    b.clear(sel).unwrap();
    b.type_into(sel, expr).unwrap();
    // Enter runs the query; the completion list must not swallow it.
    b.type_into(sel, "\u{E00C}").unwrap();
    // Something must change: wait for the state the new run sets.
    b.type_into(sel, ENTER).unwrap();
    settled(b)
}

#[test]
fn ui_pages_in_chromium() {
    let Some(browser) = Browser::start(1280, 900).unwrap() else {
        return;
    };
    let querier = start_node(
        "query",
        "query",
        &format!("{IP}.1"),
        None,
        &[
            "--query.replica-label",
            "replica",
            "--store.response-timeout",
            "2s",
            "--web.route-prefix",
            PREFIX,
        ],
    )
    .unwrap();
    let pair = ["source", "--targets", "3", "--label", "region=eu"];
    let _a = synthetic(
        "source-a",
        2,
        "7",
        &[&["--peer-type"][..], &pair, &["--label", "replica=a"]].concat(),
    );
    let _b = synthetic(
        "source-b",
        3,
        "7",
        &[&["--peer-type"][..], &pair, &["--label", "replica=b"]].concat(),
    );
    let store = synthetic(
        "store-x",
        4,
        "9",
        &[
            "--peer-type",
            "store",
            "--store-group-id",
            "bucket-x",
            "--targets",
            "2",
            "--label",
            "region=us",
        ],
    );
    let http = querier.http;
    // The health endpoints live under the prefix too.
    let cluster_path = format!("{PREFIX}/api/v1/cluster");
    wait_for(
        "three groups (a SOURCE group per replica), three healthy members",
        Duration::from_secs(60),
        || healthy_members_under(http, PREFIX) == Some((3, 3)),
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", get_json(http, &cluster_path)));

    // The root redirects to the graph page under the prefix.
    let base = format!("http://{http}{PREFIX}");
    browser.goto(&format!("{base}/")).unwrap();
    browser
        .wait_until("the graph page", "return document.body.dataset.page === 'graph' && document.body.dataset.loaded === '1';")
        .unwrap_or_else(|e| {
            let state = browser.eval("return [location.href, document.body.dataset.page, document.body.dataset.loaded, document.body.innerHTML.slice(0, 500)];", json!([]));
            panic!("{e}: {state:?}; console {:?}", browser.console())
        });
    let path = browser
        .eval("return location.pathname;", json!([]))
        .unwrap();
    assert_eq!(path, format!("{PREFIX}/graph"));

    // A graph over the data: one line per series, in the model and in pixels.
    browser.clear("[data-panel=\"0\"] [data-role=end]").unwrap();
    browser
        .type_into("[data-panel=\"0\"] [data-role=end]", END)
        .unwrap();
    let expr = "http_requests_total{code=\"200\"}";
    assert_eq!(run_query(&browser, expr), "done");
    let end: f64 = END.parse().unwrap();
    let (start, end_s) = ((end - 3600.0).to_string(), END.to_string());
    let want = api_series(
        http,
        &[
            ("query", expr),
            ("start", &start),
            ("end", &end_s),
            ("step", "14"),
            ("dedup", "true"),
        ],
    );
    assert_eq!(want, 5, "3 deduplicated source series and 2 of the store");
    screenshot(&browser, "graph");
    let series: usize = panel_attr(&browser, "data-series")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let lines: usize = panel_attr(&browser, "data-lines")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        (series, lines),
        (want, want),
        "series in the model, lines on the canvas"
    );
    let legend = browser
        .eval("return document.querySelectorAll('[data-panel=\"0\"] [data-role=legend] [data-series-index]').length;", json!([]))
        .unwrap();
    assert_eq!(legend, json!(want));
    no_console_errors(&browser, "graph");

    // The stats the page shows come from the API's `stats`: every member
    // asked once, every series each one sent counted.
    let (_, v) = api_range(
        http,
        &[
            ("query", expr),
            ("start", &start),
            ("end", &end_s),
            ("step", "14"),
            ("stats", "all"),
        ],
    );
    let stats = &v["data"]["stats"]["skein"];
    assert_eq!(stats["storesAsked"], json!(3), "{v}");
    assert_eq!(stats["seriesFetched"], json!(8), "6 of the pair and 2: {v}");
    assert!(stats["samplesFetched"].as_u64().unwrap() > 0, "{v}");
    let shown = browser
        .eval(
            "return document.querySelector('[data-panel=\"0\"] [data-role=stats]').textContent;",
            json!([]),
        )
        .unwrap();
    assert!(
        shown.as_str().unwrap().contains('3'),
        "stores asked shown: {shown}"
    );

    // Deduplication off: the replica pair's series come apart.
    browser
        .click("[data-panel=\"0\"] [data-role=dedup]")
        .unwrap();
    browser
        .click("[data-panel=\"0\"] [data-role=execute]")
        .unwrap();
    browser
        .wait_until("the undeduplicated answer", "const p = document.querySelector('[data-panel=\"0\"]'); return p.dataset.state === 'done' && p.dataset.series === '8';")
        .unwrap();
    let url = browser.eval("return location.search;", json!([])).unwrap();
    assert!(
        url.as_str().unwrap().contains("g0.dedup=0"),
        "state in the URL: {url}"
    );
    // A link reproduces the page: opened afresh, the panel runs the same
    // query with the same switches.
    let href = browser.eval("return location.href;", json!([])).unwrap();
    browser.goto("about:blank").unwrap();
    browser.goto(href.as_str().unwrap()).unwrap();
    browser
        .wait_until("the linked panel's answer", "const p = document.querySelector('[data-panel=\"0\"]'); return p && p.dataset.state === 'done' && p.dataset.series === '8';")
        .unwrap();
    let expr_shown = browser
        .eval(
            "return document.querySelector('[data-panel=\"0\"] [data-role=expr]').value;",
            json!([]),
        )
        .unwrap();
    assert_eq!(expr_shown, json!(expr));

    // Completion offers metric names from the label API.
    let sel = "[data-panel=\"0\"] [data-role=expr]";
    browser.clear(sel).unwrap();
    browser.type_into(sel, "http_req").unwrap();
    browser
        .wait_until("a completion", "return [...document.querySelectorAll('[data-panel=\"0\"] [data-role=completions] li')].some(e => e.textContent.includes('http_requests_total'));")
        .unwrap();
    browser.type_into(sel, "\u{E00C}").unwrap();

    // The table tab: an instant query at the end of the data.
    browser.clear(sel).unwrap();
    browser.type_into(sel, expr).unwrap();
    browser
        .click("[data-panel=\"0\"] [data-role=tab-table]")
        .unwrap();
    let moment = "[data-panel=\"0\"] [data-role=moment]";
    browser.clear(moment).unwrap();
    browser.type_into(moment, END).unwrap();
    browser.type_into(moment, ENTER).unwrap();
    browser
        .wait_until("the table at the end of the data", "const p = document.querySelector('[data-panel=\"0\"]'); return p.dataset.state === 'done' && p.dataset.series === '8' && p.querySelectorAll('[data-role=table] tr').length >= 8;")
        .unwrap();
    screenshot(&browser, "table");
    browser
        .click("[data-panel=\"0\"] [data-role=tab-graph]")
        .unwrap();
    settled(&browser);

    // A second panel.
    browser.click("[data-role=add-panel]").unwrap();
    browser
        .wait_until(
            "a second panel",
            "return document.querySelectorAll('.panel[data-panel]').length === 2;",
        )
        .unwrap();
    browser
        .click("[data-panel=\"1\"] [data-role=remove-panel]")
        .unwrap();
    browser
        .click("[data-panel=\"0\"] [data-role=dedup]")
        .unwrap();

    // A bad query shows the API's own error message.
    let bad = "sum(rate(http_requests_total[5m])";
    assert_eq!(run_query(&browser, bad), "error");
    let shown = browser
        .eval(
            "return document.querySelector('[data-panel=\"0\"] [data-role=error]').textContent;",
            json!([]),
        )
        .unwrap();
    // The graph tab asks for a range query.
    let (_, v) = api_range(
        http,
        &[
            ("query", bad),
            ("start", &start),
            ("end", &end_s),
            ("step", "14"),
        ],
    );
    let api_error = v["error"].as_str().unwrap().to_string();
    assert!(
        shown.as_str().unwrap().contains(&api_error),
        "{shown} vs {api_error}"
    );
    // ... and where it is: a caret under the parenthesis left open.
    let caret = browser
        .eval(
            "const c = document.querySelector('[data-panel=\"0\"] pre.caret'); return c && !c.hidden ? c.textContent : null;",
            json!([]),
        )
        .unwrap();
    assert_eq!(caret, json!(format!("{bad}\n   ^")));
    no_console_errors_but(
        &browser,
        "graph with an error",
        Some("the server responded with a status of 400"),
    );

    // A stalled member: the answer comes with a warning naming its group.
    store.signal("STOP").unwrap();
    assert_eq!(run_query(&browser, expr), "done");
    let warnings: Vec<String> = serde_json::from_value(
        browser
            .eval("return [...document.querySelectorAll('[data-panel=\"0\"] [data-role=warnings] li')].map(e => e.textContent);", json!([]))
            .unwrap(),
    )
    .unwrap();
    assert!(
        warnings.iter().any(|w| w.contains("bucket-x")),
        "a warning naming the stalled group: {warnings:?}"
    );
    assert_eq!(
        panel_attr(&browser, "data-series"),
        json!("3"),
        "the pair still answers"
    );
    screenshot(&browser, "graph-warning");
    store.signal("CONT").unwrap();

    // Stores: every group and member with its health as the API has it.
    browser.goto(&format!("{base}/stores")).unwrap();
    browser
        .wait_until("the stores page", "return document.body.dataset.page === 'stores' && document.body.dataset.loaded === '1';")
        .unwrap();
    let api = get_json(http, &cluster_path).unwrap();
    let mut want: Vec<(String, String)> = api["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["members"].as_array().unwrap().clone())
        .map(|m| {
            (
                m["endpoint"].as_str().unwrap().to_string(),
                m["health"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    want.sort();
    let mut shown: Vec<(String, String)> = serde_json::from_value(
        browser
            .eval("return [...document.querySelectorAll('tr[data-member]')].map(r => [r.dataset.member, r.dataset.health]);", json!([]))
            .unwrap(),
    )
    .unwrap();
    shown.sort();
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert_eq!(
        shown.iter().map(|s| &s.0).collect::<Vec<_>>(),
        want.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    let groups = browser
        .eval(
            "return document.querySelectorAll('[data-group]').length;",
            json!([]),
        )
        .unwrap();
    assert_eq!(groups, json!(3));
    // The shared view of the members the querier asked: their median.
    let shared = browser
        .eval(
            "return [...document.querySelectorAll('td[data-col=shared]')].map(c => c.textContent);",
            json!([]),
        )
        .unwrap();
    let shared: Vec<String> = serde_json::from_value(shared).unwrap();
    assert_eq!(shared.len(), 3, "{shared:?}");
    assert!(shared.iter().any(|c| c.starts_with("p50 ")), "{shared:?}");
    screenshot(&browser, "stores");
    no_console_errors(&browser, "stores");

    // Cluster: every gossip member, this node marked.
    browser.goto(&format!("{base}/cluster")).unwrap();
    browser
        .wait_until("the cluster page", "return document.body.dataset.page === 'cluster' && document.body.dataset.loaded === '1';")
        .unwrap();
    // The stalled member may still be coming back into gossip: the page
    // refreshes itself until it is listed.
    browser
        .wait_until(
            "the querier and three stores",
            "return document.querySelectorAll('tr[data-node]').length === 4;",
        )
        .unwrap();
    screenshot(&browser, "cluster");
    no_console_errors(&browser, "cluster");

    // Status: flags, build and runtime information.
    browser.goto(&format!("{base}/status")).unwrap();
    browser
        .wait_until("the status page", "return document.body.dataset.page === 'status' && document.body.dataset.loaded === '1';")
        .unwrap();
    let flag = browser
        .eval("const r = document.querySelector('tr[data-flag=\"query.replica-label\"]'); return r && r.textContent;", json!([]))
        .unwrap();
    assert!(
        flag.as_str().is_some_and(|t| t.contains("replica")),
        "{flag}"
    );
    screenshot(&browser, "status");
    no_console_errors(&browser, "status");
}
