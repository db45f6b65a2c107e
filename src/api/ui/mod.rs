//! The web UI every querier serves: one page of plain HTML, CSS and
//! JavaScript embedded in the binary (no request leaves it for anything
//! outside skein), drawing from the HTTP APIs the querier already has.
//! The pages (`/graph`, `/stores`, `/cluster`, `/status`) are one document
//! that picks its view from the path.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON: &str = include_str!("assets/favicon.svg");

/// The pages the document answers for.
pub const PAGES: [&str; 4] = ["graph", "stores", "cluster", "status"];

/// Where the UI and the APIs are served, and where users reach them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebPaths {
    /// Path the HTTP routes are served under (`--web.route-prefix`); empty
    /// for the root.
    pub route_prefix: String,
    /// Path prefix of every link and redirect the UI makes
    /// (`--web.external-prefix`; a reverse proxy may add it in front of
    /// the route prefix). Defaults to the route prefix.
    pub external_prefix: String,
}

impl WebPaths {
    /// From the two flags: each normalised to "" or "/a/b" (leading slash,
    /// no trailing one). A prefix with characters a URL path cannot hold
    /// as they are is an error naming its flag.
    pub fn new(route_prefix: &str, external_prefix: Option<&str>) -> anyhow::Result<Self> {
        let route_prefix = normalise("web.route-prefix", route_prefix)?;
        let external_prefix = match external_prefix {
            Some(p) => normalise("web.external-prefix", p)?,
            None => route_prefix.clone(),
        };
        Ok(Self {
            route_prefix,
            external_prefix,
        })
    }

    /// `router` under the route prefix; the prefix with a trailing slash
    /// leads to the UI as the bare prefix does.
    pub fn mount(&self, router: Router) -> Router {
        if self.route_prefix.is_empty() {
            return router;
        }
        let to = format!("{}/graph", self.external_prefix);
        Router::new().nest(&self.route_prefix, router).route(
            &format!("{}/", self.route_prefix),
            get(move || async move { Redirect::to(&to) }),
        )
    }
}

fn normalise(flag: &str, p: &str) -> anyhow::Result<String> {
    let trimmed = p.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || "/-._~".contains(c);
    if !trimmed.chars().all(ok) || trimmed.contains("//") {
        anyhow::bail!(
            "invalid --{flag} {p:?}: expected a URL path such as /skein (letters, digits, '-', '.', '_', '~' and '/')"
        );
    }
    Ok(if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    })
}

#[derive(Clone)]
struct Ui {
    /// The document with the external prefix filled in, rendered once.
    index: Arc<str>,
    external_prefix: Arc<str>,
}

/// The UI's routes, relative to the route prefix.
pub fn router(paths: &WebPaths) -> Router {
    let ui = Ui {
        index: INDEX.replace("{{PREFIX}}", &paths.external_prefix).into(),
        external_prefix: paths.external_prefix.as_str().into(),
    };
    let mut router = Router::new().route("/", get(root));
    for page in PAGES {
        router = router.route(&format!("/{page}"), get(index));
    }
    router
        .route(
            "/static/app.js",
            get(|h: HeaderMap| asset(h, APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/static/app.css",
            get(|h: HeaderMap| asset(h, APP_CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/static/favicon.svg",
            get(|h: HeaderMap| asset(h, FAVICON, "image/svg+xml")),
        )
        .with_state(ui)
}

async fn root(State(ui): State<Ui>) -> Redirect {
    Redirect::to(&format!("{}/graph", ui.external_prefix))
}

async fn index(State(ui): State<Ui>) -> Response {
    let mut r = (StatusCode::OK, ui.index.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// An embedded file, revalidated by its content's tag: never stale after
/// an upgrade, never sent twice to a browser that has it.
async fn asset(req: HeaderMap, body: &'static str, content_type: &'static str) -> Response {
    let tag = format!("\"{:016x}\"", fnv1a(body.as_bytes()));
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, body).into_response()
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    r
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalised_and_checked() {
        let p = WebPaths::new("skein/", None).unwrap();
        assert_eq!(p.route_prefix, "/skein");
        assert_eq!(p.external_prefix, "/skein");
        let p = WebPaths::new("/", Some("/proxy/q/")).unwrap();
        assert_eq!(p.route_prefix, "");
        assert_eq!(p.external_prefix, "/proxy/q");
        assert!(WebPaths::new("/a b", None).is_err());
        assert!(WebPaths::new("/a?b", None).is_err());
        assert!(WebPaths::new("/a//b", None).is_err());
    }

    #[test]
    fn the_page_stays_small_and_self_contained() {
        let total = INDEX.len() + APP_JS.len() + APP_CSS.len() + FAVICON.len();
        assert!(total < 100 * 1024, "UI assets are {total} bytes");
        // Nothing is loaded from anywhere but the server itself: the only
        // absolute URLs are the links to other members' own pages.
        assert!(!INDEX.contains("://") && !APP_CSS.contains("://"));
        for line in APP_JS.lines().filter(|l| l.contains("://")) {
            assert!(line.contains("addr"), "app.js refers outside: {line}");
        }
    }

    #[test]
    fn the_document_names_its_assets_under_the_prefix() {
        let page = INDEX.replace("{{PREFIX}}", "/x");
        assert!(page.contains("/x/static/app.js"), "{page}");
        assert!(page.contains("/x/static/app.css"), "{page}");
        assert!(!page.contains("{{PREFIX}}"));
    }
}
