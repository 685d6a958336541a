//! `GET /debug/`: the live dashboard, one page embedded in the binary.
//!
//! The page (`assets/dashboard.{html,css,js}`, the script split into ES
//! modules `assets/dashboard-*.js`) needs no build step, loads
//! nothing from another origin (its Content-Security-Policy forbids it) and
//! uses relative URLs only, so it works offline and under any path prefix.
//! It polls `metrics` beside it, seeds its charts from `history` and goes
//! live on `events` when the server has them.

use super::query;
use crate::server_metrics::ServerMetrics;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use vitals::Registry;

const HTML: &str = include_str!("../../assets/dashboard.html");

/// `(name, content type, text)` of a file in `assets/`.
macro_rules! asset_file {
    ($name:literal, $content_type:expr) => {
        (
            $name,
            $content_type,
            include_str!(concat!("../../assets/", $name)),
        )
    };
}

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The files the page loads, each served at `/debug/<name>` with its
/// content type: the stylesheet, the script (`dashboard.js`, an ES module
/// that imports the `dashboard-*.js` beside it) and the icon. A name not
/// listed here is a 404.
const ASSETS: &[(&str, &str, &str)] = &[
    asset_file!("dashboard.css", CSS),
    asset_file!("dashboard.js", JS),
    asset_file!("dashboard-state.js", JS),
    asset_file!("dashboard-format.js", JS),
    asset_file!("dashboard-data.js", JS),
    asset_file!("dashboard-sync.js", JS),
    asset_file!("dashboard-panels.js", JS),
    asset_file!("dashboard-charts.js", JS),
    asset_file!("dashboard-theme.js", JS),
    asset_file!("dashboard-clients.js", JS),
    asset_file!("favicon.svg", SVG),
];

/// Where the page lists the sibling endpoints it may call.
const ENDPOINTS_PLACEHOLDER: &str = "{{endpoints}}";

/// Scripts and styles from this server only; data from this server only.
/// Inline scripts are refused too, so an escaping slip cannot run code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self'; connect-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The `/debug/*` endpoints served beside the page (by `endpoints::router`).
/// The page asks only for those it is told of, so a page served without
/// one never shows a 404 in the browser's console; it still copes with a
/// 404 from a server that lacks one.
const SIBLINGS: &[&str] = &["metrics", "history", "events"];

/// Builds the router serving the dashboard at `/debug/` and its assets.
pub(crate) fn router(metrics: &ServerMetrics) -> axum::Router {
    let html = Bytes::from(HTML.replace(ENDPOINTS_PLACEHOLDER, &SIBLINGS.join(" ")));
    let registry = metrics.registry().clone();
    let page_registry = registry.clone();
    let router = axum::Router::new()
        .route(
            "/debug/",
            get(move |RawQuery(query): RawQuery| async move {
                match refuse_query(&page_registry, query.as_deref()) {
                    None => page(html),
                    Some(refused) => refused,
                }
            }),
        )
        .route(
            "/debug",
            get(move |RawQuery(query): RawQuery| async move { redirect(&registry, query) }),
        );
    // One route for every file, so the page's own requests take one row
    // (`route="/debug/{file}"`) in the application's figures, not one per
    // file. Static routes (`/debug/metrics`, …) win over the capture.
    router.route(
        "/debug/{file}",
        get(|Path(file): Path<String>| async move {
            match ASSETS.iter().find(|(name, _, _)| *name == file) {
                Some(&(_, content_type, body)) => {
                    asset(content_type, Bytes::from_static(body.as_bytes()))
                }
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }),
    )
}

/// The page forwards its query string to `/debug/metrics`, which checks
/// the filters themselves; here only the length, so an oversized query is
/// refused (and counted) before the browser ever runs the page.
fn refuse_query(registry: &Registry, query: Option<&str>) -> Option<Response> {
    query::check_len(query)
        .err()
        .map(|refused| refused.respond(registry))
}

fn page(html: Bytes) -> Response {
    let mut response = asset("text/html; charset=utf-8", html);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn asset(content_type: &'static str, body: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Revalidate each time: the page must match the server it comes from.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `/debug` to `/debug/`, keeping the filters. The target is relative
/// (`debug/`), so it stays right under a path prefix.
fn redirect(registry: &Registry, query: Option<String>) -> Response {
    if let Some(refused) = refuse_query(registry, query.as_deref()) {
        return refused;
    }
    let target = match query {
        Some(q) if !q.is_empty() => format!("debug/?{q}"),
        _ => "debug/".to_owned(),
    };
    // A query string that reached us is already valid in a URL, hence in a
    // header; should one not be, drop it rather than fail.
    let location =
        HeaderValue::from_str(&target).unwrap_or_else(|_| HeaderValue::from_static("debug/"));
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
mod tests {
    use super::{ASSETS, HTML};

    /// A file added to `assets/` but not to `ASSETS` would be a 404 the
    /// page only meets in a browser: every file is served, and every module
    /// a script imports or the page preloads is one of them.
    #[test]
    fn every_asset_is_served_and_every_import_is_an_asset() {
        let served: Vec<&str> = ASSETS.iter().map(|&(name, _, _)| name).collect();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name != "dashboard.html" {
                assert!(served.contains(&name.as_str()), "{name} is not served");
            }
        }
        let texts = ASSETS.iter().map(|&(name, _, text)| (name, text));
        for (name, text) in texts.chain([("dashboard.html", HTML)]) {
            let imports = text.split(" from './").skip(1);
            let preloads = text.split("rel=\"modulepreload\" href=\"").skip(1);
            for target in imports.chain(preloads) {
                let target = target.split(['\'', '"']).next().unwrap();
                assert!(
                    served.contains(&target),
                    "{name} loads {target}, not served"
                );
            }
        }
        assert!(
            HTML.matches("rel=\"modulepreload\"").count()
                == served
                    .iter()
                    .filter(|n| n.starts_with("dashboard-"))
                    .count(),
            "the page preloads every module"
        );
    }
}
