//! The web UI: `GET /` is the page, `GET /ui/{*file}` its files, all
//! embedded in the binary from `crates/vitals-collector/ui/` (the table is
//! in `assets.rs`). No build step, nothing from another origin (the
//! page's Content-Security-Policy forbids it), relative URLs only, so it
//! works offline and under a path prefix.
//!
//! The page and its files need no key: they hold no data. The page asks
//! for a read key, keeps it in the browser's `sessionStorage` and sends it
//! in the `Authorization` header of every `/v1/…` call it makes, so what it
//! shows is exactly what the API lets that key read.

mod assets;

use assets::{ASSETS, INDEX_HTML};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// Scripts, styles and data from this collector only; inline scripts are
/// refused too, so an escaping slip cannot run code. `style-src` allows
/// no inline `<style>`; the libraries set styles through the CSSOM, which
/// the policy does not restrict.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self'; connect-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// `GET /`: the page, with its Content-Security-Policy.
pub(crate) fn page() -> Response {
    let mut response = asset("text/html; charset=utf-8", INDEX_HTML);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    // The URL holds the page and its filters, never the key; still, no
    // other site learns which service a person was looking at.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /ui/{*file}`: one of the page's files, or `None` for a name not
/// in the table (the router answers that with its counted 404).
pub(crate) fn file(name: &str) -> Option<Response> {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| asset(a.content_type, a.text))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Revalidate each time: the page must match the collector it comes from.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
